/* The serving index (index.h): exact top-K against a brute force on
 * random data with planted ties, for every storage, metric and MaxSim;
 * filters; sparse ids; thread-count independence; files (round trip,
 * truncated, corrupt, foreign); the cache field source; searches during
 * refreshes from 4 threads; bad arguments; allocation failures.
 *
 * Most data are multiples of 1/8 in [-1, 1] (exact in float16 and
 * bfloat16), so every score is exact in float32 whatever the order of the
 * sums: the brute force (in double) must then match bit for bit, ties
 * included. */
#include "mt.h"
#include "cache/cache_internal.h"
#include "kernels/kernels_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

MT_SUITE(index_suite)

/* ---- data and the brute force ---- */

static uint64_t mt_s = 1;
static int64_t mt_rand(uint64_t bound) { return (int64_t)(mt_lcg(&mt_s) % bound); }

/* Multiples of 1/8 in [-1, 1]. */
static void mt_fill_eighths(float *x, size_t n, uint64_t seed) {
    mt_s = seed;
    for (size_t i = 0; i < n; i++) x[i] = (float)(mt_rand(17) - 8) / 8.0f;
}

/* The brute force's combination of a query's vectors: sum (MaxSim) or max. */
static bool mt_combine_max;

typedef struct mt_cand {
    double score;
    int64_t id;
} mt_cand;

static int mt_cand_cmp(const void *a, const void *b) {
    const mt_cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The brute force: MaxSim of query (qv vectors) against every item (vecs
 * vectors), filter applied, sorted by (score desc, id asc). Returns the
 * number of candidates written to out. */
static size_t mt_brute(const float *items, const int64_t *ids, size_t n, size_t vecs,
                       const float *query, size_t qv, size_t dim,
                       const mmrec_index_filter *f, mt_cand *out) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t id = ids ? ids[i] : (int64_t)i;
        if (f) {
            bool ok = true;
            for (size_t e = 0; e < f->num_exclude; e++) ok = ok && f->exclude[e] != id;
            if (f->allow) {
                bool in = false;
                for (size_t e = 0; e < f->num_allow; e++) in = in || f->allow[e] == id;
                ok = ok && in;
            }
            if (f->allow_bitmap)
                ok = ok && (uint64_t)id < f->allow_bitmap_bits &&
                     ((f->allow_bitmap[id / 64] >> (id % 64)) & 1u);
            if (!ok) continue;
        }
        double s = mt_combine_max ? -INFINITY : 0.0;
        for (size_t q = 0; q < qv; q++) {
            double best = -INFINITY;
            for (size_t v = 0; v < vecs; v++) {
                double d = 0.0;
                for (size_t k = 0; k < dim; k++)
                    d += (double)query[q * dim + k] * (double)items[(i * vecs + v) * dim + k];
                if (d > best) best = d;
            }
            s = mt_combine_max ? (best > s ? best : s) : s + best;
        }
        out[m++] = (mt_cand){s, id};
    }
    qsort(out, m, sizeof *out, mt_cand_cmp);
    return m;
}

/* Checks a search's rows against the brute force, exactly. */
static void mt_check_rows(const char *what, const float *items, const int64_t *ids, size_t n,
                          size_t vecs, const float *queries, size_t nq, size_t qv, size_t dim,
                          const mmrec_index_filter *filters, size_t k, const int64_t *got_ids,
                          const float *got_scores, const size_t *counts) {
    mt_cand *c = malloc(n * sizeof *c);
    for (size_t q = 0; q < nq; q++) {
        size_t m = mt_brute(items, ids, n, vecs, queries + q * qv * dim, qv, dim,
                            filters ? &filters[q] : NULL, c);
        size_t want = m < k ? m : k;
        ck_assert_msg(counts[q] == want, "%s: query %zu: count %zu, expected %zu", what, q,
                      counts[q], want);
        for (size_t r = 0; r < k; r++) {
            int64_t gi = got_ids[q * k + r];
            float gs = got_scores[q * k + r];
            if (r < want)
                ck_assert_msg(gi == c[r].id && (double)gs == c[r].score,
                              "%s: query %zu rank %zu: (%lld, %g), expected (%lld, %g)", what, q,
                              r, (long long)gi, (double)gs, (long long)c[r].id, c[r].score);
            else
                ck_assert_msg(gi == -1 && gs == -INFINITY, "%s: query %zu rank %zu: padding",
                              what, q, r);
        }
    }
    free(c);
}

static mmrec_index *mt_make(const float *items, const int64_t *ids, size_t n, size_t dim,
                            size_t vecs, mmrec_index_metric metric,
                            mmrec_index_storage storage) {
    mmrec_index_config cfg;
    MT_OK(mmrec_index_config_init(&cfg));
    cfg.metric = metric;
    cfg.storage = storage;
    cfg.vectors_per_item = (int64_t)vecs;
    mmrec_index *x;
    MT_OK(mmrec_index_create(items, ids, n, (int64_t)dim, &cfg, &x));
    return x;
}

/* Sizes: enough items for several blocks and parts. */
enum { N = 9000, D = 64, NQ = 5, K = 37, BQ = 70 };

/* Items of multiples of 1/8 with planted ties: every 7th item repeats an
 * earlier one. */
static float *mt_items(size_t n, size_t len, uint64_t seed) {
    float *x = malloc(n * len * sizeof *x);
    mt_fill_eighths(x, n * len, seed);
    for (size_t i = 7; i < n; i += 7) memcpy(x + i * len, x + (i / 3) * len, len * sizeof *x);
    return x;
}

START_TEST(test_index_exact_every_storage_one_and_many_queries) {
    float *items = mt_items(N, D, 11);
    float queries[NQ * D];
    mt_fill_eighths(queries, NQ * D, 12);
    /* a batch of two groups of the AVX-512 scorer, the second partial */
    float *big = malloc(BQ * D * sizeof *big), *bscores = malloc(BQ * K * sizeof *bscores);
    int64_t *bids = malloc(BQ * K * sizeof *bids);
    size_t bcounts[BQ];
    mt_fill_eighths(big, BQ * D, 13);
    int64_t ids[NQ * K];
    float scores[NQ * K];
    size_t counts[NQ];
    for (int st = 0; st < 3; st++) {
        mmrec_index *x = mt_make(items, NULL, N, D, 1, MMREC_INDEX_INNER_PRODUCT,
                                 (mmrec_index_storage)st);
        MT_OK(mmrec_index_search(x, queries, NQ, D, K, NULL, ids, scores, counts));
        mt_check_rows("batch", items, NULL, N, 1, queries, NQ, 1, D, NULL, K, ids, scores,
                      counts);
        MT_OK(mmrec_index_search(x, big, BQ, D, K, NULL, bids, bscores, bcounts));
        mt_check_rows("big batch", items, NULL, N, 1, big, BQ, 1, D, NULL, K, bids, bscores,
                      bcounts);
        for (size_t q = 0; q < NQ; q++) { /* one query per call: the single-query path */
            MT_OK(mmrec_index_search(x, queries + q * D, 1, D, K, NULL, ids, scores, counts));
            mt_check_rows("single", items, NULL, N, 1, queries + q * D, 1, 1, D, NULL, K, ids,
                          scores, counts);
        }
        mmrec_index_destroy(x);
    }
    free(big);
    free(bscores);
    free(bids);
    free(items);
}
END_TEST

