/* mmrec_graph_aggregate_users: the user-item block of a bipartite graph's
 * normalized adjacency applied to item rows (AlignRec's user view of its
 * item views, and any model that builds users from their items):
 * out[u] = sum_j A_hat[u, U + i_j] items[i_j] over user u's CSR row (its
 * columns are item nodes U + i). The backward is the
 * item-user block, R_hat^T, which the symmetric CSR stores as the item
 * rows: d_items[i] += sum_j A_hat[U + i, u_j] d_out[u_j]. Each output row is
 * one thread's, summed in CSR order: the bits do not depend on the thread
 * count. Reference: AlignRec's torch.sparse.mm(self.R, mm_item_embeds)
 * (sjtulyf123/AlignRec_CIKM24 src/models/alignrec.py, get_adj_mat: R is
 * norm_adj[:n_users, n_users:]); tests/golden/make_golden.py::write_alignrec. */
#include "graph_internal.h"
#include "../autograd/autograd_internal.h"

typedef struct mmrec__agg_job {
    const mmrec_graph *g;
    const float *src; /* [num_cols_block, d] rows indexed by col - offset */
    float *dst;       /* [rows, d], row r is graph row r + row_base */
    size_t d;
    int64_t row_base, col_offset;
    bool accumulate;
} mmrec__agg_job;

static void mmrec__agg_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__agg_job *j = ctx;
    const mmrec_graph *g = j->g;
    size_t d = j->d;
    for (size_t r = lo; r < hi; r++) {
        float *y = j->dst + r * d;
        if (!j->accumulate)
            for (size_t c = 0; c < d; c++) y[c] = 0.0f;
        int64_t row = (int64_t)r + j->row_base;
        for (int64_t e = g->row_ptr[row]; e < g->row_ptr[row + 1]; e++) {
            const float *x = j->src + (size_t)(g->col[e] - j->col_offset) * d;
            float v = g->val[e];
            for (size_t c = 0; c < d; c++) y[c] += v * x[c];
        }
    }
}

/* rows graph rows from row_base, reading src rows at col - col_offset. */
static void mmrec__agg_run(const mmrec_graph *g, const float *src, float *dst, size_t d,
                           int64_t row_base, size_t rows, int64_t col_offset, bool accumulate) {
    mmrec__agg_job job = {g, src, dst, d, row_base, col_offset, accumulate};
    int64_t nnz = g->row_ptr[row_base + (int64_t)rows] - g->row_ptr[row_base];
    size_t per_row = ((size_t)nnz / (rows ? rows : 1) + 1) * d;
    mmrec__parallel_for(rows, mmrec__parallel_parts(rows, mmrec__grain(per_row, 16384)),
                        mmrec__agg_chunk, &job);
}

static mmrec_status mmrec__agg_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec_graph *g = *(const mmrec_graph *const *)node->ctx;
    mmrec_tensor *items = node->in[0];
    float *dx = mmrec__grad(tape, items);
    if (dx == NULL) return MMREC_ENOMEM;
    int64_t users = g->num_users;
    mmrec__agg_run(g, node->out->grad, dx, (size_t)items->shape[1], users,
                   (size_t)(g->num_nodes - users), 0, true);
    return MMREC_OK;
}

mmrec_status mmrec__graph_aggregate_users(const char *func, mmrec_tape *tape,
                                          const mmrec_graph *graph, mmrec_tensor *items,
                                          mmrec_tensor **out) {
    MMREC_FORWARD_IF(mmrec__tape_check(func, tape));
    MMREC_FORWARD_IF(mmrec__graph_check(func, "graph", graph));
    MMREC_FORWARD_IF(mmrec__tensor_check_on(func, "items", items, tape));
    MMREC_CHECK_NULL_FOR(func, out);
    int64_t users = graph->num_users, n_items = graph->num_nodes - graph->num_users;
    MMREC_FAIL_IF_FOR(func, users < 1 || n_items < 1, MMREC_EINVAL,
                      "graph has %lld users and %lld items: it must be a bipartite user-item "
                      "graph",
                      (long long)users, (long long)n_items);
    char s[64];
    MMREC_FAIL_IF_FOR(func, items->ndim != 2 || items->shape[0] != n_items, MMREC_ESHAPE,
                      "items is %s, expected [%lld, d] (the graph's items)",
                      mmrec__shape_str(items, s, sizeof s), (long long)n_items);
    int64_t shape[2] = {users, items->shape[1]};
    mmrec_tensor *y;
    const mmrec__op op = {func, "graph_aggregate_users", mmrec__agg_backward, &items, 1, 0,
                          &graph, sizeof graph};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 2, shape, false, &y, NULL, &mark));
    mmrec__agg_run(graph, items->data, y->data, (size_t)items->shape[1], 0, (size_t)users, users,
                   false);
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

mmrec_status mmrec_graph_aggregate_users(mmrec_tape *tape, const mmrec_graph *graph,
                                         mmrec_tensor *items, mmrec_tensor **out) {
    return mmrec__graph_aggregate_users(__func__, tape, graph, items, out);
}
