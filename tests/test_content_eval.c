/* AlignRec's intermediate evaluations (zero-shot, item-CF, mask-modality)
 * against brute force (small-integer features, so every product is exact
 * and ties between duplicate items are real), across thread counts, PyTorch
 * golden values, bad input and allocation failures. */
#include "mt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

MT_SUITE(content_eval_suite)

/* Integer features in [-2, 2]; item 3 a zero row, items 10 and 11 copies
 * of item 2 (exact ties). */
static void mt_int_features(float *f, int64_t I, int64_t F, uint64_t seed) {
    uint64_t s = seed;
    for (int64_t k = 0; k < I * F; k++) f[k] = (float)((int)(mt_lcg(&s) % 5) - 2);
    if (I > 11) {
        for (int64_t c = 0; c < F; c++) {
            f[3 * F + c] = 0.0f;
            f[10 * F + c] = f[11 * F + c] = f[2 * F + c];
        }
    }
}

/* 1 / |f_i| as the library computes it (0 for a zero row). */
static float mt_inv_norm(const float *f, int64_t F) {
    double ss = 0;
    for (int64_t c = 0; c < F; c++) ss += (double)f[c] * f[c];
    return ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
}

/* Rank of `target` among the items not excluded, by the cosine of q (up to
 * q's norm: exact products times 1/|f_j|), lower id first on ties. */
static int64_t mt_rank(const float *f, int64_t I, int64_t F, const float *q, int64_t target,
                       const bool *excluded) {
    float st = 0;
    int64_t rank = 1;
    for (int pass = 0; pass < 2; pass++)
        for (int64_t j = 0; j < I; j++) {
            if (pass == 0 && j != target) continue;
            float dot = 0;
            for (int64_t c = 0; c < F; c++) dot += q[c] * f[j * F + c];
            float s = dot * mt_inv_norm(f + j * F, F);
            if (pass == 0) {
                st = s;
            } else if (j != target && !excluded[j]) {
                rank += s > st || (s == st && j < target);
            }
        }
    return rank;
}

/* Metrics of one-target ranks (metrics.h): recall ndcg precision hr mrr. */
static void mt_metrics(const int64_t *ranks, size_t n, int k, double m[5]) {
    for (int j = 0; j < 5; j++) m[j] = 0;
    for (size_t i = 0; i < n; i++)
        if (ranks[i] <= k) {
            m[0] += 1;
            m[1] += 1 / log2((double)ranks[i] + 1);
            m[2] += 1.0 / k;
            m[3] += 1;
            m[4] += 1.0 / (double)ranks[i];
        }
    for (int j = 0; j < 5; j++) m[j] /= n ? (double)n : 1.0;
}

static void mt_expect_metrics(const char *what, const mmrec_rank_metrics *out, const int *ks,
                              int num_ks, const int64_t *ranks, size_t n) {
    for (int q = 0; q < num_ks; q++) {
        double m[5];
        mt_metrics(ranks, n, ks[q], m);
        ck_assert_int_eq(out[q].k, ks[q]);
        ck_assert_int_eq(out[q].users, (int64_t)n);
        double got[5] = {out[q].recall, out[q].ndcg, out[q].precision, out[q].hit_rate,
                         out[q].mrr};
        for (int j = 0; j < 5; j++)
            ck_assert_msg(fabs(got[j] - m[j]) < 1e-12, "%s K %d metric %d: %.15g vs %.15g", what,
                          ks[q], j, got[j], m[j]);
    }
}

typedef mmrec_status (*mt_content_eval)(const float *features, int64_t num_items,
                                        int64_t feat_dim, const mmrec_interactions *x,
                                        const int *ks, int num_ks, mmrec_rank_metrics *out);

/* Runs `eval` at 1, 2 and 3 threads (2 again after): each run matches the
 * brute-force ranks, and all give the same bytes. */