START_TEST(test_index_sparse_ids_in_any_order_break_ties_by_id) {
    enum { n = 3000 };
    float *items = mt_items(n, D, 21);
    int64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = ((int64_t)1 << 40) + (int64_t)((i * 7919) % n) * 1000;
    /* identical vectors with ids in both orders */
    memcpy(items + 5 * D, items + 2900 * D, D * sizeof *items);
    float queries[NQ * D];
    mt_fill_eighths(queries, NQ * D, 22);
    int64_t out_ids[NQ * K];
    float scores[NQ * K];
    size_t counts[NQ];
    mmrec_index *x = mt_make(items, ids, n, D, 1, MMREC_INDEX_INNER_PRODUCT, MMREC_INDEX_F16);
    MT_OK(mmrec_index_search(x, queries, NQ, D, K, NULL, out_ids, scores, counts));
    mt_check_rows("sparse", items, ids, n, 1, queries, NQ, 1, D, NULL, K, out_ids, scores,
                  counts);
    MT_OK(mmrec_index_search(x, queries, 1, D, K, NULL, out_ids, scores, counts));
    mt_check_rows("sparse single", items, ids, n, 1, queries, 1, 1, D, NULL, K, out_ids, scores,
                  counts);
    int64_t num, dim, vecs;
    mmrec_index_metric metric;
    mmrec_index_storage storage;
    MT_OK(mmrec_index_info(x, &num, &dim, &vecs, &metric, &storage));
    ck_assert(num == n && dim == D && vecs == 1 && metric == MMREC_INDEX_INNER_PRODUCT &&
              storage == MMREC_INDEX_F16);
    mmrec_index_destroy(x);
    free(ids);
    free(items);
}
END_TEST

/* Unit vectors of four +-1/2 entries, each item scaled by a power of two:
 * cosine normalizes them exactly. */
START_TEST(test_index_cosine_normalizes_items_and_queries) {
    enum { n = 5000 };
    float *units = calloc((size_t)n * D, sizeof *units), *scaled = malloc((size_t)n * D * 4);
    mt_s = 31;
    for (size_t i = 0; i < n; i++) {
        for (int e = 0; e < 4; e++)
            units[i * D + (size_t)mt_rand(D)] = mt_rand(2) ? 0.5f : -0.5f;
        float norm2 = 0;
        for (size_t k = 0; k < D; k++) norm2 += units[i * D + k] * units[i * D + k];
        if (norm2 != 1.0f) { /* two draws hit one place: make it a unit */
            memset(units + i * D, 0, D * sizeof *units);
            units[i * D + i % D] = 1.0f;
        }
        float scale = ldexpf(1.0f, (int)mt_rand(7) - 3);
        for (size_t k = 0; k < D; k++) scaled[i * D + k] = units[i * D + k] * scale;
    }
    float q[NQ * D], q2[NQ * D];
    memset(q, 0, sizeof q);
    for (size_t i = 0; i < NQ; i++) {
        q[i * D + i] = 1.0f;
        for (size_t k = 0; k < D; k++) q2[i * D + k] = 4.0f * q[i * D + k];
    }
    int64_t ids[NQ * K];
    float scores[NQ * K];
    size_t counts[NQ];
    for (int st = 0; st < 3; st++) {
        mmrec_index *x = mt_make(scaled, NULL, n, D, 1, MMREC_INDEX_COSINE,
                                 (mmrec_index_storage)st);
        MT_OK(mmrec_index_search(x, q2, NQ, D, K, NULL, ids, scores, counts));
        mt_check_rows("cosine", units, NULL, n, 1, q, NQ, 1, D, NULL, K, ids, scores, counts);
        MT_OK(mmrec_index_search(x, q2, 1, D, K, NULL, ids, scores, counts));
        mt_check_rows("cosine single", units, NULL, n, 1, q, 1, 1, D, NULL, K, ids, scores,
                      counts);
        mmrec_index_destroy(x);
    }
    free(units);
    free(scaled);
}
END_TEST

START_TEST(test_index_maxsim_multi_vector_queries_and_items) {
    enum { n = 2500, V = 4, QV = 3, d = 16, MQ = 12 };
    float *items = mt_items(n, V * d, 41);
    float queries[MQ * QV * d];
    mt_fill_eighths(queries, MQ * QV * d, 42);
    int64_t ids[MQ * K];
    float scores[MQ * K];
    size_t counts[MQ];
    for (int st = 0; st < 3; st++) {
        mmrec_index *x = mt_make(items, NULL, n, d, V, MMREC_INDEX_INNER_PRODUCT,
                                 (mmrec_index_storage)st);
        MT_OK(mmrec_index_search_multi(x, queries, NQ, QV, d, K, NULL, ids, scores, counts));
        mt_check_rows("maxsim", items, NULL, n, V, queries, NQ, QV, d, NULL, K, ids, scores,
                      counts);
        /* 36 query vectors: the batch path */
        MT_OK(mmrec_index_search_multi(x, queries, MQ, QV, d, K, NULL, ids, scores, counts));
        mt_check_rows("maxsim batch", items, NULL, n, V, queries, MQ, QV, d, NULL, K, ids,
                      scores, counts);
        MT_OK(mmrec_index_search_multi(x, queries, 1, QV, d, K, NULL, ids, scores, counts));
        mt_check_rows("maxsim single", items, NULL, n, V, queries, 1, QV, d, NULL, K, ids,
                      scores, counts);
        /* one query vector: the max over the item's vectors */
        MT_OK(mmrec_index_search(x, queries, NQ, d, K, NULL, ids, scores, counts));
        mt_check_rows("max", items, NULL, n, V, queries, NQ, 1, d, NULL, K, ids, scores, counts);
        mmrec_index_destroy(x);
        /* a user's several interest vectors: the max over the query's vectors */
        mmrec_index_config cfg;
        MT_OK(mmrec_index_config_init(&cfg));
        cfg.vectors_per_item = V;
        cfg.storage = (mmrec_index_storage)st;
        cfg.query_combine = MMREC_INDEX_COMBINE_MAX;
        MT_OK(mmrec_index_create(items, NULL, n, d, &cfg, &x));
        mt_combine_max = true;
        MT_OK(mmrec_index_search_multi(x, queries, NQ, QV, d, K, NULL, ids, scores, counts));
        mt_check_rows("interests", items, NULL, n, V, queries, NQ, QV, d, NULL, K, ids, scores,
                      counts);
        MT_OK(mmrec_index_search_multi(x, queries, MQ, QV, d, K, NULL, ids, scores, counts));
        mt_check_rows("interests batch", items, NULL, n, V, queries, MQ, QV, d, NULL, K, ids,
                      scores, counts);
        mt_combine_max = false;
        mmrec_index_destroy(x);
    }
    free(items);
}
END_TEST

