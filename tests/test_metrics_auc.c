/* AUC metrics: pointwise AUC and GAUC against pairwise brute force (ties,
 * signed zeros, infinities, extreme group ids), the per-user AUC of full
 * ranking against brute force (integer embeddings: exact scores, frequent
 * ties) and across thread counts, PyTorch golden values, bad input and
 * allocation failures. */
#include "mt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

MT_SUITE(metrics_auc_suite)

/* AUC over all (positive, negative) pairs of the samples with mask[k]
 * (NULL: all); -1 when either class is missing. */
static double mt_pair_auc(const float *scores, const float *labels, const bool *mask, size_t n) {
    double pairs = 0, pos = 0, neg = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        if (labels[i] == 1) pos++;
        else neg++;
        if (labels[i] != 1) continue;
        for (size_t j = 0; j < n; j++) {
            if ((mask && !mask[j]) || labels[j] != 0) continue;
            pairs += scores[i] > scores[j] ? 1.0 : scores[i] == scores[j] ? 0.5 : 0.0;
        }
    }
    return pos && neg ? pairs / (pos * neg) : -1;
}

/* DIN's GAUC by brute force: groups weighted by their sample count. */
static double mt_gauc(const float *scores, const float *labels, const int64_t *groups, size_t n,
                      size_t *kept) {
    bool *mask = malloc(n), *done = calloc(n, 1);
    double num = 0, den = 0;
    *kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (done[i]) continue;
        size_t count = 0;
        for (size_t j = 0; j < n; j++) {
            mask[j] = groups[j] == groups[i];
            done[j] |= mask[j];
            count += mask[j];
        }
        double auc = mt_pair_auc(scores, labels, mask, n);
        if (auc < 0) continue;
        num += (double)count * auc;
        den += (double)count;
        ++*kept;
    }
    free(mask);
    free(done);
    return num / den;
}

START_TEST(test_auc_matches_pairwise_brute_force) {
    enum { N = 700 };
    static float scores[N], labels[N];
    uint64_t s = 5;
    for (int round = 0; round < 40; round++) {
        size_t n = 2 + mt_lcg(&s) % (N - 2);
        int levels = 1 + (int)(mt_lcg(&s) % 50); /* few levels: many ties */
        for (size_t k = 0; k < n; k++) {
            scores[k] = (float)((int)(mt_lcg(&s) % (unsigned)levels) - levels / 2) * 0.25f;
            if (scores[k] == 0.0f && (mt_lcg(&s) & 1)) scores[k] = -0.0f; /* -0 ties +0 */
            labels[k] = (float)(mt_lcg(&s) % 3 == 0);
        }
        labels[0] = 1.0f;
        labels[1] = 0.0f;
        if (round % 5 == 0) scores[mt_lcg(&s) % n] = INFINITY;
        if (round % 7 == 0) scores[mt_lcg(&s) % n] = -INFINITY;
        double got;
        MT_OK(mmrec_metric_auc(scores, labels, n, &got));
        double want = mt_pair_auc(scores, labels, NULL, n);
        ck_assert_msg(fabs(got - want) < 1e-12, "round %d (n %zu): %.15g vs %.15g", round, n, got,
                      want);
    }
}
END_TEST

START_TEST(test_auc_known_values) {
    float sc[6] = {0.9f, 0.8f, 0.7f, 0.3f, 0.2f, 0.1f};
    float up[6] = {1, 1, 1, 0, 0, 0}, down[6] = {0, 0, 0, 1, 1, 1}, mid[6] = {1, 0, 1, 0, 1, 0};
    double a;
    MT_OK(mmrec_metric_auc(sc, up, 6, &a));
    ck_assert(a == 1.0);
    MT_OK(mmrec_metric_auc(sc, down, 6, &a));
    ck_assert(a == 0.0);
    MT_OK(mmrec_metric_auc(sc, mid, 6, &a)); /* 6 of 9 pairs right */
    ck_assert(fabs(a - 6.0 / 9.0) < 1e-15);
    float tied[4] = {2, 2, 2, 2}, two[4] = {1, 0, 0, 1};
    MT_OK(mmrec_metric_auc(tied, two, 4, &a));
    ck_assert(a == 0.5);
    /* sklearn: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.75 */
    float sk[4] = {0.1f, 0.4f, 0.35f, 0.8f}, skl[4] = {0, 0, 1, 1};
    MT_OK(mmrec_metric_auc(sk, skl, 4, &a));
    ck_assert(fabs(a - 0.75) < 1e-15);
}
END_TEST

