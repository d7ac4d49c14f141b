/* The row scorer of the serving index's single-query search
 * (kernels_internal.h): one query against consecutive rows, each score
 * summed in 16 lanes (lane l takes the elements l, l + 16, ...) and the
 * lanes added pairwise in a fixed tree. The order depends only on dim, so
 * a row's score is the same wherever it lies in a block and whichever
 * clone (AVX-512, AVX2, baseline) runs it: the build does not contract
 * multiply-adds. */
#include "kernels_internal.h"

#define MMREC__DOT_LANES 16

MMREC__SIMD_CLONES
void mmrec__dot_rows(const float *query, const float *rows, size_t n, size_t dim, float *out) {
    size_t body = dim & ~(size_t)(MMREC__DOT_LANES - 1);
    for (size_t i = 0; i < n; i++) {
        const float *r = rows + i * dim;
        float acc[MMREC__DOT_LANES] = {0};
        for (size_t k = 0; k < body; k += MMREC__DOT_LANES)
            for (size_t l = 0; l < MMREC__DOT_LANES; l++) acc[l] += r[k + l] * query[k + l];
        for (size_t k = body; k < dim; k++) acc[k - body] += r[k] * query[k];
        for (size_t w = MMREC__DOT_LANES / 2; w >= 1; w /= 2)
            for (size_t l = 0; l < w; l++) acc[l] += acc[l + w];
        out[i] = acc[0];
    }
}