START_TEST(test_index_filters_exclude_allow_bitmap) {
    enum { n = 6000 };
    float *items = mt_items(n, D, 51);
    int64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)(3 * i + 1);
    float queries[NQ * D];
    mt_fill_eighths(queries, NQ * D, 52);
    /* query 0: exclude list with repeats and unknown ids; 1: allow list;
     * 2: bitmap; 3: all three; 4: none */
    static int64_t exclude[400], allow[300];
    static uint64_t bitmap[(3 * n + 64) / 64];
    mt_s = 53;
    for (size_t e = 0; e < 400; e++) exclude[e] = mt_rand(3 * n + 10);
    for (size_t e = 0; e < 300; e++) allow[e] = mt_rand(3 * n + 10);
    for (size_t w = 0; w < sizeof bitmap / 8; w++) bitmap[w] = mt_lcg(&mt_s) * 2654435761u;
    mmrec_index_filter f[NQ];
    for (int q = 0; q < NQ; q++) MT_OK(mmrec_index_filter_init(&f[q]));
    f[0].exclude = exclude, f[0].num_exclude = 400;
    f[1].allow = allow, f[1].num_allow = 300;
    f[2].allow_bitmap = bitmap, f[2].allow_bitmap_bits = 2 * n; /* ids above are not allowed */
    f[3] = f[0];
    f[3].allow = allow, f[3].num_allow = 300;
    f[3].allow_bitmap = bitmap, f[3].allow_bitmap_bits = 3 * n;
    /* the top results of query 0 excluded too */
    static float bq[7 * NQ * D], bscores[7 * NQ * K];
    static int64_t bout[7 * NQ * K];
    static size_t bcounts[7 * NQ];
    static mmrec_index_filter bf[7 * NQ];
    int64_t out[NQ * K];
    float scores[NQ * K];
    size_t counts[NQ];
    mmrec_index *x = mt_make(items, ids, n, D, 1, MMREC_INDEX_INNER_PRODUCT, MMREC_INDEX_F32);
    MT_OK(mmrec_index_search(x, queries, 1, D, K, NULL, out, scores, counts));
    for (int r = 0; r < 10; r++) exclude[r] = out[r];
    for (int st = 0; st < 2; st++) {
        if (st == 1) {
            mmrec_index_destroy(x);
            x = mt_make(items, ids, n, D, 1, MMREC_INDEX_INNER_PRODUCT, MMREC_INDEX_BF16);
        }
        MT_OK(mmrec_index_search(x, queries, NQ, D, K, f, out, scores, counts));
        mt_check_rows("filters", items, ids, n, 1, queries, NQ, 1, D, f, K, out, scores, counts);
        /* the same filters in a batch of 35 queries (7 copies of the 5) */
        for (int c = 0; c < 7; c++) {
            memcpy(bq + c * NQ * D, queries, sizeof queries);
            memcpy(bf + c * NQ, f, sizeof f);
        }
        MT_OK(mmrec_index_search(x, bq, 7 * NQ, D, K, bf, bout, bscores, bcounts));
        mt_check_rows("filters batch", items, ids, n, 1, bq, 7 * NQ, 1, D, bf, K, bout, bscores,
                      bcounts);
        for (int q = 0; q < NQ; q++) {
            MT_OK(mmrec_index_search(x, queries + q * D, 1, D, K, &f[q], out, scores, counts));
            mt_check_rows("filter single", items, ids, n, 1, queries + q * D, 1, 1, D, &f[q], K,
                          out, scores, counts);
        }
    }
    mmrec_index_destroy(x);
    free(ids);
    free(items);
}
END_TEST

/* Dim 272: beyond the AVX-512 scorers' 256, batches go through BLAS. */
START_TEST(test_index_exact_through_blas_beyond_dim_256) {
    enum { n = 1500, d = 272, nq = 20, V = 2 };
    float *items = mt_items(n, V * d, 151);
    float *q = malloc(nq * 2 * d * sizeof *q);
    mt_fill_eighths(q, nq * 2 * d, 152);
    int64_t ids[nq * K];
    float scores[nq * K];
    size_t counts[nq];
    for (int st = 0; st < 2; st++) {
        mmrec_index *x = mt_make(items, NULL, 2 * n, d, 1, MMREC_INDEX_INNER_PRODUCT,
                                 (mmrec_index_storage)st);
        MT_OK(mmrec_index_search(x, q, nq, d, K, NULL, ids, scores, counts));
        mt_check_rows("blas", items, NULL, 2 * n, 1, q, nq, 1, d, NULL, K, ids, scores, counts);
        mmrec_index_destroy(x);
        x = mt_make(items, NULL, n, d, V, MMREC_INDEX_INNER_PRODUCT, (mmrec_index_storage)st);
        MT_OK(mmrec_index_search_multi(x, q, nq / 2, 2, d, K, NULL, ids, scores, counts));
        mt_check_rows("blas maxsim", items, NULL, n, V, q, nq / 2, 2, d, NULL, K, ids, scores,
                      counts);
        mmrec_index_destroy(x);
    }
    free(q);
    free(items);
}
END_TEST

/* One query with a short allow list scores only those items: the same bits
 * as the scan that filters the same set by a bitmap (random floats). */
START_TEST(test_index_short_allow_list_matches_the_scan) {
    enum { n = 20000, d = 32 };
    float *items = malloc((size_t)n * d * sizeof *items), q[d];
    mt_fill_uniform(items, (size_t)n * d, -1, 1, 131);
    mt_fill_uniform(q, d, -1, 1, 132);
    static int64_t allow[600], ids_a[K], ids_b[K];
    static uint64_t bitmap[n / 64 + 1];
    float sa[K], sb[K];
    size_t ca, cb;
    mt_s = 133;
    for (int i = 0; i < 600; i++) {
        allow[i] = mt_rand(n);
        bitmap[allow[i] / 64] |= (uint64_t)1 << (allow[i] % 64);
    }
    mmrec_index_filter fa, fb;
    MT_OK(mmrec_index_filter_init(&fa));
    fb = fa;
    fa.allow = allow, fa.num_allow = 600;
    fb.allow_bitmap = bitmap, fb.allow_bitmap_bits = n;
    fa.exclude = fb.exclude = allow + 7, fa.num_exclude = fb.num_exclude = 5;
    for (int st = 0; st < 3; st++) {
        mmrec_index *x = mt_make(items, NULL, n, d, 1, MMREC_INDEX_INNER_PRODUCT,
                                 (mmrec_index_storage)st);
        MT_OK(mmrec_index_search(x, q, 1, d, K, &fa, ids_a, sa, &ca));
        MT_OK(mmrec_index_search(x, q, 1, d, K, &fb, ids_b, sb, &cb));
        ck_assert(ca == K && cb == K);
        ck_assert_msg(memcmp(ids_a, ids_b, sizeof ids_a) == 0 && memcmp(sa, sb, sizeof sa) == 0,
                      "storage %d: the allow list and the bitmap differ", st);
        mmrec_index_destroy(x);
    }
    free(items);
}
END_TEST

