/* AlignRec: the losses (closed forms, gradients, PyTorch golden vectors,
 * bad input), the user view from item rows, and the model block (creation,
 * gradients, the reference's whole training loss against PyTorch, views,
 * per-group learning rates, bad input, allocation failures). */
#include "mt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

MT_SUITE(alignrec_suite)

static float mt_value(mmrec_tensor *t) {
    const float *d;
    MT_OK(mmrec_tensor_data_const(t, &d));
    return d[0];
}

/* ---- losses ---- */

typedef struct mt_loss_case {
    int kind; /* 0 infonce, 1 anti-collapse, 2 ui alignment */
    float temperature;
} mt_loss_case;

static mmrec_status mt_loss_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                mmrec_tensor **out) {
    const mt_loss_case *c = ctx;
    switch (c->kind) {
    case 0: return mmrec_loss_infonce(tape, in[0], in[1], c->temperature, out);
    case 1: return mmrec_loss_anti_collapse(tape, in[0], in[1], out);
    default: return mmrec_loss_ui_alignment(tape, in[0], in[1], out);
    }
}

/* InfoNCE in double, as the reference writes it. */
static double mt_infonce_ref(const float *a, const float *b, int B, int d, double tau) {
    double loss = 0;
    for (int i = 0; i < B; i++) {
        double na = 0, pos = 0, total = 0;
        for (int e = 0; e < d; e++) na += (double)a[i * d + e] * a[i * d + e];
        for (int j = 0; j < B; j++) {
            double nb = 0, dot = 0;
            for (int e = 0; e < d; e++) {
                nb += (double)b[j * d + e] * b[j * d + e];
                dot += (double)a[i * d + e] * b[j * d + e];
            }
            double s = exp(dot / sqrt(na * nb) / tau);
            total += s;
            if (j == i) pos = s;
        }
        loss += -log(pos / total);
    }
    return loss / B;
}

START_TEST(test_infonce_is_one_directional_and_halves_cic) {
    enum { B = 5, D = 4 };
    float a[B * D], b[B * D];
    mt_fill_uniform(a, B * D, -1, 1, 1);
    mt_fill_uniform(b, B * D, -1, 1, 2);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {B, D};
    mmrec_tensor *ta = mt_tape_tensor(tape, 2, s, a, 0), *tb = mt_tape_tensor(tape, 2, s, b, 0);
    mmrec_tensor *ab, *ba, *cic;
    MT_OK(mmrec_loss_infonce(tape, ta, tb, 0.2f, &ab));
    MT_OK(mmrec_loss_infonce(tape, tb, ta, 0.2f, &ba));
    double want = mt_infonce_ref(a, b, B, D, 0.2);
    ck_assert_msg(fabs(mt_value(ab) - want) < 1e-5 * fabs(want), "infonce %g vs %g",
                  (double)mt_value(ab), want);
    ck_assert(fabs(mt_value(ab) - mt_value(ba)) > 1e-3); /* not symmetric */
    /* CIC with every other row as a negative is the mean of both directions */
    mmrec_cic_config cc;
    MT_OK(mmrec_cic_config_init(&cc));
    cc.temperature = 0.2f;
    MT_OK(mmrec_loss_cic(tape, ta, tb, &cc, &cic));
    ck_assert(fabsf(mt_value(cic) - 0.5f * (mt_value(ab) + mt_value(ba))) < 1e-5f);
    /* one row: the only candidate is the positive */
    int64_t s1[2] = {1, D};
    mmrec_tensor *one = mt_tape_tensor(tape, 2, s1, a, 0), *l;
    MT_OK(mmrec_loss_infonce(tape, one, one, 0.2f, &l));
    ck_assert(fabsf(mt_value(l)) < 1e-6f);
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_anti_collapse_and_ui_alignment_closed_forms) {
    enum { B = 4, D = 3, C = 5 };
    float m[B * D], c[B * C], u[B * D];
    mt_fill_uniform(m, B * D, -1, 1, 3);
    mt_fill_uniform(c, B * C, -1, 1, 4);
    mt_fill_uniform(u, B * D, -1, 1, 5);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t sm[2] = {B, D}, sc[2] = {B, C};
    mmrec_tensor *tm = mt_tape_tensor(tape, 2, sm, m, 0), *tc = mt_tape_tensor(tape, 2, sc, c, 0);
    mmrec_tensor *tu = mt_tape_tensor(tape, 2, sm, u, 0), *l;
    MT_OK(mmrec_loss_anti_collapse(tape, tm, tc, &l));
    double ss = 0;
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            double mm = 0, cc = 0, ni = 0, nj = 0;
            for (int e = 0; e < D; e++) mm += (double)m[i * D + e] * m[j * D + e];
            for (int e = 0; e < C; e++) {
                cc += (double)c[i * C + e] * c[j * C + e];
                ni += (double)c[i * C + e] * c[i * C + e];
                nj += (double)c[j * C + e] * c[j * C + e];
            }
            double g = mm - cc / sqrt(ni * nj);
            ss += g * g;
        }
    double want = sqrt(ss) / B;
    ck_assert_msg(fabs(mt_value(l) - want) < 1e-5 * want, "anti-collapse %g vs %g",
                  (double)mt_value(l), want);
    MT_OK(mmrec_loss_ui_alignment(tape, tu, tm, &l));
    want = 0;
    for (int i = 0; i < B; i++) {
        double dot = 0, nu = 0, nm = 0;
        for (int e = 0; e < D; e++) {
            dot += (double)u[i * D + e] * m[i * D + e];
            nu += (double)u[i * D + e] * u[i * D + e];
            nm += (double)m[i * D + e] * m[i * D + e];
        }
        want += dot / sqrt(nu * nm);
    }
    want = 1.0 - want / B;
    ck_assert_msg(fabs(mt_value(l) - want) < 1e-6, "ui alignment %g vs %g", (double)mt_value(l),
                  want);
    mmrec_tape_destroy(tape);
}
END_TEST

