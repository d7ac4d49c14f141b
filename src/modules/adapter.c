/* Bottleneck adapter y = x + act(x W_down^T + b_down) W_up^T + b_up as one
 * fused node: two BLAS products forward, four backward. The residual
 * adapter of Houlsby et al. (2019) as IISAN's side adapter network uses it
 * (AdapterBlock of github.com/GAIR-Lab/IISAN, Code_Cached/model/modules.py:
 * fc_down, activate, fc_up, + input; weights N(0, 0.01^2), biases zero; its
 * dropout is created but never applied). Reference:
 * tests/golden/make_golden.py::write_iisan (cases "adapter_*"). */
#include "modules_internal.h"
#include "../core/config_sizes.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- the kernel ---- */

static void mmrec__adapter_act(mmrec_activation act, const float *x, float *y, size_t n) {
    switch (act) {
    case MMREC_ACT_NONE: memcpy(y, x, n * sizeof(float)); return;
    case MMREC_ACT_RELU: mmrec__act_forward(MMREC__ACT_RELU, x, y, n); return;
    case MMREC_ACT_GELU: mmrec__act_forward(MMREC__ACT_GELU_ERF, x, y, n); return;
    case MMREC_ACT_GELU_TANH: mmrec__act_forward(MMREC__ACT_GELU_TANH, x, y, n); return;
    case MMREC_ACT_SIGMOID: mmrec__act_forward(MMREC__ACT_SIGMOID, x, y, n); return;
    case MMREC_ACT_TANH: mmrec__act_forward(MMREC__ACT_TANH, x, y, n); return;
    }
}

/* dx = dy * act'(x), y = act(x). */
static void mmrec__adapter_act_backward(mmrec_activation act, const float *x, const float *y,
                                        const float *dy, float *dx, size_t n) {
    if (act == MMREC_ACT_NONE) {
        memcpy(dx, dy, n * sizeof(float));
        return;
    }
    memset(dx, 0, n * sizeof(float));
    mmrec__act k = act == MMREC_ACT_RELU        ? MMREC__ACT_RELU
                   : act == MMREC_ACT_GELU      ? MMREC__ACT_GELU_ERF
                   : act == MMREC_ACT_GELU_TANH ? MMREC__ACT_GELU_TANH
                   : act == MMREC_ACT_SIGMOID   ? MMREC__ACT_SIGMOID
                                                : MMREC__ACT_TANH;
    mmrec__act_backward(k, x, y, dy, dx, n);
}

/* Columns are summed in blocks of this many, each block's running sums in
 * double on the stack. */
#define MMREC__COLSUM_BLOCK 256

typedef struct mmrec__colsum_job {
    const float *x;
    size_t rows, cols, ld;
    double scale;
    float *out;
} mmrec__colsum_job;

static void mmrec__colsum_chunk(void *ctx, size_t lo, size_t hi, int part) {
    (void)part;
    const mmrec__colsum_job *j = ctx;
    double acc[MMREC__COLSUM_BLOCK];
    for (size_t c0 = lo * MMREC__COLSUM_BLOCK; c0 < hi * MMREC__COLSUM_BLOCK && c0 < j->cols;
         c0 += MMREC__COLSUM_BLOCK) {
        size_t n = j->cols - c0 < MMREC__COLSUM_BLOCK ? j->cols - c0 : MMREC__COLSUM_BLOCK;
        memset(acc, 0, n * sizeof *acc);
        for (size_t i = 0; i < j->rows; i++) {
            const float *row = j->x + i * j->ld + c0;
            for (size_t c = 0; c < n; c++) acc[c] += (double)row[c];
        }
        for (size_t c = 0; c < n; c++) j->out[c0 + c] += (float)(j->scale * acc[c]);
    }
}

void mmrec__colsum_add(const float *x, size_t rows, size_t cols, size_t ld, float scale,
                       float *out) {
    mmrec__colsum_job j = {x, rows, cols, ld, scale, out};
    size_t blocks = (cols + MMREC__COLSUM_BLOCK - 1) / MMREC__COLSUM_BLOCK;
    size_t grain = mmrec__grain(rows * MMREC__COLSUM_BLOCK, (size_t)1 << 16);
    mmrec__parallel_for(blocks, mmrec__parallel_parts(blocks, grain), mmrec__colsum_chunk, &j);
}

