/* Full-ranking evaluation (metrics.h): users with test items are taken in
 * blocks of 64; each user's train items are dropped and the top K kept with
 * a bounded heap, items offered in increasing id (so of two equal scores the
 * item kept first, the lower id, stays ahead); the metrics are summed per
 * block. The scorers, chosen per call (the first usable):
 *   - the int8 screen (kernels/screen.c), on x86-64 CPUs with AVX-512 VNNI
 *     (Ice Lake, Sapphire Rapids, Zen 4 and later) and dim <= 256, or with
 *     its AVX-VNNI kernels on AVX2 CPUs that have AVX-VNNI but not AVX-512
 *     (Alder Lake and later clients, Sierra Forest): every
 *     score of the block estimated from int8 copies of the users and of the
 *     item table (quantized once per call), and a run of 6 items stopped at
 *     when a pair's estimate plus its proven error bound reaches the user's
 *     threshold (-inf until K items are kept, then the K-th best score).
 *     Those pairs are collected, scored exactly in batches (the chain of
 *     the AVX-512 scorer, the same bits) and offered in item order; a
 *     threshold that rises meanwhile only lets more pairs through, never
 *     fewer. The exact scores above the threshold are those of the AVX-512
 *     scorer, so are the kept items.
 *   - AVX-512 (kernels/score.c), AVX-512F and dim <= 256 (also where item
 *     norms are too large to screen): the block against runs of 6 items,
 *     the scores compared in registers with each user's threshold; only
 *     the runs holding a score above it come back here,
 *     and only those scores are offered. Items in random order give a user
 *     about K (1 + ln(num_items / K)) such scores, not num_items.
 *   - AVX2 + FMA (kernels/score.c), x86-64 CPUs without AVX-512F, dim <=
 *     256 (also the AVX-VNNI screen's fallback): the same, with the same
 *     scores bit for bit.
 *   - BLAS, elsewhere (other CPUs, dim > 256): the block against tiles of
 *     2048 items, one sgemm per tile, so the scores stay in cache for the
 *     scan that follows (a vectorized count skips 64 items at a time that
 *     cannot enter).
 * So an evaluation's scores, and its metrics, are the same on every x86-64
 * CPU with AVX2 and FMA. All offer exactly the scores above the threshold,
 * so they keep the same items when the scores agree; BLAS's scores may
 * differ in the last bit (see kernels/score.c), never within one call.
 * Blocks are split over the pool with per-chunk scratch, and the block sums
 * are added in block order, so the result does not depend on the thread
 * count. */
#include "metrics_internal.h"
#include "../core/config_sizes.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define MMREC__EVAL_MAX_K 1000
/* Users per block and items per tile: a tile of scores (64 x 2048 floats,
 * 512 KiB) stays in cache between the product and the top-k scan. */
#define MMREC__EVAL_BLOCK 64
#define MMREC__EVAL_TILE 2048
enum { MMREC__M_RECALL, MMREC__M_NDCG, MMREC__M_PRECISION, MMREC__M_HIT, MMREC__M_MRR,
       MMREC__M_COUNT };

/* Pairs the screen collects before scoring them exactly (room for one
 * run's worth past the flush point): the more, the longer their float rows
 * have to arrive after their prefetch (measured on Gowalla, one core: 32,
 * 64, 256, 512 pairs: 815, 806, 785-793, 787 ms). */
#define MMREC__EVAL_FLUSH 256
#define MMREC__EVAL_PENDING (MMREC__EVAL_FLUSH + MMREC__SCORE_RUN * MMREC__SCORE_USERS)

atomic_ullong mmrec__eval_rescored;

/* The quantized item table of the screen, made once per call. */
typedef struct mmrec__eval_items {
    int8_t *q;
    int32_t *corr;
    float *scale, *norm;
    double rho;
} mmrec__eval_items;

/* The screen's per-part scratch. */
typedef struct mmrec__eval_screen {
    mmrec__screen_isa isa; /* the kernels */
    uint8_t *packed;
    float *bound, *low, *floor;
    mmrec__screen_user *par;
    float *lower, *column; /* [samples, 64] and [samples] */
} mmrec__eval_screen;

