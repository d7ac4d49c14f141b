/* IISAN: the bottleneck adapter (modules.h) and the item encoder (SANs,
 * heads, fusion; iisan.h): PyTorch goldens, gradients, bad input,
 * allocation. */
#include "mt.h"
#include "iisan/iisan_internal.h" /* MMREC__MIN_SIZE of the encoder config */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

MT_SUITE(iisan_suite)

#define MT_TRY(call)                                                                       \
    do {                                                                                   \
        mmrec_status mt__t = (call);                                                       \
        if (mt__t != MMREC_OK) return mt__t;                                               \
    } while (0)

/* ---- the adapter ---- */

static mmrec_module *mt_adapter(mmrec_model *model, const char *name, int64_t dim, int64_t r,
                                mmrec_activation act) {
    mmrec_adapter_config c;
    MT_OK(mmrec_adapter_config_init(&c));
    c.dim = dim;
    c.bottleneck_dim = r;
    c.activation = act;
    mmrec_module *m;
    MT_OK(mmrec_adapter_create(model, name, &c, &m));
    return m;
}

START_TEST(test_adapter_parameters_and_init) {
    mmrec_adapter_config c;
    MT_OK(mmrec_adapter_config_init(&c));
    ck_assert(c.dim == 0 && c.bottleneck_dim == 64 && c.activation == MMREC_ACT_RELU &&
              c.init_std == 0.01f);
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mt_adapter(model, "ad", 768, 64, MMREC_ACT_RELU);
    static const char *const names[4] = {"ad.fc_down.weight", "ad.fc_down.bias",
                                         "ad.fc_up.weight", "ad.fc_up.bias"};
    static const int64_t rows[4] = {64, 64, 768, 768}, cols[4] = {768, 0, 64, 0};
    for (size_t p = 0; p < 4; p++) {
        const char *name;
        mmrec_tensor *t;
        MT_OK(mmrec_model_param_at(model, p, &name, &t));
        ck_assert_str_eq(name, names[p]);
        int nd;
        int64_t shape[MMREC_MAX_DIMS];
        MT_OK(mmrec_tensor_shape(t, &nd, shape));
        ck_assert_int_eq(nd, cols[p] ? 2 : 1);
        ck_assert_int_eq(shape[0], rows[p]);
        if (cols[p]) ck_assert_int_eq(shape[1], cols[p]);
        size_t n;
        const float *d;
        MT_OK(mmrec_tensor_numel(t, &n));
        MT_OK(mmrec_tensor_data_const(t, &d));
        double sum = 0, sq = 0;
        for (size_t i = 0; i < n; i++) {
            sum += d[i];
            sq += (double)d[i] * d[i];
        }
        if (cols[p]) { /* N(0, 0.01^2): mean and std of 49152 draws */
            ck_assert_msg(fabs(sum / (double)n) < 3e-4, "%s mean %g", name, sum / (double)n);
            ck_assert_msg(fabs(sqrt(sq / (double)n) - 0.01) < 3e-4, "%s std %g", name,
                          sqrt(sq / (double)n));
        } else {
            ck_assert(sq == 0.0); /* biases zero */
        }
    }
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_adapter_bad_config_and_input) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_adapter_config c, bad;
    MT_OK(mmrec_adapter_config_init(&c));
    c.dim = 6;
    c.bottleneck_dim = 2;
    bad = c;
    bad.dim = 0;
    MT_EXPECT(mmrec_adapter_create(model, "a", &bad, NULL), MMREC_EINVAL, "cfg->dim is 0");
    bad = c;
    bad.bottleneck_dim = -3;
    MT_EXPECT(mmrec_adapter_create(model, "a", &bad, NULL), MMREC_EINVAL,
              "cfg->bottleneck_dim is -3");
    bad = c;
    bad.activation = (mmrec_activation)9;
    MT_EXPECT(mmrec_adapter_create(model, "a", &bad, NULL), MMREC_EINVAL, "cfg->activation is 9");
    bad = c;
    bad.init_std = 0.0f;
    MT_EXPECT(mmrec_adapter_create(model, "a", &bad, NULL), MMREC_EINVAL, "cfg->init_std is 0");
    bad.init_std = NAN;
    MT_EXPECT(mmrec_adapter_create(model, "a", &bad, NULL), MMREC_EINVAL, "cfg->init_std");
    MT_EXPECT(mmrec_adapter_create(model, "", &c, NULL), MMREC_EINVAL, "name");
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 0);
    /* config sizes: below the first release, a zero and a set tail */
    MT_EXPECT(mmrec_adapter_config_init_sized(&c, MMREC__MIN_SIZE(mmrec_adapter_config) - 1),
              MMREC_EINVAL, "size is 31");
    MT_OK(mmrec_adapter_config_init_sized(&c, MMREC__MIN_SIZE(mmrec_adapter_config)));
    c.dim = 6;
    c.bottleneck_dim = 2;
    struct {
        mmrec_adapter_config c;
        int64_t extra;
    } big;
    MT_OK(mmrec_adapter_config_init_sized(&big.c, sizeof big));
    ck_assert(big.extra == 0 && big.c.bottleneck_dim == 64);
    big.c.dim = 4;
    MT_OK(mmrec_adapter_create(model, "big", &big.c, NULL));
    big.extra = 1;
    MT_EXPECT(mmrec_adapter_create(model, "big2", &big.c, NULL), MMREC_EINVAL, "newer libmmrec");
    MT_EXPECT(mmrec_adapter_create(model, "big", &c, NULL), MMREC_ESTATE, "already exists");

    mmrec_module *ad;
    MT_OK(mmrec_adapter_create(model, "ad", &c, &ad));
    mmrec_module *lin;
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = lc.out_dim = 6;
    MT_OK(mmrec_linear_create(model, "lin", &lc, &lin));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s5[2] = {3, 5}, s6[2] = {3, 6};
    mmrec_tensor *x5, *x6, *y;
    MT_OK(mmrec_tape_tensor(tape, 2, s5, 0, &x5));
    MT_OK(mmrec_tape_tensor(tape, 2, s6, 0, &x6));
    MT_EXPECT(mmrec_adapter_forward(ad, tape, x5, &y), MMREC_ESHAPE,
              "x is [3,5], its last dim must be 6");
    MT_EXPECT(mmrec_adapter_forward(lin, tape, x6, &y), MMREC_EINVAL, "adapter");
    MT_EXPECT(mmrec_adapter_forward(ad, tape, NULL, &y), MMREC_EINVAL, "'x'");
    MT_OK(mmrec_adapter_forward(ad, tape, x6, &y));
    mmrec_tape_reset(tape);
    MT_EXPECT(mmrec_adapter_forward(ad, tape, x6, &y), MMREC_ESTALE, "'x' belongs to a step");
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_adapter_matches_pytorch) {
    mt_golden gold;
    mt_golden_load(&gold, "iisan.bin");
    static const char *const cases[2] = {"adapter_relu", "adapter_gelu"};
    char key[64];
    for (int k = 0; k < 2; k++) {
#define MT_G(what) (snprintf(key, sizeof key, "%s.%s", cases[k], what), mt_golden_get(&gold, key))
        const mt_array *cfg = MT_G("cfg"), *x = MT_G("x"), *r = MT_G("r"), *y = MT_G("y");
        const mt_array *dx = MT_G("dx");
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        mmrec_module *ad = mt_adapter(model, "ad", (int64_t)cfg->data[0], (int64_t)cfg->data[1],
                                      cfg->data[2] == 2.0f ? MMREC_ACT_GELU : MMREC_ACT_RELU);
        mt_load_params(&gold, cases[k], model, 3);
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        mmrec_tensor *tx = mt_tape_tensor(tape, x->ndim, x->shape, x->data,
                                          MMREC_TENSOR_REQUIRES_GRAD), *ty;
        MT_OK(mmrec_adapter_forward(ad, tape, tx, &ty));
        float got[256];
        ck_assert_uint_le(y->numel, 256);
        MT_OK(mmrec_tensor_copy_to(ty, got, y->numel));
        mt_assert_close(key, got, y->data, y->numel, 1e-5f, 1e-6f);
        MT_OK(mmrec_tape_backward_from(tape, ty, r->data));
        const float *g;
        MT_OK(mmrec_tensor_grad(tx, &g));
        snprintf(key, sizeof key, "%s.dx", cases[k]);
        mt_assert_close(key, g, dx->data, dx->numel, 1e-5f, 1e-6f);
        mt_check_grads(&gold, cases[k], model, 3);
        mmrec_tape_destroy(tape);
        mmrec_model_destroy(model);
#undef MT_G
    }
    mt_golden_free(&gold);
}
END_TEST

