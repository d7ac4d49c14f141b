/* Ranking metrics: full ranking against a brute-force reference (integer
 * or dyadic embeddings, so scores are exact and ties frequent), every
 * scorer (the int8 screen, AVX-512, AVX2, BLAS) on the same data, scores a
 * unit in the last place apart at the K-th place, thread independence, PyTorch golden
 * values, bad input. */
#include "mt.h"
#include "metrics/metrics_internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MT_SUITE(metrics_suite)

enum { MT_U = 37, MT_I = 53, MT_D = 4 };

/* Random pairs: each user u < MT_U - 2 gets `per` distinct items. */
static mmrec_interactions *mt_pairs(uint64_t seed, int per, const mmrec_interactions *avoid) {
    int64_t users[MT_U * 8], items[MT_U * 8];
    size_t n = 0;
    uint64_t s = seed;
    const int64_t *au = NULL, *ai = NULL;
    size_t an = 0;
    if (avoid) {
        MT_OK(mmrec_interactions_pairs(avoid, &au, &ai));
        MT_OK(mmrec_interactions_info(avoid, NULL, NULL, &an));
    }
    for (int64_t u = 0; u < MT_U - 2; u++)
        for (int k = 0; k < per; k++) {
            int64_t it = (int64_t)(mt_lcg(&s) % MT_I);
            bool taken = false;
            for (size_t j = 0; j < an; j++) taken |= au[j] == u && ai[j] == it;
            for (size_t j = 0; j < n; j++) taken |= users[j] == u && items[j] == it;
            if (taken) continue;
            users[n] = u;
            items[n] = it;
            n++;
        }
    mmrec_interactions *x;
    MT_OK(mmrec_interactions_create(users, items, n, &x));
    return x;
}

typedef struct mt_scored {
    float score;
    int id;
} mt_scored;

