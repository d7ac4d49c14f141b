/* Element-wise ops, activations, softmax, layer norm and dropout: values,
 * gradients, and bad input. */
#include "mt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/fastmath.h"

MT_SUITE(ops_elementwise_suite)

/* ---- add / sub / mul ---- */

typedef struct mt_arith {
    int op; /* 0 add, 1 sub, 2 mul, 3 bias_add */
} mt_arith;

static mmrec_status mt_arith_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                 mmrec_tensor **out) {
    switch (((mt_arith *)ctx)->op) {
    case 0: return mmrec_add(tape, in[0], in[1], out);
    case 1: return mmrec_sub(tape, in[0], in[1], out);
    case 2: return mmrec_mul(tape, in[0], in[1], out);
    default: return mmrec_bias_add(tape, in[0], in[1], out);
    }
}

START_TEST(test_arith_broadcast_values) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t sa[3] = {2, 1, 3}, sb[2] = {2, 1};
    float a[6] = {1, 2, 3, 4, 5, 6}, b[2] = {10, 20};
    mmrec_tensor *ta = mt_tape_tensor(tape, 3, sa, a, 0), *tb = mt_tape_tensor(tape, 2, sb, b, 0), *y;
    MT_OK(mmrec_sub(tape, ta, tb, &y));
    int ndim;
    int64_t shape[MMREC_MAX_DIMS];
    MT_OK(mmrec_tensor_shape(y, &ndim, shape));
    ck_assert_int_eq(ndim, 3);
    ck_assert(shape[0] == 2 && shape[1] == 2 && shape[2] == 3);
    const float *d;
    MT_OK(mmrec_tensor_data_const(y, &d));
    /* y[i][j][k] = a[i][0][k] - b[j][0] */
    float want[12] = {-9, -8, -7, -19, -18, -17, -6, -5, -4, -16, -15, -14};
    for (int i = 0; i < 12; i++) ck_assert_float_eq(d[i], want[i]);
    MT_OK(mmrec_mul(tape, ta, tb, &y));
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert_float_eq(d[4], 2 * 20);
    mmrec_tape_destroy(tape);
}
END_TEST

/* Large operands of one shape take the split path: the same values and
 * gradients as the element-wise formulas, for 1 and 2 threads, with an
 * operand used twice (x * x) as well. */
START_TEST(test_arith_large_same_shape) {
    enum { R = 300, C = 512, N = R * C };
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *dy = malloc(N * sizeof *dy);
    float *got = malloc(N * sizeof *got);
    mt_fill_uniform(a, N, -2, 2, 71);
    mt_fill_uniform(b, N, -2, 2, 72);
    mt_fill_uniform(dy, N, -1, 1, 73);
    int64_t shape[2] = {R, C};
    for (int threads = 1; threads <= 2; threads++) {
        MT_OK(mmrec_set_num_threads(threads));
        for (int op = 0; op < 4; op++) { /* add, sub, mul, mul of a by itself */
            mmrec_tape *tape;
            MT_OK(mmrec_tape_create(&tape));
            mmrec_tensor *ta = mt_tape_tensor(tape, 2, shape, a, MMREC_TENSOR_REQUIRES_GRAD),
                         *tb = op == 3 ? ta
                                       : mt_tape_tensor(tape, 2, shape, b,
                                                        MMREC_TENSOR_REQUIRES_GRAD),
                         *y;
            if (op == 0) MT_OK(mmrec_add(tape, ta, tb, &y));
            else if (op == 1) MT_OK(mmrec_sub(tape, ta, tb, &y));
            else MT_OK(mmrec_mul(tape, ta, tb, &y));
            MT_OK(mmrec_tensor_copy_to(y, got, N));
            size_t bad = N; /* the first wrong element (one assertion per check) */
            for (size_t i = N; i-- > 0;) {
                float bi = op == 3 ? a[i] : b[i];
                float want = op == 0 ? a[i] + bi : op == 1 ? a[i] - bi : a[i] * bi;
                if (got[i] != want) bad = i;
            }
            ck_assert_msg(bad == N, "op %d, %d threads: y[%zu]", op, threads, bad);
            MT_OK(mmrec_tape_backward_from(tape, y, dy));
            const float *g;
            MT_OK(mmrec_tensor_grad(ta, &g));
            for (size_t i = N; i-- > 0;) {
                float want = op == 3 ? 0.0f + dy[i] * a[i] + dy[i] * a[i]
                             : op == 2 ? dy[i] * b[i] : dy[i];
                if (g[i] != want) bad = i;
            }
            ck_assert_msg(bad == N, "op %d, %d threads: da[%zu]", op, threads, bad);
            if (op < 3) {
                MT_OK(mmrec_tensor_grad(tb, &g));
                for (size_t i = N; i-- > 0;) {
                    float want = op == 0 ? dy[i] : op == 1 ? -dy[i] : dy[i] * a[i];
                    if (g[i] != want) bad = i;
                }
                ck_assert_msg(bad == N, "op %d, %d threads: db[%zu]", op, threads, bad);
            }
            mmrec_tape_destroy(tape);
        }
    }
    MT_OK(mmrec_set_num_threads(2));
    free(a);
    free(b);
    free(dy);
    free(got);
}
END_TEST

