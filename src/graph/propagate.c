/* Sparse-dense products over a graph and the differentiable ops on them:
 * one propagation hop and LightGCN's K-layer propagation with layer
 * weights. Every backward is the product with A_hat^T: the same product
 * for the symmetric bipartite graph, the stored transpose for the kNN graph.
 * Reference: LightGCN-PyTorch (torch.sparse.mm over the normalized
 * adjacency; tests/golden/make_golden.py). */
#include "graph_internal.h"
#include "../autograd/autograd_internal.h"

#include <math.h>
#include <string.h>

/* Stored entries per part of the pool at least. */
#define MMREC__SPMM_MIN_WORK 8192
/* Entries ahead whose source rows are prefetched. */
#ifndef MMREC__SPMM_AHEAD
#define MMREC__SPMM_AHEAD 8
#endif
/* Widest column block whose sums are kept in registers (4 AVX-512 vectors). */
#define MMREC__SPMM_BLOCK 64
/* Parts of one product at most (the pool's own bound). */
#define MMREC__SPMM_MAX_PARTS 64

/* One CSR form (A's or its transpose's) and a product with it:
 * y[p] = (A x)[r_p] for the rows r_p = rows ? rows[p] : p, p < n, and
 * acc[p] += w y[p] when acc is non-NULL. The parts split the rows so each
 * holds about the same number of stored entries: a row's sums do not
 * depend on the split, so neither do the results. */
typedef struct mmrec__spmm_job {
    const int64_t *row_ptr;
    const int32_t *col;
    const float *val;
    const float *x;
    size_t d;
    const int64_t *rows;
    float *y, *acc;
    float w;
    size_t bound[MMREC__SPMM_MAX_PARTS + 1];
} mmrec__spmm_job;

/* Columns [c0, c0 + W) of the rows p in [lo, hi). A row's sums stay in
 * registers across its entries (W <= MMREC__SPMM_BLOCK); with W a constant
 * at the call, each clone unrolls and vectorizes the block. The sums are
 * formed in entry order, as a plain loop would. */
static inline __attribute__((always_inline)) void
mmrec__spmm_block(const mmrec__spmm_job *job, size_t c0, size_t W, size_t lo, size_t hi) {
    const int64_t *row_ptr = job->row_ptr, *rows = job->rows;
    const int32_t *col = job->col;
    const float *val = job->val, *restrict x = job->x;
    float *restrict y = job->y, *restrict acc = job->acc;
    size_t d = job->d;
    /* without a row list the rows are consecutive: prefetch across them */
    int64_t end = rows ? 0 : row_ptr[hi];
    for (size_t p = lo; p < hi; p++) {
        size_t r = rows ? (size_t)rows[p] : p;
        int64_t stop = rows ? row_ptr[r + 1] : end;
        float s[MMREC__SPMM_BLOCK];
        for (size_t c = 0; c < W; c++) s[c] = 0.0f;
        for (int64_t j = row_ptr[r]; j < row_ptr[r + 1]; j++) {
            /* the gathers are latency-bound: fetch rows a few entries ahead */
            if (j + MMREC__SPMM_AHEAD < stop) {
                const char *next = (const char *)(x + (size_t)col[j + MMREC__SPMM_AHEAD] * d + c0);
                for (size_t off = 0; off < W * sizeof(float); off += 64)
                    __builtin_prefetch(next + off);
            }
            const float *xr = x + (size_t)col[j] * d + c0;
            float v = val[j];
            for (size_t c = 0; c < W; c++) s[c] += v * xr[c];
        }
        if (y) {
            float *yr = y + p * d + c0;
            for (size_t c = 0; c < W; c++) yr[c] = s[c];
        }
        if (acc) {
            float *ar = acc + p * d + c0;
            for (size_t c = 0; c < W; c++) ar[c] += job->w * s[c];
        }
    }
}

MMREC__SIMD_CLONES
static void mmrec__spmm_range(const mmrec__spmm_job *job, size_t lo, size_t hi) {
    size_t c0 = 0, d = job->d;
    for (; c0 + MMREC__SPMM_BLOCK <= d; c0 += MMREC__SPMM_BLOCK)
        mmrec__spmm_block(job, c0, MMREC__SPMM_BLOCK, lo, hi);
    if (d - c0 >= 32) {
        mmrec__spmm_block(job, c0, 32, lo, hi);
        c0 += 32;
    }
    if (d - c0 >= 16) {
        mmrec__spmm_block(job, c0, 16, lo, hi);
        c0 += 16;
    }
    if (c0 < d) mmrec__spmm_block(job, c0, d - c0, lo, hi);
}

