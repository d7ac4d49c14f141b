/* The feature cache: the frozen encoders' outputs, computed once and reused
 * every epoch (EM3's feature system, IISAN's hidden-state cache), and the
 * serving-side cache of computed item embeddings.
 *
 * A cache maps item ids (int64 >= 0, sparse or dense) to one fixed-size
 * record per named field ("image", "text", "text.layer3"), each field stored
 * as float32, float16 or bfloat16 and gathered into float32 rows.
 *
 * A record is a vector of dim elements, or a matrix of [layers, width]
 * (dim = layers * width, stored row-major), e.g. the CLS state of every
 * layer of a frozen backbone, [13, 768] for BERT-base's embedding output
 * and 12 layers. mmrec_cache_gather() reads any record as a flat [dim]
 * row; mmrec_cache_gather_layers() gives [layers, width] per item, or only
 * the layers a model keeps (IISAN's LayerDrop keeps 0, 2, ..., 12), reading
 * just those rows of each record. A vector field is a [1, dim] matrix.
 *
 * Writing: mmrec_cache_writer_create() takes the item ids, then each field
 * is added from caller memory (mmrec_cache_writer_add) or from a numpy .npy
 * file (mmrec_cache_writer_add_npy) and streamed to a temporary file;
 * mmrec_cache_writer_commit() makes it the cache file crash-safely (fsync,
 * rename over the old file, fsync of the directory): a crash leaves the old
 * file or the new one, never a torn one (model.h: what a crash or a failed
 * save leaves, and who removes a killed writer's temporary).
 *
 * Reading: mmrec_cache_open() maps the file read-only and shared, so several
 * processes reading one cache share one page-cache copy, and validates all
 * of it before returning. Gathers copy rows into a tape tensor (training,
 * inference) or into caller memory (serving). mmrec_cache_refresh() swaps in
 * a new version of the file while other threads keep gathering. Replace a
 * cache file by writing a new one (the writer renames it into place); a file
 * rewritten or truncated in place under a reader is undefined behaviour, as
 * for any mapped file.
 *
 * The file format: little-endian, magic "MMRCACHE", a format version, a
 * 64-byte header with a CRC-32C, a sorted id table with a CRC-32C, each
 * field's records in sorted-id order at a 64-byte-aligned offset with a
 * CRC-32C, and an index of the fields (name, storage type, record length,
 * layer count) with a CRC-32C. Readers reject truncated, corrupt or
 * foreign files with MMREC_EFORMAT.
 *
 * Thread safety: a writer is per-handle. An open cache may be read (every
 * gather and query) by any number of threads at once, also while one of them
 * calls mmrec_cache_refresh(); only mmrec_cache_close() must not overlap any
 * other call on the cache. */
#ifndef MMREC_CACHE_H
#define MMREC_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Storage type of a field. 16-bit types are rounded to nearest, ties to even,
 * when written, and widened exactly to float32 when gathered. */
typedef enum mmrec_cache_dtype {
    MMREC_CACHE_F32 = 0,
    MMREC_CACHE_F16 = 1, /* IEEE half: 11-bit significand, finite up to 65504 */
    MMREC_CACHE_BF16 = 2 /* bfloat16: 8-bit significand, float32's range */
} mmrec_cache_dtype;

/* Gather flag: an id not in the cache gives a zero row and presence 0
 * instead of an error. */
#define MMREC_CACHE_MISSING_ZERO 1u

/* ---- writing ---- */

/* Starts a cache file at `path` for the given items. Nothing at `path`
 * changes before mmrec_cache_writer_commit(); the records go to a temporary
 * file "<path>.tmp.<pid>" in the same directory meanwhile, held under an
 * exclusive flock until the commit (another save of `path` in this process
 * fails with MMREC_EIO meanwhile). Temporaries of `path` left by killed
 * writers are removed first.
 *   path      (in)  the cache file to write; copied.
 *   ids       (in)  num_items item ids, each >= 0, all different, in any
 *                   order; copied. Row i of every field added later belongs
 *                   to ids[i].
 *   num_items (in)  >= 1.
 *   out       (out) new writer, owned by the caller (mmrec_cache_writer_destroy).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, num_items 0, a negative or repeated
 *         id: the message names its index), MMREC_EIO (the temporary file
 *         cannot be created: the message names it and the system error),
 *         MMREC_ENOMEM.
 * Thread safety: thread-safe (the new writer is then per-handle). Since 0.1. */