/* M M^T == S exactly: the loss is 0 and so is the gradient (no NaN). */
START_TEST(test_anti_collapse_at_its_minimum_has_zero_gradient) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {2, 2};
    float m[4] = {1, 0, 0, 1}, c[4] = {2, 0, 0, 3};
    mmrec_tensor *tm = mt_tape_tensor(tape, 2, s, m, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tc = mt_tape_tensor(tape, 2, s, c, 0), *l;
    MT_OK(mmrec_loss_anti_collapse(tape, tm, tc, &l));
    ck_assert(mt_value(l) == 0.0f);
    MT_OK(mmrec_tape_backward(tape, l));
    const float *g;
    MT_OK(mmrec_tensor_grad(tm, &g));
    for (int i = 0; g && i < 4; i++) ck_assert(g[i] == 0.0f);
    /* a zero content row is similar to nothing, itself included */
    float z[4] = {0, 0, 1, 1};
    mmrec_tensor *tz = mt_tape_tensor(tape, 2, s, z, 0);
    float m2[4] = {0, 0, 0.6f, 0.8f};
    mmrec_tensor *tm2 = mt_tape_tensor(tape, 2, s, m2, 0);
    MT_OK(mmrec_loss_anti_collapse(tape, tm2, tz, &l));
    ck_assert(isfinite(mt_value(l)) && fabsf(mt_value(l)) < 1e-6f);
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_losses_gradcheck) {
    enum { B = 5, D = 4, C = 6 };
    float a[B * D], b[B * D], c[B * C];
    mt_fill_uniform(a, B * D, -1, 1, 7);
    mt_fill_uniform(b, B * D, -1, 1, 8);
    mt_fill_uniform(c, B * C, -1, 1, 9);
    mt_input two[2] = {{2, {B, D}, a, false}, {2, {B, D}, b, false}};
    mt_input anti[2] = {{2, {B, D}, a, false}, {2, {B, C}, c, true}};
    mt_loss_case cases[4] = {{0, 0.2f}, {0, 1.5f}, {1, 0}, {2, 0}};
    for (int k = 0; k < 4; k++)
        mt_gradcheck("alignrec loss", mt_loss_fwd, &cases[k], cases[k].kind == 1 ? anti : two, 2,
                     NULL, NULL);
}
END_TEST

/* tests/golden/make_golden.py::write_alignrec: the reference's own
 * InfoNCE, sim_loss and ui cosine terms. */
START_TEST(test_losses_match_pytorch) {
    mt_golden gold;
    mt_golden_load(&gold, "alignrec.bin");
    static const char *const names[4] = {"infonce", "infonce_t05", "anti_collapse",
                                         "ui_alignment"};
    mt_loss_case cases[4] = {{0, 0.2f}, {0, 0.5f}, {1, 0}, {2, 0}};
    for (int k = 0; k < 4; k++) {
        char key[64];
        const mt_array *in[2], *d[2], *y;
        for (int i = 0; i < 2; i++) {
            snprintf(key, sizeof key, "%s.in%d", names[k], i);
            in[i] = mt_golden_get(&gold, key);
            snprintf(key, sizeof key, "%s.d%d", names[k], i);
            d[i] = k == 2 && i == 1 ? NULL : mt_golden_get(&gold, key);
        }
        snprintf(key, sizeof key, "%s.y", names[k]);
        y = mt_golden_get(&gold, key);
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        mmrec_tensor *t[2], *l;
        for (int i = 0; i < 2; i++)
            t[i] = mt_tape_tensor(tape, in[i]->ndim, in[i]->shape, in[i]->data,
                                  d[i] ? MMREC_TENSOR_REQUIRES_GRAD : 0);
        MT_OK(mt_loss_fwd(&cases[k], tape, t, &l));
        float v = mt_value(l);
        mt_assert_close(names[k], &v, y->data, 1, 0, 0);
        MT_OK(mmrec_tape_backward(tape, l));
        for (int i = 0; i < 2; i++) {
            if (!d[i]) continue;
            const float *g;
            MT_OK(mmrec_tensor_grad(t[i], &g));
            mt_assert_close(names[k], g, d[i]->data, d[i]->numel, 0, 0);
        }
        mmrec_tape_destroy(tape);
    }
    mt_golden_free(&gold);
}
END_TEST