static mmrec_status mt_adapter_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                   mmrec_tensor **out) {
    return mmrec_adapter_forward(ctx, tape, in[0], out);
}

START_TEST(test_adapter_gradcheck) {
    static const mmrec_activation acts[3] = {MMREC_ACT_RELU, MMREC_ACT_GELU, MMREC_ACT_NONE};
    for (int k = 0; k < 3; k++) {
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        mmrec_module *ad = mt_adapter(model, "ad", 7, 3, acts[k]);
        mt_perturb_params(model, 11 + (uint64_t)k);
        float x[2 * 4 * 7];
        mt_fill_uniform(x, 56, -1, 1, 5);
        mt_input in[1] = {{3, {2, 4, 7}, x, false}};
        /* ReLU: a step small enough not to cross its kink */
        mt_gradcheck_opts opts = {.h = acts[k] == MMREC_ACT_RELU ? 1e-3f : 1e-2f};
        mt_gradcheck("adapter", mt_adapter_fwd, ad, in, 1, model, &opts);
        mmrec_model_destroy(model);
    }
}
END_TEST

/* ---- the item encoder ---- */

enum { MT_H = 6, MT_D = 2, MT_R = 3, MT_L = 5 };

static mmrec_module *mt_encoder(mmrec_model *model, const char *name, mmrec_iisan_mode mode,
                                mmrec_iisan_gate gate, int remove_first,
                                mmrec_activation act, const int *kept, int num_kept) {
    mmrec_iisan_item_encoder_config c;
    MT_OK(mmrec_iisan_item_encoder_config_init(&c));
    c.hidden_dim = MT_H;
    c.dim = MT_D;
    c.adapter_dim = MT_R;
    c.num_layers = MT_L;
    c.mode = mode;
    c.gate = gate;
    c.remove_first = remove_first;
    c.activation = act;
    c.kept_layers = kept;
    c.num_kept = num_kept;
    mmrec_module *m;
    MT_OK(mmrec_iisan_item_encoder_create(model, name, &c, &m));
    return m;
}