MMREC_API mmrec_status mmrec_cache_writer_create(const char *path, const int64_t *ids,
                                                 size_t num_items, mmrec_cache_writer **out);

/* Adds a field from caller memory, converting to `dtype` and writing it to
 * the temporary file (the writer keeps no copy).
 *   writer (in)  an uncommitted writer.
 *   field  (in)  field name: 1..255 bytes, no control characters, not yet
 *                added; copied.
 *   dtype  (in)  storage type.
 *   data   (in)  [num_items, dim] float32, row i for the writer's ids[i];
 *                borrowed for the duration of the call.
 *   dim    (in)  record length, >= 1.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, bad name, dtype or dim),
 *         MMREC_ESTATE (field already added; the writer is finished),
 *         MMREC_ENUMERIC (NaN or infinity: the message names row and
 *         column), MMREC_ERANGE (a finite value beyond the range of a
 *         16-bit dtype, e.g. 70000 as float16: row and column named),
 *         MMREC_EIO, MMREC_ENOMEM. A failed add changes nothing: the writer
 *         can go on as if it had not been called.
 * Thread safety: per-handle. Since 0.1. */
MMREC_API mmrec_status mmrec_cache_writer_add(mmrec_cache_writer *writer, const char *field,
                                              mmrec_cache_dtype dtype, const float *data,
                                              int64_t dim);

/* Adds a field of [layers, width] records from caller memory, e.g. every
 * layer's CLS state of a frozen encoder: as mmrec_cache_writer_add() with
 * dim = layers * width, and the field remembers its shape
 * (mmrec_cache_field_shape, mmrec_cache_gather_layers).
 *   writer, field, dtype (in) as mmrec_cache_writer_add().
 *   data   (in)  [num_items, layers, width] float32, row-major: layer l of
 *                the writer's ids[i] starts at data + (i * layers + l) *
 *                width; borrowed for the duration of the call.
 *   layers (in)  1 .. 4294967295 (1 gives a vector field of dim width).
 *   width  (in)  >= 1.
 * Returns as mmrec_cache_writer_add() (a bad value is named by row i and
 *         column l * width + h); MMREC_EINVAL also for a bad layers or
 *         width, or a record too large (layers * width overflows).
 * Thread safety: per-handle. Since 0.2. */
MMREC_API mmrec_status mmrec_cache_writer_add_layers(mmrec_cache_writer *writer,
                                                     const char *field, mmrec_cache_dtype dtype,
                                                     const float *data, int64_t layers,
                                                     int64_t width);

/* Adds a field from a numpy .npy file holding a [num_items, dim] matrix (a
 * 1-D [num_items] array is a field of dim 1), or a 3-D array
 * [num_items, layers, width] for a field of [layers, width] records (as
 * mmrec_cache_writer_add_layers(); 3-D arrays since 0.2), row i for the
 * writer's ids[i].
 * The file is read and converted in chunks; the matrix is never held in
 * memory. Accepted: format versions 1.0, 2.0 and 3.0; dtypes '<f8' '>f8'
 * '<f4' '>f4' '<f2' '>f2', and '=' or '|' for the machine's byte order;
 * fortran_order False.
 *   writer, field, dtype (in) as mmrec_cache_writer_add().
 *   npy_path (in) the .npy file.
 * Returns as mmrec_cache_writer_add(), and MMREC_EIO (the file cannot be
 *         read), MMREC_EFORMAT (not an .npy file, a bad header, Fortran
 *         order, an unsupported dtype such as '|O', '<i4' or '<c8', not 1-D,
 *         2-D or 3-D, records of 0 elements, truncated or extra data: the
 *         message names the file and what is wrong), MMREC_ESHAPE (its row
 *         count is not num_items).
 * Thread safety: per-handle. Since 0.1. */
MMREC_API mmrec_status mmrec_cache_writer_add_npy(mmrec_cache_writer *writer, const char *field,
                                                  mmrec_cache_dtype dtype, const char *npy_path);