/* Broadcasting operands large enough to split over the pool: the output
 * and the full-size operand's gradient are split by runs, the broadcast
 * operand's gradient is summed on one thread in output order. Every value
 * equals the plain loop's, at 1 and 2 threads; the operands swap places. */
START_TEST(test_arith_large_broadcast) {
    enum { R = 300, T = 7, C = 64, N = R * T * C };
    static const int64_t small_shapes[3][3] = {{1, T, C}, {R, 1, C}, {R, T, 1}};
    float *a = malloc(N * sizeof *a), *dy = malloc(N * sizeof *dy), *got = malloc(N * sizeof *got);
    float *b = malloc(R * T * C * sizeof *b), *want = malloc(N * sizeof *want);
    ck_assert(a && dy && got && b && want);
    mt_fill_uniform(a, N, -2, 2, 91);
    mt_fill_uniform(b, R * T * C, -2, 2, 92);
    mt_fill_uniform(dy, N, -1, 1, 93);
    int64_t big[3] = {R, T, C};
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (int threads = 1; threads <= 2; threads++) {
        MT_OK(mmrec_set_num_threads(threads));
        for (int sh = 0; sh < 3; sh++)
            for (int op = 0; op < 3; op++)
                for (int swap = 0; swap < 2; swap++) {
                    const int64_t *ss = small_shapes[sh];
                    size_t nb = (size_t)(ss[0] * ss[1] * ss[2]);
                    mmrec_tensor *ta = mt_tape_tensor(tape, 3, big, a, MMREC_TENSOR_REQUIRES_GRAD);
                    mmrec_tensor *tb = mt_tape_tensor(tape, sh == 0 ? 2 : 3, sh == 0 ? ss + 1 : ss,
                                                      b, MMREC_TENSOR_REQUIRES_GRAD);
                    mmrec_tensor *l = swap ? tb : ta, *r = swap ? ta : tb, *y;
                    if (op == 0) MT_OK(mmrec_add(tape, l, r, &y));
                    else if (op == 1) MT_OK(mmrec_sub(tape, l, r, &y));
                    else MT_OK(mmrec_mul(tape, l, r, &y));
                    MT_OK(mmrec_tensor_copy_to(y, got, N));
                    /* the plain loops: y, da, and db summed in output order */
                    float *db = calloc(nb, sizeof *db);
                    ck_assert(db != NULL);
                    size_t bad = N;
                    for (size_t i = 0; i < N; i++) {
                        size_t t = i / C % T, c = i % C, o = i / (T * C);
                        size_t j = sh == 0 ? t * C + c : sh == 1 ? o * C + c : o * T + t;
                        float x = swap ? b[j] : a[i], z = swap ? a[i] : b[j];
                        float v = op == 0 ? x + z : op == 1 ? x - z : x * z;
                        if (got[i] != v && bad == N) bad = i;
                        float gb = op == 2 ? dy[i] * a[i] : (op == 1 && !swap) ? -dy[i] : dy[i];
                        float ga = op == 2 ? dy[i] * b[j] : (op == 1 && swap) ? -dy[i] : dy[i];
                        want[i] = 0.0f + ga;
                        db[j] += gb;
                    }
                    ck_assert_msg(bad == N, "shape %d op %d swap %d, %d threads: y[%zu]", sh,
                                  op, swap, threads, bad);
                    MT_OK(mmrec_tape_backward_from(tape, y, dy));
                    const float *g;
                    MT_OK(mmrec_tensor_grad(ta, &g));
                    ck_assert_msg(memcmp(g, want, N * sizeof *g) == 0,
                                  "shape %d op %d swap %d, %d threads: da", sh, op, swap, threads);
                    MT_OK(mmrec_tensor_grad(tb, &g));
                    ck_assert_msg(memcmp(g, db, nb * sizeof *g) == 0,
                                  "shape %d op %d swap %d, %d threads: db", sh, op, swap, threads);
                    free(db);
                    mmrec_tape_reset(tape);
                }
    }
    mmrec_tape_destroy(tape);
    MT_OK(mmrec_set_num_threads(2));
    free(a);
    free(b);
    free(dy);
    free(got);
    free(want);
}
END_TEST