/* Score descending, then id ascending. */
static int mt_rank_cmp(const void *pa, const void *pb) {
    const mt_scored *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* flags[u * I + i]: 1 = a train pair, 2 = a test pair. */
static unsigned char *mt_pair_flags(const mmrec_interactions *train,
                                    const mmrec_interactions *test, int64_t U, int64_t I) {
    unsigned char *f = calloc((size_t)(U * I), 1);
    const mmrec_interactions *x[2] = {train, test};
    for (int t = 0; t < 2; t++) {
        if (x[t] == NULL) continue;
        const int64_t *us, *is;
        size_t n;
        MT_OK(mmrec_interactions_pairs(x[t], &us, &is));
        MT_OK(mmrec_interactions_info(x[t], NULL, NULL, &n));
        for (size_t k = 0; k < n; k++) f[us[k] * I + is[k]] |= (unsigned char)(1 << t);
    }
    return f;
}

/* Brute force: rank every non-train item by (score desc, id asc), scores
 * summed in float in dimension order (exact for the data used here). */
static void mt_reference(const float *ue, const float *ie, int64_t U, int64_t I, int64_t D,
                         const mmrec_interactions *train, const mmrec_interactions *test, int k,
                         double m[6]) {
    unsigned char *flags = mt_pair_flags(train, test, U, I);
    mt_scored *order = malloc((size_t)I * sizeof *order);
    for (int j = 0; j < 6; j++) m[j] = 0;
    for (int64_t u = 0; u < U; u++) {
        const unsigned char *f = flags + u * I;
        int n_test = 0, n = 0;
        for (int64_t i = 0; i < I; i++) n_test += (f[i] & 2) != 0;
        if (n_test == 0) continue;
        for (int64_t i = 0; i < I; i++) {
            if (f[i] & 1) continue;
            float s = 0;
            for (int64_t c = 0; c < D; c++) s += ue[u * D + c] * ie[i * D + c];
            order[n++] = (mt_scored){s, (int)i};
        }
        qsort(order, (size_t)n, sizeof *order, mt_rank_cmp);
        int hits = 0;
        double dcg = 0, idcg = 0, rr = 0;
        for (int p = 0; p < k && p < n; p++)
            if (f[order[p].id] & 2) {
                hits++;
                dcg += 1 / log2(p + 2.0);
                if (rr == 0) rr = 1.0 / (p + 1);
            }
        for (int p = 0; p < k && p < n_test; p++) idcg += 1 / log2(p + 2.0);
        m[0] += (double)hits / n_test;
        m[1] += dcg / idcg;
        m[2] += (double)hits / k;
        m[3] += hits > 0;
        m[4] += rr;
        m[5] += 1;
    }
    for (int j = 0; j < 5; j++) m[j] /= m[5];
    free(order);
    free(flags);
}

/* The scorers, fastest first (those this CPU lacks are skipped). */
enum { MT_SCORERS = 5 };
static const mmrec__eval_scorer mt_scorers[MT_SCORERS] = {
    MMREC__EVAL_SCREEN, MMREC__EVAL_SCREEN_VNNI256, MMREC__EVAL_AVX512, MMREC__EVAL_AVX2,
    MMREC__EVAL_BLAS};
static const char *const mt_scorer_names[MT_SCORERS] = {"screen", "AVX-VNNI screen", "AVX-512",
                                                        "AVX2", "BLAS"};

/* Every scorer this CPU has, with 1 and 2 threads: byte-identical metrics
 * and top-K lists, and the brute force's metrics. */
static void mt_check_scorers(const char *what, const float *ue, const float *ie, int64_t U,
                             int64_t I, int64_t D, const mmrec_interactions *train,
                             const mmrec_interactions *test, const int *ks, int nk) {
    mmrec_rank_metrics first[8], out[8];
    ck_assert_int_le(nk, 8);
    int kmax = 0;
    for (int q = 0; q < nk; q++) kmax = ks[q] > kmax ? ks[q] : kmax;
    size_t top_len = (size_t)U * (size_t)kmax;
    int32_t *top0 = malloc(top_len * sizeof *top0), *top = malloc(top_len * sizeof *top);
    bool have_first = false;
    for (int run = 0; run < 2 * MT_SCORERS; run++) {
        int sc = run / 2;
        if (!mmrec__eval_scorer_usable(mt_scorers[sc], (size_t)D)) continue;
        MT_OK(mmrec_set_num_threads(1 + run % 2));
        memset(out, 0xAB, sizeof out);
        memset(top, 0xAB, top_len * sizeof *top);
        out[0].struct_size = sizeof out[0];
        MT_OK(mmrec__eval_full_ranking_with(ue, ie, U, I, D, train, test, ks, nk, out,
                                            mt_scorers[sc], top, "test"));
        if (!have_first) {
            memcpy(first, out, sizeof out);
            memcpy(top0, top, top_len * sizeof *top);
            have_first = true;
        }
        for (int q = 0; q < nk; q++) {
            double a[5] = {out[q].recall, out[q].ndcg, out[q].precision, out[q].hit_rate,
                           out[q].mrr};
            double b[5] = {first[q].recall, first[q].ndcg, first[q].precision,
                           first[q].hit_rate, first[q].mrr};
            for (int j = 0; j < 5; j++)
                ck_assert_msg(a[j] == b[j],
                              "%s, K %d metric %d: %s scorer, %d threads: %.17g, "
                              "first scorer, 1 thread: %.17g",
                              what, ks[q], j, mt_scorer_names[sc], 1 + run % 2, a[j], b[j]);
        }
        ck_assert_msg(memcmp(out, first, (size_t)nk * sizeof *out) == 0,
                      "%s: %s scorer, %d threads: metric structs differ in their bytes", what,
                      mt_scorer_names[sc], 1 + run % 2);
        int64_t n_eval = out[0].users;
        for (int64_t p = 0; p < n_eval * kmax; p++)
            ck_assert_msg(top[p] == top0[p],
                          "%s: %s scorer, %d threads: user %lld place %lld has item %d, "
                          "first scorer %d",
                          what, mt_scorer_names[sc], 1 + run % 2, (long long)(p / kmax),
                          (long long)(p % kmax), top[p], top0[p]);
    }
    free(top0);
    free(top);
    MT_OK(mmrec_set_num_threads(2));
    for (int q = 0; q < nk; q++) {
        double m[6];
        mt_reference(ue, ie, U, I, D, train, test, ks[q], m);
        ck_assert_int_eq(first[q].users, (int64_t)m[5]);
        double got[5] = {first[q].recall, first[q].ndcg, first[q].precision, first[q].hit_rate,
                         first[q].mrr};
        for (int j = 0; j < 5; j++)
            ck_assert_msg(fabs(got[j] - m[j]) < 1e-12, "%s, K %d metric %d: %.15g vs %.15g",
                          what, ks[q], j, got[j], m[j]);
    }
}

START_TEST(test_full_ranking_matches_brute_force) {
    float ue[MT_U * MT_D], ie[MT_I * MT_D];
    uint64_t s = 3;
    for (int i = 0; i < MT_U * MT_D; i++) ue[i] = (float)((int)(mt_lcg(&s) % 7) - 3);
    for (int i = 0; i < MT_I * MT_D; i++) ie[i] = (float)((int)(mt_lcg(&s) % 7) - 3);
    mmrec_interactions *train = mt_pairs(10, 6, NULL), *test = mt_pairs(20, 3, train);
    int ks[3] = {1, 5, 20};
    mmrec_rank_metrics out[3];
    out[0].struct_size = sizeof out[0];
    for (int threads = 1; threads <= 2; threads++) {
        MT_OK(mmrec_set_num_threads(threads));
        MT_OK(mmrec_eval_full_ranking(ue, ie, MT_U, MT_I, MT_D, train, test, ks, 3, out));
        for (int q = 0; q < 3; q++) {
            double m[6];
            mt_reference(ue, ie, MT_U, MT_I, MT_D, train, test, ks[q], m);
            ck_assert_int_eq(out[q].k, ks[q]);
            ck_assert_int_eq(out[q].users, (int64_t)m[5]);
            double got[5] = {out[q].recall, out[q].ndcg, out[q].precision, out[q].hit_rate,
                             out[q].mrr};
            for (int j = 0; j < 5; j++)
                ck_assert_msg(fabs(got[j] - m[j]) < 1e-12, "K %d metric %d: %.15g vs %.15g",
                              ks[q], j, got[j], m[j]);
        }
    }
    MT_OK(mmrec_set_num_threads(2));
    /* no training items excluded */
    MT_OK(mmrec_eval_full_ranking(ue, ie, MT_U, MT_I, MT_D, NULL, test, ks, 1, out));
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
}
END_TEST

/* More items than one tile of the blocked scoring (2048): ties across tile
 * boundaries, train items in every tile. */
START_TEST(test_full_ranking_across_tiles) {
    enum { U = 6, I = 5000 };
    float *ue = malloc(U * MT_D * sizeof *ue), *ie = malloc((size_t)I * MT_D * sizeof *ie);
    uint64_t s = 8;
    for (int i = 0; i < U * MT_D; i++) ue[i] = (float)((int)(mt_lcg(&s) % 5) - 2);
    for (int i = 0; i < I * MT_D; i++) ie[i] = (float)((int)(mt_lcg(&s) % 5) - 2);
    int64_t tu[U * 40], ti[U * 40], su[U * 4], si[U * 4];
    size_t nt = 0, ns = 0;
    for (int64_t u = 0; u < U; u++) {
        for (int k = 0; k < 40; k++) tu[nt] = u, ti[nt++] = (int64_t)((k * 127 + u * 31) % I);
        for (int k = 0; k < 4; k++) su[ns] = u, si[ns++] = (int64_t)((k * 1249 + u * 7 + 3) % I);
    }
    mmrec_interactions *train, *test;
    MT_OK(mmrec_interactions_create(tu, ti, nt, &train));
    MT_OK(mmrec_interactions_create(su, si, ns, &test));
    int ks[2] = {10, 300};
    mmrec_rank_metrics out[2];
    out[0].struct_size = sizeof out[0];
    MT_OK(mmrec_eval_full_ranking(ue, ie, U, I, MT_D, train, test, ks, 2, out));
    for (int q = 0; q < 2; q++) {
        double m[6];
        mt_reference(ue, ie, U, I, MT_D, train, test, ks[q], m);
        double got[5] = {out[q].recall, out[q].ndcg, out[q].precision, out[q].hit_rate,
                         out[q].mrr};
        for (int j = 0; j < 5; j++)
            ck_assert_msg(fabs(got[j] - m[j]) < 1e-12, "K %d metric %d: %.15g vs %.15g", ks[q],
                          j, got[j], m[j]);
    }
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
    free(ue);
    free(ie);
}
END_TEST

/* Random interactions for U users over I items: each user u with
 * u % 5 != 4 gets about `per` distinct items (pairs in `avoid` skipped). */
static mmrec_interactions *mt_random_pairs(int64_t U, int64_t I, int per, uint64_t seed,
                                           const mmrec_interactions *avoid) {
    unsigned char *taken = avoid ? mt_pair_flags(avoid, NULL, U, I) : calloc((size_t)(U * I), 1);
    int64_t *us = malloc((size_t)(U * per) * sizeof *us);
    int64_t *is = malloc((size_t)(U * per) * sizeof *is);
    size_t n = 0;
    uint64_t s = seed;
    for (int64_t u = 0; u < U; u++)
        for (int k = 0; u % 5 != 4 && k < per; k++) {
            int64_t i = (int64_t)(mt_lcg(&s) % (uint64_t)I);
            if (taken[u * I + i]) continue;
            taken[u * I + i] = 1;
            us[n] = u;
            is[n++] = i;
        }
    mmrec_interactions *x;
    MT_OK(mmrec_interactions_create(us, is, n, &x));
    free(taken);
    free(us);
    free(is);
    return x;
}

/* Dyadic embeddings, k / 8 with |k| <= 4: every product and partial sum is
 * exact in float, so both scorers and the brute force agree on every score
 * and equal scores are frequent. Shapes cover partial blocks of users, the
 * last short run of items, several BLAS tiles, dims the kernel takes and
 * one it does not (300: BLAS twice). */
START_TEST(test_full_ranking_scorers_agree) {
    static const int64_t shapes[][3] = {
        {150, 5000, 64}, {70, 601, 3}, {65, 13, 17}, {9, 7, 1}, {40, 300, 300}};
    for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
        int64_t U = shapes[c][0], I = shapes[c][1], D = shapes[c][2];
        float *ue = malloc((size_t)(U * D) * sizeof *ue);
        float *ie = malloc((size_t)(I * D) * sizeof *ie);
        uint64_t s = 40 + c;
        for (int64_t i = 0; i < U * D; i++) ue[i] = (float)((int)(mt_lcg(&s) % 9) - 4) / 8.0f;
        for (int64_t i = 0; i < I * D; i++) ie[i] = (float)((int)(mt_lcg(&s) % 9) - 4) / 8.0f;
        int per = I < 60 ? 2 : (int)(I / 30);
        mmrec_interactions *train = mt_random_pairs(U, I, per, 7 + c, NULL);
        /* a test item for about a quarter of the items: most changes of a
         * user's top K change the metrics */
        mmrec_interactions *test = mt_random_pairs(U, I, (int)(I / 4 + 1), 9 + c, train);
        /* the largest K sets the thresholds: a small one, then a large one */
        int ks[2][3] = {{1, 5, 20}, {2, 20, 250}};
        for (int set = 0; set < 2; set++) {
            for (int q = 0; q < 3; q++) ks[set][q] = ks[set][q] < I ? ks[set][q] : (int)I;
            char what[64];
            snprintf(what, sizeof what, "U %lld I %lld D %lld K <= %d", (long long)U,
                     (long long)I, (long long)D, ks[set][2]);
            mt_check_scorers(what, ue, ie, U, I, D, train, test, ks[set], 3);
        }
        mmrec_interactions_destroy(train);
        mmrec_interactions_destroy(test);
        free(ue);
        free(ie);
    }
}
END_TEST

