/* Ranking metrics: full ranking against a brute-force reference (integer
 * embeddings, so scores are exact and ties frequent), thread independence,
 * PyTorch golden values, bad input. */
#include "mt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

/* Brute force: rank every non-train item by (score desc, id asc). */
static void mt_reference(const float *ue, const float *ie, int64_t U, int64_t I,
                         const mmrec_interactions *train, const mmrec_interactions *test, int k,
                         double m[6]) {
    int *order = malloc((size_t)I * sizeof *order);
    float *sc = malloc((size_t)I * sizeof *sc);
    for (int j = 0; j < 6; j++) m[j] = 0;
    for (int64_t u = 0; u < U; u++) {
        int n_test = 0;
        for (int64_t i = 0; i < I; i++) n_test += mt_has_pair(test, u, i);
        if (n_test == 0) continue;
        int n = 0;
        for (int64_t i = 0; i < I; i++) {
            float s = 0;
            for (int c = 0; c < MT_D; c++) s += ue[u * MT_D + c] * ie[i * MT_D + c];
            sc[i] = s;
            if (!mt_has_pair(train, u, i)) order[n++] = (int)i;
        }
        for (int a = 1; a < n; a++) /* insertion sort: score desc, id asc */
            for (int b = a; b > 0; b--) {
                int x = order[b - 1], y = order[b];
                if (sc[y] > sc[x] || (sc[y] == sc[x] && y < x)) {
                    order[b - 1] = y;
                    order[b] = x;
                } else {
                    break;
                }
            }
        int hits = 0;
        double dcg = 0, idcg = 0, rr = 0;
        for (int p = 0; p < k && p < n; p++)
            if (mt_has_pair(test, u, order[p])) {
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
    free(sc);
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
            mt_reference(ue, ie, MT_U, MT_I, train, test, ks[q], m);
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
        mt_reference(ue, ie, U, I, train, test, ks[q], m);
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
    MT_OK(mmrec_eval_full_ranking(ue->data, ie->data, U, I, D, x[0], x[1], ks, nk, out));
    for (int q = 0; q < nk; q++) {
        float got[5] = {(float)out[q].recall, (float)out[q].ndcg, (float)out[q].precision,
                        (float)out[q].hit_rate, (float)out[q].mrr};
        mt_assert_close("full ranking", got, want->data + 5 * q, 5, 1e-5f, 1e-6f);
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

static Suite *metrics_suite(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("ranking");
    tcase_add_test(tc, test_full_ranking_matches_brute_force);
    tcase_add_test(tc, test_full_ranking_across_tiles);
    tcase_add_test(tc, test_full_ranking_golden_pytorch);
    tcase_add_test(tc, test_full_ranking_bad_input);
    suite_add_tcase(s, tc);
    return s;
}
