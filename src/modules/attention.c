/* Scaled dot-product attention over a packed q|k|v projection, one node for
 * every head and batch entry. Per (batch, head), with dh = d / heads:
 *   S = Q K^T / sqrt(dh), P = softmax(S masked), O = drop(P) V,
 * for all T query rows or only the first tq (every key stays).
 * Reference: torch.nn.MultiheadAttention (tests/golden/make_golden.py). */
#include "modules_internal.h"

#include <math.h>
#include <string.h>

typedef struct mmrec__attn_ctx {
    size_t batch, seq, dim, heads, dh;
    size_t tq;       /* query rows: the first tq of seq */
    float scale;
    bool causal;
    float *probs;    /* [B, H, tq, T] softmax output */
    float *dropped;  /* [B, H, tq, T] probabilities after dropout, or NULL */
    float *dmask;    /* [B, H, tq, T] dropout scales, or NULL */
} mmrec__attn_ctx;

/* Row mask of query i: key j kept when key_mask allows and (causal) j <= i.
 * NULL when nothing is masked. */
static const float *mmrec__attn_row_mask(const mmrec__attn_ctx *c, const float *key_mask,
                                         size_t i, float *buf) {
    if (!c->causal) return key_mask;
    for (size_t j = 0; j < c->seq; j++)
        buf[j] = (j <= i && (key_mask == NULL || key_mask[j] != 0.0f)) ? 1.0f : 0.0f;
    return buf;
}

/* Batch entries are split over the pool in chunks of at least this many
 * multiply-adds; each chunk has its own scratch. */
#define MMREC__ATTN_GRAIN_MACS ((size_t)1 << 17)

static size_t mmrec__attn_grain(const mmrec__attn_ctx *c) {
    return mmrec__grain(4 * c->heads * c->tq * c->seq * c->dh, MMREC__ATTN_GRAIN_MACS);
}

/* C = alpha A B^T (+ C with accumulate) for A [m, k] and B [n, k], rows of
 * strides lda and ldb: the score-shaped products of the attention (Q K^T,
 * dO V^T). Short sequences make them too small for BLAS and, with n the
 * sequence length, too narrow for the small product's loop over n; here
 * each entry is a dot product over k in 16 interleaved partial sums, which
 * the compiler turns into vector lanes. Longer sequences (n > 16) go to
 * mmrec__sgemm. */
#define MMREC__ATTN_SHORT 16

MMREC__SIMD_CLONES
static void mmrec__attn_nt_short(size_t m, size_t n, size_t k, float alpha, const float *a,
                                 size_t lda, const float *b, size_t ldb, bool accumulate,
                                 float *c, size_t ldc) {
    for (size_t i = 0; i < m; i++) {
        const float *ai = a + i * lda;
        for (size_t j = 0; j < n; j++) {
            const float *bj = b + j * ldb;
            float acc[16] = {0};
            size_t p = 0;
            for (; p + 16 <= k; p += 16)
                for (size_t l = 0; l < 16; l++) acc[l] += ai[p + l] * bj[p + l];
            for (size_t l = 0; p + l < k; l++) acc[l] += ai[p + l] * bj[p + l];
            for (size_t w = 8; w > 0; w /= 2)
                for (size_t l = 0; l < w; l++) acc[l] += acc[l + w];
            float v = alpha * acc[0];
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + v : v;
        }
    }
}

static void mmrec__attn_nt(size_t m, size_t n, size_t k, float alpha, const float *a,
                           size_t lda, const float *b, size_t ldb, bool accumulate, float *c,
                           size_t ldc) {
    if (n <= MMREC__ATTN_SHORT)
        mmrec__attn_nt_short(m, n, k, alpha, a, lda, b, ldb, accumulate, c, ldc);
    else
        mmrec__sgemm(false, true, m, n, k, alpha, a, lda, b, ldb, accumulate ? 1.0f : 0.0f, c,
                     ldc);
}

/* One head's backward through softmax(scale Q K^T + mask) into Q and K:
 * dS = softmax'(P) dP row by row into the [tq, T] scratch ds, then
 * dQ += scale dS K and dK += scale dS^T Q (rows of stride 3 d). */
static void mmrec__attn_scores_backward(const mmrec__attn_ctx *c, const float *p,
                                        const float *dp, float *ds, const float *q,
                                        const float *k, float *dq, float *dk) {
    size_t T = c->seq, tq = c->tq, dh = c->dh, ld = 3 * c->dim;
    memset(ds, 0, tq * T * sizeof(float));
    for (size_t i = 0; i < tq; i++)
        mmrec__softmax_row_backward(p + i * T, dp + i * T, ds + i * T, T, false);
    mmrec__sgemm(false, false, tq, dh, T, c->scale, ds, T, k, ld, 1.0f, dq, ld);
    mmrec__sgemm(true, false, T, dh, tq, c->scale, ds, T, q, ld, 1.0f, dk, ld);
}

