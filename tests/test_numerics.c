/* Numerics: row statistics (log-sum-exp, mean, variance, norms) on large
 * offsets and large logits against float64 references, held to the error
 * PyTorch's float32 makes on the same inputs (tests/golden/numerics.bin,
 * make_golden.py::write_numerics). */
#include "mt.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MT_SUITE(numerics_suite)

/* The C error may be this many times PyTorch float32's (largest absolute
 * error over an array, both against float64), or one float32 epsilon of
 * the array's largest reference value, whichever is larger. At 1.0 no
 * array needs slack: each is at or below PyTorch's error
 * (MT_NUMERICS_VERBOSE=1 prints the figures). */
#define MT_TORCH_FACTOR 1.0
#define MT_FLOOR_EPS ((double)FLT_EPSILON)

static const mt_array *mt_num_find(const mt_golden *g, const char *kase, const char *what) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", kase, what);
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->arrays[i].name, name) == 0) return &g->arrays[i];
    return NULL;
}

static const mt_array *mt_num_need(const mt_golden *g, const char *kase, const char *what) {
    const mt_array *a = mt_num_find(g, kase, what);
    ck_assert_msg(a != NULL, "golden array %s.%s is missing", kase, what);
    return a;
}

/* Largest |got - ref| with ref = hi + lo in double; *scale gets max |ref|. */
static double mt_max_err(const float *got, const mt_array *hi, const mt_array *lo, size_t n,
                         double *scale) {
    ck_assert_uint_eq(hi->numel, n);
    ck_assert_uint_eq(lo->numel, n);
    double err = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double ref = (double)hi->data[i] + (double)lo->data[i];
        double e = fabs((double)got[i] - ref);
        if (!(e <= err)) err = e; /* a NaN result is the largest error */
        if (fabs(ref) > s) s = fabs(ref);
    }
    *scale = s;
    return err;
}

/* Asserts that `got` (n values) is as close to the float64 reference
 * <kase>.<tag> as PyTorch float32 is (<kase>.<tag>_terr). */
static void mt_check_accuracy(const mt_golden *g, const char *kase, const char *tag,
                              const float *got, size_t n) {
    char lo_name[32], terr_name[32];
    snprintf(lo_name, sizeof lo_name, "%s_lo", tag);
    snprintf(terr_name, sizeof terr_name, "%s_terr", tag);
    double scale;
    double err = mt_max_err(got, mt_num_need(g, kase, tag), mt_num_need(g, kase, lo_name), n,
                            &scale);
    double terr = mt_num_need(g, kase, terr_name)->data[0];
    double bound = fmax(MT_TORCH_FACTOR * terr, MT_FLOOR_EPS * scale);
    if (getenv("MT_NUMERICS_VERBOSE")) /* the figures, for regenerated vectors */
        fprintf(stderr, "NUM %-28s %-3s c=%.3g torch=%.3g ratio=%.2f scale=%.3g\n", kase, tag, err,
                terr, terr > 0 ? err / terr : 0.0, scale);
    ck_assert_msg(err <= bound,
                  "%s.%s: error %.3g against float64, PyTorch float32's is %.3g (bound %.3g, "
                  "largest |value| %.3g)",
                  kase, tag, err, terr, bound, scale);
}

static mmrec_status mt_num_run(int op, const float *args, mmrec_tape *tape, mmrec_tensor **in,
                               const int64_t *ids, size_t n_ids, mmrec_tensor **y) {
    switch (op) {
    case 12: return mmrec_log_softmax(tape, in[0], NULL, y);
    case 13:
        return mmrec_layer_norm(tape, in[0], args[0] != 0 ? in[1] : NULL,
                                args[1] != 0 ? in[2] : NULL, args[2], y);
    case 18:
    case 19: {
        int axis = args[0] == 1000 ? MMREC_AXIS_ALL : (int)args[0];
        return op == 18 ? mmrec_sum(tape, in[0], axis, y) : mmrec_mean(tape, in[0], axis, y);
    }
    case 20: return mmrec_l2_normalize(tape, in[0], args[0], y);
    case 21: return mmrec_cosine_similarity(tape, in[0], in[1], args[0], y);
    case 31: return mmrec_loss_softmax_ce(tape, in[0], ids, n_ids, y);
    }
    ck_abort_msg("numerics: unexpected op %d", op);
    return MMREC_EINVAL;
}

