/* Linear layer y = x W^T + b as one fused node (sgemm forward and
 * backward). Reference: torch.nn.Linear. */
#include "modules_internal.h"
#include "../core/config_sizes.h"

#include <math.h>
#include <string.h>

mmrec_status mmrec__lin_create(mmrec_model *model, const char *func, const char *prefix,
                               const char *w_leaf, const char *b_leaf, int64_t in, int64_t out,
                               bool bias, mmrec_init init, float init_std, mmrec__lin *lin) {
    int64_t wshape[2] = {out, in}, bshape[1] = {out};
    memset(lin, 0, sizeof *lin);
    lin->in = in;
    lin->out = out;
    MMREC_FORWARD_IF(mmrec__model_add_param(model, func, prefix, w_leaf, 2, wshape, false, &lin->w));
    if (init == MMREC_INIT_XAVIER_UNIFORM)
        mmrec__init_xavier_uniform(model, lin->w, in, out);
    else if (init == MMREC_INIT_NORMAL)
        mmrec__init_normal(model, lin->w, 0.0f, init_std);
    if (bias)
        MMREC_FORWARD_IF(
            mmrec__model_add_param(model, func, prefix, b_leaf, 1, bshape, false, &lin->b));
    return MMREC_OK;
}

typedef struct mmrec__lin_ctx {
    size_t rows, in, out;
} mmrec__lin_ctx;

static mmrec_status mmrec__lin_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__lin_ctx *c = node->ctx;
    mmrec_tensor *x = node->in[0], *w = node->in[1], *b = node->n_in > 2 ? node->in[2] : NULL;
    const float *dy = node->out->grad;
    if (mmrec__requires_grad(x)) {
        float *dx = mmrec__grad(tape, x);
        if (dx == NULL) return MMREC_ENOMEM;
        mmrec__sgemm(false, false, c->rows, c->in, c->out, 1.0f, dy, c->out, w->data, c->in, 1.0f,
                     dx, c->in);
    }
    if (mmrec__requires_grad(w)) {
        float *dw = mmrec__grad(tape, w);
        if (dw == NULL) return MMREC_ENOMEM;
        mmrec__sgemm(true, false, c->out, c->in, c->rows, 1.0f, dy, c->out, x->data, c->in, 1.0f,
                     dw, c->in);
    }
    if (b && mmrec__requires_grad(b)) {
        float *db = mmrec__grad(tape, b);
        if (db == NULL) return MMREC_ENOMEM;
        for (size_t r = 0; r < c->rows; r++) {
            const float *dyr = dy + r * c->out;
            for (size_t j = 0; j < c->out; j++) db[j] += dyr[j];
        }
    }
    return MMREC_OK;
}

mmrec_status mmrec__lin_forward(const mmrec__lin *lin, mmrec_tape *tape, const char *func,
                                mmrec_tensor *x, mmrec_tensor **out) {
    if (mmrec__last_dim(x) != lin->in) {
        char sx[64];
        return mmrec__set_error(MMREC_ESHAPE, func, "x is %s, its last dim must be %lld",
                                mmrec__shape_str(x, sx, sizeof sx), (long long)lin->in);
    }
    if (lin->lora && !lin->lora->merged) return mmrec__lora_forward(lin, tape, func, x, out);
    mmrec__lin_ctx c = {mmrec__rows(x), (size_t)lin->in, (size_t)lin->out};
    int64_t shape[MMREC_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = lin->out;
    mmrec_tensor *in[3] = {x, lin->w, lin->b}, *y;
    const mmrec__op op = {func, "linear", mmrec__lin_backward, in, lin->b ? 3 : 2, 0, &c,
                          sizeof c};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x->ndim, shape, false, &y, NULL, &mark));
    if (lin->b)
        mmrec__sgemm_bias(false, true, c.rows, c.out, c.in, 1.0f, x->data, c.in, lin->w->data,
                          c.in, lin->b->data, y->data, c.out);
    else
        mmrec__sgemm(false, true, c.rows, c.out, c.in, 1.0f, x->data, c.in, lin->w->data, c.in,
                     0.0f, y->data, c.out);
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

/* ---- two linear maps in a row, through their product ---- */

