/* Feature cache: writing (from memory and from .npy files), 16-bit storage,
 * gathering by sparse or dense ids, missing ids, truncated, corrupt and
 * foreign files, crash-safe writing, hot refresh under concurrent gathers,
 * allocation failures and malloc-free steady-state gathers. */
#include "mt.h"
#include "cache/cache_internal.h"
#include "io/io_internal.h"

#include <dirent.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

MT_SUITE(cache_suite)


/* ---- cache helpers ---- */

/* Writes a cache of `n` items with one field per (name, dtype, dim, data). */
typedef struct mt_field {
    const char *name;
    mmrec_cache_dtype dtype;
    int64_t dim;
    const float *data;
} mt_field;

static void mt_write_cache(const char *path, const int64_t *ids, size_t n, const mt_field *fields,
                           int n_fields) {
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, ids, n, &w));
    for (int i = 0; i < n_fields; i++)
        MT_OK(mmrec_cache_writer_add(w, fields[i].name, fields[i].dtype, fields[i].data,
                                     fields[i].dim));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
}

/* A cache where every value of every item equals `value` (field "emb",
 * dim 16, items 3, 10, 17, ...). */
enum { MT_VN = 64, MT_VDIM = 16 };
static void mt_write_version(const char *path, float value) {
    int64_t ids[MT_VN];
    static float data[MT_VN * MT_VDIM];
    for (int i = 0; i < MT_VN; i++) ids[i] = 3 + 7 * i;
    for (int i = 0; i < MT_VN * MT_VDIM; i++) data[i] = value;
    mt_field f = {"emb", MMREC_CACHE_F32, MT_VDIM, data};
    mt_write_cache(path, ids, MT_VN, &f, 1);
}

static void mt_gather_into(const mmrec_cache *c, const char *field, const int64_t *ids, size_t n,
                           float *dst) {
    MT_OK(mmrec_cache_gather_into(c, field, ids, n, 0, dst, NULL));
}

/* Opening `path` fails with MMREC_EFORMAT mentioning `needle` and the path. */
static void mt_expect_bad(const char *path, const char *needle) {
    mmrec_cache *c = (mmrec_cache *)0x1;
    MT_EXPECT(mmrec_cache_open(path, &c), MMREC_EFORMAT, needle);
    MT_EXPECT(mmrec_cache_open(path, &c), MMREC_EFORMAT, path);
    ck_assert_ptr_eq(c, (mmrec_cache *)0x1); /* untouched */
}

static bool mt_is_dense(const mmrec_cache *c) {
    mmrec__cache_version *v;
    MT_OK(mmrec__cache_acquire(c, &v, "test"));
    bool dense = v->dense;
    mmrec__cache_release(c, v);
    return dense;
}

/* ---- round trips ---- */

START_TEST(test_cache_round_trip_f32_sparse_ids_any_order) {
    mt_tmp_dir();
    const char *path = mt_file(0, "items.mmfc");
    int64_t ids[5] = {7, 1000003, 42, 5, 99};
    float image[5 * 3], text[5];
    for (int i = 0; i < 5; i++) {
        for (int c = 0; c < 3; c++) image[i * 3 + c] = (float)(i * 10 + c) + 0.25f;
        text[i] = -(float)i - 0.125f;
    }
    mt_field fields[2] = {{"image", MMREC_CACHE_F32, 3, image},
                          {"text.layer3", MMREC_CACHE_F32, 1, text}};
    mt_write_cache(path, ids, 5, fields, 2);
    ck_assert_int_eq(mt_count_tmp_files(), 0);

    size_t size;
    unsigned char *file = mt_read_file(path, &size);
    ck_assert(memcmp(file, "MMRCACHE", 8) == 0);
    ck_assert_uint_eq(file[8], 1);
    ck_assert_uint_eq(mmrec__crc32c(0, file, 60),
                      (uint32_t)file[60] | (uint32_t)file[61] << 8 | (uint32_t)file[62] << 16 |
                          (uint32_t)file[63] << 24);
    free(file);

    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    ck_assert(!mt_is_dense(c));
    int64_t items, dim;
    int n_fields;
    MT_OK(mmrec_cache_num_items(c, &items));
    ck_assert_int_eq(items, 5);
    MT_OK(mmrec_cache_num_fields(c, &n_fields));
    ck_assert_int_eq(n_fields, 2);
    const char *name;
    mmrec_cache_dtype dtype;
    MT_OK(mmrec_cache_field_info(c, 0, &name, &dim, &dtype));
    ck_assert_str_eq(name, "image");
    ck_assert_int_eq(dim, 3);
    ck_assert_int_eq(dtype, MMREC_CACHE_F32);
    MT_OK(mmrec_cache_field_info(c, 1, &name, NULL, NULL));
    ck_assert_str_eq(name, "text.layer3");
    MT_OK(mmrec_cache_field_dim(c, "text.layer3", &dim));
    ck_assert_int_eq(dim, 1);

    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t want[6] = {42, 7, 1000003, 42, 99, 5};
    int rows[6] = {2, 0, 1, 2, 4, 3};
    mmrec_tensor *t, *p;
    MT_OK(mmrec_cache_gather(c, tape, "image", want, 6, &t));
    int ndim;
    int64_t shape[MMREC_MAX_DIMS];
    MT_OK(mmrec_tensor_shape(t, &ndim, shape));
    ck_assert_int_eq(ndim, 2);
    ck_assert_int_eq(shape[0], 6);
    ck_assert_int_eq(shape[1], 3);
    const float *d;
    MT_OK(mmrec_tensor_data_const(t, &d));
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 3; k++) ck_assert(d[i * 3 + k] == image[rows[i] * 3 + k]);
    MT_OK(mmrec_cache_gather_ex(c, tape, "text.layer3", want, 6, 0, &t, &p));
    MT_OK(mmrec_tensor_data_const(t, &d));
    for (int i = 0; i < 6; i++) ck_assert(d[i] == text[rows[i]]);
    MT_OK(mmrec_tensor_data_const(p, &d));
    for (int i = 0; i < 6; i++) ck_assert(d[i] == 1.0f);
    float dst[18], presence[6];
    MT_OK(mmrec_cache_gather_into(c, "image", want, 6, 0, dst, presence));
    for (int i = 0; i < 6; i++) {
        ck_assert(presence[i] == 1.0f);
        ck_assert(memcmp(dst + 3 * i, image + 3 * rows[i], 3 * sizeof(float)) == 0);
    }
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_cache_dense_ids_fast_path) {
    mt_tmp_dir();
    const char *path = mt_file(0, "dense.mmfc");
    enum { N = 1000, D = 4 };
    int64_t ids[N];
    static float data[N * D];
    for (int i = 0; i < N; i++) {
        ids[i] = N - 1 - i; /* all of 0..N-1, reversed */
        for (int k = 0; k < D; k++) data[i * D + k] = (float)(ids[i] * D + k);
    }
    mt_field f = {"emb", MMREC_CACHE_F32, D, data};
    mt_write_cache(path, ids, N, &f, 1);
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    ck_assert(mt_is_dense(c));
    int64_t want[5] = {0, 999, 500, 1, 500};
    float dst[5 * D];
    mt_gather_into(c, "emb", want, 5, dst);
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < D; k++) ck_assert(dst[i * D + k] == (float)(want[i] * D + k));
    int64_t bad[2] = {3, N};
    MT_EXPECT(mmrec_cache_gather_into(c, "emb", bad, 2, 0, dst, NULL), MMREC_ERANGE,
              "ids[1] is 1000");
    bad[1] = -1;
    MT_EXPECT(mmrec_cache_gather_into(c, "emb", bad, 2, 0, dst, NULL), MMREC_ERANGE,
              "ids[1] is -1");
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