START_TEST(test_losses_bad_input) {
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    int64_t s[2] = {4, 3}, s2[2] = {4, 2}, s3[2] = {3, 3}, s1[1] = {12};
    mmrec_tensor *a, *b, *c, *v, *f, *l = NULL;
    MT_OK(mmrec_tape_tensor(tape, 2, s, MMREC_TENSOR_REQUIRES_GRAD, &a));
    MT_OK(mmrec_tape_tensor(tape, 2, s2, 0, &b));
    MT_OK(mmrec_tape_tensor(tape, 2, s3, 0, &c));
    MT_OK(mmrec_tape_tensor(tape, 1, s1, 0, &v));
    MT_OK(mmrec_tape_tensor(other, 2, s, 0, &f));
    MT_EXPECT(mmrec_loss_infonce(NULL, a, a, 0.2f, &l), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_loss_infonce(tape, NULL, a, 0.2f, &l), MMREC_EINVAL, "'a'");
    MT_EXPECT(mmrec_loss_infonce(tape, a, NULL, 0.2f, &l), MMREC_EINVAL, "'b'");
    MT_EXPECT(mmrec_loss_infonce(tape, a, a, 0.2f, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_loss_infonce(tape, a, f, 0.2f, &l), MMREC_EINVAL, "b");
    MT_EXPECT(mmrec_loss_infonce(tape, a, b, 0.2f, &l), MMREC_ESHAPE, "b is [4,2]");
    MT_EXPECT(mmrec_loss_infonce(tape, a, c, 0.2f, &l), MMREC_ESHAPE, "b is [3,3]");
    MT_EXPECT(mmrec_loss_infonce(tape, v, v, 0.2f, &l), MMREC_ESHAPE, "a is [12]");
    MT_EXPECT(mmrec_loss_infonce(tape, a, a, 0.0f, &l), MMREC_EINVAL, "temperature is 0");
    MT_EXPECT(mmrec_loss_infonce(tape, a, a, -0.2f, &l), MMREC_EINVAL, "temperature is -0.2");
    MT_EXPECT(mmrec_loss_infonce(tape, a, a, NAN, &l), MMREC_EINVAL, "temperature");
    MT_EXPECT(mmrec_loss_infonce(tape, a, a, INFINITY, &l), MMREC_EINVAL, "temperature");
    MT_EXPECT(mmrec_loss_infonce(tape, a, a, 1e-45f, &l), MMREC_EINVAL, "temperature");
    MT_EXPECT(mmrec_loss_anti_collapse(NULL, a, b, &l), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_loss_anti_collapse(tape, NULL, b, &l), MMREC_EINVAL, "'embeddings'");
    MT_EXPECT(mmrec_loss_anti_collapse(tape, a, NULL, &l), MMREC_EINVAL, "'content'");
    MT_EXPECT(mmrec_loss_anti_collapse(tape, a, b, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_loss_anti_collapse(tape, a, c, &l), MMREC_ESHAPE, "content is [3,3]");
    MT_EXPECT(mmrec_loss_anti_collapse(tape, v, b, &l), MMREC_ESHAPE, "embeddings is [12]");
    MT_EXPECT(mmrec_loss_anti_collapse(tape, a, f, &l), MMREC_EINVAL, "content");
    MT_EXPECT(mmrec_loss_ui_alignment(NULL, a, a, &l), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_loss_ui_alignment(tape, NULL, a, &l), MMREC_EINVAL, "'users'");
    MT_EXPECT(mmrec_loss_ui_alignment(tape, a, NULL, &l), MMREC_EINVAL, "'items'");
    MT_EXPECT(mmrec_loss_ui_alignment(tape, a, a, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_loss_ui_alignment(tape, a, b, &l), MMREC_ESHAPE, "items is [4,2]");
    MT_EXPECT(mmrec_loss_ui_alignment(tape, v, v, &l), MMREC_ESHAPE, "users is [12]");
    ck_assert_ptr_null(l); /* failed calls wrote nothing */
    /* a stale tensor */
    mmrec_tape_reset(tape);
    MT_EXPECT(mmrec_loss_infonce(tape, a, a, 0.2f, &l), MMREC_ESTALE, NULL);
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
}
END_TEST

/* ---- users from items: R_hat ---- */

enum { MT_U = 5, MT_I = 8, MT_PAIRS = 12 };
static const int64_t mt_users[MT_PAIRS] = {0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 4, 1};
static const int64_t mt_items[MT_PAIRS] = {0, 2, 5, 1, 2, 3, 6, 7, 4, 0, 7, 5};

static mmrec_graph *mt_ui_graph(void) {
    mmrec_graph *g;
    MT_OK(mmrec_graph_create_bipartite(mt_users, mt_items, MT_PAIRS, MT_U, MT_I, &g));
    return g;
}

static mmrec_status mt_agg_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    return mmrec_graph_aggregate_users(tape, ctx, in[0], out);
}

START_TEST(test_aggregate_users_is_the_user_item_block) {
    mmrec_graph *g = mt_ui_graph();
    enum { D = 3 };
    float x[MT_I * D];
    mt_fill_uniform(x, MT_I * D, -1, 1, 11);
    double deg_u[MT_U] = {0}, deg_i[MT_I] = {0};
    for (int k = 0; k < MT_PAIRS; k++) deg_u[mt_users[k]]++, deg_i[mt_items[k]]++;
    double want[MT_U * D] = {0};
    for (int k = 0; k < MT_PAIRS; k++)
        for (int e = 0; e < D; e++)
            want[mt_users[k] * D + e] +=
                x[mt_items[k] * D + e] / sqrt(deg_u[mt_users[k]] * deg_i[mt_items[k]]);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {MT_I, D};
    mmrec_tensor *tx = mt_tape_tensor(tape, 2, s, x, 0), *y;
    MT_OK(mmrec_graph_aggregate_users(tape, g, tx, &y));
    float got[MT_U * D], alias[MT_U * D];
    MT_OK(mmrec_tensor_copy_to(y, got, MT_U * D));
    /* the 0.1 name is the same operation */
    MT_OK(mmrec_alignrec_aggregate_users(tape, g, tx, &y));
    MT_OK(mmrec_tensor_copy_to(y, alias, MT_U * D));
    ck_assert(memcmp(got, alias, sizeof got) == 0);
    MT_EXPECT(mmrec_alignrec_aggregate_users(tape, g, NULL, &y), MMREC_EINVAL,
              "mmrec_alignrec_aggregate_users: argument 'items' is NULL");
    for (int i = 0; i < MT_U * D; i++)
        ck_assert_msg(fabs(got[i] - want[i]) < 1e-6, "entry %d: %g vs %g", i, (double)got[i],
                      want[i]);
    mt_input in[1] = {{2, {MT_I, D}, x, false}};
    mt_gradcheck("aggregate users", mt_agg_fwd, g, in, 1, NULL, NULL);

    /* a user without items gets zeros */
    mmrec_graph *g2;
    MT_OK(mmrec_graph_create_bipartite(mt_users, mt_items, MT_PAIRS, MT_U + 1, MT_I, &g2));
    MT_OK(mmrec_graph_aggregate_users(tape, g2, tx, &y));
    const float *yd;
    MT_OK(mmrec_tensor_data_const(y, &yd));
    for (int e = 0; e < D; e++) ck_assert(yd[MT_U * D + e] == 0.0f);

    int64_t bad[2] = {MT_I + 1, D};
    mmrec_tensor *tb;
    MT_OK(mmrec_tape_tensor(tape, 2, bad, 0, &tb));
    MT_EXPECT(mmrec_graph_aggregate_users(tape, g, tb, &y), MMREC_ESHAPE,
              "items is [9,3], expected [8, d]");
    MT_EXPECT(mmrec_graph_aggregate_users(NULL, g, tx, &y), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_graph_aggregate_users(tape, NULL, tx, &y), MMREC_EINVAL, "graph");
    MT_EXPECT(mmrec_graph_aggregate_users(tape, g, NULL, &y), MMREC_EINVAL, "items");
    MT_EXPECT(mmrec_graph_aggregate_users(tape, g, tx, NULL), MMREC_EINVAL, "out");
    mmrec_tape_destroy(tape);
    mmrec_graph_destroy(g2);
    mmrec_graph_destroy(g);
}
END_TEST

/* ---- the model block ---- */

enum { MT_C = 6, MT_D = 4 };

static void mt_features(float *f, uint64_t seed) {
    mt_fill_uniform(f, MT_I * MT_C, 0.05f, 1.0f, seed);
}

/* The sizes of the test block and its features, set in `c`. */
static void mt_block_sizes(mmrec_alignrec_config *c, const float *features) {
    c->num_users = MT_U;
    c->num_items = MT_I;
    c->content_dim = MT_C;
    c->features = features;
}

static mmrec_module *mt_block(mmrec_model *model, const char *name, const float *features,
                              int id_layers, int mm_layers, int layernorm) {
    mmrec_alignrec_config c;
    MT_OK(mmrec_alignrec_config_init(&c));
    mt_block_sizes(&c, features);
    c.dim = MT_D;
    c.id_layers = id_layers;
    c.mm_layers = mm_layers;
    c.layernorm = layernorm;
    mmrec_module *m;
    MT_OK(mmrec_alignrec_create(model, name, &c, &m));
    return m;
}

/* The item kNN graph of the features (k neighbours, the item included). */
static mmrec_graph *mt_knn(const float *features, int k) {
    mmrec_knn_config kc;
    MT_OK(mmrec_knn_config_init(&kc));
    kc.k = k;
    mmrec_graph *g;
    MT_OK(mmrec_graph_create_knn(features, MT_I, MT_C, &kc, &g));
    return g;
}

/* A block "ar" (2 ID layers, 1 kNN hop) on features drawn with `seed`, its
 * user-item graph and the features' kNN graph (k neighbours). */
typedef struct mt_fixture {
    float f[MT_I * MT_C];
    mmrec_graph *ui, *items;
    mmrec_model *model;
    mmrec_module *ar;
} mt_fixture;

static void mt_fixture_open(mt_fixture *x, uint64_t seed, int k, int layernorm) {
    mt_features(x->f, seed);
    x->ui = mt_ui_graph();
    x->items = mt_knn(x->f, k);
    MT_OK(mmrec_model_create(&x->model));
    x->ar = mt_block(x->model, "ar", x->f, 2, 1, layernorm);
}

static void mt_fixture_close(mt_fixture *x) {
    mmrec_model_destroy(x->model);
    mmrec_graph_destroy(x->items);
    mmrec_graph_destroy(x->ui);
}

START_TEST(test_block_parameters_and_init) {
    float f[MT_I * MT_C];
    mt_features(f, 1);
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mt_block(model, "ar", f, 2, 1, 1);
    static const char *const names[] = {
        "ar.user_embedding.weight", "ar.item_embedding.weight", "ar.content.features",
        "ar.content.norm.weight",   "ar.content.norm.bias",     "ar.content.proj.weight",
        "ar.content.proj.bias",     "ar.content.gate.weight",   "ar.content.gate.bias"};
    static const int64_t rows[] = {MT_U, MT_I, MT_I, MT_C, MT_C, MT_D, MT_D, MT_D, MT_D};
    static const int64_t cols[] = {MT_D, MT_D, MT_C, 0, 0, MT_C, 0, MT_D, 0};
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 9);
    for (size_t p = 0; p < n; p++) {
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
        size_t numel;
        const float *d;
        MT_OK(mmrec_tensor_numel(t, &numel));
        MT_OK(mmrec_tensor_data_const(t, &d));
        /* Xavier uniform for the tables, torch.nn.Linear's bound for the layers */
        double bound = p == 0   ? sqrt(6.0 / (MT_U + MT_D))
                       : p == 1 ? sqrt(6.0 / (MT_I + MT_D))
                       : p == 5 || p == 6 ? 1.0 / sqrt((double)MT_C)
                                          : 1.0 / sqrt((double)MT_D);
        for (size_t i = 0; i < numel; i++) {
            if (p == 2) ck_assert(d[i] == f[i]);
            else if (p == 3) ck_assert(d[i] == 1.0f);
            else if (p == 4) ck_assert(d[i] == 0.0f);
            else ck_assert_msg(fabs(d[i]) <= bound, "%s[%zu] = %g", name, i, (double)d[i]);
        }
    }
    /* the features were copied: the caller's buffer may go */
    f[0] = 99.0f;
    mmrec_tensor *t;
    const float *d;
    MT_OK(mmrec_model_param(model, "ar.content.features", &t));
    MT_OK(mmrec_tensor_data_const(t, &d));
    ck_assert(d[0] != 99.0f);
    /* no layernorm: no norm parameters */
    mt_block(model, "plain", f, 2, 1, 0);
    MT_EXPECT(mmrec_model_param(model, "plain.content.norm.weight", &t), MMREC_ENOTFOUND, NULL);
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_block_bad_config) {
    float f[MT_I * MT_C];
    mt_features(f, 1);
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_alignrec_config c;
    MT_OK(mmrec_alignrec_config_init(&c));
    ck_assert(c.dim == 64 && c.id_layers == 2 && c.mm_layers == 1 && c.layernorm == 0);
    mt_block_sizes(&c, f);
    mmrec_alignrec_config bad = c;
    MT_EXPECT(mmrec_alignrec_create(NULL, "ar", &c, NULL), MMREC_EINVAL, "model");
    MT_EXPECT(mmrec_alignrec_create(model, NULL, &c, NULL), MMREC_EINVAL, "name");
    MT_EXPECT(mmrec_alignrec_create(model, "ar", NULL, NULL), MMREC_EINVAL, "cfg");
    bad.num_users = 0;
    MT_EXPECT(mmrec_alignrec_create(model, "ar", &bad, NULL), MMREC_EINVAL, "cfg->num_users is 0");
    bad = c;
    bad.num_items = -1;
    MT_EXPECT(mmrec_alignrec_create(model, "ar", &bad, NULL), MMREC_EINVAL, "num_items -1");
    bad.num_items = INT64_MAX; /* the sum with num_users overflows: refused, not added */
    MT_EXPECT(mmrec_alignrec_create(model, "ar", &bad, NULL), MMREC_EINVAL,
              "cfg->num_items 9223372036854775807");
    bad = c;
    bad.content_dim = 0;
    MT_EXPECT(mmrec_alignrec_create(model, "ar", &bad, NULL), MMREC_EINVAL,
              "cfg->content_dim is 0");
    bad = c;
    bad.dim = 0;
    MT_EXPECT(mmrec_alignrec_create(model, "ar", &bad, NULL), MMREC_EINVAL, "cfg->dim is 0");
    bad = c;
    bad.id_layers = 65;
    MT_EXPECT(mmrec_alignrec_create(model, "ar", &bad, NULL), MMREC_EINVAL, "cfg->id_layers is 65");
    bad = c;
    bad.mm_layers = -1;
    MT_EXPECT(mmrec_alignrec_create(model, "ar", &bad, NULL), MMREC_EINVAL, "cfg->mm_layers is -1");
    bad = c;
    bad.features = NULL;
    MT_EXPECT(mmrec_alignrec_create(model, "ar", &bad, NULL), MMREC_EINVAL, "cfg->features");
    f[13] = NAN;
    MT_EXPECT(mmrec_alignrec_create(model, "ar", &c, NULL), MMREC_EINVAL,
              "cfg->features[13] (item 2)");
    f[13] = 0.5f;
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 0); /* failed creations left nothing behind */
    /* config sizes: smaller than the first release, larger with a zero or a
     * set tail */
    MT_EXPECT(mmrec_alignrec_config_init_sized(&c, sizeof c - 1), MMREC_EINVAL, "smaller");
    struct {
        mmrec_alignrec_config c;
        int64_t extra;
    } big;
    MT_OK(mmrec_alignrec_config_init_sized(&big.c, sizeof big));
    ck_assert_uint_eq(big.c.struct_size, sizeof big);
    ck_assert(big.extra == 0 && big.c.dim == 64);
    mt_block_sizes(&big.c, f);
    big.c.dim = MT_D;
    MT_OK(mmrec_alignrec_create(model, "big", &big.c, NULL));
    big.extra = 1;
    MT_EXPECT(mmrec_alignrec_create(model, "big2", &big.c, NULL), MMREC_EINVAL, "newer libmmrec");
    big.extra = 0;
    MT_EXPECT(mmrec_alignrec_create(model, "big", &big.c, NULL), MMREC_ESTATE, "already exists");
    bad = c;
    bad.struct_size = 8;
    MT_EXPECT(mmrec_alignrec_create(model, "ar", &bad, NULL), MMREC_EINVAL, "struct_size is 8");
    mmrec_model_destroy(model);
}
END_TEST

