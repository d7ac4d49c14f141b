/* Graph: the normalized bipartite adjacency against a dense construction,
 * propagation and LightGCN against dense products, gradient checks, thread
 * independence, golden vectors from PyTorch, and bad input. */
#include "mt.h"

#include <math.h>
#include <stdlib.h>

MT_SUITE(graph_suite)

/* A small interaction list: 5 users, 6 items; user 3 and item 5 isolated,
 * (0, 1) given twice. */
enum { MT_U = 5, MT_I = 6, MT_N = MT_U + MT_I, MT_PAIRS = 10 };
static const int64_t mt_users[MT_PAIRS] = {0, 0, 1, 1, 2, 4, 4, 0, 2, 4};
static const int64_t mt_items[MT_PAIRS] = {1, 2, 0, 1, 3, 4, 0, 1, 1, 2};

/* The dense A_hat of the list above, in double. */
static void mt_dense_adj(double *a) {
    double r[MT_U][MT_I] = {{0}};
    for (int k = 0; k < MT_PAIRS; k++) r[mt_users[k]][mt_items[k]] = 1.0;
    double deg[MT_N] = {0};
    for (int u = 0; u < MT_U; u++)
        for (int i = 0; i < MT_I; i++) deg[u] += r[u][i], deg[MT_U + i] += r[u][i];
    for (int x = 0; x < MT_N * MT_N; x++) a[x] = 0.0;
    for (int u = 0; u < MT_U; u++)
        for (int i = 0; i < MT_I; i++)
            if (r[u][i] != 0.0) {
                double v = 1.0 / sqrt(deg[u] * deg[MT_U + i]);
                a[u * MT_N + MT_U + i] = v;
                a[(MT_U + i) * MT_N + u] = v;
            }
}

static mmrec_graph *mt_small_graph(void) {
    mmrec_graph *g;
    MT_OK(mmrec_graph_create_bipartite(mt_users, mt_items, MT_PAIRS, MT_U, MT_I, &g));
    return g;
}

/* y = A^k x in double. */
static void mt_dense_power(const double *a, const float *x, int d, int k, double *y) {
    size_t n = (size_t)MT_N * (size_t)d;
    double *cur = malloc(n * sizeof *cur), *nxt = malloc(n * sizeof *nxt);
    for (int i = 0; i < MT_N * d; i++) cur[i] = x[i];
    for (int s = 0; s < k; s++) {
        for (int r = 0; r < MT_N; r++)
            for (int c = 0; c < d; c++) {
                double v = 0;
                for (int j = 0; j < MT_N; j++) v += a[r * MT_N + j] * cur[j * d + c];
                nxt[r * d + c] = v;
            }
        double *t = cur;
        cur = nxt;
        nxt = t;
    }
    for (int i = 0; i < MT_N * d; i++) y[i] = cur[i];
    free(cur);
    free(nxt);
}

START_TEST(test_graph_matches_dense_normalization) {
    mmrec_graph *g = mt_small_graph();
    int64_t nodes, users, nnz;
    MT_OK(mmrec_graph_info(g, &nodes, &users, &nnz));
    ck_assert_int_eq(nodes, MT_N);
    ck_assert_int_eq(users, MT_U);
    ck_assert_int_eq(nnz, 2 * 9); /* 9 distinct pairs */
    MT_OK(mmrec_graph_info(g, NULL, NULL, NULL));
    /* A_hat applied to the identity gives its columns */
    double a[MT_N * MT_N];
    mt_dense_adj(a);
    float eye[MT_N * MT_N] = {0};
    for (int i = 0; i < MT_N; i++) eye[i * MT_N + i] = 1.0f;
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {MT_N, MT_N};
    mmrec_tensor *x = mt_tape_tensor(tape, 2, s, eye, 0), *y;
    MT_OK(mmrec_graph_propagate(tape, g, x, &y));
    float out[MT_N * MT_N];
    MT_OK(mmrec_tensor_copy_to(y, out, MT_N * MT_N));
    for (int i = 0; i < MT_N * MT_N; i++)
        ck_assert_msg(fabs(out[i] - a[i]) < 1e-6, "entry %d: %g vs %g", i, (double)out[i], a[i]);
    /* the isolated user 3 and item 5 have zero rows */
    for (int j = 0; j < MT_N; j++) ck_assert(out[3 * MT_N + j] == 0.0f);
    for (int j = 0; j < MT_N; j++) ck_assert(out[(MT_U + 5) * MT_N + j] == 0.0f);
    mmrec_tape_destroy(tape);
    mmrec_graph_destroy(g);
    mmrec_graph_destroy(NULL);
}
END_TEST