typedef struct mmrec__lin2_ctx {
    size_t rows, in, mid, out;
    float *m; /* [out, in] = W2 W1, kept for the backward */
} mmrec__lin2_ctx;

/* dst[j] += sum_r dy[r, j] for r < rows, in double. */
static void mmrec__lin2_colsum(const float *dy, size_t rows, size_t out, double *dst) {
    for (size_t j = 0; j < out; j++) dst[j] = 0.0;
    for (size_t r = 0; r < rows; r++) {
        const float *row = dy + r * out;
        for (size_t j = 0; j < out; j++) dst[j] += (double)row[j];
    }
}

static mmrec_status mmrec__lin2_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__lin2_ctx *c = node->ctx;
    mmrec_tensor *x = node->in[0], *w1 = node->in[1], *b1 = node->in[2], *w2 = node->in[3],
                 *b2 = node->in[4];
    size_t rows = c->rows, in = c->in, mid = c->mid, out = c->out;
    const float *dy = node->out->grad;
    bool need_x = mmrec__requires_grad(x), need_w1 = mmrec__requires_grad(w1),
         need_w2 = mmrec__requires_grad(w2), need_b1 = b1 && mmrec__requires_grad(b1),
         need_b2 = b2 && mmrec__requires_grad(b2);
    /* Everything this walk needs, before any gradient is written. */
    float *g = need_w1 || need_w2 ? mmrec__tape_alloc(tape, out * in * sizeof(float)) : NULL;
    double *s = mmrec__tape_alloc(tape, out * sizeof(double));
    float *dx = need_x ? mmrec__grad(tape, x) : NULL;
    float *dw1 = need_w1 ? mmrec__grad(tape, w1) : NULL, *dw2 = need_w2 ? mmrec__grad(tape, w2) : NULL;
    float *db1 = need_b1 ? mmrec__grad(tape, b1) : NULL, *db2 = need_b2 ? mmrec__grad(tape, b2) : NULL;
    if (s == NULL || ((need_w1 || need_w2) && g == NULL) || (need_x && dx == NULL) ||
        (need_w1 && dw1 == NULL) || (need_w2 && dw2 == NULL) || (need_b1 && db1 == NULL) ||
        (need_b2 && db2 == NULL))
        return MMREC_ENOMEM;
    if (need_x) mmrec__sgemm(false, false, rows, in, out, 1.0f, dy, out, c->m, in, 1.0f, dx, in);
    mmrec__lin2_colsum(dy, rows, out, s);
    if (g) {
        /* G = dy^T x */
        mmrec__sgemm(true, false, out, in, rows, 1.0f, dy, out, x->data, in, 0.0f, g, in);
        if (need_w2) {
            /* dW2 += G W1^T + s b1^T */
            mmrec__sgemm(false, true, out, mid, in, 1.0f, g, in, w1->data, in, 1.0f, dw2, mid);
            if (b1)
                for (size_t j = 0; j < out; j++)
                    for (size_t k = 0; k < mid; k++)
                        dw2[j * mid + k] += (float)(s[j] * (double)b1->data[k]);
        }
        if (need_w1) /* dW1 += W2^T G */
            mmrec__sgemm(true, false, mid, in, out, 1.0f, w2->data, mid, g, in, 1.0f, dw1, in);
    }
    if (db1) /* db1 += W2^T s */
        for (size_t k = 0; k < mid; k++) {
            double acc = 0.0;
            for (size_t j = 0; j < out; j++) acc += (double)w2->data[j * mid + k] * s[j];
            db1[k] += (float)acc;
        }
    if (db2)
        for (size_t j = 0; j < out; j++) db2[j] += (float)s[j];
    return MMREC_OK;
}

