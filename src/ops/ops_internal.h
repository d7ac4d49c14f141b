/* Helpers shared by the op implementations. */
#ifndef MMREC_OPS_INTERNAL_H
#define MMREC_OPS_INTERNAL_H

#include "mmrec/ops.h"
#include "../autograd/autograd_internal.h"
#include "../tensor/blas.h"

/* Fails with MMREC_ESHAPE naming both shapes. */
#define MMREC_FAIL_SHAPE2(what, a, b)                                                \
    do {                                                                             \
        char mmrec__sa[64], mmrec__sb[64];                                           \
        MMREC_FAIL(MMREC_ESHAPE, "%s: %s is %s, %s is %s", what, #a,                 \
                   mmrec__shape_str((a), mmrec__sa, sizeof mmrec__sa), #b,           \
                   mmrec__shape_str((b), mmrec__sb, sizeof mmrec__sb));              \
    } while (0)

/* Normalizes a possibly negative axis; false when out of range. */
static inline bool mmrec__axis(int axis, int ndim, int *out) {
    if (axis < 0) axis += ndim;
    if (axis < 0 || axis >= ndim) return false;
    *out = axis;
    return true;
}

#endif