typedef struct mmrec__attn_job {
    const mmrec__attn_ctx *c;
    const float *qkv, *key_mask, *dout;
    float *y, *dqkv;
    float *scratch; /* per part: scratch_len floats */
    size_t scratch_len;
} mmrec__attn_job;

static void mmrec__attn_backward_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__attn_job *j = ctx;
    const mmrec__attn_ctx *c = j->c;
    size_t T = c->seq, tq = c->tq, d = c->dim, dh = c->dh, ld = 3 * d, tt = tq * T;
    float *dp = j->scratch + (size_t)part * j->scratch_len, *ds = dp + tt;
    for (size_t b = lo; b < hi; b++) {
        for (size_t h = 0; h < c->heads; h++) {
            size_t bh = b * c->heads + h;
            const float *q = j->qkv + b * T * ld + h * dh, *k = q + d, *v = q + 2 * d;
            float *dq = j->dqkv + b * T * ld + h * dh, *dk = dq + d, *dv = dq + 2 * d;
            const float *dO = j->dout + b * tq * d + h * dh;
            const float *p = c->probs + bh * tt;
            const float *pd = c->dropped ? c->dropped + bh * tt : p;
            /* dP = dO V^T; dV += P_d^T dO */
            mmrec__attn_nt(tq, T, dh, 1.0f, dO, d, v, ld, false, dp, T);
            mmrec__sgemm(true, false, T, dh, tq, 1.0f, pd, T, dO, d, 1.0f, dv, ld);
            if (c->dmask) {
                const float *m = c->dmask + bh * tt;
                for (size_t i = 0; i < tt; i++) dp[i] *= m[i];
            }
            mmrec__attn_scores_backward(c, p, dp, ds, q, k, dq, dk);
        }
    }
}

static mmrec_status mmrec__attn_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__attn_ctx *c = node->ctx;
    mmrec_tensor *qkv = node->in[0];
    size_t grain = mmrec__attn_grain(c), tt = c->tq * c->seq;
    int parts = mmrec__parallel_parts(c->batch, grain);
    float *dqkv = mmrec__grad(tape, qkv);
    float *scratch = mmrec__tape_alloc(tape, (size_t)parts * 2 * tt * sizeof(float));
    if (dqkv == NULL || scratch == NULL) return MMREC_ENOMEM;
    mmrec__attn_job job = {c, qkv->data, NULL, node->out->grad, NULL, dqkv, scratch, 2 * tt};
    mmrec__parallel_for(c->batch, parts, mmrec__attn_backward_chunk, &job);
    return MMREC_OK;
}

static void mmrec__attn_forward_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__attn_job *j = ctx;
    const mmrec__attn_ctx *c = j->c;
    size_t T = c->seq, tq = c->tq, d = c->dim, dh = c->dh, ld = 3 * d, tt = tq * T;
    bool record = c->probs != NULL;
    float *rowbuf = j->scratch + (size_t)part * j->scratch_len, *s = rowbuf + T;
    float *own = s + tt; /* probabilities when they are not kept */
    for (size_t b = lo; b < hi; b++) {
        const float *km = j->key_mask ? j->key_mask + b * T : NULL;
        for (size_t h = 0; h < c->heads; h++) {
            size_t bh = b * c->heads + h;
            const float *q = j->qkv + b * T * ld + h * dh, *k = q + d, *v = q + 2 * d;
            float *p = record ? c->probs + bh * tt : own;
            mmrec__attn_nt(tq, T, dh, c->scale, q, ld, k, ld, false, s, T);
            for (size_t i = 0; i < tq; i++)
                mmrec__softmax_row(s + i * T, mmrec__attn_row_mask(c, km, i, rowbuf), 1,
                                   p + i * T, T, false);
            const float *pv = p;
            if (c->dmask) {
                float *pd = c->dropped + bh * tt;
                const float *m = c->dmask + bh * tt;
                for (size_t i = 0; i < tt; i++) pd[i] = p[i] * m[i];
                pv = pd;
            }
            mmrec__sgemm(false, false, tq, dh, T, 1.0f, pv, T, v, ld, 0.0f,
                         j->y + b * tq * d + h * dh, d);
        }
    }
}

