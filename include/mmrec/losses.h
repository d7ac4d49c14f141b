/* Losses. Each returns a one-element tensor owned by the tape (the mean over
 * the batch), ready for mmrec_tape_backward(). Targets and labels are not
 * differentiated. Arrays passed by pointer (labels, config arrays) are
 * borrowed for the call only: the tape keeps what its backward needs.
 *
 * Errors: MMREC_EINVAL (NULL, tensor of another tape), MMREC_ESHAPE (the
 * message gives both shapes), MMREC_ERANGE (a label out of range: the
 * message names its index), MMREC_ESTALE, MMREC_ENOMEM.
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
 * blocks of query rows with a [rows, N] scratch block that the backward
 * recomputes (as flash attention does), so the memory kept for the
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
 * weight_mean 1 (IISAN's code fills -1e4 where this removes). CIC and
 * InfoNCE (em3.h, alignrec.h) are this loss. */
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
 *         MMREC_ERANGE (a positive out of range), MMREC_ESTALE, MMREC_ENOMEM.
 *         A failed call changes nothing.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_loss_batch_softmax(mmrec_tape *tape, mmrec_tensor *queries,
                                                mmrec_tensor *candidates,
                                                const mmrec_batch_softmax_config *cfg,
                                                mmrec_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_LOSSES_H */
