/* The NaN and Inf policy (core.h): every loss and metric rejects a NaN or
 * an infinity in its inputs with MMREC_ENUMERIC naming the function, the
 * argument and the first bad index, leaving the tape as it was; the
 * check-finite mode makes ops, module forwards and backward nodes check
 * their outputs; the optimizer refuses, or skips, a step on non-finite
 * gradients. */
#include "mt.h"
#include "model/model_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

MT_SUITE(nonfinite_suite)

/* ---- losses: a table of calls over tape inputs ---- */

enum { NF_B = 4, NF_N = 6, NF_D = 5, NF_MAX_IN = 4 };

typedef mmrec_status (*nf_call_fn)(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out);

typedef struct nf_case {
    const char *func;             /* the public function, first in the message */
    int n_in;
    const char *names[NF_MAX_IN]; /* argument names, as in the header */
    int ndim[NF_MAX_IN];
    int64_t shape[NF_MAX_IN][3];
    float low, high;              /* valid values */
    int index_2d;                 /* message gives [row, col] (columns = shape[1]) */
    nf_call_fn call;
} nf_case;

static mmrec_status nf_bce(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    return mmrec_loss_bce_logits(t, in[0], in[1], out);
}
static mmrec_status nf_ce(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    static const int64_t labels[NF_B] = {0, 3, 5, 1};
    return mmrec_loss_softmax_ce(t, in[0], labels, NF_B, out);
}
static mmrec_status nf_bpr(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    return mmrec_loss_bpr(t, in[0], in[1], out);
}
static mmrec_status nf_mse(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    return mmrec_loss_mse(t, in[0], in[1], out);
}
static mmrec_status nf_bsm(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    return mmrec_loss_batch_softmax(t, in[0], in[1], NULL, out);
}
static mmrec_status nf_bsm_logits(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    return mmrec_loss_batch_softmax_logits(t, in[0], NULL, out);
}
static mmrec_status nf_seq(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    /* B = 2 users, T = 2 positions: ids [2, 3] */
    static const int64_t ids[6] = {1, 2, 3, 4, 5, 6};
    static const float pop[8] = {0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.3f};
    mmrec_sequence_softmax_config c;
    MT_OK(mmrec_sequence_softmax_config_init(&c));
    c.popularity = pop;
    c.num_items = 8;
    return mmrec_loss_sequence_softmax(t, in[0], in[1], ids, 6, &c, out);
}
static mmrec_status nf_kl(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    return mmrec_distill_kl(t, in[0], in[1], NULL, out);
}
static mmrec_status nf_dlogits(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    return mmrec_distill_logits(t, in[0], in[1], NULL, out);
}
static mmrec_status nf_gam(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    return mmrec_distill_gam(t, in[0], in[1], in[2], in[3], NULL, out);
}
static mmrec_status nf_dattn(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    return mmrec_distill_attn(t, in[0], in[1], NULL, out);
}
static mmrec_status nf_cic(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    mmrec_cic_config c;
    MT_OK(mmrec_cic_config_init(&c));
    return mmrec_loss_cic(t, in[0], in[1], &c, out);
}
static mmrec_status nf_infonce(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    return mmrec_loss_infonce(t, in[0], in[1], 0.2f, out);
}
static mmrec_status nf_anti(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    return mmrec_loss_anti_collapse(t, in[0], in[1], out);
}
static mmrec_status nf_ui(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    return mmrec_loss_ui_alignment(t, in[0], in[1], out);
}
static mmrec_status nf_cir(mmrec_tape *t, mmrec_tensor **in, mmrec_tensor **out) {
    static const float labels[NF_B] = {1, 0, 1, 0};
    return mmrec_loss_inttower_cir(t, in[0], in[1], labels, NF_B, NULL, out);
}

