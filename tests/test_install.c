/* Packaging: the installed library works through pkg-config alone; each
 * public header compiles by itself as C99 and as C++; the examples of the
 * README and of mmrec.h build, run and learn as written; an example's
 * results and progress keep their order in one file; the LightGCN example
 * tells its data layouts apart, masks held-out validation items at test,
 * stops early and refuses a validation file that overlaps training. */
#include "mt.h"

#include <stdio.h>
#include <stdlib.h>

MT_SUITE(install_suite)

static int mt_run(const char *script) {
    const char *root = getenv("MMREC_ROOT");
    const char *blas = getenv("BLAS");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/install/%s' '%s' '%s' 2>&1", root, script, root,
             blas ? blas : "openblas");
    return system(cmd);
}

START_TEST(test_install_and_link_with_pkg_config) {
    ck_assert_msg(getenv("MMREC_ROOT") != NULL, "run through make test (MMREC_ROOT unset)");
    ck_assert_int_eq(mt_run("install_and_link.sh"), 0);
}
END_TEST

START_TEST(test_doc_examples_build_run_and_learn) {
    ck_assert_msg(getenv("MMREC_ROOT") != NULL, "run through make test (MMREC_ROOT unset)");
    ck_assert_int_eq(mt_run("doc_examples.sh"), 0);
}
END_TEST

START_TEST(test_example_output_keeps_its_order) {
    ck_assert_msg(getenv("MMREC_ROOT") != NULL, "run through make test (MMREC_ROOT unset)");
    ck_assert_int_eq(mt_run("example_output_order.sh"), 0);
}
END_TEST

START_TEST(test_lightgcn_example_layouts_masks_and_early_stop) {
    ck_assert_msg(getenv("MMREC_ROOT") != NULL, "run through make test (MMREC_ROOT unset)");
    ck_assert_int_eq(mt_run("lightgcn_layouts.sh"), 0);
}
END_TEST

START_TEST(test_each_header_compiles_alone) {
    ck_assert_msg(getenv("MMREC_ROOT") != NULL, "run through make test (MMREC_ROOT unset)");
    ck_assert_int_eq(mt_run("header_alone.sh"), 0);
}
END_TEST

static Suite *install_suite(void) {
    Suite *s = suite_create("install");
    TCase *tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 300);
    if (getenv("MMREC_SKIP_INSTALL_TEST") == NULL) {
        tcase_add_test(tc, test_install_and_link_with_pkg_config);
        tcase_add_test(tc, test_each_header_compiles_alone);
        tcase_add_test(tc, test_doc_examples_build_run_and_learn);
        tcase_add_test(tc, test_example_output_keeps_its_order);
        tcase_add_test(tc, test_lightgcn_example_layouts_masks_and_early_stop);
    }
    suite_add_tcase(s, tc);
    return s;
}
