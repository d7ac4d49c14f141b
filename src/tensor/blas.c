/* CBLAS wrappers: OpenBLAS by default, BLIS with `make BLAS=blis`. */
#include "blas.h"
#include "../core/core_internal.h"

#include <cblas.h>
#if defined(MMREC_BLAS_BLIS)
#include <blis.h>
#endif

void mmrec__sgemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                  const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                  size_t ldc) {
    if (m == 0 || n == 0) return;
    mmrec__blas_threads_sync();
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda,
                b, (int)ldb, beta, c, (int)ldc);
}

void mmrec__saxpy(size_t n, float alpha, const float *x, float *y) {
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

void mmrec__blas_set_threads(int num_threads) {
#if defined(MMREC_BLAS_BLIS)
    bli_thread_set_num_threads(num_threads);
#else
    openblas_set_num_threads(num_threads);
#endif
}
