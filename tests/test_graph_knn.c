/* The item-item kNN content graph (mmrec_graph_create_knn): golden vectors
 * from PyTorch (tests/golden/make_golden.py, write_knn), gradients of
 * propagation over the non-symmetric graph, a larger case against a
 * brute-force reference, thread independence, config sizes, bad input and
 * allocation failures. */
#include "mt.h"
#include "graph/graph_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

MT_SUITE(graph_knn_suite)

static mmrec_knn_config mt_knn_cfg(int k, int binary) {
    mmrec_knn_config cfg;
    MT_OK(mmrec_knn_config_init(&cfg));
    cfg.k = k;
    cfg.binary = binary;
    return cfg;
}

/* y = A x (mode 0), 2-layer LightGCN with the layer mean (mode 1); out
 * gets y and, when r is given, dx gets the gradient of sum(r * y). */
static void mt_knn_run(const mmrec_graph *g, int mode, const mt_array *x, const float *r,
                       float *y, float *dx) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *e = mt_tape_tensor(tape, 2, x->shape, x->data, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *out;
    if (mode == 0)
        MT_OK(mmrec_graph_propagate(tape, g, e, &out));
    else
        MT_OK(mmrec_lightgcn(tape, g, e, 2, NULL, &out));
    MT_OK(mmrec_tensor_copy_to(out, y, x->numel));
    if (r) {
        const float *grad;
        MT_OK(mmrec_tape_backward_from(tape, out, r));
        MT_OK(mmrec_tensor_grad(e, &grad));
        memcpy(dx, grad, x->numel * sizeof *dx);
    }
    mmrec_tape_destroy(tape);
}

/* The graph as a dense [n, n] matrix: A applied to the identity. */
static void mt_knn_dense(const mmrec_graph *g, int64_t n, float *a) {
    float *eye = calloc((size_t)(n * n), sizeof *eye);
    for (int64_t i = 0; i < n; i++) eye[i * n + i] = 1.0f;
    mt_array x = {"eye", 2, {n, n}, (size_t)(n * n), eye};
    mt_knn_run(g, 0, &x, NULL, a, NULL);
    free(eye);
}

/* Golden vectors from PyTorch: the dense normalized adjacency (its nonzero
 * entries compared, its zeros exact), propagation and LightGCN forward and
 * backward. Cases: similarity weights with a zero row and a duplicate,
 * binary weights, and a 1-d case whose row 0 has a negative degree and
 * whose rows tie. */
