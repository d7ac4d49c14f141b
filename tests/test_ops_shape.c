/* Shape ops, reductions, normalization and row gather: values, gradients,
 * bad input. */
#include "mt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

MT_SUITE(ops_shape_suite)

static void mt_expect_shape(mmrec_tensor *t, int ndim, const int64_t *want) {
    int nd;
    int64_t s[MMREC_MAX_DIMS];
    MT_OK(mmrec_tensor_shape(t, &nd, s));
    ck_assert_int_eq(nd, ndim);
    for (int d = 0; d < ndim; d++) ck_assert_int_eq(s[d], want[d]);
}

/* ---- concat / slice / reshape / transpose ---- */

static mmrec_status mt_concat_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                  mmrec_tensor **out) {
    return mmrec_concat(tape, in, 3, *(int *)ctx, out);
}

static mmrec_status mt_slice_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                 mmrec_tensor **out) {
    (void)ctx;
    return mmrec_slice(tape, in[0], 1, 1, 2, out);
}

static mmrec_status mt_reshape_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                   mmrec_tensor **out) {
    (void)ctx;
    int64_t s[2] = {-1, 6};
    return mmrec_reshape(tape, in[0], 2, s, out);
}

static mmrec_status mt_transpose_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                     mmrec_tensor **out) {
    (void)ctx;
    return mmrec_transpose(tape, in[0], out);
}

