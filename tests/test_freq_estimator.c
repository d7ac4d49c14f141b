/* The streaming frequency estimator (twotower.h): the update maths by
 * hand, duplicates, a PyTorch reference, a direct simulation of the algorithm and of the true
 * batch frequencies over a Zipf stream that switches distribution, state
 * through save / load and optimizers, bad input, allocation failures. */
#include "mt.h"
#include "twotower/twotower_internal.h" /* MMREC__MIN_SIZE */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MT_SUITE(freq_estimator_suite)

/* The header's hash: h_i(y) = mix(mix(seed + i) ^ y) mod H. */
static uint64_t mt_mix(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static size_t mt_bucket(uint64_t seed, int i, int64_t buckets, int64_t id) {
    return (size_t)(mt_mix(mt_mix(seed + (uint64_t)i) ^ (uint64_t)id) % (uint64_t)buckets);
}

static mmrec_module *mt_freq(mmrec_model *model, const char *name, int64_t buckets, int hashes,
                             float alpha, float initial_gap, uint64_t seed) {
    mmrec_freq_estimator_config c;
    MT_OK(mmrec_freq_estimator_config_init(&c));
    c.num_buckets = buckets;
    c.num_hashes = hashes;
    c.alpha = alpha;
    c.initial_gap = initial_gap;
    c.seed = seed;
    mmrec_module *m;
    MT_OK(mmrec_freq_estimator_create(model, name, &c, &m));
    return m;
}

static const float *mt_param(mmrec_model *model, const char *name) {
    mmrec_tensor *t;
    MT_OK(mmrec_model_param(model, name, &t));
    const float *d;
    MT_OK(mmrec_tensor_data_const(t, &d));
    return d;
}

static float mt_p(mmrec_module *est, int64_t id) {
    float p;
    MT_OK(mmrec_freq_estimator_probability(est, &id, 1, &p));
    return p;
}

START_TEST(test_freq_defaults_and_state_parameters) {
    mmrec_freq_estimator_config c;
    MT_OK(mmrec_freq_estimator_config_init(&c));
    ck_assert(c.num_buckets == 0 && c.num_hashes == 1 && c.alpha == 0.01f &&
              c.initial_gap == 100.0f && c.seed == 0);
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *est = mt_freq(model, "freq", 50, 3, 0.01f, 100.0f, 0);
    static const char *const names[4] = {"freq.last_step_high", "freq.last_step_low",
                                         "freq.gap", "freq.step"};
    static const float fill[4] = {0, 0, 100, 0};
    for (size_t p = 0; p < 4; p++) {
        const char *name;
        mmrec_tensor *t;
        MT_OK(mmrec_model_param_at(model, p, &name, &t));
        ck_assert_str_eq(name, names[p]);
        int nd;
        int64_t shape[MMREC_MAX_DIMS];
        MT_OK(mmrec_tensor_shape(t, &nd, shape));
        ck_assert_int_eq(nd, p < 3 ? 2 : 1);
        ck_assert_int_eq(shape[0], p < 3 ? 3 : 2);
        if (p < 3) ck_assert_int_eq(shape[1], 50);
        size_t n;
        const float *d;
        MT_OK(mmrec_tensor_numel(t, &n));
        MT_OK(mmrec_tensor_data_const(t, &d));
        for (size_t i = 0; i < n; i++) ck_assert(d[i] == fill[p]);
    }
    size_t trainable, total;
    MT_OK(mmrec_model_param_count(model, &trainable, &total));
    ck_assert_uint_eq(trainable, 0);
    ck_assert_uint_eq(total, 3 * 3 * 50 + 2);
    ck_assert_uint_eq(MMREC__MIN_SIZE(mmrec_freq_estimator_config), 48);
    /* never seen: p = 1 / initial_gap */
    ck_assert(mt_p(est, 12345) == 0.01f);
    /* state is never trainable: unfreezing only state refuses, a wider
     * prefix unfreezes the rest and leaves the state frozen; freeze is
     * harmless */
    MT_EXPECT(mmrec_model_unfreeze(model, "freq", NULL), MMREC_ESTATE, "freq.last_step_high");
    MT_EXPECT(mmrec_model_unfreeze(model, "", NULL), MMREC_ESTATE, "never trainable");
    int64_t wshape[1] = {3};
    mmrec_tensor *w;
    MT_OK(mmrec_model_add_param(model, "w", 1, wshape, &w));
    MT_OK(mmrec_model_freeze(model, "w", NULL));
    size_t count;
    MT_OK(mmrec_model_unfreeze(model, "", &count));
    ck_assert_uint_eq(count, 1);
    MT_OK(mmrec_model_param_count(model, &trainable, NULL));
    ck_assert_uint_eq(trainable, 3);
    MT_OK(mmrec_model_freeze(model, "w", NULL));
    MT_OK(mmrec_model_freeze(model, "freq", &count));
    ck_assert_uint_eq(count, 4);
    MT_OK(mmrec_model_param_count(model, &trainable, NULL));
    ck_assert_uint_eq(trainable, 0);
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_freq_update_maths_by_hand) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    const int64_t H = 1 << 20;
    mmrec_module *est = mt_freq(model, "f", H, 1, 0.5f, 100.0f, 7);
    size_t b7 = mt_bucket(7, 0, H, 7), b9 = mt_bucket(7, 0, H, 9), b11 = mt_bucket(7, 0, H, 11);
    ck_assert(b7 != b9 && b7 != b11 && b9 != b11);
    const float *gap = mt_param(model, "f.gap"), *hi = mt_param(model, "f.last_step_high"),
                *lo = mt_param(model, "f.last_step_low"), *step = mt_param(model, "f.step");
    int64_t a[3] = {7, 7, 9};
    MT_OK(mmrec_freq_estimator_update(est, a, 1, 1));
    ck_assert(gap[b7] == 50.5f); /* 0.5 * 100 + 0.5 * (1 - 0) */
    ck_assert(hi[b7] == 0.0f && lo[b7] == 1.0f);
    ck_assert(mt_p(est, 7) == (float)(1.0 / 50.5));
    MT_OK(mmrec_freq_estimator_update(est, a, 3, 3));
    ck_assert(gap[b7] == 26.25f); /* 0.5 * 50.5 + 0.5 * (3 - 1), once */
    ck_assert(gap[b9] == 51.5f);  /* 0.5 * 100 + 0.5 * (3 - 0) */
    ck_assert(lo[b7] == 3.0f && lo[b9] == 3.0f && step[0] == 0.0f && step[1] == 3.0f);
    ck_assert(gap[b11] == 100.0f && mt_p(est, 11) == 0.01f);
    float p[3];
    MT_OK(mmrec_freq_estimator_probability(est, a, 3, p));
    ck_assert(p[0] == (float)(1.0 / 26.25) && p[1] == p[0] && p[2] == (float)(1.0 / 51.5));
    /* steps beyond 2^24 stay exact: high and low 24 bits */
    const int64_t big = ((int64_t)1 << 40) + 5;
    MT_OK(mmrec_freq_estimator_update(est, a, 1, big));
    ck_assert(hi[b7] == (float)(1 << 16) && lo[b7] == 5.0f);
    double g = 0.5 * 26.25 + 0.5 * (double)(big - 3);
    ck_assert(gap[b7] == (float)g);
    MT_OK(mmrec_freq_estimator_update(est, a, 1, big + 2));
    ck_assert(gap[b7] == (float)(0.5 * (double)(float)g + 0.5 * 2.0));
    ck_assert(step[0] == (float)(1 << 16) && step[1] == 7.0f);
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_freq_duplicates_count_once_per_step) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *once = mt_freq(model, "once", 64, 2, 0.1f, 10.0f, 3);
    mmrec_module *dup = mt_freq(model, "dup", 64, 2, 0.1f, 10.0f, 3);
    int64_t plain[3] = {1, 2, 40}, repeated[7] = {1, 1, 2, 40, 2, 1, 40};
    for (int64_t t = 1; t <= 20; t += 1 + t % 3) {
        MT_OK(mmrec_freq_estimator_update(once, plain, 3, t));
        MT_OK(mmrec_freq_estimator_update(dup, repeated, 7, t));
    }
    static const char *const leaves[4] = {"last_step_high", "last_step_low", "gap", "step"};
    for (int k = 0; k < 4; k++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "once.%s", leaves[k]);
        snprintf(b, sizeof b, "dup.%s", leaves[k]);
        size_t n = k < 3 ? 2 * 64 : 2;
        ck_assert(memcmp(mt_param(model, a), mt_param(model, b), n * sizeof(float)) == 0);
    }
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_freq_static_counts_and_switching_back) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_freq_estimator_config c;
    MT_OK(mmrec_freq_estimator_config_init(&c));
    c.num_buckets = 128;
    c.num_hashes = 2;
    c.num_items = 4;
    mmrec_module *est, *plain;
    MT_OK(mmrec_freq_estimator_create(model, "s", &c, &est));
    c.num_items = 0;
    MT_OK(mmrec_freq_estimator_create(model, "plain", &c, &plain));
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 5 + 4);
    int64_t ids[5] = {0, 1, 2, 3, 2};
    MT_OK(mmrec_freq_estimator_update(est, ids, 5, 1));
    MT_OK(mmrec_freq_estimator_update(plain, ids, 5, 1));
    const float counts[4] = {1, 2, 3, 1e-30f};
    MT_OK(mmrec_freq_estimator_set_counts(est, counts, 4));
    float p[5];
    MT_OK(mmrec_freq_estimator_probability(est, ids, 5, p));
    double sum = 1.0 + 2.0 + 3.0 + (double)1e-30f;
    ck_assert(p[0] == (float)(1.0 / sum) && p[1] == (float)(2.0 / sum) &&
              p[2] == (float)(3.0 / sum) && p[4] == p[2]);
    ck_assert(p[3] == (float)((double)1e-30f / sum) && p[3] > 0.0f);
    int64_t beyond = 4;
    MT_EXPECT(mmrec_freq_estimator_probability(est, &beyond, 1, p), MMREC_ERANGE, "num_items");
    /* updates keep streaming underneath; switching back reads them */
    MT_OK(mmrec_freq_estimator_update(est, ids, 3, 4));
    MT_OK(mmrec_freq_estimator_update(plain, ids, 3, 4));
    MT_OK(mmrec_freq_estimator_probability(est, ids, 5, p));
    ck_assert(p[0] == (float)(1.0 / sum));
    MT_OK(mmrec_freq_estimator_set_counts(est, NULL, 0));
    float q[5];
    MT_OK(mmrec_freq_estimator_probability(est, ids, 5, p));
    MT_OK(mmrec_freq_estimator_probability(plain, ids, 5, q));
    ck_assert(memcmp(p, q, sizeof p) == 0);
    MT_OK(mmrec_freq_estimator_probability(est, &beyond, 1, p)); /* streaming: any id */
    mmrec_model_destroy(model);
}
END_TEST