mmrec_status mmrec__attention(mmrec_tape *tape, const char *func, mmrec_tensor *qkv,
                              mmrec_tensor *key_mask, int heads, bool causal, float dropout,
                              int64_t query_rows, mmrec_tensor **out) {
    mmrec__attn_ctx c = {0};
    c.batch = (size_t)qkv->shape[0];
    c.seq = (size_t)qkv->shape[1];
    c.dim = (size_t)qkv->shape[2] / 3;
    c.heads = (size_t)heads;
    c.dh = c.dim / c.heads;
    c.scale = 1.0f / sqrtf((float)c.dh);
    c.causal = causal;
    c.tq = query_rows > 0 && (size_t)query_rows < c.seq ? (size_t)query_rows : c.seq;
    size_t T = c.seq, d = c.dim, tt = c.tq * T;
    bool train = tape->mode == MMREC_TAPE_TRAIN;
    bool drop = train && dropout > 0.0f;

    int64_t shape[3] = {(int64_t)c.batch, (int64_t)c.tq, (int64_t)d};
    mmrec_tensor *in[2] = {qkv, key_mask}, *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__op op = {func, "attention", mmrec__attn_backward, in, key_mask ? 2 : 1, 1, NULL,
                          sizeof c};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 3, shape, false, &y, &node, &mark));
    size_t grain = mmrec__attn_grain(&c);
    int parts = mmrec__parallel_parts(c.batch, grain);
    /* per part: a row mask, the scores and (not recording) the probabilities */
    size_t scratch_len = T + 2 * tt;
    float *scratch = mmrec__tape_alloc(tape, (size_t)parts * scratch_len * sizeof(float));
    float *probs = NULL, *dmask = NULL, *dropped = NULL;
    bool ok = scratch != NULL;
    if (ok && node) {
        probs = mmrec__tape_alloc(tape, c.batch * c.heads * tt * sizeof(float));
        ok = probs != NULL;
    }
    if (ok && drop) {
        dmask = mmrec__dropout_mask(tape, c.batch * c.heads * tt, dropout);
        dropped = dmask ? mmrec__tape_alloc(tape, c.batch * c.heads * tt * sizeof(float)) : NULL;
        ok = dropped != NULL;
    }
    if (!ok) return mmrec__tape_oom(tape, mark, func);
    c.probs = probs;
    c.dropped = dropped;
    c.dmask = dmask;
    if (node) *(mmrec__attn_ctx *)node->ctx = c;
    mmrec__attn_job job = {&c, qkv->data, key_mask ? key_mask->data : NULL, NULL, y->data, NULL,
                           scratch, scratch_len};
    mmrec__parallel_for(c.batch, parts, mmrec__attn_forward_chunk, &job);
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

/* ---- the same attention with its probabilities as a tensor ----
 * Two nodes instead of one, so that a loss on P reaches Q and K:
 *   "attention_probs": qkv -> P [B, H, tq, T] (backward: dS = softmax'(dP),
 *                      dQ += scale dS K, dK += scale dS^T Q);
 *   "attention_apply": P, qkv -> O [B, tq, d] = drop(P) V (backward:
 *                      dP += dO V^T (masked as the dropout), dV += P_d^T dO).
 * The one-node path above stays as it was for callers that do not ask. */

typedef struct mmrec__attn_probs_job {
    const mmrec__attn_ctx *c;
    const float *qkv, *key_mask, *probs, *dprobs, *dout;
    float *out, *dqkv, *dp_out;
    float *scratch;
    size_t scratch_len;
} mmrec__attn_probs_job;

static void mmrec__attn_probs_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__attn_probs_job *j = ctx;
    const mmrec__attn_ctx *c = j->c;
    size_t T = c->seq, tq = c->tq, d = c->dim, dh = c->dh, ld = 3 * d, tt = tq * T;
    float *rowbuf = j->scratch + (size_t)part * j->scratch_len, *s = rowbuf + T;
    for (size_t b = lo; b < hi; b++) {
        const float *km = j->key_mask ? j->key_mask + b * T : NULL;
        for (size_t h = 0; h < c->heads; h++) {
            const float *q = j->qkv + b * T * ld + h * dh, *k = q + d;
            float *p = j->out + (b * c->heads + h) * tt;
            mmrec__attn_nt(tq, T, dh, c->scale, q, ld, k, ld, false, s, T);
            for (size_t i = 0; i < tq; i++)
                mmrec__softmax_row(s + i * T, mmrec__attn_row_mask(c, km, i, rowbuf), 1,
                                   p + i * T, T, false);
        }
    }
}

