/* The sequence encoder (modules.h): IISAN's user encoder against PyTorch,
 * gradients, parameters and their initialization, dropout, bad input,
 * allocation. */
#include "mt.h"
#include "core/config_sizes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

MT_SUITE(sequence_encoder_suite)

#define MT_TRY(call)                                                                       \
    do {                                                                                   \
        mmrec_status mt__t = (call);                                                       \
        if (mt__t != MMREC_OK) return mt__t;                                               \
    } while (0)

static mmrec_module *mt_seqenc(mmrec_model *model, const char *name, int64_t dim,
                               int64_t max_length, int layers, int heads, float dropout) {
    mmrec_sequence_encoder_config c;
    MT_OK(mmrec_sequence_encoder_config_init(&c));
    c.dim = dim;
    c.max_length = max_length;
    c.num_layers = layers;
    c.num_heads = heads;
    c.dropout = dropout;
    mmrec_module *m;
    MT_OK(mmrec_sequence_encoder_create(model, name, &c, &m));
    return m;
}

/* ---- configuration and parameters ---- */

START_TEST(test_seqenc_config_defaults_and_sizes) {
    mmrec_sequence_encoder_config c;
    MT_OK(mmrec_sequence_encoder_config_init(&c));
    ck_assert_uint_eq(c.struct_size, sizeof c);
    ck_assert(c.dim == 0 && c.max_length == 0 && c.num_layers == 2 && c.num_heads == 2);
    ck_assert(c.ffn_dim == 0 && c.dropout == 0.1f && c.eps == 1e-6f);
    ck_assert(c.activation == MMREC_ACT_RELU && c.attn_bias == 0);
    ck_assert_uint_eq(MMREC__MIN_SIZE(mmrec_sequence_encoder_config), 56);
    MT_EXPECT(mmrec_sequence_encoder_config_init_sized(&c, 55), MMREC_EINVAL, "size is 55");
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    struct {
        mmrec_sequence_encoder_config c;
        int64_t extra;
    } big;
    MT_OK(mmrec_sequence_encoder_config_init_sized(&big.c, sizeof big));
    ck_assert(big.extra == 0 && big.c.num_layers == 2);
    big.c.dim = 4;
    big.c.max_length = 3;
    MT_OK(mmrec_sequence_encoder_create(model, "big", &big.c, NULL));
    big.extra = 1;
    MT_EXPECT(mmrec_sequence_encoder_create(model, "big2", &big.c, NULL), MMREC_EINVAL,
              "newer libmmrec");
    big.c.struct_size = 40;
    MT_EXPECT(mmrec_sequence_encoder_create(model, "small", &big.c, NULL), MMREC_EINVAL,
              "cfg->struct_size is 40");
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_seqenc_bad_config) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_sequence_encoder_config c, bad;
    MT_OK(mmrec_sequence_encoder_config_init(&c));
    c.dim = 8;
    c.max_length = 5;
#define MT_BAD(field, value, needle)                                                       \
    do {                                                                                   \
        bad = c;                                                                           \
        bad.field = value;                                                                 \
        MT_EXPECT(mmrec_sequence_encoder_create(model, "s", &bad, NULL), MMREC_EINVAL,     \
                  needle);                                                                 \
    } while (0)
    MT_BAD(dim, 0, "cfg->dim is 0");
    MT_BAD(max_length, 0, "cfg->max_length is 0");
    MT_BAD(max_length, -4, "cfg->max_length is -4");
    MT_BAD(num_layers, 0, "cfg->num_layers is 0");
    MT_BAD(num_layers, 33, "cfg->num_layers is 33");
    MT_BAD(num_heads, 3, "cfg->num_heads is 3");
    MT_BAD(num_heads, 0, "cfg->num_heads is 0");
    MT_BAD(ffn_dim, -1, "cfg->ffn_dim is -1");
    MT_BAD(dropout, 1.0f, "cfg->dropout is 1");
    MT_BAD(dropout, -0.5f, "cfg->dropout is -0.5");
    MT_BAD(eps, 0.0f, "cfg->eps is 0");
    MT_BAD(eps, NAN, "cfg->eps is nan");
    MT_BAD(activation, MMREC_ACT_NONE, "cfg->activation is 0");
    MT_BAD(activation, (mmrec_activation)9, "cfg->activation is 9");
    MT_BAD(attn_bias, 2, "cfg->attn_bias is 2");