/* tests/golden/make_golden.py::write_freq_estimator: the same algorithm
 * as plain torch ops (distinct buckets by torch.unique), bit for bit. */
START_TEST(test_freq_matches_pytorch) {
    mt_golden g;
    mt_golden_load(&g, "freq_estimator.bin");
    static const char *const cases[2] = {"small", "far"};
    for (int c = 0; c < 2; c++) {
        char key[64];
#define MT_GET(leaf) (snprintf(key, sizeof key, "%s.%s", cases[c], leaf), mt_golden_get(&g, key))
        const mt_array *cfg = MT_GET("cfg"), *ids = MT_GET("ids"), *hi = MT_GET("step_hi"),
                       *lo = MT_GET("step_lo"), *query = MT_GET("query"), *p = MT_GET("p"),
                       *gap = MT_GET("gap"), *a_hi = MT_GET("a_hi"), *a_lo = MT_GET("a_lo");
#undef MT_GET
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        mmrec_module *est = mt_freq(model, "f", (int64_t)cfg->data[0], (int)cfg->data[1],
                                    cfg->data[2], cfg->data[3], (uint64_t)cfg->data[4]);
        size_t steps = (size_t)ids->shape[0], batch = (size_t)ids->shape[1];
        int64_t *row = malloc(batch * sizeof *row);
        for (size_t k = 0; k < steps; k++) {
            for (size_t j = 0; j < batch; j++) row[j] = (int64_t)ids->data[k * batch + j];
            int64_t t = (int64_t)hi->data[k] * ((int64_t)1 << 24) + (int64_t)lo->data[k];
            MT_OK(mmrec_freq_estimator_update(est, row, batch, t));
        }
        free(row);
        int64_t *qid = malloc(query->numel * sizeof *qid);
        float *got = malloc(query->numel * sizeof *got);
        for (size_t j = 0; j < query->numel; j++) qid[j] = (int64_t)query->data[j];
        MT_OK(mmrec_freq_estimator_probability(est, qid, query->numel, got));
        mt_assert_close("p", got, p->data, p->numel, 1e-7f, 1e-12f);
        ck_assert(memcmp(got, p->data, p->numel * sizeof(float)) == 0);
        ck_assert(memcmp(mt_param(model, "f.gap"), gap->data, gap->numel * sizeof(float)) == 0);
        ck_assert(memcmp(mt_param(model, "f.last_step_high"), a_hi->data,
                         a_hi->numel * sizeof(float)) == 0);
        ck_assert(memcmp(mt_param(model, "f.last_step_low"), a_lo->data,
                         a_lo->numel * sizeof(float)) == 0);
        free(qid);
        free(got);
        mmrec_model_destroy(model);
    }
    mt_golden_free(&g);
}
END_TEST