START_TEST(test_arith_gradcheck) {
    float a[2 * 3 * 5], a2[2 * 3 * 5], b[3 * 5], c[5];
    mt_fill_uniform(a, 30, -1, 1, 1);
    mt_fill_uniform(a2, 30, -1, 1, 4);
    mt_fill_uniform(b, 15, -1, 1, 2);
    mt_fill_uniform(c, 5, -1, 1, 3);
    for (int op = 0; op < 3; op++) {
        mt_arith ctx = {op};
        mt_input same[2] = {{3, {2, 3, 5}, a, false}, {3, {2, 3, 5}, a2, false}};
        mt_gradcheck("arith same shape", mt_arith_fwd, &ctx, same, 2, NULL, NULL);
        mt_input trail[2] = {{3, {2, 3, 5}, a, false}, {2, {3, 5}, b, false}};
        mt_gradcheck("arith trailing", mt_arith_fwd, &ctx, trail, 2, NULL, NULL);
        mt_input both[2] = {{3, {2, 1, 5}, a, false}, {2, {3, 1}, b, false}};
        mt_gradcheck("arith both broadcast", mt_arith_fwd, &ctx, both, 2, NULL, NULL);
        mt_input scalar[2] = {{1, {1}, c, false}, {2, {3, 5}, b, false}};
        mt_gradcheck("arith scalar", mt_arith_fwd, &ctx, scalar, 2, NULL, NULL);
    }
    mt_arith bias = {3};
    mt_input in[2] = {{3, {2, 3, 5}, a, false}, {1, {5}, c, false}};
    mt_gradcheck("bias_add", mt_arith_fwd, &bias, in, 2, NULL, NULL);
}
END_TEST

START_TEST(test_arith_bad_input) {
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s32[2] = {3, 2};
    mmrec_tensor *a, *b, *c, *d, *y;
    MT_OK(mmrec_tape_tensor(tape, 2, s23, 0, &a));
    MT_OK(mmrec_tape_tensor(tape, 1, s4, 0, &b));
    MT_OK(mmrec_tape_tensor(other, 2, s23, 0, &c));
    MT_OK(mmrec_tape_tensor(tape, 2, s32, 0, &d));
    MT_EXPECT(mmrec_add(NULL, a, a, &y), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_add(tape, NULL, a, &y), MMREC_EINVAL, "'a'");
    MT_EXPECT(mmrec_sub(tape, a, NULL, &y), MMREC_EINVAL, "'b'");
    MT_EXPECT(mmrec_mul(tape, a, a, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_add(tape, a, b, &y), MMREC_ESHAPE, "a is [2,3], b is [4]");
    MT_EXPECT(mmrec_mul(tape, a, d, &y), MMREC_ESHAPE,
              "shapes do not broadcast: a is [2,3], b is [3,2]");
    MT_EXPECT(mmrec_add(tape, a, c, &y), MMREC_EINVAL, "another tape");
    MT_EXPECT(mmrec_sub(tape, d, a, &y), MMREC_ESHAPE, "a is [3,2], b is [2,3]");
    MT_EXPECT(mmrec_relu(tape, c, &y), MMREC_EINVAL, "'x' belongs to another tape");
    MT_EXPECT(mmrec_sigmoid(tape, c, &y), MMREC_EINVAL, "'x' belongs to another tape");
    MT_EXPECT(mmrec_tanh(tape, c, &y), MMREC_EINVAL, "'x' belongs to another tape");
    MT_EXPECT(mmrec_bias_add(tape, a, d, &y), MMREC_ESHAPE, "bias must be 1-D");
    MT_EXPECT(mmrec_bias_add(tape, a, b, &y), MMREC_ESHAPE, "bias is [4]");
    MT_EXPECT(mmrec_scale(tape, a, NAN, &y), MMREC_EINVAL, "alpha");
    MT_EXPECT(mmrec_scale(tape, a, INFINITY, &y), MMREC_EINVAL, "finite");
    mmrec_tape_reset(tape);
    MT_EXPECT(mmrec_add(tape, a, a, &y), MMREC_ESTALE, NULL);
    MT_EXPECT(mmrec_relu(tape, a, &y), MMREC_ESTALE, "'x' belongs to a step");
    mmrec_tape_destroy(tape);
    mmrec_tape_destroy(other);
}
END_TEST

static mmrec_status mt_scale_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                 mmrec_tensor **out) {
    return mmrec_scale(tape, in[0], *(float *)ctx, out);
}

START_TEST(test_scale) {
    float x[7];
    mt_fill_uniform(x, 7, -2, 2, 5);
    float alpha = -1.75f;
    mt_input in[1] = {{1, {7}, x, false}};
    mt_gradcheck("scale", mt_scale_fwd, &alpha, in, 1, NULL, NULL);
}
END_TEST

/* ---- activations ---- */

