/* mmrec_lightgcn_rows: the same values and gradients as mmrec_lightgcn
 * followed by mmrec_gather_rows, for every K, given weights and repeated
 * rows; PyTorch golden vectors (graph.bin, read at every node in a shuffled
 * order); gradient checks; thread independence; bad input; allocation
 * failures. */
#include "mt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MT_SUITE(lightgcn_rows_suite)

enum { MT_RU = 300, MT_RI = 400, MT_RP = 3000, MT_RD = 8, MT_RN = MT_RU + MT_RI };

/* A random bipartite graph, isolated nodes included. */
static mmrec_graph *mt_random_graph(uint64_t seed) {
    int64_t *u = malloc(MT_RP * sizeof *u), *it = malloc(MT_RP * sizeof *it);
    for (int k = 0; k < MT_RP; k++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        u[k] = (int64_t)((seed >> 33) % (MT_RU - 10));
        it[k] = (int64_t)((seed >> 13) % (MT_RI - 10));
    }
    mmrec_graph *g;
    MT_OK(mmrec_graph_create_bipartite(u, it, MT_RP, MT_RU, MT_RI, &g));
    free(u);
    free(it);
    return g;
}

/* Batch-like rows: users, then items (offset), with repeats and isolated
 * nodes. */
static void mt_batch_rows(int64_t *rows, size_t n, uint64_t seed) {
    for (size_t p = 0; p < n; p++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        rows[p] = p < n / 3 ? (int64_t)((seed >> 33) % MT_RU)
                            : MT_RU + (int64_t)((seed >> 33) % MT_RI);
    }
    rows[1] = rows[0]; /* a repeat */
    rows[n - 1] = MT_RN - 1; /* an isolated item */
}

/* Forward and ego gradient of lightgcn_rows (rows_op) or lightgcn + gather,
 * embeddings of width d. */
static void mt_run_d(const mmrec_graph *g, int K, const float *w, const float *x, size_t d,
                     const int64_t *rows, size_t n, const float *r, int rows_op, float *y,
                     float *dx) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t sh[2] = {MT_RN, (int64_t)d};
    mmrec_tensor *e = mt_tape_tensor(tape, 2, sh, x, MMREC_TENSOR_REQUIRES_GRAD), *out;
    if (rows_op) {
        MT_OK(mmrec_lightgcn_rows(tape, g, e, K, w, rows, n, &out));
    } else {
        mmrec_tensor *all;
        MT_OK(mmrec_lightgcn(tape, g, e, K, w, &all));
        MT_OK(mmrec_gather_rows(tape, all, rows, n, &out));
    }
    MT_OK(mmrec_tensor_copy_to(out, y, n * d));
    MT_OK(mmrec_tape_backward_from(tape, out, r));
    const float *grad;
    MT_OK(mmrec_tensor_grad(e, &grad));
    memcpy(dx, grad, (size_t)MT_RN * d * sizeof *dx);
    mmrec_tape_destroy(tape);
}

static void mt_run(const mmrec_graph *g, int K, const float *w, const float *x,
                   const int64_t *rows, size_t n, const float *r, int rows_op, float *y,
                   float *dx) {
    mt_run_d(g, K, w, x, MT_RD, rows, n, r, rows_op, y, dx);
}

/* The forward pass gives the full op's bits at the rows (each row's last hop
 * is the same sum, added with the same weight); the backward scatters in
 * another order, so it agrees to rounding. Widths 8 and 80 take different
 * column blocks. */