START_TEST(test_encoder_defaults_parameters_and_init) {
    mmrec_iisan_item_encoder_config c;
    MT_OK(mmrec_iisan_item_encoder_config_init(&c));
    ck_assert(c.hidden_dim == 768 && c.dim == 64 && c.adapter_dim == 64);
    ck_assert(c.activation == MMREC_ACT_RELU && c.mode == MMREC_IISAN_INTRA_INTER &&
              c.gate == MMREC_IISAN_GATE_SIGMOID && c.gate_temperature == 0.1f);
    ck_assert(c.num_layers == 13 && c.layer_stride == 2 && c.kept_layers == NULL &&
              c.num_kept == 0 && c.remove_first == 0 && c.adapter_init_std == 0.01f);
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *enc;
    MT_OK(mmrec_iisan_item_encoder_create(model, "mm_encoder", &c, &enc));
    /* the reference's intra_inter model: 7 kept layers (0, 2, .., 12), 3
     * SANs of 7 adapters and 7 gates, 3 heads of 2 layers, com_dense */
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 4 + 3 * 7 * 4 + 4 * 2 + 3 * 7 + 2);
    size_t trainable, total;
    MT_OK(mmrec_model_param_count(model, &trainable, &total));
    size_t adapter = 2 * 768 * 64 + 64 + 768, lin_hh = 768 * 768 + 768, lin_hd = 768 * 64 + 64;
    ck_assert_uint_eq(total, 21 * adapter + 3 * lin_hh + 3 * lin_hd + 21 + 3 * 64 * 64 + 64);
    static const char *const order[] = {
        "mm_encoder.cv_pre_fc.weight",  "mm_encoder.cv_pre_fc.bias",
        "mm_encoder.bert_pre_fc.weight", "mm_encoder.bert_pre_fc.bias",
        "mm_encoder.cv_adapter_list.0.fc_down.weight"};
    mmrec_tensor *t;
    for (size_t p = 0; p < 5; p++) {
        const char *name;
        MT_OK(mmrec_model_param_at(model, p, &name, &t));
        ck_assert_str_eq(name, order[p]);
    }
    const char *name;
    MT_OK(mmrec_model_param_at(model, n - 1, &name, &t));
    ck_assert_str_eq(name, "mm_encoder.com_dense.bias");
    MT_OK(mmrec_model_param(model, "mm_encoder.bert_adapter_list.6.fc_up.bias", &t));
    MT_OK(mmrec_model_param(model, "mm_encoder.mm_adapter_list.6.fc_down.weight", &t));
    MT_EXPECT(mmrec_model_param(model, "mm_encoder.mm_adapter_list.7.fc_down.weight", &t),
              MMREC_ENOTFOUND, NULL);
    /* initialization: gates 0, cv_pre_fc Xavier normal and bias 0, the
     * other Linear layers torch's U(-1/sqrt(in), 1/sqrt(in)) */
    const float *d;
    size_t numel;
    MT_OK(mmrec_model_param(model, "mm_encoder.side_gate_params_mm.3", &t));
    MT_OK(mmrec_tensor_data_const(t, &d));
    MT_OK(mmrec_tensor_numel(t, &numel));
    ck_assert(numel == 1 && d[0] == 0.0f);
    static const char *const torch_init[] = {"bert_pre_fc", "fc_bert", "fc_cv", "fc_mm",
                                             "fc_mm_down", "com_dense"};
    for (int i = 0; i < 6; i++) {
        for (int b = 0; b < 2; b++) {
            char key[96];
            snprintf(key, sizeof key, "mm_encoder.%s.%s", torch_init[i], b ? "bias" : "weight");
            MT_OK(mmrec_model_param(model, key, &t));
            MT_OK(mmrec_tensor_data_const(t, &d));
            MT_OK(mmrec_tensor_numel(t, &numel));
            double bound = 1.0 / sqrt(i == 5 ? 192.0 : 768.0), mx = 0;
            for (size_t j = 0; j < numel; j++) mx = fmax(mx, fabs(d[j]));
            ck_assert_msg(mx <= bound && mx > 0.9 * bound, "%s: max %g, bound %g", key, mx, bound);
        }
    }
    MT_OK(mmrec_model_param(model, "mm_encoder.cv_pre_fc.bias", &t));
    MT_OK(mmrec_tensor_data_const(t, &d));
    for (int j = 0; j < 64; j++) ck_assert(d[j] == 0.0f);
    MT_OK(mmrec_model_param(model, "mm_encoder.cv_pre_fc.weight", &t));
    MT_OK(mmrec_tensor_data_const(t, &d));
    double sq = 0;
    for (int j = 0; j < 64 * 768; j++) sq += (double)d[j] * d[j];
    ck_assert(fabs(sqrt(sq / (64 * 768)) - sqrt(2.0 / (768 + 64))) < 2e-3);

    /* the parts each mode has */
    static const struct {
        mmrec_iisan_mode mode;
        size_t params;
        const char *has, *lacks;
    } modes[] = {
        {MMREC_IISAN_INTRA, 4 + 2 * 3 * 4 + 2 * 2 + 2 * 3 + 2, "x.fc_cv.bias", "x.fc_mm.bias"},
        {MMREC_IISAN_INTER, 3 * 4 + 2 * 2 + 3 + 2, "x.mm_adapter_list.2.fc_up.bias",
         "x.bert_pre_fc.bias"},
        {MMREC_IISAN_TEXT, 2 + 3 * 4 + 2 + 3 + 2, "x.side_gate_params_text.2", "x.fc_cv.weight"},
        {MMREC_IISAN_IMAGE, 2 + 3 * 4 + 2 + 3 + 2, "x.cv_adapter_list.0.fc_down.bias",
         "x.bert_adapter_list.0.fc_down.bias"},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        mmrec_model *m2;
        MT_OK(mmrec_model_create(&m2));
        mt_encoder(m2, "x", modes[i].mode, MMREC_IISAN_GATE_SIGMOID, 0, MMREC_ACT_RELU, NULL, 0);
        MT_OK(mmrec_model_num_params(m2, &n));
        ck_assert_uint_eq(n, modes[i].params);
        MT_OK(mmrec_model_param(m2, modes[i].has, &t));
        MT_EXPECT(mmrec_model_param(m2, modes[i].lacks, &t), MMREC_ENOTFOUND, NULL);
        mmrec_model_destroy(m2);
    }
    /* no gates without them; remove_first drops one adapter per SAN */
    mmrec_model *m3;
    MT_OK(mmrec_model_create(&m3));
    mt_encoder(m3, "x", MMREC_IISAN_INTRA_INTER, MMREC_IISAN_GATE_NONE, 1, MMREC_ACT_GELU, NULL, 0);
    MT_OK(mmrec_model_num_params(m3, &n));
    ck_assert_uint_eq(n, 4 + 3 * 2 * 4 + 4 * 2 + 2);
    MT_EXPECT(mmrec_model_param(m3, "x.side_gate_params_cv.0", &t), MMREC_ENOTFOUND, NULL);
    mmrec_model_destroy(m3);
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_encoder_bad_config) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_iisan_item_encoder_config c, bad;
    MT_OK(mmrec_iisan_item_encoder_config_init(&c));
    c.hidden_dim = MT_H;
    c.dim = MT_D;
    c.adapter_dim = MT_R;
    c.num_layers = MT_L;
