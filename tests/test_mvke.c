/* MVKE (mvke.h): the user tower, gate, score and loss against a port of
 * the released code in PyTorch, gradients by finite differences, the
 * serving export's inner products against the model's scores, bad
 * configs and inputs, OOM and the steady-state step. */
#include "mt.h"
#include "twotower/twotower_internal.h" /* MMREC__MIN_SIZE */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MT_SUITE(mvke_suite)

/* A small model: F fields of width E, the default 5 kernels and tasks. */
enum { MB = 4, MF = 3, ME = 6, MK = 5 };

static mmrec_module *mt_mvke(mmrec_model *model, const char *name, const int64_t *hidden,
                             int num_hidden) {
    mmrec_mvke_config c;
    MT_OK(mmrec_mvke_config_init(&c));
    c.dim = ME;
    c.num_fields = MF;
    c.expert_hidden = hidden;
    c.num_expert_hidden = num_hidden;
    mmrec_module *m;
    MT_OK(mmrec_mvke_create(model, name, &c, &m));
    return m;
}

static const float *mt_data(const mmrec_tensor *t) {
    const float *d;
    MT_OK(mmrec_tensor_data_const(t, &d));
    return d;
}

/* ---- config and parameters ---- */

START_TEST(test_mvke_defaults_and_parameters) {
    mmrec_mvke_config c;
    MT_OK(mmrec_mvke_config_init(&c));
    ck_assert_uint_eq(c.struct_size, sizeof c);
    ck_assert(c.dim == 0 && c.num_fields == 0 && c.num_kernels == 5 && c.num_tasks == 2);
    static const int want_k[7] = {0, 1, 2, 1, 2, 3, 4};
    ck_assert(c.task_num_kernels[0] == 3 && c.task_num_kernels[1] == 4);
    for (int i = 0; i < 7; i++) ck_assert_int_eq(c.task_kernels[i], want_k[i]);
    ck_assert(c.expert_hidden == NULL && c.num_expert_hidden == 0);
    ck_assert(c.expert_activation == MMREC_ACT_RELU);
    ck_assert(c.init_std == 0.01f && c.layer_norm_eps == 1e-12f);
    ck_assert_uint_eq(MMREC__MIN_SIZE(mmrec_mvke_config), 72);

    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    int64_t hidden[1] = {7};
    mmrec_module *m = mt_mvke(model, "user", hidden, 1);
    static const struct {
        const char *name;
        int ndim;
        int64_t shape[2];
    } want[] = {
        {"user.virtual_kernels", 2, {MK, ME}}, {"user.query_proj.weight", 2, {ME, ME}},
        {"user.query_proj.bias", 1, {ME}},     {"user.key_proj.weight", 2, {ME, ME}},
        {"user.value_proj.bias", 1, {ME}},     {"user.layer_norm.weight", 1, {ME}},
        {"user.layer_norm.bias", 1, {ME}},     {"user.experts.0.0.weight", 2, {7, MF * ME}},
        {"user.experts.4.1.weight", 2, {ME, 7}}, {"user.experts.4.1.bias", 1, {ME}},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        mmrec_tensor *p;
        int nd;
        int64_t shape[MMREC_MAX_DIMS];
        MT_OK(mmrec_model_param(model, want[i].name, &p));
        MT_OK(mmrec_tensor_shape(p, &nd, shape));
        ck_assert_int_eq(nd, want[i].ndim);
        for (int d = 0; d < nd; d++) ck_assert_int_eq(shape[d], want[i].shape[d]);
    }
    /* kernels N(0, 0.01^2), projection biases 0, LayerNorm 1 and 0 */
    mmrec_tensor *p;
    MT_OK(mmrec_model_param(model, "user.virtual_kernels", &p));
    const float *vk = mt_data(p);
    double ss = 0;
    for (int i = 0; i < MK * ME; i++) ss += (double)vk[i] * vk[i];
    ck_assert(sqrt(ss / (MK * ME)) > 0.004 && sqrt(ss / (MK * ME)) < 0.02);
    MT_OK(mmrec_model_param(model, "user.key_proj.bias", &p));
    for (int i = 0; i < ME; i++) ck_assert_float_eq(mt_data(p)[i], 0.0f);
    MT_OK(mmrec_model_param(model, "user.layer_norm.weight", &p));
    for (int i = 0; i < ME; i++) ck_assert_float_eq(mt_data(p)[i], 1.0f);
    /* 1 + 7 parameters of the bottom, 2 per expert layer */
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 9 + MK * 4);
    size_t width;
    MT_OK(mmrec_mvke_serving_dim(m, 0, &width));
    ck_assert_uint_eq(width, 3 * ME);
    MT_OK(mmrec_mvke_serving_dim(m, 1, &width));
    ck_assert_uint_eq(width, 4 * ME);
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_mvke_bad_config) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_mvke_config c;
    mmrec_module *m;