START_TEST(test_lightgcn_rows_matches_full_then_gather) {
    mmrec_graph *g = mt_random_graph(3);
    enum { N = 500, DMAX = 80 };
    int64_t rows[N];
    mt_batch_rows(rows, N, 17);
    float *x = malloc((size_t)MT_RN * DMAX * sizeof *x), *r = malloc(N * DMAX * sizeof *r);
    float wts[5] = {0.3f, -0.5f, 1.25f, 0.7f, 0.2f};
    float *y[2], *dx[2];
    for (int t = 0; t < 2; t++) {
        y[t] = malloc(N * DMAX * sizeof(float));
        dx[t] = malloc((size_t)MT_RN * DMAX * sizeof(float));
    }
    for (size_t d = MT_RD; d <= DMAX; d += DMAX - MT_RD) {
        mt_fill_uniform(x, (size_t)MT_RN * d, -1, 1, 5);
        mt_fill_uniform(r, N * d, -1, 1, 6);
        for (int K = 0; K <= 4; K++)
            for (int weighted = 0; weighted < 2; weighted++) {
                const float *w = weighted ? wts : NULL;
                mt_run_d(g, K, w, x, d, rows, N, r, 1, y[0], dx[0]);
                mt_run_d(g, K, w, x, d, rows, N, r, 0, y[1], dx[1]);
                ck_assert_msg(memcmp(y[0], y[1], N * d * sizeof(float)) == 0,
                              "d=%zu K=%d weighted=%d: forward differs", d, K, weighted);
                char what[64];
                snprintf(what, sizeof what, "d=%zu K=%d weighted=%d backward", d, K, weighted);
                mt_assert_close(what, dx[0], dx[1], (size_t)MT_RN * d, 1e-5f, 1e-6f);
            }
    }
    for (int t = 0; t < 2; t++) {
        free(y[t]);
        free(dx[t]);
    }
    free(x);
    free(r);
    mmrec_graph_destroy(g);
}
END_TEST

/* The same on a kNN item graph, which is not symmetric: the backward's
 * products are A^T's. */
START_TEST(test_lightgcn_rows_knn_graph) {
    enum { N = 200, F = 5 };
    float *feat = malloc((size_t)MT_RN * F * sizeof *feat);
    mt_fill_uniform(feat, (size_t)MT_RN * F, -1, 1, 23);
    mmrec_knn_config kc;
    MT_OK(mmrec_knn_config_init(&kc));
    kc.k = 4;
    mmrec_graph *g;
    MT_OK(mmrec_graph_create_knn(feat, MT_RN, F, &kc, &g));
    int64_t rows[N];
    mt_batch_rows(rows, N, 29);
    float *x = malloc((size_t)MT_RN * MT_RD * sizeof *x), r[N * MT_RD];
    mt_fill_uniform(x, (size_t)MT_RN * MT_RD, -1, 1, 24);
    mt_fill_uniform(r, N * MT_RD, -1, 1, 25);
    float *y[2], *dx[2];
    for (int t = 0; t < 2; t++) {
        y[t] = malloc(N * MT_RD * sizeof(float));
        dx[t] = malloc((size_t)MT_RN * MT_RD * sizeof(float));
    }
    for (int K = 1; K <= 3; K++) {
        mt_run(g, K, NULL, x, rows, N, r, 1, y[0], dx[0]);
        mt_run(g, K, NULL, x, rows, N, r, 0, y[1], dx[1]);
        ck_assert(memcmp(y[0], y[1], N * MT_RD * sizeof(float)) == 0);
        mt_assert_close("knn backward", dx[0], dx[1], (size_t)MT_RN * MT_RD, 1e-5f, 1e-6f);
    }
    for (int t = 0; t < 2; t++) {
        free(y[t]);
        free(dx[t]);
    }
    free(x);
    free(feat);
    mmrec_graph_destroy(g);
}
END_TEST

/* PyTorch's values (graph.bin): the op read at every node, in a shuffled
 * order, must give torch.sparse.mm's LightGCN rows and gradient. */