/* All six views joined into one tensor, for the gradient check. */
typedef struct mt_fwd_ctx {
    mmrec_module *m;
    const mmrec_graph *ui, *items;
} mt_fwd_ctx;

static mmrec_status mt_block_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                 mmrec_tensor **out) {
    (void)in;
    mt_fwd_ctx *c = ctx;
    mmrec_alignrec_views v;
    mmrec_status s = mmrec_alignrec_views_init(&v);
    if (s == MMREC_OK) s = mmrec_alignrec_forward(c->m, tape, c->ui, c->items, &v);
    if (s != MMREC_OK) return s;
    mmrec_tensor *all[6] = {v.users, v.items, v.id_users, v.id_items, v.mm_users, v.mm_items};
    return mmrec_concat(tape, all, 6, 0, out);
}

START_TEST(test_block_gradcheck) {
    float f[MT_I * MT_C];
    mt_features(f, 2);
    mmrec_graph *ui = mt_ui_graph(), *items = mt_knn(f, 3);
    for (int variant = 0; variant < 3; variant++) {
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        int mm = variant == 0 ? 1 : variant == 1 ? 2 : 0;
        mt_fwd_ctx c = {mt_block(model, "ar", f, variant == 2 ? 0 : 2, mm, variant != 0), ui,
                        mm ? items : NULL};
        mt_perturb_params(model, 3 + (uint64_t)variant);
        float dummy[1] = {0};
        mt_input in[1] = {{1, {1}, dummy, true}};
        mt_gradcheck_opts opts = {.h = 1e-2f, .tol = 2e-2f, .floor = 5e-3f};
        mt_gradcheck("alignrec block", mt_block_fwd, &c, in, 1, model, &opts);
        mmrec_model_destroy(model);
    }
    mmrec_graph_destroy(items);
    mmrec_graph_destroy(ui);
}
END_TEST