mmrec_status mmrec__lin2_forward(const mmrec__lin *lin1, const mmrec__lin *lin2,
                                 mmrec_tape *tape, const char *func, mmrec_tensor *x,
                                 mmrec_tensor **out) {
    size_t rows = mmrec__last_dim(x) == lin1->in ? mmrec__rows(x) : 0;
    size_t in = (size_t)lin1->in, mid = (size_t)lin1->out, o = (size_t)lin2->out;
    /* multiply-adds of a training step: two nodes 3 rows mid (in + o),
     * fused 3 o in (mid + rows) */
    bool fused = rows > 0 && lin2->in == lin1->out && !(lin1->lora && !lin1->lora->merged) &&
                 !(lin2->lora && !lin2->lora->merged) && o * in * (mid + rows) < rows * mid * (in + o);
    if (!fused) {
        mmrec_tensor *h;
        MMREC_FORWARD_IF(mmrec__lin_forward(lin1, tape, func, x, &h));
        return mmrec__lin_forward(lin2, tape, func, h, out);
    }
    mmrec__lin2_ctx c = {rows, in, mid, o, NULL};
    int64_t shape[MMREC_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = (int64_t)o;
    mmrec_tensor *in_t[5] = {x, lin1->w, lin1->b, lin2->w, lin2->b}, *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__op op = {func, "linear2", mmrec__lin2_backward, in_t, 5, 0, &c, sizeof c};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x->ndim, shape, false, &y, &node, &mark));
    float *m = mmrec__tape_alloc(tape, o * in * sizeof(float));
    if (m == NULL) return mmrec__tape_oom(tape, mark, func);
    if (node) ((mmrec__lin2_ctx *)node->ctx)->m = m;
    /* M = W2 W1; the bias row W2 b1 + b2 in double */
    mmrec__sgemm(false, false, o, in, mid, 1.0f, lin2->w->data, mid, lin1->w->data, in, 0.0f, m,
                 in);
    float *bias = mmrec__tape_alloc(tape, o * sizeof *bias);
    if (bias == NULL) return mmrec__tape_oom(tape, mark, func);
    for (size_t j = 0; j < o; j++) {
        double acc = lin2->b ? (double)lin2->b->data[j] : 0.0;
        if (lin1->b)
            for (size_t k = 0; k < mid; k++)
                acc += (double)lin2->w->data[j * mid + k] * (double)lin1->b->data[k];
        bias[j] = (float)acc;
    }
    mmrec__sgemm_bias(false, true, rows, o, in, 1.0f, x->data, in, m, in, bias, y->data, o);
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

/* ---- the public Linear module ---- */

static void mmrec__linear_destroy(mmrec_module *module) {
    mmrec__lin_free_adapter(&((mmrec__linear *)module)->lin);
}

static const mmrec_linear_config mmrec__linear_defaults = {
    .struct_size = sizeof(mmrec_linear_config),
    .bias = 1,
    .init = MMREC_INIT_XAVIER_UNIFORM,
    .init_std = 0.02f,
};

mmrec_status mmrec_linear_config_init_sized(mmrec_linear_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_linear_config, cfg, size, mmrec__linear_defaults);
}

mmrec_status mmrec_linear_create(mmrec_model *model, const char *name,
                                 const mmrec_linear_config *cfg, mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, __func__));
    mmrec_linear_config c = mmrec__linear_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_linear_config, &c, cfg));
    MMREC_FAIL_IF(c.in_dim < 1, MMREC_EINVAL, "cfg->in_dim is %lld, must be >= 1",
                  (long long)c.in_dim);
    MMREC_FAIL_IF(c.out_dim < 1, MMREC_EINVAL, "cfg->out_dim is %lld, must be >= 1",
                  (long long)c.out_dim);
    MMREC_FORWARD_IF(mmrec__init_check(__func__, "init", c.init, c.init_std));
    mmrec__linear *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = m == NULL ? MMREC_OK
                               : mmrec__lin_create(model, __func__, name, "weight", "bias",
                                                   c.in_dim, c.out_dim, c.bias != 0, c.init,
                                                   c.init_std, &m->lin);
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "linear", name, mmrec__linear_destroy,
                             out);
}

mmrec_status mmrec_linear_forward(mmrec_module *linear, mmrec_tape *tape, mmrec_tensor *x,
                                  mmrec_tensor **out) {
    MMREC_CHECK_MODULE(linear, "linear");
    MMREC_CHECK_OP1(tape, x, out);
    return mmrec__lin_forward(&((mmrec__linear *)linear)->lin, tape, __func__, x, out);
}
