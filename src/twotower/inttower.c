/* IntTower (Li et al., CIKM 2022; inttower.h, shared/METHODS-twotower.md
 * 4.2): the two towers and the FE-Block score.
 *   user: h_0 = [LightSE(E_u), dense_u]; u_l = Fe_l(h_{l-1}),
 *         h_l = dropout(relu(Linear_l(h_{l-1}))), l = 1 .. L
 *         -> user_fe [B, L H_u, f] (u_1 .. u_L, each H_u heads)
 *   item: h_0 = [LightSE(E_i), dense_i]; h_l as above; v = Fe(h_L)
 *         -> item_fe [N, H_i, f]
 *   score = MaxSim(user_fe, item_fe) + b
 *         = sum_l sum_h max_g <u_{l,h}, v_g> + b.
 * Built from the Linear kernel, the activation, dropout, shape and MaxSim
 * ops, the fused Light-SE node (lightse.c) and one node for the L user FE
 * projections. Reference:
 * tests/golden/make_golden.py::write_inttower (a port of the code's
 * User_Fe_DNN, Item_Fe_DNN, LightSE, fe_score and PredictionLayer). */
#include "twotower_internal.h"
#include "../modules/modules_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { MMREC__IT_MAX = MMREC_INTTOWER_MAX_LAYERS };

typedef struct mmrec__inttower {
    struct mmrec_module base;
    mmrec_inttower_config cfg;     /* hidden_sizes cleared; see hidden */
    int layers;                    /* L */
    int64_t hidden[MMREC__IT_MAX]; /* the L widths */
    mmrec_tensor *user_se_w, *user_se_b, *item_se_w, *item_se_b; /* biases may be NULL */
    mmrec__lin user_lin[MMREC__IT_MAX - 1], user_fe[MMREC__IT_MAX];
    mmrec__lin item_lin[MMREC__IT_MAX], item_fe;
    mmrec_tensor *out_bias;        /* [1] */
} mmrec__inttower;

static const int64_t mmrec__inttower_hidden_default[3] = {300, 300, 128};

static const mmrec_inttower_config mmrec__inttower_defaults = {
    .struct_size = sizeof(mmrec_inttower_config),
    .user_heads = 32,
    .item_heads = 32,
    .field_dim = 64,
    .dropout = 0.0f,
    .init_std = 1e-4f,
};

mmrec_status mmrec_inttower_config_init_sized(mmrec_inttower_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_inttower_config, cfg, size, mmrec__inttower_defaults);
}

