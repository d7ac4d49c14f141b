/* The row scorer of the serving index (kernels_internal.h): a few
 * queries against consecutive rows, each score
 * summed in 16 lanes (lane l takes the elements l, l + 16, ... in order,
 * starting from zero) and the lanes added pairwise in a fixed tree (l and
 * l + 8, then l + 4, l + 2, l + 1). The order depends only on dim, so a
 * row's score is the same wherever it lies in a block.
 *
 * Two implementations give the same bits: the portable loop (compiled for
 * AVX-512, AVX2 and the baseline; the build does not contract
 * multiply-adds), and, when dim is a multiple of 16 and the CPU has
 * AVX-512F, a kernel that scores 16 rows at once and does the 16 trees
 * together, transposing as it adds (4 steps of shuffles and adds give a
 * vector of the 16 scores), so the rows stream from memory with a few
 * instructions per row. The kernel also reads float16 and bfloat16 rows,
 * widening them exactly in registers, so 16-bit storage is read once, at
 * half the bytes, with the scores of its widened float32 rows. */
#include "kernels_internal.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MMREC__DOT_AVX512 1
#endif

#define MMREC__DOT_LANES 16

MMREC__SIMD_CLONES
static void mmrec__dot_rows_generic(const float *query, const float *rows, size_t n, size_t dim,
                                    float *out) {
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

#ifdef MMREC__DOT_AVX512
/* Element types the kernel reads, widened exactly to float32. */
enum { MMREC__DOT_F32, MMREC__DOT_F16, MMREC__DOT_BF16 };

__attribute__((target("avx512f"), always_inline)) static inline __m512
mmrec__dot_load(const void *rows, size_t at, int type) {
    if (type == MMREC__DOT_F32) return _mm512_loadu_ps((const float *)rows + at);
    __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)((const uint16_t *)rows + at));
    if (type == MMREC__DOT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The 16 lanes of row i, as the portable loop sums them. */
__attribute__((target("avx512f"), always_inline)) static inline __m512
mmrec__dot_lanes(const float *query, const void *rows, size_t i, size_t dim, int type) {
    __m512 acc = _mm512_setzero_ps();
    for (size_t k = 0; k < dim; k += 16)
        acc = _mm512_add_ps(acc, _mm512_mul_ps(mmrec__dot_load(rows, i * dim + k, type),
                                               _mm512_loadu_ps(query + k)));
    return acc;
}

/* Tree step w = 8 for rows a and b: lanes 0-7 a[l] + a[l + 8], 8-15 b's. */
__attribute__((target("avx512f"), always_inline)) static inline __m512
mmrec__dot_half(__m512 a, __m512 b) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}

