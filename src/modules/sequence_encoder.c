/* Sequence encoder, SASRec style, as IISAN's User_Encoder:
 *   x = drop(LN(items + pos[0 .. T))), then num_layers post-LN layers
 *   h = LN(x + drop(MHA(x))), x = LN(h + drop(W2 act(W1 h) + b2)),
 * attention causal and over the real keys only, without biases; the user
 * vector is x at each row's last real position. The layers are Transformer
 * layer modules (transformer.c, no_attn_bias and no_act_dropout).
 * Reference: TransformerEncoder (Code_Cached/model/modules.py) and
 * User_Encoder (Code_Cached/model/encoders.py) of github.com/GAIR-Lab/IISAN;
 * shared/METHODS.md (IISAN); tests/golden/make_golden.py::
 * write_sequence_encoder. The reference adds -1e9 to the scores of masked
 * keys; here they are left out of the softmax, which gives the same values
 * at every position that has a real key at or before it. */
#include "modules_internal.h"
#include "../core/config_sizes.h"

#include <math.h>
#include <stdio.h>

enum { MMREC__SEQENC_MAX_LAYERS = 32 };

typedef struct mmrec__seqenc {
    struct mmrec_module base;
    mmrec_tensor *pos;          /* [max_length, dim] */
    mmrec_tensor *ln_w, *ln_b;  /* [dim] */
    mmrec_module *blocks[MMREC__SEQENC_MAX_LAYERS];
    mmrec_sequence_encoder_config cfg;
} mmrec__seqenc;

static const mmrec_sequence_encoder_config mmrec__seqenc_defaults = {
    .struct_size = sizeof(mmrec_sequence_encoder_config),
    .num_layers = 2,
    .num_heads = 2,
    .dropout = 0.1f,
    .eps = 1e-6f,
    .activation = MMREC_ACT_RELU,
};

mmrec_status mmrec_sequence_encoder_config_init_sized(mmrec_sequence_encoder_config *cfg,
                                                      size_t size) {
    return MMREC__CONFIG_INIT(mmrec_sequence_encoder_config, cfg, size, mmrec__seqenc_defaults);
}

static mmrec_status mmrec__seqenc_check_config(const mmrec_sequence_encoder_config *c) {
    const char *func = "mmrec_sequence_encoder_create";
    MMREC_FORWARD_IF(mmrec__mha_check(func, c->dim, c->num_heads, c->dropout));
    MMREC_FAIL_IF_FOR(func, c->max_length < 1 || c->max_length > INT32_MAX, MMREC_EINVAL,
                      "cfg->max_length is %lld, must be in [1, 2^31 - 1]",
                      (long long)c->max_length);
    MMREC_FAIL_IF_FOR(func, c->num_layers < 1 || c->num_layers > MMREC__SEQENC_MAX_LAYERS,
                      MMREC_EINVAL, "cfg->num_layers is %d, must be in [1, %d]", c->num_layers,
                      MMREC__SEQENC_MAX_LAYERS);
    MMREC_FAIL_IF_FOR(func, c->ffn_dim < 0, MMREC_EINVAL, "cfg->ffn_dim is %lld, must be >= 0",
                      (long long)c->ffn_dim);
    MMREC_FAIL_IF_FOR(func, !(c->eps > 0.0f && isfinite(c->eps)), MMREC_EINVAL,
                      "cfg->eps is %g, must be > 0 and finite", (double)c->eps);
    MMREC_FAIL_IF_FOR(func,
                      !mmrec__activation_ok(c->activation) || c->activation == MMREC_ACT_NONE,
                      MMREC_EINVAL,
                      "cfg->activation is %d, not an mmrec_activation other than NONE",
                      (int)c->activation);
    MMREC_FAIL_IF_FOR(func, c->attn_bias != 0 && c->attn_bias != 1, MMREC_EINVAL,
                      "cfg->attn_bias is %d, must be 0 or 1", c->attn_bias);
    return MMREC_OK;
}

/* Every parameter, in the order of the reference's named_parameters(). */
static mmrec_status mmrec__seqenc_parts(mmrec__seqenc *m, mmrec_model *model, const char *name) {
    const char *func = "mmrec_sequence_encoder_create";
    const mmrec_sequence_encoder_config *c = &m->cfg;
    int64_t shape[2] = {c->max_length, c->dim};
    MMREC_FORWARD_IF(mmrec__model_add_param(model, func, name, "position_embedding.weight", 2,
                                            shape, false, &m->pos));
    /* nn.Embedding [n_position, d]: fan_in d, fan_out n_position */
    mmrec__init_normal(model, m->pos, 0.0f, sqrtf(2.0f / (float)(c->dim + c->max_length)));
    char sub[256];
    snprintf(sub, sizeof sub, "%s.layer_norm", name);
    MMREC_FORWARD_IF(mmrec__ln_params(model, func, sub, c->dim, &m->ln_w, &m->ln_b));
    mmrec_transformer_config tc;
    MMREC_FORWARD_IF(mmrec_transformer_config_init(&tc));
    tc.dim = c->dim;
    tc.num_heads = c->num_heads;
    tc.ffn_dim = c->ffn_dim;
    tc.dropout = c->dropout;
    tc.norm_first = 0;
    tc.activation = c->activation;
    tc.eps = c->eps;
    tc.causal = 1;
    tc.no_attn_bias = c->attn_bias == 0;
    tc.no_act_dropout = 1;
    for (int l = 0; l < c->num_layers; l++) {
        snprintf(sub, sizeof sub, "%s.blocks.%d", name, l);
        MMREC_FORWARD_IF(mmrec__transformer_create(func, model, sub, &tc, true, &m->blocks[l]));
    }
    return MMREC_OK;
}

