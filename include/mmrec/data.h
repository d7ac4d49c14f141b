/* Interaction data: the user-item pairs a recommender trains and is
 * evaluated on, read from the files public implementations ship or taken
 * from caller memory.
 *
 * An mmrec_interactions holds n pairs (users[k], items[k]) of int64 ids
 * >= 0, in the order they were given or read, repeats kept. Its id ranges
 * are num_users = largest user id + 1 and num_items = largest item id + 1,
 * so the ids index embedding tables directly (the files below are already
 * remapped to dense 0-based ids).
 *
 * Two file formats are read, a chunk at a time (lines of any length; no
 * fixed line limit):
 *   - the LightGCN / NGCF text format (train.txt, test.txt): one line per
 *     user, "user item item ...";
 *   - the MMRec toolbox's .inter file: tab-separated values with a header
 *     line, columns "userID", "itemID" and "x_label" (0 train, 1 valid,
 *     2 test) among others.
 * Malformed files are rejected with MMREC_EFORMAT and a message naming the
 * file, the 1-based line number and what is wrong, e.g.
 * "mmrec_interactions_read_lightgcn: 'train.txt' line 17: 'x12' is not a
 * non-negative integer".
 *
 * An mmrec_sequences holds each user's items in order (oldest first), as
 * sequential recommenders (IISAN, SASRec) train on them, with the items'
 * text: read from IISAN's tab-separated files, filtered and re-indexed as
 * the reference code does, split leave-one-out (below).
 *
 * Ownership: the readers and mmrec_interactions_create() return a new
 * object owned by the caller (mmrec_interactions_destroy,
 * mmrec_sequences_destroy); arrays and strings they return are borrowed
 * from it.
 *
 * Thread safety: an object is immutable once created, so any number of
 * threads may read it at once; only its destroy call must not overlap
 * another call on it. Creating and reading are thread-safe. */
#ifndef MMREC_DATA_H
#define MMREC_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mmrec_sequences mmrec_sequences;

