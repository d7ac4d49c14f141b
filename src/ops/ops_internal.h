/* Helpers shared by the op implementations. */
#ifndef MMREC_OPS_INTERNAL_H
#define MMREC_OPS_INTERNAL_H

#include "mmrec/ops.h"
#include "../autograd/autograd_internal.h"
#include "../kernels/kernels_internal.h"

/* Fails with MMREC_ESHAPE naming both shapes. */
#define MMREC_FAIL_SHAPE2(what, a, b)                                                \
    do {                                                                             \
        char mmrec__sa[64], mmrec__sb[64];                                           \
        MMREC_FAIL(MMREC_ESHAPE, "%s: %s is %s, %s is %s", what, #a,                 \
                   mmrec__shape_str((a), mmrec__sa, sizeof mmrec__sa), #b,           \
                   mmrec__shape_str((b), mmrec__sb, sizeof mmrec__sb));              \
    } while (0)

/* mmrec_gather_rows and mmrec_layer_norm on behalf of `func`: the public
 * function whose arguments they are (the Embedding and LayerNorm modules'
 * forwards), named in the messages. */
mmrec_status mmrec__gather_rows(const char *func, mmrec_tape *tape, mmrec_tensor *table,
                                const int64_t *ids, size_t n, mmrec_tensor **out) MMREC__WUR;
mmrec_status mmrec__layer_norm(const char *func, mmrec_tape *tape, mmrec_tensor *x,
                               mmrec_tensor *weight, mmrec_tensor *bias, float eps,
                               mmrec_tensor **out) MMREC__WUR;

/* Normalizes a possibly negative axis; false when out of range. */
static inline bool mmrec__axis(int axis, int ndim, int *out) {
    if (axis < 0) axis += ndim;
    if (axis < 0 || axis >= ndim) return false;
    *out = axis;
    return true;
}

/* Row reductions in double over MMREC__LANES independent accumulators,
 * lane k taking elements k, k + LANES, ..., added up in one fixed order at
 * the end. Each lane is its own sequence of additions, so the loops
 * vectorize without reassociation and every SIMD clone gives the same
 * bits; in double, a float32 row loses nothing to its offset or length
 * before the final rounding (DESIGN.md 6). */
#define MMREC__LANES 16

