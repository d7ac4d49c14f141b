/* CBLAS wrappers: OpenBLAS by default, BLIS with `make BLAS=blis`. */
#include "kernels_internal.h"

#include <cblas.h>
#include <stdatomic.h>
#include <string.h>
#if defined(MMREC_BLAS_BLIS)
#include <blis.h>
#endif

/* Products this small cost less than a BLAS call's dispatch and thread
 * wake-up (attention over short sequences issues thousands of them). */
#define MMREC__SMALL_GEMM 32768

MMREC__SIMD_CLONES
static void mmrec__sgemm_small(bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                               float alpha, const float *a, size_t lda, const float *b,
                               size_t ldb, float beta, float *c, size_t ldc) {
    float bt[4096];
    if (trans_b && n * k <= sizeof bt / sizeof *bt) {
        /* Transpose B once so the inner loop runs along contiguous rows. */
        for (size_t j = 0; j < n; j++)
            for (size_t p = 0; p < k; p++) bt[p * n + j] = b[j * ldb + p];
        b = bt;
        ldb = n;
        trans_b = false;
    }
    for (size_t i = 0; i < m; i++) {
        float *crow = c + i * ldc;
        if (trans_b) {
            for (size_t j = 0; j < n; j++) {
                const float *brow = b + j * ldb;
                float s = 0.0f;
                if (trans_a)
                    for (size_t p = 0; p < k; p++) s += a[p * lda + i] * brow[p];
                else
                    for (size_t p = 0; p < k; p++) s += a[i * lda + p] * brow[p];
                crow[j] = beta == 0.0f ? alpha * s : alpha * s + beta * crow[j];
            }
            continue;
        }
        if (beta == 0.0f)
            for (size_t j = 0; j < n; j++) crow[j] = 0.0f;
        else if (beta != 1.0f)
            for (size_t j = 0; j < n; j++) crow[j] *= beta;
        for (size_t p = 0; p < k; p++) {
            float av = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);
            const float *brow = b + p * ldb;
            for (size_t j = 0; j < n; j++) crow[j] += av * brow[j];
        }
    }
}

static void mmrec__sgemm_blas(bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                              float alpha, const float *a, size_t lda, const float *b,
                              size_t ldb, float beta, float *c, size_t ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda,
                b, (int)ldb, beta, c, (int)ldc);
}

/* A product split over the pool by rows of C (m >= n) or by columns. */
typedef struct mmrec__gemm_job {
    bool trans_a, trans_b, by_rows;
    size_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
    const float *bias; /* [n], copied into every row of the part's C first */
} mmrec__gemm_job;

/* C[r, j] = bias[j] for the rows [r0, r1) and columns [j0, j1). */
static void mmrec__fill_rows(float *c, size_t ldc, const float *bias, size_t r0, size_t r1,
                             size_t j0, size_t j1) {
    for (size_t r = r0; r < r1; r++) memcpy(c + r * ldc + j0, bias + j0, (j1 - j0) * sizeof *c);
}

static void mmrec__gemm_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__gemm_job *j = ctx;
    (void)part;
    if (j->bias) {
        if (j->by_rows)
            mmrec__fill_rows(j->c, j->ldc, j->bias, lo, hi, 0, j->n);
        else
            mmrec__fill_rows(j->c, j->ldc, j->bias, 0, j->m, lo, hi);
    }
    if (j->by_rows)
        mmrec__sgemm_blas(j->trans_a, j->trans_b, hi - lo, j->n, j->k, j->alpha,
                          j->trans_a ? j->a + lo : j->a + lo * j->lda, j->lda, j->b, j->ldb,
                          j->beta, j->c + lo * j->ldc, j->ldc);
    else
        mmrec__sgemm_blas(j->trans_a, j->trans_b, j->m, hi - lo, j->k, j->alpha, j->a, j->lda,
                          j->trans_b ? j->b + lo * j->ldb : j->b + lo, j->ldb, j->beta,
                          j->c + lo, j->ldc);
}

/* Products of at least this many multiply-adds are split over threads,
 * each part at least half of it. */
#define MMREC__SPLIT_GEMM ((size_t)1 << 18)

void mmrec__sgemm_serial(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                         const float *a, size_t lda, const float *b, size_t ldb, float beta,
                         float *c, size_t ldc) {
    if (m == 0 || n == 0) return;
    if (m * n * k <= MMREC__SMALL_GEMM) {
        mmrec__sgemm_small(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    mmrec__blas_threads_sync();
    mmrec__sgemm_blas(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* mmrec__sgemm, or with `bias` C = bias (in every row) + alpha op(A) op(B),
 * each part filling its own rows or columns first (beta is then 1). */
static void mmrec__sgemm_split(bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                               float alpha, const float *a, size_t lda, const float *b,
                               size_t ldb, float beta, float *c, size_t ldc, const float *bias) {
    if (m == 0 || n == 0) return;
    size_t macs = m * n * k;
    if (macs < MMREC__SPLIT_GEMM) {
        if (bias) mmrec__fill_rows(c, ldc, bias, 0, m, 0, n);
        mmrec__sgemm_serial(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    mmrec__blas_threads_sync();
    mmrec__gemm_job j = {trans_a, trans_b, m >= n, m, n, k, lda, ldb, ldc, alpha, beta,
                         a,       b,       c,      bias};
    size_t len = j.by_rows ? m : n, other = macs / len;
    size_t grain = (MMREC__SPLIT_GEMM / 2 + other - 1) / other;
    mmrec__parallel_for(len, mmrec__parallel_parts(len, grain < 16 ? 16 : grain), mmrec__gemm_chunk,
                        &j);
}

void mmrec__sgemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                  const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                  size_t ldc) {
    mmrec__sgemm_split(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL);
}

void mmrec__sgemm_bias(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                       const float *a, size_t lda, const float *b, size_t ldb, const float *bias,
                       float *c, size_t ldc) {
    mmrec__sgemm_split(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, 1.0f, c, ldc, bias);
}


static atomic_int mmrec__blas_single = 0; /* BLAS set to one thread */

void mmrec__blas_threads_sync(void) {
    if (atomic_load_explicit(&mmrec__blas_single, memory_order_relaxed)) return;
#if defined(MMREC_BLAS_BLIS)
    bli_thread_set_num_threads(1);
#else
    openblas_set_num_threads(1);
#endif
    atomic_store(&mmrec__blas_single, 1);
}
