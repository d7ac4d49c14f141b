/* Batch softmax cross-entropy as one node (losses.h): scores
 * s_ij = <u_i, v_j> / tau + bias_j of query rows against candidate rows,
 * optionally L2-normalized, with a keep bitmask (the caller's mask and the
 * accidental hits; the positive always kept), row weights and the symmetric
 * form.
 *
 * Forward: the query rows go in blocks through one product
 * R = U_blk V^T / tau into a [rows, N] scratch block. Each row keeps its
 * maximum m_i and ls_i = log sum_j e^{s_ij - m_i}, so that
 * l_i = ls_i - (s_ip - m_i) and p_ij = e^{(s_ij - m_i) - ls_i} lose no
 * precision with large logits. The symmetric form also needs every
 * column's statistics over all rows: each part of the split keeps a running
 * maximum and a rescaled sum per column (the online log-sum-exp), merged
 * after the parts are done.
 * Row-wise loss on a recording tape: the loss is the tape's scalar, so its
 * gradient is g dS with dS_ij = c_i (p_ij - [j = p_i]) and g the upstream
 * one, known only in the backward. The forward turns each block, still in
 * the cache, into dS and takes dU_n = dS V / tau and dV_n = dS^T U / tau
 * (one accumulator per part, summed in part order) right away, for
 * g = 1; the backward scales them by g and takes them through the
 * normalization. Three products of the block instead of four, and no
 * second pass over the scores.
 * Symmetric loss: the column-wise term needs every row's statistics, so
 * the backward recomputes the block and turns it in place into dS (with
 * the column-wise term), then dU_blk = dS V / tau and dV += dS^T U_blk /
 * tau as above.
 * Memory: O((B + N) d) workspace, B * N bits of keep mask when there is
 * one, and one block per thread.
 * Reference: Yi et al., RecSys'19, Eq. 4 (METHODS-twotower.md section 2.3);
 * tests/golden/make_golden.py::write_batch_softmax (masked_fill with -inf
 * and torch.nn.functional.cross_entropy). */
#include "losses_internal.h"
#include "../core/config_sizes.h"
#include "../ops/fastmath.h"

#include <math.h>
#include <string.h>

#define MMREC__BSM_EPS 1e-12f
/* A scratch block holds about this many scores (1 MiB), in 4 .. 256 rows:
 * larger blocks amortize the products' packing of V (forward and backward
 * at B = N = 4096, d = 64, one thread: 145 ms in blocks of 16 rows, 101 ms
 * of 64, 93 ms of 256 at 4 MiB each; at B = N = 1024, normalized, 4.4 ms
 * in blocks of 64 rows, 4.2 ms of 256). */
#define MMREC__BSM_BLOCK_SCORES ((size_t)1 << 18)
#define MMREC__BSM_MIN_ROWS 4
#define MMREC__BSM_MAX_ROWS 256
/* Query rows are split over the pool in chunks of at least this much work
 * (multiply-adds, an exp counted as 16). */
#define MMREC__BSM_GRAIN ((size_t)1 << 18)
/* Independent partial results of a row reduction (one AVX-512 vector). */
#define MMREC__BSM_LANES 16

typedef struct mmrec__bsm_ctx {
    size_t batch, cands, dim;
    size_t words;            /* uint64 per keep row; 0 = every pair kept */
    size_t rows;             /* rows of a scratch block */
    float inv_tau;
    bool normalize, symmetric;
    float *qn, *cn;          /* normalized rows [B, d], [N, d] (normalize) */
    const float *qx, *cx;    /* the rows before normalization (the inputs') */
    float *bias;             /* [N]: the column bias, zeros without one */
    int64_t *pos;            /* [B]: positive columns */
    float *coef;             /* [B]: w_i / divisor, halved when symmetric */
    uint64_t *keep;          /* [B, words] or NULL */
    float *row_max, *row_ls; /* [B]: m_i and ls_i */
    bool eager;              /* the forward took the gradients below */
    float *dqn, *dcn;        /* [B, d], [N, d] or NULL: the gradients (g = 1)
                                of the scored rows, when eager */
    float *col_max, *col_ls; /* [N]: the same for the columns (symmetric) */
} mmrec__bsm_ctx;

/* One pass over the query rows, split over the pool. Per-part buffers are
 * indexed by the chunk's part. */
typedef struct mmrec__bsm_job {
    const mmrec__bsm_ctx *c;
    const float *u, *v;        /* the rows scored: normalized or the inputs' */
    float *block;              /* per part: rows * N scores */
    uint8_t *kbytes;           /* per part: rows * N keep flags (and as many
                                  of the transposed pairs when symmetric) */
    uint64_t *win;             /* per part: N words (symmetric with a mask) */
    float *cmax, *csum, *bmax; /* per part: N each (forward, symmetric) */
    float *loss, *spos;        /* [B]: l_i and s_ip (forward) */
    float g;                   /* upstream gradient (backward) */
    const float *ccoef;        /* [B]: g * coef (backward, symmetric) */
    float *dq;                 /* d_queries, or NULL (backward) */
    float *dqblk;              /* per part: rows * d (backward, normalize) */
    float *dv;                 /* per part: N * d, or NULL (backward; and the
                                  forward when eager, part 0's is c->dcn) */
} mmrec__bsm_job;