#define MT_RESET()                          \
    do {                                    \
        MT_OK(mmrec_mvke_config_init(&c));  \
        c.dim = ME;                         \
        c.num_fields = MF;                  \
    } while (0)
    MT_RESET();
    c.dim = 0;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL, "cfg->dim is 0");
    MT_RESET();
    c.num_fields = -2;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL, "cfg->num_fields is -2");
    MT_RESET();
    c.num_kernels = 65;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL, "cfg->num_kernels is 65");
    MT_RESET();
    c.num_tasks = 0;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL, "cfg->num_tasks is 0");
    /* kernel subsets: out of range, empty, duplicated, missing */
    static const int out_of_range[] = {0, 1, 5, 1, 2, 3, 4};
    MT_RESET();
    c.task_kernels = out_of_range;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL,
              "cfg->task_kernels[2] (task 0) is 5, must be in [0, 5)");
    static const int negative[] = {0, 1, 2, 1, -1, 3, 4};
    c.task_kernels = negative;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL,
              "cfg->task_kernels[4] (task 1) is -1");
    static const int dup[] = {0, 1, 2, 1, 2, 3, 2};
    c.task_kernels = dup;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL,
              "cfg->task_kernels[6] (task 1) is 2, already in the task's subset");
    static const int empty[] = {3, 0};
    MT_RESET();
    c.task_num_kernels = empty;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL,
              "cfg->task_num_kernels[1] is 0: task 1 needs 1 .. 5 kernels");
    static const int too_many[] = {6, 1};
    c.task_num_kernels = too_many;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL, "cfg->task_num_kernels[0] is 6");
    MT_RESET();
    c.task_kernels = NULL;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL, "cfg->task_kernels is NULL");
    MT_RESET();
    c.task_num_kernels = NULL;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL,
              "cfg->task_num_kernels is NULL");
    /* experts */
    MT_RESET();
    c.num_expert_hidden = 9;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL, "cfg->num_expert_hidden is 9");
    c.num_expert_hidden = 1;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL, "cfg->expert_hidden is NULL");
    static const int64_t zero_hidden[1] = {0};
    c.expert_hidden = zero_hidden;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL, "cfg->expert_hidden[0] is 0");
    MT_RESET();
    c.expert_activation = (mmrec_activation)42;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL, "cfg->expert_activation is 42");
    MT_RESET();
    c.init_std = 0.0f;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL, "cfg->init_std is 0");
    MT_RESET();
    c.layer_norm_eps = NAN;
    MT_EXPECT(mmrec_mvke_create(model, "m", &c, &m), MMREC_EINVAL, "cfg->layer_norm_eps is nan");
    /* names */
    char long_name[200];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    MT_RESET();
    MT_EXPECT(mmrec_mvke_create(model, long_name, &c, &m), MMREC_EINVAL, "name is 199 bytes");
    MT_EXPECT(mmrec_mvke_create(NULL, "m", &c, &m), MMREC_EINVAL, "'model'");
    MT_EXPECT(mmrec_mvke_create(model, "m", NULL, &m), MMREC_EINVAL, "'cfg'");
    /* config sizes (STYLE.md 5): older prefix, newer zero tail, newer non-zero tail */
    struct {
        mmrec_mvke_config c;
        uint64_t extra;
    } big;
    memset(&big, 0, sizeof big);
    MT_OK(mmrec_mvke_config_init_sized(&big.c, sizeof big));
    big.c.dim = ME;
    big.c.num_fields = MF;
    MT_OK(mmrec_mvke_create(model, "big", &big.c, NULL));
    big.extra = 1;
    MT_EXPECT(mmrec_mvke_create(model, "big2", &big.c, &m), MMREC_EINVAL, "newer libmmrec");
    MT_RESET();
    c.struct_size = MMREC__MIN_SIZE(mmrec_mvke_config) - 4;
    MT_EXPECT(mmrec_mvke_create(model, "small", &c, &m), MMREC_EINVAL, "struct_size");
    mmrec_mvke_config small;
    MT_EXPECT(mmrec_mvke_config_init_sized(&small, 8), MMREC_EINVAL, "size");
    /* a failed create leaves the model as it was */
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 9 + MK * 2);
    MT_EXPECT(mmrec_mvke_create(model, "big", &c, &m), MMREC_ESTATE, "big");