static mmrec_status mmrec__inttower_check_config(const mmrec_inttower_config *c) {
    const char *func = "mmrec_inttower_create";
    MMREC_FAIL_IF_FOR(func, c->user_fields < 1, MMREC_EINVAL,
                      "cfg->user_fields is %d, must be >= 1", c->user_fields);
    MMREC_FAIL_IF_FOR(func, c->item_fields < 1, MMREC_EINVAL,
                      "cfg->item_fields is %d, must be >= 1", c->item_fields);
    MMREC_FAIL_IF_FOR(func, c->embedding_dim < 1, MMREC_EINVAL,
                      "cfg->embedding_dim is %lld, must be >= 1", (long long)c->embedding_dim);
    MMREC_FAIL_IF_FOR(func, c->user_dense_dim < 0, MMREC_EINVAL,
                      "cfg->user_dense_dim is %lld, must be >= 0", (long long)c->user_dense_dim);
    MMREC_FAIL_IF_FOR(func, c->item_dense_dim < 0, MMREC_EINVAL,
                      "cfg->item_dense_dim is %lld, must be >= 0", (long long)c->item_dense_dim);
    if (c->hidden_sizes == NULL) {
        MMREC_FAIL_IF_FOR(func, c->num_hidden != 0, MMREC_EINVAL,
                          "cfg->num_hidden is %d with cfg->hidden_sizes NULL, must be 0",
                          c->num_hidden);
    } else {
        MMREC_FAIL_IF_FOR(func, c->num_hidden < 1 || c->num_hidden > MMREC__IT_MAX, MMREC_EINVAL,
                          "cfg->num_hidden is %d, must be in [1, %d]", c->num_hidden,
                          MMREC__IT_MAX);
        for (int l = 0; l < c->num_hidden; l++) {
            int64_t h = c->hidden_sizes[l];
            MMREC_FAIL_IF_FOR(func, h < 1 || h >= (int64_t)1 << 31, MMREC_EINVAL,
                              "cfg->hidden_sizes[%d] is %lld, must be in [1, 2^31)", l,
                              (long long)h);
        }
    }
    MMREC_FAIL_IF_FOR(func, c->user_heads < 1, MMREC_EINVAL, "cfg->user_heads is %d, must be >= 1",
                      c->user_heads);
    MMREC_FAIL_IF_FOR(func, c->item_heads < 1, MMREC_EINVAL, "cfg->item_heads is %d, must be >= 1",
                      c->item_heads);
    MMREC_FAIL_IF_FOR(func, c->field_dim < 1, MMREC_EINVAL, "cfg->field_dim is %lld, must be >= 1",
                      (long long)c->field_dim);
    /* sizes the tensors can hold: every width below 2^31 */
    const int64_t big = (int64_t)1 << 31;
    MMREC_FAIL_IF_FOR(func,
                      c->embedding_dim >= big || c->user_dense_dim >= big ||
                          c->item_dense_dim >= big || c->field_dim >= big ||
                          (int64_t)c->user_fields * c->embedding_dim + c->user_dense_dim >= big ||
                          (int64_t)c->item_fields * c->embedding_dim + c->item_dense_dim >= big ||
                          (int64_t)c->user_heads * c->field_dim >= big ||
                          (int64_t)c->item_heads * c->field_dim >= big,
                      MMREC_EINVAL, "cfg: a tower width (fields * embedding_dim + dense, "
                                    "heads * field_dim) is 2^31 or more");
    MMREC_FAIL_IF_FOR(func, !(c->dropout >= 0.0f && c->dropout < 1.0f), MMREC_EINVAL,
                      "cfg->dropout is %g, must be in [0, 1)", (double)c->dropout);
    MMREC_FAIL_IF_FOR(func, !(c->init_std > 0.0f && isfinite(c->init_std)), MMREC_EINVAL,
                      "cfg->init_std is %g, must be > 0", (double)c->init_std);
    MMREC_FAIL_IF_FOR(func, c->lightse_bias != 0 && c->lightse_bias != 1, MMREC_EINVAL,
                      "cfg->lightse_bias is %d, must be 0 or 1", c->lightse_bias);
    return MMREC_OK;
}

/* U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's nn.Linear default. */
static void mmrec__inttower_uniform(mmrec_model *model, mmrec_tensor *t, int64_t fan_in) {
    float bound = 1.0f / sqrtf((float)fan_in);
    for (size_t i = 0; i < t->numel; i++)
        t->data[i] = bound * (2.0f * mmrec__rng_uniform(&model->rng) - 1.0f);
}

/* "<prefix>.<leaf>.{weight,bias}": a tower layer (weight N(0, std^2)) or,
 * with std 0, a layer initialized as PyTorch's default; the bias always
 * PyTorch's default. */
static mmrec_status mmrec__inttower_lin(mmrec_model *model, const char *prefix, const char *leaf,
                                        int index, int64_t in, int64_t out, float std,
                                        mmrec__lin *lin) {
    char w[64], b[64];
    snprintf(w, sizeof w, "%s.%d.weight", leaf, index);
    snprintf(b, sizeof b, "%s.%d.bias", leaf, index);
    MMREC_FORWARD_IF(mmrec__lin_create(model, "mmrec_inttower_create", prefix, w, b, in, out, true,
                                       std > 0.0f ? MMREC_INIT_NORMAL : MMREC_INIT_ZEROS, std,
                                       lin));
    if (std == 0.0f) mmrec__inttower_uniform(model, lin->w, in);
    mmrec__inttower_uniform(model, lin->b, in);
    return MMREC_OK;
}

/* "<prefix>.excitation.0.weight" [F, F] and, with bias, ".bias" [F]. */
static mmrec_status mmrec__inttower_se(mmrec_model *model, const char *prefix, int64_t F,
                                       bool bias, mmrec_tensor **w, mmrec_tensor **b) {
    int64_t ws[2] = {F, F};
    const char *func = "mmrec_inttower_create";
    MMREC_FORWARD_IF(
        mmrec__model_add_param(model, func, prefix, "excitation.0.weight", 2, ws, false, w));
    mmrec__inttower_uniform(model, *w, F);
    *b = NULL;
    if (bias) {
        MMREC_FORWARD_IF(
            mmrec__model_add_param(model, func, prefix, "excitation.0.bias", 1, &F, false, b));
        mmrec__inttower_uniform(model, *b, F);
    }
    return MMREC_OK;
}