#define NF_2D(r, c) 2, {r, c}
static const nf_case nf_cases[] = {
    {"mmrec_loss_bce_logits", 2, {"logits", "targets"}, {2, 2}, {{NF_B, NF_N}, {NF_B, NF_N}},
     0.1f, 0.9f, 0, nf_bce},
    {"mmrec_loss_softmax_ce", 1, {"logits"}, {2}, {{NF_B, NF_N}}, -1, 1, 0, nf_ce},
    {"mmrec_loss_bpr", 2, {"pos", "neg"}, {1, 1}, {{NF_N}, {NF_N}}, -1, 1, 0, nf_bpr},
    {"mmrec_loss_mse", 2, {"pred", "target"}, {2, 2}, {{NF_B, NF_N}, {NF_B, NF_N}}, -1, 1, 0,
     nf_mse},
    {"mmrec_loss_batch_softmax", 2, {"queries", "candidates"}, {2, 2},
     {{NF_B, NF_D}, {NF_N, NF_D}}, -1, 1, 0, nf_bsm},
    {"mmrec_loss_batch_softmax_logits", 1, {"logits"}, {2}, {{NF_B, NF_N}}, -1, 1, 1,
     nf_bsm_logits},
    {"mmrec_loss_sequence_softmax", 2, {"states", "items"}, {3, 3}, {{2, 2, NF_D}, {2, 3, NF_D}},
     -1, 1, 0, nf_seq},
    {"mmrec_distill_kl", 2, {"student", "teacher"}, {2, 2}, {{NF_B, NF_N}, {NF_B, NF_N}}, -1, 1,
     1, nf_kl},
    {"mmrec_distill_logits", 2, {"student", "teacher"}, {1, 1}, {{NF_N}, {NF_N}}, -1, 1, 0,
     nf_dlogits},
    {"mmrec_distill_gam", 4, {"student_q", "student_a", "teacher_q", "teacher_a"}, {2, 2, 2, 2},
     {{NF_B, NF_D}, {NF_B, NF_D}, {NF_B, NF_N}, {NF_B, NF_N}}, -1, 1, 0, nf_gam},
    {"mmrec_distill_attn", 2, {"student", "teacher"}, {2, 2}, {{NF_B, NF_N}, {NF_B, NF_N}}, 0.05f,
     0.3f, 0, nf_dattn},
    {"mmrec_loss_cic", 2, {"content", "ids"}, {2, 2}, {{NF_B, NF_D}, {NF_B, NF_D}}, -1, 1, 0,
     nf_cic},
    {"mmrec_loss_infonce", 2, {"a", "b"}, {2, 2}, {{NF_B, NF_D}, {NF_B, NF_D}}, -1, 1, 0,
     nf_infonce},
    {"mmrec_loss_anti_collapse", 2, {"embeddings", "content"}, {2, 2},
     {{NF_B, NF_D}, {NF_B, NF_N}}, -1, 1, 0, nf_anti},
    {"mmrec_loss_ui_alignment", 2, {"users", "items"}, {2, 2}, {{NF_B, NF_D}, {NF_B, NF_D}}, -1,
     1, 0, nf_ui},
    {"mmrec_loss_inttower_cir", 2, {"user_vec", "item_vec"}, {2, 2},
     {{NF_B, NF_D}, {NF_B, NF_D}}, -1, 1, 0, nf_cir},
};

static size_t nf_numel(const nf_case *c, int k) {
    size_t n = 1;
    for (int d = 0; d < c->ndim[k]; d++) n *= (size_t)c->shape[k][d];
    return n;
}

/* The distance from a 1-float tape tensor made before `call` to one made
 * after it: equal for a call that added nothing to the tape. */
/* The distance between two 1-float tape tensors made one after the other. */
static ptrdiff_t nf_tape_step(mmrec_tape *t) {
    int64_t one = 1;
    mmrec_tensor *a, *b;
    float *pa, *pb;
    MT_OK(mmrec_tape_tensor(t, 1, &one, 0, &a));
    MT_OK(mmrec_tape_tensor(t, 1, &one, 0, &b));
    MT_OK(mmrec_tensor_data(a, &pa));
    MT_OK(mmrec_tensor_data(b, &pb));
    return (char *)pb - (char *)pa;
}

static ptrdiff_t nf_tape_growth(mmrec_tape *t, const nf_case *c, mmrec_tensor **in,
                                mmrec_tensor **out, mmrec_status *status) {
    int64_t one = 1;
    mmrec_tensor *a, *b;
    float *pa, *pb;
    MT_OK(mmrec_tape_tensor(t, 1, &one, 0, &a));
    *status = c->call(t, in, out);
    MT_OK(mmrec_tape_tensor(t, 1, &one, 0, &b));
    MT_OK(mmrec_tensor_data(a, &pa));
    MT_OK(mmrec_tensor_data(b, &pb));
    return (char *)pb - (char *)pa;
}

/* Every input of every loss, a NaN then +Inf then -Inf at a chosen index:
 * MMREC_ENUMERIC, the message "func: name[index] is <value>", *out untouched
 * and the tape as it was. With finite inputs the call succeeds. */