static void mt_expect_ranks_any_threads(const char *what, mt_content_eval eval, const float *f,
                                        int64_t I, int64_t F, const mmrec_interactions *x,
                                        const int *ks, int num_ks, const int64_t *ranks,
                                        size_t n) {
    mmrec_rank_metrics out[4], first[4];
    ck_assert_int_le(num_ks, 4);
    size_t bytes = (size_t)num_ks * sizeof out[0];
    memset(out, 0, sizeof out); /* the bytes are compared: padding included */
    out[0].struct_size = sizeof out[0];
    for (int threads = 1; threads <= 3; threads++) {
        MT_OK(mmrec_set_num_threads(threads));
        mmrec_status s = eval(f, I, F, x, ks, num_ks, out);
        ck_assert_msg(s == MMREC_OK, "%s at %d threads: %s", what, threads, mmrec_last_error());
        mt_expect_metrics(what, out, ks, num_ks, ranks, n);
        if (threads == 1) memcpy(first, out, bytes);
        else ck_assert(memcmp(first, out, bytes) == 0);
    }
    MT_OK(mmrec_set_num_threads(2));
}

/* ---- zero-shot ---- */

/* Random sequences, the users' pairs interleaved: user u has u % 9 items
 * (0 and 1: not evaluated); user 5's target also appears in its history. */
static mmrec_interactions *mt_sequences(int64_t U, int64_t I, uint64_t seed) {
    size_t cap = (size_t)U * 9;
    int64_t *us = malloc(cap * sizeof *us), *is = malloc(cap * sizeof *is);
    int64_t *left = malloc((size_t)U * sizeof *left);
    size_t n = 0, total = 0;
    uint64_t s = seed;
    for (int64_t u = 0; u < U; u++) total += (size_t)(left[u] = u % 9);
    while (n < total) { /* a random user with items left gets its next one */
        int64_t u = (int64_t)(mt_lcg(&s) % (uint64_t)U);
        if (left[u] == 0) continue;
        left[u]--;
        us[n] = u;
        if (u == 5 && (left[u] == 0 || left[u] == 2)) is[n] = 17; /* last and third */
        else is[n] = (int64_t)(mt_lcg(&s) % (uint64_t)I);
        n++;
    }
    mmrec_interactions *x;
    MT_OK(mmrec_interactions_create(us, is, n, &x));
    free(us);
    free(is);
    free(left);
    return x;
}

/* Brute force: per user (in id order) with 2 or more items, the rank of the
 * last item by the history's summed features. */
static size_t mt_zero_shot_ranks(const float *f, int64_t I, int64_t F,
                                 const mmrec_interactions *x, int64_t *ranks) {
    const int64_t *us, *is;
    size_t n;
    int64_t U;
    MT_OK(mmrec_interactions_pairs(x, &us, &is));
    MT_OK(mmrec_interactions_info(x, &U, NULL, &n));
    float *q = malloc((size_t)F * sizeof *q);
    bool *excluded = malloc((size_t)I);
    int64_t *seq = malloc((n ? n : 1) * sizeof *seq);
    size_t n_ranks = 0;
    for (int64_t u = 0; u < U; u++) {
        size_t len = 0;
        for (size_t k = 0; k < n; k++)
            if (us[k] == u) seq[len++] = is[k];
        if (len < 2) continue;
        int64_t target = seq[len - 1];
        memset(excluded, 0, (size_t)I);
        for (int64_t c = 0; c < F; c++) q[c] = 0;
        for (size_t k = 0; k + 1 < len; k++) {
            excluded[seq[k]] = seq[k] != target;
            for (int64_t c = 0; c < F; c++) q[c] += f[seq[k] * F + c];
        }
        ranks[n_ranks++] = mt_rank(f, I, F, q, target, excluded);
    }
    free(q);
    free(excluded);
    free(seq);
    return n_ranks;
}

START_TEST(test_zero_shot_matches_brute_force) {
    /* the second case has rows too long for 64 of them in 16 MiB (blocks
     * of 59 queries), and 25 distinct feature vectors: long runs of ties */
    const int64_t cases[2][3] = {{90, 40, 5}, {70000, 140, 2}};
    const int all_ks[2][4] = {{1, 3, 10, 50}, {1, 1000, 20000, 70000}};
    for (int t = 0; t < 2; t++) {
        int64_t I = cases[t][0], U = cases[t][1], F = cases[t][2];
        float *f = malloc((size_t)(I * F) * sizeof *f);
        mt_int_features(f, I, F, 7 + (uint64_t)t);
        mmrec_interactions *x = mt_sequences(U, I, 3 + (uint64_t)t);
        int64_t *ranks = malloc((size_t)U * sizeof *ranks);
        size_t n = mt_zero_shot_ranks(f, I, F, x, ranks);
        mt_expect_ranks_any_threads("zero-shot", mmrec_eval_zero_shot, f, I, F, x, all_ks[t], 4,
                                    ranks, n);
        mmrec_interactions_destroy(x);
        free(ranks);
        free(f);
    }
}
END_TEST

