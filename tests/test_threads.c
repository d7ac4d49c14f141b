/* Serving from several threads, run-to-run determinism, the worker pool
 * (regions, a thread count changing under it, dlclose). */
#include "mt.h"
#include "core/core_internal.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    enum { MT_SERVERS = 8 };
    pthread_t th[MT_SERVERS];
    mt_worker w[MT_SERVERS];
    for (int i = 0; i < MT_SERVERS; i++) {
        w[i] = (mt_worker){layer, x, want, 0, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, mt_work, &w[i]), 0);
    }
    for (int i = 0; i < MT_SERVERS; i++) {
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
        mmrec__parallel_for(100, mmrec__parallel_parts(100, 1), mt_cover_chunk, &inner);
        for (int i = 0; i < 100; i++) ck_assert_int_eq(inner.hits[i], 1);
        free(inner.hits);
    }
}

static void mt_check_cover(size_t n, size_t grain, bool nest) {
    mt_cover c = {calloc(n ? n : 1, sizeof(int)), {0}, nest};
    int parts = mmrec__parallel_parts(n, grain);
    mmrec__parallel_for(n, parts, mt_cover_chunk, &c);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(c.hits[i] == 1, "n %zu grain %zu: index %zu ran %d times", n, grain, i,
                      c.hits[i]);
    if (n == 0) parts = 0;
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

/* The thread count changing while regions run (mmrec_set_num_threads is
 * documented as not thread-safe, but a host may still call it): every
 * region keeps the part count its caller sized its scratch for, so no part
 * index runs past it. Attention sizes per-part scratch in the tape arena
 * (AddressSanitizer sees a write past it); its output must stay exact. */
typedef struct mt_flip {
    _Atomic int stop;
} mt_flip;

static void *mt_flipper(void *arg) {
    mt_flip *f = arg;
    static const int counts[4] = {1, 2, 1, 2};
    for (unsigned i = 0; !f->stop; i++) {
        mmrec_set_num_threads(counts[i % 4]);
        sched_yield(); /* the machine may have no core to spare */
    }
    return NULL;
}

typedef struct mt_parts_seen {
    int parts, bad;
} mt_parts_seen;

static void mt_parts_chunk(void *ctx, size_t lo, size_t hi, int part) {
    mt_parts_seen *c = ctx;
    (void)lo, (void)hi;
    if (part < 0 || part >= c->parts) __atomic_fetch_add(&c->bad, 1, __ATOMIC_RELAXED);
}

enum { MT_FB = 64, MT_FT = 16, MT_FD = 64, MT_FN = MT_FB * MT_FT * MT_FD };

/* Self-attention of x [64, 16, 64] into out on an inference tape: big
 * enough that its batch is split over every thread. */
static void mt_attend(mmrec_module *mha, const float *x, float *out) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    int64_t s[3] = {MT_FB, MT_FT, MT_FD};
    mmrec_tensor *tx, *y;
    MT_OK(mmrec_tape_wrap(tape, (float *)x, 3, s, MMREC_TENSOR_READONLY, &tx));
    MT_OK(mmrec_mha_forward(mha, tape, tx, NULL, &y));
    MT_OK(mmrec_tensor_copy_to(y, out, MT_FN));
    mmrec_tape_destroy(tape);
}

START_TEST(test_thread_count_changing_during_regions) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_mha_config mc;
    MT_OK(mmrec_mha_config_init(&mc));
    mc.dim = MT_FD;
    mc.num_heads = 4;
    mmrec_module *mha;
    MT_OK(mmrec_mha_create(model, "mha", &mc, &mha));
    float *x = malloc(MT_FN * sizeof *x), *want = malloc(MT_FN * sizeof *want),
          *got = malloc(MT_FN * sizeof *got);
    mt_fill_uniform(x, MT_FN, -1, 1, 21);
    MT_OK(mmrec_set_num_threads(1));
    mt_attend(mha, x, want);
    mt_flip f = {0};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, mt_flipper, &f), 0);
    for (int rep = 0; rep < 40; rep++) {
        mt_parts_seen c = {mmrec__parallel_parts(1000, 1), 0};
        mmrec__parallel_for(1000, c.parts, mt_parts_chunk, &c);
        ck_assert_int_eq(c.bad, 0);
        mt_attend(mha, x, got);
        /* split products may round differently; corruption would not be close */
        mt_assert_close("output", got, want, MT_FN, 1e-4f, 1e-5f);
    }
    f.stop = 1;
    pthread_join(t, NULL);
    MT_OK(mmrec_set_num_threads(2));
    free(x);
    free(want);
    free(got);
    mmrec_model_destroy(model);
}
END_TEST

