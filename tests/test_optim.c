/* Optimizers: each update rule against its formula computed in double,
 * clipping, groups and learning rates, NaN rejection, sparse rows, frozen
 * parameters, optimizer state in checkpoints, bit-identical resume, and a
 * malloc-free steady-state training step. */
#include "mt.h"
#include "model/model_internal.h"
#include "optim/optim_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

MT_SUITE(optim_suite)

/* ---- helpers ---- */

/* A model with one dense parameter "w" holding `init`. */
static mmrec_model *mt_model_1(const float *init, int64_t n, mmrec_tensor **w) {
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    MT_OK(mmrec_model_add_param(m, "w", 1, &n, w));
    MT_OK(mmrec_tensor_copy_from(*w, init, (size_t)n));
    return m;
}

static mmrec_optimizer *mt_opt(mmrec_model *m, mmrec_optimizer_type type, float lr) {
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    cfg.type = type;
    cfg.lr = lr;
    mmrec_optimizer *o;
    MT_OK(mmrec_optimizer_create(m, &cfg, &o));
    return o;
}

static void mt_close(const char *what, const float *got, const double *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs((double)got[i] - want[i]) <= 1e-6 + 1e-5 * fabs(want[i]),
                      "%s[%zu]: got %.9g, expected %.9g", what, i, (double)got[i], want[i]);
}

#define MT_N 4
static const float mt_init[MT_N] = {0.5f, -1.25f, 2.0f, 0.0625f};
/* gradients of three steps */
static const float mt_grads[3][MT_N] = {
    {0.1f, -0.2f, 0.3f, -0.4f}, {-0.5f, 0.25f, 0.05f, 1.5f}, {0.2f, 0.2f, -0.7f, 0.01f}};

/* Runs three steps of `cfg` with mt_grads and compares with `ref`, which
 * advances the double reference one step at a time. */
typedef void (*mt_ref_fn)(const mmrec_optimizer_config *cfg, int t, double *p, double *s1,
                          double *s2, const float *g);

static void mt_check_rule(const char *what, const mmrec_optimizer_config *cfg, mt_ref_fn ref) {
    mmrec_tensor *w;
    mmrec_model *m = mt_model_1(mt_init, MT_N, &w);
    mmrec_optimizer *o;
    MT_OK(mmrec_optimizer_create(m, cfg, &o));
    double p[MT_N], s1[MT_N] = {0}, s2[MT_N] = {0};
    for (int i = 0; i < MT_N; i++) p[i] = mt_init[i];
    for (int t = 1; t <= 3; t++) {
        MT_OK(mmrec_model_import_grads(m, mt_grads[t - 1], MT_N));
        MT_OK(mmrec_optimizer_step(o));
        ref(cfg, t, p, s1, s2, mt_grads[t - 1]);
        const float *d;
        MT_OK(mmrec_tensor_data_const(w, &d));
        mt_close(what, d, p, MT_N);
        const float *g;
        MT_OK(mmrec_tensor_grad(w, &g));
        for (int i = 0; i < MT_N; i++) ck_assert(g[i] == 0.0f); /* step clears */
    }
    uint64_t steps;
    MT_OK(mmrec_optimizer_step_count(o, &steps));
    ck_assert_uint_eq(steps, 3);
    mmrec_optimizer_destroy(o);
    mmrec_model_destroy(m);
}

/* ---- references in double (torch.optim's formulas) ---- */

static void mt_ref_sgd(const mmrec_optimizer_config *c, int t, double *p, double *buf,
                       double *unused, const float *g) {
    (void)unused;
    for (int i = 0; i < MT_N; i++) {
        double gi = g[i] + (double)c->weight_decay * p[i];
        if (c->momentum != 0) {
            buf[i] = t == 1 ? gi : c->momentum * buf[i] + (1.0 - c->dampening) * gi;
            gi = c->nesterov ? gi + c->momentum * buf[i] : buf[i];
        }
        p[i] -= c->lr * gi;
    }
}

static void mt_ref_adam(const mmrec_optimizer_config *c, int t, double *p, double *m, double *v,
                        const float *g) {
    double wd = c->weight_decay < 0 ? (c->type == MMREC_OPT_ADAMW ? 0.01 : 0.0) : c->weight_decay;
    double eps = c->eps == 0 ? 1e-8 : c->eps;
    for (int i = 0; i < MT_N; i++) {
        double gi = g[i];
        if (c->type == MMREC_OPT_ADAMW)
            p[i] *= 1.0 - c->lr * wd;
        else
            gi += wd * p[i];
        m[i] = c->beta1 * m[i] + (1.0 - c->beta1) * gi;
        v[i] = c->beta2 * v[i] + (1.0 - c->beta2) * gi * gi;
        double mhat = m[i] / (1.0 - pow(c->beta1, t));
        double denom = sqrt(v[i]) / sqrt(1.0 - pow(c->beta2, t)) + eps;
        p[i] -= c->lr * mhat / denom;
    }
}

static void mt_ref_adagrad(const mmrec_optimizer_config *c, int t, double *p, double *s,
                           double *unused, const float *g) {
    (void)unused;
    double eps = c->eps == 0 ? 1e-10 : c->eps;
    for (int i = 0; i < MT_N; i++) {
        if (t == 1) s[i] = c->initial_accumulator;
        double gi = g[i] + (double)c->weight_decay * p[i];
        s[i] += gi * gi;
        p[i] -= c->lr * gi / (sqrt(s[i]) + eps);
    }
}

/* ---- update rules ---- */

START_TEST(test_sgd_matches_formula) {
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    cfg.type = MMREC_OPT_SGD;
    cfg.lr = 0.1f;
    cfg.weight_decay = 0.0f;
    mt_check_rule("sgd", &cfg, mt_ref_sgd);
    cfg.weight_decay = 0.05f;
    mt_check_rule("sgd wd", &cfg, mt_ref_sgd);
    cfg.momentum = 0.9f;
    cfg.dampening = 0.25f;
    mt_check_rule("sgd momentum dampening", &cfg, mt_ref_sgd);
    cfg.dampening = 0.0f;
    cfg.nesterov = 1;
    mt_check_rule("sgd nesterov", &cfg, mt_ref_sgd);
}
END_TEST

START_TEST(test_adam_and_adamw_match_formula) {
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    cfg.lr = 0.05f;
    cfg.weight_decay = 0.0f;
    mt_check_rule("adam", &cfg, mt_ref_adam);
    cfg.weight_decay = 0.1f;
    cfg.beta1 = 0.8f;
    cfg.beta2 = 0.99f;
    cfg.eps = 1e-3f;
    mt_check_rule("adam wd", &cfg, mt_ref_adam);
    cfg.beta1 = 0.3f; /* lerp's other branch (weight 1 - beta1 >= 0.5) */
    mt_check_rule("adam beta1 0.3", &cfg, mt_ref_adam);
    MT_OK(mmrec_optimizer_config_init(&cfg));
    cfg.type = MMREC_OPT_ADAMW;
    cfg.lr = 0.05f;
    mt_check_rule("adamw default decay", &cfg, mt_ref_adam);
    cfg.weight_decay = 0.5f;
    mt_check_rule("adamw", &cfg, mt_ref_adam);
}
END_TEST

