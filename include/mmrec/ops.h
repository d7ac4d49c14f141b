/* Differentiable operations (the functional API).
 *
 * Every op takes the step's tape, its input tensors, then its scalar
 * arguments, and writes a new tensor owned by the tape to `out` (valid until
 * mmrec_tape_reset). On a training tape, when any input requires a gradient
 * (a trainable parameter, or a tape tensor made with
 * MMREC_TENSOR_REQUIRES_GRAD, or the output of such an op), the op records
 * itself so mmrec_tape_backward() can propagate through it. Inputs may be
 * parameters, tape tensors of the same tape, or caller-owned tensors.
 *
 * Shapes are outermost first. "Broadcasting" follows numpy: shapes are
 * aligned at the last dim; each pair of sizes must be equal or one of them 1.
 *
 * Errors: MMREC_EINVAL (NULL argument, tensor of another tape, bad scalar),
 * MMREC_ESHAPE (message gives both shapes), MMREC_ESTALE (input from a reset
 * step), MMREC_ERANGE (axis or id out of range), MMREC_ENOMEM. A failed op
 * leaves the tape as it was.
 *
 * Thread safety: per-handle (the tape). Parameters may be read by many
 * threads' inference-mode tapes at once; training tapes over one model's
 * parameters belong to one thread. */
#ifndef MMREC_OPS_H
#define MMREC_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags of mmrec_matmul. */
enum {
    MMREC_TRANS_A = 1u << 0, /* use a's last two dims transposed */
    MMREC_TRANS_B = 1u << 1  /* use b's last two dims transposed */
};

/* Matrix product over the last two dims: op(a) [.., m, k] x op(b) [.., k, n]
 * -> [.., m, n]. a and b have equal leading (batch) dims, or b is 2-D and
 * shared by every batch entry (a weight), or a is 2-D and shared.
 *   flags (in) MMREC_TRANS_A | MMREC_TRANS_B or 0.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_matmul(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b,
                                    uint32_t flags, mmrec_tensor **out);

/* Element-wise a + b, a - b, a * b with broadcasting. Since 0.1. */
MMREC_API mmrec_status mmrec_add(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b,
                                 mmrec_tensor **out);
MMREC_API mmrec_status mmrec_sub(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b,
                                 mmrec_tensor **out);
MMREC_API mmrec_status mmrec_mul(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b,
                                 mmrec_tensor **out);

/* alpha * x (alpha finite). Since 0.1. */
MMREC_API mmrec_status mmrec_scale(mmrec_tape *tape, mmrec_tensor *x, float alpha,
                                   mmrec_tensor **out);

/* x + bias, bias of shape [last dim of x]. Since 0.1. */
MMREC_API mmrec_status mmrec_bias_add(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor *bias,
                                      mmrec_tensor **out);

/* Activations, element-wise. NaN propagates as in PyTorch: every
 * activation maps NaN to NaN. In the backward, GELU, sigmoid and tanh give
 * NaN at a NaN input; ReLU, whose mask is "output <= 0" as PyTorch's,
 * passes the upstream gradient through there unchanged. */
typedef enum mmrec_gelu_form {
    MMREC_GELU_ERF = 0, /* x * Phi(x), PyTorch's default */
    MMREC_GELU_TANH = 1 /* tanh approximation, PyTorch approximate="tanh" */
} mmrec_gelu_form;

MMREC_API mmrec_status mmrec_relu(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor **out);
MMREC_API mmrec_status mmrec_gelu(mmrec_tape *tape, mmrec_tensor *x, mmrec_gelu_form form,
                                  mmrec_tensor **out);
MMREC_API mmrec_status mmrec_sigmoid(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor **out);
MMREC_API mmrec_status mmrec_tanh(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor **out);