START_TEST(test_shape_values) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {7, 8, 9};
    int64_t sa[2] = {2, 3}, sb[2] = {2, 1}, sc[2] = {1, 3};
    mmrec_tensor *ta = mt_tape_tensor(tape, 2, sa, a, 0), *tb = mt_tape_tensor(tape, 2, sb, b, 0), *y;
    mmrec_tensor *xs[2] = {ta, tb};
    MT_OK(mmrec_concat(tape, xs, 2, -1, &y));
    int64_t want[2] = {2, 4};
    mt_expect_shape(y, 2, want);
    const float *d;
    MT_OK(mmrec_tensor_data_const(y, &d));
    float wc[8] = {1, 2, 3, 7, 4, 5, 6, 8};
    for (int i = 0; i < 8; i++) ck_assert_float_eq(d[i], wc[i]);
    mmrec_tensor *tc = mt_tape_tensor(tape, 2, sc, b, 0);
    mmrec_tensor *ys[2] = {ta, tc};
    MT_OK(mmrec_concat(tape, ys, 2, 0, &y));
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert_float_eq(d[6], 7);
    MT_EXPECT(mmrec_concat(tape, xs, 2, 0, &y), MMREC_ESHAPE, "only axis 0 may differ");
    MT_EXPECT(mmrec_concat(tape, xs, 2, 2, &y), MMREC_ERANGE, "axis 2");
    MT_EXPECT(mmrec_concat(tape, xs, 0, 0, &y), MMREC_EINVAL, "n is 0");
    mmrec_tensor *withnull[2] = {ta, NULL};
    MT_EXPECT(mmrec_concat(tape, withnull, 2, 0, &y), MMREC_EINVAL, "xs[1] is NULL");

    MT_OK(mmrec_slice(tape, ta, 1, 1, 2, &y));
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert(d[0] == 2 && d[1] == 3 && d[2] == 5 && d[3] == 6);
    MT_EXPECT(mmrec_slice(tape, ta, 1, 2, 2, &y), MMREC_ERANGE,
              "start is 2 and length 2: the range is outside axis 1 of size 3");
    MT_EXPECT(mmrec_slice(tape, ta, 1, -1, 1, &y), MMREC_ERANGE, "start is -1");
    MT_EXPECT(mmrec_slice(tape, ta, 1, 0, 0, &y), MMREC_ERANGE, "length 0");
    /* ends beyond INT64_MAX: the message must not compute them */
    MT_EXPECT(mmrec_slice(tape, ta, 1, INT64_MAX, 2, &y), MMREC_ERANGE,
              "start is 9223372036854775807 and length 2");
    MT_EXPECT(mmrec_slice(tape, ta, 1, 1, INT64_MAX, &y), MMREC_ERANGE,
              "length 9223372036854775807");
    MT_EXPECT(mmrec_slice(tape, ta, -3, 0, 1, &y), MMREC_ERANGE, "axis -3");

    int64_t r[3] = {3, -1, 1};
    MT_OK(mmrec_reshape(tape, ta, 3, r, &y));
    int64_t wr[3] = {3, 2, 1};
    mt_expect_shape(y, 3, wr);
    int64_t r2[2] = {4, -1}, r3[2] = {-1, -1}, r4[2] = {2, 2}, r5[1] = {0};
    MT_EXPECT(mmrec_reshape(tape, ta, 2, r2, &y), MMREC_ESHAPE, "cannot infer");
    MT_EXPECT(mmrec_reshape(tape, ta, 2, r3, &y), MMREC_EINVAL, "more than one -1");
    MT_EXPECT(mmrec_reshape(tape, ta, 2, r4, &y), MMREC_ESHAPE, "x is [2,3] (6 elements)");
    MT_EXPECT(mmrec_reshape(tape, ta, 1, r5, &y), MMREC_EINVAL, "shape[0] is 0");
    MT_EXPECT(mmrec_reshape(tape, ta, 5, r, &y), MMREC_EINVAL, "ndim is 5");

    MT_OK(mmrec_transpose(tape, ta, &y));
    int64_t wt[2] = {3, 2};
    mt_expect_shape(y, 2, wt);
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert(d[0] == 1 && d[1] == 4 && d[2] == 2 && d[5] == 6);
    int64_t s1[1] = {6};
    mmrec_tensor *t1 = mt_tape_tensor(tape, 1, s1, a, 0);
    MT_EXPECT(mmrec_transpose(tape, t1, &y), MMREC_ESHAPE,
              "x has 1 dims, needs at least 2");
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_shape_gradcheck) {
    float a[2 * 3 * 4], b[2 * 2 * 4], c[2 * 3 * 4];
    mt_fill_uniform(a, 24, -1, 1, 1);
    mt_fill_uniform(b, 16, -1, 1, 2);
    mt_fill_uniform(c, 24, -1, 1, 3);
    int axis = 1;
    mt_input cat[3] = {{3, {2, 3, 4}, a, false}, {3, {2, 2, 4}, b, false}, {3, {2, 3, 4}, c, false}};
    mt_gradcheck("concat axis 1", mt_concat_fwd, &axis, cat, 3, NULL, NULL);
    axis = -1;
    mt_input cat2[3] = {{3, {2, 3, 4}, a, false}, {3, {2, 3, 2}, b, false}, {3, {2, 3, 4}, c, false}};
    mt_gradcheck("concat axis -1", mt_concat_fwd, &axis, cat2, 3, NULL, NULL);
    mt_input one[1] = {{3, {2, 3, 4}, a, false}};
    mt_gradcheck("slice", mt_slice_fwd, NULL, one, 1, NULL, NULL);
    mt_gradcheck("reshape", mt_reshape_fwd, NULL, one, 1, NULL, NULL);
    mt_gradcheck("transpose", mt_transpose_fwd, NULL, one, 1, NULL, NULL);
}
END_TEST

/* ---- sum / mean ---- */

typedef struct mt_red {
    bool mean;
    int axis;
} mt_red;

static mmrec_status mt_red_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    mt_red *c = ctx;
    return c->mean ? mmrec_mean(tape, in[0], c->axis, out) : mmrec_sum(tape, in[0], c->axis, out);
}