/* ---- 16-bit storage ---- */

/* Round trip of `values` through a one-field cache of `dtype`. */
static void mt_round_trip_16(mmrec_cache_dtype dtype, const float *values, float *got, size_t n) {
    const char *path = mt_file(1, "half.mmfc");
    int64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)(n - i) * 3; /* unordered, sparse */
    mt_field f = {"v", dtype, 1, values};
    mt_write_cache(path, ids, n, &f, 1);
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    mmrec_cache_dtype stored;
    MT_OK(mmrec_cache_field_info(c, 0, NULL, NULL, &stored));
    ck_assert_int_eq(stored, dtype);
    mt_gather_into(c, "v", ids, n, got);
    mmrec_cache_close(c);
    free(ids);
}

START_TEST(test_cache_f16_and_bf16_round_to_nearest_even) {
    mt_tmp_dir();
    /* bit patterns of the conversions themselves */
    ck_assert_uint_eq(mmrec__cache_f32_to_f16(1.0f), 0x3c00);
    ck_assert_uint_eq(mmrec__cache_f32_to_f16(-2.0f), 0xc000);
    ck_assert_uint_eq(mmrec__cache_f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(mmrec__cache_f32_to_f16(ldexpf(1, -24)), 0x0001);
    ck_assert_uint_eq(mmrec__cache_f32_to_f16(65520.0f), 0x7c00);
    ck_assert_uint_eq(mmrec__cache_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(mmrec__cache_f32_to_bf16(-2.0f), 0xc000);
    ck_assert(mmrec__cache_f16_to_f32(0x0001) == ldexpf(1, -24));
    ck_assert(mmrec__cache_f16_to_f32(0x7bff) == 65504.0f);

    float f16_exact[] = {0.0f, 1.0f, -2.0f, 0.5f, 1.5f, -1024.0f, 2047.0f, 65504.0f, -65504.0f,
                         ldexpf(1, -24), ldexpf(3, -24), ldexpf(1, -14), ldexpf(1, -15),
                         0.3330078125f};
    float bf16_exact[] = {0.0f, 1.0f, -2.0f, 0.5f, 1.5f, 255.0f, -1.0078125f, ldexpf(1, -126),
                          ldexpf(1, -133), ldexpf(255, 120), ldexpf(5, -20)};
    float got[64];
    size_t n16 = sizeof f16_exact / sizeof *f16_exact, nb = sizeof bf16_exact / sizeof *bf16_exact;
    mt_round_trip_16(MMREC_CACHE_F16, f16_exact, got, n16);
    for (size_t i = 0; i < n16; i++)
        ck_assert_msg(got[i] == f16_exact[i], "f16 %g came back as %g", (double)f16_exact[i],
                      (double)got[i]);
    mt_round_trip_16(MMREC_CACHE_BF16, bf16_exact, got, nb);
    for (size_t i = 0; i < nb; i++)
        ck_assert_msg(got[i] == bf16_exact[i], "bf16 %g came back as %g", (double)bf16_exact[i],
                      (double)got[i]);

    /* ties go to the even neighbour */
    float f16_ties[4] = {1.0f + ldexpf(1, -11), 1.0f + ldexpf(3, -11), 2049.0f, 2051.0f};
    float f16_want[4] = {1.0f, 1.0f + ldexpf(1, -9), 2048.0f, 2052.0f};
    mt_round_trip_16(MMREC_CACHE_F16, f16_ties, got, 4);
    for (int i = 0; i < 4; i++) ck_assert(got[i] == f16_want[i]);
    float bf_ties[4] = {1.0f + ldexpf(1, -8), 1.0f + ldexpf(3, -8), 257.0f, 259.0f};
    float bf_want[4] = {1.0f, 1.0f + ldexpf(1, -6), 256.0f, 260.0f};
    mt_round_trip_16(MMREC_CACHE_BF16, bf_ties, got, 4);
    for (int i = 0; i < 4; i++) ck_assert(got[i] == bf_want[i]);

    /* generic values: within half a unit in the last place */
    float rnd[64];
    mt_fill_away(rnd, 64, -8, 8, 0.01f, 31);
    mt_round_trip_16(MMREC_CACHE_F16, rnd, got, 64);
    for (int i = 0; i < 64; i++) ck_assert(fabsf(got[i] - rnd[i]) <= ldexpf(fabsf(rnd[i]), -11));
    mt_round_trip_16(MMREC_CACHE_BF16, rnd, got, 64);
    for (int i = 0; i < 64; i++) ck_assert(fabsf(got[i] - rnd[i]) <= ldexpf(fabsf(rnd[i]), -8));
    mt_tmp_clean();
}
END_TEST

START_TEST(test_cache_bad_values_rejected_and_writer_goes_on) {
    mt_tmp_dir();
    const char *path = mt_file(0, "v.mmfc");
    int64_t ids[4] = {30, 10, 40, 20};
    float data[8] = {1, 2, 3, 4, 5, NAN, 7, 8}; /* caller's row 2, column 1 */
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, ids, 4, &w));
    MT_EXPECT(mmrec_cache_writer_add(w, "a", MMREC_CACHE_F32, data, 2), MMREC_ENUMERIC,
              "data row 2 column 1 is nan");
    data[5] = INFINITY;
    MT_EXPECT(mmrec_cache_writer_add(w, "a", MMREC_CACHE_BF16, data, 2), MMREC_ENUMERIC,
              "row 2 column 1 is inf");
    data[5] = 70000.0f;
    MT_EXPECT(mmrec_cache_writer_add(w, "a", MMREC_CACHE_F16, data, 2), MMREC_ERANGE,
              "row 2 column 1 is 70000, beyond the range of float16");
    MT_OK(mmrec_cache_writer_add(w, "a", MMREC_CACHE_F32, data, 2)); /* fine as float32 */
    data[5] = FLT_MAX;
    MT_EXPECT(mmrec_cache_writer_add(w, "b", MMREC_CACHE_BF16, data, 2), MMREC_ERANGE,
              "beyond the range of bfloat16");
    data[5] = 6.0f;
    MT_OK(mmrec_cache_writer_add(w, "b", MMREC_CACHE_BF16, data, 2));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);

    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    int n_fields;
    MT_OK(mmrec_cache_num_fields(c, &n_fields));
    ck_assert_int_eq(n_fields, 2);
    float dst[8];
    mt_gather_into(c, "a", ids, 4, dst);
    ck_assert(dst[5] == 70000.0f && dst[7] == 8.0f);
    mt_gather_into(c, "b", ids, 4, dst);
    for (int i = 0; i < 8; i++) ck_assert(dst[i] == (float)(i + 1));
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

