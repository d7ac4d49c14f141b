/* mmrec_loss_batch_softmax_logits: PyTorch golden vectors (temperature,
 * logQ bias, extra columns, accidental hits, mask, weights), agreement
 * with mmrec_loss_batch_softmax on logits = U V^T, finite differences,
 * MaxSim scores trained through it, bad input, allocation. */
#include "mt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

MT_SUITE(batch_softmax_logits_suite)

#define MT_TRY(call)                                                           \
    do {                                                                       \
        mmrec_status mt__st = (call);                                          \
        if (mt__st != MMREC_OK) return mt__st;                                 \
    } while (0)

START_TEST(test_logits_softmax_golden) {
    static const char *cases[] = {"plain", "tau_bias", "extra_columns", "ids_mask_weights",
                                  "weights_sum_mean"};
    mt_golden g;
    mt_golden_load(&g, "batch_softmax_logits.bin");
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *kase = cases[k];
        const float *cfgv = mt_golden_find(&g, kase, "cfg")->data;
        const mt_array *x = mt_golden_find(&g, kase, "x");
        mmrec_batch_softmax_config cfg;
        MT_OK(mmrec_batch_softmax_config_init(&cfg));
        cfg.temperature = cfgv[0];
        cfg.weight_mean = (int)cfgv[1];
        mt_bsm_buffers buf;
        mt_golden_bsm_options(&g, kase, (size_t)x->shape[0], (size_t)x->shape[1], &cfg, &buf);
        mmrec_tensor *tx = mt_tape_tensor(tape, 2, x->shape, x->data, MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *loss;
        MT_OK(mmrec_loss_batch_softmax_logits(tape, tx, &cfg, &loss));
        char name[96];
        snprintf(name, sizeof name, "%s.y", kase);
        mt_assert_close(name, mt_data_of(loss), mt_golden_get(&g, name)->data, 1, 0, 0);
        MT_OK(mmrec_tape_backward(tape, loss));
        snprintf(name, sizeof name, "%s.dx", kase);
        mt_close_scaled(name, mt_grad_of(tx), mt_golden_get(&g, name)->data, x->numel);
        mmrec_tape_reset(tape);
    }
    mmrec_tape_destroy(tape);
    mt_golden_free(&g);
}
END_TEST

/* The same loss as mmrec_loss_batch_softmax when the logits are U V^T:
 * value and gradients of U and V (through the product), every option. */
