/* The serving index: the trained item vectors behind a handle that answers
 * exact top-K queries.
 *
 * An index holds num_items items, each with an int64 id (>= 0, sparse or
 * dense) and vectors_per_item vectors of dim floats, stored as float32,
 * float16 or bfloat16. It is built from a matrix in memory
 * (mmrec_index_create), from a field of a feature cache
 * (mmrec_index_create_from_cache: the item embeddings an EM3 or two-tower
 * model wrote), or from its own file (mmrec_index_open, written by
 * mmrec_index_save). A service answering top-20 requests:
 *
 *     mmrec_index_config cfg;
 *     mmrec_index_config_init(&cfg);
 *     cfg.storage = MMREC_INDEX_F16;             // half the bytes per query
 *     mmrec_index *ix;
 *     mmrec_index_create(item_vecs, item_ids, num_items, 64, &cfg, &ix);
 *     mmrec_index_save(ix, "items.mmix");        // other processes: mmrec_index_open
 *     mmrec_index_filter f;                      // per request
 *     mmrec_index_filter_init(&f);
 *     f.exclude = seen_ids;
 *     f.num_exclude = num_seen;
 *     int64_t ids[20];
 *     float scores[20];
 *     size_t found;
 *     mmrec_index_search(ix, user_vec, 1, 64, 20, &f, ids, scores, &found);
 *
 * (Each call returns a status to check.)
 *
 * Scores. With one vector per item the score of an item is the inner
 * product of the query with the item's vector (MMREC_INDEX_INNER_PRODUCT),
 * or their cosine (MMREC_INDEX_COSINE: every stored vector is L2-normalized
 * when the index is built, before it is rounded to the storage type, and
 * every query vector when it is searched; a zero vector stays zero). With
 * several vectors per item and per query (mmrec_index_search_multi) the
 * score is MaxSim, the late interaction of ColBERT and IntTower's FE-Block:
 * the sum over the query's vectors of the maximum over the item's vectors
 * of their inner products (cosines); or, with MMREC_INDEX_COMBINE_MAX, the
 * maximum over the query's vectors instead of the sum (a user's several
 * interest vectors, each item scored by the interest it matches best). A
 * score is the float32 sum of the products of the query's floats with the
 * stored values (16-bit storage is widened exactly), so float16 storage
 * halves the memory read per query and changes the scores only by the
 * rounding of the stored values.
 *
 * Results. A search writes, for each query, its k best items sorted by
 * score (highest first), ties broken by the smaller id, as ids and scores
 * into caller buffers of [num_queries, k]. Filters per query drop the items
 * the user has seen (an exclude list) or keep only an allowed set (an id
 * list or a bitmap over ids). When fewer than k items are left, the count
 * says how many were found and the rest of the row is id -1, score -inf.
 * The search is exact: it scores every item (or every allowed item). The
 * results do not depend on the thread count (mmrec_set_num_threads): the
 * items are cut into fixed blocks, each block's scores are computed in one
 * order, and the per-thread top-K lists are merged by (score, id). A
 * query's float32 sums are formed in one order for calls of up to 16 query
 * vectors in all (one query alone gets the same scores in a batch of up to
 * 16), and in other orders for larger batches, whose scores may then
 * differ in the last bits (never for values whose products and sums are
 * exact).
 *
 * Versions. A handle serves one version of the item vectors at a time.
 * mmrec_index_refresh() swaps in a rebuilt index while other threads
 * search: a search in progress finishes on the version it started with,
 * which is freed (or unmapped) when its last search ends, and every search
 * sees exactly one version.
 *
 * The file format: little-endian, magic "MMRINDEX", a format version, a
 * 64-byte header with a CRC-32C, the sorted id table with a CRC-32C, then
 * the vectors in id order at a 64-byte-aligned offset with a CRC-32C.
 * mmrec_index_save() writes it crash-safely (temporary file, fsync, rename,
 * fsync of the directory); mmrec_index_open() maps it read-only and shared
 * (several processes serving one file share one page-cache copy) and
 * checks all of it first: a truncated, corrupt or foreign file is
 * MMREC_EFORMAT.
 *
 * Thread safety: an index may be searched by any number of threads at
 * once, also while one of them refreshes it; only mmrec_index_destroy()
 * must not overlap another call on the same handle. */
