/* FQ-Former: learned queries concatenated with projected image and text
 * tokens, a stack of Transformer encoder layers, the first Q outputs as the
 * item's content embedding. Reference: EM3 (METHODS.md); the golden test
 * builds the same model from torch.nn layers. */
#include "../modules/modules_internal.h"
#include "em3_internal.h"

#include <math.h>
#include <stdio.h>

enum { MMREC__FQ_MAX_LAYERS = 16 };

typedef struct mmrec__fqformer {
    struct mmrec_module base;
    mmrec_tensor *queries; /* [Q, d] */
    mmrec_module *f_v, *f_t;
    mmrec_module *layers[MMREC__FQ_MAX_LAYERS];
    mmrec_fqformer_config cfg;
} mmrec__fqformer;

static const mmrec_fqformer_config mmrec__fq_defaults = {
    .struct_size = sizeof(mmrec_fqformer_config),
    .num_queries = 4,
    .num_layers = 1,
    .num_heads = 4,
    .dropout = 0.1f,
    .norm_first = 1,
};

mmrec_status mmrec_fqformer_config_init_sized(mmrec_fqformer_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_fqformer_config, cfg, size, mmrec__fq_defaults);
}

static mmrec_status mmrec__fq_parts(mmrec__fqformer *m, mmrec_model *model, const char *name) {
    const mmrec_fqformer_config *c = &m->cfg;
    const char *func = "mmrec_fqformer_create";
    int64_t qshape[2] = {c->num_queries, c->dim};
    MMREC_FORWARD_IF(
        mmrec__model_add_param(model, func, name, "queries", 2, qshape, false, &m->queries));
    mmrec__init_normal(model, m->queries, 0.0f, 0.02f);
    char sub[256];
    mmrec_linear_config lc;
    MMREC_FORWARD_IF(mmrec_linear_config_init(&lc));
    lc.out_dim = c->dim;
    lc.in_dim = c->image_dim;
    snprintf(sub, sizeof sub, "%s.f_v", name);
    MMREC_FORWARD_IF(mmrec_linear_create(model, sub, &lc, &m->f_v));
    lc.in_dim = c->text_dim;
    snprintf(sub, sizeof sub, "%s.f_t", name);
    MMREC_FORWARD_IF(mmrec_linear_create(model, sub, &lc, &m->f_t));
    mmrec_transformer_config tc;
    MMREC_FORWARD_IF(mmrec_transformer_config_init(&tc));
    tc.dim = c->dim;
    tc.num_heads = c->num_heads;
    tc.ffn_dim = c->ffn_dim;
    tc.dropout = c->dropout;
    tc.norm_first = c->norm_first;
    for (int l = 0; l < c->num_layers; l++) {
        snprintf(sub, sizeof sub, "%s.layers.%d", name, l);
        MMREC_FORWARD_IF(mmrec_transformer_create(model, sub, &tc, &m->layers[l]));
    }
    return MMREC_OK;
}

mmrec_status mmrec_fqformer_create(mmrec_model *model, const char *name,
                                   const mmrec_fqformer_config *cfg, mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, __func__));
    mmrec_fqformer_config c = mmrec__fq_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_fqformer_config, &c, cfg));
    MMREC_FAIL_IF(c.image_dim < 1, MMREC_EINVAL, "cfg->image_dim is %lld, must be >= 1",
                  (long long)c.image_dim);
    MMREC_FAIL_IF(c.text_dim < 1, MMREC_EINVAL, "cfg->text_dim is %lld, must be >= 1",
                  (long long)c.text_dim);
    MMREC_FAIL_IF(c.num_queries < 1 || c.num_queries > 1024, MMREC_EINVAL,
                  "cfg->num_queries is %d, must be in [1, 1024]", c.num_queries);
    MMREC_FAIL_IF(c.num_layers < 1 || c.num_layers > MMREC__FQ_MAX_LAYERS, MMREC_EINVAL,
                  "cfg->num_layers is %d, must be in [1, %d]", c.num_layers,
                  MMREC__FQ_MAX_LAYERS);
    MMREC_FORWARD_IF(mmrec__mha_check(__func__, c.dim, c.num_heads, c.dropout));
    mmrec__fqformer *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = MMREC_OK;
    if (m) {
        m->cfg = c;
        s = mmrec__fq_parts(m, model, name);
    }
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "fqformer", name, NULL, out);
}

