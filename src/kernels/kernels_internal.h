/* Kernels: the computational primitives every layer above core shares and
 * that know nothing of tensors or tapes: the one BLAS boundary (blas.c),
 * the AVX-512 scorer of full ranking (score.c) and the bounded top-K heap
 * (topk.c). The full-ranking evaluation, the kNN graph and the serving
 * index build on them. Never installed. */
#ifndef MMREC_KERNELS_INTERNAL_H
#define MMREC_KERNELS_INTERNAL_H

#include "../core/core_internal.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- BLAS (blas.c): every matrix product of the library, row-major,
 * float32, OpenBLAS or BLIS underneath ---- */

/* C = alpha * op(A) op(B) + beta * C; op(A) is [m,k], op(B) [k,n]. Large
 * products are split over the pool by rows or columns. */
void mmrec__sgemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                  const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                  size_t ldc);

/* C = bias + alpha * op(A) op(B), bias [n] in every row of C: the same
 * bits as filling C's rows with bias and calling mmrec__sgemm with beta 1,
 * but each part of a split product fills its own part of C. */
void mmrec__sgemm_bias(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                       const float *a, size_t lda, const float *b, size_t ldb, const float *bias,
                       float *c, size_t ldc);

/* The same product in one call on the calling thread, never split over the
 * pool: BLAS's blocking, and so the last bits, change with a split, so a
 * caller that splits its own work over the pool uses this to get results
 * that do not depend on the thread count. */
void mmrec__sgemm_serial(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                         const float *a, size_t lda, const float *b, size_t ldb, float beta,
                         float *c, size_t ldc);

/* Sets BLAS to one thread for the process, once, at the first product: the
 * library splits large products over its own pool instead (core.h). */
void mmrec__blas_threads_sync(void);

/* ---- the AVX-512 scorer of full ranking (score.c) ----
 * A block of up to 64 users against runs of 6 consecutive items, each score
 * one fused multiply-add chain over the dimensions in order from zero; the
 * scorer stops at the first run holding a score above its user's
 * threshold. */
#define MMREC__SCORE_USERS 64
#define MMREC__SCORE_RUN 6

/* For the scorers' runs of n items from item i: row[j] = the row of item
 * i + j (`stride` elements of items per row), or of item end - 1 past the
 * end (a short last run repeats it, its scores already known), and a
 * prefetch of the whole run `ahead` items later when it exists. */
#define MMREC__RUN_ROWS(row, items, stride, i, end, n, ahead)                              \
    do {                                                                                   \
        for (size_t j_ = 0; j_ < (n); j_++)                                                \
            (row)[j_] = (items) + ((i) + j_ < (end) ? (i) + j_ : (end) - 1) * (stride);     \
        if ((i) + (ahead) + (n) <= (end))                                                  \
            for (size_t o_ = 0; o_ < (n) * (stride) * sizeof *(items); o_ += 64)           \
                _mm_prefetch((const char *)((row)[0] + (ahead) * (stride)) + o_,            \
                             _MM_HINT_T0);                                                 \
    } while (0)

/* Whether the scorer runs here: an x86-64 CPU with AVX-512F, dim <= 256. */
bool mmrec__score_kernel_usable(size_t dim);

/* dst[k * 64 + r] = user_emb[ids[r] * dim + k] for r < n, zero for the
 * rows r = n .. 63: the users of a block, [dim, 64]. */
void mmrec__score_pack_users(float *dst, const float *user_emb, size_t dim, const int64_t *ids,
                             size_t n);

/* Scores the packed users against the runs of items first, first + 6, ...
 * (rows of `items`, [*, dim]) before `end`, and returns the start i of the
 * first run with a score s(r, i + j) > thr[r] (j < 6, i + j < end; thr has
 * 64 entries, +inf for unused rows; a NaN score is never above), writing
 * scores[j * 64 + r] = s(r, i + j) and bit r of masks[j] = [s(r, i + j) >
 * thr[r]] for j < 6 (rows j with i + j >= end repeat item end - 1). Returns
 * `end`, writing nothing, when no run has one. Only when
 * mmrec__score_kernel_usable(dim). */