/* Hand-made cases: a known rank, a zero query (every score 0: ranked by
 * id), no user with two items. */
START_TEST(test_zero_shot_small_cases) {
    /* items 0..3 in 2-d: 0 = (1, 0), 1 = (0, 1), 2 = (1, 1), 3 = (-1, 0) */
    float f[8] = {1, 0, 0, 1, 1, 1, -1, 0};
    int64_t us[3] = {0, 0, 0}, is[3] = {0, 1, 3}; /* history 0, 1 -> query (1, 1); target 3 */
    mmrec_interactions *x;
    MT_OK(mmrec_interactions_create(us, is, 3, &x));
    int ks[2] = {1, 2};
    mmrec_rank_metrics out[2];
    out[0].struct_size = sizeof out[0];
    MT_OK(mmrec_eval_zero_shot(f, 4, 2, x, ks, 2, out));
    /* candidates 2 and 3; cos(query, 2) = 1 > cos(query, 3) < 0: rank 2 */
    ck_assert(out[0].hit_rate == 0.0 && out[1].hit_rate == 1.0);
    ck_assert(fabs(out[1].ndcg - 1 / log2(3.0)) < 1e-15 && out[1].mrr == 0.5);
    ck_assert_int_eq(out[0].users, 1);
    mmrec_interactions_destroy(x);
    /* a history of zero vectors: every score 0, the lower id ranks first */
    float z[8] = {0, 0, 0, 0, 1, 1, 0, 0};
    int64_t us2[2] = {0, 0}, is2[2] = {0, 2};
    MT_OK(mmrec_interactions_create(us2, is2, 2, &x));
    MT_OK(mmrec_eval_zero_shot(z, 4, 2, x, ks, 2, out));
    ck_assert(out[0].hit_rate == 0.0 && out[1].hit_rate == 1.0); /* item 1 first */
    mmrec_interactions_destroy(x);
    /* nobody with two items: zero users, zero metrics */
    MT_OK(mmrec_interactions_create(us2, is2, 1, &x));
    MT_OK(mmrec_eval_zero_shot(z, 4, 2, x, ks, 2, out));
    ck_assert(out[0].users == 0 && out[1].recall == 0.0);
    mmrec_interactions_destroy(x);
}
END_TEST

/* ---- item-CF ---- */

static mmrec_interactions *mt_random_pairs(int64_t U, int64_t I, int per, uint64_t seed) {
    size_t n = (size_t)U * (size_t)per;
    int64_t *us = malloc(n * sizeof *us), *is = malloc(n * sizeof *is);
    uint64_t s = seed;
    for (size_t k = 0; k < n; k++) {
        us[k] = (int64_t)(k / (size_t)per);
        is[k] = (int64_t)(mt_lcg(&s) % (uint64_t)(I - 5)); /* the last 5 items unused */
    }
    mmrec_interactions *x;
    MT_OK(mmrec_interactions_create(us, is, n, &x));
    free(us);
    free(is);
    return x;
}