START_TEST(test_lightgcn_matches_dense_layers) {
    mmrec_graph *g = mt_small_graph();
    double a[MT_N * MT_N];
    mt_dense_adj(a);
    enum { D = 3 };
    float x[MT_N * D];
    mt_fill_uniform(x, MT_N * D, -1, 1, 11);
    float wts[4] = {0.5f, -0.25f, 2.0f, 0.75f};
    for (int variant = 0; variant < 3; variant++) {
        int K = variant == 0 ? 3 : variant == 1 ? 2 : 0;
        const float *w = variant == 0 ? wts : NULL;
        double ref[MT_N * D] = {0}, pk[MT_N * D];
        for (int k = 0; k <= K; k++) {
            mt_dense_power(a, x, D, k, pk);
            double wk = w ? w[k] : 1.0 / (K + 1);
            for (int i = 0; i < MT_N * D; i++) ref[i] += wk * pk[i];
        }
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        int64_t s[2] = {MT_N, D};
        mmrec_tensor *e = mt_tape_tensor(tape, 2, s, x, 0), *y;
        MT_OK(mmrec_lightgcn(tape, g, e, K, w, &y));
        float out[MT_N * D];
        MT_OK(mmrec_tensor_copy_to(y, out, MT_N * D));
        for (int i = 0; i < MT_N * D; i++)
            ck_assert_msg(fabs(out[i] - ref[i]) < 1e-5, "K %d entry %d: %g vs %g", K, i,
                          (double)out[i], ref[i]);
        mmrec_tape_destroy(tape);
    }
    mmrec_graph_destroy(g);
}
END_TEST

typedef struct mt_graph_ctx {
    mmrec_graph *g;
    int layers; /* -1: one propagate hop */
    const float *weights;
} mt_graph_ctx;

static mmrec_status mt_graph_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                 mmrec_tensor **out) {
    mt_graph_ctx *c = ctx;
    if (c->layers < 0) return mmrec_graph_propagate(tape, c->g, in[0], out);
    return mmrec_lightgcn(tape, c->g, in[0], c->layers, c->weights, out);
}

START_TEST(test_graph_gradients) {
    mmrec_graph *g = mt_small_graph();
    float x[MT_N * 4];
    mt_fill_uniform(x, MT_N * 4, -1, 1, 5);
    mt_input in[1] = {{2, {MT_N, 4}, x, false}};
    float wts[3] = {0.2f, 1.5f, -0.7f};
    mt_graph_ctx cases[4] = {{g, -1, NULL}, {g, 0, NULL}, {g, 3, NULL}, {g, 2, wts}};
    for (int i = 0; i < 4; i++) mt_gradcheck("graph", mt_graph_fwd, &cases[i], in, 1, NULL, NULL);
    mmrec_graph_destroy(g);
}
END_TEST

/* A random larger graph: the result is the same, bit for bit, on 1 and 2
 * threads (rows are independent), and the backward of a model parameter
 * accumulates. */
enum { MT_BU = 700, MT_BI = 900, MT_BP = 9000 };

/* A random bipartite graph of MT_BU users and MT_BI items, more stored
 * entries than one part of the pool takes. */
static mmrec_graph *mt_big_graph(void) {
    int64_t *u = malloc(MT_BP * sizeof *u), *it = malloc(MT_BP * sizeof *it);
    uint64_t s = 42;
    for (int k = 0; k < MT_BP; k++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        u[k] = (int64_t)((s >> 33) % MT_BU);
        it[k] = (int64_t)((s >> 13) % MT_BI);
    }
    mmrec_graph *g;
    MT_OK(mmrec_graph_create_bipartite(u, it, MT_BP, MT_BU, MT_BI, &g));
    free(u);
    free(it);
    return g;
}

START_TEST(test_graph_threads_give_the_same_bits) {
    enum { U = MT_BU, I = MT_BI, D = 16 };
    mmrec_graph *g = mt_big_graph();
    float *x = malloc((size_t)(U + I) * D * sizeof *x);
    mt_fill_uniform(x, (size_t)(U + I) * D, -1, 1, 9);
    float *out[2];
    for (int t = 0; t < 2; t++) {
        MT_OK(mmrec_set_num_threads(t + 1));
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        int64_t sh[2] = {U + I, D};
        mmrec_tensor *e = mt_tape_tensor(tape, 2, sh, x, 0), *y;
        MT_OK(mmrec_lightgcn(tape, g, e, 3, NULL, &y));
        out[t] = malloc((size_t)(U + I) * D * sizeof(float));
        MT_OK(mmrec_tensor_copy_to(y, out[t], (size_t)(U + I) * D));
        mmrec_tape_destroy(tape);
    }
    MT_OK(mmrec_set_num_threads(2));
    ck_assert(memcmp(out[0], out[1], (size_t)(U + I) * D * sizeof(float)) == 0);
    free(out[0]);
    free(out[1]);
    free(x);
    mmrec_graph_destroy(g);
}
END_TEST

