/* mmrec_maxsim (ColBERT's late interaction): PyTorch golden vectors with
 * masks on both sides and ties, finite-difference gradients, ties to the
 * lowest index, the true max and all-masked queries, thread-count
 * independence, bad input, steady-state allocation and allocation
 * failures. */
#include "mt.h"
#include "ops/ops_internal.h" /* the tape's record, to see a failed call change nothing */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MT_SUITE(maxsim_suite)

/* Backward of sum(r * y). */
static void mt_backward_weighted(mmrec_tape *tape, mmrec_tensor *y, mmrec_tensor *r) {
    mmrec_tensor *ry, *loss;
    MT_OK(mmrec_mul(tape, y, r, &ry));
    MT_OK(mmrec_sum(tape, ry, MMREC_AXIS_ALL, &loss));
    MT_OK(mmrec_tape_backward(tape, loss));
}

START_TEST(test_maxsim_golden) {
    static const char *cases[] = {"plain", "masked", "ties", "paired_masked"};
    mt_golden g;
    mt_golden_load(&g, "maxsim.bin");
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const mt_array *a[8];
        static const char *keys[8] = {"q", "qm", "d", "dm", "r", "y", "dq", "dd"};
        char name[96];
        for (int k = 0; k < 8; k++) {
            snprintf(name, sizeof name, "%s.%s", cases[c], keys[k]);
            a[k] = mt_golden_get(&g, name);
        }
        mmrec_tensor *q = mt_tape_tensor(tape, 3, a[0]->shape, a[0]->data,
                                         MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *qm = mt_tape_tensor(tape, 2, a[1]->shape, a[1]->data, 0);
        mmrec_tensor *d = mt_tape_tensor(tape, 3, a[2]->shape, a[2]->data,
                                         MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *dm = mt_tape_tensor(tape, 2, a[3]->shape, a[3]->data, 0);
        mmrec_tensor *r = mt_tape_tensor(tape, a[4]->ndim, a[4]->shape, a[4]->data, 0);
        mmrec_tensor *y;
        if (strncmp(cases[c], "paired_", 7) == 0)
            MT_OK(mmrec_maxsim_paired(tape, q, qm, d, dm, &y));
        else
            MT_OK(mmrec_maxsim(tape, q, qm, d, dm, &y));
        snprintf(name, sizeof name, "%s.y", cases[c]);
        mt_close_scaled(name, mt_data_of(y), a[5]->data, a[5]->numel);
        mt_backward_weighted(tape, y, r);
        snprintf(name, sizeof name, "%s.dq", cases[c]);
        mt_close_scaled(name, mt_grad_of(q), a[6]->data, a[6]->numel);
        snprintf(name, sizeof name, "%s.dd", cases[c]);
        mt_close_scaled(name, mt_grad_of(d), a[7]->data, a[7]->numel);
        mmrec_tape_reset(tape);
    }
    mmrec_tape_destroy(tape);
    mt_golden_free(&g);
}
END_TEST

/* ---- gradients away from ties ---- */

static mmrec_status mt_maxsim_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                  mmrec_tensor **out) {
    (void)ctx;
    return mmrec_maxsim(tape, in[0], in[1], in[2], in[3], out);
}

static mmrec_status mt_maxsim_paired_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                         mmrec_tensor **out) {
    (void)ctx;
    return mmrec_maxsim_paired(tape, in[0], in[1], in[2], in[3], out);
}

static mmrec_status mt_maxsim_fwd_unmasked(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                           mmrec_tensor **out) {
    (void)ctx;
    return mmrec_maxsim(tape, in[0], NULL, in[1], NULL, out);
}

/* Whether every max over the real vectors (dm NULL: all) leads its
 * runner-up by more than 1e-2: a finite-difference step (at most 2h = 2e-3
 * on one coordinate in [-1, 1]) moves a score by at most 2e-3, so no
 * arg-max changes during the check. */