START_TEST(test_reduce) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t sa[2] = {2, 3};
    mmrec_tensor *ta = mt_tape_tensor(tape, 2, sa, a, 0), *y;
    const float *d;
    MT_OK(mmrec_sum(tape, ta, 0, &y));
    int64_t w3[1] = {3};
    mt_expect_shape(y, 1, w3);
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert(d[0] == 5 && d[1] == 7 && d[2] == 9);
    MT_OK(mmrec_mean(tape, ta, -1, &y));
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert(d[0] == 2 && d[1] == 5);
    MT_OK(mmrec_mean(tape, ta, MMREC_AXIS_ALL, &y));
    int64_t w1[1] = {1};
    mt_expect_shape(y, 1, w1);
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert_float_eq(d[0], 3.5f);
    MT_EXPECT(mmrec_sum(tape, ta, 2, &y), MMREC_ERANGE, "axis 2");
    MT_EXPECT(mmrec_mean(tape, ta, -3, &y), MMREC_ERANGE, "axis -3 is out of range for 2 dims");
    MT_EXPECT(mmrec_mean(tape, NULL, 0, &y), MMREC_EINVAL, "'x'");
    mmrec_tape_destroy(tape);

    float x[2 * 3 * 5];
    mt_fill_uniform(x, 30, -1, 1, 7);
    int axes[4] = {0, 1, -1, MMREC_AXIS_ALL};
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < 4; i++) {
            mt_red ctx = {m == 1, axes[i]};
            mt_input in[1] = {{3, {2, 3, 5}, x, false}};
            mt_gradcheck("reduce", mt_red_fwd, &ctx, in, 1, NULL, NULL);
        }
}
END_TEST

/* ---- l2_normalize / cosine_similarity ---- */

static mmrec_status mt_l2n_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    (void)ctx;
    return mmrec_l2_normalize(tape, in[0], 1e-12f, out);
}

static mmrec_status mt_cos_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    (void)ctx;
    return mmrec_cosine_similarity(tape, in[0], in[1], 1e-8f, out);
}

START_TEST(test_normalize) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    float a[4] = {3, 4, 0, 0}, b[4] = {6, 8, 1, 0};
    int64_t s[2] = {2, 2};
    mmrec_tensor *ta = mt_tape_tensor(tape, 2, s, a, 0), *tb = mt_tape_tensor(tape, 2, s, b, 0), *y;
    const float *d;
    MT_OK(mmrec_l2_normalize(tape, ta, 1e-12f, &y));
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert(fabsf(d[0] - 0.6f) < 1e-7f && fabsf(d[1] - 0.8f) < 1e-7f);
    ck_assert(d[2] == 0.0f && d[3] == 0.0f); /* a zero row stays zero */
    MT_OK(mmrec_cosine_similarity(tape, ta, tb, 1e-8f, &y));
    int64_t w[1] = {2};
    mt_expect_shape(y, 1, w);
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert(fabsf(d[0] - 1.0f) < 1e-6f && d[1] == 0.0f);
    int64_t s3[1] = {3};
    mmrec_tensor *t3;
    MT_OK(mmrec_tape_tensor(tape, 1, s3, 0, &t3));
    MT_EXPECT(mmrec_cosine_similarity(tape, ta, t3, 1e-8f, &y), MMREC_ESHAPE, "b is [3]");
    MT_EXPECT(mmrec_cosine_similarity(tape, ta, tb, 0.0f, &y), MMREC_EINVAL, "eps");
    MT_EXPECT(mmrec_l2_normalize(tape, ta, -1.0f, &y), MMREC_EINVAL, "eps is -1");
    mmrec_tape_destroy(tape);

    float x[3 * 5], z[3 * 5];
    mt_fill_uniform(x, 15, -1, 1, 8);
    mt_fill_uniform(z, 15, -1, 1, 9);
    mt_input in[2] = {{2, {3, 5}, x, false}, {2, {3, 5}, z, false}};
    mt_gradcheck("l2_normalize", mt_l2n_fwd, NULL, in, 1, NULL, NULL);
    mt_gradcheck("cosine_similarity", mt_cos_fwd, NULL, in, 2, NULL, NULL);
}
END_TEST

/* ---- gather_rows ---- */