/* One run in MMREC__EVAL_SAMPLE is estimated first, the lower bounds of
 * its pairs giving each user a floor under its K-th best score: the
 * sampled runs are split into G groups (G = min(samples, 4 K)), and if t
 * is the (K + T)-th largest of the groups' maxima, T being the number of
 * the user's train items in the sampled runs, then at least K groups have
 * their maximum on an item that is not a train item, so K candidates have
 * a lower bound at least t (mmrec__screen_floor). The screen then skips
 * from the start most of the pairs that the rising threshold would let
 * through. */
#define MMREC__EVAL_SAMPLE 8

/* The k-th largest of a[0 .. n) (1 <= k <= n), reordering a. */
static float mmrec__kth_largest(float *a, size_t n, size_t k) {
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, want = (ptrdiff_t)k - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                float t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    return a[want];
}

static bool mmrec__eval_is_screen(mmrec__eval_scorer scorer) {
    return scorer == MMREC__EVAL_SCREEN || scorer == MMREC__EVAL_SCREEN_VNNI256;
}

/* A screen scorer's kernels. */
static mmrec__screen_isa mmrec__eval_screen_isa(mmrec__eval_scorer scorer) {
    return scorer == MMREC__EVAL_SCREEN ? MMREC__SCREEN_AVX512 : MMREC__SCREEN_VNNI256;
}

static size_t mmrec__eval_samples(size_t I) {
    return (I / MMREC__SCORE_RUN + MMREC__EVAL_SAMPLE - 1) / MMREC__EVAL_SAMPLE;
}

typedef struct mmrec__eval_job {
    const float *user_emb, *item_emb;
    size_t I, dim, block, kmax;
    const int64_t *users; /* the users evaluated */
    size_t n_users;
    const mmrec__lists *train, *test;
    const int *ks;
    int num_ks;
    mmrec__eval_scorer scorer; /* one usable here, not AUTO */
    float *scratch;            /* per part: block * dim users, block thresholds, block * kmax
                                * heap scores, then (BLAS) block * tile scores */
    int32_t *heap_ids;         /* per part: block * kmax */
    size_t scratch_len, tile;
    double *sums; /* per block: num_ks * MMREC__M_COUNT */
    const mmrec__eval_items *items;
    unsigned char *screen; /* per part: screen_len bytes */
    size_t screen_len;
    int32_t *top; /* NULL, or [n_users, kmax] */
} mmrec__eval_job;

static bool mmrec__contains(const int32_t *items, size_t n, int32_t item) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (items[mid] < item) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && items[lo] == item;
}

/* Whether `item` is a train item of the user, whose train items are
 * items[*cursor .. end), sorted; items are asked in increasing order. */
static bool mmrec__is_train(const int32_t *items, size_t end, size_t *cursor, int32_t item) {
    while (*cursor < end && items[*cursor] < item) ++*cursor;
    return *cursor < end && items[*cursor] == item;
}

/* The AVX-512 scorer over all items for the n users of a block: thr[r] is
 * -inf until user r keeps K items, then its K-th best score (+inf for the
 * rows past n); each run of items the scorer stops at is offered, item by
 * item, in increasing id. */
static void mmrec__eval_block_kernel(const mmrec__eval_job *j, const int64_t *users, size_t n,
                                     float *packed, float *thr, float *heap_s, int32_t *heap_i,
                                     size_t *kept, size_t *cursor) {
    enum { RUN = MMREC__SCORE_RUN, USERS = MMREC__SCORE_USERS };
    size_t K = j->kmax;
    float scores[RUN * USERS];
    uint64_t masks[RUN];
    bool avx2 = j->scorer == MMREC__EVAL_AVX2;
    mmrec__score_pack_users(packed, j->user_emb, j->dim, users, n);
    for (size_t r = 0; r < USERS; r++) thr[r] = r < n ? -INFINITY : INFINITY;
    for (size_t i = 0;
         (i = avx2 ? mmrec__score_find_avx2(packed, j->item_emb, j->dim, i, j->I, thr, scores,
                                            masks)
                   : mmrec__score_find(packed, j->item_emb, j->dim, i, j->I, thr, scores,
                                       masks)) < j->I;
         i += RUN)
        for (size_t q = 0; q < RUN && i + q < j->I; q++)
            for (uint64_t m = masks[q]; m != 0; m &= m - 1) {
                size_t r = (size_t)__builtin_ctzll(m);
                float s = scores[q * USERS + r];
                int32_t item = (int32_t)(i + q);
                if (!(s > thr[r])) continue; /* raised by an earlier item of the run */
                if (j->train && mmrec__is_train(j->train->items,
                                                (size_t)j->train->ptr[users[r] + 1], &cursor[r],
                                                item))
                    continue;
                float *hs = heap_s + r * K;
                mmrec__topk_offer(hs, heap_i + r * K, &kept[r], K, s, item);
                thr[r] = kept[r] < K ? -INFINITY : hs[0];
            }
}