/* Products of any width (blocks of 64, 32 and 16 columns and a rest) give
 * each column the bits of that column propagated alone, on 1 and 2
 * threads. */
START_TEST(test_graph_column_blocks_match_single_columns) {
    enum { N = MT_BU + MT_BI };
    static const int widths[] = {1, 7, 16, 33, 48, 64, 80, 130, 200};
    mmrec_graph *g = mt_big_graph();
    float *x = malloc((size_t)N * 200 * sizeof *x), *wide = malloc((size_t)N * 200 * sizeof *wide);
    float *one = malloc(N * sizeof *one), *col = malloc(N * sizeof *col);
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++)
        for (int t = 1; t <= 2; t++) {
            int d = widths[w];
            MT_OK(mmrec_set_num_threads(t));
            mt_fill_uniform(x, (size_t)N * d, -1, 1, 70 + (uint64_t)d);
            mmrec_tape *tape;
            MT_OK(mmrec_tape_create(&tape));
            int64_t sh[2] = {N, d}, sh1[2] = {N, 1};
            mmrec_tensor *e = mt_tape_tensor(tape, 2, sh, x, 0), *y;
            MT_OK(mmrec_graph_propagate(tape, g, e, &y));
            MT_OK(mmrec_tensor_copy_to(y, wide, (size_t)N * d));
            for (int c = 0; c < d; c++) {
                for (int r = 0; r < N; r++) col[r] = x[(size_t)r * d + c];
                mmrec_tensor *e1 = mt_tape_tensor(tape, 2, sh1, col, 0), *y1;
                MT_OK(mmrec_graph_propagate(tape, g, e1, &y1));
                MT_OK(mmrec_tensor_copy_to(y1, one, N));
                int r = 0;
                while (r < N && memcmp(&one[r], &wide[(size_t)r * d + c], sizeof(float)) == 0) r++;
                ck_assert_msg(r == N, "d %d threads %d row %d column %d: %a vs %a", d, t, r, c,
                              (double)wide[(size_t)(r % N) * d + c], (double)one[r % N]);
            }
            mmrec_tape_destroy(tape);
        }
    MT_OK(mmrec_set_num_threads(2));
    free(x);
    free(wide);
    free(one);
    free(col);
    mmrec_graph_destroy(g);
}
END_TEST