static void mmrec__spmm_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__spmm_job *job = ctx;
    mmrec__spmm_range(job, job->bound[lo], job->bound[hi]);
}

/* Splits the n rows into parts of about equal stored entries and runs them
 * over the pool. */
static void mmrec__spmm_run(mmrec__spmm_job *job, size_t n) {
    const int64_t *rp = job->row_ptr, *rows = job->rows;
    int64_t total = 0;
    if (rows)
        for (size_t p = 0; p < n; p++) total += rp[rows[p] + 1] - rp[rows[p]];
    else
        total = rp[n] - rp[0];
    size_t parts = (size_t)mmrec__parallel_parts((size_t)total, MMREC__SPMM_MIN_WORK);
    if (parts > MMREC__SPMM_MAX_PARTS) parts = MMREC__SPMM_MAX_PARTS;
    job->bound[0] = 0;
    job->bound[parts] = n;
    if (rows) { /* one walk: part k ends where the entries pass k / parts */
        size_t k = 1;
        int64_t seen = 0;
        for (size_t p = 0; p < n && k < parts; p++) {
            seen += rp[rows[p] + 1] - rp[rows[p]];
            while (k < parts && seen * (int64_t)parts >= total * (int64_t)k) job->bound[k++] = p + 1;
        }
        while (k < parts) job->bound[k++] = n;
    } else { /* the first row starting at or past k / parts of the entries */
        for (size_t k = 1; k < parts; k++) {
            int64_t target = rp[0] + total * (int64_t)k / (int64_t)parts;
            size_t lo = job->bound[k - 1], hi = n;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (rp[mid] < target) lo = mid + 1;
                else hi = mid;
            }
            job->bound[k] = lo;
        }
    }
    mmrec__parallel_for(parts, (int)parts, mmrec__spmm_chunk, job);
}

/* The product with one CSR form over all rows. */
static void mmrec__spmm_csr(const mmrec_graph *g, const int64_t *row_ptr, const int32_t *col,
                            const float *val, const float *x, size_t d, float *y, float w,
                            float *acc) {
    mmrec__spmm_job job = {row_ptr, col, val, x, d, NULL, y, acc, w, {0}};
    mmrec__spmm_run(&job, (size_t)g->num_nodes);
}

void mmrec__graph_spmm(const mmrec_graph *g, const float *x, size_t d, float *y, float w,
                       float *acc) {
    mmrec__spmm_csr(g, g->row_ptr, g->col, g->val, x, d, y, w, acc);
}

void mmrec__graph_spmm_t(const mmrec_graph *g, const float *x, size_t d, float *y, float w,
                         float *acc) {
    if (g->t_row_ptr == NULL) /* symmetric: A^T = A */
        mmrec__spmm_csr(g, g->row_ptr, g->col, g->val, x, d, y, w, acc);
    else
        mmrec__spmm_csr(g, g->t_row_ptr, g->t_col, g->t_val, x, d, y, w, acc);
}

void mmrec__graph_spmm_rows(const mmrec_graph *g, const float *x, size_t d, const int64_t *rows,
                            size_t n, float *y) {
    mmrec__spmm_job job = {g->row_ptr, g->col, g->val, x, d, rows, y, NULL, 0.0f, {0}};
    mmrec__spmm_run(&job, n);
}

mmrec_status mmrec__graph_x_check(const char *func, const mmrec_graph *g, const mmrec_tensor *x,
                                  const char *name) {
    if (x->ndim != 2 || x->shape[0] != g->num_nodes) {
        char s[64];
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "%s is %s, expected [%lld, d] (the graph's nodes)", name,
                                mmrec__shape_str(x, s, sizeof s), (long long)g->num_nodes);
    }
    return MMREC_OK;
}

/* ---- one hop ---- */

typedef struct mmrec__prop_ctx {
    const mmrec_graph *g;
} mmrec__prop_ctx;

static mmrec_status mmrec__prop_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec_graph *g = ((const mmrec__prop_ctx *)node->ctx)->g;
    mmrec_tensor *x = node->in[0];
    size_t d = (size_t)x->shape[1];
    float *dx = mmrec__grad(tape, x);
    float *tmp = mmrec__tape_alloc(tape, x->numel * sizeof(float));
    if (dx == NULL || tmp == NULL) return MMREC_ENOMEM;
    mmrec__graph_spmm_t(g, node->out->grad, d, tmp, 1.0f, dx); /* dx += A^T dy */
    return MMREC_OK;
}