#undef MT_BAD
    MT_EXPECT(mmrec_sequence_encoder_create(model, "", &c, NULL), MMREC_EINVAL, "name");
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 0);
    /* a name taken by the encoder or by one of its layers */
    MT_OK(mmrec_sequence_encoder_create(model, "s", &c, NULL));
    MT_EXPECT(mmrec_sequence_encoder_create(model, "s", &c, NULL), MMREC_ESTATE,
              "already exists");
    mmrec_transformer_config tc;
    MT_OK(mmrec_transformer_config_init(&tc));
    tc.dim = 8;
    tc.num_heads = 2;
    MT_OK(mmrec_transformer_create(model, "t.blocks.1", &tc, NULL));
    MT_OK(mmrec_model_num_params(model, &n));
    MT_EXPECT(mmrec_sequence_encoder_create(model, "t", &c, NULL), MMREC_ESTATE,
              "mmrec_sequence_encoder_create: a module named 't.blocks.1' already exists");
    size_t n2;
    MT_OK(mmrec_model_num_params(model, &n2));
    ck_assert_uint_eq(n2, n); /* the failed creation left nothing behind */
    mmrec_model_destroy(model);
}
END_TEST

/* mean and root mean square of a tensor's values */
static void mt_stats(mmrec_tensor *t, double *mean, double *rms, size_t *n) {
    const float *d;
    MT_OK(mmrec_tensor_numel(t, n));
    MT_OK(mmrec_tensor_data_const(t, &d));
    double s = 0, q = 0;
    for (size_t i = 0; i < *n; i++) {
        s += d[i];
        q += (double)d[i] * d[i];
    }
    *mean = s / (double)*n;
    *rms = sqrt(q / (double)*n);
}