START_TEST(test_index_exclude_everything_allow_nothing_k_above_items) {
    enum { n = 50, k = 80 };
    float items[n * 8], q[3 * 8];
    mt_fill_eighths(items, n * 8, 61);
    mt_fill_eighths(q, 3 * 8, 62);
    int64_t all[n], none[1] = {0};
    for (int i = 0; i < n; i++) all[i] = i;
    mmrec_index_filter f[3];
    for (int i = 0; i < 3; i++) MT_OK(mmrec_index_filter_init(&f[i]));
    f[0].exclude = all, f[0].num_exclude = n;
    f[1].allow = none, f[1].num_allow = 0; /* an empty allow list allows nothing */
    int64_t ids[3 * k];
    float scores[3 * k];
    size_t counts[3];
    mmrec_index *x = mt_make(items, NULL, n, 8, 1, MMREC_INDEX_INNER_PRODUCT, MMREC_INDEX_F32);
    MT_OK(mmrec_index_search(x, q, 3, 8, k, f, ids, scores, counts));
    ck_assert(counts[0] == 0 && counts[1] == 0 && counts[2] == n);
    mt_check_rows("k > items", items, NULL, n, 1, q, 3, 1, 8, f, k, ids, scores, counts);
    for (int i = 0; i < 3; i++) {
        MT_OK(mmrec_index_search(x, q + i * 8, 1, 8, k, &f[i], ids, scores, counts));
        ck_assert(counts[0] == (i < 2 ? 0u : (size_t)n));
        ck_assert(ids[k - 1] == -1 && scores[k - 1] == -INFINITY);
    }
    /* counts may be NULL */
    MT_OK(mmrec_index_search(x, q, 1, 8, 3, NULL, ids, scores, NULL));
    mmrec_index_destroy(x);
}
END_TEST

/* Random floats (not exact): the same bits for 1, 2, 3 and 4 threads. */
START_TEST(test_index_results_identical_for_any_thread_count) {
    enum { n = 40000 };
    float *items = malloc((size_t)n * D * sizeof *items);
    static float queries[BQ * D];
    mt_fill_uniform(items, (size_t)n * D, -1, 1, 71);
    mt_fill_uniform(queries, BQ * D, -1, 1, 72);
    static int64_t ref_ids[4][BQ * K], ids[BQ * K];
    static float ref_s[4][BQ * K], scores[BQ * K];
    int before = mmrec_get_num_threads();
    for (int st = 0; st < 2; st++) {
        mmrec_index *x = mt_make(items, NULL, n / 2, D, 2, MMREC_INDEX_COSINE,
                                 (mmrec_index_storage)st);
        mmrec_index *y = mt_make(items, NULL, n, D, 1, MMREC_INDEX_INNER_PRODUCT,
                                 (mmrec_index_storage)st);
        for (int t = 1; t <= 4; t++) {
            MT_OK(mmrec_set_num_threads(t));
            for (int c = 0; c < 4; c++) {
                if (c == 0) MT_OK(mmrec_index_search(y, queries, 1, D, K, NULL, ids, scores, NULL));
                if (c == 1)
                    MT_OK(mmrec_index_search(y, queries, NQ, D, K, NULL, ids, scores, NULL));
                if (c == 2) /* 20 query vectors: the batch MaxSim path */
                    MT_OK(mmrec_index_search_multi(x, queries, 2 * NQ, 2, D, K, NULL, ids, scores,
                                                   NULL));
                if (c == 3)
                    MT_OK(mmrec_index_search(y, queries, BQ, D, K, NULL, ids, scores, NULL));
                if (t == 1) {
                    memcpy(ref_ids[c], ids, sizeof ids);
                    memcpy(ref_s[c], scores, sizeof scores);
                } else {
                    size_t len = c == 0 ? K : c == 3 ? BQ * K : c == 2 ? 2 * NQ * K : NQ * K;
                    ck_assert_msg(memcmp(ref_ids[c], ids, len * sizeof *ids) == 0 &&
                                      memcmp(ref_s[c], scores, len * sizeof *scores) == 0,
                                  "case %d storage %d: %d threads differ from 1", c, st, t);
                }
            }
        }
        mmrec_index_destroy(x);
        mmrec_index_destroy(y);
    }
    MT_OK(mmrec_set_num_threads(before));
    free(items);
}
END_TEST

/* The row scorer's AVX-512 kernel (16 rows at once, dim a multiple of 16)
 * sums in the portable loop's order: the same bits, -0 included. */
START_TEST(test_index_row_scorer_kernel_matches_portable_loop) {
    enum { n = 1000 };
    static float rows[n * 96], out[3 * n], ref[3 * n], q[3 * 96];
    mt_fill_uniform(rows, n * 96, -1, 1, 121);
    mt_fill_uniform(q, 3 * 96, -2, 2, 122);
    for (size_t i = 0; i < 96; i++) rows[5 * 96 + i] = q[i] == 0 ? 0.0f : -0.0f * q[i];
    const size_t dims[] = {16, 32, 64, 96, 20, 7};
    for (size_t c = 0; c < sizeof dims / sizeof *dims; c++) {
        size_t d = dims[c], m = n * 96 / d < n ? n * 96 / d : n;
        mmrec__dot_rows(q, 3, rows, m, d, out, n);
        mmrec__dot_rows_portable(q, 3, rows, m, d, ref, n);
        for (int r = 0; r < 3; r++)
            ck_assert_msg(memcmp(out + r * n, ref + r * n, m * sizeof *out) == 0,
                          "dim %zu query %d: the kernel differs", d, r);
        mmrec__dot_rows(q + d, 1, rows, m, d, out, n); /* alone: the same as among others */
        ck_assert(memcmp(out, ref + n, m * sizeof *out) == 0);
    }
    /* 16-bit rows read by the kernel: the scores of the widened rows */
    static uint16_t half[n * 96];
    static float wide[n * 96];
    for (int t = 1; t <= 2; t++) {
        mmrec_cache_dtype dt = (mmrec_cache_dtype)t;
        ck_assert_uint_eq(mmrec__cache_encode(dt, rows, half, n * 96), n * 96);
        mmrec__cache_widen(dt, half, wide, n * 96);
        for (size_t c = 0; c < 4; c++) {
            size_t d = dims[c], m = n * 96 / d < n ? n * 96 / d : n;
            mmrec__dot_rows_portable(q, 1, wide, m - 3, d, ref, m);
            if (!mmrec__dot_rows_half(q, 1, half, t == 2, m - 3, d, out, m))
                continue; /* no AVX-512 here */
            ck_assert_msg(memcmp(out, ref, (m - 3) * sizeof *out) == 0,
                          "dtype %d dim %zu: the 16-bit kernel differs", t, d);
        }
    }
}
END_TEST

/* The batch scorer's three-quarter kernel (a last group of at most 48
 * queries) gives the full kernel's scores bit for bit, and the same runs
 * above the thresholds; random floats, a short last run. */