/* ---- missing ids, tapes, bad arguments ---- */

START_TEST(test_cache_missing_ids_error_or_zero_row) {
    mt_tmp_dir();
    const char *path = mt_file(0, "m.mmfc");
    int64_t ids[3] = {7, 1000003, 42};
    float data[6] = {1, 2, 3, 4, 5, 6};
    mt_field f = {"emb", MMREC_CACHE_F16, 2, data};
    mt_write_cache(path, ids, 3, &f, 1);
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t want[4] = {42, 8, 7, 1000004};
    mmrec_tensor *t = NULL, *p = NULL;
    size_t cap0, hw0, cap1, hw1;
    MT_OK(mmrec_tape_memory(tape, &cap0, &hw0));
    MT_EXPECT(mmrec_cache_gather(c, tape, "emb", want, 4, &t), MMREC_ERANGE, "ids[1] is 8");
    MT_EXPECT(mmrec_cache_gather_ex(c, tape, "emb", want, 4, 0, &t, &p), MMREC_ERANGE,
              "MMREC_CACHE_MISSING_ZERO");
    ck_assert_ptr_null(t);
    MT_OK(mmrec_tape_memory(tape, &cap1, &hw1));
    ck_assert_uint_eq(hw1, hw0); /* the tape did not grow */

    MT_OK(mmrec_cache_gather_ex(c, tape, "emb", want, 4, MMREC_CACHE_MISSING_ZERO, &t, &p));
    const float *d, *pd;
    MT_OK(mmrec_tensor_data_const(t, &d));
    MT_OK(mmrec_tensor_data_const(p, &pd));
    float expect[8] = {5, 6, 0, 0, 1, 2, 0, 0}, presence_want[4] = {1, 0, 1, 0};
    ck_assert(memcmp(d, expect, sizeof expect) == 0);
    ck_assert(memcmp(pd, presence_want, sizeof presence_want) == 0);
    MT_OK(mmrec_cache_gather_ex(c, tape, "emb", want, 4, MMREC_CACHE_MISSING_ZERO, &t, NULL));

    /* into caller memory: untouched on failure */
    float dst[8], presence[4];
    for (int i = 0; i < 8; i++) dst[i] = -7.0f;
    for (int i = 0; i < 4; i++) presence[i] = -7.0f;
    MT_EXPECT(mmrec_cache_gather_into(c, "emb", want, 4, 0, dst, presence), MMREC_ERANGE,
              "ids[1] is 8");
    for (int i = 0; i < 8; i++) ck_assert(dst[i] == -7.0f);
    for (int i = 0; i < 4; i++) ck_assert(presence[i] == -7.0f);
    MT_OK(mmrec_cache_gather_into(c, "emb", want, 4, MMREC_CACHE_MISSING_ZERO, dst, presence));
    ck_assert(memcmp(dst, expect, sizeof expect) == 0);
    ck_assert(memcmp(presence, presence_want, sizeof presence_want) == 0);
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_cache_gather_is_a_constant_on_any_tape) {
    mt_tmp_dir();
    const char *path = mt_file(0, "t.mmfc");
    int64_t ids[2] = {1, 0};
    float data[4] = {1, 2, 3, 4};
    mt_field f = {"x", MMREC_CACHE_F32, 2, data};
    mt_write_cache(path, ids, 2, &f, 1);
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *t, *s;
    /* training tape: nothing to differentiate */
    MT_OK(mmrec_cache_gather(c, tape, "x", ids, 2, &t));
    MT_OK(mmrec_sum(tape, t, MMREC_AXIS_ALL, &s));
    MT_EXPECT(mmrec_tape_backward(tape, s), MMREC_ESTATE, "needs a gradient");
    mmrec_tape_reset(tape);
    const float *d;
    MT_EXPECT(mmrec_tensor_data_const(t, &d), MMREC_ESTALE, NULL);
    /* inference tape */
    MT_OK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    int64_t one = 0;
    MT_OK(mmrec_cache_gather(c, tape, "x", &one, 1, &t));
    MT_OK(mmrec_tensor_data_const(t, &d));
    ck_assert(d[0] == 3.0f && d[1] == 4.0f);
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_cache_bad_arguments) {
    mt_tmp_dir();
    const char *path = mt_file(0, "a.mmfc");
    int64_t ids[3] = {4, 2, 9};
    float data[3] = {1, 2, 3};
    mmrec_cache_writer *w;
    /* writer_create */
    MT_EXPECT(mmrec_cache_writer_create(NULL, ids, 3, &w), MMREC_EINVAL, "'path'");
    MT_EXPECT(mmrec_cache_writer_create(path, NULL, 3, &w), MMREC_EINVAL, "'ids'");
    MT_EXPECT(mmrec_cache_writer_create(path, ids, 3, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_cache_writer_create(path, ids, 0, &w), MMREC_EINVAL, "num_items is 0");
    int64_t neg[3] = {4, 2, -9}, dup[4] = {4, 2, 9, 2};
    MT_EXPECT(mmrec_cache_writer_create(path, neg, 3, &w), MMREC_EINVAL, "ids[2] is -9");
    MT_EXPECT(mmrec_cache_writer_create(path, dup, 4, &w), MMREC_EINVAL,
              "ids[1] and ids[3] are both 2");
    MT_EXPECT(mmrec_cache_writer_create("/nonexistent-mmrec-dir/c.mmfc", ids, 3, &w), MMREC_EIO,
              "/nonexistent-mmrec-dir/c.mmfc.tmp.");
    ck_assert_int_eq(mt_count_tmp_files(), 0);

    /* writer_add / add_npy */
    MT_OK(mmrec_cache_writer_create(path, ids, 3, &w));
    char long_name[300];
    memset(long_name, 'n', 256);
    long_name[256] = '\0';
    MT_EXPECT(mmrec_cache_writer_add(NULL, "a", MMREC_CACHE_F32, data, 1), MMREC_EINVAL,
              "'writer'");
    MT_EXPECT(mmrec_cache_writer_add(w, NULL, MMREC_CACHE_F32, data, 1), MMREC_EINVAL, "'field'");
    MT_EXPECT(mmrec_cache_writer_add(w, "a", MMREC_CACHE_F32, NULL, 1), MMREC_EINVAL, "'data'");
    MT_EXPECT(mmrec_cache_writer_add(w, "", MMREC_CACHE_F32, data, 1), MMREC_EINVAL, "0 bytes");
    MT_EXPECT(mmrec_cache_writer_add(w, long_name, MMREC_CACHE_F32, data, 1), MMREC_EINVAL,
              "256 bytes");
    MT_EXPECT(mmrec_cache_writer_add(w, "a\tb", MMREC_CACHE_F32, data, 1), MMREC_EINVAL,
              "control character");
    MT_EXPECT(mmrec_cache_writer_add(w, "a", (mmrec_cache_dtype)7, data, 1), MMREC_EINVAL,
              "dtype is 7");
    MT_EXPECT(mmrec_cache_writer_add(w, "a", MMREC_CACHE_F32, data, 0), MMREC_EINVAL, "dim is 0");
    MT_EXPECT(mmrec_cache_writer_add_npy(w, "a", MMREC_CACHE_F32, NULL), MMREC_EINVAL,
              "'npy_path'");
    MT_EXPECT(mmrec_cache_writer_add_npy(NULL, "a", MMREC_CACHE_F32, path), MMREC_EINVAL,
              "'writer'");
    MT_EXPECT(mmrec_cache_writer_add_npy(w, "a", (mmrec_cache_dtype)7, path), MMREC_EINVAL,
              "dtype is 7");
    MT_EXPECT(mmrec_cache_writer_add_npy(w, "", MMREC_CACHE_F32, path), MMREC_EINVAL,
              "field name is 0 bytes");
    memset(long_name, 'n', 255);
    long_name[255] = '\0';
    MT_OK(mmrec_cache_writer_add(w, long_name, MMREC_CACHE_F32, data, 1));
    MT_OK(mmrec_cache_writer_add(w, "a", MMREC_CACHE_F32, data, 1));
    MT_EXPECT(mmrec_cache_writer_add(w, "a", MMREC_CACHE_F16, data, 1), MMREC_ESTATE,
              "field 'a' was already added");
    MT_EXPECT(mmrec_cache_writer_commit(NULL), MMREC_EINVAL, "'writer'");
    MT_OK(mmrec_cache_writer_commit(w));
    MT_EXPECT(mmrec_cache_writer_commit(w), MMREC_ESTATE, "finished");
    MT_EXPECT(mmrec_cache_writer_add(w, "b", MMREC_CACHE_F32, data, 1), MMREC_ESTATE,
              "finished");
    MT_EXPECT(mmrec_cache_writer_add_npy(w, "b", MMREC_CACHE_F32, path), MMREC_ESTATE,
              "finished");
    mmrec_cache_writer_destroy(w);
    mmrec_cache_writer_destroy(NULL);

    /* reader */
    mmrec_cache *c;
    MT_EXPECT(mmrec_cache_open(NULL, &c), MMREC_EINVAL, "'path'");
    MT_EXPECT(mmrec_cache_open(path, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_cache_open(mt_file(1, "missing.mmfc"), &c), MMREC_EIO, "No such file");
    MT_EXPECT(mmrec_cache_open(mt_dir, &c), MMREC_EIO, "not a regular file");
    MT_OK(mmrec_cache_open(path, &c));
    int64_t n64, dim;
    int n;
    const char *name;
    MT_EXPECT(mmrec_cache_num_items(NULL, &n64), MMREC_EINVAL, "'cache'");
    MT_EXPECT(mmrec_cache_num_items(c, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_cache_num_fields(NULL, &n), MMREC_EINVAL, "'cache'");
    MT_EXPECT(mmrec_cache_num_fields(c, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_cache_field_info(NULL, 0, &name, &dim, NULL), MMREC_EINVAL, "'cache'");
    MT_EXPECT(mmrec_cache_field_info(c, 2, &name, &dim, NULL), MMREC_ERANGE, "index 2");
    MT_EXPECT(mmrec_cache_field_info(c, -1, &name, &dim, NULL), MMREC_ERANGE, "has 2 fields");
    MT_EXPECT(mmrec_cache_field_dim(NULL, "a", &dim), MMREC_EINVAL, "'cache'");
    MT_EXPECT(mmrec_cache_field_dim(c, NULL, &dim), MMREC_EINVAL, "'field'");
    MT_EXPECT(mmrec_cache_field_dim(c, "a", NULL), MMREC_EINVAL, "'dim_out'");
    MT_EXPECT(mmrec_cache_field_dim(c, "nope", &dim), MMREC_ENOTFOUND, "no field 'nope'");
    MT_EXPECT(mmrec_cache_refresh(NULL, NULL), MMREC_EINVAL, "'cache'");

    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *t, *p;
    float dst[3];
    MT_EXPECT(mmrec_cache_gather(NULL, tape, "a", ids, 3, &t), MMREC_EINVAL, "'cache'");
    MT_EXPECT(mmrec_cache_gather(c, NULL, "a", ids, 3, &t), MMREC_EINVAL, "'tape'");
    MT_EXPECT(mmrec_cache_gather(c, tape, NULL, ids, 3, &t), MMREC_EINVAL, "'field'");
    MT_EXPECT(mmrec_cache_gather(c, tape, "a", NULL, 3, &t), MMREC_EINVAL, "'ids'");
    MT_EXPECT(mmrec_cache_gather(c, tape, "a", ids, 3, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_cache_gather(c, tape, "a", ids, 0, &t), MMREC_EINVAL, "n is 0");
    MT_EXPECT(mmrec_cache_gather(c, tape, "nope", ids, 3, &t), MMREC_ENOTFOUND, "'nope'");
    MT_EXPECT(mmrec_cache_gather(c, tape, "a", ids, 3, &t), MMREC_OK, NULL);
    MT_EXPECT(mmrec_cache_gather_ex(c, tape, "a", ids, 3, 2, &t, &p), MMREC_EINVAL, "flags 0x2");
    MT_EXPECT(mmrec_cache_gather_ex(c, tape, "a", ids, 0, 0, &t, &p), MMREC_EINVAL, "n is 0");
    MT_EXPECT(mmrec_cache_gather_ex(c, tape, "nope", ids, 3, 0, &t, &p), MMREC_ENOTFOUND,
              "'nope'");
    MT_EXPECT(mmrec_cache_gather_into(NULL, "a", ids, 3, 0, dst, NULL), MMREC_EINVAL, "'cache'");
    MT_EXPECT(mmrec_cache_gather_into(c, NULL, ids, 3, 0, dst, NULL), MMREC_EINVAL, "'field'");
    MT_EXPECT(mmrec_cache_gather_into(c, "a", NULL, 3, 0, dst, NULL), MMREC_EINVAL, "'ids'");
    MT_EXPECT(mmrec_cache_gather_into(c, "a", ids, 3, 0, NULL, NULL), MMREC_EINVAL, "'dst'");
    MT_EXPECT(mmrec_cache_gather_into(c, "a", ids, 3, 4, dst, NULL), MMREC_EINVAL, "flags 0x4");
    MT_EXPECT(mmrec_cache_gather_into(c, "nope", ids, 0, 0, dst, NULL), MMREC_ENOTFOUND,
              "'nope'");
    dst[0] = -1.0f;
    MT_OK(mmrec_cache_gather_into(c, "a", ids, 0, 0, dst, NULL)); /* n == 0: nothing written */
    ck_assert(dst[0] == -1.0f);
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
    mmrec_cache_close(NULL);
    mt_tmp_clean();
}
END_TEST

/* Gathers allocate nothing once the tape's arena has grown. */

START_TEST(test_cache_steady_state_gather_allocates_nothing) {
    mt_tmp_dir();
    const char *path = mt_file(0, "s.mmfc");
    mt_write_version(path, 1.0f);
    mmrec_allocator a = {sizeof a, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&a));
    mmrec_cache *c;
    mmrec_tape *tape;
    MT_OK(mmrec_cache_open(path, &c));
    MT_OK(mmrec_tape_create(&tape));
    int64_t ids[4] = {3, 10, 17, 9};
    mmrec_tensor *t, *p;
    float dst[4 * MT_VDIM], presence[4];
    for (int step = 0; step < 3; step++) {
        if (step == 2) mt_allocs = 0;
        MT_OK(mmrec_cache_gather(c, tape, "emb", ids, 3, &t));
        MT_OK(mmrec_cache_gather_ex(c, tape, "emb", ids, 4, MMREC_CACHE_MISSING_ZERO, &t, &p));
        MT_OK(mmrec_cache_gather_into(c, "emb", ids, 4, MMREC_CACHE_MISSING_ZERO, dst, presence));
        mmrec_tape_reset(tape);
    }
    ck_assert_int_eq(mt_allocs, 0);
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
    MT_OK(mmrec_set_allocator(NULL));
    mt_tmp_clean();
}
END_TEST

/* ---- .npy import ---- */

/* Writes an .npy file: the prelude of `major`.`minor`, `dict` padded with
 * spaces and a newline to a multiple of 64 bytes, then `size` data bytes. */
static void mt_npy_raw(const char *path, int major, int minor, const char *dict,
                       const void *data, size_t size) {
    size_t prelude = major == 1 ? 10 : 12, len = strlen(dict);
    size_t header = (prelude + len + 1 + 63) / 64 * 64 - prelude;
    unsigned char *buf = calloc(prelude + header + size, 1);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = (unsigned char)minor;
    for (size_t i = 0; i < (major == 1 ? 2u : 4u); i++) buf[8 + i] = (unsigned char)(header >> (8 * i));
    memset(buf + prelude, ' ', header);
    memcpy(buf + prelude, dict, len);
    buf[prelude + header - 1] = '\n';
    if (size) memcpy(buf + prelude + header, data, size);
    mt_write_file(path, buf, prelude + header + size);
    free(buf);
}

/* `n` floats as the bytes of dtype `descr` (e.g. ">f8"). */
static size_t mt_npy_bytes(const char *descr, const float *values, size_t n, unsigned char *out) {
    size_t elem = (size_t)(descr[2] - '0');
    bool big = descr[0] == '>';
    for (size_t i = 0; i < n; i++) {
        uint64_t bits = 0;
        if (elem == 8) {
            double d = values[i];
            memcpy(&bits, &d, 8);
        } else if (elem == 4) {
            uint32_t u;
            memcpy(&u, &values[i], 4);
            bits = u;
        } else {
            bits = mmrec__cache_f32_to_f16(values[i]);
        }
        for (size_t b = 0; b < elem; b++)
            out[i * elem + b] = (unsigned char)(bits >> (8 * (big ? elem - 1 - b : b)));
    }
    return n * elem;
}

/* An .npy file of `values` [rows, dim] (dim 0: 1-D) stored as `descr`. */
static void mt_npy(const char *path, int major, const char *descr, const float *values,
                   size_t rows, size_t dim) {
    char dict[160];
    if (dim == 0)
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%zu,), }",
                 descr, rows);
    else
        snprintf(dict, sizeof dict,
                 "{'descr': '%s', 'fortran_order': False, 'shape': (%zu, %zu), }", descr, rows,
                 dim);
    size_t n = rows * (dim ? dim : 1);
    unsigned char *bytes = malloc(n * 8);
    size_t size = mt_npy_bytes(descr, values, n, bytes);
    mt_npy_raw(path, major, 0, dict, bytes, size);
    free(bytes);
}

START_TEST(test_cache_npy_import_versions_dtypes_byte_orders) {
    mt_tmp_dir();
    const char *path = mt_file(0, "n.mmfc"), *npy = mt_file(1, "x.npy");
    enum { N = 6, D = 3 };
    int64_t ids[N] = {50, 10, 40, 20, 60, 30};
    float values[N * D];
    for (int i = 0; i < N * D; i++) values[i] = (float)(i - 7) / 8.0f; /* exact in f16 */
    struct {
        int major;
        const char *descr;
        size_t dim; /* 0: a 1-D array */
        mmrec_cache_dtype dtype;
    } cases[] = {
        {1, "<f4", D, MMREC_CACHE_F32}, {1, ">f8", D, MMREC_CACHE_F32},
        {2, "<f2", D, MMREC_CACHE_F16}, {3, ">f2", D, MMREC_CACHE_BF16},
        {1, "<f8", 0, MMREC_CACHE_F32}, {2, ">f4", 0, MMREC_CACHE_F16},
        {1, "=f4", D, MMREC_CACHE_F32}, {3, "|f8", D, MMREC_CACHE_F32},
    };
    size_t n_cases = sizeof cases / sizeof *cases;
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, ids, N, &w));
    for (size_t k = 0; k < n_cases; k++) {
        char field[16];
        snprintf(field, sizeof field, "f%zu", k);
        mt_npy(npy, cases[k].major, cases[k].descr, values, N, cases[k].dim);
        MT_OK(mmrec_cache_writer_add_npy(w, field, cases[k].dtype, npy));
    }
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);

    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    float dst[N * D];
    for (size_t k = 0; k < n_cases; k++) {
        char field[16];
        snprintf(field, sizeof field, "f%zu", k);
        int64_t dim;
        MT_OK(mmrec_cache_field_dim(c, field, &dim));
        ck_assert_int_eq(dim, cases[k].dim ? (int64_t)cases[k].dim : 1);
        mt_gather_into(c, field, ids, N, dst);
        for (int i = 0; i < N * (int)dim; i++)
            ck_assert_msg(dst[i] == values[i], "case %zu (%s): element %d is %g, expected %g", k,
                          cases[k].descr, i, (double)dst[i], (double)values[i]);
    }
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_cache_npy_long_rows_and_bad_values) {
    mt_tmp_dir();
    const char *path = mt_file(0, "l.mmfc"), *npy = mt_file(1, "l.npy");
    enum { N = 3, D = 20000 }; /* a float64 row is longer than one read chunk */
    int64_t ids[N] = {2, 0, 1};
    float *values = malloc(N * D * sizeof *values);
    mt_fill_uniform(values, N * D, -1, 1, 5);
    mt_npy(npy, 1, ">f8", values, N, D);
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, ids, N, &w));
    MT_OK(mmrec_cache_writer_add_npy(w, "long", MMREC_CACHE_F32, npy));
    values[1 * D + 12345] = NAN;
    mt_npy(npy, 1, "<f4", values, N, D);
    MT_EXPECT(mmrec_cache_writer_add_npy(w, "bad", MMREC_CACHE_F32, npy), MMREC_ENUMERIC,
              "l.npy' row 1 column 12345 is nan");
    values[1 * D + 12345] = 0.5f;
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    float *dst = malloc(N * D * sizeof *dst);
    mt_gather_into(c, "long", ids, N, dst);
    values[1 * D + 12345] = dst[1 * D + 12345];
    ck_assert(memcmp(dst, values, N * D * sizeof *dst) == 0);
    mmrec_cache_close(c);

    /* a float64 beyond float32's range */
    double big[2] = {1.0, 1e300};
    int64_t two[2] = {0, 1};
    mt_npy_raw(npy, 1, 0, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", big,
               sizeof big);
    MT_OK(mmrec_cache_writer_create(path, two, 2, &w));
    MT_EXPECT(mmrec_cache_writer_add_npy(w, "x", MMREC_CACHE_F32, npy), MMREC_ERANGE,
              "row 1 column 0 is 1e+300, beyond the range of float32");
    mmrec_cache_writer_destroy(w);
    free(values);
    free(dst);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_cache_npy_rejections) {
    mt_tmp_dir();
    const char *path = mt_file(0, "r.mmfc"), *npy = mt_file(1, "bad.npy");
    int64_t ids[4] = {1, 2, 3, 4};
    float values[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    unsigned char bytes[64];
    size_t size = mt_npy_bytes("<f4", values, 8, bytes);
    const char *ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }";
    struct {
        int major, minor;
        const char *dict;
        size_t data_size;
        mmrec_status status;
        const char *needle;
    } cases[] = {
        {1, 0, "{'descr': '<f4', 'fortran_order': True, 'shape': (4, 2), }", 32, MMREC_EFORMAT,
         "Fortran order"},
        {1, 0, "{'descr': '|O', 'fortran_order': False, 'shape': (4, 2), }", 32, MMREC_EFORMAT,
         "dtype '|O'"},
        {1, 0, "{'descr': '<i4', 'fortran_order': False, 'shape': (4, 2), }", 32, MMREC_EFORMAT,
         "dtype '<i4'"},
        {1, 0, "{'descr': '<c8', 'fortran_order': False, 'shape': (4, 1), }", 32, MMREC_EFORMAT,
         "dtype '<c8'"},
        {1, 0, ok_dict, 31, MMREC_EFORMAT, "31 bytes of data, its header needs 32 (truncated)"},
        {1, 0, ok_dict, 0, MMREC_EFORMAT, "truncated"},
        {1, 0, ok_dict, 36, MMREC_EFORMAT, "4 bytes after its data"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 2), }", 40, MMREC_ESHAPE,
         "has 5 rows, the writer has 4 items"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 1, 2, 1), }", 32,
         MMREC_EFORMAT, "4-D array"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4, MMREC_EFORMAT,
         "0-D array"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }", 0, MMREC_EFORMAT,
         "0 columns"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False}", 32, MMREC_EFORMAT, "lacks 'shape'"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), 'x': 1}", 32,
         MMREC_EFORMAT, "unexpected key 'x'"},
        {1, 0, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4, 2)}", 32,
         MMREC_EFORMAT, "'descr' appears twice"},
        {1, 0, "{'descr': '<f4', 'fortran_order': maybe, 'shape': (4, 2)}", 32, MMREC_EFORMAT,
         "bad value for 'fortran_order'"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2x)}", 32, MMREC_EFORMAT,
         "bad value for 'shape'"},
        {1, 0, "not a dict", 32, MMREC_EFORMAT, "not a dict"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2)} extra", 32,
         MMREC_EFORMAT, "text after its dict"},
        {4, 0, ok_dict, 32, MMREC_EFORMAT, "format version 4.0"},
        {1, 1, ok_dict, 32, MMREC_EFORMAT, "format version 1.1"},
    };
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, ids, 4, &w));
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        mt_npy_raw(npy, cases[k].major, cases[k].minor, cases[k].dict, bytes,
                   cases[k].data_size <= size ? cases[k].data_size : size);
        if (cases[k].data_size > size) { /* append zero bytes */
            unsigned char pad[64] = {0};
            FILE *f = fopen(npy, "ab");
            ck_assert_uint_eq(fwrite(pad, 1, cases[k].data_size - size, f),
                              cases[k].data_size - size);
            fclose(f);
        }
        MT_EXPECT(mmrec_cache_writer_add_npy(w, "x", MMREC_CACHE_F32, npy), cases[k].status,
                  cases[k].needle);
        MT_EXPECT(mmrec_cache_writer_add_npy(w, "x", MMREC_CACHE_F32, npy), cases[k].status,
                  "bad.npy");
    }
    /* bad magic, short files, a missing file */
    mt_write_file(npy, "\x93NUMPZ\x01\x00\x10\x00{}              \n", 26);
    MT_EXPECT(mmrec_cache_writer_add_npy(w, "x", MMREC_CACHE_F32, npy), MMREC_EFORMAT,
              "not an .npy file (bad magic)");
    mt_write_file(npy, "\x93NUMPY", 6);
    MT_EXPECT(mmrec_cache_writer_add_npy(w, "x", MMREC_CACHE_F32, npy), MMREC_EFORMAT,
              "too short");
    mt_write_file(npy, "\x93NUMPY\x01\x00\xff\x00{", 11);
    MT_EXPECT(mmrec_cache_writer_add_npy(w, "x", MMREC_CACHE_F32, npy), MMREC_EFORMAT,
              "runs past the end");
    MT_EXPECT(mmrec_cache_writer_add_npy(w, "x", MMREC_CACHE_F32, mt_file(2, "none.npy")),
              MMREC_EIO, "none.npy");
    /* the writer went on unharmed */
    mt_npy_raw(npy, 1, 0, ok_dict, bytes, size);
    MT_OK(mmrec_cache_writer_add_npy(w, "x", MMREC_CACHE_F32, npy));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    float dst[8];
    mt_gather_into(c, "x", ids, 4, dst);
    ck_assert(memcmp(dst, values, sizeof dst) == 0);
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

