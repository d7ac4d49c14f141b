/* EM3 blocks: FQ-Former, target attention, CIC: gradients, masks, bad
 * input. */
#include "mt.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

MT_SUITE(em3_suite)

/* ---- FQ-Former ---- */

typedef struct mt_fq {
    mmrec_module *m;
    bool masked;
} mt_fq;

static mmrec_status mt_fq_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                              mmrec_tensor **out) {
    mt_fq *c = ctx;
    return mmrec_fqformer_forward(c->m, tape, in[0], in[1], c->masked ? in[2] : NULL, out);
}

START_TEST(test_fqformer) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_fqformer_config c;
    MT_OK(mmrec_fqformer_config_init(&c));
    ck_assert(c.num_queries == 4 && c.norm_first == 1);
    c.image_dim = 6;
    c.text_dim = 5;
    c.dim = 8;
    c.num_queries = 2;
    c.num_layers = 2;
    c.num_heads = 2;
    c.ffn_dim = 12;
    c.dropout = 0.0f;
    mmrec_module *fq, *flat;
    MT_OK(mmrec_fqformer_create(model, "fq", &c, &fq));
    c.flatten = 1;
    c.norm_first = 0;
    c.num_layers = 1;
    MT_OK(mmrec_fqformer_create(model, "flat", &c, &flat));
    mmrec_tensor *p;
    MT_OK(mmrec_model_param(model, "fq.queries", &p));
    MT_OK(mmrec_model_param(model, "fq.f_v.weight", &p));
    MT_OK(mmrec_model_param(model, "fq.layers.1.linear2.bias", &p));
    mt_perturb_params(model, 3);

    float img[2 * 2 * 6], txt[2 * 3 * 5], pres[2 * 5] = {1, 0, 1, 1, 1, 1, 1, 0, 0, 0};
    mt_fill_uniform(img, 24, -1, 1, 1);
    mt_fill_uniform(txt, 30, -1, 1, 2);
    mt_input in[3] = {{3, {2, 2, 6}, img, false}, {3, {2, 3, 5}, txt, false},
                      {2, {2, 5}, pres, true}};
    mt_gradcheck_opts opts = {.h = 3e-2f, .tol = 2e-2f, .floor = 5e-3f};
    mt_fq a = {fq, false}, b = {fq, true}, d = {flat, true};
    mt_gradcheck("fqformer", mt_fq_fwd, &a, in, 2, model, &opts);
    mt_gradcheck("fqformer masked", mt_fq_fwd, &b, in, 3, model, &opts);
    mt_gradcheck("fqformer flat post-LN", mt_fq_fwd, &d, in, 3, model, &opts);

    /* a missing modality changes nothing whatever its features hold */
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    mmrec_tensor *ti = mt_tape_tensor(tape, 3, in[0].shape, img, 0);
    mmrec_tensor *tt = mt_tape_tensor(tape, 3, in[1].shape, txt, 0);
    mmrec_tensor *tp = mt_tape_tensor(tape, 2, in[2].shape, pres, 0), *y1, *y2;
    MT_OK(mmrec_fqformer_forward(fq, tape, ti, tt, tp, &y1));
    float *id;
    MT_OK(mmrec_tensor_data(ti, &id));
    id[6] += 100.0f; /* batch 0, image token 1: absent */
    MT_OK(mmrec_fqformer_forward(fq, tape, ti, tt, tp, &y2));
    const float *d1, *d2;
    MT_OK(mmrec_tensor_data_const(y1, &d1));
    MT_OK(mmrec_tensor_data_const(y2, &d2));
    for (int i = 0; i < 2 * 2 * 8; i++) ck_assert_float_eq(d1[i], d2[i]);
    int nd;
    int64_t shape[MMREC_MAX_DIMS];
    MT_OK(mmrec_fqformer_forward(flat, tape, ti, tt, NULL, &y1));
    MT_OK(mmrec_tensor_shape(y1, &nd, shape));
    ck_assert(nd == 2 && shape[0] == 2 && shape[1] == 16);

    MT_EXPECT(mmrec_fqformer_forward(fq, tape, tt, ti, NULL, &y1), MMREC_ESHAPE,
              "image is [2,3,5]");
    MT_EXPECT(mmrec_fqformer_forward(fq, tape, ti, tt, ti, &y1), MMREC_ESHAPE,
              "presence is [2,2,6]");
    MT_EXPECT(mmrec_fqformer_forward(fq, tape, ti, NULL, NULL, &y1), MMREC_EINVAL, "'text'");
    c.num_heads = 3;
    MT_EXPECT(mmrec_fqformer_create(model, "z", &c, NULL), MMREC_EINVAL, "divide dim 8");
    c.num_heads = 2;
    c.num_layers = 0;
    MT_EXPECT(mmrec_fqformer_create(model, "z", &c, NULL), MMREC_EINVAL, "cfg->num_layers is 0");
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- target attention ---- */