size_t mmrec__score_find(const float *users, const float *items, size_t dim, size_t first,
                         size_t end, const float *thr, float *scores, uint64_t *masks);

/* Whether mmrec__score_find_avx2 runs here: an x86-64 CPU with AVX2 and
 * FMA, dim <= 256. */
bool mmrec__score_avx2_usable(size_t dim);
/* mmrec__score_find with AVX2 + FMA (8 lanes): the same scores, bit for
 * bit, and the same contract, for x86-64 CPUs without AVX-512F, except
 * that only the scores of set mask bits are written. Only when
 * mmrec__score_avx2_usable(dim). */
size_t mmrec__score_find_avx2(const float *users, const float *items, size_t dim, size_t first,
                              size_t end, const float *thr, float *scores, uint64_t *masks);

/* mmrec__score_find for the first 48 users of the packed block only (the
 * rest are not read; their mask bits are 0), runs of MMREC__SCORE_RUN48 =
 * 8 items: scores[j * 64 + r] and masks[j] for j < 8, the same sums. For
 * a last group of at most 48 users. */
#define MMREC__SCORE_RUN48 8
size_t mmrec__score_find48(const float *users, const float *items, size_t dim, size_t first,
                           size_t end, const float *thr, float *scores, uint64_t *masks);

/* ---- the exact int8 screen of full ranking (screen.c) ----
 * Estimates of the 64 x 6 scores of a run from int8 copies of the users
 * and items (AVX-512 VNNI or AVX-VNNI), with a proven bound on their error
 * (the derivation heads screen.c): a pair whose estimate cannot reach its
 * user's threshold cannot have an exact score above it. */

/* The screen's kernels: AVX-512 VNNI (64-byte vpdpbusd), or AVX-VNNI
 * (32-byte, for AVX2 CPUs without AVX-512). */
typedef enum mmrec__screen_isa { MMREC__SCREEN_AVX512, MMREC__SCREEN_VNNI256 } mmrec__screen_isa;

/* Whether the screen runs here with `isa`'s kernels: an x86-64 CPU with
 * AVX-512F, BW and VNNI, or with AVX2, FMA and AVX-VNNI; dim <= 256. */
bool mmrec__screen_usable(mmrec__screen_isa isa, size_t dim);
/* Bytes of a quantized row: dim rounded up to a multiple of 4. */
size_t mmrec__screen_stride(size_t dim);

/* Quantizes items first .. first + n - 1 of `items` ([*, dim]) for isa's
 * kernels: codes q[i * stride ..] (zero past dim; for AVX-VNNI stored as
 * code + 128, unsigned bytes), corr[i] = -128 * sum of the codes,
 * scale[i] and norm[i] (||item i|| rounded up); *rho_out = the largest
 * residual-to-row norm ratio among them (rounded up), *max_norm_out the
 * largest norm. Rows of different calls do not interact: the table can be
 * quantized in parts, rho and max_norm then being the parts' maxima. */
void mmrec__screen_items(mmrec__screen_isa isa, const float *items, size_t first, size_t n,
                         size_t dim, int8_t *q, int32_t *corr, float *scale, float *norm,
                         double *rho_out, double *max_norm_out);
/* Whether a table whose largest norm is max_norm can be screened (< 2^62). */
bool mmrec__screen_items_ok(double max_norm);

/* A user's terms of the threshold conversion (mmrec__screen_low). */
typedef struct mmrec__screen_user {
    double scale, abs; /* abs = inf: not screened, every pair passes */
} mmrec__screen_user;

/* Bytes of a block's packed users (mmrec__screen_pack_users): 64 rows of
 * stride codes, then 64 int32 corrections. */
