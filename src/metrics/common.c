/* Helpers shared by the evaluations (metrics_internal.h): the users' item
 * lists, the finiteness check of embeddings, and the argument checks of the
 * user-by-item evaluations. */
#include "metrics_internal.h"
#include "../data/data_internal.h"

#include <math.h>
#include <stdio.h>

mmrec_status mmrec__metrics_lists_build(const mmrec_interactions *x, const char *name, size_t U,
                                        size_t I, mmrec__lists *l, const char *func) {
    l->ptr = NULL;
    l->items = NULL;
    if (x->magic != MMREC__INTERACTIONS_MAGIC)
        return mmrec__set_error(MMREC_EINVAL, func, "argument '%s' is not an interactions object",
                                name);
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%s ", name);
    size_t distinct;
    return mmrec__group_by_user(x->users, x->items, x->count, U, I, 0, 0, prefix, &l->ptr,
                                &l->items, &distinct, func);
}

void mmrec__metrics_lists_free(mmrec__lists *l) {
    mmrec__free(l->ptr);
    mmrec__free(l->items);
    l->ptr = NULL;
    l->items = NULL;
}

mmrec_status mmrec__metrics_check_finite(const float *x, size_t n, const char *name,
                                         const char *func) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return mmrec__set_error(MMREC_ENUMERIC, func, "%s[%zu] is %g (must be finite)", name,
                                    i, (double)x[i]);
    return MMREC_OK;
}

mmrec_status mmrec__metrics_check_sizes(int64_t num_users, int64_t num_items, int64_t dim,
                                        const char *func) {
    if (num_users < 1 || num_items < 1 || num_items >= INT32_MAX || dim < 1 || dim > (1 << 20))
        return mmrec__set_error(MMREC_EINVAL, func,
                                "num_users %lld, num_items %lld, dim %lld: each must be >= 1 "
                                "(num_items below 2^31 - 1, dim at most 2^20)",
                                (long long)num_users, (long long)num_items, (long long)dim);
    return MMREC_OK;
}

mmrec_status mmrec__metrics_eval_inputs(const float *user_emb, const float *item_emb, size_t U,
                                        size_t I, size_t dim, const mmrec_interactions *train,
                                        const mmrec_interactions *test, mmrec__lists *tr,
                                        mmrec__lists *te, const char *func) {
    *tr = (mmrec__lists){NULL, NULL};
    *te = (mmrec__lists){NULL, NULL};
    MMREC_FORWARD_IF(mmrec__metrics_check_finite(user_emb, U * dim, "user_emb", func));
    MMREC_FORWARD_IF(mmrec__metrics_check_finite(item_emb, I * dim, "item_emb", func));
    if (train) MMREC_FORWARD_IF(mmrec__metrics_lists_build(train, "train", U, I, tr, func));
    mmrec_status s = mmrec__metrics_lists_build(test, "test", U, I, te, func);
    if (s != MMREC_OK) mmrec__metrics_lists_free(tr);
    return s;
}
