/* IntTower (inttower.h): the towers, the FE-Block scores (paired and all
 * pairs) and CIR against a port of the released PyTorch code
 * (tests/golden/make_golden.py::write_inttower), finite-difference
 * gradients of the whole module and of CIR, dropout only on training
 * tapes, bad input, config sizes, steady-state allocation and allocation
 * failures. */
#include "mt.h"
#include "twotower/twotower_internal.h" /* the configs' first-release sizes */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MT_SUITE(inttower_suite)

/* Returns a failed call's status from a forward or scenario function. */
#define MT_FWD(call)                                                           \
    do {                                                                       \
        mmrec_status mt__st = (call);                                          \
        if (mt__st != MMREC_OK) return mt__st;                                 \
    } while (0)

/* A module "it" from a golden cfg: [F_u, F_i, e, dense_u, dense_i, H_u,
 * H_i, f, se_bias, L, hidden...]. */
static mmrec_module *mt_it_from_cfg(mmrec_model *model, const mt_array *cfg) {
    const float *c = cfg->data;
    int64_t hidden[MMREC_INTTOWER_MAX_LAYERS];
    int L = (int)c[9];
    for (int l = 0; l < L; l++) hidden[l] = (int64_t)c[10 + l];
    mmrec_inttower_config ic;
    MT_OK(mmrec_inttower_config_init(&ic));
    ic.user_fields = (int)c[0];
    ic.item_fields = (int)c[1];
    ic.embedding_dim = (int64_t)c[2];
    ic.user_dense_dim = (int64_t)c[3];
    ic.item_dense_dim = (int64_t)c[4];
    ic.user_heads = (int)c[5];
    ic.item_heads = (int)c[6];
    ic.field_dim = (int64_t)c[7];
    ic.lightse_bias = (int)c[8];
    ic.hidden_sizes = hidden;
    ic.num_hidden = L;
    mmrec_module *m;
    MT_OK(mmrec_inttower_create(model, "it", &ic, &m));
    return m;
}

static const mt_array *mt_get(const mt_golden *g, const char *kase, const char *key) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", kase, key);
    return mt_golden_get(g, name);
}

/* The golden array, or NULL when the case has none. */
static const mt_array *mt_find(const mt_golden *g, const char *kase, const char *key) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", kase, key);
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->arrays[i].name, name) == 0) return &g->arrays[i];
    return NULL;
}

static mmrec_tensor *mt_from(mmrec_tape *tape, const mt_array *a, uint32_t flags) {
    return a ? mt_tape_tensor(tape, a->ndim, a->shape, a->data, flags) : NULL;
}

/* sum(r * y) */
static mmrec_tensor *mt_weighted_sum(mmrec_tape *tape, mmrec_tensor *y, mmrec_tensor *r) {
    mmrec_tensor *ry, *s;
    MT_OK(mmrec_mul(tape, y, r, &ry));
    MT_OK(mmrec_sum(tape, ry, MMREC_AXIS_ALL, &s));
    return s;
}

/* ---- forward and backward against the code ---- */

START_TEST(test_inttower_matches_the_reference_code) {
    static const char *cases[] = {"base", "sebias", "one"};
    mt_golden g;
    mt_golden_load(&g, "inttower.bin");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *c = cases[k];
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        mmrec_module *m = mt_it_from_cfg(model, mt_get(&g, c, "cfg"));
        mt_load_params(&g, c, model, strlen("it."));
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        const uint32_t RG = MMREC_TENSOR_REQUIRES_GRAD;
        mmrec_tensor *ue = mt_from(tape, mt_get(&g, c, "ue"), RG);
        mmrec_tensor *ie = mt_from(tape, mt_get(&g, c, "ie"), RG);
        mmrec_tensor *ud = mt_from(tape, mt_find(&g, c, "ud"), RG);
        mmrec_tensor *id = mt_from(tape, mt_find(&g, c, "id"), RG);
        mmrec_tensor *ufe, *uvec, *ife, *ivec, *paired, *all;
        MT_OK(mmrec_inttower_user_forward(m, tape, ue, ud, &ufe, &uvec));
        MT_OK(mmrec_inttower_item_forward(m, tape, ie, id, &ife, &ivec));
        const mt_array *want = mt_get(&g, c, "user_fe");
        mt_close_scaled("user_fe", mt_data_of(ufe), want->data, want->numel);
        want = mt_get(&g, c, "item_fe");
        mt_close_scaled("item_fe", mt_data_of(ife), want->data, want->numel);
        /* user_vec is u_L, the last H_u heads; item_vec is item_fe's values */
        int64_t B = ue->shape[0], q = ufe->shape[1], f = ufe->shape[2], hu = uvec->shape[1] / f;
        ck_assert_int_eq(uvec->shape[0], B);
        for (int64_t b = 0; b < B; b++)
            ck_assert(memcmp(mt_data_of(uvec) + b * hu * f,
                             mt_data_of(ufe) + (b * q + q - hu) * f, hu * f * 4) == 0);
        ck_assert(memcmp(mt_data_of(ivec), mt_data_of(ife), want->numel * 4) == 0);

        MT_OK(mmrec_inttower_score_paired(m, tape, ufe, ife, &paired));
        MT_OK(mmrec_inttower_score(m, tape, ufe, ife, &all));
        want = mt_get(&g, c, "paired");
        mt_close_scaled("paired", mt_data_of(paired), want->data, want->numel);
        want = mt_get(&g, c, "all");
        mt_close_scaled("all", mt_data_of(all), want->data, want->numel);

        mmrec_tensor *rp = mt_from(tape, mt_get(&g, c, "rp"), 0);
        mmrec_tensor *ra = mt_from(tape, mt_get(&g, c, "ra"), 0), *loss;
        MT_OK(mmrec_add(tape, mt_weighted_sum(tape, paired, rp), mt_weighted_sum(tape, all, ra),
                        &loss));
        MT_OK(mmrec_tape_backward(tape, loss));
        static const char *gk[4] = {"due", "die", "dud", "did"};
        mmrec_tensor *gt[4] = {ue, ie, ud, id};
        for (int i = 0; i < 4; i++) {
            if (gt[i] == NULL) continue;
            want = mt_get(&g, c, gk[i]);
            mt_close_scaled(gk[i], mt_grad_of(gt[i]), want->data, want->numel);
        }
        mt_check_grads(&g, c, model, strlen("it."));
        mmrec_tape_destroy(tape);
        mmrec_model_destroy(model);
    }
    mt_golden_free(&g);
}
END_TEST

