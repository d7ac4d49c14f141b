/* AlignRec building blocks (Liu et al., "AlignRec: Aligning and Training in
 * Multimodal Recommendations", CIKM 2024), as the authors' code does them
 * (the ALIGNREC model of github.com/sjtulyf123/AlignRec_CIKM24):
 *
 *   m        = Linear(LayerNorm?(content))          content: trainable table
 *   seed     = item_id_emb * sigmoid(Linear(m))     the behaviour-guided purifier
 *   mm_items = S^L seed                              S: item kNN graph, L hops
 *   mm_users = R_hat mm_items                        R_hat: user-item block of A_hat
 *   id       = LightGCN(A_hat, [user_emb; item_emb]) layer mean
 *   final    = id + mm                               users and items alike
 *
 * and the losses the reference trains them with besides BPR (losses.h):
 * InfoNCE content-to-ID alignment, the anti-collapse regularizer and the
 * user-item alignment. Setup, once (the reference builds both graphs from
 * the training interactions and the features it starts from):
 *
 *     mmrec_graph_create_bipartite(users, items, n, U, I, &ui_graph);
 *     mmrec_graph_create_knn(features, I, content_dim, &knn_cfg, &item_graph);  // k 10
 *     mmrec_alignrec_create(m, "ar", &cfg, &ar);     // cfg.features = features
 *
 * A training step, as a host writes it (error checks left out; u, i, j:
 * the batch's users, positive and negative items):
 *
 *     mmrec_alignrec_views v;  mmrec_alignrec_views_init(&v);
 *     mmrec_alignrec_forward(ar, t, ui_graph, item_graph, &v);
 *     mmrec_gather_rows(t, v.users, u, B, &eu);      // final views
 *     mmrec_gather_rows(t, v.items, i, B, &ei);
 *     mmrec_gather_rows(t, v.items, j, B, &ej);
 *     ... BPR on rowwise dots (+ the L2 term on eu, ei, ej), then
 *     mmrec_gather_rows(t, v.mm_items, i, B, &mi);   mmrec_gather_rows(t, v.id_items, i, B, &ii);
 *     mmrec_gather_rows(t, v.mm_users, u, B, &mu);   mmrec_gather_rows(t, v.id_users, u, B, &iu);
 *     mmrec_loss_infonce(t, mi, ii, 0.2f, &l1);      mmrec_loss_infonce(t, mu, iu, 0.2f, &l2);
 *     mmrec_model_param(m, "ar.content.features", &features);
 *     mmrec_gather_rows(t, features, i, B, &ci);     // content of the positives
 *     mmrec_loss_anti_collapse(t, mi, ci, &l3);
 *     mmrec_loss_ui_alignment(t, eu, ei, &l4);
 *     loss = bpr + reg + w_cl (l1 + l2) + w_sim l3 + w_ui l4   (mmrec_scale, mmrec_add)
 *
 * Per-group learning rates ("content learns slower than ID"): every
 * parameter of the content path is named "<name>.content.*", so one call
 * puts them in their own optimizer group:
 *
 *     mmrec_optimizer_add_group(opt, "ar.content.", 1e-4f, 0.0f, &content_group);
 *
 * and mmrec_optimizer_set_lr(opt, content_group, lr) schedules it apart
 * from group 0 (the ID embeddings). To keep the feature table fixed
 * instead, mmrec_model_freeze(model, "ar.content.features", NULL).
 *
 * Errors: MMREC_EINVAL (NULL, bad config or scalar value: the message names
 * it), MMREC_ESTATE (name taken), MMREC_ESHAPE (both shapes, or the graph's
 * sizes, in the message), MMREC_ERANGE, MMREC_ESTALE, MMREC_ENOMEM. A
 * failed call changes nothing.
 *
 * Thread safety: as modules.h: creation is per-handle (the model); forward
 * calls on inference tapes from many threads are safe while nobody changes
 * the parameters; the graphs are read-only and may be shared. Losses are
 * per-handle (the tape). */
#ifndef MMREC_ALIGNREC_H
#define MMREC_ALIGNREC_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- losses ---- */