/* ---- truncated, corrupt and foreign files ---- */

static uint64_t mt_get64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static void mt_put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A small valid cache: 3 items, "image" f32 dim 4 and "text" f16 dim 2. */
static void mt_write_small(const char *path) {
    int64_t ids[3] = {900, 5, 77};
    float image[12], text[6];
    mt_fill_uniform(image, 12, -1, 1, 8);
    mt_fill_uniform(text, 6, -1, 1, 9);
    mt_field fields[2] = {{"image", MMREC_CACHE_F32, 4, image}, {"text", MMREC_CACHE_F16, 2, text}};
    mt_write_cache(path, ids, 3, fields, 2);
}

START_TEST(test_cache_truncated_files_rejected) {
    mt_tmp_dir();
    char full[160];
    snprintf(full, sizeof full, "%s", mt_file(0, "full.mmfc"));
    const char *cut = mt_file(1, "cut.mmfc");
    mt_write_small(full);
    size_t size;
    unsigned char *file = mt_read_file(full, &size);
    size_t lengths[] = {0, 1, 8, 30, 63, 64, 65, 64 + 12, 100, 128, size / 2, size - 8, size - 1};
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        mt_write_file(cut, file, lengths[i]);
        mt_expect_bad(cut, lengths[i] < 64 ? "shorter than the 64-byte header" : "truncated");
    }
    unsigned char *longer = calloc(size + 8, 1);
    memcpy(longer, file, size);
    mt_write_file(cut, longer, size + 8);
    mt_expect_bad(cut, "its header says");
    free(longer);
    free(file);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_cache_flipped_bytes_and_foreign_files_rejected) {
    mt_tmp_dir();
    char full[160];
    snprintf(full, sizeof full, "%s", mt_file(0, "full.mmfc"));
    const char *bad = mt_file(1, "bad.mmfc");
    mt_write_small(full);
    size_t size;
    unsigned char *file = mt_read_file(full, &size);
    uint64_t index_off = mt_get64(file + 24);
    uint64_t image_off = mt_get64(file + index_off + 16);
    uint64_t text_off = mt_get64(file + index_off + 48 + 16);
    struct {
        size_t pos;
        const char *needle;
    } cases[] = {
        {0, "bad magic"},
        {7, "bad magic"},
        {8, "header checksum"},
        {12, "header checksum"},
        {20, "header checksum"},
        {40, "header checksum"},
        {50, "header checksum"},
        {62, "header checksum"},
        {64, "id table checksum"},
        {64 + 17, "id table checksum"},
        {image_off, "data of field 'image'"},
        {image_off + 47, "data of field 'image'"},
        {text_off + 3, "data of field 'text'"},
        {index_off, "index checksum"},
        {index_off + 41, "index checksum"},
        {size - 1, "index checksum"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        file[cases[i].pos] ^= 0x10;
        mt_write_file(bad, file, size);
        file[cases[i].pos] ^= 0x10;
        mt_expect_bad(bad, cases[i].needle);
    }
    /* another format version, with a valid header checksum */
    unsigned char *copy = malloc(size);
    memcpy(copy, file, size);
    copy[8] = 2;
    mt_put32(copy + 60, mmrec__crc32c(0, copy, 60));
    mt_write_file(bad, copy, size);
    mt_expect_bad(bad, "format version 2");
    /* ids out of order, with every checksum made valid again */
    memcpy(copy, file, size);
    unsigned char id0[8];
    memcpy(id0, copy + 64, 8);
    memcpy(copy + 64, copy + 72, 8);
    memcpy(copy + 72, id0, 8);
    mt_put32(copy + 48, mmrec__crc32c(0, copy + 64, 24));
    mt_put32(copy + 60, mmrec__crc32c(0, copy, 60));
    mt_write_file(bad, copy, size);
    mt_expect_bad(bad, "not sorted and unique at position 1");
    /* a field whose data overlaps the id table, checksums valid */
    memcpy(copy, file, size);
    for (int i = 0; i < 8; i++) copy[index_off + 16 + i] = i == 0 ? 64 : 0;
    mt_put32(copy + 52, mmrec__crc32c(0, copy + index_off, size - index_off));
    mt_put32(copy + 60, mmrec__crc32c(0, copy, 60));
    mt_write_file(bad, copy, size);
    mt_expect_bad(bad, "outside the data area");
    free(copy);
    free(file);

    /* foreign files: a checkpoint and some text */
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    int64_t shape[2] = {4, 4};
    MT_OK(mmrec_model_add_param(m, "w", 2, shape, NULL));
    MT_OK(mmrec_model_save(m, bad));
    mmrec_model_destroy(m);
    mt_expect_bad(bad, "not a libmmrec feature cache");
    char text[300];
    memset(text, 'x', sizeof text);
    mt_write_file(bad, text, sizeof text);
    mt_expect_bad(bad, "not a libmmrec feature cache");

    /* a refresh to a bad file keeps the good version serving */
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(full, &c));
    MT_EXPECT(mmrec_cache_refresh(c, bad), MMREC_EFORMAT, "bad magic");
    int64_t id = 77;
    float row[4];
    mt_gather_into(c, "image", &id, 1, row);
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

/* ---- crash safety and refresh ---- */

START_TEST(test_cache_uncommitted_writer_leaves_old_file) {
    mt_tmp_dir();
    const char *path = mt_file(0, "keep.mmfc");
    mt_write_small(path);
    size_t size0, size1;
    unsigned char *before = mt_read_file(path, &size0);
    int64_t ids[2] = {1, 2};
    float data[2] = {1, 2};
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, ids, 2, &w));
    MT_OK(mmrec_cache_writer_add(w, "x", MMREC_CACHE_F32, data, 1));
    ck_assert_int_eq(mt_count_tmp_files(), 1);
    mmrec_cache_writer_destroy(w);
    ck_assert_int_eq(mt_count_tmp_files(), 0);
    unsigned char *after = mt_read_file(path, &size1);
    ck_assert_uint_eq(size0, size1);
    ck_assert(memcmp(before, after, size0) == 0);
    free(after);
    free(before);

    /* a commit that cannot rename (the target is a directory) */
    const char *dir = mt_file(1, "adir");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    MT_OK(mmrec_cache_writer_create(dir, ids, 2, &w));
    MT_OK(mmrec_cache_writer_add(w, "x", MMREC_CACHE_F32, data, 1));
    MT_EXPECT(mmrec_cache_writer_commit(w), MMREC_EIO, "adir");
    ck_assert_int_eq(mt_count_tmp_files(), 0);
    MT_EXPECT(mmrec_cache_writer_add(w, "y", MMREC_CACHE_F32, data, 1), MMREC_ESTATE, "finished");
    MT_EXPECT(mmrec_cache_writer_commit(w), MMREC_ESTATE, "finished");
    mmrec_cache_writer_destroy(w);

    /* a cache of ids only */
    MT_OK(mmrec_cache_writer_create(path, ids, 2, &w));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    int n;
    MT_OK(mmrec_cache_num_fields(c, &n));
    ck_assert_int_eq(n, 0);
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_cache_refresh_swaps_versions) {
    mt_tmp_dir();
    char a[160], b[160];
    snprintf(a, sizeof a, "%s", mt_file(0, "a.mmfc"));
    snprintf(b, sizeof b, "%s", mt_file(1, "b.mmfc"));
    mt_write_version(a, 1.0f);
    mt_write_version(b, 2.0f);
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(a, &c));
    int64_t id = 10;
    float row[MT_VDIM];
    mt_gather_into(c, "emb", &id, 1, row);
    ck_assert(row[0] == 1.0f);
    mt_write_version(a, 3.0f); /* replaced on disk: the open version is unaffected */
    mt_gather_into(c, "emb", &id, 1, row);
    ck_assert(row[0] == 1.0f);
    MT_OK(mmrec_cache_refresh(c, NULL));
    mt_gather_into(c, "emb", &id, 1, row);
    ck_assert(row[0] == 3.0f);
    MT_OK(mmrec_cache_refresh(c, b));
    mt_gather_into(c, "emb", &id, 1, row);
    ck_assert(row[0] == 2.0f);
    MT_EXPECT(mmrec_cache_refresh(c, mt_file(2, "missing.mmfc")), MMREC_EIO, "missing.mmfc");
    mt_gather_into(c, "emb", &id, 1, row);
    ck_assert(row[0] == 2.0f);
    MT_OK(mmrec_cache_refresh(c, NULL)); /* the open path, not the last one */
    mt_gather_into(c, "emb", &id, 1, row);
    ck_assert(row[0] == 3.0f);
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

