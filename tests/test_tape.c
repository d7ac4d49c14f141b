/* Tensors and the tape: ownership, staleness, modes, backward semantics,
 * the malloc-free steady state; matmul as the first recorded op. */
#include "mt.h"

#include <math.h>
#include <stdlib.h>

MT_SUITE(tape_suite)

START_TEST(test_tensor_create_wrap_and_accessors) {
    int64_t shape[2] = {2, 3};
    mmrec_tensor *t;
    MT_OK(mmrec_tensor_create(2, shape, &t));
    int ndim;
    int64_t got[MMREC_MAX_DIMS];
    size_t n;
    MT_OK(mmrec_tensor_shape(t, &ndim, got));
    MT_OK(mmrec_tensor_numel(t, &n));
    ck_assert_int_eq(ndim, 2);
    ck_assert_int_eq(got[1], 3);
    ck_assert_uint_eq(n, 6);
    float *d;
    MT_OK(mmrec_tensor_data(t, &d));
    for (int i = 0; i < 6; i++) ck_assert(d[i] == 0.0f);
    mmrec_tensor_destroy(t);

    float buf[6] = {1, 2, 3, 4, 5, 6};
    MT_OK(mmrec_tensor_wrap(buf, 2, shape, MMREC_TENSOR_READONLY, &t));
    const float *cd;
    MT_OK(mmrec_tensor_data_const(t, &cd));
    ck_assert_ptr_eq(cd, buf);
    MT_EXPECT(mmrec_tensor_data(t, &d), MMREC_ESTATE, "read-only");
    MT_EXPECT(mmrec_tensor_copy_from(t, buf, 6), MMREC_ESTATE, "read-only");
    float copy[6];
    MT_EXPECT(mmrec_tensor_copy_to(t, copy, 5), MMREC_EINVAL, "n is 5");
    MT_OK(mmrec_tensor_copy_to(t, copy, 6));
    ck_assert(copy[5] == 6.0f);
    mmrec_tensor_destroy(t);
    mmrec_tensor_destroy(NULL);
}
END_TEST

static int mt_released;
static void mt_release(void *user, float *data) {
    (void)data;
    mt_released += *(int *)user;
}