START_TEST(test_index_narrow_batch_kernel_matches_full_kernel) {
    enum { n = 203, d = 64 };
    if (!mmrec__score_kernel_usable(d)) return;
    static float users[d * 64], items[n * d], thr[64], s64[8 * 64], s48[8 * 64];
    uint64_t m64[8], m48[8];
    mt_fill_uniform(users, d * 64, -1, 1, 131);
    mt_fill_uniform(items, n * d, -1, 1, 132);
    for (int r = 0; r < 64; r++) thr[r] = r < 48 ? 1.5f : INFINITY;
    /* every score of the first 48 users, from both kernels */
    static float all64[n * 48], all48[n * 48];
    for (int pass = 0; pass < 2; pass++) {
        float low[64];
        for (int r = 0; r < 64; r++) low[r] = r < 48 ? -INFINITY : INFINITY;
        size_t run = pass ? MMREC__SCORE_RUN48 : MMREC__SCORE_RUN;
        for (size_t i = 0; i < n; i += run) {
            size_t at = pass ? mmrec__score_find48(users, items, d, i, n, low, s48, m48)
                             : mmrec__score_find(users, items, d, i, n, low, s64, m64);
            ck_assert_uint_eq(at, i);
            for (size_t q = 0; q < run && i + q < n; q++)
                for (int r = 0; r < 48; r++)
                    (pass ? all48 : all64)[(i + q) * 48 + r] = (pass ? s48 : s64)[q * 64 + r];
        }
    }
    ck_assert(memcmp(all48, all64, sizeof all64) == 0);
    /* with thresholds: the first run holding a score above, and its mask */
    size_t at = mmrec__score_find48(users, items, d, 0, n, thr, s48, m48);
    size_t want = n;
    for (size_t i = 0; i < n && want == n; i++)
        for (int r = 0; r < 48; r++)
            if (all64[i * 48 + r] > thr[r]) want = i / MMREC__SCORE_RUN48 * MMREC__SCORE_RUN48;
    ck_assert_uint_eq(at, want);
    if (at < n)
        for (size_t q = 0; q < MMREC__SCORE_RUN48 && at + q < n; q++)
            for (int r = 0; r < 48; r++)
                ck_assert(((m48[q] >> r) & 1) == (all64[(at + q) * 48 + r] > thr[r]));
}
END_TEST

/* A query alone and in a small batch (the row scorer serves both) gets the
 * same bits, also for MaxSim; random floats. */
START_TEST(test_index_small_batch_scores_equal_the_query_alone) {
    enum { n = 7000, d = 48, QV = 2 };
    float *items = malloc((size_t)n * 2 * d * sizeof *items), q[6 * QV * d];
    mt_fill_uniform(items, (size_t)n * 2 * d, -1, 1, 141);
    mt_fill_uniform(q, 6 * QV * d, -1, 1, 142);
    static int64_t ids[6 * K], one_ids[K];
    static float scores[6 * K], one[K];
    for (int st = 0; st < 3; st++)
        for (int vecs = 1; vecs <= 2; vecs++) {
            mmrec_index *x = mt_make(items, NULL, n, d, (size_t)vecs, MMREC_INDEX_INNER_PRODUCT,
                                     (mmrec_index_storage)st);
            size_t qv = (size_t)(3 - vecs); /* 2 x 1 and 1 x 2 vectors */
            MT_OK(mmrec_index_search_multi(x, q, 6, (int64_t)qv, d, K, NULL, ids, scores, NULL));
            for (size_t r = 0; r < 6; r++) {
                MT_OK(mmrec_index_search_multi(x, q + r * qv * d, 1, (int64_t)qv, d, K, NULL,
                                               one_ids, one, NULL));
                ck_assert_msg(memcmp(one_ids, ids + r * K, sizeof one_ids) == 0 &&
                                  memcmp(one, scores + r * K, sizeof one) == 0,
                              "storage %d vecs %d query %zu: alone and in the batch differ", st,
                              vecs, r);
            }
            mmrec_index_destroy(x);
        }
    free(items);
}
END_TEST

/* ---- files ---- */

START_TEST(test_index_save_open_round_trip_every_storage) {
    mt_tmp_dir();
    enum { n = 700 };
    float *items = mt_items(n, 3 * 16, 81);
    int64_t ids[n];
    for (int i = 0; i < n; i++) ids[i] = (int64_t)(n - i) * 11;
    float q[2 * 3 * 16];
    mt_fill_eighths(q, sizeof q / sizeof *q, 82);
    int64_t a_ids[2 * K], b_ids[2 * K];
    float a_s[2 * K], b_s[2 * K];
    const char *path = mt_file(0, "items.mmix");
    for (int st = 0; st < 3; st++) {
        mmrec_index_config cfg;
        MT_OK(mmrec_index_config_init(&cfg));
        cfg.metric = (mmrec_index_metric)(st == 1);
        cfg.storage = (mmrec_index_storage)st;
        cfg.vectors_per_item = 3;
        cfg.query_combine = (mmrec_index_combine)(st == 2);
        mmrec_index *x, *y;
        MT_OK(mmrec_index_create(items, ids, n, 16, &cfg, &x));
        MT_OK(mmrec_index_save(x, path));
        ck_assert_int_eq(mt_count_tmp_files(), 0);
        MT_OK(mmrec_index_open(path, &y));
        MT_OK(mmrec_index_search_multi(x, q, 2, 3, 16, K, NULL, a_ids, a_s, NULL));
        MT_OK(mmrec_index_search_multi(y, q, 2, 3, 16, K, NULL, b_ids, b_s, NULL));
        ck_assert(memcmp(a_ids, b_ids, sizeof a_ids) == 0 && memcmp(a_s, b_s, sizeof a_s) == 0);
        if (st == 2) { /* the combination came back from the file */
            mt_combine_max = true;
            size_t counts[2] = {K, K};
            mt_check_rows("reopened", items, ids, n, 3, q, 2, 3, 16, NULL, K, b_ids, b_s, counts);
            mt_combine_max = false;
        }
        int64_t num, dim, vecs;
        mmrec_index_metric metric;
        mmrec_index_storage storage;
        MT_OK(mmrec_index_info(y, &num, &dim, &vecs, &metric, &storage));
        ck_assert(num == n && dim == 16 && vecs == 3 && (int)metric == (st == 1) &&
                  (int)storage == st);
        /* a saved mapped index saves the same bytes */
        const char *again = mt_file(1, "again.mmix");
        MT_OK(mmrec_index_save(y, again));
        size_t s1, s2;
        unsigned char *f1 = mt_read_file(path, &s1), *f2 = mt_read_file(again, &s2);
        ck_assert(s1 == s2 && memcmp(f1, f2, s1) == 0);
        free(f1);
        free(f2);
        mmrec_index_destroy(y);
        mmrec_index_destroy(x);
    }
    free(items);
    mt_tmp_clean();
}
END_TEST

static void mt_expect_bad(const char *path, const char *needle) {
    mmrec_index *x = (mmrec_index *)0x1;
    MT_EXPECT(mmrec_index_open(path, &x), MMREC_EFORMAT, needle);
    MT_EXPECT(mmrec_index_open(path, &x), MMREC_EFORMAT, path);
    ck_assert_ptr_eq(x, (mmrec_index *)0x1); /* untouched */
}