typedef struct mt_ta {
    mmrec_module *m;
    bool masked;
} mt_ta;

static mmrec_status mt_ta_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                              mmrec_tensor **out) {
    mt_ta *c = ctx;
    return mmrec_target_attention_forward(c->m, tape, in[0], in[1], c->masked ? in[2] : NULL,
                                          out);
}

START_TEST(test_target_attention) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_target_attention_config c;
    MT_OK(mmrec_target_attention_config_init(&c));
    c.dim = 6;
    mmrec_module *dot, *din;
    MT_OK(mmrec_target_attention_create(model, "dot", &c, &dot));
    c.score = MMREC_TA_MLP;
    int64_t hidden[1] = {7};
    c.hidden = hidden;
    c.num_hidden = 1;
    MT_OK(mmrec_target_attention_create(model, "din", &c, &din));
    mmrec_tensor *p;
    MT_OK(mmrec_model_param(model, "din.mlp.1.weight", &p));
    mt_perturb_params(model, 4);

    float cand[3 * 6], seq[3 * 5 * 6], mask[3 * 5] = {1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1};
    mt_fill_uniform(cand, 18, -1, 1, 1);
    mt_fill_uniform(seq, 90, -1, 1, 2);
    mt_input in[3] = {{2, {3, 6}, cand, false}, {3, {3, 5, 6}, seq, false},
                      {2, {3, 5}, mask, true}};
    mt_ta cases[4] = {{dot, false}, {dot, true}, {din, false}, {din, true}};
    mt_gradcheck_opts opts = {.h = 3e-2f, .tol = 2e-2f, .floor = 5e-3f};
    for (int i = 0; i < 4; i++)
        mt_gradcheck("target attention", mt_ta_fwd, &cases[i], in, cases[i].masked ? 3 : 2,
                     model, &opts);

    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    float none[3 * 5] = {0};
    mmrec_tensor *tc = mt_tape_tensor(tape, 2, in[0].shape, cand, 0);
    mmrec_tensor *ts = mt_tape_tensor(tape, 3, in[1].shape, seq, 0);
    mmrec_tensor *tm = mt_tape_tensor(tape, 2, in[2].shape, none, 0), *y;
    MT_OK(mmrec_target_attention_forward(dot, tape, tc, ts, tm, &y));
    const float *yd;
    MT_OK(mmrec_tensor_data_const(y, &yd));
    for (int i = 0; i < 18; i++) ck_assert_float_eq(yd[i], 0.0f); /* no behaviour */
    MT_EXPECT(mmrec_target_attention_forward(dot, tape, ts, ts, NULL, &y), MMREC_ESHAPE,
              "candidate");
    MT_EXPECT(mmrec_target_attention_forward(dot, tape, tc, tc, NULL, &y), MMREC_ESHAPE,
              "sequence is [3,6]");
    MT_EXPECT(mmrec_target_attention_forward(dot, tape, tc, ts, tc, &y), MMREC_ESHAPE, "mask");
    c.num_hidden = 9;
    MT_EXPECT(mmrec_target_attention_create(model, "z", &c, NULL), MMREC_EINVAL,
              "cfg->num_hidden is 9");
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* The DIN score's MLP is built inside mmrec_target_attention_create: a bad
 * hidden size, activation, dim or name is reported by that function and
 * names its own config field, and a failure leaves the model unchanged. */
