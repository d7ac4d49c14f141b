/* Shape ops: concat, slice, reshape, transpose of the last two dims.
 * Reference: torch.cat / narrow / reshape / transpose(-2, -1). */
#include "ops_internal.h"

#include <string.h>

/* A tensor seen as [outer, axis, inner] around one axis. */
typedef struct mmrec__split {
    size_t outer, len, inner;
} mmrec__split;

static mmrec__split mmrec__split_at(const mmrec_tensor *t, int axis) {
    mmrec__split s = {1, (size_t)t->shape[axis], 1};
    for (int d = 0; d < axis; d++) s.outer *= (size_t)t->shape[d];
    for (int d = axis + 1; d < t->ndim; d++) s.inner *= (size_t)t->shape[d];
    return s;
}

/* ---- concat ---- */

typedef struct mmrec__concat_ctx {
    int axis;
} mmrec__concat_ctx;

static mmrec_status mmrec__concat_backward(mmrec__node *node, mmrec_tape *tape) {
    int axis = ((const mmrec__concat_ctx *)node->ctx)->axis;
    mmrec__split so = mmrec__split_at(node->out, axis);
    size_t offset = 0; /* along the axis, in elements of one outer slice */
    for (int i = 0; i < node->n_in; i++) {
        mmrec_tensor *x = node->in[i];
        mmrec__split sx = mmrec__split_at(x, axis);
        size_t chunk = sx.len * sx.inner;
        if (mmrec__requires_grad(x)) {
            float *dx = mmrec__grad(tape, x);
            if (dx == NULL) return MMREC_ENOMEM;
            for (size_t o = 0; o < so.outer; o++) {
                const float *src = node->out->grad + o * so.len * so.inner + offset;
                for (size_t j = 0; j < chunk; j++) dx[o * chunk + j] += src[j];
            }
        }
        offset += chunk;
    }
    return MMREC_OK;
}

mmrec_status mmrec_concat(mmrec_tape *tape, mmrec_tensor *const *xs, size_t n, int axis,
                          mmrec_tensor **out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_NULL(xs);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(n < 1 || n > 4096, MMREC_EINVAL, "n is %zu, must be in [1, 4096]", n);
    for (size_t i = 0; i < n; i++) {
        MMREC_FAIL_IF(xs[i] == NULL, MMREC_EINVAL, "xs[%zu] is NULL", i);
        MMREC_FORWARD_IF(mmrec__tensor_check_on(__func__, "xs[i]", xs[i], tape));
    }
    const mmrec_tensor *x0 = xs[0];
    int ax;
    MMREC_FAIL_IF(!mmrec__axis(axis, x0->ndim, &ax), MMREC_ERANGE,
                  "axis %d is out of range for %d dims", axis, x0->ndim);
    int64_t shape[MMREC_MAX_DIMS];
    memcpy(shape, x0->shape, sizeof shape);
    for (size_t i = 1; i < n; i++) {
        bool ok = xs[i]->ndim == x0->ndim;
        for (int d = 0; ok && d < x0->ndim; d++) ok = d == ax || xs[i]->shape[d] == x0->shape[d];
        if (!ok) {
            char s0[64], si[64];
            MMREC_FAIL(MMREC_ESHAPE, "xs[%zu] is %s, xs[0] is %s: only axis %d may differ", i,
                       mmrec__shape_str(xs[i], si, sizeof si),
                       mmrec__shape_str(x0, s0, sizeof s0), ax);
        }
        shape[ax] += xs[i]->shape[ax];
    }
    mmrec_tensor *y;
    const mmrec__concat_ctx c = {ax};
    const mmrec__op op = {__func__, "concat", mmrec__concat_backward, xs, (int)n, 0, &c,
                          sizeof c};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x0->ndim, shape, false, &y, NULL, &mark));
    mmrec__split so = mmrec__split_at(y, ax);
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        mmrec__split sx = mmrec__split_at(xs[i], ax);
        size_t chunk = sx.len * sx.inner;
        for (size_t o = 0; o < so.outer; o++)
            memcpy(y->data + o * so.len * so.inner + offset, xs[i]->data + o * chunk,
                   chunk * sizeof(float));
        offset += chunk;
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

/* ---- slice ---- */

typedef struct mmrec__slice_ctx {
    int axis;
    size_t start;
} mmrec__slice_ctx;

static mmrec_status mmrec__slice_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__slice_ctx *c = node->ctx;
    mmrec_tensor *x = node->in[0];
    float *dx = mmrec__grad(tape, x);
    if (dx == NULL) return MMREC_ENOMEM;
    mmrec__split sx = mmrec__split_at(x, c->axis), sy = mmrec__split_at(node->out, c->axis);
    size_t chunk = sy.len * sy.inner;
    for (size_t o = 0; o < sx.outer; o++) {
        float *dst = dx + o * sx.len * sx.inner + c->start * sx.inner;
        const float *src = node->out->grad + o * chunk;
        for (size_t j = 0; j < chunk; j++) dst[j] += src[j];
    }
    return MMREC_OK;
}