static size_t mmrec__bsm_grain(const mmrec__bsm_ctx *c) {
    return mmrec__grain(c->cands * (c->dim + 16), MMREC__BSM_GRAIN);
}

/* ---- keep flags of a block ---- */

/* The 8 bits of `bits` (< 256) as 8 bytes of 0 or 1, bit b in byte b of
 * the result (counting from the least significant): the byte b of
 * bits * 0x0101.. masked by 0x8040.. keeps bit b; adding 0x7f to each byte
 * carries a set one into the byte's top bit. */
static inline uint64_t mmrec__bsm_spread(uint64_t bits) {
    uint64_t t = (bits * 0x0101010101010101ull) & 0x8040201008040201ull;
    return ((t + 0x7f7f7f7f7f7f7f7full) >> 7) & 0x0101010101010101ull;
}

/* k[t * n + j] = bit j of keep row r0 + t, t < m. */
static void mmrec__bsm_keep_rows(const uint64_t *keep, size_t words, size_t r0, size_t m,
                                 size_t n, uint8_t *k) {
    for (size_t t = 0; t < m; t++) {
        const uint64_t *w = keep + (r0 + t) * words;
        uint8_t *kr = k + t * n;
        size_t n8 = n / 8;
        for (size_t g = 0; g < n8; g++) {
            uint64_t bytes = mmrec__bsm_spread((w[g >> 3] >> ((g & 7) * 8)) & 0xffu);
            for (int b = 0; b < 8; b++) kr[g * 8 + b] = (uint8_t)(bytes >> (8 * b));
        }
        for (size_t j = n8 * 8; j < n; j++) kr[j] = (uint8_t)((w[j >> 6] >> (j & 63)) & 1u);
    }
}

/* k[t * n + j] = bit r0 + t of keep row j (the transposed pairs), t < m;
 * win gets each keep row's next 64 bits, from r0 + t0 for every t0 = 0, 64,
 * ... */
MMREC__SIMD_CLONES
static void mmrec__bsm_keep_cols(const uint64_t *keep, size_t words, size_t r0, size_t m,
                                 size_t n, uint64_t *win, uint8_t *k) {
    for (size_t t0 = 0; t0 < m; t0 += 64) {
        size_t w0 = (r0 + t0) >> 6, sh = (r0 + t0) & 63, tn = m - t0 < 64 ? m - t0 : 64;
        bool next = sh != 0 && w0 + 1 < words;
        for (size_t j = 0; j < n; j++) {
            const uint64_t *w = keep + j * words + w0;
            win[j] = (w[0] >> sh) | (next ? w[1] << (64 - sh) : 0);
        }
        for (size_t t = 0; t < tn; t++)
            for (size_t j = 0; j < n; j++)
                k[(t0 + t) * n + j] = (uint8_t)((win[j] >> t) & 1u);
    }
}

/* ---- row and column kernels ---- */

/* A float's bits as an int32 of the same order (for every non-NaN value):
 * an integer maximum vectorizes where a float one would need to ignore
 * NaNs. */
static inline int32_t mmrec__bsm_ord(float f) {
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i ^ (int32_t)((uint32_t)(i >> 31) & 0x7fffffffu);
}