static void mmrec__attn_probs_backward_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__attn_probs_job *j = ctx;
    const mmrec__attn_ctx *c = j->c;
    size_t T = c->seq, tq = c->tq, d = c->dim, dh = c->dh, ld = 3 * d, tt = tq * T;
    float *ds = j->scratch + (size_t)part * j->scratch_len;
    for (size_t b = lo; b < hi; b++) {
        for (size_t h = 0; h < c->heads; h++) {
            size_t bh = b * c->heads + h;
            const float *q = j->qkv + b * T * ld + h * dh, *k = q + d;
            float *dq = j->dqkv + b * T * ld + h * dh, *dk = dq + d;
            const float *p = j->probs + bh * tt, *dp = j->dprobs + bh * tt;
            mmrec__attn_scores_backward(c, p, dp, ds, q, k, dq, dk);
        }
    }
}

static mmrec_status mmrec__attn_probs_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__attn_ctx *c = node->ctx;
    mmrec_tensor *qkv = node->in[0];
    size_t tt = c->tq * c->seq;
    int parts = mmrec__parallel_parts(c->batch, mmrec__attn_grain(c));
    float *dqkv = mmrec__grad(tape, qkv);
    float *scratch = mmrec__tape_alloc(tape, (size_t)parts * tt * sizeof(float));
    if (dqkv == NULL || scratch == NULL) return MMREC_ENOMEM;
    mmrec__attn_probs_job job = {.c = c, .qkv = qkv->data, .probs = node->out->data,
                                 .dprobs = node->out->grad, .dqkv = dqkv, .scratch = scratch,
                                 .scratch_len = tt};
    mmrec__parallel_for(c->batch, parts, mmrec__attn_probs_backward_chunk, &job);
    return MMREC_OK;
}

static void mmrec__attn_apply_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__attn_probs_job *j = ctx;
    const mmrec__attn_ctx *c = j->c;
    size_t T = c->seq, tq = c->tq, d = c->dim, dh = c->dh, ld = 3 * d, tt = tq * T;
    (void)part;
    for (size_t b = lo; b < hi; b++) {
        for (size_t h = 0; h < c->heads; h++) {
            size_t bh = b * c->heads + h;
            const float *v = j->qkv + b * T * ld + 2 * d + h * dh;
            const float *pv = j->probs + bh * tt;
            if (c->dmask) {
                float *pd = c->dropped + bh * tt;
                const float *m = c->dmask + bh * tt;
                for (size_t i = 0; i < tt; i++) pd[i] = pv[i] * m[i];
                pv = pd;
            }
            mmrec__sgemm(false, false, tq, dh, T, 1.0f, pv, T, v, ld, 0.0f,
                         j->out + b * tq * d + h * dh, d);
        }
    }
}

static void mmrec__attn_apply_backward_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__attn_probs_job *j = ctx;
    const mmrec__attn_ctx *c = j->c;
    size_t T = c->seq, tq = c->tq, d = c->dim, dh = c->dh, ld = 3 * d, tt = tq * T;
    float *tmp = j->scratch + (size_t)part * j->scratch_len;
    for (size_t b = lo; b < hi; b++) {
        for (size_t h = 0; h < c->heads; h++) {
            size_t bh = b * c->heads + h;
            const float *v = j->qkv + b * T * ld + 2 * d + h * dh;
            float *dv = j->dqkv ? j->dqkv + b * T * ld + 2 * d + h * dh : NULL;
            const float *dO = j->dout + b * tq * d + h * dh;
            const float *pd = c->dropped ? c->dropped + bh * tt : j->probs + bh * tt;
            if (dv) mmrec__sgemm(true, false, T, dh, tq, 1.0f, pd, T, dO, d, 1.0f, dv, ld);
            if (j->dp_out == NULL) continue;
            float *dp = j->dp_out + bh * tt;
            if (c->dmask) {
                const float *m = c->dmask + bh * tt;
                mmrec__attn_nt(tq, T, dh, 1.0f, dO, d, v, ld, false, tmp, T);
                for (size_t i = 0; i < tt; i++) dp[i] += tmp[i] * m[i];
            } else {
                mmrec__attn_nt(tq, T, dh, 1.0f, dO, d, v, ld, true, dp, T);
            }
        }
    }
}