#ifndef MMREC_INDEX_H
#define MMREC_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a query and an item vector are compared. */
typedef enum mmrec_index_metric {
    MMREC_INDEX_INNER_PRODUCT = 0, /* <q, v> */
    MMREC_INDEX_COSINE = 1         /* <q / |q|, v / |v|>; vectors normalized */
} mmrec_index_metric;

/* How the item vectors are stored. 16-bit types are rounded to nearest,
 * ties to even, when the index is built (as the feature cache does). */
typedef enum mmrec_index_storage {
    MMREC_INDEX_F32 = 0,
    MMREC_INDEX_F16 = 1, /* IEEE half: finite up to 65504 */
    MMREC_INDEX_BF16 = 2 /* bfloat16: float32's range, 8-bit significand */
} mmrec_index_storage;

/* How the per-query-vector maxima of a multi-vector query are combined. */
typedef enum mmrec_index_combine {
    MMREC_INDEX_COMBINE_SUM = 0, /* MaxSim: sum over query vectors (ColBERT, IntTower) */
    MMREC_INDEX_COMBINE_MAX = 1  /* max over query vectors (multi-interest users) */
} mmrec_index_combine;

/* How an index is built. Fill with mmrec_index_config_init(&cfg), then set
 * the fields; a NULL config means the defaults. */
typedef struct mmrec_index_config {
    size_t struct_size;          /* set by mmrec_index_config_init; first, forever */
    mmrec_index_metric metric;   /* default MMREC_INDEX_INNER_PRODUCT */
    mmrec_index_storage storage; /* default MMREC_INDEX_F32 */
    int64_t vectors_per_item;    /* >= 1; default 1. Above 1: MaxSim scores */
    mmrec_index_combine query_combine; /* default MMREC_INDEX_COMBINE_SUM; how
                                        * mmrec_index_search_multi combines a
                                        * query's vectors */
} mmrec_index_config;

/* Fills cfg with the defaults (inner product, float32, one vector per
 * item, MaxSim sums) for a struct of `size` bytes; use the macro
 * mmrec_index_config_init(&cfg).
 *   cfg  (out) the config to fill.
 *   size (in)  sizeof *cfg as the caller was compiled.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the 0.2 struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_index_config_init_sized(mmrec_index_config *cfg, size_t size);
#define mmrec_index_config_init(cfg) mmrec_index_config_init_sized((cfg), sizeof *(cfg))

/* One query's filter. Fill with mmrec_index_filter_init(&f), then set the
 * fields; the arrays are borrowed for the duration of the search. An item
 * is a candidate when it is not excluded, and is in the allow list (when
 * one is given), and has its bit set in the allow bitmap (when one is
 * given). Ids that are not in the index are ignored. */
typedef struct mmrec_index_filter {
    size_t struct_size;            /* set by mmrec_index_filter_init; first, forever */
    const int64_t *exclude;        /* num_exclude ids never returned (the user's
                                    * seen items), any order, repeats allowed;
                                    * NULL (default) when num_exclude is 0 */
    size_t num_exclude;
    const int64_t *allow;          /* num_allow ids, the only ones returned, any
                                    * order, repeats allowed; NULL (default): no
                                    * allow list. An empty list (non-NULL,
                                    * num_allow 0) allows nothing */
    size_t num_allow;
    const uint64_t *allow_bitmap;  /* NULL (default), or the bitmap of allowed ids:
                                    * id is allowed when id < allow_bitmap_bits and
                                    * bit id % 64 of allow_bitmap[id / 64] is set */
    uint64_t allow_bitmap_bits;
} mmrec_index_filter;

/* Fills cfg with the defaults (no filter) for a struct of `size` bytes;
 * use the macro mmrec_index_filter_init(&f).
 *   cfg  (out) the filter to fill.
 *   size (in)  sizeof *cfg as the caller was compiled.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the 0.2 struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_index_filter_init_sized(mmrec_index_filter *cfg, size_t size);
#define mmrec_index_filter_init(f) mmrec_index_filter_init_sized((f), sizeof *(f))

/* Builds an index from item vectors in memory. The vectors are copied
 * (normalized for cosine, rounded to the storage type) and sorted by id;
 * the caller's buffers are not kept.
 *   vectors   (in)  [num_items, cfg->vectors_per_item, dim] float32,
 *                   row-major: the vectors of the i-th item (ids[i]) start
 *                   at vectors + i * vectors_per_item * dim; borrowed for
 *                   the duration of the call.
 *   ids       (in, may be NULL) num_items ids, each >= 0, all different, in
 *                   any order; NULL: the ids 0 .. num_items - 1.
 *   num_items (in)  1 .. 2^31 - 1.
 *   dim       (in)  >= 1.
 *   cfg       (in, may be NULL) metric, storage, vectors per item; NULL:
 *                   the defaults.
 *   out       (out) new index, owned by the caller (mmrec_index_destroy).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, num_items or dim out of range, a
 *         bad cfg field, a negative or repeated id: the message names its
 *         index), MMREC_ENUMERIC (a NaN or infinite value: the message names
 *         item, vector and element), MMREC_ERANGE (a finite value beyond the
 *         range of float16 storage), MMREC_ENOMEM.
 * Thread safety: thread-safe (the new index is then shared as the top of
 * this header says). Since 0.2. */