START_TEST(test_gauc_matches_brute_force) {
    enum { N = 600 };
    static float scores[N], labels[N];
    static int64_t groups[N];
    const int64_t far[6] = {INT64_MIN, INT64_MAX, -1, 0, (int64_t)1 << 40, -((int64_t)1 << 52)};
    uint64_t s = 17;
    for (int round = 0; round < 30; round++) {
        size_t n = 2 + mt_lcg(&s) % (N - 2);
        int n_groups = 1 + (int)(mt_lcg(&s) % 40);
        for (size_t k = 0; k < n; k++) {
            scores[k] = (float)(int)(mt_lcg(&s) % 9) - 4.0f;
            labels[k] = (float)(mt_lcg(&s) % 4 == 0);
            int g = (int)(mt_lcg(&s) % (unsigned)n_groups);
            groups[k] = round % 3 == 0 ? (int64_t)((uint64_t)far[g % 6] ^ (uint64_t)(g / 6))
                                       : g - 10;
        }
        labels[0] = 1.0f;
        labels[1] = 0.0f;
        double got;
        size_t kept_got, kept_want;
        double want = mt_gauc(scores, labels, groups, n, &kept_want);
        if (kept_want == 0) {
            MT_EXPECT(mmrec_metric_gauc(scores, labels, groups, n, &got, NULL), MMREC_EINVAL,
                      "no group");
            continue;
        }
        MT_OK(mmrec_metric_gauc(scores, labels, groups, n, &got, &kept_got));
        ck_assert_uint_eq(kept_got, kept_want);
        ck_assert_msg(fabs(got - want) < 1e-12, "round %d: %.15g vs %.15g", round, got, want);
    }
    /* one group: GAUC is AUC */
    float sc[5] = {1, 2, 3, 4, 5}, lb[5] = {0, 1, 0, 1, 1};
    int64_t one[5] = {7, 7, 7, 7, 7};
    double g, a;
    MT_OK(mmrec_metric_gauc(sc, lb, one, 5, &g, NULL));
    MT_OK(mmrec_metric_auc(sc, lb, 5, &a));
    ck_assert(g == a);
}
END_TEST