mmrec_status mmrec_slice(mmrec_tape *tape, mmrec_tensor *x, int axis, int64_t start,
                         int64_t length, mmrec_tensor **out) {
    MMREC_CHECK_OP1(tape, x, out);
    int ax;
    MMREC_FAIL_IF(!mmrec__axis(axis, x->ndim, &ax), MMREC_ERANGE,
                  "axis %d is out of range for %d dims", axis, x->ndim);
    MMREC_FAIL_IF(start < 0 || length < 1 || start > x->shape[ax] - length, MMREC_ERANGE,
                  "start is %lld and length %lld: the range is outside axis %d of size %lld",
                  (long long)start, (long long)length, ax, (long long)x->shape[ax]);
    int64_t shape[MMREC_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[ax] = length;
    mmrec_tensor *y;
    const mmrec__slice_ctx c = {.axis = ax, .start = (size_t)start};
    const mmrec__op op = {__func__, "slice", mmrec__slice_backward, &x, 1, 0, &c, sizeof c};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x->ndim, shape, false, &y, NULL, &mark));
    mmrec__split sx = mmrec__split_at(x, ax);
    size_t chunk = (size_t)length * sx.inner;
    for (size_t o = 0; o < sx.outer; o++)
        memcpy(y->data + o * chunk, x->data + o * sx.len * sx.inner + (size_t)start * sx.inner,
               chunk * sizeof(float));
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

/* ---- reshape ---- */

static mmrec_status mmrec__reshape_backward(mmrec__node *node, mmrec_tape *tape) {
    float *dx = mmrec__grad(tape, node->in[0]);
    if (dx == NULL) return MMREC_ENOMEM;
    mmrec__add_into(dx, node->out->grad, node->out->numel);
    return MMREC_OK;
}

mmrec_status mmrec_reshape(mmrec_tape *tape, mmrec_tensor *x, int ndim, const int64_t *shape,
                           mmrec_tensor **out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(x, tape);
    MMREC_CHECK_NULL(shape);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(ndim < 1 || ndim > MMREC_MAX_DIMS, MMREC_EINVAL,
                  "ndim is %d, must be in [1, %d]", ndim, MMREC_MAX_DIMS);
    int64_t s[MMREC_MAX_DIMS];
    int infer = -1;
    size_t known = 1;
    for (int d = 0; d < ndim; d++) {
        s[d] = shape[d];
        if (shape[d] == -1) {
            MMREC_FAIL_IF(infer >= 0, MMREC_EINVAL, "shape has more than one -1");
            infer = d;
            continue;
        }
        MMREC_FAIL_IF(shape[d] < 1, MMREC_EINVAL, "shape[%d] is %lld, must be >= 1 or -1", d,
                      (long long)shape[d]);
        MMREC_FAIL_IF(!mmrec__mul_size(known, (size_t)shape[d], &known), MMREC_EINVAL,
                      "shape overflows");
    }
    if (infer >= 0) {
        MMREC_FAIL_IF(x->numel % known != 0, MMREC_ESHAPE,
                      "cannot infer shape[%d]: %zu elements are not a multiple of %zu", infer,
                      x->numel, known);
        s[infer] = (int64_t)(x->numel / known);
        known = x->numel;
    }
    if (known != x->numel) {
        char sx[64];
        MMREC_FAIL(MMREC_ESHAPE, "x is %s (%zu elements), new shape has %zu",
                   mmrec__shape_str(x, sx, sizeof sx), x->numel, known);
    }
    mmrec_tensor *y;
    if (mmrec__tape_wants_grad(tape, &x, 1)) {
        const mmrec__op op = {__func__, "reshape", mmrec__reshape_backward, &x, 1, 0, NULL, 0};
        MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, ndim, s, false, &y, NULL, NULL));
        memcpy(y->data, x->data, x->numel * sizeof(float));
    } else {
        mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
        /* Nothing to differentiate: a view of x's data. */
        y = mmrec__tape_view(tape, x->data, ndim, s);
        if (y == NULL) return mmrec__tape_oom(tape, mark, __func__);
        if (x->flags & MMREC__T_READONLY) y->flags |= MMREC__T_READONLY;
    }
    *out = y;
    return MMREC_OK;
}

/* ---- transpose ---- */

static void mmrec__transpose_add(const float *src, float *dst, size_t batch, size_t rows,
                                 size_t cols, bool accumulate) {
    for (size_t b = 0; b < batch; b++) {
        const float *s = src + b * rows * cols;
        float *d = dst + b * rows * cols;
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < cols; j++) {
                if (accumulate) d[j * rows + i] += s[i * cols + j];
                else d[j * rows + i] = s[i * cols + j];
            }
    }
}

static mmrec_status mmrec__transpose_backward(mmrec__node *node, mmrec_tape *tape) {
    mmrec_tensor *x = node->in[0], *y = node->out;
    float *dx = mmrec__grad(tape, x);
    if (dx == NULL) return MMREC_ENOMEM;
    size_t rows = (size_t)y->shape[y->ndim - 2], cols = (size_t)y->shape[y->ndim - 1];
    mmrec__transpose_add(y->grad, dx, y->numel / (rows * cols), rows, cols, true);
    return MMREC_OK;
}

mmrec_status mmrec_transpose(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor **out) {
    MMREC_CHECK_OP1(tape, x, out);
    MMREC_FAIL_IF(x->ndim < 2, MMREC_ESHAPE, "x has %d dims, needs at least 2", x->ndim);
    int64_t shape[MMREC_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 2] = x->shape[x->ndim - 1];
    shape[x->ndim - 1] = x->shape[x->ndim - 2];
    mmrec_tensor *y;
    const mmrec__op op = {__func__, "transpose", mmrec__transpose_backward, &x, 1, 0, NULL, 0};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x->ndim, shape, false, &y, NULL, &mark));
    size_t rows = (size_t)x->shape[x->ndim - 2], cols = (size_t)x->shape[x->ndim - 1];
    mmrec__transpose_add(x->data, y->data, x->numel / (rows * cols), rows, cols, false);
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