/* A host that dlopen()s the library, runs a parallel operation and
 * dlclose()s it: the pool's workers, still spinning, must not find their
 * code unmapped (the library is linked with -z nodelete). */
typedef mmrec_status (*mt_set_threads_fn)(int);
typedef mmrec_status (*mt_tape_create_fn)(mmrec_tape **);
typedef void (*mt_tape_destroy_fn)(mmrec_tape *);
typedef mmrec_status (*mt_tape_tensor_fn)(mmrec_tape *, int, const int64_t *, uint32_t,
                                          mmrec_tensor **);
typedef mmrec_status (*mt_relu_fn)(mmrec_tape *, mmrec_tensor *, mmrec_tensor **);

START_TEST(test_dlclose_leaves_workers_running) {
    const char *root = getenv("MMREC_ROOT");
    ck_assert_msg(root != NULL, "run through make test (MMREC_ROOT unset)");
    char path[4096];
    snprintf(path, sizeof path, "%s/lib/libmmrec.so.0", root);
    for (int round = 0; round < 3; round++) {
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        ck_assert_msg(h != NULL, "dlopen %s: %s", path, dlerror());
        mt_set_threads_fn set_threads = (mt_set_threads_fn)dlsym(h, "mmrec_set_num_threads");
        mt_tape_create_fn create = (mt_tape_create_fn)dlsym(h, "mmrec_tape_create");
        mt_tape_destroy_fn destroy = (mt_tape_destroy_fn)dlsym(h, "mmrec_tape_destroy");
        mt_tape_tensor_fn tensor = (mt_tape_tensor_fn)dlsym(h, "mmrec_tape_tensor");
        mt_relu_fn relu = (mt_relu_fn)dlsym(h, "mmrec_relu");
        ck_assert(set_threads && create && destroy && tensor && relu);
        ck_assert_int_eq(set_threads(2), MMREC_OK);
        mmrec_tape *tape;
        mmrec_tensor *x, *y;
        int64_t n[1] = {1 << 20};
        ck_assert_int_eq(create(&tape), MMREC_OK);
        ck_assert_int_eq(tensor(tape, 1, n, 0, &x), MMREC_OK);
        ck_assert_int_eq(relu(tape, x, &y), MMREC_OK); /* starts a worker */
        destroy(tape);
        ck_assert_int_eq(dlclose(h), 0);
        void *still = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
        ck_assert_msg(still != NULL, "dlclose unloaded the library");
        dlclose(still);
        struct timespec wait = {0, 50 * 1000 * 1000};
        nanosleep(&wait, NULL); /* the worker spins, then sleeps, in the library's code */
    }
}
END_TEST

/* Optimizers created and destroyed on several threads at once hold and
 * drop references to one model: the count stays exact (AddressSanitizer
 * reports the model freed early or never). */
static void *mt_opt_churn(void *arg) {
    mmrec_model *model = arg;
    mmrec_optimizer_config c;
    if (mmrec_optimizer_config_init(&c) != MMREC_OK) return (void *)1;
    for (int i = 0; i < 2000; i++) {
        mmrec_optimizer *o;
        if (mmrec_optimizer_create(model, &c, &o) != MMREC_OK) return (void *)1;
        mmrec_optimizer_destroy(o);
    }
    return NULL;
}

START_TEST(test_model_references_from_many_threads) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    int64_t n[1] = {4};
    mmrec_tensor *w;
    MT_OK(mmrec_model_add_param(model, "w", 1, n, &w));
    mmrec_optimizer_config c;
    MT_OK(mmrec_optimizer_config_init(&c));
    mmrec_optimizer *last;
    MT_OK(mmrec_optimizer_create(model, &c, &last));
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, mt_opt_churn, model), 0);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        ck_assert_ptr_null(rc);
    }
    mmrec_model_destroy(model); /* the optimizer still holds it */
    MT_EXPECT(mmrec_optimizer_step(last), MMREC_ESTATE, "destroyed");
    mmrec_optimizer_destroy(last); /* frees the model */
}
END_TEST

static Suite *threads_suite(void) {
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_inference_from_many_threads);
    tcase_add_test(tc, test_training_is_deterministic);
    tcase_add_test(tc, test_pool_covers_every_index_once);
    tcase_add_test(tc, test_pool_from_many_threads);
    tcase_add_test(tc, test_thread_count_changing_during_regions);
    tcase_add_test(tc, test_dlclose_leaves_workers_running);
    tcase_add_test(tc, test_model_references_from_many_threads);
    suite_add_tcase(s, tc);
    return s;
}
