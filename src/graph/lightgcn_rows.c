/* LightGCN's output at a batch's rows only, exactly as mmrec_lightgcn's rows:
 * a training loss reads the propagated embeddings only at the batch's users
 * and items, and its gradient enters only there. So the last forward hop is
 * computed at those rows alone, and the first backward hop (A applied to a
 * gradient that is zero outside those rows) scatters from them alone. For
 * K layers that is K - 1 full sparse products each way instead of K. */
#include "graph_internal.h"
#include "../autograd/autograd_internal.h"
#include "../ops/ops_internal.h"

#include <math.h>
#include <string.h>

typedef struct mmrec__lgrows_ctx {
    const mmrec_graph *g;
    int layers;
    float w[MMREC__LIGHTGCN_MAX_LAYERS + 1];
    int64_t *rows; /* copied into the arena */
    size_t n_rows;
    /* the distinct rows in increasing order and each node's place among
     * them (-1 for the others), as the forward pass built them */
    const int64_t *set;
    const int32_t *slot;
    size_t n_set;
} mmrec__lgrows_ctx;

/* The distinct rows in increasing order into set, each node's place in it
 * into slot (-1 for nodes not in it); returns their number. */
static size_t mmrec__row_set(const int64_t *rows, size_t n_rows, size_t nodes, int64_t *set,
                             int32_t *slot) {
    memset(slot, 0xff, nodes * sizeof *slot);
    for (size_t p = 0; p < n_rows; p++) slot[rows[p]] = 0;
    size_t n_set = 0;
    for (size_t v = 0; v < nodes; v++)
        if (slot[v] >= 0) {
            slot[v] = (int32_t)n_set;
            set[n_set++] = (int64_t)v;
        }
    return n_set;
}

/* out[p] += w * x[rows[p]]: gathers of scattered rows, latency-bound, split
 * over the pool by output rows (each row is written by one part). */
typedef struct mmrec__add_rows_job {
    float *out;
    const float *x;
    const int64_t *rows;
    size_t d;
    float w;
} mmrec__add_rows_job;

static void mmrec__add_rows_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__add_rows_job *j = ctx;
    (void)part;
    size_t d = j->d;
    for (size_t p = lo; p < hi; p++) {
        const float *xr = j->x + (size_t)j->rows[p] * d;
        float *o = j->out + p * d;
        for (size_t c = 0; c < d; c++) o[c] += j->w * xr[c];
    }
}

/* Rows per part of the pool at least. */
#define MMREC__ADD_ROWS_GRAIN 1024

static void mmrec__add_rows(float *out, const float *x, const int64_t *rows, size_t n, size_t d,
                            float w) {
    mmrec__add_rows_job j = {out, x, rows, d, w};
    mmrec__parallel_for(n, mmrec__parallel_parts(n, MMREC__ADD_ROWS_GRAIN), mmrec__add_rows_chunk,
                        &j);
}

/* t[rows[p]] += w * g[p] */
static void mmrec__scatter_rows(float *t, const float *g, const int64_t *rows, size_t n, size_t d,
                                float w) {
    for (size_t p = 0; p < n; p++) {
        float *tr = t + (size_t)rows[p] * d;
        const float *gp = g + p * d;
        for (size_t c = 0; c < d; c++) tr[c] += w * gp[c];
    }
}

/* ---- backward: t = A^T h for h zero outside the distinct rows `set` ---- */

typedef struct mmrec__scatter_job {
    const mmrec_graph *g;
    const int64_t *set; /* distinct rows */
    size_t n_set, d;
    const float *h; /* [n_set, d], row q belongs to node set[q] */
    float *t;       /* [num_nodes, d]: each part zeroes its own nodes first */
    size_t parts;
} mmrec__scatter_job;

/* t = A^T h (the backward's product), h given at the distinct rows `set`:
 * t[c] = sum_r A[r, c] h[r], a scatter along the rows r of A. Part `part`
 * owns the destination nodes [lo, hi): every part walks all entries and
 * adds only into its own nodes, in the same order whatever the thread
 * count, so the sums have the same bits. */