static size_t mt_item_cf_ranks(const float *f, int64_t I, int64_t F, const mmrec_interactions *x,
                               int64_t *ranks) {
    const int64_t *us, *is;
    size_t n;
    int64_t U;
    MT_OK(mmrec_interactions_pairs(x, &us, &is));
    MT_OK(mmrec_interactions_info(x, &U, NULL, &n));
    bool *R = calloc((size_t)(U * I), 1), *excluded = calloc((size_t)I, 1);
    for (size_t k = 0; k < n; k++) R[us[k] * I + is[k]] = true;
    size_t n_ranks = 0;
    for (int64_t j = 0; j < I; j++) {
        int64_t best = -1, best_count = 0;
        for (int64_t k = 0; k < I; k++) {
            if (k == j) continue;
            int64_t c = 0;
            for (int64_t u = 0; u < U; u++) c += R[u * I + j] && R[u * I + k];
            if (c > best_count) best = k, best_count = c;
        }
        if (best < 0) continue;
        excluded[j] = true;
        ranks[n_ranks++] = mt_rank(f, I, F, f + j * F, best, excluded);
        excluded[j] = false;
    }
    free(R);
    free(excluded);
    return n_ranks;
}

START_TEST(test_item_cf_matches_brute_force) {
    enum { I = 80, F = 4, U = 50 };
    static float f[I * F];
    mt_int_features(f, I, F, 21);
    mmrec_interactions *x = mt_random_pairs(U, I, 6, 22); /* repeats included */
    int64_t ranks[I];
    size_t n = mt_item_cf_ranks(f, I, F, x, ranks);
    ck_assert_uint_gt(n, I / 2);
    ck_assert_uint_lt(n, I); /* items without interactions have no target */
    int ks[3] = {1, 5, 20};
    mt_expect_ranks_any_threads("item-CF", mmrec_eval_item_cf, f, I, F, x, ks, 3, ranks, n);
    mmrec_interactions_destroy(x);
}
END_TEST

START_TEST(test_item_cf_target_is_most_co_occurring) {
    /* Co-occurrences: (0, 1) 2 users, (0, 2) 1, (1, 2) 2; item 3 none.
     * Targets: 0 -> 1; 1 -> 0 (tied with 2: the lower id); 2 -> 1.
     * Cosines: 0 = (1, 0), 1 = (-1, .1), 2 = (1, .1), 3 = (0, 1) put each
     * target at rank 3, where the wrong choices (0 -> 2, 1 -> 2, 2 -> 0)
     * would be at ranks 1, 2 and 1. */
    int64_t us[7] = {0, 0, 1, 1, 1, 2, 2}, is[7] = {0, 1, 0, 1, 2, 1, 2};
    float f[8] = {1, 0, -1, 0.1f, 1, 0.1f, 0, 1};
    mmrec_interactions *x;
    MT_OK(mmrec_interactions_create(us, is, 7, &x));
    int ks[1] = {1};
    mmrec_rank_metrics out[1];
    out[0].struct_size = sizeof out[0];
    MT_OK(mmrec_eval_item_cf(f, 4, 2, x, ks, 1, out));
    ck_assert_int_eq(out[0].users, 3);
    ck_assert(out[0].hit_rate == 0.0);
    ck_assert(fabs(out[0].mrr) == 0.0);
    int ks3[1] = {3};
    MT_OK(mmrec_eval_item_cf(f, 4, 2, x, ks3, 1, out));
    ck_assert(fabs(out[0].mrr - 1.0 / 3.0) < 1e-15);
    mmrec_interactions_destroy(x);
}
END_TEST

/* ---- PyTorch golden values (make_golden.py::write_content_eval) ---- */

static mmrec_interactions *mt_pairs_of(const mt_array *a) {
    size_t n = (size_t)a->shape[0];
    int64_t *us = malloc(n * sizeof *us), *is = malloc(n * sizeof *is);
    for (size_t k = 0; k < n; k++) {
        us[k] = (int64_t)a->data[2 * k];
        is[k] = (int64_t)a->data[2 * k + 1];
    }
    mmrec_interactions *x;
    MT_OK(mmrec_interactions_create(us, is, n, &x));
    free(us);
    free(is);
    return x;
}