static mmrec_status mt_act_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    switch (*(int *)ctx) {
    case 0: return mmrec_relu(tape, in[0], out);
    case 1: return mmrec_gelu(tape, in[0], MMREC_GELU_ERF, out);
    case 2: return mmrec_gelu(tape, in[0], MMREC_GELU_TANH, out);
    case 3: return mmrec_sigmoid(tape, in[0], out);
    default: return mmrec_tanh(tape, in[0], out);
    }
}

START_TEST(test_activation_values) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[1] = {4};
    float x[4] = {-2.0f, -0.5f, 0.5f, 3.0f};
    mmrec_tensor *t = mt_tape_tensor(tape, 1, s, x, 0), *y;
    const float *d;
    for (int k = 0; k < 5; k++) {
        MT_OK(mt_act_fwd(&k, tape, &t, &y));
        MT_OK(mmrec_tensor_data_const(y, &d));
        for (int i = 0; i < 4; i++) {
            double v = x[i], want;
            switch (k) {
            case 0: want = v > 0 ? v : 0; break;
            case 1: want = 0.5 * v * (1 + erf(v / sqrt(2.0))); break;
            case 2:
                want = 0.5 * v * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
                break;
            case 3: want = 1 / (1 + exp(-v)); break;
            default: want = tanh(v);
            }
            ck_assert_msg(fabs(d[i] - want) <= 1e-6 + 1e-6 * fabs(want), "act %d x=%g: %g vs %g",
                          k, v, (double)d[i], want);
        }
    }
    /* sigmoid stays finite for large |x| */
    float big[2] = {-100.0f, 100.0f};
    int64_t s2[1] = {2};
    t = mt_tape_tensor(tape, 1, s2, big, 0);
    MT_OK(mmrec_sigmoid(tape, t, &y));
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert(d[0] >= 0.0f && d[0] < 1e-30f && d[1] == 1.0f);
    MT_EXPECT(mmrec_gelu(tape, t, (mmrec_gelu_form)7, &y), MMREC_EINVAL, "form is 7");
    MT_EXPECT(mmrec_relu(tape, NULL, &y), MMREC_EINVAL, "'x'");
    MT_EXPECT(mmrec_tanh(tape, t, NULL), MMREC_EINVAL, "'out'");
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_activation_gradcheck) {
    float x[3 * 7];
    mt_fill_away(x, 21, -3, 3, 0.05f, 11);
    for (int k = 0; k < 5; k++) {
        mt_input in[1] = {{2, {3, 7}, x, false}};
        mt_gradcheck("activation", mt_act_fwd, &k, in, 1, NULL, NULL);
    }
}
END_TEST

/* NaN in, NaN out, in the vector body and the tail of every activation
 * loop. Backward with a finite dy, as PyTorch: ReLU passes dy through at
 * a NaN (its mask is output <= 0), the others give NaN. */
START_TEST(test_activations_propagate_nan) {
    enum { N = 67 };
    float x[N], r[N];
    mt_fill_away(x, N, -3, 3, 0.05f, 21);
    mt_fill_uniform(r, N, 0.5f, 1.5f, 22);
    const int nan_at[4] = {0, 9, 40, 66};
    for (int i = 0; i < 4; i++) x[nan_at[i]] = NAN;
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[1] = {N};
    for (int k = 0; k < 5; k++) {
        mmrec_tensor *t = mt_tape_tensor(tape, 1, s, x, MMREC_TENSOR_REQUIRES_GRAD), *y;
        MT_OK(mt_act_fwd(&k, tape, &t, &y));
        const float *d;
        MT_OK(mmrec_tensor_data_const(y, &d));
        for (int i = 0; i < N; i++)
            ck_assert_msg(isnan(d[i]) == isnan(x[i]), "act %d: x[%d] = %g gives %g", k, i,
                          (double)x[i], (double)d[i]);
        MT_OK(mmrec_tape_backward_from(tape, y, r));
        MT_OK(mmrec_tensor_grad(t, &d));
        for (int i = 0; i < N; i++) {
            bool ok = !isnan(x[i]) ? isfinite(d[i]) : k == 0 ? d[i] == r[i] : isnan(d[i]);
            ck_assert_msg(ok, "act %d: x[%d] = %g, dy %g gives dx %g", k, i, (double)x[i],
                          (double)r[i], (double)d[i]);
        }
        mmrec_tape_reset(tape);
    }
    /* PyTorch's ReLU keeps -0.0 and maps -inf to 0 */
    float edge[2] = {-0.0f, -INFINITY};
    int64_t s2[1] = {2};
    mmrec_tensor *t = mt_tape_tensor(tape, 1, s2, edge, 0), *y;
    MT_OK(mmrec_relu(tape, t, &y));
    const float *d;
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert(d[0] == 0.0f && signbit(d[0]) && d[1] == 0.0f && !signbit(d[1]));
    ck_assert(isnan(mmrec__exp(NAN)) && isnan(mmrec__normal_cdf(NAN)));
    mmrec_tape_destroy(tape);
}
END_TEST

