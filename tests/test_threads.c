/* Serving from several threads and run-to-run determinism. */
#include "mt.h"
#include "core/core_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

MT_SUITE(threads_suite)

/* large enough that the products go through BLAS */
enum { MT_B = 8, MT_T = 8, MT_D = 64, MT_F = 96, MT_N = MT_B * MT_T * MT_D };

static mmrec_module *mt_layer(mmrec_model *model, float dropout) {
    mmrec_transformer_config c;
    MT_OK(mmrec_transformer_config_init(&c));
    c.dim = MT_D;
    c.num_heads = 4;
    c.ffn_dim = MT_F;
    c.dropout = dropout;
    c.norm_first = 1;
    mmrec_module *m;
    MT_OK(mmrec_transformer_create(model, "layer", &c, &m));
    return m;
}

/* One inference forward of x through the layer into out. */
static int mt_infer(mmrec_module *layer, const float *x, float *out) {
    mmrec_tape *tape;
    if (mmrec_tape_create(&tape) != MMREC_OK) return -1;
    int64_t s[3] = {MT_B, MT_T, MT_D};
    mmrec_tensor *tx, *y;
    int rc = mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE) == MMREC_OK &&
                     mmrec_tape_wrap(tape, (float *)x, 3, s, MMREC_TENSOR_READONLY, &tx) ==
                         MMREC_OK &&
                     mmrec_transformer_forward(layer, tape, tx, NULL, &y) == MMREC_OK &&
                     mmrec_tensor_copy_to(y, out, MT_N) == MMREC_OK
                 ? 0
                 : -1;
    mmrec_tape_destroy(tape);
    return rc;
}

typedef struct mt_worker {
    mmrec_module *layer;
    const float *x, *want;
    int mismatches, failures;
} mt_worker;

static void *mt_work(void *arg) {
    mt_worker *w = arg;
    float out[MT_N];
    for (int rep = 0; rep < 50; rep++) {
        if (mt_infer(w->layer, w->x, out) != 0) w->failures++;
        else if (memcmp(out, w->want, sizeof out) != 0) w->mismatches++;
    }
    return NULL;
}

START_TEST(test_inference_from_many_threads) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *layer = mt_layer(model, 0.1f);
    static float x[MT_N], want[MT_N];
    mt_fill_uniform(x, MT_N, -1, 1, 3);
    ck_assert_int_eq(mt_infer(layer, x, want), 0);
    pthread_t th[4];
    mt_worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (mt_worker){layer, x, want, 0, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, mt_work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(w[i].failures, 0);
        ck_assert_int_eq(w[i].mismatches, 0);
    }
    mmrec_model_destroy(model);
}
END_TEST

/* Three training steps with dropout from fixed seeds, run twice: the
 * parameters come out bit for bit the same. */
static void mt_train(float *params, size_t n) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    MT_OK(mmrec_model_seed(model, 11));
    mmrec_module *layer = mt_layer(model, 0.2f);
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAMW;
    mmrec_optimizer *opt;
    MT_OK(mmrec_optimizer_create(model, &oc, &opt));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_seed(tape, 5));
    static float x[MT_N], r[MT_N];
    mt_fill_uniform(x, MT_N, -1, 1, 4);
    mt_fill_uniform(r, MT_N, -1, 1, 6);
    int64_t s[3] = {MT_B, MT_T, MT_D};
    for (int step = 0; step < 3; step++) {
        mmrec_tensor *tx, *y;
        MT_OK(mmrec_tape_wrap(tape, x, 3, s, MMREC_TENSOR_READONLY, &tx));
        MT_OK(mmrec_transformer_forward(layer, tape, tx, NULL, &y));
        MT_OK(mmrec_tape_backward_from(tape, y, r));
        MT_OK(mmrec_optimizer_step(opt));
        mmrec_tape_reset(tape);
    }
    MT_OK(mmrec_model_export_params(model, params, n));
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(model);
}

START_TEST(test_training_is_deterministic) {
    size_t n = 3 * MT_D * MT_D + 3 * MT_D + MT_D * MT_D + MT_D + 2 * (MT_D * MT_F) + MT_F + MT_D +
               4 * MT_D;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    mt_train(a, n);
    mt_train(b, n);
    ck_assert(memcmp(a, b, n * sizeof *a) == 0);
    free(a);
    free(b);
}
END_TEST

/* ---- the worker pool ---- */

typedef struct mt_cover {
    int *hits;       /* per index */
    int parts_seen[64];
    bool nest;
} mt_cover;

static void mt_cover_chunk(void *ctx, size_t lo, size_t hi, int part) {
    mt_cover *c = ctx;
    ck_assert(part >= 0 && part < 64);
    __atomic_fetch_add(&c->parts_seen[part], 1, __ATOMIC_RELAXED);
    for (size_t i = lo; i < hi; i++) __atomic_fetch_add(&c->hits[i], 1, __ATOMIC_RELAXED);
    if (c->nest) { /* a nested region runs inline and still covers its range */
        mt_cover inner = {calloc(100, sizeof(int)), {0}, false};
        mmrec__parallel_for(100, 1, mt_cover_chunk, &inner);
        for (int i = 0; i < 100; i++) ck_assert_int_eq(inner.hits[i], 1);
        free(inner.hits);
    }
}

static void mt_check_cover(size_t n, size_t grain, bool nest) {
    mt_cover c = {calloc(n ? n : 1, sizeof(int)), {0}, nest};
    mmrec__parallel_for(n, grain, mt_cover_chunk, &c);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(c.hits[i] == 1, "n %zu grain %zu: index %zu ran %d times", n, grain, i,
                      c.hits[i]);
    int parts = n ? mmrec__parallel_parts(n, grain) : 0;
    for (int p = 0; p < 64; p++) ck_assert_int_eq(c.parts_seen[p], p < parts ? 1 : 0);
    free(c.hits);
}

START_TEST(test_pool_covers_every_index_once) {
    int threads[] = {1, 2, 3, 8};
    for (int t = 0; t < 4; t++) {
        MT_OK(mmrec_set_num_threads(threads[t]));
        size_t ns[] = {0, 1, 2, 7, 100, 1000, 4097};
        size_t grains[] = {0, 1, 16, 5000};
        for (int a = 0; a < 7; a++)
            for (int g = 0; g < 4; g++) mt_check_cover(ns[a], grains[g], false);
        mt_check_cover(1000, 1, true);
        ck_assert_int_eq(mmrec__parallel_parts(1000, 1), threads[t]);
        ck_assert_int_eq(mmrec__parallel_parts(1000, 600), 1);
    }
    MT_OK(mmrec_set_num_threads(2));
}
END_TEST

static void *mt_pool_user(void *arg) {
    (void)arg;
    for (int r = 0; r < 200; r++) mt_check_cover(997, 8, r % 50 == 0);
    return NULL;
}

/* Several threads asking for regions at once: each either gets the pool
 * or runs its chunks itself; every region still covers its range once. */
START_TEST(test_pool_from_many_threads) {
    MT_OK(mmrec_set_num_threads(2));
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, mt_pool_user, NULL), 0);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
}
END_TEST

static Suite *threads_suite(void) {
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_add_test(tc, test_inference_from_many_threads);
    tcase_add_test(tc, test_training_is_deterministic);
    tcase_add_test(tc, test_pool_covers_every_index_once);
    tcase_add_test(tc, test_pool_from_many_threads);
    suite_add_tcase(s, tc);
    return s;
}
