/* Attention probabilities as outputs (modules.h: mmrec_mha_forward_probs,
 * mmrec_transformer_forward_probs): values and gradients against
 * torch.nn.MultiheadAttention(need_weights=True), finite differences, the
 * cross-encoder blocks, dropout, bad input, allocation; and the layer's
 * output at its first rows only (mmrec_transformer_forward_rows). */
#include "mt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

MT_SUITE(attn_probs_suite)

#define MT_TRY(call)                                                                       \
    do {                                                                                   \
        mmrec_status mt__t = (call);                                                       \
        if (mt__t != MMREC_OK) return mt__t;                                               \
    } while (0)

static mmrec_module *mt_mha(mmrec_model *model, const char *name, int64_t dim, int heads,
                            int causal, float dropout) {
    mmrec_mha_config c;
    MT_OK(mmrec_mha_config_init(&c));
    c.dim = dim;
    c.num_heads = heads;
    c.causal = causal;
    c.dropout = dropout;
    mmrec_module *m;
    MT_OK(mmrec_mha_create(model, name, &c, &m));
    return m;
}

static mmrec_module *mt_trm(mmrec_model *model, const char *name, int64_t dim, int heads,
                            int64_t ffn, int norm_first, int causal) {
    mmrec_transformer_config c;
    MT_OK(mmrec_transformer_config_init(&c));
    c.dim = dim;
    c.num_heads = heads;
    c.ffn_dim = ffn;
    c.norm_first = norm_first;
    c.causal = causal;
    c.dropout = 0.0f;
    mmrec_module *m;
    MT_OK(mmrec_transformer_create(model, name, &c, &m));
    return m;
}

/* loss = sum(r * y) + sum(rp * p), or sum(rp * p) alone when r is NULL. */
static mmrec_status mt_probs_loss(mmrec_tape *tape, mmrec_tensor *y, const float *r,
                                  mmrec_tensor *p, const float *rp, mmrec_tensor **loss) {
    int ndim;
    int64_t shape[MMREC_MAX_DIMS];
    mmrec_tensor *w, *t, *lp;
    MT_TRY(mmrec_tensor_shape(p, &ndim, shape));
    MT_TRY(mmrec_tape_wrap(tape, (float *)rp, ndim, shape, MMREC_TENSOR_READONLY, &w));
    MT_TRY(mmrec_mul(tape, p, w, &t));
    MT_TRY(mmrec_sum(tape, t, MMREC_AXIS_ALL, &lp));
    if (r == NULL) {
        *loss = lp;
        return MMREC_OK;
    }
    mmrec_tensor *ly;
    MT_TRY(mmrec_tensor_shape(y, &ndim, shape));
    MT_TRY(mmrec_tape_wrap(tape, (float *)r, ndim, shape, MMREC_TENSOR_READONLY, &w));
    MT_TRY(mmrec_mul(tape, y, w, &t));
    MT_TRY(mmrec_sum(tape, t, MMREC_AXIS_ALL, &ly));
    return mmrec_add(tape, lp, ly, loss);
}

static mmrec_tensor *mt_from(mmrec_tape *tape, const mt_array *a, bool grad) {
    return mt_tape_tensor(tape, a->ndim, a->shape, a->data,
                          grad ? MMREC_TENSOR_REQUIRES_GRAD : 0);
}

/* ---- against PyTorch ---- */

/* |got - want| <= 1e-6 + 1e-5 max|want| element-wise, for references
 * that are mostly zeros by design (masked and causal probabilities); at
 * least a tenth of them are non-zero. */
static void mt_close_masked(const char *what, const float *got, const float *want, size_t n) {
    double scale = 0;
    size_t nonzero = 0;
    for (size_t j = 0; j < n; j++) {
        scale = fmax(scale, fabs(want[j]));
        nonzero += want[j] != 0.0f;
    }
    ck_assert_msg(nonzero * 10 >= n, "%s: %zu of %zu non-zero", what, nonzero, n);
    for (size_t j = 0; j < n; j++)
        ck_assert_msg(fabs((double)got[j] - want[j]) <= 1e-6 + 1e-5 * scale,
                      "%s[%zu]: %g, expected %g", what, j, (double)got[j], (double)want[j]);
}

/* A loss on the probabilities alone leaves the key and value biases and
 * out_proj with zero gradients (references mt_check_grads refuses as
 * mostly zeros): every gradient within 1e-6 + 1e-5 max|want| of torch's,
 * and at least one parameter's gradient far from zero. */