static bool mt_no_near_ties(const float *q, const float *d, const float *dm, int B,
                                   int LQ, int N, int LD, int D) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < LQ; i++)
            for (int n = 0; n < N; n++) {
                float best = -INFINITY, second = -INFINITY;
                for (int j = 0; j < LD; j++) {
                    if (dm && dm[n * LD + j] == 0.0f) continue;
                    float s = 0;
                    for (int k = 0; k < D; k++)
                        s += q[(b * LQ + i) * D + k] * d[(n * LD + j) * D + k];
                    if (s > best) {
                        second = best;
                        best = s;
                    } else if (s > second) {
                        second = s;
                    }
                }
                if (!(best - second > 1e-2f)) return false;
            }
    return true;
}

START_TEST(test_maxsim_gradients) {
    enum { B = 3, LQ = 4, N = 4, LD = 5, D = 6 };
    float q[B * LQ * D], d[N * LD * D], qm[B * LQ], dm[N * LD];
    for (int i = 0; i < B * LQ; i++) qm[i] = i % 5 == 3 ? 0.0f : 1.0f;
    for (int i = 0; i < N * LD; i++) dm[i] = i % 3 == 1 ? 0.0f : 1.0f;
    /* the first seeds whose values hold no near tie */
    uint64_t seed = 21;
    do {
        mt_fill_uniform(q, B * LQ * D, -1, 1, seed++);
        mt_fill_uniform(d, N * LD * D, -1, 1, seed++);
    } while (!mt_no_near_ties(q, d, dm, B, LQ, N, LD, D) ||
             !mt_no_near_ties(q, d, NULL, B, LQ, N, LD, D));
    mt_input in[4] = {{3, {B, LQ, D}, q, false},
                      {2, {B, LQ}, qm, true},
                      {3, {N, LD, D}, d, false},
                      {2, {N, LD}, dm, true}};
    /* float32 differences at h = 1e-3 carry ~1e-4 of rounding: gradients
     * below 5e-2 are compared absolutely at that scale */
    mt_gradcheck_opts o = {.h = 1e-3f, .tol = 1e-2f, .floor = 5e-2f};
    mt_gradcheck("maxsim", mt_maxsim_fwd, NULL, in, 4, NULL, &o);
    mt_input unmasked[2] = {in[0], in[2]};
    mt_gradcheck("maxsim unmasked", mt_maxsim_fwd_unmasked, NULL, unmasked, 2, NULL, &o);
    /* paired: the first B items against the B queries */
    mt_input paired[4] = {in[0], in[1], {3, {B, LD, D}, d, false}, {2, {B, LD}, dm, true}};
    mt_gradcheck("maxsim paired", mt_maxsim_paired_fwd, NULL, paired, 4, NULL, &o);
}
END_TEST

/* ---- semantics ---- */

