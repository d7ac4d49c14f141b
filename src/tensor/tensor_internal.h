/* Internal tensor layout, shared by every area. */
#ifndef MMREC_TENSOR_INTERNAL_H
#define MMREC_TENSOR_INTERNAL_H

#include "mmrec/tape.h"
#include "mmrec/tensor.h"
#include "../core/core_internal.h"

#define MMREC__TENSOR_MAGIC 0x6d6d5454u /* "mmTT" */

/* Internal flags (the low bits mirror the public MMREC_TENSOR_* flags). */
enum {
    MMREC__T_READONLY = MMREC_TENSOR_READONLY,
    MMREC__T_REQUIRES_GRAD = MMREC_TENSOR_REQUIRES_GRAD,
    MMREC__T_OWNS_DATA = 1u << 8, /* data freed with the header (caller-created) */
    MMREC__T_WRAP = 1u << 9,      /* data is caller memory */
    MMREC__T_ON_TAPE = 1u << 10,  /* header and data live in a tape arena */
    MMREC__T_PARAM = 1u << 11     /* owned by a model */
};

struct mmrec__param; /* model/model_internal.h */
struct mmrec__node;  /* autograd/autograd_internal.h */

struct mmrec_tensor {
    uint32_t magic;
    uint32_t flags;
    int ndim;
    int64_t shape[MMREC_MAX_DIMS];
    size_t numel;
    float *data;
    float *grad;                 /* NULL until backward reaches it */
    mmrec_tape *tape;            /* owning tape, or NULL */
    uint64_t gen;                /* tape generation at creation */
    struct mmrec__param *param;  /* set for parameters */
    mmrec_release_fn release;
    void *user;
};

static inline bool mmrec__requires_grad(const mmrec_tensor *t) {
    return (t->flags & MMREC__T_REQUIRES_GRAD) != 0;
}

/* Validates a shape (1..MAX_DIMS dims, sizes >= 1, no overflow) and returns
 * its element count. Reports errors on behalf of `func`, naming `what`: the
 * argument holding the sizes ("shape", with "ndim" its rank), or a shape
 * the function derives ("out shape"). */
mmrec_status mmrec__shape_check(const char *func, const char *what, int ndim,
                                const int64_t *shape, size_t *numel_out) MMREC__WUR;

/* Validates a tensor argument at the public boundary: not NULL, a real
 * tensor, not stale. `what` names the argument in the message, as the
 * public header names the parameter. */
mmrec_status mmrec__tensor_check(const char *func, const char *what, const mmrec_tensor *t)
    MMREC__WUR;

/* Same, and the tensor must belong to `tape` or to no tape at all. */
mmrec_status mmrec__tensor_check_on(const char *func, const char *what, const mmrec_tensor *t,
                                    const mmrec_tape *tape) MMREC__WUR;

/* "[2,3,4]" into buf. */
const char *mmrec__shape_str(const mmrec_tensor *t, char *buf, size_t size);

/* The macros name the argument by its C name: a public function's
 * parameters are named as in its header's declaration (make
 * check-api-params compares them). */
#define MMREC_CHECK_TENSOR(t) MMREC_FORWARD_IF(mmrec__tensor_check(__func__, #t, (t)))
#define MMREC_CHECK_TENSOR_ON(t, tape) \
    MMREC_FORWARD_IF(mmrec__tensor_check_on(__func__, #t, (t), (tape)))

/* The NaN and Inf check of a tensor argument (core.h's policy): MMREC_ENUMERIC
 * naming the argument by its C name and the first bad flat index. */
#define MMREC_CHECK_FINITE(t) \
    MMREC_FORWARD_IF(mmrec__check_finite(__func__, #t, (t)->data, (t)->numel))

/* Last-dimension size and the product of the others ("rows"). */
static inline int64_t mmrec__last_dim(const mmrec_tensor *t) { return t->shape[t->ndim - 1]; }
static inline size_t mmrec__rows(const mmrec_tensor *t) {
    return t->numel / (size_t)t->shape[t->ndim - 1];
}

#endif
