/* IntTower (Li et al., "IntTower: The Next Generation of Two-Tower Model
 * for Pre-Ranking System", CIKM 2022): a two-tower model whose towers
 * meet only at the score, through three blocks:
 *
 *   Light-SE, per tower, over its F field embeddings E [B, F, e]:
 *     z = mean of E over e                      [B, F]
 *     a = softmax over F of (z W_se^T (+ b_se))  [B, F], W_se [F, F]
 *     E' = E + E * a (a broadcast over e)       [B, F, e]
 *   The tower MLP, over h_0 = [flatten(E'), dense features]:
 *     h_l = dropout(relu(Linear_l(h_{l-1})))    l = 1 .. L
 *   The FE-Block and its score: the user side projects the INPUT of every
 *   layer, u_l = Fe_l(h_{l-1}) in R^{H_u f}, seen as H_u heads of width f
 *   (l = 1 .. L; the last layer's output h_L is not read); the item side
 *   projects its last output once, v = Fe(h_L) in R^{H_i f}, H_i heads;
 *     s(user, item) = sum_l sum_h max_g <u_{l,h}, v_g> + b
 *   with b a learned scalar: the late-interaction MaxSim (ops.h) of the
 *   L H_u user heads against the H_i item heads. p = sigmoid(s) is the
 *   click probability; train with mmrec_loss_bce_logits on s.
 *   CIR, the contrastive term: InfoNCE between the user's last FE output
 *   u_L and the item's v, both L2-normalized, temperature 0.07, over the
 *   clicked rows (y = 1), each row's own item the positive and the batch's
 *   other items the negatives (mmrec_loss_inttower_cir below).
 *
 * Where this library stands against the released code (the authors'
 * PyTorch repository, github.com/archersama/IntTower):
 *   - BatchNorm: the code's tower layers are Linear -> BatchNorm1d -> ReLU
 *     -> Dropout (dnn_use_bn=True). This library has no batch
 *     normalization; the layers here are Linear -> ReLU -> Dropout, and
 *     BatchNorm is not applied. Every result the code gives with
 *     dnn_use_bn=False, this module gives.
 *   - Light-SE bias: the code's W_se has no bias (the default here); the
 *     README's listing has one (cfg.lightse_bias = 1).
 *   - The user tower's last Linear: the code builds it and computes h_L,
 *     which no output reads (the user FE reads h_0 .. h_{L-1}); it is not
 *     created here.
 *   - CIR: the code's contrast_loss indexes the positive column by the 0/1
 *     click label (column 0 or 1 of the batch, for every row) and then
 *     leaves the term out of the training loss; the paper's intent is the
 *     InfoNCE above, the default here. cfg.label_indexed = 1 gives the
 *     code's formula, for comparisons with it.
 *   - Inits as the code: the tower Linear weights N(0, init_std^2) with
 *     init_std 1e-4; every other weight and every bias (Light-SE, the FE
 *     projections, the tower biases) PyTorch's nn.Linear default,
 *     U(-1/sqrt(fan_in), 1/sqrt(fan_in)); b = 0. All drawn from the
 *     model's generator (not PyTorch's stream).
 *   - Serving: the item side's FE vectors depend on the item only, so they
 *     can be computed once on an inference tape, copied out
 *     (mmrec_tensor_copy_to) into memory the caller keeps, wrapped
 *     (mmrec_tensor_wrap, read-only) and scored against any user's user_fe
 *     with mmrec_inttower_score on any later tape; the max makes them unfit
 *     for a plain inner-product index.
 *
 * Parameters, named after the code's (a PyTorch state_dict of an IntTower
 * built with dnn_use_bn=False maps onto them name for name, less the
 * embedding tables, the SENET layers User_SE / Item_SE that its forward
 * never calls, and the user tower's unused last Linear), under the
 * module's name:
 *   "<name>.User_sim_non_local.excitation.0.weight" [F_u, F_u]  (+ ".bias")
 *   "<name>.Item_sim_non_local.excitation.0.weight" [F_i, F_i]  (+ ".bias")
 *   "<name>.user_fe_dnn.linears.<l>.{weight,bias}"    l = 0 .. L - 2
 *   "<name>.user_fe_dnn.Fe_linears.<l>.{weight,bias}" l = 0 .. L - 1,
 *                                                      [H_u f, width of h_l]
 *   "<name>.item_fe_dnn.linears.<l>.{weight,bias}"    l = 0 .. L - 1
 *   "<name>.item_fe_dnn.Fe_linears.0.{weight,bias}"   [H_i f, width of h_L]
 *   "<name>.out.bias"                                 [1], b
 *
 * The field embeddings come from the caller as one [B, F, e] tensor (e.g.
 * the F rows of mmrec_embedding_forward reshaped), so any embedding source
 * works; the module holds no embedding table.
 *
 * Errors: MMREC_EINVAL (NULL, a bad config value: the message names the
 * field), MMREC_ESHAPE (an input's shape against the config or the other
 * input: the message gives both), MMREC_ESTATE (name taken; model
 * destroyed), MMREC_ESTALE, MMREC_ENOMEM. A failed call changes nothing.
 *
 * Thread safety: as modules.h: creation is per-handle (the model);
 * forward calls on one module from several threads, each with its own
 * inference tape, are safe while nobody updates the parameters. */
