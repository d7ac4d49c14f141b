/* The one BLAS boundary: every matrix product in the library goes through
 * these wrappers (row-major, float32). */
#ifndef MMREC_BLAS_H
#define MMREC_BLAS_H

#include <stdbool.h>
#include <stddef.h>

/* C = alpha * op(A) op(B) + beta * C, row-major; op(A) is [m,k], op(B) [k,n]. */
void mmrec__sgemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                  const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                  size_t ldc);

/* The same product in one call on the calling thread, never split over the
 * pool: BLAS's blocking, and so the last bits, change with a split, so a
 * caller that splits its own work over the pool uses this to get results
 * that do not depend on the thread count. */
void mmrec__sgemm_serial(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                         const float *a, size_t lda, const float *b, size_t ldb, float beta,
                         float *c, size_t ldc);

/* y += alpha * x */
void mmrec__saxpy(size_t n, float alpha, const float *x, float *y);

/* Tells the BLAS library how many threads to use. */
void mmrec__blas_set_threads(int num_threads);

#endif