START_TEST(test_losses_reject_nan_and_inf_naming_op_and_index) {
    const nf_case *c = &nf_cases[_i];
    static float data[NF_MAX_IN][64];
    mmrec_tape *t;
    MT_OK(mmrec_tape_create(&t));
    static const float bad[3] = {NAN, INFINITY, -INFINITY};
    static const char *const bad_text[3] = {"nan", "inf", "-inf"};
    for (int k = -1; k < c->n_in; k++)
        for (int v = 0; v < (k < 0 ? 1 : 3); v++) {
            mmrec_tensor *in[NF_MAX_IN];
            size_t idx = 0;
            for (int j = 0; j < c->n_in; j++) {
                size_t n = nf_numel(c, j);
                ck_assert(n <= 64);
                mt_fill_uniform(data[j], n, c->low, c->high, 11 + (uint64_t)j);
                if (j == k) {
                    idx = n / 2 + 1; /* not the first element */
                    data[j][idx] = bad[v];
                }
                in[j] = mt_tape_tensor(t, c->ndim[j], c->shape[j], data[j],
                                       MMREC_TENSOR_REQUIRES_GRAD);
            }
            mmrec_tensor *sentinel = (mmrec_tensor *)&data, *out = sentinel;
            mmrec_status s;
            ptrdiff_t grown = nf_tape_growth(t, c, in, &out, &s);
            if (k < 0) {
                ck_assert_msg(s == MMREC_OK, "%s: %s", c->func, mmrec_last_error());
                ck_assert(out != sentinel);
                continue;
            }
            ck_assert_msg(s == MMREC_ENUMERIC, "%s with %s in %s: %s (%s)", c->func,
                          bad_text[v], c->names[k], mmrec_status_name(s), mmrec_last_error());
            char needle[160];
            if (c->index_2d)
                snprintf(needle, sizeof needle, "%s: %s[%zu, %zu] is %s", c->func, c->names[k],
                         idx / (size_t)c->shape[k][1], idx % (size_t)c->shape[k][1],
                         bad_text[v]);
            else
                snprintf(needle, sizeof needle, "%s: %s[%zu] is %s", c->func, c->names[k], idx,
                         bad_text[v]);
            ck_assert_msg(strstr(mmrec_last_error(), needle) != NULL, "'%s' lacks '%s'",
                          mmrec_last_error(), needle);
            ck_assert(out == sentinel);
            /* nothing left between the tensors made before and after */
            ptrdiff_t step = nf_tape_step(t);
            ck_assert_msg(grown == step, "%s left %td bytes on the tape", c->func, grown - step);
        }
    mmrec_tape_destroy(t);
}
END_TEST

/* By name, for the bad-input inventory. */
START_TEST(test_loss_bpr_names_the_bad_index) {
    mmrec_tape *t;
    MT_OK(mmrec_tape_create(&t));
    int64_t s = 4;
    float p[4] = {1, 2, 3, 4}, n[4] = {0, 0, NAN, 0};
    mmrec_tensor *pos = mt_tape_tensor(t, 1, &s, p, 0), *neg = mt_tape_tensor(t, 1, &s, n, 0);
    mmrec_tensor *out;
    MT_EXPECT(mmrec_loss_bpr(t, pos, neg, &out), MMREC_ENUMERIC, "neg[2] is nan");
    mmrec_tape_destroy(t);
}
END_TEST

/* MVKE's multi-task loss: experts, each task's tag and labels. */
START_TEST(test_mvke_loss_rejects_nan_and_inf) {
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    mmrec_mvke_config c;
    MT_OK(mmrec_mvke_config_init(&c));
    c.dim = 3;
    c.num_fields = 2;
    mmrec_module *mv;
    MT_OK(mmrec_mvke_create(m, "mvke", &c, &mv));
    mmrec_tape *t;
    MT_OK(mmrec_tape_create(&t));
    int64_t es[3] = {2, 5, 3}, ts[2] = {2, 3}, ls[1] = {2};
    float e[30], tg[2][6], lb[2][2] = {{1, 0}, {0, 1}};
    mt_fill_uniform(e, 30, -1, 1, 3);
    mt_fill_uniform(tg[0], 6, -1, 1, 4);
    mt_fill_uniform(tg[1], 6, -1, 1, 5);
    for (int round = 0; round < 4; round++) {
        float ee[30], tt[2][6], ll[2][2];
        memcpy(ee, e, sizeof e);
        memcpy(tt, tg, sizeof tt);
        memcpy(ll, lb, sizeof ll);
        const char *needle = NULL;
        if (round == 1) ee[17] = NAN, needle = "mmrec_mvke_loss: experts[17] is nan";
        if (round == 2) tt[1][4] = INFINITY, needle = "mmrec_mvke_loss: tags[1][4] is inf";
        if (round == 3) ll[0][1] = NAN, needle = "mmrec_mvke_loss: labels[0][1] is nan";
        mmrec_tensor *ex = mt_tape_tensor(t, 3, es, ee, 0);
        mmrec_tensor *tags[2] = {mt_tape_tensor(t, 2, ts, tt[0], 0),
                                 mt_tape_tensor(t, 2, ts, tt[1], 0)};
        mmrec_tensor *labels[2] = {mt_tape_tensor(t, 1, ls, ll[0], 0),
                                   mt_tape_tensor(t, 1, ls, ll[1], 0)};
        mmrec_tensor *out = NULL;
        MT_EXPECT(mmrec_mvke_loss(mv, t, ex, tags, labels, NULL, 2, &out),
                  needle ? MMREC_ENUMERIC : MMREC_OK, needle);
        ck_assert(needle == NULL || out == NULL);
    }
    mmrec_tape_destroy(t);
    mmrec_model_destroy(m);
}
END_TEST

