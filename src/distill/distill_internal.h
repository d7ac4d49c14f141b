/* Distillation internals: the first-release sizes of distill.h's config
 * structs (core/config_sizes.h explains the rows). */
#ifndef MMREC_DISTILL_INTERNAL_H
#define MMREC_DISTILL_INTERNAL_H

#include "mmrec/distill.h"
#include "../core/config_sizes.h"
#include "../ops/ops_internal.h"

#include <math.h>

MMREC__SIZED_STRUCT(mmrec_distill_logits_config, detach_target, 0.2, 24)
MMREC__SIZED_STRUCT(mmrec_distill_kl_config, row_weights, 0.2, 40)

/* Checks a temperature field on behalf of `func`: > 0 with a finite
 * inverse. `name` is the field as the caller writes it. */
static inline mmrec_status mmrec__distill_check_temperature(const char *func, const char *name,
                                                            float t) {
    if (!(t > 0.0f) || !isfinite(t) || !isfinite(1.0f / t))
        return mmrec__set_error(MMREC_EINVAL, func, "%s is %g, must be > 0 with a finite inverse",
                                name, (double)t);
    return MMREC_OK;
}

/* Checks a 0/1 flag field on behalf of `func`. */
static inline mmrec_status mmrec__distill_check_flag(const char *func, const char *name, int v) {
    if (v != 0 && v != 1)
        return mmrec__set_error(MMREC_EINVAL, func, "%s is %d, must be 0 or 1", name, v);
    return MMREC_OK;
}

#endif