START_TEST(test_inttower_cir_matches_paper_and_code) {
    static const char *cases[] = {"cir", "cir_few"};
    mt_golden g;
    mt_golden_load(&g, "inttower.bin");
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (size_t k = 0; k < 2; k++) {
        const char *c = cases[k];
        const mt_array *cfg = mt_get(&g, c, "cfg"), *y = mt_get(&g, c, "y");
        for (int form = 0; form < 2; form++) {
            mmrec_tensor *u = mt_from(tape, mt_get(&g, c, "u"), MMREC_TENSOR_REQUIRES_GRAD);
            mmrec_tensor *v = mt_from(tape, mt_get(&g, c, "v"), MMREC_TENSOR_REQUIRES_GRAD);
            mmrec_inttower_cir_config cc;
            MT_OK(mmrec_inttower_cir_config_init(&cc));
            ck_assert_float_eq(cc.temperature, cfg->data[0]);
            if (form == 0)
                cc.weight = cfg->data[1];
            else
                cc.label_indexed = 1; /* the code's: weight 1 */
            mmrec_tensor *loss;
            MT_OK(mmrec_loss_inttower_cir(tape, u, v, y->data, y->numel, &cc, &loss));
            const mt_array *want = mt_get(&g, c, form ? "code" : "paper");
            mt_close_scaled(want->name, mt_data_of(loss), want->data, 1);
            MT_OK(mmrec_tape_backward(tape, loss));
            want = mt_get(&g, c, form ? "dcu" : "dpu");
            mt_close_scaled(want->name, mt_grad_of(u), want->data, want->numel);
            want = mt_get(&g, c, form ? "dcv" : "dpv");
            mt_close_scaled(want->name, mt_grad_of(v), want->data, want->numel);
            mmrec_tape_reset(tape);
        }
    }
    mmrec_tape_destroy(tape);
    mt_golden_free(&g);
}
END_TEST

/* No row clicked: the paper's CIR is 0 with no gradient. */
START_TEST(test_inttower_cir_without_clicks_is_zero) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    float uv[12];
    mt_fill_uniform(uv, 12, -1, 1, 5);
    int64_t s[2] = {3, 4};
    mmrec_tensor *u = mt_tape_tensor(tape, 2, s, uv, MMREC_TENSOR_REQUIRES_GRAD), *loss;
    static const float zeros[3] = {0, 0, 0};
    MT_OK(mmrec_loss_inttower_cir(tape, u, u, zeros, 3, NULL, &loss));
    ck_assert_float_eq(mt_data_of(loss)[0], 0.0f);
    MT_OK(mmrec_tape_backward(tape, loss));
    const float *g = mt_grad_of(u);
    for (int i = 0; i < 12; i++) ck_assert_float_eq(g[i], 0.0f);
    mmrec_tape_destroy(tape);
}
END_TEST

/* ---- finite differences ---- */

typedef struct mt_it_ctx {
    mmrec_module *m;
    bool paired;
} mt_it_ctx;

static mmrec_status mt_it_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                              mmrec_tensor **out) {
    mt_it_ctx *c = ctx;
    mmrec_tensor *ufe, *ife;
    MT_FWD(mmrec_inttower_user_forward(c->m, tape, in[0], in[1], &ufe, NULL));
    MT_FWD(mmrec_inttower_item_forward(c->m, tape, in[2], in[3], &ife, NULL));
    return c->paired ? mmrec_inttower_score_paired(c->m, tape, ufe, ife, out)
                     : mmrec_inttower_score(c->m, tape, ufe, ife, out);
}

static mmrec_module *mt_it_small(mmrec_model *model, const char *name, int se_bias, float dropout,
                                 int item_heads) {
    static const int64_t hidden[2] = {5, 4};
    mmrec_inttower_config c;
    MT_OK(mmrec_inttower_config_init(&c));
    c.user_fields = 3;
    c.item_fields = 2;
    c.embedding_dim = 3;
    c.user_dense_dim = 2;
    c.item_dense_dim = 1;
    c.hidden_sizes = hidden;
    c.num_hidden = 2;
    c.user_heads = 2;
    c.item_heads = item_heads;
    c.field_dim = 3;
    c.lightse_bias = se_bias;
    c.dropout = dropout;
    mmrec_module *m;
    MT_OK(mmrec_inttower_create(model, name, &c, &m));
    return m;
}

START_TEST(test_inttower_gradients) {
    enum { B = 3 };
    for (int paired = 0; paired < 2; paired++) {
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        mt_it_ctx ctx = {mt_it_small(model, "it", 1, 0.0f, 3), paired != 0};
        /* the code's tower weights, N(0, 1e-8), would leave every ReLU input
         * at its bias: generic values instead */
        mt_perturb_params(model, 17 + (uint64_t)paired);
        float ue[B * 3 * 3], ud[B * 2], ie[B * 2 * 3], id[B * 1];
        mt_fill_uniform(ue, sizeof ue / 4, -1, 1, 1);
        mt_fill_uniform(ud, sizeof ud / 4, -1, 1, 2);
        mt_fill_uniform(ie, sizeof ie / 4, -1, 1, 3);
        mt_fill_uniform(id, sizeof id / 4, -1, 1, 4);
        mt_input in[4] = {{3, {B, 3, 3}, ue, false},
                          {2, {B, 2}, ud, false},
                          {3, {B, 2, 3}, ie, false},
                          {2, {B, 1}, id, false}};
        mt_gradcheck_opts o = {.h = 1e-3f, .tol = 1e-2f, .floor = 5e-2f};
        mt_gradcheck(paired ? "inttower paired" : "inttower all pairs", mt_it_fwd, &ctx, in, 4,
                     model, &o);
        mmrec_model_destroy(model);
    }
}
END_TEST

