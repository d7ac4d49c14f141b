/* Target attention of a candidate over a behaviour sequence: dot-product or
 * DIN-style MLP scores, masked softmax, weighted sum. Reference: EM3's user
 * content interest (METHODS.md) and DIN's activation unit. */
#include "../modules/modules_internal.h"
#include "em3_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { MMREC__TA_MAX_HIDDEN = 8 };

typedef struct mmrec__ta {
    struct mmrec_module base;
    int64_t dim;
    mmrec_ta_score score;
    mmrec_module *mlp; /* MMREC_TA_MLP */
} mmrec__ta;

static const mmrec_target_attention_config mmrec__ta_defaults = {
    .struct_size = sizeof(mmrec_target_attention_config),
    .score = MMREC_TA_DOT,
    .activation = MMREC_ACT_SIGMOID,
};

mmrec_status mmrec_target_attention_config_init_sized(mmrec_target_attention_config *cfg,
                                                      size_t size) {
    return MMREC__CONFIG_INIT(mmrec_target_attention_config, cfg, size, mmrec__ta_defaults);
}

mmrec_status mmrec_target_attention_create(mmrec_model *model, const char *name,
                                           const mmrec_target_attention_config *cfg,
                                           mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, __func__));
    mmrec_target_attention_config c = mmrec__ta_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_target_attention_config, &c, cfg));
    MMREC_FAIL_IF(c.dim < 1, MMREC_EINVAL, "cfg->dim is %lld, must be >= 1", (long long)c.dim);
    MMREC_FAIL_IF(c.score != MMREC_TA_DOT && c.score != MMREC_TA_MLP, MMREC_EINVAL,
                  "cfg->score is %d, not an mmrec_ta_score", (int)c.score);
    MMREC_FAIL_IF(c.num_hidden < 0 || c.num_hidden > MMREC__TA_MAX_HIDDEN, MMREC_EINVAL,
                  "cfg->num_hidden is %d, must be in [0, %d]", c.num_hidden,
                  MMREC__TA_MAX_HIDDEN);
    MMREC_FAIL_IF(c.num_hidden > 0 && c.hidden == NULL, MMREC_EINVAL,
                  "cfg->hidden is NULL with num_hidden %d", c.num_hidden);
    if (c.score == MMREC_TA_MLP) {
        /* checked here, so that the MLP below cannot fail on them in its own name */
        MMREC_FAIL_IF(c.dim > INT32_MAX, MMREC_EINVAL,
                      "cfg->dim is %lld, must be at most 2^31 - 1 with MMREC_TA_MLP",
                      (long long)c.dim);
        for (int i = 0; i < c.num_hidden; i++)
            MMREC_FAIL_IF(c.hidden[i] < 1, MMREC_EINVAL, "cfg->hidden[%d] is %lld, must be >= 1",
                          i, (long long)c.hidden[i]);
        MMREC_FAIL_IF(!mmrec__activation_ok(c.activation), MMREC_EINVAL,
                      "cfg->activation is %d, not an mmrec_activation", (int)c.activation);
        MMREC_FAIL_IF(strlen(name) > 196, MMREC_EINVAL,
                      "name is %zu bytes, at most 196 with MMREC_TA_MLP (its MLP is "
                      "'<name>.mlp')",
                      strlen(name));
    }
    mmrec__ta *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = MMREC_OK;
    if (m) {
        m->dim = c.dim;
        m->score = c.score;
        if (c.score == MMREC_TA_MLP) {
            int64_t sizes[MMREC__TA_MAX_HIDDEN + 2];
            int n = 0;
            sizes[n++] = 4 * c.dim;
            if (c.num_hidden == 0) sizes[n++] = 4 * c.dim;
            for (int i = 0; i < c.num_hidden; i++) sizes[n++] = c.hidden[i];
            sizes[n++] = 1;
            mmrec_mlp_config mc;
            s = mmrec_mlp_config_init(&mc);
            mc.sizes = sizes;
            mc.num_sizes = n;
            mc.activation = c.activation;
            char sub[256];
            snprintf(sub, sizeof sub, "%s.mlp", name);
            if (s == MMREC_OK) s = mmrec__mlp_create(__func__, model, sub, &mc, &m->mlp);
        }
    }
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "target_attention", name, NULL, out);
}

