/* Losses: values against closed forms, gradients, bad input. */
#include "mt.h"

#include <math.h>

MT_SUITE(losses_suite)

static float mt_value(mmrec_tensor *t) {
    const float *d;
    MT_OK(mmrec_tensor_data_const(t, &d));
    return d[0];
}

static const int64_t mt_labels[3] = {2, 0, 4};

static mmrec_status mt_loss_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                mmrec_tensor **out) {
    switch (*(int *)ctx) {
    case 0: return mmrec_loss_bce_logits(tape, in[0], in[1], out);
    case 1: return mmrec_loss_softmax_ce(tape, in[0], mt_labels, 3, out);
    case 2: return mmrec_loss_bpr(tape, in[0], in[1], out);
    default: return mmrec_loss_mse(tape, in[0], in[1], out);
    }
}

START_TEST(test_loss_values) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[1] = {3};
    float x[3] = {-50.0f, 0.0f, 2.0f}, y[3] = {0.0f, 1.0f, 0.25f};
    mmrec_tensor *tx = mt_tape_tensor(tape, 1, s, x, 0), *ty = mt_tape_tensor(tape, 1, s, y, 0), *l;
    MT_OK(mmrec_loss_bce_logits(tape, tx, ty, &l));
    double want = (log1p(exp(-50.0)) + log(2.0) + (2.0 - 0.5 + log1p(exp(-2.0)))) / 3.0;
    ck_assert_msg(fabs(mt_value(l) - want) < 1e-6, "bce %g vs %g", (double)mt_value(l), want);
    MT_OK(mmrec_loss_bpr(tape, tx, ty, &l));
    want = (50.0 + log1p(exp(-50.0)) + log1p(exp(1.0)) + log1p(exp(-1.75))) / 3.0;
    ck_assert_msg(fabs(mt_value(l) - want) < 1e-5, "bpr %g vs %g", (double)mt_value(l), want);
    MT_OK(mmrec_loss_mse(tape, tx, ty, &l));
    want = (2500.0 + 1.0 + 1.75 * 1.75) / 3.0;
    ck_assert(fabs(mt_value(l) - want) < 1e-3);
    int64_t sl[2] = {2, 3};
    float logits[6] = {1, 2, 3, 1000, 0, -1000};
    int64_t lab[2] = {2, 0};
    mmrec_tensor *tl = mt_tape_tensor(tape, 2, sl, logits, 0);
    MT_OK(mmrec_loss_softmax_ce(tape, tl, lab, 2, &l));
    want = (-(3.0 - 3.0 - log(exp(-2.0) + exp(-1.0) + 1.0)) + 0.0) / 2.0;
    ck_assert_msg(fabs(mt_value(l) - want) < 1e-6, "ce %g vs %g", (double)mt_value(l), want);
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_loss_gradcheck) {
    float a[3 * 5], b[3 * 5], t[3 * 5];
    mt_fill_uniform(a, 15, -2, 2, 1);
    mt_fill_uniform(b, 15, -2, 2, 2);
    mt_fill_uniform(t, 15, 0, 1, 3);
    for (int k = 0; k < 4; k++) {
        mt_input in[2] = {{2, {3, 5}, a, false}, {2, {3, 5}, k == 0 ? t : b, k != 2}};
        mt_gradcheck("loss", mt_loss_fwd, &k, in, k == 1 ? 1 : 2, NULL, NULL);
    }
}
END_TEST

START_TEST(test_loss_bad_input) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {3, 5}, s2[2] = {3, 4}, s1[1] = {15};
    mmrec_tensor *a, *b, *c, *l;
    MT_OK(mmrec_tape_tensor(tape, 2, s, MMREC_TENSOR_REQUIRES_GRAD, &a));
    MT_OK(mmrec_tape_tensor(tape, 2, s2, 0, &b));
    MT_OK(mmrec_tape_tensor(tape, 1, s1, 0, &c));
    MT_EXPECT(mmrec_loss_bce_logits(tape, a, b, &l), MMREC_ESHAPE, "targets is [3,4]");
    MT_EXPECT(mmrec_loss_mse(tape, a, c, &l), MMREC_ESHAPE, "pred is [3,5]");
    MT_EXPECT(mmrec_loss_bpr(tape, a, NULL, &l), MMREC_EINVAL, "'neg'");
    MT_EXPECT(mmrec_loss_bpr(tape, a, b, &l), MMREC_ESHAPE, "pos is [3,5] and neg is [3,4]");
    MT_EXPECT(mmrec_loss_bpr(NULL, a, a, &l), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_loss_mse(tape, a, a, NULL), MMREC_EINVAL, "'out'");
    int64_t bad[3] = {0, 5, 1};
    MT_EXPECT(mmrec_loss_softmax_ce(tape, a, bad, 3, &l), MMREC_ERANGE, "labels[1] is 5");
    MT_EXPECT(mmrec_loss_softmax_ce(tape, a, mt_labels, 2, &l), MMREC_ESHAPE, "n is 2");
    MT_EXPECT(mmrec_loss_softmax_ce(tape, c, mt_labels, 3, &l), MMREC_ESHAPE, "[batch, classes]");
    MT_EXPECT(mmrec_loss_softmax_ce(tape, a, NULL, 3, &l), MMREC_EINVAL, "'labels'");
    /* a loss backward works end to end */
    MT_OK(mmrec_loss_softmax_ce(tape, a, mt_labels, 3, &l));
    MT_OK(mmrec_tape_backward(tape, l));
    const float *g;
    MT_OK(mmrec_tensor_grad(a, &g));
    double row = 0;
    for (int j = 0; j < 5; j++) row += g[j];
    ck_assert(fabs(row) < 1e-6); /* softmax CE gradient rows sum to zero */
    mmrec_tape_destroy(tape);
}
END_TEST

static Suite *losses_suite(void) {
    Suite *s = suite_create("losses");
    TCase *tc = tcase_create("losses");
    tcase_add_test(tc, test_loss_values);
    tcase_add_test(tc, test_loss_gradcheck);
    tcase_add_test(tc, test_loss_bad_input);
    suite_add_tcase(s, tc);
    return s;
}