/* The reference's training loss (ALIGNREC.calculate_loss with
 * ui_cosine_loss on) composed from the block's views. */
typedef struct mt_batch {
    const int64_t *u, *i, *j;
    size_t n;
    float reg_weight, cl_weight, sim_weight, ui_weight;
} mt_batch;

static mmrec_status mt_weighted_add(mmrec_tape *t, mmrec_tensor *acc, mmrec_tensor *x, float w,
                                    mmrec_tensor **out) {
    mmrec_tensor *s;
    mmrec_status st = mmrec_scale(t, x, w, &s);
    return st != MMREC_OK ? st : mmrec_add(t, acc, s, out);
}

#define MT_TRY(call)                                                                       \
    do {                                                                                   \
        mmrec_status mt__t = (call);                                                       \
        if (mt__t != MMREC_OK) return mt__t;                                               \
    } while (0)

static mmrec_status mt_sq_sum(mmrec_tape *t, mmrec_tensor *x, mmrec_tensor **out) {
    mmrec_tensor *sq;
    MT_TRY(mmrec_mul(t, x, x, &sq));
    return mmrec_sum(t, sq, MMREC_AXIS_ALL, out);
}

static mmrec_status mt_reference_loss(mmrec_tape *t, const mmrec_alignrec_views *v,
                                      mmrec_tensor *features, const mt_batch *b,
                                      mmrec_tensor **out) {
    mmrec_tensor *eu, *ei, *ej, *pos, *neg, *x, *loss, *r1, *r2, *r3, *reg;
    MT_TRY(mmrec_gather_rows(t, v->users, b->u, b->n, &eu));
    MT_TRY(mmrec_gather_rows(t, v->items, b->i, b->n, &ei));
    MT_TRY(mmrec_gather_rows(t, v->items, b->j, b->n, &ej));
    MT_TRY(mmrec_mul(t, eu, ei, &x));
    MT_TRY(mmrec_sum(t, x, 1, &pos));
    MT_TRY(mmrec_mul(t, eu, ej, &x));
    MT_TRY(mmrec_sum(t, x, 1, &neg));
    MT_TRY(mmrec_loss_bpr(t, pos, neg, &loss));
    MT_TRY(mt_sq_sum(t, eu, &r1));
    MT_TRY(mt_sq_sum(t, ei, &r2));
    MT_TRY(mt_sq_sum(t, ej, &r3));
    MT_TRY(mmrec_add(t, r1, r2, &reg));
    MT_TRY(mmrec_add(t, reg, r3, &reg));
    MT_TRY(mt_weighted_add(t, loss, reg, 0.5f * b->reg_weight / (float)b->n, &loss));
    mmrec_tensor *mi, *ii, *mu, *iu, *cl1, *cl2, *ci, *sim, *ui;
    MT_TRY(mmrec_gather_rows(t, v->mm_items, b->i, b->n, &mi));
    MT_TRY(mmrec_gather_rows(t, v->id_items, b->i, b->n, &ii));
    MT_TRY(mmrec_gather_rows(t, v->mm_users, b->u, b->n, &mu));
    MT_TRY(mmrec_gather_rows(t, v->id_users, b->u, b->n, &iu));
    MT_TRY(mmrec_loss_infonce(t, mi, ii, 0.2f, &cl1));
    MT_TRY(mmrec_loss_infonce(t, mu, iu, 0.2f, &cl2));
    MT_TRY(mt_weighted_add(t, loss, cl1, b->cl_weight, &loss));
    MT_TRY(mt_weighted_add(t, loss, cl2, b->cl_weight, &loss));
    MT_TRY(mmrec_loss_ui_alignment(t, eu, ei, &ui));
    MT_TRY(mt_weighted_add(t, loss, ui, b->ui_weight, &loss));
    MT_TRY(mmrec_gather_rows(t, features, b->i, b->n, &ci));
    MT_TRY(mmrec_loss_anti_collapse(t, mi, ci, &sim));
    return mt_weighted_add(t, loss, sim, b->sim_weight, out);
}