/* Rows of y = x + b (y may be x), split over the pool. */
typedef struct mmrec__addrow_job {
    const float *x, *b;
    float *y;
    size_t n;
} mmrec__addrow_job;

static void mmrec__addrow_chunk(void *ctx, size_t lo, size_t hi, int part) {
    (void)part;
    const mmrec__addrow_job *j = ctx;
    for (size_t i = lo; i < hi; i++) {
        const float *xr = j->x + i * j->n;
        float *yr = j->y + i * j->n;
        for (size_t c = 0; c < j->n; c++) yr[c] = xr[c] + j->b[c];
    }
}

void mmrec__adapter_rows(const mmrec__adapter *a, size_t rows, const float *x, float *pre,
                         float *hid, float *y) {
    size_t dim = (size_t)a->down.in, r = (size_t)a->down.out;
    for (size_t i = 0; i < rows; i++) memcpy(pre + i * r, a->down.b->data, r * sizeof(float));
    mmrec__sgemm(false, true, rows, r, dim, 1.0f, x, dim, a->down.w->data, dim, 1.0f, pre, r);
    mmrec__adapter_act(a->act, pre, hid, rows * r);
    mmrec__addrow_job j = {x, a->up.b->data, y, dim};
    mmrec__parallel_for(rows, mmrec__parallel_parts(rows, mmrec__grain(dim, 16384)),
                        mmrec__addrow_chunk, &j);
    mmrec__sgemm(false, true, rows, dim, r, 1.0f, hid, r, a->up.w->data, r, 1.0f, y, dim);
}

void mmrec__adapter_rows_backward(const mmrec__adapter *a, mmrec_tape *tape, size_t rows,
                                  const float *x, const float *pre, const float *hid,
                                  const float *dy, float scale, float *dx, float *scratch) {
    size_t dim = (size_t)a->down.in, r = (size_t)a->down.out;
    float *dhid = scratch, *dpre = scratch + rows * r;
    if (mmrec__requires_grad(a->up.w))
        mmrec__sgemm(true, false, dim, r, rows, scale, dy, dim, hid, r, 1.0f,
                     mmrec__grad(tape, a->up.w), r);
    if (mmrec__requires_grad(a->up.b))
        mmrec__colsum_add(dy, rows, dim, dim, scale, mmrec__grad(tape, a->up.b));
    bool down_w = mmrec__requires_grad(a->down.w), down_b = mmrec__requires_grad(a->down.b);
    if (!down_w && !down_b && dx == NULL) return;
    /* dhid = scale dy W_up; dpre = act'(pre) dhid */
    mmrec__sgemm(false, false, rows, r, dim, scale, dy, dim, a->up.w->data, r, 0.0f, dhid, r);
    mmrec__adapter_act_backward(a->act, pre, hid, dhid, dpre, rows * r);
    if (down_w)
        mmrec__sgemm(true, false, r, dim, rows, 1.0f, dpre, r, x, dim, 1.0f,
                     mmrec__grad(tape, a->down.w), dim);
    if (down_b) mmrec__colsum_add(dpre, rows, r, r, 1.0f, mmrec__grad(tape, a->down.b));
    if (dx)
        mmrec__sgemm(false, false, rows, dim, r, 1.0f, dpre, r, a->down.w->data, dim, scale, dx,
                     dim);
}

mmrec_status mmrec__adapter_create(mmrec_model *model, const char *func, const char *prefix,
                                   int64_t dim, int64_t bottleneck, mmrec_activation act,
                                   float init_std, mmrec__adapter *a) {
    char sub[256];
    memset(a, 0, sizeof *a);
    a->act = act;
    snprintf(sub, sizeof sub, "%s.fc_down", prefix);
    MMREC_FORWARD_IF(mmrec__lin_create(model, func, sub, "weight", "bias", dim, bottleneck, true,
                                       MMREC_INIT_NORMAL, init_std, &a->down));
    snprintf(sub, sizeof sub, "%s.fc_up", prefix);
    return mmrec__lin_create(model, func, sub, "weight", "bias", bottleneck, dim, true,
                             MMREC_INIT_NORMAL, init_std, &a->up);
}

/* ---- the public module ---- */

typedef struct mmrec__adapter_module {
    struct mmrec_module base;
    mmrec__adapter a;
} mmrec__adapter_module;