/* Scores the n pending pairs (user r_of[p], item it[p]) exactly and
 * offers, in their order, those above their user's threshold, then updates
 * the screen thresholds of the users whose threshold rose. */
static void mmrec__eval_flush(const mmrec__eval_job *j, const int64_t *users,
                              const mmrec__eval_screen *sc, const uint8_t *r_of,
                              const int32_t *it, size_t n, float *thr, float *heap_s,
                              int32_t *heap_i, size_t *kept, size_t *cursor) {
    const float *u[MMREC__EVAL_PENDING], *v[MMREC__EVAL_PENDING];
    float s[MMREC__EVAL_PENDING];
    size_t K = j->kmax;
    if (n == 0) return;
    for (size_t p = 0; p < n; p++) {
        u[p] = j->user_emb + (size_t)users[r_of[p]] * j->dim;
        v[p] = j->item_emb + (size_t)it[p] * j->dim;
    }
    mmrec__score_pairs(u, v, n, j->dim, s);
    uint64_t rose = 0;
    for (size_t p = 0; p < n; p++) {
        size_t r = r_of[p];
        if (!(s[p] > thr[r])) continue;
        if (j->train &&
            mmrec__is_train(j->train->items, (size_t)j->train->ptr[users[r] + 1], &cursor[r],
                            it[p]))
            continue;
        float *hs = heap_s + r * K;
        mmrec__topk_offer(hs, heap_i + r * K, &kept[r], K, s[p], it[p]);
        thr[r] = kept[r] < K ? -INFINITY : hs[0];
        rose |= (uint64_t)1 << r;
    }
    for (; rose != 0; rose &= rose - 1) {
        size_t r = (size_t)__builtin_ctzll(rose);
        float low = mmrec__screen_low(thr[r], &sc->par[r]);
        sc->low[r] = low > sc->floor[r] ? low : sc->floor[r];
    }
}

/* The screen: each run the int8 estimate stops at adds its passing pairs
 * to the pending ones, which are scored and offered once there are
 * MMREC__EVAL_FLUSH of them, and at the end. */