/* The lanes' total: pairwise, in a fixed order. */
static inline double mmrec__lanes_total(const double *acc) {
    double s8[8], s4[4];
    for (int k = 0; k < 8; k++) s8[k] = acc[k] + acc[k + 8];
    for (int k = 0; k < 4; k++) s4[k] = s8[k] + s8[k + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/* sum of x[0 .. n) */
static inline double mmrec__sum_wide(const float *x, size_t n) {
    double acc[MMREC__LANES] = {0};
    size_t j = 0;
    for (; j + MMREC__LANES <= n; j += MMREC__LANES)
        for (size_t k = 0; k < MMREC__LANES; k++) acc[k] += (double)x[j + k];
    for (size_t k = 0; j + k < n; k++) acc[k] += (double)x[j + k];
    return mmrec__lanes_total(acc);
}

/* sum of a[j] * b[j] (each product exact in double) */
static inline double mmrec__dot_wide(const float *a, const float *b, size_t n) {
    double acc[MMREC__LANES] = {0};
    size_t j = 0;
    for (; j + MMREC__LANES <= n; j += MMREC__LANES)
        for (size_t k = 0; k < MMREC__LANES; k++) acc[k] += (double)a[j + k] * (double)b[j + k];
    for (size_t k = 0; j + k < n; k++) acc[k] += (double)a[j + k] * (double)b[j + k];
    return mmrec__lanes_total(acc);
}

/* Activation kernels, shared with the fused layers of src/modules. */
typedef enum mmrec__act {
    MMREC__ACT_RELU,
    MMREC__ACT_GELU_ERF,
    MMREC__ACT_GELU_TANH,
    MMREC__ACT_SIGMOID,
    MMREC__ACT_TANH
} mmrec__act;

/* y = act(x) over n elements. */
void mmrec__act_forward(mmrec__act act, const float *x, float *y, size_t n);
/* dx += dy * act'(x); y is the forward output (sigmoid and tanh use it). */
void mmrec__act_backward(mmrec__act act, const float *x, const float *y, const float *dy,
                         float *dx, size_t n);

/* A row's log-sum-exp kept as its two parts, lse = max + log_sum. The sum
 * is never formed: with logits near 1e4, max + log_sum rounds to a multiple
 * of 2^-10 and x - lse loses the low bits of log_sum. Log-softmax is
 * (x - max) - log_sum, as mmrec__log_softmax_at computes it. */
typedef struct mmrec__row_lse {
    float max;      /* of the kept positions; -INFINITY when none is kept */
    double log_sum; /* log(sum of exp(x - max) over the kept positions) */
} mmrec__row_lse;

/* log softmax(x)[j] for x = x[j] of a row with log-sum-exp `lse`. */
static inline double mmrec__log_softmax_at(mmrec__row_lse lse, float x) {
    return ((double)x - (double)lse.max) - lse.log_sum;
}

/* Softmax (or log-softmax) of one row of n; mask (may be NULL) read at
 * mask[j * mask_stride], 0 = removed. Returns the row's log-sum-exp in its
 * two parts. The exponentials are summed in double. */
mmrec__row_lse mmrec__softmax_row(const float *x, const float *mask, size_t mask_stride,
                                  float *y, size_t n, bool log);
/* dx += the row's input gradient from its output y and dy. */
void mmrec__softmax_row_backward(const float *y, const float *dy, float *dx, size_t n, bool log);

/* y = x / max(||x||, eps) row by row, `rows` rows of n (the norm summed in
 * double; a NaN in a row gives a NaN row, as torch's F.normalize). */
void mmrec__l2n_rows(const float *x, size_t rows, size_t n, float eps, float *y);
/* dx += the gradient through that normalization of one row x of n, g the
 * gradient of its output. */
void mmrec__l2n_row_backward(const float *x, const float *g, size_t n, float eps, float *dx);

/* Layer normalization of `rows` rows of n: y = (x - mean) * rstd * w + b
 * (w, b may be NULL); stores each row's mean (double: a row far from 0
 * keeps the bits a float mean would round away) and rstd. Two passes, row
 * sums in double lanes. */
void mmrec__layer_norm_rows(const float *x, const float *w, const float *b, float eps,
                            size_t rows, size_t n, float *y, double *mean, float *rstd);
/* Backward of the above: dx (may be NULL), dw, db (may be NULL) += ... */
void mmrec__layer_norm_rows_backward(const float *x, const float *w, const double *mean,
                                     const float *rstd, const float *dy, size_t rows, size_t n,
                                     float *dx, float *dw, float *db);

/* A dropout mask of n scales (0 or 1/(1-p)) drawn from the tape's
 * generator, in the arena; NULL on OOM. */
float *mmrec__dropout_mask(mmrec_tape *tape, size_t n, float p);

/* Numpy broadcasting of up to two operands onto an output, in 4 padded
 * dims: element (i0,i1,i2,i3) of the output reads a at sum(i * sa) and b at
 * sum(i * sb) (stride 0 along a broadcast dim). */
typedef struct mmrec__bcast {
    int ndim;                          /* of the output */
    int64_t shape[MMREC_MAX_DIMS];     /* output shape, unpadded */
    int64_t n[MMREC_MAX_DIMS];         /* padded output sizes */
    int64_t sa[MMREC_MAX_DIMS], sb[MMREC_MAX_DIMS];
} mmrec__bcast;

/* dst += src over n floats (distinct buffers), split over the pool:
 * element-wise, so the same bits for any split. */
void mmrec__add_into(float *dst, const float *src, size_t n);

/* Fills `bc` for a op b; false when the shapes do not broadcast. */
bool mmrec__bcast_init(mmrec__bcast *bc, const mmrec_tensor *a, const mmrec_tensor *b);

/* Visits the output in order; the innermost dim runs `n[3]` elements with
 * strides sa[3], sb[3] from offsets oa, ob at output offset oy. */
#define MMREC__BCAST_LOOP(bc, BODY)                                                     \
    MMREC__BCAST_RANGE(bc, 0, (size_t)((bc)->n[0] * (bc)->n[1] * (bc)->n[2]), BODY)

/* The same over the runs [lo, hi) of the n[0] * n[1] * n[2] runs of n[3]
 * output elements, in order: a part of the loop for the pool. */
#define MMREC__BCAST_RANGE(bc, lo, hi, BODY)                                            \
    do {                                                                                \
        size_t first = (lo), n3 = (size_t)(bc)->n[3];                                   \
        size_t s3a = (size_t)(bc)->sa[3], s3b = (size_t)(bc)->sb[3];                    \
        if (first >= (hi)) break; /* no runs (n[2] may be 0) */                         \
        size_t oy = first * n3, n2 = (size_t)(bc)->n[2], n1 = (size_t)(bc)->n[1];      \
        int64_t i2 = (int64_t)(first % n2), i1 = (int64_t)(first / n2 % n1);            \
        int64_t i0 = (int64_t)(first / n2 / n1);                                        \
        for (size_t run = first; run < (hi); run++) {                                   \
            size_t oa = (size_t)(i0 * (bc)->sa[0] + i1 * (bc)->sa[1] + i2 * (bc)->sa[2]); \
            size_t ob = (size_t)(i0 * (bc)->sb[0] + i1 * (bc)->sb[1] + i2 * (bc)->sb[2]); \
            (void)oa, (void)ob, (void)s3a, (void)s3b;                                   \
            BODY;                                                                       \
            oy += n3;                                                                   \
            if (++i2 == (int64_t)n2) {                                                  \
                i2 = 0;                                                                 \
                if (++i1 == (int64_t)n1) i1 = 0, i0++;                                  \
            }                                                                           \
        }                                                                               \
    } while (0)

#endif
