/* Element-wise arithmetic with numpy broadcasting: add, sub, mul; scale and
 * bias-add. Backward sums the gradient over broadcast dims.
 * Reference: torch.add / torch.sub / torch.mul (tests/golden/make_golden.py). */
#include "ops_internal.h"

#include <math.h>

typedef enum { MMREC__ADD, MMREC__SUB, MMREC__MUL } mmrec__arith;

typedef struct mmrec__arith_ctx {
    mmrec__bcast bc;
    mmrec__arith op;
} mmrec__arith_ctx;

static void mmrec__strides(const mmrec_tensor *t, int pad, int64_t *stride, const int64_t *n) {
    int64_t s = 1;
    for (int d = MMREC_MAX_DIMS - 1; d >= 0; d--) {
        int td = d - pad;
        int64_t size = td >= 0 ? t->shape[td] : 1;
        stride[d] = (size == 1 && n[d] != 1) ? 0 : s;
        s *= size;
    }
}

bool mmrec__bcast_init(mmrec__bcast *bc, const mmrec_tensor *a, const mmrec_tensor *b) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    bc->ndim = nd;
    for (int d = 0; d < MMREC_MAX_DIMS; d++) {
        int k = d - (MMREC_MAX_DIMS - nd); /* output dim index, < 0 = padding */
        int ka = k - (nd - a->ndim), kb = k - (nd - b->ndim);
        int64_t sa = (k >= 0 && ka >= 0) ? a->shape[ka] : 1;
        int64_t sb = (k >= 0 && kb >= 0) ? b->shape[kb] : 1;
        if (sa != sb && sa != 1 && sb != 1) return false;
        bc->n[d] = sa > sb ? sa : sb;
        if (k >= 0) bc->shape[k] = bc->n[d];
    }
    mmrec__strides(a, MMREC_MAX_DIMS - a->ndim, bc->sa, bc->n);
    mmrec__strides(b, MMREC_MAX_DIMS - b->ndim, bc->sb, bc->n);
    return true;
}

/* Operands of one shape (no broadcasting, the residual adds of a
 * Transformer) are split over the pool in chunks of at least this many
 * elements: element-wise, the same bits for any split. */
#define MMREC__ARITH_GRAIN 32768

/* One same-shape pass: the forward (y = a op b) or one operand's gradient
 * (g += dy, or g += dy * other for a product; g -= dy for sub's b). */
typedef struct mmrec__arith_job {
    mmrec__arith op;
    bool forward, negate;
    const float *a, *b, *dy; /* forward: a, b; backward: dy and the other operand as b */
    float *out;
} mmrec__arith_job;

static void mmrec__arith_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__arith_job *j = ctx;
    (void)part;
    const float *restrict a = j->a, *restrict b = j->b, *restrict dy = j->dy;
    float *restrict y = j->out;
    if (j->forward) {
        switch (j->op) {
        case MMREC__ADD: for (size_t i = lo; i < hi; i++) y[i] = a[i] + b[i]; break;
        case MMREC__SUB: for (size_t i = lo; i < hi; i++) y[i] = a[i] - b[i]; break;
        case MMREC__MUL: for (size_t i = lo; i < hi; i++) y[i] = a[i] * b[i]; break;
        }
    } else if (j->op == MMREC__MUL) {
        for (size_t i = lo; i < hi; i++) y[i] += dy[i] * b[i];
    } else if (j->negate) {
        for (size_t i = lo; i < hi; i++) y[i] -= dy[i];
    } else {
        for (size_t i = lo; i < hi; i++) y[i] += dy[i];
    }
}

/* A broadcast pass over runs of the output (MMREC__BCAST_RANGE): the
 * forward (which = -1, y = a op b) or operand `which`'s gradient (g += dy,
 * dy * other for a product, -dy for sub's b). */
typedef struct mmrec__bcast_job {
    const mmrec__bcast *bc;
    mmrec__arith op;
    int which;
    const float *a, *b, *dy;
    float *out;
} mmrec__bcast_job;