static void mmrec__eval_block_screen(const mmrec__eval_job *j, const int64_t *users, size_t n,
                                     const mmrec__eval_screen *sc, float *thr, float *heap_s,
                                     int32_t *heap_i, size_t *kept, size_t *cursor) {
    enum { RUN = MMREC__SCORE_RUN, USERS = MMREC__SCORE_USERS };
    const mmrec__eval_items *t = j->items;
    uint8_t r_of[MMREC__EVAL_PENDING];
    int32_t it[MMREC__EVAL_PENDING];
    uint64_t masks[RUN];
    size_t pending = 0, rescored = 0;
    mmrec__screen_pack_users(sc->isa, sc->packed, sc->bound, sc->par, j->user_emb, j->dim, users, n,
                             t->rho);
    size_t samples = 0, K = j->kmax;
    if (mmrec__eval_samples(j->I) >= K) /* else fewer groups than K: no floor */
        for (size_t i = 0; i + RUN <= j->I; i += RUN * MMREC__EVAL_SAMPLE)
            mmrec__screen_lower(sc->isa, sc->packed, t->q, t->corr, t->scale, t->norm, j->dim, i,
                                sc->bound, sc->lower + USERS * samples++);
    size_t G = samples < 4 * K ? samples : 4 * K;
    for (size_t m = G; m < samples; m++) /* group m % G's maximum, in place */
        for (size_t r = 0; r < USERS; r++) {
            float x = sc->lower[m * USERS + r], *y = &sc->lower[(m % G) * USERS + r];
            *y = x > *y ? x : *y;
        }
    size_t sampled_end = j->I / RUN * RUN; /* items of whole runs */
    for (size_t r = 0; r < USERS; r++) {
        sc->floor[r] = -INFINITY;
        if (r >= n || G < K) continue;
        size_t T = 0; /* the user's train items in the sampled runs */
        if (j->train)
            for (int64_t p = j->train->ptr[users[r]]; p < j->train->ptr[users[r] + 1]; p++) {
                size_t item = (size_t)j->train->items[p];
                T += item < sampled_end && item / RUN % MMREC__EVAL_SAMPLE == 0;
            }
        if (K + T > G) continue;
        for (size_t g = 0; g < G; g++) sc->column[g] = sc->lower[g * USERS + r];
        sc->floor[r] = mmrec__screen_floor(mmrec__kth_largest(sc->column, G, K + T),
                                           &sc->par[r]);
    }
    for (size_t r = 0; r < USERS; r++) {
        thr[r] = r < n ? -INFINITY : INFINITY;
        float low = mmrec__screen_low(thr[r], &sc->par[r]);
        sc->low[r] = low > sc->floor[r] ? low : sc->floor[r];
    }
    for (size_t i = 0; (i = mmrec__screen_find(sc->isa, sc->packed, t->q, t->corr, t->scale,
                                               t->norm, j->dim, i, j->I, sc->bound, sc->low,
                                               masks)) < j->I;
         i += RUN) {
        for (size_t q = 0; q < RUN && i + q < j->I; q++) {
            if (masks[q] == 0) continue;
            /* the float row is read at the flush, some runs later: from
             * cache then, not from memory */
            const float *row = j->item_emb + (i + q) * j->dim;
            for (size_t o = 0; o < j->dim; o += 16) __builtin_prefetch(row + o);
            for (uint64_t m = masks[q]; m != 0; m &= m - 1) {
                r_of[pending] = (uint8_t)__builtin_ctzll(m);
                it[pending++] = (int32_t)(i + q);
            }
        }
        if (pending >= MMREC__EVAL_FLUSH) {
            mmrec__eval_flush(j, users, sc, r_of, it, pending, thr, heap_s, heap_i, kept,
                              cursor);
            rescored += pending;
            pending = 0;
        }
    }
    mmrec__eval_flush(j, users, sc, r_of, it, pending, thr, heap_s, heap_i, kept, cursor);
    rescored += pending;
    atomic_fetch_add_explicit(&mmrec__eval_rescored, rescored, memory_order_relaxed);
}

/* The BLAS scorer: tiles of scores, the user's train items in each set to
 * -inf, then the scan. */
static void mmrec__eval_block_blas(const mmrec__eval_job *j, const int64_t *users, size_t n,
                                   float *ub, float *scores, float *heap_s, int32_t *heap_i,
                                   size_t *kept, size_t *cursor) {
    size_t K = j->kmax;
    mmrec__metrics_copy_rows(ub, j->user_emb, j->dim, users, n);
    for (size_t t0 = 0; t0 < j->I; t0 += j->tile) {
        size_t len = j->I - t0 < j->tile ? j->I - t0 : j->tile;
        mmrec__sgemm(false, true, n, len, j->dim, 1.0f, ub, j->dim, j->item_emb + t0 * j->dim,
                     j->dim, 0.0f, scores, len);
        for (size_t r = 0; r < n; r++) {
            float *row = scores + r * len;
            if (j->train) { /* the user's train items in this tile (sorted lists) */
                size_t end = (size_t)j->train->ptr[users[r] + 1];
                while (cursor[r] < end && (size_t)j->train->items[cursor[r]] < t0 + len)
                    row[(size_t)j->train->items[cursor[r]++] - t0] = -INFINITY;
            }
            mmrec__topk_scan(row, t0, len, K, heap_s + r * K, heap_i + r * K, &kept[r]);
        }
    }
}

