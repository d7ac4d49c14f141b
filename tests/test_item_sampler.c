/* The corpus sampler (data.h): empirical frequencies of many draws against
 * the weights (alias method) and against the uniform law, zero weights
 * never drawn, seeds, per-draw probabilities, bad input, no allocation
 * while drawing, allocation failures. */
#include "mt.h"

#include <math.h>
#include <string.h>

MT_SUITE(item_sampler_suite)

/* Asserts the counts of `draws` draws over n ids match probabilities p
 * within 5 standard deviations each (binomial), and that the chi-square
 * statistic is below n + 6 sqrt(2 n) (about 4 sigma for n - 1 degrees of
 * freedom). */
static void mt_assert_frequencies(const int64_t *counts, const double *p, size_t n,
                                  size_t draws) {
    double chi2 = 0;
    size_t dof = 0;
    for (size_t j = 0; j < n; j++) {
        double want = p[j] * (double)draws;
        if (p[j] == 0) {
            ck_assert_msg(counts[j] == 0, "id %zu of weight 0 drawn %lld times", j,
                          (long long)counts[j]);
            continue;
        }
        double sd = sqrt(want * (1 - p[j]));
        ck_assert_msg(fabs((double)counts[j] - want) <= 5 * sd + 1,
                      "id %zu drawn %lld times, expected %.1f +- %.1f", j, (long long)counts[j],
                      want, sd);
        chi2 += ((double)counts[j] - want) * ((double)counts[j] - want) / want;
        dof++;
    }
    ck_assert_msg(chi2 < (double)dof + 6 * sqrt(2.0 * (double)dof), "chi-square %.1f over %zu ids",
                  chi2, dof);
}

START_TEST(test_sampler_weighted_frequencies) {
    enum { N = 50, DRAWS = 1000000 };
    float w[N];
    double p[N], total = 0;
    for (int j = 0; j < N; j++) {
        w[j] = j % 7 == 3 ? 0.0f : powf((float)(j + 1), -0.75f) * (j % 5 == 0 ? 30.0f : 1.0f);
        total += w[j];
    }
    for (int j = 0; j < N; j++) p[j] = w[j] / total;
    mmrec_item_sampler_config cfg;
    MT_OK(mmrec_item_sampler_config_init(&cfg));
    cfg.num_items = N;
    cfg.weights = w;
    cfg.seed = 42;
    mmrec_item_sampler *s;
    MT_OK(mmrec_item_sampler_create(&cfg, &s));
    w[0] = 1e6f; /* copied at creation: later changes do not matter */
    static int64_t ids[DRAWS];
    MT_OK(mmrec_item_sampler_draw(s, ids, DRAWS));
    int64_t counts[N] = {0};
    for (int i = 0; i < DRAWS; i++) {
        ck_assert(ids[i] >= 0 && ids[i] < N);
        counts[ids[i]]++;
    }
    mt_assert_frequencies(counts, p, N, DRAWS);
    int64_t all[N];
    float got[N];
    for (int j = 0; j < N; j++) all[j] = j;
    MT_OK(mmrec_item_sampler_probability(s, all, N, got));
    for (int j = 0; j < N; j++)
        ck_assert_msg(fabs(got[j] - p[j]) <= 1e-7 * (1 + p[j]) + 1e-9, "p[%d] = %g, want %g", j,
                      (double)got[j], p[j]);
    mmrec_item_sampler_destroy(s);
}
END_TEST