/* Runs every case of numerics.bin whose name starts with `prefix`: the
 * output and each input gradient the file holds against float64. Returns
 * the number of cases. */
static int mt_num_cases(const char *prefix) {
    mt_golden g;
    mt_golden_load(&g, "numerics.bin");
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int count = 0;
    size_t plen = strlen(prefix);
    for (size_t a = 0; a < g.n; a++) {
        const char *nm = g.arrays[a].name, *dot = strrchr(nm, '.');
        if (strncmp(nm, prefix, plen) != 0 || strcmp(dot, ".op") != 0) continue;
        char kase[64];
        memcpy(kase, nm, (size_t)(dot - nm));
        kase[dot - nm] = '\0';
        int op = (int)g.arrays[a].data[0];
        const float *args = mt_num_need(&g, kase, "args")->data;
        mmrec_tensor *in[3] = {NULL, NULL, NULL};
        bool diff[3] = {false, false, false}, any_diff = false;
        int n_in = 0;
        for (; n_in < 3; n_in++) {
            char tag[16];
            snprintf(tag, sizeof tag, "in%d", n_in);
            const mt_array *x = mt_num_find(&g, kase, tag);
            if (x == NULL) break;
            snprintf(tag, sizeof tag, "d%d", n_in);
            diff[n_in] = mt_num_find(&g, kase, tag) != NULL;
            any_diff = any_diff || diff[n_in];
            in[n_in] = mt_tape_tensor(tape, x->ndim, x->shape, x->data,
                                      diff[n_in] ? MMREC_TENSOR_REQUIRES_GRAD : 0);
        }
        int64_t ids[64];
        size_t n_ids = 0;
        const mt_array *ida = mt_num_find(&g, kase, "ids");
        if (ida) {
            ck_assert_uint_le(ida->numel, 64);
            for (size_t i = 0; i < ida->numel; i++) ids[n_ids++] = (int64_t)ida->data[i];
        }
        mmrec_tensor *y;
        mmrec_status s = mt_num_run(op, args, tape, in, ids, n_ids, &y);
        ck_assert_msg(s == MMREC_OK, "%s: %s", kase, mmrec_last_error());
        size_t n;
        const float *d;
        MT_OK(mmrec_tensor_numel(y, &n));
        MT_OK(mmrec_tensor_data_const(y, &d));
        mt_check_accuracy(&g, kase, "y", d, n);
        if (any_diff) MT_OK(mmrec_tape_backward_from(tape, y, mt_num_need(&g, kase, "r")->data));
        for (int i = 0; i < n_in; i++) {
            if (!diff[i]) continue;
            char tag[16];
            snprintf(tag, sizeof tag, "d%d", i);
            MT_OK(mmrec_tensor_numel(in[i], &n));
            MT_OK(mmrec_tensor_grad(in[i], &d));
            mt_check_accuracy(&g, kase, tag, d, n);
        }
        mmrec_tape_reset(tape);
        count++;
    }
    mmrec_tape_destroy(tape);
    mt_golden_free(&g);
    return count;
}

/* ---- log-sum-exp ---- */

START_TEST(test_log_softmax_large_logits_match_float64) {
    ck_assert_int_eq(mt_num_cases("log_softmax_o"), 3);
}
END_TEST

START_TEST(test_softmax_ce_large_logits_match_float64) {
    ck_assert_int_eq(mt_num_cases("softmax_ce_o"), 3);
}
END_TEST

/* log_softmax([1e4, 1e4 + 0.5]) = -log(1 + e^(+-0.5)) - {0.5, 0}: the
 * offset must cancel exactly, not after rounding 1e4 + 0.97. */
