/* CIC: content-ID contrastive loss with H in-batch negatives per row.
 * Cosine similarities S = norm(C) norm(I)^T / tau; the rows of S (C2I) and
 * of S^T (I2C) are softmax cross-entropies over {own pair} and the row's
 * negatives, the other columns removed by a -1e30 bias.
 * Reference: EM3 (METHODS.md); tests/golden/make_golden.py. */
#include "../ops/ops_internal.h"
#include "mmrec/em3.h"
#include "mmrec/losses.h"
#include "mmrec/ops.h"

#include <math.h>
#include <string.h>

static const mmrec_cic_config mmrec__cic_defaults = {
    .struct_size = sizeof(mmrec_cic_config),
    .temperature = 0.1f,
};

mmrec_status mmrec_cic_config_init_sized(mmrec_cic_config *cfg, size_t size) {
    return mmrec__config_init(cfg, size, &mmrec__cic_defaults, sizeof mmrec__cic_defaults,
                              sizeof(mmrec_cic_config), __func__);
}

/* Bias [B, B]: 0 on the diagonal and at each row's negatives, -1e30 else. */
static mmrec_status mmrec__cic_bias(mmrec_tape *tape, const mmrec_cic_config *c, int64_t B,
                                    mmrec_tensor **out) {
    const char *func = "mmrec_loss_cic";
    int64_t shape[2] = {B, B};
    MMREC_FORWARD_IF(mmrec_tape_tensor(tape, 2, shape, 0, out));
    float *bias = (*out)->data;
    int64_t H = c->num_negatives;
    for (int64_t i = 0; i < B * B; i++) bias[i] = -1e30f;
    int64_t *pool = mmrec__tape_alloc(tape, (size_t)B * sizeof *pool);
    if (pool == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    for (int64_t i = 0; i < B; i++) {
        float *row = bias + i * B;
        row[i] = 0.0f;
        if (c->negatives) {
            for (int64_t h = 0; h < H; h++) {
                int64_t j = c->negatives[i * H + h];
                if (j < 0 || j >= B || j == i)
                    return mmrec__set_error(MMREC_ERANGE, func,
                                            "cfg->negatives[%lld] is %lld: must be in [0, %lld) "
                                            "and not its row %lld",
                                            (long long)(i * H + h), (long long)j, (long long)B,
                                            (long long)i);
                if (row[j] == 0.0f)
                    return mmrec__set_error(MMREC_EINVAL, func,
                                            "cfg->negatives repeats %lld in row %lld",
                                            (long long)j, (long long)i);
                row[j] = 0.0f;
            }
            continue;
        }
        /* H distinct others: a partial Fisher-Yates shuffle of the B - 1 */
        int64_t n = 0;
        for (int64_t j = 0; j < B; j++)
            if (j != i) pool[n++] = j;
        for (int64_t h = 0; h < H; h++) {
            int64_t k = h + (int64_t)mmrec__rng_below(&tape->rng, (uint64_t)(n - h));
            int64_t t = pool[h];
            pool[h] = pool[k];
            pool[k] = t;
            row[pool[h]] = 0.0f;
        }
    }
    return MMREC_OK;
}

static mmrec_status mmrec__cic_run(mmrec_tape *tape, mmrec_tensor *content, mmrec_tensor *ids,
                                   const mmrec_cic_config *c, mmrec_tensor **out) {
    int64_t B = content->shape[0];
    mmrec_tensor *cn, *in, *s, *st, *bias = NULL, *l1, *l2, *sum;
    MMREC_FORWARD_IF(mmrec_l2_normalize(tape, content, 1e-12f, &cn));
    MMREC_FORWARD_IF(mmrec_l2_normalize(tape, ids, 1e-12f, &in));
    MMREC_FORWARD_IF(mmrec_matmul(tape, cn, in, MMREC_TRANS_B, &s));
    MMREC_FORWARD_IF(mmrec_scale(tape, s, 1.0f / c->temperature, &s));
    MMREC_FORWARD_IF(mmrec_transpose(tape, s, &st));
    if (c->num_negatives < B - 1) {
        MMREC_FORWARD_IF(mmrec__cic_bias(tape, c, B, &bias));
        MMREC_FORWARD_IF(mmrec_add(tape, s, bias, &s));
        MMREC_FORWARD_IF(mmrec_add(tape, st, bias, &st));
    }
    int64_t *labels = mmrec__tape_alloc(tape, (size_t)B * sizeof *labels);
    if (labels == NULL) return mmrec__set_error(MMREC_ENOMEM, "mmrec_loss_cic", "out of memory");
    for (int64_t i = 0; i < B; i++) labels[i] = i;
    MMREC_FORWARD_IF(mmrec_loss_softmax_ce(tape, s, labels, (size_t)B, &l1));
    MMREC_FORWARD_IF(mmrec_loss_softmax_ce(tape, st, labels, (size_t)B, &l2));
    MMREC_FORWARD_IF(mmrec_add(tape, l1, l2, &sum));
    return mmrec_scale(tape, sum, 0.5f, out);
}

mmrec_status mmrec_loss_cic(mmrec_tape *tape, mmrec_tensor *content, mmrec_tensor *ids,
                            const mmrec_cic_config *cfg, mmrec_tensor **out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(content, tape);
    MMREC_CHECK_TENSOR_ON(ids, tape);
    MMREC_CHECK_NULL(cfg);
    MMREC_CHECK_NULL(out);
    mmrec_cic_config c = mmrec__cic_defaults;
    MMREC_FORWARD_IF(mmrec__config_merge(&c, sizeof c, sizeof c, cfg, __func__));
    if (content->ndim != 2 || ids->ndim != 2 || content->shape[0] != ids->shape[0] ||
        content->shape[1] != ids->shape[1])
        MMREC_FAIL_SHAPE2("content and ids must both be [batch, dim]", content, ids);
    int64_t B = content->shape[0];
    MMREC_FAIL_IF(B < 2, MMREC_ESHAPE, "batch is %lld, needs at least 2 rows", (long long)B);
    MMREC_FAIL_IF(!(c.temperature > 0.0f) || !isfinite(c.temperature), MMREC_EINVAL,
                  "cfg->temperature is %g, must be > 0", (double)c.temperature);
    MMREC_FAIL_IF(c.num_negatives < 0 || c.num_negatives > B - 1, MMREC_EINVAL,
                  "cfg->num_negatives is %d, must be in [0, %lld] (batch - 1)", c.num_negatives,
                  (long long)(B - 1));
    MMREC_FAIL_IF(c.negatives != NULL && c.num_negatives == 0, MMREC_EINVAL,
                  "cfg->negatives given without cfg->num_negatives");
    if (c.num_negatives == 0) c.num_negatives = (int)(B - 1);
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__cic_run(tape, content, ids, &c, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}