mmrec_status mmrec_graph_propagate(mmrec_tape *tape, const mmrec_graph *graph, mmrec_tensor *x,
                                   mmrec_tensor **out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_GRAPH(graph);
    MMREC_CHECK_TENSOR_ON(x, tape);
    MMREC_CHECK_NULL(out);
    MMREC_FORWARD_IF(mmrec__graph_x_check(__func__, graph, x, "x"));
    mmrec_tensor *y;
    const mmrec__prop_ctx c = {graph};
    const mmrec__op op = {__func__, "graph_propagate", mmrec__prop_backward, &x, 1, 0, &c,
                          sizeof c};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x->ndim, x->shape, false, &y, NULL, &mark));
    mmrec__graph_spmm(graph, x->data, (size_t)x->shape[1], y->data, 0.0f, NULL);
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

/* ---- LightGCN: out = sum_k w_k A^k E0 ---- */

mmrec_status mmrec__lightgcn_weights(const char *func, int num_layers, const float *weights,
                                     float *w) {
    if (num_layers < 0 || num_layers > MMREC__LIGHTGCN_MAX_LAYERS)
        return mmrec__set_error(MMREC_EINVAL, func, "num_layers is %d, expected 0..%d",
                                num_layers, MMREC__LIGHTGCN_MAX_LAYERS);
    for (int k = 0; k <= num_layers; k++) {
        w[k] = weights ? weights[k] : 1.0f / (float)(num_layers + 1);
        if (!isfinite(w[k]))
            return mmrec__set_error(MMREC_EINVAL, func, "weights[%d] is %g, must be finite", k,
                                    (double)w[k]);
    }
    return MMREC_OK;
}

typedef struct mmrec__lgcn_ctx {
    const mmrec_graph *g;
    int layers;
    float w[MMREC__LIGHTGCN_MAX_LAYERS + 1];
} mmrec__lgcn_ctx;

/* dE0 = sum_k w_k (A^T)^k g = w_0 g + A^T (w_1 g + A^T (w_2 g + ...)) (Horner). */
static mmrec_status mmrec__lgcn_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__lgcn_ctx *c = node->ctx;
    mmrec_tensor *ego = node->in[0];
    size_t n = ego->numel, d = (size_t)ego->shape[1];
    const float *gy = node->out->grad;
    float *dx = mmrec__grad(tape, ego);
    float *h = mmrec__tape_alloc(tape, 2 * n * sizeof(float));
    if (dx == NULL || h == NULL) return MMREC_ENOMEM;
    float *t = h + n;
    int K = c->layers;
    for (size_t i = 0; i < n; i++) h[i] = c->w[K] * gy[i];
    for (int k = K - 1; k >= 0; k--) {
        mmrec__graph_spmm_t(c->g, h, d, t, 0.0f, NULL);
        for (size_t i = 0; i < n; i++) h[i] = c->w[k] * gy[i] + t[i];
    }
    for (size_t i = 0; i < n; i++) dx[i] += h[i];
    return MMREC_OK;
}

mmrec_status mmrec_lightgcn(mmrec_tape *tape, const mmrec_graph *graph, mmrec_tensor *ego,
                            int num_layers, const float *weights, mmrec_tensor **out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_GRAPH(graph);
    MMREC_CHECK_TENSOR_ON(ego, tape);
    MMREC_CHECK_NULL(out);
    MMREC_FORWARD_IF(mmrec__graph_x_check(__func__, graph, ego, "ego"));
    float w[MMREC__LIGHTGCN_MAX_LAYERS + 1];
    MMREC_FORWARD_IF(mmrec__lightgcn_weights(__func__, num_layers, weights, w));
    size_t n = ego->numel, d = (size_t)ego->shape[1];
    mmrec__lgcn_ctx c = {graph, num_layers, {0}};
    memcpy(c.w, w, (size_t)(num_layers + 1) * sizeof *w);
    mmrec_tensor *y;
    mmrec__tape_mark mark;
    const mmrec__op op = {__func__, "lightgcn", mmrec__lgcn_backward, &ego, 1, 0, &c, sizeof c};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, ego->ndim, ego->shape, false, &y, NULL, &mark));
    float *buf = num_layers > 0 ? mmrec__tape_alloc(tape, 2 * n * sizeof(float)) : NULL;
    if (num_layers > 0 && buf == NULL) return mmrec__tape_oom(tape, mark, __func__);
    for (size_t i = 0; i < n; i++) y->data[i] = w[0] * ego->data[i];
    const float *cur = ego->data;
    for (int k = 1; k <= num_layers; k++) {
        float *next = buf + (size_t)(k & 1) * n;
        mmrec__graph_spmm(graph, cur, d, next, w[k], y->data);
        cur = next;
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