START_TEST(test_sampler_uniform_and_seeds) {
    enum { N = 37, DRAWS = 400000 };
    mmrec_item_sampler_config cfg;
    MT_OK(mmrec_item_sampler_config_init(&cfg));
    cfg.num_items = N;
    cfg.seed = 7;
    mmrec_item_sampler *a, *b, *c;
    MT_OK(mmrec_item_sampler_create(&cfg, &a));
    MT_OK(mmrec_item_sampler_create(&cfg, &b));
    cfg.seed = 8;
    MT_OK(mmrec_item_sampler_create(&cfg, &c));
    static int64_t x[DRAWS], y[DRAWS], z[DRAWS];
    MT_OK(mmrec_item_sampler_draw(a, x, DRAWS));
    /* the same seed gives the same ids, however the draws are split */
    MT_OK(mmrec_item_sampler_draw(b, y, 1000));
    MT_OK(mmrec_item_sampler_draw(b, y + 1000, DRAWS - 1000));
    ck_assert(memcmp(x, y, sizeof x) == 0);
    MT_OK(mmrec_item_sampler_draw(c, z, DRAWS));
    ck_assert(memcmp(x, z, sizeof x) != 0);
    int64_t counts[N] = {0};
    double p[N];
    for (int i = 0; i < DRAWS; i++) counts[x[i]]++;
    for (int j = 0; j < N; j++) p[j] = 1.0 / N;
    mt_assert_frequencies(counts, p, N, DRAWS);
    float q;
    int64_t id = 36;
    MT_OK(mmrec_item_sampler_probability(a, &id, 1, &q));
    ck_assert_float_eq(q, (float)(1.0 / N));
    mmrec_item_sampler_destroy(a);
    mmrec_item_sampler_destroy(b);
    mmrec_item_sampler_destroy(c);
    mmrec_item_sampler_destroy(NULL);
}
END_TEST

/* A single heavy id among many light ones, and a single item: the alias
 * table's edge cases. */
START_TEST(test_sampler_edge_weights) {
    enum { N = 1000, DRAWS = 200000 };
    static float w[N];
    static double p[N];
    for (int j = 0; j < N; j++) w[j] = j == 500 ? 1000.0f : 1e-3f;
    double total = 1000.0 + 999 * (double)1e-3f;
    for (int j = 0; j < N; j++) p[j] = w[j] / total;
    mmrec_item_sampler_config cfg;
    MT_OK(mmrec_item_sampler_config_init(&cfg));
    cfg.num_items = N;
    cfg.weights = w;
    mmrec_item_sampler *s;
    MT_OK(mmrec_item_sampler_create(&cfg, &s));
    static int64_t ids[DRAWS], counts[N];
    MT_OK(mmrec_item_sampler_draw(s, ids, DRAWS));
    for (int i = 0; i < DRAWS; i++) counts[ids[i]]++;
    ck_assert_msg(fabs((double)counts[500] - p[500] * DRAWS) < 5 * sqrt(p[500] * DRAWS),
                  "heavy id drawn %lld times", (long long)counts[500]);
    mmrec_item_sampler_destroy(s);
    cfg.num_items = 1;
    w[0] = 2.0f;
    MT_OK(mmrec_item_sampler_create(&cfg, &s));
    MT_OK(mmrec_item_sampler_draw(s, ids, 100));
    for (int i = 0; i < 100; i++) ck_assert_int_eq(ids[i], 0);
    mmrec_item_sampler_destroy(s);
}
END_TEST