START_TEST(test_graph_bad_input) {
    mmrec_graph *g = NULL;
    MT_EXPECT(mmrec_graph_create_bipartite(mt_users, mt_items, MT_PAIRS, MT_U, MT_I, NULL),
              MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_graph_create_bipartite(NULL, mt_items, MT_PAIRS, MT_U, MT_I, &g),
              MMREC_EINVAL, "users");
    MT_EXPECT(mmrec_graph_create_bipartite(mt_users, mt_items, MT_PAIRS, 0, MT_I, &g),
              MMREC_EINVAL, "num_users");
    /* counts whose sum overflows int64 are refused, not added */
    MT_EXPECT(mmrec_graph_create_bipartite(mt_users, mt_items, MT_PAIRS, MT_U, INT64_MAX, &g),
              MMREC_EINVAL, "num_items 9223372036854775807");
    MT_EXPECT(mmrec_graph_create_bipartite(mt_users, mt_items, MT_PAIRS, INT64_MAX, INT64_MAX, &g),
              MMREC_EINVAL, "num_users is 9223372036854775807");
    MT_EXPECT(mmrec_graph_create_bipartite(mt_users, mt_items, MT_PAIRS, INT32_MAX - MT_I, MT_I,
                                           &g),
              MMREC_EINVAL, "their sum below 2^31 - 1");
    MT_EXPECT(mmrec_graph_create_bipartite(mt_users, mt_items, MT_PAIRS, 4, MT_I, &g),
              MMREC_ERANGE, "users[5] is 4");
    MT_EXPECT(mmrec_graph_create_bipartite(mt_users, mt_items, MT_PAIRS, MT_U, 4, &g),
              MMREC_ERANGE, "items[5] is 4");
    int64_t neg[1] = {-1}, zero[1] = {0};
    MT_EXPECT(mmrec_graph_create_bipartite(neg, zero, 1, MT_U, MT_I, &g), MMREC_ERANGE,
              "users[0] is -1");
    ck_assert_ptr_null(g);
    /* no interactions at all: every row is zero */
    MT_OK(mmrec_graph_create_bipartite(NULL, NULL, 0, 2, 3, &g));
    int64_t nnz;
    MT_OK(mmrec_graph_info(g, NULL, NULL, &nnz));
    ck_assert_int_eq(nnz, 0);
    mmrec_graph_destroy(g);

    g = mt_small_graph();
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {MT_N - 1, 2}, ok[2] = {MT_N, 2};
    float buf[MT_N * 2] = {0};
    mmrec_tensor *bad = mt_tape_tensor(tape, 2, s, buf, 0);
    mmrec_tensor *x = mt_tape_tensor(tape, 2, ok, buf, 0), *y;
    MT_EXPECT(mmrec_graph_propagate(tape, g, bad, &y), MMREC_ESHAPE,
              "x is [10,2], expected [11, d]");
    MT_EXPECT(mmrec_graph_propagate(tape, NULL, x, &y), MMREC_EINVAL, "graph");
    MT_EXPECT(mmrec_graph_propagate(NULL, g, x, &y), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_graph_propagate(tape, g, x, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_lightgcn(tape, g, x, -1, NULL, &y), MMREC_EINVAL, "num_layers");
    MT_EXPECT(mmrec_lightgcn(tape, g, x, 65, NULL, &y), MMREC_EINVAL, "num_layers");
    float nanw[3] = {0.5f, NAN, 0.5f};
    MT_EXPECT(mmrec_lightgcn(tape, g, x, 2, nanw, &y), MMREC_EINVAL, "weights[1]");
    MT_EXPECT(mmrec_lightgcn(tape, g, bad, 2, NULL, &y), MMREC_ESHAPE, "ego");
    int64_t not_a_graph[8] = {0};
    MT_EXPECT(mmrec_graph_info((const mmrec_graph *)not_a_graph, NULL, NULL, NULL), MMREC_EINVAL,
              "not a graph");
    mmrec_tape_destroy(tape);
    mmrec_graph_destroy(g);
}
END_TEST

/* Golden vectors from PyTorch (tests/golden/make_golden.py, write_graph):
 * torch.sparse.mm over LightGCN-PyTorch's normalized adjacency. */
START_TEST(test_graph_golden_pytorch) {
    mt_golden gold;
    mmrec_graph *g = mt_golden_graph(&gold);
    const char *cases[3] = {"propagate", "lightgcn3", "lightgcn2w"};
    for (int c = 0; c < 3; c++) {
        mt_graph_case k;
        mt_golden_graph_case(&gold, cases[c], &k);
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        mmrec_tensor *e = mt_tape_tensor(tape, 2, k.x->shape, k.x->data,
                                         MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *out;
        if (k.layers < 0)
            MT_OK(mmrec_graph_propagate(tape, g, e, &out));
        else
            MT_OK(mmrec_lightgcn(tape, g, e, k.layers, k.weights, &out));
        mt_golden_graph_check(cases[c], &k, tape, e, out, k.y->data, k.r->data, k.y->numel);
        mmrec_tape_destroy(tape);
    }
    mmrec_graph_destroy(g);
    mt_golden_free(&gold);
}
END_TEST

static mmrec_status mt_graph_oom(void *ctx) {
    (void)ctx;
    mmrec_graph *g = NULL;
    mmrec_tape *tape = NULL;
    mmrec_status s = mmrec_graph_create_bipartite(mt_users, mt_items, MT_PAIRS, MT_U, MT_I, &g);
    if (s == MMREC_OK) s = mmrec_tape_create(&tape);
    if (s == MMREC_OK) {
        int64_t sh[2] = {MT_N, 2};
        mmrec_tensor *e, *y;
        s = mmrec_tape_tensor(tape, 2, sh, MMREC_TENSOR_REQUIRES_GRAD, &e);
        if (s == MMREC_OK) s = mmrec_lightgcn(tape, g, e, 2, NULL, &y);
    }
    mmrec_tape_destroy(tape);
    mmrec_graph_destroy(g);
    return s;
}

START_TEST(test_graph_oom_reports_enomem_without_leaks) {
    ck_assert_int_gt(mt_oom_loop("graph", mt_graph_oom, NULL), 2);
}
END_TEST

static Suite *graph_suite(void) {
    Suite *s = suite_create("graph");
    TCase *tc = tcase_create("graph");
    tcase_add_test(tc, test_graph_matches_dense_normalization);
    tcase_add_test(tc, test_lightgcn_matches_dense_layers);
    tcase_add_test(tc, test_graph_gradients);
    tcase_add_test(tc, test_graph_golden_pytorch);
    tcase_add_test(tc, test_graph_threads_give_the_same_bits);
    tcase_add_test(tc, test_graph_column_blocks_match_single_columns);
    tcase_add_test(tc, test_graph_bad_input);
    tcase_add_test(tc, test_graph_oom_reports_enomem_without_leaks);
    suite_add_tcase(s, tc);
    return s;
}