static const int64_t mt_ids[5] = {3, 0, 3, 6, 1};

static mmrec_status mt_gather_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                  mmrec_tensor **out) {
    (void)ctx;
    return mmrec_gather_rows(tape, in[0], mt_ids, 5, out);
}

START_TEST(test_gather_rows) {
    float t[7 * 3];
    mt_fill_uniform(t, 21, -1, 1, 12);
    mt_input in[1] = {{2, {7, 3}, t, false}};
    mt_gradcheck("gather_rows", mt_gather_fwd, NULL, in, 1, NULL, NULL);

    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {7, 3};
    mmrec_tensor *tt = mt_tape_tensor(tape, 2, s, t, 0), *y;
    MT_OK(mmrec_gather_rows(tape, tt, mt_ids, 5, &y));
    const float *d;
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert_float_eq(d[0], t[9]);
    ck_assert_float_eq(d[3 * 3 + 2], t[6 * 3 + 2]);
    int64_t bad[2] = {1, 7};
    MT_EXPECT(mmrec_gather_rows(tape, tt, bad, 2, &y), MMREC_ERANGE, "ids[1] is 7");
    int64_t neg[1] = {-1};
    MT_EXPECT(mmrec_gather_rows(tape, tt, neg, 1, &y), MMREC_ERANGE, "[0, 7)");
    MT_EXPECT(mmrec_gather_rows(tape, tt, NULL, 1, &y), MMREC_EINVAL, "'ids'");
    MT_EXPECT(mmrec_gather_rows(tape, tt, mt_ids, 0, &y), MMREC_EINVAL, "n is 0");
    int64_t s3[3] = {1, 7, 3};
    mmrec_tensor *t3;
    MT_OK(mmrec_tape_tensor(tape, 3, s3, 0, &t3));
    MT_EXPECT(mmrec_gather_rows(tape, t3, mt_ids, 5, &y), MMREC_ESHAPE, "2-D");
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_gather_rows_sparse_touch) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    int64_t s[2] = {100, 4};
    mmrec_tensor *table;
    MT_OK(mmrec__model_add_param(model, "test", NULL, "emb", 2, s, true, &table));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *y;
    MT_OK(mmrec_gather_rows(tape, table, mt_ids, 5, &y));
    float ones[5 * 4];
    for (int i = 0; i < 20; i++) ones[i] = 1.0f;
    MT_OK(mmrec_tape_backward_from(tape, y, ones));
    mmrec__param *p = table->param;
    ck_assert_uint_eq(p->n_touched, 4); /* rows 3, 0, 6, 1 */
    ck_assert(p->row_touched[3] && p->row_touched[6] && !p->row_touched[2]);
    const float *g;
    MT_OK(mmrec_tensor_grad(table, &g));
    ck_assert_float_eq(g[3 * 4], 2.0f); /* row 3 gathered twice */
    ck_assert_float_eq(g[2 * 4], 0.0f);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

/* Reductions' backward, L2 normalization and row gather are split over
 * the pool when large: every value and gradient is the same at 1 and 2
 * threads, and the copies and broadcast gradients equal the plain loop's. */