START_TEST(test_logits_softmax_is_the_batch_softmax_on_products) {
    enum { B = 5, N = 8, D = 4 };
    float u[B * D], v[N * D], bias[N], w[B] = {1, 0.5f, 0, 2, 1};
    mt_fill_uniform(u, B * D, -1, 1, 31);
    mt_fill_uniform(v, N * D, -1, 1, 32);
    mt_fill_uniform(bias, N, -2, 0, 33);
    int64_t pos[B] = {1, 0, 7, 3, 3}, ids[N] = {4, 5, 6, 4, 7, 8, 5, 9};
    uint8_t mask[B * N];
    for (int i = 0; i < B * N; i++) mask[i] = (uint8_t)(i % 7 != 2);
    mmrec_batch_softmax_config cfg;
    MT_OK(mmrec_batch_softmax_config_init(&cfg));
    cfg.temperature = 0.3f;
    cfg.column_bias = bias;
    cfg.positives = pos;
    cfg.candidate_ids = ids;
    cfg.mask = mask;
    cfg.row_weights = w;
    cfg.weight_mean = 1;
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    float got[3][N * D], want[3][N * D];
    for (int side = 0; side < 2; side++) {
        mmrec_tensor *tu = mt_tape_tensor(tape, 2, (int64_t[]){B, D}, u,
                                          MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *tv = mt_tape_tensor(tape, 2, (int64_t[]){N, D}, v,
                                          MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *loss, *x;
        if (side == 0) {
            MT_OK(mmrec_loss_batch_softmax(tape, tu, tv, &cfg, &loss));
        } else {
            MT_OK(mmrec_matmul(tape, tu, tv, MMREC_TRANS_B, &x));
            MT_OK(mmrec_loss_batch_softmax_logits(tape, x, &cfg, &loss));
        }
        MT_OK(mmrec_tape_backward(tape, loss));
        float (*dst)[N * D] = side == 0 ? want : got;
        dst[0][0] = mt_data_of(loss)[0];
        memcpy(dst[1], mt_grad_of(tu), sizeof(float) * B * D);
        memcpy(dst[2], mt_grad_of(tv), sizeof(float) * N * D);
        mmrec_tape_reset(tape);
    }
    mt_assert_close("loss", got[0], want[0], 1, 1e-5f, 1e-6f);
    mt_close_scaled("dU", got[1], want[1], B * D);
    mt_close_scaled("dV", got[2], want[2], N * D);
    mmrec_tape_destroy(tape);
}
END_TEST

typedef struct mt_logits_case {
    mmrec_batch_softmax_config cfg;
} mt_logits_case;

static mmrec_status mt_logits_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                  mmrec_tensor **out) {
    const mt_logits_case *k = ctx;
    return mmrec_loss_batch_softmax_logits(tape, in[0], &k->cfg, out);
}

START_TEST(test_logits_softmax_gradcheck) {
    enum { B = 4, N = 7 };
    float x[B * N], bias[N], w[B] = {1, 2, 0.5f, 1};
    mt_fill_uniform(x, B * N, -2, 2, 41);
    mt_fill_uniform(bias, N, -1, 1, 42);
    int64_t pos[B] = {6, 0, 2, 2}, ids[N] = {1, 2, 3, 1, 4, 5, 3};
    mt_logits_case k;
    MT_OK(mmrec_batch_softmax_config_init(&k.cfg));
    k.cfg.temperature = 0.5f;
    mt_input in[1] = {{2, {B, N}, x, false}};
    mt_gradcheck("logits plain", mt_logits_fwd, &k, in, 1, NULL, NULL);
    k.cfg.column_bias = bias;
    k.cfg.positives = pos;
    k.cfg.candidate_ids = ids;
    k.cfg.row_weights = w;
    mt_gradcheck("logits every option", mt_logits_fwd, &k, in, 1, NULL, NULL);
}
END_TEST

/* ColBERT-style training: MaxSim scores of multi-vector queries against
 * the batch's multi-vector items, through the softmax to both sides. */
START_TEST(test_logits_softmax_trains_maxsim) {
    enum { B = 4, LQ = 3, LD = 5, D = 6 };
    float q[B * LQ * D], d[B * LD * D];
    mt_fill_uniform(q, sizeof q / sizeof q[0], -1, 1, 51);
    mt_fill_uniform(d, sizeof d / sizeof d[0], -1, 1, 52);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *tq = mt_tape_tensor(tape, 3, (int64_t[]){B, LQ, D}, q,
                                      MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *td = mt_tape_tensor(tape, 3, (int64_t[]){B, LD, D}, d,
                                      MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *scores, *loss;
    MT_OK(mmrec_maxsim(tape, tq, NULL, td, NULL, &scores));
    mmrec_batch_softmax_config cfg;
    MT_OK(mmrec_batch_softmax_config_init(&cfg));
    cfg.temperature = 0.1f;
    MT_OK(mmrec_loss_batch_softmax_logits(tape, scores, &cfg, &loss));
    float l = mt_data_of(loss)[0];
    ck_assert(isfinite(l) && l > 0);
    MT_OK(mmrec_tape_backward(tape, loss));
    double nq = 0, nd = 0;
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) nq += fabs(mt_grad_of(tq)[i]);
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) nd += fabs(mt_grad_of(td)[i]);
    ck_assert(nq > 0 && nd > 0);
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_logits_softmax_bad_input) {
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    float a[12] = {0};
    mmrec_tensor *x = mt_tape_tensor(tape, 2, (int64_t[]){3, 4}, a, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tall = mt_tape_tensor(tape, 2, (int64_t[]){4, 3}, a, 0);
    mmrec_tensor *flat = mt_tape_tensor(tape, 1, (int64_t[]){12}, a, 0);
    mmrec_tensor *foreign = mt_tape_tensor(other, 2, (int64_t[]){3, 4}, a, 0);
    mmrec_tensor *out = NULL;
    mmrec_batch_softmax_config cfg;
    MT_OK(mmrec_batch_softmax_config_init(&cfg));
    MT_EXPECT(mmrec_loss_batch_softmax_logits(NULL, x, &cfg, &out), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_loss_batch_softmax_logits(tape, NULL, &cfg, &out), MMREC_EINVAL, "logits");
    MT_EXPECT(mmrec_loss_batch_softmax_logits(tape, x, &cfg, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_loss_batch_softmax_logits(tape, foreign, &cfg, &out), MMREC_EINVAL, "logits");
    MT_EXPECT(mmrec_loss_batch_softmax_logits(tape, flat, &cfg, &out), MMREC_ESHAPE, "logits");
    MT_EXPECT(mmrec_loss_batch_softmax_logits(tape, tall, &cfg, &out), MMREC_ESHAPE,
              "cfg->positives");
    float taus[] = {0.0f, -0.5f, NAN, INFINITY};
    for (size_t i = 0; i < sizeof taus / sizeof taus[0]; i++) {
        cfg.temperature = taus[i];
        MT_EXPECT(mmrec_loss_batch_softmax_logits(tape, x, &cfg, &out), MMREC_EINVAL,
                  "cfg->temperature");
    }
    MT_OK(mmrec_batch_softmax_config_init(&cfg));
    cfg.normalize = 1;
    MT_EXPECT(mmrec_loss_batch_softmax_logits(tape, x, &cfg, &out), MMREC_EINVAL,
              "cfg->normalize");
    cfg.normalize = 0;
    cfg.symmetric = 1;
    MT_EXPECT(mmrec_loss_batch_softmax_logits(tape, x, &cfg, &out), MMREC_EINVAL,
              "cfg->symmetric");
    cfg.symmetric = 0;
    int64_t pos[3] = {0, 4, 1};
    cfg.positives = pos;
    MT_EXPECT(mmrec_loss_batch_softmax_logits(tape, x, &cfg, &out), MMREC_ERANGE,
              "cfg->positives[1]");
    cfg.positives = NULL;
    float bias[4] = {0, 0, NAN, 0}, w[3] = {1, -1, 1};
    cfg.column_bias = bias;
    MT_EXPECT(mmrec_loss_batch_softmax_logits(tape, x, &cfg, &out), MMREC_EINVAL,
              "cfg->column_bias[2]");
    cfg.column_bias = NULL;
    cfg.row_weights = w;
    MT_EXPECT(mmrec_loss_batch_softmax_logits(tape, x, &cfg, &out), MMREC_EINVAL,
              "cfg->row_weights[1]");
    cfg.row_weights = NULL;
    /* a non-finite logit of a kept pair; the same in a removed pair is fine */
    float *xd;
    MT_OK(mmrec_tensor_data(x, &xd));
    xd[1 * 4 + 3] = -INFINITY;
    MT_EXPECT(mmrec_loss_batch_softmax_logits(tape, x, &cfg, &out), MMREC_ENUMERIC,
              "logits[1, 3]");
    uint8_t mask[12];
    memset(mask, 1, sizeof mask);
    mask[1 * 4 + 3] = 0;
    cfg.mask = mask;
    ck_assert_ptr_null(out);
    MT_OK(mmrec_loss_batch_softmax_logits(tape, x, &cfg, &out));
    ck_assert(isfinite(mt_data_of(out)[0]));
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
}
END_TEST

/* ---- allocation ---- */

typedef struct mt_logits_step {
    mmrec_tape *tape;
    float x[64 * 80];
    float bias[80];
    int64_t ids[80];
} mt_logits_step;

static mmrec_status mt_logits_step_run(void *ctx) {
    mt_logits_step *s = ctx;
    mmrec_tape_reset(s->tape);
    mmrec_tensor *x, *loss;
    int64_t shape[2] = {64, 80};
    MT_TRY(mmrec_tape_tensor(s->tape, 2, shape, MMREC_TENSOR_REQUIRES_GRAD, &x));
    float *d;
    MT_TRY(mmrec_tensor_data(x, &d));
    memcpy(d, s->x, sizeof s->x);
    mmrec_batch_softmax_config cfg;
    mmrec_batch_softmax_config_init(&cfg);
    cfg.temperature = 0.05f;
    cfg.column_bias = s->bias;
    cfg.candidate_ids = s->ids;
    MT_TRY(mmrec_loss_batch_softmax_logits(s->tape, x, &cfg, &loss));
    return mmrec_tape_backward(s->tape, loss);
}

static mmrec_status mt_logits_scenario(void *ctx) {
    mt_logits_step *s = ctx;
    mmrec_status st = mmrec_tape_create(&s->tape);
    if (st != MMREC_OK) return st;
    st = mt_logits_step_run(s);
    mmrec_tape_destroy(s->tape);
    return st;
}

START_TEST(test_logits_softmax_allocation) {
    static mt_logits_step s;
    mt_fill_uniform(s.x, 64 * 80, -1, 1, 61);
    mt_fill_uniform(s.bias, 80, -3, 0, 62);
    for (int j = 0; j < 80; j++) s.ids[j] = j % 50;
    ck_assert_int_gt(mt_oom_loop("batch softmax logits", mt_logits_scenario, &s), 0);
    MT_OK(mmrec_tape_create(&s.tape));
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mt_assert_steady_state(mt_logits_step_run, &s);
    MT_OK(mmrec_set_allocator(NULL));
    mmrec_tape_destroy(s.tape);
}
END_TEST

static Suite *batch_softmax_logits_suite(void) {
    Suite *s = suite_create("batch_softmax_logits");
    TCase *t = tcase_create("logits");
    tcase_add_test(t, test_logits_softmax_golden);
    tcase_add_test(t, test_logits_softmax_is_the_batch_softmax_on_products);
    tcase_add_test(t, test_logits_softmax_gradcheck);
    tcase_add_test(t, test_logits_softmax_trains_maxsim);
    tcase_add_test(t, test_logits_softmax_bad_input);
    tcase_add_test(t, test_logits_softmax_allocation);
    suite_add_tcase(s, t);
    return s;
}
