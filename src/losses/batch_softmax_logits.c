/* The batch softmax on caller logits (losses.h,
 * mmrec_loss_batch_softmax_logits): s_ij = x_ij / tau + bias_j over the
 * kept pairs of each row, the cross-entropy against the row's positive,
 * weighted as mmrec_loss_batch_softmax weighs it and configured by the
 * same struct (mmrec__batch_softmax_config checks it). One node: the
 * forward keeps each row's maximum and log-sum-exp, the backward
 * recomputes p_ij from the logits. The keep rule is the batch softmax's:
 * the positive always, otherwise the mask's bit and no accidental hit.
 * Reference: tests/golden/make_golden.py::write_batch_softmax_logits
 * (masked_fill with -inf and torch.nn.functional.cross_entropy). */
#include "losses_internal.h"

#include <math.h>
#include <string.h>

typedef struct mmrec__bsl_ctx {
    size_t batch, cands, words;
    float inv_tau;
    const float *bias;       /* [N] or NULL */
    const int64_t *pos;      /* [B] or NULL: the diagonal */
    const int64_t *ids;      /* [N] or NULL */
    const uint8_t *mask;     /* [B, N] bytes (the caller's, forward only) or NULL */
    const uint64_t *bits;    /* [B, words] (the node's copy) or NULL */
    float *coef;             /* [B]: w_i / divisor */
    float *row_max, *row_ls; /* [B] */
} mmrec__bsl_ctx;

static inline size_t mmrec__bsl_pos(const mmrec__bsl_ctx *c, size_t i) {
    return c->pos ? (size_t)c->pos[i] : i;
}

static inline bool mmrec__bsl_keep(const mmrec__bsl_ctx *c, size_t i, size_t j, size_t p) {
    if (j == p) return true;
    if (c->mask && c->mask[i * c->cands + j] == 0) return false;
    if (c->bits && !((c->bits[i * c->words + (j >> 6)] >> (j & 63)) & 1u)) return false;
    return c->ids == NULL || c->ids[j] != c->ids[p];
}

static inline float mmrec__bsl_score(const mmrec__bsl_ctx *c, float x, size_t j) {
    return x * c->inv_tau + (c->bias ? c->bias[j] : 0.0f);
}

/* Row i's maximum and log-sum-exp over its kept pairs; returns l_i. */
static double mmrec__bsl_row(const mmrec__bsl_ctx *c, const float *x, size_t i) {
    size_t n = c->cands, p = mmrec__bsl_pos(c, i);
    const float *xi = x + i * n;
    float m = -INFINITY;
    for (size_t j = 0; j < n; j++)
        if (mmrec__bsl_keep(c, i, j, p)) m = fmaxf(m, mmrec__bsl_score(c, xi[j], j));
    double sum = 0.0;
    for (size_t j = 0; j < n; j++)
        if (mmrec__bsl_keep(c, i, j, p)) sum += expf(mmrec__bsl_score(c, xi[j], j) - m);
    float ls = (float)log(sum);
    c->row_max[i] = m;
    c->row_ls[i] = ls;
    return (double)ls - ((double)mmrec__bsl_score(c, xi[p], p) - (double)m);
}

static mmrec_status mmrec__bsl_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__bsl_ctx *c = node->ctx;
    mmrec_tensor *x = node->in[0];
    float *dx = mmrec__grad(tape, x);
    if (dx == NULL) return MMREC_ENOMEM;
    float g = node->out->grad[0];
    size_t n = c->cands;
    for (size_t i = 0; i < c->batch; i++) {
        if (c->coef[i] == 0.0f) continue;
        size_t p = mmrec__bsl_pos(c, i);
        const float *xi = x->data + i * n;
        float *di = dx + i * n, gi = g * c->coef[i] * c->inv_tau;
        float shift = c->row_max[i] + c->row_ls[i];
        for (size_t j = 0; j < n; j++) {
            if (!mmrec__bsl_keep(c, i, j, p)) continue;
            float pj = expf(mmrec__bsl_score(c, xi[j], j) - shift);
            di[j] += gi * (j == p ? pj - 1.0f : pj);
        }
    }
    return MMREC_OK;
}

