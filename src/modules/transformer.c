/* Transformer encoder layer (self-attention + feed-forward, pre-LN or
 * post-LN). Reference: torch.nn.TransformerEncoderLayer(batch_first=True):
 *   pre-LN:  x = x + drop(sa(ln1(x)));  x = x + drop(ff(ln2(x)))
 *   post-LN: x = ln1(x + drop(sa(x)));  x = ln2(x + drop(ff(x)))
 * with ff(x) = linear2(drop(act(linear1(x)))). The SASRec block (IISAN's
 * TransformerBlock, METHODS.md) is the post-LN form with no_attn_bias and
 * no_act_dropout: attention projections without biases, ff(x) =
 * linear2(act(linear1(x))). */
#include "modules_internal.h"
#include "../core/config_sizes.h"

#include <math.h>
#include <stdio.h>

typedef struct mmrec__transformer {
    struct mmrec_module base;
    mmrec__mha attn;
    mmrec__lin linear1, linear2;
    mmrec_tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    mmrec_transformer_config cfg;
} mmrec__transformer;

static const mmrec_transformer_config mmrec__transformer_defaults = {
    .struct_size = sizeof(mmrec_transformer_config),
    .dropout = 0.1f,
    .activation = MMREC_ACT_GELU,
    .eps = 1e-5f,
};

mmrec_status mmrec_transformer_config_init_sized(mmrec_transformer_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_transformer_config, cfg, size, mmrec__transformer_defaults);
}

static mmrec_status mmrec__transformer_params(mmrec__transformer *m, mmrec_model *model,
                                              const char *func, const char *name) {
    const mmrec_transformer_config *c = &m->cfg;
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s.self_attn", name);
    MMREC_FORWARD_IF(mmrec__mha_init(&m->attn, model, func, prefix, c->dim, c->num_heads,
                                     c->no_attn_bias == 0, c->causal != 0, c->dropout));
    snprintf(prefix, sizeof prefix, "%s.linear1", name);
    MMREC_FORWARD_IF(mmrec__lin_create(model, func, prefix, "weight", "bias", c->dim, c->ffn_dim,
                                       true, MMREC_INIT_XAVIER_UNIFORM, 0.0f, &m->linear1));
    snprintf(prefix, sizeof prefix, "%s.linear2", name);
    MMREC_FORWARD_IF(mmrec__lin_create(model, func, prefix, "weight", "bias", c->ffn_dim, c->dim,
                                       true, MMREC_INIT_XAVIER_UNIFORM, 0.0f, &m->linear2));
    snprintf(prefix, sizeof prefix, "%s.norm1", name);
    MMREC_FORWARD_IF(mmrec__ln_params(model, func, prefix, c->dim, &m->ln1_w, &m->ln1_b));
    snprintf(prefix, sizeof prefix, "%s.norm2", name);
    return mmrec__ln_params(model, func, prefix, c->dim, &m->ln2_w, &m->ln2_b);
}

/* Every weight N(0, 2 / (fan_in + fan_out)) (torch's xavier_normal_), the
 * in-projection as three [dim, dim] maps; biases stay zero. */
static void mmrec__transformer_xavier_normal(mmrec__transformer *m, mmrec_model *model) {
    const mmrec__lin *lins[4] = {&m->attn.in_proj, &m->attn.out_proj, &m->linear1, &m->linear2};
    for (int i = 0; i < 4; i++) {
        const mmrec__lin *l = lins[i];
        int64_t fan_out = l == &m->attn.in_proj ? l->in : l->out;
        mmrec__init_normal(model, l->w, 0.0f, sqrtf(2.0f / (float)(l->in + fan_out)));
    }
}

