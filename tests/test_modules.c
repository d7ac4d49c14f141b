/* Modules: creation, parameter names, gradients (inputs and parameters),
 * masks, config struct sizes, bad input. */
#include "mt.h"
#include "modules/modules_internal.h"
#include "core/config_sizes.h"

#include <math.h>
#include <stddef.h>

MT_SUITE(modules_suite)

typedef struct mt_mod {
    mmrec_module *m;
    int kind; /* 0 linear, 1 mlp, 2 layernorm, 3 mha, 4 transformer */
    bool masked;
} mt_mod;

static mmrec_status mt_mod_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    mt_mod *c = ctx;
    mmrec_tensor *mask = c->masked ? in[1] : NULL;
    switch (c->kind) {
    case 0: return mmrec_linear_forward(c->m, tape, in[0], out);
    case 1: return mmrec_mlp_forward(c->m, tape, in[0], out);
    case 2: return mmrec_layernorm_forward(c->m, tape, in[0], out);
    case 3: return mmrec_mha_forward(c->m, tape, in[0], mask, out);
    default: return mmrec_transformer_forward(c->m, tape, in[0], mask, out);
    }
}

START_TEST(test_linear_and_mlp) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    ck_assert_int_eq(lc.bias, 1);
    lc.in_dim = 7;
    lc.out_dim = 5;
    mmrec_module *lin, *lin_nb, *mlp;
    MT_OK(mmrec_linear_create(model, "lin", &lc, &lin));
    lc.bias = 0;
    lc.init = MMREC_INIT_NORMAL;
    MT_OK(mmrec_linear_create(model, "lin_nb", &lc, &lin_nb));
    int64_t sizes[3] = {7, 13, 5};
    mmrec_mlp_config mc;
    MT_OK(mmrec_mlp_config_init(&mc));
    mc.sizes = sizes;
    mc.num_sizes = 3;
    mc.activation = MMREC_ACT_GELU;
    MT_OK(mmrec_mlp_create(model, "mlp", &mc, &mlp));
    mmrec_tensor *p;
    MT_OK(mmrec_model_param(model, "lin.weight", &p));
    MT_OK(mmrec_model_param(model, "lin.bias", &p));
    MT_EXPECT(mmrec_model_param(model, "lin_nb.bias", &p), MMREC_ENOTFOUND, "lin_nb.bias");
    MT_OK(mmrec_model_param(model, "mlp.1.weight", &p));
    int nd;
    int64_t shape[MMREC_MAX_DIMS];
    MT_OK(mmrec_tensor_shape(p, &nd, shape));
    ck_assert(nd == 2 && shape[0] == 5 && shape[1] == 13);
    size_t trainable, total;
    MT_OK(mmrec_model_param_count(model, &trainable, &total));
    ck_assert_uint_eq(total, 7 * 5 + 5 + 7 * 5 + 7 * 13 + 13 + 13 * 5 + 5);
    mt_perturb_params(model, 100);

    float x[2 * 3 * 7];
    mt_fill_uniform(x, 42, -1, 1, 1);
    mt_input in[1] = {{3, {2, 3, 7}, x, false}};
    mt_mod c0 = {lin, 0, false}, c1 = {lin_nb, 0, false}, c2 = {mlp, 1, false};
    mt_gradcheck("linear", mt_mod_fwd, &c0, in, 1, model, NULL);
    mt_gradcheck("linear no bias", mt_mod_fwd, &c1, in, 1, model, NULL);
    mt_gradcheck("mlp", mt_mod_fwd, &c2, in, 1, model, NULL);

    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t bad[2] = {2, 6};
    mmrec_tensor *tb, *y;
    MT_OK(mmrec_tape_tensor(tape, 2, bad, 0, &tb));
    MT_EXPECT(mmrec_linear_forward(lin, tape, tb, &y), MMREC_ESHAPE,
              "x is [2,6], its last dim must be 7");
    MT_EXPECT(mmrec_mlp_forward(mlp, tape, tb, &y), MMREC_ESHAPE, "x is [2,6]");
    MT_EXPECT(mmrec_mlp_forward(lin, tape, tb, &y), MMREC_EINVAL, "is a linear, expected a mlp");
    MT_EXPECT(mmrec_linear_forward(NULL, tape, tb, &y), MMREC_EINVAL, "argument 'linear' is NULL");
    MT_EXPECT(mmrec_linear_create(model, "lin", &lc, NULL), MMREC_ESTATE, "'lin' already");
    lc.in_dim = 0;
    MT_EXPECT(mmrec_linear_create(model, "z", &lc, NULL), MMREC_EINVAL, "cfg->in_dim is 0");
    mc.num_sizes = 1;
    MT_EXPECT(mmrec_mlp_create(model, "z", &mc, NULL), MMREC_EINVAL, "cfg->num_sizes is 1");
    mc.num_sizes = 3;
    mc.dropout = 1.0f;
    MT_EXPECT(mmrec_mlp_create(model, "z", &mc, NULL), MMREC_EINVAL, "cfg->dropout");
    mc.dropout = 0.0f;
    mc.activation = (mmrec_activation)99;
    MT_EXPECT(mmrec_mlp_create(model, "z", &mc, NULL), MMREC_EINVAL, "cfg->activation is 99");
    MT_EXPECT(mmrec_mlp_create(model, "z", NULL, NULL), MMREC_EINVAL, "'cfg'");
    MT_EXPECT(mmrec_mlp_create(NULL, "z", &mc, NULL), MMREC_EINVAL, "model");
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_failed_create_changes_nothing) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_tensor *p;
    int64_t s[1] = {4};
    /* "t.linear2.weight" taken: the layer fails after adding its first params */
    MT_OK(mmrec_model_add_param(model, "t.linear2.weight", 1, s, &p));
    mmrec_transformer_config tc;
    MT_OK(mmrec_transformer_config_init(&tc));
    tc.dim = 8;
    tc.num_heads = 2;
    MT_EXPECT(mmrec_transformer_create(model, "t", &tc, NULL), MMREC_ESTATE,
              "'t.linear2.weight' already exists");
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 1);
    MT_OK(mmrec_transformer_create(model, "t2", &tc, NULL));
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 1 + 12);
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_layernorm_module) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_layernorm_config c;
    MT_OK(mmrec_layernorm_config_init(&c));
    ck_assert(c.eps == 1e-5f && c.affine == 1);
    c.dim = 7;
    mmrec_module *ln, *ln_plain;
    MT_OK(mmrec_layernorm_create(model, "ln", &c, &ln));
    c.affine = 0;
    MT_OK(mmrec_layernorm_create(model, "ln_plain", &c, &ln_plain));
    mt_perturb_params(model, 7);
    float x[3 * 7];
    mt_fill_uniform(x, 21, -2, 2, 3);
    mt_input in[1] = {{2, {3, 7}, x, false}};
    mt_mod m0 = {ln, 2, false}, m1 = {ln_plain, 2, false};
    mt_gradcheck("layernorm", mt_mod_fwd, &m0, in, 1, model, NULL);
    mt_gradcheck("layernorm plain", mt_mod_fwd, &m1, in, 1, model, NULL);
    c.eps = 0.0f;
    MT_EXPECT(mmrec_layernorm_create(model, "z", &c, NULL), MMREC_EINVAL, "cfg->eps");
    /* an input whose last dim is not the config's */
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s36[2] = {3, 6}, s37[2] = {3, 7};
    mmrec_tensor *x6, *x7, *y;
    MT_OK(mmrec_tape_tensor(tape, 2, s36, 0, &x6));
    MT_OK(mmrec_tape_tensor(tape, 2, s37, 0, &x7));
    MT_EXPECT(mmrec_layernorm_forward(ln, tape, x6, &y), MMREC_ESHAPE,
              "x is [3,6], its last dim must be 7");
    /* the checks the layer norm op makes are reported as the module's */
    MT_EXPECT(mmrec_layernorm_forward(ln, tape, x7, NULL), MMREC_EINVAL,
              "mmrec_layernorm_forward: argument 'out' is NULL");
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