#ifndef MMREC_INTTOWER_H
#define MMREC_INTTOWER_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most layers a tower may have. */
#define MMREC_INTTOWER_MAX_LAYERS 16

typedef struct mmrec_inttower_config {
    size_t struct_size;
    int user_fields;             /* F_u, the user side's fields; required, >= 1 */
    int item_fields;             /* F_i, the item side's fields; required, >= 1 */
    int64_t embedding_dim;       /* e, each field embedding's width; required, >= 1 */
    int64_t user_dense_dim;      /* dense user features appended to the flattened
                                    fields; default 0 (none) */
    int64_t item_dense_dim;      /* the same for the item side; default 0 */
    const int64_t *hidden_sizes; /* the L layer widths of each tower's MLP; NULL
                                    (default): the code's 300, 300, 128. Copied */
    int num_hidden;              /* L, 1 .. MMREC_INTTOWER_MAX_LAYERS; 0 with
                                    hidden_sizes NULL */
    int user_heads;              /* H_u, heads per user FE output; default 32 */
    int item_heads;              /* H_i, heads of the item FE output; default 32 */
    int64_t field_dim;           /* f, the width of a head; default 64 (H 32 and
                                    f 64: the code's MovieLens-1M run) */
    float dropout;               /* after every layer's ReLU, on training tapes;
                                    default 0 (the code's default; its runs use
                                    0.3 or 0.5); [0, 1) */
    float init_std;              /* the tower Linear weights' N(0, init_std^2);
                                    default 1e-4 (the code's, whose BatchNorm
                                    rescales each layer; without one, a
                                    larger std such as 0.1 trains faster);
                                    > 0 */
    int lightse_bias;            /* 1: W_se with a bias (the README's listing);
                                    default 0 (the code's: no bias) */
} mmrec_inttower_config;

/* Fills cfg with the defaults for the first `size` bytes: user_fields,
 * item_fields and embedding_dim 0 (to be set), no dense features,
 * hidden_sizes NULL (300, 300, 128), 32 heads a side, field_dim 64,
 * dropout 0, init_std 1e-4, no Light-SE bias. Call it through
 * mmrec_inttower_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_inttower_config_init_sized(mmrec_inttower_config *cfg, size_t size);
#define mmrec_inttower_config_init(cfg) mmrec_inttower_config_init_sized((cfg), sizeof *(cfg))

/* Creates an IntTower module named `name` in `model`, with the parameters
 * above, initialized as the code does from the model's generator.
 *   model (in)  the model; it owns the module and its parameters.
 *   name  (in)  module name, 1..200 bytes, unique in the model; copied.
 *   cfg   (in)  from mmrec_inttower_config_init(), user_fields,
 *               item_fields and embedding_dim set; borrowed for the call.
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a bad name as
 *         for mmrec_linear_create; a field out of range: user_fields,
 *         item_fields, embedding_dim, field_dim, user_heads or item_heads
 *         < 1, a dense dim < 0, num_hidden outside its range or not 0 with
 *         hidden_sizes NULL, a hidden size outside [1, 2^31), a tower
 *         width of 2^31 or more, dropout outside [0, 1),
 *         init_std not > 0, lightse_bias not 0 or 1; a bad
 *         cfg->struct_size or a config from a newer libmmrec: the message
 *         names the field), MMREC_ESTATE (a module or parameter of one of
 *         these names exists; the model was destroyed), MMREC_ENOMEM. A
 *         failed call leaves the model as it was.
 * Thread safety: per-handle (the model). Since 0.2. */
MMREC_API mmrec_status mmrec_inttower_create(mmrec_model *model, const char *name,
                                             const mmrec_inttower_config *cfg,
                                             mmrec_module **out);