/* InfoNCE of `a` against `b` with in-batch negatives, one direction (as the
 * reference's InfoNCE(view1, view2, temperature)):
 *   a_n, b_n = rows L2-normalized (x / max(||x||, 1e-12)),
 *   out = -mean_i log softmax_j(a_n[i] . b_n[j] / temperature)[i]
 * i.e. cross-entropy of the logits a_n b_n^T / temperature with the
 * diagonal as targets; row i of `a` is the anchor, the other rows of `b`
 * its negatives. AlignRec calls it with a = multimodal view, b = ID view,
 * temperature 0.2. For both directions add infonce(b, a) (CIC with every
 * negative is their mean, em3.h). This is mmrec_loss_batch_softmax of
 * losses.h with cfg->normalize: one node.
 *   a, b        (in)  [batch, dim] each, same shape, batch >= 1.
 *   temperature (in)  > 0, finite.
 *   out         (out) [1], owned by `tape`.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, temperature), MMREC_ESHAPE,
 *         MMREC_ENUMERIC (a NaN or infinity in a or b: the message names
 *         the tensor and the first bad index), MMREC_ESTALE, MMREC_ENOMEM.
 *         Since 0.1. */
MMREC_API mmrec_status mmrec_loss_infonce(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b,
                                          float temperature, mmrec_tensor **out);

/* Anti-collapse regularizer (the reference's sim_loss): keeps the geometry
 * of the multimodal item space close to that of the content features:
 *   S   = c_n c_n^T, c_n the rows of `content` L2-normalized (cosine
 *         similarity; a constant: `content` gets no gradient),
 *   out = || M M^T - S ||_F / batch
 * with M = `embeddings` as given (not normalized) and ||.||_F the Frobenius
 * norm, not squared (MMRec's EmbLoss: torch.norm(x, p=2) / rows). AlignRec
 * uses M = the multimodal embeddings of the batch's positive items and
 * `content` = their raw features, with weight w_sim in 0.1 .. 0.5. Where
 * M M^T == S exactly, the gradient is 0.
 * Note: the reference's content rows are its trainable feature table
 * (its v_feat aliases the table's storage), so gather them from
 * "<name>.content.features" to match it; the original features give the
 * paper's "raw content" reading.
 *   embeddings (in)  [batch, dim].
 *   content    (in)  [batch, content_dim], same batch; a zero row has
 *                    similarity 0 to every row (the reference: NaN).
 *   out        (out) [1], owned by `tape`.
 * Returns MMREC_OK, MMREC_EINVAL, MMREC_ESHAPE, MMREC_ENUMERIC (a NaN or
 *         infinity in an input: the message names the tensor and the
 *         first bad index), MMREC_ESTALE, MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_loss_anti_collapse(mmrec_tape *tape, mmrec_tensor *embeddings,
                                                mmrec_tensor *content, mmrec_tensor **out);

/* User-item alignment: out = 1 - mean_b cos(users[b], items[b]) with
 * cos = u.i / (max(||u||, 1e-8) max(||i||, 1e-8)) (as
 * torch.nn.functional.cosine_similarity). AlignRec applies it to the final
 * embeddings of the batch's users and positive items, weight 0.1.
 *   users, items (in) [batch, dim] each, same shape.
 *   out          (out) [1], owned by `tape`.
 * Returns MMREC_OK, MMREC_EINVAL, MMREC_ESHAPE, MMREC_ENUMERIC (a NaN or
 *         infinity in an input: the message names the tensor and the
 *         first bad index), MMREC_ESTALE, MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_loss_ui_alignment(mmrec_tape *tape, mmrec_tensor *users,
                                               mmrec_tensor *items, mmrec_tensor **out);

/* ---- user view from item embeddings ---- */

/* The user view of item rows, R_hat items: the same operation as
 * mmrec_graph_aggregate_users (graph.h), which new code calls; this name
 * stays for 0.1 callers. Since 0.1. */
MMREC_API mmrec_status mmrec_alignrec_aggregate_users(mmrec_tape *tape,
                                                      const mmrec_graph *graph,
                                                      mmrec_tensor *items, mmrec_tensor **out);

