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
 * The item-item kNN graph (AlignRec's content view,
 * mmrec_graph_create_knn()) has one node per item and no users; its A_hat
 * is not symmetric, and the graph keeps its transpose for the gradients.
 *
 * Thread safety: a graph is immutable once built; any number of threads
 * may use it at once (each with its own tape). */
#ifndef MMREC_GRAPH_H
#define MMREC_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/* Options of mmrec_graph_create_knn(); fill with mmrec_knn_config_init().
 * Fields are only appended; a zero new field keeps the old behaviour. */
typedef struct mmrec_knn_config {
    size_t struct_size;
    int k;        /* neighbours kept per item, itself included; default 10 */
    int binary;   /* 0 (default): similarity values as edge weights; 1: weight 1 */
} mmrec_knn_config;

/* Fills `cfg` (`size` bytes, sizeof *cfg) with the defaults: k 10,
 * binary 0. Returns MMREC_OK or MMREC_EINVAL (NULL, size below the first
 * release's). Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_knn_config_init_sized(mmrec_knn_config *cfg, size_t size);
#define mmrec_knn_config_init(cfg) mmrec_knn_config_init_sized((cfg), sizeof *(cfg))

/* Builds AlignRec's item-item kNN content graph, as the MMRec / AlignRec
 * code does: S = cosine similarity of the rows of `features` (each row
 * divided by max(|row|, 1e-12), so a zero row has similarity 0 to
 * everything); row i keeps the k largest S[i, j] (ties go to the lower id;
 * i itself is normally the first), with weight w_ij = S[i, j] (cfg->binary:
 * 1); deg_i = sum_j w_ij over row i, and A_hat[i, j] = w_ij /
 * sqrt(deg_i deg_j), 0 when either degree is <= 0. Not symmetric (j among
 * i's neighbours does not put i among j's): mmrec_graph_propagate() and
 * mmrec_lightgcn() take their gradients through the transpose. The graph
 * has num_items nodes, num_users 0 and num_items * k entries.
 * S is never formed: blocks of 256 rows are multiplied against tiles of
 * 1024 items (BLAS) and each row keeps a bounded heap, so beyond the graph
 * (16 bytes per entry) it needs per thread 256 * (dim + 1024 + 2k) floats;
 * time is O(num_items^2 dim), split over the library's threads. The result
 * has the same bits on any number of threads.
 *   features  (in)  [num_items, dim] row-major, finite; borrowed for the call.
 *   num_items (in)  1 .. 2^31 - 2.
 *   dim       (in)  1 .. 2^20.
 *   cfg       (in)  options, borrowed for the call; NULL: the defaults.
 *   out       (out) new graph, owned by the caller (mmrec_graph_destroy).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a size out of range, cfg->k not in
 *         1 .. num_items, cfg->binary not 0 or 1, a bad cfg->struct_size),
 *         MMREC_ENUMERIC (a feature is NaN or infinite; the message names
 *         its row and column), MMREC_ENOMEM.
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_graph_create_knn(const float *features, int64_t num_items,
                                              int64_t dim, const mmrec_knn_config *cfg,
                                              mmrec_graph **out);

/* Frees a graph. It must not be in use: a tape that recorded an op on it
 * reads it until mmrec_tape_backward() returns, so destroy the graph after
 * the step's backward (or mmrec_tape_reset()). NULL is a no-op. Since 0.1. */
MMREC_API void mmrec_graph_destroy(mmrec_graph *graph);

/* Node count (num_users + num_items), user count and stored entries (twice
 * the distinct interactions). For a kNN graph: num_items, 0 and
 * num_items * k. Any out pointer may be NULL.
 * Returns MMREC_OK or MMREC_EINVAL (NULL graph).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_graph_info(const mmrec_graph *graph, int64_t *num_nodes,
                                        int64_t *num_users, int64_t *nnz);

/* y = A_hat x, one propagation hop. Differentiable in x (dx += A_hat^T dy;
 * the same product for the symmetric bipartite graph, the stored
 * transpose for a kNN graph).
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

/* mmrec_lightgcn's output at the given rows only:
 *   out[p] = (sum_{k=0..K} w_k A_hat^k ego)[rows[p]],  p < n_rows,
 * the same maths as mmrec_lightgcn() followed by mmrec_gather_rows(), at
 * less cost: the last hop of the forward pass is computed at the rows
 * alone, and the first hop of the backward pass only from them, so K
 * layers take K - 1 full sparse products each way instead of K. This is
 * the op for a training step whose loss reads a batch's users and items.
 *   rows   (in) n_rows node ids (bipartite graph: users u, items
 *               num_users + i), repeats
 *               allowed (their gradients add); borrowed for the call.
 *   out    (out) [n_rows, d], owned by `tape`.
 * Other arguments as mmrec_lightgcn(). The sums may differ from
 * mmrec_lightgcn()'s in the last float bits (another summation order).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, K out of range, a weight not
 *         finite, n_rows 0 or >= 2^31), MMREC_ERANGE (a row outside the
 *         graph; the message names it), MMREC_ESHAPE, MMREC_ENOMEM.
 * Thread safety: as mmrec_graph_propagate(). Since 0.1. */
MMREC_API mmrec_status mmrec_lightgcn_rows(mmrec_tape *tape, const mmrec_graph *graph,
                                           mmrec_tensor *ego, int num_layers,
                                           const float *weights, const int64_t *rows,
                                           size_t n_rows, mmrec_tensor **out);

/* The user view of item rows, out = R_hat items: each user's normalized
 * sum of its items' rows,
 *   out[u] = sum_{i in N(u)} items[i] / sqrt(deg_u deg_i),
 * R_hat the user-item block of the bipartite graph's A_hat (degrees of the
 * whole graph), as AlignRec's torch.sparse.mm(self.R, mm_item_embeds).
 * A user without items gets zeros. Differentiable in `items` (the backward
 * is the item-user block, R_hat^T).
 *   graph (in)  a bipartite graph (mmrec_graph_create_bipartite); borrowed,
 *               read until the step's backward.
 *   items (in)  [num_items, d].
 *   out   (out) [num_users, d], owned by `tape`.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, graph not bipartite),
 *         MMREC_ESHAPE, MMREC_ESTALE, MMREC_ENOMEM.
 * Thread safety: per-tape; rows are split over the library's threads.
 * Since 0.2 (as mmrec_alignrec_aggregate_users since 0.1). */
MMREC_API mmrec_status mmrec_graph_aggregate_users(mmrec_tape *tape, const mmrec_graph *graph,
                                                   mmrec_tensor *items, mmrec_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_GRAPH_H */