/* The block's views on `tape` and the reference loss of a fixed batch of
 * three triples. */
static mmrec_status mt_batch_loss(mmrec_module *ar, mmrec_model *model, mmrec_tape *tape,
                                  const mmrec_graph *ui, const mmrec_graph *items,
                                  mmrec_tensor **out) {
    static const int64_t bu[3] = {0, 2, 4}, bi[3] = {2, 6, 7}, bj[3] = {4, 0, 1};
    mt_batch b = {bu, bi, bj, 3, 1e-4f, 0.1f, 0.3f, 0.1f};
    mmrec_alignrec_views v;
    mmrec_tensor *features;
    MT_TRY(mmrec_alignrec_views_init(&v));
    MT_TRY(mmrec_alignrec_forward(ar, tape, ui, items, &v));
    MT_TRY(mmrec_model_param(model, "ar.content.features", &features));
    return mt_reference_loss(tape, &v, features, &b, out);
}

/* tests/golden/make_golden.py::write_alignrec: views and the whole loss's
 * parameter gradients against a transcription of the reference. */
static void mt_block_golden(const char *kase, bool knn) {
    mt_golden gold;
    mt_golden_load(&gold, "alignrec.bin");
    char key[64];
#define MT_G(what) (snprintf(key, sizeof key, "%s.%s", kase, what), mt_golden_get(&gold, key))
    const mt_array *cfg = MT_G("cfg"), *wts = MT_G("weights"), *inter = MT_G("inter");
    const mt_array *batch = MT_G("batch");
    int64_t U = (int64_t)cfg->data[0], I = (int64_t)cfg->data[1];
    ck_assert(U == MT_U && I == MT_I && cfg->data[2] == MT_C && cfg->data[3] == MT_D);
    size_t n_pairs = (size_t)inter->shape[1], B = (size_t)batch->shape[1];
    int64_t users[64], items[64], bu[16], bi[16], bj[16];
    ck_assert(n_pairs <= 64 && B <= 16);
    for (size_t k = 0; k < n_pairs; k++) {
        users[k] = (int64_t)inter->data[k];
        items[k] = (int64_t)inter->data[n_pairs + k];
    }
    for (size_t k = 0; k < B; k++) {
        bu[k] = (int64_t)batch->data[k];
        bi[k] = (int64_t)batch->data[B + k];
        bj[k] = (int64_t)batch->data[2 * B + k];
    }
    mmrec_graph *ui, *ig = NULL;
    MT_OK(mmrec_graph_create_bipartite(users, items, n_pairs, U, I, &ui));
    const mt_array *feat = MT_G("param.content.features");
    if (knn) {
        /* the kNN graph of the features is the reference's mm_adj */
        mmrec_knn_config kc;
        MT_OK(mmrec_knn_config_init(&kc));
        kc.k = (int)cfg->data[7];
        MT_OK(mmrec_graph_create_knn(feat->data, I, MT_C, &kc, &ig));
        const mt_array *adj = MT_G("mm_adj");
        float eye[MT_I * MT_I] = {0}, got[MT_I * MT_I];
        for (int i = 0; i < MT_I; i++) eye[i * MT_I + i] = 1.0f;
        mmrec_tape *t;
        MT_OK(mmrec_tape_create(&t));
        int64_t s[2] = {MT_I, MT_I};
        mmrec_tensor *x = mt_tape_tensor(t, 2, s, eye, 0), *y;
        MT_OK(mmrec_graph_propagate(t, ig, x, &y));
        MT_OK(mmrec_tensor_copy_to(y, got, MT_I * MT_I));
        /* y = A I: column j of y is A's column j, so y is A itself */
        for (int i = 0; i < MT_I * MT_I; i++)
            ck_assert_msg(adj->data[i] == 0.0f ? got[i] == 0.0f
                                               : fabsf(got[i] - adj->data[i]) <=
                                                     1e-5f * fabsf(adj->data[i]) + 1e-6f,
                          "%s[%d, %d]: got %g, expected %g", key, i / MT_I, i % MT_I,
                          (double)got[i], (double)adj->data[i]);
        mmrec_tape_destroy(t);
    }
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *ar = mt_block(model, "ar", feat->data, (int)cfg->data[4], (int)cfg->data[5],
                                (int)cfg->data[6]);
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    for (size_t p = 0; p < n; p++) {
        const char *name;
        mmrec_tensor *t;
        MT_OK(mmrec_model_param_at(model, p, &name, &t));
        snprintf(key, sizeof key, "%s.param.%s", kase, name + 3);
        const mt_array *want = mt_golden_get(&gold, key);
        MT_OK(mmrec_tensor_copy_from(t, want->data, want->numel));
    }
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_alignrec_views v;
    MT_OK(mmrec_alignrec_views_init(&v));
    MT_OK(mmrec_alignrec_forward(ar, tape, ui, ig, &v));
    mmrec_tensor *views[6] = {v.users, v.items, v.id_users, v.id_items, v.mm_users, v.mm_items};
    static const char *const tags[6] = {"users",    "items",    "id_users",
                                        "id_items", "mm_users", "mm_items"};
    for (int k = 0; k < 6; k++) {
        const mt_array *want = MT_G(tags[k]);
        float got[MT_I * MT_D];
        ck_assert_uint_le(want->numel, MT_I * MT_D);
        MT_OK(mmrec_tensor_copy_to(views[k], got, want->numel));
        mt_assert_close(key, got, want->data, want->numel, 1e-5f, 1e-6f);
    }
    mmrec_tensor *features, *loss;
    MT_OK(mmrec_model_param(model, "ar.content.features", &features));
    mt_batch b = {bu, bi, bj, B, wts->data[0], wts->data[1], wts->data[2], wts->data[3]};
    MT_OK(mt_reference_loss(tape, &v, features, &b, &loss));
    float lv = mt_value(loss);
    const mt_array *want_loss = MT_G("loss");
    mt_assert_close(key, &lv, want_loss->data, 1, 1e-5f, 1e-6f);
    MT_OK(mmrec_model_zero_grad(model));
    MT_OK(mmrec_tape_backward(tape, loss));
    for (size_t p = 0; p < n; p++) {
        const char *name;
        mmrec_tensor *t;
        const float *g;
        MT_OK(mmrec_model_param_at(model, p, &name, &t));
        MT_OK(mmrec_tensor_grad(t, &g));
        snprintf(key, sizeof key, "%s.grad.%s", kase, name + 3);
        const mt_array *want = mt_golden_get(&gold, key);
        mt_assert_close(key, g, want->data, want->numel, 1e-5f, 1e-6f);
    }
#undef MT_G
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
    mmrec_graph_destroy(ig);
    mmrec_graph_destroy(ui);
    mt_golden_free(&gold);
}