/* The user tower: Light-SE over `fields`, the MLP, and the FE projection
 * of every layer's input, u_1 .. u_L, as L H_u heads of width f, layer by
 * layer (u_1's heads first). Records the Light-SE node, the tower's
 * Linear, ReLU and dropout nodes and one node for the L FE projections
 * (written side by side: no concatenation) on a training tape; a slice
 * when user_vec is asked for.
 *   inttower (in)  a module made by mmrec_inttower_create().
 *   tape     (in)  the step's tape.
 *   fields   (in)  [B, F_u, e] user field embeddings (differentiated).
 *   dense    (in, may be NULL) [B, user_dense_dim] dense user features;
 *                  NULL exactly when cfg.user_dense_dim is 0.
 *   user_fe  (out) [B, L H_u, f], the queries of the score; owned by
 *                  `tape` until reset.
 *   user_vec (out, may be NULL) [B, H_u f], u_L (the last layer's FE
 *                  output, the code's user_dnn_embedding), the user side
 *                  of CIR; owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL; inttower not an IntTower module;
 *         a tensor of another tape; dense given when user_dense_dim is 0
 *         or missing when it is not), MMREC_ESHAPE (fields not
 *         [B, F_u, e], dense not [B, user_dense_dim]: the message gives
 *         both), MMREC_ESTALE, MMREC_ENOMEM. A failed call changes nothing.
 * Thread safety: per-handle (the tape); see the top of this header.
 * Since 0.2. */
MMREC_API mmrec_status mmrec_inttower_user_forward(mmrec_module *inttower, mmrec_tape *tape,
                                                   mmrec_tensor *fields, mmrec_tensor *dense,
                                                   mmrec_tensor **user_fe,
                                                   mmrec_tensor **user_vec);

/* The item tower: Light-SE over `fields`, the MLP, and the FE projection
 * of its last output, v, as H_i heads of width f.
 *   inttower (in)  a module made by mmrec_inttower_create().
 *   tape     (in)  the step's tape.
 *   fields   (in)  [N, F_i, e] item field embeddings (differentiated).
 *   dense    (in, may be NULL) [N, item_dense_dim] dense item features;
 *                  NULL exactly when cfg.item_dense_dim is 0.
 *   item_fe  (out) [N, H_i, f], the items of the score; owned by `tape`
 *                  until reset.
 *   item_vec (out, may be NULL) [N, H_i f], v as one vector (the same
 *                  values), the item side of CIR; owned by `tape` until
 *                  reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL; inttower not an IntTower module;
 *         a tensor of another tape; dense given when item_dense_dim is 0
 *         or missing when it is not), MMREC_ESHAPE (fields not
 *         [N, F_i, e], dense not [N, item_dense_dim]: the message gives
 *         both), MMREC_ESTALE, MMREC_ENOMEM. A failed call changes nothing.
 * Thread safety: per-handle (the tape); see the top of this header.
 * Since 0.2. */
MMREC_API mmrec_status mmrec_inttower_item_forward(mmrec_module *inttower, mmrec_tape *tape,
                                                   mmrec_tensor *fields, mmrec_tensor *dense,
                                                   mmrec_tensor **item_fe,
                                                   mmrec_tensor **item_vec);