START_TEST(test_tensor_bad_arguments) {
    int64_t shape[2] = {2, 3}, bad[2] = {2, 0};
    mmrec_tensor *t;
    float buf[6];
    MT_EXPECT(mmrec_tensor_create(2, NULL, &t), MMREC_EINVAL, "argument 'shape' is NULL");
    MT_EXPECT(mmrec_tensor_create(0, shape, &t), MMREC_EINVAL, "ndim is 0, expected 1..4");
    MT_EXPECT(mmrec_tensor_create(5, shape, &t), MMREC_EINVAL, "ndim is 5, expected 1..4");
    MT_EXPECT(mmrec_tensor_create(2, bad, &t), MMREC_EINVAL, "shape[1] is 0");
    MT_EXPECT(mmrec_tensor_create(2, shape, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_tensor_wrap(NULL, 2, shape, 0, &t), MMREC_EINVAL, "'data'");
    MT_EXPECT(mmrec_tensor_wrap(buf, 2, shape, 0x80, &t), MMREC_EINVAL, "flags");
    int64_t huge[4] = {INT64_C(1) << 40, INT64_C(1) << 40, 2, 2};
    MT_EXPECT(mmrec_tensor_create(4, huge, &t), MMREC_EINVAL, "overflows");
    MT_EXPECT(mmrec_tensor_numel(NULL, NULL), MMREC_EINVAL, "argument 'tensor' is NULL");
    int one = 1;
    mt_released = 0;
    MT_OK(mmrec_tensor_wrap_ex(buf, 2, shape, 0, mt_release, &one, &t));
    float other[6];
    MT_OK(mmrec_tensor_set_data(t, other));
    mmrec_tensor_destroy(t);
    ck_assert_int_eq(mt_released, 1);
}
END_TEST

/* Wrong values (not NULLs: tests/test_api_names.c) for the tensor and
 * tape constructors and accessors, each message naming the argument. */
START_TEST(test_tensor_and_tape_bad_values_name_the_argument) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t shape[2] = {2, 3}, zero[2] = {2, 0};
    float buf[6] = {0}, other[6];
    mmrec_tensor *t, *w;
    MT_EXPECT(mmrec_tape_tensor(tape, 0, shape, 0, &t), MMREC_EINVAL, "ndim is 0");
    MT_EXPECT(mmrec_tape_tensor(tape, 2, zero, 0, &t), MMREC_EINVAL, "shape[1] is 0");
    MT_EXPECT(mmrec_tape_tensor(tape, 2, shape, MMREC_TENSOR_READONLY, &t), MMREC_EINVAL,
              "flags 0x1");
    MT_EXPECT(mmrec_tape_wrap(tape, buf, 5, shape, 0, &t), MMREC_EINVAL, "ndim is 5");
    MT_EXPECT(mmrec_tape_wrap(tape, buf, 2, zero, 0, &t), MMREC_EINVAL, "shape[1] is 0");
    MT_EXPECT(mmrec_tape_wrap(tape, buf, 2, shape, 0x10, &t), MMREC_EINVAL, "flags 0x10");
    MT_EXPECT(mmrec_tensor_wrap_ex(buf, 2, shape, MMREC_TENSOR_REQUIRES_GRAD, NULL, NULL, &w),
              MMREC_EINVAL, "flags 0x2");
    MT_EXPECT(mmrec_tensor_wrap_ex(buf, 2, zero, 0, NULL, NULL, &w), MMREC_EINVAL,
              "mmrec_tensor_wrap_ex: shape[1] is 0");
    MT_EXPECT(mmrec_tensor_wrap(buf, 2, zero, 0, &w), MMREC_EINVAL,
              "mmrec_tensor_wrap: shape[1] is 0");
    /* only a wrap of caller memory can be re-pointed */
    MT_OK(mmrec_tensor_create(2, shape, &w));
    MT_EXPECT(mmrec_tensor_set_data(w, other), MMREC_EINVAL,
              "argument 'tensor' is not a wrap of caller memory");
    mmrec_tensor_destroy(w);
    /* a tape tensor of the step before */
    MT_OK(mmrec_tape_tensor(tape, 2, shape, MMREC_TENSOR_REQUIRES_GRAD, &t));
    mmrec_tape_reset(tape);
    int ndim = -1;
    int64_t got[MMREC_MAX_DIMS];
    const float *p = buf;
    MT_EXPECT(mmrec_tensor_shape(t, &ndim, got), MMREC_ESTALE, "'tensor' belongs to a step");
    MT_EXPECT(mmrec_tensor_data_const(t, &p), MMREC_ESTALE, "'tensor' belongs to a step");
    MT_EXPECT(mmrec_tensor_grad(t, &p), MMREC_ESTALE, "'tensor' belongs to a step");
    MT_EXPECT(mmrec_tensor_set_data(t, other), MMREC_ESTALE, "'tensor' belongs to a step");
    float *q = buf;
    MT_EXPECT(mmrec_tensor_data(t, &q), MMREC_ESTALE, "'tensor' belongs to a step");
    ck_assert(q == buf);
    MT_OK(mmrec_tape_tensor(tape, 2, shape, 0, &t));
    MT_EXPECT(mmrec_tensor_copy_from(t, other, 5), MMREC_EINVAL, "n is 5, tensor has 6");
    ck_assert(ndim == -1 && p == buf); /* outputs untouched */
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_tape_tensor_stale_after_reset) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t shape[2] = {2, 2};
    mmrec_tensor *t, *u;
    MT_OK(mmrec_tape_tensor(tape, 2, shape, 0, &t));
    mmrec_tape_reset(tape);
    size_t n;
    MT_EXPECT(mmrec_tensor_numel(t, &n), MMREC_ESTALE,
              "'tensor' belongs to a step that mmrec_tape_reset() ended");
    MT_OK(mmrec_tape_tensor(tape, 2, shape, 0, &u));
    MT_EXPECT(mmrec_matmul(tape, t, u, 0, &u), MMREC_ESTALE, "'a'");
    mmrec_tape_destroy(tape);
    mmrec_tape_destroy(NULL);
    mmrec_tape_reset(NULL);
}
END_TEST