START_TEST(test_block_matches_pytorch) {
    mt_block_golden("ar_plain", true); /* the released config: 2 ID layers, 1 kNN hop */
    mt_block_golden("ar_ln", true);    /* LayerNorm, 1 ID layer, 2 kNN hops */
    mt_block_golden("ar_nomm", false); /* no kNN hop: the item graph is not read */
}
END_TEST

/* Per-group learning rates: the content path in its own group. */
START_TEST(test_content_group_learns_at_its_own_rate) {
    mt_fixture fx;
    mt_fixture_open(&fx, 5, 3, 1);
    mmrec_model *model = fx.model;
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_SGD;
    oc.lr = 0.5f;
    mmrec_optimizer *opt;
    MT_OK(mmrec_optimizer_create(model, &oc, &opt));
    int group;
    MT_OK(mmrec_optimizer_add_group(opt, "ar.content.", 0.01f, 0.0f, &group));
    ck_assert_int_eq(group, 1);
    size_t n, total, trainable;
    MT_OK(mmrec_model_num_params(model, &n));
    MT_OK(mmrec_model_param_count(model, &trainable, &total));
    ck_assert_uint_eq(trainable, total);
    float *before = malloc(total * sizeof *before), *grads = malloc(total * sizeof *grads);
    float *after = malloc(total * sizeof *after);
    MT_OK(mmrec_model_export_params(model, before, total));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *loss;
    MT_OK(mt_batch_loss(fx.ar, model, tape, fx.ui, fx.items, &loss));
    MT_OK(mmrec_tape_backward(tape, loss));
    MT_OK(mmrec_model_export_grads(model, grads, total));
    MT_OK(mmrec_optimizer_step(opt));
    MT_OK(mmrec_model_export_params(model, after, total));
    size_t off = 0;
    for (size_t p = 0; p < n; p++) {
        const char *name;
        mmrec_tensor *t;
        size_t numel;
        MT_OK(mmrec_model_param_at(model, p, &name, &t));
        MT_OK(mmrec_tensor_numel(t, &numel));
        float lr = strncmp(name, "ar.content.", 11) == 0 ? 0.01f : 0.5f;
        bool moved = false;
        for (size_t i = off; i < off + numel; i++) {
            ck_assert_msg(after[i] == before[i] - lr * grads[i], "%s[%zu]", name, i - off);
            moved = moved || grads[i] != 0.0f;
        }
        ck_assert_msg(moved, "%s got no gradient", name);
        off += numel;
    }
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mt_fixture_close(&fx);
    free(before);
    free(grads);
    free(after);
}
END_TEST

START_TEST(test_block_forward_bad_input_and_modes) {
    mt_fixture fx;
    mt_fixture_open(&fx, 6, 4, 0);
    mmrec_graph *ui = fx.ui, *items = fx.items, *wrong;
    MT_OK(mmrec_graph_create_bipartite(mt_users, mt_items, MT_PAIRS, MT_U, MT_I + 1, &wrong));
    mmrec_model *model = fx.model;
    mmrec_module *ar = fx.ar, *lin;
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = lc.out_dim = 2;
    MT_OK(mmrec_linear_create(model, "lin", &lc, &lin));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_alignrec_views v, untouched;
    MT_OK(mmrec_alignrec_views_init(&v));
    untouched = v;
    MT_EXPECT(mmrec_alignrec_forward(NULL, tape, ui, items, &v), MMREC_EINVAL, "alignrec");
    MT_EXPECT(mmrec_alignrec_forward(lin, tape, ui, items, &v), MMREC_EINVAL, "alignrec");
    MT_EXPECT(mmrec_alignrec_forward(ar, NULL, ui, items, &v), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_alignrec_forward(ar, tape, NULL, items, &v), MMREC_EINVAL, "graph");
    MT_EXPECT(mmrec_alignrec_forward(ar, tape, ui, NULL, &v), MMREC_EINVAL, "item_graph");
    MT_EXPECT(mmrec_alignrec_forward(ar, tape, ui, items, NULL), MMREC_EINVAL, "views");
    MT_EXPECT(mmrec_alignrec_forward(ar, tape, wrong, items, &v), MMREC_ESHAPE,
              "ui_graph has 5 users and 9 items, expected 5 and 8");
    MT_EXPECT(mmrec_alignrec_forward(ar, tape, ui, ui, &v), MMREC_ESHAPE,
              "item_graph has 13 nodes, expected 8");
    MT_EXPECT(mmrec_alignrec_forward(ar, tape, items, items, &v), MMREC_ESHAPE,
              "ui_graph has 0 users and 8 items");
    mmrec_tensor *x8;
    int64_t s8[2] = {MT_I, 2};
    MT_OK(mmrec_tape_tensor(tape, 2, s8, 0, &x8));
    MT_EXPECT(mmrec_alignrec_aggregate_users(tape, items, x8, &v.users), MMREC_EINVAL,
              "graph has 0 users and 8 items: it must be a bipartite");
    mmrec_alignrec_views small = v;
    small.struct_size = sizeof(size_t);
    MT_EXPECT(mmrec_alignrec_forward(ar, tape, ui, items, &small), MMREC_EINVAL,
              "views->struct_size");
    MT_EXPECT(mmrec_alignrec_views_init_sized(NULL, sizeof v), MMREC_EINVAL, "views");
    MT_EXPECT(mmrec_alignrec_views_init_sized(&v, 4), MMREC_EINVAL, "smaller");
    ck_assert(memcmp(&v, &untouched, sizeof v) == 0); /* failures wrote nothing */

    /* inference and training tapes give the same views; shapes */
    MT_OK(mmrec_alignrec_forward(ar, tape, ui, items, &v));
    mmrec_tape *inf;
    MT_OK(mmrec_tape_create(&inf));
    MT_OK(mmrec_tape_set_mode(inf, MMREC_TAPE_INFERENCE));
    mmrec_alignrec_views w;
    MT_OK(mmrec_alignrec_views_init(&w));
    MT_OK(mmrec_alignrec_forward(ar, inf, ui, items, &w));
    mmrec_tensor *a[6] = {v.users, v.items, v.id_users, v.id_items, v.mm_users, v.mm_items};
    mmrec_tensor *b[6] = {w.users, w.items, w.id_users, w.id_items, w.mm_users, w.mm_items};
    for (int k = 0; k < 6; k++) {
        int nd;
        int64_t shape[MMREC_MAX_DIMS];
        MT_OK(mmrec_tensor_shape(a[k], &nd, shape));
        ck_assert(nd == 2 && shape[0] == (k % 2 ? MT_I : MT_U) && shape[1] == MT_D);
        float x[MT_I * MT_D], y[MT_I * MT_D];
        size_t numel = (size_t)(shape[0] * shape[1]);
        MT_OK(mmrec_tensor_copy_to(a[k], x, numel));
        MT_OK(mmrec_tensor_copy_to(b[k], y, numel));
        ck_assert(memcmp(x, y, numel * sizeof(float)) == 0);
    }
    /* mm_layers 0: the item graph is not needed */
    mmrec_module *nomm = mt_block(model, "nomm", fx.f, 1, 0, 0);
    MT_OK(mmrec_alignrec_forward(nomm, inf, ui, NULL, &w));
    mmrec_tape_destroy(inf);
    mmrec_tape_destroy(tape);
    mmrec_graph_destroy(wrong);
    mt_fixture_close(&fx);
}
END_TEST

