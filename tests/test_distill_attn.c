/* mmrec_distill_attn (attention-map distillation, VIRT's L2 and the
 * Distilled Dual-Encoder's KL): PyTorch golden vectors with masked keys,
 * an all-zero row and the eps floor, the teacher's gradient exactly zero
 * when detached, finite differences, bad input, allocation. */
#include "mt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

MT_SUITE(distill_attn_suite)

START_TEST(test_distill_attn_golden) {
    static const char *cases[] = {"l2_detached", "l2_both", "kl_detached", "kl_both"};
    mt_golden g;
    mt_golden_load(&g, "distill_attn.bin");
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *kase = cases[k];
        const float *c = mt_golden_find(&g, kase, "cfg")->data;
        const mt_array *s = mt_golden_find(&g, kase, "s"), *t = mt_golden_find(&g, kase, "t");
        mmrec_distill_attn_config cfg;
        MT_OK(mmrec_distill_attn_config_init(&cfg));
        cfg.kind = (int)c[0];
        cfg.eps = c[1];
        cfg.detach_target = (int)c[2];
        mmrec_tensor *ts = mt_tape_tensor(tape, s->ndim, s->shape, s->data,
                                          MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *tt = mt_tape_tensor(tape, t->ndim, t->shape, t->data,
                                          MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *loss;
        MT_OK(mmrec_distill_attn(tape, ts, tt, &cfg, &loss));
        char name[96];
        snprintf(name, sizeof name, "%s.y", kase);
        mt_assert_close(name, mt_data_of(loss), mt_golden_get(&g, name)->data, 1, 0, 0);
        MT_OK(mmrec_tape_backward(tape, loss));
        snprintf(name, sizeof name, "%s.ds", kase);
        mt_close_scaled(name, mt_grad_of(ts), mt_golden_get(&g, name)->data, s->numel);
        const float *dt;
        MT_OK(mmrec_tensor_grad(tt, &dt));
        if (cfg.detach_target) {
            for (size_t i = 0; dt && i < t->numel; i++)
                ck_assert_msg(dt[i] == 0.0f, "%s: detached teacher grad[%zu] = %g", kase, i,
                              (double)dt[i]);
        } else {
            snprintf(name, sizeof name, "%s.dt", kase);
            mt_close_scaled(name, mt_grad_of(tt), mt_golden_get(&g, name)->data, t->numel);
        }
        mmrec_tape_reset(tape);
    }
    mmrec_tape_destroy(tape);
    mt_golden_free(&g);
}
END_TEST

static mmrec_status mt_attn_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                mmrec_tensor **out) {
    return mmrec_distill_attn(tape, in[0], in[1], ctx, out);
}

START_TEST(test_distill_attn_gradcheck) {
    enum { B = 2, TQ = 3, TK = 4 };
    float s[B * TQ * TK], t[B * TQ * TK];
    mt_fill_uniform(s, B * TQ * TK, 0.05f, 0.95f, 71);
    mt_fill_uniform(t, B * TQ * TK, 0.05f, 0.95f, 72);
    mt_gradcheck_opts o = {.h = 1e-3f};
    for (int kind = MMREC_DISTILL_ATTN_L2; kind <= MMREC_DISTILL_ATTN_KL; kind++) {
        mmrec_distill_attn_config cfg;
        MT_OK(mmrec_distill_attn_config_init(&cfg));
        cfg.kind = kind;
        cfg.detach_target = 0;
        mt_input in[2] = {{3, {B, TQ, TK}, s, false}, {3, {B, TQ, TK}, t, false}};
        mt_gradcheck(kind ? "attn KL both" : "attn L2 both", mt_attn_fwd, &cfg, in, 2, NULL, &o);
        cfg.detach_target = 1;
        in[1].no_grad = true;
        mt_gradcheck(kind ? "attn KL detached" : "attn L2 detached", mt_attn_fwd, &cfg, in, 2,
                     NULL, &o);
    }
}
END_TEST