size_t mmrec__screen_packed_bytes(size_t dim);

/* Packs the users ids[0 .. n) of user_emb ([*, dim]) for isa's
 * mmrec__screen_find: codes as dst[(k / 4) * 256 + r * 4 + k % 4] (stride
 * bytes per user, rows r >= n all zero codes), for AVX-512 as code + 128
 * (unsigned), for AVX-VNNI as the signed code, followed by 64 int32 user
 * corrections (-128 * the sum of the user's codes, used by AVX-VNNI);
 * bound[r] (the factor M of the derivation, 0 for r >= n) and par[r]; rho
 * from mmrec__screen_items. */
void mmrec__screen_pack_users(mmrec__screen_isa isa, uint8_t *dst, float *bound,
                              mmrec__screen_user *par, const float *user_emb, size_t dim,
                              const int64_t *ids, size_t n, double rho);
/* The screen threshold L of a user whose exact threshold is thr (-inf:
 * every pair passes, +inf: none does). */
float mmrec__screen_low(float thr, const mmrec__screen_user *par);

/* Screens the packed users against the runs of items first, first + 6, ...
 * before `end` (codes, corr, scale and norm from mmrec__screen_items) and
 * returns the start i of the first run with a pair passing, bit r of
 * masks[j] set when pair (r, i + j) passes (j < 6; rows j with i + j >= end
 * repeat item end - 1); `end` when none does. low[r]: the users'
 * thresholds from mmrec__screen_low. Only when mmrec__screen_usable(isa, dim). */
size_t mmrec__screen_find(mmrec__screen_isa isa, const uint8_t *users, const int8_t *items,
                          const int32_t *corr, const float *scale, const float *norm, size_t dim,
                          size_t first, size_t end, const float *bound, const float *low,
                          uint64_t *masks);

/* For the run of 6 items at i (all before the table's end): out[r] = the
 * largest fl(P - M n) of user r over the run, P and M n being the
 * estimate and the bound of mmrec__screen_find (64 floats). */
void mmrec__screen_lower(mmrec__screen_isa isa, const uint8_t *users, const int8_t *items,
                         const int32_t *corr, const float *scale, const float *norm, size_t dim,
                         size_t i, const float *bound, float *out);
/* A screen threshold from t, the K-th largest out[r] of mmrec__screen_lower
 * over K or more distinct runs: a pair below it cannot have an exact score
 * as high as the user's K-th best, so it cannot enter the user's top K
 * (-inf when t is -inf or the user is not screened). */
float mmrec__screen_floor(float t, const mmrec__screen_user *par);

/* out[p] = the exact score of rows u[p] and v[p] (dim floats each): one
 * fused multiply-add chain over the dimensions in order from zero, the
 * bits of mmrec__score_find's scores. */
void mmrec__score_pairs(const float *const *u, const float *const *v, size_t n, size_t dim,
                        float *out);

/* ---- the row scorer (dot.c) ---- */

/* out[q * ld_out + i] = <queries[q], rows[i]> for the num_queries queries
 * ([num_queries, dim]) and the n rows of `rows` ([n, dim]), each summed in
 * an order that depends only on dim (16 lanes, then a fixed tree), so a
 * score does not depend on the row's place, on the other queries or on the
 * CPU's vector width. Meant for a few queries against a block of rows in
 * cache (each tile of 16 rows is read once for all the queries). */
void mmrec__dot_rows(const float *queries, size_t num_queries, const float *rows, size_t n,
                     size_t dim, float *out, size_t ld_out);
/* The same for float16 (bf16 false) or bfloat16 rows, widened exactly as
 * they are read: the scores of mmrec__dot_rows on the widened rows. Only
 * with the AVX-512 kernel (mmrec__dot_half_usable); returns false, writing
 * nothing, otherwise (the caller widens). */
bool mmrec__dot_rows_half(const float *queries, size_t num_queries, const uint16_t *rows,
                          bool bf16, size_t n, size_t dim, float *out, size_t ld_out);