/* Makes an interactions object from caller memory: n pairs
 * (users[k], items[k]), copied.
 *   users (in)  n user ids, each 0 .. INT64_MAX - 1; borrowed for the
 *               duration of the call. May be NULL when n is 0.
 *   items (in)  n item ids, each 0 .. INT64_MAX - 1; as `users`.
 *   n     (in)  number of pairs; may be 0 (no pairs, num_users and
 *               num_items 0).
 *   out   (out) new object, owned by the caller (mmrec_interactions_destroy);
 *               written only on success.
 * Returns MMREC_OK, MMREC_EINVAL (NULL out, NULL users or items with n > 0,
 *         a negative id or INT64_MAX: the message names the array and the
 *         first bad index), MMREC_ENOMEM.
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_interactions_create(const int64_t *users, const int64_t *items,
                                                 size_t n, mmrec_interactions **out);

/* Reads a LightGCN / NGCF text file (train.txt, test.txt). Each line is
 * "user item item ...": fields separated by one or more spaces or tabs
 * (leading and trailing ones allowed), each a non-negative decimal integer
 * ("-3", "+3", "3.0" and "x12" are malformed). A line holding a user alone
 * is a user without interactions: no pair, but the user counts in
 * num_users. Empty lines (also blank ones, and the one after a final
 * newline) are skipped; "\r\n" line endings are accepted; the same user may
 * appear on several lines (its pairs are appended). Pairs are kept in file
 * order. An empty file gives an object with no pairs.
 *   path (in)  the file; borrowed for the duration of the call.
 *   out  (out) new object, owned by the caller (mmrec_interactions_destroy);
 *              written only on success.
 * Returns MMREC_OK, MMREC_EINVAL (NULL), MMREC_EIO (cannot open or read
 *         the file, or not a regular file: the message names the path and
 *         the system error), MMREC_EFORMAT (a field that is not a
 *         non-negative integer, an id beyond INT64_MAX - 1, a NUL byte: the
 *         message names the path, "line N" and what is wrong),
 *         MMREC_ENOMEM.
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_interactions_read_lightgcn(const char *path,
                                                        mmrec_interactions **out);

/* Reads an MMRec toolbox .inter file: tab-separated values, one field per
 * tab, with a header line naming the columns. Required columns "userID",
 * "itemID" and "x_label", in any order, each once; other columns (such as
 * "rating" and "timestamp") are ignored and not parsed. Every row has as
 * many fields as the header; userID and itemID are non-negative decimal
 * integers (the toolbox's files are already remapped to 0-based ids) and
 * x_label is 0 (train), 1 (valid) or 2 (test). Every row is checked, also
 * the rows `split` leaves out. Empty lines are skipped; "\r\n" line endings
 * are accepted. Pairs are kept in file order. num_users and num_items
 * describe the rows kept (read with split -1 for the id ranges of the whole
 * file).
 *   path  (in)  the file; borrowed for the duration of the call.
 *   split (in)  0, 1 or 2: keep only the rows with that x_label;
 *               -1: keep every row.
 *   out   (out) new object, owned by the caller
 *               (mmrec_interactions_destroy); written only on success.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, split not -1, 0, 1 or 2),
 *         MMREC_EIO (as mmrec_interactions_read_lightgcn), MMREC_EFORMAT
 *         (an empty file (no header), a required column missing or
 *         repeated, a row whose field count differs from the header's, a
 *         bad id, an x_label other than 0, 1 or 2, a NUL byte: the message
 *         names the path, "line N" and what is wrong), MMREC_ENOMEM.
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_interactions_read_inter(const char *path, int split,
                                                     mmrec_interactions **out);

/* Sizes of an interactions object.
 *   x         (in)  the object; borrowed.
 *   num_users (out, may be NULL) largest user id + 1, counting users on
 *             LightGCN lines without items; 0 when there is no user.
 *   num_items (out, may be NULL) largest item id + 1; 0 when there is no
 *             pair.
 *   count     (out, may be NULL) number of pairs.
 * Returns MMREC_OK or MMREC_EINVAL (NULL x, or not an interactions object).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_interactions_info(const mmrec_interactions *x, int64_t *num_users,
                                               int64_t *num_items, size_t *count);

/* The pairs: users[k], items[k] for k < count (mmrec_interactions_info).
 *   x     (in)  the object; borrowed.
 *   users (out) count user ids; borrowed from `x`, valid until
 *               mmrec_interactions_destroy(x). NULL when count is 0.
 *   items (out) count item ids; as `users`.
 * Returns MMREC_OK or MMREC_EINVAL (NULL argument, or x not an
 *         interactions object).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_interactions_pairs(const mmrec_interactions *x,
                                                const int64_t **users, const int64_t **items);

/* Frees the object and its pairs; arrays returned by
 * mmrec_interactions_pairs() become invalid. NULL is a no-op.
 * Thread safety: no other call on `x` may be running or start. Since 0.1. */
MMREC_API void mmrec_interactions_destroy(mmrec_interactions *x);

