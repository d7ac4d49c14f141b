/* Checks shared by the interaction-file harnesses: a successful read gives
 * an object whose pairs lie inside its id ranges. */
#ifndef MMREC_FUZZ_DATA_CHECK_H
#define MMREC_FUZZ_DATA_CHECK_H

#include "fuzz_common.h"

/* Checks x and returns its pair count. */
static inline size_t fuzz_check_interactions(const mmrec_interactions *x) {
    int64_t num_users = -1, num_items = -1;
    size_t count = 0;
    FUZZ_MUST(mmrec_interactions_info(x, &num_users, &num_items, &count));
    FUZZ_REQUIRE(num_users >= 0 && num_items >= 0, "ranges %lld %lld", (long long)num_users,
                 (long long)num_items);
    const int64_t *users = NULL, *items = NULL;
    FUZZ_MUST(mmrec_interactions_pairs(x, &users, &items));
    int64_t max_user = -1, max_item = -1;
    for (size_t k = 0; k < count; k++) {
        FUZZ_REQUIRE(users[k] >= 0 && users[k] < num_users && items[k] >= 0 &&
                         items[k] < num_items,
                     "pair %zu (%lld, %lld) outside [%lld, %lld)", k, (long long)users[k],
                     (long long)items[k], (long long)num_users, (long long)num_items);
        if (users[k] > max_user) max_user = users[k];
        if (items[k] > max_item) max_item = items[k];
    }
    FUZZ_REQUIRE(num_items == max_item + 1, "num_items %lld, largest item %lld",
                 (long long)num_items, (long long)max_item);
    FUZZ_REQUIRE(num_users >= max_user + 1, "num_users %lld, largest user %lld",
                 (long long)num_users, (long long)max_user);
    return count;
}

#endif