#define MT_BAD(field, value, needle)                                                          \
    do {                                                                                     \
        bad = c;                                                                             \
        bad.field = value;                                                                   \
        MT_EXPECT(mmrec_iisan_item_encoder_create(model, "e", &bad, NULL), MMREC_EINVAL,     \
                  needle);                                                                   \
    } while (0)
    MT_BAD(hidden_dim, 0, "cfg->hidden_dim is 0");
    MT_BAD(dim, -1, "cfg->dim is -1");
    MT_BAD(adapter_dim, 0, "cfg->adapter_dim is 0");
    MT_BAD(dim, INT64_C(1) << 62, "too large");
    MT_BAD(activation, (mmrec_activation)6, "cfg->activation is 6");
    MT_BAD(mode, (mmrec_iisan_mode)5, "cfg->mode is 5");
    MT_BAD(gate, (mmrec_iisan_gate)2, "cfg->gate is 2");
    MT_BAD(gate_temperature, 0.0f, "cfg->gate_temperature is 0");
    MT_BAD(gate_temperature, INFINITY, "cfg->gate_temperature is inf");
    MT_BAD(adapter_init_std, -1.0f, "cfg->adapter_init_std is -1");
    MT_BAD(num_layers, 0, "cfg->num_layers is 0");
    MT_BAD(num_layers, 65, "cfg->num_layers is 65");
    MT_BAD(layer_stride, 0, "cfg->layer_stride is 0");
    static const int out_of_range[3] = {0, 2, 5}, unordered[3] = {0, 3, 3}, negative[1] = {-1};
    bad = c;
    bad.kept_layers = out_of_range;
    bad.num_kept = 3;
    MT_EXPECT(mmrec_iisan_item_encoder_create(model, "e", &bad, NULL), MMREC_EINVAL,
              "cfg->kept_layers[2] is 5, must be in [0, 5)");
    bad.kept_layers = unordered;
    MT_EXPECT(mmrec_iisan_item_encoder_create(model, "e", &bad, NULL), MMREC_EINVAL,
              "cfg->kept_layers[2] is 3, must be above kept_layers[1] = 3");
    bad.kept_layers = negative;
    bad.num_kept = 1;
    MT_EXPECT(mmrec_iisan_item_encoder_create(model, "e", &bad, NULL), MMREC_EINVAL,
              "cfg->kept_layers[0] is -1");
    bad.num_kept = 0;
    MT_EXPECT(mmrec_iisan_item_encoder_create(model, "e", &bad, NULL), MMREC_EINVAL,
              "cfg->num_kept is 0");
    bad.num_kept = 6;
    MT_EXPECT(mmrec_iisan_item_encoder_create(model, "e", &bad, NULL), MMREC_EINVAL,
              "cfg->num_kept is 6");
    bad = c;
    bad.num_layers = 1;
    bad.remove_first = 1;
    MT_EXPECT(mmrec_iisan_item_encoder_create(model, "e", &bad, NULL), MMREC_EINVAL,
              "cfg->remove_first");
    MT_EXPECT(mmrec_iisan_item_encoder_create(model, NULL, &c, NULL), MMREC_EINVAL, "name");
    MT_EXPECT(mmrec_iisan_item_encoder_create(model, "e", NULL, NULL), MMREC_EINVAL, "cfg");
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 0); /* failed creations left nothing behind */
    /* a name taken half-way: rolled back */
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = lc.out_dim = 2;
    MT_OK(mmrec_linear_create(model, "e.fc_mm", &lc, NULL));
    MT_EXPECT(mmrec_iisan_item_encoder_create(model, "e", &c, NULL), MMREC_ESTATE,
              "'e.fc_mm.weight' already exists");
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 2);
#undef MT_BAD
    /* config sizes */
    MT_EXPECT(mmrec_iisan_item_encoder_config_init_sized(
                  &c, MMREC__MIN_SIZE(mmrec_iisan_item_encoder_config) - 1),
              MMREC_EINVAL, "size is 79");
    MT_OK(mmrec_iisan_item_encoder_config_init_sized(
        &c, MMREC__MIN_SIZE(mmrec_iisan_item_encoder_config)));
    struct {
        mmrec_iisan_item_encoder_config c;
        int64_t extra;
    } big;
    MT_OK(mmrec_iisan_item_encoder_config_init_sized(&big.c, sizeof big));
    ck_assert(big.extra == 0 && big.c.num_layers == 13);
    big.c.hidden_dim = MT_H;
    big.c.dim = MT_D;
    big.c.adapter_dim = MT_R;
    MT_OK(mmrec_iisan_item_encoder_create(model, "big", &big.c, NULL));
    big.extra = 1;
    MT_EXPECT(mmrec_iisan_item_encoder_create(model, "big2", &big.c, NULL), MMREC_EINVAL,
              "newer libmmrec");
    mmrec_model_destroy(model);
}
END_TEST

/* A [n, L, H] state tensor from `data`. */
static mmrec_tensor *mt_states(mmrec_tape *tape, int64_t n, int64_t L, const float *data,
                               uint32_t flags) {
    int64_t s[3] = {n, L, MT_H};
    return mt_tape_tensor(tape, 3, s, data, flags);
}