START_TEST(test_content_eval_golden_pytorch) {
    mt_golden g;
    mt_golden_load(&g, "content_eval.bin");
    const mt_array *f = mt_golden_get(&g, "features"), *kk = mt_golden_get(&g, "ks");
    int ks[8], nk = (int)kk->numel;
    for (int q = 0; q < nk; q++) ks[q] = (int)kk->data[q];
    const char *names[2] = {"zero_shot", "item_cf"};
    const char *counts[2] = {"zero_shot.users", "item_cf.items"};
    for (int t = 0; t < 2; t++) {
        char key[64];
        snprintf(key, sizeof key, "%s.pairs", names[t]);
        mmrec_interactions *x = mt_pairs_of(mt_golden_get(&g, key));
        mmrec_rank_metrics out[8];
        out[0].struct_size = sizeof out[0];
        if (t == 0) MT_OK(mmrec_eval_zero_shot(f->data, f->shape[0], f->shape[1], x, ks, nk, out));
        else MT_OK(mmrec_eval_item_cf(f->data, f->shape[0], f->shape[1], x, ks, nk, out));
        float got[40];
        for (int q = 0; q < nk; q++) {
            float m[5] = {(float)out[q].recall, (float)out[q].ndcg, (float)out[q].precision,
                          (float)out[q].hit_rate, (float)out[q].mrr};
            memcpy(got + 5 * q, m, sizeof m);
            ck_assert_int_eq(out[q].users, (int64_t)mt_golden_get(&g, counts[t])->data[0]);
        }
        snprintf(key, sizeof key, "%s.metrics", names[t]);
        mt_assert_close(names[t], got, mt_golden_get(&g, key)->data, (size_t)(5 * nk), 1e-5f,
                        1e-7f);
        mmrec_interactions_destroy(x);
    }
    mt_golden_free(&g);
}
END_TEST

/* ---- mask-modality ---- */

START_TEST(test_mask_modality_zeroes_the_chosen_slice) {
    enum { I = 101, D = 7 };
    static float f[I * D], orig[I * D], again[I * D];
    mt_fill_uniform(orig, I * D, 0.5f, 1.5f, 3); /* no zeros of its own */
    const double ratios[5] = {0.0, 0.004, 0.3, 0.75, 1.0};
    for (int r = 0; r < 5; r++) {
        memcpy(f, orig, sizeof f);
        MT_OK(mmrec_eval_mask_modality(f, I, D, 2, 5, ratios[r], 99));
        /* reference: selection sampling with the public generator */
        mmrec_rng *rng;
        MT_OK(mmrec_rng_create(99, &rng));
        uint64_t m = (uint64_t)floor(ratios[r] * I + 0.5), chosen = 0;
        for (int64_t i = 0; i < I; i++) {
            bool pick = false;
            if (chosen < m) {
                uint64_t v;
                MT_OK(mmrec_rng_below(rng, (uint64_t)(I - i), &v));
                pick = v < m - chosen;
                chosen += pick;
            }
            for (int c = 0; c < D; c++) {
                float want = pick && c >= 2 && c < 5 ? 0.0f : orig[i * D + c];
                ck_assert_msg(f[i * D + c] == want, "ratio %g item %lld col %d", ratios[r],
                              (long long)i, c);
            }
        }
        ck_assert_uint_eq(chosen, m);
        mmrec_rng_destroy(rng);
    }
    /* deterministic from the seed; another seed, another choice */
    memcpy(f, orig, sizeof f);
    memcpy(again, orig, sizeof f);
    MT_OK(mmrec_eval_mask_modality(f, I, D, 0, 3, 0.5, 7));
    MT_OK(mmrec_eval_mask_modality(again, I, D, 0, 3, 0.5, 7));
    ck_assert(memcmp(f, again, sizeof f) == 0);
    memcpy(again, orig, sizeof f);
    MT_OK(mmrec_eval_mask_modality(again, I, D, 0, 3, 0.5, 8));
    ck_assert(memcmp(f, again, sizeof f) != 0);
}
END_TEST

/* Masking the image half of [image | text] features changes what the
 * evaluations see, and masking nothing changes nothing. */
