/* Losses. Each returns a one-element tensor owned by the tape (the mean over
 * the batch), ready for mmrec_tape_backward(). Targets and labels are not
 * differentiated. Arrays passed by pointer (labels, config arrays) are
 * borrowed for the call only: the tape keeps what its backward needs.
 *
 * Errors: MMREC_EINVAL (NULL, tensor of another tape), MMREC_ESHAPE (the
 * message gives both shapes), MMREC_ERANGE (a label out of range: the
 * message names its index), MMREC_ENUMERIC (a NaN or infinity in an input
 * tensor: the message names the tensor and its first bad index; core.h),
 * MMREC_ESTALE, MMREC_ENOMEM. A failed call leaves the tape as it was.
 * Thread safety: per-handle (the tape). */
#ifndef MMREC_LOSSES_H
#define MMREC_LOSSES_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Binary cross-entropy on logits, numerically stable:
 * mean(max(x, 0) - x * y + log(1 + exp(-|x|))), targets y in [0, 1] with the
 * shape of logits (as torch.nn.functional.binary_cross_entropy_with_logits).
 * Since 0.1. */
MMREC_API mmrec_status mmrec_loss_bce_logits(mmrec_tape *tape, mmrec_tensor *logits,
                                             mmrec_tensor *targets, mmrec_tensor **out);

/* Softmax cross-entropy: logits [batch, classes], labels[batch] in
 * [0, classes): mean(-log softmax(logits)[i, labels[i]]) (as
 * torch.nn.functional.cross_entropy). labels borrowed for the call.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_loss_softmax_ce(mmrec_tape *tape, mmrec_tensor *logits,
                                             const int64_t *labels, size_t n,
                                             mmrec_tensor **out);

/* Bayesian personalized ranking: mean(-log sigmoid(pos - neg)) computed as
 * mean(softplus(neg - pos)); pos and neg of one shape. Since 0.1. */
MMREC_API mmrec_status mmrec_loss_bpr(mmrec_tape *tape, mmrec_tensor *pos, mmrec_tensor *neg,
                                      mmrec_tensor **out);

/* Mean squared error: mean((pred - target)^2), same shapes. Since 0.1. */
MMREC_API mmrec_status mmrec_loss_mse(mmrec_tape *tape, mmrec_tensor *pred,
                                      mmrec_tensor *target, mmrec_tensor **out);

