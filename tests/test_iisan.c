/* IISAN: the bottleneck adapter (modules.h): PyTorch goldens, gradients,
 * bad input. */
#include "mt.h"
#include "core/config_sizes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

MT_SUITE(iisan_suite)

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

/* Copies the golden's "<kase>.param.<name>" into every parameter of
 * `model`, whose names are "<prefix>.<name>"; the golden must hold one
 * for every parameter and no other. */
static void mt_load_params(const mt_golden *gold, const char *kase, mmrec_model *model,
                           size_t prefix_len) {
    size_t n, in_golden = 0;
    MT_OK(mmrec_model_num_params(model, &n));
    char key[64];
    for (size_t p = 0; p < n; p++) {
        const char *name;
        mmrec_tensor *t;
        MT_OK(mmrec_model_param_at(model, p, &name, &t));
        snprintf(key, sizeof key, "%s.param.%s", kase, name + prefix_len);
        const mt_array *want = mt_golden_get(gold, key);
        size_t numel;
        MT_OK(mmrec_tensor_numel(t, &numel));
        ck_assert_msg(numel == want->numel, "%s: %zu values, golden %zu", key, numel, want->numel);
        MT_OK(mmrec_tensor_copy_from(t, want->data, want->numel));
    }
    snprintf(key, sizeof key, "%s.param.", kase);
    for (size_t i = 0; i < gold->n; i++)
        in_golden += strncmp(gold->arrays[i].name, key, strlen(key)) == 0;
    ck_assert_uint_eq(in_golden, n);
}

static void mt_check_grads(const mt_golden *gold, const char *kase, mmrec_model *model,
                           size_t prefix_len) {
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    char key[64];
    for (size_t p = 0; p < n; p++) {
        const char *name;
        mmrec_tensor *t;
        const float *g;
        MT_OK(mmrec_model_param_at(model, p, &name, &t));
        MT_OK(mmrec_tensor_grad(t, &g));
        snprintf(key, sizeof key, "%s.grad.%s", kase, name + prefix_len);
        const mt_array *want = mt_golden_get(gold, key);
        mt_assert_close(key, g, want->data, want->numel, 1e-5f, 1e-6f);
    }
}

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

static Suite *iisan_suite(void) {
    Suite *s = suite_create("iisan");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_adapter_bad_config_and_input);
    suite_add_tcase(s, api);
    TCase *fwd = tcase_create("forward");
    tcase_add_test(fwd, test_adapter_parameters_and_init);
    tcase_add_test(fwd, test_adapter_matches_pytorch);
    suite_add_tcase(s, fwd);
    TCase *bwd = tcase_create("backward");
    tcase_set_timeout(bwd, 120);
    tcase_add_test(bwd, test_adapter_gradcheck);
    suite_add_tcase(s, bwd);
    return s;
}