/* Scores a unit in the last place apart around the K-th place, with long
 * runs of equal scores: user u is (+-1, w_u, 0, ...), item i is (1, c_i *
 * 2^-23, 0, ...), so the score is +-(1 + w_u c_i 2^-23), exact, with c_i in
 * 0..3 and c_i = 3 for only a few items. The K-th place falls inside a run
 * of equal scores or between two runs one unit apart; the test items sit
 * on both sides of it, and some train items among the best. */
START_TEST(test_full_ranking_boundary_exact) {
    enum { U = 70, I = 3001, D = 5 };
    float *ue = calloc(U * D, sizeof *ue), *ie = calloc(I * D, sizeof *ie);
    uint64_t s = 5;
    for (int i = 0; i < I; i++) {
        int r = (int)(mt_lcg(&s) % 100);
        int ci = r < 1 ? 3 : r < 30 ? 2 : r < 60 ? 1 : 0;
        ie[i * D] = 1.0f;
        ie[i * D + 1] = ldexpf((float)ci, -23);
    }
    for (int u = 0; u < U; u++) {
        float sign = u % 3 == 2 ? -1.0f : 1.0f;
        ue[u * D] = sign;
        ue[u * D + 1] = sign * (float)(1 + u % 2);
    }
    /* train: a third of the items of each score level, by id; test: items
     * spread over the ids, so they land on both sides of the cut */
    int64_t tu[U * 40], ti[U * 40], su[U * 12], si[U * 12];
    size_t nt = 0, ns = 0;
    for (int64_t u = 0; u < U; u++) {
        for (int k = 0; k < 40; k++) tu[nt] = u, ti[nt++] = (int64_t)((u * 13 + k * 75) % I);
        for (int k = 0; k < 12; k++) su[ns] = u, si[ns++] = (int64_t)((u * 7 + k * 251 + 1) % I);
    }
    mmrec_interactions *train, *test;
    MT_OK(mmrec_interactions_create(tu, ti, nt, &train));
    MT_OK(mmrec_interactions_create(su, si, ns, &test));
    int ks[5] = {1, 10, 29, 30, 1000};
    mt_check_scorers("boundary", ue, ie, U, I, D, train, test, ks, 5);
    /* without train items */
    mt_check_scorers("boundary, no train", ue, ie, U, I, D, NULL, test, ks, 5);
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
    free(ue);
    free(ie);
}
END_TEST

