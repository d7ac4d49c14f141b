/* Runs every registered suite. CK_RUN_SUITE / CK_RUN_CASE select one. */
#include "mt.h"

#include <stdio.h>
#include <stdlib.h>

#define MT_MAX_SUITES 64
static mt_suite_fn mt_suites[MT_MAX_SUITES];
static int mt_n_suites;

void mt_register(mt_suite_fn fn) {
    if (mt_n_suites < MT_MAX_SUITES) mt_suites[mt_n_suites++] = fn;
}

int main(void) {
    if (mt_n_suites == 0) {
        fprintf(stderr, "no suites registered\n");
        return 1;
    }
    /* MMREC_TEST_THREADS=n runs the suites on n threads (the machine's
     * cores by default; suites that test threading set their own). */
    const char *threads = getenv("MMREC_TEST_THREADS");
    if (threads && mmrec_set_num_threads(atoi(threads)) != MMREC_OK) {
        fprintf(stderr, "MMREC_TEST_THREADS=%s: %s\n", threads, mmrec_last_error());
        return 1;
    }
    SRunner *sr = srunner_create(mt_suites[0]());
    for (int i = 1; i < mt_n_suites; i++) srunner_add_suite(sr, mt_suites[i]());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