/* Writes the index and header, then replaces `path` with the new file
 * crash-safely. A cache with no field is valid (ids only). Whether it
 * succeeds or fails, the writer is finished afterwards (further calls return
 * MMREC_ESTATE): destroy it. On failure no temporary file is left behind and
 * the old file at `path` is unchanged (except for MMREC_EIO reported after
 * the rename, while syncing the directory: the new file is then in place
 * but may not yet be durable, and the message says so).
 * Returns MMREC_OK, MMREC_EINVAL (NULL), MMREC_ESTATE (already finished),
 *         MMREC_EIO, MMREC_ENOMEM.
 * Thread safety: per-handle. Since 0.1. */
MMREC_API mmrec_status mmrec_cache_writer_commit(mmrec_cache_writer *writer);

/* Destroys a writer. An uncommitted writer's temporary file is removed and
 * nothing at its path changes. NULL is a no-op. Since 0.1. */
MMREC_API void mmrec_cache_writer_destroy(mmrec_cache_writer *writer);

/* ---- reading ---- */

/* Opens a cache file: maps it read-only and shared (MAP_SHARED), then checks
 * all of it (size, magic, version, header, index and id-table checksums,
 * every field's bounds and data checksum, ids sorted and unique) so later
 * calls never read outside the mapping.
 *   path (in)  the cache file; copied (mmrec_cache_refresh(cache, NULL)
 *              reopens it).
 *   out  (out) new cache, owned by the caller (mmrec_cache_close).
 * Returns MMREC_OK, MMREC_EINVAL (NULL), MMREC_EIO (cannot open, not a
 *         regular file, cannot map), MMREC_EFORMAT (truncated, corrupt, a
 *         newer format version or not a cache file: the message says what),
 *         MMREC_ENOMEM.
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_cache_open(const char *path, mmrec_cache **out);

/* Unmaps and frees the cache. Names returned by mmrec_cache_field_info()
 * become invalid; tensors already gathered stay valid (they are copies).
 * NULL is a no-op.
 * Thread safety: no other call on this cache may be running or start.
 * Since 0.1. */
MMREC_API void mmrec_cache_close(mmrec_cache *cache);

/* Number of items (ids) in the cache.
 * Returns MMREC_OK or MMREC_EINVAL (NULL).
 * Thread safety: thread-safe on an open cache. Since 0.1. */
MMREC_API mmrec_status mmrec_cache_num_items(const mmrec_cache *cache, int64_t *out);

/* Number of fields in the cache.
 * Returns MMREC_OK or MMREC_EINVAL (NULL).
 * Thread safety: thread-safe on an open cache. Since 0.1. */
MMREC_API mmrec_status mmrec_cache_num_fields(const mmrec_cache *cache, int *out);

/* The index-th field, in the order the writer added them.
 *   index     (in)  0 .. mmrec_cache_num_fields() - 1.
 *   name_out  (out, may be NULL) the field name; borrowed from the cache,
 *             valid until mmrec_cache_close() or the next
 *             mmrec_cache_refresh() (copy it if another thread may refresh).
 *   dim_out   (out, may be NULL) record length.
 *   dtype_out (out, may be NULL) storage type.
 * Returns MMREC_OK, MMREC_EINVAL (NULL cache), MMREC_ERANGE (index out of
 *         range; the message names it and the count).
 * Thread safety: thread-safe on an open cache. Since 0.1. */
MMREC_API mmrec_status mmrec_cache_field_info(const mmrec_cache *cache, int index,
                                              const char **name_out, int64_t *dim_out,
                                              mmrec_cache_dtype *dtype_out);

/* Record length of a field by name.
 * Returns MMREC_OK, MMREC_EINVAL (NULL), MMREC_ENOTFOUND (no such field;
 *         the message names it).
 * Thread safety: thread-safe on an open cache. Since 0.1. */
MMREC_API mmrec_status mmrec_cache_field_dim(const mmrec_cache *cache, const char *field,
                                             int64_t *dim_out);

/* The shape of a field's records: [layers, width], layers * width being
 * its dim (mmrec_cache_field_dim). A vector field, and every field of a
 * file written by 0.1, is [1, dim].
 *   cache      (in)  open cache.
 *   field      (in)  field name.
 *   layers_out (out) number of layers (rows of a record), >= 1.
 *   width_out  (out) elements per layer, >= 1.
 * Returns MMREC_OK, MMREC_EINVAL (NULL), MMREC_ENOTFOUND (no such field;
 *         the message names it).
 * Thread safety: thread-safe on an open cache. Since 0.2. */