START_TEST(test_log_softmax_offset_cancels_exactly) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {1, 2};
    float x[2] = {1e4f, 1e4f + 0.5f};
    mmrec_tensor *tx = mt_tape_tensor(tape, 2, s, x, 0), *y, *l;
    MT_OK(mmrec_log_softmax(tape, tx, NULL, &y));
    const float *d;
    MT_OK(mmrec_tensor_data_const(y, &d));
    double want[2] = {-log1p(exp(0.5)), -log1p(exp(-0.5))};
    for (int j = 0; j < 2; j++)
        ck_assert_msg(fabs(d[j] - want[j]) <= 6e-8, "y[%d] = %.9g, want %.9g", j, (double)d[j],
                      want[j]);
    int64_t label = 0;
    MT_OK(mmrec_loss_softmax_ce(tape, tx, &label, 1, &l));
    MT_OK(mmrec_tensor_data_const(l, &d));
    ck_assert_msg(fabs(d[0] + want[0]) <= 6e-8, "loss %.9g, want %.9g", (double)d[0], -want[0]);
    mmrec_tape_destroy(tape);
}
END_TEST

/* ---- row statistics ---- */

START_TEST(test_layer_norm_offset_rows_match_float64) {
    ck_assert_int_eq(mt_num_cases("layer_norm_"), 6);
}
END_TEST

/* A constant row has variance 0: it normalizes to the bias exactly, the
 * weight gets no gradient and dx = rstd * (g - mean(g)), g = dy * w. A
 * float mean of 12345.68 summed in float is off by some ulps, and that
 * residue times rstd = 1/sqrt(eps) comes out as an O(1) output. */
START_TEST(test_layer_norm_constant_row_gives_bias) {
    enum { N = 768 };
    static float x[N], w[N], b[N], r[N];
    for (int j = 0; j < N; j++) x[j] = 12345.68f;
    mt_fill_uniform(w, N, 0.5f, 1.5f, 11);
    mt_fill_uniform(b, N, -1.0f, 1.0f, 12);
    mt_fill_uniform(r, N, -1.0f, 1.0f, 13);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t sx[2] = {1, N}, sw[1] = {N};
    mmrec_tensor *tx = mt_tape_tensor(tape, 2, sx, x, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tw = mt_tape_tensor(tape, 1, sw, w, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tb = mt_tape_tensor(tape, 1, sw, b, MMREC_TENSOR_REQUIRES_GRAD), *y;
    MT_OK(mmrec_layer_norm(tape, tx, tw, tb, 1e-5f, &y));
    const float *d;
    MT_OK(mmrec_tensor_data_const(y, &d));
    for (int j = 0; j < N; j++)
        ck_assert_msg(d[j] == b[j], "y[%d] = %.9g, b is %.9g", j, (double)d[j], (double)b[j]);
    MT_OK(mmrec_tape_backward_from(tape, y, r));
    MT_OK(mmrec_tensor_grad(tw, &d));
    for (int j = 0; j < N; j++) ck_assert_msg(d[j] == 0.0f, "dw[%d] = %g", j, (double)d[j]);
    double mg = 0.0, rs = 1.0 / sqrt((double)1e-5f);
    for (int j = 0; j < N; j++) mg += (double)r[j] * w[j] / N;
    MT_OK(mmrec_tensor_grad(tx, &d));
    for (int j = 0; j < N; j++) {
        double want = rs * ((double)r[j] * w[j] - mg);
        ck_assert_msg(fabs(d[j] - want) <= 4 * FLT_EPSILON * rs, "dx[%d] = %.9g, want %.9g", j,
                      (double)d[j], want);
    }
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_reductions_offset_rows_match_float64) {
    ck_assert_int_eq(mt_num_cases("mean_") + mt_num_cases("sum_"), 4);
}
END_TEST

START_TEST(test_norms_offset_rows_match_float64) {
    ck_assert_int_eq(mt_num_cases("l2_normalize_") + mt_num_cases("cosine_"), 3);
}
END_TEST

static Suite *numerics_suite(void) {
    Suite *s = suite_create("numerics");
    TCase *tc = tcase_create("log_sum_exp");
    tcase_add_test(tc, test_log_softmax_large_logits_match_float64);
    tcase_add_test(tc, test_softmax_ce_large_logits_match_float64);
    tcase_add_test(tc, test_log_softmax_offset_cancels_exactly);
    suite_add_tcase(s, tc);
    tc = tcase_create("row_stats");
    tcase_add_test(tc, test_layer_norm_offset_rows_match_float64);
    tcase_add_test(tc, test_layer_norm_constant_row_gives_bias);
    tcase_add_test(tc, test_reductions_offset_rows_match_float64);
    tcase_add_test(tc, test_norms_offset_rows_match_float64);
    suite_add_tcase(s, tc);
    return s;
}