static const int64_t mt_emb_ids[6] = {4, 0, 4, 9, 2, 4};

static mmrec_status mt_emb_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    (void)in;
    return mmrec_embedding_forward(ctx, tape, mt_emb_ids, 6, out);
}

START_TEST(test_embedding_gradcheck) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_embedding_config c;
    MT_OK(mmrec_embedding_config_init(&c));
    c.num_rows = 10;
    c.dim = 3;
    mmrec_module *emb;
    MT_OK(mmrec_embedding_create(model, "emb", &c, &emb));
    mt_gradcheck("embedding", mt_emb_fwd, emb, NULL, 0, model, NULL);
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_embedding_module) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_embedding_config c;
    MT_OK(mmrec_embedding_config_init(&c));
    ck_assert(c.init == MMREC_INIT_NORMAL && c.init_std == 1.0f);
    c.num_rows = 50;
    c.dim = 6;
    mmrec_module *emb;
    MT_OK(mmrec_embedding_create(model, "emb", &c, &emb));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t ids[4] = {49, 0, 7, 49};
    mmrec_tensor *y, *w;
    MT_OK(mmrec_embedding_forward(emb, tape, ids, 4, &y));
    MT_OK(mmrec_model_param(model, "emb.weight", &w));
    const float *yd, *wd;
    MT_OK(mmrec_tensor_data_const(y, &yd));
    MT_OK(mmrec_tensor_data_const(w, &wd));
    for (int j = 0; j < 6; j++) ck_assert_float_eq(yd[j], wd[49 * 6 + j]);
    float ones[24];
    for (int i = 0; i < 24; i++) ones[i] = 1.0f;
    MT_OK(mmrec_tape_backward_from(tape, y, ones));
    const float *g;
    MT_OK(mmrec_tensor_grad(w, &g));
    ck_assert_float_eq(g[49 * 6], 2.0f);
    ck_assert_float_eq(g[1 * 6], 0.0f);
    int64_t bad[1] = {50};
    MT_EXPECT(mmrec_embedding_forward(emb, tape, bad, 1, &y), MMREC_ERANGE,
              "mmrec_embedding_forward: ids[0] is 50");
    c.dim = 0;
    MT_EXPECT(mmrec_embedding_create(model, "e2", &c, NULL), MMREC_EINVAL, "cfg->dim is 0");
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_attention_modules) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_mha_config ac;
    MT_OK(mmrec_mha_config_init(&ac));
    ac.dim = 12;
    ac.num_heads = 3;
    mmrec_module *mha, *causal, *pre, *post;
    MT_OK(mmrec_mha_create(model, "mha", &ac, &mha));
    ac.causal = 1;
    MT_OK(mmrec_mha_create(model, "causal", &ac, &causal));
    mmrec_transformer_config tc;
    MT_OK(mmrec_transformer_config_init(&tc));
    ck_assert(tc.dropout == 0.1f && tc.norm_first == 0 && tc.activation == MMREC_ACT_GELU);
    tc.dim = 12;
    tc.num_heads = 3;
    tc.ffn_dim = 20;
    tc.dropout = 0.0f;
    tc.norm_first = 1;
    MT_OK(mmrec_transformer_create(model, "pre", &tc, &pre));
    tc.norm_first = 0;
    tc.activation = MMREC_ACT_GELU_TANH; /* smooth: no kinks for the differences */
    MT_OK(mmrec_transformer_create(model, "post", &tc, &post));
    mmrec_tensor *p;
    MT_OK(mmrec_model_param(model, "mha.in_proj_weight", &p));
    MT_OK(mmrec_model_param(model, "mha.out_proj.bias", &p));
    MT_OK(mmrec_model_param(model, "pre.self_attn.in_proj_bias", &p));
    MT_OK(mmrec_model_param(model, "pre.linear1.weight", &p));
    MT_OK(mmrec_model_param(model, "post.norm2.bias", &p));
    mt_perturb_params(model, 31);

    float x[2 * 5 * 12], mask[2 * 5] = {1, 1, 1, 0, 0, 1, 0, 1, 1, 1};
    mt_fill_uniform(x, 120, -1, 1, 5);
    mt_input in[2] = {{3, {2, 5, 12}, x, false}, {2, {2, 5}, mask, true}};
    /* sum(r * y) over 120 float32 outputs: differences below ~1e-4 are noise */
    mt_gradcheck_opts opts = {.h = 3e-2f, .tol = 2e-2f, .floor = 5e-3f};
    mt_mod cases[6] = {{mha, 3, false},  {mha, 3, true},  {causal, 3, true},
                       {pre, 4, true},   {post, 4, true}, {post, 4, false}};
    for (int i = 0; i < 6; i++)
        mt_gradcheck("attention", mt_mod_fwd, &cases[i], in, cases[i].masked ? 2 : 1, model,
                     &opts);

    /* a query whose keys are all masked outputs the out_proj bias */
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    int64_t sx[3] = {1, 5, 12}, sm[2] = {1, 5}, bad[3] = {1, 5, 11};
    mmrec_tensor *tx, *tm, *y, *tb;
    MT_OK(mmrec_tape_tensor(tape, 3, sx, 0, &tx));
    MT_OK(mmrec_tape_tensor(tape, 2, sm, 0, &tm));
    MT_OK(mmrec_tensor_copy_from(tx, x, 60));
    MT_OK(mmrec_mha_forward(mha, tape, tx, tm, &y));
    const float *yd, *bd;
    MT_OK(mmrec_tensor_data_const(y, &yd));
    MT_OK(mmrec_model_param(model, "mha.out_proj.bias", &p));
    MT_OK(mmrec_tensor_data_const(p, &bd));
    for (int i = 0; i < 60; i++) ck_assert_float_eq(yd[i], bd[i % 12]);
    MT_OK(mmrec_tape_tensor(tape, 3, bad, 0, &tb));
    MT_EXPECT(mmrec_mha_forward(mha, tape, tb, NULL, &y), MMREC_ESHAPE,
              "x is [1,5,11], expected [batch, seq, 12]");
    MT_EXPECT(mmrec_transformer_forward(pre, tape, tx, tx, &y), MMREC_ESHAPE,
              "key_mask is [1,5,12]");
    MT_EXPECT(mmrec_transformer_forward(pre, tape, tb, NULL, &y), MMREC_ESHAPE, "x is [1,5,11]");
    ac.num_heads = 5;
    MT_EXPECT(mmrec_mha_create(model, "z", &ac, NULL), MMREC_EINVAL,
              "cfg->num_heads is 5, must be >= 1 and divide dim 12");
    /* a dim whose 3 * dim (in_proj) or 4 * dim (ffn_dim) overflows int64 */
    ac.num_heads = 1;
    ac.dim = INT64_C(1) << 62;
    MT_EXPECT(mmrec_mha_create(model, "z", &ac, NULL), MMREC_EINVAL,
              "cfg->dim is 4611686018427387904, must be in [1, 2^31 - 1]");
    tc.dim = INT64_C(1) << 61;
    tc.num_heads = 1;
    MT_EXPECT(mmrec_transformer_create(model, "z", &tc, NULL), MMREC_EINVAL,
              "cfg->dim is 2305843009213693952");
    tc.dim = 12;
    tc.num_heads = 3;
    tc.activation = MMREC_ACT_NONE;
    MT_EXPECT(mmrec_transformer_create(model, "z", &tc, NULL), MMREC_EINVAL, "cfg->activation");
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_transformer_dropout_train_vs_eval) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_transformer_config tc;
    MT_OK(mmrec_transformer_config_init(&tc));
    tc.dim = 8;
    tc.num_heads = 2;
    tc.dropout = 0.5f;
    mmrec_module *t;
    MT_OK(mmrec_transformer_create(model, "t", &tc, &t));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[3] = {2, 3, 8};
    float x[48];
    mt_fill_uniform(x, 48, -1, 1, 2);
    float out[2][48];
    for (int mode = 0; mode < 2; mode++)
        for (int rep = 0; rep < 2; rep++) {
            MT_OK(mmrec_tape_set_mode(tape, mode ? MMREC_TAPE_INFERENCE : MMREC_TAPE_TRAIN));
            mmrec_tensor *tx, *y;
            MT_OK(mmrec_tape_tensor(tape, 3, s, 0, &tx));
            MT_OK(mmrec_tensor_copy_from(tx, x, 48));
            MT_OK(mmrec_transformer_forward(t, tape, tx, NULL, &y));
            MT_OK(mmrec_tensor_copy_to(y, out[rep], 48));
            mmrec_tape_reset(tape);
            bool same = true;
            for (int i = 0; rep == 1 && i < 48; i++) same = same && out[0][i] == out[1][i];
            /* training draws new masks each step; inference is deterministic */
            if (rep == 1) ck_assert(same == (mode == 1));
        }
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* A caller built against an older (smaller) or newer (larger, zero tail)
 * config struct is accepted; a non-zero unknown tail is refused. */