START_TEST(test_adagrad_matches_formula) {
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    cfg.type = MMREC_OPT_ADAGRAD;
    cfg.lr = 0.1f;
    cfg.weight_decay = 0.0f;
    mt_check_rule("adagrad", &cfg, mt_ref_adagrad);
    cfg.initial_accumulator = 0.1f;
    cfg.weight_decay = 0.2f;
    mt_check_rule("adagrad acc wd", &cfg, mt_ref_adagrad);
}
END_TEST

/* A large dense parameter (its gradient norm summed over many lanes):
 * every element gets the value a small parameter with its init and
 * gradients gets (element i of the large one repeats element i % 4 of
 * the small one), and the parameters and the gradient norm are the same
 * bits for 1 and 2 threads. */
START_TEST(test_large_parameter_same_update_any_thread_count) {
    /* several blocks of the split update and of the gradient's sum of
     * squares, and a partial one of each */
    enum { BIG = 300007 };
    static const struct {
        mmrec_optimizer_type type;
        float momentum;
        int nesterov;
    } kinds[] = {{MMREC_OPT_SGD, 0.9f, 1},
                 {MMREC_OPT_ADAM, 0, 0},
                 {MMREC_OPT_ADAMW, 0, 0},
                 {MMREC_OPT_ADAGRAD, 0, 0}};
    float *init = malloc(BIG * sizeof *init), *grads = malloc(3 * (size_t)BIG * sizeof *grads);
    float *got[2] = {malloc(BIG * sizeof(float)), malloc(BIG * sizeof(float))};
    ck_assert(init && grads && got[0] && got[1]);
    for (size_t i = 0; i < BIG; i++) {
        init[i] = mt_init[i % MT_N];
        for (int t = 0; t < 3; t++) grads[(size_t)t * BIG + i] = mt_grads[t][i % MT_N];
    }
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        float norm[2], small[MT_N];
        for (int threads = 1; threads <= 2; threads++) {
            MT_OK(mmrec_set_num_threads(threads));
            mmrec_optimizer_config cfg;
            MT_OK(mmrec_optimizer_config_init(&cfg));
            cfg.type = kinds[k].type;
            cfg.lr = 0.05f;
            cfg.momentum = kinds[k].momentum;
            cfg.nesterov = kinds[k].nesterov;
            mmrec_tensor *w, *ws;
            mmrec_model *m = mt_model_1(init, BIG, &w), *ms = mt_model_1(mt_init, MT_N, &ws);
            mmrec_optimizer *o, *os;
            MT_OK(mmrec_optimizer_create(m, &cfg, &o));
            MT_OK(mmrec_optimizer_create(ms, &cfg, &os));
            for (int t = 0; t < 3; t++) {
                MT_OK(mmrec_model_import_grads(m, grads + (size_t)t * BIG, BIG));
                MT_OK(mmrec_model_import_grads(ms, mt_grads[t], MT_N));
                MT_OK(mmrec_optimizer_step(o));
                MT_OK(mmrec_optimizer_step(os));
            }
            MT_OK(mmrec_optimizer_last_grad_norm(o, &norm[threads - 1]));
            /* the step leaves the gradient zeroed, however it did it */
            /* the first wrong element, one assertion per check */
            float *gt = got[threads - 1];
            size_t bad = 0;
            MT_OK(mmrec_model_export_grads(m, gt, BIG));
            while (bad < BIG && gt[bad] == 0.0f) bad++;
            ck_assert_msg(bad == BIG, "type %d: gradient %zu is %g", (int)kinds[k].type, bad,
                          (double)gt[bad % BIG]);
            MT_OK(mmrec_tensor_copy_to(w, gt, BIG));
            MT_OK(mmrec_tensor_copy_to(ws, small, MT_N));
            for (bad = 0; bad < BIG && gt[bad] == small[bad % MT_N];) bad++;
            ck_assert_msg(bad == BIG, "type %d, %d threads: element %zu is %.9g, expected %.9g",
                          (int)kinds[k].type, threads, bad, (double)gt[bad % BIG],
                          (double)small[bad % MT_N]);
            mmrec_optimizer_destroy(o);
            mmrec_optimizer_destroy(os);
            mmrec_model_destroy(m);
            mmrec_model_destroy(ms);
        }
        ck_assert(memcmp(got[0], got[1], BIG * sizeof(float)) == 0);
        ck_assert(norm[0] == norm[1]);
    }
    free(init);
    free(grads);
    free(got[0]);
    free(got[1]);
}
END_TEST

/* Small dense parameters are updated whole, several at once over the
 * pool: each of 40 (1 to 3,901 elements, 78,430 in all) ends where it
 * does alone in a model of its own, at 1 and 2 threads, for every kind. */
START_TEST(test_small_parameters_updated_once_each_over_the_pool) {
    enum { P = 40 };
    static const mmrec_optimizer_type types[] = {MMREC_OPT_SGD, MMREC_OPT_ADAM, MMREC_OPT_ADAMW,
                                                 MMREC_OPT_ADAGRAD};
    int64_t size[P];
    size_t total = 0;
    for (int k = 0; k < P; k++) total += (size_t)(size[k] = 1 + (k * 97) % 3901 + (k == 7) * 3800);
    float *init = malloc(total * sizeof *init), *grads = malloc(3 * total * sizeof *grads);
    float *got = malloc(total * sizeof *got), *alone = malloc(total * sizeof *alone);
    ck_assert(init && grads && got && alone);
    mt_fill_uniform(init, total, -1, 1, 81);
    mt_fill_uniform(grads, 3 * total, -1, 1, 82);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        /* each parameter alone, one thread */
        MT_OK(mmrec_set_num_threads(1));
        size_t off = 0;
        for (int k = 0; k < P; k++) {
            mmrec_tensor *w;
            mmrec_model *m = mt_model_1(init + off, size[k], &w);
            mmrec_optimizer *o = mt_opt(m, types[t], 0.05f);
            for (int step = 0; step < 3; step++) {
                float *g = malloc((size_t)size[k] * sizeof *g);
                ck_assert(g != NULL);
                memcpy(g, grads + (size_t)step * total + off, (size_t)size[k] * sizeof *g);
                MT_OK(mmrec_model_import_grads(m, g, (size_t)size[k]));
                free(g);
                MT_OK(mmrec_optimizer_step(o));
            }
            MT_OK(mmrec_tensor_copy_to(w, alone + off, (size_t)size[k]));
            mmrec_optimizer_destroy(o);
            mmrec_model_destroy(m);
            off += (size_t)size[k];
        }
        for (int threads = 1; threads <= 2; threads++) {
            MT_OK(mmrec_set_num_threads(threads));
            mmrec_model *m;
            MT_OK(mmrec_model_create(&m));
            off = 0;
            for (int k = 0; k < P; k++) {
                char name[16];
                snprintf(name, sizeof name, "p%d", k);
                mmrec_tensor *w;
                MT_OK(mmrec_model_add_param(m, name, 1, &size[k], &w));
                MT_OK(mmrec_tensor_copy_from(w, init + off, (size_t)size[k]));
                off += (size_t)size[k];
            }
            mmrec_optimizer *o = mt_opt(m, types[t], 0.05f);
            for (int step = 0; step < 3; step++) {
                MT_OK(mmrec_model_import_grads(m, grads + (size_t)step * total, total));
                MT_OK(mmrec_optimizer_step(o));
            }
            MT_OK(mmrec_model_export_params(m, got, total));
            size_t bad = 0;
            while (bad < total && got[bad] == alone[bad]) bad++;
            ck_assert_msg(bad == total, "type %d, %d threads: element %zu is %.9g, %.9g alone",
                          (int)types[t], threads, bad, (double)got[bad % total],
                          (double)alone[bad % total]);
            MT_OK(mmrec_model_export_grads(m, got, total));
            for (bad = 0; bad < total && got[bad] == 0.0f;) bad++;
            ck_assert_msg(bad == total, "gradient %zu not zeroed", bad);
            mmrec_optimizer_destroy(o);
            mmrec_model_destroy(m);
        }
    }
    MT_OK(mmrec_set_num_threads(2));
    free(init);
    free(grads);
    free(got);
    free(alone);
}
END_TEST