static void mmrec__eval_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__eval_job *j = ctx;
    size_t B = j->block, K = j->kmax;
    float *ub = j->scratch + (size_t)part * j->scratch_len;
    float *thr = ub + B * j->dim, *heap_s = thr + B, *scores = heap_s + B * K;
    int32_t *heap_i = j->heap_ids + (size_t)part * B * K;
    size_t kept[MMREC__EVAL_BLOCK], cursor[MMREC__EVAL_BLOCK];
    for (size_t b = lo; b < hi; b++) {
        size_t first = b * B;
        size_t n = j->n_users - first < B ? j->n_users - first : B;
        const int64_t *users = j->users + first;
        for (size_t r = 0; r < n; r++) {
            kept[r] = 0;
            cursor[r] = j->train ? (size_t)j->train->ptr[users[r]] : 0;
        }
        if (mmrec__eval_is_screen(j->scorer)) {
            unsigned char *base = j->screen + (size_t)part * j->screen_len;
            float *f = (float *)(base + mmrec__screen_packed_bytes(j->dim));
            mmrec__screen_user *par = (mmrec__screen_user *)(f + 3 * MMREC__SCORE_USERS);
            float *lower = (float *)(par + MMREC__SCORE_USERS);
            mmrec__eval_screen sc = {mmrec__eval_screen_isa(j->scorer),
                                     base,
                                     f,
                                     f + MMREC__SCORE_USERS,
                                     f + 2 * MMREC__SCORE_USERS,
                                     par,
                                     lower,
                                     lower + MMREC__SCORE_USERS * mmrec__eval_samples(j->I)};
            mmrec__eval_block_screen(j, users, n, &sc, thr, heap_s, heap_i, kept, cursor);
        } else if (j->scorer != MMREC__EVAL_BLAS) {
            mmrec__eval_block_kernel(j, users, n, ub, thr, heap_s, heap_i, kept, cursor);
        } else {
            mmrec__eval_block_blas(j, users, n, ub, scores, heap_s, heap_i, kept, cursor);
        }
        double *sums = j->sums + b * (size_t)j->num_ks * MMREC__M_COUNT;
        memset(sums, 0, (size_t)j->num_ks * MMREC__M_COUNT * sizeof *sums);
        for (size_t r = 0; r < n; r++) {
            size_t u = (size_t)users[r];
            float *hs = heap_s + r * K;
            int32_t *hid = heap_i + r * K;
            mmrec__topk_sort(hs, hid, kept[r]);
            if (j->top) {
                int32_t *dst = j->top + (first + r) * K;
                for (size_t p = 0; p < K; p++) dst[p] = p < kept[r] ? hid[p] : -1;
            }
            const int32_t *test = j->test->items + j->test->ptr[u];
            size_t n_test = (size_t)(j->test->ptr[u + 1] - j->test->ptr[u]);
            for (int q = 0; q < j->num_ks; q++) {
                size_t k = (size_t)j->ks[q], hits = 0;
                double dcg = 0.0, idcg = 0.0, rr = 0.0;
                for (size_t p = 0; p < k && p < kept[r]; p++)
                    if (mmrec__contains(test, n_test, hid[p])) {
                        hits++;
                        dcg += 1.0 / log2((double)p + 2.0);
                        if (rr == 0.0) rr = 1.0 / (double)(p + 1);
                    }
                for (size_t p = 0; p < k && p < n_test; p++) idcg += 1.0 / log2((double)p + 2.0);
                double *s = sums + (size_t)q * MMREC__M_COUNT;
                s[MMREC__M_RECALL] += (double)hits / (double)n_test;
                s[MMREC__M_NDCG] += dcg / idcg;
                s[MMREC__M_PRECISION] += (double)hits / (double)k;
                s[MMREC__M_HIT] += hits > 0 ? 1.0 : 0.0;
                s[MMREC__M_MRR] += rr;
            }
        }
    }
}

mmrec_status mmrec_eval_full_ranking(const float *user_emb, const float *item_emb,
                                     int64_t num_users, int64_t num_items, int64_t dim,
                                     const mmrec_interactions *train,
                                     const mmrec_interactions *test, const int *ks, int num_ks,
                                     mmrec_rank_metrics *out) {
    MMREC_CHECK_NULL(user_emb);
    MMREC_CHECK_NULL(item_emb);
    MMREC_CHECK_NULL(test);
    MMREC_CHECK_NULL(ks);
    MMREC_CHECK_NULL(out);
    MMREC_FORWARD_IF(mmrec__metrics_check_sizes(num_users, num_items, dim, __func__));
    MMREC_FAIL_IF(num_ks < 1 || num_ks > 64, MMREC_EINVAL, "num_ks is %d, expected 1..64",
                  num_ks);
    size_t min_size = MMREC__MIN_SIZE(mmrec_rank_metrics);
    MMREC_FAIL_IF(out[0].struct_size < min_size, MMREC_EINVAL,
                  "out[0].struct_size is %zu, expected at least %zu (set it to "
                  "sizeof(mmrec_rank_metrics))",
                  out[0].struct_size, min_size);
    size_t kcap = (size_t)num_items < MMREC__EVAL_MAX_K ? (size_t)num_items : MMREC__EVAL_MAX_K;
    for (int q = 0; q < num_ks; q++)
        MMREC_FAIL_IF(ks[q] < 1 || (size_t)ks[q] > kcap, MMREC_EINVAL,
                      "ks[%d] is %d, expected 1..%zu", q, ks[q], kcap);
    return mmrec__eval_full_ranking_with(user_emb, item_emb, num_users, num_items, dim, train,
                                         test, ks, num_ks, out, MMREC__EVAL_AUTO, NULL,
                                         __func__);
}

