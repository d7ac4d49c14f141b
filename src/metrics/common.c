/* Helpers shared by the evaluations (metrics_internal.h): the users' item
 * lists and the finiteness check of embeddings. */
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