static inline float mmrec__bsm_ord_float(int32_t i) {
    i ^= (int32_t)((uint32_t)(i >> 31) & 0x7fffffffu);
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* The kernels below take keep flags k (1 = kept) or NULL for a pair set
 * without removals, each with its own loop so that both vectorize. */

/* The maximum of the kept x_j. */
MMREC__SIMD_CLONES
static float mmrec__bsm_row_max(const float *x, const uint8_t *k, size_t n) {
    int32_t none = mmrec__bsm_ord(-INFINITY), m = none;
    if (k == NULL) {
        for (size_t j = 0; j < n; j++) {
            int32_t v = mmrec__bsm_ord(x[j]);
            m = v > m ? v : m;
        }
    } else {
        for (size_t j = 0; j < n; j++) {
            int32_t v = k[j] ? mmrec__bsm_ord(x[j]) : none;
            m = v > m ? v : m;
        }
    }
    return mmrec__bsm_ord_float(m);
}

/* x_j = e^{x_j - m} where kept, else 0. */
MMREC__SIMD_CLONES
static void mmrec__bsm_row_exp(float *x, const uint8_t *k, float m, size_t n) {
    if (k == NULL)
        for (size_t j = 0; j < n; j++) x[j] = mmrec__exp(x[j] - m);
    else
        for (size_t j = 0; j < n; j++) x[j] = k[j] ? mmrec__exp(x[j] - m) : 0.0f;
}

/* sum_j x_j in independent lanes, combined pairwise: the same bits for
 * every instruction set. */
MMREC__SIMD_CLONES
static float mmrec__bsm_sum(const float *x, size_t n) {
    enum { L = MMREC__BSM_LANES };
    float acc[L] = {0};
    size_t nb = n - n % L;
    for (size_t j = 0; j < nb; j += L)
        for (int l = 0; l < L; l++) acc[l] += x[j + l];
    for (size_t j = nb; j < n; j++) acc[j - nb] += x[j];
    for (int w = L / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* Folds the m rows of a block into running column statistics of the
 * transposed scores t_ji = r_ij + bias_i (kept where kt, [m, n], or NULL):
 * the block's column maxima, the sums rescaled to the new maxima, then the
 * new terms. */
MMREC__SIMD_CLONES
static void mmrec__bsm_col_update(const float *r, const uint8_t *kt, const float *bias, size_t m,
                                  size_t n, float *bmax, float *cmax, float *csum) {
    for (size_t j = 0; j < n; j++) bmax[j] = -INFINITY;
    for (size_t t = 0; t < m; t++) {
        const float *x = r + t * n;
        float b = bias[t];
        if (kt == NULL) {
            for (size_t j = 0; j < n; j++) {
                float v = x[j] + b;
                bmax[j] = v > bmax[j] ? v : bmax[j];
            }
            continue;
        }
        const uint8_t *k = kt + t * n;
        for (size_t j = 0; j < n; j++) {
            float v = k[j] ? x[j] + b : -INFINITY;
            bmax[j] = v > bmax[j] ? v : bmax[j];
        }
    }
    for (size_t j = 0; j < n; j++) {
        float nm = bmax[j] > cmax[j] ? bmax[j] : cmax[j];
        csum[j] = nm > cmax[j] ? csum[j] * mmrec__exp(cmax[j] - nm) : csum[j];
        cmax[j] = nm;
    }
    for (size_t t = 0; t < m; t++) {
        const float *x = r + t * n;
        float b = bias[t];
        if (kt == NULL) {
            for (size_t j = 0; j < n; j++) csum[j] += mmrec__exp(x[j] + b - cmax[j]);
            continue;
        }
        const uint8_t *k = kt + t * n;
        for (size_t j = 0; j < n; j++) csum[j] += k[j] ? mmrec__exp(x[j] + b - cmax[j]) : 0.0f;
    }
}

/* Row x of raw scores r_j becomes a p_j, p the row's softmax. */
MMREC__SIMD_CLONES
static void mmrec__bsm_row_grad(float *x, const uint8_t *k, const float *bias, float m, float ls,
                                float a, size_t n) {
    if (k == NULL)
        for (size_t j = 0; j < n; j++) x[j] = a * mmrec__exp((x[j] + bias[j] - m) - ls);
    else
        for (size_t j = 0; j < n; j++)
            x[j] = a * (k[j] ? mmrec__exp((x[j] + bias[j] - m) - ls) : 0.0f);
}

/* The same plus the column-wise term ca_j q_ji, q_j the softmax of row j of
 * the transposed scores (r_j + bias_i of this row i). */
MMREC__SIMD_CLONES
static void mmrec__bsm_row_grad_sym(float *x, const uint8_t *k, const uint8_t *kt,
                                    const float *bias, float bias_i, float m, float ls, float a,
                                    const float *cmax, const float *cls, const float *ca,
                                    size_t n) {
    if (k == NULL) {
        for (size_t j = 0; j < n; j++) {
            float r = x[j];
            float p = mmrec__exp((r + bias[j] - m) - ls);
            float q = mmrec__exp((r + bias_i - cmax[j]) - cls[j]);
            x[j] = a * p + ca[j] * q;
        }
        return;
    }
    for (size_t j = 0; j < n; j++) {
        float r = x[j];
        float p = k[j] ? mmrec__exp((r + bias[j] - m) - ls) : 0.0f;
        float q = kt[j] ? mmrec__exp((r + bias_i - cmax[j]) - cls[j]) : 0.0f;
        x[j] = a * p + ca[j] * q;
    }
}

/* Row x of e^{s_j - m}, summing to `sum`, becomes dS_j = c (p_j - [j = pos]). */
MMREC__SIMD_CLONES
static void mmrec__bsm_row_dscores(float *x, float c, float sum, size_t pos, size_t n) {
    float a = c / sum;
    for (size_t j = 0; j < n; j++) x[j] *= a;
    x[pos] -= c;
}

/* ---- the passes ---- */

/* Scores of rows r0 .. r0 + m into the part's block, and its keep flags. */
static void mmrec__bsm_block(const mmrec__bsm_job *jb, size_t r0, size_t m, float *r, uint8_t *k,
                             uint8_t *kt, uint64_t *win) {
    const mmrec__bsm_ctx *c = jb->c;
    size_t n = c->cands, d = c->dim;
    mmrec__sgemm_serial(false, true, m, n, d, c->inv_tau, jb->u + r0 * d, d, jb->v, d, 0.0f, r,
                        n);
    if (c->keep == NULL) return;
    mmrec__bsm_keep_rows(c->keep, c->words, r0, m, n, k);
    if (c->symmetric) mmrec__bsm_keep_cols(c->keep, c->words, r0, m, n, win, kt);
}

/* The part's buffers. */
static void mmrec__bsm_part(const mmrec__bsm_job *jb, int part, float **r, uint8_t **k,
                            uint8_t **kt, uint64_t **win) {
    const mmrec__bsm_ctx *c = jb->c;
    size_t bn = c->rows * c->cands;
    *r = jb->block + (size_t)part * bn;
    *k = jb->kbytes ? jb->kbytes + (size_t)part * bn * (c->symmetric ? 2 : 1) : NULL;
    *kt = *k ? *k + bn : NULL;
    *win = jb->win ? jb->win + (size_t)part * c->cands : NULL;
}

static void mmrec__bsm_forward_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__bsm_job *jb = ctx;
    const mmrec__bsm_ctx *c = jb->c;
    size_t n = c->cands, d = c->dim, rows = c->rows;
    float *r;
    uint8_t *k, *kt;
    uint64_t *win;
    mmrec__bsm_part(jb, part, &r, &k, &kt, &win);
    size_t po = (size_t)part * n;
    for (size_t r0 = lo; r0 < hi; r0 += rows) {
        size_t m = hi - r0 < rows ? hi - r0 : rows;
        mmrec__bsm_block(jb, r0, m, r, k, kt, win);
        if (c->symmetric)
            mmrec__bsm_col_update(r, kt, c->bias + r0, m, n, jb->bmax + po, jb->cmax + po,
                                  jb->csum + po);
        for (size_t t = 0; t < m; t++) {
            size_t i = r0 + t;
            float *x = r + t * n;
            for (size_t j = 0; j < n; j++) x[j] += c->bias[j];
            const uint8_t *kr = k ? k + t * n : NULL;
            float sp = x[c->pos[i]], mx = mmrec__bsm_row_max(x, kr, n);
            mmrec__bsm_row_exp(x, kr, mx, n);
            float sum = mmrec__bsm_sum(x, n), ls = logf(sum);
            c->row_max[i] = mx;
            c->row_ls[i] = ls;
            jb->spos[i] = sp;
            jb->loss[i] = ls - (sp - mx);
            if (c->eager) mmrec__bsm_row_dscores(x, c->coef[i], sum, (size_t)c->pos[i], n);
        }
        if (!c->eager) continue;
        if (c->dqn)
            mmrec__sgemm_serial(false, false, m, d, n, c->inv_tau, r, n, jb->v, d, 0.0f,
                                c->dqn + r0 * d, d);
        if (c->dcn)
            mmrec__sgemm_serial(true, false, n, d, m, c->inv_tau, r, n, jb->u + r0 * d, d, 1.0f,
                                part == 0 ? c->dcn : jb->dv + (size_t)(part - 1) * n * d, d);
    }
}

static void mmrec__bsm_backward_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__bsm_job *jb = ctx;
    const mmrec__bsm_ctx *c = jb->c;
    size_t n = c->cands, d = c->dim, rows = c->rows;
    float *r;
    uint8_t *k, *kt;
    uint64_t *win;
    mmrec__bsm_part(jb, part, &r, &k, &kt, &win);
    float *dqblk = jb->dqblk ? jb->dqblk + (size_t)part * rows * d : NULL;
    float *dv = jb->dv ? jb->dv + (size_t)part * n * d : NULL;
    for (size_t r0 = lo; r0 < hi; r0 += rows) {
        size_t m = hi - r0 < rows ? hi - r0 : rows;
        mmrec__bsm_block(jb, r0, m, r, k, kt, win);
        for (size_t t = 0; t < m; t++) {
            size_t i = r0 + t;
            float *x = r + t * n, a = jb->g * c->coef[i];
            const uint8_t *kr = k ? k + t * n : NULL, *ktr = kt ? kt + t * n : NULL;
            if (c->symmetric) {
                mmrec__bsm_row_grad_sym(x, kr, ktr, c->bias, c->bias[i],
                                        c->row_max[i], c->row_ls[i], a, c->col_max, c->col_ls,
                                        jb->ccoef, n);
                x[i] -= jb->ccoef[i]; /* the transposed row i's positive */
            } else {
                mmrec__bsm_row_grad(x, kr, c->bias, c->row_max[i], c->row_ls[i], a, n);
            }
            x[c->pos[i]] -= a;
        }
        if (jb->dq && c->normalize) {
            mmrec__sgemm_serial(false, false, m, d, n, c->inv_tau, r, n, jb->v, d, 0.0f, dqblk,
                                d);
            for (size_t t = 0; t < m; t++)
                mmrec__l2n_row_backward(c->qx + (r0 + t) * d, dqblk + t * d, d, MMREC__BSM_EPS,
                                        jb->dq + (r0 + t) * d);
        } else if (jb->dq) {
            mmrec__sgemm_serial(false, false, m, d, n, c->inv_tau, r, n, jb->v, d, 1.0f,
                                jb->dq + r0 * d, d);
        }
        if (dv)
            mmrec__sgemm_serial(true, false, n, d, m, c->inv_tau, r, n, jb->u + r0 * d, d, 1.0f,
                                dv, d);
    }
}

/* Releases the arena past `mark` (a call's scratch) on success: unlike a
 * failed call's rollback it keeps the generator where the call left it,
 * after the draws of a mask (CIC's negatives). */
static void mmrec__bsm_release(mmrec_tape *tape, mmrec__tape_mark mark) {
    mark.rng = tape->rng;
    mmrec__tape_rollback(tape, mark);
}

/* The per-part block, keep flags and windows. false on OOM. */
static bool mmrec__bsm_scratch(mmrec_tape *tape, const mmrec__bsm_ctx *c, int parts,
                               mmrec__bsm_job *jb) {
    size_t bn = c->rows * c->cands, p = (size_t)parts;
    jb->block = mmrec__tape_alloc(tape, p * bn * sizeof(float));
    if (jb->block == NULL) return false;
    if (c->keep == NULL) return true;
    jb->kbytes = mmrec__tape_alloc(tape, p * bn * (c->symmetric ? 2 : 1));
    if (jb->kbytes == NULL) return false;
    if (c->symmetric) {
        jb->win = mmrec__tape_alloc(tape, p * c->cands * sizeof(uint64_t));
        if (jb->win == NULL) return false;
    }
    return true;
}

/* The eager backward: g times the forward's gradients, through the
 * normalization when there is one, for the rows of the queries (then of
 * the candidates) in [lo, hi). */
typedef struct mmrec__bsm_eager_job {
    const mmrec__bsm_ctx *c;
    float g;
    float *dq, *dv;  /* the inputs' gradients, or NULL */
    float *scaled;   /* per part: d floats (g != 1) */
} mmrec__bsm_eager_job;

static void mmrec__bsm_eager_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__bsm_eager_job *e = ctx;
    const mmrec__bsm_ctx *c = e->c;
    size_t B = c->batch, d = c->dim;
    float *tmp = e->scaled ? e->scaled + (size_t)part * d : NULL;
    for (size_t r = lo; r < hi; r++) {
        bool q = r < B;
        size_t i = q ? r : r - B;
        const float *src = q ? c->dqn : c->dcn;
        float *dst = q ? e->dq : e->dv;
        if (src == NULL || dst == NULL) continue;
        const float *gr = src + i * d;
        if (tmp) {
            for (size_t k = 0; k < d; k++) tmp[k] = e->g * gr[k];
            gr = tmp;
        }
        if (c->normalize)
            mmrec__l2n_row_backward((q ? c->qx : c->cx) + i * d, gr, d, MMREC__BSM_EPS,
                                    dst + i * d);
        else
            for (size_t k = 0; k < d; k++) dst[i * d + k] += gr[k];
    }
}

