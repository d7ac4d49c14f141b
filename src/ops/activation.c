/* Element-wise activations: ReLU, GELU (erf and tanh forms), sigmoid, tanh.
 * Reference: torch.nn.functional.relu / gelu / sigmoid / tanh. */
#include "ops_internal.h"
#include "fastmath.h"

#include <math.h>

#define MMREC__SQRT_2_OVER_PI 0.79788456080286535588f
#define MMREC__GELU_C 0.044715f

MMREC__SIMD_CLONES
void mmrec__act_forward(mmrec__act act, const float *x, float *y, size_t n) {
    switch (act) {
    case MMREC__ACT_RELU: /* NaN stays NaN (x < 0 is false), as in PyTorch */
        for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
        break;
    case MMREC__ACT_GELU_ERF:
        for (size_t i = 0; i < n; i++) y[i] = x[i] * mmrec__normal_cdf(x[i]);
        break;
    case MMREC__ACT_GELU_TANH: /* 0.5 x (1 + tanh u) = x sigmoid(2u) */
        for (size_t i = 0; i < n; i++) {
            float v = x[i], u = MMREC__SQRT_2_OVER_PI * (v + MMREC__GELU_C * v * v * v);
            y[i] = v / (1.0f + mmrec__exp(-2.0f * u));
        }
        break;
    case MMREC__ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + mmrec__exp(-x[i]));
        break;
    case MMREC__ACT_TANH:
        for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
        break;
    }
}

MMREC__SIMD_CLONES
void mmrec__act_backward(mmrec__act act, const float *x, const float *y, const float *dy,
                         float *dx, size_t n) {
    switch (act) {
    case MMREC__ACT_RELU: /* PyTorch's mask, output <= 0: a NaN input passes dy */
        for (size_t i = 0; i < n; i++) dx[i] += x[i] <= 0.0f ? 0.0f : dy[i];
        break;
    case MMREC__ACT_GELU_ERF: /* Phi(x) + x phi(x) */
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            float pdf = mmrec__normal_pdf(v);
            dx[i] += dy[i] * (mmrec__normal_cdf(v) + v * pdf);
        }
        break;
    case MMREC__ACT_GELU_TANH: /* s + 2 x s (1 - s) u', s = sigmoid(2u) */
        for (size_t i = 0; i < n; i++) {
            float v = x[i], v2 = v * v;
            float s = 1.0f / (1.0f + mmrec__exp(-2.0f * MMREC__SQRT_2_OVER_PI *
                                                 (v + MMREC__GELU_C * v2 * v)));
            float du = MMREC__SQRT_2_OVER_PI * (1.0f + 3.0f * MMREC__GELU_C * v2);
            dx[i] += dy[i] * (s + 2.0f * v * s * (1.0f - s) * du);
        }
        break;
    case MMREC__ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
        break;
    case MMREC__ACT_TANH:
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
        break;
    }
}

/* The erf GELU of a recorded node: y = x Phi(x), keeping Phi(x) in cdf for
 * the backward, which then needs only the density (one exp instead of the
 * CDF's polynomial, division and exp). The same Phi values as recomputing
 * them: the same bits. */
MMREC__SIMD_CLONES
static void mmrec__gelu_forward_keep(const float *restrict x, float *restrict y,
                                     float *restrict cdf, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float c = mmrec__normal_cdf(x[i]);
        cdf[i] = c;
        y[i] = x[i] * c;
    }
}

MMREC__SIMD_CLONES
static void mmrec__gelu_backward_kept(const float *restrict x, const float *restrict cdf,
                                      const float *restrict dy, float *restrict dx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float pdf = mmrec__normal_pdf(v);
        dx[i] += dy[i] * (cdf[i] + v * pdf);
    }
}

/* Element-wise work is split over the pool in chunks of at least this many
 * elements. */
#define MMREC__ACT_GRAIN 16384

/* A node's workspace: the activation, and for the erf GELU the CDF its
 * forward kept (NULL otherwise). */
typedef struct mmrec__act_ctx {
    mmrec__act act;
    float *cdf;
} mmrec__act_ctx;