START_TEST(test_split_ops_same_bits_any_thread_count) {
    enum { R = 3000, D = 64, N = R * D, TABLE = 5000 };
    float *x = malloc(N * sizeof *x), *dy = malloc(N * sizeof *dy);
    float *table = malloc((size_t)TABLE * D * sizeof *table);
    float *got[2][4];
    int64_t *ids = malloc(R * sizeof *ids);
    ck_assert(x && dy && table && ids);
    mt_fill_uniform(x, N, -2, 2, 101);
    mt_fill_uniform(dy, N, -1, 1, 102);
    mt_fill_uniform(table, (size_t)TABLE * D, -1, 1, 103);
    for (size_t i = 0; i < R; i++) ids[i] = (int64_t)((i * 7919) % TABLE);
    int64_t shape[2] = {R, D}, shape3[3] = {R / 10, 10, D}, tshape[2] = {TABLE, D};
    for (int threads = 1; threads <= 2; threads++) {
        MT_OK(mmrec_set_num_threads(threads));
        for (int k = 0; k < 4; k++) got[threads - 1][k] = malloc(N * sizeof(float));
        float **out = got[threads - 1];
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        /* l2_normalize: y and dx */
        mmrec_tensor *t = mt_tape_tensor(tape, 2, shape, x, MMREC_TENSOR_REQUIRES_GRAD), *y;
        MT_OK(mmrec_l2_normalize(tape, t, 1e-12f, &y));
        MT_OK(mmrec_tensor_copy_to(y, out[0], N));
        MT_OK(mmrec_tape_backward_from(tape, y, dy));
        const float *g;
        MT_OK(mmrec_tensor_grad(t, &g));
        memcpy(out[1], g, N * sizeof *g);
        mmrec_tape_reset(tape);
        /* sum over the middle axis and mean over everything: dx is dy broadcast */
        t = mt_tape_tensor(tape, 3, shape3, x, MMREC_TENSOR_REQUIRES_GRAD);
        MT_OK(mmrec_sum(tape, t, 1, &y));
        MT_OK(mmrec_tape_backward_from(tape, y, dy));
        MT_OK(mmrec_tensor_grad(t, &g));
        memcpy(out[2], g, N * sizeof *g);
        size_t bad = N;
        for (size_t i = N; i-- > 0;)
            if (g[i] != 0.0f + dy[i / (10 * D) * D + i % D]) bad = i;
        ck_assert_msg(bad == N, "%d threads: sum backward at %zu", threads, bad);
        mmrec_tape_reset(tape);
        t = mt_tape_tensor(tape, 2, shape, x, MMREC_TENSOR_REQUIRES_GRAD);
        MT_OK(mmrec_mean(tape, t, MMREC_AXIS_ALL, &y));
        MT_OK(mmrec_tape_backward(tape, y));
        MT_OK(mmrec_tensor_grad(t, &g));
        for (size_t i = N; i-- > 0;)
            if (g[i] != 1.0f / (float)N) bad = i;
        ck_assert_msg(bad == N, "%d threads: mean backward at %zu", threads, bad);
        mmrec_tape_reset(tape);
        /* gather_rows: the table's rows, in order */
        t = mt_tape_tensor(tape, 2, tshape, table, 0);
        MT_OK(mmrec_gather_rows(tape, t, ids, R, &y));
        MT_OK(mmrec_tensor_copy_to(y, out[3], N));
        for (size_t i = 0; i < R; i++)
            if (memcmp(out[3] + i * D, table + (size_t)ids[i] * D, D * sizeof(float)) != 0 &&
                bad == N)
                bad = i;
        ck_assert_msg(bad == N, "%d threads: gathered row %zu", threads, bad);
        mmrec_tape_destroy(tape);
    }
    for (int k = 0; k < 4; k++)
        ck_assert_msg(memcmp(got[0][k], got[1][k], N * sizeof(float)) == 0, "output %d", k);
    MT_OK(mmrec_set_num_threads(2));
    for (int th = 0; th < 2; th++)
        for (int k = 0; k < 4; k++) free(got[th][k]);
    free(x);
    free(dy);
    free(table);
    free(ids);
}
END_TEST

static Suite *ops_shape_suite(void) {
    Suite *s = suite_create("ops_shape");
    TCase *tc = tcase_create("ops");
    tcase_add_test(tc, test_shape_values);
    tcase_add_test(tc, test_shape_gradcheck);
    tcase_add_test(tc, test_reduce);
    tcase_add_test(tc, test_normalize);
    tcase_add_test(tc, test_gather_rows);
    tcase_add_test(tc, test_gather_rows_sparse_touch);
    tcase_add_test(tc, test_split_ops_same_bits_any_thread_count);
    suite_add_tcase(s, tc);
    return s;
}