static mmrec_status mmrec__bsm_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__bsm_ctx *c = node->ctx;
    mmrec_tensor *qt = node->in[0], *vt = node->in[1];
    float *dq = NULL, *dv = NULL;
    if (mmrec__requires_grad(qt) && (dq = mmrec__grad(tape, qt)) == NULL) return MMREC_ENOMEM;
    if (mmrec__requires_grad(vt) && (dv = mmrec__grad(tape, vt)) == NULL) return MMREC_ENOMEM;
    if (c->eager) {
        size_t rows = c->batch + c->cands;
        int parts = mmrec__parallel_parts(rows, mmrec__grain(4 * c->dim, MMREC__BSM_GRAIN / 4));
        mmrec__bsm_eager_job e = {c, node->out->grad[0], dq, dv, NULL};
        mmrec__tape_mark scratch = mmrec__tape_mark_get(tape);
        if (e.g != 1.0f &&
            (e.scaled = mmrec__tape_alloc(tape, (size_t)parts * c->dim * sizeof(float))) == NULL)
            return MMREC_ENOMEM;
        mmrec__parallel_for(rows, parts, mmrec__bsm_eager_chunk, &e);
        mmrec__bsm_release(tape, scratch);
        return MMREC_OK;
    }
    size_t B = c->batch, n = c->cands, d = c->dim, grain = mmrec__bsm_grain(c);
    int parts = mmrec__parallel_parts(B, grain);
    mmrec__tape_mark scratch = mmrec__tape_mark_get(tape);
    mmrec__bsm_job jb = {.c = c, .g = node->out->grad[0], .dq = dq};
    jb.u = c->normalize ? c->qn : qt->data;
    jb.v = c->normalize ? c->cn : vt->data;
    bool ok = mmrec__bsm_scratch(tape, c, parts, &jb);
    if (ok && dq && c->normalize) {
        jb.dqblk = mmrec__tape_alloc(tape, (size_t)parts * c->rows * d * sizeof(float));
        ok = jb.dqblk != NULL;
    }
    if (ok && dv) {
        jb.dv = mmrec__tape_calloc(tape, (size_t)parts * n * d * sizeof(float));
        ok = jb.dv != NULL;
    }
    float *ca = NULL;
    if (ok && c->symmetric) ok = (ca = mmrec__tape_alloc(tape, B * sizeof *ca)) != NULL;
    if (!ok) {
        mmrec__bsm_release(tape, scratch);
        return MMREC_ENOMEM;
    }
    if (ca)
        for (size_t i = 0; i < B; i++) ca[i] = jb.g * c->coef[i];
    jb.ccoef = ca;
    mmrec__parallel_for(B, parts, mmrec__bsm_backward_chunk, &jb);
    if (dv) {
        float *acc = jb.dv;
        for (int p = 1; p < parts; p++)
            for (size_t e = 0; e < n * d; e++) acc[e] += jb.dv[(size_t)p * n * d + e];
        if (c->normalize)
            for (size_t j = 0; j < n; j++)
                mmrec__l2n_row_backward(c->cx + j * d, acc + j * d, d, MMREC__BSM_EPS,
                                        dv + j * d);
        else
            for (size_t e = 0; e < n * d; e++) dv[e] += acc[e];
    }
    mmrec__bsm_release(tape, scratch);
    return MMREC_OK;
}