#undef MT_RESET
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_mvke_bad_input) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *m = mt_mvke(model, "m", NULL, 0), *lin;
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = lc.out_dim = 2;
    MT_OK(mmrec_linear_create(model, "lin", &lc, &lin));
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    float xs[MB * (MF + 1) * ME], ts[MB * ME], ls[MB] = {1, 0, 1, 0};
    mt_fill_uniform(xs, MB * (MF + 1) * ME, -1, 1, 1);
    mt_fill_uniform(ts, MB * ME, -1, 1, 2);
    int64_t sx[3] = {MB, MF, ME}, st[2] = {MB, ME}, sl[1] = {MB}, sbad[3] = {MB, MF + 1, ME};
    int64_t st3[2] = {MB - 1, ME}, sl2[1] = {MB + 1};
    mmrec_tensor *x = mt_tape_tensor(tape, 3, sx, xs, 0), *t = mt_tape_tensor(tape, 2, st, ts, 0);
    mmrec_tensor *lab = mt_tape_tensor(tape, 1, sl, ls, 0);
    mmrec_tensor *xbad = mt_tape_tensor(tape, 3, sbad, xs, 0);
    mmrec_tensor *tshort = mt_tape_tensor(tape, 2, st3, ts, 0);
    mmrec_tensor *lablong = mt_tape_tensor(tape, 1, sl2, xs, 0);
    mmrec_tensor *xo = mt_tape_tensor(other, 3, sx, xs, 0), *e, *y;
    MT_OK(mmrec_mvke_forward(m, tape, x, &e));

    /* forward */
    MT_EXPECT(mmrec_mvke_forward(m, tape, xbad, &y), MMREC_ESHAPE,
              "fields is [4,4,6], expected [batch, 3, 6]");
    MT_EXPECT(mmrec_mvke_forward(m, tape, t, &y), MMREC_ESHAPE, "fields is [4,6]");
    MT_EXPECT(mmrec_mvke_forward(lin, tape, x, &y), MMREC_EINVAL, "mvke");
    MT_EXPECT(mmrec_mvke_forward(m, tape, xo, &y), MMREC_EINVAL, "fields");
    MT_EXPECT(mmrec_mvke_forward(m, tape, NULL, &y), MMREC_EINVAL, "'fields'");
    /* gate and score: shapes, task out of range */
    MT_EXPECT(mmrec_mvke_gate(m, tape, x, t, 0, &y), MMREC_ESHAPE,
              "experts is [4,3,6], expected [batch, 5, 6]");
    MT_EXPECT(mmrec_mvke_gate(m, tape, e, tshort, 0, &y), MMREC_ESHAPE,
              "tag is [3,6], expected [4, 6]");
    MT_EXPECT(mmrec_mvke_gate(m, tape, e, t, 2, &y), MMREC_ERANGE,
              "task is 2, must be in [0, 2)");
    MT_EXPECT(mmrec_mvke_gate(m, tape, e, t, -1, &y), MMREC_ERANGE, "task is -1");
    MT_EXPECT(mmrec_mvke_score(m, tape, e, t, 5, &y), MMREC_ERANGE, "task is 5");
    MT_EXPECT(mmrec_mvke_score(m, tape, e, x, 0, &y), MMREC_ESHAPE, "tag is [4,3,6]");
    MT_EXPECT(mmrec_mvke_score(m, tape, t, t, 0, &y), MMREC_ESHAPE, "experts is [4,6]");
    MT_EXPECT(mmrec_mvke_score(m, tape, e, NULL, 0, &y), MMREC_EINVAL, "'tag'");
    /* loss */
    mmrec_tensor *tags[2] = {t, t}, *labels[2] = {lab, lab};
    float wts[2] = {1.0f, INFINITY};
    MT_EXPECT(mmrec_mvke_loss(m, tape, e, tags, labels, NULL, 3, &y), MMREC_EINVAL,
              "num_tasks is 3, the module has 2");
    MT_EXPECT(mmrec_mvke_loss(m, tape, e, tags, labels, wts, 2, &y), MMREC_EINVAL,
              "weights[1] is inf");
    mmrec_tensor *tags_bad[2] = {t, tshort}, *labels_bad[2] = {lablong, lab};
    MT_EXPECT(mmrec_mvke_loss(m, tape, e, tags_bad, labels, NULL, 2, &y), MMREC_ESHAPE,
              "tags[1] is [3,6]");
    MT_EXPECT(mmrec_mvke_loss(m, tape, e, tags, labels_bad, NULL, 2, &y), MMREC_ESHAPE,
              "labels[0] is [5], expected [4]");
    mmrec_tensor *tags_null[2] = {t, NULL};
    MT_EXPECT(mmrec_mvke_loss(m, tape, e, tags_null, labels, NULL, 2, &y), MMREC_EINVAL,
              "tags[1]");
    MT_EXPECT(mmrec_mvke_loss(m, tape, x, tags, labels, NULL, 2, &y), MMREC_ESHAPE,
              "experts is [4,3,6]");
    /* exports */
    float buf[MB * 4 * ME];
    size_t width;
    MT_EXPECT(mmrec_mvke_serving_dim(m, 2, &width), MMREC_ERANGE, "task is 2");
    MT_EXPECT(mmrec_mvke_export_user(m, e, 1, buf, MB * 4 * ME - 1), MMREC_EINVAL,
              "out_size is 95 floats, task 1 needs 96");
    MT_EXPECT(mmrec_mvke_export_user(m, e, 7, buf, sizeof buf / sizeof buf[0]), MMREC_ERANGE,
              "task is 7");
    MT_EXPECT(mmrec_mvke_export_user(m, x, 0, buf, sizeof buf / sizeof buf[0]), MMREC_ESHAPE,
              "experts is [4,3,6]");
    MT_EXPECT(mmrec_mvke_export_tag(m, t, 0, buf, MB * 3 * ME - 1), MMREC_EINVAL,
              "out_size is 71 floats, task 0 needs 72");
    MT_EXPECT(mmrec_mvke_export_tag(m, t, -3, buf, sizeof buf / sizeof buf[0]), MMREC_ERANGE,
              "task is -3");
    MT_EXPECT(mmrec_mvke_export_tag(m, x, 0, buf, sizeof buf / sizeof buf[0]), MMREC_ESHAPE,
              "tag is [4,3,6], expected [batch, 6]");
    MT_EXPECT(mmrec_mvke_export_tag(lin, t, 0, buf, sizeof buf / sizeof buf[0]), MMREC_EINVAL,
              "mvke");
    /* a failed call writes nothing */
    for (size_t i = 0; i < sizeof buf / sizeof buf[0]; i++) buf[i] = 7.0f;
    MT_EXPECT(mmrec_mvke_export_tag(m, t, 0, buf, 10), MMREC_EINVAL, "out_size");
    for (size_t i = 0; i < sizeof buf / sizeof buf[0]; i++) ck_assert_float_eq(buf[i], 7.0f);
    /* a stale experts tensor is caught */
    mmrec_tape_reset(tape);
    MT_EXPECT(mmrec_mvke_export_user(m, e, 0, buf, sizeof buf / sizeof buf[0]), MMREC_ESTALE,
              "experts");
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- against PyTorch ---- */

