/* Building the normalized bipartite adjacency (LightGCN's A_hat) as CSR.
 *
 * Counting sorts throughout, O(n + num_users + num_items): the pairs are
 * bucketed by item and then stably by user, so each user's items come out
 * sorted and repeats adjacent; the item rows are filled by walking the user
 * rows in order, so they come out sorted too. Degrees are then the row
 * lengths and every weight is 1 / sqrt(deg_u deg_i). */
#include "graph_internal.h"
#include "../data/data_internal.h"

#include <math.h>
#include <string.h>

mmrec_status mmrec__graph_check(const char *func, const char *what, const mmrec_graph *graph) {
    if (graph == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument '%s' is NULL", what);
    if (graph->magic != MMREC__GRAPH_MAGIC)
        return mmrec__set_error(MMREC_EINVAL, func, "argument '%s' is not a graph", what);
    return MMREC_OK;
}

void mmrec_graph_destroy(mmrec_graph *graph) {
    if (graph == NULL || graph->magic != MMREC__GRAPH_MAGIC) return;
    graph->magic = 0;
    mmrec__free(graph->row_ptr);
    mmrec__free(graph->col);
    mmrec__free(graph->val);
    mmrec__free(graph->t_row_ptr);
    mmrec__free(graph->t_col);
    mmrec__free(graph->t_val);
    mmrec__free(graph);
}

mmrec_status mmrec_graph_create_bipartite(const int64_t *users, const int64_t *items, size_t n,
                                          int64_t num_users, int64_t num_items,
                                          mmrec_graph **out) {
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(n > 0 && (users == NULL || items == NULL), MMREC_EINVAL,
                  "argument '%s' is NULL", users == NULL ? "users" : "items");
    MMREC_FAIL_IF(num_users < 1 || num_items < 1 || num_users >= INT32_MAX - num_items,
                  MMREC_EINVAL,
                  "num_users is %lld and num_items %lld: each must be >= 1, their sum below "
                  "2^31 - 1",
                  (long long)num_users, (long long)num_items);
    MMREC_FAIL_IF(n >= (size_t)INT32_MAX, MMREC_EINVAL, "n is %zu, must be below 2^31 - 1", n);
    size_t U = (size_t)num_users, I = (size_t)num_items, N = U + I, m;
    mmrec_graph *g = mmrec__calloc(1, sizeof *g);
    MMREC_FAIL_IF(g == NULL, MMREC_ENOMEM, "out of memory for a graph of %zu interactions", n);
    /* user rows first; col's room for 2 n entries takes the item rows too */
    mmrec_status s = mmrec__group_by_user(users, items, n, U, I, (int32_t)U, I, "", &g->row_ptr,
                                          &g->col, &m, __func__);
    g->val = s == MMREC_OK ? mmrec__alloc((m > 0 ? 2 * m : 1) * sizeof *g->val) : NULL;
    if (s == MMREC_OK && g->val == NULL)
        s = mmrec__set_error(MMREC_ENOMEM, __func__,
                             "out of memory for a graph of %zu interactions", n);
    if (s != MMREC_OK) {
        g->magic = MMREC__GRAPH_MAGIC;
        mmrec_graph_destroy(g);
        return s;
    }
    int64_t *rp = g->row_ptr;
    /* item rows: counts, offsets after the user block, then a fill that
     * walks users in increasing order (so each item row is sorted) */
    for (size_t i = 0; i <= I; i++) rp[U + i] = 0;
    for (size_t j = 0; j < m; j++) rp[(size_t)g->col[j] + 1]++; /* item node v counted at v+1 */
    rp[U] = (int64_t)m;
    for (size_t v = U; v < N; v++) rp[v + 1] += rp[v];
    for (size_t u = 0; u < U; u++) {
        /* rp[U] is item row U's cursor by now: the last user row ends at m */
        int64_t hi = u + 1 < U ? rp[u + 1] : (int64_t)m;
        for (int64_t j = rp[u]; j < hi; j++) g->col[rp[g->col[j]]++] = (int32_t)u;
    }
    for (size_t v = N; v > U; v--) rp[v] = rp[v - 1];
    rp[U] = (int64_t)m;
    /* weights 1 / sqrt(deg_r deg_c) */
    for (size_t r = 0; r < N; r++) {
        double dr = (double)(rp[r + 1] - rp[r]);
        for (int64_t j = rp[r]; j < rp[r + 1]; j++) {
            int32_t c = g->col[j];
            double dc = (double)(rp[c + 1] - rp[c]);
            g->val[j] = (float)(1.0 / sqrt(dr * dc));
        }
    }
    g->num_nodes = (int64_t)N;
    g->num_users = num_users;
    g->magic = MMREC__GRAPH_MAGIC;
    *out = g;
    return MMREC_OK;
}

mmrec_status mmrec_graph_info(const mmrec_graph *graph, int64_t *num_nodes, int64_t *num_users,
                              int64_t *nnz) {
    MMREC_CHECK_GRAPH(graph);
    if (num_nodes) *num_nodes = graph->num_nodes;
    if (num_users) *num_users = graph->num_users;
    if (nnz) *nnz = graph->row_ptr[graph->num_nodes];
    return MMREC_OK;
}