START_TEST(test_target_attention_mlp_errors_are_its_own) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_target_attention_config c;
    MT_OK(mmrec_target_attention_config_init(&c));
    c.dim = 4;
    c.score = MMREC_TA_MLP;
    int64_t hidden[2] = {3, 0};
    c.hidden = hidden;
    c.num_hidden = 2;
    MT_EXPECT(mmrec_target_attention_create(model, "ta", &c, NULL), MMREC_EINVAL,
              "mmrec_target_attention_create: cfg->hidden[1] is 0, must be >= 1");
    hidden[1] = 5;
    c.activation = (mmrec_activation)42;
    MT_EXPECT(mmrec_target_attention_create(model, "ta", &c, NULL), MMREC_EINVAL,
              "mmrec_target_attention_create: cfg->activation is 42");
    c.activation = MMREC_ACT_RELU;
    c.dim = INT64_C(1) << 62; /* 4 * dim, the MLP's input, must not overflow */
    MT_EXPECT(mmrec_target_attention_create(model, "ta", &c, NULL), MMREC_EINVAL,
              "mmrec_target_attention_create: cfg->dim is 4611686018427387904");
    c.dim = 4;
    char name[200];
    memset(name, 'n', 199);
    name[199] = '\0';
    MT_EXPECT(mmrec_target_attention_create(model, name, &c, NULL), MMREC_EINVAL,
              "mmrec_target_attention_create: name is 199 bytes, at most 196");
    /* "<name>.mlp" taken by another module */
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = lc.out_dim = 2;
    MT_OK(mmrec_linear_create(model, "ta.mlp", &lc, NULL));
    size_t before, after;
    MT_OK(mmrec_model_num_params(model, &before));
    MT_EXPECT(mmrec_target_attention_create(model, "ta", &c, NULL), MMREC_ESTATE,
              "mmrec_target_attention_create: a module named 'ta.mlp' already exists");
    MT_OK(mmrec_model_num_params(model, &after));
    ck_assert_uint_eq(after, before);
    MT_OK(mmrec_target_attention_create(model, "ta2", &c, NULL));
    mmrec_model_destroy(model);
}
END_TEST

/* ---- CIC ---- */

static const int64_t mt_negs[4 * 2] = {1, 2, 3, 0, 0, 1, 2, 1};

typedef struct mt_cic {
    int num_negatives;
    const int64_t *negatives;
} mt_cic;

static mmrec_status mt_cic_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    mt_cic *k = ctx;
    mmrec_cic_config c;
    mmrec_status s = mmrec_cic_config_init(&c);
    if (s != MMREC_OK) return s;
    c.temperature = 0.5f;
    c.num_negatives = k->num_negatives;
    c.negatives = k->negatives;
    return mmrec_loss_cic(tape, in[0], in[1], &c, out);
}