static void mt_golden_case(const mt_golden *g, const char *kase) {
    char key[96];
#define MT_GET(suffix) (snprintf(key, sizeof key, "%s.%s", kase, suffix), mt_golden_get(g, key))
    const mt_array *cfg = MT_GET("cfg"), *tn = MT_GET("task_n"), *tk = MT_GET("task_kernels");
    int F = (int)cfg->data[0], E = (int)cfg->data[1], K = (int)cfg->data[2];
    int nh = (int)cfg->data[3], T = (int)tn->numel;
    int64_t hidden[8];
    int task_n[16], task_k[64];
    for (int i = 0; i < nh; i++) hidden[i] = (int64_t)cfg->data[4 + i];
    for (int i = 0; i < T; i++) task_n[i] = (int)tn->data[i];
    for (size_t i = 0; i < tk->numel; i++) task_k[i] = (int)tk->data[i];

    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_mvke_config c;
    MT_OK(mmrec_mvke_config_init(&c));
    c.dim = E;
    c.num_fields = F;
    c.num_kernels = K;
    c.num_tasks = T;
    c.task_kernels = task_k;
    c.task_num_kernels = task_n;
    c.expert_hidden = hidden;
    c.num_expert_hidden = nh;
    mmrec_module *m;
    MT_OK(mmrec_mvke_create(model, "mvke", &c, &m));
    mt_load_params(g, kase, model, strlen("mvke."));

    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    const mt_array *xa = MT_GET("x");
    mmrec_tensor *x = mt_tape_tensor(tape, 3, xa->shape, xa->data, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tags[16], *labels[16], *e, *loss;
    for (int t = 0; t < T; t++) {
        char sub[32];
        snprintf(sub, sizeof sub, "tag%d", t);
        const mt_array *ta = MT_GET(sub);
        tags[t] = mt_tape_tensor(tape, 2, ta->shape, ta->data, MMREC_TENSOR_REQUIRES_GRAD);
        snprintf(sub, sizeof sub, "label%d", t);
        const mt_array *la = MT_GET(sub);
        labels[t] = mt_tape_tensor(tape, 1, la->shape, la->data, 0);
    }
    MT_OK(mmrec_mvke_forward(m, tape, x, &e));
    const mt_array *want = MT_GET("experts");
    mt_assert_close(key, mt_data(e), want->data, want->numel, 1e-5f, 1e-6f);
    for (int t = 0; t < T; t++) {
        char sub[32];
        mmrec_tensor *u, *s;
        MT_OK(mmrec_mvke_gate(m, tape, e, tags[t], t, &u));
        snprintf(sub, sizeof sub, "u%d", t);
        want = MT_GET(sub);
        mt_assert_close(key, mt_data(u), want->data, want->numel, 1e-5f, 1e-6f);
        MT_OK(mmrec_mvke_score(m, tape, e, tags[t], t, &s));
        snprintf(sub, sizeof sub, "score%d", t);
        want = MT_GET(sub);
        mt_assert_close(key, mt_data(s), want->data, want->numel, 1e-5f, 1e-6f);
    }
    MT_OK(mmrec_mvke_loss(m, tape, e, tags, labels, NULL, (size_t)T, &loss));
    want = MT_GET("loss");
    mt_assert_close(key, mt_data(loss), want->data, 1, 1e-5f, 1e-6f);
    MT_OK(mmrec_tape_backward(tape, loss));
    /* every parameter's gradient as mt_check_grads checks it, but for the
     * key projection's bias: it adds b . Qk[k] to every field's logit of
     * kernel k, which the softmax over the fields removes, so its gradient
     * is 0 (here and in PyTorch, up to rounding) */
    size_t np;
    MT_OK(mmrec_model_num_params(model, &np));
    for (size_t i = 0; i < np; i++) {
        const char *name;
        mmrec_tensor *p;
        const float *gp;
        size_t n;
        MT_OK(mmrec_model_param_at(model, i, &name, &p));
        MT_OK(mmrec_tensor_grad(p, &gp));
        MT_OK(mmrec_tensor_numel(p, &n));
        snprintf(key, sizeof key, "%s.grad.%s", kase, name + strlen("mvke."));
        want = mt_golden_get(g, key);
        ck_assert_uint_eq(n, want->numel);
        if (strcmp(name, "mvke.key_proj.bias") == 0) {
            for (size_t j = 0; j < n; j++) {
                ck_assert_msg(fabsf(gp[j]) < 1e-6f, "%s[%zu] is %g", key, j, (double)gp[j]);
                ck_assert_msg(fabsf(want->data[j]) < 1e-12f, "%s", key);
            }
            continue;
        }
        mt_assert_close(key, gp, want->data, n, 1e-5f, 1e-6f);
    }
    const float *gx;
    MT_OK(mmrec_tensor_grad(x, &gx));
    want = MT_GET("dx");
    mt_assert_close(key, gx, want->data, want->numel, 1e-5f, 1e-6f);
    for (int t = 0; t < T; t++) {
        char sub[32];
        snprintf(sub, sizeof sub, "dtag%d", t);
        want = MT_GET(sub);
        MT_OK(mmrec_tensor_grad(tags[t], &gx));
        mt_assert_close(key, gx, want->data, want->numel, 1e-5f, 1e-6f);
    }
#undef MT_GET
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}

START_TEST(test_mvke_matches_pytorch) {
    mt_golden g;
    mt_golden_load(&g, "mvke.bin");
    mt_golden_case(&g, "released");
    mt_golden_case(&g, "subsets");
    mt_golden_free(&g);
}
END_TEST

/* ---- gradients by finite differences ---- */

typedef struct mt_mv {
    mmrec_module *m;
    int what; /* 0 experts, 1 gate of task 1, 2 score of task 0, 3 loss */
} mt_mv;

static mmrec_status mt_mv_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                              mmrec_tensor **out) {
    mt_mv *c = ctx;
    mmrec_tensor *e;
    mmrec_status s = mmrec_mvke_forward(c->m, tape, in[0], &e);
    if (s != MMREC_OK || c->what == 0) {
        if (s == MMREC_OK) *out = e;
        return s;
    }
    if (c->what == 1) return mmrec_mvke_gate(c->m, tape, e, in[1], 1, out);
    if (c->what == 2) return mmrec_mvke_score(c->m, tape, e, in[1], 0, out);
    mmrec_tensor *tags[2] = {in[1], in[2]}, *labels[2] = {in[3], in[4]};
    static const float w[2] = {0.7f, 1.6f};
    return mmrec_mvke_loss(c->m, tape, e, tags, labels, w, 2, out);
}