MMREC_API mmrec_status mmrec_cache_field_shape(const mmrec_cache *cache, const char *field,
                                               int64_t *layers_out, int64_t *width_out);

/* Gathers one field of the cached records for `n` item ids into a new batch
 * tensor. The tensor is a constant (no gradient flows into the cache); 16-bit
 * fields are widened to float32. Works on training and inference tapes; the
 * output comes from the tape's arena (no malloc once the arena has grown).
 *   cache (in)  open cache; borrowed.
 *   tape  (in)  the step's tape.
 *   field (in)  field name, e.g. "image" or "text.layer3".
 *   ids   (in)  n item ids, in any order, repeats allowed; borrowed.
 *   n     (in)  >= 1 (a tensor has no empty dimension).
 *   out   (out) [n, dim] tensor owned by `tape` until mmrec_tape_reset().
 * Returns MMREC_OK, MMREC_EINVAL (NULL, n == 0), MMREC_ENOTFOUND (no such
 *         field), MMREC_ERANGE (an id not in the cache; the message names
 *         the first such index and its id), MMREC_ENOMEM.
 * Thread safety: per-handle (tape); `cache` may be shared by any number of
 * threads, also during mmrec_cache_refresh(). Since 0.1. */
MMREC_API mmrec_status mmrec_cache_gather(const mmrec_cache *cache, mmrec_tape *tape,
                                          const char *field, const int64_t *ids, size_t n,
                                          mmrec_tensor **out);

/* mmrec_cache_gather() with flags and a presence mask.
 *   flags        (in)  0 or MMREC_CACHE_MISSING_ZERO: an id not in the
 *                      cache gives a zero row instead of MMREC_ERANGE.
 *   presence_out (out, may be NULL) [n] tensor owned by `tape`: 1.0 where
 *                      the id is in the cache, 0.0 where it is not.
 * Returns as mmrec_cache_gather(); MMREC_EINVAL for unknown flag bits.
 * Thread safety: as mmrec_cache_gather(). Since 0.1. */
MMREC_API mmrec_status mmrec_cache_gather_ex(const mmrec_cache *cache, mmrec_tape *tape,
                                             const char *field, const int64_t *ids, size_t n,
                                             uint32_t flags, mmrec_tensor **out,
                                             mmrec_tensor **presence_out);

/* mmrec_cache_gather_ex() into caller memory, for serving.
 *   dst      (out) n * dim floats, row-major [n, dim].
 *   presence (out, may be NULL) n floats, 1.0 present / 0.0 missing.
 *   n        (in)  may be 0: nothing is written and MMREC_OK is returned
 *                  (the field is still looked up).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, unknown flag bits), MMREC_ENOTFOUND,
 *         MMREC_ERANGE (as mmrec_cache_gather; dst and presence are then
 *         untouched).
 * Thread safety: thread-safe on an open cache, also during
 * mmrec_cache_refresh(); each call sees exactly one version. Since 0.1. */
MMREC_API mmrec_status mmrec_cache_gather_into(const mmrec_cache *cache, const char *field,
                                               const int64_t *ids, size_t n, uint32_t flags,
                                               float *dst, float *presence);

/* Options of the layered gathers, mmrec_cache_gather_layers() and
 * mmrec_cache_gather_layers_into(). Fill with
 * mmrec_cache_gather_config_init(&cfg), then set the fields; a NULL config
 * means the defaults. The config and its keep array are read during the
 * call only. */
typedef struct mmrec_cache_gather_config {
    size_t struct_size;   /* set by mmrec_cache_gather_config_init; first, forever */
    uint32_t flags;       /* 0 (default): an id not in the cache is MMREC_ERANGE;
                           * MMREC_CACHE_MISSING_ZERO: it gives zeros and presence 0 */
    const int64_t *keep;  /* the layers to gather, each in [0, layers), strictly
                           * increasing; NULL (default): every layer */
    size_t n_keep;        /* entries of keep, >= 1; 0 (default) when keep is NULL */
} mmrec_cache_gather_config;