START_TEST(test_cic) {
    float cv[4 * 5], iv[4 * 5];
    mt_fill_uniform(cv, 20, -1, 1, 1);
    mt_fill_uniform(iv, 20, -1, 1, 2);
    mt_input in[2] = {{2, {4, 5}, cv, false}, {2, {4, 5}, iv, false}};
    mt_cic all = {0, NULL}, fixed = {2, mt_negs};
    mt_gradcheck("cic all negatives", mt_cic_fwd, &all, in, 2, NULL, NULL);
    mt_gradcheck("cic fixed negatives", mt_cic_fwd, &fixed, in, 2, NULL, NULL);

    /* value: with one negative per row, by hand */
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *tc = mt_tape_tensor(tape, 2, in[0].shape, cv, 0);
    mmrec_tensor *ti = mt_tape_tensor(tape, 2, in[1].shape, iv, 0), *loss;
    int64_t one[4] = {1, 2, 3, 0};
    mmrec_cic_config c;
    MT_OK(mmrec_cic_config_init(&c));
    c.temperature = 0.5f;
    c.num_negatives = 1;
    c.negatives = one;
    MT_OK(mmrec_loss_cic(tape, tc, ti, &c, &loss));
    double want = 0;
    for (int i = 0; i < 4; i++) {
        int j = (int)one[i];
        double s[2][2]; /* [C_i or I_i][pos or neg] */
        for (int dir = 0; dir < 2; dir++) {
            const float *a = dir ? iv : cv, *b = dir ? cv : iv;
            for (int k = 0; k < 2; k++) {
                int col = k ? j : i;
                double dotp = 0, na = 0, nb = 0;
                for (int e = 0; e < 5; e++) {
                    dotp += a[i * 5 + e] * b[col * 5 + e];
                    na += a[i * 5 + e] * a[i * 5 + e];
                    nb += b[col * 5 + e] * b[col * 5 + e];
                }
                s[dir][k] = dotp / sqrt(na * nb) / 0.5;
            }
            want += -(s[dir][0] - log(exp(s[dir][0]) + exp(s[dir][1]))) / 8.0;
        }
    }
    const float *ld;
    MT_OK(mmrec_tensor_data_const(loss, &ld));
    ck_assert_msg(fabs(ld[0] - want) < 1e-5, "cic %g vs %g", (double)ld[0], want);

    /* sampled negatives: deterministic for a tape seed */
    c.negatives = NULL;
    c.num_negatives = 2;
    float v1, v2;
    MT_OK(mmrec_tape_seed(tape, 3));
    MT_OK(mmrec_loss_cic(tape, tc, ti, &c, &loss));
    MT_OK(mmrec_tensor_copy_to(loss, &v1, 1));
    MT_OK(mmrec_tape_seed(tape, 3));
    MT_OK(mmrec_loss_cic(tape, tc, ti, &c, &loss));
    MT_OK(mmrec_tensor_copy_to(loss, &v2, 1));
    ck_assert_float_eq(v1, v2);

    int64_t bad[4] = {0, 2, 3, 0};
    c.num_negatives = 1;
    c.negatives = bad;
    MT_EXPECT(mmrec_loss_cic(tape, tc, ti, &c, &loss), MMREC_ERANGE, "cfg->negatives[0] is 0");
    int64_t rep[8] = {1, 1, 3, 0, 0, 1, 2, 1};
    c.num_negatives = 2;
    c.negatives = rep;
    MT_EXPECT(mmrec_loss_cic(tape, tc, ti, &c, &loss), MMREC_EINVAL, "repeats 1 in row 0");
    c.negatives = NULL;
    c.num_negatives = 4;
    MT_EXPECT(mmrec_loss_cic(tape, tc, ti, &c, &loss), MMREC_EINVAL, "cfg->num_negatives is 4");
    c.num_negatives = 0;
    c.temperature = 0.0f;
    MT_EXPECT(mmrec_loss_cic(tape, tc, ti, &c, &loss), MMREC_EINVAL, "cfg->temperature");
    c.temperature = 0.1f;
    int64_t s3[2] = {4, 3};
    mmrec_tensor *t3;
    MT_OK(mmrec_tape_tensor(tape, 2, s3, 0, &t3));
    MT_EXPECT(mmrec_loss_cic(tape, tc, t3, &c, &loss), MMREC_ESHAPE, "ids is [4,3]");
    MT_EXPECT(mmrec_loss_cic(tape, tc, ti, NULL, &loss), MMREC_EINVAL, "'cfg'");
    mmrec_tape_destroy(tape);
}
END_TEST

static Suite *em3_suite(void) {
    Suite *s = suite_create("em3");
    TCase *tc = tcase_create("em3");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fqformer);
    tcase_add_test(tc, test_target_attention);
    tcase_add_test(tc, test_target_attention_mlp_errors_are_its_own);
    tcase_add_test(tc, test_cic);
    suite_add_tcase(s, tc);
    return s;
}