/* keep: the caller's mask (or every pair), minus the accidental hits, plus
 * the positives. */
static void mmrec__bsm_fill_keep(const mmrec__batch_softmax_args *a, mmrec__bsm_ctx *c) {
    size_t B = c->batch, n = c->cands, words = c->words;
    if (a->mask) a->mask(a->mask_ctx, c->keep, words);
    else memset(c->keep, 0xff, B * words * sizeof *c->keep);
    for (size_t i = 0; i < B; i++) {
        uint64_t *w = c->keep + i * words;
        if (a->candidate_ids) {
            int64_t id = a->candidate_ids[c->pos[i]];
            for (size_t kw = 0; kw < words; kw++) {
                size_t j0 = kw * 64, len = n - j0 < 64 ? n - j0 : 64;
                uint64_t other = 0;
                for (size_t b = 0; b < len; b++)
                    other |= (uint64_t)(a->candidate_ids[j0 + b] != id) << b;
                w[kw] &= other;
            }
        }
        mmrec__batch_softmax_keep(c->keep, words, i, (size_t)c->pos[i]);
    }
}

/* The node's workspace: copies of the options and the normalized rows.
 * false on OOM. */
static bool mmrec__bsm_setup(mmrec_tape *tape, const mmrec_tensor *queries,
                             const mmrec_tensor *candidates, const mmrec__batch_softmax_args *a,
                             mmrec__bsm_ctx *c) {
    size_t B = (size_t)queries->shape[0], n = (size_t)candidates->shape[0];
    size_t d = (size_t)queries->shape[1];
    memset(c, 0, sizeof *c);
    c->batch = B;
    c->cands = n;
    c->dim = d;
    c->inv_tau = 1.0f / a->temperature;
    c->normalize = a->normalize;
    c->symmetric = a->symmetric;
    size_t rows = MMREC__BSM_BLOCK_SCORES / n;
    rows = rows < MMREC__BSM_MIN_ROWS ? MMREC__BSM_MIN_ROWS : rows;
    rows = rows > MMREC__BSM_MAX_ROWS ? MMREC__BSM_MAX_ROWS : rows;
    c->rows = rows < B ? rows : B;
    c->words = a->mask || a->candidate_ids ? (n + 63) / 64 : 0;
    c->bias = mmrec__tape_alloc(tape, n * sizeof *c->bias);
    c->pos = mmrec__tape_alloc(tape, B * sizeof *c->pos);
    c->coef = mmrec__tape_alloc(tape, B * sizeof *c->coef);
    c->row_max = mmrec__tape_alloc(tape, B * sizeof *c->row_max);
    c->row_ls = mmrec__tape_alloc(tape, B * sizeof *c->row_ls);
    bool ok = c->bias && c->pos && c->coef && c->row_max && c->row_ls;
    if (ok && c->symmetric) {
        c->col_max = mmrec__tape_alloc(tape, n * sizeof *c->col_max);
        c->col_ls = mmrec__tape_alloc(tape, n * sizeof *c->col_ls);
        ok = c->col_max && c->col_ls;
    }
    if (ok && c->normalize) {
        c->qn = mmrec__tape_alloc(tape, B * d * sizeof *c->qn);
        c->cn = mmrec__tape_alloc(tape, n * d * sizeof *c->cn);
        ok = c->qn && c->cn;
    }
    if (ok && c->words) ok = (c->keep = mmrec__tape_calloc(tape, B * c->words * 8)) != NULL;
    if (!ok) return false;

    if (a->column_bias) memcpy(c->bias, a->column_bias, n * sizeof *c->bias);
    else memset(c->bias, 0, n * sizeof *c->bias);
    for (size_t i = 0; i < B; i++) c->pos[i] = a->positives ? a->positives[i] : (int64_t)i;
    double total = 0.0;
    for (size_t i = 0; i < B; i++) total += a->row_weights ? a->row_weights[i] : 1.0;
    double divisor = a->weight_mean ? total : (double)B;
    double scale = (c->symmetric ? 0.5 : 1.0) / divisor;
    for (size_t i = 0; i < B; i++)
        c->coef[i] = divisor > 0.0 ? (float)((a->row_weights ? a->row_weights[i] : 1.0) * scale)
                                   : 0.0f;
    if (c->keep) mmrec__bsm_fill_keep(a, c);
    if (c->normalize) {
        c->qx = queries->data;
        c->cx = candidates->data;
        mmrec__l2n_rows(queries->data, B, d, MMREC__BSM_EPS, c->qn);
        mmrec__l2n_rows(candidates->data, n, d, MMREC__BSM_EPS, c->cn);
    }
    return true;
}