static mmrec_status mmrec__inttower_build(mmrec__inttower *m, mmrec_model *model,
                                          const char *name) {
    const mmrec_inttower_config *c = &m->cfg;
    char user[256], item[256], pre[256];
    snprintf(user, sizeof user, "%s.user_fe_dnn", name);
    snprintf(item, sizeof item, "%s.item_fe_dnn", name);
    int L = m->layers;
    int64_t e = c->embedding_dim, fu = c->user_heads * c->field_dim,
            fi = c->item_heads * c->field_dim;
    bool bias = c->lightse_bias != 0;
    snprintf(pre, sizeof pre, "%s.User_sim_non_local", name);
    MMREC_FORWARD_IF(mmrec__inttower_se(model, pre, c->user_fields, bias, &m->user_se_w,
                                        &m->user_se_b));
    snprintf(pre, sizeof pre, "%s.Item_sim_non_local", name);
    MMREC_FORWARD_IF(mmrec__inttower_se(model, pre, c->item_fields, bias, &m->item_se_w,
                                        &m->item_se_b));
    /* user: the layers that feed a FE projection (the last one feeds none) */
    int64_t in = c->user_fields * e + c->user_dense_dim;
    for (int l = 0; l < L; l++) {
        if (l < L - 1)
            MMREC_FORWARD_IF(mmrec__inttower_lin(model, user, "linears", l, in, m->hidden[l],
                                                 c->init_std, &m->user_lin[l]));
        MMREC_FORWARD_IF(
            mmrec__inttower_lin(model, user, "Fe_linears", l, in, fu, 0.0f, &m->user_fe[l]));
        in = m->hidden[l];
    }
    in = c->item_fields * e + c->item_dense_dim;
    for (int l = 0; l < L; l++) {
        MMREC_FORWARD_IF(mmrec__inttower_lin(model, item, "linears", l, in, m->hidden[l],
                                             c->init_std, &m->item_lin[l]));
        in = m->hidden[l];
    }
    MMREC_FORWARD_IF(mmrec__inttower_lin(model, item, "Fe_linears", 0, in, fi, 0.0f, &m->item_fe));
    int64_t one = 1;
    return mmrec__model_add_param(model, "mmrec_inttower_create", name, "out.bias", 1, &one, false,
                                  &m->out_bias);
}

mmrec_status mmrec_inttower_create(mmrec_model *model, const char *name,
                                   const mmrec_inttower_config *cfg, mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, __func__));
    mmrec_inttower_config c = mmrec__inttower_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_inttower_config, &c, cfg));
    MMREC_FORWARD_IF(mmrec__inttower_check_config(&c));
    mmrec__inttower *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = MMREC_OK;
    if (m) {
        const int64_t *hidden = c.hidden_sizes ? c.hidden_sizes : mmrec__inttower_hidden_default;
        m->layers = c.hidden_sizes ? c.num_hidden : 3;
        memcpy(m->hidden, hidden, (size_t)m->layers * sizeof *hidden);
        m->cfg = c;
        m->cfg.hidden_sizes = NULL;
        m->cfg.num_hidden = m->layers;
        s = mmrec__inttower_build(m, model, name);
    }
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "inttower", name, NULL, out);
}

/* ---- the towers ---- */

/* fields [rows, F, e] and dense [rows, dense_dim] (NULL exactly when
 * dense_dim is 0), for `func`. */