START_TEST(test_encoder_forward_bad_input) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    static const int kept[3] = {0, 2, 4};
    mmrec_module *ii = mt_encoder(model, "ii", MMREC_IISAN_INTRA_INTER, MMREC_IISAN_GATE_SIGMOID,
                                  0, MMREC_ACT_RELU, kept, 3);
    mmrec_module *tx = mt_encoder(model, "tx", MMREC_IISAN_TEXT, MMREC_IISAN_GATE_SIGMOID, 0,
                                  MMREC_ACT_RELU, kept, 3);
    mmrec_module *im = mt_encoder(model, "im", MMREC_IISAN_IMAGE, MMREC_IISAN_GATE_SIGMOID, 0,
                                  MMREC_ACT_RELU, kept, 3);
    mmrec_module *it = mt_encoder(model, "it", MMREC_IISAN_INTER, MMREC_IISAN_GATE_SIGMOID, 0,
                                  MMREC_ACT_RELU, kept, 3);
    mmrec_module *ad = mt_adapter(model, "ad", MT_H, 2, MMREC_ACT_RELU);
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    float buf[4 * MT_L * MT_H];
    mt_fill_uniform(buf, sizeof buf / sizeof *buf, -1, 1, 3);
    mmrec_tensor *s3 = mt_states(tape, 4, 3, buf, 0), *s5 = mt_states(tape, 4, MT_L, buf, 0);
    mmrec_tensor *s4 = mt_states(tape, 4, 4, buf, 0), *y;
    mmrec_tensor *s2 = mt_states(tape, 2, 3, buf, 0), *foreign = mt_states(other, 4, 3, buf, 0);
    int64_t sw[3] = {4, 3, MT_H + 1}, sflat[2] = {4, 3 * MT_H};
    mmrec_tensor *wide = mt_tape_tensor(tape, 3, sw, buf, 0);
    mmrec_tensor *flat = mt_tape_tensor(tape, 2, sflat, buf, 0);
    size_t cap0, hw0, cap1, hw1;
    MT_OK(mmrec_tape_memory(tape, &cap0, &hw0));
    MT_EXPECT(mmrec_iisan_item_encoder_forward(ii, tape, s4, s3, &y), MMREC_ESHAPE,
              "text_states is [4,4,6]: 4 layers, expected 3 (the kept layers) or 5");
    MT_EXPECT(mmrec_iisan_item_encoder_forward(ii, tape, s3, wide, &y), MMREC_ESHAPE,
              "image_states is [4,3,7], its last dim must be 6");
    MT_EXPECT(mmrec_iisan_item_encoder_forward(ii, tape, flat, s3, &y), MMREC_ESHAPE,
              "text_states is [4,18]");
    MT_EXPECT(mmrec_iisan_item_encoder_forward(ii, tape, s3, s2, &y), MMREC_ESHAPE,
              "text_states is [4,3,6] and image_states is [2,3,6]");
    MT_EXPECT(mmrec_iisan_item_encoder_forward(ii, tape, s3, NULL, &y), MMREC_EINVAL,
              "argument 'image_states' is NULL");
    MT_EXPECT(mmrec_iisan_item_encoder_forward(it, tape, NULL, s3, &y), MMREC_EINVAL,
              "argument 'text_states' is NULL");
    MT_EXPECT(mmrec_iisan_item_encoder_forward(tx, tape, s5, s4, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_iisan_item_encoder_forward(ii, tape, foreign, s3, &y), MMREC_EINVAL,
              "'text_states' belongs to another tape");
    MT_EXPECT(mmrec_iisan_item_encoder_forward(ad, tape, s3, s3, &y), MMREC_EINVAL,
              "argument 'encoder'");
    MT_OK(mmrec_tape_memory(tape, &cap1, &hw1));
    ck_assert_uint_eq(hw1, hw0); /* failures left the tape as it was */
    /* a modality the mode does not read may be NULL (or anything) */
    MT_OK(mmrec_iisan_item_encoder_forward(tx, tape, s5, NULL, &y));
    MT_OK(mmrec_iisan_item_encoder_forward(im, tape, NULL, s3, &y));
    MT_OK(mmrec_iisan_item_encoder_forward(im, tape, wide, s3, &y));
    /* 4-D states: [batch, seq, L, H] -> [batch, seq, d] */
    int64_t s4d[4] = {2, 2, MT_L, MT_H};
    mmrec_tensor *b4 = mt_tape_tensor(tape, 4, s4d, buf, 0);
    MT_OK(mmrec_iisan_item_encoder_forward(ii, tape, b4, b4, &y));
    int nd;
    int64_t shape[MMREC_MAX_DIMS];
    MT_OK(mmrec_tensor_shape(y, &nd, shape));
    ck_assert(nd == 3 && shape[0] == 2 && shape[1] == 2 && shape[2] == MT_D);
    MT_EXPECT(mmrec_iisan_item_encoder_forward(ii, tape, b4, s5, &y), MMREC_ESHAPE,
              "their leading dims differ");
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* The encoder on the golden's states and parameters, with every layer or
 * only the kept ones as input, against PyTorch's output and gradients. */
static void mt_encoder_golden(const mt_golden *gold, const char *kase, bool gathered) {
    char key[64];
#define MT_G(what) (snprintf(key, sizeof key, "%s.%s", kase, what), mt_golden_get(gold, key))
    const mt_array *cfg = MT_G("cfg");
    const float *cf = cfg->data;
    mmrec_iisan_item_encoder_config c;
    MT_OK(mmrec_iisan_item_encoder_config_init(&c));
    c.hidden_dim = (int64_t)cf[0];
    c.dim = (int64_t)cf[1];
    c.adapter_dim = (int64_t)cf[2];
    c.activation = cf[3] == 2.0f ? MMREC_ACT_GELU : MMREC_ACT_RELU;
    c.mode = (mmrec_iisan_mode)cf[4];
    c.gate = (mmrec_iisan_gate)cf[5];
    c.gate_temperature = cf[6];
    c.num_layers = (int)cf[7];
    c.remove_first = (int)cf[8];
    int kept[16], K = (int)cf[9];
    for (int k = 0; k < K; k++) kept[k] = (int)cf[10 + k];
    c.kept_layers = kept;
    c.num_kept = K;
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *enc;
    MT_OK(mmrec_iisan_item_encoder_create(model, "enc", &c, &enc));
    mt_load_params(gold, kase, model, 4);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    bool reads_text = c.mode != MMREC_IISAN_IMAGE, reads_image = c.mode != MMREC_IISAN_TEXT;
    const mt_array *src[2] = {reads_text ? MT_G("text") : NULL, reads_image ? MT_G("image") : NULL};
    mmrec_tensor *st[2] = {NULL, NULL};
    float *kbuf[2] = {NULL, NULL};
    for (int m = 0; m < 2; m++) {
        const mt_array *a = src[m];
        if (a == NULL) continue;
        if (!gathered) {
            st[m] = mt_tape_tensor(tape, a->ndim, a->shape, a->data, MMREC_TENSOR_REQUIRES_GRAD);
            continue;
        }
        /* only the kept layers, as a gather returns them */
        int64_t shape[MMREC_MAX_DIMS];
        memcpy(shape, a->shape, sizeof shape);
        shape[a->ndim - 2] = K;
        size_t H = (size_t)c.hidden_dim, rows = a->numel / ((size_t)c.num_layers * H);
        kbuf[m] = malloc(rows * (size_t)K * H * sizeof(float));
        for (size_t i = 0; i < rows; i++)
            for (int k = 0; k < K; k++)
                memcpy(kbuf[m] + (i * (size_t)K + (size_t)k) * H,
                       a->data + (i * (size_t)c.num_layers + (size_t)kept[k]) * H,
                       H * sizeof(float));
        st[m] = mt_tape_tensor(tape, a->ndim, shape, kbuf[m], MMREC_TENSOR_REQUIRES_GRAD);
    }
    mmrec_tensor *y;
    MT_OK(mmrec_iisan_item_encoder_forward(enc, tape, st[0], st[1], &y));
    const mt_array *want = MT_G("y"), *r = MT_G("r");
    float got[256];
    ck_assert_uint_le(want->numel, 256);
    size_t numel;
    MT_OK(mmrec_tensor_numel(y, &numel));
    ck_assert_uint_eq(numel, want->numel);
    MT_OK(mmrec_tensor_copy_to(y, got, numel));
    mt_assert_close(key, got, want->data, numel, 1e-5f, 1e-6f);
    MT_OK(mmrec_model_zero_grad(model));
    MT_OK(mmrec_tape_backward_from(tape, y, r->data));
    static const char *const dname[2] = {"dtext", "dimage"};
    for (int m = 0; m < 2; m++) {
        if (st[m] == NULL) continue;
        const mt_array *dw = MT_G(dname[m]);
        const float *g;
        MT_OK(mmrec_tensor_grad(st[m], &g));
        if (!gathered) {
            mt_assert_close(key, g, dw->data, dw->numel, 1e-5f, 1e-6f);
            continue;
        }
        /* the kept layers' gradients; the others' are zero */
        size_t H = (size_t)c.hidden_dim, rows = dw->numel / ((size_t)c.num_layers * H);
        float *full = calloc(dw->numel, sizeof(float));
        for (size_t i = 0; i < rows; i++)
            for (int k = 0; k < K; k++)
                memcpy(full + (i * (size_t)c.num_layers + (size_t)kept[k]) * H,
                       g + (i * (size_t)K + (size_t)k) * H, H * sizeof(float));
        for (size_t j = 0; j < dw->numel; j++)
            if (full[j] == 0.0f) ck_assert_msg(dw->data[j] == 0.0f, "%s[%zu]", key, j);
        mt_assert_close(key, full, dw->data, dw->numel, 1e-5f, 1e-6f);
        free(full);
    }
    mt_check_grads(gold, kase, model, 4);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
    free(kbuf[0]);
    free(kbuf[1]);
#undef MT_G
}

START_TEST(test_encoder_matches_pytorch) {
    mt_golden gold;
    mt_golden_load(&gold, "iisan.bin");
    static const char *const cases[] = {"ii", "ii_rf_gelu", "ii_sum", "intra",
                                        "inter", "text", "image_rf"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mt_encoder_golden(&gold, cases[i], false);
        mt_encoder_golden(&gold, cases[i], true);
    }
    mt_golden_free(&gold);
}
END_TEST

/* Same values from every layer and from the kept ones, on training and
 * inference tapes, bit for bit. */
START_TEST(test_encoder_inputs_and_tapes_agree) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    static const int kept[3] = {1, 2, 4};
    mmrec_module *enc = mt_encoder(model, "e", MMREC_IISAN_INTRA_INTER, MMREC_IISAN_GATE_SIGMOID,
                                   1, MMREC_ACT_GELU, kept, 3);
    mt_perturb_params(model, 9);
    enum { N = 5 };
    float text[N * MT_L * MT_H], image[N * MT_L * MT_H];
    float tk[N * 3 * MT_H], ik[N * 3 * MT_H];
    mt_fill_uniform(text, sizeof text / sizeof *text, -1, 1, 1);
    mt_fill_uniform(image, sizeof image / sizeof *image, -1, 1, 2);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 3; k++) {
            size_t to = (size_t)(i * 3 + k) * MT_H, from = (size_t)(i * MT_L + kept[k]) * MT_H;
            memcpy(tk + to, text + from, sizeof(float) * MT_H);
            memcpy(ik + to, image + from, sizeof(float) * MT_H);
        }
    float out[4][N * MT_D];
    for (int v = 0; v < 4; v++) {
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        if (v >= 2) MT_OK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
        bool all = v % 2 == 0;
        mmrec_tensor *t = mt_states(tape, N, all ? MT_L : 3, all ? text : tk, 0);
        mmrec_tensor *im = mt_states(tape, N, all ? MT_L : 3, all ? image : ik, 0), *y;
        MT_OK(mmrec_iisan_item_encoder_forward(enc, tape, t, im, &y));
        MT_OK(mmrec_tensor_copy_to(y, out[v], N * MT_D));
        mmrec_tape_destroy(tape);
    }
    for (int v = 1; v < 4; v++) ck_assert(memcmp(out[0], out[v], sizeof out[0]) == 0);
    mmrec_model_destroy(model);
}
END_TEST