START_TEST(test_mvke_gradients) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    /* tanh between the expert layers: ReLU's kink would sit inside the
     * finite-difference steps of some coordinates (the golden test checks
     * the ReLU experts) */
    int64_t hidden[1] = {5};
    mmrec_mvke_config mc;
    MT_OK(mmrec_mvke_config_init(&mc));
    mc.dim = ME;
    mc.num_fields = MF;
    mc.expert_hidden = hidden;
    mc.num_expert_hidden = 1;
    mc.expert_activation = MMREC_ACT_TANH;
    mmrec_module *m;
    MT_OK(mmrec_mvke_create(model, "m", &mc, &m));
    mt_perturb_params(model, 11);
    /* larger kernels and projections than the init's, so the softmaxes are
     * far from uniform and the gradients generic */
    mmrec_tensor *p;
    float *d;
    static const char *const big[] = {"m.virtual_kernels", "m.query_proj.weight",
                                       "m.key_proj.weight"};
    for (int i = 0; i < 3; i++) {
        MT_OK(mmrec_model_param(model, big[i], &p));
        MT_OK(mmrec_tensor_data(p, &d));
        for (int j = 0; j < ME * ME && (i > 0 || j < MK * ME); j++) d[j] *= 3.0f;
    }
    float xs[MB * MF * ME], t0[MB * ME], t1[MB * ME], l0[MB] = {1, 0, 0, 1},
                                                     l1[MB] = {0, 1, 1, 0};
    mt_fill_uniform(xs, MB * MF * ME, -1, 1, 21);
    mt_fill_uniform(t0, MB * ME, -1, 1, 22);
    mt_fill_uniform(t1, MB * ME, -1, 1, 23);
    mt_input in[5] = {{3, {MB, MF, ME}, xs, false}, {2, {MB, ME}, t0, false},
                      {2, {MB, ME}, t1, false},     {1, {MB}, l0, true},
                      {1, {MB}, l1, true}};
    mt_gradcheck_opts opts = {.h = 1e-2f, .tol = 2e-2f, .floor = 5e-3f};
    mt_mv e = {m, 0}, g = {m, 1}, s = {m, 2}, l = {m, 3};
    mt_gradcheck("mvke experts", mt_mv_fwd, &e, in, 1, model, &opts);
    mt_gradcheck("mvke gate", mt_mv_fwd, &g, in, 2, model, &opts);
    mt_gradcheck("mvke score", mt_mv_fwd, &s, in, 2, model, &opts);
    mt_gradcheck("mvke loss", mt_mv_fwd, &l, in, 5, model, &opts);
    mmrec_model_destroy(model);
}
END_TEST

/* The weighted loss is the weighted sum of the tasks' mean BCEs. */
START_TEST(test_mvke_loss_is_the_weighted_sum_of_task_bces) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *m = mt_mvke(model, "m", NULL, 0);
    mt_perturb_params(model, 5);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    float xs[MB * MF * ME], ts[2][MB * ME], ls[2][MB] = {{1, 0, 0, 1}, {0, 0, 1, 1}};
    mt_fill_uniform(xs, MB * MF * ME, -1, 1, 31);
    mt_fill_uniform(ts[0], MB * ME, -2, 2, 32);
    mt_fill_uniform(ts[1], MB * ME, -2, 2, 33);
    int64_t sx[3] = {MB, MF, ME}, st[2] = {MB, ME}, sl[1] = {MB};
    mmrec_tensor *x = mt_tape_tensor(tape, 3, sx, xs, 0), *e, *tags[2], *labels[2], *loss, *lw;
    for (int t = 0; t < 2; t++) {
        tags[t] = mt_tape_tensor(tape, 2, st, ts[t], 0);
        labels[t] = mt_tape_tensor(tape, 1, sl, ls[t], 0);
    }
    MT_OK(mmrec_mvke_forward(m, tape, x, &e));
    double bce[2];
    for (int t = 0; t < 2; t++) {
        mmrec_tensor *s;
        MT_OK(mmrec_mvke_score(m, tape, e, tags[t], t, &s));
        const float *sd = mt_data(s);
        double acc = 0;
        for (int b = 0; b < MB; b++) {
            double z = sd[b], y = ls[t][b];
            acc += fmax(z, 0) - z * y + log1p(exp(-fabs(z)));
        }
        bce[t] = acc / MB;
    }
    static const float w[2] = {0.25f, 2.0f};
    MT_OK(mmrec_mvke_loss(m, tape, e, tags, labels, NULL, 2, &loss));
    MT_OK(mmrec_mvke_loss(m, tape, e, tags, labels, w, 2, &lw));
    ck_assert_double_eq_tol(mt_data(loss)[0], bce[0] + bce[1], 1e-5);
    ck_assert_double_eq_tol(mt_data(lw)[0], 0.25 * bce[0] + 2.0 * bce[1], 1e-5);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- serving export ---- */