START_TEST(test_lightgcn_rows_golden_pytorch) {
    mt_golden gold;
    mmrec_graph *g = mt_golden_graph(&gold);
    const char *cases[2] = {"lightgcn3", "lightgcn2w"};
    for (int c = 0; c < 2; c++) {
        mt_graph_case k;
        mt_golden_graph_case(&gold, cases[c], &k);
        size_t n = (size_t)k.x->shape[0], d = (size_t)k.x->shape[1];
        ck_assert_uint_le(n * d, 256);
        int64_t rows[64];
        float rr[256], want[256];
        for (size_t p = 0; p < n; p++) rows[p] = (int64_t)((p * 7 + 3) % n); /* 7 coprime to n */
        for (size_t p = 0; p < n; p++) {
            memcpy(rr + p * d, k.r->data + (size_t)rows[p] * d, d * sizeof(float));
            memcpy(want + p * d, k.y->data + (size_t)rows[p] * d, d * sizeof(float));
        }
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        mmrec_tensor *e = mt_tape_tensor(tape, 2, k.x->shape, k.x->data,
                                         MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *out;
        MT_OK(mmrec_lightgcn_rows(tape, g, e, k.layers, k.weights, rows, n, &out));
        mt_golden_graph_check(cases[c], &k, tape, e, out, want, rr, n * d);
        mmrec_tape_destroy(tape);
    }
    mmrec_graph_destroy(g);
    mt_golden_free(&gold);
}
END_TEST

typedef struct mt_rows_ctx {
    mmrec_graph *g;
    int layers;
    const int64_t *rows;
    size_t n;
} mt_rows_ctx;

static mmrec_status mt_rows_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                mmrec_tensor **out) {
    mt_rows_ctx *c = ctx;
    return mmrec_lightgcn_rows(tape, c->g, in[0], c->layers, NULL, c->rows, c->n, out);
}

START_TEST(test_lightgcn_rows_gradients) {
    mmrec_graph *g = mt_random_graph(8);
    enum { N = 40 };
    int64_t rows[N];
    mt_batch_rows(rows, N, 4);
    float *x = malloc((size_t)MT_RN * MT_RD * sizeof *x);
    mt_fill_uniform(x, (size_t)MT_RN * MT_RD, -1, 1, 12);
    mt_input in[1] = {{2, {MT_RN, MT_RD}, x, false}};
    for (int K = 0; K <= 3; K++) {
        mt_rows_ctx c = {g, K, rows, N};
        mt_gradcheck("lightgcn_rows", mt_rows_fwd, &c, in, 1, NULL, NULL);
    }
    free(x);
    mmrec_graph_destroy(g);
}
END_TEST

START_TEST(test_lightgcn_rows_threads_give_the_same_bits) {
    mmrec_graph *g = mt_random_graph(21);
    enum { N = 900 };
    int64_t rows[N];
    mt_batch_rows(rows, N, 33);
    float *x = malloc((size_t)MT_RN * MT_RD * sizeof *x), *r = malloc(N * MT_RD * sizeof *r);
    mt_fill_uniform(x, (size_t)MT_RN * MT_RD, -1, 1, 2);
    mt_fill_uniform(r, N * MT_RD, -1, 1, 3);
    float *y[2], *dx[2];
    for (int t = 0; t < 2; t++) {
        y[t] = malloc(N * MT_RD * sizeof(float));
        dx[t] = malloc((size_t)MT_RN * MT_RD * sizeof(float));
        MT_OK(mmrec_set_num_threads(t + 1));
        mt_run(g, 3, NULL, x, rows, N, r, 1, y[t], dx[t]);
    }
    MT_OK(mmrec_set_num_threads(2));
    ck_assert(memcmp(y[0], y[1], N * MT_RD * sizeof(float)) == 0);
    ck_assert(memcmp(dx[0], dx[1], (size_t)MT_RN * MT_RD * sizeof(float)) == 0);
    for (int t = 0; t < 2; t++) {
        free(y[t]);
        free(dx[t]);
    }
    free(x);
    free(r);
    mmrec_graph_destroy(g);
}
END_TEST