START_TEST(test_clip_grad_norm_scales_all_gradients) {
    /* two parameters, global norm sqrt(3^2 + 4^2 + 12^2) = 13 */
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    int64_t s2 = 2, s1 = 1;
    mmrec_tensor *a, *b;
    MT_OK(mmrec_model_add_param(m, "a", 1, &s2, &a));
    MT_OK(mmrec_model_add_param(m, "b", 1, &s1, &b));
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    cfg.type = MMREC_OPT_SGD;
    cfg.lr = 1.0f;
    cfg.clip_norm = 2.6f;
    mmrec_optimizer *o;
    MT_OK(mmrec_optimizer_create(m, &cfg, &o));
    float g[3] = {3, 4, 12}, p[3];
    MT_OK(mmrec_model_import_grads(m, g, 3));
    MT_OK(mmrec_optimizer_step(o));
    float norm;
    MT_OK(mmrec_optimizer_last_grad_norm(o, &norm));
    ck_assert_float_eq_tol(norm, 13.0f, 1e-5f);
    MT_OK(mmrec_model_export_params(m, p, 3));
    double coef = 2.6 / (13.0 + 1e-6);
    double want[3] = {-3 * coef, -4 * coef, -12 * coef};
    mt_close("clipped", p, want, 3);
    /* below the threshold nothing is scaled */
    float small[3] = {0.3f, 0.4f, 1.2f};
    MT_OK(mmrec_model_import_grads(m, small, 3));
    MT_OK(mmrec_optimizer_step(o));
    MT_OK(mmrec_optimizer_last_grad_norm(o, &norm));
    ck_assert_float_eq_tol(norm, 1.3f, 1e-6f);
    float q[3];
    MT_OK(mmrec_model_export_params(m, q, 3));
    for (int i = 0; i < 3; i++) ck_assert(q[i] == p[i] - small[i]);
    mmrec_optimizer_destroy(o);
    mmrec_model_destroy(m);
}
END_TEST

/* ---- api ---- */