/* Fills cfg with the defaults (no flag, every layer) for a struct of
 * `size` bytes; use the macro mmrec_cache_gather_config_init(&cfg).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the 0.2 struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_cache_gather_config_init_sized(mmrec_cache_gather_config *cfg,
                                                            size_t size);
#define mmrec_cache_gather_config_init(cfg) \
    mmrec_cache_gather_config_init_sized((cfg), sizeof *(cfg))

/* Gathers the [layers, width] records of one field for `n` item ids into a
 * new [n, kept, width] tensor, kept = cfg->n_keep (or every layer). Only
 * the kept layers of each record are read, widened from 16 bits as they
 * are copied; the result equals the kept rows of a full gather bit for bit.
 * The tensor is a constant, as for mmrec_cache_gather(). Large gathers are
 * split over the library's threads (the result does not depend on their
 * number); the output comes from the tape's arena (no malloc once it has
 * grown).
 *   cache        (in)  open cache; borrowed.
 *   tape         (in)  the step's tape.
 *   field        (in)  field name; a vector field is [1, dim].
 *   ids          (in)  n item ids, in any order, repeats allowed; borrowed.
 *   n            (in)  >= 1.
 *   cfg          (in, may be NULL) options: missing-id policy, kept
 *                      layers; NULL: every layer, missing ids an error.
 *   out          (out) [n, kept, width] tensor owned by `tape` until
 *                      mmrec_tape_reset(); out[i][k] is layer keep[k] of
 *                      ids[i].
 *   presence_out (out, may be NULL) [n] tensor owned by `tape`: 1.0 where
 *                      the id is in the cache, 0.0 where it is not.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, n == 0, unknown flag bits,
 *         cfg->n_keep 0 with keep set or not 0 with keep NULL, keep not
 *         strictly increasing, a config from a newer library),
 *         MMREC_ENOTFOUND (no such field), MMREC_ERANGE (a kept layer
 *         outside [0, layers); an id not in the cache without
 *         MMREC_CACHE_MISSING_ZERO: the message names the first such index
 *         and its id), MMREC_ENOMEM. Nothing is written on failure.
 * Thread safety: per-handle (tape); `cache` may be shared by any number of
 * threads, also during mmrec_cache_refresh(). Since 0.2. */
MMREC_API mmrec_status mmrec_cache_gather_layers(const mmrec_cache *cache, mmrec_tape *tape,
                                                 const char *field, const int64_t *ids,
                                                 size_t n, const mmrec_cache_gather_config *cfg,
                                                 mmrec_tensor **out,
                                                 mmrec_tensor **presence_out);

/* mmrec_cache_gather_layers() into caller memory, for serving.
 *   dst      (out) n * kept * width floats, row-major [n, kept, width].
 *   presence (out, may be NULL) n floats, 1.0 present / 0.0 missing.
 *   n        (in)  may be 0: nothing is written and MMREC_OK is returned
 *                  (the field and cfg are still checked).
 * Returns as mmrec_cache_gather_layers() (no MMREC_ENOMEM); dst and
 *         presence are untouched on failure.
 * Thread safety: thread-safe on an open cache, also during
 * mmrec_cache_refresh(); each call sees exactly one version. Since 0.2. */
MMREC_API mmrec_status mmrec_cache_gather_layers_into(const mmrec_cache *cache,
                                                      const char *field, const int64_t *ids,
                                                      size_t n,
                                                      const mmrec_cache_gather_config *cfg,
                                                      float *dst, float *presence);

/* Hot swap: opens and fully validates `path` as mmrec_cache_open() does, then
 * atomically makes it the version every later call reads. On failure the
 * current version stays and keeps serving. Gathers already running finish on
 * the version they started with, which is unmapped when the last of them
 * ends; every gather sees exactly one version, never a mix.
 *   cache (in) open cache.
 *   path  (in) the new file; NULL = the path given to mmrec_cache_open().
 *              Not remembered: a later NULL still means the open path.
 * Returns as mmrec_cache_open().
 * Thread safety: thread-safe on an open cache (concurrent refreshes: the
 * last swap wins). Since 0.1. */
MMREC_API mmrec_status mmrec_cache_refresh(mmrec_cache *cache, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_CACHE_H */
