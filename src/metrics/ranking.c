/* Full-ranking evaluation (metrics.h): users with test items are scored in
 * blocks of 64 against tiles of 2048 items, one sgemm per tile, so the
 * scores stay in cache for the scan that follows; each user's training
 * items are dropped, the top K kept with a bounded heap per user, and the
 * metrics summed per block. Blocks are split over the pool with per-chunk
 * scratch, and the block sums are added in block order, so the result does
 * not depend on the thread count. */
#include "metrics_internal.h"
#include "../tensor/blas.h"

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

typedef struct mmrec__eval_job {
    const float *user_emb, *item_emb;
    size_t I, dim, block, kmax;
    const int64_t *users; /* the users evaluated */
    size_t n_users;
    const mmrec__lists *train, *test;
    const int *ks;
    int num_ks;
    float *scratch;    /* per part: block * dim users, block * tile scores, block * kmax */
    int32_t *heap_ids; /* per part: block * kmax */
    size_t scratch_len, tile;
    double *sums;   /* per block: num_ks * MMREC__M_COUNT */
} mmrec__eval_job;

/* "a ranks below b": lower score, or equal score and higher id. */
static inline bool mmrec__below(float sa, int32_t ia, float sb, int32_t ib) {
    return sa < sb || (sa == sb && ia > ib);
}

static inline void mmrec__heap_swap(float *s, int32_t *id, size_t a, size_t b) {
    float ts = s[a];
    s[a] = s[b];
    s[b] = ts;
    int32_t ti = id[a];
    id[a] = id[b];
    id[b] = ti;
}

/* Sift the heap root down (a min-heap by rank: the worst kept at 0). */
static void mmrec__heap_down(float *s, int32_t *id, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && mmrec__below(s[l], id[l], s[m], id[m])) m = l;
        if (r < n && mmrec__below(s[r], id[r], s[m], id[m])) m = r;
        if (m == i) return;
        mmrec__heap_swap(s, id, i, m);
        i = m;
    }
}

static void mmrec__heap_up(float *s, int32_t *id, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!mmrec__below(s[i], id[i], s[p], id[p])) return;
        mmrec__heap_swap(s, id, i, p);
        i = p;
    }
}

/* Items scanned per step of the top-k prefilter. */
#define MMREC__TOPK_STRIDE 64

/* Adds the items base .. base + len - 1 with scores row[0 .. len) to a
 * user's running top k (hs, hid, *n kept; masked entries are -inf and never
 * kept). Items come in increasing id, so a later item ties below the heap's
 * worst: only a strictly higher score enters, and a step whose items all
 * stay at or below the worst kept score (a vectorized count) is skipped. */
MMREC__SIMD_CLONES
static void mmrec__top_k_scan(const float *row, size_t base, size_t len, size_t k, float *hs,
                              int32_t *hid, size_t *n_kept) {
    size_t n = *n_kept, i = 0;
    for (; i < len && n < k; i++) {
        if (row[i] == -INFINITY) continue;
        hs[n] = row[i];
        hid[n] = (int32_t)(base + i);
        mmrec__heap_up(hs, hid, n++);
    }
    while (i < len) {
        size_t end = len - i < MMREC__TOPK_STRIDE ? len : i + MMREC__TOPK_STRIDE;
        float thr = hs[0];
        int above = 0;
        for (size_t j = i; j < end; j++) above += row[j] > thr;
        if (above)
            for (size_t j = i; j < end; j++)
                if (row[j] > hs[0]) {
                    hs[0] = row[j];
                    hid[0] = (int32_t)(base + j);
                    mmrec__heap_down(hs, hid, n, 0);
                }
        i = end;
    }
    *n_kept = n;
}

/* Sorts a top-k heap best first (heap sort: pop the worst to the back). */
static void mmrec__top_k_sort(float *hs, int32_t *hid, size_t n) {
    for (size_t m = n; m > 1; m--) {
        mmrec__heap_swap(hs, hid, 0, m - 1);
        mmrec__heap_down(hs, hid, m - 1, 0);
    }
}

static bool mmrec__contains(const int32_t *items, size_t n, int32_t item) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (items[mid] < item) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && items[lo] == item;
}