MMREC__SIMD_CLONES
static void mmrec__scatter_part(const mmrec_graph *g, const int64_t *set, size_t n_set, size_t d,
                                const float *restrict h, float *restrict t, int64_t lo,
                                int64_t hi) {
    for (size_t q = 0; q < n_set; q++) {
        int64_t r = set[q];
        const float *hr = h + q * d;
        for (int64_t j = g->row_ptr[r]; j < g->row_ptr[r + 1]; j++) {
            int64_t c = g->col[j];
            if (c < lo || c >= hi) continue;
            float v = g->val[j], *tc = t + (size_t)c * d;
            for (size_t k = 0; k < d; k++) tc[k] += v * hr[k];
        }
    }
}

static void mmrec__scatter_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__scatter_job *j = ctx;
    (void)part;
    int64_t n = j->g->num_nodes;
    for (size_t p = lo; p < hi; p++) {
        int64_t first = n * (int64_t)p / (int64_t)j->parts,
                end = n * (int64_t)(p + 1) / (int64_t)j->parts;
        memset(j->t + (size_t)first * j->d, 0, (size_t)(end - first) * j->d * sizeof *j->t);
        mmrec__scatter_part(j->g, j->set, j->n_set, j->d, j->h, j->t, first, end);
    }
}

/* dE0 = sum_k w_k (A^T)^k S g, S scattering the rows' gradients onto nodes;
 * Horner from the innermost term, whose product is a scatter. */
static mmrec_status mmrec__lgrows_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__lgrows_ctx *c = node->ctx;
    const mmrec_graph *g = c->g;
    mmrec_tensor *ego = node->in[0];
    size_t n = ego->numel, d = (size_t)ego->shape[1];
    const float *gy = node->out->grad;
    const int64_t *rows = c->rows;
    int K = c->layers;
    float *dx = mmrec__grad(tape, ego);
    if (dx == NULL) return MMREC_ENOMEM;
    if (K == 0) {
        mmrec__scatter_rows(dx, gy, rows, c->n_rows, d, c->w[0]);
        return MMREC_OK;
    }
    const int64_t *set = c->set;
    const int32_t *slot = c->slot;
    size_t n_set = c->n_set;
    float *h = mmrec__tape_alloc(tape, n_set * d * sizeof *h);
    float *buf = mmrec__tape_alloc(tape, 2 * n * sizeof *buf);
    if (h == NULL || buf == NULL) return MMREC_ENOMEM;
    /* h = w_K S g, compacted to the distinct rows */
    memset(h, 0, n_set * d * sizeof *h);
    for (size_t p = 0; p < c->n_rows; p++) {
        float *hr = h + (size_t)slot[rows[p]] * d;
        const float *gp = gy + p * d;
        for (size_t k = 0; k < d; k++) hr[k] += c->w[K] * gp[k];
    }
    float *t = buf;
    int parts = mmrec__parallel_parts((size_t)g->num_nodes, 1);
    mmrec__scatter_job job = {g, set, n_set, d, h, t, (size_t)parts};
    mmrec__parallel_for((size_t)parts, parts, mmrec__scatter_chunk, &job);
    for (int k = K - 1;; k--) {
        mmrec__scatter_rows(t, gy, rows, c->n_rows, d, c->w[k]); /* + w_k S g */
        if (k == 0) break;
        if (k == 1) { /* the last product adds straight into dx, then w_0 S g */
            mmrec__graph_spmm_t(g, t, d, NULL, 1.0f, dx);
            mmrec__scatter_rows(dx, gy, rows, c->n_rows, d, c->w[0]);
            return MMREC_OK;
        }
        float *u = t == buf ? buf + n : buf;
        mmrec__graph_spmm_t(g, t, d, u, 0.0f, NULL);
        t = u;
    }
    mmrec__add_into(dx, t, n); /* K = 1: the scatter was the only product */
    return MMREC_OK;
}