typedef struct mt_cir_ctx {
    const float *labels;
    size_t n;
    int label_indexed;
} mt_cir_ctx;

static mmrec_status mt_cir_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    mt_cir_ctx *c = ctx;
    mmrec_inttower_cir_config cc;
    MT_FWD(mmrec_inttower_cir_config_init(&cc));
    cc.label_indexed = c->label_indexed;
    cc.weight = 0.7f;
    cc.temperature = 0.5f; /* a milder softmax keeps the differences in float32's range */
    return mmrec_loss_inttower_cir(tape, in[0], in[1], c->labels, c->n, &cc, out);
}

START_TEST(test_inttower_cir_gradients) {
    enum { B = 5, D = 4 };
    static const float labels[B] = {1, 0, 0, 1, 1};
    float u[B * D], v[B * D];
    mt_fill_uniform(u, B * D, -1, 1, 7);
    mt_fill_uniform(v, B * D, -1, 1, 8);
    for (int form = 0; form < 2; form++) {
        mt_cir_ctx c = {labels, B, form};
        mt_input in[2] = {{2, {B, D}, u, false}, {2, {B, D}, v, false}};
        mt_gradcheck(form ? "cir label_indexed" : "cir", mt_cir_fwd, &c, in, 2, NULL, NULL);
    }
}
END_TEST

/* ---- dropout ---- */

/* Dropout acts on training tapes only: an inference tape gives what a
 * module without dropout gives; a training tape changes the scores. */
START_TEST(test_inttower_dropout_only_when_training) {
    enum { B = 4 };
    float ue[B * 9], ud[B * 2], ie[B * 6], id[B];
    mt_fill_uniform(ue, B * 9, -1, 1, 11);
    mt_fill_uniform(ud, B * 2, -1, 1, 12);
    mt_fill_uniform(ie, B * 6, -1, 1, 13);
    mt_fill_uniform(id, B, -1, 1, 14);
    int64_t su[3] = {B, 3, 3}, sd[2] = {B, 2}, si[3] = {B, 2, 3}, sj[2] = {B, 1};
    float out[3][B * B];
    for (int run = 0; run < 3; run++) {
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        MT_OK(mmrec_model_seed(model, 99));
        mmrec_module *m = mt_it_small(model, "it", 0, run == 0 ? 0.0f : 0.5f, 3);
        mt_perturb_params(model, 3);
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        if (run == 1) MT_OK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
        mmrec_tensor *ufe, *ife, *s;
        MT_OK(mmrec_inttower_user_forward(m, tape, mt_tape_tensor(tape, 3, su, ue, 0),
                                          mt_tape_tensor(tape, 2, sd, ud, 0), &ufe, NULL));
        MT_OK(mmrec_inttower_item_forward(m, tape, mt_tape_tensor(tape, 3, si, ie, 0),
                                          mt_tape_tensor(tape, 2, sj, id, 0), &ife, NULL));
        MT_OK(mmrec_inttower_score(m, tape, ufe, ife, &s));
        memcpy(out[run], mt_data_of(s), sizeof out[run]);
        mmrec_tape_destroy(tape);
        mmrec_model_destroy(model);
    }
    ck_assert(memcmp(out[0], out[1], sizeof out[0]) == 0);
    ck_assert(memcmp(out[0], out[2], sizeof out[0]) != 0);
}
END_TEST

/* Serving: item FE vectors computed once on an inference tape, kept in
 * caller memory and wrapped, score users on later tapes exactly as the
 * items' own forward on the same tape does. */
