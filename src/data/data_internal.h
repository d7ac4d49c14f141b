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

/* Pairs grouped by user in O(n + U + I) (two counting sorts): row_ptr
 * [U + 1] and col get each user's items, increasing, repeats dropped, each
 * stored as item + offset. by_item (n) and item_ptr (I + 1) are scratch.
 * Ids must be checked by the caller: users below U, items below I, and
 * I + offset below 2^31. Returns the distinct pair count (col's length). */
size_t mmrec__pairs_by_user(const int64_t *users, const int64_t *items, size_t n, size_t U,
                            size_t I, int32_t offset, int64_t *row_ptr, int32_t *col,
                            int32_t *by_item, int64_t *item_ptr);

#endif