typedef struct mt_reader {
    const mmrec_cache *cache;
    int mixed, failures, seen[3];
} mt_reader;

static void *mt_read_loop(void *arg) {
    mt_reader *r = arg;
    mmrec_tape *tape;
    if (mmrec_tape_create(&tape) != MMREC_OK) {
        r->failures++;
        return NULL;
    }
    uint64_t s = (uint64_t)(uintptr_t)arg;
    float dst[8 * MT_VDIM];
    for (int it = 0; it < 400; it++) {
        int64_t ids[8];
        for (int i = 0; i < 8; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            ids[i] = 3 + 7 * (int64_t)((s >> 33) % MT_VN);
        }
        const float *d = dst;
        mmrec_tensor *t;
        if (it % 2) {
            if (mmrec_cache_gather_into(r->cache, "emb", ids, 8, 0, dst, NULL) != MMREC_OK) {
                r->failures++;
                continue;
            }
        } else if (mmrec_cache_gather(r->cache, tape, "emb", ids, 8, &t) != MMREC_OK ||
                   mmrec_tensor_data_const(t, &d) != MMREC_OK) {
            r->failures++;
            continue;
        }
        bool uniform = d[0] == 1.0f || d[0] == 2.0f;
        for (int i = 1; i < 8 * MT_VDIM; i++) uniform = uniform && d[i] == d[0];
        if (!uniform) r->mixed++;
        else r->seen[(int)d[0]]++;
        mmrec_tape_reset(tape);
    }
    mmrec_tape_destroy(tape);
    return NULL;
}