/* ---- user sequences (IISAN's TSV files) ----
 * Two files, tab-separated, one record a line, "\n" or "\r\n" endings,
 * empty lines skipped:
 *   items file  "item_id<TAB>title", e.g. "B00QEXSCE8<TAB>5PCS Nema17 ...":
 *               the item id (an Amazon ASIN) printable ASCII without
 *               spaces, each once; the title non-empty text without tabs
 *               (any bytes but NUL; kept as is, HTML entities included);
 *   users file  "user_id<TAB>item item ...", the user's items oldest
 *               first, separated by spaces (runs of spaces or tabs
 *               accepted): printable ASCII only, the user id non-empty and
 *               each once, every item in the items file.
 * Every line of both files is checked, also lines the filter drops.
 *
 * Filtering and ids, as the IISAN reference code (GAIR-Lab/IISAN, its
 * read_behaviors) does:
 *   - a sequence shorter than min_length (5) is dropped; of the others the
 *     last max_length (13 = max_seq_len 10 + 3) items are kept (repeats
 *     kept as they are);
 *   - users get ids 0 .. num_users - 1 in the order of the users file;
 *   - the items that appear in a kept sequence get ids 1 .. num_items in
 *     the order of the items file; 0 is the padding id; items in no kept
 *     sequence are dropped (on Amazon Scientific, 511 of 20825).
 * Split, leave-one-out: of a user's kept sequence s of length L (>= 3),
 * s[L - 1] is the test target, s[L - 2] the validation target and
 * s[0 .. L - 3] the training part. The reference trains on the training
 * part (inputs s[0 .. L - 4], each next item the target), validates with
 * s[0 .. L - 3] as history and tests with s[0 .. L - 2]. */

/* Options of mmrec_sequences_read_tsv(). Fill with
 * mmrec_sequences_config_init(&cfg), then set fields; NULL means the
 * defaults. */
typedef struct mmrec_sequences_config {
    size_t struct_size; /* set by mmrec_sequences_config_init; first, forever */
    int64_t min_length; /* shorter sequences are dropped; >= 3; default 5 */
    int64_t max_length; /* items kept of each sequence, its last ones: >= 3,
                         * or 0 for whole sequences; default 13 */
} mmrec_sequences_config;

