/* Internal graph: the CSR form of a normalized adjacency and the sparse-dense
 * product every graph op runs on. */
#ifndef MMREC_GRAPH_INTERNAL_H
#define MMREC_GRAPH_INTERNAL_H

#include "mmrec/graph.h"
#include "../core/core_internal.h"

struct mmrec_graph {
    uint32_t magic;
    int64_t num_nodes, num_users;
    int64_t *row_ptr; /* num_nodes + 1 */
    int32_t *col;     /* row_ptr[num_nodes] column indices, sorted within a row */
    float *val;       /* the normalized weights */
};

/* Validates a graph handle on behalf of `func`. */
mmrec_status mmrec__graph_check(const char *func, const mmrec_graph *graph) MMREC__WUR;

/* y = A x over [num_nodes, d] row-major, y overwritten; with acc non-NULL
 * also acc += w * y in the same pass (a LightGCN layer). Rows are split
 * over the pool. */
void mmrec__graph_spmm(const mmrec_graph *g, const float *x, size_t d, float *y, float w,
                       float *acc);

#endif