START_TEST(test_mask_modality_then_evaluate) {
    enum { I = 60, D = 8 };
    static float f[I * D], masked[I * D];
    mt_fill_uniform(f, I * D, -1, 1, 12);
    mmrec_interactions *x = mt_sequences(30, I, 5);
    int ks[1] = {10};
    mmrec_rank_metrics a[1], b[1];
    memset(a, 0, sizeof a); /* the bytes are compared: padding included */
    memset(b, 0, sizeof b);
    a[0].struct_size = b[0].struct_size = sizeof a[0];
    memcpy(masked, f, sizeof f);
    MT_OK(mmrec_eval_mask_modality(masked, I, D, 0, 4, 0.0, 1));
    MT_OK(mmrec_eval_zero_shot(f, I, D, x, ks, 1, a));
    MT_OK(mmrec_eval_zero_shot(masked, I, D, x, ks, 1, b));
    ck_assert(memcmp(a, b, sizeof a) == 0);
    MT_OK(mmrec_eval_mask_modality(masked, I, D, 0, 4, 1.0, 1));
    for (int i = 0; i < I; i++)
        ck_assert(masked[i * D] == 0.0f && masked[i * D + 4] == f[i * D + 4]);
    MT_OK(mmrec_eval_zero_shot(masked, I, D, x, ks, 1, b));
    ck_assert(a[0].ndcg != b[0].ndcg);
    mmrec_interactions_destroy(x);
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_content_eval_bad_input) {
    enum { I = 20, F = 3 };
    static float f[I * F];
    mt_fill_uniform(f, I * F, -1, 1, 2);
    mmrec_interactions *x = mt_random_pairs(6, I, 4, 3);
    int ks[2] = {5, 10};
    mmrec_rank_metrics out[2];
    out[0].struct_size = sizeof out[0];
    out[1].k = -7; /* outputs are never written on failure */
    typedef mmrec_status (*eval_fn)(const float *, int64_t, int64_t, const mmrec_interactions *,
                                    const int *, int, mmrec_rank_metrics *);
    eval_fn fns[2] = {mmrec_eval_zero_shot, mmrec_eval_item_cf};
    const char *arg[2] = {"sequences", "interactions"};
    for (int t = 0; t < 2; t++) {
        eval_fn fn = fns[t];
        MT_EXPECT(fn(NULL, I, F, x, ks, 2, out), MMREC_EINVAL, "features");
        MT_EXPECT(fn(f, I, F, NULL, ks, 2, out), MMREC_EINVAL, arg[t]);
        MT_EXPECT(fn(f, I, F, x, NULL, 2, out), MMREC_EINVAL, "ks");
        MT_EXPECT(fn(f, I, F, x, ks, 2, NULL), MMREC_EINVAL, "out");
        MT_EXPECT(fn(f, 0, F, x, ks, 2, out), MMREC_EINVAL, "num_items");
        MT_EXPECT(fn(f, I, 0, x, ks, 2, out), MMREC_EINVAL, "feat_dim");
        MT_EXPECT(fn(f, I, F, x, ks, 0, out), MMREC_EINVAL, "num_ks");
        MT_EXPECT(fn(f, I, F, x, ks, 65, out), MMREC_EINVAL, "num_ks");
        int bad_k[2] = {5, I + 1};
        MT_EXPECT(fn(f, I, F, x, bad_k, 2, out), MMREC_EINVAL, "ks[1]");
        bad_k[1] = 0;
        MT_EXPECT(fn(f, I, F, x, bad_k, 2, out), MMREC_EINVAL, "ks[1]");
        out[0].struct_size = 8;
        MT_EXPECT(fn(f, I, F, x, ks, 2, out), MMREC_EINVAL, "struct_size");
        out[0].struct_size = sizeof out[0];
        char needle[48];
        snprintf(needle, sizeof needle, "%s items[", arg[t]);
        MT_EXPECT(fn(f, 10, F, x, ks, 2, out), MMREC_ERANGE, needle);
        MT_EXPECT(fn(f, I, F, (const mmrec_interactions *)f, ks, 2, out), MMREC_EINVAL,
                  "not an interactions object");
        f[5] = NAN;
        MT_EXPECT(fn(f, I, F, x, ks, 2, out), MMREC_ENUMERIC, "features[5] is nan");
        f[5] = 0.5f;
        ck_assert_int_eq(out[1].k, -7);
    }
    /* by name, as callers write them */
    int big_k[2] = {5, I + 1};
    MT_EXPECT(mmrec_eval_zero_shot(f, I, F, x, big_k, 2, out), MMREC_EINVAL, "ks[1] is 21");
    MT_EXPECT(mmrec_eval_zero_shot(f, 10, F, x, ks, 2, out), MMREC_ERANGE, "sequences items[");
    MT_EXPECT(mmrec_eval_item_cf(f, I, -1, x, ks, 2, out), MMREC_EINVAL, "feat_dim -1");
    MT_EXPECT(mmrec_eval_item_cf(f, 10, F, x, ks, 2, out), MMREC_ERANGE, "interactions items[");
    ck_assert_int_eq(out[1].k, -7);
    MT_EXPECT(mmrec_eval_mask_modality(NULL, I, F, 0, 1, 0.5, 1), MMREC_EINVAL, "features");
    MT_EXPECT(mmrec_eval_mask_modality(f, 0, F, 0, 1, 0.5, 1), MMREC_EINVAL, "num_items");
    MT_EXPECT(mmrec_eval_mask_modality(f, I, 0, 0, 1, 0.5, 1), MMREC_EINVAL, "dim");
    MT_EXPECT(mmrec_eval_mask_modality(f, I, F, 2, 2, 0.5, 1), MMREC_EINVAL, "col_begin");
    MT_EXPECT(mmrec_eval_mask_modality(f, I, F, -1, 2, 0.5, 1), MMREC_EINVAL, "col_begin");
    MT_EXPECT(mmrec_eval_mask_modality(f, I, F, 0, F + 1, 0.5, 1), MMREC_EINVAL, "col_end");
    MT_EXPECT(mmrec_eval_mask_modality(f, I, F, 0, 1, 1.5, 1), MMREC_EINVAL, "ratio");
    MT_EXPECT(mmrec_eval_mask_modality(f, I, F, 0, 1, -0.1, 1), MMREC_EINVAL, "ratio");
    MT_EXPECT(mmrec_eval_mask_modality(f, I, F, 0, 1, NAN, 1), MMREC_EINVAL, "ratio");
    mmrec_interactions_destroy(x);
}
END_TEST