START_TEST(test_knn_golden_pytorch) {
    mt_golden gold;
    mt_golden_load(&gold, "knn.bin");
    const char *cases[3] = {"knn", "knn_binary", "knn_negdeg"};
    for (int c = 0; c < 3; c++) {
        char name[64];
        snprintf(name, sizeof name, "%s.features", cases[c]);
        const mt_array *f = mt_golden_get(&gold, name);
        snprintf(name, sizeof name, "%s.cfg", cases[c]);
        const mt_array *cf = mt_golden_get(&gold, name);
        snprintf(name, sizeof name, "%s.adj", cases[c]);
        const mt_array *adj = mt_golden_get(&gold, name);
        int64_t n = f->shape[0];
        mmrec_knn_config cfg = mt_knn_cfg((int)cf->data[0], (int)cf->data[1]);
        mmrec_graph *g;
        MT_OK(mmrec_graph_create_knn(f->data, n, f->shape[1], &cfg, &g));
        int64_t nodes, users, nnz;
        MT_OK(mmrec_graph_info(g, &nodes, &users, &nnz));
        ck_assert_int_eq(nodes, n);
        ck_assert_int_eq(users, 0);
        ck_assert_int_eq(nnz, n * cfg.k);

        float *a = malloc(adj->numel * sizeof *a), *got = malloc(adj->numel * sizeof *got);
        float *want = malloc(adj->numel * sizeof *want);
        mt_knn_dense(g, n, a);
        size_t nz = 0;
        for (size_t i = 0; i < adj->numel; i++)
            if (adj->data[i] != 0.0f) {
                got[nz] = a[i];
                want[nz++] = adj->data[i];
            } else {
                ck_assert_msg(a[i] == 0.0f, "%s: adj[%zu] is %g, expected 0", cases[c], i,
                              (double)a[i]);
            }
        mt_assert_close(cases[c], got, want, nz, 0, 0);
        free(a);
        free(got);
        free(want);

        for (int mode = 0; mode < 2; mode++) {
            const char *op = mode == 0 ? "propagate" : "lightgcn2";
            snprintf(name, sizeof name, "%s.%s.x", cases[c], op);
            const mt_array *x = mt_golden_get(&gold, name);
            snprintf(name, sizeof name, "%s.%s.r", cases[c], op);
            const mt_array *r = mt_golden_get(&gold, name);
            snprintf(name, sizeof name, "%s.%s.y", cases[c], op);
            const mt_array *y = mt_golden_get(&gold, name);
            snprintf(name, sizeof name, "%s.%s.dx", cases[c], op);
            const mt_array *dx = mt_golden_get(&gold, name);
            float *gy = malloc(x->numel * sizeof *gy), *gdx = malloc(x->numel * sizeof *gdx);
            mt_knn_run(g, mode, x, r->data, gy, gdx);
            snprintf(name, sizeof name, "%s.%s", cases[c], op);
            mt_assert_close(name, gy, y->data, y->numel, 0, 0);
            mt_assert_close(name, gdx, dx->data, dx->numel, 0, 0);
            free(gy);
            free(gdx);
        }
        mmrec_graph_destroy(g);
    }
    mt_golden_free(&gold);
}
END_TEST

/* k = 1 keeps each item's own similarity 1: the identity. */
START_TEST(test_knn_k1_is_the_identity) {
    enum { N = 7, D = 3 };
    float f[N * D], a[N * N];
    mt_fill_uniform(f, N * D, -1, 1, 3);
    mmrec_knn_config cfg = mt_knn_cfg(1, 0);
    mmrec_graph *g;
    MT_OK(mmrec_graph_create_knn(f, N, D, &cfg, &g));
    mt_knn_dense(g, N, a);
    for (int i = 0; i < N * N; i++)
        ck_assert_msg(fabsf(a[i] - (i % (N + 1) == 0 ? 1.0f : 0.0f)) < 1e-6f, "entry %d: %g", i,
                      (double)a[i]);
    mmrec_graph_destroy(g);
}
END_TEST

typedef struct mt_knn_ctx {
    mmrec_graph *g;
    int layers; /* -1: one propagate hop */
    const float *weights;
} mt_knn_ctx;

static mmrec_status mt_knn_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    mt_knn_ctx *c = ctx;
    if (c->layers < 0) return mmrec_graph_propagate(tape, c->g, in[0], out);
    return mmrec_lightgcn(tape, c->g, in[0], c->layers, c->weights, out);
}

/* The backward products go through A^T: a finite-difference check of
 * propagation and LightGCN over a kNN graph (k 5 of 20 items: many j in
 * i's top k without i in j's). */
START_TEST(test_knn_gradients) {
    enum { N = 20, D = 8 };
    float f[N * D], x[N * 3];
    mt_fill_uniform(f, N * D, -1, 1, 21);
    mt_fill_uniform(x, N * 3, -1, 1, 22);
    float wts[3] = {0.2f, 1.5f, -0.7f};
    for (int binary = 0; binary < 2; binary++) {
        mmrec_knn_config cfg = mt_knn_cfg(5, binary);
        mmrec_graph *g;
        MT_OK(mmrec_graph_create_knn(f, N, D, &cfg, &g));
        ck_assert_ptr_nonnull(g->t_row_ptr);
        mt_input in[1] = {{2, {N, 3}, x, false}};
        mt_knn_ctx cases[3] = {{g, -1, NULL}, {g, 3, NULL}, {g, 2, wts}};
        for (int i = 0; i < 3; i++) mt_gradcheck("knn", mt_knn_fwd, &cases[i], in, 1, NULL, NULL);
        mmrec_graph_destroy(g);
    }
}
END_TEST