/* ---- the AlignRec model block ----
 * Parameters (the reference's names in brackets):
 *   "<name>.user_embedding.weight" [num_users, dim]  Xavier uniform  [user_embedding.weight]
 *   "<name>.item_embedding.weight" [num_items, dim]  Xavier uniform  [item_id_embedding.weight]
 *   "<name>.content.features"  [num_items, content_dim] = cfg->features  [mm_embedding.weight]
 *   "<name>.content.norm.weight", ".bias" [content_dim], layernorm only  [v_ln.*]
 *   "<name>.content.proj.weight" [dim, content_dim], ".bias" [dim]        [mm_trs.*]
 *   "<name>.content.gate.weight" [dim, dim], ".bias" [dim]                [gate_v.0.*]
 * The Linear layers start as torch.nn.Linear's default: weight and bias
 * U(-1/sqrt(in), 1/sqrt(in)); the LayerNorm as 1 and 0 (eps 1e-5). Every
 * table is dense: the forward reads all of its rows. */
typedef struct mmrec_alignrec_config {
    size_t struct_size;
    int64_t num_users, num_items; /* required, >= 1 */
    int64_t content_dim;          /* required, >= 1 */
    const float *features;        /* required: [num_items, content_dim] row-major,
                                     finite; copied at creation (borrowed). The
                                     content Linear layers start at torch's
                                     default scale, so give the values about
                                     unit size (rows of norm ~sqrt(content_dim)):
                                     with unit-norm rows the gate barely moves
                                     from its start */
    int64_t dim;                  /* default 64 */
    int id_layers;                /* LightGCN layers on the bipartite graph, 0 .. 64;
                                     default 2 */
    int mm_layers;                /* hops over the item kNN graph, 0 .. 64; default 1 */
    int layernorm;                /* LayerNorm on the content first; default 0 */
} mmrec_alignrec_config;

/* Fills cfg with the defaults for the first `size` bytes: num_users,
 * num_items, content_dim 0 and features NULL (to be set), dim 64,
 * id_layers 2, mm_layers 1, layernorm 0. Call it through
 * mmrec_alignrec_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_alignrec_config_init_sized(mmrec_alignrec_config *cfg,
                                                        size_t size);
#define mmrec_alignrec_config_init(cfg) mmrec_alignrec_config_init_sized((cfg), sizeof *(cfg))

/* Creates an AlignRec block named `name` in `model`.
 *   out (out, may be NULL) the module, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a config value out of range: the
 *         message names the field; a feature not finite: its index),
 *         MMREC_ESTATE (name taken), MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_alignrec_create(mmrec_model *model, const char *name,
                                             const mmrec_alignrec_config *cfg,
                                             mmrec_module **out);

/* The views the forward computes, all owned by the tape until reset. The
 * caller sets struct_size (mmrec_alignrec_views_init); the forward fills
 * the fields that size covers. */
typedef struct mmrec_alignrec_views {
    size_t struct_size;
    mmrec_tensor *users, *items;       /* final = id + mm, [num_users, dim], [num_items, dim] */
    mmrec_tensor *id_users, *id_items; /* LightGCN view */
    mmrec_tensor *mm_users, *mm_items; /* multimodal view */
} mmrec_alignrec_views;

/* Zeroes the struct and sets struct_size. Returns MMREC_OK or MMREC_EINVAL
 * (NULL, size below the first release's). Since 0.1. */
MMREC_API mmrec_status mmrec_alignrec_views_init_sized(mmrec_alignrec_views *views, size_t size);
#define mmrec_alignrec_views_init(views) \
    mmrec_alignrec_views_init_sized((views), sizeof *(views))

/* Runs the whole block (the reference's forward(adj)): every user and
 * item, ready for the losses and for full-ranking scores users . items.
 *   ui_graph   (in)  the bipartite graph of the training interactions
 *                    (num_users and num_items as the config); borrowed.
 *   item_graph (in)  the item kNN graph over num_items nodes
 *                    (mmrec_graph_create_knn); borrowed; not read when
 *                    mm_layers is 0 (may then be NULL).
 *   views      (in, out) struct_size set; the tensors are written on
 *                    success only.
 * Both graphs are read until the step's backward: destroy them after it.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, struct_size), MMREC_ESHAPE (a
 *         graph's node or user count does not match the config),
 *         MMREC_ESTALE, MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_alignrec_forward(mmrec_module *alignrec, mmrec_tape *tape,
                                              const mmrec_graph *ui_graph,
                                              const mmrec_graph *item_graph,
                                              mmrec_alignrec_views *views);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_ALIGNREC_H */