START_TEST(test_maxsim_ties_go_to_the_lowest_index) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    /* one query vector [1, 0]; item vectors 0, 1, 2 all score 2; vector 3 scores 1 */
    const float qv[2] = {1, 0}, dv[8] = {2, 1, 2, -1, 2, 0, 1, 5};
    const float mask_none[4] = {1, 1, 1, 1}, mask_first[4] = {0, 1, 1, 1};
    const float *masks[2] = {mask_none, mask_first};
    const int winner[2] = {0, 1};
    for (int m = 0; m < 2; m++) {
        int64_t sq[3] = {1, 1, 2}, sd[3] = {1, 4, 2}, sm[2] = {1, 4};
        mmrec_tensor *q = mt_tape_tensor(tape, 3, sq, qv, MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *d = mt_tape_tensor(tape, 3, sd, dv, MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *dm = mt_tape_tensor(tape, 2, sm, masks[m], 0), *y, *loss;
        MT_OK(mmrec_maxsim(tape, q, NULL, d, dm, &y));
        ck_assert_float_eq(mt_data_of(y)[0], 2.0f);
        MT_OK(mmrec_sum(tape, y, MMREC_AXIS_ALL, &loss));
        MT_OK(mmrec_tape_backward(tape, loss));
        const float *dd = mt_grad_of(d), *dq = mt_grad_of(q);
        for (int j = 0; j < 4; j++) {
            float want = j == winner[m] ? 1.0f : 0.0f;
            ck_assert_float_eq(dd[2 * j], want);
            ck_assert_float_eq(dd[2 * j + 1], 0.0f);
        }
        ck_assert_float_eq(dq[0], dv[2 * winner[m]]);
        ck_assert_float_eq(dq[1], dv[2 * winner[m] + 1]);
        mmrec_tape_reset(tape);
    }
    mmrec_tape_destroy(tape);
}
END_TEST

/* The true max (a negative best adds its negative value), masked query
 * vectors add nothing, and a query with every vector masked scores 0 with
 * no gradient. */
START_TEST(test_maxsim_true_max_and_masked_queries) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    /* queries [2, 2, 2]: q0 = {[1, 0], [0, 1]}, q1 = {[3, 3], [4, 4]} */
    const float qv[8] = {1, 0, 0, 1, 3, 3, 4, 4}, qmv[4] = {1, 1, 0, 0};
    /* one item, two vectors [-1, -2], [-3, 0.5] */
    const float dv[4] = {-1, -2, -3, 0.5f};
    int64_t sq[3] = {2, 2, 2}, sqm[2] = {2, 2}, sd[3] = {1, 2, 2};
    mmrec_tensor *q = mt_tape_tensor(tape, 3, sq, qv, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *qm = mt_tape_tensor(tape, 2, sqm, qmv, 0);
    mmrec_tensor *d = mt_tape_tensor(tape, 3, sd, dv, MMREC_TENSOR_REQUIRES_GRAD), *y, *loss;
    MT_OK(mmrec_maxsim(tape, q, qm, d, NULL, &y));
    /* q0: max(-1, -3) + max(-2, 0.5) = -0.5; q1 all masked: 0 */
    ck_assert_float_eq(mt_data_of(y)[0], -0.5f);
    ck_assert_float_eq(mt_data_of(y)[1], 0.0f);
    MT_OK(mmrec_sum(tape, y, MMREC_AXIS_ALL, &loss));
    MT_OK(mmrec_tape_backward(tape, loss));
    const float *dq = mt_grad_of(q);
    for (int k = 4; k < 8; k++) ck_assert_float_eq(dq[k], 0.0f);
    const float want_dd[4] = {1, 0, 0, 1};
    const float *dd = mt_grad_of(d);
    for (int k = 0; k < 4; k++) ck_assert_float_eq(dd[k], want_dd[k]);
    mmrec_tape_destroy(tape);
}
END_TEST

/* The paired form is the diagonal of the full one, in value and gradient. */
START_TEST(test_maxsim_paired_is_the_diagonal) {
    enum { B = 7, LQ = 9, LD = 4, D = 16 };
    float q[B * LQ * D], d[B * LD * D], qm[B * LQ], dm[B * LD], eye[B * B];
    mt_fill_uniform(q, B * LQ * D, -1, 1, 51);
    mt_fill_uniform(d, B * LD * D, -1, 1, 52);
    uint64_t s = 53;
    for (int i = 0; i < B * LQ; i++) qm[i] = mt_lcg(&s) % 4 != 0;
    for (int i = 0; i < B * LD; i++) dm[i] = i % LD == 3 || mt_lcg(&s) % 5 != 0;
    for (int i = 0; i < B * B; i++) eye[i] = i % (B + 1) == 0;
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t sq[3] = {B, LQ, D}, sqm[2] = {B, LQ}, sd[3] = {B, LD, D}, sdm[2] = {B, LD};
    int64_t se[2] = {B, B};
    float want_y[B], want_dq[B * LQ * D], want_dd[B * LD * D];
    for (int form = 0; form < 2; form++) {
        mmrec_tensor *tq = mt_tape_tensor(tape, 3, sq, q, MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *tqm = mt_tape_tensor(tape, 2, sqm, qm, 0);
        mmrec_tensor *td = mt_tape_tensor(tape, 3, sd, d, MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *tdm = mt_tape_tensor(tape, 2, sdm, dm, 0), *y, *loss;
        if (form == 0) {
            mmrec_tensor *te = mt_tape_tensor(tape, 2, se, eye, 0);
            MT_OK(mmrec_maxsim(tape, tq, tqm, td, tdm, &y));
            for (int b = 0; b < B; b++) want_y[b] = mt_data_of(y)[b * (B + 1)];
            mt_backward_weighted(tape, y, te);
            memcpy(want_dq, mt_grad_of(tq), sizeof want_dq);
            memcpy(want_dd, mt_grad_of(td), sizeof want_dd);
        } else {
            MT_OK(mmrec_maxsim_paired(tape, tq, tqm, td, tdm, &y));
            mt_close_scaled("paired y", mt_data_of(y), want_y, B);
            MT_OK(mmrec_sum(tape, y, MMREC_AXIS_ALL, &loss));
            MT_OK(mmrec_tape_backward(tape, loss));
            mt_close_scaled("paired dq", mt_grad_of(tq), want_dq, B * LQ * D);
            mt_close_scaled("paired dd", mt_grad_of(td), want_dd, B * LD * D);
        }
        mmrec_tape_reset(tape);
    }
    mmrec_tape_destroy(tape);
}
END_TEST

/* ---- threads ---- */

typedef struct mt_run {
    float *y, *dq, *dd;
} mt_run;

static void mt_maxsim_run(int threads, size_t B, size_t LQ, size_t N, size_t LD, size_t D,
                          const float *q, const float *qm, const float *d, const float *dm,
                          const float *r, mt_run *out) {
    MT_OK(mmrec_set_num_threads(threads));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t sq[3] = {(int64_t)B, (int64_t)LQ, (int64_t)D}, sqm[2] = {(int64_t)B, (int64_t)LQ};
    int64_t sd[3] = {(int64_t)N, (int64_t)LD, (int64_t)D}, sdm[2] = {(int64_t)N, (int64_t)LD};
    int64_t sr[2] = {(int64_t)B, (int64_t)N};
    mmrec_tensor *tq = mt_tape_tensor(tape, 3, sq, q, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tqm = mt_tape_tensor(tape, 2, sqm, qm, 0);
    mmrec_tensor *td = mt_tape_tensor(tape, 3, sd, d, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tdm = mt_tape_tensor(tape, 2, sdm, dm, 0);
    mmrec_tensor *tr = mt_tape_tensor(tape, 2, sr, r, 0), *y;
    MT_OK(mmrec_maxsim(tape, tq, tqm, td, tdm, &y));
    memcpy(out->y, mt_data_of(y), B * N * sizeof(float));
    mt_backward_weighted(tape, y, tr);
    memcpy(out->dq, mt_grad_of(tq), B * LQ * D * sizeof(float));
    memcpy(out->dd, mt_grad_of(td), N * LD * D * sizeof(float));
    mmrec_tape_destroy(tape);
    MT_OK(mmrec_set_num_threads(1));
}

/* Bit for bit the same with 1, 2 and 3 threads, and the same as a
 * double-precision reference to float32 rounding. */
START_TEST(test_maxsim_thread_count_independent) {
    enum { B = 24, LQ = 8, N = 300, LD = 12, D = 32 };
    float *q = malloc(B * LQ * D * sizeof *q), *d = malloc(N * LD * D * sizeof *d);
    float *qm = malloc(B * LQ * sizeof *qm), *dm = malloc(N * LD * sizeof *dm);
    float *r = malloc(B * N * sizeof *r);
    mt_fill_uniform(q, B * LQ * D, -1, 1, 31);
    mt_fill_uniform(d, N * LD * D, -1, 1, 32);
    mt_fill_uniform(r, B * N, -1, 1, 33);
    uint64_t s = 34;
    for (int i = 0; i < B * LQ; i++) qm[i] = mt_lcg(&s) % 5 != 0;
    for (int i = 0; i < N * LD; i++) dm[i] = i % LD == 0 || mt_lcg(&s) % 4 != 0;
    mt_run runs[3];
    for (int t = 0; t < 3; t++) {
        runs[t].y = malloc(B * N * sizeof(float));
        runs[t].dq = malloc(B * LQ * D * sizeof(float));
        runs[t].dd = malloc(N * LD * D * sizeof(float));
        mt_maxsim_run(t + 1, B, LQ, N, LD, D, q, qm, d, dm, r, &runs[t]);
    }
    for (int t = 1; t < 3; t++) {
        ck_assert(memcmp(runs[0].y, runs[t].y, B * N * sizeof(float)) == 0);
        ck_assert(memcmp(runs[0].dq, runs[t].dq, B * LQ * D * sizeof(float)) == 0);
        ck_assert(memcmp(runs[0].dd, runs[t].dd, N * LD * D * sizeof(float)) == 0);
    }
    /* the forward against a double reference */
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) {
            double total = 0;
            for (int i = 0; i < LQ; i++) {
                if (qm[b * LQ + i] == 0.0f) continue;
                double best = -INFINITY;
                for (int j = 0; j < LD; j++) {
                    if (dm[n * LD + j] == 0.0f) continue;
                    double sij = 0;
                    for (int k = 0; k < D; k++)
                        sij += (double)q[(b * LQ + i) * D + k] * d[(n * LD + j) * D + k];
                    best = fmax(best, sij);
                }
                total += best;
            }
            worst = fmax(worst, fabs(total - runs[0].y[b * N + n]));
        }
    ck_assert_double_lt(worst, 1e-4);
    for (int t = 0; t < 3; t++) {
        free(runs[t].y);
        free(runs[t].dq);
        free(runs[t].dd);
    }
    free(q);
    free(d);
    free(qm);
    free(dm);
    free(r);
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_maxsim_bad_input) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t sq[3] = {2, 3, 4}, sd[3] = {5, 6, 4}, sd3[3] = {5, 6, 3}, sq2[2] = {2, 3};
    int64_t sqm[2] = {2, 3}, sdm[2] = {5, 6}, sbad[2] = {5, 5};
    mmrec_tensor *q, *d, *d3, *q2, *qm, *dm, *bad, *y = NULL;
    MT_OK(mmrec_tape_tensor(tape, 3, sq, 0, &q));
    MT_OK(mmrec_tape_tensor(tape, 3, sd, 0, &d));
    MT_OK(mmrec_tape_tensor(tape, 3, sd3, 0, &d3));
    MT_OK(mmrec_tape_tensor(tape, 2, sq2, 0, &q2));
    MT_OK(mmrec_tape_tensor(tape, 2, sqm, 0, &qm));
    MT_OK(mmrec_tape_tensor(tape, 2, sdm, 0, &dm));
    MT_OK(mmrec_tape_tensor(tape, 2, sbad, 0, &bad));
    float *qmv, *dmv;
    MT_OK(mmrec_tensor_data(qm, &qmv));
    MT_OK(mmrec_tensor_data(dm, &dmv));
    for (int i = 0; i < 6; i++) qmv[i] = 1.0f;
    for (int i = 0; i < 30; i++) dmv[i] = 1.0f;

    MT_EXPECT(mmrec_maxsim(tape, q2, NULL, d, NULL, &y), MMREC_ESHAPE, "queries");
    MT_EXPECT(mmrec_maxsim(tape, q, NULL, q2, NULL, &y), MMREC_ESHAPE, "items");
    MT_EXPECT(mmrec_maxsim(tape, q, NULL, d3, NULL, &y), MMREC_ESHAPE, "items");
    MT_EXPECT(mmrec_maxsim(tape, q, bad, d, NULL, &y), MMREC_ESHAPE, "query_mask");
    MT_EXPECT(mmrec_maxsim(tape, q, NULL, d, qm, &y), MMREC_ESHAPE, "item_mask");
    /* item row 3 with every vector masked */
    for (int j = 0; j < 6; j++) dmv[3 * 6 + j] = 0.0f;
    MT_EXPECT(mmrec_maxsim(tape, q, qm, d, dm, &y), MMREC_EINVAL, "item_mask row 3");
    dmv[3 * 6 + 2] = 1.0f;
    MT_OK(mmrec_maxsim(tape, q, qm, d, dm, &y));
    dmv[7] = NAN;
    MT_EXPECT(mmrec_maxsim(tape, q, qm, d, dm, &y), MMREC_EINVAL, "item_mask");
    dmv[7] = 1.0f;
    qmv[4] = NAN;
    MT_EXPECT(mmrec_maxsim(tape, q, qm, d, dm, &y), MMREC_EINVAL, "query_mask");
    qmv[4] = INFINITY;
    MT_EXPECT(mmrec_maxsim(tape, q, qm, d, dm, &y), MMREC_EINVAL, "query_mask");
    qmv[4] = 0.0f;
    /* a query with every vector masked is not an error */
    for (int i = 0; i < 3; i++) qmv[i] = 0.0f;
    MT_OK(mmrec_maxsim(tape, q, qm, d, dm, &y));

    /* the paired form: one B on both sides, the same checks */
    int64_t sp[3] = {2, 6, 4}, spm[2] = {2, 6};
    mmrec_tensor *p, *pm;
    MT_OK(mmrec_tape_tensor(tape, 3, sp, 0, &p));
    MT_OK(mmrec_tape_tensor(tape, 2, spm, 0, &pm));
    MT_EXPECT(mmrec_maxsim_paired(tape, q, NULL, d, NULL, &y), MMREC_ESHAPE, "items");
    MT_EXPECT(mmrec_maxsim_paired(tape, q2, NULL, p, NULL, &y), MMREC_ESHAPE, "queries");
    MT_EXPECT(mmrec_maxsim_paired(tape, q, bad, p, NULL, &y), MMREC_ESHAPE, "query_mask");
    MT_EXPECT(mmrec_maxsim_paired(tape, q, NULL, p, dm, &y), MMREC_ESHAPE, "item_mask");
    MT_EXPECT(mmrec_maxsim_paired(tape, q, NULL, p, pm, &y), MMREC_EINVAL, "item_mask row 0");
    float *pmv;
    MT_OK(mmrec_tensor_data(pm, &pmv));
    for (int i = 0; i < 12; i++) pmv[i] = 1.0f;
    pmv[8] = NAN;
    MT_EXPECT(mmrec_maxsim_paired(tape, q, NULL, p, pm, &y), MMREC_EINVAL, "item_mask");
    pmv[8] = 1.0f;
    MT_OK(mmrec_maxsim_paired(tape, q, qm, p, pm, &y));
    mmrec_tape_destroy(tape);
}
END_TEST

/* ---- allocation ---- */

typedef struct mt_step {
    size_t B, LQ, N, LD, D;
} mt_step;

static mmrec_status mt_maxsim_step(const mt_step *k, mmrec_tape *tape) {
    int64_t sq[3] = {(int64_t)k->B, (int64_t)k->LQ, (int64_t)k->D};
    int64_t sd[3] = {(int64_t)k->N, (int64_t)k->LD, (int64_t)k->D};
    int64_t sdm[2] = {(int64_t)k->N, (int64_t)k->LD};
    mmrec_tensor *q, *d, *dm, *y, *loss;
    mmrec_status s = mmrec_tape_tensor(tape, 3, sq, MMREC_TENSOR_REQUIRES_GRAD, &q);
    if (s == MMREC_OK) s = mmrec_tape_tensor(tape, 3, sd, MMREC_TENSOR_REQUIRES_GRAD, &d);
    if (s == MMREC_OK) s = mmrec_tape_tensor(tape, 2, sdm, 0, &dm);
    if (s == MMREC_OK) {
        float *v;
        MT_OK(mmrec_tensor_data(dm, &v));
        for (size_t i = 0; i < k->N * k->LD; i++) v[i] = 1.0f;
        MT_OK(mmrec_tensor_data(q, &v));
        mt_fill_uniform(v, k->B * k->LQ * k->D, -1, 1, 41);
        MT_OK(mmrec_tensor_data(d, &v));
        mt_fill_uniform(v, k->N * k->LD * k->D, -1, 1, 42);
        s = mmrec_maxsim(tape, q, NULL, d, dm, &y);
    }
    if (s == MMREC_OK) s = mmrec_sum(tape, y, MMREC_AXIS_ALL, &loss);
    if (s == MMREC_OK) s = mmrec_tape_backward(tape, loss);
    return s;
}

typedef struct mt_steady {
    const mt_step *k;
    mmrec_tape *tape;
} mt_steady;

static mmrec_status mt_maxsim_steady(void *ctx) {
    mt_steady *c = ctx;
    mmrec_tape_reset(c->tape);
    return mt_maxsim_step(c->k, c->tape);
}

/* After the first steps a step allocates nothing. */
START_TEST(test_maxsim_steady_state_no_malloc) {
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_num_threads(2));
    MT_OK(mmrec_set_allocator(&al));
    mt_step k = {16, 8, 128, 12, 32};
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mt_steady c = {&k, tape};
    mt_assert_steady_state(mt_maxsim_steady, &c);
    mmrec_tape_destroy(tape);
    MT_OK(mmrec_set_allocator(NULL));
    MT_OK(mmrec_set_num_threads(1));
}
END_TEST

static mmrec_status mt_maxsim_oom(void *ctx) {
    const mt_step *k = ctx;
    mmrec_tape *tape = NULL;
    mmrec_status s = mmrec_tape_create(&tape);
    if (s == MMREC_OK) s = mt_maxsim_step(k, tape);
    mmrec_tape_destroy(tape);
    return s;
}

/* Every allocation failing in turn: MMREC_ENOMEM and no leak. */
START_TEST(test_maxsim_oom_reports_enomem_without_leaks) {
    mt_step k = {32, 16, 256, 24, 64};
    ck_assert_int_gt(mt_oom_loop("maxsim", mt_maxsim_oom, &k), 2);
}
END_TEST

static long mt_fail_at = -1, mt_alloc_count;
static void *mt_nth_alloc(void *user, size_t size) {
    (void)user;
    void *p = NULL;
    if (mt_alloc_count++ == mt_fail_at || posix_memalign(&p, 64, size ? size : 64) != 0)
        return NULL;
    return p;
}
static void mt_plain_release(void *user, void *p) {
    (void)user;
    free(p);
}

/* A failed call changes nothing: with the n-th allocation of the call
 * failing, n = 0, 1, ..., or with a bad mask, the tape's record and arena
 * position are as before, and the call then gives what a fresh tape gives. */
START_TEST(test_maxsim_failed_call_changes_nothing) {
    mmrec_allocator al = {sizeof al, mt_nth_alloc, mt_plain_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    /* sizes that make the output, the score blocks and the arg-maxes each
     * need a new arena block */
    enum { B = 64, LQ = 32, N = 512, LD = 32, D = 16 };
    float *q = malloc(B * LQ * D * sizeof *q), *d = malloc(N * LD * D * sizeof *d);
    float *dm = malloc(N * LD * sizeof *dm);
    mt_fill_uniform(q, B * LQ * D, -1, 1, 61);
    mt_fill_uniform(d, N * LD * D, -1, 1, 62);
    for (int i = 0; i < N * LD; i++) dm[i] = i % 3 != 1;
    int64_t sq[3] = {B, LQ, D}, sd[3] = {N, LD, D}, sdm[2] = {N, LD};
    float want = 0;
    int failures = 0;
    for (long n = -2;; n++) {
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        mmrec_tensor *tq, *td, *tdm, *y = NULL, *loss;
        MT_OK(mmrec_tape_wrap(tape, q, 3, sq, MMREC_TENSOR_REQUIRES_GRAD, &tq));
        MT_OK(mmrec_tape_wrap(tape, d, 3, sd, MMREC_TENSOR_REQUIRES_GRAD, &td));
        MT_OK(mmrec_tape_wrap(tape, dm, 2, sdm, 0, &tdm));
        mmrec__tape_mark before = mmrec__tape_mark_get(tape);
        mt_alloc_count = 0;
        mt_fail_at = n;
        if (n == -2) dm[5 * LD + 7] = NAN; /* bad input */
        mmrec_status st = mmrec_maxsim(tape, tq, NULL, td, tdm, &y);
        dm[5 * LD + 7] = 1.0f;
        mt_fail_at = -1;
        bool failed = st != MMREC_OK;
        if (failed) {
            ck_assert_msg(st == (n == -2 ? MMREC_EINVAL : MMREC_ENOMEM), "%s",
                          mmrec_last_error());
            ck_assert_ptr_null(y);
            mmrec__tape_mark after = mmrec__tape_mark_get(tape);
            ck_assert(after.tail == before.tail && after.n_nodes == before.n_nodes);
            ck_assert(after.data.cur == before.data.cur &&
                      after.data.offset == before.data.offset);
            failures++;
            MT_OK(mmrec_maxsim(tape, tq, NULL, td, tdm, &y));
        }
        MT_OK(mmrec_sum(tape, y, MMREC_AXIS_ALL, &loss));
        const float *v = mt_data_of(loss);
        if (n == -2) want = v[0];
        ck_assert_msg(v[0] == want, "allocation %ld failing: %g vs %g", n, (double)v[0],
                      (double)want);
        ck_assert_uint_eq(tape->n_nodes, 2);
        MT_OK(mmrec_tape_backward(tape, loss));
        mmrec_tape_destroy(tape);
        if (n >= 0 && !failed) break; /* the call makes fewer than n + 1 allocations */
    }
    ck_assert_int_ge(failures, 3);
    MT_OK(mmrec_set_allocator(NULL));
    free(q);
    free(d);
    free(dm);
}
END_TEST

static Suite *maxsim_suite(void) {
    Suite *s = suite_create("ops_maxsim");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_maxsim_bad_input);
    suite_add_tcase(s, api);
    TCase *fwd = tcase_create("forward");
    tcase_add_test(fwd, test_maxsim_golden);
    tcase_add_test(fwd, test_maxsim_ties_go_to_the_lowest_index);
    tcase_add_test(fwd, test_maxsim_true_max_and_masked_queries);
    tcase_add_test(fwd, test_maxsim_paired_is_the_diagonal);
    suite_add_tcase(s, fwd);
    TCase *bwd = tcase_create("backward");
    tcase_set_timeout(bwd, 120);
    tcase_add_test(bwd, test_maxsim_gradients);
    tcase_add_test(bwd, test_maxsim_thread_count_independent);
    suite_add_tcase(s, bwd);
    TCase *rel = tcase_create("reliability");
    tcase_set_timeout(rel, 300);
    tcase_add_test(rel, test_maxsim_steady_state_no_malloc);
    tcase_add_test(rel, test_maxsim_oom_reports_enomem_without_leaks);
    tcase_add_test(rel, test_maxsim_failed_call_changes_nothing);
    suite_add_tcase(s, rel);
    return s;
}