START_TEST(test_config_struct_sizes) {
    unsigned char buf[sizeof(mmrec_transformer_config) + 16];
    mmrec_transformer_config *tc = (mmrec_transformer_config *)buf;
    MT_OK(mmrec_transformer_config_init_sized(tc, sizeof buf));
    ck_assert_uint_eq(tc->struct_size, sizeof buf);
    for (size_t i = sizeof *tc; i < sizeof buf; i++) ck_assert_int_eq(buf[i], 0);
    tc->dim = 8;
    tc->num_heads = 2;
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    MT_OK(mmrec_transformer_create(model, "a", tc, NULL));
    buf[sizeof buf - 1] = 1;
    MT_EXPECT(mmrec_transformer_create(model, "b", tc, NULL), MMREC_EINVAL, "newer");
    MT_EXPECT(mmrec_transformer_config_init_sized(tc, 4), MMREC_EINVAL, NULL);
    MT_EXPECT(mmrec_linear_config_init_sized(NULL, sizeof(mmrec_linear_config)), MMREC_EINVAL,
              NULL);
    mmrec_mlp_config mc;
    MT_OK(mmrec_mlp_config_init(&mc));
    ck_assert(mc.activation == MMREC_ACT_RELU && mc.bias == 1);
    mmrec_mha_config ac;
    MT_OK(mmrec_mha_config_init(&ac));
    ck_assert(ac.bias == 1 && ac.causal == 0);
    mmrec_model_destroy(model);
}
END_TEST