/* The vectorizable exp and normal CDF behind GELU and sigmoid. */
START_TEST(test_fastmath_accuracy) {
    double worst_exp = 0, worst_cdf = 0, worst_tail = 0;
    for (float x = -30.0f; x <= 30.0f; x += 1e-3f) {
        double e = exp((double)x), c = 0.5 * erfc(-(double)x / sqrt(2.0));
        worst_exp = fmax(worst_exp, fabs(mmrec__exp(x) - e) / e);
        double rel = fabs(mmrec__normal_cdf(x) - c) / c;
        if (c > 1e-6) worst_cdf = fmax(worst_cdf, rel);
        else if (c > 1e-20) worst_tail = fmax(worst_tail, rel);
    }
    ck_assert_msg(worst_exp < 2e-7, "exp relative error %g", worst_exp);
    ck_assert_msg(worst_cdf < 3e-6, "normal cdf relative error %g", worst_cdf);
    ck_assert_msg(worst_tail < 2e-5, "normal cdf tail relative error %g", worst_tail);
    ck_assert(mmrec__exp(-1000.0f) < 1e-37f && mmrec__exp(-1000.0f) >= 0.0f);
    ck_assert(isfinite(mmrec__exp(1000.0f)));
    ck_assert(mmrec__normal_cdf(-40.0f) >= 0.0f && mmrec__normal_cdf(40.0f) == 1.0f);
}
END_TEST

/* The erf GELU past the normal tails: Phi saturates to exactly 0 or 1
 * (torch's erf saturates as well), so y is x or 0 and dx is dy or 0, and
 * nothing along the way is subnormal (subnormal arithmetic is a microcode
 * assist per vector on x86). Up to the cut the tail keeps its accuracy. */
START_TEST(test_gelu_tails_saturate) {
    enum { N = 64 };
    float x[N], ones[N];
    for (int i = 0; i < N; i++) {
        x[i] = (i % 2 ? 1.0f : -1.0f) * (12.8f + 0.5f * (float)i);
        ones[i] = 1.0f;
    }
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[1] = {N};
    mmrec_tensor *t = mt_tape_tensor(tape, 1, s, x, MMREC_TENSOR_REQUIRES_GRAD), *y;
    MT_OK(mmrec_gelu(tape, t, MMREC_GELU_ERF, &y));
    const float *d, *g;
    MT_OK(mmrec_tensor_data_const(y, &d));
    MT_OK(mmrec_tape_backward_from(tape, y, ones));
    MT_OK(mmrec_tensor_grad(t, &g));
    for (int i = 0; i < N; i++) {
        float want = x[i] > 0 ? x[i] : 0.0f, dwant = x[i] > 0 ? 1.0f : 0.0f;
        ck_assert_msg(d[i] == want && g[i] == dwant, "gelu(%g) = %g, dx %g", (double)x[i],
                      (double)d[i], (double)g[i]);
    }
    for (float v = -40.0f; v <= 40.0f; v += 1e-3f) {
        float c = mmrec__normal_cdf(v), p = mmrec__normal_pdf(v);
        ck_assert_msg(fpclassify(c) != FP_SUBNORMAL && fpclassify(p) != FP_SUBNORMAL &&
                          fpclassify(v * c) != FP_SUBNORMAL,
                      "subnormal at x = %g: cdf %g, pdf %g", (double)v, (double)c, (double)p);
        double want = exp(-0.5 * (double)v * (double)v) / sqrt(2 * 3.14159265358979323846);
        if (fabsf(v) < 12.72f)
            ck_assert_msg(fabs(p - want) <= (1e-6 + 1e-7 * v * v) * want, "pdf(%g)", (double)v);
        else if (fabsf(v) > 12.73f)
            ck_assert_msg(p == 0.0f && (c == 0.0f || c == 1.0f), "tail at %g", (double)v);
    }
    ck_assert(mmrec__normal_cdf(-12.7f) > 0.0f && mmrec__normal_cdf(-12.8f) == 0.0f);
    mmrec_tape_destroy(tape);
}
END_TEST

/* ---- softmax ---- */

typedef struct mt_sm {
    bool log, masked;
} mt_sm;

static mmrec_status mt_sm_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                              mmrec_tensor **out) {
    mt_sm *c = ctx;
    mmrec_tensor *mask = c->masked ? in[1] : NULL;
    return c->log ? mmrec_log_softmax(tape, in[0], mask, out)
                  : mmrec_softmax(tape, in[0], mask, out);
}

