/* Internal interaction data: the object behind mmrec_interactions, so other
 * areas (graph building, samplers) can read the pairs without the public
 * calls. Never installed. */
#ifndef MMREC_DATA_INTERNAL_H
#define MMREC_DATA_INTERNAL_H

#include "mmrec/data.h"
#include "../core/core_internal.h"

#define MMREC__INTERACTIONS_MAGIC 0x6d6d4958u /* "mmIX" */

/* Largest id accepted: num_users and num_items (largest id + 1) fit int64. */
#define MMREC__DATA_MAX_ID (INT64_MAX - 1)

struct mmrec_interactions {
    uint32_t magic;
    size_t count;
    int64_t *users; /* count user ids; NULL when count is 0 */
    int64_t *items; /* count item ids; NULL when count is 0 */
    int64_t num_users, num_items;
};

/* Checks the pairs (users below U, items below I: MMREC_ERANGE naming
 * "<name>users[k]" or "<name>items[k]"; name is a prefix such as "train "
 * or "") and groups them by user in O(n + U + I)
 * with two counting sorts. *row_ptr_out gets U + 1 + extra_rows entries,
 * the first U + 1 the row offsets; *col_out gets room for 2 n entries (at
 * least 1), the first *distinct each user's items, increasing, repeats
 * dropped, stored as item + offset (I + offset must be below 2^31); the
 * rest is the caller's. Both are freed with mmrec__free. MMREC_ENOMEM. */
mmrec_status mmrec__group_by_user(const int64_t *users, const int64_t *items, size_t n, size_t U,
                                  size_t I, int32_t offset, size_t extra_rows, const char *name,
                                  int64_t **row_ptr_out, int32_t **col_out, size_t *distinct,
                                  const char *func) MMREC__WUR;

#endif