mmrec_status mmrec__loss_batch_softmax(mmrec_tape *tape, const char *func, mmrec_tensor *queries,
                                       mmrec_tensor *candidates,
                                       const mmrec__batch_softmax_args *args,
                                       mmrec_tensor **out) {
    int64_t one[1] = {1};
    mmrec_tensor *in[2] = {queries, candidates}, *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__op op = {func, "batch_softmax", mmrec__bsm_backward, in, 2, 0, NULL,
                          sizeof(mmrec__bsm_ctx)};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 1, one, false, &y, &node, &mark));
    /* The node's workspace, released with the scratch when nothing records. */
    mmrec__tape_mark work = mmrec__tape_mark_get(tape);
    mmrec__bsm_ctx c;
    if (!mmrec__bsm_setup(tape, queries, candidates, args, &c))
        return mmrec__tape_oom(tape, mark, func);
    size_t B = c.batch, n = c.cands, d = c.dim, grain = mmrec__bsm_grain(&c);
    c.eager = node != NULL && !c.symmetric;
    if (c.eager && mmrec__requires_grad(queries) &&
        (c.dqn = mmrec__tape_alloc(tape, B * d * sizeof(float))) == NULL)
        return mmrec__tape_oom(tape, mark, func);
    if (c.eager && mmrec__requires_grad(candidates) &&
        (c.dcn = mmrec__tape_calloc(tape, n * d * sizeof(float))) == NULL)
        return mmrec__tape_oom(tape, mark, func);
    int parts = mmrec__parallel_parts(B, grain);
    mmrec__tape_mark scratch = mmrec__tape_mark_get(tape);
    mmrec__bsm_job jb = {.c = &c};
    jb.u = c.normalize ? c.qn : queries->data;
    jb.v = c.normalize ? c.cn : candidates->data;
    bool ok = mmrec__bsm_scratch(tape, &c, parts, &jb);
    if (ok) {
        jb.loss = mmrec__tape_alloc(tape, B * sizeof *jb.loss);
        jb.spos = mmrec__tape_alloc(tape, B * sizeof *jb.spos);
        ok = jb.loss && jb.spos;
    }
    if (ok && c.dcn && parts > 1) {
        jb.dv = mmrec__tape_calloc(tape, (size_t)(parts - 1) * n * d * sizeof(float));
        ok = jb.dv != NULL;
    }
    if (ok && c.symmetric) {
        size_t pn = (size_t)parts * n * sizeof(float);
        jb.cmax = mmrec__tape_alloc(tape, pn);
        jb.csum = mmrec__tape_calloc(tape, pn);
        jb.bmax = mmrec__tape_alloc(tape, pn);
        ok = jb.cmax && jb.csum && jb.bmax;
        for (size_t e = 0; ok && e < (size_t)parts * n; e++) jb.cmax[e] = -INFINITY;
    }
    if (!ok) return mmrec__tape_oom(tape, mark, func);
    mmrec__parallel_for(B, parts, mmrec__bsm_forward_chunk, &jb);
    for (int p = 1; jb.dv && p < parts; p++) /* the parts' dV_n, in part order */
        for (size_t e = 0; e < n * d; e++) c.dcn[e] += jb.dv[(size_t)(p - 1) * n * d + e];
    if (c.symmetric) { /* merge the parts' column statistics */
        for (size_t j = 0; j < n; j++) {
            float mx = -INFINITY;
            for (int p = 0; p < parts; p++) {
                float v = jb.cmax[(size_t)p * n + j];
                mx = v > mx ? v : mx;
            }
            float sum = 0.0f;
            for (int p = 0; p < parts; p++) {
                float v = jb.cmax[(size_t)p * n + j];
                if (v > -INFINITY) sum += jb.csum[(size_t)p * n + j] * expf(v - mx);
            }
            c.col_max[j] = mx;
            c.col_ls[j] = logf(sum);
        }
    }
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        double l = jb.loss[i];
        if (c.symmetric) l += c.col_ls[i] - (jb.spos[i] - c.col_max[i]);
        if (c.coef[i] != 0.0f) total += (double)c.coef[i] * l;
    }
    y->data[0] = (float)total;
    if (node) {
        *(mmrec__bsm_ctx *)node->ctx = c;
        mmrec__bsm_release(tape, scratch);
    } else {
        mmrec__bsm_release(tape, work);
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

/* ---- the public entry ---- */

static const mmrec_batch_softmax_config mmrec__bsm_defaults = {
    .struct_size = sizeof(mmrec_batch_softmax_config),
    .temperature = 1.0f,
};

mmrec_status mmrec_batch_softmax_config_init_sized(mmrec_batch_softmax_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_batch_softmax_config, cfg, size, mmrec__bsm_defaults);
}