START_TEST(test_seqenc_parameters_and_init) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    enum { DIM = 64, LEN = 50 };
    mt_seqenc(model, "user", DIM, LEN, 2, 2, 0.1f);
    /* the reference's named_parameters(), renamed */
    static const struct {
        const char *name;
        int64_t rows, cols; /* cols 0: a vector */
        double std;         /* of the initialization; 0: the constant below */
        float value;
    } want[] = {
        {"user.position_embedding.weight", LEN, DIM, 0.13245324, 0}, /* sqrt(2 / (64 + 50)) */
        {"user.layer_norm.weight", DIM, 0, 0, 1},
        {"user.layer_norm.bias", DIM, 0, 0, 0},
        {"user.blocks.0.self_attn.in_proj_weight", 3 * DIM, DIM, 0.125, 0},
        {"user.blocks.0.self_attn.out_proj.weight", DIM, DIM, 0.125, 0},
        {"user.blocks.0.linear1.weight", 4 * DIM, DIM, 0.079056942, 0}, /* sqrt(2 / 320) */
        {"user.blocks.0.linear1.bias", 4 * DIM, 0, 0, 0},
        {"user.blocks.0.linear2.weight", DIM, 4 * DIM, 0.079056942, 0},
        {"user.blocks.0.linear2.bias", DIM, 0, 0, 0},
        {"user.blocks.0.norm1.weight", DIM, 0, 0, 1},
        {"user.blocks.0.norm1.bias", DIM, 0, 0, 0},
        {"user.blocks.0.norm2.weight", DIM, 0, 0, 1},
        {"user.blocks.0.norm2.bias", DIM, 0, 0, 0},
        {"user.blocks.1.self_attn.in_proj_weight", 3 * DIM, DIM, 0.125, 0},
    };
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 3 + 2 * 10);
    for (size_t p = 0; p < sizeof want / sizeof want[0]; p++) {
        const char *name;
        mmrec_tensor *t;
        MT_OK(mmrec_model_param_at(model, p, &name, &t));
        ck_assert_str_eq(name, want[p].name);
        int nd;
        int64_t shape[MMREC_MAX_DIMS];
        MT_OK(mmrec_tensor_shape(t, &nd, shape));
        ck_assert_int_eq(nd, want[p].cols ? 2 : 1);
        ck_assert_int_eq(shape[0], want[p].rows);
        if (want[p].cols) ck_assert_int_eq(shape[1], want[p].cols);
        double mean, rms;
        size_t numel;
        mt_stats(t, &mean, &rms, &numel);
        if (want[p].std > 0) {
            /* N(0, std^2): >= 3200 draws, the rms within 5 % and the mean
             * within 4 standard errors */
            ck_assert_msg(fabs(rms / want[p].std - 1) < 0.05, "%s: rms %g, std %g", name, rms,
                          want[p].std);
            ck_assert_msg(fabs(mean) < 4 * want[p].std / sqrt((double)numel), "%s: mean %g",
                          name, mean);
        } else {
            const float *d;
            MT_OK(mmrec_tensor_data_const(t, &d));
            for (size_t i = 0; i < numel; i++) ck_assert(d[i] == want[p].value);
        }
    }
    size_t trainable, total;
    MT_OK(mmrec_model_param_count(model, &trainable, &total));
    size_t block = 4 * DIM * DIM + 2 * (4 * DIM * DIM) + 4 * DIM + DIM + 4 * DIM;
    ck_assert_uint_eq(total, LEN * DIM + 2 * DIM + 2 * block);
    ck_assert_uint_eq(trainable, total);
    mmrec_tensor *t;
    MT_EXPECT(mmrec_model_param(model, "user.blocks.0.self_attn.in_proj_bias", &t),
              MMREC_ENOTFOUND, NULL);
    /* attention biases (zeros) on request; three layers */
    mmrec_sequence_encoder_config c;
    MT_OK(mmrec_sequence_encoder_config_init(&c));
    c.dim = 6;
    c.max_length = 4;
    c.num_layers = 3;
    c.num_heads = 3;
    c.ffn_dim = 5;
    c.attn_bias = 1;
    MT_OK(mmrec_sequence_encoder_create(model, "b", &c, NULL));
    size_t n2;
    MT_OK(mmrec_model_num_params(model, &n2));
    ck_assert_uint_eq(n2 - n, 3 + 3 * 12);
    MT_OK(mmrec_model_param(model, "b.blocks.2.self_attn.in_proj_bias", &t));
    double mean, rms;
    size_t numel;
    mt_stats(t, &mean, &rms, &numel);
    ck_assert(numel == 18 && rms == 0.0);
    MT_OK(mmrec_model_param(model, "b.blocks.2.linear1.weight", &t));
    int nd;
    int64_t shape[MMREC_MAX_DIMS];
    MT_OK(mmrec_tensor_shape(t, &nd, shape));
    ck_assert(nd == 2 && shape[0] == 5 && shape[1] == 6);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_seqenc_forward_bad_input) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *enc = mt_seqenc(model, "s", 6, 4, 1, 2, 0.1f);
    mmrec_module *lin;
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = lc.out_dim = 6;
    MT_OK(mmrec_linear_create(model, "lin", &lc, &lin));
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    int64_t s3[3] = {2, 3, 6}, s5[3] = {2, 5, 6}, s_d[3] = {2, 3, 5}, sm[2] = {2, 3},
            sm4[2] = {2, 4};
    mmrec_tensor *items, *long_items, *narrow, *mask, *mask4, *foreign, *st = NULL, *u = NULL;
    MT_OK(mmrec_tape_tensor(tape, 3, s3, 0, &items));
    MT_OK(mmrec_tape_tensor(tape, 3, s5, 0, &long_items));
    MT_OK(mmrec_tape_tensor(tape, 3, s_d, 0, &narrow));
    MT_OK(mmrec_tape_tensor(tape, 2, sm, 0, &mask));
    MT_OK(mmrec_tape_tensor(tape, 2, sm4, 0, &mask4));
    MT_OK(mmrec_tape_tensor(other, 2, sm, 0, &foreign));
    float *md;
    MT_OK(mmrec_tensor_data(mask, &md));
    const float rows[6] = {0, 1, 1, 1, 1, 0};
    memcpy(md, rows, sizeof rows);
    size_t cap0, hw0, cap1, hw1;
    MT_OK(mmrec_tape_memory(tape, &cap0, &hw0));

    MT_EXPECT(mmrec_sequence_encoder_forward(enc, tape, long_items, NULL, &st, &u), MMREC_ESHAPE,
              "items is [2,5,6]: T = 5 is above cfg->max_length = 4");
    MT_EXPECT(mmrec_sequence_encoder_forward(enc, tape, narrow, mask, &st, &u), MMREC_ESHAPE,
              "items is [2,3,5], expected [batch, T, 6]");
    MT_EXPECT(mmrec_sequence_encoder_forward(enc, tape, items, mask4, &st, &u), MMREC_ESHAPE,
              "mask is [2,4], expected [2, 3]");
    MT_EXPECT(mmrec_sequence_encoder_forward(enc, tape, items, foreign, &st, &u), MMREC_EINVAL,
              "mask");
    md[4] = NAN;
    MT_EXPECT(mmrec_sequence_encoder_forward(enc, tape, items, mask, &st, &u), MMREC_ENUMERIC,
              "mask[1, 1] is nan");
    md[3] = md[4] = md[5] = 0.0f; /* row 1 all padding */
    MT_EXPECT(mmrec_sequence_encoder_forward(enc, tape, items, mask, &st, &u), MMREC_EINVAL,
              "mask row 1 is an empty sequence");
    MT_EXPECT(mmrec_sequence_encoder_forward(enc, tape, items, mask, NULL, NULL), MMREC_EINVAL,
              "'states' and 'last' are both NULL");
    MT_EXPECT(mmrec_sequence_encoder_forward(lin, tape, items, NULL, &st, &u), MMREC_EINVAL,
              "encoder");
    /* nothing was written or recorded */
    ck_assert(st == NULL && u == NULL);
    MT_OK(mmrec_tape_memory(tape, &cap1, &hw1));
    ck_assert_uint_eq(hw1, hw0);
    md[4] = 1.0f;
    MT_OK(mmrec_sequence_encoder_forward(enc, tape, items, mask, &st, &u));
    ck_assert(st != NULL && u != NULL);
    mmrec_tape_reset(tape);
    MT_EXPECT(mmrec_sequence_encoder_forward(enc, tape, items, NULL, &st, NULL), MMREC_ESTALE,
              "'items' belongs to a step");
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- against PyTorch ---- */