typedef struct mt_enc_ctx {
    mmrec_module *enc;
    int text, image; /* input index of each, -1: passed NULL */
} mt_enc_ctx;

static mmrec_status mt_enc_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    mt_enc_ctx *c = ctx;
    return mmrec_iisan_item_encoder_forward(c->enc, tape, c->text >= 0 ? in[c->text] : NULL,
                                            c->image >= 0 ? in[c->image] : NULL, out);
}

/* Finite differences for every mode, with gates away from 0 (the
 * parameters perturbed), with and without gates and remove_first, every
 * layer or the kept ones as input: the gradients of the states, the gates,
 * the adapters, the heads and the fusion. */
START_TEST(test_encoder_gradcheck) {
    static const struct {
        mmrec_iisan_mode mode;
        mmrec_iisan_gate gate;
        int remove_first;
        mmrec_activation act;
        int layers; /* of the input: MT_L or 3 */
    } cases[] = {
        {MMREC_IISAN_INTRA_INTER, MMREC_IISAN_GATE_SIGMOID, 0, MMREC_ACT_GELU, MT_L},
        {MMREC_IISAN_INTRA_INTER, MMREC_IISAN_GATE_SIGMOID, 1, MMREC_ACT_RELU, 3},
        {MMREC_IISAN_INTRA_INTER, MMREC_IISAN_GATE_NONE, 0, MMREC_ACT_TANH, 3},
        {MMREC_IISAN_INTRA, MMREC_IISAN_GATE_SIGMOID, 1, MMREC_ACT_GELU, MT_L},
        {MMREC_IISAN_INTER, MMREC_IISAN_GATE_SIGMOID, 0, MMREC_ACT_GELU, 3},
        {MMREC_IISAN_TEXT, MMREC_IISAN_GATE_SIGMOID, 0, MMREC_ACT_RELU, MT_L},
        {MMREC_IISAN_IMAGE, MMREC_IISAN_GATE_SIGMOID, 1, MMREC_ACT_GELU, 3},
    };
    static const int kept[3] = {0, 2, 4};
    enum { N = 3 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        mt_enc_ctx c = {mt_encoder(model, "e", cases[i].mode, cases[i].gate,
                                   cases[i].remove_first, cases[i].act, kept, 3),
                        -1, -1};
        mt_perturb_params(model, 20 + i);
        float text[N * MT_L * MT_H], image[N * MT_L * MT_H];
        mt_fill_uniform(text, sizeof text / sizeof *text, -1, 1, 30 + i);
        mt_fill_uniform(image, sizeof image / sizeof *image, -1, 1, 40 + i);
        mt_input in[2];
        int n_in = 0;
        if (cases[i].mode != MMREC_IISAN_IMAGE) {
            c.text = n_in;
            in[n_in++] = (mt_input){3, {N, cases[i].layers, MT_H}, text, false};
        }
        if (cases[i].mode != MMREC_IISAN_TEXT) {
            c.image = n_in;
            in[n_in++] = (mt_input){3, {N, cases[i].layers, MT_H}, image, false};
        }
        char name[64];
        snprintf(name, sizeof name, "iisan encoder case %zu", i);
        mt_gradcheck_opts opts = {.h = cases[i].act == MMREC_ACT_RELU ? 2e-3f : 1e-2f,
                                  .tol = 1e-2f, .floor = 5e-3f};
        mt_gradcheck(name, mt_enc_fwd, &c, in, n_in, model, &opts);
        /* the gates are away from 0 */
        mmrec_tensor *p;
        if (cases[i].gate == MMREC_IISAN_GATE_SIGMOID) {
            const char *g = cases[i].mode == MMREC_IISAN_INTER ? "e.side_gate_params_mm.1"
                            : cases[i].mode == MMREC_IISAN_IMAGE ? "e.side_gate_params_cv.1"
                                                                 : "e.side_gate_params_text.1";
            const float *d;
            MT_OK(mmrec_model_param(model, g, &p));
            MT_OK(mmrec_tensor_data_const(p, &d));
            ck_assert(fabsf(d[0]) > 1e-3f);
        }
        mmrec_model_destroy(model);
    }
}
END_TEST

