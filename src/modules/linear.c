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
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x->ndim, shape, false, &y, NULL, NULL));
    float beta = 0.0f;
    if (lin->b) {
        for (size_t r = 0; r < c.rows; r++) memcpy(y->data + r * c.out, lin->b->data, c.out * 4);
        beta = 1.0f;
    }
    mmrec__sgemm(false, true, c.rows, c.out, c.in, 1.0f, x->data, c.in, lin->w->data, c.in, beta,
                 y->data, c.out);
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