/* Fills cfg with the defaults (min_length 5, max_length 13) for a struct
 * of `size` bytes; use the macro mmrec_sequences_config_init(&cfg).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the 0.2 struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_sequences_config_init_sized(mmrec_sequences_config *cfg,
                                                         size_t size);
#define mmrec_sequences_config_init(cfg) \
    mmrec_sequences_config_init_sized((cfg), sizeof *(cfg))

/* Reads an items file and a users file (formats above), filters the
 * sequences and gives the items ids, e.g. for Amazon Scientific as IISAN
 * ships it: Industrial_and_Scientific_items.tsv and
 * am_Industrial_and_Scientific_users.tsv.
 *   items_path (in)  the items file; borrowed for the duration of the call.
 *   users_path (in)  the users file; borrowed as items_path.
 *   cfg        (in, may be NULL) lengths; NULL: min_length 5, max_length 13.
 *   out        (out) new object, owned by the caller
 *                    (mmrec_sequences_destroy); written only on success.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, cfg->min_length below 3,
 *         cfg->max_length 1 or 2 or negative, a config from a newer
 *         library), MMREC_EIO (cannot open or read a file: the message
 *         names it and the system error), MMREC_EFORMAT (a line without a
 *         tab, an empty item id, title or user id, an item id with a space
 *         or a non-printable byte, a second tab in an items line, an item
 *         or a user listed twice, a byte that is not printable ASCII in a
 *         users line, an item not in the items file, an items file without
 *         items, a NUL byte: the message names the file, "line N" and what
 *         is wrong), MMREC_ENOMEM. A users file whose every sequence is
 *         filtered out gives an object with no user.
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_sequences_read_tsv(const char *items_path, const char *users_path,
                                                const mmrec_sequences_config *cfg,
                                                mmrec_sequences **out);

/* Sizes of a sequences object.
 *   seqs      (in)  the object; borrowed.
 *   num_users (out, may be NULL) users kept (ids 0 .. num_users - 1).
 *   num_items (out, may be NULL) items kept (ids 1 .. num_items; an id
 *             table needs num_items + 1 rows, row 0 the padding).
 *   count     (out, may be NULL) items in all kept sequences.
 * Returns MMREC_OK or MMREC_EINVAL (NULL seqs, or not a sequences object).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_sequences_info(const mmrec_sequences *seqs, int64_t *num_users,
                                            int64_t *num_items, size_t *count);

/* One user's kept sequence, oldest first: the training part, then the
 * validation target, then the test target (the split above).
 *   seqs       (in)  the object; borrowed.
 *   user       (in)  0 .. num_users - 1.
 *   items_out  (out) length item ids, each 1 .. num_items; borrowed from
 *                    `seqs`, valid until mmrec_sequences_destroy(seqs).
 *   length_out (out) min_length .. max_length (at least 3).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not a sequences object),
 *         MMREC_ERANGE (user out of range; the message names it).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_sequences_user(const mmrec_sequences *seqs, int64_t user,
                                            const int64_t **items_out, size_t *length_out);

/* A user's id as the users file spells it.
 *   seqs     (in)  the object; borrowed.
 *   user     (in)  0 .. num_users - 1.
 *   name_out (out) NUL-terminated; borrowed from `seqs`.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not a sequences object),
 *         MMREC_ERANGE (user out of range).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_sequences_user_name(const mmrec_sequences *seqs, int64_t user,
                                                 const char **name_out);

/* An item's id in the items file (its ASIN, e.g. to find its image or
 * cached features) and its title (the text an encoder tokenizes).
 *   seqs      (in)  the object; borrowed.
 *   item      (in)  1 .. num_items (0 is the padding id: no item).
 *   asin_out  (out, may be NULL) NUL-terminated; borrowed from `seqs`.
 *   title_out (out, may be NULL) NUL-terminated, as in the file; borrowed
 *             from `seqs`.
 * Returns MMREC_OK, MMREC_EINVAL (NULL seqs, not a sequences object),
 *         MMREC_ERANGE (item out of range; the message names it).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_sequences_item(const mmrec_sequences *seqs, int64_t item,
                                            const char **asin_out, const char **title_out);

/* How often each item occurs in the training parts of all sequences, the
 * popularity IISAN's debiased loss takes the log of (the reference
 * normalizes it to a probability). Items that occur only as validation or
 * test targets count 0.
 *   seqs       (in)  the object; borrowed.
 *   counts_out (out) num_items + 1 counts, indexed by item id; entry 0 (the
 *                    padding) is 0; borrowed from `seqs`.
 * Returns MMREC_OK or MMREC_EINVAL (NULL, not a sequences object).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_sequences_train_counts(const mmrec_sequences *seqs,
                                                    const int64_t **counts_out);

/* Parts of the split, for mmrec_sequences_interactions(). */
#define MMREC_SEQUENCES_TRAIN 1u /* the training part of each sequence */
#define MMREC_SEQUENCES_VALID 2u /* each validation target */
#define MMREC_SEQUENCES_TEST 4u  /* each test target */

/* The (user, item) pairs of some parts of the split, as an interactions
 * object, e.g. for mmrec_eval_full_ranking (validation: train = TRAIN,
 * test = VALID; test: train = TRAIN | VALID, test = TEST) or a user-item
 * graph. Pairs come user by user, each user's in sequence order, repeats
 * kept. Item ids are the sequences' (1 .. num_items), so the item table
 * of an evaluation has num_items + 1 rows.
 *   seqs  (in)  the object; borrowed.
 *   parts (in)  a non-empty OR of MMREC_SEQUENCES_TRAIN, _VALID, _TEST.
 *   out   (out) new object, owned by the caller
 *               (mmrec_interactions_destroy); written only on success.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not a sequences object, parts 0 or
 *         with other bits), MMREC_ENOMEM.
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_sequences_interactions(const mmrec_sequences *seqs, uint32_t parts,
                                                    mmrec_interactions **out);

/* Frees the object; arrays and strings it returned become invalid. NULL is
 * a no-op.
 * Thread safety: no other call on `seqs` may be running or start.
 * Since 0.2. */
MMREC_API void mmrec_sequences_destroy(mmrec_sequences *seqs);