mmrec_status mmrec__transformer_create(const char *func, mmrec_model *model, const char *name,
                                       const mmrec_transformer_config *cfg, bool xavier_normal,
                                       mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, func));
    mmrec_transformer_config c = mmrec__transformer_defaults;
    MMREC_FORWARD_IF(mmrec__config_merge(&c, sizeof c, MMREC__MIN_SIZE(mmrec_transformer_config),
                                         cfg, func));
    MMREC_FORWARD_IF(mmrec__mha_check(func, c.dim, c.num_heads, c.dropout));
    if (c.ffn_dim == 0) c.ffn_dim = 4 * c.dim;
    MMREC_FAIL_IF_FOR(func, c.ffn_dim < 1, MMREC_EINVAL, "cfg->ffn_dim is %lld, must be >= 1",
                      (long long)c.ffn_dim);
    MMREC_FAIL_IF_FOR(func, !mmrec__activation_ok(c.activation) || c.activation == MMREC_ACT_NONE,
                      MMREC_EINVAL,
                      "cfg->activation is %d, not an mmrec_activation other than NONE",
                      (int)c.activation);
    MMREC_FAIL_IF_FOR(func, !(c.eps > 0.0f && isfinite(c.eps)), MMREC_EINVAL,
                      "cfg->eps is %g, must be > 0", (double)c.eps);
    mmrec__transformer *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = MMREC_OK;
    if (m) {
        m->cfg = c;
        s = mmrec__transformer_params(m, model, func, name);
        if (s == MMREC_OK && xavier_normal) mmrec__transformer_xavier_normal(m, model);
    }
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "transformer", name, NULL, out);
}

mmrec_status mmrec_transformer_create(mmrec_model *model, const char *name,
                                      const mmrec_transformer_config *cfg, mmrec_module **out) {
    return mmrec__transformer_create(__func__, model, name, cfg, false, out);
}

/* ff(x) = linear2(drop(act(linear1(x)))) (no inner drop with
 * no_act_dropout), then dropout. */
static mmrec_status mmrec__ffn(const mmrec__transformer *m, mmrec_tape *tape, mmrec_tensor *x,
                               mmrec_tensor **out) {
    const char *func = "mmrec_transformer_forward";
    float p = m->cfg.dropout;
    mmrec_tensor *h;
    MMREC_FORWARD_IF(mmrec__lin_forward(&m->linear1, tape, func, x, &h));
    MMREC_FORWARD_IF(mmrec__activate(tape, m->cfg.activation, h, &h));
    if (!m->cfg.no_act_dropout) MMREC_FORWARD_IF(mmrec_dropout(tape, h, p, &h));
    MMREC_FORWARD_IF(mmrec__lin_forward(&m->linear2, tape, func, h, &h));
    return mmrec_dropout(tape, h, p, out);
}

/* The residual stream of the kept rows: x itself, or its first keep_rows
 * positions. */
static mmrec_status mmrec__kept_rows(mmrec_tape *tape, mmrec_tensor *x, int64_t keep_rows,
                                     mmrec_tensor **out) {
    if (keep_rows <= 0 || keep_rows >= x->shape[1]) {
        *out = x;
        return MMREC_OK;
    }
    return mmrec_slice(tape, x, 1, 0, keep_rows, out);
}