/* A layer computing only its first rows gives the full layer's first rows,
 * and its gradients check (pre- and post-LN, key mask, causal). */
typedef struct mt_rows_ctx {
    mmrec_module *layer;
    int64_t keep;
    float *mask; /* [B, T] */
} mt_rows_ctx;

static mmrec_status mt_rows_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                mmrec_tensor **out) {
    mt_rows_ctx *c = ctx;
    int64_t ms[2] = {2, 5};
    mmrec_tensor *mask = mt_tape_tensor(tape, 2, ms, c->mask, 0);
    return mmrec__transformer_forward_rows(c->layer, tape, in[0], mask, c->keep, out);
}

START_TEST(test_transformer_first_rows_only) {
    for (int variant = 0; variant < 3; variant++) {
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        mmrec_transformer_config tc;
        MT_OK(mmrec_transformer_config_init(&tc));
        tc.dim = 8;
        tc.num_heads = 2;
        tc.ffn_dim = 12;
        tc.dropout = 0.0f;
        tc.norm_first = variant != 1;
        tc.causal = variant == 2;
        mmrec_module *layer;
        MT_OK(mmrec_transformer_create(model, "t", &tc, &layer));
        mt_perturb_params(model, 7 + (uint64_t)variant);
        float x[2 * 5 * 8], mask[10] = {1, 1, 0, 1, 1, 1, 1, 1, 0, 0};
        mt_fill_uniform(x, 80, -1, 1, 3);
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        int64_t xs[3] = {2, 5, 8}, ms[2] = {2, 5};
        mmrec_tensor *xt = mt_tape_tensor(tape, 3, xs, x, 0);
        mmrec_tensor *mt = mt_tape_tensor(tape, 2, ms, mask, 0), *full, *rows;
        MT_OK(mmrec_transformer_forward(layer, tape, xt, mt, &full));
        MT_OK(mmrec__transformer_forward_rows(layer, tape, xt, mt, 2, &rows));
        int nd;
        int64_t shape[MMREC_MAX_DIMS];
        MT_OK(mmrec_tensor_shape(rows, &nd, shape));
        ck_assert(nd == 3 && shape[0] == 2 && shape[1] == 2 && shape[2] == 8);
        float f[80], r[32];
        MT_OK(mmrec_tensor_copy_to(full, f, 80));
        MT_OK(mmrec_tensor_copy_to(rows, r, 32));
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 16; i++)
                ck_assert_msg(
                    fabsf(r[b * 16 + i] - f[b * 40 + i]) <= 1e-6f * (1 + fabsf(f[b * 40 + i])),
                    "variant %d: row value %d of item %d: %g vs %g", variant, i, b,
                    (double)r[b * 16 + i], (double)f[b * 40 + i]);
        mmrec_tape_destroy(tape);
        mt_rows_ctx c = {layer, 2, mask};
        mt_input in[1] = {{3, {2, 5, 8}, x, false}};
        /* as the attention checks above: float32 noise below ~1e-4 */
        mt_gradcheck_opts opts = {.h = 3e-2f, .tol = 2e-2f, .floor = 5e-3f};
        mt_gradcheck("transformer first rows", mt_rows_fwd, &c, in, 1, model, &opts);
        mmrec_model_destroy(model);
    }
}
END_TEST