START_TEST(test_inttower_precomputed_items_score_as_fresh_ones) {
    enum { B = 5, N = 7 };
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *m = mt_it_small(model, "it", 1, 0.3f, 3);
    mt_perturb_params(model, 9);
    float ue[B * 9], ud[B * 2], ie[N * 6], id[N], kept[N * 3 * 3];
    mt_fill_uniform(ue, B * 9, -1, 1, 41);
    mt_fill_uniform(ud, B * 2, -1, 1, 42);
    mt_fill_uniform(ie, N * 6, -1, 1, 43);
    mt_fill_uniform(id, N, -1, 1, 44);
    int64_t su[3] = {B, 3, 3}, sd[2] = {B, 2}, si[3] = {N, 2, 3}, sj[2] = {N, 1},
            sk[3] = {N, 3, 3};
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    mmrec_tensor *ife, *ufe, *direct, *served;
    MT_OK(mmrec_inttower_item_forward(m, tape, mt_tape_tensor(tape, 3, si, ie, 0),
                                      mt_tape_tensor(tape, 2, sj, id, 0), &ife, NULL));
    MT_OK(mmrec_tensor_copy_to(ife, kept, N * 9));
    MT_OK(mmrec_inttower_user_forward(m, tape, mt_tape_tensor(tape, 3, su, ue, 0),
                                      mt_tape_tensor(tape, 2, sd, ud, 0), &ufe, NULL));
    MT_OK(mmrec_inttower_score(m, tape, ufe, ife, &direct));
    float want[B * N];
    MT_OK(mmrec_tensor_copy_to(direct, want, B * N));
    mmrec_tape_reset(tape);
    mmrec_tensor *items;
    MT_OK(mmrec_tensor_wrap(kept, 3, sk, MMREC_TENSOR_READONLY, &items));
    MT_OK(mmrec_inttower_user_forward(m, tape, mt_tape_tensor(tape, 3, su, ue, 0),
                                      mt_tape_tensor(tape, 2, sd, ud, 0), &ufe, NULL));
    MT_OK(mmrec_inttower_score(m, tape, ufe, items, &served));
    ck_assert(memcmp(mt_data_of(served), want, sizeof want) == 0);
    mmrec_tensor_destroy(items);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- bad input ---- */

static mmrec_status mt_create_with(mmrec_model *model, void (*edit)(mmrec_inttower_config *)) {
    mmrec_inttower_config c;
    MT_OK(mmrec_inttower_config_init(&c));
    c.user_fields = 2;
    c.item_fields = 2;
    c.embedding_dim = 4;
    edit(&c);
    return mmrec_inttower_create(model, "bad", &c, NULL);
}

static void e_user_fields(mmrec_inttower_config *c) { c->user_fields = 0; }
static void e_item_fields(mmrec_inttower_config *c) { c->item_fields = -1; }
static void e_embedding_dim(mmrec_inttower_config *c) { c->embedding_dim = 0; }
static void e_user_dense(mmrec_inttower_config *c) { c->user_dense_dim = -1; }
static void e_item_dense(mmrec_inttower_config *c) { c->item_dense_dim = -2; }
static void e_num_hidden_null(mmrec_inttower_config *c) { c->num_hidden = 2; }
static const int64_t mt_bad_hidden[3] = {4, 0, 2};
static void e_num_hidden(mmrec_inttower_config *c) {
    c->hidden_sizes = mt_bad_hidden;
    c->num_hidden = MMREC_INTTOWER_MAX_LAYERS + 1;
}
static void e_hidden_size(mmrec_inttower_config *c) {
    c->hidden_sizes = mt_bad_hidden;
    c->num_hidden = 3;
}
static const int64_t mt_huge_hidden[2] = {4, (int64_t)1 << 31};
static void e_hidden_huge(mmrec_inttower_config *c) {
    c->hidden_sizes = mt_huge_hidden;
    c->num_hidden = 2;
}
static void e_user_heads(mmrec_inttower_config *c) { c->user_heads = 0; }
static void e_item_heads(mmrec_inttower_config *c) { c->item_heads = 0; }
static void e_field_dim(mmrec_inttower_config *c) { c->field_dim = 0; }
static void e_dropout(mmrec_inttower_config *c) { c->dropout = 1.0f; }
static void e_init_std(mmrec_inttower_config *c) { c->init_std = 0.0f; }
static void e_lightse_bias(mmrec_inttower_config *c) { c->lightse_bias = 2; }
static void e_huge(mmrec_inttower_config *c) { c->field_dim = (int64_t)1 << 30; }

START_TEST(test_inttower_create_bad_config) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    MT_EXPECT(mt_create_with(model, e_user_fields), MMREC_EINVAL, "cfg->user_fields is 0");
    MT_EXPECT(mt_create_with(model, e_item_fields), MMREC_EINVAL, "cfg->item_fields is -1");
    MT_EXPECT(mt_create_with(model, e_embedding_dim), MMREC_EINVAL, "cfg->embedding_dim");
    MT_EXPECT(mt_create_with(model, e_user_dense), MMREC_EINVAL, "cfg->user_dense_dim");
    MT_EXPECT(mt_create_with(model, e_item_dense), MMREC_EINVAL, "cfg->item_dense_dim");
    MT_EXPECT(mt_create_with(model, e_num_hidden_null), MMREC_EINVAL, "cfg->num_hidden is 2");
    MT_EXPECT(mt_create_with(model, e_num_hidden), MMREC_EINVAL, "cfg->num_hidden is 17");
    MT_EXPECT(mt_create_with(model, e_hidden_size), MMREC_EINVAL, "cfg->hidden_sizes[1] is 0");
    MT_EXPECT(mt_create_with(model, e_hidden_huge), MMREC_EINVAL, "cfg->hidden_sizes[1]");
    MT_EXPECT(mt_create_with(model, e_user_heads), MMREC_EINVAL, "cfg->user_heads is 0");
    MT_EXPECT(mt_create_with(model, e_item_heads), MMREC_EINVAL, "cfg->item_heads is 0");
    MT_EXPECT(mt_create_with(model, e_field_dim), MMREC_EINVAL, "cfg->field_dim is 0");
    MT_EXPECT(mt_create_with(model, e_dropout), MMREC_EINVAL, "cfg->dropout");
    MT_EXPECT(mt_create_with(model, e_init_std), MMREC_EINVAL, "cfg->init_std");
    MT_EXPECT(mt_create_with(model, e_lightse_bias), MMREC_EINVAL, "cfg->lightse_bias is 2");
    MT_EXPECT(mt_create_with(model, e_huge), MMREC_EINVAL, "cfg");
    /* nothing was added by the failures */
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    ck_assert_uint_eq(n, 0);
    mmrec_inttower_config c;
    MT_OK(mmrec_inttower_config_init(&c));
    c.user_fields = c.item_fields = 1;
    c.embedding_dim = 2;
    MT_OK(mmrec_inttower_create(model, "it", &c, NULL));
    MT_EXPECT(mmrec_inttower_create(model, "it", &c, NULL), MMREC_ESTATE, "it");
    c.user_heads = 0;
    MT_EXPECT(mmrec_inttower_create(model, "it_heads", &c, NULL), MMREC_EINVAL,
              "cfg->user_heads is 0");
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_inttower_bad_input) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *m = mt_it_small(model, "it", 0, 0.0f, 3), *m2;
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = lc.out_dim = 2;
    mmrec_module *lin;
    MT_OK(mmrec_linear_create(model, "lin", &lc, &lin));
    /* a second module with another field_dim and other heads */
    mmrec_inttower_config c;
    MT_OK(mmrec_inttower_config_init(&c));
    c.user_fields = 3;
    c.item_fields = 2;
    c.embedding_dim = 3;
    c.user_dense_dim = 2;
    c.item_dense_dim = 1;
    static const int64_t hidden[2] = {5, 4};
    c.hidden_sizes = hidden;
    c.num_hidden = 2;
    c.user_heads = 2;
    c.item_heads = 2;
    c.field_dim = 4;
    MT_OK(mmrec_inttower_create(model, "it2", &c, &m2));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *ue, *ue_f, *ue_2d, *ud, *ud_rows, *ie, *id, *ufe, *ife, *ife2, *ife_b, *y = NULL;
    int64_t su[3] = {4, 3, 3}, suf[3] = {4, 4, 3}, s2[2] = {4, 9}, sd[2] = {4, 2},
            sdr[2] = {3, 2}, si[3] = {4, 2, 3}, sj[2] = {4, 1}, sib[3] = {3, 2, 3},
            sjb[2] = {3, 1};
    MT_OK(mmrec_tape_tensor(tape, 3, su, 0, &ue));
    MT_OK(mmrec_tape_tensor(tape, 3, suf, 0, &ue_f));
    MT_OK(mmrec_tape_tensor(tape, 2, s2, 0, &ue_2d));
    MT_OK(mmrec_tape_tensor(tape, 2, sd, 0, &ud));
    MT_OK(mmrec_tape_tensor(tape, 2, sdr, 0, &ud_rows));
    MT_OK(mmrec_tape_tensor(tape, 3, si, 0, &ie));
    MT_OK(mmrec_tape_tensor(tape, 2, sj, 0, &id));

    /* the towers */
    MT_EXPECT(mmrec_inttower_user_forward(lin, tape, ue, ud, &ufe, NULL), MMREC_EINVAL,
              "inttower");
    MT_EXPECT(mmrec_inttower_user_forward(m, tape, ue_2d, ud, &ufe, NULL), MMREC_ESHAPE,
              "fields is [4,9]");
    MT_EXPECT(mmrec_inttower_user_forward(m, tape, ue_f, ud, &ufe, NULL), MMREC_ESHAPE,
              "fields is [4,4,3]");
    MT_EXPECT(mmrec_inttower_user_forward(m, tape, ue, NULL, &ufe, NULL), MMREC_EINVAL,
              "'dense' is NULL but cfg.user_dense_dim is 2");
    MT_EXPECT(mmrec_inttower_user_forward(m, tape, ue, ud_rows, &ufe, NULL), MMREC_ESHAPE,
              "dense is [3,2]");
    MT_EXPECT(mmrec_inttower_item_forward(m, tape, ue, id, &ife, NULL), MMREC_ESHAPE,
              "fields is [4,3,3]");
    MT_EXPECT(mmrec_inttower_item_forward(m, tape, ie, ud, &ife, NULL), MMREC_ESHAPE,
              "dense is [4,2]");
    MT_EXPECT(mmrec_inttower_item_forward(lin, tape, ie, id, &ife, NULL), MMREC_EINVAL,
              "inttower");
    mmrec_module *nodense;
    c.user_dense_dim = c.item_dense_dim = 0;
    MT_OK(mmrec_inttower_create(model, "it3", &c, &nodense));
    MT_EXPECT(mmrec_inttower_user_forward(nodense, tape, ue, ud, &ufe, NULL), MMREC_EINVAL,
              "dense is given");
    MT_EXPECT(mmrec_inttower_item_forward(nodense, tape, ie, id, &ife, NULL), MMREC_EINVAL,
              "dense is given");

    /* the scores */
    MT_OK(mmrec_inttower_user_forward(m, tape, ue, ud, &ufe, NULL));
    MT_OK(mmrec_inttower_item_forward(m, tape, ie, id, &ife, NULL));
    MT_OK(mmrec_inttower_item_forward(m2, tape, ie, id, &ife2, NULL));
    mmrec_tensor *ib, *jb;
    MT_OK(mmrec_tape_tensor(tape, 3, sib, 0, &ib));
    MT_OK(mmrec_tape_tensor(tape, 2, sjb, 0, &jb));
    MT_OK(mmrec_inttower_item_forward(m, tape, ib, jb, &ife_b, NULL));
    MT_EXPECT(mmrec_inttower_score(m, tape, ufe, ife2, &y), MMREC_ESHAPE, "item_fe is [4,2,4]");
    MT_EXPECT(mmrec_inttower_score(m2, tape, ufe, ife2, &y), MMREC_ESHAPE, "user_fe is [4,4,3]");
    MT_EXPECT(mmrec_inttower_score(m, tape, ife, ife, &y), MMREC_ESHAPE, "user_fe is [4,3,3]");
    MT_EXPECT(mmrec_inttower_score(lin, tape, ufe, ife, &y), MMREC_EINVAL, "inttower");
    MT_EXPECT(mmrec_inttower_score_paired(m, tape, ufe, ife2, &y), MMREC_ESHAPE, "item_fe");
    MT_EXPECT(mmrec_inttower_score_paired(m, tape, ufe, ife_b, &y), MMREC_ESHAPE,
              "item_fe is [3,3,3]");
    MT_EXPECT(mmrec_inttower_score_paired(m, tape, ue, ife, &y), MMREC_ESHAPE, "user_fe");
    ck_assert_ptr_null(y);
    MT_OK(mmrec_inttower_score(m, tape, ufe, ife_b, &y));
    MT_OK(mmrec_inttower_score_paired(m, tape, ufe, ife, &y));

    /* CIR */
    mmrec_tensor *u, *v, *v5, *u1;
    int64_t s46[2] = {4, 6}, s45[2] = {4, 5}, s16[2] = {1, 6};
    MT_OK(mmrec_tape_tensor(tape, 2, s46, 0, &u));
    MT_OK(mmrec_tape_tensor(tape, 2, s46, 0, &v));
    MT_OK(mmrec_tape_tensor(tape, 2, s45, 0, &v5));
    MT_OK(mmrec_tape_tensor(tape, 2, s16, 0, &u1));
    float labels[4] = {1, 0, 0.5f, 1};
    MT_EXPECT(mmrec_loss_inttower_cir(tape, u, v, labels, 4, NULL, &y), MMREC_EINVAL,
              "labels[2] is 0.5");
    labels[2] = NAN;
    MT_EXPECT(mmrec_loss_inttower_cir(tape, u, v, labels, 4, NULL, &y), MMREC_EINVAL,
              "labels[2]");
    labels[2] = 1;
    MT_EXPECT(mmrec_loss_inttower_cir(tape, u, v, labels, 3, NULL, &y), MMREC_ESHAPE,
              "n is 3");
    MT_EXPECT(mmrec_loss_inttower_cir(tape, u, v5, labels, 4, NULL, &y), MMREC_ESHAPE,
              "item_vec is [4,5]");
    MT_EXPECT(mmrec_loss_inttower_cir(tape, ue, v, labels, 4, NULL, &y), MMREC_ESHAPE,
              "user_vec is [4,3,3]");
    mmrec_inttower_cir_config cc;
    MT_OK(mmrec_inttower_cir_config_init(&cc));
    cc.temperature = 0.0f;
    MT_EXPECT(mmrec_loss_inttower_cir(tape, u, v, labels, 4, &cc, &y), MMREC_EINVAL,
              "cfg->temperature is 0");
    cc.temperature = 1e-39f;
    MT_EXPECT(mmrec_loss_inttower_cir(tape, u, v, labels, 4, &cc, &y), MMREC_EINVAL,
              "cfg->temperature");
    cc.temperature = 0.07f;
    cc.weight = -1.0f;
    MT_EXPECT(mmrec_loss_inttower_cir(tape, u, v, labels, 4, &cc, &y), MMREC_EINVAL,
              "cfg->weight is -1");
    cc.weight = INFINITY;
    MT_EXPECT(mmrec_loss_inttower_cir(tape, u, v, labels, 4, &cc, &y), MMREC_EINVAL,
              "cfg->weight");
    cc.weight = 1.0f;
    cc.label_indexed = 2;
    MT_EXPECT(mmrec_loss_inttower_cir(tape, u, v, labels, 4, &cc, &y), MMREC_EINVAL,
              "cfg->label_indexed is 2");
    cc.label_indexed = 1;
    MT_EXPECT(mmrec_loss_inttower_cir(tape, u1, u1, labels, 1, &cc, &y), MMREC_ESHAPE,
              "user_vec has 1 row");
    MT_OK(mmrec_loss_inttower_cir(tape, u, v, labels, 4, &cc, &y));
    cc.label_indexed = 0;
    MT_OK(mmrec_loss_inttower_cir(tape, u1, u1, labels, 1, &cc, &y));
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* A failed call changes nothing on the tape. */
START_TEST(test_inttower_failed_call_leaves_the_tape) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_module *m = mt_it_small(model, "it", 0, 0.0f, 3);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t su[3] = {4, 3, 3}, sd[2] = {4, 2};
    mmrec_tensor *ue, *ud, *out = NULL;
    MT_OK(mmrec_tape_tensor(tape, 3, su, MMREC_TENSOR_REQUIRES_GRAD, &ue));
    MT_OK(mmrec_tape_tensor(tape, 2, sd, 0, &ud));
    size_t cap0, hw0, cap1, hw1;
    MT_OK(mmrec_tape_memory(tape, &cap0, &hw0));
    MT_EXPECT(mmrec_inttower_user_forward(m, tape, ue, ue, &out, NULL), MMREC_ESHAPE, "dense");
    MT_OK(mmrec_tape_memory(tape, &cap1, &hw1));
    ck_assert_uint_eq(hw0, hw1);
    ck_assert_ptr_null(out);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- config sizes (STYLE.md 5) ---- */