static mmrec_status mmrec__fq_check(const mmrec__fqformer *m, mmrec_tensor *image,
                                    mmrec_tensor *text, mmrec_tensor *presence) {
    const mmrec_fqformer_config *c = &m->cfg;
    const char *func = "mmrec_fqformer_forward";
    if (image->ndim != 3 || image->shape[2] != c->image_dim) {
        char s[64];
        return mmrec__set_error(MMREC_ESHAPE, func, "image is %s, expected [batch, tokens, %lld]",
                   mmrec__shape_str(image, s, sizeof s), (long long)c->image_dim);
    }
    if (text->ndim != 3 || text->shape[2] != c->text_dim || text->shape[0] != image->shape[0]) {
        char s[64], si[64];
        return mmrec__set_error(MMREC_ESHAPE, func, "text is %s, expected [%lld, tokens, %lld] (image is %s)",
                   mmrec__shape_str(text, s, sizeof s), (long long)image->shape[0],
                   (long long)c->text_dim, mmrec__shape_str(image, si, sizeof si));
    }
    int64_t tokens = image->shape[1] + text->shape[1];
    if (presence && (presence->ndim != 2 || presence->shape[0] != image->shape[0] ||
                     presence->shape[1] != tokens)) {
        char s[64];
        return mmrec__set_error(MMREC_ESHAPE, func, "presence is %s, expected [%lld, %lld] (image + text tokens)",
                   mmrec__shape_str(presence, s, sizeof s), (long long)image->shape[0],
                   (long long)tokens);
    }
    return MMREC_OK;
}

static mmrec_status mmrec__fq_run(const mmrec__fqformer *m, mmrec_tape *tape, mmrec_tensor *image,
                                  mmrec_tensor *text, mmrec_tensor *presence,
                                  mmrec_tensor **out) {
    const mmrec_fqformer_config *c = &m->cfg;
    int64_t B = image->shape[0], Q = c->num_queries, d = c->dim;
    mmrec_tensor *pv, *pt, *zeros, *qb, *tokens, *mask = NULL;
    MMREC_FORWARD_IF(mmrec_linear_forward(m->f_v, tape, image, &pv));
    MMREC_FORWARD_IF(mmrec_linear_forward(m->f_t, tape, text, &pt));
    int64_t qshape[3] = {B, Q, d};
    MMREC_FORWARD_IF(mmrec_tape_tensor(tape, 3, qshape, 0, &zeros));
    MMREC_FORWARD_IF(mmrec_add(tape, zeros, m->queries, &qb)); /* queries for every item */
    mmrec_tensor *parts[3] = {qb, pv, pt};
    MMREC_FORWARD_IF(mmrec_concat(tape, parts, 3, 1, &tokens));
    if (presence) {
        int64_t oshape[2] = {B, Q};
        mmrec_tensor *ones;
        MMREC_FORWARD_IF(mmrec_tape_tensor(tape, 2, oshape, 0, &ones));
        for (size_t i = 0; i < ones->numel; i++) ones->data[i] = 1.0f;
        mmrec_tensor *mparts[2] = {ones, presence};
        MMREC_FORWARD_IF(mmrec_concat(tape, mparts, 2, 1, &mask));
    }
    /* Only the query positions are read after the last layer: it computes
     * their rows alone (keys and values still come from every token). */
    for (int l = 0; l < c->num_layers; l++)
        MMREC_FORWARD_IF(mmrec__transformer_forward_rows(
            m->layers[l], tape, tokens, mask, l + 1 == c->num_layers ? Q : 0, &tokens));
    if (tokens->shape[1] != Q) MMREC_FORWARD_IF(mmrec_slice(tape, tokens, 1, 0, Q, &tokens));
    if (!c->flatten) {
        *out = tokens;
        return MMREC_OK;
    }
    int64_t flat[2] = {B, Q * d};
    return mmrec_reshape(tape, tokens, 2, flat, out);
}

mmrec_status mmrec_fqformer_forward(mmrec_module *fq, mmrec_tape *tape, mmrec_tensor *image,
                                    mmrec_tensor *text, mmrec_tensor *presence,
                                    mmrec_tensor **out) {
    MMREC_CHECK_MODULE(fq, "fqformer");
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(image, tape);
    MMREC_CHECK_TENSOR_ON(text, tape);
    if (presence) MMREC_CHECK_TENSOR_ON(presence, tape);
    MMREC_CHECK_NULL(out);
    const mmrec__fqformer *m = (const mmrec__fqformer *)fq;
    MMREC_FORWARD_IF(mmrec__fq_check(m, image, text, presence));
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__fq_run(m, tape, image, text, presence, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}