typedef struct mmrec__bsm_mask_src {
    const uint8_t *mask; /* [B, N] */
    size_t batch, cands;
} mmrec__bsm_mask_src;

/* Packs the caller's byte mask into keep bits. */
static void mmrec__bsm_pack_mask(void *ctx, uint64_t *keep, size_t words) {
    const mmrec__bsm_mask_src *s = ctx;
    size_t n = s->cands;
    for (size_t i = 0; i < s->batch; i++) {
        const uint8_t *row = s->mask + i * n;
        for (size_t kw = 0; kw < words; kw++) {
            size_t j0 = kw * 64, len = n - j0 < 64 ? n - j0 : 64;
            uint64_t bits = 0;
            for (size_t b = 0; b < len; b++) bits |= (uint64_t)(row[j0 + b] != 0) << b;
            keep[i * words + kw] = bits;
        }
    }
}

static mmrec_status mmrec__bsm_flag(const char *func, const char *name, int v) {
    if (v == 0 || v == 1) return MMREC_OK;
    return mmrec__set_error(MMREC_EINVAL, func, "cfg->%s is %d, must be 0 or 1", name, v);
}

mmrec_status mmrec__batch_softmax_config(const char *func, const mmrec_batch_softmax_config *cfg,
                                         size_t batch, size_t cands,
                                         mmrec_batch_softmax_config *c) {
    *c = mmrec__bsm_defaults;
    if (cfg != NULL)
        MMREC_FORWARD_IF(mmrec__config_merge(c, sizeof *c,
                                             MMREC__MIN_SIZE(mmrec_batch_softmax_config), cfg,
                                             func));
    size_t B = batch, n = cands, bn;
    MMREC_FAIL_IF_FOR(func, !(c->temperature > 0.0f) || !isfinite(c->temperature) ||
                                !isfinite(1.0f / c->temperature),
                      MMREC_EINVAL, "cfg->temperature is %g, must be > 0 with a finite inverse",
                      (double)c->temperature);
    MMREC_FORWARD_IF(mmrec__bsm_flag(func, "normalize", c->normalize));
    MMREC_FORWARD_IF(mmrec__bsm_flag(func, "symmetric", c->symmetric));
    MMREC_FORWARD_IF(mmrec__bsm_flag(func, "weight_mean", c->weight_mean));
    MMREC_FAIL_IF_FOR(func, c->symmetric && c->positives != NULL, MMREC_EINVAL,
                      "cfg->positives must be NULL with cfg->symmetric (the diagonal)");
    MMREC_FAIL_IF_FOR(func, !mmrec__mul_size(B, n, &bn), MMREC_EINVAL,
                      "%zu queries by %zu candidates is too large", B, n);
    for (size_t i = 0; c->positives && i < B; i++)
        MMREC_FAIL_IF_FOR(func, c->positives[i] < 0 || (uint64_t)c->positives[i] >= n,
                          MMREC_ERANGE,
                          "cfg->positives[%zu] is %lld, outside [0, %zu) (the candidate rows)",
                          i, (long long)c->positives[i], n);
    for (size_t j = 0; c->column_bias && j < n; j++)
        MMREC_FAIL_IF_FOR(func, !isfinite(c->column_bias[j]), MMREC_EINVAL,
                          "cfg->column_bias[%zu] is %g, must be finite", j,
                          (double)c->column_bias[j]);
    for (size_t i = 0; c->row_weights && i < B; i++)
        MMREC_FAIL_IF_FOR(func, !(c->row_weights[i] >= 0.0f) || !isfinite(c->row_weights[i]),
                          MMREC_EINVAL, "cfg->row_weights[%zu] is %g, must be finite and >= 0",
                          i, (double)c->row_weights[i]);
    return MMREC_OK;
}