typedef struct mt_refresher {
    mmrec_cache *cache;
    const char *paths[2];
    int failures;
} mt_refresher;

static void *mt_refresh_loop(void *arg) {
    mt_refresher *r = arg;
    for (int it = 0; it < 150; it++)
        if (mmrec_cache_refresh(r->cache, r->paths[it % 2]) != MMREC_OK) r->failures++;
    return NULL;
}

START_TEST(test_cache_gathers_during_refresh_see_one_version) {
    mt_tmp_dir();
    char a[160], b[160];
    snprintf(a, sizeof a, "%s", mt_file(0, "v1.mmfc"));
    snprintf(b, sizeof b, "%s", mt_file(1, "v2.mmfc"));
    mt_write_version(a, 1.0f);
    mt_write_version(b, 2.0f);
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(a, &c));
    pthread_t readers[4], refresher;
    mt_reader r[4];
    mt_refresher rf = {c, {b, a}, 0};
    for (int i = 0; i < 4; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].cache = c;
        ck_assert_int_eq(pthread_create(&readers[i], NULL, mt_read_loop, &r[i]), 0);
    }
    ck_assert_int_eq(pthread_create(&refresher, NULL, mt_refresh_loop, &rf), 0);
    pthread_join(refresher, NULL);
    for (int i = 0; i < 4; i++) {
        pthread_join(readers[i], NULL);
        ck_assert_int_eq(r[i].failures, 0);
        ck_assert_int_eq(r[i].mixed, 0);
        ck_assert_int_eq(r[i].seen[1] + r[i].seen[2], 400);
    }
    ck_assert_int_eq(rf.failures, 0);
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