/* ---- metrics ---- */

enum { NF_U = 6, NF_I = 9, NF_E = 4 };

static void nf_lists(mmrec_interactions **train, mmrec_interactions **test) {
    int64_t tu[6] = {0, 1, 2, 3, 4, 5}, ti[6] = {0, 1, 2, 3, 4, 5};
    int64_t su[6] = {0, 1, 2, 3, 4, 5}, si[6] = {6, 7, 8, 6, 7, 8};
    MT_OK(mmrec_interactions_create(tu, ti, 6, train));
    MT_OK(mmrec_interactions_create(su, si, 6, test));
}

/* Full ranking and full AUC: a NaN and an infinity in either embedding. */
START_TEST(test_ranking_evaluations_reject_nan_and_inf) {
    mmrec_interactions *train, *test;
    nf_lists(&train, &test);
    float ue[NF_U * NF_E], ie[NF_I * NF_E];
    mt_fill_uniform(ue, NF_U * NF_E, -1, 1, 1);
    mt_fill_uniform(ie, NF_I * NF_E, -1, 1, 2);
    int ks[1] = {3};
    mmrec_rank_metrics out[1];
    out[0].struct_size = sizeof out[0];
    double mean, w;
    static const float bad[2] = {NAN, INFINITY};
    static const char *const text[2] = {"nan", "inf"};
    for (int v = 0; v < 2; v++)
        for (int which = 0; which < 2; which++) {
            float *x = which ? ie : ue;
            size_t idx = which ? 13 : 7;
            float keep = x[idx];
            x[idx] = bad[v];
            char needle[96];
            snprintf(needle, sizeof needle, "mmrec_eval_full_ranking: %s[%zu] is %s",
                     which ? "item_emb" : "user_emb", idx, text[v]);
            MT_EXPECT(mmrec_eval_full_ranking(ue, ie, NF_U, NF_I, NF_E, train, test, ks, 1, out),
                      MMREC_ENUMERIC, needle);
            snprintf(needle, sizeof needle, "mmrec_eval_full_auc: %s[%zu] is %s",
                     which ? "item_emb" : "user_emb", idx, text[v]);
            MT_EXPECT(mmrec_eval_full_auc(ue, ie, NF_U, NF_I, NF_E, train, test, &mean, &w, NULL),
                      MMREC_ENUMERIC, needle);
            x[idx] = keep;
        }
    MT_OK(mmrec_eval_full_ranking(ue, ie, NF_U, NF_I, NF_E, train, test, ks, 1, out));
    MT_OK(mmrec_eval_full_auc(ue, ie, NF_U, NF_I, NF_E, train, test, &mean, &w, NULL));
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
}
END_TEST

/* AlignRec's content evaluations: a NaN and an infinity in the features. */
START_TEST(test_content_evaluations_reject_nan_and_inf) {
    mmrec_interactions *train, *test;
    nf_lists(&train, &test);
    float f[NF_I * NF_E];
    mt_fill_uniform(f, NF_I * NF_E, -1, 1, 3);
    int ks[1] = {3};
    mmrec_rank_metrics out[1];
    out[0].struct_size = sizeof out[0];
    f[22] = NAN;
    MT_EXPECT(mmrec_eval_zero_shot(f, NF_I, NF_E, test, ks, 1, out), MMREC_ENUMERIC,
              "mmrec_eval_zero_shot: features[22] is nan");
    MT_EXPECT(mmrec_eval_item_cf(f, NF_I, NF_E, train, ks, 1, out), MMREC_ENUMERIC,
              "mmrec_eval_item_cf: features[22] is nan");
    f[22] = -INFINITY;
    MT_EXPECT(mmrec_eval_zero_shot(f, NF_I, NF_E, test, ks, 1, out), MMREC_ENUMERIC,
              "mmrec_eval_zero_shot: features[22] is -inf");
    MT_EXPECT(mmrec_eval_item_cf(f, NF_I, NF_E, train, ks, 1, out), MMREC_ENUMERIC,
              "mmrec_eval_item_cf: features[22] is -inf");
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
}
END_TEST