START_TEST(test_lightgcn_rows_bad_input) {
    mmrec_graph *g = mt_random_graph(1);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t ok[2] = {MT_RN, 2}, short_[2] = {MT_RN - 1, 2};
    mmrec_tensor *x, *bad, *y;
    MT_OK(mmrec_tape_tensor(tape, 2, ok, 0, &x));
    MT_OK(mmrec_tape_tensor(tape, 2, short_, 0, &bad));
    int64_t rows[3] = {0, MT_RU, MT_RN - 1}, out_of_range[2] = {0, MT_RN}, neg[1] = {-2};
    MT_EXPECT(mmrec_lightgcn_rows(NULL, g, x, 2, NULL, rows, 3, &y), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_lightgcn_rows(tape, NULL, x, 2, NULL, rows, 3, &y), MMREC_EINVAL, "graph");
    MT_EXPECT(mmrec_lightgcn_rows(tape, g, NULL, 2, NULL, rows, 3, &y), MMREC_EINVAL, "ego");
    MT_EXPECT(mmrec_lightgcn_rows(tape, g, x, 2, NULL, NULL, 3, &y), MMREC_EINVAL, "rows");
    MT_EXPECT(mmrec_lightgcn_rows(tape, g, x, 2, NULL, rows, 3, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_lightgcn_rows(tape, g, x, 2, NULL, rows, 0, &y), MMREC_EINVAL, "n_rows");
    MT_EXPECT(mmrec_lightgcn_rows(tape, g, x, 65, NULL, rows, 3, &y), MMREC_EINVAL,
              "num_layers");
    float nanw[3] = {0.5f, 0.5f, INFINITY};
    MT_EXPECT(mmrec_lightgcn_rows(tape, g, x, 2, nanw, rows, 3, &y), MMREC_EINVAL, "weights[2]");
    MT_EXPECT(mmrec_lightgcn_rows(tape, g, bad, 2, NULL, rows, 3, &y), MMREC_ESHAPE, "ego");
    MT_EXPECT(mmrec_lightgcn_rows(tape, g, x, 2, NULL, out_of_range, 2, &y), MMREC_ERANGE,
              "rows[1] is 700");
    MT_EXPECT(mmrec_lightgcn_rows(tape, g, x, 2, NULL, neg, 1, &y), MMREC_ERANGE,
              "rows[0] is -2");
    MT_OK(mmrec_lightgcn_rows(tape, g, x, 2, NULL, rows, 3, &y));
    mmrec_tape_destroy(tape);
    mmrec_graph_destroy(g);
}
END_TEST

static mmrec_status mt_rows_oom(void *ctx) {
    const mmrec_graph *g = ctx;
    mmrec_tape *tape = NULL;
    mmrec_status s = mmrec_tape_create(&tape);
    int64_t rows[4] = {0, 5, MT_RU + 3, 5};
    if (s == MMREC_OK) {
        int64_t sh[2] = {MT_RN, 2};
        mmrec_tensor *e, *y, *loss;
        s = mmrec_tape_tensor(tape, 2, sh, MMREC_TENSOR_REQUIRES_GRAD, &e);
        if (s == MMREC_OK) s = mmrec_lightgcn_rows(tape, g, e, 3, NULL, rows, 4, &y);
        if (s == MMREC_OK) s = mmrec_sum(tape, y, MMREC_AXIS_ALL, &loss);
        if (s == MMREC_OK) s = mmrec_tape_backward(tape, loss);
    }
    mmrec_tape_destroy(tape);
    return s;
}

START_TEST(test_lightgcn_rows_oom_reports_enomem_without_leaks) {
    mmrec_graph *g = mt_random_graph(5);
    ck_assert_int_gt(mt_oom_loop("lightgcn_rows", mt_rows_oom, g), 2);
    mmrec_graph_destroy(g);
}
END_TEST

static Suite *lightgcn_rows_suite(void) {
    Suite *s = suite_create("lightgcn_rows");
    TCase *tc = tcase_create("lightgcn_rows");
    tcase_add_test(tc, test_lightgcn_rows_matches_full_then_gather);
    tcase_add_test(tc, test_lightgcn_rows_knn_graph);
    tcase_add_test(tc, test_lightgcn_rows_golden_pytorch);
    tcase_add_test(tc, test_lightgcn_rows_gradients);
    tcase_add_test(tc, test_lightgcn_rows_threads_give_the_same_bits);
    tcase_add_test(tc, test_lightgcn_rows_bad_input);
    tcase_add_test(tc, test_lightgcn_rows_oom_reports_enomem_without_leaks);
    suite_add_tcase(s, tc);
    return s;
}
