/* The two-tower scorer (twotower.h): PyTorch golden vectors for dot and
 * cosine scores with a temperature (all pairs and paired), finite-
 * difference gradients, towers of several module kinds, the serving
 * vectors' inner products, bad input and allocation failures. */
#include "mt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

MT_SUITE(twotower_scorer_suite)

START_TEST(test_twotower_score_golden) {
    static const char *cases[] = {"dot",       "dot_tau",        "cosine_tau",
                                  "cosine_eps", "paired_dot_tau", "paired_cosine_tau"};
    mt_golden g;
    mt_golden_load(&g, "twotower_score.bin");
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        static const char *keys[7] = {"cfg", "u", "v", "r", "y", "du", "dv"};
        const mt_array *a[7];
        char name[96];
        for (int k = 0; k < 7; k++) {
            snprintf(name, sizeof name, "%s.%s", cases[c], keys[k]);
            a[k] = mt_golden_get(&g, name);
        }
        mmrec_twotower_config cfg;
        MT_OK(mmrec_twotower_config_init(&cfg));
        cfg.score = a[0]->data[0] != 0.0f ? MMREC_SCORE_COSINE : MMREC_SCORE_DOT;
        cfg.temperature = a[0]->data[1];
        cfg.eps = a[0]->data[2];
        mmrec_tensor *u = mt_tape_tensor(tape, 2, a[1]->shape, a[1]->data,
                                         MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *v = mt_tape_tensor(tape, 2, a[2]->shape, a[2]->data,
                                         MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *r = mt_tape_tensor(tape, a[3]->ndim, a[3]->shape, a[3]->data, 0);
        mmrec_tensor *y, *ry, *loss;
        if (strncmp(cases[c], "paired_", 7) == 0)
            MT_OK(mmrec_twotower_score_paired(tape, u, v, &cfg, &y));
        else
            MT_OK(mmrec_twotower_score(tape, u, v, &cfg, &y));
        snprintf(name, sizeof name, "%s.y", cases[c]);
        mt_close_scaled(name, mt_data_of(y), a[4]->data, a[4]->numel);
        MT_OK(mmrec_mul(tape, y, r, &ry));
        MT_OK(mmrec_sum(tape, ry, MMREC_AXIS_ALL, &loss));
        MT_OK(mmrec_tape_backward(tape, loss));
        snprintf(name, sizeof name, "%s.du", cases[c]);
        mt_close_scaled(name, mt_grad_of(u), a[5]->data, a[5]->numel);
        snprintf(name, sizeof name, "%s.dv", cases[c]);
        mt_close_scaled(name, mt_grad_of(v), a[6]->data, a[6]->numel);
        mmrec_tape_reset(tape);
    }
    mmrec_tape_destroy(tape);
    mt_golden_free(&g);
}
END_TEST

/* ---- finite differences ---- */

typedef struct mt_score_ctx {
    mmrec_twotower_config cfg;
    bool paired, same;
} mt_score_ctx;

static mmrec_status mt_score_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                 mmrec_tensor **out) {
    const mt_score_ctx *c = ctx;
    mmrec_tensor *items = c->same ? in[0] : in[1];
    return c->paired ? mmrec_twotower_score_paired(tape, in[0], items, &c->cfg, out)
                     : mmrec_twotower_score(tape, in[0], items, &c->cfg, out);
}

START_TEST(test_twotower_score_gradcheck) {
    enum { B = 4, N = 6, D = 5 };
    float u[B * D], v[N * D];
    mt_fill_uniform(u, B * D, -1, 1, 11);
    mt_fill_uniform(v, N * D, -1, 1, 12);
    for (int score = MMREC_SCORE_DOT; score <= MMREC_SCORE_COSINE; score++) {
        mt_score_ctx c = {.paired = false};
        MT_OK(mmrec_twotower_config_init(&c.cfg));
        c.cfg.score = score;
        c.cfg.temperature = 0.5f;
        mt_input in[2] = {{2, {B, D}, u, false}, {2, {N, D}, v, false}};
        mt_gradcheck(score ? "cosine all pairs" : "dot all pairs", mt_score_fwd, &c, in, 2, NULL,
                     NULL);
        c.paired = true;
        mt_input paired[2] = {{2, {B, D}, u, false}, {2, {B, D}, v, false}};
        mt_gradcheck(score ? "cosine paired" : "dot paired", mt_score_fwd, &c, paired, 2, NULL,
                     NULL);
        /* one tensor on both sides: the gradient of both uses adds up */
        c.paired = false;
        c.same = true;
        mt_gradcheck(score ? "cosine self" : "dot self", mt_score_fwd, &c, in, 1, NULL, NULL);
    }
}
END_TEST