/* All-pairs scores, out[b, n] = sum over the L H_u heads h of user b of
 * max over the H_i heads g of item n of <user_fe[b, h], item_fe[n, g]>,
 * plus b: the logits of every user against every item (an in-batch
 * softmax, or a full ranking against precomputed item_fe). One fused
 * MaxSim node (gradient through each max's arg-max, ties to the lowest
 * g) and one bias add.
 *   inttower (in)  the module whose towers made user_fe and item_fe (its
 *                  bias b is read).
 *   tape     (in)  the step's tape.
 *   user_fe  (in)  [B, L H_u, f] from mmrec_inttower_user_forward().
 *   item_fe  (in)  [N, H_i, f] from mmrec_inttower_item_forward().
 *   out      (out) [B, N] logits, owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL; inttower not an IntTower module;
 *         a tensor of another tape), MMREC_ESHAPE (user_fe not
 *         [B, L H_u, f] or item_fe not [N, H_i, f] for the module's L,
 *         H_u, H_i and f: the message gives the shape and the expected
 *         one), MMREC_ESTALE, MMREC_ENOMEM. A failed call changes nothing.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_inttower_score(mmrec_module *inttower, mmrec_tape *tape,
                                            mmrec_tensor *user_fe, mmrec_tensor *item_fe,
                                            mmrec_tensor **out);

/* Paired scores, out[b] = the score of user b against item b (the code's
 * fe_score + PredictionLayer bias, before the sigmoid): the logits of a
 * CTR batch of (user, item, click) rows, for mmrec_loss_bce_logits (the
 * code sums the BCE over the batch: B times its mean).
 *   inttower (in)  the module whose towers made user_fe and item_fe.
 *   tape     (in)  the step's tape.
 *   user_fe  (in)  [B, L H_u, f] from mmrec_inttower_user_forward().
 *   item_fe  (in)  [B, H_i, f] from mmrec_inttower_item_forward(), the
 *                  same B.
 *   out      (out) [B] logits, owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (as mmrec_inttower_score), MMREC_ESHAPE
 *         (as mmrec_inttower_score, or a different B on the two sides),
 *         MMREC_ESTALE, MMREC_ENOMEM. A failed call changes nothing.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_inttower_score_paired(mmrec_module *inttower, mmrec_tape *tape,
                                                   mmrec_tensor *user_fe, mmrec_tensor *item_fe,
                                                   mmrec_tensor **out);

/* ---- CIR, IntTower's contrastive term ----
 * With u_i the rows of user_vec and v_j those of item_vec (each
 * L2-normalized, x / max(||x||, 1e-12)), y_i the click labels and
 * s_ij = <u_i, v_j> / tau:
 *   paper (default):  out = weight * sum_{i: y_i = 1} l_i / #{i: y_i = 1},
 *                     l_i = logsumexp_j s_ij - s_ii
 *                     (0 when no row is clicked): every item of the batch
 *                     is a candidate, the clicked rows are the queries.
 *   label_indexed:    out = weight * mean_i (logsumexp_j s_ij - s_{i, y_i}),
 *                     the code's contrast_loss (its subtraction of the
 *                     global max changes nothing), which scores each row
 *                     against column 0 or 1 of the batch; the code
 *                     computes it and leaves it out of the training loss.
 * Both are mmrec_loss_batch_softmax (losses.h) configured: normalize 1,
 * temperature tau; row weights y and weight_mean 1, or positives y. One
 * node, plus a scale when weight is not 1. */
typedef struct mmrec_inttower_cir_config {
    size_t struct_size;
    float temperature; /* tau; default 0.07 (the code's); > 0 with a finite inverse */
    float weight;      /* the term's weight in the loss; default 1 (the paper's
                          value is not published with the code); finite, >= 0 */
    int label_indexed; /* 1: the code's label-indexed formula; default 0 (the
                          paper's InfoNCE over the clicked rows) */
} mmrec_inttower_cir_config;

/* Fills cfg with the defaults for the first `size` bytes: temperature
 * 0.07, weight 1, label_indexed 0. Call it through
 * mmrec_inttower_cir_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_inttower_cir_config_init_sized(mmrec_inttower_cir_config *cfg,
                                                            size_t size);
#define mmrec_inttower_cir_config_init(cfg) \
    mmrec_inttower_cir_config_init_sized((cfg), sizeof *(cfg))

/* The CIR loss above. Gradients flow to user_vec and item_vec, through the
 * normalization and the temperature; labels are constants.
 *   tape     (in)  the step's tape.
 *   user_vec (in)  [B, d], u_L from mmrec_inttower_user_forward() (d =
 *                  H_u f), B >= 1 (B >= 2 with label_indexed).
 *   item_vec (in)  [B, d], v from mmrec_inttower_item_forward() of the
 *                  batch's items, row i the item of row i: the same d,
 *                  so H_u = H_i.
 *   labels   (in)  n click labels, each 0 or 1; borrowed for the call.
 *   n        (in)  B.
 *   cfg      (in, may be NULL) options; NULL: the defaults.
 *   out      (out) [1], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL; a tensor of another tape; a label
 *         not 0 or 1: the message gives its index; temperature or weight
 *         out of range, label_indexed not 0 or 1, a config from a newer
 *         libmmrec: the message names the field), MMREC_ESHAPE (user_vec
 *         or item_vec not 2-D, their shapes differ, n not B, B < 2 with
 *         label_indexed: the message gives the shapes), MMREC_ENUMERIC (a
 *         NaN or infinity in user_vec or item_vec: the message names the
 *         tensor and the first bad index), MMREC_ESTALE, MMREC_ENOMEM. A
 *         failed call changes nothing.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_loss_inttower_cir(mmrec_tape *tape, mmrec_tensor *user_vec,
                                               mmrec_tensor *item_vec, const float *labels,
                                               size_t n, const mmrec_inttower_cir_config *cfg,
                                               mmrec_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_INTTOWER_H */