/* One golden case: the states at the positions with a real position at or
 * before them (the others attend to nothing here and to every key in the
 * reference, whose -1e9 scores tie), the user vectors, and the gradients of
 * sum(r_states * states) + sum(r_last * last). */
static void mt_seqenc_golden(const mt_golden *gold, const char *kase) {
    char key[96];
#define MT_G(what) (snprintf(key, sizeof key, "%s.%s", kase, what), mt_golden_get(gold, key))
    const float *cf = MT_G("cfg")->data;
    const mt_array *items = MT_G("items"), *mask = MT_G("mask"), *seen = MT_G("seen");
    const mt_array *want_states = MT_G("states"), *want_last = MT_G("last");
    const mt_array *r_states = MT_G("r_states"), *r_last = MT_G("r_last");
    const mt_array *ditems = MT_G("ditems");
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *enc = mt_seqenc(model, "enc", (int64_t)cf[0], (int64_t)cf[1], (int)cf[2],
                                  (int)cf[3], 0.0f);
    bool use_mask = cf[4] != 0.0f;
    mt_load_params(gold, kase, model, 4);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *x = mt_tape_tensor(tape, items->ndim, items->shape, items->data,
                                     MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *m = use_mask ? mt_tape_tensor(tape, 2, mask->shape, mask->data, 0) : NULL;
    mmrec_tensor *states, *last;
    MT_OK(mmrec_sequence_encoder_forward(enc, tape, x, m, &states, &last));
    size_t n = want_states->numel, d = (size_t)cf[0];
    float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
    MT_OK(mmrec_tensor_copy_to(states, got, n));
    for (size_t i = 0; i < n; i++) {
        bool keep = seen->data[i / d] != 0.0f;
        got[i] = keep ? got[i] : 0.0f;
        want[i] = keep ? want_states->data[i] : 0.0f;
    }
    snprintf(key, sizeof key, "%s.states", kase);
    mt_assert_close(key, got, want, n, 1e-5f, 1e-6f);
    MT_OK(mmrec_tensor_copy_to(last, got, want_last->numel));
    snprintf(key, sizeof key, "%s.last", kase);
    mt_assert_close(key, got, want_last->data, want_last->numel, 1e-5f, 1e-6f);
    /* the loss, through the library's ops */
    mmrec_tensor *rs = mt_tape_tensor(tape, 3, r_states->shape, r_states->data, 0);
    mmrec_tensor *rl = mt_tape_tensor(tape, 2, r_last->shape, r_last->data, 0);
    mmrec_tensor *a, *b, *loss;
    MT_OK(mmrec_mul(tape, states, rs, &a));
    MT_OK(mmrec_sum(tape, a, MMREC_AXIS_ALL, &a));
    MT_OK(mmrec_mul(tape, last, rl, &b));
    MT_OK(mmrec_sum(tape, b, MMREC_AXIS_ALL, &b));
    MT_OK(mmrec_add(tape, a, b, &loss));
    MT_OK(mmrec_model_zero_grad(model));
    MT_OK(mmrec_tape_backward(tape, loss));
    const float *g;
    MT_OK(mmrec_tensor_grad(x, &g));
    snprintf(key, sizeof key, "%s.ditems", kase);
    mt_assert_close(key, g, ditems->data, ditems->numel, 1e-5f, 1e-6f);
    mt_check_grads(gold, kase, model, 4);
    free(got);
    free(want);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
#undef MT_G
}

START_TEST(test_seqenc_matches_pytorch) {
    mt_golden gold;
    mt_golden_load(&gold, "sequence_encoder.bin");
    static const char *const cases[] = {"pad_l1", "pad_l2", "full_l2"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) mt_seqenc_golden(&gold, cases[i]);
    mt_golden_free(&gold);
}
END_TEST

/* No mask and a mask of ones give the same bits; `last` is then the
 * states' last position; asking for one output gives the values of
 * asking for both. */
START_TEST(test_seqenc_no_mask_is_all_real) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    enum { B = 3, T = 4, D = 6 };
    mmrec_module *enc = mt_seqenc(model, "s", D, 5, 2, 3, 0.1f);
    mt_perturb_params(model, 3);
    float items[B * T * D], ones[B * T];
    mt_fill_uniform(items, B * T * D, -1, 1, 4);
    for (int i = 0; i < B * T; i++) ones[i] = 1.0f;
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    int64_t sx[3] = {B, T, D}, sm[2] = {B, T};
    mmrec_tensor *x = mt_tape_tensor(tape, 3, sx, items, 0);
    mmrec_tensor *m = mt_tape_tensor(tape, 2, sm, ones, 0);
    mmrec_tensor *s1, *l1, *s2, *l2, *s3, *l3;
    MT_OK(mmrec_sequence_encoder_forward(enc, tape, x, NULL, &s1, &l1));
    MT_OK(mmrec_sequence_encoder_forward(enc, tape, x, m, &s2, &l2));
    MT_OK(mmrec_sequence_encoder_forward(enc, tape, x, m, &s3, NULL));
    MT_OK(mmrec_sequence_encoder_forward(enc, tape, x, NULL, NULL, &l3));
    float a[B * T * D], b[B * T * D], la[B * D], lb[B * D];
    MT_OK(mmrec_tensor_copy_to(s1, a, B * T * D));
    MT_OK(mmrec_tensor_copy_to(s2, b, B * T * D));
    ck_assert(memcmp(a, b, sizeof a) == 0);
    MT_OK(mmrec_tensor_copy_to(s3, b, B * T * D));
    ck_assert(memcmp(a, b, sizeof a) == 0);
    MT_OK(mmrec_tensor_copy_to(l1, la, B * D));
    MT_OK(mmrec_tensor_copy_to(l2, lb, B * D));
    ck_assert(memcmp(la, lb, sizeof la) == 0);
    MT_OK(mmrec_tensor_copy_to(l3, lb, B * D));
    ck_assert(memcmp(la, lb, sizeof la) == 0);
    for (int r = 0; r < B; r++)
        ck_assert(memcmp(la + r * D, a + (r * T + T - 1) * D, D * sizeof(float)) == 0);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* Dropout acts on training tapes (the same seed, the same draws) and an
 * inference tape gives the same values on every call. */
START_TEST(test_seqenc_dropout_train_only) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    enum { B = 2, T = 5, D = 8 };
    mmrec_module *enc = mt_seqenc(model, "s", D, T, 2, 2, 0.3f);
    float items[B * T * D];
    mt_fill_uniform(items, B * T * D, -1, 1, 7);
    const float mask[B * T] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 0};
    int64_t sx[3] = {B, T, D}, sm[2] = {B, T};
    float out[4][B * T * D], last[4][B * D];
    for (int v = 0; v < 4; v++) {
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        if (v < 2) MT_OK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
        MT_OK(mmrec_tape_seed(tape, 17));
        mmrec_tensor *x = mt_tape_tensor(tape, 3, sx, items, 0);
        mmrec_tensor *m = mt_tape_tensor(tape, 2, sm, mask, 0), *s, *u;
        MT_OK(mmrec_sequence_encoder_forward(enc, tape, x, m, &s, &u));
        MT_OK(mmrec_tensor_copy_to(s, out[v], B * T * D));
        MT_OK(mmrec_tensor_copy_to(u, last[v], B * D));
        mmrec_tape_destroy(tape);
    }
    ck_assert(memcmp(out[0], out[1], sizeof out[0]) == 0);   /* inference: deterministic */
    ck_assert(memcmp(last[0], last[1], sizeof last[0]) == 0);
    ck_assert(memcmp(out[2], out[3], sizeof out[0]) == 0);   /* training: seeded */
    ck_assert(memcmp(last[2], last[3], sizeof last[0]) == 0);
    /* training differs from inference at most positions */
    int differ = 0;
    for (int i = 0; i < B * T * D; i++) differ += fabsf(out[2][i] - out[0][i]) > 1e-4f;
    ck_assert_msg(differ > B * T * D / 2, "%d of %d values changed by dropout", differ,
                  B * T * D);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- gradients ---- */