START_TEST(test_index_truncated_corrupt_and_foreign_files_rejected) {
    mt_tmp_dir();
    float items[10 * 8];
    mt_fill_eighths(items, 80, 91);
    char full[160];
    snprintf(full, sizeof full, "%s", mt_file(0, "full.mmix"));
    const char *bad = mt_file(1, "bad.mmix");
    mmrec_index *x = mt_make(items, NULL, 10, 8, 1, MMREC_INDEX_INNER_PRODUCT, MMREC_INDEX_F32);
    MT_OK(mmrec_index_save(x, full));
    mmrec_index_destroy(x);
    size_t size;
    unsigned char *file = mt_read_file(full, &size);
    ck_assert_uint_eq(size, 64 + 80 + 48 + 320); /* header, ids, padding, vectors */
    size_t lengths[] = {0, 1, 8, 63, 64, 65, 100, 144, 192, 300, size - 4, size - 1};
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        mt_write_file(bad, file, lengths[i]);
        mt_expect_bad(bad, lengths[i] < 64 ? "shorter than the 64-byte header" : "truncated");
    }
    unsigned char *longer = calloc(size + 8, 1);
    memcpy(longer, file, size);
    mt_write_file(bad, longer, size + 8);
    mt_expect_bad(bad, "its header says");
    free(longer);
    struct {
        size_t pos;
        const char *needle;
    } cases[] = {{0, "bad magic"},           {7, "bad magic"},
                 {8, "header checksum"},     {16, "header checksum"},
                 {36, "header checksum"},    {61, "header checksum"},
                 {64, "id table checksum"},  {143, "id table checksum"},
                 {150, "padding"},           {192, "vector checksum"},
                 {size - 1, "vector checksum"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        file[cases[i].pos] ^= 0x40;
        mt_write_file(bad, file, size);
        mt_expect_bad(bad, cases[i].needle);
        file[cases[i].pos] ^= 0x40;
    }
    /* a feature cache is not an index */
    mmrec_cache_writer *w;
    const int64_t ids[2] = {1, 2};
    MT_OK(mmrec_cache_writer_create(bad, ids, 2, &w));
    MT_OK(mmrec_cache_writer_add(w, "e", MMREC_CACHE_F32, items, 8));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    mt_expect_bad(bad, "not a libmmrec index");
    free(file);
    mmrec_index *y;
    MT_EXPECT(mmrec_index_open(mt_file(2, "missing.mmix"), &y), MMREC_EIO, "missing.mmix");
    mt_tmp_clean();
}
END_TEST

START_TEST(test_index_from_cache_field_matches_matrix) {
    mt_tmp_dir();
    enum { n = 1200, V = 2, d = 24 };
    float *items = mt_items(n, V * d, 101);
    int64_t ids[n];
    for (int i = 0; i < n; i++) ids[i] = (int64_t)((i * 37) % n) * 5 + 3;
    const char *path = mt_file(0, "c.mmfc");
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, ids, n, &w));
    MT_OK(mmrec_cache_writer_add(w, "emb", MMREC_CACHE_F16, items, V * d));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    mmrec_index_config cfg;
    MT_OK(mmrec_index_config_init(&cfg));
    cfg.vectors_per_item = V;
    cfg.storage = MMREC_INDEX_BF16;
    mmrec_index *x;
    MT_OK(mmrec_index_create_from_cache(c, "emb", &cfg, &x));
    float q[3 * 2 * d];
    mt_fill_eighths(q, sizeof q / sizeof *q, 102);
    int64_t out[3 * K];
    float scores[3 * K];
    size_t counts[3];
    MT_OK(mmrec_index_search_multi(x, q, 3, 2, d, K, NULL, out, scores, counts));
    mt_check_rows("cache", items, ids, n, V, q, 3, 2, d, NULL, K, out, scores, counts);
    mmrec_index_destroy(x);
    cfg.vectors_per_item = 5;
    MT_EXPECT(mmrec_index_create_from_cache(c, "emb", &cfg, &x), MMREC_ESHAPE,
              "not a multiple of cfg->vectors_per_item 5");
    MT_EXPECT(mmrec_index_create_from_cache(c, "nope", NULL, &x), MMREC_ENOTFOUND,
              "the cache has no field 'nope'");
    mmrec_cache_close(c);
    free(items);
    mt_tmp_clean();
}
END_TEST

/* ---- versions and threads ---- */

enum { VN = 3000, VD = 16, VK = 20 };

/* Version c: every item's vector is c * (1, ..., 1), ids from c * 100000:
 * a search's scores and ids say which version it read. */
static mmrec_index *mt_version(float c, mmrec_index_storage storage) {
    float *items = malloc(VN * VD * sizeof *items);
    int64_t *ids = malloc(VN * sizeof *ids);
    for (size_t i = 0; i < VN * VD; i++) items[i] = c;
    for (size_t i = 0; i < VN; i++) ids[i] = (int64_t)c * 100000 + (int64_t)i;
    mmrec_index *x = mt_make(items, ids, VN, VD, 1, MMREC_INDEX_INNER_PRODUCT, storage);
    free(items);
    free(ids);
    return x;
}

typedef struct mt_searcher {
    const mmrec_index *index;
    int failures, mixed, seen[3];
} mt_searcher;

static void *mt_search_loop(void *arg) {
    mt_searcher *r = arg;
    float q[2 * VD];
    for (int i = 0; i < 2 * VD; i++) q[i] = 1.0f;
    int64_t ids[2 * VK];
    float scores[2 * VK];
    size_t counts[2];
    for (int it = 0; it < 200; it++) {
        size_t nq = 1 + (size_t)(it % 2);
        if (mmrec_index_search(r->index, q, nq, VD, VK, NULL, ids, scores, counts) != MMREC_OK) {
            r->failures++;
            continue;
        }
        int c = (int)(scores[0] / VD);
        bool one = (c == 1 || c == 2) && counts[0] == VK;
        for (size_t e = 0; e < nq * VK; e++)
            one = one && scores[e] == scores[0] && ids[e] == c * 100000 + (int64_t)(e % VK);
        if (!one) r->mixed++;
        else r->seen[c]++;
    }
    return NULL;
}

typedef struct mt_refresher {
    mmrec_index *index;
    const mmrec_index *sources[2];
    int failures;
} mt_refresher;

static void *mt_refresh_loop(void *arg) {
    mt_refresher *r = arg;
    for (int it = 0; it < 150; it++)
        if (mmrec_index_refresh(r->index, r->sources[it % 2]) != MMREC_OK) r->failures++;
    return NULL;
}

