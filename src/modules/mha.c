/* Multi-head self-attention: packed in-projection, attention core,
 * out-projection. Reference: torch.nn.MultiheadAttention(batch_first=True). */
#include "modules_internal.h"
#include "../core/config_sizes.h"

#include <math.h>
#include <stdio.h>

static const mmrec_mha_config mmrec__mha_defaults = {
    .struct_size = sizeof(mmrec_mha_config),
    .bias = 1,
};

mmrec_status mmrec_mha_config_init_sized(mmrec_mha_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_mha_config, cfg, size, mmrec__mha_defaults);
}

mmrec_status mmrec__mha_check(const char *func, int64_t dim, int heads, float dropout) {
    /* the upper bound keeps 3 * dim (in_proj) and 4 * dim (the Transformer's
     * default ffn_dim) inside int64; no such layer fits in memory anyway */
    if (dim < 1 || dim > INT32_MAX)
        return mmrec__set_error(MMREC_EINVAL, func, "cfg->dim is %lld, must be in [1, 2^31 - 1]",
                                (long long)dim);
    if (heads < 1 || dim % heads != 0)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "cfg->num_heads is %d, must be >= 1 and divide dim %lld", heads,
                                (long long)dim);
    if (!(dropout >= 0.0f && dropout < 1.0f))
        return mmrec__set_error(MMREC_EINVAL, func, "cfg->dropout is %g, must be in [0, 1)",
                                (double)dropout);
    return MMREC_OK;
}

mmrec_status mmrec__mha_init(mmrec__mha *m, mmrec_model *model, const char *func,
                             const char *prefix, int64_t dim, int heads, bool bias, bool causal,
                             float dropout) {
    m->heads = heads;
    m->causal = causal;
    m->dropout = dropout;
    char out_prefix[256];
    snprintf(out_prefix, sizeof out_prefix, "%s.out_proj", prefix);
    MMREC_FORWARD_IF(mmrec__lin_create(model, func, prefix, "in_proj_weight", "in_proj_bias", dim,
                                       3 * dim, bias, MMREC_INIT_XAVIER_UNIFORM, 0.0f, &m->in_proj));
    return mmrec__lin_create(model, func, out_prefix, "weight", "bias", dim, dim, bias,
                             MMREC_INIT_XAVIER_UNIFORM, 0.0f, &m->out_proj);
}

mmrec_status mmrec__mha_forward(const mmrec__mha *m, mmrec_tape *tape, const char *func,
                                mmrec_tensor *x, mmrec_tensor *key_mask, int64_t query_rows,
                                uint32_t flags, mmrec_tensor **out, mmrec_tensor **probs) {
    int64_t dim = m->in_proj.in;
    if (x->ndim != 3 || x->shape[2] != dim) {
        char sx[64];
        return mmrec__set_error(MMREC_ESHAPE, func, "x is %s, expected [batch, seq, %lld]",
                                mmrec__shape_str(x, sx, sizeof sx), (long long)dim);
    }
    if (key_mask && (key_mask->ndim != 2 || key_mask->shape[0] != x->shape[0] ||
                     key_mask->shape[1] != x->shape[1])) {
        char sx[64], sm[64];
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "key_mask must be [batch, seq]: x is %s, key_mask is %s",
                                mmrec__shape_str(x, sx, sizeof sx),
                                mmrec__shape_str(key_mask, sm, sizeof sm));
    }
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_tensor *qkv, *ctx;
    mmrec_status s = mmrec__lin_forward(&m->in_proj, tape, func, x, &qkv);
    mmrec_tensor *p = NULL;
    if (s == MMREC_OK && probs == NULL)
        s = mmrec__attention(tape, func, qkv, key_mask, m->heads, m->causal, m->dropout,
                             query_rows, &ctx);
    else if (s == MMREC_OK)
        s = mmrec__attention_probs(tape, func, qkv, key_mask, m->heads, m->causal, m->dropout,
                                   query_rows, &ctx, &p);
    if (s == MMREC_OK && probs && (flags & MMREC_ATTN_PROBS_AVERAGE))
        s = mmrec_mean(tape, p, 1, &p);
    if (s == MMREC_OK) s = mmrec__lin_forward(&m->out_proj, tape, func, ctx, out);
    if (s != MMREC_OK) {
        mmrec__tape_rollback(tape, mark);
        return s;
    }
    if (probs) *probs = p;
    return MMREC_OK;
}

mmrec_status mmrec__attn_flags_check(const char *func, uint32_t flags) {
    if (flags & ~(uint32_t)MMREC_ATTN_PROBS_AVERAGE)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "flags is 0x%x, expected 0 or MMREC_ATTN_PROBS_AVERAGE",
                                (unsigned)flags);
    return MMREC_OK;
}

typedef struct mmrec__mha_module {
    struct mmrec_module base;
    mmrec__mha mha;
} mmrec__mha_module;

mmrec_status mmrec_mha_create(mmrec_model *model, const char *name, const mmrec_mha_config *cfg,
                              mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, __func__));
    mmrec_mha_config c = mmrec__mha_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_mha_config, &c, cfg));
    MMREC_FORWARD_IF(mmrec__mha_check(__func__, c.dim, c.num_heads, c.dropout));
    mmrec__mha_module *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = m == NULL ? MMREC_OK
                               : mmrec__mha_init(&m->mha, model, __func__, name, c.dim,
                                                 c.num_heads, c.bias != 0, c.causal != 0,
                                                 c.dropout);
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "mha", name, NULL, out);
}

mmrec_status mmrec_mha_forward(mmrec_module *mha, mmrec_tape *tape, mmrec_tensor *x,
                               mmrec_tensor *key_mask, mmrec_tensor **out) {
    MMREC_CHECK_MODULE(mha, "mha");
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(x, tape);
    if (key_mask) MMREC_CHECK_TENSOR_ON(key_mask, tape);
    MMREC_CHECK_NULL(out);
    return mmrec__mha_forward(&((mmrec__mha_module *)mha)->mha, tape, __func__, x, key_mask, 0,
                              0, out, NULL);
}

mmrec_status mmrec_mha_forward_probs(mmrec_module *mha, mmrec_tape *tape, mmrec_tensor *x,
                                     mmrec_tensor *key_mask, uint32_t flags, mmrec_tensor **out,
                                     mmrec_tensor **probs) {
    MMREC_CHECK_MODULE(mha, "mha");
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(x, tape);
    if (key_mask) MMREC_CHECK_TENSOR_ON(key_mask, tape);
    MMREC_FORWARD_IF(mmrec__attn_flags_check(__func__, flags));
    MMREC_CHECK_NULL(probs);
    mmrec_tensor *y;
    MMREC_FORWARD_IF(mmrec__mha_forward(&((mmrec__mha_module *)mha)->mha, tape, __func__, x,
                                        key_mask, 0, flags, &y, probs));
    if (out) *out = y;
    return MMREC_OK;
}
