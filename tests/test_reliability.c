/* Reliability: every allocation failure is reported as MMREC_ENOMEM and
 * leaks nothing (fail the N-th allocation for N = 1, 2, ... until the
 * scenario succeeds); results are bitwise reproducible. */
#include "mt.h"

#include <stdlib.h>

MT_SUITE(reliability_suite)

static long mt_fail_at = -1; /* allocation index that fails; -1 = none */
static long mt_count;
static long mt_live;

static void *mt_alloc(void *user, size_t size) {
    (void)user;
    if (mt_count++ == mt_fail_at) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, size ? size : 64) != 0) return NULL;
    mt_live++;
    return p;
}

static void mt_release(void *user, void *p) {
    (void)user;
    if (p) mt_live--;
    free(p);
}

/* A scenario builds objects, runs, and destroys everything it made whatever
 * happened; it returns the first non-OK status. */
typedef mmrec_status (*mt_scenario)(void);

static mmrec_status mt_scenario_step(void) {
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

static mmrec_status mt_scenario_tensors(void) {
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

static void mt_oom_loop(const char *name, mt_scenario run) {
    mmrec_allocator a = {sizeof a, mt_alloc, mt_release, NULL};
    MT_OK(mmrec_set_allocator(&a));
    int failures = 0;
    for (long n = 0;; n++) {
        mt_fail_at = n;
        mt_count = 0;
        mt_live = 0;
        mmrec_status s = run();
        ck_assert_msg(mt_live == 0, "%s: %ld allocations leaked when allocation %ld failed",
                      name, mt_live, n);
        if (s == MMREC_OK) break;
        ck_assert_msg(s == MMREC_ENOMEM, "%s: allocation %ld failed gave %s (%s)", name, n,
                      mmrec_status_name(s), mmrec_last_error());
        failures++;
        ck_assert_msg(n < 10000, "%s: never succeeds", name);
    }
    ck_assert_int_gt(failures, 0);
    mt_fail_at = -1;
    MT_OK(mmrec_set_allocator(NULL));
}

START_TEST(test_oom_every_allocation_reports_enomem_without_leaks) {
    mt_oom_loop("tensors", mt_scenario_tensors);
    mt_oom_loop("training step", mt_scenario_step);
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