static mmrec_status mmrec__inttower_check_inputs(const char *func, mmrec_tensor *fields,
                                                 mmrec_tensor *dense, int64_t F, int64_t e,
                                                 int64_t dense_dim, const char *side) {
    char sf[64], sd[64];
    if (fields->ndim != 3 || fields->shape[1] != F || fields->shape[2] != e)
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "fields is %s, expected [rows, %lld, %lld] (cfg.%s_fields, "
                                "cfg.embedding_dim)",
                                mmrec__shape_str(fields, sf, sizeof sf), (long long)F,
                                (long long)e, side);
    if (dense_dim == 0 && dense != NULL)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "dense is given but cfg.%s_dense_dim is 0: pass NULL", side);
    if (dense_dim > 0 && dense == NULL)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "argument 'dense' is NULL but cfg.%s_dense_dim is %lld", side,
                                (long long)dense_dim);
    if (dense && (dense->ndim != 2 || dense->shape[0] != fields->shape[0] ||
                  dense->shape[1] != dense_dim))
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "dense is %s, expected [%lld, %lld] (the rows of fields %s, "
                                "cfg.%s_dense_dim)",
                                mmrec__shape_str(dense, sd, sizeof sd),
                                (long long)fields->shape[0], (long long)dense_dim,
                                mmrec__shape_str(fields, sf, sizeof sf), side);
    return MMREC_OK;
}

/* h_0 = [flatten(LightSE(fields)), dense]. */
static mmrec_status mmrec__inttower_input(mmrec_tape *tape, const char *func,
                                          mmrec_tensor *fields, mmrec_tensor *dense,
                                          mmrec_tensor *se_w, mmrec_tensor *se_b,
                                          mmrec_tensor **h0) {
    mmrec_tensor *x;
    MMREC_FORWARD_IF(mmrec__lightse_forward(tape, func, fields, se_w, se_b, &x));
    if (dense) {
        mmrec_tensor *parts[2] = {x, dense};
        MMREC_FORWARD_IF(mmrec_concat(tape, parts, 2, -1, &x));
    }
    *h0 = x;
    return MMREC_OK;
}

/* h = dropout(relu(Linear(h))). */
static mmrec_status mmrec__inttower_layer(const mmrec__inttower *m, const mmrec__lin *lin,
                                          mmrec_tape *tape, const char *func, mmrec_tensor **h) {
    MMREC_FORWARD_IF(mmrec__lin_forward(lin, tape, func, *h, h));
    MMREC_FORWARD_IF(mmrec_relu(tape, *h, h));
    if (m->cfg.dropout > 0.0f) MMREC_FORWARD_IF(mmrec_dropout(tape, *h, m->cfg.dropout, h));
    return MMREC_OK;
}

/* The user FE projections u_l = h_{l-1} W_l^T + b_l of every layer as one
 * node writing [B, L H_u f] (u_1 .. u_L side by side in each row, seen as
 * [B, L H_u, f]): no concatenation, no reshape, each product one sgemm
 * into its column block. node->in: h_0 .. h_{L-1}, W_1 .. W_L, b_1 .. b_L. */
typedef struct mmrec__fe_ctx {
    size_t layers, rows, width; /* L, B, H_u f */
} mmrec__fe_ctx;

static mmrec_status mmrec__fe_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__fe_ctx *c = node->ctx;
    size_t L = c->layers, B = c->rows, n = c->width, ld = L * n;
    for (size_t l = 0; l < L; l++) {
        mmrec_tensor *h = node->in[l], *w = node->in[L + l], *b = node->in[2 * L + l];
        size_t d = (size_t)w->shape[1];
        const float *dy = node->out->grad + l * n;
        if (mmrec__requires_grad(h)) {
            float *dh = mmrec__grad(tape, h);
            if (dh == NULL) return MMREC_ENOMEM;
            mmrec__sgemm(false, false, B, d, n, 1.0f, dy, ld, w->data, d, 1.0f, dh, d);
        }
        if (mmrec__requires_grad(w)) {
            float *dw = mmrec__grad(tape, w);
            if (dw == NULL) return MMREC_ENOMEM;
            mmrec__sgemm(true, false, n, d, B, 1.0f, dy, ld, h->data, d, 1.0f, dw, d);
        }
        if (mmrec__requires_grad(b)) {
            float *db = mmrec__grad(tape, b);
            if (db == NULL) return MMREC_ENOMEM;
            mmrec__colsum_add(dy, B, n, ld, 1.0f, db);
        }
    }
    return MMREC_OK;
}