START_TEST(test_softmax_values_and_mask) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {3, 3}, sm[2] = {3, 3};
    float x[9] = {1, 2, 3, 1000, 1000, 1000, 5, 6, 7};
    float m[9] = {1, 1, 1, 1, 0, 1, 0, 0, 0};
    mmrec_tensor *tx = mt_tape_tensor(tape, 2, s, x, 0), *tm = mt_tape_tensor(tape, 2, sm, m, 0), *y;
    MT_OK(mmrec_softmax(tape, tx, tm, &y));
    const float *d;
    MT_OK(mmrec_tensor_data_const(y, &d));
    double z = exp(-2.0) + exp(-1.0) + 1.0;
    ck_assert(fabs(d[2] - 1.0 / z) < 1e-6);
    ck_assert(fabs(d[3] - 0.5) < 1e-6 && d[4] == 0.0f && fabs(d[5] - 0.5) < 1e-6);
    ck_assert(d[6] == 0.0f && d[7] == 0.0f && d[8] == 0.0f);
    MT_OK(mmrec_log_softmax(tape, tx, tm, &y));
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert(fabs(d[0] - (1.0 - 3.0 - log(z))) < 1e-5);
    ck_assert(d[4] == -INFINITY && d[6] == -INFINITY && isfinite(d[5]));
    /* a row mask [1, 3] broadcast over the rows */
    int64_t sr[2] = {1, 3};
    float mr[3] = {0, 1, 1};
    mmrec_tensor *trow = mt_tape_tensor(tape, 2, sr, mr, 0);
    MT_OK(mmrec_softmax(tape, tx, trow, &y));
    MT_OK(mmrec_tensor_data_const(y, &d));
    ck_assert(d[0] == 0.0f && d[3] == 0.0f && d[6] == 0.0f);
    ck_assert(fabs(d[7] + d[8] - 1.0) < 1e-6);
    int64_t sbad[2] = {2, 3};
    mmrec_tensor *bad;
    MT_OK(mmrec_tape_tensor(tape, 2, sbad, 0, &bad));
    MT_EXPECT(mmrec_softmax(tape, tx, bad, &y), MMREC_ESHAPE, "mask is [2,3]");
    int64_t s4[3] = {2, 3, 3};
    MT_OK(mmrec_tape_tensor(tape, 3, s4, 0, &bad));
    MT_EXPECT(mmrec_log_softmax(tape, tx, bad, &y), MMREC_ESHAPE,
              "mask does not broadcast to x");
    MT_EXPECT(mmrec_softmax(tape, NULL, NULL, &y), MMREC_EINVAL, "'x'");
    mmrec_tape_destroy(tape);
}
END_TEST

/* A NaN at a kept position makes its row NaN (PyTorch's softmax does the
 * same), also when every kept position is NaN; a NaN at a removed one does
 * not matter. */
START_TEST(test_softmax_nan_row_is_nan) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {3, 3};
    float x[9] = {NAN, NAN, NAN, 1, NAN, 2, NAN, 1, 2}, m[9] = {1, 1, 1, 1, 1, 1, 0, 1, 1};
    mmrec_tensor *tx = mt_tape_tensor(tape, 2, s, x, 0), *tm = mt_tape_tensor(tape, 2, s, m, 0);
    for (int log = 0; log < 2; log++) {
        mmrec_tensor *y;
        MT_OK(log ? mmrec_log_softmax(tape, tx, tm, &y) : mmrec_softmax(tape, tx, tm, &y));
        const float *d;
        MT_OK(mmrec_tensor_data_const(y, &d));
        for (int i = 0; i < 6; i++)
            ck_assert_msg(isnan(d[i]), "log %d: y[%d] = %g", log, i, (double)d[i]);
        for (int i = 6; i < 9; i++)
            ck_assert_msg(!isnan(d[i]), "log %d: y[%d] = %g", log, i, (double)d[i]);
    }
    mmrec_tape_destroy(tape);
}
END_TEST

/* A NaN in a row makes that row of the L2 normalization, and its cosine
 * similarity, NaN (the clamp to eps must not hide it), as in PyTorch; the
 * other row stays finite. */