static mmrec_graph *mt_knn_build(const float *f, int64_t n, int64_t dim, int k, int threads) {
    int saved = mmrec_get_num_threads();
    MT_OK(mmrec_set_num_threads(threads));
    mmrec_knn_config cfg = mt_knn_cfg(k, 0);
    mmrec_graph *g;
    MT_OK(mmrec_graph_create_knn(f, n, dim, &cfg, &g));
    MT_OK(mmrec_set_num_threads(saved));
    return g;
}

/* 5000 items (20 blocks of rows, 5 tiles of columns) against a
 * brute-force reference in double: each row's neighbours are its top k up
 * to near ties, rows are sorted, and every value is w_ij / sqrt(deg_i
 * deg_j) of the reference similarities; the transpose holds the same
 * entries. Some rows are zero (all their similarities tie at 0: the k
 * lowest ids). */
START_TEST(test_knn_matches_brute_force) {
    enum { N = 5000, D = 16, K = 10 };
    float *f = malloc((size_t)N * D * sizeof *f);
    mt_fill_uniform(f, (size_t)N * D, -1, 1, 99);
    for (int i = 0; i < N; i += 997) memset(f + (size_t)i * D, 0, D * sizeof *f);
    mmrec_graph *g = mt_knn_build(f, N, D, K, 2);
    double *inv = malloc(N * sizeof *inv), *sim = malloc(N * sizeof *sim);
    double *w = malloc((size_t)N * K * sizeof *w), *deg = calloc(N, sizeof *deg);
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int c = 0; c < D; c++) s += (double)f[i * D + c] * f[i * D + c];
        inv[i] = 1.0 / fmax(sqrt(s), 1e-12);
    }
    for (int i = 0; i < N; i++) {
        double top[K];
        int n_top = 0;
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int c = 0; c < D; c++) s += (double)f[i * D + c] * f[j * D + c];
            sim[j] = s * inv[i] * inv[j];
            /* the k largest, best first (ties keep the earlier id) */
            int p = n_top < K ? n_top++ : K;
            while (p > 0 && top[p - 1] < sim[j]) {
                if (p < K) top[p] = top[p - 1];
                p--;
            }
            if (p < K) top[p] = sim[j];
        }
        ck_assert_int_eq(g->row_ptr[i], (int64_t)i * K);
        for (int p = 0; p < K; p++) {
            int64_t e = (int64_t)i * K + p;
            int32_t j = g->col[e];
            ck_assert(j >= 0 && j < N);
            if (p > 0) ck_assert_msg(j > g->col[e - 1], "row %d not sorted", i);
            ck_assert_msg(sim[j] >= top[K - 1] - 1e-5, "row %d keeps %d (%.9g), k-th is %.9g", i,
                          j, sim[j], top[K - 1]);
            if (i % 997 == 0) ck_assert_int_eq(j, p); /* a zero row: all tie */
            w[e] = sim[j];
            deg[i] += sim[j];
        }
    }
    for (int i = 0; i < N; i++)
        for (int64_t e = (int64_t)i * K; e < (int64_t)(i + 1) * K; e++) {
            int32_t j = g->col[e];
            double want = deg[i] > 0 && deg[j] > 0 ? w[e] / sqrt(deg[i] * deg[j]) : 0.0;
            ck_assert_msg(fabs(g->val[e] - want) <= 1e-6 + 1e-5 * fabs(want),
                          "A[%d, %d] is %.9g, expected %.9g", i, j, (double)g->val[e], want);
            /* the same entry in row j of A^T */
            int64_t t = g->t_row_ptr[j];
            while (t < g->t_row_ptr[j + 1] && g->t_col[t] != i) t++;
            ck_assert_msg(t < g->t_row_ptr[j + 1] && g->t_val[t] == g->val[e],
                          "A^T misses (%d, %d)", j, i);
        }
    ck_assert_int_eq(g->t_row_ptr[N], (int64_t)N * K);
    free(f);
    free(inv);
    free(sim);
    free(w);
    free(deg);
    mmrec_graph_destroy(g);
}
END_TEST