mmrec_status mmrec_lightgcn_rows(mmrec_tape *tape, const mmrec_graph *graph, mmrec_tensor *ego,
                                 int num_layers, const float *weights, const int64_t *rows,
                                 size_t n_rows, mmrec_tensor **out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_GRAPH(graph);
    MMREC_CHECK_TENSOR_ON(ego, tape);
    MMREC_CHECK_NULL(rows);
    MMREC_CHECK_NULL(out);
    MMREC_FORWARD_IF(mmrec__graph_x_check(__func__, graph, ego, "ego"));
    float w[MMREC__LIGHTGCN_MAX_LAYERS + 1];
    MMREC_FORWARD_IF(mmrec__lightgcn_weights(__func__, num_layers, weights, w));
    MMREC_FAIL_IF(n_rows < 1 || n_rows > (size_t)INT32_MAX, MMREC_EINVAL,
                  "n_rows is %zu, expected 1 .. 2^31 - 1", n_rows);
    for (size_t p = 0; p < n_rows; p++)
        MMREC_FAIL_IF(rows[p] < 0 || rows[p] >= graph->num_nodes, MMREC_ERANGE,
                      "rows[%zu] is %lld, outside [0, %lld)", p, (long long)rows[p],
                      (long long)graph->num_nodes);
    size_t n = ego->numel, d = (size_t)ego->shape[1], nodes = (size_t)graph->num_nodes;
    int64_t shape[2] = {(int64_t)n_rows, (int64_t)d};
    mmrec_tensor *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__op op = {__func__, "lightgcn_rows", mmrec__lgrows_backward, &ego, 1, 0, NULL,
                          sizeof(mmrec__lgrows_ctx)};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 2, shape, true, &y, &node, &mark));
    float *buf = NULL, *hop = NULL;
    int64_t *set = NULL, *copy = NULL;
    int32_t *slot = NULL;
    if (num_layers > 1) buf = mmrec__tape_alloc(tape, 2 * n * sizeof *buf);
    if (num_layers > 0) {
        hop = mmrec__tape_alloc(tape, n_rows * d * sizeof *hop);
        set = mmrec__tape_alloc(tape, n_rows * sizeof *set);
        slot = mmrec__tape_alloc(tape, nodes * sizeof *slot);
    }
    if (node) copy = mmrec__tape_copy(tape, rows, n_rows * sizeof *rows);
    if ((num_layers > 1 && buf == NULL) ||
        (num_layers > 0 && (hop == NULL || set == NULL || slot == NULL)) ||
        (node && copy == NULL))
        return mmrec__tape_oom(tape, mark, __func__);
    /* the last hop is computed once per distinct row, in node order */
    size_t n_set = num_layers > 0 ? mmrec__row_set(rows, n_rows, nodes, set, slot) : 0;
    if (node) {
        mmrec__lgrows_ctx *c = node->ctx;
        c->g = graph;
        c->layers = num_layers;
        memcpy(c->w, w, (size_t)(num_layers + 1) * sizeof *w);
        c->rows = copy;
        c->n_rows = n_rows;
        c->set = set;
        c->slot = slot;
        c->n_set = n_set;
    }
    /* layers 0 .. K-1 in full, read at the rows; layer K at the rows only */
    mmrec__add_rows(y->data, ego->data, rows, n_rows, d, w[0]);
    const float *cur = ego->data;
    for (int k = 1; k < num_layers; k++) {
        float *next = buf + (size_t)(k & 1) * n;
        mmrec__graph_spmm(graph, cur, d, next, 0.0f, NULL);
        mmrec__add_rows(y->data, next, rows, n_rows, d, w[k]);
        cur = next;
    }
    if (num_layers > 0) {
        mmrec__graph_spmm_rows(graph, cur, d, set, n_set, hop);
        for (size_t p = 0; p < n_rows; p++) {
            const float *hr = hop + (size_t)slot[rows[p]] * d;
            float *o = y->data + p * d;
            for (size_t c = 0; c < d; c++) o[c] += w[num_layers] * hr[c];
        }
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