mmrec_status mmrec_sequence_encoder_create(mmrec_model *model, const char *name,
                                           const mmrec_sequence_encoder_config *cfg,
                                           mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, __func__));
    mmrec_sequence_encoder_config c = mmrec__seqenc_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_sequence_encoder_config, &c, cfg));
    MMREC_FORWARD_IF(mmrec__seqenc_check_config(&c));
    if (c.ffn_dim == 0) c.ffn_dim = 4 * c.dim;
    mmrec__seqenc *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = MMREC_OK;
    if (m) {
        m->cfg = c;
        s = mmrec__seqenc_parts(m, model, name);
    }
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "sequence_encoder", name, NULL, out);
}

/* ---- forward ---- */

/* Shapes, and the mask's values: no NaN, a real position in every row. */
static mmrec_status mmrec__seqenc_check(const mmrec__seqenc *m, const mmrec_tensor *items,
                                        const mmrec_tensor *mask) {
    const char *func = "mmrec_sequence_encoder_forward";
    const mmrec_sequence_encoder_config *c = &m->cfg;
    char si[64], sm[64];
    if (items->ndim != 3 || items->shape[2] != c->dim)
        return mmrec__set_error(MMREC_ESHAPE, func, "items is %s, expected [batch, T, %lld]",
                                mmrec__shape_str(items, si, sizeof si), (long long)c->dim);
    int64_t B = items->shape[0], T = items->shape[1];
    if (T > c->max_length)
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "items is %s: T = %lld is above cfg->max_length = %lld",
                                mmrec__shape_str(items, si, sizeof si), (long long)T,
                                (long long)c->max_length);
    if (mask == NULL) return MMREC_OK;
    if (mask->ndim != 2 || mask->shape[0] != B || mask->shape[1] != T)
        return mmrec__set_error(MMREC_ESHAPE, func, "mask is %s, expected [%lld, %lld] (items is %s)",
                                mmrec__shape_str(mask, sm, sizeof sm), (long long)B,
                                (long long)T, mmrec__shape_str(items, si, sizeof si));
    for (int64_t b = 0; b < B; b++) {
        const float *row = mask->data + b * T;
        bool real = false;
        for (int64_t t = 0; t < T; t++) {
            if (isnan(row[t]))
                return mmrec__set_error(MMREC_ENUMERIC, func, "mask[%lld, %lld] is nan",
                                        (long long)b, (long long)t);
            real |= row[t] != 0.0f;
        }
        if (!real)
            return mmrec__set_error(MMREC_EINVAL, func,
                                    "mask row %lld is an empty sequence (no non-zero value)",
                                    (long long)b);
    }
    return MMREC_OK;
}

/* last[b] = x[b, t_b] with t_b the last real position of row b: a row
 * gather of x viewed as [B * T, dim]. */
static mmrec_status mmrec__seqenc_last(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor *mask,
                                       mmrec_tensor **out) {
    const char *func = "mmrec_sequence_encoder_forward";
    int64_t B = x->shape[0], T = x->shape[1], d = x->shape[2];
    int64_t *ids = mmrec__tape_alloc(tape, (size_t)B * sizeof *ids);
    if (ids == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    for (int64_t b = 0; b < B; b++) {
        int64_t t = T - 1;
        if (mask)
            while (mask->data[b * T + t] == 0.0f) t--; /* a real position exists */
        ids[b] = b * T + t;
    }
    int64_t flat[2] = {B * T, d};
    mmrec_tensor *rows;
    MMREC_FORWARD_IF(mmrec_reshape(tape, x, 2, flat, &rows));
    return mmrec__gather_rows(func, tape, rows, ids, (size_t)B, out);
}

static mmrec_status mmrec__seqenc_run(const mmrec__seqenc *m, mmrec_tape *tape,
                                      mmrec_tensor *items, mmrec_tensor *mask,
                                      mmrec_tensor **states, mmrec_tensor **last) {
    const char *func = "mmrec_sequence_encoder_forward";
    const mmrec_sequence_encoder_config *c = &m->cfg;
    int64_t T = items->shape[1];
    mmrec_tensor *pos = m->pos, *x;
    if (T < c->max_length) MMREC_FORWARD_IF(mmrec_slice(tape, m->pos, 0, 0, T, &pos));
    MMREC_FORWARD_IF(mmrec_add(tape, items, pos, &x));
    MMREC_FORWARD_IF(mmrec__layer_norm(func, tape, x, m->ln_w, m->ln_b, c->eps, &x));
    MMREC_FORWARD_IF(mmrec_dropout(tape, x, c->dropout, &x));
    for (int l = 0; l < c->num_layers; l++)
        MMREC_FORWARD_IF(mmrec__transformer_forward_rows(m->blocks[l], tape, x, mask, 0, &x));
    mmrec_tensor *u = NULL;
    if (last) MMREC_FORWARD_IF(mmrec__seqenc_last(tape, x, mask, &u));
    if (states) *states = x;
    if (last) *last = u;
    return MMREC_OK;
}

mmrec_status mmrec_sequence_encoder_forward(mmrec_module *encoder, mmrec_tape *tape,
                                            mmrec_tensor *items, mmrec_tensor *mask,
                                            mmrec_tensor **states, mmrec_tensor **last) {
    MMREC_CHECK_MODULE(encoder, "sequence_encoder");
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(items, tape);
    if (mask) MMREC_CHECK_TENSOR_ON(mask, tape);
    MMREC_FAIL_IF(states == NULL && last == NULL, MMREC_EINVAL,
                  "arguments 'states' and 'last' are both NULL: ask for one of them");
    const mmrec__seqenc *m = (const mmrec__seqenc *)encoder;
    MMREC_FORWARD_IF(mmrec__seqenc_check(m, items, mask));
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__seqenc_run(m, tape, items, mask, states, last);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}