MMREC_API mmrec_status mmrec_index_create(const float *vectors, const int64_t *ids,
                                          size_t num_items, int64_t dim,
                                          const mmrec_index_config *cfg, mmrec_index **out);

/* Builds an index from one field of a feature cache: the cache's ids and
 * the field's records, each record holding cfg->vectors_per_item vectors
 * (dim = the field's record length / vectors_per_item). The records are
 * widened to float32, then stored as mmrec_index_create() stores them; the
 * cache may be closed or refreshed afterwards.
 *   cache (in)  open cache; borrowed for the duration of the call.
 *   field (in)  field name, e.g. "item_emb".
 *   cfg   (in, may be NULL) as mmrec_index_create().
 *   out   (out) new index, owned by the caller (mmrec_index_destroy).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a bad cfg field, a cache of 2^31
 *         items or more), MMREC_ENOTFOUND (no such field), MMREC_ESHAPE
 *         (vectors_per_item does not divide the field's record length),
 *         MMREC_ERANGE (a value beyond float16's range), MMREC_ENOMEM.
 * Thread safety: thread-safe; `cache` may be shared, also during
 * mmrec_cache_refresh() (the index is built from one version). Since 0.2. */
MMREC_API mmrec_status mmrec_index_create_from_cache(const mmrec_cache *cache, const char *field,
                                                     const mmrec_index_config *cfg,
                                                     mmrec_index **out);

/* Writes the index's current version to `path` crash-safely: a temporary
 * file "<path>.tmp.<pid>" in the same directory, fsync, rename over
 * `path`, fsync of the directory (model.h: what a crash leaves). On failure
 * the old file at `path` is unchanged and no temporary file is left, except
 * for MMREC_EIO from syncing the directory after the rename: the new file
 * is then in place but may not yet be durable, and the message says so.
 *   index (in) the index; borrowed.
 *   path  (in) the file to write.
 * Returns MMREC_OK, MMREC_EINVAL (NULL), MMREC_EIO (the message names the
 *         file and the system error), MMREC_ENOMEM.
 * Thread safety: thread-safe on an index, also during searches and
 * refreshes; of two saves to the same path at the same time in one
 * process, one may fail with MMREC_EIO (the file is never mixed). Since 0.2. */
MMREC_API mmrec_status mmrec_index_save(const mmrec_index *index, const char *path);

/* Opens an index file written by mmrec_index_save(): maps it read-only and
 * shared, then checks all of it (size, magic, version, the header, id table
 * and vector checksums, ids sorted and unique) before returning, so a
 * search never reads outside the mapping. The index reads the vectors from
 * the mapping (no copy). Replace an index file by writing a new one (save
 * renames it into place); a file rewritten or truncated in place under a
 * reader is undefined behaviour, as for any mapped file.
 *   path (in)  the index file.
 *   out  (out) new index, owned by the caller (mmrec_index_destroy).
 * Returns MMREC_OK, MMREC_EINVAL (NULL), MMREC_EIO (cannot open, not a
 *         regular file, cannot map), MMREC_EFORMAT (truncated, corrupt, a
 *         newer format version or not an index file: the message names the
 *         file and says what is wrong), MMREC_ENOMEM.
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_index_open(const char *path, mmrec_index **out);

/* Frees the index (unmaps its file). Searches of a version still running
 * on other handles that share it (after mmrec_index_refresh) are not
 * affected. NULL is a no-op.
 * Thread safety: no other call on this index may be running or start.
 * Since 0.2. */
MMREC_API void mmrec_index_destroy(mmrec_index *index);

