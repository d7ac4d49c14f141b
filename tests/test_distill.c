/* distill.h: PyTorch golden vectors of the soft-label logits loss, the
 * KL of score distributions and ENDX's geometry alignment (temperatures, masks, row weights, teacher
 * detached and not: a detached teacher's gradient is exactly zero, an
 * attached one's is PyTorch's), PFD's objective leaving the teacher's
 * gradient to its own loss, the warm-up schedule, finite differences, bad
 * input, config sizes, allocation failures and the steady state. */
#include "mt.h"
#include "distill/distill_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

MT_SUITE(distill_suite)

#define MT_TRY(call)                                                           \
    do {                                                                       \
        mmrec_status mt__st = (call);                                          \
        if (mt__st != MMREC_OK) return mt__st;                                 \
    } while (0)

/* A detached teacher has no gradient, or one of exact zeros. */
static void mt_assert_no_grad(const char *what, const mmrec_tensor *t, size_t n) {
    const float *g;
    MT_OK(mmrec_tensor_grad(t, &g));
    if (g == NULL) return;
    for (size_t i = 0; i < n; i++) ck_assert_msg(g[i] == 0.0f, "%s[%zu] is %g", what, i, g[i]);
}

/* Runs one golden case: `kl` picks the loss; cfg read from <case>.cfg. */
static void mt_distill_golden_case(const mt_golden *g, mmrec_tape *tape, const char *kase,
                                   bool kl) {
    const float *cv = mt_golden_find(g, kase, "cfg")->data;
    const mt_array *s = mt_golden_find(g, kase, "s"), *t = mt_golden_find(g, kase, "t");
    const mt_array *mask = mt_golden_find(g, kase, "mask"), *w = mt_golden_find(g, kase, "w");
    uint8_t mask_v[64];
    mmrec_tensor *ts = mt_tape_tensor(tape, s->ndim, s->shape, s->data,
                                      MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tt = mt_tape_tensor(tape, t->ndim, t->shape, t->data,
                                      MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *loss;
    int detach;
    if (kl) {
        mmrec_distill_kl_config cfg;
        MT_OK(mmrec_distill_kl_config_init(&cfg));
        cfg.student_temperature = cv[0];
        cfg.teacher_temperature = cv[1];
        cfg.hinton_scale = (int)cv[2];
        cfg.detach_target = detach = (int)cv[3];
        if (mask) {
            ck_assert_uint_le(mask->numel, sizeof mask_v);
            for (size_t i = 0; i < mask->numel; i++) mask_v[i] = mask->data[i] != 0.0f;
            cfg.mask = mask_v;
        }
        if (w) cfg.row_weights = w->data;
        MT_OK(mmrec_distill_kl(tape, ts, tt, &cfg, &loss));
    } else {
        mmrec_distill_logits_config cfg;
        MT_OK(mmrec_distill_logits_config_init(&cfg));
        cfg.kind = (int)cv[0];
        cfg.temperature = cv[1];
        cfg.detach_target = detach = (int)cv[2];
        MT_OK(mmrec_distill_logits(tape, ts, tt, &cfg, &loss));
    }
    char name[96];
    snprintf(name, sizeof name, "%s.y", kase);
    mt_assert_close(name, mt_data_of(loss), mt_golden_get(g, name)->data, 1, 0, 0);
    MT_OK(mmrec_tape_backward(tape, loss));
    snprintf(name, sizeof name, "%s.ds", kase);
    mt_close_scaled(name, mt_grad_of(ts), mt_golden_get(g, name)->data, s->numel);
    snprintf(name, sizeof name, "%s.dt", kase);
    if (detach) {
        ck_assert_ptr_null(mt_golden_find(g, kase, "dt"));
        mt_assert_no_grad(name, tt, t->numel);
    } else {
        mt_close_scaled(name, mt_grad_of(tt), mt_golden_get(g, name)->data, t->numel);
    }
    mmrec_tape_reset(tape);
}

START_TEST(test_distill_logits_golden) {
    static const char *cases[] = {"l_bce", "l_bce_t2_both", "l_bce_t05_both", "l_mse",
                                  "l_mse_both"};
    mt_golden g;
    mt_golden_load(&g, "distill.bin");
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        mt_distill_golden_case(&g, tape, cases[k], false);
    mmrec_tape_destroy(tape);
    mt_golden_free(&g);
}
END_TEST

START_TEST(test_distill_kl_golden) {
    static const char *cases[] = {"k_colbert", "k_temps_both", "k_hinton_both",
                                  "k_mask_weights_both", "k_mask_detached"};
    mt_golden g;
    mt_golden_load(&g, "distill.bin");
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        mt_distill_golden_case(&g, tape, cases[k], true);
    mmrec_tape_destroy(tape);
    mt_golden_free(&g);
}
END_TEST

START_TEST(test_distill_gam_golden) {
    static const char *cases[] = {"g_dot", "g_dot_both", "g_cos_both", "g_cos_qa_only"};
    static const char *const in_names[4] = {"qs", "as", "qt", "at"};
    static const char *const d_names[4] = {"dqs", "das", "dqt", "dat"};
    mt_golden g;
    mt_golden_load(&g, "distill.bin");
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *kase = cases[k];
        const float *cv = mt_golden_find(&g, kase, "cfg")->data;
        mmrec_distill_gam_config cfg;
        MT_OK(mmrec_distill_gam_config_init(&cfg));
        cfg.temperature = cv[0];
        cfg.similarity = (int)cv[1];
        cfg.detach_target = (int)cv[2];
        for (int j = 0; j < 4; j++) cfg.weights[j] = cv[3 + j];
        mmrec_tensor *t[4], *loss;
        const mt_array *a[4];
        for (int m = 0; m < 4; m++) {
            a[m] = mt_golden_find(&g, kase, in_names[m]);
            t[m] = mt_tape_tensor(tape, 2, a[m]->shape, a[m]->data, MMREC_TENSOR_REQUIRES_GRAD);
        }
        MT_OK(mmrec_distill_gam(tape, t[0], t[1], t[2], t[3], &cfg, &loss));
        char name[96];
        snprintf(name, sizeof name, "%s.y", kase);
        mt_assert_close(name, mt_data_of(loss), mt_golden_get(&g, name)->data, 1, 0, 0);
        MT_OK(mmrec_tape_backward(tape, loss));
        for (int m = 0; m < 4; m++) {
            snprintf(name, sizeof name, "%s.%s", kase, d_names[m]);
            if (m >= 2 && cfg.detach_target) {
                ck_assert_ptr_null(mt_golden_find(&g, kase, d_names[m]));
                mt_assert_no_grad(name, t[m], a[m]->numel);
            } else {
                mt_close_scaled(name, mt_grad_of(t[m]), mt_golden_get(&g, name)->data,
                                a[m]->numel);
            }
        }
        mmrec_tape_reset(tape);
    }
    mmrec_tape_destroy(tape);
    mt_golden_free(&g);
}
END_TEST

/* NULL configs are the defaults: BCE at T 1 and ColBERTv2's KL, teacher
 * detached; identical teacher and student distributions give KL 0. */
START_TEST(test_distill_null_config_is_default) {
    enum { B = 3, N = 4 };
    float s[B * N], t[B * N];
    mt_fill_uniform(s, B * N, -2, 2, 71);
    mt_fill_uniform(t, B * N, -2, 2, 72);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t sh[2] = {B, N};
    mmrec_tensor *ts = mt_tape_tensor(tape, 2, sh, s, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tt = mt_tape_tensor(tape, 2, sh, t, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *a, *b, *c, *d, *same;
    mmrec_distill_logits_config lc;
    MT_OK(mmrec_distill_logits_config_init(&lc));
    ck_assert_int_eq(lc.kind, MMREC_DISTILL_BCE);
    ck_assert_int_eq(lc.detach_target, 1);
    ck_assert(lc.temperature == 1.0f);
    MT_OK(mmrec_distill_logits(tape, ts, tt, NULL, &a));
    MT_OK(mmrec_distill_logits(tape, ts, tt, &lc, &b));
    ck_assert(mt_data_of(a)[0] == mt_data_of(b)[0]);
    mmrec_distill_kl_config kc;
    MT_OK(mmrec_distill_kl_config_init(&kc));
    ck_assert_int_eq(kc.detach_target, 1);
    ck_assert_int_eq(kc.hinton_scale, 0);
    MT_OK(mmrec_distill_kl(tape, ts, tt, NULL, &c));
    MT_OK(mmrec_distill_kl(tape, ts, tt, &kc, &d));
    ck_assert(mt_data_of(c)[0] == mt_data_of(d)[0]);
    ck_assert(mt_data_of(c)[0] > 0.0f);
    /* t / 2 against s = t at T_s 2: the same distributions */
    kc.student_temperature = 2.0f;
    mmrec_tensor *t2;
    MT_OK(mmrec_scale(tape, tt, 2.0f, &t2));
    MT_OK(mmrec_distill_kl(tape, t2, tt, &kc, &same));
    ck_assert_float_lt(fabsf(mt_data_of(same)[0]), 1e-6f);
    mmrec_tape_destroy(tape);
}
END_TEST

/* PFD's objective (1 - lambda) L_s + lambda L_d + L_t with the teacher
 * detached: the teacher's gradient is exactly that of L_t alone, the
 * student's that of the first two terms. */
static void mt_pfd_step(const float *s, const float *t, const float *y, float lambda, int which,
                        float *ds, float *dt) {
    enum { N = 8 };
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t sh[1] = {N};
    mmrec_tensor *ts = mt_tape_tensor(tape, 1, sh, s, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tt = mt_tape_tensor(tape, 1, sh, t, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *ty = mt_tape_tensor(tape, 1, sh, y, 0);
    mmrec_tensor *ls, *ld, *lt, *a, *b, *total;
    mmrec_distill_logits_config cfg;
    MT_OK(mmrec_distill_logits_config_init(&cfg));
    cfg.temperature = 2.0f;
    MT_OK(mmrec_loss_bce_logits(tape, tt, ty, &lt));
    if (which == 0) {
        MT_OK(mmrec_loss_bce_logits(tape, ts, ty, &ls));
        MT_OK(mmrec_distill_logits(tape, ts, tt, &cfg, &ld));
        MT_OK(mmrec_scale(tape, ls, 1.0f - lambda, &a));
        MT_OK(mmrec_scale(tape, ld, lambda, &b));
        MT_OK(mmrec_add(tape, a, b, &a));
        MT_OK(mmrec_add(tape, a, lt, &total));
    } else {
        total = lt;
    }
    MT_OK(mmrec_tape_backward(tape, total));
    memcpy(dt, mt_grad_of(tt), N * sizeof(float));
    const float *g;
    MT_OK(mmrec_tensor_grad(ts, &g));
    if (g) memcpy(ds, g, N * sizeof(float));
    mmrec_tape_destroy(tape);
}

START_TEST(test_distill_pfd_objective_keeps_teacher_gradient) {
    enum { N = 8 };
    float s[N], t[N], y[N] = {1, 0, 0, 1, 1, 0, 1, 0}, ds[2][N], dt[2][N];
    mt_fill_uniform(s, N, -2, 2, 81);
    mt_fill_uniform(t, N, -2, 2, 82);
    mt_pfd_step(s, t, y, 0.5f, 0, ds[0], dt[0]);
    mt_pfd_step(s, t, y, 0.5f, 1, ds[1], dt[1]);
    for (int i = 0; i < N; i++) ck_assert(dt[0][i] == dt[1][i]);
    /* the student's: (1 - l) (sigma(s) - y) / N + l (sigma(s) - sigma(t / 2)) / N */
    for (int i = 0; i < N; i++) {
        float sg = 1.0f / (1.0f + expf(-s[i])), st = 1.0f / (1.0f + expf(-t[i] / 2.0f));
        float want = (0.5f * (sg - y[i]) + 0.5f * (sg - st)) / N;
        ck_assert_float_lt(fabsf(ds[0][i] - want), 1e-6f);
    }
}
END_TEST

/* TRMD's feature regression is the recipe of distill.h: mmrec_loss_mse
 * with the teacher as target, scaled by the weight; the teacher gets no
 * gradient from it. */
START_TEST(test_distill_trmd_recipe_is_weighted_mse) {
    enum { B = 3, D = 5 };
    float s[B * D], t[B * D];
    mt_fill_uniform(s, B * D, -1, 1, 121);
    mt_fill_uniform(t, B * D, -1, 1, 122);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t sh[2] = {B, D};
    mmrec_tensor *ts = mt_tape_tensor(tape, 2, sh, s, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tt = mt_tape_tensor(tape, 2, sh, t, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *mse, *loss;
    const float weight = 0.3f;
    MT_OK(mmrec_loss_mse(tape, ts, tt, &mse));
    MT_OK(mmrec_scale(tape, mse, weight, &loss));
    double want = 0.0;
    for (int i = 0; i < B * D; i++) want += (double)(s[i] - t[i]) * (s[i] - t[i]);
    want *= weight / (double)(B * D);
    ck_assert_float_lt(fabsf(mt_data_of(loss)[0] - (float)want), 1e-6f);
    MT_OK(mmrec_tape_backward(tape, loss));
    const float *ds = mt_grad_of(ts);
    for (int i = 0; i < B * D; i++)
        ck_assert_float_lt(fabsf(ds[i] - 2.0f * weight * (s[i] - t[i]) / (B * D)), 1e-6f);
    mt_assert_no_grad("teacher", tt, B * D);
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_distill_warmup_weight) {
    ck_assert(mmrec_distill_warmup_weight(0, 10, 0.5f) == 0.0f);
    ck_assert(mmrec_distill_warmup_weight(9, 10, 0.5f) == 0.0f);
    ck_assert(mmrec_distill_warmup_weight(10, 10, 0.5f) == 0.5f);
    ck_assert(mmrec_distill_warmup_weight(1000000, 10, 0.25f) == 0.25f);
    ck_assert(mmrec_distill_warmup_weight(0, 0, 0.5f) == 0.5f);
    ck_assert(mmrec_distill_warmup_weight(-1, 0, 0.5f) == 0.0f);
}
END_TEST

/* ---- finite differences ---- */

typedef struct mt_dl_case {
    mmrec_distill_logits_config cfg;
} mt_dl_case;

static mmrec_status mt_dl_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                              mmrec_tensor **out) {
    const mt_dl_case *k = ctx;
    return mmrec_distill_logits(tape, in[0], in[1], &k->cfg, out);
}

typedef struct mt_kl_case {
    mmrec_distill_kl_config cfg;
} mt_kl_case;

static mmrec_status mt_kl_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in, mmrec_tensor **out) {
    const mt_kl_case *k = ctx;
    return mmrec_distill_kl(tape, in[0], in[1], &k->cfg, out);
}

START_TEST(test_distill_gradcheck) {
    enum { B = 4, N = 6 };
    float s[B * N], t[B * N], w[B] = {1, 0.5f, 2, 1};
    mt_fill_uniform(s, B * N, -2, 2, 91);
    mt_fill_uniform(t, B * N, -2, 2, 92);
    uint8_t mask[B * N];
    for (int i = 0; i < B * N; i++) mask[i] = (uint8_t)(i % 5 != 3);
    mt_dl_case dl;
    MT_OK(mmrec_distill_logits_config_init(&dl.cfg));
    mt_input in[2] = {{2, {B, N}, s, false}, {2, {B, N}, t, true}};
    mt_gradcheck("logits bce detached", mt_dl_fwd, &dl, in, 2, NULL, NULL);
    dl.cfg.detach_target = 0;
    dl.cfg.temperature = 1.5f;
    in[1].no_grad = false;
    mt_gradcheck("logits bce both", mt_dl_fwd, &dl, in, 2, NULL, NULL);
    dl.cfg.kind = MMREC_DISTILL_MSE;
    mt_gradcheck("logits mse both", mt_dl_fwd, &dl, in, 2, NULL, NULL);

    mt_kl_case kl;
    MT_OK(mmrec_distill_kl_config_init(&kl.cfg));
    in[1].no_grad = true;
    mt_gradcheck("kl detached", mt_kl_fwd, &kl, in, 2, NULL, NULL);
    kl.cfg.detach_target = 0;
    kl.cfg.student_temperature = 0.8f;
    kl.cfg.teacher_temperature = 1.7f;
    kl.cfg.hinton_scale = 1;
    kl.cfg.mask = mask;
    kl.cfg.row_weights = w;
    in[1].no_grad = false;
    mt_gradcheck("kl every option", mt_kl_fwd, &kl, in, 2, NULL, NULL);
}
END_TEST

typedef struct mt_gam_case {
    mmrec_distill_gam_config cfg;
} mt_gam_case;

static mmrec_status mt_gam_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    const mt_gam_case *k = ctx;
    return mmrec_distill_gam(tape, in[0], in[1], in[2], in[3], &k->cfg, out);
}

START_TEST(test_distill_gam_gradcheck) {
    enum { B = 4, DS = 3, DT = 5 };
    float qs[B * DS], as[B * DS], qt[B * DT], at[B * DT];
    mt_fill_uniform(qs, B * DS, -1, 1, 111);
    mt_fill_uniform(as, B * DS, -1, 1, 112);
    mt_fill_uniform(qt, B * DT, -1, 1, 113);
    mt_fill_uniform(at, B * DT, -1, 1, 114);
    mt_gam_case k;
    MT_OK(mmrec_distill_gam_config_init(&k.cfg));
    mt_input in[4] = {{2, {B, DS}, qs, false}, {2, {B, DS}, as, false},
                      {2, {B, DT}, qt, true}, {2, {B, DT}, at, true}};
    mt_gradcheck("gam dot detached", mt_gam_fwd, &k, in, 4, NULL, NULL);
    k.cfg.detach_target = 0;
    k.cfg.temperature = 0.7f;
    k.cfg.weights[MMREC_DISTILL_GAM_AA] = 0.5f;
    k.cfg.weights[MMREC_DISTILL_GAM_QQ] = 2.0f;
    in[2].no_grad = in[3].no_grad = false;
    mt_gradcheck("gam dot both", mt_gam_fwd, &k, in, 4, NULL, NULL);
    k.cfg.similarity = MMREC_DISTILL_COSINE;
    k.cfg.temperature = 0.5f;
    mt_gradcheck("gam cosine both", mt_gam_fwd, &k, in, 4, NULL, NULL);
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_distill_logits_bad_input) {
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    mmrec_tensor *s, *t, *odd, *foreign, *out = NULL;
    MT_OK(mmrec_tape_tensor(tape, 2, (int64_t[]){2, 3}, 0, &s));
    MT_OK(mmrec_tape_tensor(tape, 2, (int64_t[]){2, 3}, 0, &t));
    MT_OK(mmrec_tape_tensor(tape, 2, (int64_t[]){3, 2}, 0, &odd));
    MT_OK(mmrec_tape_tensor(other, 2, (int64_t[]){2, 3}, 0, &foreign));
    mmrec_distill_logits_config cfg;
    MT_EXPECT(mmrec_distill_logits_config_init_sized(NULL, sizeof cfg), MMREC_EINVAL, "cfg");
    MT_EXPECT(mmrec_distill_logits_config_init_sized(&cfg, 8), MMREC_EINVAL, "size");
    MT_OK(mmrec_distill_logits_config_init(&cfg));
    MT_EXPECT(mmrec_distill_logits(NULL, s, t, &cfg, &out), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_distill_logits(tape, NULL, t, &cfg, &out), MMREC_EINVAL, "student");
    MT_EXPECT(mmrec_distill_logits(tape, s, NULL, &cfg, &out), MMREC_EINVAL, "teacher");
    MT_EXPECT(mmrec_distill_logits(tape, s, t, &cfg, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_distill_logits(tape, s, foreign, &cfg, &out), MMREC_EINVAL, "teacher");
    MT_EXPECT(mmrec_distill_logits(tape, s, odd, &cfg, &out), MMREC_ESHAPE, "teacher");
    float taus[] = {0.0f, -1.0f, NAN, INFINITY, 1e-45f};
    for (size_t i = 0; i < sizeof taus / sizeof taus[0]; i++) {
        cfg.temperature = taus[i];
        MT_EXPECT(mmrec_distill_logits(tape, s, t, &cfg, &out), MMREC_EINVAL,
                  "cfg->temperature");
    }
    cfg.kind = MMREC_DISTILL_MSE; /* the temperature is not read */
    MT_OK(mmrec_distill_logits(tape, s, t, &cfg, &out));
    out = NULL;
    MT_OK(mmrec_distill_logits_config_init(&cfg));
    cfg.kind = 2;
    MT_EXPECT(mmrec_distill_logits(tape, s, t, &cfg, &out), MMREC_EINVAL, "cfg->kind");
    cfg.kind = MMREC_DISTILL_BCE;
    cfg.detach_target = 2;
    MT_EXPECT(mmrec_distill_logits(tape, s, t, &cfg, &out), MMREC_EINVAL, "cfg->detach_target");
    cfg.detach_target = 1;
    float *d;
    MT_OK(mmrec_tensor_data(t, &d));
    d[4] = NAN;
    MT_EXPECT(mmrec_distill_logits(tape, s, t, &cfg, &out), MMREC_ENUMERIC, "teacher[4]");
    d[4] = 0.0f;
    MT_OK(mmrec_tensor_data(s, &d));
    d[1] = -INFINITY;
    MT_EXPECT(mmrec_distill_logits(tape, s, t, &cfg, &out), MMREC_ENUMERIC, "student[1]");
    ck_assert_ptr_null(out);
    /* a newer caller's struct: a zero tail accepted, a set tail refused */
    unsigned char buf[64];
    memset(buf, 0, sizeof buf);
    mmrec_distill_logits_config *big = (mmrec_distill_logits_config *)(void *)buf;
    d[1] = 0.0f;
    MT_OK(mmrec_distill_logits_config_init_sized(big, sizeof cfg + 8));
    MT_OK(mmrec_distill_logits(tape, s, t, big, &out));
    out = NULL;
    buf[sizeof cfg + 4] = 1;
    MT_EXPECT(mmrec_distill_logits(tape, s, t, big, &out), MMREC_EINVAL, "newer");
    ck_assert_ptr_null(out);
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_distill_kl_bad_input) {
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    mmrec_tensor *s, *t, *odd, *flat, *foreign, *out = NULL;
    MT_OK(mmrec_tape_tensor(tape, 2, (int64_t[]){3, 4}, 0, &s));
    MT_OK(mmrec_tape_tensor(tape, 2, (int64_t[]){3, 4}, 0, &t));
    MT_OK(mmrec_tape_tensor(tape, 2, (int64_t[]){3, 5}, 0, &odd));
    MT_OK(mmrec_tape_tensor(tape, 1, (int64_t[]){12}, 0, &flat));
    MT_OK(mmrec_tape_tensor(other, 2, (int64_t[]){3, 4}, 0, &foreign));
    mmrec_distill_kl_config cfg;
    MT_EXPECT(mmrec_distill_kl_config_init_sized(NULL, sizeof cfg), MMREC_EINVAL, "cfg");
    MT_EXPECT(mmrec_distill_kl_config_init_sized(&cfg, 16), MMREC_EINVAL, "size");
    MT_OK(mmrec_distill_kl_config_init(&cfg));
    MT_EXPECT(mmrec_distill_kl(NULL, s, t, &cfg, &out), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_distill_kl(tape, NULL, t, &cfg, &out), MMREC_EINVAL, "student");
    MT_EXPECT(mmrec_distill_kl(tape, s, NULL, &cfg, &out), MMREC_EINVAL, "teacher");
    MT_EXPECT(mmrec_distill_kl(tape, s, t, &cfg, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_distill_kl(tape, foreign, t, &cfg, &out), MMREC_EINVAL, "student");
    MT_EXPECT(mmrec_distill_kl(tape, s, odd, &cfg, &out), MMREC_ESHAPE, "teacher");
    MT_EXPECT(mmrec_distill_kl(tape, flat, flat, &cfg, &out), MMREC_ESHAPE, "student");
    float taus[] = {0.0f, -1.0f, NAN, INFINITY, 1e-45f};
    for (size_t i = 0; i < sizeof taus / sizeof taus[0]; i++) {
        cfg.student_temperature = taus[i];
        MT_EXPECT(mmrec_distill_kl(tape, s, t, &cfg, &out), MMREC_EINVAL,
                  "cfg->student_temperature");
        cfg.student_temperature = 1.0f;
        cfg.teacher_temperature = taus[i];
        MT_EXPECT(mmrec_distill_kl(tape, s, t, &cfg, &out), MMREC_EINVAL,
                  "cfg->teacher_temperature");
        cfg.teacher_temperature = 1.0f;
    }
    cfg.hinton_scale = -1;
    MT_EXPECT(mmrec_distill_kl(tape, s, t, &cfg, &out), MMREC_EINVAL, "cfg->hinton_scale");
    cfg.hinton_scale = 0;
    cfg.detach_target = 3;
    MT_EXPECT(mmrec_distill_kl(tape, s, t, &cfg, &out), MMREC_EINVAL, "cfg->detach_target");
    cfg.detach_target = 1;
    float w[3] = {1, NAN, 1};
    cfg.row_weights = w;
    MT_EXPECT(mmrec_distill_kl(tape, s, t, &cfg, &out), MMREC_EINVAL, "cfg->row_weights[1]");
    w[1] = -0.5f;
    MT_EXPECT(mmrec_distill_kl(tape, s, t, &cfg, &out), MMREC_EINVAL, "cfg->row_weights[1]");
    cfg.row_weights = NULL;
    /* a non-finite score of a kept pair; the same in a removed pair is fine */
    float *d;
    MT_OK(mmrec_tensor_data(s, &d));
    d[1 * 4 + 2] = NAN;
    MT_EXPECT(mmrec_distill_kl(tape, s, t, &cfg, &out), MMREC_ENUMERIC, "student[1, 2]");
    MT_OK(mmrec_tensor_data(t, &d));
    d[2 * 4 + 0] = INFINITY;
    uint8_t mask[12];
    memset(mask, 1, sizeof mask);
    mask[1 * 4 + 2] = 0;
    cfg.mask = mask;
    MT_EXPECT(mmrec_distill_kl(tape, s, t, &cfg, &out), MMREC_ENUMERIC, "teacher[2, 0]");
    ck_assert_ptr_null(out);
    mask[2 * 4 + 0] = 0;
    MT_OK(mmrec_distill_kl(tape, s, t, &cfg, &out));
    ck_assert(isfinite(mt_data_of(out)[0]));
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_distill_gam_bad_input) {
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    mmrec_tensor *qs, *as, *qt, *at, *wide, *short_t, *flat, *foreign, *out = NULL;
    MT_OK(mmrec_tape_tensor(tape, 2, (int64_t[]){3, 4}, 0, &qs));
    MT_OK(mmrec_tape_tensor(tape, 2, (int64_t[]){3, 4}, 0, &as));
    MT_OK(mmrec_tape_tensor(tape, 2, (int64_t[]){3, 2}, 0, &qt));
    MT_OK(mmrec_tape_tensor(tape, 2, (int64_t[]){3, 2}, 0, &at));
    MT_OK(mmrec_tape_tensor(tape, 2, (int64_t[]){3, 5}, 0, &wide));
    MT_OK(mmrec_tape_tensor(tape, 2, (int64_t[]){2, 2}, 0, &short_t));
    MT_OK(mmrec_tape_tensor(tape, 1, (int64_t[]){12}, 0, &flat));
    MT_OK(mmrec_tape_tensor(other, 2, (int64_t[]){3, 2}, 0, &foreign));
    float *d;
    for (mmrec_tensor **t = (mmrec_tensor *[]){qs, as, qt, at, NULL}; *t; t++) {
        MT_OK(mmrec_tensor_data(*t, &d));
        d[0] = 1.0f; /* not all zero, for the cosine */
    }
    mmrec_distill_gam_config cfg;
    MT_EXPECT(mmrec_distill_gam_config_init_sized(NULL, sizeof cfg), MMREC_EINVAL, "cfg");
    MT_EXPECT(mmrec_distill_gam_config_init_sized(&cfg, 16), MMREC_EINVAL, "size");
    MT_OK(mmrec_distill_gam_config_init(&cfg));
    MT_EXPECT(mmrec_distill_gam(NULL, qs, as, qt, at, &cfg, &out), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_distill_gam(tape, NULL, as, qt, at, &cfg, &out), MMREC_EINVAL, "student_q");
    MT_EXPECT(mmrec_distill_gam(tape, qs, NULL, qt, at, &cfg, &out), MMREC_EINVAL, "student_a");
    MT_EXPECT(mmrec_distill_gam(tape, qs, as, NULL, at, &cfg, &out), MMREC_EINVAL, "teacher_q");
    MT_EXPECT(mmrec_distill_gam(tape, qs, as, qt, NULL, &cfg, &out), MMREC_EINVAL, "teacher_a");
    MT_EXPECT(mmrec_distill_gam(tape, qs, as, qt, at, &cfg, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_distill_gam(tape, qs, as, qt, foreign, &cfg, &out), MMREC_EINVAL,
              "teacher_a");
    MT_EXPECT(mmrec_distill_gam(tape, qs, wide, qt, at, &cfg, &out), MMREC_ESHAPE, "student_a");
    MT_EXPECT(mmrec_distill_gam(tape, qs, as, qt, short_t, &cfg, &out), MMREC_ESHAPE,
              "teacher_a");
    MT_EXPECT(mmrec_distill_gam(tape, qs, as, short_t, short_t, &cfg, &out), MMREC_ESHAPE,
              "teacher_q");
    MT_EXPECT(mmrec_distill_gam(tape, flat, flat, qt, at, &cfg, &out), MMREC_ESHAPE,
              "student_q");
    float taus[] = {0.0f, -1.0f, NAN, INFINITY, 1e-45f};
    for (size_t i = 0; i < sizeof taus / sizeof taus[0]; i++) {
        cfg.temperature = taus[i];
        MT_EXPECT(mmrec_distill_gam(tape, qs, as, qt, at, &cfg, &out), MMREC_EINVAL,
                  "cfg->temperature");
    }
    cfg.temperature = 1.0f;
    cfg.similarity = 2;
    MT_EXPECT(mmrec_distill_gam(tape, qs, as, qt, at, &cfg, &out), MMREC_EINVAL,
              "cfg->similarity");
    cfg.similarity = MMREC_DISTILL_COSINE;
    cfg.detach_target = -1;
    MT_EXPECT(mmrec_distill_gam(tape, qs, as, qt, at, &cfg, &out), MMREC_EINVAL,
              "cfg->detach_target");
    cfg.detach_target = 1;
    cfg.weights[2] = -1.0f;
    MT_EXPECT(mmrec_distill_gam(tape, qs, as, qt, at, &cfg, &out), MMREC_EINVAL,
              "cfg->weights[2]");
    cfg.weights[2] = NAN;
    MT_EXPECT(mmrec_distill_gam(tape, qs, as, qt, at, &cfg, &out), MMREC_EINVAL,
              "cfg->weights[2]");
    cfg.weights[2] = 1.0f;
    MT_OK(mmrec_tensor_data(at, &d));
    d[5] = NAN;
    MT_EXPECT(mmrec_distill_gam(tape, qs, as, qt, at, &cfg, &out), MMREC_ENUMERIC,
              "teacher_a[5]");
    d[5] = 0.0f;
    MT_OK(mmrec_tensor_data(qs, &d));
    d[3] = INFINITY;
    MT_EXPECT(mmrec_distill_gam(tape, qs, as, qt, at, &cfg, &out), MMREC_ENUMERIC,
              "student_q[3]");
    ck_assert_ptr_null(out);
    d[3] = 0.0f;
    MT_OK(mmrec_distill_gam(tape, qs, as, qt, at, &cfg, &out));
    ck_assert(isfinite(mt_data_of(out)[0]));
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_distill_config_sizes) {
    ck_assert_uint_eq(MMREC__MIN_SIZE(mmrec_distill_logits_config), 24);
    ck_assert_uint_eq(MMREC__MIN_SIZE(mmrec_distill_kl_config), 40);
    ck_assert_uint_eq(MMREC__MIN_SIZE(mmrec_distill_gam_config), 40);
}
END_TEST

/* ---- allocation ---- */

typedef struct mt_distill_step {
    mmrec_tape *tape;
    float s[32 * 40], t[32 * 40], w[32];
    uint8_t mask[32 * 40];
} mt_distill_step;

static mmrec_status mt_distill_step_run(void *ctx) {
    mt_distill_step *st = ctx;
    mmrec_tape_reset(st->tape);
    mmrec_tensor *s, *t, *l1, *l2, *sum;
    int64_t shape[2] = {32, 40};
    MT_TRY(mmrec_tape_tensor(st->tape, 2, shape, MMREC_TENSOR_REQUIRES_GRAD, &s));
    MT_TRY(mmrec_tape_tensor(st->tape, 2, shape, MMREC_TENSOR_REQUIRES_GRAD, &t));
    float *d;
    MT_TRY(mmrec_tensor_data(s, &d));
    memcpy(d, st->s, sizeof st->s);
    MT_TRY(mmrec_tensor_data(t, &d));
    memcpy(d, st->t, sizeof st->t);
    mmrec_distill_logits_config lc;
    mmrec_distill_logits_config_init(&lc);
    lc.temperature = 2.0f;
    lc.detach_target = 0;
    mmrec_distill_kl_config kc;
    mmrec_distill_kl_config_init(&kc);
    kc.teacher_temperature = 0.5f;
    kc.detach_target = 0;
    kc.mask = st->mask;
    kc.row_weights = st->w;
    MT_TRY(mmrec_distill_logits(st->tape, s, t, &lc, &l1));
    MT_TRY(mmrec_distill_kl(st->tape, s, t, &kc, &l2));
    MT_TRY(mmrec_add(st->tape, l1, l2, &sum));
    mmrec_distill_gam_config gc;
    mmrec_distill_gam_config_init(&gc);
    gc.similarity = MMREC_DISTILL_COSINE;
    gc.detach_target = 0;
    MT_TRY(mmrec_distill_gam(st->tape, s, t, t, s, &gc, &l1));
    MT_TRY(mmrec_add(st->tape, sum, l1, &sum));
    return mmrec_tape_backward(st->tape, sum);
}

static mmrec_status mt_distill_scenario(void *ctx) {
    mt_distill_step *st = ctx;
    mmrec_status r = mmrec_tape_create(&st->tape);
    if (r != MMREC_OK) return r;
    r = mt_distill_step_run(st);
    mmrec_tape_destroy(st->tape);
    return r;
}

START_TEST(test_distill_allocation) {
    static mt_distill_step st;
    mt_fill_uniform(st.s, 32 * 40, -2, 2, 101);
    mt_fill_uniform(st.t, 32 * 40, -2, 2, 102);
    mt_fill_uniform(st.w, 32, 0, 2, 103);
    for (int i = 0; i < 32 * 40; i++) st.mask[i] = (uint8_t)(i % 7 != 1);
    ck_assert_int_gt(mt_oom_loop("distill", mt_distill_scenario, &st), 0);
    MT_OK(mmrec_tape_create(&st.tape));
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mt_assert_steady_state(mt_distill_step_run, &st);
    MT_OK(mmrec_set_allocator(NULL));
    mmrec_tape_destroy(st.tape);
}
END_TEST

static Suite *distill_suite(void) {
    Suite *s = suite_create("distill");
    TCase *f = tcase_create("forward");
    tcase_add_test(f, test_distill_logits_golden);
    tcase_add_test(f, test_distill_kl_golden);
    tcase_add_test(f, test_distill_gam_golden);
    tcase_add_test(f, test_distill_null_config_is_default);
    tcase_add_test(f, test_distill_pfd_objective_keeps_teacher_gradient);
    tcase_add_test(f, test_distill_warmup_weight);
    tcase_add_test(f, test_distill_trmd_recipe_is_weighted_mse);
    suite_add_tcase(s, f);
    TCase *b = tcase_create("backward");
    tcase_add_test(b, test_distill_gradcheck);
    tcase_add_test(b, test_distill_gam_gradcheck);
    suite_add_tcase(s, b);
    TCase *a = tcase_create("api");
    tcase_add_test(a, test_distill_logits_bad_input);
    tcase_add_test(a, test_distill_kl_bad_input);
    tcase_add_test(a, test_distill_gam_bad_input);
    tcase_add_test(a, test_distill_config_sizes);
    suite_add_tcase(s, a);
    TCase *l = tcase_create("lifecycle");
    tcase_add_test(l, test_distill_allocation);
    suite_add_tcase(s, l);
    return s;
}