/* ---- Batch softmax: in-batch sampled softmax cross-entropy ----
 * The contrastive and retrieval losses that score each query against a set
 * of candidates shared by the whole batch are this one loss with options:
 * the two-tower batch softmax with logQ correction (Yi et al., RecSys'19),
 * mixed negative sampling (extra candidate rows), IISAN's debiased in-batch
 * CE (popularity bias, the user's own items removed, padded rows weighted
 * 0), EM3's CIC (symmetric, sampled negatives as a mask) and AlignRec's
 * InfoNCE (normalized, one direction).
 *
 * With u_i the rows of queries [B, d] and v_j the rows of candidates [N, d]
 * (each L2-normalized first when cfg->normalize: x / max(||x||, 1e-12), as
 * torch.nn.functional.normalize), p_i the positive column of row i and K_i
 * the columns row i keeps:
 *   s_ij = <u_i, v_j> / tau + bias_j
 *   l_i  = logsumexp_{j in K_i} s_ij - s_{i p_i}
 *   out  = sum_i w_i l_i / B            (w_i = 1 without row weights)
 *        = sum_i w_i l_i / sum_i w_i    (cfg->weight_mean; 0 when every
 *                                        weight is 0)
 * K_i is every column except those the mask removes and, with
 * candidate_ids, the accidental hits: columns holding the same item as the
 * positive (ids[j] == ids[p_i], j != p_i). The positive is never removed.
 * Removed pairs take no part in the softmax (probability exactly 0), as
 * logits.masked_fill(removed, -inf) followed by
 * torch.nn.functional.cross_entropy(..., reduction="none") would give.
 * With cfg->symmetric (N == B, positives the diagonal: CLIP, CIC) the
 * loss is the mean of the row-wise loss above and the column-wise one: the
 * same loss of the transposed scores t_ij = <v_i, u_j> / tau + bias_j,
 * whose row i keeps column j by the same arrays read at the same places
 * (mask[i * B + j], ids[j] == ids[i], w_i): the options apply to each
 * direction's own [B, B] scores.
 * Gradients flow to queries and candidates, through the normalization and
 * the temperature; the bias, ids, mask and weights are constants.
 *
 * One node on the tape, whatever the options. Forward and backward work on
 * blocks of query rows with a [rows, N] scratch block: on a recording tape
 * the forward of the row-wise loss also takes the gradients of queries and
 * candidates while the block is at hand (for an upstream gradient of 1;
 * the backward scales them), the symmetric loss's backward recomputes the
 * block (as flash attention does). Either way the memory kept for the
 * backward grows with (B + N) d, not B * N; the mask, when given, is kept
 * as one bit per pair. A steady-state step allocates nothing.
 *
 * Recipes. Two-tower with logQ correction: normalize 1, temperature 0.05,
 * column_bias[j] = -log p_j (p_j the candidate's sampling probability).
 * Mixed negative sampling: candidates = the batch's items followed by the
 * extra sampled items, positives NULL. IISAN's debiased CE: queries = the
 * sequence positions (padding included), candidates = the batch's item
 * embeddings, positives = each position's next item, column_bias = -log
 * popularity, mask 0 at the user's other items, row_weights 0 at padding,
 * weight_mean 1 (IISAN's code fills -1e4 where this removes);
 * mmrec_loss_sequence_softmax() below makes these from the sequences. CIC
 * and InfoNCE (em3.h, alignrec.h) are this loss. */
typedef struct mmrec_batch_softmax_config {
    size_t struct_size;
    float temperature;            /* tau: > 0 with a finite inverse; default 1 */
    int normalize;                /* 1: L2-normalize the rows of queries and
                                     candidates first (cosine scores); default 0 */
    int symmetric;                /* 1: the mean of the row-wise and the
                                     column-wise loss; needs N == B and no
                                     positives; default 0 */
    int weight_mean;              /* 1: divide by the sum of row_weights
                                     instead of B (a mean over valid rows);
                                     default 0 */
    const float *column_bias;     /* [N] or NULL: added to every score of
                                     column j after the temperature, the
                                     positive's included (Yi et al. Eq. 4:
                                     -log p_j for the logQ correction); finite */
    const int64_t *positives;     /* [B] or NULL: the positive column of each
                                     row, in [0, N); NULL = row i's is column
                                     i (needs N >= B). Columns that are no
                                     row's positive are extra negatives */
    const int64_t *candidate_ids; /* [N] or NULL: item ids of the candidate
                                     rows, for the accidental-hit removal */
    const uint8_t *mask;          /* [B, N] row-major or NULL: 0 removes the
                                     pair (i, j) */
    const float *row_weights;     /* [B] or NULL: w_i, finite and >= 0 (e.g.
                                     a reward, or 0 for padded rows) */
} mmrec_batch_softmax_config;

/* Fills `cfg` (`size` bytes, sizeof *cfg) with the defaults: temperature
 * 1, every flag 0, every array NULL. Returns MMREC_OK or MMREC_EINVAL
 * (NULL, size below the first release's). Thread safety: thread-safe.
 * Since 0.2. */
MMREC_API mmrec_status mmrec_batch_softmax_config_init_sized(mmrec_batch_softmax_config *cfg,
                                                             size_t size);
#define mmrec_batch_softmax_config_init(cfg) \
    mmrec_batch_softmax_config_init_sized((cfg), sizeof *(cfg))