START_TEST(test_tape_generation_detects_any_stale_handle) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t shape[2] = {2, 2};
    uint64_t g, tape_g;
    MT_OK(mmrec_tape_generation(tape, &tape_g));
    ck_assert_uint_eq(tape_g, 1);
    mmrec_tensor *t;
    MT_OK(mmrec_tape_tensor(tape, 2, shape, 0, &t));
    uint64_t kept;
    MT_OK(mmrec_tensor_generation(t, &kept));
    ck_assert_uint_eq(kept, 1);
    /* After 1, 2 and 3 resets (with new tensors made each step, which may
     * reuse the kept handle's memory) the recorded generation no longer
     * matches the tape's: the host knows without touching the handle. */
    for (int resets = 1; resets <= 3; resets++) {
        mmrec_tape_reset(tape);
        mmrec_tensor *fresh;
        MT_OK(mmrec_tape_tensor(tape, 2, shape, 0, &fresh));
        MT_OK(mmrec_tape_generation(tape, &tape_g));
        ck_assert_uint_eq(tape_g, 1 + (uint64_t)resets);
        ck_assert_uint_ne(tape_g, kept);
        MT_OK(mmrec_tensor_generation(fresh, &g));
        ck_assert_uint_eq(g, tape_g);
        if (resets == 1)
            MT_EXPECT(mmrec_tensor_generation(t, &g), MMREC_ESTALE, "'tensor' belongs to a step");
    }
    /* Tensors no tape owns have generation 0. */
    float buf[4] = {0};
    mmrec_tensor *w;
    MT_OK(mmrec_tensor_wrap(buf, 2, shape, 0, &w));
    MT_OK(mmrec_tensor_generation(w, &g));
    ck_assert_uint_eq(g, 0);
    MT_EXPECT(mmrec_tensor_generation(NULL, &g), MMREC_EINVAL, "'tensor'");
    MT_EXPECT(mmrec_tensor_generation(w, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_tape_generation(NULL, &g), MMREC_EINVAL, "'tape'");
    MT_EXPECT(mmrec_tape_generation(tape, NULL), MMREC_EINVAL, "'out'");
    mmrec_tensor_destroy(w);
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_tape_modes) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tape_mode mode;
    MT_OK(mmrec_tape_get_mode(tape, &mode));
    ck_assert_int_eq(mode, MMREC_TAPE_TRAIN);
    MT_EXPECT(mmrec_tape_set_mode(tape, (mmrec_tape_mode)7), MMREC_EINVAL, "mode");
    int64_t shape[2] = {2, 2};
    mmrec_tensor *a, *y;
    MT_OK(mmrec_tape_tensor(tape, 2, shape, MMREC_TENSOR_REQUIRES_GRAD, &a));
    MT_OK(mmrec_matmul(tape, a, a, 0, &y));
    MT_EXPECT(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE), MMREC_ESTATE, "reset");
    MT_EXPECT(mmrec_tape_backward(tape, y), MMREC_EINVAL,
              "loss has 4 elements, expected 1");
    mmrec_tape_reset(tape);
    MT_OK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    MT_OK(mmrec_tape_tensor(tape, 2, shape, MMREC_TENSOR_REQUIRES_GRAD, &a));
    MT_OK(mmrec_matmul(tape, a, a, 0, &y));
    float ones[4] = {1, 1, 1, 1};
    MT_EXPECT(mmrec_tape_backward_from(tape, y, ones), MMREC_ESTATE, "inference");
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_tape_backward_from_validates) {
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    int64_t shape[2] = {2, 2};
    mmrec_tensor *a, *y, *b;
    MT_OK(mmrec_tape_tensor(tape, 2, shape, MMREC_TENSOR_REQUIRES_GRAD, &a));
    MT_OK(mmrec_tape_tensor(other, 2, shape, 0, &b));
    MT_OK(mmrec_matmul(tape, a, a, 0, &y));
    float nan4[4] = {1, NAN, 1, 1};
    MT_EXPECT(mmrec_tape_backward_from(tape, y, nan4), MMREC_ENUMERIC, "d_out[1]");
    MT_EXPECT(mmrec_tape_backward_from(tape, y, NULL), MMREC_EINVAL, "d_out");
    MT_EXPECT(mmrec_tape_backward_from(tape, b, nan4), MMREC_EINVAL, "another tape");
    MT_EXPECT(mmrec_matmul(tape, a, b, 0, &y), MMREC_EINVAL, "'b' belongs to another tape");
    mmrec_tape_destroy(tape);
    mmrec_tape_destroy(other);
}
END_TEST