static void mmrec__bcast_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__bcast_job *jb = ctx;
    const mmrec__bcast *bc = jb->bc;
    const float *ad = jb->a, *bd = jb->b, *dy = jb->dy;
    float *y = jb->out;
    (void)part;
    if (jb->which < 0) {
        switch (jb->op) {
        case MMREC__ADD:
            MMREC__BCAST_RANGE(bc, lo, hi, for (size_t j = 0; j < n3; j++) y[oy + j] =
                                   ad[oa + j * s3a] + bd[ob + j * s3b]);
            break;
        case MMREC__SUB:
            MMREC__BCAST_RANGE(bc, lo, hi, for (size_t j = 0; j < n3; j++) y[oy + j] =
                                   ad[oa + j * s3a] - bd[ob + j * s3b]);
            break;
        case MMREC__MUL:
            MMREC__BCAST_RANGE(bc, lo, hi, for (size_t j = 0; j < n3; j++) y[oy + j] =
                                   ad[oa + j * s3a] * bd[ob + j * s3b]);
            break;
        }
    } else if (jb->which == 0) {
        if (jb->op == MMREC__MUL)
            MMREC__BCAST_RANGE(bc, lo, hi, for (size_t j = 0; j < n3; j++) y[oa + j * s3a] +=
                                   dy[oy + j] * bd[ob + j * s3b]);
        else
            MMREC__BCAST_RANGE(bc, lo, hi,
                               for (size_t j = 0; j < n3; j++) y[oa + j * s3a] += dy[oy + j]);
    } else {
        if (jb->op == MMREC__MUL)
            MMREC__BCAST_RANGE(bc, lo, hi, for (size_t j = 0; j < n3; j++) y[ob + j * s3b] +=
                                   dy[oy + j] * ad[oa + j * s3a]);
        else if (jb->op == MMREC__SUB)
            MMREC__BCAST_RANGE(bc, lo, hi,
                               for (size_t j = 0; j < n3; j++) y[ob + j * s3b] -= dy[oy + j]);
        else
            MMREC__BCAST_RANGE(bc, lo, hi,
                               for (size_t j = 0; j < n3; j++) y[ob + j * s3b] += dy[oy + j]);
    }
}

/* Runs a broadcast pass, over the pool when `split` (each output element
 * written by one run: the forward, or the gradient of an operand as large
 * as the output) and the output is large; in order on this thread
 * otherwise (a gradient summed over broadcast dims keeps its order). */
static void mmrec__bcast_run(const mmrec__bcast_job *j, bool split) {
    const mmrec__bcast *bc = j->bc;
    size_t runs = (size_t)(bc->n[0] * bc->n[1] * bc->n[2]), n3 = (size_t)bc->n[3];
    int parts = split && runs * n3 >= 2 * MMREC__ARITH_GRAIN
                    ? mmrec__parallel_parts(runs, mmrec__grain(n3, MMREC__ARITH_GRAIN))
                    : 1;
    if (parts > 1)
        mmrec__parallel_for(runs, parts, mmrec__bcast_chunk, (void *)j);
    else
        mmrec__bcast_chunk((void *)j, 0, runs, 0);
}

static bool mmrec__same_shape(const mmrec_tensor *a, const mmrec_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

static void mmrec__arith_run(const mmrec__arith_job *j, size_t n) {
    mmrec__parallel_for(n, mmrec__parallel_parts(n, MMREC__ARITH_GRAIN), mmrec__arith_chunk,
                        (void *)j);
}

void mmrec__add_into(float *dst, const float *src, size_t n) {
    mmrec__arith_job j = {MMREC__ADD, false, false, NULL, NULL, src, dst};
    mmrec__arith_run(&j, n);
}

static mmrec_status mmrec__arith_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__arith_ctx *c = node->ctx;
    const mmrec__bcast *bc = &c->bc;
    mmrec_tensor *a = node->in[0], *b = node->in[1];
    const float *dy = node->out->grad;
    if (mmrec__same_shape(a, b) && a->numel >= 2 * MMREC__ARITH_GRAIN) {
        for (int k = 0; k < 2; k++) {
            mmrec_tensor *t = node->in[k], *other = node->in[1 - k];
            if (!mmrec__requires_grad(t)) continue;
            float *g = mmrec__grad(tape, t);
            if (g == NULL) return MMREC_ENOMEM;
            mmrec__arith_job j = {c->op, false, k == 1 && c->op == MMREC__SUB, NULL,
                                  other->data, dy, g};
            mmrec__arith_run(&j, t->numel);
        }
        return MMREC_OK;
    }
    for (int k = 0; k < 2; k++) {
        mmrec_tensor *t = node->in[k];
        if (!mmrec__requires_grad(t)) continue;
        float *g = mmrec__grad(tape, t);
        if (g == NULL) return MMREC_ENOMEM;
        mmrec__bcast_job j = {bc, c->op, k, a->data, b->data, dy, g};
        mmrec__bcast_run(&j, t->numel == node->out->numel);
    }
    return MMREC_OK;
}