/* ---- towers of several module kinds ---- */

/* Asserts every parameter under `prefix` got a non-zero gradient. */
static void mt_assert_trained(mmrec_model *model, const char *prefix) {
    size_t n, seen = 0;
    MT_OK(mmrec_model_num_params(model, &n));
    for (size_t i = 0; i < n; i++) {
        const char *name;
        mmrec_tensor *p;
        MT_OK(mmrec_model_param_at(model, i, &name, &p));
        if (strncmp(name, prefix, strlen(prefix)) != 0) continue;
        const float *g, *d;
        MT_OK(mmrec_tensor_grad(p, &g));
        MT_OK(mmrec_tensor_data_const(p, &d));
        ck_assert_msg(g != NULL, "%s has no gradient", name);
        size_t numel = 0;
        MT_OK(mmrec_tensor_numel(p, &numel));
        double norm = 0;
        for (size_t k = 0; k < numel; k++) norm += (double)g[k] * g[k];
        ck_assert_msg(norm > 0, "%s: zero gradient through the scorer", name);
        seen++;
    }
    ck_assert_msg(seen > 0, "no parameter under %s", prefix);
}

/* Asserts out[b, n] = <u_b, v_n> / |u_b| / |v_n| / tau, from the towers'
 * outputs read back. */
static void mt_assert_cosine(mmrec_tensor *scores, mmrec_tensor *users, mmrec_tensor *items,
                             int B, int N, int D, float tau) {
    const float *s = mt_data_of(scores), *u = mt_data_of(users), *v = mt_data_of(items);
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) {
            double dot = 0, uu = 0, vv = 0;
            for (int k = 0; k < D; k++) {
                dot += (double)u[b * D + k] * v[n * D + k];
                uu += (double)u[b * D + k] * u[b * D + k];
                vv += (double)v[n * D + k] * v[n * D + k];
            }
            double want = dot / sqrt(uu) / sqrt(vv) / tau;
            ck_assert_msg(fabs(s[b * N + n] - want) <= 1e-5 * (1 + fabs(want)),
                          "score[%d, %d] = %g, want %g", b, n, (double)s[b * N + n], want);
        }
}