/* A training step (reset, forward, every loss, backward, Adam with the
 * content group) does no allocation once the tape has its size. */
START_TEST(test_block_step_steady_state_no_malloc) {
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mt_fixture fx;
    mt_fixture_open(&fx, 8, 3, 1);
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    mmrec_optimizer *opt;
    MT_OK(mmrec_optimizer_create(fx.model, &oc, &opt));
    MT_OK(mmrec_optimizer_add_group(opt, "ar.content.", 1e-4f, 0.0f, NULL));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    size_t counts[4];
    for (int step = 0; step < 4; step++) {
        mt_allocs = 0;
        mmrec_tape_reset(tape);
        mmrec_tensor *loss;
        MT_OK(mt_batch_loss(fx.ar, fx.model, tape, fx.ui, fx.items, &loss));
        MT_OK(mmrec_tape_backward(tape, loss));
        MT_OK(mmrec_optimizer_step(opt));
        counts[step] = mt_allocs;
    }
    ck_assert_uint_gt(counts[0], 0);
    ck_assert_uint_eq(counts[2], 0);
    ck_assert_uint_eq(counts[3], 0);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mt_fixture_close(&fx);
    MT_OK(mmrec_set_allocator(NULL));
}
END_TEST

/* Creation, a forward, the whole loss and its backward with the n-th
 * allocation failing. */
static mmrec_status mt_block_oom(void *ctx) {
    (void)ctx;
    float f[MT_I * MT_C];
    mt_features(f, 7);
    mmrec_graph *ui = NULL, *items = NULL;
    mmrec_model *model = NULL;
    mmrec_tape *tape = NULL;
    mmrec_status s = mmrec_graph_create_bipartite(mt_users, mt_items, MT_PAIRS, MT_U, MT_I, &ui);
    mmrec_knn_config kc;
    if (s == MMREC_OK) s = mmrec_knn_config_init(&kc);
    kc.k = 3;
    if (s == MMREC_OK) s = mmrec_graph_create_knn(f, MT_I, MT_C, &kc, &items);
    if (s == MMREC_OK) s = mmrec_model_create(&model);
    mmrec_module *ar = NULL;
    if (s == MMREC_OK) {
        mmrec_alignrec_config c;
        s = mmrec_alignrec_config_init(&c);
        mt_block_sizes(&c, f);
        c.dim = MT_D;
        c.layernorm = 1;
        if (s == MMREC_OK) s = mmrec_alignrec_create(model, "ar", &c, &ar);
    }
    if (s == MMREC_OK) s = mmrec_tape_create(&tape);
    mmrec_tensor *loss;
    if (s == MMREC_OK) s = mt_batch_loss(ar, model, tape, ui, items, &loss);
    if (s == MMREC_OK) s = mmrec_tape_backward(tape, loss);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
    mmrec_graph_destroy(items);
    mmrec_graph_destroy(ui);
    return s;
}

START_TEST(test_block_oom_reports_enomem_without_leaks) {
    ck_assert_int_gt(mt_oom_loop("alignrec", mt_block_oom, NULL), 5);
}
END_TEST

static Suite *alignrec_suite(void) {
    Suite *s = suite_create("alignrec");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_losses_bad_input);
    tcase_add_test(api, test_block_bad_config);
    tcase_add_test(api, test_block_forward_bad_input_and_modes);
    suite_add_tcase(s, api);
    TCase *fwd = tcase_create("forward");
    tcase_add_test(fwd, test_infonce_is_one_directional_and_halves_cic);
    tcase_add_test(fwd, test_anti_collapse_and_ui_alignment_closed_forms);
    tcase_add_test(fwd, test_losses_match_pytorch);
    tcase_add_test(fwd, test_aggregate_users_is_the_user_item_block);
    tcase_add_test(fwd, test_block_parameters_and_init);
    tcase_add_test(fwd, test_block_matches_pytorch);
    suite_add_tcase(s, fwd);
    TCase *bwd = tcase_create("backward");
    tcase_set_timeout(bwd, 120);
    tcase_add_test(bwd, test_anti_collapse_at_its_minimum_has_zero_gradient);
    tcase_add_test(bwd, test_losses_gradcheck);
    tcase_add_test(bwd, test_block_gradcheck);
    tcase_add_test(bwd, test_content_group_learns_at_its_own_rate);
    suite_add_tcase(s, bwd);
    TCase *life = tcase_create("lifecycle");
    tcase_set_timeout(life, 120);
    tcase_add_test(life, test_block_oom_reports_enomem_without_leaks);
    tcase_add_test(life, test_block_step_steady_state_no_malloc);
    suite_add_tcase(s, life);
    return s;
}