/* Nodes recorded by one layer's forward on a training tape. */
static size_t mt_layer_nodes(mmrec_module *layer, mmrec_tape *tape) {
    float x[2 * 3 * 8];
    mt_fill_uniform(x, 48, -1, 1, 1);
    int64_t sx[3] = {2, 3, 8};
    mmrec_tensor *tx = mt_tape_tensor(tape, 3, sx, x, MMREC_TENSOR_REQUIRES_GRAD), *y;
    size_t before = tape->n_nodes;
    MT_OK(mmrec_transformer_forward(layer, tape, tx, NULL, &y));
    size_t n = tape->n_nodes - before;
    mmrec_tape_reset(tape);
    return n;
}

/* mmrec_transformer_config as libmmrec 0.1 declared it. */
typedef struct mt_transformer_config_0_1 {
    size_t struct_size;
    int64_t dim;
    int num_heads;
    int64_t ffn_dim;
    float dropout;
    int norm_first;
    mmrec_activation activation;
    float eps;
    int causal;
} mt_transformer_config_0_1;

/* The SASRec block's options: attention without biases, no dropout after
 * the feed-forward's activation; a 0.1 caller gets the 0.1 layer. */
START_TEST(test_transformer_no_attn_bias_and_no_act_dropout) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_transformer_config c;
    MT_OK(mmrec_transformer_config_init(&c));
    ck_assert(c.no_attn_bias == 0 && c.no_act_dropout == 0);
    c.dim = 8;
    c.num_heads = 2;
    c.dropout = 0.2f;
    mmrec_module *plain, *sas;
    MT_OK(mmrec_transformer_create(model, "plain", &c, &plain));
    c.no_attn_bias = 1;
    c.no_act_dropout = 1;
    MT_OK(mmrec_transformer_create(model, "sas", &c, &sas));
    mmrec_tensor *p;
    MT_OK(mmrec_model_param(model, "plain.self_attn.in_proj_bias", &p));
    MT_EXPECT(mmrec_model_param(model, "sas.self_attn.in_proj_bias", &p), MMREC_ENOTFOUND,
              "sas.self_attn.in_proj_bias");
    MT_EXPECT(mmrec_model_param(model, "sas.self_attn.out_proj.bias", &p), MMREC_ENOTFOUND,
              "sas.self_attn.out_proj.bias");
    MT_OK(mmrec_model_param(model, "sas.linear1.bias", &p)); /* the feed-forward keeps them */
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 12 + 10);
    /* the feed-forward's inner dropout is one node; biases are fused into
     * the projections' nodes */
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    ck_assert_uint_eq(mt_layer_nodes(plain, tape), mt_layer_nodes(sas, tape) + 1);
    mmrec_tape_destroy(tape);
    /* a caller built against 0.1 (the struct without the two fields) gets
     * the 0.1 layer */
    mt_transformer_config_0_1 old;
    ck_assert_uint_eq(sizeof old, (size_t)MMREC__MIN_SIZE(mmrec_transformer_config));
    MT_OK(mmrec_transformer_config_init_sized((mmrec_transformer_config *)&old, sizeof old));
    old.dim = 8;
    old.num_heads = 2;
    MT_OK(mmrec_transformer_create(model, "old", (const mmrec_transformer_config *)&old, NULL));
    MT_OK(mmrec_model_param(model, "old.self_attn.out_proj.bias", &p));
    mmrec_model_destroy(model);
}
END_TEST

