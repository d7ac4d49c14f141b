/* The AVX-512 scorer of full ranking (kernels_internal.h, used by
 * metrics/ranking.c): a block of 64 users against runs of 6 consecutive items. The
 * 64 x 6 scores of a run live in 24 registers of 16 floats (users across
 * lanes, an item's value broadcast) and are compared there with each user's
 * threshold, the K-th best score kept so far; only a run holding a score
 * above its user's threshold is written out and returned to the caller, so
 * once the users' top K fill up almost no score leaves the registers.
 *
 * Each score is one fused multiply-add chain over the dimensions in order,
 * starting from zero, whatever the score's place in the block. OpenBLAS's
 * sgemm sums most entries that way but not all (some rows of its
 * micro-tiles use two interleaved chains: about 8% of the scores of the
 * BLAS path differ in the last bit here), so an evaluation uses one scorer
 * for all its scores, and the tests compare the two on exactly
 * representable data. Compiled for AVX-512F by a function attribute, whatever the build
 * flags, and used only when the CPU has it (mmrec__score_kernel_usable). */
#include "kernels_internal.h"

#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MMREC__SCORE_AVX512 1
#endif

/* The block's users, [dim, 64] floats (64 KiB at most), stay in L1/L2. */
#define MMREC__SCORE_MAX_DIM 256
/* Runs ahead whose item rows are prefetched: the rows are read strided
 * (six at once), which the hardware prefetchers follow poorly (measured:
 * 130 -> 200 GFLOP/s per core on Zen 5 with 10 MiB of items). */
#define MMREC__SCORE_PREFETCH 2

bool mmrec__score_avx2_usable(size_t dim) {
#ifdef MMREC__SCORE_AVX512
    return dim <= MMREC__SCORE_MAX_DIM && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
#else
    (void)dim;
    return false;
#endif
}

bool mmrec__score_kernel_usable(size_t dim) {
#ifdef MMREC__SCORE_AVX512
    return dim <= MMREC__SCORE_MAX_DIM && __builtin_cpu_supports("avx512f");
#else
    (void)dim;
    return false;
#endif
}

void mmrec__score_pack_users(float *dst, const float *user_emb, size_t dim, const int64_t *ids,
                             size_t n) {
    assert(n <= MMREC__SCORE_USERS);
    for (size_t k = 0; k < dim; k++)
        for (size_t r = 0; r < MMREC__SCORE_USERS; r++)
            dst[k * MMREC__SCORE_USERS + r] = r < n ? user_emb[(size_t)ids[r] * dim + k] : 0.0f;
}

#ifdef MMREC__SCORE_AVX512
/* The accumulators are named variables, c<item><quarter of the users>,
 * which compilers keep in registers (an array of vectors lands on the
 * stack). */
#define MMREC__EACH_ITEM(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define MMREC__ZERO(j)                                                                     \
    __m512 c##j##0 = _mm512_setzero_ps(), c##j##1 = c##j##0, c##j##2 = c##j##0,            \
           c##j##3 = c##j##0;
#define MMREC__FMA(j)                                                                      \
    {                                                                                      \
        __m512 v = _mm512_set1_ps(row[j][k]);                                              \
        c##j##0 = _mm512_fmadd_ps(u0, v, c##j##0);                                         \
        c##j##1 = _mm512_fmadd_ps(u1, v, c##j##1);                                         \
        c##j##2 = _mm512_fmadd_ps(u2, v, c##j##2);                                         \
        c##j##3 = _mm512_fmadd_ps(u3, v, c##j##3);                                         \
    }
#define MMREC__ABOVE(j, q) _mm512_cmp_ps_mask(c##j##q, t##q, _CMP_GT_OQ)
#define MMREC__ANY(j)                                                                      \
    | MMREC__ABOVE(j, 0) | MMREC__ABOVE(j, 1) | MMREC__ABOVE(j, 2) | MMREC__ABOVE(j, 3)