START_TEST(test_normalize_nan_row_is_nan) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {2, 3};
    float x[6] = {1, NAN, 2, 3, -1, 0.5f}, b[6] = {1, 2, 3, 4, 5, 6};
    mmrec_tensor *tx = mt_tape_tensor(tape, 2, s, x, 0), *tb = mt_tape_tensor(tape, 2, s, b, 0);
    mmrec_tensor *y, *c;
    MT_OK(mmrec_l2_normalize(tape, tx, 1e-12f, &y));
    MT_OK(mmrec_cosine_similarity(tape, tx, tb, 1e-8f, &c));
    const float *yd, *cd;
    MT_OK(mmrec_tensor_data_const(y, &yd));
    MT_OK(mmrec_tensor_data_const(c, &cd));
    for (int j = 0; j < 3; j++) {
        ck_assert_msg(isnan(yd[j]), "y[%d] = %g", j, (double)yd[j]);
        ck_assert(isfinite(yd[3 + j]));
    }
    ck_assert_msg(isnan(cd[0]), "cos[0] = %g", (double)cd[0]);
    ck_assert(isfinite(cd[1]));
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_softmax_gradcheck) {
    float x[2 * 3 * 5], m[2 * 1 * 5] = {1, 0, 1, 1, 0, 1, 1, 1, 0, 1};
    mt_fill_uniform(x, 30, -2, 2, 21);
    for (int log = 0; log < 2; log++) {
        mt_sm plain = {log, false}, masked = {log, true};
        mt_input in[2] = {{3, {2, 3, 5}, x, false}, {3, {2, 1, 5}, m, true}};
        mt_gradcheck("softmax", mt_sm_fwd, &plain, in, 1, NULL, NULL);
        /* log-softmax is -inf at removed positions, so sum(r * y) has no
         * finite difference there; the golden test covers that case. */
        if (!log) mt_gradcheck("softmax masked", mt_sm_fwd, &masked, in, 2, NULL, NULL);
    }
}
END_TEST

/* ---- layer norm ---- */

typedef struct mt_ln {
    int affine; /* 0 none, 1 weight only, 2 weight and bias */
} mt_ln;

static mmrec_status mt_ln_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                              mmrec_tensor **out) {
    int affine = ((mt_ln *)ctx)->affine;
    return mmrec_layer_norm(tape, in[0], affine >= 1 ? in[1] : NULL, affine >= 2 ? in[2] : NULL,
                            1e-5f, out);
}

START_TEST(test_layer_norm) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {2, 4};
    float x[8] = {1, 2, 3, 4, -1, -1, -1, -1};
    mmrec_tensor *tx = mt_tape_tensor(tape, 2, s, x, 0), *y;
    MT_OK(mmrec_layer_norm(tape, tx, NULL, NULL, 1e-5f, &y));
    const float *d;
    MT_OK(mmrec_tensor_data_const(y, &d));
    double rs = 1.0 / sqrt(1.25 + 1e-5);
    ck_assert(fabs(d[0] - (-1.5 * rs)) < 1e-5 && fabs(d[3] - 1.5 * rs) < 1e-5);
    ck_assert(d[4] == 0.0f && d[7] == 0.0f); /* a constant row maps to 0 */
    int64_t s3[1] = {3};
    mmrec_tensor *w3;
    MT_OK(mmrec_tape_tensor(tape, 1, s3, 0, &w3));
    MT_EXPECT(mmrec_layer_norm(tape, tx, w3, NULL, 1e-5f, &y), MMREC_ESHAPE, "weight is [3]");
    MT_EXPECT(mmrec_layer_norm(tape, tx, NULL, w3, 1e-5f, &y), MMREC_ESHAPE, "bias is [3]");
    MT_EXPECT(mmrec_layer_norm(tape, tx, NULL, NULL, 0.0f, &y), MMREC_EINVAL, "eps");
    MT_EXPECT(mmrec_layer_norm(tape, tx, NULL, NULL, NAN, &y), MMREC_EINVAL, "eps");
    mmrec_tape_destroy(tape);

    float xs[3 * 7], w[7], b[7];
    mt_fill_uniform(xs, 21, -2, 2, 31);
    mt_fill_uniform(w, 7, 0.5f, 1.5f, 32);
    mt_fill_uniform(b, 7, -1, 1, 33);
    for (int affine = 0; affine < 3; affine++) {
        mt_ln ctx = {affine};
        mt_input in[3] = {{2, {3, 7}, xs, false}, {1, {7}, w, false}, {1, {7}, b, false}};
        mt_gradcheck("layer_norm", mt_ln_fwd, &ctx, in, 1 + affine, NULL, NULL);
    }
}
END_TEST

/* ---- dropout ---- */