typedef struct mt_seqenc_ctx {
    mmrec_module *enc;
    bool mask, last;
} mt_seqenc_ctx;

static mmrec_status mt_seqenc_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                  mmrec_tensor **out) {
    const mt_seqenc_ctx *c = ctx;
    mmrec_tensor *m = c->mask ? in[1] : NULL;
    if (c->last) return mmrec_sequence_encoder_forward(c->enc, tape, in[0], m, NULL, out);
    return mmrec_sequence_encoder_forward(c->enc, tape, in[0], m, out, NULL);
}

/* Finite differences of the states and of the user vectors, left and
 * right padding and no mask, 1 and 2 layers, ReLU and GELU, with and
 * without attention biases: the gradients of the items, the position
 * table, the input LayerNorm and every layer's parameters. */
START_TEST(test_seqenc_gradcheck) {
    static const struct {
        int layers;
        mmrec_activation act;
        int attn_bias;
        bool mask, last;
    } cases[] = {
        {1, MMREC_ACT_RELU, 0, true, false}, {2, MMREC_ACT_RELU, 0, true, true},
        {2, MMREC_ACT_GELU, 1, true, false}, {1, MMREC_ACT_GELU, 0, false, true},
    };
    enum { B = 3, T = 4, D = 6 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        mmrec_sequence_encoder_config c;
        MT_OK(mmrec_sequence_encoder_config_init(&c));
        c.dim = D;
        c.max_length = 5;
        c.num_layers = cases[i].layers;
        c.num_heads = 2;
        c.ffn_dim = 10;
        c.activation = cases[i].act;
        c.attn_bias = cases[i].attn_bias;
        mt_seqenc_ctx ctx = {NULL, cases[i].mask, cases[i].last};
        MT_OK(mmrec_sequence_encoder_create(model, "s", &c, &ctx.enc));
        mt_perturb_params(model, 40 + i);
        if (cases[i].act == MMREC_ACT_RELU) /* every ReLU unit far inside its linear part */
            for (int l = 0; l < cases[i].layers; l++) {
                char name[64];
                snprintf(name, sizeof name, "s.blocks.%d.linear1.bias", l);
                mmrec_tensor *b1;
                float *d;
                MT_OK(mmrec_model_param(model, name, &b1));
                MT_OK(mmrec_tensor_data(b1, &d));
                for (int j = 0; j < 10; j++) d[j] += 4.0f;
            }
        float items[B * T * D];
        mt_fill_uniform(items, B * T * D, -1, 1, 50 + i);
        /* left padding, right padding, a row with a hole */
        float mask[B * T] = {0, 0, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1};
        mt_input in[2] = {{3, {B, T, D}, items, false}, {2, {B, T}, mask, true}};
        char name[64];
        snprintf(name, sizeof name, "sequence encoder case %zu", i);
        /* the outputs are LayerNorm outputs of order 1: rounded to float32,
         * the loss over all of them moves by ~5e-7 at random, ~1e-4 in a
         * difference quotient at h = 1e-2, hence the floor */
        mt_gradcheck_opts opts = {.h = 1e-2f, .tol = 1e-2f, .floor = 2e-2f};
        mt_gradcheck(name, mt_seqenc_fwd, &ctx, in, cases[i].mask ? 2 : 1, model, &opts);
        mmrec_model_destroy(model);
    }
}
END_TEST