/* scores [B, 1, N] of the candidate against each behaviour */
static mmrec_status mmrec__ta_scores(const mmrec__ta *m, mmrec_tape *tape, mmrec_tensor *c3,
                                     mmrec_tensor *seq, mmrec_tensor **out) {
    int64_t B = seq->shape[0], N = seq->shape[1];
    if (m->score == MMREC_TA_DOT) {
        mmrec_tensor *s;
        MMREC_FORWARD_IF(mmrec_matmul(tape, c3, seq, MMREC_TRANS_B, &s));
        return mmrec_scale(tape, s, 1.0f / sqrtf((float)m->dim), out);
    }
    mmrec_tensor *zeros, *cb, *diff, *prod, *feat, *s;
    MMREC_FORWARD_IF(mmrec_tape_tensor(tape, 3, seq->shape, 0, &zeros));
    MMREC_FORWARD_IF(mmrec_add(tape, zeros, c3, &cb)); /* candidate at every position */
    MMREC_FORWARD_IF(mmrec_sub(tape, seq, cb, &diff));
    MMREC_FORWARD_IF(mmrec_mul(tape, seq, cb, &prod));
    mmrec_tensor *parts[4] = {seq, cb, diff, prod};
    MMREC_FORWARD_IF(mmrec_concat(tape, parts, 4, -1, &feat));
    MMREC_FORWARD_IF(mmrec_mlp_forward(m->mlp, tape, feat, &s));
    int64_t shape[3] = {B, 1, N};
    return mmrec_reshape(tape, s, 3, shape, out);
}

static mmrec_status mmrec__ta_run(const mmrec__ta *m, mmrec_tape *tape, mmrec_tensor *cand,
                                  mmrec_tensor *seq, mmrec_tensor *mask, mmrec_tensor **out) {
    int64_t B = seq->shape[0], N = seq->shape[1], d = m->dim;
    int64_t s3[3] = {B, 1, d}, m3[3] = {B, 1, N}, s2[2] = {B, d};
    mmrec_tensor *c3, *scores, *p, *u, *mask3 = NULL;
    MMREC_FORWARD_IF(mmrec_reshape(tape, cand, 3, s3, &c3));
    MMREC_FORWARD_IF(mmrec__ta_scores(m, tape, c3, seq, &scores));
    if (mask) MMREC_FORWARD_IF(mmrec_reshape(tape, mask, 3, m3, &mask3));
    MMREC_FORWARD_IF(mmrec_softmax(tape, scores, mask3, &p));
    MMREC_FORWARD_IF(mmrec_matmul(tape, p, seq, 0, &u));
    return mmrec_reshape(tape, u, 2, s2, out);
}

mmrec_status mmrec_target_attention_forward(mmrec_module *ta, mmrec_tape *tape,
                                            mmrec_tensor *candidate, mmrec_tensor *sequence,
                                            mmrec_tensor *mask, mmrec_tensor **out) {
    MMREC_CHECK_MODULE(ta, "target_attention");
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(candidate, tape);
    MMREC_CHECK_TENSOR_ON(sequence, tape);
    if (mask) MMREC_CHECK_TENSOR_ON(mask, tape);
    MMREC_CHECK_NULL(out);
    const mmrec__ta *m = (const mmrec__ta *)ta;
    if (sequence->ndim != 3 || sequence->shape[2] != m->dim) {
        char s[64];
        MMREC_FAIL(MMREC_ESHAPE, "sequence is %s, expected [batch, length, %lld]",
                   mmrec__shape_str(sequence, s, sizeof s), (long long)m->dim);
    }
    if (candidate->ndim != 2 || candidate->shape[0] != sequence->shape[0] ||
        candidate->shape[1] != m->dim)
        MMREC_FAIL_SHAPE2("candidate must be [batch, dim] of the sequence", candidate,
                          sequence);
    if (mask && (mask->ndim != 2 || mask->shape[0] != sequence->shape[0] ||
                 mask->shape[1] != sequence->shape[1]))
        MMREC_FAIL_SHAPE2("mask must be [batch, length] of the sequence", mask, sequence);
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__ta_run(m, tape, candidate, sequence, mask, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}