/* The batch softmax loss above.
 *   tape       (in)  the step's tape.
 *   queries    (in)  [B, d], B >= 1.
 *   candidates (in)  [N, d], N >= 1 (N >= B without cfg->positives). May be
 *                    the same tensor as queries.
 *   cfg        (in)  options, or NULL for the defaults (plain in-batch
 *                    softmax, tau 1); its arrays are borrowed for the call.
 *   out        (out) [1], owned by `tape`.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a config value: the message names
 *         the field and, for arrays, the first bad index; config from a
 *         newer libmmrec), MMREC_ESHAPE (both shapes in the message),
 *         MMREC_ERANGE (a positive out of range), MMREC_ENUMERIC (a NaN or
 *         infinity in queries or candidates: the message names the tensor
 *         and the first bad index), MMREC_ESTALE, MMREC_ENOMEM. A failed
 *         call changes nothing.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_loss_batch_softmax(mmrec_tape *tape, mmrec_tensor *queries,
                                                mmrec_tensor *candidates,
                                                const mmrec_batch_softmax_config *cfg,
                                                mmrec_tensor **out);

/* The batch softmax loss above on scores the caller already has: logits
 * [B, N] in place of <u_i, v_j> (or the cosine), e.g. late-interaction
 * MaxSim scores (ops.h: mmrec_maxsim), IntTower's FE scores, or any
 * scorer whose [B, N] output is a tape tensor. With x_ij the logits,
 *   s_ij = x_ij / tau + bias_j,  l_i = logsumexp_{j in K_i} s_ij - s_{i p_i}
 * and the same positives (default: the diagonal), extra columns, column
 * bias (logQ), accidental-hit removal (candidate_ids), mask, row weights
 * and weight_mean as mmrec_loss_batch_softmax, from the same config.
 * cfg->normalize and cfg->symmetric must be 0 (there are no vectors to
 * normalize; the column-wise form is not offered on logits). The gradient
 * flows to the logits only: d x_ij = c_i (p_ij - [j = p_i]) / tau for the
 * kept pairs, 0 for the removed ones. One node; the backward recomputes
 * the probabilities from the logits and each row's statistics, so nothing
 * of size B * N is kept beyond a bit per pair when a mask is given.
 *   tape   (in)  the step's tape.
 *   logits (in)  [B, N], B >= 1, N >= 1 (N >= B without cfg->positives).
 *   cfg    (in)  options as for mmrec_loss_batch_softmax, or NULL (tau 1);
 *                its arrays are borrowed for the call.
 *   out    (out) [1], owned by `tape`.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a tensor of another tape,
 *         cfg->normalize or cfg->symmetric set, a config value as for
 *         mmrec_loss_batch_softmax: the message names the field),
 *         MMREC_ESHAPE (logits not 2-D, or N < B without positives: the
 *         message gives the shape), MMREC_ERANGE (a positive out of
 *         range), MMREC_ENUMERIC (a non-finite logit of a kept pair: the
 *         message gives its row and column), MMREC_ESTALE, MMREC_ENOMEM. A
 *         failed call changes nothing.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_loss_batch_softmax_logits(mmrec_tape *tape, mmrec_tensor *logits,
                                                       const mmrec_batch_softmax_config *cfg,
                                                       mmrec_tensor **out);

/* ---- Sequence softmax: next-item in-batch cross-entropy of sequential
 * recommenders (SASRec-style training; IISAN's debiased in-batch CE) ----
 * mmrec_loss_batch_softmax configured from the sequences of a batch. For
 * B users with T input positions each: states [B, T, d] (the sequence
 * encoder's output at every position), items [B, T + 1, d] (the
 * embeddings of each user's T + 1 items: the T inputs, then the last
 * target) and item_ids [B, T + 1] (0 = padding). Every item of the batch
 * is a candidate: column c = b' (T + 1) + p holds items[b', p]. Row
 * (b, t), t < T, scores every column,
 *   s_c = <states[b, t], items[b', p]> / tau - log popularity[item_ids[b', p]]
 * (the log term with cfg->debias), and its positive is the next item,
 * column b (T + 1) + t + 1. Removed from the row: the padding columns (id
 * 0) and every column holding one of user b's own ids (the T + 1 of them,
 * inputs and targets, wherever the id sits in the batch), except the
 * positive column itself; so the positive's duplicates, in the user's
 * sequence or another user's, are removed too. A row counts when
 * item_ids[b, t] and item_ids[b, t + 1] are both items; the loss is the
 * mean cross-entropy over the counted rows (0 when none counts):
 * mmrec_loss_batch_softmax with row weights 1 and 0 and weight_mean.
 *
 * This is the in-batch debiased CE of IISAN (Fu et al., SIGIR 2024) as its
 * code does it (github.com/GAIR-Lab/IISAN; the code fills the removed
 * entries with -1e4 where this removes them: both give them probability 0
 * while the kept scores stay far above -1e4). Padding may sit on the left
 * (IISAN's data: a user's first T + 1 - n ids are 0, and its rows count
 * from its first item on) or on the right.
 *
 * Popularity: popularity[id] for every id in the batch, at any positive
 * scale (counts or probabilities give the same loss: log(k p) = log k +
 * log p shifts every score of a row alike). IISAN's code uses each item's
 * count in the training sequences over their sum, and never meets a
 * count of 0 (a training batch holds training items only); an item of
 * the batch with popularity 0 would score +inf there, and is refused here
 * (MMREC_EINVAL), neither clamped nor smoothed: pass counts + 1 to smooth.
 * popularity[0] (padding) is not read. */