static mmrec_status mmrec__transformer_run(const mmrec__transformer *m, mmrec_tape *tape,
                                           const char *func, mmrec_tensor *x,
                                           mmrec_tensor *key_mask, int64_t keep_rows,
                                           uint32_t flags, mmrec_tensor **out,
                                           mmrec_tensor **probs) {
    float p = m->cfg.dropout, eps = m->cfg.eps;
    mmrec_tensor *h, *a, *f, *xr;
    MMREC_FORWARD_IF(mmrec__kept_rows(tape, x, keep_rows, &xr));
    if (m->cfg.norm_first) {
        MMREC_FORWARD_IF(mmrec_layer_norm(tape, x, m->ln1_w, m->ln1_b, eps, &h));
        MMREC_FORWARD_IF(mmrec__mha_forward(&m->attn, tape, func, h, key_mask, keep_rows, flags,
                                            &a, probs));
        MMREC_FORWARD_IF(mmrec_dropout(tape, a, p, &a));
        MMREC_FORWARD_IF(mmrec_add(tape, xr, a, &x));
        MMREC_FORWARD_IF(mmrec_layer_norm(tape, x, m->ln2_w, m->ln2_b, eps, &h));
        MMREC_FORWARD_IF(mmrec__ffn(m, tape, h, &f));
        return mmrec_add(tape, x, f, out);
    }
    MMREC_FORWARD_IF(mmrec__mha_forward(&m->attn, tape, func, x, key_mask, keep_rows, flags, &a,
                                        probs));
    MMREC_FORWARD_IF(mmrec_dropout(tape, a, p, &a));
    MMREC_FORWARD_IF(mmrec_add(tape, xr, a, &h));
    MMREC_FORWARD_IF(mmrec_layer_norm(tape, h, m->ln1_w, m->ln1_b, eps, &x));
    MMREC_FORWARD_IF(mmrec__ffn(m, tape, x, &f));
    MMREC_FORWARD_IF(mmrec_add(tape, x, f, &h));
    return mmrec_layer_norm(tape, h, m->ln2_w, m->ln2_b, eps, out);
}

mmrec_status mmrec__transformer_forward_rows(mmrec_module *layer, mmrec_tape *tape,
                                             mmrec_tensor *x, mmrec_tensor *key_mask,
                                             int64_t keep_rows, mmrec_tensor **out) {
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__transformer_run((const mmrec__transformer *)layer, tape,
                                            "mmrec_transformer_forward", x, key_mask, keep_rows,
                                            0, out, NULL);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}

mmrec_status mmrec_transformer_forward(mmrec_module *layer, mmrec_tape *tape, mmrec_tensor *x,
                                       mmrec_tensor *key_mask, mmrec_tensor **out) {
    MMREC_CHECK_MODULE(layer, "transformer");
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(x, tape);
    if (key_mask) MMREC_CHECK_TENSOR_ON(key_mask, tape);
    MMREC_CHECK_NULL(out);
    return mmrec__transformer_forward_rows(layer, tape, x, key_mask, 0, out);
}

mmrec_status mmrec_transformer_forward_rows(mmrec_module *layer, mmrec_tape *tape,
                                            mmrec_tensor *x, mmrec_tensor *key_mask,
                                            int64_t num_rows, mmrec_tensor **out) {
    MMREC_CHECK_MODULE(layer, "transformer");
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(x, tape);
    if (key_mask) MMREC_CHECK_TENSOR_ON(key_mask, tape);
    MMREC_CHECK_NULL(out);
    int64_t seq = x->ndim == 3 ? x->shape[1] : 0;
    MMREC_FAIL_IF(x->ndim == 3 && (num_rows < 1 || num_rows > seq), MMREC_EINVAL,
                  "num_rows is %lld, must be in 1 .. %lld (x's seq)", (long long)num_rows,
                  (long long)seq);
    return mmrec__transformer_forward_rows(layer, tape, x, key_mask, num_rows, out);
}

mmrec_status mmrec_transformer_forward_probs(mmrec_module *layer, mmrec_tape *tape,
                                             mmrec_tensor *x, mmrec_tensor *key_mask,
                                             uint32_t flags, mmrec_tensor **out,
                                             mmrec_tensor **probs) {
    MMREC_CHECK_MODULE(layer, "transformer");
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(x, tape);
    if (key_mask) MMREC_CHECK_TENSOR_ON(key_mask, tape);
    MMREC_FORWARD_IF(mmrec__attn_flags_check(__func__, flags));
    MMREC_CHECK_NULL(probs);
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_tensor *y, *p;
    mmrec_status s = mmrec__transformer_run((const mmrec__transformer *)layer, tape, __func__, x,
                                            key_mask, 0, flags, &y, &p);
    if (s != MMREC_OK) {
        mmrec__tape_rollback(tape, mark);
        return s;
    }
    if (out) *out = y;
    *probs = p;
    return MMREC_OK;
}