static const mmrec_adapter_config mmrec__adapter_defaults = {
    .struct_size = sizeof(mmrec_adapter_config),
    .bottleneck_dim = 64,
    .activation = MMREC_ACT_RELU,
    .init_std = 0.01f,
};

mmrec_status mmrec_adapter_config_init_sized(mmrec_adapter_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_adapter_config, cfg, size, mmrec__adapter_defaults);
}

mmrec_status mmrec_adapter_create(mmrec_model *model, const char *name,
                                  const mmrec_adapter_config *cfg, mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, __func__));
    mmrec_adapter_config c = mmrec__adapter_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_adapter_config, &c, cfg));
    MMREC_FAIL_IF(c.dim < 1, MMREC_EINVAL, "cfg->dim is %lld, must be >= 1", (long long)c.dim);
    MMREC_FAIL_IF(c.bottleneck_dim < 1, MMREC_EINVAL, "cfg->bottleneck_dim is %lld, must be >= 1",
                  (long long)c.bottleneck_dim);
    MMREC_FAIL_IF(!mmrec__activation_ok(c.activation), MMREC_EINVAL,
                  "cfg->activation is %d, not an mmrec_activation", (int)c.activation);
    MMREC_FAIL_IF(!(c.init_std > 0.0f && isfinite(c.init_std)), MMREC_EINVAL,
                  "cfg->init_std is %g, must be > 0 and finite", (double)c.init_std);
    mmrec__adapter_module *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = m == NULL ? MMREC_OK
                               : mmrec__adapter_create(model, __func__, name, c.dim,
                                                       c.bottleneck_dim, c.activation,
                                                       c.init_std, &m->a);
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "adapter", name, NULL, out);
}

typedef struct mmrec__adapter_ctx {
    mmrec__adapter a;   /* the module's, copied: the tensors are the node's inputs */
    size_t rows;
    float *pre, *hid;   /* [rows, bottleneck] */
} mmrec__adapter_ctx;

static mmrec_status mmrec__adapter_node_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__adapter_ctx *c = node->ctx;
    mmrec_tensor *x = node->in[0];
    size_t r = (size_t)c->a.down.out;
    float *scratch = mmrec__tape_alloc(tape, 2 * c->rows * r * sizeof(float));
    float *dx = mmrec__requires_grad(x) ? mmrec__grad(tape, x) : NULL;
    if (scratch == NULL || (mmrec__requires_grad(x) && dx == NULL)) return MMREC_ENOMEM;
    const float *dy = node->out->grad;
    if (dx) mmrec__add_into(dx, dy, x->numel); /* the skip connection */
    mmrec__adapter_rows_backward(&c->a, tape, c->rows, x->data, c->pre, c->hid, dy, 1.0f, dx,
                                 scratch);
    return MMREC_OK;
}

mmrec_status mmrec_adapter_forward(mmrec_module *adapter, mmrec_tape *tape, mmrec_tensor *x,
                                   mmrec_tensor **out) {
    MMREC_CHECK_MODULE(adapter, "adapter");
    MMREC_CHECK_OP1(tape, x, out);
    const mmrec__adapter *a = &((const mmrec__adapter_module *)adapter)->a;
    if (mmrec__last_dim(x) != a->down.in) {
        char sx[64];
        MMREC_FAIL(MMREC_ESHAPE, "x is %s, its last dim must be %lld (cfg->dim)",
                   mmrec__shape_str(x, sx, sizeof sx), (long long)a->down.in);
    }
    size_t rows = mmrec__rows(x), r = (size_t)a->down.out;
    mmrec__adapter_ctx c = {*a, rows, NULL, NULL};
    mmrec_tensor *in[5] = {x, a->down.w, a->down.b, a->up.w, a->up.b}, *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__op op = {__func__, "adapter", mmrec__adapter_node_backward, in, 5, 0, &c,
                          sizeof c};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x->ndim, x->shape, false, &y, &node, &mark));
    /* pre and hid: kept by a recorded node, scratch otherwise */
    float *pre = mmrec__tape_alloc(tape, 2 * rows * r * sizeof(float));
    if (pre == NULL) return mmrec__tape_oom(tape, mark, __func__);
    float *hid = pre + rows * r;
    if (node) {
        mmrec__adapter_ctx *nc = node->ctx;
        nc->pre = pre;
        nc->hid = hid;
    }
    mmrec__adapter_rows(a, rows, x->data, pre, hid, y->data);
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