/* The node's copies of the caller's arrays, so the backward reads them. */
static bool mmrec__bsl_keep_copies(mmrec_tape *tape, mmrec__bsl_ctx *c,
                                   const mmrec_batch_softmax_config *cfg) {
    size_t B = c->batch, n = c->cands;
    if (cfg->column_bias && !(c->bias = mmrec__tape_copy(tape, cfg->column_bias, n * sizeof(float))))
        return false;
    if (cfg->positives && !(c->pos = mmrec__tape_copy(tape, cfg->positives, B * sizeof(int64_t))))
        return false;
    if (cfg->candidate_ids &&
        !(c->ids = mmrec__tape_copy(tape, cfg->candidate_ids, n * sizeof(int64_t))))
        return false;
    if (cfg->mask) {
        uint64_t *bits = mmrec__tape_alloc(tape, B * c->words * sizeof *bits);
        if (bits == NULL) return false;
        memset(bits, 0, B * c->words * sizeof *bits);
        for (size_t i = 0; i < B; i++)
            for (size_t j = 0; j < n; j++)
                if (cfg->mask[i * n + j]) mmrec__batch_softmax_keep(bits, c->words, i, j);
        c->bits = bits;
        c->mask = NULL;
    }
    return true;
}

mmrec_status mmrec_loss_batch_softmax_logits(mmrec_tape *tape, mmrec_tensor *logits,
                                             const mmrec_batch_softmax_config *cfg,
                                             mmrec_tensor **out) {
    MMREC_CHECK_OP1(tape, logits, out);
    char sx[64];
    MMREC_FAIL_IF(logits->ndim != 2, MMREC_ESHAPE, "logits is %s, must be [batch, candidates]",
                  mmrec__shape_str(logits, sx, sizeof sx));
    size_t B = (size_t)logits->shape[0], n = (size_t)logits->shape[1];
    mmrec_batch_softmax_config cf;
    MMREC_FORWARD_IF(mmrec__batch_softmax_config(__func__, cfg, B, n, &cf));
    MMREC_FAIL_IF(cf.normalize, MMREC_EINVAL,
                  "cfg->normalize is 1: logits have no vectors to normalize");
    MMREC_FAIL_IF(cf.symmetric, MMREC_EINVAL,
                  "cfg->symmetric is 1: the column-wise form is not offered on logits");
    MMREC_FAIL_IF(cf.positives == NULL && n < B, MMREC_ESHAPE,
                  "logits is %s: without cfg->positives row i's positive is column i, so it "
                  "needs at least as many columns as rows",
                  mmrec__shape_str(logits, sx, sizeof sx));
    mmrec__bsl_ctx c = {
        .batch = B,
        .cands = n,
        .words = (n + 63) / 64,
        .inv_tau = 1.0f / cf.temperature,
        .bias = cf.column_bias,
        .pos = cf.positives,
        .ids = cf.candidate_ids,
        .mask = cf.mask,
    };
    for (size_t i = 0; i < B; i++) {
        size_t p = mmrec__bsl_pos(&c, i);
        for (size_t j = 0; j < n; j++)
            MMREC_FAIL_IF(mmrec__bsl_keep(&c, i, j, p) && !isfinite(logits->data[i * n + j]),
                          MMREC_ENUMERIC, "logits[%zu, %zu] is %g, a kept pair must be finite",
                          i, j, (double)logits->data[i * n + j]);
    }
    int64_t one[1] = {1};
    mmrec_tensor *in[1] = {logits}, *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__op op = {__func__, "batch_softmax_logits", mmrec__bsl_backward, in, 1, 1, NULL,
                          sizeof c};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 1, one, false, &y, &node, &mark));
    c.coef = mmrec__tape_alloc(tape, 3 * B * sizeof(float));
    if (c.coef == NULL) return mmrec__tape_oom(tape, mark, __func__);
    c.row_max = c.coef + B;
    c.row_ls = c.coef + 2 * B;
    double divisor = (double)B;
    if (cf.weight_mean) {
        divisor = 0.0;
        for (size_t i = 0; i < B; i++) divisor += cf.row_weights ? (double)cf.row_weights[i] : 1.0;
    }
    for (size_t i = 0; i < B; i++) {
        double w = cf.row_weights ? (double)cf.row_weights[i] : 1.0;
        c.coef[i] = divisor > 0.0 ? (float)(w / divisor) : 0.0f;
    }
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        double l = mmrec__bsl_row(&c, logits->data, i);
        if (c.coef[i] != 0.0f) total += (double)c.coef[i] * l;
    }
    y->data[0] = (float)total;
    if (node) {
        if (!mmrec__bsl_keep_copies(tape, &c, &cf)) return mmrec__tape_oom(tape, mark, __func__);
        *(mmrec__bsl_ctx *)node->ctx = c;
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
