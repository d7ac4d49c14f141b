/* Internal graph: the CSR form of a normalized adjacency and the sparse-dense
 * products every graph op runs on. */
#ifndef MMREC_GRAPH_INTERNAL_H
#define MMREC_GRAPH_INTERNAL_H

#include "mmrec/graph.h"
#include "../core/core_internal.h"

#define MMREC__GRAPH_MAGIC 0x6d6d4752u /* "mmGR" */

struct mmrec_graph {
    uint32_t magic;
    int64_t num_nodes, num_users;
    int64_t *row_ptr; /* num_nodes + 1 */
    int32_t *col;     /* row_ptr[num_nodes] column indices, sorted within a row */
    float *val;       /* the normalized weights */
    /* A^T in the same form, for the backward products, when A is not
     * symmetric (the kNN graph); all NULL when it is (the bipartite graph). */
    int64_t *t_row_ptr;
    int32_t *t_col;
    float *t_val;
};

#define MMREC__LIGHTGCN_MAX_LAYERS 64

/* Validates a graph handle on behalf of `func`; `what` names the argument
 * as the public header does (the macro: the parameter's C name). */
mmrec_status mmrec__graph_check(const char *func, const char *what, const mmrec_graph *graph)
    MMREC__WUR;
#define MMREC_CHECK_GRAPH(g) MMREC_FORWARD_IF(mmrec__graph_check(__func__, #g, (g)))

/* mmrec_graph_aggregate_users on behalf of `func` (also the AlignRec name
 * of the same operation). */
mmrec_status mmrec__graph_aggregate_users(const char *func, mmrec_tape *tape,
                                          const mmrec_graph *graph, mmrec_tensor *items,
                                          mmrec_tensor **out) MMREC__WUR;

/* ESHAPE on behalf of `func` unless x (called `name`) is [num_nodes, d]. */
mmrec_status mmrec__graph_x_check(const char *func, const mmrec_graph *g, const mmrec_tensor *x,
                                  const char *name) MMREC__WUR;
/* The K + 1 layer weights of a LightGCN op into w (the layer mean when
 * weights is NULL); EINVAL on behalf of `func` for K out of range or a
 * weight not finite. */
mmrec_status mmrec__lightgcn_weights(const char *func, int num_layers, const float *weights,
                                     float *w) MMREC__WUR;

/* y = A x over [num_nodes, d] row-major, y overwritten; with acc non-NULL
 * also acc += w * y in the same pass (a LightGCN layer). Rows are split
 * over the pool. */
void mmrec__graph_spmm(const mmrec_graph *g, const float *x, size_t d, float *y, float w,
                       float *acc);
/* The same with A^T (A itself when A is symmetric): the backward of
 * mmrec__graph_spmm. */
void mmrec__graph_spmm_t(const mmrec_graph *g, const float *x, size_t d, float *y, float w,
                         float *acc);
/* y[p] = (A x)[rows[p]] for p < n, y [n, d] overwritten; rows valid node
 * ids. The same sums, bit for bit, as mmrec__graph_spmm's at those rows. */
void mmrec__graph_spmm_rows(const mmrec_graph *g, const float *x, size_t d, const int64_t *rows,
                            size_t n, float *y);

#endif