/* 1 and 2 threads build the same graph, bit for bit. */
START_TEST(test_knn_threads_give_the_same_bits) {
    enum { N = 2100, D = 24, K = 12 };
    float *f = malloc((size_t)N * D * sizeof *f);
    mt_fill_uniform(f, (size_t)N * D, -1, 1, 7);
    mmrec_graph *g1 = mt_knn_build(f, N, D, K, 1), *g2 = mt_knn_build(f, N, D, K, 2);
    size_t nnz = (size_t)N * K;
    ck_assert(memcmp(g1->col, g2->col, nnz * sizeof *g1->col) == 0);
    ck_assert(memcmp(g1->val, g2->val, nnz * sizeof *g1->val) == 0);
    ck_assert(memcmp(g1->t_row_ptr, g2->t_row_ptr, (N + 1) * sizeof *g1->t_row_ptr) == 0);
    ck_assert(memcmp(g1->t_col, g2->t_col, nnz * sizeof *g1->t_col) == 0);
    ck_assert(memcmp(g1->t_val, g2->t_val, nnz * sizeof *g1->t_val) == 0);
    free(f);
    mmrec_graph_destroy(g1);
    mmrec_graph_destroy(g2);
}
END_TEST

/* The size-first config rules (STYLE.md section 5): an older, shorter
 * struct gets the defaults for the rest; a longer one only with a zero
 * tail; one below the first release is refused. */
START_TEST(test_knn_config_sizes) {
    struct {
        mmrec_knn_config c;
        int64_t extra;
    } big;
    memset(&big, 0xab, sizeof big);
    MT_OK(mmrec_knn_config_init_sized(&big.c, sizeof big));
    ck_assert_uint_eq(big.c.struct_size, sizeof big);
    ck_assert_int_eq(big.c.k, 10);
    ck_assert_int_eq(big.c.binary, 0);
    ck_assert_int_eq(big.extra, 0);
    float f[4 * 2] = {1, 0, 0, 1, 1, 1, -1, 0};
    mmrec_graph *g = NULL;
    big.c.k = 2;
    MT_OK(mmrec_graph_create_knn(f, 4, 2, &big.c, &g));
    mmrec_graph_destroy(g);
    g = NULL;
    big.extra = 1;
    MT_EXPECT(mmrec_graph_create_knn(f, 4, 2, &big.c, &g), MMREC_EINVAL, "newer libmmrec");
    mmrec_knn_config small = mt_knn_cfg(2, 0);
    small.struct_size = offsetof(mmrec_knn_config, k);
    MT_EXPECT(mmrec_graph_create_knn(f, 4, 2, &small, &g), MMREC_EINVAL, "struct_size");
    MT_EXPECT(mmrec_knn_config_init_sized(&small, sizeof(size_t)), MMREC_EINVAL, "size");
    MT_EXPECT(mmrec_knn_config_init_sized(NULL, sizeof small), MMREC_EINVAL, "cfg");
    ck_assert_ptr_null(g);
    /* NULL cfg: the defaults, k 10 (here more than the items) */
    MT_EXPECT(mmrec_graph_create_knn(f, 4, 2, NULL, &g), MMREC_EINVAL, "cfg->k is 10");
}
END_TEST