/* Pointwise AUC and GAUC: a NaN score is refused (infinite scores rank). */
START_TEST(test_auc_rejects_nan_scores) {
    float sc[6] = {0.1f, 0.9f, 0.4f, NAN, 0.3f, 0.2f}, lb[6] = {0, 1, 0, 1, 0, 1};
    int64_t g[6] = {1, 1, 1, 2, 2, 2};
    double out;
    MT_EXPECT(mmrec_metric_auc(sc, lb, 6, &out), MMREC_ENUMERIC,
              "mmrec_metric_auc: scores[3] is nan");
    MT_EXPECT(mmrec_metric_gauc(sc, lb, g, 6, &out, NULL), MMREC_ENUMERIC,
              "mmrec_metric_gauc: scores[3] is nan");
}
END_TEST

/* ---- the check-finite mode ---- */

START_TEST(test_check_finite_setting) {
    ck_assert_int_eq(mmrec_get_check_finite(), 0);
    MT_EXPECT(mmrec_set_check_finite(2), MMREC_EINVAL, "enabled is 2");
    MT_EXPECT(mmrec_set_check_finite(-1), MMREC_EINVAL, "enabled is -1");
    ck_assert_int_eq(mmrec_get_check_finite(), 0);
    MT_OK(mmrec_set_check_finite(1));
    ck_assert_int_eq(mmrec_get_check_finite(), 1);
    MT_OK(mmrec_set_check_finite(0));
    ck_assert_int_eq(mmrec_get_check_finite(), 0);
}
END_TEST

/* Ops whose output overflows (finite inputs): off, the call succeeds with
 * the infinity in its output; on, MMREC_ENUMERIC naming the function, the
 * node and the index, *out untouched, the tape as it was. */