/* ---- allocation ---- */

/* A training step: forward on wrapped caller buffers, the user vectors'
 * backward. */
static mmrec_status mt_seqenc_step(mmrec_module *enc, mmrec_tape *tape, const float *items,
                                   const float *mask, int b, int t, int d, const float *r) {
    int64_t sx[3] = {b, t, d}, sm[2] = {b, t};
    mmrec_tensor *x, *m, *u;
    MT_TRY(mmrec_tape_wrap(tape, (float *)items, 3, sx, MMREC_TENSOR_READONLY, &x));
    MT_TRY(mmrec_tape_wrap(tape, (float *)mask, 2, sm, MMREC_TENSOR_READONLY, &m));
    MT_TRY(mmrec_sequence_encoder_forward(enc, tape, x, m, NULL, &u));
    return mmrec_tape_backward_from(tape, u, r);
}

typedef struct mt_steady {
    mmrec_module *enc;
    mmrec_tape *tape;
    mmrec_optimizer *opt;
    const float *items, *mask, *r;
    int b, t, d;
} mt_steady;

static mmrec_status mt_seqenc_steady(void *ctx) {
    mt_steady *c = ctx;
    mmrec_tape_reset(c->tape);
    MT_OK(mt_seqenc_step(c->enc, c->tape, c->items, c->mask, c->b, c->t, c->d, c->r));
    return mmrec_optimizer_step(c->opt);
}