static mmrec_status mmrec__arith_op(const char *func, mmrec__arith op, mmrec_tape *tape,
                                 mmrec_tensor *a, mmrec_tensor *b, mmrec_tensor **out) {
    MMREC_FORWARD_IF(mmrec__tape_check(func, tape));
    MMREC_FORWARD_IF(mmrec__tensor_check_on(func, "a", a, tape));
    MMREC_FORWARD_IF(mmrec__tensor_check_on(func, "b", b, tape));
    if (out == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'out' is NULL");
    mmrec__arith_ctx c = {.op = op};
    if (!mmrec__bcast_init(&c.bc, a, b)) {
        char sa[64], sb[64];
        return mmrec__set_error(MMREC_ESHAPE, func, "shapes do not broadcast: a is %s, b is %s",
                                mmrec__shape_str(a, sa, sizeof sa),
                                mmrec__shape_str(b, sb, sizeof sb));
    }
    static const char *const names[] = {"add", "sub", "mul"};
    mmrec_tensor *in[2] = {a, b}, *y;
    const mmrec__op spec = {func, names[op], mmrec__arith_backward, in, 2, 0, &c, sizeof c};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &spec, c.bc.ndim, c.bc.shape, false, &y, NULL, &mark));
    if (mmrec__same_shape(a, b) && a->numel >= 2 * MMREC__ARITH_GRAIN) {
        mmrec__arith_job j = {op, true, false, a->data, b->data, NULL, y->data};
        mmrec__arith_run(&j, a->numel);
    } else {
        mmrec__bcast_job j = {&c.bc, op, -1, a->data, b->data, NULL, y->data};
        mmrec__bcast_run(&j, true);
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &spec, y, mark));
    *out = y;
    return MMREC_OK;
}

mmrec_status mmrec_add(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b, mmrec_tensor **out) {
    return mmrec__arith_op(__func__, MMREC__ADD, tape, a, b, out);
}

mmrec_status mmrec_sub(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b, mmrec_tensor **out) {
    return mmrec__arith_op(__func__, MMREC__SUB, tape, a, b, out);
}

mmrec_status mmrec_mul(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b, mmrec_tensor **out) {
    return mmrec__arith_op(__func__, MMREC__MUL, tape, a, b, out);
}

mmrec_status mmrec_bias_add(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor *bias,
                            mmrec_tensor **out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(x, tape);
    MMREC_CHECK_TENSOR_ON(bias, tape);
    if (bias->ndim != 1 || bias->shape[0] != mmrec__last_dim(x))
        MMREC_FAIL_SHAPE2("bias must be 1-D of x's last dim", x, bias);
    return mmrec__arith_op(__func__, MMREC__ADD, tape, x, bias, out);
}

typedef struct mmrec__scale_ctx {
    float alpha;
} mmrec__scale_ctx;

static mmrec_status mmrec__scale_backward(mmrec__node *node, mmrec_tape *tape) {
    float alpha = ((const mmrec__scale_ctx *)node->ctx)->alpha;
    float *dx = mmrec__grad(tape, node->in[0]);
    if (dx == NULL) return MMREC_ENOMEM;
    const float *dy = node->out->grad;
    for (size_t i = 0; i < node->out->numel; i++) dx[i] += alpha * dy[i];
    return MMREC_OK;
}

mmrec_status mmrec_scale(mmrec_tape *tape, mmrec_tensor *x, float alpha, mmrec_tensor **out) {
    MMREC_CHECK_OP1(tape, x, out);
    MMREC_FAIL_IF(!isfinite(alpha), MMREC_EINVAL, "alpha is %g, must be finite", (double)alpha);
    mmrec_tensor *y;
    const mmrec__scale_ctx c = {alpha};
    const mmrec__op op = {__func__, "scale", mmrec__scale_backward, &x, 1, 0, &c, sizeof c};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x->ndim, x->shape, false, &y, NULL, &mark));
    for (size_t i = 0; i < x->numel; i++) y->data[i] = alpha * x->data[i];
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