START_TEST(test_inttower_config_sizes) {
    unsigned char buf[256];
    size_t first = MMREC__MIN_SIZE(mmrec_inttower_config);
    ck_assert_uint_eq(first, 88);
    MT_EXPECT(mmrec_inttower_config_init_sized((mmrec_inttower_config *)(void *)buf, first - 1),
              MMREC_EINVAL, "size");
    memset(buf, 0xab, sizeof buf);
    MT_OK(mmrec_inttower_config_init_sized((mmrec_inttower_config *)(void *)buf, first));
    ck_assert_uint_eq(((mmrec_inttower_config *)(void *)buf)->struct_size, first);
    ck_assert_uint_eq(buf[first], 0xab);
    /* a larger struct: zero tail accepted, a set tail refused */
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    size_t big = sizeof(mmrec_inttower_config) + 16;
    memset(buf, 0, sizeof buf);
    mmrec_inttower_config *c = (mmrec_inttower_config *)(void *)buf;
    MT_OK(mmrec_inttower_config_init_sized(c, big));
    c->user_fields = c->item_fields = 1;
    c->embedding_dim = 2;
    MT_OK(mmrec_inttower_create(model, "a", c, NULL));
    buf[big - 1] = 1;
    MT_EXPECT(mmrec_inttower_create(model, "b", c, NULL), MMREC_EINVAL, "newer");
    /* the first-release size alone: the defaults for nothing after it */
    c->struct_size = first;
    MT_OK(mmrec_inttower_create(model, "c", c, NULL));

    first = MMREC__MIN_SIZE(mmrec_inttower_cir_config);
    ck_assert_uint_eq(first, 24);
    MT_EXPECT(mmrec_inttower_cir_config_init_sized((mmrec_inttower_cir_config *)(void *)buf,
                                                   first - 1),
              MMREC_EINVAL, "size");
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {2, 3};
    mmrec_tensor *u, *loss;
    MT_OK(mmrec_tape_tensor(tape, 2, s, 0, &u));
    static const float labels[2] = {1, 0};
    big = sizeof(mmrec_inttower_cir_config) + 8;
    memset(buf, 0, sizeof buf);
    mmrec_inttower_cir_config *cc = (mmrec_inttower_cir_config *)(void *)buf;
    MT_OK(mmrec_inttower_cir_config_init_sized(cc, big));
    MT_OK(mmrec_loss_inttower_cir(tape, u, u, labels, 2, cc, &loss));
    buf[big - 2] = 3;
    MT_EXPECT(mmrec_loss_inttower_cir(tape, u, u, labels, 2, cc, &loss), MMREC_EINVAL, "newer");
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* ---- a failed call changes nothing ---- */

static long mt_fail_at = -1, mt_alloc_count;
static void *mt_nth_alloc(void *user, size_t size) {
    (void)user;
    void *p = NULL;
    if (mt_alloc_count++ == mt_fail_at || posix_memalign(&p, 64, size ? size : 64) != 0)
        return NULL;
    return p;
}
static void mt_plain_release(void *user, void *p) {
    (void)user;
    free(p);
}

enum { MT_FB = 512 };

typedef struct mt_fail_ctx {
    mmrec_module *m;
    float *ue, *ud, *ie, *id, *labels;
    int which; /* 0 user forward, 1 all-pairs score, 2 CIR */
} mt_fail_ctx;

/* The inputs of a call on a fresh tape (not counted), then the call. */
static mmrec_status mt_fail_prepare(mt_fail_ctx *c, mmrec_tape *tape, mmrec_tensor **a,
                                    mmrec_tensor **b) {
    int64_t su[3] = {MT_FB, 3, 8}, sd[2] = {MT_FB, 2}, si[3] = {MT_FB, 2, 8}, sj[2] = {MT_FB, 1};
    mmrec_tensor *ue, *ud, *ie, *id;
    MT_FWD(mmrec_tape_wrap(tape, c->ue, 3, su, MMREC_TENSOR_REQUIRES_GRAD, &ue));
    MT_FWD(mmrec_tape_wrap(tape, c->ud, 2, sd, MMREC_TENSOR_READONLY, &ud));
    MT_FWD(mmrec_tape_wrap(tape, c->ie, 3, si, MMREC_TENSOR_REQUIRES_GRAD, &ie));
    MT_FWD(mmrec_tape_wrap(tape, c->id, 2, sj, MMREC_TENSOR_READONLY, &id));
    if (c->which == 0) {
        *a = ue;
        *b = ud;
        return MMREC_OK;
    }
    mmrec_tensor *uvec, *ivec;
    MT_FWD(mmrec_inttower_user_forward(c->m, tape, ue, ud, a, &uvec));
    MT_FWD(mmrec_inttower_item_forward(c->m, tape, ie, id, b, &ivec));
    if (c->which == 2) {
        *a = uvec;
        *b = ivec;
    }
    return MMREC_OK;
}

static mmrec_status mt_fail_call(mt_fail_ctx *c, mmrec_tape *tape, mmrec_tensor *a,
                                 mmrec_tensor *b, mmrec_tensor **out) {
    if (c->which == 0) return mmrec_inttower_user_forward(c->m, tape, a, b, out, NULL);
    if (c->which == 1) return mmrec_inttower_score(c->m, tape, a, b, out);
    mmrec_inttower_cir_config cc;
    MT_FWD(mmrec_inttower_cir_config_init(&cc));
    cc.weight = 0.5f;
    return mmrec_loss_inttower_cir(tape, a, b, c->labels, MT_FB, &cc, out);
}

/* With the n-th allocation of the call failing, n = 0, 1, ...: MMREC_ENOMEM,
 * the tape's record, arena position and generator as before, and the call
 * then gives what it gives on a fresh tape. */
START_TEST(test_inttower_failed_calls_change_nothing) {
    mmrec_allocator al = {sizeof al, mt_nth_alloc, mt_plain_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    static const int64_t hidden[2] = {64, 32};
    mmrec_inttower_config ic;
    MT_OK(mmrec_inttower_config_init(&ic));
    ic.user_fields = 3;
    ic.item_fields = 2;
    ic.embedding_dim = 8;
    ic.user_dense_dim = 2;
    ic.item_dense_dim = 1;
    ic.hidden_sizes = hidden;
    ic.num_hidden = 2;
    ic.user_heads = ic.item_heads = 2; /* few heads: the all-pairs score stays cheap */
    ic.field_dim = 4;
    ic.dropout = 0.1f;
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mt_fail_ctx c = {NULL, malloc(MT_FB * 24 * 4), malloc(MT_FB * 2 * 4), malloc(MT_FB * 16 * 4),
                     malloc(MT_FB * 4), malloc(MT_FB * 4), 0};
    MT_OK(mmrec_inttower_create(model, "it", &ic, &c.m));
    mt_fill_uniform(c.ue, MT_FB * 24, -1, 1, 31);
    mt_fill_uniform(c.ud, MT_FB * 2, -1, 1, 32);
    mt_fill_uniform(c.ie, MT_FB * 16, -1, 1, 33);
    mt_fill_uniform(c.id, MT_FB, -1, 1, 34);
    for (int i = 0; i < MT_FB; i++) c.labels[i] = (float)(i % 4 == 1);
    for (c.which = 0; c.which < 3; c.which++) {
        double want = 0;
        int failures = 0;
        for (long n = -1;; n++) {
            mmrec_tape *tape;
            MT_OK(mmrec_tape_create(&tape));
            MT_OK(mmrec_tape_seed(tape, 5));
            mmrec_tensor *a, *b, *y = NULL, *total;
            MT_OK(mt_fail_prepare(&c, tape, &a, &b));
            mmrec__tape_mark before = mmrec__tape_mark_get(tape);
            mt_alloc_count = 0;
            mt_fail_at = n;
            mmrec_status st = mt_fail_call(&c, tape, a, b, &y);
            mt_fail_at = -1;
            bool failed = st != MMREC_OK;
            if (failed) {
                ck_assert_msg(st == MMREC_ENOMEM, "%s", mmrec_last_error());
                ck_assert_ptr_null(y);
                mmrec__tape_mark after = mmrec__tape_mark_get(tape);
                ck_assert(after.tail == before.tail && after.n_nodes == before.n_nodes);
                ck_assert(after.data.cur == before.data.cur &&
                          after.data.offset == before.data.offset);
                ck_assert(memcmp(&after.rng, &before.rng, sizeof before.rng) == 0);
                failures++;
                MT_OK(mt_fail_call(&c, tape, a, b, &y));
            }
            MT_OK(mmrec_sum(tape, y, MMREC_AXIS_ALL, &total));
            double v = mt_data_of(total)[0];
            if (n == -1) want = v;
            ck_assert_msg(v == want, "call %d, allocation %ld failing: %g vs %g", c.which, n, v,
                          want);
            MT_OK(mmrec_tape_backward(tape, total));
            mmrec_tape_destroy(tape);
            if (n >= 0 && !failed) break;
        }
        ck_assert_int_ge(failures, 1);
    }
    mmrec_model_destroy(model);
    MT_OK(mmrec_set_allocator(NULL));
    free(c.ue);
    free(c.ud);
    free(c.ie);
    free(c.id);
    free(c.labels);
}
END_TEST

/* ---- allocation ---- */

typedef struct mt_it_step {
    mmrec_module *m;
    mmrec_tape *tape;
    float ue[16 * 9], ud[16 * 2], ie[16 * 6], id[16], labels[16];
} mt_it_step;

static void mt_it_step_fill(mt_it_step *k) {
    mt_fill_uniform(k->ue, 16 * 9, -1, 1, 21);
    mt_fill_uniform(k->ud, 16 * 2, -1, 1, 22);
    mt_fill_uniform(k->ie, 16 * 6, -1, 1, 23);
    mt_fill_uniform(k->id, 16, -1, 1, 24);
    for (int i = 0; i < 16; i++) k->labels[i] = (float)(i % 3 == 0);
}

/* One training step: both towers, paired BCE, the all-pairs scores, CIR,
 * backward. */
static mmrec_status mt_it_train_step(mt_it_step *k) {
    mmrec_tape *t = k->tape;
    int64_t su[3] = {16, 3, 3}, sd[2] = {16, 2}, si[3] = {16, 2, 3}, sj[2] = {16, 1},
            sl[1] = {16};
    mmrec_tensor *ue, *ud, *ie, *id, *y, *ufe, *uvec, *ife, *ivec, *p, *all, *l1, *l2, *l3;
    MT_FWD(mmrec_tape_wrap(t, k->ue, 3, su, MMREC_TENSOR_READONLY, &ue));
    MT_FWD(mmrec_tape_wrap(t, k->ud, 2, sd, MMREC_TENSOR_READONLY, &ud));
    MT_FWD(mmrec_tape_wrap(t, k->ie, 3, si, MMREC_TENSOR_READONLY, &ie));
    MT_FWD(mmrec_tape_wrap(t, k->id, 2, sj, MMREC_TENSOR_READONLY, &id));
    MT_FWD(mmrec_tape_wrap(t, k->labels, 1, sl, MMREC_TENSOR_READONLY, &y));
    MT_FWD(mmrec_inttower_user_forward(k->m, t, ue, ud, &ufe, &uvec));
    MT_FWD(mmrec_inttower_item_forward(k->m, t, ie, id, &ife, &ivec));
    MT_FWD(mmrec_inttower_score_paired(k->m, t, ufe, ife, &p));
    MT_FWD(mmrec_loss_bce_logits(t, p, y, &l1));
    MT_FWD(mmrec_inttower_score(k->m, t, ufe, ife, &all));
    MT_FWD(mmrec_mean(t, all, MMREC_AXIS_ALL, &l2));
    MT_FWD(mmrec_loss_inttower_cir(t, uvec, ivec, k->labels, 16, NULL, &l3));
    MT_FWD(mmrec_add(t, l1, l2, &l1));
    MT_FWD(mmrec_add(t, l1, l3, &l1));
    return mmrec_tape_backward(t, l1);
}

static mmrec_status mt_it_steady(void *ctx) {
    mt_it_step *k = ctx;
    mmrec_tape_reset(k->tape);
    return mt_it_train_step(k);
}

START_TEST(test_inttower_steady_state_no_malloc) {
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    static mt_it_step k;
    mt_it_step_fill(&k);
    k.m = mt_it_small(model, "it", 1, 0.3f, 2); /* dropout draws on the tape too */
    MT_OK(mmrec_tape_create(&k.tape));
    mt_assert_steady_state(mt_it_steady, &k);
    mmrec_tape_destroy(k.tape);
    mmrec_model_destroy(model);
    MT_OK(mmrec_set_allocator(NULL));
}
END_TEST

static mmrec_status mt_it_oom(void *ctx) {
    (void)ctx;
    static mt_it_step k;
    mt_it_step_fill(&k);
    mmrec_model *model = NULL;
    k.tape = NULL;
    mmrec_status s = mmrec_model_create(&model);
    if (s == MMREC_OK) {
        static const int64_t hidden[2] = {5, 4};
        mmrec_inttower_config c;
        MT_OK(mmrec_inttower_config_init(&c));
        c.user_fields = 3;
        c.item_fields = 2;
        c.embedding_dim = 3;
        c.user_dense_dim = 2;
        c.item_dense_dim = 1;
        c.hidden_sizes = hidden;
        c.num_hidden = 2;
        c.user_heads = 2;
        c.item_heads = 2; /* CIR needs H_u f = H_i f */
        c.field_dim = 3;
        c.dropout = 0.2f;
        s = mmrec_inttower_create(model, "it", &c, &k.m);
    }
    if (s == MMREC_OK) s = mmrec_tape_create(&k.tape);
    if (s == MMREC_OK) s = mt_it_train_step(&k);
    mmrec_tape_destroy(k.tape);
    mmrec_model_destroy(model);
    return s;
}

START_TEST(test_inttower_oom_reports_enomem_without_leaks) {
    ck_assert_int_gt(mt_oom_loop("inttower", mt_it_oom, NULL), 10);
}
END_TEST

static Suite *inttower_suite(void) {
    Suite *s = suite_create("inttower");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_inttower_create_bad_config);
    tcase_add_test(api, test_inttower_bad_input);
    tcase_add_test(api, test_inttower_failed_call_leaves_the_tape);
    tcase_add_test(api, test_inttower_config_sizes);
    suite_add_tcase(s, api);
    TCase *fwd = tcase_create("forward");
    tcase_add_test(fwd, test_inttower_matches_the_reference_code);
    tcase_add_test(fwd, test_inttower_cir_matches_paper_and_code);
    tcase_add_test(fwd, test_inttower_cir_without_clicks_is_zero);
    tcase_add_test(fwd, test_inttower_dropout_only_when_training);
    tcase_add_test(fwd, test_inttower_precomputed_items_score_as_fresh_ones);
    suite_add_tcase(s, fwd);
    TCase *bwd = tcase_create("backward");
    tcase_set_timeout(bwd, 120);
    tcase_add_test(bwd, test_inttower_gradients);
    tcase_add_test(bwd, test_inttower_cir_gradients);
    suite_add_tcase(s, bwd);
    TCase *rel = tcase_create("reliability");
    tcase_set_timeout(rel, 300);
    tcase_add_test(rel, test_inttower_steady_state_no_malloc);
    tcase_add_test(rel, test_inttower_oom_reports_enomem_without_leaks);
    tcase_add_test(rel, test_inttower_failed_calls_change_nothing);
    suite_add_tcase(s, rel);
    return s;
}