static mmrec_status mmrec__attn_apply_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__attn_ctx *c = node->ctx;
    mmrec_tensor *probs = node->in[0], *qkv = node->in[1];
    size_t tt = c->tq * c->seq;
    int parts = mmrec__parallel_parts(c->batch, mmrec__attn_grain(c));
    float *dp = NULL, *dqkv = NULL, *scratch = NULL;
    if (mmrec__requires_grad(probs) && (dp = mmrec__grad(tape, probs)) == NULL)
        return MMREC_ENOMEM;
    if (mmrec__requires_grad(qkv) && (dqkv = mmrec__grad(tape, qkv)) == NULL)
        return MMREC_ENOMEM;
    if (c->dmask && (scratch = mmrec__tape_alloc(tape, (size_t)parts * tt * sizeof(float))) == NULL)
        return MMREC_ENOMEM;
    mmrec__attn_probs_job job = {.c = c, .qkv = qkv->data, .probs = probs->data,
                                 .dout = node->out->grad, .dqkv = dqkv, .dp_out = dp,
                                 .scratch = scratch, .scratch_len = tt};
    mmrec__parallel_for(c->batch, parts, mmrec__attn_apply_backward_chunk, &job);
    return MMREC_OK;
}

mmrec_status mmrec__attention_probs(mmrec_tape *tape, const char *func, mmrec_tensor *qkv,
                                    mmrec_tensor *key_mask, int heads, bool causal,
                                    float dropout, int64_t query_rows, mmrec_tensor **out,
                                    mmrec_tensor **probs_out) {
    mmrec__attn_ctx c = {0};
    c.batch = (size_t)qkv->shape[0];
    c.seq = (size_t)qkv->shape[1];
    c.dim = (size_t)qkv->shape[2] / 3;
    c.heads = (size_t)heads;
    c.dh = c.dim / c.heads;
    c.scale = 1.0f / sqrtf((float)c.dh);
    c.causal = causal;
    c.tq = query_rows > 0 && (size_t)query_rows < c.seq ? (size_t)query_rows : c.seq;
    size_t T = c.seq, tt = c.tq * T;
    bool drop = tape->mode == MMREC_TAPE_TRAIN && dropout > 0.0f;

    int64_t pshape[4] = {(int64_t)c.batch, (int64_t)c.heads, (int64_t)c.tq, (int64_t)T};
    mmrec_tensor *pin[2] = {qkv, key_mask}, *p;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__op pop = {func, "attention_probs", mmrec__attn_probs_backward, pin,
                           key_mask ? 2 : 1, 1, NULL, sizeof c};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &pop, 4, pshape, false, &p, &node, &mark));
    int parts = mmrec__parallel_parts(c.batch, mmrec__attn_grain(&c));
    size_t scratch_len = T + tt;
    float *scratch = mmrec__tape_alloc(tape, (size_t)parts * scratch_len * sizeof(float));
    if (scratch == NULL) return mmrec__tape_oom(tape, mark, func);
    if (node) *(mmrec__attn_ctx *)node->ctx = c;
    mmrec__attn_probs_job job = {.c = &c, .qkv = qkv->data,
                                 .key_mask = key_mask ? key_mask->data : NULL, .out = p->data,
                                 .scratch = scratch, .scratch_len = scratch_len};
    mmrec__parallel_for(c.batch, parts, mmrec__attn_probs_chunk, &job);

    if (drop) {
        c.dmask = mmrec__dropout_mask(tape, c.batch * c.heads * tt, dropout);
        c.dropped = c.dmask ? mmrec__tape_alloc(tape, c.batch * c.heads * tt * sizeof(float))
                            : NULL;
        if (c.dropped == NULL) return mmrec__tape_oom(tape, mark, func);
    }
    int64_t shape[3] = {(int64_t)c.batch, (int64_t)c.tq, (int64_t)c.dim};
    mmrec_tensor *ain[2] = {p, qkv}, *y;
    const mmrec__op aop = {func, "attention_apply", mmrec__attn_apply_backward, ain, 2, 2, NULL,
                           sizeof c};
    mmrec_status s = mmrec__op_begin(tape, &aop, 3, shape, false, &y, &node, NULL);
    if (s != MMREC_OK) {
        mmrec__tape_rollback(tape, mark);
        return s;
    }
    if (node) *(mmrec__attn_ctx *)node->ctx = c;
    job.probs = p->data;
    job.out = y->data;
    mmrec__parallel_for(c.batch, parts, mmrec__attn_apply_chunk, &job);
    MMREC_FORWARD_IF(mmrec__op_end(tape, &pop, p, mark));
    MMREC_FORWARD_IF(mmrec__op_end(tape, &aop, y, mark));
    *out = y;
    *probs_out = p;
    return MMREC_OK;
}