/* ---- matmul ---- */

typedef struct mt_mm {
    uint32_t flags;
} mt_mm;

static mmrec_status mt_matmul_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                  mmrec_tensor **out) {
    return mmrec_matmul(tape, in[0], in[1], ((mt_mm *)ctx)->flags, out);
}

/* Products above the small-size cutoff go to BLAS: same results. */
START_TEST(test_matmul_blas_path) {
    enum { M = 48, K = 40, N = 36 };
    static float a[M * K], b[N * K];
    mt_fill_uniform(a, M * K, -1, 1, 41);
    mt_fill_uniform(b, N * K, -1, 1, 42);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t sa[2] = {M, K}, sb[2] = {N, K};
    mmrec_tensor *ta, *tb, *y;
    MT_OK(mmrec_tape_wrap(tape, a, 2, sa, MMREC_TENSOR_READONLY, &ta));
    MT_OK(mmrec_tape_wrap(tape, b, 2, sb, MMREC_TENSOR_READONLY, &tb));
    for (uint32_t flags = 0; flags < 4; flags++) {
        /* view a as [K, M] when transposed, b as [K, N] when not */
        int64_t va[2] = {(flags & MMREC_TRANS_A) ? K : M, (flags & MMREC_TRANS_A) ? M : K};
        int64_t vb[2] = {(flags & MMREC_TRANS_B) ? N : K, (flags & MMREC_TRANS_B) ? K : N};
        mmrec_tensor *xa, *xb;
        MT_OK(mmrec_reshape(tape, ta, 2, va, &xa));
        MT_OK(mmrec_reshape(tape, tb, 2, vb, &xb));
        MT_OK(mmrec_matmul(tape, xa, xb, flags, &y));
        const float *d;
        MT_OK(mmrec_tensor_data_const(y, &d));
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int p = 0; p < K; p++) {
                    double av = (flags & MMREC_TRANS_A) ? a[p * M + i] : a[i * K + p];
                    double bv = (flags & MMREC_TRANS_B) ? b[j * K + p] : b[p * N + j];
                    s += av * bv;
                }
                ck_assert_msg(fabs(d[i * N + j] - s) < 1e-5 + 1e-5 * fabs(s), "flags %u", flags);
            }
    }
    mmrec_tape_destroy(tape);
}
END_TEST

START_TEST(test_matmul_gradcheck_all_transposes) {
    for (uint32_t flags = 0; flags < 4; flags++) {
        /* op(a) [3,4] x op(b) [4,5], batched [2, ...] */
        float a[2 * 12], b[2 * 20];
        mt_fill_uniform(a, 24, -1, 1, 1 + flags);
        mt_fill_uniform(b, 40, -1, 1, 9 + flags);
        mt_input in[2] = {{3, {2, 3, 4}, a, false}, {3, {2, 4, 5}, b, false}};
        if (flags & MMREC_TRANS_A) in[0].shape[1] = 4, in[0].shape[2] = 3;
        if (flags & MMREC_TRANS_B) in[1].shape[1] = 5, in[1].shape[2] = 4;
        mt_mm ctx = {flags};
        mt_gradcheck("matmul batched", mt_matmul_fwd, &ctx, in, 2, NULL, NULL);
        /* shared 2-D right operand */
        in[1].ndim = 2;
        in[1].shape[0] = (flags & MMREC_TRANS_B) ? 5 : 4;
        in[1].shape[1] = (flags & MMREC_TRANS_B) ? 4 : 5;
        mt_gradcheck("matmul shared b", mt_matmul_fwd, &ctx, in, 2, NULL, NULL);
        /* shared 2-D left operand */
        mt_input in2[2] = {{2, {3, 4}, a, false}, {3, {2, 4, 5}, b, false}};
        if (flags & MMREC_TRANS_A) in2[0].shape[0] = 4, in2[0].shape[1] = 3;
        if (flags & MMREC_TRANS_B) in2[1].shape[1] = 5, in2[1].shape[2] = 4;
        mt_gradcheck("matmul shared a", mt_matmul_fwd, &ctx, in2, 2, NULL, NULL);
    }
}
END_TEST