START_TEST(test_distill_attn_bad_input) {
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    float a[24];
    for (int i = 0; i < 24; i++) a[i] = 0.25f;
    mmrec_tensor *s = mt_tape_tensor(tape, 3, (int64_t[]){2, 3, 4}, a, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *t = mt_tape_tensor(tape, 3, (int64_t[]){2, 3, 4}, a, 0);
    mmrec_tensor *t2 = mt_tape_tensor(tape, 3, (int64_t[]){2, 4, 3}, a, 0);
    mmrec_tensor *flat = mt_tape_tensor(tape, 1, (int64_t[]){24}, a, 0);
    mmrec_tensor *foreign = mt_tape_tensor(other, 3, (int64_t[]){2, 3, 4}, a, 0);
    mmrec_tensor *out = NULL;
    mmrec_distill_attn_config cfg;
    MT_OK(mmrec_distill_attn_config_init(&cfg));
    MT_EXPECT(mmrec_distill_attn(NULL, s, t, &cfg, &out), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_distill_attn(tape, NULL, t, &cfg, &out), MMREC_EINVAL, "student");
    MT_EXPECT(mmrec_distill_attn(tape, s, NULL, &cfg, &out), MMREC_EINVAL, "teacher");
    MT_EXPECT(mmrec_distill_attn(tape, s, t, &cfg, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_distill_attn(tape, s, foreign, &cfg, &out), MMREC_EINVAL, "teacher");
    MT_EXPECT(mmrec_distill_attn(tape, s, t2, &cfg, &out), MMREC_ESHAPE, "teacher");
    MT_EXPECT(mmrec_distill_attn(tape, flat, flat, &cfg, &out), MMREC_ESHAPE, "student");
    cfg.kind = 5;
    MT_EXPECT(mmrec_distill_attn(tape, s, t, &cfg, &out), MMREC_EINVAL, "cfg->kind");
    MT_OK(mmrec_distill_attn_config_init(&cfg));
    float bad_eps[] = {0.0f, -1.0f, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_eps / sizeof bad_eps[0]; i++) {
        cfg.eps = bad_eps[i];
        MT_EXPECT(mmrec_distill_attn(tape, s, t, &cfg, &out), MMREC_EINVAL, "cfg->eps");
    }
    MT_OK(mmrec_distill_attn_config_init(&cfg));
    cfg.detach_target = 2;
    MT_EXPECT(mmrec_distill_attn(tape, s, t, &cfg, &out), MMREC_EINVAL, "cfg->detach_target");
    MT_OK(mmrec_distill_attn_config_init(&cfg));
    cfg.struct_size = 2;
    MT_EXPECT(mmrec_distill_attn(tape, s, t, &cfg, &out), MMREC_EINVAL, "struct_size");
    MT_OK(mmrec_distill_attn_config_init(&cfg));
    float *d;
    MT_OK(mmrec_tensor_data(t, &d));
    d[5] = NAN;
    MT_EXPECT(mmrec_distill_attn(tape, s, t, &cfg, &out), MMREC_ENUMERIC, "teacher[5]");
    d[5] = 1.5f;
    MT_EXPECT(mmrec_distill_attn(tape, s, t, &cfg, &out), MMREC_ENUMERIC, "teacher[5]");
    d[5] = 0.25f;
    MT_OK(mmrec_tensor_data(s, &d));
    d[7] = -0.1f;
    MT_EXPECT(mmrec_distill_attn(tape, s, t, &cfg, &out), MMREC_ENUMERIC, "student[7]");
    ck_assert_ptr_null(out);
    d[7] = 0.25f;
    /* NULL config: L2, detached; equal maps give 0 */
    MT_OK(mmrec_distill_attn(tape, s, t, NULL, &out));
    ck_assert_float_eq(mt_data_of(out)[0], 0.0f);
    MT_EXPECT(mmrec_distill_attn_config_init_sized(NULL, sizeof cfg), MMREC_EINVAL, "cfg");
    MT_EXPECT(mmrec_distill_attn_config_init_sized(&cfg, 3), MMREC_EINVAL, "size");
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
}
END_TEST

typedef struct mt_da_step {
    mmrec_tape *tape;
    float s[4 * 8 * 8], t[4 * 8 * 8];
} mt_da_step;

static mmrec_status mt_da_run(void *ctx) {
    mt_da_step *st = ctx;
    mmrec_tape_reset(st->tape);
    int64_t shape[3] = {4, 8, 8};
    mmrec_tensor *s, *t, *l1, *l2;
    float *d;
    mmrec_status r = mmrec_tape_tensor(st->tape, 3, shape, MMREC_TENSOR_REQUIRES_GRAD, &s);
    if (r == MMREC_OK) r = mmrec_tape_tensor(st->tape, 3, shape, MMREC_TENSOR_REQUIRES_GRAD, &t);
    if (r == MMREC_OK && (r = mmrec_tensor_data(s, &d)) == MMREC_OK) memcpy(d, st->s, sizeof st->s);
    if (r == MMREC_OK && (r = mmrec_tensor_data(t, &d)) == MMREC_OK) memcpy(d, st->t, sizeof st->t);
    mmrec_distill_attn_config cfg;
    mmrec_distill_attn_config_init(&cfg);
    cfg.kind = MMREC_DISTILL_ATTN_KL;
    cfg.detach_target = 0;
    if (r == MMREC_OK) r = mmrec_distill_attn(st->tape, s, t, &cfg, &l1);
    cfg.kind = MMREC_DISTILL_ATTN_L2;
    if (r == MMREC_OK) r = mmrec_distill_attn(st->tape, s, t, &cfg, &l2);
    if (r == MMREC_OK) r = mmrec_add(st->tape, l1, l2, &l1);
    if (r == MMREC_OK) r = mmrec_tape_backward(st->tape, l1);
    return r;
}

static mmrec_status mt_da_scenario(void *ctx) {
    mt_da_step *st = ctx;
    mmrec_status r = mmrec_tape_create(&st->tape);
    if (r != MMREC_OK) return r;
    r = mt_da_run(st);
    mmrec_tape_destroy(st->tape);
    return r;
}

START_TEST(test_distill_attn_allocation) {
    static mt_da_step st;
    mt_fill_uniform(st.s, 256, 0.0f, 1.0f, 81);
    mt_fill_uniform(st.t, 256, 0.0f, 1.0f, 82);
    ck_assert_int_gt(mt_oom_loop("distill attn", mt_da_scenario, &st), 0);
    MT_OK(mmrec_tape_create(&st.tape));
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mt_assert_steady_state(mt_da_run, &st);
    MT_OK(mmrec_set_allocator(NULL));
    mmrec_tape_destroy(st.tape);
}
END_TEST

static Suite *distill_attn_suite(void) {
    Suite *s = suite_create("distill_attn");
    TCase *t = tcase_create("attn");
    tcase_add_test(t, test_distill_attn_golden);
    tcase_add_test(t, test_distill_attn_gradcheck);
    tcase_add_test(t, test_distill_attn_bad_input);
    tcase_add_test(t, test_distill_attn_allocation);
    suite_add_tcase(s, t);
    return s;
}