/* Scores that overflow: +inf ranks first (ties by id like any score), -inf
 * and NaN never enter a top K. Users are (1e30, 1e30); items 5-9 score
 * +inf, 10-14 -inf, 15-19 finite, and items 0-4, (1e30, -1e30), score NaN
 * as inf + -inf in the BLAS scorer (this small product is the library's own
 * loop, unfused) but +inf in the AVX-512 one, whose fused multiply-adds add
 * the exact product -1e60 to +inf: a chain of them never makes NaN from
 * finite values. */
START_TEST(test_full_ranking_overflow_scores) {
    enum { U = 3, I = 20, D = 2 };
    float ue[U * D], ie[I * D];
    for (int i = 0; i < U * D; i++) ue[i] = 1e30f;
    for (int i = 0; i < I; i++) {
        ie[i * D] = i < 10 ? 1e30f : i < 15 ? -1e30f : 0.0f;
        ie[i * D + 1] = i < 5 ? -1e30f : i < 10 ? 1e30f : i < 15 ? -1e30f : (float)(i - 14);
    }
    /* the test items of user 0 are NaN or +inf, of user 1 -inf, of user 2 +inf */
    int64_t su[6] = {0, 0, 1, 1, 2, 2}, si[6] = {0, 4, 10, 14, 5, 9};
    mmrec_interactions *test;
    MT_OK(mmrec_interactions_create(su, si, 6, &test));
    int ks[3] = {1, 5, 20};
    /* BLAS: user 2 alone, top 1 = item 5; AVX-512: all users rank items 0-9
     * first, by id */
    double want[2][3] = {{0.5 / 3, 1.0 / 3, 1.0 / 3}, {0.5 / 3, 1.0 / 3, 2.0 / 3}};
    for (int sc = 0; sc < MT_SCORERS; sc++) {
        if (!mmrec__eval_scorer_usable(mt_scorers[sc], D)) continue;
        int kernel = mt_scorers[sc] != MMREC__EVAL_BLAS;
        mmrec_rank_metrics out[3];
        out[0].struct_size = sizeof out[0];
        MT_OK(mmrec__eval_full_ranking_with(ue, ie, U, I, D, NULL, test, ks, 3, out,
                                            mt_scorers[sc], NULL, "test"));
        for (int q = 0; q < 3; q++)
            ck_assert_msg(fabs(out[q].recall - want[kernel][q]) < 1e-15,
                          "%s scorer, K %d: recall %.17g, expected %.17g",
                          mt_scorer_names[sc], ks[q], out[q].recall, want[kernel][q]);
    }
    mmrec_interactions_destroy(test);
}
END_TEST