typedef struct mt_content_oom {
    const float *f;
    const mmrec_interactions *x;
} mt_content_oom;

static mmrec_status mt_content_scenario(void *ctx) {
    const mt_content_oom *c = ctx;
    int ks[2] = {1, 10};
    mmrec_rank_metrics out[2];
    out[0].struct_size = sizeof out[0];
    mmrec_status s = mmrec_eval_zero_shot(c->f, 40, 3, c->x, ks, 2, out);
    if (s == MMREC_OK) s = mmrec_eval_item_cf(c->f, 40, 3, c->x, ks, 2, out);
    return s;
}

START_TEST(test_content_eval_oom_reports_enomem_without_leaks) {
    static float f[40 * 3];
    mt_fill_uniform(f, 40 * 3, -1, 1, 9);
    mmrec_interactions *x = mt_random_pairs(12, 40, 5, 10);
    mt_content_oom c = {f, x};
    ck_assert_int_gt(mt_oom_loop("content eval", mt_content_scenario, &c), 8);
    mmrec_interactions_destroy(x);
}
END_TEST

static Suite *content_eval_suite(void) {
    Suite *s = suite_create("content_eval");
    TCase *zs = tcase_create("zero_shot");
    tcase_add_test(zs, test_zero_shot_matches_brute_force);
    tcase_add_test(zs, test_zero_shot_small_cases);
    tcase_set_timeout(zs, 60);
    suite_add_tcase(s, zs);
    TCase *cf = tcase_create("item_cf");
    tcase_add_test(cf, test_item_cf_matches_brute_force);
    tcase_add_test(cf, test_item_cf_target_is_most_co_occurring);
    suite_add_tcase(s, cf);
    TCase *mask = tcase_create("mask_modality");
    tcase_add_test(mask, test_mask_modality_zeroes_the_chosen_slice);
    tcase_add_test(mask, test_mask_modality_then_evaluate);
    suite_add_tcase(s, mask);
    TCase *golden = tcase_create("golden");
    tcase_add_test(golden, test_content_eval_golden_pytorch);
    suite_add_tcase(s, golden);
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_content_eval_bad_input);
    tcase_add_test(api, test_content_eval_oom_reports_enomem_without_leaks);
    suite_add_tcase(s, api);
    return s;
}