static mmrec_status mmrec__inttower_fe(const mmrec__inttower *m, mmrec_tape *tape,
                                       const char *func, mmrec_tensor *const *h,
                                       mmrec_tensor **out) {
    size_t L = (size_t)m->layers, B = mmrec__rows(h[0]);
    size_t n = (size_t)m->cfg.user_heads * (size_t)m->cfg.field_dim;
    mmrec_tensor *in[3 * MMREC__IT_MAX], *y;
    for (size_t l = 0; l < L; l++) {
        in[l] = h[l];
        in[L + l] = m->user_fe[l].w;
        in[2 * L + l] = m->user_fe[l].b;
    }
    mmrec__fe_ctx c = {L, B, n};
    int64_t shape[3] = {(int64_t)B, (int64_t)L * m->cfg.user_heads, m->cfg.field_dim};
    const mmrec__op op = {func, "inttower_fe", mmrec__fe_backward, in, (int)(3 * L), 0, &c,
                          sizeof c};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 3, shape, false, &y, NULL, &mark));
    for (size_t r = 0; r < B; r++)
        for (size_t l = 0; l < L; l++)
            memcpy(y->data + (r * L + l) * n, m->user_fe[l].b->data, n * sizeof(float));
    for (size_t l = 0; l < L; l++) {
        size_t d = (size_t)m->user_fe[l].in;
        mmrec__sgemm(false, true, B, n, d, 1.0f, h[l]->data, d, m->user_fe[l].w->data, d, 1.0f,
                     y->data + l * n, L * n);
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

static mmrec_status mmrec__inttower_user(const mmrec__inttower *m, mmrec_tape *tape,
                                         const char *func, mmrec_tensor *fields,
                                         mmrec_tensor *dense, bool want_last,
                                         mmrec_tensor **fe_out, mmrec_tensor **last_out) {
    int L = m->layers;
    mmrec_tensor *h[MMREC__IT_MAX];
    MMREC_FORWARD_IF(
        mmrec__inttower_input(tape, func, fields, dense, m->user_se_w, m->user_se_b, &h[0]));
    for (int l = 0; l + 1 < L; l++) {
        h[l + 1] = h[l];
        MMREC_FORWARD_IF(mmrec__inttower_layer(m, &m->user_lin[l], tape, func, &h[l + 1]));
    }
    MMREC_FORWARD_IF(mmrec__inttower_fe(m, tape, func, h, fe_out));
    if (!want_last) return MMREC_OK;
    /* u_L, the last H_u heads, as [B, H_u f] */
    int64_t H = m->cfg.user_heads, shape[2] = {fields->shape[0], H * m->cfg.field_dim};
    mmrec_tensor *last;
    MMREC_FORWARD_IF(mmrec_slice(tape, *fe_out, 1, (L - 1) * H, H, &last));
    return mmrec_reshape(tape, last, 2, shape, last_out);
}

mmrec_status mmrec_inttower_user_forward(mmrec_module *inttower, mmrec_tape *tape,
                                         mmrec_tensor *fields, mmrec_tensor *dense,
                                         mmrec_tensor **user_fe, mmrec_tensor **user_vec) {
    MMREC_CHECK_MODULE(inttower, "inttower");
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(fields, tape);
    if (dense) MMREC_CHECK_TENSOR_ON(dense, tape);
    MMREC_CHECK_NULL(user_fe);
    const mmrec__inttower *m = (const mmrec__inttower *)inttower;
    MMREC_FORWARD_IF(mmrec__inttower_check_inputs(__func__, fields, dense, m->cfg.user_fields,
                                                  m->cfg.embedding_dim, m->cfg.user_dense_dim,
                                                  "user"));
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_tensor *fe, *last = NULL;
    mmrec_status s =
        mmrec__inttower_user(m, tape, __func__, fields, dense, user_vec != NULL, &fe, &last);
    if (s != MMREC_OK) {
        mmrec__tape_rollback(tape, mark);
        return s;
    }
    *user_fe = fe;
    if (user_vec) *user_vec = last;
    return MMREC_OK;
}

static mmrec_status mmrec__inttower_item(const mmrec__inttower *m, mmrec_tape *tape,
                                         const char *func, mmrec_tensor *fields,
                                         mmrec_tensor *dense, mmrec_tensor **fe_out,
                                         mmrec_tensor **vec_out) {
    mmrec_tensor *h, *v;
    MMREC_FORWARD_IF(
        mmrec__inttower_input(tape, func, fields, dense, m->item_se_w, m->item_se_b, &h));
    for (int l = 0; l < m->layers; l++)
        MMREC_FORWARD_IF(mmrec__inttower_layer(m, &m->item_lin[l], tape, func, &h));
    MMREC_FORWARD_IF(mmrec__lin_forward(&m->item_fe, tape, func, h, &v));
    int64_t shape[3] = {fields->shape[0], m->cfg.item_heads, m->cfg.field_dim};
    MMREC_FORWARD_IF(mmrec_reshape(tape, v, 3, shape, fe_out));
    *vec_out = v;
    return MMREC_OK;
}

mmrec_status mmrec_inttower_item_forward(mmrec_module *inttower, mmrec_tape *tape,
                                         mmrec_tensor *fields, mmrec_tensor *dense,
                                         mmrec_tensor **item_fe, mmrec_tensor **item_vec) {
    MMREC_CHECK_MODULE(inttower, "inttower");
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(fields, tape);
    if (dense) MMREC_CHECK_TENSOR_ON(dense, tape);
    MMREC_CHECK_NULL(item_fe);
    const mmrec__inttower *m = (const mmrec__inttower *)inttower;
    MMREC_FORWARD_IF(mmrec__inttower_check_inputs(__func__, fields, dense, m->cfg.item_fields,
                                                  m->cfg.embedding_dim, m->cfg.item_dense_dim,
                                                  "item"));
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_tensor *fe, *v;
    mmrec_status s = mmrec__inttower_item(m, tape, __func__, fields, dense, &fe, &v);
    if (s != MMREC_OK) {
        mmrec__tape_rollback(tape, mark);
        return s;
    }
    *item_fe = fe;
    if (item_vec) *item_vec = v;
    return MMREC_OK;
}

/* ---- the score ---- */

static mmrec_status mmrec__inttower_score(mmrec_module *inttower, mmrec_tape *tape,
                                          const char *func, mmrec_tensor *user_fe,
                                          mmrec_tensor *item_fe, bool paired,
                                          mmrec_tensor **out) {
    const mmrec__inttower *m = (const mmrec__inttower *)inttower;
    int64_t q = (int64_t)m->layers * m->cfg.user_heads, f = m->cfg.field_dim;
    char su[64], si[64];
    if (user_fe->ndim != 3 || user_fe->shape[1] != q || user_fe->shape[2] != f)
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "user_fe is %s, expected [B, %lld, %lld] (L * cfg.user_heads, "
                                "cfg.field_dim)",
                                mmrec__shape_str(user_fe, su, sizeof su), (long long)q,
                                (long long)f);
    if (item_fe->ndim != 3 || item_fe->shape[1] != m->cfg.item_heads || item_fe->shape[2] != f)
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "item_fe is %s, expected [N, %d, %lld] (cfg.item_heads, "
                                "cfg.field_dim)",
                                mmrec__shape_str(item_fe, si, sizeof si), m->cfg.item_heads,
                                (long long)f);
    if (paired && item_fe->shape[0] != user_fe->shape[0])
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "user_fe is %s and item_fe is %s: paired scores need the same B",
                                mmrec__shape_str(user_fe, su, sizeof su),
                                mmrec__shape_str(item_fe, si, sizeof si));
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_tensor *s;
    mmrec_status st = paired ? mmrec_maxsim_paired(tape, user_fe, NULL, item_fe, NULL, &s)
                             : mmrec_maxsim(tape, user_fe, NULL, item_fe, NULL, &s);
    if (st == MMREC_OK) st = mmrec_add(tape, s, m->out_bias, &s);
    if (st != MMREC_OK) {
        mmrec__tape_rollback(tape, mark);
        return st;
    }
    *out = s;
    return MMREC_OK;
}

mmrec_status mmrec_inttower_score(mmrec_module *inttower, mmrec_tape *tape, mmrec_tensor *user_fe,
                                  mmrec_tensor *item_fe, mmrec_tensor **out) {
    MMREC_CHECK_MODULE(inttower, "inttower");
    MMREC_CHECK_OP2(tape, user_fe, item_fe, out);
    return mmrec__inttower_score(inttower, tape, __func__, user_fe, item_fe, false, out);
}

mmrec_status mmrec_inttower_score_paired(mmrec_module *inttower, mmrec_tape *tape,
                                         mmrec_tensor *user_fe, mmrec_tensor *item_fe,
                                         mmrec_tensor **out) {
    MMREC_CHECK_MODULE(inttower, "inttower");
    MMREC_CHECK_OP2(tape, user_fe, item_fe, out);
    return mmrec__inttower_score(inttower, tape, __func__, user_fe, item_fe, true, out);
}