/* PyTorch: torch.topk over masked scores, as LightGCN-PyTorch evaluates
 * (tests/golden/make_golden.py, write_metrics). */
START_TEST(test_full_ranking_golden_pytorch) {
    mt_golden g;
    mt_golden_load(&g, "metrics.bin");
    const mt_array *ue = mt_golden_get(&g, "rank.user_emb");
    const mt_array *ie = mt_golden_get(&g, "rank.item_emb");
    const mt_array *tr = mt_golden_get(&g, "rank.train"), *te = mt_golden_get(&g, "rank.test");
    const mt_array *want = mt_golden_get(&g, "rank.metrics"); /* per K: recall ndcg prec hr mrr */
    const mt_array *kk = mt_golden_get(&g, "rank.ks");
    int64_t U = ue->shape[0], I = ie->shape[0], D = ue->shape[1];
    mmrec_interactions *x[2];
    const mt_array *src[2] = {tr, te};
    for (int t = 0; t < 2; t++) {
        size_t n = src[t]->shape[0];
        int64_t *us = malloc(n * sizeof *us), *is = malloc(n * sizeof *is);
        for (size_t k = 0; k < n; k++) {
            us[k] = (int64_t)src[t]->data[2 * k];
            is[k] = (int64_t)src[t]->data[2 * k + 1];
        }
        MT_OK(mmrec_interactions_create(us, is, n, &x[t]));
        free(us);
        free(is);
    }
    int ks[8];
    int nk = (int)kk->numel;
    for (int q = 0; q < nk; q++) ks[q] = (int)kk->data[q];
    mmrec_rank_metrics out[8];
    out[0].struct_size = sizeof out[0];
    for (int scorer = 0; scorer < 2; scorer++) { /* the public call, then the BLAS scorer */
        if (scorer == 0)
            MT_OK(mmrec_eval_full_ranking(ue->data, ie->data, U, I, D, x[0], x[1], ks, nk, out));
        else
            MT_OK(mmrec__eval_full_ranking_with(ue->data, ie->data, U, I, D, x[0], x[1], ks, nk,
                                                out, MMREC__EVAL_BLAS, NULL, "test"));
        for (int q = 0; q < nk; q++) {
            float got[5] = {(float)out[q].recall, (float)out[q].ndcg, (float)out[q].precision,
                            (float)out[q].hit_rate, (float)out[q].mrr};
            mt_assert_close("full ranking", got, want->data + 5 * q, 5, 1e-5f, 1e-6f);
        }
    }
    mmrec_interactions_destroy(x[0]);
    mmrec_interactions_destroy(x[1]);
    mt_golden_free(&g);
}
END_TEST

START_TEST(test_full_ranking_bad_input) {
    float ue[MT_U * MT_D] = {0}, ie[MT_I * MT_D] = {0};
    mmrec_interactions *train = mt_pairs(10, 2, NULL), *test = mt_pairs(20, 1, train);
    int ks[2] = {5, 10};
    mmrec_rank_metrics out[2];
    out[0].struct_size = sizeof out[0];
    MT_EXPECT(mmrec_eval_full_ranking(NULL, ie, MT_U, MT_I, MT_D, train, test, ks, 2, out),
              MMREC_EINVAL, "user_emb");
    MT_EXPECT(mmrec_eval_full_ranking(ue, ie, MT_U, MT_I, MT_D, train, NULL, ks, 2, out),
              MMREC_EINVAL, "test");
    MT_EXPECT(mmrec_eval_full_ranking(ue, ie, 0, MT_I, MT_D, train, test, ks, 2, out),
              MMREC_EINVAL, "num_users");
    MT_EXPECT(mmrec_eval_full_ranking(ue, ie, MT_U, MT_I, MT_D, train, test, ks, 0, out),
              MMREC_EINVAL, "num_ks");
    int bad_k[1] = {MT_I + 1};
    MT_EXPECT(mmrec_eval_full_ranking(ue, ie, MT_U, MT_I, MT_D, train, test, bad_k, 1, out),
              MMREC_EINVAL, "ks[0]");
    MT_EXPECT(mmrec_eval_full_ranking(ue, ie, MT_U - 3, MT_I, MT_D, train, test, ks, 2, out),
              MMREC_ERANGE, "outside [0, 34)");
    MT_EXPECT(mmrec_eval_full_ranking(ue, ie, MT_U, 10, MT_D, train, test, ks, 2, out),
              MMREC_ERANGE, "item");
    out[0].struct_size = 8;
    MT_EXPECT(mmrec_eval_full_ranking(ue, ie, MT_U, MT_I, MT_D, train, test, ks, 2, out),
              MMREC_EINVAL, "struct_size");
    out[0].struct_size = sizeof out[0];
    ue[5] = NAN;
    MT_EXPECT(mmrec_eval_full_ranking(ue, ie, MT_U, MT_I, MT_D, train, test, ks, 2, out),
              MMREC_ENUMERIC, "user_emb[5] is nan");
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
}
END_TEST

/* ---- the exact scorers on general data ----
 * The screen, AVX-512 and AVX2 scorers score with one fused multiply-add
 * chain per pair, so on any data they agree bit for bit with each other and
 * with the brute force below (fmaf in dimension order from zero), whatever
 * the screen rules out. */

