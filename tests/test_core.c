/* Core: status table, errors, version, threads, generator, allocator hook. */
#include "mt.h"

#include <math.h>
#include <stdlib.h>

MT_SUITE(core_suite)

START_TEST(test_status_values_are_fixed) {
    ck_assert_int_eq(MMREC_OK, 0);
    ck_assert_int_eq(MMREC_EINVAL, 10);
    ck_assert_int_eq(MMREC_ESHAPE, 11);
    ck_assert_int_eq(MMREC_ERANGE, 12);
    ck_assert_int_eq(MMREC_ENOTFOUND, 13);
    ck_assert_int_eq(MMREC_ESTATE, 20);
    ck_assert_int_eq(MMREC_ESTALE, 21);
    ck_assert_int_eq(MMREC_EUNSUPPORTED, 22);
    ck_assert_int_eq(MMREC_ENOMEM, 30);
    ck_assert_int_eq(MMREC_EIO, 31);
    ck_assert_int_eq(MMREC_EFORMAT, 32);
    ck_assert_int_eq(MMREC_ENUMERIC, 40);
    ck_assert_str_eq(mmrec_status_name(MMREC_ENOMEM), "MMREC_ENOMEM");
    ck_assert_str_eq(mmrec_status_str(MMREC_OK), "success");
    ck_assert_str_eq(mmrec_status_str((mmrec_status)999), "unknown status");
    ck_assert_str_eq(mmrec_status_name((mmrec_status)999), "MMREC_UNKNOWN");
}
END_TEST

START_TEST(test_last_error_names_function_and_argument) {
    ck_assert_ptr_nonnull(mmrec_last_error());
    MT_EXPECT(mmrec_rng_create(1, NULL), MMREC_EINVAL, "mmrec_rng_create: argument 'out'");
    MT_EXPECT(mmrec_set_num_threads(0), MMREC_ERANGE, "num_threads is 0");
}
END_TEST

START_TEST(test_version_matches_header) {
    ck_assert_uint_eq(mmrec_version_number(), MMREC_VERSION_NUMBER);
    ck_assert_str_eq(mmrec_version_string(), MMREC_VERSION_STRING);
    ck_assert_int_eq(mmrec_max_dims(), MMREC_MAX_DIMS);
}
END_TEST

START_TEST(test_thread_count_setting) {
    int before = mmrec_get_num_threads();
    ck_assert_int_ge(before, 1);
    MT_OK(mmrec_set_num_threads(1));
    ck_assert_int_eq(mmrec_get_num_threads(), 1);
    MT_EXPECT(mmrec_set_num_threads(5000), MMREC_ERANGE, "num_threads");
    MT_OK(mmrec_set_num_threads(before));
}
END_TEST

START_TEST(test_rng_same_seed_same_stream) {
    mmrec_rng *a, *b;
    MT_OK(mmrec_rng_create(42, &a));
    MT_OK(mmrec_rng_create(42, &b));
    for (int i = 0; i < 100; i++) {
        uint64_t x, y;
        MT_OK(mmrec_rng_next_u64(a, &x));
        MT_OK(mmrec_rng_next_u64(b, &y));
        ck_assert_uint_eq(x, y);
    }
    float v[20000];
    MT_OK(mmrec_rng_normal(a, 0.0f, 1.0f, v, 20000));
    double mean = 0, var = 0;
    for (int i = 0; i < 20000; i++) mean += v[i];
    mean /= 20000;
    for (int i = 0; i < 20000; i++) var += (v[i] - mean) * (v[i] - mean);
    var /= 20000;
    ck_assert(fabs(mean) < 0.03 && fabs(var - 1.0) < 0.05);
    MT_OK(mmrec_rng_uniform(a, -2.0f, 3.0f, v, 20000));
    for (int i = 0; i < 20000; i++) ck_assert(v[i] >= -2.0f && v[i] < 3.0f);
    uint64_t k;
    for (int i = 0; i < 1000; i++) {
        MT_OK(mmrec_rng_below(a, 7, &k));
        ck_assert_uint_lt(k, 7);
    }
    MT_EXPECT(mmrec_rng_below(a, 0, &k), MMREC_EINVAL, "bound");
    MT_EXPECT(mmrec_rng_uniform(a, 1.0f, 0.0f, v, 1), MMREC_EINVAL, "low");
    MT_EXPECT(mmrec_rng_normal(a, 0.0f, NAN, v, 1), MMREC_EINVAL, "std");
    MT_EXPECT(mmrec_rng_seed(NULL, 1), MMREC_EINVAL, "rng");
    mmrec_rng_destroy(a);
    mmrec_rng_destroy(b);
    mmrec_rng_destroy(NULL);
}
END_TEST


START_TEST(test_allocator_hook_counts_and_validates) {
    mmrec_allocator bad = {4, mt_count_alloc, mt_count_release, NULL};
    MT_EXPECT(mmrec_set_allocator(&bad), MMREC_EINVAL, "allocator->struct_size is 4");
    mmrec_allocator a = {sizeof a, mt_count_alloc, NULL, NULL};
    MT_EXPECT(mmrec_set_allocator(&a), MMREC_EINVAL, "argument 'allocator->release' is NULL");
    a.release = mt_count_release;
    MT_OK(mmrec_set_allocator(&a));
    mt_allocs = 0;
    mmrec_rng *r;
    MT_OK(mmrec_rng_create(1, &r));
    ck_assert_uint_eq(mt_allocs, 1);
    mmrec_rng_destroy(r);
    MT_OK(mmrec_set_allocator(NULL));
}
END_TEST

static Suite *core_suite(void) {
    Suite *s = suite_create("core");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_status_values_are_fixed);
    tcase_add_test(api, test_last_error_names_function_and_argument);
    tcase_add_test(api, test_version_matches_header);
    tcase_add_test(api, test_thread_count_setting);
    tcase_add_test(api, test_rng_same_seed_same_stream);
    tcase_add_test(api, test_allocator_hook_counts_and_validates);
    suite_add_tcase(s, api);
    return s;
}