/* Hot swap: makes the current version of `source` (a rebuilt or reopened
 * index) the version every later search of `index` reads. Searches already
 * running finish on the version they started with; the old version is
 * freed when the last of them ends. Both handles then share the version,
 * and `source` stays valid: destroy it when it is no longer needed.
 *   index  (in) the index being served.
 *   source (in) an index of the same dim, vectors per item, metric and
 *               query combination (the storage and the items may differ).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not an index, a different metric or
 *         query combination),
 *         MMREC_ESHAPE (a different dim or vectors per item: queries built
 *         for `index` would not fit). On failure `index` keeps its version.
 * Thread safety: thread-safe on both indexes, also during searches
 * (concurrent refreshes: the last swap wins). Since 0.2. */
MMREC_API mmrec_status mmrec_index_refresh(mmrec_index *index, const mmrec_index *source);

/* The shape and settings of the index's current version.
 *   index             (in)  the index.
 *   num_items_out     (out, may be NULL) number of items.
 *   dim_out           (out, may be NULL) elements per vector.
 *   vectors_out       (out, may be NULL) vectors per item.
 *   metric_out        (out, may be NULL) the metric.
 *   storage_out       (out, may be NULL) the storage type.
 * Returns MMREC_OK, MMREC_EINVAL (NULL index, not an index).
 * Thread safety: thread-safe, also during refreshes (one version is read).
 * Since 0.2. */
MMREC_API mmrec_status mmrec_index_info(const mmrec_index *index, int64_t *num_items_out,
                                        int64_t *dim_out, int64_t *vectors_out,
                                        mmrec_index_metric *metric_out,
                                        mmrec_index_storage *storage_out);

/* Exact top-k for a batch of single-vector queries (num_queries 1: one
 * query). With several vectors per item the score is the maximum over the
 * item's vectors (MaxSim of one query vector). See the top of this header
 * for scores, ties and filters.
 *   index       (in)  the index; borrowed.
 *   queries     (in)  [num_queries, dim] float32, finite; borrowed.
 *   num_queries (in)  >= 1.
 *   dim         (in)  must equal the index's dim.
 *   k           (in)  >= 1; may exceed the number of items.
 *   filters     (in, may be NULL) num_queries filters, one per query, each
 *                     initialized by mmrec_index_filter_init (all of one
 *                     struct_size); NULL: no filter.
 *   ids_out     (out) [num_queries, k] ids, best first; -1 past the count.
 *   scores_out  (out) [num_queries, k] scores; -inf past the count.
 *   counts_out  (out, may be NULL) [num_queries] number of items found,
 *                     min(k, candidates).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, num_queries or k 0, a bad filter
 *         struct_size, a filter array NULL with its count not 0),
 *         MMREC_ESHAPE (dim is not the index's dim), MMREC_ENUMERIC (a NaN
 *         or infinite query value: the message names query and element),
 *         MMREC_ENOMEM. The outputs are untouched on failure.
 * Memory: one allocation per call (per-call scratch sized up front), none
 * per item.
 * Thread safety: thread-safe; any number of threads may search one index,
 * also during mmrec_index_refresh(); each call reads exactly one version.
 * Since 0.2. */
MMREC_API mmrec_status mmrec_index_search(const mmrec_index *index, const float *queries,
                                          size_t num_queries, int64_t dim, int64_t k,
                                          const mmrec_index_filter *filters, int64_t *ids_out,
                                          float *scores_out, size_t *counts_out);

/* Exact top-k for a batch of multi-vector queries by MaxSim: score(query,
 * item) = sum over the query's vectors q of max over the item's vectors v
 * of <q, v> (cosines with MMREC_INDEX_COSINE), the sum taken in the order
 * of the query's vectors; with the index's query_combine
 * MMREC_INDEX_COMBINE_MAX, the max over q instead of the sum. Otherwise as
 * mmrec_index_search().
 *   queries       (in) [num_queries, query_vectors, dim] float32, finite.
 *   query_vectors (in) >= 1 vectors per query (1: mmrec_index_search).
 *   the other arguments as mmrec_index_search().
 * Returns as mmrec_index_search(); MMREC_EINVAL also for query_vectors < 1.
 * Thread safety: as mmrec_index_search(). Since 0.2. */
MMREC_API mmrec_status mmrec_index_search_multi(const mmrec_index *index, const float *queries,
                                                size_t num_queries, int64_t query_vectors,
                                                int64_t dim, int64_t k,
                                                const mmrec_index_filter *filters,
                                                int64_t *ids_out, float *scores_out,
                                                size_t *counts_out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_INDEX_H */