/* Softmax / log-softmax over the last dim. A row with a NaN at a kept
 * position is all NaN (as in PyTorch).
 *   mask (in, may be NULL) broadcastable to x; an entry 0 removes that
 *        position (probability 0), non-zero keeps it. A row with every
 *        position removed gives all zeros (softmax) or all -inf
 *        (log-softmax) and passes no gradient.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_softmax(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor *mask,
                                     mmrec_tensor **out);
MMREC_API mmrec_status mmrec_log_softmax(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor *mask,
                                         mmrec_tensor **out);

/* Layer normalization over the last dim (biased variance, as PyTorch):
 * (x - mean) / sqrt(var + eps) * weight + bias.
 *   weight, bias (in, may be NULL) shape [last dim]; NULL = 1 and 0.
 *   eps (in) > 0.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_layer_norm(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor *weight,
                                        mmrec_tensor *bias, float eps, mmrec_tensor **out);

/* Inverted dropout: on a training tape zeroes each element with probability
 * p (drawn from the tape's generator) and scales the rest by 1/(1-p); on an
 * inference tape, or with p == 0, the identity: *out is x itself.
 *   p (in) 0 <= p < 1.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_dropout(mmrec_tape *tape, mmrec_tensor *x, float p,
                                     mmrec_tensor **out);

/* Joins n tensors along `axis` (negative counts from the end); all other
 * dims equal. Since 0.1. */
MMREC_API mmrec_status mmrec_concat(mmrec_tape *tape, mmrec_tensor *const *xs, size_t n,
                                    int axis, mmrec_tensor **out);

/* The sub-range [start, start + length) of `axis`. Since 0.1. */
MMREC_API mmrec_status mmrec_slice(mmrec_tape *tape, mmrec_tensor *x, int axis, int64_t start,
                                   int64_t length, mmrec_tensor **out);

/* Same elements, new shape (one size may be -1: inferred). Since 0.1. */
MMREC_API mmrec_status mmrec_reshape(mmrec_tape *tape, mmrec_tensor *x, int ndim,
                                     const int64_t *shape, mmrec_tensor **out);

/* Swaps the last two dims (x must have >= 2 dims). Since 0.1. */
MMREC_API mmrec_status mmrec_transpose(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor **out);

/* Sum / mean over `axis` (removed from the shape; a 1-D input gives [1]), or
 * over every element with MMREC_AXIS_ALL (result [1]). Since 0.1. */
enum { MMREC_AXIS_ALL = 1000 };
MMREC_API mmrec_status mmrec_sum(mmrec_tape *tape, mmrec_tensor *x, int axis,
                                 mmrec_tensor **out);
MMREC_API mmrec_status mmrec_mean(mmrec_tape *tape, mmrec_tensor *x, int axis,
                                  mmrec_tensor **out);

/* x / max(||x||_2, eps) over the last dim (as torch.nn.functional.normalize).
 *   eps (in) > 0, e.g. 1e-12. Since 0.1. */
MMREC_API mmrec_status mmrec_l2_normalize(mmrec_tape *tape, mmrec_tensor *x, float eps,
                                          mmrec_tensor **out);

/* Cosine similarity over the last dim of a and b (same shape):
 * a.b / (max(||a||, eps) max(||b||, eps)), shape of a without its last dim
 * ([1] for 1-D).
 * Since 0.1. */
MMREC_API mmrec_status mmrec_cosine_similarity(mmrec_tape *tape, mmrec_tensor *a,
                                               mmrec_tensor *b, float eps, mmrec_tensor **out);

/* Gathers rows of a 2-D table: out[i] = table[ids[i]], shape [n, dim].
 * The gradient is sparse: backward touches only the gathered rows (and marks
 * them for the optimizer's sparse update when the table is a parameter).
 *   ids (in) n ids in [0, rows); borrowed for the call.
 * Returns also MMREC_ERANGE naming the first bad index. Since 0.1. */
MMREC_API mmrec_status mmrec_gather_rows(mmrec_tape *tape, mmrec_tensor *table,
                                         const int64_t *ids, size_t n, mmrec_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_OPS_H */