static void mt_check_grads_sparse(const mt_golden *g, const char *k, mmrec_model *model) {
    char prefix[96];
    int n_prefix = snprintf(prefix, sizeof prefix, "%s.grad.", k);
    double largest = 0;
    for (size_t i = 0; i < g->n; i++) {
        const mt_array *a = &g->arrays[i];
        if (strncmp(a->name, prefix, (size_t)n_prefix) != 0) continue;
        char pname[128];
        snprintf(pname, sizeof pname, "m.%s", a->name + n_prefix);
        mmrec_tensor *p;
        MT_OK(mmrec_model_param(model, pname, &p));
        const float *got;
        MT_OK(mmrec_tensor_grad(p, &got));
        double scale = 0;
        for (size_t j = 0; j < a->numel; j++) scale = fmax(scale, fabs(a->data[j]));
        largest = fmax(largest, scale);
        for (size_t j = 0; j < a->numel; j++)
            ck_assert_msg(fabs((double)got[j] - a->data[j]) <= 1e-6 + 1e-5 * scale,
                          "%s[%zu]: %g, expected %g", a->name, j, (double)got[j],
                          (double)a->data[j]);
    }
    ck_assert(largest > 1e-2);
}

START_TEST(test_attn_probs_match_pytorch) {
    mt_golden g;
    mt_golden_load(&g, "attn_probs.bin");
    int cases = 0;
    for (size_t i = 0; i < g.n; i++) {
        const char *dot = strstr(g.arrays[i].name, ".kind");
        if (dot == NULL || dot[5] != '\0') continue;
        char k[64];
        snprintf(k, sizeof k, "%.*s", (int)(dot - g.arrays[i].name), g.arrays[i].name);
        int kind = (int)g.arrays[i].data[0];
        const float *cfg = mt_golden_find(&g, k, "cfg")->data;
        int64_t dim = (int64_t)cfg[0];
        int heads = (int)cfg[1], causal = (int)cfg[2], avg = (int)cfg[3], use_y = (int)cfg[4];
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        mmrec_module *m = kind == 0 ? mt_mha(model, "m", dim, heads, causal, 0.0f)
                                    : mt_trm(model, "m", dim, heads, (int64_t)cfg[5],
                                             (int)cfg[6], causal);
        mt_load_params(&g, k, model, 2);
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        mmrec_tensor *x = mt_from(tape, mt_golden_find(&g, k, "x"), true), *mask = NULL;
        const mt_array *ma = mt_golden_find(&g, k, "key_mask");
        if (ma) mask = mt_from(tape, ma, false);
        uint32_t flags = avg ? MMREC_ATTN_PROBS_AVERAGE : MMREC_ATTN_PROBS_PER_HEAD;
        mmrec_tensor *y, *p, *loss;
        if (kind == 0)
            MT_OK(mmrec_mha_forward_probs(m, tape, x, mask, flags, &y, &p));
        else
            MT_OK(mmrec_transformer_forward_probs(m, tape, x, mask, flags, &y, &p));
        const mt_array *pa = mt_golden_find(&g, k, "p"), *ya = mt_golden_find(&g, k, "y");
        int ndim;
        int64_t shape[MMREC_MAX_DIMS];
        MT_OK(mmrec_tensor_shape(p, &ndim, shape));
        ck_assert_int_eq(ndim, pa->ndim);
        ck_assert_int_eq(ndim, avg ? 3 : 4);
        for (int d = 0; d < ndim; d++) ck_assert_int_eq(shape[d], pa->shape[d]);
        char what[128];
        snprintf(what, sizeof what, "%s.p", k);
        mt_close_masked(what, mt_data_of(p), pa->data, pa->numel);
        snprintf(what, sizeof what, "%s.y", k);
        mt_close_scaled(what, mt_data_of(y), ya->data, ya->numel);
        MT_OK(mt_probs_loss(tape, y, use_y ? mt_golden_find(&g, k, "r")->data : NULL, p,
                            mt_golden_find(&g, k, "rp")->data, &loss));
        MT_OK(mmrec_tape_backward(tape, loss));
        const mt_array *dx = mt_golden_find(&g, k, "dx");
        snprintf(what, sizeof what, "%s.dx", k);
        mt_close_scaled(what, mt_grad_of(x), dx->data, dx->numel);
        if (use_y)
            mt_check_grads(&g, k, model, 2);
        else
            mt_check_grads_sparse(&g, k, model);
        mmrec_tape_destroy(tape);
        mmrec_model_destroy(model);
        cases++;
    }
    ck_assert_int_eq(cases, 16);
    mt_golden_free(&g);
}
END_TEST

/* The output of the probabilities path equals mmrec_mha_forward's, and so
 * do the gradients of a loss on it alone. */
