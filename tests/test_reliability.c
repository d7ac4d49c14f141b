/* Reliability: every allocation failure is reported as MMREC_ENOMEM and
 * leaks nothing (fail the N-th allocation for N = 1, 2, ... until the
 * scenario succeeds); results are bitwise reproducible. */
#include "mt.h"

#include <stdlib.h>

MT_SUITE(reliability_suite)

static mmrec_status mt_scenario_step(void *ctx) {
    (void)ctx;
    mmrec_status s;
    mmrec_model *m = NULL;
    mmrec_tape *tape = NULL;
    mmrec_tensor *w = NULL, *x = NULL, *y = NULL, *z = NULL;
    int64_t ws[2] = {300, 200}, xs[2] = {64, 300};
    if ((s = mmrec_model_create(&m)) != MMREC_OK) goto done;
    if ((s = mmrec_model_add_param(m, "w", 2, ws, &w)) != MMREC_OK) goto done;
    if ((s = mmrec_tape_create(&tape)) != MMREC_OK) goto done;
    for (int step = 0; step < 3; step++) {
        if ((s = mmrec_tape_tensor(tape, 2, xs, 0, &x)) != MMREC_OK) goto done;
        if ((s = mmrec_matmul(tape, x, w, 0, &y)) != MMREC_OK) goto done;
        if ((s = mmrec_matmul(tape, y, y, MMREC_TRANS_A, &z)) != MMREC_OK) goto done;
        float seed[200 * 200];
        for (int i = 0; i < 200 * 200; i++) seed[i] = 1.0f;
        if ((s = mmrec_tape_backward_from(tape, z, seed)) != MMREC_OK) goto done;
        mmrec_tape_reset(tape);
    }
done:
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(m);
    return s;
}

static mmrec_status mt_scenario_tensors(void *ctx) {
    (void)ctx;
    mmrec_status s;
    mmrec_tensor *t = NULL, *w = NULL;
    mmrec_rng *r = NULL;
    int64_t shape[3] = {4, 5, 6};
    float buf[120];
    if ((s = mmrec_tensor_create(3, shape, &t)) != MMREC_OK) goto done;
    if ((s = mmrec_tensor_wrap(buf, 3, shape, 0, &w)) != MMREC_OK) goto done;
    if ((s = mmrec_rng_create(3, &r)) != MMREC_OK) goto done;
done:
    mmrec_tensor_destroy(t);
    mmrec_tensor_destroy(w);
    mmrec_rng_destroy(r);
    return s;
}

START_TEST(test_oom_every_allocation_reports_enomem_without_leaks) {
    ck_assert_int_gt(mt_oom_loop("tensors", mt_scenario_tensors, NULL), 0);
    ck_assert_int_gt(mt_oom_loop("training step", mt_scenario_step, NULL), 0);
}
END_TEST

static Suite *reliability_suite(void) {
    Suite *s = suite_create("reliability");
    TCase *tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_oom_every_allocation_reports_enomem_without_leaks);
    suite_add_tcase(s, tc);
    return s;
}