START_TEST(test_auc_bad_input) {
    float sc[4] = {0.1f, 0.2f, 0.3f, 0.4f}, lb[4] = {0, 1, 0, 1};
    int64_t gr[4] = {0, 0, 1, 1};
    double out;
    MT_EXPECT(mmrec_metric_auc(NULL, lb, 4, &out), MMREC_EINVAL, "scores");
    MT_EXPECT(mmrec_metric_auc(sc, NULL, 4, &out), MMREC_EINVAL, "labels");
    MT_EXPECT(mmrec_metric_auc(sc, lb, 4, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_metric_auc(sc, lb, 0, &out), MMREC_EINVAL, "n is 0");
    MT_EXPECT(mmrec_metric_gauc(sc, lb, NULL, 4, &out, NULL), MMREC_EINVAL, "groups");
    MT_EXPECT(mmrec_metric_gauc(sc, lb, gr, 4, NULL, NULL), MMREC_EINVAL, "gauc_out");
    MT_EXPECT(mmrec_metric_gauc(sc, lb, gr, 0, &out, NULL), MMREC_EINVAL, "n is 0");
    float bad[4] = {0, 1, 0.5f, 1};
    MT_EXPECT(mmrec_metric_auc(sc, bad, 4, &out), MMREC_EINVAL, "labels[2] is 0.5");
    bad[2] = NAN;
    MT_EXPECT(mmrec_metric_gauc(sc, bad, gr, 4, &out, NULL), MMREC_EINVAL, "labels[2]");
    float nan_sc[4] = {0.1f, 0.2f, NAN, 0.4f};
    MT_EXPECT(mmrec_metric_auc(nan_sc, lb, 4, &out), MMREC_ENUMERIC, "scores[2] is nan");
    float zeros[4] = {0, 0, 0, 0}, ones[4] = {1, 1, 1, 1};
    MT_EXPECT(mmrec_metric_auc(sc, zeros, 4, &out), MMREC_EINVAL, "no positive");
    MT_EXPECT(mmrec_metric_auc(sc, ones, 4, &out), MMREC_EINVAL, "no negative");
    MT_EXPECT(mmrec_metric_gauc(sc, ones, gr, 4, &out, NULL), MMREC_EINVAL, "no negative");
    float split[4] = {1, 1, 0, 0}; /* group 0 all positive, group 1 all negative */
    out = 42.0;
    MT_EXPECT(mmrec_metric_gauc(sc, split, gr, 4, &out, NULL), MMREC_EINVAL,
              "no group has both");
    ck_assert(out == 42.0); /* untouched on failure */
}
END_TEST

/* ---- full ranking ---- */

enum { MT_U = 150, MT_I = 90, MT_D = 3 };

static mmrec_interactions *mt_make(const int64_t *u, const int64_t *i, size_t n) {
    mmrec_interactions *x;
    MT_OK(mmrec_interactions_create(u, i, n, &x));
    return x;
}

/* Random train (6 per user) and test (0..4 per user, some overlapping
 * train) interactions; users below MT_U - 3 only. */
static void mt_split(uint64_t seed, mmrec_interactions **train, mmrec_interactions **test) {
    static int64_t tu[MT_U * 6], ti[MT_U * 6], su[MT_U * 5], si[MT_U * 5];
    size_t nt = 0, ns = 0;
    uint64_t s = seed;
    for (int64_t u = 0; u < MT_U - 3; u++) {
        for (int k = 0; k < 6; k++) tu[nt] = u, ti[nt++] = (int64_t)(mt_lcg(&s) % MT_I);
        int n_test = (int)(mt_lcg(&s) % 5);
        for (int k = 0; k < n_test; k++) su[ns] = u, si[ns++] = (int64_t)(mt_lcg(&s) % MT_I);
    }
    *train = mt_make(tu, ti, nt);
    *test = mt_make(su, si, ns);
}

/* Brute force over pairs: mean and positive-weighted mean of AUC_u. */
static void mt_full_reference(const float *ue, const float *ie, int64_t U, int64_t I, int64_t D,
                              const mmrec_interactions *train, const mmrec_interactions *test,
                              double out[3]) {
    float *sc = malloc((size_t)I * sizeof *sc), *lb = malloc((size_t)I * sizeof *lb);
    bool *cand = malloc((size_t)I);
    double mean = 0, wsum = 0, pos_total = 0, users = 0;
    for (int64_t u = 0; u < U; u++) {
        double pos = 0, neg = 0;
        for (int64_t i = 0; i < I; i++) {
            float s = 0;
            for (int64_t c = 0; c < D; c++) s += ue[u * D + c] * ie[i * D + c];
            sc[i] = s;
            cand[i] = !(train && mt_has_pair(train, u, i));
            lb[i] = (float)(cand[i] && mt_has_pair(test, u, i));
            pos += cand[i] && lb[i] == 1;
            neg += cand[i] && lb[i] == 0;
        }
        if (pos == 0 || neg == 0) continue;
        double auc = mt_pair_auc(sc, lb, cand, (size_t)I);
        mean += auc;
        wsum += pos * auc;
        pos_total += pos;
        users++;
    }
    out[0] = users ? mean / users : 0;
    out[1] = users ? wsum / pos_total : 0;
    out[2] = users;
    free(sc);
    free(lb);
    free(cand);
}

START_TEST(test_full_auc_matches_brute_force) {
    /* small integers: every score exact, ties frequent; 150 users make
     * three blocks of the row scorer */
    static float ue[MT_U * MT_D], ie[MT_I * MT_D];
    uint64_t s = 3;
    for (int i = 0; i < MT_U * MT_D; i++) ue[i] = (float)((int)(mt_lcg(&s) % 5) - 2);
    for (int i = 0; i < MT_I * MT_D; i++) ie[i] = (float)((int)(mt_lcg(&s) % 5) - 2);
    mmrec_interactions *train, *test;
    mt_split(11, &train, &test);
    double want[3], want_all[3];
    mt_full_reference(ue, ie, MT_U, MT_I, MT_D, train, test, want);
    mt_full_reference(ue, ie, MT_U, MT_I, MT_D, NULL, test, want_all);
    double first[2] = {0, 0};
    for (int threads = 1; threads <= 3; threads++) {
        MT_OK(mmrec_set_num_threads(threads));
        double mean, weighted;
        int64_t users;
        MT_OK(mmrec_eval_full_auc(ue, ie, MT_U, MT_I, MT_D, train, test, &mean, &weighted,
                                  &users));
        ck_assert_msg(fabs(mean - want[0]) < 1e-12, "mean %.15g vs %.15g", mean, want[0]);
        ck_assert_msg(fabs(weighted - want[1]) < 1e-12, "weighted %.15g vs %.15g", weighted,
                      want[1]);
        ck_assert_int_eq(users, (int64_t)want[2]);
        if (threads == 1) {
            first[0] = mean;
            first[1] = weighted;
        } else { /* bitwise the same for any thread count */
            ck_assert(memcmp(&mean, &first[0], sizeof mean) == 0);
            ck_assert(memcmp(&weighted, &first[1], sizeof weighted) == 0);
        }
        MT_OK(mmrec_eval_full_auc(ue, ie, MT_U, MT_I, MT_D, NULL, test, &mean, NULL, NULL));
        ck_assert_msg(fabs(mean - want_all[0]) < 1e-12, "no train: %.15g vs %.15g", mean,
                      want_all[0]);
    }
    MT_OK(mmrec_set_num_threads(2));
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
}
END_TEST

/* Float embeddings: the same bits with 1 and 2 threads. */
START_TEST(test_full_auc_thread_count_independent) {
    enum { U = 300, I = 3000, D = 16 };
    float *ue = malloc(U * D * sizeof *ue), *ie = malloc((size_t)I * D * sizeof *ie);
    mt_fill_uniform(ue, U * D, -1, 1, 1);
    mt_fill_uniform(ie, (size_t)I * D, -1, 1, 2);
    /* per user 15 train items and 5 test items */
    int64_t *tu = malloc(U * 20 * sizeof *tu), *ti = malloc(U * 20 * sizeof *ti);
    size_t nt = 0, ns = U * 15;
    for (int64_t u = 0; u < U; u++)
        for (int k = 0; k < 20; k++) {
            size_t at = k < 15 ? nt++ : ns++;
            tu[at] = u;
            ti[at] = (u * 37 + k * 101) % I;
        }
    mmrec_interactions *train = mt_make(tu, ti, nt), *test = mt_make(tu + nt, ti + nt, U * 5);
    double m[2][2];
    for (int t = 0; t < 2; t++) {
        MT_OK(mmrec_set_num_threads(t + 1));
        MT_OK(mmrec_eval_full_auc(ue, ie, U, I, D, train, test, &m[t][0], &m[t][1], NULL));
    }
    ck_assert(memcmp(m[0], m[1], sizeof m[0]) == 0);
    ck_assert(m[0][0] > 0.3 && m[0][0] < 0.7); /* random embeddings: about 1/2 */
    MT_OK(mmrec_set_num_threads(2));
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
    free(ue);
    free(ie);
    free(tu);
    free(ti);
}
END_TEST

/* PyTorch, pairwise over float64 (tests/golden/make_golden.py,
 * write_metrics_auc). */
START_TEST(test_auc_golden_pytorch) {
    mt_golden g;
    mt_golden_load(&g, "metrics_auc.bin");
    const mt_array *sc = mt_golden_get(&g, "point.scores"), *lb = mt_golden_get(&g, "point.labels");
    const mt_array *gr = mt_golden_get(&g, "point.groups");
    size_t n = sc->numel;
    int64_t *groups = malloc(n * sizeof *groups);
    for (size_t k = 0; k < n; k++) groups[k] = (int64_t)gr->data[k];
    double auc, gauc;
    size_t kept;
    MT_OK(mmrec_metric_auc(sc->data, lb->data, n, &auc));
    MT_OK(mmrec_metric_gauc(sc->data, lb->data, groups, n, &gauc, &kept));
    float got[2] = {(float)auc, (float)gauc};
    float want[2] = {mt_golden_get(&g, "point.auc")->data[0],
                     mt_golden_get(&g, "point.gauc")->data[0]};
    mt_assert_close("pointwise auc, gauc", got, want, 2, 1e-6f, 1e-7f);
    ck_assert_uint_eq(kept, (size_t)mt_golden_get(&g, "point.groups_kept")->data[0]);
    free(groups);

    const mt_array *ue = mt_golden_get(&g, "full.user_emb");
    const mt_array *ie = mt_golden_get(&g, "full.item_emb");
    const mt_array *src[2] = {mt_golden_get(&g, "full.train"), mt_golden_get(&g, "full.test")};
    mmrec_interactions *x[2];
    for (int t = 0; t < 2; t++) {
        size_t m = (size_t)src[t]->shape[0];
        int64_t *us = malloc(m * sizeof *us), *is = malloc(m * sizeof *is);
        for (size_t k = 0; k < m; k++) {
            us[k] = (int64_t)src[t]->data[2 * k];
            is[k] = (int64_t)src[t]->data[2 * k + 1];
        }
        x[t] = mt_make(us, is, m);
        free(us);
        free(is);
    }
    double mean, weighted;
    int64_t users;
    MT_OK(mmrec_eval_full_auc(ue->data, ie->data, ue->shape[0], ie->shape[0], ue->shape[1], x[0],
                              x[1], &mean, &weighted, &users));
    const mt_array *full = mt_golden_get(&g, "full.auc");
    float got_full[2] = {(float)mean, (float)weighted};
    mt_assert_close("full auc", got_full, full->data, 2, 1e-6f, 1e-7f);
    ck_assert_int_eq(users, (int64_t)full->data[2]);
    mmrec_interactions_destroy(x[0]);
    mmrec_interactions_destroy(x[1]);
    mt_golden_free(&g);
}
END_TEST

START_TEST(test_full_auc_bad_input) {
    static float ue[MT_U * MT_D], ie[MT_I * MT_D];
    mmrec_interactions *train, *test;
    mt_split(4, &train, &test);
    double mean = 7.0, w;
    MT_EXPECT(mmrec_eval_full_auc(NULL, ie, MT_U, MT_I, MT_D, train, test, &mean, &w, NULL),
              MMREC_EINVAL, "user_emb");
    MT_EXPECT(mmrec_eval_full_auc(ue, NULL, MT_U, MT_I, MT_D, train, test, &mean, &w, NULL),
              MMREC_EINVAL, "item_emb");
    MT_EXPECT(mmrec_eval_full_auc(ue, ie, MT_U, MT_I, MT_D, train, NULL, &mean, &w, NULL),
              MMREC_EINVAL, "test");
    MT_EXPECT(mmrec_eval_full_auc(ue, ie, MT_U, MT_I, MT_D, train, test, NULL, &w, NULL),
              MMREC_EINVAL, "mean_out");
    MT_EXPECT(mmrec_eval_full_auc(ue, ie, MT_U, MT_I, 0, train, test, &mean, &w, NULL),
              MMREC_EINVAL, "dim");
    MT_EXPECT(mmrec_eval_full_auc(ue, ie, 0, MT_I, MT_D, train, test, &mean, &w, NULL),
              MMREC_EINVAL, "num_users");
    MT_EXPECT(mmrec_eval_full_auc(ue, ie, MT_U - 10, MT_I, MT_D, train, test, &mean, &w, NULL),
              MMREC_ERANGE, "train users[");
    MT_EXPECT(mmrec_eval_full_auc(ue, ie, MT_U, 10, MT_D, NULL, test, &mean, &w, NULL),
              MMREC_ERANGE, "test items[");
    MT_EXPECT(mmrec_eval_full_auc(ue, ie, MT_U, MT_I, MT_D, train, (const mmrec_interactions *)ue,
                                  &mean, &w, NULL),
              MMREC_EINVAL, "not an interactions object");
    ie[7] = INFINITY;
    MT_EXPECT(mmrec_eval_full_auc(ue, ie, MT_U, MT_I, MT_D, train, test, &mean, &w, NULL),
              MMREC_ENUMERIC, "item_emb[7] is inf");
    ck_assert(mean == 7.0);
    ie[7] = 0;
    /* no test items at all: nothing to average */
    mmrec_interactions *empty = mt_make(NULL, NULL, 0);
    int64_t users = -1;
    MT_OK(mmrec_eval_full_auc(ue, ie, MT_U, MT_I, MT_D, train, empty, &mean, &w, &users));
    ck_assert(mean == 0.0 && w == 0.0 && users == 0);
    mmrec_interactions_destroy(empty);
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
}
END_TEST

typedef struct mt_auc_oom {
    const float *ue, *ie, *scores, *labels;
    const int64_t *groups;
    const mmrec_interactions *train, *test;
} mt_auc_oom;

static mmrec_status mt_auc_scenario(void *ctx) {
    const mt_auc_oom *c = ctx;
    double a, b;
    mmrec_status s = mmrec_metric_auc(c->scores, c->labels, 64, &a);
    if (s == MMREC_OK) s = mmrec_metric_gauc(c->scores, c->labels, c->groups, 64, &a, NULL);
    if (s == MMREC_OK)
        s = mmrec_eval_full_auc(c->ue, c->ie, MT_U, MT_I, MT_D, c->train, c->test, &a, &b, NULL);
    return s;
}

START_TEST(test_auc_oom_reports_enomem_without_leaks) {
    static float ue[MT_U * MT_D], ie[MT_I * MT_D], sc[64], lb[64];
    static int64_t gr[64];
    mt_fill_uniform(ue, MT_U * MT_D, -1, 1, 5);
    mt_fill_uniform(ie, MT_I * MT_D, -1, 1, 6);
    mt_fill_uniform(sc, 64, -1, 1, 7);
    for (int k = 0; k < 64; k++) lb[k] = (float)(k % 3 == 0), gr[k] = k % 5;
    mmrec_interactions *train, *test;
    mt_split(9, &train, &test);
    mt_auc_oom c = {ue, ie, sc, lb, gr, train, test};
    ck_assert_int_gt(mt_oom_loop("auc", mt_auc_scenario, &c), 5);
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
}
END_TEST

static Suite *metrics_auc_suite(void) {
    Suite *s = suite_create("metrics_auc");
    TCase *point = tcase_create("pointwise");
    tcase_add_test(point, test_auc_matches_pairwise_brute_force);
    tcase_add_test(point, test_auc_known_values);
    tcase_add_test(point, test_gauc_matches_brute_force);
    tcase_add_test(point, test_auc_bad_input);
    suite_add_tcase(s, point);
    TCase *full = tcase_create("full_ranking");
    tcase_add_test(full, test_full_auc_matches_brute_force);
    tcase_add_test(full, test_full_auc_thread_count_independent);
    tcase_add_test(full, test_full_auc_bad_input);
    suite_add_tcase(s, full);
    TCase *golden = tcase_create("golden");
    tcase_add_test(golden, test_auc_golden_pytorch);
    suite_add_tcase(s, golden);
    TCase *rel = tcase_create("reliability");
    tcase_add_test(rel, test_auc_oom_reports_enomem_without_leaks);
    suite_add_tcase(s, rel);
    return s;
}