START_TEST(test_attn_probs_out_same_as_plain_forward) {
    enum { B = 3, T = 6, D = 8 };
    float x[B * T * D], mask[B * T], r[B * T * D];
    mt_fill_uniform(x, B * T * D, -1, 1, 11);
    mt_fill_uniform(r, B * T * D, -1, 1, 12);
    for (int i = 0; i < B * T; i++) mask[i] = (i % 5) != 3;
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *m = mt_mha(model, "m", D, 2, 1, 0.0f);
    mt_perturb_params(model, 5);
    mmrec_tensor *w;
    MT_OK(mmrec_model_param(model, "m.in_proj_weight", &w));
    size_t nw;
    MT_OK(mmrec_tensor_numel(w, &nw));
    float *g1 = malloc(nw * sizeof(float));
    float dx1[B * T * D], y1[B * T * D];
    int64_t shape[3] = {B, T, D}, mshape[2] = {B, T};
    for (int pass = 0; pass < 2; pass++) {
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        MT_OK(mmrec_model_zero_grad(model));
        mmrec_tensor *xt = mt_tape_tensor(tape, 3, shape, x, MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *mt = mt_tape_tensor(tape, 2, mshape, mask, 0), *y, *p;
        if (pass == 0)
            MT_OK(mmrec_mha_forward(m, tape, xt, mt, &y));
        else
            MT_OK(mmrec_mha_forward_probs(m, tape, xt, mt, 0, &y, &p));
        MT_OK(mmrec_tape_backward_from(tape, y, r));
        const float *gw;
        MT_OK(mmrec_tensor_grad(w, &gw));
        if (pass == 0) {
            memcpy(y1, mt_data_of(y), sizeof y1);
            memcpy(dx1, mt_grad_of(xt), sizeof dx1);
            memcpy(g1, gw, nw * sizeof(float));
        } else {
            mt_assert_close("y", mt_data_of(y), y1, B * T * D, 1e-6f, 1e-7f);
            mt_assert_close("dx", mt_grad_of(xt), dx1, B * T * D, 1e-5f, 1e-6f);
            mt_assert_close("d in_proj_weight", gw, g1, nw, 1e-5f, 1e-6f);
        }
        mmrec_tape_destroy(tape);
    }
    free(g1);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- finite differences ---- */

typedef struct mt_fd {
    mmrec_module *m;
    bool transformer;
    uint32_t flags;
    float *mask;
    int64_t b, t;
    int what; /* 0: probs, 1: out */
} mt_fd;

static mmrec_status mt_fd_forward(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                  mmrec_tensor **out) {
    mt_fd *c = ctx;
    mmrec_tensor *mask = NULL, *y, *p;
    int64_t ms[2] = {c->b, c->t};
    if (c->mask) MT_TRY(mmrec_tape_wrap(tape, c->mask, 2, ms, MMREC_TENSOR_READONLY, &mask));
    if (c->transformer)
        MT_TRY(mmrec_transformer_forward_probs(c->m, tape, in[0], mask, c->flags, &y, &p));
    else
        MT_TRY(mmrec_mha_forward_probs(c->m, tape, in[0], mask, c->flags, &y, &p));
    *out = c->what ? y : p;
    return MMREC_OK;
}

START_TEST(test_attn_probs_gradcheck) {
    enum { B = 2, T = 5, D = 8 };
    float x[B * T * D], mask[B * T] = {1, 1, 1, 0, 0, 1, 0, 1, 1, 1};
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *mha = mt_mha(model, "a", D, 2, 1, 0.0f);
    mmrec_module *pre = mt_trm(model, "pre", D, 2, 12, 1, 0);
    mmrec_module *post = mt_trm(model, "post", D, 2, 12, 0, 1);
    mt_perturb_params(model, 9);
    struct {
        const char *name;
        mmrec_module *m;
        bool trm;
        uint32_t flags;
        int what;
    } runs[] = {
        {"mha probs per head", mha, false, 0, 0},
        {"mha probs averaged", mha, false, MMREC_ATTN_PROBS_AVERAGE, 0},
        {"mha out", mha, false, MMREC_ATTN_PROBS_AVERAGE, 1},
        {"pre-LN probs per head", pre, true, 0, 0},
        {"post-LN probs averaged", post, true, MMREC_ATTN_PROBS_AVERAGE, 0},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        mt_fill_uniform(x, B * T * D, -1, 1, 20 + i);
        mt_fd c = {runs[i].m, runs[i].trm, runs[i].flags, mask, B, T, runs[i].what};
        mt_input in = {3, {B, T, D}, x, false};
        /* the key bias has an exact zero gradient (softmax is shift
         * invariant) that float differences see as ~1e-5 */
        mt_gradcheck_opts o = {.floor = 1e-2f};
        mt_gradcheck(runs[i].name, mt_fd_forward, &c, &in, 1, model, &o);
    }
    mmrec_model_destroy(model);
}
END_TEST

/* ---- the user-to-item and item-to-user blocks of a joint encoder ---- */

START_TEST(test_attn_probs_cross_blocks) {
    enum { B = 2, TU = 3, TI = 4, T = TU + TI, D = 8, H = 2 };
    float u[B * TU * D], it[B * TI * D], r[B * TU * TI];
    mt_fill_uniform(u, sizeof u / sizeof *u, -1, 1, 31);
    mt_fill_uniform(it, sizeof it / sizeof *it, -1, 1, 32);
    mt_fill_uniform(r, sizeof r / sizeof *r, -1, 1, 33);
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *layer = mt_trm(model, "joint", D, H, 16, 1, 0);
    mt_perturb_params(model, 3);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t us[3] = {B, TU, D}, is[3] = {B, TI, D};
    mmrec_tensor *ut = mt_tape_tensor(tape, 3, us, u, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *itt = mt_tape_tensor(tape, 3, is, it, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *xs[2] = {ut, itt}, *x, *p, *rows, *u2i, *i2u, *loss;
    MT_OK(mmrec_concat(tape, xs, 2, 1, &x));
    MT_OK(mmrec_transformer_forward_probs(layer, tape, x, NULL, MMREC_ATTN_PROBS_AVERAGE, NULL,
                                          &p));
    MT_OK(mmrec_slice(tape, p, 1, 0, TU, &rows));
    MT_OK(mmrec_slice(tape, rows, 2, TU, TI, &u2i));
    MT_OK(mmrec_slice(tape, p, 1, TU, TI, &rows));
    MT_OK(mmrec_slice(tape, rows, 2, 0, TU, &i2u));
    const float *pd = mt_data_of(p), *a = mt_data_of(u2i), *bk = mt_data_of(i2u);
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < T; i++) {
            double sum = 0;
            for (int j = 0; j < T; j++) sum += pd[(b * T + i) * T + j];
            ck_assert_msg(fabs(sum - 1.0) < 1e-5, "row %d sums to %g", i, sum);
        }
        for (int i = 0; i < TU; i++)
            for (int j = 0; j < TI; j++)
                ck_assert(a[(b * TU + i) * TI + j] == pd[(b * T + i) * T + TU + j]);
        for (int i = 0; i < TI; i++)
            for (int j = 0; j < TU; j++)
                ck_assert(bk[(b * TI + i) * TU + j] == pd[(b * T + TU + i) * T + j]);
    }
    /* a loss on the user-to-item block reaches both sides' tokens */
    MT_OK(mt_probs_loss(tape, NULL, NULL, u2i, r, &loss));
    MT_OK(mmrec_tape_backward(tape, loss));
    const float *du = mt_grad_of(ut), *di = mt_grad_of(itt);
    double nu = 0, ni = 0;
    for (size_t i = 0; i < sizeof u / sizeof *u; i++) nu += fabs(du[i]);
    for (size_t i = 0; i < sizeof it / sizeof *it; i++) ni += fabs(di[i]);
    ck_assert(nu > 1e-4 && ni > 1e-4);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- dropout acts on the output, not on the returned probabilities ---- */

START_TEST(test_attn_probs_dropout_not_on_probs) {
    enum { B = 2, T = 5, D = 8 };
    float x[B * T * D], p_infer[B * 2 * T * T];
    mt_fill_uniform(x, sizeof x / sizeof *x, -1, 1, 41);
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *m = mt_mha(model, "m", D, 2, 0, 0.5f);
    int64_t shape[3] = {B, T, D};
    mmrec_tensor *y_train = NULL;
    float y_infer[B * T * D];
    for (int train = 0; train < 2; train++) {
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        MT_OK(mmrec_tape_set_mode(tape, train ? MMREC_TAPE_TRAIN : MMREC_TAPE_INFERENCE));
        mmrec_tensor *xt = mt_tape_tensor(tape, 3, shape, x, MMREC_TENSOR_REQUIRES_GRAD), *y, *p;
        MT_OK(mmrec_mha_forward_probs(m, tape, xt, NULL, 0, &y, &p));
        if (!train) {
            memcpy(p_infer, mt_data_of(p), sizeof p_infer);
            memcpy(y_infer, mt_data_of(y), sizeof y_infer);
        } else {
            mt_assert_close("train probs", mt_data_of(p), p_infer, B * 2 * T * T, 1e-6f, 1e-7f);
            y_train = y;
            size_t differ = 0;
            for (int i = 0; i < B * T * D; i++) differ += mt_data_of(y_train)[i] != y_infer[i];
            ck_assert_uint_gt(differ, 0);
            /* the backward runs through the dropout mask */
            MT_OK(mmrec_tape_backward_from(tape, y, x));
            mt_grad_of(xt);
        }
        mmrec_tape_destroy(tape);
    }
    mmrec_model_destroy(model);
}
END_TEST

/* With dropout on a training tape the output of the probabilities path is
 * the plain forward's under the same tape seed; a batch row whose keys are
 * all padding has all-zero probabilities, not NaN. */
START_TEST(test_attn_probs_dropout_same_draws_and_empty_rows) {
    enum { B = 2, T = 5, D = 8, H = 2 };
    float x[B * T * D], mask[B * T] = {1, 1, 0, 1, 1, 0, 0, 0, 0, 0}, y0[B * T * D];
    mt_fill_uniform(x, sizeof x / sizeof *x, -1, 1, 61);
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *m = mt_mha(model, "m", D, H, 0, 0.3f);
    int64_t shape[3] = {B, T, D}, ms[2] = {B, T};
    for (int pass = 0; pass < 2; pass++) {
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        MT_OK(mmrec_tape_set_mode(tape, MMREC_TAPE_TRAIN));
        MT_OK(mmrec_tape_seed(tape, 7));
        mmrec_tensor *xt = mt_tape_tensor(tape, 3, shape, x, MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *mt = mt_tape_tensor(tape, 2, ms, mask, 0), *y, *p;
        if (pass == 0) {
            MT_OK(mmrec_mha_forward(m, tape, xt, mt, &y));
            memcpy(y0, mt_data_of(y), sizeof y0);
        } else {
            MT_OK(mmrec_mha_forward_probs(m, tape, xt, mt, 0, &y, &p));
            mt_assert_close("y with dropout", mt_data_of(y), y0, B * T * D, 1e-6f, 1e-7f);
            const float *pd = mt_data_of(p);
            for (int i = 0; i < H * T * T; i++) {
                ck_assert_msg(pd[H * T * T + i] == 0.0f, "empty row: p[1][%d] = %g", i,
                              (double)pd[H * T * T + i]);
                ck_assert(isfinite(pd[i]));
            }
        }
        mmrec_tape_destroy(tape);
    }
    mmrec_model_destroy(model);
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_attn_probs_bad_input) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *m = mt_mha(model, "m", 8, 2, 0, 0.0f);
    mmrec_module *t = mt_trm(model, "t", 8, 2, 16, 1, 0);
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    int64_t s3[3] = {2, 5, 8}, bad3[3] = {2, 5, 6}, s2[2] = {2, 5}, bad2[2] = {2, 4};
    mmrec_tensor *x, *xo, *xb, *km, *kb, *y = NULL, *p = NULL;
    MT_OK(mmrec_tape_tensor(tape, 3, s3, 0, &x));
    MT_OK(mmrec_tape_tensor(other, 3, s3, 0, &xo));
    MT_OK(mmrec_tape_tensor(tape, 3, bad3, 0, &xb));
    MT_OK(mmrec_tape_tensor(tape, 2, s2, 0, &km));
    MT_OK(mmrec_tape_tensor(tape, 2, bad2, 0, &kb));
    size_t cap0, hw0, cap1, hw1;
    MT_OK(mmrec_tape_memory(tape, &cap0, &hw0));
    MT_EXPECT(mmrec_mha_forward_probs(NULL, tape, x, NULL, 0, &y, &p), MMREC_EINVAL, "mha");
    MT_EXPECT(mmrec_mha_forward_probs(m, NULL, x, NULL, 0, &y, &p), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_mha_forward_probs(m, tape, NULL, NULL, 0, &y, &p), MMREC_EINVAL, "x");
    MT_EXPECT(mmrec_mha_forward_probs(m, tape, x, NULL, 0, &y, NULL), MMREC_EINVAL, "probs");
    MT_EXPECT(mmrec_mha_forward_probs(m, tape, x, NULL, 2, &y, &p), MMREC_EINVAL, "flags");
    MT_EXPECT(mmrec_mha_forward_probs(t, tape, x, NULL, 0, &y, &p), MMREC_EINVAL, "mha");
    MT_EXPECT(mmrec_mha_forward_probs(m, tape, xo, NULL, 0, &y, &p), MMREC_EINVAL, "x");
    MT_EXPECT(mmrec_mha_forward_probs(m, tape, xb, NULL, 0, &y, &p), MMREC_ESHAPE, "x is");
    MT_EXPECT(mmrec_mha_forward_probs(m, tape, x, kb, 0, &y, &p), MMREC_ESHAPE, "key_mask");
    MT_EXPECT(mmrec_transformer_forward_probs(NULL, tape, x, NULL, 0, &y, &p), MMREC_EINVAL,
              "layer");
    MT_EXPECT(mmrec_transformer_forward_probs(m, tape, x, NULL, 0, &y, &p), MMREC_EINVAL,
              "layer");
    MT_EXPECT(mmrec_transformer_forward_probs(t, NULL, x, NULL, 0, &y, &p), MMREC_EINVAL,
              "tape");
    MT_EXPECT(mmrec_transformer_forward_probs(t, tape, NULL, NULL, 0, &y, &p), MMREC_EINVAL,
              "x");
    MT_EXPECT(mmrec_transformer_forward_probs(t, tape, x, NULL, 0, &y, NULL), MMREC_EINVAL,
              "probs");
    MT_EXPECT(mmrec_transformer_forward_probs(t, tape, x, NULL, 0x10, &y, &p), MMREC_EINVAL,
              "flags");
    MT_EXPECT(mmrec_transformer_forward_probs(t, tape, xb, NULL, 0, &y, &p), MMREC_ESHAPE,
              "x is");
    MT_EXPECT(mmrec_transformer_forward_probs(t, tape, x, kb, 0, &y, &p), MMREC_ESHAPE,
              "key_mask");
    ck_assert(y == NULL && p == NULL);
    MT_OK(mmrec_tape_memory(tape, &cap1, &hw1));
    ck_assert_uint_eq(cap0, cap1);
    /* out may be NULL */
    MT_OK(mmrec_mha_forward_probs(m, tape, x, km, MMREC_ATTN_PROBS_AVERAGE, NULL, &p));
    ck_assert(p != NULL);
    /* a stale tensor */
    mmrec_tape_reset(tape);
    MT_EXPECT(mmrec_mha_forward_probs(m, tape, x, NULL, 0, &y, &p), MMREC_ESTALE, NULL);
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- the first rows only ---- */

/* mmrec_transformer_forward_rows: the full layer's first rows, bit for
 * bit, and the same gradients into x (every position) and the weights,
 * pre- and post-LN, with and without a key mask and a causal mask. */
START_TEST(test_transformer_rows_same_as_full_layer) {
    enum { B = 3, T = 6, D = 8, R = 4 };
    float x[B * T * D], mask[B * T], r[B * R * D];
    mt_fill_uniform(x, B * T * D, -1, 1, 21);
    mt_fill_uniform(r, B * R * D, -1, 1, 22);
    for (int i = 0; i < B * T; i++) mask[i] = (i % 4) != 3;
    for (int variant = 0; variant < 4; variant++) {
        int norm_first = variant & 1, causal = variant >> 1;
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        mmrec_module *t = mt_trm(model, "t", D, 2, 16, norm_first, causal);
        mt_perturb_params(model, 7);
        size_t np;
        MT_OK(mmrec_model_param_count(model, &np, NULL));
        float *g_full = malloc(np * sizeof(float)), *g_rows = malloc(np * sizeof(float));
        float y_full[B * R * D], dx_full[B * T * D];
        int64_t shape[3] = {B, T, D}, mshape[2] = {B, T};
        for (int pass = 0; pass < 2; pass++) {
            mmrec_tape *tape;
            MT_OK(mmrec_tape_create(&tape));
            MT_OK(mmrec_model_zero_grad(model));
            mmrec_tensor *xt = mt_tape_tensor(tape, 3, shape, x, MMREC_TENSOR_REQUIRES_GRAD);
            mmrec_tensor *mt = mt_tape_tensor(tape, 2, mshape, mask, 0), *y;
            if (pass == 0) {
                mmrec_tensor *full;
                MT_OK(mmrec_transformer_forward(t, tape, xt, mt, &full));
                MT_OK(mmrec_slice(tape, full, 1, 0, R, &y));
            } else {
                MT_OK(mmrec_transformer_forward_rows(t, tape, xt, mt, R, &y));
            }
            int ndim;
            int64_t ys[MMREC_MAX_DIMS];
            MT_OK(mmrec_tensor_shape(y, &ndim, ys));
            ck_assert(ndim == 3 && ys[0] == B && ys[1] == R && ys[2] == D);
            MT_OK(mmrec_tape_backward_from(tape, y, r));
            MT_OK(mmrec_model_export_grads(model, pass ? g_rows : g_full, np));
            if (pass == 0) {
                memcpy(y_full, mt_data_of(y), sizeof y_full);
                memcpy(dx_full, mt_grad_of(xt), sizeof dx_full);
            } else {
                ck_assert(memcmp(mt_data_of(y), y_full, sizeof y_full) == 0);
                mt_assert_close("dx", mt_grad_of(xt), dx_full, B * T * D, 1e-5f, 1e-6f);
                mt_assert_close("d params", g_rows, g_full, np, 1e-5f, 1e-6f);
            }
            mmrec_tape_destroy(tape);
        }
        free(g_full);
        free(g_rows);
        mmrec_model_destroy(model);
    }
}
END_TEST

START_TEST(test_transformer_rows_bad_input) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *m = mt_mha(model, "m", 8, 2, 0, 0.0f);
    mmrec_module *t = mt_trm(model, "t", 8, 2, 16, 0, 0);
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    int64_t s3[3] = {2, 5, 8}, bad3[3] = {2, 5, 6}, s2[2] = {2, 5}, bad2[2] = {2, 4};
    mmrec_tensor *x, *xo, *xb, *x2, *kb, *y = NULL;
    MT_OK(mmrec_tape_tensor(tape, 3, s3, 0, &x));
    MT_OK(mmrec_tape_tensor(other, 3, s3, 0, &xo));
    MT_OK(mmrec_tape_tensor(tape, 3, bad3, 0, &xb));
    MT_OK(mmrec_tape_tensor(tape, 2, s2, 0, &x2));
    MT_OK(mmrec_tape_tensor(tape, 2, bad2, 0, &kb));
    size_t cap0, hw0, cap1, hw1;
    MT_OK(mmrec_tape_memory(tape, &cap0, &hw0));
    MT_EXPECT(mmrec_transformer_forward_rows(NULL, tape, x, NULL, 1, &y), MMREC_EINVAL, "layer");
    MT_EXPECT(mmrec_transformer_forward_rows(m, tape, x, NULL, 1, &y), MMREC_EINVAL, "layer");
    MT_EXPECT(mmrec_transformer_forward_rows(t, NULL, x, NULL, 1, &y), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_transformer_forward_rows(t, tape, NULL, NULL, 1, &y), MMREC_EINVAL, "x");
    MT_EXPECT(mmrec_transformer_forward_rows(t, tape, xo, NULL, 1, &y), MMREC_EINVAL, "x");
    MT_EXPECT(mmrec_transformer_forward_rows(t, tape, x, NULL, 1, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_transformer_forward_rows(t, tape, x, NULL, 0, &y), MMREC_EINVAL,
              "num_rows is 0");
    MT_EXPECT(mmrec_transformer_forward_rows(t, tape, x, NULL, 6, &y), MMREC_EINVAL,
              "num_rows is 6");
    MT_EXPECT(mmrec_transformer_forward_rows(t, tape, xb, NULL, 1, &y), MMREC_ESHAPE, "x is");
    MT_EXPECT(mmrec_transformer_forward_rows(t, tape, x2, NULL, 1, &y), MMREC_ESHAPE, "x is");
    MT_EXPECT(mmrec_transformer_forward_rows(t, tape, x, kb, 1, &y), MMREC_ESHAPE, "key_mask");
    ck_assert(y == NULL);
    MT_OK(mmrec_tape_memory(tape, &cap1, &hw1));
    ck_assert_uint_eq(cap0, cap1);
    MT_OK(mmrec_transformer_forward_rows(t, tape, x, NULL, 5, &y)); /* all rows */
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- allocation ---- */

static mmrec_status mt_probs_step(mmrec_module *mha, mmrec_module *trm, mmrec_tape *tape,
                                  const float *x, const float *mask, const float *r,
                                  const float *rp) {
    enum { B = 2, T = 5, D = 8 };
    int64_t shape[3] = {B, T, D}, ms[2] = {B, T};
    mmrec_tensor *xt, *mt, *y, *p, *y2, *p2, *l1, *l2, *loss;
    MT_TRY(mmrec_tape_wrap(tape, (float *)x, 3, shape, MMREC_TENSOR_REQUIRES_GRAD, &xt));
    MT_TRY(mmrec_tape_wrap(tape, (float *)mask, 2, ms, MMREC_TENSOR_READONLY, &mt));
    MT_TRY(mmrec_mha_forward_probs(mha, tape, xt, mt, 0, &y, &p));
    MT_TRY(mt_probs_loss(tape, y, r, p, rp, &l1));
    MT_TRY(mmrec_transformer_forward_probs(trm, tape, y, mt, MMREC_ATTN_PROBS_AVERAGE, &y2,
                                           &p2));
    MT_TRY(mt_probs_loss(tape, y2, r, p2, rp, &l2));
    MT_TRY(mmrec_add(tape, l1, l2, &loss));
    return mmrec_tape_backward(tape, loss);
}

typedef struct mt_steady {
    mmrec_module *mha, *trm;
    mmrec_tape *tape;
    mmrec_optimizer *opt;
    float *x, *mask, *r, *rp;
} mt_steady;

static mmrec_status mt_probs_steady(void *ctx) {
    mt_steady *c = ctx;
    mmrec_tape_reset(c->tape);
    MT_OK(mt_probs_step(c->mha, c->trm, c->tape, c->x, c->mask, c->r, c->rp));
    return mmrec_optimizer_step(c->opt);
}

static float mt_x[80], mt_mask[10] = {1, 1, 1, 0, 0, 1, 0, 1, 1, 1}, mt_r[80], mt_rp[100];

START_TEST(test_attn_probs_steady_state_no_malloc) {
    mt_fill_uniform(mt_x, 80, -1, 1, 51);
    mt_fill_uniform(mt_r, 80, -1, 1, 52);
    mt_fill_uniform(mt_rp, 100, -1, 1, 53);
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *mha = mt_mha(model, "a", 8, 2, 1, 0.1f);
    mmrec_module *trm = mt_trm(model, "t", 8, 2, 16, 1, 0);
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    mmrec_optimizer *opt;
    MT_OK(mmrec_optimizer_create(model, &oc, &opt));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mt_steady c = {mha, trm, tape, opt, mt_x, mt_mask, mt_r, mt_rp};
    mt_assert_steady_state(mt_probs_steady, &c);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(model);
    MT_OK(mmrec_set_allocator(NULL));
}
END_TEST

/* Creation, both forwards and the backward with the n-th allocation
 * failing. */
static mmrec_status mt_probs_oom(void *ctx) {
    (void)ctx;
    mmrec_model *model = NULL;
    mmrec_tape *tape = NULL;
    mmrec_module *mha = NULL, *trm = NULL;
    mmrec_status s = mmrec_model_create(&model);
    mmrec_mha_config ac;
    mmrec_transformer_config tc;
    if (s == MMREC_OK) s = mmrec_mha_config_init(&ac);
    if (s == MMREC_OK) s = mmrec_transformer_config_init(&tc);
    ac.dim = tc.dim = 8;
    ac.num_heads = tc.num_heads = 2;
    ac.causal = 1;
    tc.ffn_dim = 16;
    tc.dropout = 0.0f;
    if (s == MMREC_OK) s = mmrec_mha_create(model, "a", &ac, &mha);
    if (s == MMREC_OK) s = mmrec_transformer_create(model, "t", &tc, &trm);
    if (s == MMREC_OK) s = mmrec_tape_create(&tape);
    if (s == MMREC_OK) s = mt_probs_step(mha, trm, tape, mt_x, mt_mask, mt_r, mt_rp);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
    return s;
}

START_TEST(test_attn_probs_oom_reports_enomem_without_leaks) {
    mt_fill_uniform(mt_x, 80, -1, 1, 51);
    mt_fill_uniform(mt_r, 80, -1, 1, 52);
    mt_fill_uniform(mt_rp, 100, -1, 1, 53);
    ck_assert_int_gt(mt_oom_loop("attention probabilities", mt_probs_oom, NULL), 5);
}
END_TEST

static Suite *attn_probs_suite(void) {
    Suite *s = suite_create("attn_probs");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_attn_probs_bad_input);
    tcase_add_test(api, test_transformer_rows_bad_input);
    suite_add_tcase(s, api);
    TCase *fwd = tcase_create("forward");
    tcase_add_test(fwd, test_attn_probs_match_pytorch);
    tcase_add_test(fwd, test_attn_probs_out_same_as_plain_forward);
    tcase_add_test(fwd, test_attn_probs_gradcheck);
    tcase_add_test(fwd, test_attn_probs_cross_blocks);
    tcase_add_test(fwd, test_attn_probs_dropout_not_on_probs);
    tcase_add_test(fwd, test_attn_probs_dropout_same_draws_and_empty_rows);
    tcase_add_test(fwd, test_transformer_rows_same_as_full_layer);
    suite_add_tcase(s, fwd);
    TCase *mem = tcase_create("memory");
    tcase_add_test(mem, test_attn_probs_steady_state_no_malloc);
    tcase_add_test(mem, test_attn_probs_oom_reports_enomem_without_leaks);
    suite_add_tcase(s, mem);
    return s;
}