typedef struct mmrec_sequence_softmax_config {
    size_t struct_size;
    int debias;               /* 1 (default): subtract log popularity from
                                 every score; 0: plain in-batch CE */
    float temperature;        /* tau: > 0 with a finite inverse; default 1 */
    const float *popularity;  /* [num_items] by item id; required with
                                 debias, not read without */
    int64_t num_items;        /* ids must be < num_items: the length of
                                 popularity, required (>= 1) with debias;
                                 0 without it: any id >= 0 */
} mmrec_sequence_softmax_config;

/* Fills `cfg` (`size` bytes, sizeof *cfg) with the defaults: debias 1,
 * temperature 1, popularity NULL and num_items 0 (to be set).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status
mmrec_sequence_softmax_config_init_sized(mmrec_sequence_softmax_config *cfg, size_t size);
#define mmrec_sequence_softmax_config_init(cfg) \
    mmrec_sequence_softmax_config_init_sized((cfg), sizeof *(cfg))

/* The sequence softmax loss above: one batch softmax node (its row mask
 * made from the ids inside the node, as one bit per pair: no [B T,
 * B (T + 1)] byte mask is built), plus the reshapes of states and items.
 *   tape     (in)  the step's tape.
 *   states   (in)  [B, T, d], B >= 1, T >= 1.
 *   items    (in)  [B, T + 1, d].
 *   item_ids (in)  num_ids ids, row-major [B, T + 1]: 0 = padding, items
 *                  >= 1; borrowed for the call.
 *   num_ids  (in)  B (T + 1).
 *   cfg      (in)  options; its popularity is borrowed for the call.
 *   out      (out) [1], owned by `tape`.
 * Returns MMREC_OK, MMREC_EINVAL (NULL; cfg->debias not 0 or 1;
 *         temperature not > 0 with a finite inverse; popularity NULL or
 *         num_items < 1 with debias; num_items < 0; the popularity of an
 *         item of the batch not finite and > 0: the message names the
 *         entry and where the id sits; a config from a newer libmmrec),
 *         MMREC_ESHAPE (states not [B, T, d], items not [B, T + 1, d],
 *         num_ids not B (T + 1): the message gives the shapes),
 *         MMREC_ERANGE (an id < 0 or >= num_items: the message names its
 *         index), MMREC_ENUMERIC (a NaN or infinity in states or items:
 *         the message names the tensor and the first bad index),
 *         MMREC_ESTALE, MMREC_ENOMEM. A failed call changes nothing.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_loss_sequence_softmax(mmrec_tape *tape, mmrec_tensor *states,
                                                   mmrec_tensor *items, const int64_t *item_ids,
                                                   size_t num_ids,
                                                   const mmrec_sequence_softmax_config *cfg,
                                                   mmrec_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_LOSSES_H */