START_TEST(test_twotower_towers_of_any_module) {
    enum { B = 3, F = 7, D = 8, ROWS = 20, BAG = 4, T = 5, M = 2, K = 3 };
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    MT_OK(mmrec_model_seed(model, 5));
    /* user tower 1: an MLP over features; item tower 1: an Embedding of
     * ids mean-pooled over a bag (YouTube DNN's watches) */
    mmrec_module *mlp, *emb, *seq, *fq;
    int64_t sizes[3] = {F, 16, D};
    mmrec_mlp_config mc;
    MT_OK(mmrec_mlp_config_init(&mc));
    mc.sizes = sizes;
    mc.num_sizes = 3;
    MT_OK(mmrec_mlp_create(model, "user_mlp", &mc, &mlp));
    mmrec_embedding_config ec;
    MT_OK(mmrec_embedding_config_init(&ec));
    ec.num_rows = ROWS;
    ec.dim = D;
    MT_OK(mmrec_embedding_create(model, "item_emb", &ec, &emb));
    /* user tower 2: the sequence encoder over a history; item tower 2: the
     * FQ-Former over image and text tokens, its queries mean-pooled */
    mmrec_sequence_encoder_config sc;
    MT_OK(mmrec_sequence_encoder_config_init(&sc));
    sc.dim = D;
    sc.max_length = T;
    sc.num_layers = 1;
    sc.dropout = 0;
    MT_OK(mmrec_sequence_encoder_create(model, "user_seq", &sc, &seq));
    mmrec_fqformer_config fc;
    MT_OK(mmrec_fqformer_config_init(&fc));
    fc.image_dim = 6;
    fc.text_dim = 5;
    fc.dim = D;
    fc.num_queries = 2;
    fc.num_heads = 2;
    fc.dropout = 0;
    MT_OK(mmrec_fqformer_create(model, "item_fq", &fc, &fq));
    mt_perturb_params(model, 9);

    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_twotower_config cfg;
    MT_OK(mmrec_twotower_config_init(&cfg));
    cfg.score = MMREC_SCORE_COSINE;
    cfg.temperature = 0.05f;

    float feats[B * F], hist[B * T * D], image[B * M * 6], text[B * K * 5];
    mt_fill_uniform(feats, B * F, -1, 1, 1);
    mt_fill_uniform(hist, B * T * D, -1, 1, 2);
    mt_fill_uniform(image, B * M * 6, -1, 1, 3);
    mt_fill_uniform(text, B * K * 5, -1, 1, 4);
    int64_t bags[B * BAG] = {1, 2, 3, 4, 5, 5, 6, 7, 19, 0, 0, 8};

    /* pair 1 */
    mmrec_tensor *x, *users, *rows, *bagged, *items, *scores, *loss;
    x = mt_tape_tensor(tape, 2, (int64_t[]){B, F}, feats, 0);
    MT_OK(mmrec_mlp_forward(mlp, tape, x, &users));
    MT_OK(mmrec_embedding_forward(emb, tape, bags, B * BAG, &rows));
    MT_OK(mmrec_reshape(tape, rows, 3, (int64_t[]){B, BAG, D}, &bagged));
    MT_OK(mmrec_mean(tape, bagged, 1, &items));
    MT_OK(mmrec_twotower_score(tape, users, items, &cfg, &scores));
    mt_assert_cosine(scores, users, items, B, B, D, cfg.temperature);
    MT_OK(mmrec_sum(tape, scores, MMREC_AXIS_ALL, &loss));
    MT_OK(mmrec_tape_backward(tape, loss));
    mt_assert_trained(model, "user_mlp.");
    mt_assert_trained(model, "item_emb.");
    mmrec_tape_reset(tape);
    MT_OK(mmrec_model_zero_grad(model));

    /* pair 2 */
    mmrec_tensor *h, *img, *txt, *q;
    h = mt_tape_tensor(tape, 3, (int64_t[]){B, T, D}, hist, 0);
    MT_OK(mmrec_sequence_encoder_forward(seq, tape, h, NULL, NULL, &users));
    img = mt_tape_tensor(tape, 3, (int64_t[]){B, M, 6}, image, 0);
    txt = mt_tape_tensor(tape, 3, (int64_t[]){B, K, 5}, text, 0);
    MT_OK(mmrec_fqformer_forward(fq, tape, img, txt, NULL, &q));
    MT_OK(mmrec_mean(tape, q, 1, &items));
    MT_OK(mmrec_twotower_score(tape, users, items, &cfg, &scores));
    mt_assert_cosine(scores, users, items, B, B, D, cfg.temperature);
    MT_OK(mmrec_sum(tape, scores, MMREC_AXIS_ALL, &loss));
    MT_OK(mmrec_tape_backward(tape, loss));
    mt_assert_trained(model, "user_seq.");
    mt_assert_trained(model, "item_fq.queries");
    mt_assert_trained(model, "item_fq.f_v.");
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- serving vectors ---- */

START_TEST(test_twotower_serving_vectors_give_the_scores) {
    enum { B = 4, N = 9, D = 6 };
    float u[B * D], v[N * D], su[B * D], sv[N * D];
    mt_fill_uniform(u, B * D, -2, 2, 21);
    mt_fill_uniform(v, N * D, -2, 2, 22);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (int score = MMREC_SCORE_DOT; score <= MMREC_SCORE_COSINE; score++) {
        mmrec_twotower_config cfg;
        MT_OK(mmrec_twotower_config_init(&cfg));
        cfg.score = score;
        cfg.temperature = 0.07f;
        mmrec_tensor *tu = mt_tape_tensor(tape, 2, (int64_t[]){B, D}, u, 0);
        mmrec_tensor *tv = mt_tape_tensor(tape, 2, (int64_t[]){N, D}, v, 0);
        mmrec_tensor *s;
        MT_OK(mmrec_twotower_score(tape, tu, tv, &cfg, &s));
        MT_OK(mmrec_twotower_serving_vectors(&cfg, MMREC_TOWER_USER, u, B, D, su));
        MT_OK(mmrec_twotower_serving_vectors(&cfg, MMREC_TOWER_ITEM, v, N, D, sv));
        const float *want = mt_data_of(s);
        for (int b = 0; b < B; b++)
            for (int n = 0; n < N; n++) {
                double dot = 0;
                for (int k = 0; k < D; k++) dot += (double)su[b * D + k] * sv[n * D + k];
                double w = want[b * N + n];
                ck_assert_msg(fabs(dot - w) <= 1e-5 * (1 + fabs(w)),
                              "score %d: <u'_%d, v'_%d> = %g, the scorer gives %g", score, b, n,
                              dot, w);
            }
        /* in place gives the same */
        float inplace[N * D];
        memcpy(inplace, v, sizeof v);
        MT_OK(mmrec_twotower_serving_vectors(&cfg, MMREC_TOWER_ITEM, inplace, N, D, inplace));
        ck_assert(memcmp(inplace, sv, sizeof sv) == 0);
        mmrec_tape_reset(tape);
    }
    mmrec_tape_destroy(tape);
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_twotower_bad_input) {
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    float a[12] = {0};
    mmrec_tensor *u = mt_tape_tensor(tape, 2, (int64_t[]){3, 4}, a, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *v = mt_tape_tensor(tape, 2, (int64_t[]){2, 4}, a, 0);
    mmrec_tensor *w3 = mt_tape_tensor(tape, 2, (int64_t[]){4, 3}, a, 0);
    mmrec_tensor *cube = mt_tape_tensor(tape, 3, (int64_t[]){1, 3, 4}, a, 0);
    mmrec_tensor *foreign = mt_tape_tensor(other, 2, (int64_t[]){2, 4}, a, 0);
    mmrec_tensor *out = NULL;
    mmrec_twotower_config cfg;
    MT_OK(mmrec_twotower_config_init(&cfg));

    MT_EXPECT(mmrec_twotower_score(NULL, u, v, &cfg, &out), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_twotower_score(tape, NULL, v, &cfg, &out), MMREC_EINVAL, "users");
    MT_EXPECT(mmrec_twotower_score(tape, u, NULL, &cfg, &out), MMREC_EINVAL, "items");
    MT_EXPECT(mmrec_twotower_score(tape, u, v, &cfg, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_twotower_score(tape, u, foreign, &cfg, &out), MMREC_EINVAL, "items");
    MT_EXPECT(mmrec_twotower_score(tape, u, w3, &cfg, &out), MMREC_ESHAPE, "items");
    MT_EXPECT(mmrec_twotower_score(tape, cube, v, &cfg, &out), MMREC_ESHAPE, "users");
    MT_EXPECT(mmrec_twotower_score_paired(tape, u, v, &cfg, &out), MMREC_ESHAPE, "items");
    MT_EXPECT(mmrec_twotower_score_paired(NULL, u, u, &cfg, &out), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_twotower_score_paired(tape, NULL, u, &cfg, &out), MMREC_EINVAL, "users");
    MT_EXPECT(mmrec_twotower_score_paired(tape, u, NULL, &cfg, &out), MMREC_EINVAL, "items");
    float bad_taus[] = {0.0f, -1.0f, NAN, INFINITY, 1e-39f};
    for (size_t i = 0; i < sizeof bad_taus / sizeof bad_taus[0]; i++) {
        cfg.temperature = bad_taus[i];
        MT_EXPECT(mmrec_twotower_score(tape, u, v, &cfg, &out), MMREC_EINVAL, "temperature");
        MT_EXPECT(mmrec_twotower_score_paired(tape, u, u, &cfg, &out), MMREC_EINVAL,
                  "temperature");
        MT_EXPECT(mmrec_twotower_serving_vectors(&cfg, MMREC_TOWER_USER, a, 3, 4, a),
                  MMREC_EINVAL, "temperature");
    }
    MT_OK(mmrec_twotower_config_init(&cfg));
    cfg.score = 2;
    MT_EXPECT(mmrec_twotower_score(tape, u, v, &cfg, &out), MMREC_EINVAL, "score");
    MT_OK(mmrec_twotower_config_init(&cfg));
    cfg.eps = 0;
    MT_EXPECT(mmrec_twotower_score(tape, u, v, &cfg, &out), MMREC_EINVAL, "eps");
    MT_OK(mmrec_twotower_config_init(&cfg));
    cfg.struct_size = 3;
    MT_EXPECT(mmrec_twotower_score(tape, u, v, &cfg, &out), MMREC_EINVAL, "struct_size");
    ck_assert_ptr_null(out);
    /* NULL config: the defaults (dot, tau 1) */
    MT_OK(mmrec_twotower_score(tape, u, v, NULL, &out));

    float x[6] = {1, 2, 3, 4, NAN, 6}, y[6];
    MT_EXPECT(mmrec_twotower_serving_vectors(NULL, MMREC_TOWER_USER, NULL, 2, 3, y),
              MMREC_EINVAL, "x");
    MT_EXPECT(mmrec_twotower_serving_vectors(NULL, MMREC_TOWER_USER, x, 2, 3, NULL),
              MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_twotower_serving_vectors(NULL, MMREC_TOWER_USER, x, 0, 3, y), MMREC_EINVAL,
              "n is 0");
    MT_EXPECT(mmrec_twotower_serving_vectors(NULL, MMREC_TOWER_USER, x, 2, 0, y), MMREC_EINVAL,
              "dim 0");
    MT_EXPECT(mmrec_twotower_serving_vectors(NULL, 7, x, 1, 3, y), MMREC_EINVAL, "side");
    MT_EXPECT(mmrec_twotower_serving_vectors(NULL, MMREC_TOWER_ITEM, x, 2, 3, y), MMREC_ENUMERIC,
              "x[1, 1]");
    MT_EXPECT(mmrec_twotower_config_init_sized(NULL, sizeof cfg), MMREC_EINVAL, "cfg");
    MT_EXPECT(mmrec_twotower_config_init_sized(&cfg, 2), MMREC_EINVAL, "size");
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
}
END_TEST

/* ---- allocation failures ---- */

static mmrec_status mt_score_scenario(void *ctx) {
    (void)ctx;
    mmrec_tape *tape;
    mmrec_status s = mmrec_tape_create(&tape);
    if (s != MMREC_OK) return s;
    float a[4 * 5];
    mt_fill_uniform(a, 20, -1, 1, 3);
    mmrec_tensor *u, *v, *y, *loss;
    int64_t shape[2] = {4, 5};
    mmrec_twotower_config cfg;
    mmrec_twotower_config_init(&cfg);
    cfg.score = MMREC_SCORE_COSINE;
    cfg.temperature = 0.1f;
    s = mmrec_tape_tensor(tape, 2, shape, MMREC_TENSOR_REQUIRES_GRAD, &u);
    if (s == MMREC_OK) s = mmrec_tape_tensor(tape, 2, shape, MMREC_TENSOR_REQUIRES_GRAD, &v);
    float *du, *dv;
    if (s == MMREC_OK) s = mmrec_tensor_data(u, &du);
    if (s == MMREC_OK) s = mmrec_tensor_data(v, &dv);
    if (s == MMREC_OK) {
        memcpy(du, a, sizeof a);
        memcpy(dv, a, sizeof a);
    }
    if (s == MMREC_OK) s = mmrec_twotower_score(tape, u, v, &cfg, &y);
    if (s == MMREC_OK) s = mmrec_sum(tape, y, MMREC_AXIS_ALL, &loss);
    if (s == MMREC_OK) s = mmrec_tape_backward(tape, loss);
    mmrec_tape_destroy(tape);
    return s;
}

START_TEST(test_twotower_oom) {
    ck_assert_int_gt(mt_oom_loop("twotower score", mt_score_scenario, NULL), 0);
}
END_TEST

static Suite *twotower_scorer_suite(void) {
    Suite *s = suite_create("twotower_scorer");
    TCase *t = tcase_create("scorer");
    tcase_add_test(t, test_twotower_score_golden);
    tcase_add_test(t, test_twotower_score_gradcheck);
    tcase_add_test(t, test_twotower_towers_of_any_module);
    tcase_add_test(t, test_twotower_serving_vectors_give_the_scores);
    tcase_add_test(t, test_twotower_bad_input);
    tcase_add_test(t, test_twotower_oom);
    suite_add_tcase(s, t);
    return s;
}
