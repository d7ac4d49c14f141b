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

#endif