/* Brute-force top lists: tops[e * kmax ..] for the e-th user with a test
 * item, best first (score desc, id asc), -1 past the items kept; NaN and
 * -inf scores never enter, train items are skipped. */
static void mt_reference_tops(const float *ue, const float *ie, int64_t U, int64_t I, int64_t D,
                              const mmrec_interactions *train,
                              const mmrec_interactions *test, int kmax, int32_t *tops) {
    unsigned char *flags = mt_pair_flags(train, test, U, I);
    mt_scored *order = malloc((size_t)I * sizeof *order);
    int64_t e = 0;
    for (int64_t u = 0; u < U; u++) {
        const unsigned char *f = flags + u * I;
        bool tested = false;
        for (int64_t i = 0; i < I; i++) tested |= (f[i] & 2) != 0;
        if (!tested) continue;
        int n = 0;
        for (int64_t i = 0; i < I; i++) {
            if (f[i] & 1) continue;
            float sc = 0.0f;
            for (int64_t c = 0; c < D; c++) sc = fmaf(ue[u * D + c], ie[i * D + c], sc);
            if (!(sc > -INFINITY)) continue;
            order[n++] = (mt_scored){sc, (int)i};
        }
        qsort(order, (size_t)n, sizeof *order, mt_rank_cmp);
        for (int p = 0; p < kmax; p++) tops[e * kmax + p] = p < n ? order[p].id : -1;
        e++;
    }
    free(order);
    free(flags);
}

/* The exact scorers this CPU has, with 1 and 2 threads: byte-identical
 * metric structs, and top lists equal to the brute force's. Returns the
 * pairs scored exactly by the screen that scored the most, on one thread
 * (0 without a screen). */
static unsigned long long mt_check_exact(const char *what, const float *ue, const float *ie,
                                         int64_t U, int64_t I, int64_t D,
                                         const mmrec_interactions *train,
                                         const mmrec_interactions *test, const int *ks,
                                         int nk) {
    int kmax = 0;
    for (int q = 0; q < nk; q++) kmax = ks[q] > kmax ? ks[q] : kmax;
    size_t len = (size_t)U * (size_t)kmax;
    int32_t *want = malloc(len * sizeof *want), *top = malloc(len * sizeof *top);
    mt_reference_tops(ue, ie, U, I, D, train, test, kmax, want);
    mmrec_rank_metrics first[4], out[4];
    ck_assert_int_le(nk, 4);
    bool have_first = false;
    unsigned long long rescored = 0;
    for (int run = 0; run < 2 * (MT_SCORERS - 1); run++) {
        int sc = run / 2; /* the screens, AVX-512, AVX2 */
        if (!mmrec__eval_scorer_usable(mt_scorers[sc], (size_t)D)) continue;
        MT_OK(mmrec_set_num_threads(1 + run % 2));
        memset(out, 0xAB, sizeof out);
        out[0].struct_size = sizeof out[0];
        unsigned long long before = atomic_load(&mmrec__eval_rescored);
        MT_OK(mmrec__eval_full_ranking_with(ue, ie, U, I, D, train, test, ks, nk, out,
                                            mt_scorers[sc], top, "test"));
        unsigned long long n = atomic_load(&mmrec__eval_rescored) - before;
        if (sc < 2 && run % 2 == 0 && n > rescored) rescored = n; /* a screen, one thread */
        if (!have_first) memcpy(first, out, sizeof out);
        have_first = true;
        ck_assert_msg(memcmp(out, first, (size_t)nk * sizeof *out) == 0,
                      "%s: %s scorer, %d threads: the metric structs differ", what,
                      mt_scorer_names[sc], 1 + run % 2);
        for (int64_t p = 0; p < out[0].users * kmax; p++)
            ck_assert_msg(top[p] == want[p],
                          "%s: %s scorer, %d threads: user %lld place %lld has item %d, "
                          "the brute force %d",
                          what, mt_scorer_names[sc], 1 + run % 2, (long long)(p / kmax),
                          (long long)(p % kmax), top[p], want[p]);
    }
    MT_OK(mmrec_set_num_threads(2));
    free(want);
    free(top);
    return rescored;
}

static float mt_gauss(uint64_t *s) {
    double a = ((double)mt_lcg(s) + 0.5) * 0x1p-31; /* mt_lcg gives 31 bits */
    double b = ((double)mt_lcg(s) + 0.5) * 0x1p-31;
    return (float)(sqrt(-2.0 * log(a)) * cos(6.283185307179586 * b));
}

/* Random and adversarial embeddings, each case through mt_check_exact:
 * Gaussian at several dims (1, not a multiple of 4, 16 or 32, the largest
 * 256), item counts not a multiple of the run of 6, few items (users with
 * fewer candidates than K), many exact ties, all-equal embeddings, scores a
 * few units in the last place apart around the K-th place, zero rows, tiny
 * (subnormal products) and huge scales, users and items too large to
 * screen. */