/* ---- allocation failures ---- */

/* Write (from memory and .npy), open, gather, refresh; returns the first
 * failure after cleaning up whatever it made. */
typedef struct mt_oom_paths {
    char path[160], npy[160];
} mt_oom_paths;
static mmrec_status mt_cache_scenario(void *ctx) {
    const char *path = ((mt_oom_paths *)ctx)->path, *npy = ((mt_oom_paths *)ctx)->npy;
    int64_t ids[4] = {9, 3, 12, 6};
    float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    mmrec_cache_writer *w = NULL;
    mmrec_cache *c = NULL;
    mmrec_tape *tape = NULL;
    mmrec_tensor *t;
    mmrec_status s;
    if ((s = mmrec_cache_writer_create(path, ids, 4, &w)) != MMREC_OK) goto done;
    if ((s = mmrec_cache_writer_add(w, "a", MMREC_CACHE_F16, data, 2)) != MMREC_OK) goto done;
    if ((s = mmrec_cache_writer_add_npy(w, "b", MMREC_CACHE_F32, npy)) != MMREC_OK) goto done;
    if ((s = mmrec_cache_writer_commit(w)) != MMREC_OK) goto done;
    if ((s = mmrec_cache_open(path, &c)) != MMREC_OK) goto done;
    if ((s = mmrec_tape_create(&tape)) != MMREC_OK) goto done;
    if ((s = mmrec_cache_gather(c, tape, "a", ids, 4, &t)) != MMREC_OK) goto done;
    if ((s = mmrec_cache_refresh(c, NULL)) != MMREC_OK) goto done;
done:
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
    mmrec_cache_writer_destroy(w);
    ck_assert_int_eq(mt_count_tmp_files(), 0);
    return s;
}