START_TEST(test_seqenc_step_steady_state_no_malloc) {
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    enum { B = 8, T = 10, D = 16 };
    mmrec_module *enc = mt_seqenc(model, "s", D, T, 2, 2, 0.1f);
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    mmrec_optimizer *opt;
    MT_OK(mmrec_optimizer_create(model, &oc, &opt));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    static float items[B * T * D], mask[B * T], r[B * D];
    mt_fill_uniform(items, B * T * D, -1, 1, 1);
    mt_fill_uniform(r, B * D, -1, 1, 3);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) mask[b * T + t] = t >= b; /* left padding */
    mt_steady c = {enc, tape, opt, items, mask, r, B, T, D};
    mt_assert_steady_state(mt_seqenc_steady, &c);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(model);
    MT_OK(mmrec_set_allocator(NULL));
}
END_TEST

/* Creation, a forward and its backward with the n-th allocation failing. */
static mmrec_status mt_seqenc_oom(void *ctx) {
    (void)ctx;
    enum { B = 3, T = 4, D = 6 };
    float items[B * T * D], r[B * D];
    const float mask[B * T] = {0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1};
    mt_fill_uniform(items, B * T * D, -1, 1, 1);
    mt_fill_uniform(r, B * D, -1, 1, 3);
    mmrec_model *model = NULL;
    mmrec_tape *tape = NULL;
    mmrec_module *enc = NULL;
    mmrec_status s = mmrec_model_create(&model);
    mmrec_sequence_encoder_config c;
    if (s == MMREC_OK) s = mmrec_sequence_encoder_config_init(&c);
    c.dim = D;
    c.max_length = T;
    if (s == MMREC_OK) s = mmrec_sequence_encoder_create(model, "s", &c, &enc);
    if (s == MMREC_OK) s = mmrec_tape_create(&tape);
    if (s == MMREC_OK) s = mt_seqenc_step(enc, tape, items, mask, B, T, D, r);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
    return s;
}