/* ---- a Zipf stream that switches distribution halfway ---- */

enum { MT_M = 1000, MT_BATCH = 128, MT_SWITCH = 10000, MT_STEPS = 20000, MT_H = 5000 };

typedef struct mt_zipf {
    double cdf[MT_M];
    double q[MT_M]; /* probability of each item per draw */
} mt_zipf;

/* q(y) proportional to 1 / (rank(y) + 1), rank = y, or MT_M - 1 - y when
 * `reversed`. */
static void mt_zipf_init(mt_zipf *z, bool reversed) {
    double sum = 0;
    for (int y = 0; y < MT_M; y++) {
        int rank = reversed ? MT_M - 1 - y : y;
        z->q[y] = 1.0 / (rank + 1);
        sum += z->q[y];
    }
    double c = 0;
    for (int y = 0; y < MT_M; y++) {
        z->q[y] /= sum;
        c += z->q[y];
        z->cdf[y] = c;
    }
    z->cdf[MT_M - 1] = 1.0;
}

static int64_t mt_zipf_draw(const mt_zipf *z, uint64_t *state) {
    *state += 1;
    double u = (double)(mt_mix(*state) >> 11) * 0x1.0p-53;
    int lo = 0, hi = MT_M - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (z->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* The algorithm as the header states it, in plain arrays. */
typedef struct mt_sim {
    int m;
    uint64_t seed;
    double alpha;
    int64_t *a;
    float *b;
} mt_sim;

static void mt_sim_update(mt_sim *s, const int64_t *ids, size_t n, int64_t t) {
    for (size_t k = 0; k < n; k++)
        for (int i = 0; i < s->m; i++) {
            size_t j = (size_t)i * MT_H + mt_bucket(s->seed, i, MT_H, ids[k]);
            if (s->a[j] == t) continue;
            s->b[j] = (float)((1.0 - s->alpha) * (double)s->b[j] + s->alpha * (double)(t - s->a[j]));
            s->a[j] = t;
        }
}

static float mt_sim_p(const mt_sim *s, int64_t id) {
    float g = 0;
    for (int i = 0; i < s->m; i++) {
        float gi = s->b[(size_t)i * MT_H + mt_bucket(s->seed, i, MT_H, id)];
        if (gi > g) g = gi;
    }
    return (float)(1.0 / (double)g);
}

/* Mean and worst relative error of the estimate over the `top` most
 * frequent items of z, against the probability that the item's bucket
 * sees an id in a batch, 1 - (1 - Q)^batch with Q the total q of the
 * items sharing the bucket, for the hash whose bucket has the least (the
 * one whose gap is the largest: what the estimator reads). Without
 * collisions Q = q(y): the probability that y appears in a batch. With
 * `item_only`, Q = q(y) always (the error collisions add). */
static void mt_track_error(mmrec_module *est, const mt_zipf *z, int m, uint64_t seed, int top,
                           bool item_only, double *mean, double *worst) {
    static double mass[4][MT_H];
    memset(mass, 0, sizeof mass);
    for (int i = 0; i < m; i++)
        for (int y = 0; y < MT_M; y++) mass[i][mt_bucket(seed, i, MT_H, y)] += z->q[y];
    int64_t ids[MT_M];
    float p[MT_M];
    for (int y = 0; y < MT_M; y++) ids[y] = y;
    MT_OK(mmrec_freq_estimator_probability(est, ids, MT_M, p));
    /* the top items of z: selection by q, descending */
    int order[MT_M];
    for (int y = 0; y < MT_M; y++) order[y] = y;
    for (int i = 0; i < top; i++)
        for (int j = i + 1; j < MT_M; j++)
            if (z->q[order[j]] > z->q[order[i]]) {
                int tmp = order[i];
                order[i] = order[j];
                order[j] = tmp;
            }
    double sum = 0, w = 0;
    for (int i = 0; i < top; i++) {
        int y = order[i];
        double q = z->q[y];
        if (!item_only)
            for (int h = 0; h < m; h++) {
                double qh = mass[h][mt_bucket(seed, h, MT_H, y)];
                if (h == 0 || qh < q) q = qh;
            }
        double truth = 1.0 - pow(1.0 - q, MT_BATCH);
        double e = fabs((double)p[y] - truth) / truth;
        sum += e;
        if (e > w) w = e;
    }
    *mean = sum / top;
    *worst = w;
}

START_TEST(test_freq_tracks_a_distribution_switch) {
    static mt_zipf z1, z2;
    mt_zipf_init(&z1, false);
    mt_zipf_init(&z2, true);
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *est = mt_freq(model, "f", MT_H, 2, 0.01f, 100.0f, 11);
    mt_sim sim = {2, 11, (double)0.01f, calloc(2 * MT_H, sizeof(int64_t)),
                  malloc(2 * MT_H * sizeof(float))};
    for (int j = 0; j < 2 * MT_H; j++) sim.b[j] = 100.0f;
    uint64_t rng = 99;
    int64_t ids[MT_BATCH];
    double mean, worst, mean_stale, worst_stale;
    for (int64_t t = 1; t <= MT_STEPS; t++) {
        const mt_zipf *z = t <= MT_SWITCH ? &z1 : &z2;
        for (int k = 0; k < MT_BATCH; k++) ids[k] = mt_zipf_draw(z, &rng);
        MT_OK(mmrec_freq_estimator_update(est, ids, MT_BATCH, t));
        mt_sim_update(&sim, ids, MT_BATCH, t);
        if (t == MT_SWITCH) {
            mt_track_error(est, &z1, 2, 11, 100, false, &mean, &worst);
            printf("freq estimator at the switch, top 100 of the first Zipf: mean rel. error "
                   "%.4f, worst %.4f\n",
                   mean, worst);
            ck_assert(mean < 0.08 && worst < 0.3);
            mt_track_error(est, &z2, 2, 11, 100, false, &mean_stale, &worst_stale);
            ck_assert(mean_stale > 0.5); /* the second distribution is not known yet */
        }
    }
    /* bit for bit the direct simulation */
    int64_t all[MT_M];
    float p[MT_M];
    for (int y = 0; y < MT_M; y++) all[y] = y;
    MT_OK(mmrec_freq_estimator_probability(est, all, MT_M, p));
    for (int y = 0; y < MT_M; y++) ck_assert(p[y] == mt_sim_p(&sim, y));
    /* the estimates follow the new distribution */
    mt_track_error(est, &z2, 2, 11, 100, false, &mean, &worst);
    double mean_item, worst_item;
    mt_track_error(est, &z2, 2, 11, 100, true, &mean_item, &worst_item);
    printf("freq estimator %d steps after the switch, top 100 of the second Zipf: mean rel. "
           "error %.4f, worst %.4f (against the item alone: %.4f, %.4f; at the switch: mean "
           "%.4f)\n",
           MT_STEPS - MT_SWITCH, mean, worst, mean_item, worst_item, mean_stale);
    ck_assert(mean < 0.08 && worst < 0.3);
    ck_assert(mean_item < 0.1);
    free(sim.a);
    free(sim.b);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- state through files and optimizers ---- */

static mmrec_model *mt_model_with_state(mmrec_module **est, mmrec_tensor **w) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    int64_t shape[2] = {3, 4};
    MT_OK(mmrec_model_add_param(model, "w", 2, shape, w));
    mmrec_freq_estimator_config c;
    MT_OK(mmrec_freq_estimator_config_init(&c));
    c.num_buckets = 97;
    c.num_hashes = 2;
    c.alpha = 0.05f;
    c.initial_gap = 30.0f;
    c.seed = 5;
    c.num_items = 50;
    MT_OK(mmrec_freq_estimator_create(model, "freq", &c, est));
    return model;
}

static void mt_feed(mmrec_module *est, int64_t from, int64_t to) {
    int64_t ids[6];
    for (int64_t t = from; t <= to; t++) {
        for (int k = 0; k < 6; k++) ids[k] = (t * 7 + k * k * 3) % 50;
        MT_OK(mmrec_freq_estimator_update(est, ids, 6, t * 1000003));
    }
}

static void mt_assert_same_params(mmrec_model *a, mmrec_model *b) {
    size_t na, nb;
    MT_OK(mmrec_model_num_params(a, &na));
    MT_OK(mmrec_model_num_params(b, &nb));
    ck_assert_uint_eq(na, nb);
    for (size_t i = 0; i < na; i++) {
        mmrec_tensor *ta, *tb;
        MT_OK(mmrec_model_param_at(a, i, NULL, &ta));
        MT_OK(mmrec_model_param_at(b, i, NULL, &tb));
        size_t n;
        const float *da, *db;
        MT_OK(mmrec_tensor_numel(ta, &n));
        MT_OK(mmrec_tensor_data_const(ta, &da));
        MT_OK(mmrec_tensor_data_const(tb, &db));
        ck_assert(memcmp(da, db, n * sizeof(float)) == 0);
    }
}

START_TEST(test_freq_state_survives_save_and_load) {
    mt_tmp_dir();
    mmrec_module *ea, *eb;
    mmrec_tensor *wa, *wb;
    mmrec_model *a = mt_model_with_state(&ea, &wa), *b = mt_model_with_state(&eb, &wb);
    mt_feed(ea, 1, 40);
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    mmrec_optimizer *oa, *ob;
    MT_OK(mmrec_optimizer_create(a, &oc, &oa));
    MT_OK(mmrec_optimizer_create(b, &oc, &ob));
    for (int pass = 0; pass < 2; pass++) {
        const char *path = mt_file(pass, pass ? "c.ckpt" : "m.mmrc");
        if (pass == 0) {
            MT_OK(mmrec_model_save(a, path));
            MT_OK(mmrec_model_load(b, path));
        } else {
            mt_feed(ea, 41, 60);
            float counts[50];
            for (int k = 0; k < 50; k++) counts[k] = (float)(k + 1);
            MT_OK(mmrec_freq_estimator_set_counts(ea, counts, 50));
            MT_OK(mmrec_checkpoint_save(a, oa, path));
            MT_OK(mmrec_checkpoint_load(b, ob, path));
        }
        mt_assert_same_params(a, b);
        /* the last step came back too: the loaded one refuses an old step */
        int64_t id = 1;
        MT_EXPECT(mmrec_freq_estimator_update(eb, &id, 1, (pass ? 60 : 40) * 1000003),
                  MMREC_EINVAL, "step");
        /* and so did the mode: static after the checkpoint */
        id = 9;
        ck_assert(mt_p(eb, id) == (pass ? (float)(10.0 / 1275.0) : mt_p(ea, id)));
    }
    /* both go on identically */
    mt_feed(ea, 61, 70);
    mt_feed(eb, 61, 70);
    mt_assert_same_params(a, b);
    mmrec_optimizer_destroy(oa);
    mmrec_optimizer_destroy(ob);
    mmrec_model_destroy(a);
    mmrec_model_destroy(b);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_freq_optimizer_leaves_state_alone) {
    static const mmrec_optimizer_type types[3] = {MMREC_OPT_SGD, MMREC_OPT_ADAM,
                                                  MMREC_OPT_ADAGRAD};
    for (int k = 0; k < 3; k++) {
        mmrec_module *est;
        mmrec_tensor *w;
        mmrec_model *model = mt_model_with_state(&est, &w);
        mt_feed(est, 1, 10);
        size_t numel;
        MT_OK(mmrec_model_param_count(model, &numel, NULL));
        ck_assert_uint_eq(numel, 12); /* only w is trainable */
        float before[3][2 * 97], grads[12];
        static const char *const names[3] = {"freq.last_step_high", "freq.last_step_low",
                                             "freq.gap"};
        for (int j = 0; j < 3; j++)
            memcpy(before[j], mt_param(model, names[j]), sizeof before[j]);
        float step_before[2];
        memcpy(step_before, mt_param(model, "freq.step"), sizeof step_before);
        for (int i = 0; i < 12; i++) grads[i] = 0.1f * (float)(i + 1);
        mmrec_optimizer_config oc;
        MT_OK(mmrec_optimizer_config_init(&oc));
        oc.type = types[k];
        oc.lr = 0.1f;
        oc.weight_decay = 0.5f;
        mmrec_optimizer *opt;
        MT_OK(mmrec_optimizer_create(model, &oc, &opt));
        MT_OK(mmrec_model_import_grads(model, grads, 12));
        MT_OK(mmrec_optimizer_step(opt));
        for (int j = 0; j < 3; j++)
            ck_assert(memcmp(before[j], mt_param(model, names[j]), sizeof before[j]) == 0);
        ck_assert(memcmp(step_before, mt_param(model, "freq.step"), sizeof step_before) == 0);
        const float *wd;
        MT_OK(mmrec_tensor_data_const(w, &wd));
        ck_assert(wd[0] != 0.0f); /* the trainable parameter moved */
        mmrec_optimizer_destroy(opt);
        mmrec_model_destroy(model);
    }
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_freq_bad_config) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_freq_estimator_config c;
    MT_EXPECT(mmrec_freq_estimator_config_init_sized(NULL, sizeof c), MMREC_EINVAL, "cfg");
    MT_EXPECT(mmrec_freq_estimator_config_init_sized(&c, 8), MMREC_EINVAL, "size");
    MT_OK(mmrec_freq_estimator_config_init(&c));
    mmrec_module *m;
    MT_EXPECT(mmrec_freq_estimator_create(model, "f", &c, &m), MMREC_EINVAL, "num_buckets");
#define MT_BAD(field, value)                                                                \
    do {                                                                                    \
        MT_OK(mmrec_freq_estimator_config_init(&c));                                        \
        c.num_buckets = 10;                                                                 \
        c.field = value;                                                                    \
        MT_EXPECT(mmrec_freq_estimator_create(model, "f", &c, &m), MMREC_EINVAL, #field);   \
    } while (0)
    MT_BAD(num_buckets, -1);
    MT_BAD(num_buckets, ((int64_t)1 << 31) + 1);
    MT_BAD(num_hashes, 0);
    MT_BAD(num_hashes, 17);
    MT_BAD(alpha, 0.0f);
    MT_BAD(alpha, 1.5f);
    MT_BAD(alpha, NAN);
    MT_BAD(initial_gap, 0.0f);
    MT_BAD(initial_gap, -2.0f);
    MT_BAD(initial_gap, INFINITY);
    MT_BAD(num_items, -1);
    MT_BAD(num_items, ((int64_t)1 << 31) + 1);
#undef MT_BAD
    /* config sizes (STYLE.md 5): older prefix, newer zero tail, newer non-zero tail */
    struct {
        mmrec_freq_estimator_config c;
        uint64_t extra;
    } big;
    memset(&big, 0, sizeof big);
    MT_OK(mmrec_freq_estimator_config_init_sized(&big.c, sizeof big));
    big.c.num_buckets = 10;
    MT_OK(mmrec_freq_estimator_create(model, "big", &big.c, NULL));
    big.extra = 1;
    MT_EXPECT(mmrec_freq_estimator_create(model, "big2", &big.c, &m), MMREC_EINVAL,
              "newer libmmrec");
    MT_OK(mmrec_freq_estimator_config_init(&c));
    c.num_buckets = 10;
    c.struct_size = 8;
    MT_EXPECT(mmrec_freq_estimator_create(model, "small", &c, &m), MMREC_EINVAL, "struct_size");
    c.struct_size = sizeof c;
    MT_EXPECT(mmrec_freq_estimator_create(NULL, "f", &c, &m), MMREC_EINVAL, "model");
    MT_EXPECT(mmrec_freq_estimator_create(model, NULL, &c, &m), MMREC_EINVAL, "name");
    MT_EXPECT(mmrec_freq_estimator_create(model, "f", NULL, &m), MMREC_EINVAL, "cfg");
    MT_EXPECT(mmrec_freq_estimator_create(model, "", &c, &m), MMREC_EINVAL, "name");
    MT_EXPECT(mmrec_freq_estimator_create(model, "big", &c, &m), MMREC_ESTATE, "big");
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 4); /* only "big" was made */
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_freq_bad_input) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *est = mt_freq(model, "f", 32, 2, 0.1f, 100.0f, 0);
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = lc.out_dim = 2;
    mmrec_module *lin;
    MT_OK(mmrec_linear_create(model, "lin", &lc, &lin));
    int64_t ids[3] = {1, 2, 3}, neg[3] = {1, -4, 3};
    float p[3] = {-1, -1, -1};
    MT_EXPECT(mmrec_freq_estimator_update(NULL, ids, 3, 1), MMREC_EINVAL, "estimator");
    MT_EXPECT(mmrec_freq_estimator_update(lin, ids, 3, 1), MMREC_EINVAL, "freq_estimator");
    MT_EXPECT(mmrec_freq_estimator_update(est, NULL, 3, 1), MMREC_EINVAL, "ids");
    MT_EXPECT(mmrec_freq_estimator_update(est, ids, 0, 1), MMREC_EINVAL, "'n'");
    MT_EXPECT(mmrec_freq_estimator_update(est, ids, 3, 0), MMREC_EINVAL, "step");
    MT_EXPECT(mmrec_freq_estimator_update(est, ids, 3, -5), MMREC_EINVAL, "step");
    MT_EXPECT(mmrec_freq_estimator_update(est, ids, 3, (int64_t)1 << 48), MMREC_EINVAL, "step");
    MT_EXPECT(mmrec_freq_estimator_update(est, neg, 3, 1), MMREC_ERANGE, "ids[1]");
    MT_OK(mmrec_freq_estimator_update(est, ids, 3, 5));
    MT_EXPECT(mmrec_freq_estimator_update(est, ids, 3, 5), MMREC_EINVAL, "step");
    MT_EXPECT(mmrec_freq_estimator_update(est, ids, 3, 4), MMREC_EINVAL, "last update's step 5");
    /* failed updates changed nothing: a second estimator fed only step 5 */
    mmrec_module *ref = mt_freq(model, "g", 32, 2, 0.1f, 100.0f, 0);
    MT_OK(mmrec_freq_estimator_update(ref, ids, 3, 5));
    ck_assert(memcmp(mt_param(model, "f.gap"), mt_param(model, "g.gap"), 64 * sizeof(float)) ==
              0);
    ck_assert(memcmp(mt_param(model, "f.step"), mt_param(model, "g.step"), 2 * sizeof(float)) ==
              0);
    MT_EXPECT(mmrec_freq_estimator_probability(NULL, ids, 3, p), MMREC_EINVAL, "estimator");
    MT_EXPECT(mmrec_freq_estimator_probability(lin, ids, 3, p), MMREC_EINVAL, "freq_estimator");
    MT_EXPECT(mmrec_freq_estimator_probability(est, NULL, 3, p), MMREC_EINVAL, "ids");
    MT_EXPECT(mmrec_freq_estimator_probability(est, ids, 3, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_freq_estimator_probability(est, ids, 0, p), MMREC_EINVAL, "'n'");
    MT_EXPECT(mmrec_freq_estimator_probability(est, neg, 3, p), MMREC_ERANGE, "ids[1]");
    ck_assert(p[0] == -1 && p[1] == -1 && p[2] == -1);
    /* the static option */
    float counts[3] = {1, 2, 3};
    MT_EXPECT(mmrec_freq_estimator_set_counts(NULL, counts, 3), MMREC_EINVAL, "estimator");
    MT_EXPECT(mmrec_freq_estimator_set_counts(lin, counts, 3), MMREC_EINVAL, "freq_estimator");
    MT_EXPECT(mmrec_freq_estimator_set_counts(est, counts, 3), MMREC_ESTATE, "num_items");
    mmrec_freq_estimator_config sc;
    MT_OK(mmrec_freq_estimator_config_init(&sc));
    sc.num_buckets = 8;
    sc.num_items = 3;
    mmrec_module *st;
    MT_OK(mmrec_freq_estimator_create(model, "st", &sc, &st));
    MT_EXPECT(mmrec_freq_estimator_set_counts(st, counts, 2), MMREC_EINVAL, "num_items 3");
    MT_EXPECT(mmrec_freq_estimator_set_counts(st, counts, 0), MMREC_EINVAL, "'n'");
    static const float bad[4] = {0.0f, -1.0f, NAN, INFINITY};
    for (int k = 0; k < 4; k++) {
        counts[2] = bad[k];
        MT_EXPECT(mmrec_freq_estimator_set_counts(st, counts, 3), MMREC_EINVAL, "counts[2]");
    }
    ck_assert(mt_param(model, "st.static_p")[0] == 0.0f); /* still streaming */
    /* an optimizer keeps the model alive after the caller destroys it */
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    mmrec_optimizer *opt;
    MT_OK(mmrec_optimizer_create(model, &oc, &opt));
    mmrec_model_destroy(model);
    MT_EXPECT(mmrec_freq_estimator_update(est, ids, 3, 9), MMREC_ESTATE, "destroyed");
    MT_EXPECT(mmrec_freq_estimator_probability(est, ids, 3, p), MMREC_ESTATE, "destroyed");
    mmrec_optimizer_destroy(opt);
}
END_TEST

/* ---- allocation failures ---- */

static mmrec_status mt_freq_oom(void *ctx) {
    (void)ctx;
    mmrec_model *model = NULL;
    mmrec_module *est = NULL;
    mmrec_status s = mmrec_model_create(&model);
    mmrec_freq_estimator_config c;
    if (s == MMREC_OK) s = mmrec_freq_estimator_config_init(&c);
    c.num_buckets = 64;
    c.num_hashes = 3;
    c.num_items = 8;
    if (s == MMREC_OK) s = mmrec_freq_estimator_create(model, "f", &c, &est);
    int64_t ids[4] = {5, 6, 5, 1000};
    float p[4];
    static const float counts[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    if (s == MMREC_OK) s = mmrec_freq_estimator_update(est, ids, 4, 1);
    if (s == MMREC_OK) s = mmrec_freq_estimator_probability(est, ids, 4, p);
    if (s == MMREC_OK) s = mmrec_freq_estimator_set_counts(est, counts, 8);
    if (s == MMREC_OK) s = mmrec_freq_estimator_probability(est, ids, 3, p);
    if (s == MMREC_OK) s = mmrec_model_save(model, mt_file(0, "oom.mmrc"));
    mmrec_model_destroy(model);
    return s;
}

START_TEST(test_freq_oom_reports_enomem_without_leaks) {
    mt_tmp_dir();
    ck_assert_int_gt(mt_oom_loop("freq_estimator", mt_freq_oom, NULL), 5);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_freq_update_does_not_allocate) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *est = mt_freq(model, "f", 1000, 4, 0.01f, 100.0f, 0);
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mt_allocs = 0;
    int64_t ids[64];
    float p[64];
    for (int64_t t = 1; t <= 50; t++) {
        for (int k = 0; k < 64; k++) ids[k] = (t * 31 + k * 17) % 3000;
        MT_OK(mmrec_freq_estimator_update(est, ids, 64, t));
        MT_OK(mmrec_freq_estimator_probability(est, ids, 64, p));
    }
    ck_assert_uint_eq(mt_allocs, 0);
    MT_OK(mmrec_set_allocator(NULL));
    mmrec_model_destroy(model);
}
END_TEST

static Suite *freq_estimator_suite(void) {
    Suite *s = suite_create("freq_estimator");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_freq_bad_config);
    tcase_add_test(api, test_freq_bad_input);
    suite_add_tcase(s, api);
    TCase *fwd = tcase_create("forward");
    tcase_set_timeout(fwd, 120);
    tcase_add_test(fwd, test_freq_defaults_and_state_parameters);
    tcase_add_test(fwd, test_freq_update_maths_by_hand);
    tcase_add_test(fwd, test_freq_duplicates_count_once_per_step);
    tcase_add_test(fwd, test_freq_static_counts_and_switching_back);
    tcase_add_test(fwd, test_freq_matches_pytorch);
    tcase_add_test(fwd, test_freq_tracks_a_distribution_switch);
    suite_add_tcase(s, fwd);
    TCase *life = tcase_create("lifecycle");
    tcase_set_timeout(life, 120);
    tcase_add_test(life, test_freq_state_survives_save_and_load);
    tcase_add_test(life, test_freq_optimizer_leaves_state_alone);
    tcase_add_test(life, test_freq_oom_reports_enomem_without_leaks);
    tcase_add_test(life, test_freq_update_does_not_allocate);
    suite_add_tcase(s, life);
    return s;
}
