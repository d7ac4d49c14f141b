/* Graphs for collaborative filtering: the normalized user-item adjacency
 * that LightGCN propagates over, its sparse-dense product as a
 * differentiable op, and K-layer LightGCN propagation with a layer mean as
 * one op.
 *
 * The bipartite graph has num_users + num_items nodes: user u is node u,
 * item i is node num_users + i. A = [[0, R], [R^T, 0]] with R the binary
 * interaction matrix (a pair given twice counts once), normalized
 * symmetrically: A_hat = D^-1/2 A D^-1/2, D the node degrees (a node without
 * edges gets an all-zero row). Stored as CSR, float32 values.
 *
 * Thread safety: a graph is immutable once built; any number of threads
 * may use it at once (each with its own tape). */
#ifndef MMREC_GRAPH_H
#define MMREC_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"
#include "mmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mmrec_graph mmrec_graph;

/* Builds the normalized bipartite adjacency of n interactions
 * (users[k], items[k]) in O(n + num_users + num_items) time (counting
 * sorts; each row's neighbours come out sorted).
 *   users, items (in) n ids each; borrowed for the call. May be NULL when
 *                n is 0.
 *   num_users, num_items (in) node counts, >= 1; every id must be below
 *                its count (users or items without interactions are
 *                allowed: isolated nodes). num_users + num_items must be
 *                below 2^31.
 *   out (out) new graph, owned by the caller (mmrec_graph_destroy).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, counts out of range),
 *         MMREC_ERANGE (an id negative or not below its count; the message
 *         names the first such index and id), MMREC_ENOMEM.
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_graph_create_bipartite(const int64_t *users, const int64_t *items,
                                                    size_t n, int64_t num_users,
                                                    int64_t num_items, mmrec_graph **out);

/* Frees a graph. It must not be in use: a tape that recorded an op on it
 * reads it until mmrec_tape_backward() returns, so destroy the graph after
 * the step's backward (or mmrec_tape_reset()). NULL is a no-op. Since 0.1. */
MMREC_API void mmrec_graph_destroy(mmrec_graph *graph);

/* Node count (num_users + num_items), user count and stored entries (twice
 * the distinct interactions). Any out pointer may be NULL.
 * Returns MMREC_OK or MMREC_EINVAL (NULL graph).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_graph_info(const mmrec_graph *graph, int64_t *num_nodes,
                                        int64_t *num_users, int64_t *nnz);

/* y = A_hat x, one propagation hop. Differentiable in x (dx += A_hat^T dy;
 * A_hat is symmetric).
 *   x   (in)  [num_nodes, d] tensor on `tape` or model parameter.
 *   out (out) [num_nodes, d], owned by `tape`.
 * Returns MMREC_OK, MMREC_EINVAL (NULL), MMREC_ESHAPE (x not
 *         [num_nodes, d]), MMREC_ENOMEM.
 * Thread safety: per-tape; rows are split over the library's threads.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_graph_propagate(mmrec_tape *tape, const mmrec_graph *graph,
                                             mmrec_tensor *x, mmrec_tensor **out);

/* LightGCN propagation as one differentiable op:
 *   out = sum_{k=0..K} w_k E_k,  E_0 = ego,  E_{k+1} = A_hat E_k.
 *   ego        (in)  [num_nodes, d] ego embeddings (users then items),
 *                    usually a model parameter.
 *   num_layers (in)  K, 0 .. 64.
 *   weights    (in)  K + 1 layer weights, finite; borrowed for the call.
 *                    NULL: the layer mean, w_k = 1 / (K + 1).
 *   out        (out) [num_nodes, d], owned by `tape`.
 * Backward costs K sparse products, like the forward.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, K out of range, a weight not
 *         finite), MMREC_ESHAPE, MMREC_ENOMEM.
 * Thread safety: as mmrec_graph_propagate(). Since 0.1. */
MMREC_API mmrec_status mmrec_lightgcn(mmrec_tape *tape, const mmrec_graph *graph,
                                      mmrec_tensor *ego, int num_layers, const float *weights,
                                      mmrec_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_GRAPH_H */