bool mmrec__eval_scorer_usable(mmrec__eval_scorer scorer, size_t dim) {
    switch (scorer) {
    case MMREC__EVAL_SCREEN: return mmrec__screen_usable(MMREC__SCREEN_AVX512, dim);
    case MMREC__EVAL_SCREEN_VNNI256: return mmrec__screen_usable(MMREC__SCREEN_VNNI256, dim);
    case MMREC__EVAL_AVX512: return mmrec__score_kernel_usable(dim);
    case MMREC__EVAL_AVX2: return mmrec__score_avx2_usable(dim);
    default: return true;
    }
}

/* The item table's quantization, split over the pool. */
typedef struct mmrec__eval_quant {
    mmrec__screen_isa isa;
    const float *items;
    size_t dim;
    mmrec__eval_items *t;
    double rho[64], max_norm[64];
} mmrec__eval_quant;

static void mmrec__eval_quant_chunk(void *ctx, size_t lo, size_t hi, int part) {
    mmrec__eval_quant *c = ctx;
    mmrec__screen_items(c->isa, c->items, lo, hi - lo, c->dim, c->t->q, c->t->corr,
                        c->t->scale, c->t->norm, &c->rho[part], &c->max_norm[part]);
}

/* Quantizes the item table for the screen; false when its norms are too
 * large to screen. */
static bool mmrec__eval_quantize(mmrec__screen_isa isa, const float *items, size_t I, size_t dim,
                                 mmrec__eval_items *t) {
    mmrec__eval_quant c = {isa, items, dim, t, {0}, {0}};
    int parts = mmrec__parallel_parts(I, 1024);
    mmrec__parallel_for(I, parts, mmrec__eval_quant_chunk, &c);
    double rho = 0.0, max_norm = 0.0;
    for (int p = 0; p < parts; p++) {
        rho = c.rho[p] > rho ? c.rho[p] : rho;
        max_norm = c.max_norm[p] > max_norm ? c.max_norm[p] : max_norm;
    }
    t->rho = rho;
    return mmrec__screen_items_ok(max_norm);
}