START_TEST(test_check_finite_mode_on_ops) {
    mmrec_tape *t;
    MT_OK(mmrec_tape_create(&t));
    int64_t s[2] = {2, 3}, st[2] = {3, 2};
    float a[6] = {1, 2, 3, 4, 3e38f, 3e38f}, b[6] = {1, 1, 1, 1, 1, 1};
    mmrec_tensor *x = mt_tape_tensor(t, 2, s, a, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *y = mt_tape_tensor(t, 2, s, b, 0), *yt = mt_tape_tensor(t, 2, st, b, 0);
    for (int on = 0; on < 2; on++) {
        MT_OK(mmrec_set_check_finite(on));
        mmrec_tensor *out = NULL, *o1, *o2;
        float *d;
        int64_t one = 1;
        MT_OK(mmrec_tape_tensor(t, 1, &one, 0, &o1));
        if (on) {
            MT_EXPECT(mmrec_scale(t, x, 10.0f, &out), MMREC_ENUMERIC,
                      "mmrec_scale: output of 'scale' has inf at index 4");
            ck_assert(out == NULL);
            MT_EXPECT(mmrec_add(t, x, x, &out), MMREC_ENUMERIC,
                      "mmrec_add: output of 'add' has inf at index 4");
            MT_EXPECT(mmrec_mul(t, x, x, &out), MMREC_ENUMERIC, "'mul' has inf at index 4");
            MT_EXPECT(mmrec_matmul(t, x, yt, 0, &out), MMREC_ENUMERIC,
                      "mmrec_matmul: output of 'matmul' has inf at index 2");
            MT_EXPECT(mmrec_sum(t, x, MMREC_AXIS_ALL, &out), MMREC_ENUMERIC, "index 0");
            ck_assert(out == NULL);
            MT_OK(mmrec_tape_tensor(t, 1, &one, 0, &o2));
            float *p1, *p2;
            MT_OK(mmrec_tensor_data(o1, &p1));
            MT_OK(mmrec_tensor_data(o2, &p2));
            /* the failures left nothing between o1 and o2 */
            ck_assert(p2 - p1 == nf_tape_step(t) / (ptrdiff_t)sizeof(float));
            /* a finite result still passes */
            MT_OK(mmrec_add(t, y, y, &out));
        } else {
            MT_OK(mmrec_scale(t, x, 10.0f, &out));
            MT_OK(mmrec_tensor_data(out, &d));
            ck_assert(isinf(d[4]));
            MT_OK(mmrec_matmul(t, x, yt, 0, &out));
            MT_OK(mmrec_mul(t, x, x, &out));
        }
    }
    MT_OK(mmrec_set_check_finite(0));
    mmrec_tape_destroy(t);
}
END_TEST

/* A masked log-softmax's -inf at removed positions is a value, not an
 * error, in the check mode too. */
START_TEST(test_check_finite_mode_keeps_masked_log_softmax) {
    mmrec_tape *t;
    MT_OK(mmrec_tape_create(&t));
    int64_t s[2] = {2, 3};
    float a[6] = {1, 2, 3, 4, 5, 6}, mk[6] = {1, 0, 1, 1, 1, 0};
    mmrec_tensor *x = mt_tape_tensor(t, 2, s, a, 0), *mask = mt_tape_tensor(t, 2, s, mk, 0);
    MT_OK(mmrec_set_check_finite(1));
    mmrec_tensor *out;
    MT_OK(mmrec_log_softmax(t, x, mask, &out));
    float *d;
    MT_OK(mmrec_tensor_data(out, &d));
    ck_assert(d[1] == -INFINITY && d[5] == -INFINITY);
    MT_OK(mmrec_set_check_finite(0));
    mmrec_tape_destroy(t);
}
END_TEST

/* A module forward (Linear, an MLP) whose weights make its output
 * overflow; a loss whose finite inputs overflow its value. */
START_TEST(test_check_finite_mode_on_module_forward_and_loss) {
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = 3;
    lc.out_dim = 2;
    mmrec_module *lin;
    MT_OK(mmrec_linear_create(m, "lin", &lc, &lin));
    mmrec_tensor *w;
    MT_OK(mmrec_model_param(m, "lin.weight", &w));
    float big[6] = {3e38f, 3e38f, 0, 0, 0, 0};
    MT_OK(mmrec_tensor_copy_from(w, big, 6));
    mmrec_tape *t;
    MT_OK(mmrec_tape_create(&t));
    int64_t s[2] = {2, 3};
    float a[6] = {1, 1, 1, 1, 1, 1};
    mmrec_tensor *x = mt_tape_tensor(t, 2, s, a, 0), *out = NULL;
    MT_OK(mmrec_linear_forward(lin, t, x, &out));
    MT_OK(mmrec_set_check_finite(1));
    out = NULL;
    MT_EXPECT(mmrec_linear_forward(lin, t, x, &out), MMREC_ENUMERIC,
              "mmrec_linear_forward: output of 'linear' has inf at index 0");
    ck_assert(out == NULL);
    int64_t p = 2;
    float pr[2] = {3e38f, 0}, tg[2] = {-3e38f, 0};
    mmrec_tensor *pred = mt_tape_tensor(t, 1, &p, pr, 0), *target = mt_tape_tensor(t, 1, &p, tg, 0);
    MT_EXPECT(mmrec_loss_mse(t, pred, target, &out), MMREC_ENUMERIC,
              "mmrec_loss_mse: output of 'mse' has inf at index 0");
    MT_OK(mmrec_set_check_finite(0));
    MT_OK(mmrec_loss_mse(t, pred, target, &out));
    mmrec_tape_destroy(t);
    mmrec_model_destroy(m);
}
END_TEST

/* A composite module (an MLP): its second layer overflows; the message
 * names the MLP and its 'linear' node, and the first layer's nodes are
 * rolled back too. */
START_TEST(test_check_finite_mode_on_composite_module) {
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    int64_t sizes[3] = {2, 2, 1};
    mmrec_mlp_config mc;
    MT_OK(mmrec_mlp_config_init(&mc));
    mc.sizes = sizes;
    mc.num_sizes = 3;
    mmrec_module *mlp;
    MT_OK(mmrec_mlp_create(m, "mlp", &mc, &mlp));
    mmrec_tensor *w0, *w1;
    MT_OK(mmrec_model_param(m, "mlp.0.weight", &w0));
    MT_OK(mmrec_model_param(m, "mlp.1.weight", &w1));
    float id[4] = {1, 0, 0, 1}, big[2] = {3e38f, 3e38f};
    MT_OK(mmrec_tensor_copy_from(w0, id, 4));
    MT_OK(mmrec_tensor_copy_from(w1, big, 2));
    mmrec_tape *t;
    MT_OK(mmrec_tape_create(&t));
    int64_t s[2] = {1, 2}, one = 1;
    float a[2] = {1, 1};
    mmrec_tensor *x = mt_tape_tensor(t, 2, s, a, 0), *out = NULL, *o1, *o2;
    MT_OK(mmrec_set_check_finite(1));
    MT_OK(mmrec_tape_tensor(t, 1, &one, 0, &o1));
    MT_EXPECT(mmrec_mlp_forward(mlp, t, x, &out), MMREC_ENUMERIC,
              "mmrec_mlp_forward: output of 'linear' has inf at index 0");
    MT_OK(mmrec_tape_tensor(t, 1, &one, 0, &o2));
    ck_assert(out == NULL);
    float *p1, *p2;
    MT_OK(mmrec_tensor_data(o1, &p1));
    MT_OK(mmrec_tensor_data(o2, &p2));
    ck_assert(p2 - p1 == nf_tape_step(t) / (ptrdiff_t)sizeof(float));
    MT_OK(mmrec_set_check_finite(0));
    MT_OK(mmrec_mlp_forward(mlp, t, x, &out));
    mmrec_tape_destroy(t);
    mmrec_model_destroy(m);
}
END_TEST

/* Backward: finite forward values whose gradient overflows. Off, the walk
 * succeeds with the infinity in the gradient; on, it names the node. */
START_TEST(test_check_finite_mode_on_backward) {
    for (int on = 0; on < 2; on++) {
        mmrec_tape *t;
        MT_OK(mmrec_tape_create(&t));
        int64_t s = 2;
        float a[2] = {1e30f, 1e30f};
        mmrec_tensor *x = mt_tape_tensor(t, 1, &s, a, MMREC_TENSOR_REQUIRES_GRAD), *sq, *loss;
        MT_OK(mmrec_scale(t, x, 1e-30f, &sq)); /* finite: [1, 1] */
        MT_OK(mmrec_mul(t, sq, x, &sq));        /* finite: [1e30, 1e30] */
        MT_OK(mmrec_mean(t, sq, MMREC_AXIS_ALL, &loss));
        MT_OK(mmrec_set_check_finite(on));
        /* d(mul)/d(scale's output) = x: fine; d(scale)/dx = 1e-30 * ..., the
         * gradient of x from mul is sq = 1 each: fine. Seed 1e10 overflows. */
        float seed[1] = {1e10f};
        if (on)
            MT_EXPECT(mmrec_tape_backward_from(t, loss, seed), MMREC_ENUMERIC,
                      "backward of 'mul' gave inf at index 0");
        else {
            MT_OK(mmrec_tape_backward_from(t, loss, seed));
            const float *g;
            MT_OK(mmrec_tensor_grad(x, &g));
            ck_assert(!isfinite(g[0]));
        }
        MT_OK(mmrec_set_check_finite(0));
        mmrec_tape_destroy(t);
    }
}
END_TEST

/* ---- the optimizer ---- */

static mmrec_optimizer *nf_opt(mmrec_model *m, int policy) {
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    ck_assert_int_eq(cfg.nonfinite_grads, MMREC_NONFINITE_ERROR);
    cfg.type = MMREC_OPT_ADAM;
    cfg.lr = 0.1f;
    cfg.nonfinite_grads = policy;
    mmrec_optimizer *o;
    MT_OK(mmrec_optimizer_create(m, &cfg, &o));
    return o;
}

START_TEST(test_optimizer_refuses_then_skips_nonfinite_gradients) {
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    int64_t s3 = 3;
    mmrec_tensor *a, *emb;
    MT_OK(mmrec_model_add_param(m, "a", 1, &s3, &a));
    mmrec_embedding_config ec;
    MT_OK(mmrec_embedding_config_init(&ec));
    ec.num_rows = 4;
    ec.dim = 2;
    mmrec_module *e;
    MT_OK(mmrec_embedding_create(m, "emb", &ec, &e));
    MT_OK(mmrec_model_param(m, "emb.weight", &emb));
    for (int policy = 0; policy < 2; policy++) {
        mmrec_optimizer *o = nf_opt(m, policy);
        float before[11], after[11], g[11] = {1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0};
        MT_OK(mmrec_model_export_params(m, before, 11));
        /* a row-sparse step: row 2 of the table, through a gather */
        mmrec_tape *t;
        MT_OK(mmrec_tape_create(&t));
        int64_t id = 2;
        mmrec_tensor *rows, *loss;
        MT_OK(mmrec_embedding_forward(e, t, &id, 1, &rows));
        MT_OK(mmrec_sum(t, rows, MMREC_AXIS_ALL, &loss));
        MT_OK(mmrec_tape_backward(t, loss));
        for (int i = 0; i < 3; i++) a->grad[i] = g[i];
        emb->grad[2 * 2 + 1] = NAN; /* row 2, column 1: a touched row */
        uint64_t steps, skipped;
        if (policy == MMREC_NONFINITE_ERROR) {
            MT_EXPECT(mmrec_optimizer_step(o), MMREC_ENUMERIC,
                      "gradient of parameter 'emb.weight' has nan at element 5");
            ck_assert(a->grad[1] == 2.0f); /* gradients kept */
            emb->grad[5] = 1.0f;
            a->grad[2] = -INFINITY;
            MT_EXPECT(mmrec_optimizer_step(o), MMREC_ENUMERIC,
                      "gradient of parameter 'a' has -inf at element 2");
            MT_OK(mmrec_optimizer_skipped_steps(o, &skipped));
            ck_assert_uint_eq(skipped, 0);
        } else {
            MT_OK(mmrec_optimizer_step(o));
            ck_assert(a->grad[0] == 0.0f && a->grad[1] == 0.0f); /* cleared */
            ck_assert(emb->grad[5] == 0.0f);
            MT_OK(mmrec_optimizer_skipped_steps(o, &skipped));
            ck_assert_uint_eq(skipped, 1);
        }
        MT_OK(mmrec_model_export_params(m, after, 11));
        ck_assert(memcmp(before, after, sizeof before) == 0);
        MT_OK(mmrec_optimizer_step_count(o, &steps));
        ck_assert_uint_eq(steps, 0);
        /* the optimizer's state is untouched: the next good step is the first */
        MT_OK(mmrec_model_zero_grad(m));
        for (int i = 0; i < 3; i++) a->grad[i] = 1.0f;
        MT_OK(mmrec_optimizer_step(o));
        MT_OK(mmrec_model_export_params(m, after, 11));
        for (int i = 0; i < 3; i++) /* Adam's first step moves by lr */
            ck_assert_msg(fabsf(after[i] - (before[i] - 0.1f)) < 1e-6f, "a[%d]", i);
        MT_OK(mmrec_optimizer_step_count(o, &steps));
        ck_assert_uint_eq(steps, 1);
        /* restore for the next policy */
        MT_OK(mmrec_model_import_params(m, before, 11));
        mmrec_tape_destroy(t);
        mmrec_optimizer_destroy(o);
    }
    mmrec_model_destroy(m);
}
END_TEST

START_TEST(test_optimizer_config_nonfinite_grads_range) {
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    cfg.nonfinite_grads = 2;
    mmrec_optimizer *o;
    MT_EXPECT(mmrec_optimizer_create(m, &cfg, &o), MMREC_EINVAL, "cfg->nonfinite_grads is 2");
    mmrec_model_destroy(m);
}
END_TEST

static Suite *nonfinite_suite(void) {
    Suite *s = suite_create("nonfinite");
    TCase *tc = tcase_create("losses");
    tcase_add_loop_test(tc, test_losses_reject_nan_and_inf_naming_op_and_index, 0,
                        (int)(sizeof nf_cases / sizeof nf_cases[0]));
    tcase_add_test(tc, test_loss_bpr_names_the_bad_index);
    tcase_add_test(tc, test_mvke_loss_rejects_nan_and_inf);
    suite_add_tcase(s, tc);
    tc = tcase_create("metrics");
    tcase_add_test(tc, test_ranking_evaluations_reject_nan_and_inf);
    tcase_add_test(tc, test_content_evaluations_reject_nan_and_inf);
    tcase_add_test(tc, test_auc_rejects_nan_scores);
    suite_add_tcase(s, tc);
    tc = tcase_create("check_mode");
    tcase_add_test(tc, test_check_finite_setting);
    tcase_add_test(tc, test_check_finite_mode_on_ops);
    tcase_add_test(tc, test_check_finite_mode_keeps_masked_log_softmax);
    tcase_add_test(tc, test_check_finite_mode_on_module_forward_and_loss);
    tcase_add_test(tc, test_check_finite_mode_on_composite_module);
    tcase_add_test(tc, test_check_finite_mode_on_backward);
    suite_add_tcase(s, tc);
    tc = tcase_create("optimizer");
    tcase_add_test(tc, test_optimizer_refuses_then_skips_nonfinite_gradients);
    tcase_add_test(tc, test_optimizer_config_nonfinite_grads_range);
    suite_add_tcase(s, tc);
    return s;
}