/* For every user and every tag of a task (not only the pairs of one row):
 * the inner product of the exported vectors is the model's score of that
 * pair. */
START_TEST(test_mvke_export_inner_products_equal_scores) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    int64_t hidden[1] = {9};
    mmrec_module *m = mt_mvke(model, "m", hidden, 1);
    mt_perturb_params(model, 7);
    mmrec_tensor *p;
    float *d;
    MT_OK(mmrec_model_param(model, "m.virtual_kernels", &p));
    MT_OK(mmrec_tensor_data(p, &d));
    for (int j = 0; j < MK * ME; j++) d[j] *= 5.0f; /* gates far from uniform */
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    enum { NU = 5, NT = 4 };
    float xs[NU * MF * ME], ts[NT * ME];
    mt_fill_uniform(xs, NU * MF * ME, -1, 1, 41);
    mt_fill_uniform(ts, NT * ME, -2, 2, 42);
    int64_t sx[3] = {NU, MF, ME}, st[2] = {NT, ME}, s1[2] = {1, ME};
    mmrec_tensor *x = mt_tape_tensor(tape, 3, sx, xs, 0), *tag = mt_tape_tensor(tape, 2, st, ts, 0);
    mmrec_tensor *e;
    MT_OK(mmrec_mvke_forward(m, tape, x, &e));
    for (int task = 0; task < 2; task++) {
        size_t w;
        MT_OK(mmrec_mvke_serving_dim(m, task, &w));
        float uv[NU * 4 * ME], tv[NT * 4 * ME];
        MT_OK(mmrec_mvke_export_user(m, e, task, uv, NU * w));
        MT_OK(mmrec_mvke_export_tag(m, tag, task, tv, NT * w));
        /* the user side is the selected experts, in the order of the subset */
        const float *ed = mt_data(e);
        int k0 = task == 0 ? 0 : 1;
        for (int b = 0; b < NU; b++)
            for (int j = 0; j < ME; j++) {
                ck_assert_float_eq(uv[b * w + j], ed[(b * MK + k0) * ME + j]);
                ck_assert_float_eq(uv[b * w + w - ME + j], ed[(b * MK + k0 + (int)w / ME - 1) * ME + j]);
            }
        for (int i = 0; i < NU; i++) {
            /* user i against every tag: its experts row repeated */
            int64_t se[3] = {NT, MK, ME};
            mmrec_tensor *ei, *s;
            MT_OK(mmrec_tape_tensor(tape, 3, se, 0, &ei));
            float *eid;
            MT_OK(mmrec_tensor_data(ei, &eid));
            for (int j = 0; j < NT; j++) memcpy(eid + j * MK * ME, ed + i * MK * ME, sizeof(float) * MK * ME);
            MT_OK(mmrec_mvke_score(m, tape, ei, tag, task, &s));
            const float *sd = mt_data(s);
            for (int j = 0; j < NT; j++) {
                double ip = 0, scale = 0;
                for (size_t q = 0; q < w; q++) {
                    ip += (double)uv[i * w + q] * tv[j * w + q];
                    scale += fabs((double)uv[i * w + q] * tv[j * w + q]);
                }
                ck_assert_msg(fabs(ip - sd[j]) <= 1e-5 * scale + 1e-6,
                              "task %d user %d tag %d: export %.9g, model %.9g", task, i, j, ip,
                              (double)sd[j]);
            }
        }
        /* one tag on its own gives the same vector as in the batch */
        mmrec_tensor *t1;
        float one[4 * ME];
        MT_OK(mmrec_tape_wrap(tape, ts + 2 * ME, 2, s1, MMREC_TENSOR_READONLY, &t1));
        MT_OK(mmrec_mvke_export_tag(m, t1, task, one, w));
        for (size_t q = 0; q < w; q++) ck_assert_float_eq(one[q], tv[2 * w + q]);
    }
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- lifecycle ---- */

static mmrec_status mt_mvke_oom(void *ctx) {
    (void)ctx;
    mmrec_model *model = NULL;
    mmrec_tape *tape = NULL;
    mmrec_module *m = NULL;
    mmrec_mvke_config c;
    mmrec_status s = mmrec_model_create(&model);
    if (s == MMREC_OK) s = mmrec_mvke_config_init(&c);
    static const int64_t hidden[1] = {4};
    c.dim = ME;
    c.num_fields = MF;
    c.expert_hidden = hidden;
    c.num_expert_hidden = 1;
    if (s == MMREC_OK) s = mmrec_mvke_create(model, "m", &c, &m);
    if (s == MMREC_OK) s = mmrec_tape_create(&tape);
    static const float xs[MB * MF * ME] = {0.5f, -0.25f, 1.0f, 0.75f};
    static const float ts[MB * ME] = {0.1f, 0.2f, -0.3f};
    static const float ls[MB] = {1, 0, 1, 0};
    int64_t sx[3] = {MB, MF, ME}, st[2] = {MB, ME}, sl[1] = {MB};
    mmrec_tensor *x = NULL, *t = NULL, *l = NULL, *e = NULL, *loss = NULL;
    if (s == MMREC_OK)
        s = mmrec_tape_wrap(tape, (float *)xs, 3, sx, MMREC_TENSOR_READONLY, &x);
    if (s == MMREC_OK)
        s = mmrec_tape_wrap(tape, (float *)ts, 2, st, MMREC_TENSOR_READONLY, &t);
    if (s == MMREC_OK)
        s = mmrec_tape_wrap(tape, (float *)ls, 1, sl, MMREC_TENSOR_READONLY, &l);
    mmrec_tensor *tags[2] = {t, t}, *labels[2] = {l, l};
    if (s == MMREC_OK) s = mmrec_mvke_forward(m, tape, x, &e);
    if (s == MMREC_OK) s = mmrec_mvke_loss(m, tape, e, tags, labels, NULL, 2, &loss);
    if (s == MMREC_OK) s = mmrec_tape_backward(tape, loss);
    float buf[MB * 4 * ME];
    if (s == MMREC_OK) s = mmrec_mvke_export_user(m, e, 1, buf, MB * 4 * ME);
    if (s == MMREC_OK) s = mmrec_mvke_export_tag(m, t, 1, buf, MB * 4 * ME);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
    return s;
}

