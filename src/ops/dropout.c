/* Inverted dropout with masks drawn from the tape's generator. */
#include "ops_internal.h"

#include <math.h>

float *mmrec__dropout_mask(mmrec_tape *tape, size_t n, float p) {
    float *mask = mmrec__tape_alloc(tape, n * sizeof(float));
    if (mask == NULL) return NULL;
    float keep = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) mask[i] = mmrec__rng_uniform(&tape->rng) < p ? 0.0f : keep;
    return mask;
}

static mmrec_status mmrec__dropout_backward(mmrec__node *node, mmrec_tape *tape) {
    const float *mask = *(float *const *)node->ctx;
    float *dx = mmrec__grad(tape, node->in[0]);
    if (dx == NULL) return MMREC_ENOMEM;
    const float *dy = node->out->grad;
    for (size_t i = 0; i < node->out->numel; i++) dx[i] += dy[i] * mask[i];
    return MMREC_OK;
}

mmrec_status mmrec_dropout(mmrec_tape *tape, mmrec_tensor *x, float p, mmrec_tensor **out) {
    MMREC_CHECK_OP1(tape, x, out);
    MMREC_FAIL_IF(!(p >= 0.0f && p < 1.0f), MMREC_EINVAL, "p is %g, must be in [0, 1)",
                  (double)p);
    if (tape->mode != MMREC_TAPE_TRAIN || p == 0.0f) {
        *out = x;
        return MMREC_OK;
    }
    mmrec_tensor *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__op op = {__func__, "dropout", mmrec__dropout_backward, &x, 1, 0,
                          NULL, sizeof(float *)};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x->ndim, x->shape, false, &y, &node, &mark));
    float *mask = mmrec__dropout_mask(tape, x->numel, p);
    if (mask == NULL) return mmrec__tape_oom(tape, mark, __func__);
    if (node) *(float **)node->ctx = mask;
    for (size_t i = 0; i < x->numel; i++) y->data[i] = x->data[i] * mask[i];
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