/* A NaN feature reaches the loss through a ReLU MLP (a ReLU that mapped
 * NaN to 0 would hide it behind a finite loss), and the loss refuses it,
 * naming the row. */
START_TEST(test_mlp_nan_input_reaches_the_loss) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    int64_t sizes[3] = {4, 8, 1};
    mmrec_mlp_config mc;
    MT_OK(mmrec_mlp_config_init(&mc));
    mc.sizes = sizes;
    mc.num_sizes = 3;
    ck_assert_int_eq(mc.activation, MMREC_ACT_RELU);
    mmrec_module *mlp;
    MT_OK(mmrec_mlp_create(model, "mlp", &mc, &mlp));
    float x[3 * 4], target[3] = {0, 1, 0};
    mt_fill_uniform(x, 12, -1, 1, 5);
    x[1 * 4 + 2] = NAN;
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t sx[2] = {3, 4}, st[2] = {3, 1};
    mmrec_tensor *tx = mt_tape_tensor(tape, 2, sx, x, 0);
    mmrec_tensor *tt = mt_tape_tensor(tape, 2, st, target, 0), *y, *loss;
    MT_OK(mmrec_mlp_forward(mlp, tape, tx, &y));
    const float *d;
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert_msg(isnan(d[1]) && !isnan(d[0]) && !isnan(d[2]), "y[1] is %g", (double)d[1]);
    MT_EXPECT(mmrec_loss_bce_logits(tape, y, tt, &loss), MMREC_ENUMERIC, "logits[1] is nan");
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

static Suite *modules_suite(void) {
    Suite *s = suite_create("modules");
    TCase *tc = tcase_create("modules");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_linear_and_mlp);
    tcase_add_test(tc, test_mlp_nan_input_reaches_the_loss);
    tcase_add_test(tc, test_failed_create_changes_nothing);
    tcase_add_test(tc, test_layernorm_module);
    tcase_add_test(tc, test_embedding_module);
    tcase_add_test(tc, test_embedding_gradcheck);
    tcase_add_test(tc, test_attention_modules);
    tcase_add_test(tc, test_transformer_dropout_train_vs_eval);
    tcase_add_test(tc, test_config_struct_sizes);
    tcase_add_test(tc, test_transformer_first_rows_only);
    tcase_add_test(tc, test_transformer_no_attn_bias_and_no_act_dropout);
    suite_add_tcase(s, tc);
    return s;
}