/* Scores rows [i, i + 16) into out[i .. i + 16); dim a multiple of 16. */
__attribute__((target("avx512f"), always_inline)) static inline void
mmrec__dot16(const float *query, const void *rows, size_t i, size_t dim, float *out, int type) {
    __m512 h[8], e[4];
    for (size_t p = 0; p < 8; p++) /* w = 8: rows 2p, 2p + 1 */
        h[p] = mmrec__dot_half(mmrec__dot_lanes(query, rows, i + 2 * p, dim, type),
                               mmrec__dot_lanes(query, rows, i + 2 * p + 1, dim, type));
    for (int p = 0; p < 4; p++) /* w = 4: chunk c of e[p] is row 4p + c */
        e[p] = _mm512_add_ps(_mm512_shuffle_f32x4(h[2 * p], h[2 * p + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(h[2 * p], h[2 * p + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    __m512 g[2];
    for (int p = 0; p < 2; p++) { /* w = 2: chunk c holds rows 8p + c, 8p + 4 + c */
        __m512d a = _mm512_castps_pd(e[2 * p]), b = _mm512_castps_pd(e[2 * p + 1]);
        g[p] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    /* w = 1: lane 4c + j is row 4j + c */
    __m512 s = _mm512_add_ps(_mm512_shuffle_ps(g[0], g[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(g[0], g[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    _mm512_storeu_ps(out + i, _mm512_permutexvar_ps(order, s));
}

/* Every row: 16 at a time, then the rest one by one with the portable
 * loop's tree. */
__attribute__((target("avx512f"), always_inline)) static inline void
mmrec__dot_all(const float *queries, size_t nq, const void *rows, size_t n, size_t dim,
               float *out, size_t ld, int type) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) /* the 16 rows stay in L1 for every query */
        for (size_t q = 0; q < nq; q++)
            mmrec__dot16(queries + q * dim, rows, i, dim, out + q * ld, type);
    for (; i < n; i++)
        for (size_t q = 0; q < nq; q++) {
            float acc[MMREC__DOT_LANES];
            _mm512_storeu_ps(acc, mmrec__dot_lanes(queries + q * dim, rows, i, dim, type));
            for (size_t w = MMREC__DOT_LANES / 2; w >= 1; w /= 2)
                for (size_t l = 0; l < w; l++) acc[l] += acc[l + w];
            out[q * ld + i] = acc[0];
        }
}

__attribute__((target("avx512f"))) static void mmrec__dot_f32(const float *queries, size_t nq,
                                                              const void *rows, size_t n,
                                                              size_t dim, float *out,
                                                              size_t ld) {
    mmrec__dot_all(queries, nq, rows, n, dim, out, ld, MMREC__DOT_F32);
}
__attribute__((target("avx512f,f16c"))) static void mmrec__dot_f16(const float *queries,
                                                                   size_t nq, const void *rows,
                                                                   size_t n, size_t dim,
                                                                   float *out, size_t ld) {
    mmrec__dot_all(queries, nq, rows, n, dim, out, ld, MMREC__DOT_F16);
}
__attribute__((target("avx512f"))) static void mmrec__dot_bf16(const float *queries, size_t nq,
                                                               const void *rows, size_t n,
                                                               size_t dim, float *out,
                                                               size_t ld) {
    mmrec__dot_all(queries, nq, rows, n, dim, out, ld, MMREC__DOT_BF16);
}

static bool mmrec__dot_avx512_usable(void) {
    return __builtin_cpu_supports("avx512f") && mmrec__cpu_has_f16c();
}
#endif

void mmrec__dot_rows(const float *queries, size_t num_queries, const float *rows, size_t n,
                     size_t dim, float *out, size_t ld_out) {
#ifdef MMREC__DOT_AVX512
    if (dim % 16 == 0 && mmrec__dot_avx512_usable()) {
        mmrec__dot_f32(queries, num_queries, rows, n, dim, out, ld_out);
        return;
    }
#endif
    for (size_t q = 0; q < num_queries; q++)
        mmrec__dot_rows_generic(queries + q * dim, rows, n, dim, out + q * ld_out);
}

bool mmrec__dot_half_usable(size_t dim) {
#ifdef MMREC__DOT_AVX512
    return dim % 16 == 0 && mmrec__dot_avx512_usable();
#else
    (void)dim;
    return false;
#endif
}

bool mmrec__dot_rows_half(const float *queries, size_t num_queries, const uint16_t *rows,
                          bool bf16, size_t n, size_t dim, float *out, size_t ld_out) {
#ifdef MMREC__DOT_AVX512
    if (dim % 16 == 0 && mmrec__dot_avx512_usable()) {
        if (bf16) mmrec__dot_bf16(queries, num_queries, rows, n, dim, out, ld_out);
        else mmrec__dot_f16(queries, num_queries, rows, n, dim, out, ld_out);
        return true;
    }
#else
    (void)queries, (void)num_queries, (void)rows, (void)bf16, (void)n, (void)dim, (void)out;
    (void)ld_out;
#endif
    return false;
}

void mmrec__dot_rows_portable(const float *queries, size_t num_queries, const float *rows,
                              size_t n, size_t dim, float *out, size_t ld_out) {
    for (size_t q = 0; q < num_queries; q++)
        mmrec__dot_rows_generic(queries + q * dim, rows, n, dim, out + q * ld_out);
}