START_TEST(test_full_ranking_exact_scorers_adversarial) {
    enum { GAUSS, TIES, EQUAL, CLUSTER, ZEROS, N_KINDS };
    static const struct {
        int kind;
        int64_t U, I, D;
        float user_scale, item_scale;
    } cases[] = {
        {GAUSS, 70, 1000, 64, 1.0f, 1.0f},     {GAUSS, 65, 997, 1, 1.0f, 1.0f},
        {GAUSS, 40, 601, 3, 1.0f, 1.0f},       {GAUSS, 40, 500, 17, 1.0f, 1.0f},
        {GAUSS, 40, 500, 33, 0.1f, 3.0f},      {GAUSS, 20, 301, 256, 1.0f, 1.0f},
        {GAUSS, 30, 13, 8, 1.0f, 1.0f},        {GAUSS, 30, 7, 5, 1.0f, 1.0f},
        {TIES, 70, 800, 16, 0.5f, 0.25f},      {TIES, 70, 800, 1, 1.0f, 1.0f},
        {EQUAL, 70, 500, 12, 1.0f, 1.0f},      {CLUSTER, 70, 2000, 9, 1.0f, 1.0f},
        {CLUSTER, 64, 1500, 32, 1e-3f, 1e3f},  {ZEROS, 70, 700, 20, 1.0f, 1.0f},
        {GAUSS, 40, 500, 24, 1e-20f, 1e-20f},  {GAUSS, 40, 500, 24, 1e-25f, 1e-22f},
        {GAUSS, 40, 500, 24, 1e-44f, 1.0f},    {GAUSS, 40, 500, 24, 1e15f, 1e14f},
        {GAUSS, 40, 500, 24, 1e20f, 1.0f},     {GAUSS, 40, 500, 24, 1.0f, 1e19f},
        {GAUSS, 40, 500, 24, 1e19f, 1e19f},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int64_t U = cases[c].U, I = cases[c].I, D = cases[c].D;
        float *ue = malloc((size_t)(U * D) * sizeof *ue);
        float *ie = malloc((size_t)(I * D) * sizeof *ie);
        uint64_t s = 100 + c;
        for (int64_t i = 0; i < U * D; i++) ue[i] = mt_gauss(&s) * cases[c].user_scale;
        for (int64_t i = 0; i < I * D; i++) ie[i] = mt_gauss(&s) * cases[c].item_scale;
        switch (cases[c].kind) {
        case TIES: /* a few levels: many exactly equal scores */
            for (int64_t i = 0; i < U * D; i++)
                ue[i] = (float)((int)(mt_lcg(&s) % 3) - 1) * cases[c].user_scale;
            for (int64_t i = 0; i < I * D; i++)
                ie[i] = (float)((int)(mt_lcg(&s) % 3) - 1) * cases[c].item_scale;
            break;
        case EQUAL: /* every item the same row: every score of a user ties */
            for (int64_t i = 0; i < I * D; i++) ie[i] = ie[i % D];
            break;
        case CLUSTER: /* one row times 1 + a few units of 2^-22: the scores
                       * of a user sit within a few ulps of each other */
            for (int64_t i = 0; i < I; i++) {
                float f = 1.0f + ldexpf((float)(mt_lcg(&s) % 8), -22);
                for (int64_t k = 0; k < D; k++) ie[i * D + k] = ie[k] * f;
            }
            break;
        case ZEROS: /* every third user and fifth item all zero */
            for (int64_t u = 0; u < U; u += 3)
                for (int64_t k = 0; k < D; k++) ue[u * D + k] = 0.0f;
            for (int64_t i = 0; i < I; i += 5)
                for (int64_t k = 0; k < D; k++) ie[i * D + k] = 0.0f;
            break;
        default: break;
        }
        int per = I < 60 ? 2 : (int)(I / 30);
        mmrec_interactions *train = mt_random_pairs(U, I, per, 7 + c, NULL);
        mmrec_interactions *test = mt_random_pairs(U, I, (int)(I / 8 + 1), 9 + c, train);
        /* a large K, then a small one: with K <= num_items / 48 the
         * screen also takes a floor from its sample of runs */
        int ks[2][3] = {{1, 10, 50}, {1, 3, 5}};
        for (int set = 0; set < 2; set++) {
            for (int q = 0; q < 3; q++) ks[set][q] = ks[set][q] < I ? ks[set][q] : (int)I;
            char what[112];
            snprintf(what, sizeof what, "case %zu: U %lld I %lld D %lld scales %g %g K <= %d",
                     c, (long long)U, (long long)I, (long long)D, (double)cases[c].user_scale,
                     (double)cases[c].item_scale, ks[set][2]);
            mt_check_exact(what, ue, ie, U, I, D, train, test, ks[set], 3);
        }
        mmrec_interactions_destroy(train);
        mmrec_interactions_destroy(test);
        free(ue);
        free(ie);
    }
}
END_TEST

/* Train items among each user's best: user u's train items are its 150
 * best-scoring items, which the screen's sample of runs also sees; its
 * floor under the K-th best must count only candidates. */