START_TEST(test_matmul_values_and_shapes) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1};
    int64_t sa[2] = {2, 3}, sb[2] = {3, 2};
    mmrec_tensor *ta, *tb, *y;
    MT_OK(mmrec_tape_wrap(tape, a, 2, sa, MMREC_TENSOR_READONLY, &ta));
    MT_OK(mmrec_tape_wrap(tape, b, 2, sb, MMREC_TENSOR_READONLY, &tb));
    MT_OK(mmrec_matmul(tape, ta, tb, 0, &y));
    const float *yd;
    MT_OK(mmrec_tensor_data_const(y, &yd));
    float want[4] = {4, 5, 10, 11};
    for (int i = 0; i < 4; i++) ck_assert(yd[i] == want[i]);
    MT_EXPECT(mmrec_matmul(tape, ta, ta, 0, &y), MMREC_ESHAPE, "inner dims differ: a is [2,3]");
    MT_EXPECT(mmrec_matmul(tape, ta, tb, 4, &y), MMREC_EINVAL, "flags");
    MT_EXPECT(mmrec_matmul(NULL, ta, tb, 0, &y), MMREC_EINVAL, "'tape'");
    MT_EXPECT(mmrec_matmul(tape, NULL, tb, 0, &y), MMREC_EINVAL, "'a'");
    MT_EXPECT(mmrec_matmul(tape, ta, tb, 0, NULL), MMREC_EINVAL, "'out'");
    mmrec_tape_destroy(tape);
}
END_TEST

/* Steady state: a repeated step does no allocation through the library. */

/* A call that fails part-way leaves the tape's generator where it was: the
 * rollback mark holds it. Multi-head attention draws its dropout mask, then
 * fails to get memory for the output projection; the next dropout draw must
 * equal that of a tape on which the failed call never happened. The arena
 * is pre-filled to sizes that make the growth fall at each point of the
 * call in turn. */
static bool mt_fail_all;
static void *mt_maybe_alloc(void *user, size_t size) {
    (void)user;
    if (mt_fail_all) return NULL;
    void *p = NULL;
    return posix_memalign(&p, 64, size ? size : 64) == 0 ? p : NULL;
}

static void mt_draw_after(mmrec_tape *tape, float *mask) {
    float ones[64];
    for (int i = 0; i < 64; i++) ones[i] = 1.0f;
    int64_t s1[1] = {64};
    mmrec_tensor *x = mt_tape_tensor(tape, 1, s1, ones, 0), *y;
    MT_OK(mmrec_dropout(tape, x, 0.5f, &y));
    MT_OK(mmrec_tensor_copy_to(y, mask, 64));
}