START_TEST(test_mvke_oom_reports_enomem_without_leaks) {
    ck_assert_int_gt(mt_oom_loop("mvke", mt_mvke_oom, NULL), 10);
}
END_TEST

typedef struct mt_mvke_step {
    mmrec_module *m;
    mmrec_tape *tape;
    mmrec_optimizer *opt;
    float xs[MB * MF * ME], ts[2][MB * ME], ls[MB];
    float uv[MB * 4 * ME];
} mt_mvke_step;

static mmrec_status mt_mvke_train_step(void *ctx) {
    mt_mvke_step *c = ctx;
    int64_t sx[3] = {MB, MF, ME}, st[2] = {MB, ME}, sl[1] = {MB};
    mmrec_tensor *x, *t0, *t1, *l, *e, *loss;
    mmrec_status s = mmrec_tape_wrap(c->tape, c->xs, 3, sx, MMREC_TENSOR_READONLY, &x);
    if (s == MMREC_OK) s = mmrec_tape_wrap(c->tape, c->ts[0], 2, st, MMREC_TENSOR_READONLY, &t0);
    if (s == MMREC_OK) s = mmrec_tape_wrap(c->tape, c->ts[1], 2, st, MMREC_TENSOR_READONLY, &t1);
    if (s == MMREC_OK) s = mmrec_tape_wrap(c->tape, c->ls, 1, sl, MMREC_TENSOR_READONLY, &l);
    if (s != MMREC_OK) return s;
    mmrec_tensor *tags[2] = {t0, t1}, *labels[2] = {l, l};
    s = mmrec_mvke_forward(c->m, c->tape, x, &e);
    if (s == MMREC_OK) s = mmrec_mvke_loss(c->m, c->tape, e, tags, labels, NULL, 2, &loss);
    if (s == MMREC_OK) s = mmrec_tape_backward(c->tape, loss);
    if (s == MMREC_OK) s = mmrec_optimizer_step(c->opt);
    if (s == MMREC_OK) s = mmrec_mvke_export_user(c->m, e, 1, c->uv, MB * 4 * ME);
    if (s == MMREC_OK) s = mmrec_mvke_export_tag(c->m, t1, 1, c->uv, MB * 4 * ME);
    mmrec_tape_reset(c->tape);
    return s;
}

START_TEST(test_mvke_steady_state_step_does_not_allocate) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    int64_t hidden[1] = {8};
    mt_mvke_step c;
    c.m = mt_mvke(model, "m", hidden, 1);
    mt_fill_uniform(c.xs, MB * MF * ME, -1, 1, 51);
    mt_fill_uniform(c.ts[0], MB * ME, -1, 1, 52);
    mt_fill_uniform(c.ts[1], MB * ME, -1, 1, 53);
    for (int b = 0; b < MB; b++) c.ls[b] = (float)(b & 1);
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = 1e-2f;
    MT_OK(mmrec_optimizer_create(model, &oc, &c.opt));
    MT_OK(mmrec_tape_create(&c.tape));
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mt_assert_steady_state(mt_mvke_train_step, &c);
    MT_OK(mmrec_set_allocator(NULL));
    mmrec_tape_destroy(c.tape);
    mmrec_optimizer_destroy(c.opt);
    mmrec_model_destroy(model);
}
END_TEST

/* Training on a separable task lowers the loss: the pieces learn
 * together. */
START_TEST(test_mvke_training_lowers_the_loss) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mt_mvke_step c;
    int64_t hidden[1] = {8};
    c.m = mt_mvke(model, "m", hidden, 1);
    mt_fill_uniform(c.xs, MB * MF * ME, -1, 1, 61);
    mt_fill_uniform(c.ts[0], MB * ME, -1, 1, 62);
    mt_fill_uniform(c.ts[1], MB * ME, -1, 1, 63);
    for (int b = 0; b < MB; b++) c.ls[b] = (float)(b & 1);
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = 1e-2f;
    MT_OK(mmrec_optimizer_create(model, &oc, &c.opt));
    MT_OK(mmrec_tape_create(&c.tape));
    float first = 0, last = 0;
    for (int step = 0; step < 150; step++) {
        int64_t sx[3] = {MB, MF, ME}, st[2] = {MB, ME}, sl[1] = {MB};
        mmrec_tensor *x, *t0, *t1, *l, *e, *loss;
        MT_OK(mmrec_tape_wrap(c.tape, c.xs, 3, sx, 0, &x));
        MT_OK(mmrec_tape_wrap(c.tape, c.ts[0], 2, st, 0, &t0));
        MT_OK(mmrec_tape_wrap(c.tape, c.ts[1], 2, st, 0, &t1));
        MT_OK(mmrec_tape_wrap(c.tape, c.ls, 1, sl, 0, &l));
        mmrec_tensor *tags[2] = {t0, t1}, *labels[2] = {l, l};
        MT_OK(mmrec_mvke_forward(c.m, c.tape, x, &e));
        MT_OK(mmrec_mvke_loss(c.m, c.tape, e, tags, labels, NULL, 2, &loss));
        if (step == 0) first = mt_data(loss)[0];
        last = mt_data(loss)[0];
        MT_OK(mmrec_tape_backward(c.tape, loss));
        MT_OK(mmrec_optimizer_step(c.opt));
        mmrec_tape_reset(c.tape);
    }
    ck_assert_msg(last < 0.25f * first, "loss %g -> %g", (double)first, (double)last);
    mmrec_tape_destroy(c.tape);
    mmrec_optimizer_destroy(c.opt);
    mmrec_model_destroy(model);
}
END_TEST