mmrec_status mmrec_loss_batch_softmax(mmrec_tape *tape, mmrec_tensor *queries,
                                      mmrec_tensor *candidates,
                                      const mmrec_batch_softmax_config *cfg,
                                      mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, queries, candidates, out);
    if (queries->ndim != 2 || candidates->ndim != 2 || queries->shape[1] != candidates->shape[1])
        MMREC_FAIL_SHAPE2("queries must be [batch, dim] and candidates [candidates, dim]",
                          queries, candidates);
    MMREC_CHECK_FINITE(queries);
    MMREC_CHECK_FINITE(candidates);
    size_t B = (size_t)queries->shape[0], n = (size_t)candidates->shape[0];
    mmrec_batch_softmax_config c;
    MMREC_FORWARD_IF(mmrec__batch_softmax_config(__func__, cfg, B, n, &c));
    if (c.symmetric && n != B)
        MMREC_FAIL_SHAPE2("cfg->symmetric needs as many candidates as queries", queries,
                          candidates);
    if (c.positives == NULL && n < B)
        MMREC_FAIL_SHAPE2("without cfg->positives row i's positive is candidate i, so "
                          "candidates needs at least as many rows as queries",
                          queries, candidates);
    mmrec__bsm_mask_src src = {c.mask, B, n};
    mmrec__batch_softmax_args a = {
        .temperature = c.temperature,
        .normalize = c.normalize != 0,
        .symmetric = c.symmetric != 0,
        .weight_mean = c.weight_mean != 0,
        .column_bias = c.column_bias,
        .positives = c.positives,
        .candidate_ids = c.candidate_ids,
        .row_weights = c.row_weights,
        .mask = c.mask ? mmrec__bsm_pack_mask : NULL,
        .mask_ctx = &src,
    };
    return mmrec__loss_batch_softmax(tape, __func__, queries, candidates, &a, out);
}
