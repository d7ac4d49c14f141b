/* Sum and mean over one axis or over everything, accumulated in double.
 * Reference: torch.sum / torch.mean with dim (keepdim=False). */
#include "ops_internal.h"

#include <string.h>

/* Columns summed together when the reduced axis is not the last. */
#define MMREC__REDUCE_BLOCK 64

typedef struct mmrec__reduce_ctx {
    size_t outer, len, inner;
    float scale; /* 1 for sum, 1/len for mean */
} mmrec__reduce_ctx;

/* The backward writes each of x's outer * len rows of `inner` elements
 * once: rows are split over the pool in parts of at least this many
 * elements. */
#define MMREC__REDUCE_GRAIN 32768

typedef struct mmrec__reduce_job {
    const mmrec__reduce_ctx *c;
    const float *dy;
    float *dx;
} mmrec__reduce_job;

static void mmrec__reduce_backward_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__reduce_job *j = ctx;
    const mmrec__reduce_ctx *c = j->c;
    (void)part;
    size_t o = lo / c->len, l = lo % c->len;
    for (size_t r = lo; r < hi; r++) {
        float *d = j->dx + r * c->inner;
        const float *g = j->dy + o * c->inner;
        for (size_t i = 0; i < c->inner; i++) d[i] += c->scale * g[i];
        if (++l == c->len) l = 0, o++;
    }
}

static mmrec_status mmrec__reduce_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__reduce_ctx *c = node->ctx;
    float *dx = mmrec__grad(tape, node->in[0]);
    if (dx == NULL) return MMREC_ENOMEM;
    mmrec__reduce_job j = {c, node->out->grad, dx};
    size_t rows = c->outer * c->len;
    int parts = mmrec__parallel_parts(rows, mmrec__grain(c->inner, MMREC__REDUCE_GRAIN));
    mmrec__parallel_for(rows, parts, mmrec__reduce_backward_chunk, &j);
    return MMREC_OK;
}

static mmrec_status mmrec__reduce(const char *func, bool mean, mmrec_tape *tape, mmrec_tensor *x,
                                  int axis, mmrec_tensor **out) {
    MMREC_FORWARD_IF(mmrec__tape_check(func, tape));
    MMREC_FORWARD_IF(mmrec__tensor_check_on(func, "x", x, tape));
    if (out == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'out' is NULL");
    mmrec__reduce_ctx c;
    int ndim = 1;
    int64_t shape[MMREC_MAX_DIMS] = {1};
    if (axis == MMREC_AXIS_ALL) {
        c.outer = 1;
        c.len = x->numel;
        c.inner = 1;
    } else {
        int ax;
        if (!mmrec__axis(axis, x->ndim, &ax))
            return mmrec__set_error(MMREC_ERANGE, func, "axis %d is out of range for %d dims",
                                    axis, x->ndim);
        c.outer = 1;
        c.inner = 1;
        c.len = (size_t)x->shape[ax];
        for (int d = 0; d < ax; d++) c.outer *= (size_t)x->shape[d];
        for (int d = ax + 1; d < x->ndim; d++) c.inner *= (size_t)x->shape[d];
        if (x->ndim > 1) {
            ndim = 0;
            for (int d = 0; d < x->ndim; d++)
                if (d != ax) shape[ndim++] = x->shape[d];
        }
    }
    c.scale = mean ? 1.0f / (float)c.len : 1.0f;
    mmrec_tensor *y;
    const mmrec__op op = {func, mean ? "mean" : "sum", mmrec__reduce_backward, &x, 1, 0,
                          &c, sizeof c};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, ndim, shape, true, &y, NULL, &mark));
    double div = mean ? (double)c.len : 1.0;
    for (size_t o = 0; o < c.outer; o++) {
        float *yo = y->data + o * c.inner;
        const float *xo = x->data + o * c.len * c.inner;
        if (c.inner == 1) {
            yo[0] = (float)(mmrec__sum_wide(xo, c.len) / div);
            continue;
        }
        /* strided: a block of columns at a time, each summed in double */
        for (size_t i0 = 0; i0 < c.inner; i0 += MMREC__REDUCE_BLOCK) {
            size_t m = c.inner - i0 < MMREC__REDUCE_BLOCK ? c.inner - i0 : MMREC__REDUCE_BLOCK;
            double acc[MMREC__REDUCE_BLOCK] = {0};
            for (size_t l = 0; l < c.len; l++) {
                const float *xs = xo + l * c.inner + i0;
                for (size_t i = 0; i < m; i++) acc[i] += (double)xs[i];
            }
            for (size_t i = 0; i < m; i++) yo[i0 + i] = (float)(acc[i] / div);
        }
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

mmrec_status mmrec_sum(mmrec_tape *tape, mmrec_tensor *x, int axis, mmrec_tensor **out) {
    return mmrec__reduce(__func__, false, tape, x, axis, out);
}

mmrec_status mmrec_mean(mmrec_tape *tape, mmrec_tensor *x, int axis, mmrec_tensor **out) {
    return mmrec__reduce(__func__, true, tape, x, axis, out);
}
