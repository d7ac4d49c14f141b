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
 * Ownership: the readers and mmrec_interactions_create() return a new
 * object owned by the caller (mmrec_interactions_destroy); the arrays of
 * mmrec_interactions_pairs() are borrowed from it.
 *
 * Thread safety: an object is immutable once created, so any number of
 * threads may read it at once; only mmrec_interactions_destroy() must not
 * overlap another call on it. Creating and reading are thread-safe. */
#ifndef MMREC_DATA_H
#define MMREC_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif
#endif /* MMREC_DATA_H */