START_TEST(test_full_ranking_screen_train_items_best) {
    enum { U = 64, I = 3000, D = 16, TRAIN = 150 };
    float *ue = malloc((size_t)U * D * sizeof *ue), *ie = malloc((size_t)I * D * sizeof *ie);
    uint64_t s = 31;
    for (size_t i = 0; i < (size_t)U * D; i++) ue[i] = mt_gauss(&s);
    for (size_t i = 0; i < (size_t)I * D; i++) ie[i] = mt_gauss(&s);
    int64_t *tu = malloc((size_t)U * TRAIN * sizeof *tu), *ti = malloc((size_t)U * TRAIN * sizeof *ti);
    mt_scored *order = malloc((size_t)I * sizeof *order);
    for (int u = 0; u < U; u++) {
        for (int i = 0; i < I; i++) {
            float sc = 0.0f;
            for (int c = 0; c < D; c++) sc = fmaf(ue[u * D + c], ie[i * D + c], sc);
            order[i] = (mt_scored){sc, i};
        }
        qsort(order, I, sizeof *order, mt_rank_cmp);
        for (int p = 0; p < TRAIN; p++) tu[u * TRAIN + p] = u, ti[u * TRAIN + p] = order[p].id;
    }
    mmrec_interactions *train, *test;
    MT_OK(mmrec_interactions_create(tu, ti, (size_t)U * TRAIN, &train));
    test = mt_random_pairs(U, I, 40, 12, train);
    int ks[3] = {1, 3, 5};
    mt_check_exact("train items best", ue, ie, U, I, D, train, test, ks, 3);
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
    free(order);
    free(tu);
    free(ti);
    free(ue);
    free(ie);
}
END_TEST

/* The screen screens: on Gaussian embeddings it scores exactly little more
 * than the pairs that enter a user's running top K (about K (1 +
 * ln(num_items / K)) without the floor, fewer with it), 1.2% of the pairs
 * here, not all of them. */
START_TEST(test_full_ranking_screen_screens) {
    enum { U = 128, I = 10000, D = 64 };
    if (!mmrec__eval_scorer_usable(MMREC__EVAL_SCREEN, D) &&
        !mmrec__eval_scorer_usable(MMREC__EVAL_SCREEN_VNNI256, D))
        return;
    float *ue = malloc((size_t)U * D * sizeof *ue), *ie = malloc((size_t)I * D * sizeof *ie);
    uint64_t s = 77;
    for (size_t i = 0; i < (size_t)U * D; i++) ue[i] = 0.1f * mt_gauss(&s);
    for (size_t i = 0; i < (size_t)I * D; i++) ie[i] = 0.1f * mt_gauss(&s);
    mmrec_interactions *train = mt_random_pairs(U, I, 30, 3, NULL);
    mmrec_interactions *test = mt_random_pairs(U, I, 5, 4, train);
    int ks[2] = {10, 20};
    unsigned long long rescored =
        mt_check_exact("screen rate", ue, ie, U, I, D, train, test, ks, 2);
    double pairs = (double)U * (U - U / 5) / U * I; /* users with test items */
    ck_assert_msg(rescored > 0 && (double)rescored < 0.02 * pairs,
                  "the screen scored %llu of %.0f pairs exactly", rescored, pairs);
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
    free(ue);
    free(ie);
}
END_TEST

/* Every allocation of the screened call failing in turn: MMREC_ENOMEM,
 * nothing leaked (mt_oom_loop), the output untouched. */
typedef struct mt_oom_eval {
    const float *ue, *ie;
    mmrec_interactions *train, *test;
} mt_oom_eval;

static mmrec_status mt_oom_eval_run(void *ctx) {
    const mt_oom_eval *c = ctx;
    int ks[2] = {5, 20};
    mmrec_rank_metrics out[2];
    memset(out, 0x5A, sizeof out);
    out[0].struct_size = sizeof out[0];
    mmrec_rank_metrics before[2];
    memcpy(before, out, sizeof out);
    mmrec_status st = mmrec_eval_full_ranking(c->ue, c->ie, 90, 700, 40, c->train, c->test,
                                              ks, 2, out);
    if (st != MMREC_OK) ck_assert(memcmp(out, before, sizeof out) == 0);
    return st;
}

START_TEST(test_full_ranking_out_of_memory) {
    float *ue = malloc(90 * 40 * sizeof *ue), *ie = malloc(700 * 40 * sizeof *ie);
    uint64_t s = 5;
    for (int i = 0; i < 90 * 40; i++) ue[i] = mt_gauss(&s);
    for (int i = 0; i < 700 * 40; i++) ie[i] = mt_gauss(&s);
    mt_oom_eval c = {ue, ie, mt_random_pairs(90, 700, 20, 1, NULL), NULL};
    c.test = mt_random_pairs(90, 700, 4, 2, c.train);
    ck_assert_int_gt(mt_oom_loop("screened evaluation", mt_oom_eval_run, &c), 0);
    mmrec_interactions_destroy(c.train);
    mmrec_interactions_destroy(c.test);
    free(ue);
    free(ie);
}
END_TEST

static Suite *metrics_suite(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("ranking");
    tcase_add_test(tc, test_full_ranking_matches_brute_force);
    tcase_add_test(tc, test_full_ranking_across_tiles);
    tcase_add_test(tc, test_full_ranking_scorers_agree);
    tcase_add_test(tc, test_full_ranking_boundary_exact);
    tcase_add_test(tc, test_full_ranking_overflow_scores);
    tcase_add_test(tc, test_full_ranking_golden_pytorch);
    tcase_add_test(tc, test_full_ranking_bad_input);
    tcase_add_test(tc, test_full_ranking_exact_scorers_adversarial);
    tcase_add_test(tc, test_full_ranking_screen_train_items_best);
    tcase_add_test(tc, test_full_ranking_screen_screens);
    tcase_add_test(tc, test_full_ranking_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}