START_TEST(test_cache_oom_every_allocation_reports_enomem_without_leaks) {
    mt_tmp_dir();
    mt_oom_paths p;
    snprintf(p.path, sizeof p.path, "%s", mt_file(0, "o.mmfc"));
    snprintf(p.npy, sizeof p.npy, "%s", mt_file(1, "o.npy"));
    float values[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    mt_npy(p.npy, 1, "<f4", values, 4, 2);
    ck_assert_int_gt(mt_oom_loop("cache", mt_cache_scenario, &p), 5);
    mt_tmp_clean();
}
END_TEST

static Suite *cache_suite(void) {
    Suite *s = suite_create("cache");
    TCase *rt = tcase_create("round_trip");
    tcase_add_test(rt, test_cache_round_trip_f32_sparse_ids_any_order);
    tcase_add_test(rt, test_cache_dense_ids_fast_path);
    tcase_add_test(rt, test_cache_f16_and_bf16_round_to_nearest_even);
    tcase_add_test(rt, test_cache_bad_values_rejected_and_writer_goes_on);
    suite_add_tcase(s, rt);
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_cache_missing_ids_error_or_zero_row);
    tcase_add_test(api, test_cache_gather_is_a_constant_on_any_tape);
    tcase_add_test(api, test_cache_bad_arguments);
    tcase_add_test(api, test_cache_steady_state_gather_allocates_nothing);
    suite_add_tcase(s, api);
    TCase *npy = tcase_create("npy");
    tcase_add_test(npy, test_cache_npy_import_versions_dtypes_byte_orders);
    tcase_add_test(npy, test_cache_npy_long_rows_and_bad_values);
    tcase_add_test(npy, test_cache_npy_rejections);
    suite_add_tcase(s, npy);
    TCase *files = tcase_create("files");
    tcase_add_test(files, test_cache_truncated_files_rejected);
    tcase_add_test(files, test_cache_flipped_bytes_and_foreign_files_rejected);
    tcase_add_test(files, test_cache_uncommitted_writer_leaves_old_file);
    suite_add_tcase(s, files);
    TCase *lc = tcase_create("lifecycle");
    tcase_set_timeout(lc, 60);
    tcase_add_test(lc, test_cache_refresh_swaps_versions);
    tcase_add_test(lc, test_cache_gathers_during_refresh_see_one_version);
    tcase_add_test(lc, test_cache_oom_every_allocation_reports_enomem_without_leaks);
    suite_add_tcase(s, lc);
    return s;
}
