/* AlignRec's InfoNCE, one direction: cross-entropy of the logits
 * norm(a) norm(b)^T / tau with the diagonal as targets, composed of the
 * public ops (normalize, scale, matmul, softmax CE: four nodes). The scale
 * is applied to norm(a) ([B, d]) rather than to the logits ([B, B]).
 * Reference: ALIGNREC.InfoNCE in sjtulyf123/AlignRec_CIKM24
 * src/models/alignrec.py; tests/golden/make_golden.py::write_alignrec. */
#include "../ops/ops_internal.h"
#include "mmrec/alignrec.h"
#include "mmrec/losses.h"

#include <math.h>

static mmrec_status mmrec__infonce_run(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b,
                                       float temperature, mmrec_tensor **out) {
    int64_t batch = a->shape[0];
    mmrec_tensor *an, *bn, *logits;
    MMREC_FORWARD_IF(mmrec_l2_normalize(tape, a, 1e-12f, &an));
    MMREC_FORWARD_IF(mmrec_scale(tape, an, 1.0f / temperature, &an));
    MMREC_FORWARD_IF(mmrec_l2_normalize(tape, b, 1e-12f, &bn));
    MMREC_FORWARD_IF(mmrec_matmul(tape, an, bn, MMREC_TRANS_B, &logits));
    int64_t *labels = mmrec__tape_alloc(tape, (size_t)batch * sizeof *labels);
    if (labels == NULL)
        return mmrec__set_error(MMREC_ENOMEM, "mmrec_loss_infonce", "out of memory");
    for (int64_t i = 0; i < batch; i++) labels[i] = i;
    return mmrec_loss_softmax_ce(tape, logits, labels, (size_t)batch, out);
}

mmrec_status mmrec_loss_infonce(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b,
                                float temperature, mmrec_tensor **out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(a, tape);
    MMREC_CHECK_TENSOR_ON(b, tape);
    MMREC_CHECK_NULL(out);
    if (a->ndim != 2 || b->ndim != 2 || a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1])
        MMREC_FAIL_SHAPE2("a and b must both be [batch, dim]", a, b);
    MMREC_FAIL_IF(!(temperature > 0.0f) || !isfinite(temperature) ||
                      !isfinite(1.0f / temperature),
                  MMREC_EINVAL, "temperature is %g, must be > 0 with a finite inverse",
                  (double)temperature);
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__infonce_run(tape, a, b, temperature, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}