typedef struct mmrec__act_job {
    mmrec__act act;
    const float *x, *y, *dy;
    float *out; /* y for forward, dx for backward */
    float *cdf; /* the kept CDF (erf GELU of a recorded node), or NULL */
} mmrec__act_job;

static void mmrec__act_forward_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__act_job *j = ctx;
    (void)part;
    if (j->cdf)
        mmrec__gelu_forward_keep(j->x + lo, j->out + lo, j->cdf + lo, hi - lo);
    else
        mmrec__act_forward(j->act, j->x + lo, j->out + lo, hi - lo);
}

static void mmrec__act_backward_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__act_job *j = ctx;
    (void)part;
    if (j->cdf)
        mmrec__gelu_backward_kept(j->x + lo, j->cdf + lo, j->dy + lo, j->out + lo, hi - lo);
    else
        mmrec__act_backward(j->act, j->x + lo, j->y + lo, j->dy + lo, j->out + lo, hi - lo);
}

static mmrec_status mmrec__act_node_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__act_ctx *c = node->ctx;
    mmrec_tensor *x = node->in[0];
    float *dx = mmrec__grad(tape, x);
    if (dx == NULL) return MMREC_ENOMEM;
    mmrec__act_job job = {c->act, x->data, node->out->data, node->out->grad, dx, c->cdf};
    mmrec__parallel_for(x->numel, mmrec__parallel_parts(x->numel, MMREC__ACT_GRAIN),
                        mmrec__act_backward_chunk, &job);
    return MMREC_OK;
}

static mmrec_status mmrec__act_op(const char *func, const char *name, mmrec__act act,
                                  mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor **out) {
    MMREC_FORWARD_IF(mmrec__tape_check(func, tape));
    MMREC_FORWARD_IF(mmrec__tensor_check_on(func, "x", x, tape));
    if (out == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'out' is NULL");
    mmrec_tensor *y;
    mmrec__act_ctx ctx = {act, NULL};
    const mmrec__op op = {func, name, mmrec__act_node_backward, &x, 1, 0, &ctx, sizeof ctx};
    mmrec__tape_mark mark;
    mmrec__node *node;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x->ndim, x->shape, false, &y, &node, &mark));
    if (node && act == MMREC__ACT_GELU_ERF && x->numel > 0) {
        float *cdf = mmrec__tape_alloc(tape, x->numel * sizeof *cdf);
        if (cdf == NULL) return mmrec__tape_oom(tape, mark, func);
        ((mmrec__act_ctx *)node->ctx)->cdf = cdf;
    }
    mmrec__act_job job = {act, x->data, NULL, NULL, y->data,
                          node ? ((mmrec__act_ctx *)node->ctx)->cdf : NULL};
    mmrec__parallel_for(x->numel, mmrec__parallel_parts(x->numel, MMREC__ACT_GRAIN),
                        mmrec__act_forward_chunk, &job);
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

mmrec_status mmrec_relu(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor **out) {
    return mmrec__act_op(__func__, "relu", MMREC__ACT_RELU, tape, x, out);
}

mmrec_status mmrec_gelu(mmrec_tape *tape, mmrec_tensor *x, mmrec_gelu_form form,
                        mmrec_tensor **out) {
    MMREC_FAIL_IF(form != MMREC_GELU_ERF && form != MMREC_GELU_TANH, MMREC_EINVAL,
                  "form is %d, expected MMREC_GELU_ERF or MMREC_GELU_TANH", (int)form);
    return mmrec__act_op(__func__, "gelu",
                         form == MMREC_GELU_ERF ? MMREC__ACT_GELU_ERF : MMREC__ACT_GELU_TANH, tape,
                         x, out);
}

mmrec_status mmrec_sigmoid(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor **out) {
    return mmrec__act_op(__func__, "sigmoid", MMREC__ACT_SIGMOID, tape, x, out);
}

mmrec_status mmrec_tanh(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor **out) {
    return mmrec__act_op(__func__, "tanh", MMREC__ACT_TANH, tape, x, out);
}