/* Two models from the same seed give bitwise-identical losses and
 * gradients, step after step (DESIGN.md 6). */
static void mt_mvke_run(float *losses, float *grads, size_t n_grads) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    MT_OK(mmrec_model_seed(model, 77));
    mt_mvke_step c;
    int64_t hidden[1] = {8};
    c.m = mt_mvke(model, "m", hidden, 1);
    mt_fill_uniform(c.xs, MB * MF * ME, -1, 1, 71);
    mt_fill_uniform(c.ts[0], MB * ME, -1, 1, 72);
    mt_fill_uniform(c.ts[1], MB * ME, -1, 1, 73);
    for (int b = 0; b < MB; b++) c.ls[b] = (float)(b & 1);
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = 1e-2f;
    MT_OK(mmrec_optimizer_create(model, &oc, &c.opt));
    MT_OK(mmrec_tape_create(&c.tape));
    int64_t sx[3] = {MB, MF, ME}, st[2] = {MB, ME}, sl[1] = {MB};
    for (int step = 0; step < 3; step++) {
        mmrec_tensor *x, *t0, *t1, *l, *e, *loss;
        MT_OK(mmrec_tape_wrap(c.tape, c.xs, 3, sx, 0, &x));
        MT_OK(mmrec_tape_wrap(c.tape, c.ts[0], 2, st, 0, &t0));
        MT_OK(mmrec_tape_wrap(c.tape, c.ts[1], 2, st, 0, &t1));
        MT_OK(mmrec_tape_wrap(c.tape, c.ls, 1, sl, 0, &l));
        mmrec_tensor *tags[2] = {t0, t1}, *labels[2] = {l, l};
        MT_OK(mmrec_mvke_forward(c.m, c.tape, x, &e));
        MT_OK(mmrec_mvke_loss(c.m, c.tape, e, tags, labels, NULL, 2, &loss));
        losses[step] = mt_data(loss)[0];
        MT_OK(mmrec_tape_backward(c.tape, loss));
        if (step == 2) {
            size_t np, at = 0;
            MT_OK(mmrec_model_num_params(model, &np));
            for (size_t i = 0; i < np; i++) {
                mmrec_tensor *p;
                const float *g;
                size_t n;
                MT_OK(mmrec_model_param_at(model, i, NULL, &p));
                MT_OK(mmrec_tensor_grad(p, &g));
                MT_OK(mmrec_tensor_numel(p, &n));
                ck_assert_uint_le(at + n, n_grads);
                memcpy(grads + at, g, n * sizeof(float));
                at += n;
            }
        }
        MT_OK(mmrec_optimizer_step(c.opt));
        mmrec_tape_reset(c.tape);
    }
    mmrec_tape_destroy(c.tape);
    mmrec_optimizer_destroy(c.opt);
    mmrec_model_destroy(model);
}

START_TEST(test_mvke_same_seed_is_bitwise_identical) {
    enum { NG = 4096 };
    float l1[3], l2[3];
    float *g1 = calloc(NG, sizeof(float)), *g2 = calloc(NG, sizeof(float));
    mt_mvke_run(l1, g1, NG);
    mt_mvke_run(l2, g2, NG);
    ck_assert(memcmp(l1, l2, sizeof l1) == 0);
    ck_assert(memcmp(g1, g2, NG * sizeof(float)) == 0);
    free(g1);
    free(g2);
}
END_TEST

static Suite *mvke_suite(void) {
    Suite *s = suite_create("mvke");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_mvke_defaults_and_parameters);
    tcase_add_test(api, test_mvke_bad_config);
    tcase_add_test(api, test_mvke_bad_input);
    suite_add_tcase(s, api);
    TCase *fwd = tcase_create("forward");
    tcase_set_timeout(fwd, 120);
    tcase_add_test(fwd, test_mvke_matches_pytorch);
    tcase_add_test(fwd, test_mvke_loss_is_the_weighted_sum_of_task_bces);
    tcase_add_test(fwd, test_mvke_export_inner_products_equal_scores);
    suite_add_tcase(s, fwd);
    TCase *bwd = tcase_create("backward");
    tcase_set_timeout(bwd, 120);
    tcase_add_test(bwd, test_mvke_gradients);
    tcase_add_test(bwd, test_mvke_training_lowers_the_loss);
    tcase_add_test(bwd, test_mvke_same_seed_is_bitwise_identical);
    suite_add_tcase(s, bwd);
    TCase *life = tcase_create("lifecycle");
    tcase_set_timeout(life, 120);
    tcase_add_test(life, test_mvke_oom_reports_enomem_without_leaks);
    tcase_add_test(life, test_mvke_steady_state_step_does_not_allocate);
    suite_add_tcase(s, life);
    return s;
}