START_TEST(test_sampler_bad_input) {
    mmrec_item_sampler_config cfg;
    mmrec_item_sampler *s = NULL;
    MT_EXPECT(mmrec_item_sampler_config_init_sized(NULL, sizeof cfg), MMREC_EINVAL, "cfg");
    MT_EXPECT(mmrec_item_sampler_config_init_sized(&cfg, 4), MMREC_EINVAL, "size");
    MT_OK(mmrec_item_sampler_config_init(&cfg));
    MT_EXPECT(mmrec_item_sampler_create(NULL, &s), MMREC_EINVAL, "cfg");
    MT_EXPECT(mmrec_item_sampler_create(&cfg, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_item_sampler_create(&cfg, &s), MMREC_EINVAL, "cfg->num_items");
    cfg.num_items = ((int64_t)1 << 31) + 1;
    MT_EXPECT(mmrec_item_sampler_create(&cfg, &s), MMREC_EINVAL, "cfg->num_items");
    float w[3] = {1, -1, 2};
    cfg.num_items = 3;
    cfg.weights = w;
    MT_EXPECT(mmrec_item_sampler_create(&cfg, &s), MMREC_EINVAL, "cfg->weights[1]");
    w[1] = NAN;
    MT_EXPECT(mmrec_item_sampler_create(&cfg, &s), MMREC_EINVAL, "cfg->weights[1]");
    w[0] = w[1] = w[2] = 0;
    MT_EXPECT(mmrec_item_sampler_create(&cfg, &s), MMREC_EINVAL, "every weight is 0");
    cfg.struct_size = 3;
    MT_EXPECT(mmrec_item_sampler_create(&cfg, &s), MMREC_EINVAL, "struct_size");
    ck_assert_ptr_null(s);

    MT_OK(mmrec_item_sampler_config_init(&cfg));
    cfg.num_items = 3;
    MT_OK(mmrec_item_sampler_create(&cfg, &s));
    int64_t ids[4] = {0, 1, 3, 2};
    float p[4] = {-1, -1, -1, -1};
    MT_EXPECT(mmrec_item_sampler_draw(NULL, ids, 4), MMREC_EINVAL, "sampler");
    MT_EXPECT(mmrec_item_sampler_draw(s, NULL, 4), MMREC_EINVAL, "ids");
    MT_EXPECT(mmrec_item_sampler_draw(s, ids, 0), MMREC_EINVAL, "n is 0");
    MT_EXPECT(mmrec_item_sampler_probability(NULL, ids, 4, p), MMREC_EINVAL, "sampler");
    MT_EXPECT(mmrec_item_sampler_probability(s, NULL, 4, p), MMREC_EINVAL, "ids");
    MT_EXPECT(mmrec_item_sampler_probability(s, ids, 4, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_item_sampler_probability(s, ids, 0, p), MMREC_EINVAL, "n is 0");
    MT_EXPECT(mmrec_item_sampler_probability(s, ids, 4, p), MMREC_ERANGE, "ids[2]");
    ck_assert_float_eq(p[0], -1); /* untouched */
    ids[2] = -1;
    MT_EXPECT(mmrec_item_sampler_probability(s, ids, 4, p), MMREC_ERANGE, "ids[2]");
    /* something that is not a sampler */
    char junk[64] = {0};
    MT_EXPECT(mmrec_item_sampler_draw((mmrec_item_sampler *)junk, ids, 4), MMREC_EINVAL,
              "mmrec_item_sampler");
    mmrec_item_sampler_destroy(s);
}
END_TEST

/* ---- allocation ---- */

static mmrec_status mt_create_scenario(void *ctx) {
    (void)ctx;
    float w[5] = {1, 2, 3, 0, 4};
    mmrec_item_sampler_config cfg;
    mmrec_item_sampler_config_init(&cfg);
    cfg.num_items = 5;
    cfg.weights = w;
    mmrec_item_sampler *s;
    mmrec_status st = mmrec_item_sampler_create(&cfg, &s);
    if (st != MMREC_OK) return st;
    int64_t ids[8];
    st = mmrec_item_sampler_draw(s, ids, 8);
    mmrec_item_sampler_destroy(s);
    return st;
}

START_TEST(test_sampler_allocation) {
    ck_assert_int_gt(mt_oom_loop("item sampler", mt_create_scenario, NULL), 0);
    float w[5] = {1, 2, 3, 0, 4};
    mmrec_item_sampler_config cfg;
    MT_OK(mmrec_item_sampler_config_init(&cfg));
    cfg.num_items = 5;
    cfg.weights = w;
    mmrec_item_sampler *s;
    MT_OK(mmrec_item_sampler_create(&cfg, &s));
    int64_t ids[256];
    float p[256];
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mt_allocs = 0;
    for (int i = 0; i < 4; i++) {
        MT_OK(mmrec_item_sampler_draw(s, ids, 256));
        MT_OK(mmrec_item_sampler_probability(s, ids, 256, p));
    }
    ck_assert_uint_eq(mt_allocs, 0);
    MT_OK(mmrec_set_allocator(NULL));
    mmrec_item_sampler_destroy(s);
}
END_TEST

static Suite *item_sampler_suite(void) {
    Suite *s = suite_create("item_sampler");
    TCase *t = tcase_create("sampler");
    tcase_set_timeout(t, 30);
    tcase_add_test(t, test_sampler_weighted_frequencies);
    tcase_add_test(t, test_sampler_uniform_and_seeds);
    tcase_add_test(t, test_sampler_edge_weights);
    tcase_add_test(t, test_sampler_bad_input);
    tcase_add_test(t, test_sampler_allocation);
    suite_add_tcase(s, t);
    return s;
}
