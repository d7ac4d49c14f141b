/* AlignRec's InfoNCE, one direction: cross-entropy of the logits
 * norm(a) norm(b)^T / tau with the diagonal as targets, the normalized
 * batch softmax of losses.h.
 * Reference: ALIGNREC.InfoNCE in sjtulyf123/AlignRec_CIKM24
 * src/models/alignrec.py; tests/golden/make_golden.py::write_alignrec. */
#include "../losses/losses_internal.h"
#include "mmrec/alignrec.h"

#include <math.h>

mmrec_status mmrec_loss_infonce(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b,
                                float temperature, mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, a, b, out);
    if (a->ndim != 2 || b->ndim != 2 || a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1])
        MMREC_FAIL_SHAPE2("a and b must both be [batch, dim]", a, b);
    MMREC_FAIL_IF(!(temperature > 0.0f) || !isfinite(temperature) ||
                      !isfinite(1.0f / temperature),
                  MMREC_EINVAL, "temperature is %g, must be > 0 with a finite inverse",
                  (double)temperature);
    MMREC_CHECK_FINITE(a);
    MMREC_CHECK_FINITE(b);
    mmrec__batch_softmax_args args = {.temperature = temperature, .normalize = true};
    return mmrec__loss_batch_softmax(tape, __func__, a, b, &args, out);
}