/* Whether mmrec__dot_rows_half runs here for rows of dim elements. */
bool mmrec__dot_half_usable(size_t dim);
/* mmrec__dot_rows with the portable loop only (the tests compare the two). */
void mmrec__dot_rows_portable(const float *queries, size_t num_queries, const float *rows,
                              size_t n, size_t dim, float *out, size_t ld_out);

/* ---- the bounded top-K heap (topk.c) ----
 * A row's k best (score, id) pairs in two arrays, a min-heap by rank with
 * the worst kept at index 0. "a ranks below b": a lower score, or an equal
 * score and a higher id, so ids offered in increasing order keep the lower
 * id ahead on ties; a NaN score never enters, nor -inf (masked entries). */

static inline bool mmrec__topk_below(float sa, int32_t ia, float sb, int32_t ib) {
    return (sa < sb) | ((sa == sb) & (ia > ib)); /* no branches: unpredictable */
}

/* Puts (x, xid) into the hole at i of a heap of n and sifts it down. */
static inline void mmrec__topk_sift(float *s, int32_t *id, size_t n, size_t i, float x,
                                    int32_t xid) {
    for (size_t c; (c = 2 * i + 1) < n; i = c) {
        c += c + 1 < n && mmrec__topk_below(s[c + 1], id[c + 1], s[c], id[c]);
        if (!mmrec__topk_below(s[c], id[c], x, xid)) break;
        s[i] = s[c];
        id[i] = id[c];
    }
    s[i] = x;
    id[i] = xid;
}

/* Sifts entry i up towards the root. */
static inline void mmrec__topk_up(float *s, int32_t *id, size_t i) {
    float x = s[i];
    int32_t xid = id[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!mmrec__topk_below(x, xid, s[p], id[p])) break;
        s[i] = s[p];
        id[i] = id[p];
        i = p;
    }
    s[i] = x;
    id[i] = xid;
}

/* Offers id with score s to a top k (hs, hid, *n_kept of them so far), ids
 * being offered in increasing order: while fewer than k are kept any score
 * above -inf enters, then only a score above the worst kept (a later id
 * that ties ranks below it). */
static inline void mmrec__topk_offer(float *hs, int32_t *hid, size_t *n_kept, size_t k, float s,
                                     int32_t id) {
    size_t n = *n_kept;
    if (n < k) {
        if (!(s > -INFINITY)) return;
        hs[n] = s;
        hid[n] = id;
        mmrec__topk_up(hs, hid, n);
        *n_kept = n + 1;
    } else if (s > hs[0]) {
        mmrec__topk_sift(hs, hid, n, 0, s, id);
    }
}

/* Offers ids base .. base + len - 1 with scores row[0 .. len), skipping
 * runs of 64 whose scores all stay at or below the worst kept (a vectorized
 * count) once k are kept. */
void mmrec__topk_scan(const float *row, size_t base, size_t len, size_t k, float *hs,
                      int32_t *hid, size_t *n_kept);

/* Offers (s, id) to a top k in any order of ids: while fewer than k are
 * kept any score above -inf enters, then one that ranks above the worst
 * kept (a higher score, or an equal one with a lower id). Merges the top
 * k lists of several parts of one range into one. */
static inline void mmrec__topk_merge(float *hs, int32_t *hid, size_t *n_kept, size_t k, float s,
                                     int32_t id) {
    if (*n_kept < k) {
        mmrec__topk_offer(hs, hid, n_kept, k, s, id);
    } else if (mmrec__topk_below(hs[0], hid[0], s, id)) {
        mmrec__topk_sift(hs, hid, *n_kept, 0, s, id);
    }
}

/* Sorts a top-k heap of n best first (heap sort: the worst popped to the
 * back). */
void mmrec__topk_sort(float *hs, int32_t *hid, size_t n);

#endif