#define MMREC__SAVE(j)                                                                     \
    _mm512_storeu_ps(scores + j * 64, c##j##0);                                            \
    _mm512_storeu_ps(scores + j * 64 + 16, c##j##1);                                       \
    _mm512_storeu_ps(scores + j * 64 + 32, c##j##2);                                       \
    _mm512_storeu_ps(scores + j * 64 + 48, c##j##3);                                       \
    masks[j] = (uint64_t)MMREC__ABOVE(j, 0) | (uint64_t)MMREC__ABOVE(j, 1) << 16 |         \
               (uint64_t)MMREC__ABOVE(j, 2) << 32 | (uint64_t)MMREC__ABOVE(j, 3) << 48;

__attribute__((target("avx512f")))
size_t mmrec__score_find(const float *users, const float *items, size_t dim, size_t first,
                         size_t end, const float *thr, float *scores, uint64_t *masks) {
    _Static_assert(MMREC__SCORE_RUN == 6 && MMREC__SCORE_USERS == 64, "the kernel's shape");
    const size_t ahead = MMREC__SCORE_PREFETCH * 6;
    for (size_t i = first; i < end; i += 6) {
        /* a short last run repeats its last item, whose scores it already has */
        const float *row[6];
        MMREC__RUN_ROWS(row, items, dim, i, end, 6, ahead);
        MMREC__EACH_ITEM(MMREC__ZERO)
        for (size_t k = 0; k < dim; k++) {
            const float *u = users + k * 64;
            __m512 u0 = _mm512_loadu_ps(u), u1 = _mm512_loadu_ps(u + 16);
            __m512 u2 = _mm512_loadu_ps(u + 32), u3 = _mm512_loadu_ps(u + 48);
            MMREC__EACH_ITEM(MMREC__FMA)
        }
        __m512 t0 = _mm512_loadu_ps(thr), t1 = _mm512_loadu_ps(thr + 16);
        __m512 t2 = _mm512_loadu_ps(thr + 32), t3 = _mm512_loadu_ps(thr + 48);
        if ((0 MMREC__EACH_ITEM(MMREC__ANY)) == 0) continue;
        MMREC__EACH_ITEM(MMREC__SAVE)
        return i;
    }
    return end;
}

/* The same for the first 48 users of the block (three quarters of the
 * lanes), runs of 8 items: 24 accumulators again, no lane wasted on a last
 * group of 33 to 48 users. */
#define MMREC__EACH_ITEM8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define MMREC__ZERO3(j) __m512 c##j##0 = _mm512_setzero_ps(), c##j##1 = c##j##0, c##j##2 = c##j##0;
#define MMREC__FMA3(j)                                                                     \
    {                                                                                      \
        __m512 v = _mm512_set1_ps(row[j][k]);                                              \
        c##j##0 = _mm512_fmadd_ps(u0, v, c##j##0);                                         \
        c##j##1 = _mm512_fmadd_ps(u1, v, c##j##1);                                         \
        c##j##2 = _mm512_fmadd_ps(u2, v, c##j##2);                                         \
    }
#define MMREC__ANY3(j) | MMREC__ABOVE(j, 0) | MMREC__ABOVE(j, 1) | MMREC__ABOVE(j, 2)
#define MMREC__SAVE3(j)                                                                    \
    _mm512_storeu_ps(scores + j * 64, c##j##0);                                            \
    _mm512_storeu_ps(scores + j * 64 + 16, c##j##1);                                       \
    _mm512_storeu_ps(scores + j * 64 + 32, c##j##2);                                       \
    masks[j] = (uint64_t)MMREC__ABOVE(j, 0) | (uint64_t)MMREC__ABOVE(j, 1) << 16 |         \
               (uint64_t)MMREC__ABOVE(j, 2) << 32;

__attribute__((target("avx512f")))
size_t mmrec__score_find48(const float *users, const float *items, size_t dim, size_t first,
                           size_t end, const float *thr, float *scores, uint64_t *masks) {
    _Static_assert(MMREC__SCORE_RUN48 == 8, "the kernel's shape");
    const size_t ahead = MMREC__SCORE_PREFETCH * 8;
    for (size_t i = first; i < end; i += 8) {
        const float *row[8];
        MMREC__RUN_ROWS(row, items, dim, i, end, 8, ahead);
        MMREC__EACH_ITEM8(MMREC__ZERO3)
        for (size_t k = 0; k < dim; k++) {
            const float *u = users + k * 64;
            __m512 u0 = _mm512_loadu_ps(u), u1 = _mm512_loadu_ps(u + 16);
            __m512 u2 = _mm512_loadu_ps(u + 32);
            MMREC__EACH_ITEM8(MMREC__FMA3)
        }
        __m512 t0 = _mm512_loadu_ps(thr), t1 = _mm512_loadu_ps(thr + 16);
        __m512 t2 = _mm512_loadu_ps(thr + 32);
        if ((0 MMREC__EACH_ITEM8(MMREC__ANY3)) == 0) continue;
        MMREC__EACH_ITEM8(MMREC__SAVE3)
        return i;
    }
    return end;
}

/* AVX2 + FMA: the same sums with 8 lanes. The 64 users are taken a quarter
 * at a time, 16 users (two vectors) against the run's 6 items, 12
 * accumulators, so the 16 registers hold the accumulators, two rows of
 * users and a broadcast item value; the run's item rows (6 * dim floats)
 * stay in L1 for the four quarters. Each score is the same one fused
 * multiply-add chain over the dimensions in order from zero as in
 * mmrec__score_find, so the bits are the same. */
#define MMREC__ZERO2(j) __m256 c##j##0 = _mm256_setzero_ps(), c##j##1 = c##j##0;
#define MMREC__FMA2(j)                                                                     \
    {                                                                                      \
        __m256 v = _mm256_broadcast_ss(row[j] + k);                                        \
        c##j##0 = _mm256_fmadd_ps(u0, v, c##j##0);                                         \
        c##j##1 = _mm256_fmadd_ps(u1, v, c##j##1);                                         \
    }
#define MMREC__ABOVE2(j)                                                                   \
    unsigned a##j = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(c##j##0, t0, _CMP_GT_OQ)) |  \
                    (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(c##j##1, t1, _CMP_GT_OQ)) << 8;
#define MMREC__SAVE2(j)                                                                    \
    _mm256_storeu_ps(acc + j * 64 + g, c##j##0);                                           \
    _mm256_storeu_ps(acc + j * 64 + g + 8, c##j##1);                                       \
    bits[j] |= (uint64_t)a##j << g;

__attribute__((target("avx2,fma")))
size_t mmrec__score_find_avx2(const float *users, const float *items, size_t dim, size_t first,
                              size_t end, const float *thr, float *scores, uint64_t *masks) {
    float acc[6 * 64];
    const size_t ahead = MMREC__SCORE_PREFETCH * 6;
    for (size_t i = first; i < end; i += 6) {
        const float *row[6];
        MMREC__RUN_ROWS(row, items, dim, i, end, 6, ahead);
        uint64_t bits[6] = {0};
        for (size_t g = 0; g < 64; g += 16) {
            MMREC__EACH_ITEM(MMREC__ZERO2)
            for (size_t k = 0; k < dim; k++) {
                const float *u = users + k * 64 + g;
                __m256 u0 = _mm256_loadu_ps(u), u1 = _mm256_loadu_ps(u + 8);
                MMREC__EACH_ITEM(MMREC__FMA2)
            }
            __m256 t0 = _mm256_loadu_ps(thr + g), t1 = _mm256_loadu_ps(thr + g + 8);
            MMREC__EACH_ITEM(MMREC__ABOVE2)
            /* the caller reads only the scores of set bits: a quarter
             * without any is not stored */
            if ((a0 | a1 | a2 | a3 | a4 | a5) == 0) continue;
            MMREC__EACH_ITEM(MMREC__SAVE2)
        }
        if ((bits[0] | bits[1] | bits[2] | bits[3] | bits[4] | bits[5]) == 0) continue;
        for (size_t j = 0; j < 6; j++)
            for (uint64_t m = bits[j]; m != 0; m &= m - 1) {
                size_t r = (size_t)__builtin_ctzll(m);
                scores[j * 64 + r] = acc[j * 64 + r];
            }
        memcpy(masks, bits, sizeof bits);
        return i;
    }
    return end;
}
#else
size_t mmrec__score_find_avx2(const float *users, const float *items, size_t dim, size_t first,
                              size_t end, const float *thr, float *scores, uint64_t *masks) {
    return mmrec__score_find(users, items, dim, first, end, thr, scores, masks);
}

size_t mmrec__score_find(const float *users, const float *items, size_t dim, size_t first,
                         size_t end, const float *thr, float *scores, uint64_t *masks) {
    (void)users, (void)items, (void)dim, (void)first, (void)thr, (void)scores, (void)masks;
    assert(0 && "mmrec__score_kernel_usable is false here");
    return end;
}

size_t mmrec__score_find48(const float *users, const float *items, size_t dim, size_t first,
                           size_t end, const float *thr, float *scores, uint64_t *masks) {
    return mmrec__score_find(users, items, dim, first, end, thr, scores, masks);
}
#endif