START_TEST(test_index_searches_during_refresh_see_one_version) {
    mt_tmp_dir();
    mmrec_index *one = mt_version(1.0f, MMREC_INDEX_F32), *two = mt_version(2.0f, MMREC_INDEX_F16);
    /* the served index reads from a file, the others from memory */
    const char *path = mt_file(0, "v1.mmix");
    MT_OK(mmrec_index_save(one, path));
    mmrec_index *served;
    MT_OK(mmrec_index_open(path, &served));
    pthread_t searchers[4], refresher;
    mt_searcher r[4];
    mt_refresher rf = {served, {two, one}, 0};
    for (int i = 0; i < 4; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].index = served;
        ck_assert_int_eq(pthread_create(&searchers[i], NULL, mt_search_loop, &r[i]), 0);
    }
    ck_assert_int_eq(pthread_create(&refresher, NULL, mt_refresh_loop, &rf), 0);
    pthread_join(refresher, NULL);
    for (int i = 0; i < 4; i++) {
        pthread_join(searchers[i], NULL);
        ck_assert_int_eq(r[i].failures, 0);
        ck_assert_int_eq(r[i].mixed, 0);
        ck_assert_int_eq(r[i].seen[1] + r[i].seen[2], 200);
    }
    ck_assert_int_eq(rf.failures, 0);
    /* the sources outlive nothing they share: destroy them first */
    mmrec_index_destroy(one);
    mmrec_index_destroy(two);
    float q[VD];
    for (int i = 0; i < VD; i++) q[i] = 1.0f;
    int64_t ids[VK];
    float scores[VK];
    MT_OK(mmrec_index_search(served, q, 1, VD, VK, NULL, ids, scores, NULL));
    ck_assert(scores[0] == VD && ids[0] == 100000); /* the last swap put version 1 back */
    mmrec_index_destroy(served);
    mt_tmp_clean();
}
END_TEST

/* ---- bad arguments ---- */

START_TEST(test_index_bad_arguments) {
    float items[4 * 8] = {0}, q[2 * 8] = {0};
    int64_t ids[8];
    float scores[8];
    mmrec_index *x = mt_make(items, NULL, 4, 8, 1, MMREC_INDEX_INNER_PRODUCT, MMREC_INDEX_F32);
    mmrec_index *y = (mmrec_index *)0x1;
    /* search */
    MT_EXPECT(mmrec_index_search(x, q, 1, 8, 0, NULL, ids, scores, NULL), MMREC_EINVAL, "k is 0");
    MT_EXPECT(mmrec_index_search(x, q, 0, 8, 2, NULL, ids, scores, NULL), MMREC_EINVAL,
              "num_queries is 0");
    MT_EXPECT(mmrec_index_search(x, q, 1, 6, 2, NULL, ids, scores, NULL), MMREC_ESHAPE,
              "dim is 6");
    MT_EXPECT(mmrec_index_search(x, q, 1, 0, 2, NULL, ids, scores, NULL), MMREC_EINVAL,
              "dim is 0");
    MT_EXPECT(mmrec_index_search_multi(x, q, 1, 0, 8, 2, NULL, ids, scores, NULL), MMREC_EINVAL,
              "query_vectors is 0");
    q[11] = NAN;
    MT_EXPECT(mmrec_index_search(x, q, 2, 8, 2, NULL, ids, scores, NULL), MMREC_ENUMERIC,
              "queries: query 1, vector 0, element 3 is nan");
    q[11] = INFINITY;
    MT_EXPECT(mmrec_index_search_multi(x, q, 1, 2, 8, 2, NULL, ids, scores, NULL),
              MMREC_ENUMERIC, "queries: query 0, vector 1, element 3 is inf");
    q[11] = 0;
    ids[0] = 77;
    mmrec_index_filter f[2];
    MT_OK(mmrec_index_filter_init(&f[0]));
    f[1] = f[0];
    f[0].num_exclude = 3;
    MT_EXPECT(mmrec_index_search(x, q, 2, 8, 2, f, ids, scores, NULL), MMREC_EINVAL,
              "filters[0].exclude is NULL with num_exclude 3");
    f[0].num_exclude = 0;
    f[1].num_allow = 2;
    MT_EXPECT(mmrec_index_search(x, q, 2, 8, 2, f, ids, scores, NULL), MMREC_EINVAL,
              "filters[1].allow is NULL");
    f[1].num_allow = 0;
    f[1].struct_size = 8;
    MT_EXPECT(mmrec_index_search(x, q, 2, 8, 2, f, ids, scores, NULL), MMREC_EINVAL,
              "filters[1].struct_size is 8");
    f[0].struct_size = 8;
    MT_EXPECT(mmrec_index_search(x, q, 2, 8, 2, f, ids, scores, NULL), MMREC_EINVAL,
              "filters[0].struct_size is 8");
    ck_assert_int_eq(ids[0], 77); /* outputs untouched on failure */
    /* create */
    mmrec_index_config cfg;
    MT_OK(mmrec_index_config_init(&cfg));
    MT_EXPECT(mmrec_index_create(items, NULL, 0, 8, &cfg, &y), MMREC_EINVAL, "num_items is 0");
    MT_EXPECT(mmrec_index_create(items, NULL, 4, 0, &cfg, &y), MMREC_EINVAL, "dim is 0");
    const int64_t dup[4] = {5, 9, 2, 9}, neg[4] = {1, -2, 3, 4};
    MT_EXPECT(mmrec_index_create(items, dup, 4, 8, &cfg, &y), MMREC_EINVAL,
              "ids[3] repeats ids[1]");
    MT_EXPECT(mmrec_index_create(items, neg, 4, 8, &cfg, &y), MMREC_EINVAL, "ids[1] is -2");
    items[2 * 8 + 5] = NAN;
    MT_EXPECT(mmrec_index_create(items, dup, 3, 8, &cfg, &y), MMREC_ENUMERIC,
              "vectors: item 2 (id 2), vector 0, element 5 is nan");
    items[2 * 8 + 5] = 70000.0f;
    cfg.storage = MMREC_INDEX_F16;
    MT_EXPECT(mmrec_index_create(items, NULL, 4, 8, &cfg, &y), MMREC_ERANGE,
              "vectors: item 2 (id 2), vector 0, element 5 is 70000");
    cfg.storage = (mmrec_index_storage)7;
    MT_EXPECT(mmrec_index_create(items, NULL, 4, 8, &cfg, &y), MMREC_EINVAL, "cfg->storage is 7");
    cfg.storage = MMREC_INDEX_F32;
    cfg.metric = (mmrec_index_metric)3;
    MT_EXPECT(mmrec_index_create(items, NULL, 4, 8, &cfg, &y), MMREC_EINVAL, "cfg->metric is 3");
    cfg.metric = MMREC_INDEX_COSINE;
    cfg.vectors_per_item = 0;
    MT_EXPECT(mmrec_index_create(items, NULL, 4, 8, &cfg, &y), MMREC_EINVAL,
              "cfg->vectors_per_item is 0");
    ck_assert_ptr_eq(y, (mmrec_index *)0x1);
    /* configs */
    MT_EXPECT(mmrec_index_config_init_sized(&cfg, 8), MMREC_EINVAL, "size is 8");
    MT_EXPECT(mmrec_index_filter_init_sized(&f[0], 16), MMREC_EINVAL, "size is 16");
    /* refresh: dim, vectors per item, metric */
    mmrec_index *other = mt_make(items, NULL, 2, 16, 1, MMREC_INDEX_INNER_PRODUCT,
                                 MMREC_INDEX_F32);
    MT_EXPECT(mmrec_index_refresh(x, other), MMREC_ESHAPE, "source has 1 vectors of dim 16");
    mmrec_index_destroy(other);
    other = mt_make(items, NULL, 2, 8, 1, MMREC_INDEX_COSINE, MMREC_INDEX_F32);
    MT_EXPECT(mmrec_index_refresh(x, other), MMREC_EINVAL, "source's metric is 1");
    mmrec_index_destroy(other);
    cfg.metric = MMREC_INDEX_INNER_PRODUCT;
    cfg.vectors_per_item = 1;
    cfg.query_combine = MMREC_INDEX_COMBINE_MAX;
    MT_OK(mmrec_index_create(items, NULL, 2, 8, &cfg, &other));
    MT_EXPECT(mmrec_index_refresh(x, other), MMREC_EINVAL, "source's query combination is 1");
    mmrec_index_destroy(other);
    cfg.query_combine = (mmrec_index_combine)2;
    MT_EXPECT(mmrec_index_create(items, NULL, 2, 8, &cfg, &y), MMREC_EINVAL,
              "cfg->query_combine is 2");
    MT_EXPECT(mmrec_index_refresh(x, (const mmrec_index *)q), MMREC_EINVAL,
              "'source' is not an index");
    mmrec_index_destroy(x);
    mmrec_index_destroy(NULL);
}
END_TEST

