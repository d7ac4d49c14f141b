/* Losses. Each returns a one-element tensor owned by the tape (the mean over
 * the batch), ready for mmrec_tape_backward(). Targets and labels are not
 * differentiated.
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

#ifdef __cplusplus
}
#endif
#endif /* MMREC_LOSSES_H */