/* ---- Corpus sampler: item ids drawn i.i.d. from the whole corpus ----
 * The extra negatives of mixed negative sampling (Yang et al., WWW 2020,
 * section 3.3: B' items drawn uniformly from the corpus, passed through
 * the item tower and appended to the candidates of
 * mmrec_loss_batch_softmax), or the popularity-drawn negatives of sampled
 * softmax (weights = count^0.75 as word2vec and torch-rechub, or counts).
 * Draws are with replacement, O(1) each (Walker's alias method, built in
 * double at creation), from the sampler's own generator, so a seed gives
 * the same ids on every machine and thread count.
 * For the logQ correction of the mixed softmax, an item's expected number
 * of occurrences among the B + B' candidates is q_j = p_batch(j) + B' *
 * mmrec_item_sampler_probability(j), p_batch from the frequency estimator
 * (twotower.h); column_bias = -log q_j on every column. */
typedef struct mmrec_item_sampler mmrec_item_sampler;

typedef struct mmrec_item_sampler_config {
    size_t struct_size;
    int64_t num_items;    /* ids 0 .. num_items - 1; required, 1 .. 2^31 */
    const float *weights; /* [num_items] or NULL (uniform, the default):
                             relative weights, each >= 0 and finite, their
                             sum > 0; copied at creation */
    uint64_t seed;        /* the generator's seed; default 0 */
} mmrec_item_sampler_config;

/* Fills cfg with the defaults for the first `size` bytes: num_items 0 (to
 * be set), weights NULL (uniform), seed 0. Call it through
 * mmrec_item_sampler_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_item_sampler_config_init_sized(mmrec_item_sampler_config *cfg,
                                                            size_t size);
#define mmrec_item_sampler_config_init(cfg) \
    mmrec_item_sampler_config_init_sized((cfg), sizeof *(cfg))

/* Creates a sampler over ids 0 .. num_items - 1, drawing id j with
 * probability weights[j] / sum of weights (1 / num_items without weights).
 *   cfg (in)  from mmrec_item_sampler_config_init(), num_items set;
 *             borrowed for the call (weights are copied).
 *   out (out) new sampler, owned by the caller (mmrec_item_sampler_destroy);
 *             written only on success.
 * Returns MMREC_OK, MMREC_EINVAL (NULL cfg or out; num_items out of range;
 *         a weight negative or not finite: the message gives its index;
 *         every weight 0; a bad cfg->struct_size or a config from a newer
 *         libmmrec), MMREC_ENOMEM.
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_item_sampler_create(const mmrec_item_sampler_config *cfg,
                                                 mmrec_item_sampler **out);

/* Draws n ids i.i.d. (with replacement) into ids. No allocation.
 *   sampler (in)  the sampler; its generator advances.
 *   ids     (out) n ids in caller memory.
 *   n       (in)  number of draws, >= 1.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, n 0).
 * Thread safety: per-handle: calls on one sampler must be serialised
 * (each thread its own sampler for parallel draws). Since 0.2. */
MMREC_API mmrec_status mmrec_item_sampler_draw(mmrec_item_sampler *sampler, int64_t *ids,
                                               size_t n);

/* The probability that one draw gives each id: weights[id] / sum of
 * weights, or 1 / num_items (0 for an id of weight 0).
 *   sampler (in)  the sampler; not changed.
 *   ids     (in)  n ids, each in [0, num_items); borrowed for the call.
 *   n       (in)  >= 1.
 *   out     (out) n probabilities in caller memory.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, n 0), MMREC_ERANGE (an id out of
 *         range: the message gives its index; out untouched).
 * Thread safety: any number of threads may call it while nobody draws
 * from the sampler. Since 0.2. */
MMREC_API mmrec_status mmrec_item_sampler_probability(const mmrec_item_sampler *sampler,
                                                      const int64_t *ids, size_t n, float *out);

/* Frees the sampler. NULL is a no-op.
 * Thread safety: no other call on `sampler` may be running or start.
 * Since 0.2. */
MMREC_API void mmrec_item_sampler_destroy(mmrec_item_sampler *sampler);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_DATA_H */