/* ---- memory ---- */

START_TEST(test_index_search_allocates_once_per_call) {
    enum { n = 5000 };
    float *items = mt_items(n, D, 111);
    float q[NQ * D];
    mt_fill_eighths(q, NQ * D, 112);
    int64_t ids[NQ * K], ex[3] = {1, 2, 3};
    float scores[NQ * K];
    mmrec_index_filter f[NQ];
    for (int i = 0; i < NQ; i++) MT_OK(mmrec_index_filter_init(&f[i]));
    f[2].exclude = ex, f[2].num_exclude = 3;
    mmrec_index *x = mt_make(items, NULL, n, D, 1, MMREC_INDEX_COSINE, MMREC_INDEX_F16);
    mmrec_allocator a = {sizeof a, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&a));
    for (int c = 0; c < 3; c++) {
        mt_allocs = 0;
        if (c == 0) MT_OK(mmrec_index_search(x, q, 1, D, K, NULL, ids, scores, NULL));
        if (c == 1) MT_OK(mmrec_index_search(x, q, NQ, D, K, f, ids, scores, NULL));
        if (c == 2) MT_OK(mmrec_index_search_multi(x, q, 2, 2, D, K, f, ids, scores, NULL));
        ck_assert_uint_eq(mt_allocs, 1);
    }
    MT_OK(mmrec_set_allocator(NULL));
    mmrec_index_destroy(x);
    free(items);
}
END_TEST

typedef struct mt_oom_ctx {
    char path[160], cache[160];
} mt_oom_ctx;

static mmrec_status mt_index_scenario(void *ctx) {
    const mt_oom_ctx *p = ctx;
    float items[6 * 4] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1};
    const int64_t ids[6] = {9, 3, 12, 6, 1, 4};
    float q[4] = {1, 2, 3, 4};
    int64_t out[4];
    float scores[4];
    mmrec_index_filter f;
    mmrec_index_filter_init(&f);
    f.exclude = ids, f.num_exclude = 2;
    mmrec_index_config cfg;
    mmrec_index_config_init(&cfg);
    cfg.storage = MMREC_INDEX_F16;
    mmrec_index *x = NULL, *y = NULL, *z = NULL;
    mmrec_cache *c = NULL;
    mmrec_status s;
    if ((s = mmrec_index_create(items, ids, 6, 4, &cfg, &x)) != MMREC_OK) goto done;
    if ((s = mmrec_index_search(x, q, 1, 4, 4, &f, out, scores, NULL)) != MMREC_OK) goto done;
    if ((s = mmrec_index_save(x, p->path)) != MMREC_OK) goto done;
    if ((s = mmrec_index_open(p->path, &y)) != MMREC_OK) goto done;
    if ((s = mmrec_index_refresh(y, x)) != MMREC_OK) goto done;
    if ((s = mmrec_cache_open(p->cache, &c)) != MMREC_OK) goto done;
    if ((s = mmrec_index_create_from_cache(c, "e", &cfg, &z)) != MMREC_OK) goto done;
    s = mmrec_index_search_multi(z, q, 1, 1, 4, 4, NULL, out, scores, NULL);
done:
    mmrec_index_destroy(z);
    mmrec_cache_close(c);
    mmrec_index_destroy(y);
    mmrec_index_destroy(x);
    ck_assert_int_eq(mt_count_tmp_files(), 0);
    return s;
}

START_TEST(test_index_oom_every_allocation_reports_enomem_without_leaks) {
    mt_tmp_dir();
    mt_oom_ctx p;
    snprintf(p.path, sizeof p.path, "%s", mt_file(0, "o.mmix"));
    snprintf(p.cache, sizeof p.cache, "%s", mt_file(1, "o.mmfc"));
    mmrec_cache_writer *w;
    const int64_t ids[2] = {4, 8};
    const float e[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    MT_OK(mmrec_cache_writer_create(p.cache, ids, 2, &w));
    MT_OK(mmrec_cache_writer_add(w, "e", MMREC_CACHE_F32, e, 4));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    ck_assert_int_gt(mt_oom_loop("index", mt_index_scenario, &p), 5);
    mt_tmp_clean();
}
END_TEST

static Suite *index_suite(void) {
    Suite *s = suite_create("index");
    TCase *exact = tcase_create("exact");
    tcase_set_timeout(exact, 120);
    tcase_add_test(exact, test_index_exact_every_storage_one_and_many_queries);
    tcase_add_test(exact, test_index_sparse_ids_in_any_order_break_ties_by_id);
    tcase_add_test(exact, test_index_cosine_normalizes_items_and_queries);
    tcase_add_test(exact, test_index_maxsim_multi_vector_queries_and_items);
    tcase_add_test(exact, test_index_filters_exclude_allow_bitmap);
    tcase_add_test(exact, test_index_exclude_everything_allow_nothing_k_above_items);
    tcase_add_test(exact, test_index_short_allow_list_matches_the_scan);
    tcase_add_test(exact, test_index_exact_through_blas_beyond_dim_256);
    tcase_add_test(exact, test_index_results_identical_for_any_thread_count);
    tcase_add_test(exact, test_index_row_scorer_kernel_matches_portable_loop);
    tcase_add_test(exact, test_index_narrow_batch_kernel_matches_full_kernel);
    tcase_add_test(exact, test_index_small_batch_scores_equal_the_query_alone);
    suite_add_tcase(s, exact);
    TCase *files = tcase_create("files");
    tcase_add_test(files, test_index_save_open_round_trip_every_storage);
    tcase_add_test(files, test_index_truncated_corrupt_and_foreign_files_rejected);
    tcase_add_test(files, test_index_from_cache_field_matches_matrix);
    suite_add_tcase(s, files);
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_index_bad_arguments);
    suite_add_tcase(s, api);
    TCase *lc = tcase_create("lifecycle");
    tcase_set_timeout(lc, 120);
    tcase_add_test(lc, test_index_searches_during_refresh_see_one_version);
    tcase_add_test(lc, test_index_search_allocates_once_per_call);
    tcase_add_test(lc, test_index_oom_every_allocation_reports_enomem_without_leaks);
    suite_add_tcase(s, lc);
    return s;
}