START_TEST(test_dropout) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_seed(tape, 42));
    int64_t s[1] = {10000};
    mmrec_tensor *x, *y;
    MT_OK(mmrec_tape_tensor(tape, 1, s, MMREC_TENSOR_REQUIRES_GRAD, &x));
    float *xd;
    MT_OK(mmrec_tensor_data(x, &xd));
    for (int i = 0; i < 10000; i++) xd[i] = 1.0f;
    MT_OK(mmrec_dropout(tape, x, 0.25f, &y));
    const float *yd;
    MT_OK(mmrec_tensor_data_const(y, &yd));
    int zeros = 0;
    double sum = 0;
    for (int i = 0; i < 10000; i++) {
        ck_assert(yd[i] == 0.0f || fabsf(yd[i] - 1.0f / 0.75f) < 1e-6f);
        zeros += yd[i] == 0.0f;
        sum += yd[i];
    }
    ck_assert_int_gt(zeros, 2300);
    ck_assert_int_lt(zeros, 2700);
    ck_assert(fabs(sum / 10000 - 1.0) < 0.05);
    /* gradient passes through the kept elements with the same scale */
    static float ones[10000];
    for (int i = 0; i < 10000; i++) ones[i] = 1.0f;
    MT_OK(mmrec_tape_backward_from(tape, y, ones));
    const float *g;
    MT_OK(mmrec_tensor_grad(x, &g));
    for (int i = 0; i < 10000; i++) ck_assert_float_eq(g[i], yd[i]);
    /* p = 0 and inference mode: the identity, x itself */
    MT_OK(mmrec_dropout(tape, x, 0.0f, &y));
    ck_assert_ptr_eq(y, x);
    MT_EXPECT(mmrec_dropout(tape, x, 1.0f, &y), MMREC_EINVAL, "p is 1");
    MT_EXPECT(mmrec_dropout(tape, x, -0.1f, &y), MMREC_EINVAL, "[0, 1)");
    MT_EXPECT(mmrec_dropout(tape, x, NAN, &y), MMREC_EINVAL, "p is nan");
    mmrec_tape_reset(tape);
    MT_OK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    MT_OK(mmrec_tape_tensor(tape, 1, s, 0, &x));
    MT_OK(mmrec_dropout(tape, x, 0.5f, &y));
    ck_assert_ptr_eq(y, x);
    mmrec_tape_destroy(tape);
}
END_TEST

/* Reseeding before each forward keeps the mask fixed, so finite
 * differences see one function. */
static mmrec_status mt_dropout_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                   mmrec_tensor **out) {
    (void)ctx;
    mmrec_status s = mmrec_tape_seed(tape, 99);
    return s != MMREC_OK ? s : mmrec_dropout(tape, in[0], 0.3f, out);
}

START_TEST(test_dropout_gradcheck) {
    float x[4 * 9];
    mt_fill_uniform(x, 36, -1, 1, 17);
    mt_input in[1] = {{2, {4, 9}, x, false}};
    mt_gradcheck("dropout", mt_dropout_fwd, NULL, in, 1, NULL, NULL);
}
END_TEST

START_TEST(test_dropout_same_seed_same_mask) {
    float first[64];
    for (int rep = 0; rep < 2; rep++) {
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        MT_OK(mmrec_tape_seed(tape, 7));
        int64_t s[1] = {64};
        mmrec_tensor *x, *y;
        MT_OK(mmrec_tape_tensor(tape, 1, s, 0, &x));
        float *xd;
        MT_OK(mmrec_tensor_data(x, &xd));
        for (int i = 0; i < 64; i++) xd[i] = (float)i;
        MT_OK(mmrec_dropout(tape, x, 0.5f, &y));
        const float *yd;
        MT_OK(mmrec_tensor_data_const(y, &yd));
        for (int i = 0; i < 64; i++) {
            if (rep == 0) first[i] = yd[i];
            else ck_assert_float_eq(first[i], yd[i]);
        }
        mmrec_tape_destroy(tape);
    }
}
END_TEST

static Suite *ops_elementwise_suite(void) {
    Suite *s = suite_create("ops_elementwise");
    TCase *tc = tcase_create("ops");
    tcase_add_test(tc, test_arith_broadcast_values);
    tcase_add_test(tc, test_arith_gradcheck);
    tcase_add_test(tc, test_arith_large_same_shape);
    tcase_add_test(tc, test_arith_large_broadcast);
    tcase_add_test(tc, test_arith_bad_input);
    tcase_add_test(tc, test_scale);
    tcase_add_test(tc, test_activation_values);
    tcase_add_test(tc, test_activation_gradcheck);
    tcase_add_test(tc, test_activations_propagate_nan);
    tcase_add_test(tc, test_fastmath_accuracy);
    tcase_add_test(tc, test_gelu_tails_saturate);
    tcase_add_test(tc, test_softmax_values_and_mask);
    tcase_add_test(tc, test_softmax_gradcheck);
    tcase_add_test(tc, test_softmax_nan_row_is_nan);
    tcase_add_test(tc, test_normalize_nan_row_is_nan);
    tcase_add_test(tc, test_layer_norm);
    tcase_add_test(tc, test_dropout);
    tcase_add_test(tc, test_dropout_same_seed_same_mask);
    tcase_add_test(tc, test_dropout_gradcheck);
    suite_add_tcase(s, tc);
    return s;
}