START_TEST(test_failed_call_leaves_generator_unmoved) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_mha_config mc;
    MT_OK(mmrec_mha_config_init(&mc));
    mc.dim = 16;
    mc.num_heads = 2;
    mc.dropout = 0.5f;
    mmrec_module *mha;
    MT_OK(mmrec_mha_create(model, "mha", &mc, &mha));
    float x[2 * 8 * 16];
    mt_fill_uniform(x, sizeof x / sizeof x[0], -1, 1, 3);
    int64_t xs[3] = {2, 8, 16};
    mmrec_allocator al = {sizeof al, mt_maybe_alloc, mt_count_release, NULL};
    int failures = 0;
    /* the arena's first block is 1 MiB: leave 0 .. 16 KiB of it free */
    for (int64_t left = 0; left <= 16384; left += 256) {
        int64_t fill[1] = {(int64_t)((1u << 20) - 1024 - (size_t)left) / 4};
        float got[64], want[64];
        for (int run = 0; run < 2; run++) {
            mmrec_tape *tape;
            MT_OK(mmrec_tape_create(&tape));
            MT_OK(mmrec_tape_seed(tape, 11));
            mmrec_tensor *pad, *tx, *y;
            MT_OK(mmrec_tape_tensor(tape, 1, fill, 0, &pad));
            tx = mt_tape_tensor(tape, 3, xs, x, 0);
            if (run == 0) {
                MT_OK(mmrec_set_allocator(&al));
                mt_fail_all = true;
                mmrec_status s = mmrec_mha_forward(mha, tape, tx, NULL, &y);
                mt_fail_all = false;
                MT_OK(mmrec_set_allocator(NULL));
                if (s == MMREC_OK) {
                    mmrec_tape_destroy(tape);
                    break;
                }
                ck_assert_int_eq(s, MMREC_ENOMEM);
                failures++;
            }
            mt_draw_after(tape, run == 0 ? got : want);
            mmrec_tape_destroy(tape);
            if (run == 1)
                ck_assert_msg(memcmp(got, want, sizeof got) == 0,
                              "%lld bytes left: a failed forward moved the generator",
                              (long long)left);
        }
    }
    ck_assert_int_gt(failures, 4);
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_tape_reset_keeps_capacity_no_malloc) {
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    static float a[64 * 512], b[512 * 512];
    mt_fill_uniform(a, 64 * 512, -1, 1, 3);
    mt_fill_uniform(b, 512 * 512, -1, 1, 4);
    int64_t sa[2] = {64, 512}, sb[2] = {512, 512};
    size_t counts[6];
    for (int step = 0; step < 6; step++) {
        mt_allocs = 0;
        mmrec_tensor *x, *w, *y, *z;
        MT_OK(mmrec_tape_wrap(tape, a, 2, sa, MMREC_TENSOR_REQUIRES_GRAD, &x));
        MT_OK(mmrec_tape_wrap(tape, b, 2, sb, MMREC_TENSOR_REQUIRES_GRAD, &w));
        for (int l = 0; l < 8; l++) { /* ~ 8 x 128 KiB outputs + grads: spills 1 MiB */
            MT_OK(mmrec_matmul(tape, x, w, 0, &y));
            x = y;
        }
        MT_OK(mmrec_matmul(tape, x, x, MMREC_TRANS_B, &z));
        float seed[64 * 64];
        for (int i = 0; i < 64 * 64; i++) seed[i] = 1e-3f;
        MT_OK(mmrec_tape_backward_from(tape, z, seed));
        mmrec_tape_reset(tape);
        counts[step] = mt_allocs;
    }
    ck_assert_uint_gt(counts[0], 0);
    ck_assert_uint_eq(counts[4], 0);
    ck_assert_uint_eq(counts[5], 0);
    size_t cap, hw;
    MT_OK(mmrec_tape_memory(tape, &cap, &hw));
    ck_assert_uint_ge(cap, hw);
    mmrec_tape_destroy(tape);
    MT_OK(mmrec_set_allocator(NULL));
}
END_TEST

static Suite *tape_suite(void) {
    Suite *s = suite_create("tape");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_tensor_create_wrap_and_accessors);
    tcase_add_test(api, test_tensor_bad_arguments);
    tcase_add_test(api, test_tensor_and_tape_bad_values_name_the_argument);
    tcase_add_test(api, test_tape_tensor_stale_after_reset);
    tcase_add_test(api, test_tape_generation_detects_any_stale_handle);
    tcase_add_test(api, test_tape_modes);
    tcase_add_test(api, test_tape_backward_from_validates);
    tcase_add_test(api, test_matmul_values_and_shapes);
    tcase_add_test(api, test_matmul_blas_path);
    suite_add_tcase(s, api);
    TCase *bw = tcase_create("backward");
    tcase_add_test(bw, test_matmul_gradcheck_all_transposes);
    suite_add_tcase(s, bw);
    TCase *lc = tcase_create("lifecycle");
    tcase_add_test(lc, test_tape_reset_keeps_capacity_no_malloc);
    tcase_add_test(lc, test_failed_call_leaves_generator_unmoved);
    suite_add_tcase(s, lc);
    return s;
}