START_TEST(test_optimizer_config_and_bad_arguments) {
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    ck_assert_int_eq(cfg.type, MMREC_OPT_ADAM);
    ck_assert(cfg.lr == 1e-3f && cfg.beta1 == 0.9f && cfg.beta2 == 0.999f);
    ck_assert_uint_eq(cfg.struct_size, sizeof cfg);
    MT_EXPECT(mmrec_optimizer_config_init_sized(&cfg, 4), MMREC_EINVAL, "smaller");
    MT_EXPECT(mmrec_optimizer_config_init_sized(NULL, sizeof cfg), MMREC_EINVAL, "'cfg'");

    mmrec_tensor *w;
    mmrec_model *m = mt_model_1(mt_init, MT_N, &w);
    mmrec_optimizer *o;
    /* config size matrix: smaller than the first release, longer with a
     * zero tail (accepted) or a set tail (refused) */
    struct {
        mmrec_optimizer_config c;
        uint64_t tail;
    } big;
    memset(&big, 0, sizeof big);
    MT_OK(mmrec_optimizer_config_init_sized(&big.c, sizeof big));
    ck_assert_uint_eq(big.c.struct_size, sizeof big);
    MT_OK(mmrec_optimizer_create(m, &big.c, &o));
    mmrec_optimizer_destroy(o);
    big.tail = 1;
    MT_EXPECT(mmrec_optimizer_create(m, &big.c, &o), MMREC_EINVAL, "newer libmmrec");
    cfg.struct_size = 8;
    MT_EXPECT(mmrec_optimizer_create(m, &cfg, &o), MMREC_EINVAL,
              "cfg->struct_size is 8");

#define MT_BAD(field, value, needle)                                                \
    do {                                                                           \
        MT_OK(mmrec_optimizer_config_init(&cfg));                                  \
        cfg.field = value;                                                         \
        MT_EXPECT(mmrec_optimizer_create(m, &cfg, &o), MMREC_EINVAL, needle);      \
    } while (0)
    MT_BAD(type, (mmrec_optimizer_type)9, "cfg->type is 9");
    MT_BAD(lr, -1.0f, "cfg->lr is -1");
    MT_BAD(lr, NAN, "cfg->lr");
    MT_BAD(weight_decay, INFINITY, "cfg->weight_decay");
    MT_BAD(momentum, -0.5f, "cfg->momentum");
    MT_BAD(nesterov, 1, "nesterov needs momentum > 0");
    MT_BAD(beta1, 1.0f, "cfg->beta1 is 1");
    MT_BAD(beta2, -0.1f, "cfg->beta2");
    MT_BAD(eps, -1e-8f, "cfg->eps");
    MT_BAD(initial_accumulator, -1.0f, "cfg->initial_accumulator");
    MT_BAD(clip_norm, -1.0f, "cfg->clip_norm");
#undef MT_BAD
    MT_OK(mmrec_optimizer_config_init(&cfg));
    MT_EXPECT(mmrec_optimizer_create(NULL, &cfg, &o), MMREC_EINVAL, "'model'");
    MT_EXPECT(mmrec_optimizer_create(m, NULL, &o), MMREC_EINVAL, "'cfg'");
    MT_EXPECT(mmrec_optimizer_create(m, &cfg, NULL), MMREC_EINVAL, "'out'");
    MT_OK(mmrec_optimizer_create(m, &cfg, &o));
    MT_EXPECT(mmrec_optimizer_step(NULL), MMREC_EINVAL, "'opt'");
    MT_EXPECT(mmrec_optimizer_step((mmrec_optimizer *)m), MMREC_EINVAL,
              "argument 'opt' is not an optimizer");
    float lr;
    uint64_t steps;
    MT_EXPECT(mmrec_optimizer_get_lr(o, 1, &lr), MMREC_ERANGE, "group is 1");
    MT_EXPECT(mmrec_optimizer_get_lr(o, 0, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_optimizer_set_lr(o, -1, 0.1f), MMREC_ERANGE, "group is -1");
    MT_EXPECT(mmrec_optimizer_set_lr(o, 0, -0.1f), MMREC_EINVAL, "lr is -0.1");
    MT_EXPECT(mmrec_optimizer_set_lr(o, 0, NAN), MMREC_EINVAL, "lr is nan");
    MT_EXPECT(mmrec_optimizer_step_count(o, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_optimizer_step_count(NULL, &steps), MMREC_EINVAL, "'opt'");
    MT_EXPECT(mmrec_optimizer_last_grad_norm(o, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_optimizer_add_group(o, "x", 0.1f, 0, NULL), MMREC_ENOTFOUND, "'x'");
    MT_EXPECT(mmrec_optimizer_add_group(o, NULL, 0.1f, 0, NULL), MMREC_EINVAL, "'prefix'");
    MT_EXPECT(mmrec_optimizer_add_group(o, "w", -1, 0, NULL), MMREC_EINVAL, "lr is -1");
    MT_EXPECT(mmrec_optimizer_add_group(o, "w", 1, -1, NULL), MMREC_EINVAL, "weight_decay");
    mmrec_optimizer_destroy(o);
    mmrec_optimizer_destroy(NULL);
    mmrec_model_destroy(m);
}
END_TEST

START_TEST(test_groups_have_their_own_lr_and_weight_decay) {
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    int64_t s2 = 2;
    mmrec_tensor *a, *b, *c;
    MT_OK(mmrec_model_add_param(m, "id.emb", 1, &s2, &a));
    MT_OK(mmrec_model_add_param(m, "content.w", 1, &s2, &b));
    MT_OK(mmrec_model_add_param(m, "content.b", 1, &s2, &c));
    float ones[6] = {1, 1, 1, 1, 1, 1};
    MT_OK(mmrec_model_import_params(m, ones, 6));
    mmrec_optimizer *o = mt_opt(m, MMREC_OPT_SGD, 0.1f);
    int g;
    MT_OK(mmrec_optimizer_add_group(o, "content.", 0.01f, 0.5f, &g));
    ck_assert_int_eq(g, 1);
    int g2;
    MT_OK(mmrec_optimizer_add_group(o, "content.b", 0.0f, 0.0f, &g2)); /* moves content.b */
    ck_assert_int_eq(g2, 2);
    float lr;
    MT_OK(mmrec_optimizer_get_lr(o, 1, &lr));
    ck_assert(lr == 0.01f);
    float grads[6] = {1, 1, 1, 1, 1, 1}, p[6];
    MT_OK(mmrec_model_import_grads(m, grads, 6));
    MT_OK(mmrec_optimizer_step(o));
    MT_OK(mmrec_model_export_params(m, p, 6));
    ck_assert(p[0] == 1.0f - 0.1f);                      /* group 0 */
    ck_assert(p[2] == 1.0f + -0.01f * (1.0f + 0.5f));     /* group 1, decay 0.5 */
    ck_assert(p[4] == 1.0f);                             /* group 2, lr 0 */
    MT_OK(mmrec_optimizer_set_lr(o, 0, 0.5f));
    MT_OK(mmrec_optimizer_get_lr(o, 0, &lr));
    ck_assert(lr == 0.5f);
    MT_OK(mmrec_model_import_grads(m, grads, 6));
    MT_OK(mmrec_optimizer_step(o));
    MT_OK(mmrec_model_export_params(m, p, 6));
    ck_assert(p[0] == (1.0f - 0.1f) - 0.5f);
    /* a parameter added later joins the group its name matches */
    mmrec_tensor *d;
    MT_OK(mmrec_model_add_param(m, "content.w2", 1, &s2, &d));
    MT_OK(mmrec_tensor_copy_from(d, ones, 2));
    float g8[8] = {0, 0, 0, 0, 0, 0, 1, 1}, p8[8];
    MT_OK(mmrec_model_import_grads(m, g8, 8));
    MT_OK(mmrec_optimizer_step(o));
    MT_OK(mmrec_model_export_params(m, p8, 8));
    ck_assert(p8[6] == 1.0f + -0.01f * (1.0f + 0.5f));
    mmrec_optimizer_destroy(o);
    mmrec_model_destroy(m);
}
END_TEST

START_TEST(test_nan_gradient_rejected_nothing_updated) {
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    int64_t s2 = 2;
    mmrec_tensor *a, *b;
    MT_OK(mmrec_model_add_param(m, "a", 1, &s2, &a));
    MT_OK(mmrec_model_add_param(m, "b", 1, &s2, &b));
    mmrec_optimizer *o = mt_opt(m, MMREC_OPT_ADAM, 0.1f);
    float g[4] = {1, 2, 3, 4}, p[4], before[4];
    MT_OK(mmrec_model_export_params(m, before, 4));
    MT_OK(mmrec_model_import_grads(m, g, 4));
    /* the flat import refuses NaN, so poison the gradient in place */
    b->grad[1] = INFINITY;
    MT_EXPECT(mmrec_optimizer_step(o), MMREC_ENUMERIC, "parameter 'b'");
    MT_OK(mmrec_model_export_params(m, p, 4));
    ck_assert(memcmp(p, before, sizeof p) == 0);
    ck_assert(a->grad[0] == 1.0f); /* gradients kept */
    uint64_t steps;
    MT_OK(mmrec_optimizer_step_count(o, &steps));
    ck_assert_uint_eq(steps, 0);
    b->grad[1] = NAN;
    MT_EXPECT(mmrec_optimizer_step(o), MMREC_ENUMERIC, "element 1");
    b->grad[1] = 4;
    MT_OK(mmrec_optimizer_step(o));
    mmrec_optimizer_destroy(o);
    mmrec_model_destroy(m);
}
END_TEST

START_TEST(test_frozen_skipped_and_unfrozen_gets_state_later) {
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    int64_t s2 = 2;
    mmrec_tensor *a, *b;
    MT_OK(mmrec_model_add_param(m, "a", 1, &s2, &a));
    MT_OK(mmrec_model_add_param(m, "b", 1, &s2, &b));
    MT_OK(mmrec_model_freeze(m, "b", NULL));
    mmrec_optimizer *o = mt_opt(m, MMREC_OPT_ADAM, 0.1f);
    float g2[2] = {1, 1}, p[4];
    MT_OK(mmrec_model_import_grads(m, g2, 2));
    MT_OK(mmrec_optimizer_step(o));
    ck_assert_ptr_null(o->slots[1].buf[0]); /* no state for the frozen one */
    MT_OK(mmrec_model_unfreeze(m, "b", NULL));
    float g4[4] = {1, 1, 1, 1};
    MT_OK(mmrec_model_import_grads(m, g4, 4));
    MT_OK(mmrec_optimizer_step(o));
    ck_assert_ptr_nonnull(o->slots[1].buf[0]);
    ck_assert_uint_eq(o->slots[0].step, 2);
    ck_assert_uint_eq(o->slots[1].step, 1);
    /* b's first Adam step moves it by lr exactly as a's first did */
    MT_OK(mmrec_model_export_params(m, p, 4));
    ck_assert_float_eq_tol(p[2], -0.1f, 1e-6f);
    mmrec_optimizer_destroy(o);
    mmrec_model_destroy(m);
}
END_TEST

/* ---- sparse rows ---- */

/* Adds gradient `value` * (1, 2, ...) to `row` of a table and, when the
 * table is sparse, marks the row. */
static void mt_touch(mmrec_tensor *table, int64_t row, float value) {
    mmrec__param *p = table->param;
    size_t dim = (size_t)table->shape[1];
    for (size_t j = 0; j < dim; j++) table->grad[(size_t)row * dim + j] += value * (float)(j + 1);
    if (p->sparse) mmrec__param_touch_row(p, row);
}

START_TEST(test_sparse_rows_only_touched_rows_and_state_change) {
    mmrec_optimizer_type types[4] = {MMREC_OPT_SGD, MMREC_OPT_ADAM, MMREC_OPT_ADAMW,
                                     MMREC_OPT_ADAGRAD};
    for (int k = 0; k < 4; k++) {
        mmrec_model *m;
        MT_OK(mmrec_model_create(&m));
        int64_t shape[2] = {100, 4};
        mmrec_tensor *table;
        MT_OK(mmrec__model_add_param(m, "t", "emb", "table", 2, shape, true, &table));
        float init[400];
        mt_fill_uniform(init, 400, -1, 1, 5);
        MT_OK(mmrec_tensor_copy_from(table, init, 400));
        mmrec_optimizer_config cfg;
        MT_OK(mmrec_optimizer_config_init(&cfg));
        cfg.type = types[k];
        cfg.lr = 0.1f;
        cfg.momentum = 0.9f;
        cfg.weight_decay = 0.1f;
        mmrec_optimizer *o;
        MT_OK(mmrec_optimizer_create(m, &cfg, &o));
        mt_touch(table, 3, 1.0f);
        mt_touch(table, 70, -2.0f);
        MT_OK(mmrec_optimizer_step(o));
        mt_touch(table, 70, 0.5f);
        MT_OK(mmrec_optimizer_step(o));
        const mmrec__opt_slot *slot = &o->slots[0];
        for (int r = 0; r < 100; r++) {
            bool touched = r == 3 || r == 70;
            for (int j = 0; j < 4; j++) {
                size_t i = (size_t)r * 4 + (size_t)j;
                ck_assert_msg((table->data[i] != init[i]) == touched, "type %d row %d", k, r);
                /* state starts at 0 (Adagrad's initial accumulator is 0 here) */
                ck_assert_msg((slot->buf[0][i] != 0.0f) == touched, "type %d state row %d", k,
                              r);
                ck_assert(table->grad[i] == 0.0f);
            }
        }
        ck_assert_uint_eq(table->param->n_touched, 0);
        mmrec_optimizer_destroy(o);
        mmrec_model_destroy(m);
    }
}
END_TEST

/* Every row of a row-sparse table touched: the same updates as a dense
 * table, for a small table and for one whose rows are split over the pool
 * (1,200 x 64), at 1 and 2 threads. */
START_TEST(test_sparse_all_rows_touched_equals_dense) {
    mmrec_optimizer_type types[4] = {MMREC_OPT_SGD, MMREC_OPT_ADAM, MMREC_OPT_ADAMW,
                                     MMREC_OPT_ADAGRAD};
    static const int64_t shapes[2][2] = {{6, 3}, {1200, 64}};
    for (int k = 0; k < 4; k++)
        for (int sh = 0; sh < 2; sh++)
            for (int threads = 1; threads <= 2; threads++) {
                MT_OK(mmrec_set_num_threads(threads));
                mmrec_model *ms, *md;
                MT_OK(mmrec_model_create(&ms));
                MT_OK(mmrec_model_create(&md));
                const int64_t *shape = shapes[sh];
                size_t n = (size_t)(shape[0] * shape[1]);
                mmrec_tensor *ts, *td;
                MT_OK(mmrec__model_add_param(ms, "t", NULL, "table", 2, shape, true, &ts));
                MT_OK(mmrec_model_add_param(md, "table", 2, shape, &td));
                float *init = malloc(n * sizeof *init);
                ck_assert(init != NULL);
                mt_fill_uniform(init, n, -1, 1, 6);
                MT_OK(mmrec_tensor_copy_from(ts, init, n));
                MT_OK(mmrec_tensor_copy_from(td, init, n));
                free(init);
                mmrec_optimizer_config cfg;
                MT_OK(mmrec_optimizer_config_init(&cfg));
                cfg.type = types[k];
                cfg.lr = 0.05f;
                cfg.momentum = 0.9f;
                cfg.nesterov = 1;
                cfg.weight_decay = 0.01f;
                cfg.initial_accumulator = 0.1f;
                mmrec_optimizer *os, *od;
                MT_OK(mmrec_optimizer_create(ms, &cfg, &os));
                MT_OK(mmrec_optimizer_create(md, &cfg, &od));
                for (int step = 0; step < 4; step++) {
                    for (int64_t r = shape[0] - 1; r >= 0; r--) {
                        float v = 0.1f * (float)(r % 6 + step) - 0.3f;
                        mt_touch(ts, r, v);
                        mt_touch(td, r, v);
                    }
                    MT_OK(mmrec_optimizer_step(os));
                    MT_OK(mmrec_optimizer_step(od));
                }
                ck_assert_msg(memcmp(ts->data, td->data, n * sizeof(float)) == 0,
                              "type %d, %lld rows, %d threads", k, (long long)shape[0], threads);
                mmrec_optimizer_destroy(os);
                mmrec_optimizer_destroy(od);
                mmrec_model_destroy(ms);
                mmrec_model_destroy(md);
            }
    MT_OK(mmrec_set_num_threads(2));
}
END_TEST

/* ---- row-sparse tables written by dense ops ----
 * An embedding table used as a dense operand (the weight of a matmul, a
 * full softmax over the table) must train as a dense parameter does: the
 * dense write makes the next step a dense update that also clears the
 * gradient, while the row gather keeps its row-only path. */

typedef enum { MT_DENSE_ONLY, MT_MIXED, MT_GATHER_ONLY } mt_use;

#define MT_ROWS 7
#define MT_DIM 3

/* One training step on `table` ([MT_ROWS, MT_DIM]): the rows of a gather
 * and/or the whole table as the right operand of matmul(q, table^T), into
 * a softmax cross-entropy; backward; step. */
static void mt_table_step(mmrec_optimizer *o, mmrec_tensor *table, mt_use use, int t) {
    static const int64_t ids[3] = {5, 1, 5};
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *q, *logits, *loss;
    if (use == MT_GATHER_ONLY || use == MT_MIXED) {
        MT_OK(mmrec_gather_rows(tape, table, ids, 3, &q));
    } else {
        float qd[3 * MT_DIM];
        mt_fill_uniform(qd, 3 * MT_DIM, -1, 1, 40 + (uint64_t)t);
        int64_t qs[2] = {3, MT_DIM};
        q = mt_tape_tensor(tape, 2, qs, qd, 0);
    }
    int64_t labels[3] = {(t + 2) % MT_ROWS, 4, (t * 3) % MT_ROWS};
    if (use == MT_GATHER_ONLY) {
        float target[3 * MT_DIM];
        mt_fill_uniform(target, 3 * MT_DIM, -1, 1, 60 + (uint64_t)t);
        int64_t ts[2] = {3, MT_DIM};
        MT_OK(mmrec_loss_mse(tape, q, mt_tape_tensor(tape, 2, ts, target, 0), &loss));
    } else {
        MT_OK(mmrec_matmul(tape, q, table, MMREC_TRANS_B, &logits));
        MT_OK(mmrec_loss_softmax_ce(tape, logits, labels, 3, &loss));
    }
    MT_OK(mmrec_tape_backward(tape, loss));
    MT_OK(mmrec_optimizer_step(o));
    mmrec_tape_destroy(tape);
    for (size_t i = 0; i < table->numel; i++)
        ck_assert_msg(table->grad[i] == 0.0f, "gradient not cleared at %zu", i);
}

typedef struct mt_table_pair {
    mmrec_model *ms, *md;
    mmrec_optimizer *os, *od;
    mmrec_tensor *sparse, *dense;
} mt_table_pair;

/* An Embedding module's table and a dense parameter with the same values,
 * each with an optimizer of `type`. */
static void mt_table_pair_make(mt_table_pair *p, mmrec_optimizer_type type, float momentum) {
    MT_OK(mmrec_model_create(&p->ms));
    MT_OK(mmrec_model_create(&p->md));
    mmrec_embedding_config ec;
    MT_OK(mmrec_embedding_config_init(&ec));
    ec.num_rows = MT_ROWS;
    ec.dim = MT_DIM;
    mmrec_module *emb;
    MT_OK(mmrec_embedding_create(p->ms, "emb", &ec, &emb));
    MT_OK(mmrec_model_param(p->ms, "emb.weight", &p->sparse));
    int64_t shape[2] = {MT_ROWS, MT_DIM};
    MT_OK(mmrec_model_add_param(p->md, "emb.weight", 2, shape, &p->dense));
    MT_OK(mmrec_tensor_copy_from(p->dense, p->sparse->data, MT_ROWS * MT_DIM));
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    cfg.type = type;
    cfg.lr = 0.1f;
    cfg.momentum = momentum;
    cfg.weight_decay = 0.01f;
    MT_OK(mmrec_optimizer_create(p->ms, &cfg, &p->os));
    MT_OK(mmrec_optimizer_create(p->md, &cfg, &p->od));
}

static void mt_table_pair_free(mt_table_pair *p) {
    mmrec_optimizer_destroy(p->os);
    mmrec_optimizer_destroy(p->od);
    mmrec_model_destroy(p->ms);
    mmrec_model_destroy(p->md);
}

static const struct {
    mmrec_optimizer_type type;
    float momentum;
    const char *name;
} mt_all_opts[5] = {{MMREC_OPT_SGD, 0.0f, "SGD"},
                    {MMREC_OPT_SGD, 0.9f, "SGD momentum"},
                    {MMREC_OPT_ADAM, 0.0f, "Adam"},
                    {MMREC_OPT_ADAMW, 0.0f, "AdamW"},
                    {MMREC_OPT_ADAGRAD, 0.0f, "Adagrad"}};

/* Dense use alone and dense use mixed with a gather in one step: the table
 * follows the dense parameter bit for bit over three steps. */
START_TEST(test_sparse_table_dense_use_trains_as_dense) {
    mt_use uses[2] = {MT_DENSE_ONLY, MT_MIXED};
    for (int u = 0; u < 2; u++)
        for (int k = 0; k < 5; k++) {
            mt_table_pair p;
            mt_table_pair_make(&p, mt_all_opts[k].type, mt_all_opts[k].momentum);
            float before[MT_ROWS * MT_DIM];
            memcpy(before, p.sparse->data, sizeof before);
            for (int t = 0; t < 3; t++) {
                mt_table_step(p.os, p.sparse, uses[u], t);
                mt_table_step(p.od, p.dense, uses[u], t);
                ck_assert_msg(memcmp(p.sparse->data, p.dense->data, sizeof before) == 0,
                              "%s, %s use, step %d: the table differs from a dense parameter",
                              mt_all_opts[k].name, u ? "mixed" : "dense", t);
            }
            ck_assert_msg(memcmp(p.sparse->data, before, sizeof before) != 0, "%s: no update",
                          mt_all_opts[k].name);
            mt_table_pair_free(&p);
        }
}
END_TEST

/* After a dense step, a gather-only step is row-sparse again: only the
 * gathered rows (1 and 5) change, and the gradient is clear. */
START_TEST(test_sparse_table_gather_after_dense_is_row_only) {
    for (int k = 0; k < 5; k++) {
        mt_table_pair p;
        mt_table_pair_make(&p, mt_all_opts[k].type, mt_all_opts[k].momentum);
        mt_table_step(p.os, p.sparse, MT_MIXED, 0);
        float before[MT_ROWS * MT_DIM];
        memcpy(before, p.sparse->data, sizeof before);
        mt_table_step(p.os, p.sparse, MT_GATHER_ONLY, 1);
        for (int r = 0; r < MT_ROWS; r++) {
            bool gathered = r == 1 || r == 5;
            bool changed = memcmp(p.sparse->data + r * MT_DIM, before + r * MT_DIM,
                                  MT_DIM * sizeof(float)) != 0;
            ck_assert_msg(changed == gathered, "%s: row %d %s", mt_all_opts[k].name, r,
                          changed ? "changed" : "did not change");
        }
        ck_assert_uint_eq(p.sparse->param->n_touched, 0);
        mt_table_pair_free(&p);
    }
}
END_TEST

/* ---- checkpoints with optimizer state, and resume ---- */

typedef struct mt_run {
    mmrec_model *m;
    mmrec_optimizer *o;
    mmrec_tensor *w, *v, *table;
    mmrec_tape *tape;
} mt_run;

static void mt_run_build(mt_run *r, const mmrec_optimizer_config *cfg) {
    MT_OK(mmrec_model_create(&r->m));
    int64_t sw[2] = {4, 3}, sv[2] = {3, 2}, st[2] = {40, 3};
    float buf[120];
    MT_OK(mmrec_model_add_param(r->m, "enc.w", 2, sw, &r->w));
    mt_fill_uniform(buf, 12, -1, 1, 21);
    MT_OK(mmrec_tensor_copy_from(r->w, buf, 12));
    MT_OK(mmrec_model_add_param(r->m, "head.v", 2, sv, &r->v));
    mt_fill_uniform(buf, 6, -1, 1, 22);
    MT_OK(mmrec_tensor_copy_from(r->v, buf, 6));
    MT_OK(mmrec__model_add_param(r->m, "t", "emb", "table", 2, st, true, &r->table));
    mt_fill_uniform(buf, 120, -1, 1, 23);
    MT_OK(mmrec_tensor_copy_from(r->table, buf, 120));
    MT_OK(mmrec_optimizer_create(r->m, cfg, &r->o));
    MT_OK(mmrec_optimizer_add_group(r->o, "head.", 0.5f * cfg->lr, 0.0f, NULL));
    MT_OK(mmrec_tape_create(&r->tape));
}

static void mt_run_free(mt_run *r) {
    mmrec_tape_destroy(r->tape);
    mmrec_optimizer_destroy(r->o);
    mmrec_model_destroy(r->m);
}

/* Training step t: y = x(t) W V seeded with d(t); the table gets gradients
 * on rows picked by t that depend on the rows' values. */
static void mt_run_step(mt_run *r, int t) {
    float x[5 * 4], d[5 * 2];
    mt_fill_uniform(x, 20, -1, 1, 100 + (uint64_t)t);
    mt_fill_uniform(d, 10, -1, 1, 200 + (uint64_t)t);
    int64_t sx[2] = {5, 4};
    mmrec_tensor *tx, *h, *y;
    MT_OK(mmrec_tape_wrap(r->tape, x, 2, sx, MMREC_TENSOR_READONLY, &tx));
    MT_OK(mmrec_matmul(r->tape, tx, r->w, 0, &h));
    MT_OK(mmrec_matmul(r->tape, h, r->v, 0, &y));
    MT_OK(mmrec_tape_backward_from(r->tape, y, d));
    for (int k = 0; k < 3; k++) {
        int64_t row = (t * 7 + k * 11) % 40;
        mt_touch(r->table, row, 0.5f * r->table->data[row * 3] + 0.01f * (float)(t + 1));
    }
    MT_OK(mmrec_optimizer_step(r->o));
    mmrec_tape_reset(r->tape);
}

static void mt_resume_case(const char *what, const mmrec_optimizer_config *cfg) {
    char dir[] = "/tmp/mmrec-optim-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/run.ckpt", dir);
    const int k = 5, extra = 6;
    mt_run a, b, c;
    mt_run_build(&a, cfg);
    MT_OK(mmrec_optimizer_set_lr(a.o, 0, 2.0f * cfg->lr));
    for (int t = 0; t < k + extra; t++) mt_run_step(&a, t);

    mt_run_build(&b, cfg);
    MT_OK(mmrec_optimizer_set_lr(b.o, 0, 2.0f * cfg->lr));
    for (int t = 0; t < k; t++) mt_run_step(&b, t);
    MT_OK(mmrec_checkpoint_save(b.m, b.o, path));

    mt_run_build(&c, cfg); /* fresh model and optimizer */
    MT_OK(mmrec_checkpoint_load(c.m, c.o, path));
    float lr;
    MT_OK(mmrec_optimizer_get_lr(c.o, 0, &lr));
    ck_assert(lr == 2.0f * cfg->lr);
    for (int t = k; t < k + extra; t++) mt_run_step(&c, t);

    ck_assert_msg(memcmp(a.w->data, c.w->data, 12 * sizeof(float)) == 0, "%s: enc.w", what);
    ck_assert_msg(memcmp(a.v->data, c.v->data, 6 * sizeof(float)) == 0, "%s: head.v", what);
    ck_assert_msg(memcmp(a.table->data, c.table->data, 120 * sizeof(float)) == 0, "%s: table",
                  what);
    uint64_t sa, sc;
    MT_OK(mmrec_optimizer_step_count(a.o, &sa));
    MT_OK(mmrec_optimizer_step_count(c.o, &sc));
    ck_assert_uint_eq(sa, sc);
    /* and the run really moved */
    ck_assert(memcmp(a.w->data, b.w->data, 12 * sizeof(float)) != 0);
    mt_run_free(&a);
    mt_run_free(&b);
    mt_run_free(&c);
    unlink(path);
    rmdir(dir);
}

START_TEST(test_resume_is_bit_identical) {
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    cfg.lr = 0.01f;
    cfg.clip_norm = 1.0f;
    mt_resume_case("adam", &cfg);
    MT_OK(mmrec_optimizer_config_init(&cfg));
    cfg.type = MMREC_OPT_ADAMW;
    cfg.lr = 0.01f;
    mt_resume_case("adamw", &cfg);
    MT_OK(mmrec_optimizer_config_init(&cfg));
    cfg.type = MMREC_OPT_SGD;
    cfg.lr = 0.05f;
    cfg.momentum = 0.9f;
    cfg.nesterov = 1;
    cfg.weight_decay = 1e-3f;
    mt_resume_case("sgd nesterov", &cfg);
    MT_OK(mmrec_optimizer_config_init(&cfg));
    cfg.type = MMREC_OPT_ADAGRAD;
    cfg.lr = 0.1f;
    cfg.initial_accumulator = 0.1f;
    mt_resume_case("adagrad", &cfg);
}
END_TEST

START_TEST(test_checkpoint_optimizer_mismatch_rejected) {
    char dir[] = "/tmp/mmrec-optim-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64], plain[64];
    snprintf(path, sizeof path, "%s/run.ckpt", dir);
    snprintf(plain, sizeof plain, "%s/model.ckpt", dir);
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    mt_run a;
    mt_run_build(&a, &cfg);
    for (int t = 0; t < 2; t++) mt_run_step(&a, t);
    MT_OK(mmrec_checkpoint_save(a.m, a.o, path));
    MT_OK(mmrec_model_save(a.m, plain));
    /* the model alone loads from either file */
    mt_run b;
    mt_run_build(&b, &cfg);
    MT_OK(mmrec_model_load(b.m, path));
    MT_OK(mmrec_model_load(b.m, plain));
    MT_EXPECT(mmrec_checkpoint_load(b.m, b.o, plain), MMREC_EFORMAT, "no optimizer state");
    MT_EXPECT(mmrec_checkpoint_load(b.m, a.o, path), MMREC_EINVAL, "another model");
    MT_EXPECT(mmrec_checkpoint_save(b.m, a.o, path), MMREC_EINVAL, "another model");
    mt_run_free(&b);

    /* another optimizer type: nothing changes */
    cfg.type = MMREC_OPT_SGD;
    mt_run c;
    mt_run_build(&c, &cfg);
    float before[12];
    memcpy(before, c.w->data, sizeof before);
    MT_EXPECT(mmrec_checkpoint_load(c.m, c.o, path), MMREC_EFORMAT,
              "holds Adam optimizer state, the optimizer is SGD");
    ck_assert(memcmp(before, c.w->data, sizeof before) == 0);
    mt_run_free(&c);

    /* SGD with and without a momentum buffer */
    cfg.momentum = 0.9f;
    mt_run f, g;
    mt_run_build(&f, &cfg);
    mt_run_step(&f, 0);
    MT_OK(mmrec_checkpoint_save(f.m, f.o, path));
    cfg.momentum = 0.0f;
    mt_run_build(&g, &cfg);
    MT_EXPECT(mmrec_checkpoint_load(g.m, g.o, path), MMREC_EFORMAT,
              "optimizer state 'momentum_buffer:");
    mt_run_step(&g, 0);
    MT_OK(mmrec_checkpoint_save(g.m, g.o, path));
    MT_EXPECT(mmrec_checkpoint_load(f.m, f.o, path), MMREC_EFORMAT,
              "lacks the optimizer state 'momentum_buffer:enc.w'");
    mt_run_free(&f);
    mt_run_free(&g);
    MT_OK(mmrec_checkpoint_save(a.m, a.o, path));

    /* other groups */
    cfg.type = MMREC_OPT_ADAM;
    mmrec_model *m;
    mmrec_optimizer *o;
    mt_run d;
    mt_run_build(&d, &cfg);
    m = d.m;
    o = d.o;
    MT_OK(mmrec_optimizer_add_group(o, "emb.", 0.1f, 0.0f, NULL));
    MT_EXPECT(mmrec_checkpoint_load(m, o, path), MMREC_EFORMAT, "the optimizer has 3");
    mt_run_free(&d);

    /* a parameter added after the optimizer was created */
    mt_run e;
    mt_run_build(&e, &cfg);
    mt_run_step(&e, 0);
    int64_t s2 = 2;
    MT_OK(mmrec_model_add_param(e.m, "late", 1, &s2, NULL));
    MT_OK(mmrec_checkpoint_save(e.m, e.o, path));
    MT_OK(mmrec_checkpoint_load(e.m, e.o, path));
    mt_run_step(&e, 1);
    MT_OK(mmrec_checkpoint_save(e.m, e.o, path));
    MT_EXPECT(mmrec_checkpoint_load(a.m, a.o, path), MMREC_EFORMAT, "has parameter 'late'");
    mt_run_free(&e);
    mt_run_free(&a);
    unlink(path);
    unlink(plain);
    rmdir(dir);
}
END_TEST

/* ---- steady state ---- */


START_TEST(test_training_step_steady_state_no_malloc) {
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    cfg.clip_norm = 1.0f;
    mt_run r;
    mt_run_build(&r, &cfg);
    size_t counts[6];
    for (int t = 0; t < 6; t++) {
        mt_allocs = 0;
        mt_run_step(&r, t);
        counts[t] = mt_allocs;
    }
    ck_assert_uint_gt(counts[0], 0);
    ck_assert_uint_eq(counts[3], 0);
    ck_assert_uint_eq(counts[4], 0);
    ck_assert_uint_eq(counts[5], 0);
    mt_run_free(&r);
    MT_OK(mmrec_set_allocator(NULL));
}
END_TEST

/* Allocation failures: fail the n-th allocation for n = 1, 2, ... until a
 * create / step / save / load sequence succeeds; every failure is
 * MMREC_ENOMEM, leaks nothing and leaves no temporary file. */
static size_t mt_fail_at, mt_alloc_count;
static void *mt_failing_alloc(void *user, size_t size) {
    (void)user;
    if (++mt_alloc_count == mt_fail_at) return NULL;
    void *p = NULL;
    return posix_memalign(&p, 64, size ? size : 64) == 0 ? p : NULL;
}

static mmrec_status mt_oom_sequence(const char *path) {
    mmrec_model *m = NULL, *m2 = NULL;
    mmrec_optimizer *o = NULL, *o2 = NULL;
    mmrec_tensor *w, *table, *w2, *table2;
    mmrec_optimizer_config cfg;
    mmrec_status s;
    int64_t sw[2] = {3, 5}, st[2] = {10, 2};
#define MT_TRY(call) \
    if ((s = (call)) != MMREC_OK) goto done
    MT_OK(mmrec_optimizer_config_init(&cfg));
    MT_TRY(mmrec_model_create(&m));
    MT_TRY(mmrec_model_add_param(m, "w", 2, sw, &w));
    MT_TRY(mmrec__model_add_param(m, "t", NULL, "table", 2, st, true, &table));
    MT_TRY(mmrec_optimizer_create(m, &cfg, &o));
    MT_TRY(mmrec_optimizer_add_group(o, "table", 0.1f, 0.0f, NULL));
    for (int i = 0; i < 15; i++) w->grad[i] = 0.1f * (float)i;
    mt_touch(table, 4, 1.0f);
    MT_TRY(mmrec_optimizer_step(o));
    MT_TRY(mmrec_checkpoint_save(m, o, path));
    MT_TRY(mmrec_model_create(&m2));
    MT_TRY(mmrec_model_add_param(m2, "w", 2, sw, &w2));
    MT_TRY(mmrec__model_add_param(m2, "t", NULL, "table", 2, st, true, &table2));
    MT_TRY(mmrec_optimizer_create(m2, &cfg, &o2));
    MT_TRY(mmrec_optimizer_add_group(o2, "table", 0.1f, 0.0f, NULL));
    MT_TRY(mmrec_checkpoint_load(m2, o2, path));
    ck_assert(memcmp(w->data, w2->data, 15 * sizeof(float)) == 0);
    ck_assert(memcmp(o->slots[1].buf[1], o2->slots[1].buf[1], 20 * sizeof(float)) == 0);
#undef MT_TRY
done:
    mmrec_optimizer_destroy(o2);
    mmrec_model_destroy(m2);
    mmrec_optimizer_destroy(o);
    mmrec_model_destroy(m);
    return s;
}

START_TEST(test_allocation_failures_are_clean) {
    char dir[] = "/tmp/mmrec-optim-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64], tmp[96];
    snprintf(path, sizeof path, "%s/oom.ckpt", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    mmrec_allocator al = {sizeof al, mt_failing_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mmrec_status s = MMREC_ENOMEM;
    size_t n;
    for (n = 1; n < 1000 && s != MMREC_OK; n++) {
        mt_fail_at = n;
        mt_alloc_count = 0;
        s = mt_oom_sequence(path);
        ck_assert_msg(s == MMREC_OK || s == MMREC_ENOMEM, "allocation %zu: %s (%s)", n,
                      mmrec_status_name(s), mmrec_last_error());
        ck_assert_msg(access(tmp, F_OK) != 0, "allocation %zu left %s", n, tmp);
    }
    MT_OK(mmrec_set_allocator(NULL));
    ck_assert_int_eq(s, MMREC_OK);
    ck_assert_uint_gt(n, 10);
    unlink(path);
    rmdir(dir);
}
END_TEST

static Suite *optim_suite(void) {
    Suite *s = suite_create("optim");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_optimizer_config_and_bad_arguments);
    tcase_add_test(api, test_nan_gradient_rejected_nothing_updated);
    suite_add_tcase(s, api);
    TCase *rules = tcase_create("rules");
    tcase_add_test(rules, test_sgd_matches_formula);
    tcase_add_test(rules, test_adam_and_adamw_match_formula);
    tcase_add_test(rules, test_adagrad_matches_formula);
    tcase_add_test(rules, test_clip_grad_norm_scales_all_gradients);
    tcase_add_test(rules, test_large_parameter_same_update_any_thread_count);
    tcase_add_test(rules, test_small_parameters_updated_once_each_over_the_pool);
    tcase_add_test(rules, test_groups_have_their_own_lr_and_weight_decay);
    tcase_add_test(rules, test_frozen_skipped_and_unfrozen_gets_state_later);
    tcase_add_test(rules, test_sparse_rows_only_touched_rows_and_state_change);
    tcase_add_test(rules, test_sparse_all_rows_touched_equals_dense);
    tcase_add_test(rules, test_sparse_table_dense_use_trains_as_dense);
    tcase_add_test(rules, test_sparse_table_gather_after_dense_is_row_only);
    suite_add_tcase(s, rules);
    TCase *lc = tcase_create("lifecycle");
    tcase_add_test(lc, test_resume_is_bit_identical);
    tcase_add_test(lc, test_checkpoint_optimizer_mismatch_rejected);
    tcase_add_test(lc, test_training_step_steady_state_no_malloc);
    tcase_add_test(lc, test_allocation_failures_are_clean);
    suite_add_tcase(s, lc);
    return s;
}