/* The heads of a batch of many rows run through the product of their two
 * weights (one node), those of a single row as two linear nodes: both give
 * the same embeddings and gradients. */
START_TEST(test_encoder_heads_product_matches_two_linears) {
    enum { N = 8 };
    static const int kept[3] = {0, 2, 4};
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *enc = mt_encoder(model, "e", MMREC_IISAN_INTRA_INTER,
                                   MMREC_IISAN_GATE_SIGMOID, 0, MMREC_ACT_GELU, kept, 3);
    mt_perturb_params(model, 77);
    float text[N * MT_L * MT_H], image[N * MT_L * MT_H], r[N * MT_D], y_batch[N * MT_D];
    float y_rows[N * MT_D];
    mt_fill_uniform(text, N * MT_L * MT_H, -1, 1, 78);
    mt_fill_uniform(image, N * MT_L * MT_H, -1, 1, 79);
    mt_fill_uniform(r, N * MT_D, -1, 1, 80);
    size_t n_grads;
    MT_OK(mmrec_model_param_count(model, &n_grads, NULL));
    float *g_batch = malloc(n_grads * sizeof *g_batch), *g_rows = malloc(n_grads * sizeof *g_rows);
    ck_assert(g_batch && g_rows);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (int pass = 0; pass < 2; pass++) { /* 0: one batch of N rows; 1: N batches of one */
        MT_OK(mmrec_model_zero_grad(model));
        size_t n = pass == 0 ? N : 1;
        for (size_t i = 0; i < N; i += n) {
            int64_t shape[3] = {(int64_t)n, MT_L, MT_H};
            mmrec_tensor *t, *im, *y;
            MT_OK(mmrec_tape_wrap(tape, text + i * MT_L * MT_H, 3, shape, MMREC_TENSOR_READONLY,
                                  &t));
            MT_OK(mmrec_tape_wrap(tape, image + i * MT_L * MT_H, 3, shape,
                                  MMREC_TENSOR_READONLY, &im));
            MT_OK(mmrec_iisan_item_encoder_forward(enc, tape, t, im, &y));
            MT_OK(mmrec_tensor_copy_to(y, (pass == 0 ? y_batch : y_rows) + i * MT_D, n * MT_D));
            MT_OK(mmrec_tape_backward_from(tape, y, r + i * MT_D));
            mmrec_tape_reset(tape);
        }
        MT_OK(mmrec_model_export_grads(model, pass == 0 ? g_batch : g_rows, n_grads));
    }
    mt_assert_close("heads: embeddings", y_batch, y_rows, N * MT_D, 1e-5f, 1e-6f);
    mt_assert_close("heads: gradients", g_batch, g_rows, n_grads, 1e-5f, 1e-6f);
    free(g_batch);
    free(g_rows);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* A training step (reset, forward, backward, Adam) allocates nothing once
 * the tape has its size. */
static mmrec_status mt_encoder_step(mmrec_module *enc, mmrec_tape *tape, const float *text,
                                    const float *image, int n, const float *r) {
    int64_t s[3] = {n, MT_L, MT_H};
    mmrec_tensor *t, *im, *y;
    MT_TRY(mmrec_tape_wrap(tape, (float *)text, 3, s, MMREC_TENSOR_READONLY, &t));
    MT_TRY(mmrec_tape_wrap(tape, (float *)image, 3, s, MMREC_TENSOR_READONLY, &im));
    MT_TRY(mmrec_iisan_item_encoder_forward(enc, tape, t, im, &y));
    return mmrec_tape_backward_from(tape, y, r);
}

typedef struct mt_steady {
    mmrec_module *enc;
    mmrec_tape *tape;
    mmrec_optimizer *opt;
    const float *text, *image, *r;
    int n;
} mt_steady;

static mmrec_status mt_encoder_steady(void *ctx) {
    mt_steady *c = ctx;
    mmrec_tape_reset(c->tape);
    MT_OK(mt_encoder_step(c->enc, c->tape, c->text, c->image, c->n, c->r));
    return mmrec_optimizer_step(c->opt);
}

START_TEST(test_encoder_step_steady_state_no_malloc) {
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *enc = mt_encoder(model, "e", MMREC_IISAN_INTRA_INTER, MMREC_IISAN_GATE_SIGMOID,
                                   0, MMREC_ACT_RELU, NULL, 0);
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    mmrec_optimizer *opt;
    MT_OK(mmrec_optimizer_create(model, &oc, &opt));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    enum { N = 8 };
    static float text[N * MT_L * MT_H], image[N * MT_L * MT_H], r[N * MT_D];
    mt_fill_uniform(text, N * MT_L * MT_H, -1, 1, 1);
    mt_fill_uniform(image, N * MT_L * MT_H, -1, 1, 2);
    mt_fill_uniform(r, N * MT_D, -1, 1, 3);
    mt_steady c = {enc, tape, opt, text, image, r, N};
    mt_assert_steady_state(mt_encoder_steady, &c);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(model);
    MT_OK(mmrec_set_allocator(NULL));
}
END_TEST

/* Creation, a forward and its backward with the n-th allocation failing. */
static mmrec_status mt_encoder_oom(void *ctx) {
    (void)ctx;
    enum { N = 3 };
    float text[N * MT_L * MT_H], image[N * MT_L * MT_H], r[N * MT_D];
    mt_fill_uniform(text, N * MT_L * MT_H, -1, 1, 1);
    mt_fill_uniform(image, N * MT_L * MT_H, -1, 1, 2);
    mt_fill_uniform(r, N * MT_D, -1, 1, 3);
    mmrec_model *model = NULL;
    mmrec_tape *tape = NULL;
    mmrec_module *enc = NULL, *ad = NULL;
    mmrec_status s = mmrec_model_create(&model);
    mmrec_iisan_item_encoder_config c;
    if (s == MMREC_OK) s = mmrec_iisan_item_encoder_config_init(&c);
    c.hidden_dim = MT_H;
    c.dim = MT_D;
    c.adapter_dim = MT_R;
    c.num_layers = MT_L;
    c.remove_first = 1;
    if (s == MMREC_OK) s = mmrec_iisan_item_encoder_create(model, "e", &c, &enc);
    mmrec_adapter_config ac;
    if (s == MMREC_OK) s = mmrec_adapter_config_init(&ac);
    ac.dim = MT_H;
    if (s == MMREC_OK) s = mmrec_adapter_create(model, "ad", &ac, &ad);
    if (s == MMREC_OK) s = mmrec_tape_create(&tape);
    if (s == MMREC_OK) s = mt_encoder_step(enc, tape, text, image, N, r);
    int64_t sx[2] = {N, MT_H};
    mmrec_tensor *x, *y;
    if (s == MMREC_OK) s = mmrec_tape_wrap(tape, text, 2, sx, MMREC_TENSOR_READONLY, &x);
    if (s == MMREC_OK) s = mmrec_adapter_forward(ad, tape, x, &y);
    if (s == MMREC_OK) s = mmrec_tape_backward_from(tape, y, text);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
    return s;
}

START_TEST(test_encoder_oom_reports_enomem_without_leaks) {
    ck_assert_int_gt(mt_oom_loop("iisan", mt_encoder_oom, NULL), 5);
}
END_TEST

static Suite *iisan_suite(void) {
    Suite *s = suite_create("iisan");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_adapter_bad_config_and_input);
    tcase_add_test(api, test_encoder_bad_config);
    tcase_add_test(api, test_encoder_forward_bad_input);
    suite_add_tcase(s, api);
    TCase *fwd = tcase_create("forward");
    tcase_add_test(fwd, test_adapter_parameters_and_init);
    tcase_add_test(fwd, test_adapter_matches_pytorch);
    tcase_add_test(fwd, test_encoder_defaults_parameters_and_init);
    tcase_add_test(fwd, test_encoder_matches_pytorch);
    tcase_add_test(fwd, test_encoder_inputs_and_tapes_agree);
    suite_add_tcase(s, fwd);
    TCase *bwd = tcase_create("backward");
    tcase_set_timeout(bwd, 120);
    tcase_add_test(bwd, test_adapter_gradcheck);
    tcase_add_test(bwd, test_encoder_gradcheck);
    tcase_add_test(bwd, test_encoder_heads_product_matches_two_linears);
    suite_add_tcase(s, bwd);
    TCase *life = tcase_create("lifecycle");
    tcase_set_timeout(life, 120);
    tcase_add_test(life, test_encoder_step_steady_state_no_malloc);
    tcase_add_test(life, test_encoder_oom_reports_enomem_without_leaks);
    suite_add_tcase(s, life);
    return s;
}