mmrec_status mmrec__eval_full_ranking_with(const float *user_emb, const float *item_emb,
                                           int64_t num_users, int64_t num_items, int64_t dim,
                                           const mmrec_interactions *train,
                                           const mmrec_interactions *test, const int *ks,
                                           int num_ks, mmrec_rank_metrics *out,
                                           mmrec__eval_scorer scorer, int32_t *top,
                                           const char *func) {
    size_t min_size = MMREC__MIN_SIZE(mmrec_rank_metrics);
    size_t stride = out[0].struct_size;
    size_t U = (size_t)num_users, I = (size_t)num_items, d = (size_t)dim, kmax = 0;
    for (int q = 0; q < num_ks; q++)
        if ((size_t)ks[q] > kmax) kmax = (size_t)ks[q];
    mmrec__lists tr, te;
    MMREC_FORWARD_IF(mmrec__metrics_eval_inputs(user_emb, item_emb, U, I, d, train, test, &tr,
                                                &te, func));
    mmrec_status s = MMREC_OK;
    size_t n_eval = 0;
    for (size_t u = 0; u < U; u++) n_eval += te.ptr[u + 1] > te.ptr[u];
    if (scorer > MMREC__EVAL_SCREEN) scorer = MMREC__EVAL_SCREEN;
    while (scorer != MMREC__EVAL_BLAS && !mmrec__eval_scorer_usable(scorer, d)) scorer--;
    size_t block = MMREC__EVAL_BLOCK, tile = I < MMREC__EVAL_TILE ? I : MMREC__EVAL_TILE;
    size_t n_blocks = n_eval ? (n_eval + block - 1) / block : 0;
    int parts = n_blocks ? mmrec__parallel_parts(n_blocks, 1) : 1;
    bool blas = scorer == MMREC__EVAL_BLAS, screen = mmrec__eval_is_screen(scorer);
    /* whole 64-byte lines per part, so the kernel's vectors of users and
     * thresholds stay aligned */
    size_t scratch_len = (block * (d + 1 + kmax + (blas ? tile : 0)) + 15) & ~(size_t)15;
    size_t qstride = mmrec__screen_stride(d);
    size_t screen_len = (mmrec__screen_packed_bytes(d) +
                         MMREC__SCORE_USERS * (3 * sizeof(float) + sizeof(mmrec__screen_user)) +
                         (MMREC__SCORE_USERS + 1) * mmrec__eval_samples(I) * sizeof(float) +
                         63) & ~(size_t)63;
    mmrec__eval_items items = {NULL, NULL, NULL, NULL, 0.0};
    unsigned char *screen_scratch = NULL;
    int64_t *users = mmrec__alloc((n_eval ? n_eval : 1) * sizeof *users);
    float *scratch = mmrec__alloc((size_t)parts * scratch_len * sizeof *scratch);
    int32_t *heap_ids = mmrec__alloc((size_t)parts * block * kmax * sizeof *heap_ids);
    double *sums = mmrec__alloc((n_blocks ? n_blocks : 1) * (size_t)num_ks * MMREC__M_COUNT *
                                sizeof *sums);
    bool ok = users && scratch && heap_ids && sums;
    if (ok && screen && n_eval) {
        items.q = mmrec__alloc(I * qstride);
        items.corr = mmrec__alloc(I * sizeof *items.corr);
        items.scale = mmrec__alloc(I * sizeof *items.scale);
        items.norm = mmrec__alloc(I * sizeof *items.norm);
        screen_scratch = mmrec__alloc((size_t)parts * screen_len);
        ok = items.q && items.corr && items.scale && items.norm && screen_scratch;
        /* norms too large to screen: the exact scorer of the same CPUs */
        if (ok && !mmrec__eval_quantize(mmrec__eval_screen_isa(scorer), item_emb, I, d, &items))
            scorer = scorer == MMREC__EVAL_SCREEN ? MMREC__EVAL_AVX512 : MMREC__EVAL_AVX2;
    }
    if (!ok) {
        s = mmrec__set_error(MMREC_ENOMEM, func, "out of memory for the evaluation");
    } else {
        size_t e = 0;
        for (size_t u = 0; u < U; u++)
            if (te.ptr[u + 1] > te.ptr[u]) users[e++] = (int64_t)u;
        mmrec__eval_job job = {user_emb, item_emb, I, d, block, kmax, users, n_eval,
                               train ? &tr : NULL, &te, ks, num_ks, scorer, scratch,
                               heap_ids, scratch_len, tile, sums, &items, screen_scratch,
                               screen_len, top};
        mmrec__parallel_for(n_blocks, parts, mmrec__eval_chunk, &job);
    }
    if (s == MMREC_OK) {
        for (int q = 0; q < num_ks; q++) {
            double t[MMREC__M_COUNT] = {0};
            for (size_t b = 0; b < n_blocks; b++)
                for (int m = 0; m < MMREC__M_COUNT; m++)
                    t[m] += sums[(b * (size_t)num_ks + (size_t)q) * MMREC__M_COUNT + (size_t)m];
            double den = n_eval ? (double)n_eval : 1.0;
            mmrec_rank_metrics r;
            memset(&r, 0, sizeof r); /* the padding is copied out too */
            r.struct_size = stride;
            r.k = ks[q];
            r.users = (int64_t)n_eval;
            r.recall = t[MMREC__M_RECALL] / den;
            r.ndcg = t[MMREC__M_NDCG] / den;
            r.precision = t[MMREC__M_PRECISION] / den;
            r.hit_rate = t[MMREC__M_HIT] / den;
            r.mrr = t[MMREC__M_MRR] / den;
            unsigned char *dst = (unsigned char *)out + (size_t)q * stride;
            memcpy(dst, &r, min_size);
        }
    }
    mmrec__free(users);
    mmrec__free(scratch);
    mmrec__free(heap_ids);
    mmrec__free(sums);
    mmrec__free(items.q);
    mmrec__free(items.corr);
    mmrec__free(items.scale);
    mmrec__free(items.norm);
    mmrec__free(screen_scratch);
    mmrec__metrics_lists_free(&tr);
    mmrec__metrics_lists_free(&te);
    return s;
}