START_TEST(test_seqenc_oom_reports_enomem_without_leaks) {
    ck_assert_int_gt(mt_oom_loop("sequence encoder", mt_seqenc_oom, NULL), 5);
}
END_TEST

static Suite *sequence_encoder_suite(void) {
    Suite *s = suite_create("sequence_encoder");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_seqenc_config_defaults_and_sizes);
    tcase_add_test(api, test_seqenc_bad_config);
    tcase_add_test(api, test_seqenc_forward_bad_input);
    suite_add_tcase(s, api);
    TCase *fwd = tcase_create("forward");
    tcase_add_test(fwd, test_seqenc_parameters_and_init);
    tcase_add_test(fwd, test_seqenc_matches_pytorch);
    tcase_add_test(fwd, test_seqenc_no_mask_is_all_real);
    tcase_add_test(fwd, test_seqenc_dropout_train_only);
    suite_add_tcase(s, fwd);
    TCase *bwd = tcase_create("backward");
    tcase_set_timeout(bwd, 120);
    tcase_add_test(bwd, test_seqenc_gradcheck);
    suite_add_tcase(s, bwd);
    TCase *life = tcase_create("lifecycle");
    tcase_set_timeout(life, 120);
    tcase_add_test(life, test_seqenc_step_steady_state_no_malloc);
    tcase_add_test(life, test_seqenc_oom_reports_enomem_without_leaks);
    suite_add_tcase(s, life);
    return s;
}