static void mmrec__eval_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__eval_job *j = ctx;
    size_t B = j->block, K = j->kmax;
    float *ub = j->scratch + (size_t)part * j->scratch_len;
    float *scores = ub + B * j->dim, *heap_s = scores + B * j->tile;
    int32_t *heap_i = j->heap_ids + (size_t)part * B * K;
    size_t kept[MMREC__EVAL_BLOCK], cursor[MMREC__EVAL_BLOCK];
    for (size_t b = lo; b < hi; b++) {
        size_t first = b * B;
        size_t n = j->n_users - first < B ? j->n_users - first : B;
        for (size_t r = 0; r < n; r++) {
            size_t u = (size_t)j->users[first + r];
            memcpy(ub + r * j->dim, j->user_emb + u * j->dim, j->dim * sizeof(float));
            kept[r] = 0;
            cursor[r] = j->train ? (size_t)j->train->ptr[u] : 0;
        }
        for (size_t t0 = 0; t0 < j->I; t0 += j->tile) {
            size_t len = j->I - t0 < j->tile ? j->I - t0 : j->tile;
            mmrec__sgemm(false, true, n, len, j->dim, 1.0f, ub, j->dim,
                         j->item_emb + t0 * j->dim, j->dim, 0.0f, scores, len);
            for (size_t r = 0; r < n; r++) {
                float *row = scores + r * len;
                if (j->train) { /* the user's train items in this tile (sorted lists) */
                    size_t u = (size_t)j->users[first + r], end = (size_t)j->train->ptr[u + 1];
                    while (cursor[r] < end && (size_t)j->train->items[cursor[r]] < t0 + len)
                        row[(size_t)j->train->items[cursor[r]++] - t0] = -INFINITY;
                }
                mmrec__top_k_scan(row, t0, len, K, heap_s + r * K, heap_i + r * K, &kept[r]);
            }
        }
        double *sums = j->sums + b * (size_t)j->num_ks * MMREC__M_COUNT;
        memset(sums, 0, (size_t)j->num_ks * MMREC__M_COUNT * sizeof *sums);
        for (size_t r = 0; r < n; r++) {
            size_t u = (size_t)j->users[first + r];
            float *hs = heap_s + r * K;
            int32_t *hid = heap_i + r * K;
            mmrec__top_k_sort(hs, hid, kept[r]);
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
    size_t min_size = offsetof(mmrec_rank_metrics, mrr) + sizeof(double);
    size_t stride = out[0].struct_size;
    MMREC_FAIL_IF(stride < min_size, MMREC_EINVAL,
                  "out[0].struct_size is %zu, expected at least %zu (set it to "
                  "sizeof(mmrec_rank_metrics))",
                  stride, min_size);
    size_t U = (size_t)num_users, I = (size_t)num_items, d = (size_t)dim, kmax = 0;
    size_t kcap = I < MMREC__EVAL_MAX_K ? I : MMREC__EVAL_MAX_K;
    for (int q = 0; q < num_ks; q++) {
        MMREC_FAIL_IF(ks[q] < 1 || (size_t)ks[q] > kcap, MMREC_EINVAL,
                      "ks[%d] is %d, expected 1..%zu", q, ks[q], kcap);
        if ((size_t)ks[q] > kmax) kmax = (size_t)ks[q];
    }
    mmrec__lists tr, te;
    MMREC_FORWARD_IF(mmrec__metrics_eval_inputs(user_emb, item_emb, U, I, d, train, test, &tr,
                                                &te, __func__));
    mmrec_status s = MMREC_OK;
    size_t n_eval = 0;
    for (size_t u = 0; u < U; u++) n_eval += te.ptr[u + 1] > te.ptr[u];
    size_t block = MMREC__EVAL_BLOCK, tile = I < MMREC__EVAL_TILE ? I : MMREC__EVAL_TILE;
    size_t n_blocks = n_eval ? (n_eval + block - 1) / block : 0;
    int parts = n_blocks ? mmrec__parallel_parts(n_blocks, 1) : 1;
    size_t scratch_len = block * (d + tile + kmax);
    int64_t *users = mmrec__alloc((n_eval ? n_eval : 1) * sizeof *users);
    float *scratch = mmrec__alloc((size_t)parts * scratch_len * sizeof *scratch);
    int32_t *heap_ids = mmrec__alloc((size_t)parts * block * kmax * sizeof *heap_ids);
    double *sums = mmrec__alloc((n_blocks ? n_blocks : 1) * (size_t)num_ks * MMREC__M_COUNT *
                                sizeof *sums);
    if (users == NULL || scratch == NULL || heap_ids == NULL || sums == NULL) {
        s = mmrec__set_error(MMREC_ENOMEM, __func__, "out of memory for the evaluation");
    } else {
        size_t e = 0;
        for (size_t u = 0; u < U; u++)
            if (te.ptr[u + 1] > te.ptr[u]) users[e++] = (int64_t)u;
        mmrec__eval_job job = {user_emb, item_emb, I, d, block, kmax, users, n_eval,
                               train ? &tr : NULL, &te, ks, num_ks, scratch, heap_ids,
                               scratch_len, tile, sums};
        mmrec__parallel_for(n_blocks, 1, mmrec__eval_chunk, &job);
    }
    if (s == MMREC_OK) {
        for (int q = 0; q < num_ks; q++) {
            double t[MMREC__M_COUNT] = {0};
            for (size_t b = 0; b < n_blocks; b++)
                for (int m = 0; m < MMREC__M_COUNT; m++)
                    t[m] += sums[(b * (size_t)num_ks + (size_t)q) * MMREC__M_COUNT + (size_t)m];
            double den = n_eval ? (double)n_eval : 1.0;
            mmrec_rank_metrics r = {stride, ks[q], (int64_t)n_eval, t[MMREC__M_RECALL] / den,
                                    t[MMREC__M_NDCG] / den, t[MMREC__M_PRECISION] / den,
                                    t[MMREC__M_HIT] / den, t[MMREC__M_MRR] / den};
            unsigned char *dst = (unsigned char *)out + (size_t)q * stride;
            memcpy(dst, &r, min_size);
        }
    }
    mmrec__free(users);
    mmrec__free(scratch);
    mmrec__free(heap_ids);
    mmrec__free(sums);
    mmrec__metrics_lists_free(&tr);
    mmrec__metrics_lists_free(&te);
    return s;
}