START_TEST(test_knn_bad_input) {
    float f[6 * 3];
    mt_fill_uniform(f, 6 * 3, -1, 1, 4);
    mmrec_knn_config cfg = mt_knn_cfg(3, 0);
    mmrec_graph *g = NULL;
    MT_EXPECT(mmrec_graph_create_knn(NULL, 6, 3, &cfg, &g), MMREC_EINVAL, "features");
    MT_EXPECT(mmrec_graph_create_knn(f, 6, 3, &cfg, NULL), MMREC_EINVAL, "out");
    MT_EXPECT(mmrec_graph_create_knn(f, 0, 3, &cfg, &g), MMREC_EINVAL, "num_items is 0");
    MT_EXPECT(mmrec_graph_create_knn(f, -2, 3, &cfg, &g), MMREC_EINVAL, "num_items");
    MT_EXPECT(mmrec_graph_create_knn(f, (int64_t)1 << 31, 3, &cfg, &g), MMREC_EINVAL,
              "num_items");
    MT_EXPECT(mmrec_graph_create_knn(f, 6, 0, &cfg, &g), MMREC_EINVAL, "dim is 0");
    MT_EXPECT(mmrec_graph_create_knn(f, 6, ((int64_t)1 << 20) + 1, &cfg, &g), MMREC_EINVAL,
              "dim");
    cfg.k = 0;
    MT_EXPECT(mmrec_graph_create_knn(f, 6, 3, &cfg, &g), MMREC_EINVAL, "cfg->k is 0");
    cfg.k = 7;
    MT_EXPECT(mmrec_graph_create_knn(f, 6, 3, &cfg, &g), MMREC_EINVAL, "1 .. 6 (num_items)");
    cfg.k = 6; /* every item: fine */
    MT_OK(mmrec_graph_create_knn(f, 6, 3, &cfg, &g));
    mmrec_graph_destroy(g);
    g = NULL;
    cfg.binary = 2;
    MT_EXPECT(mmrec_graph_create_knn(f, 6, 3, &cfg, &g), MMREC_EINVAL, "cfg->binary is 2");
    cfg.binary = 0;
    f[4 * 3 + 2] = NAN;
    MT_EXPECT(mmrec_graph_create_knn(f, 6, 3, &cfg, &g), MMREC_ENUMERIC, "row 4, column 2");
    f[4 * 3 + 2] = 0.5f;
    f[1 * 3 + 0] = -INFINITY;
    MT_EXPECT(mmrec_graph_create_knn(f, 6, 3, &cfg, &g), MMREC_ENUMERIC, "row 1, column 0");
    ck_assert_ptr_null(g);
}
END_TEST

static mmrec_status mt_knn_oom(void *ctx) {
    const float *f = ctx;
    mmrec_knn_config cfg = mt_knn_cfg(3, 0);
    mmrec_graph *g = NULL;
    mmrec_tape *tape = NULL;
    mmrec_status s = mmrec_graph_create_knn(f, 9, 4, &cfg, &g);
    if (s == MMREC_OK) s = mmrec_tape_create(&tape);
    if (s == MMREC_OK) {
        int64_t sh[2] = {9, 2};
        mmrec_tensor *e, *y;
        s = mmrec_tape_tensor(tape, 2, sh, MMREC_TENSOR_REQUIRES_GRAD, &e);
        if (s == MMREC_OK) s = mmrec_lightgcn(tape, g, e, 2, NULL, &y);
        float ones[9 * 2] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
        if (s == MMREC_OK) s = mmrec_tape_backward_from(tape, y, ones);
    }
    mmrec_tape_destroy(tape);
    mmrec_graph_destroy(g);
    return s;
}

START_TEST(test_knn_oom_reports_enomem_without_leaks) {
    float f[9 * 4];
    mt_fill_uniform(f, 9 * 4, -1, 1, 8);
    ck_assert_int_gt(mt_oom_loop("knn", mt_knn_oom, f), 8);
}
END_TEST

static Suite *graph_knn_suite(void) {
    Suite *s = suite_create("graph_knn");
    TCase *tc = tcase_create("knn");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_knn_golden_pytorch);
    tcase_add_test(tc, test_knn_k1_is_the_identity);
    tcase_add_test(tc, test_knn_gradients);
    tcase_add_test(tc, test_knn_matches_brute_force);
    tcase_add_test(tc, test_knn_threads_give_the_same_bits);
    tcase_add_test(tc, test_knn_config_sizes);
    tcase_add_test(tc, test_knn_bad_input);
    tcase_add_test(tc, test_knn_oom_reports_enomem_without_leaks);
    suite_add_tcase(s, tc);
    return s;
}
