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

/* Element-wise a + b with broadcasting (see above). Backward: d_a += d_out
 * and d_b += d_out, each summed over the dims it was broadcast along.
 *   tape (in)  the step's tape.
 *   a, b (in)  tensors whose shapes broadcast together.
 *   out  (out) the broadcast shape (rank of the larger operand), owned by
 *              `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a tensor of another tape),
 *         MMREC_ESHAPE (the shapes do not broadcast; the message gives
 *         both), MMREC_ESTALE (an input from a reset step), MMREC_ENOMEM.
 * Thread safety: per-handle (the tape). Since 0.1. */
MMREC_API mmrec_status mmrec_add(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b,
                                 mmrec_tensor **out);

/* Element-wise a - b with broadcasting (see above). Backward: d_a += d_out
 * and d_b -= d_out, each summed over the dims it was broadcast along.
 *   tape (in)  the step's tape.
 *   a, b (in)  tensors whose shapes broadcast together.
 *   out  (out) the broadcast shape, owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a tensor of another tape),
 *         MMREC_ESHAPE (the shapes do not broadcast; the message gives
 *         both), MMREC_ESTALE (an input from a reset step), MMREC_ENOMEM.
 * Thread safety: per-handle (the tape). Since 0.1. */
MMREC_API mmrec_status mmrec_sub(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b,
                                 mmrec_tensor **out);

/* Element-wise product a * b with broadcasting (see above). Backward:
 * d_a += d_out * b and d_b += d_out * a, each summed over the dims it was
 * broadcast along.
 *   tape (in)  the step's tape.
 *   a, b (in)  tensors whose shapes broadcast together.
 *   out  (out) the broadcast shape, owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a tensor of another tape),
 *         MMREC_ESHAPE (the shapes do not broadcast; the message gives
 *         both), MMREC_ESTALE (an input from a reset step), MMREC_ENOMEM.
 * Thread safety: per-handle (the tape). Since 0.1. */
MMREC_API mmrec_status mmrec_mul(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b,
                                 mmrec_tensor **out);

/* alpha * x (alpha finite). Since 0.1. */
MMREC_API mmrec_status mmrec_scale(mmrec_tape *tape, mmrec_tensor *x, float alpha,
                                   mmrec_tensor **out);

/* x + bias, bias of shape [last dim of x]. Since 0.1. */
MMREC_API mmrec_status mmrec_bias_add(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor *bias,
                                      mmrec_tensor **out);

/* Activations, element-wise (mmrec_relu, mmrec_gelu, mmrec_sigmoid,
 * mmrec_tanh). Common rules: x has any shape and out has the shape of x,
 * owned by `tape` until reset; backward adds d_out * act'(x) into d_x. NaN
 * propagates as in PyTorch: every activation maps NaN to NaN. In the
 * backward, GELU, sigmoid and tanh give NaN at a NaN input; ReLU, whose
 * mask is "output <= 0" as PyTorch's, passes the upstream gradient through
 * there unchanged. The elements are split over the library's threads. Each
 * returns MMREC_OK, MMREC_EINVAL (NULL, x of another tape), MMREC_ESTALE (x
 * from a reset step) or MMREC_ENOMEM, and is per-handle (the tape). */
typedef enum mmrec_gelu_form {
    MMREC_GELU_ERF = 0, /* x * Phi(x), PyTorch's default */
    MMREC_GELU_TANH = 1 /* tanh approximation, PyTorch approximate="tanh" */
} mmrec_gelu_form;

/* ReLU: out = max(x, 0) (torch.nn.functional.relu). Backward: d_x += d_out
 * where x > 0, nothing where x <= 0 (the gradient at 0 is 0), d_out at NaN.
 *   tape (in)  the step's tape.
 *   x    (in)  any shape.
 *   out  (out) shape of x, owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, x of another tape), MMREC_ESTALE,
 *         MMREC_ENOMEM.
 * Thread safety: per-handle (the tape). Since 0.1. */
MMREC_API mmrec_status mmrec_relu(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor **out);

/* GELU (torch.nn.functional.gelu), in one of two forms:
 *   MMREC_GELU_ERF:  out = x Phi(x), Phi the standard normal CDF;
 *   MMREC_GELU_TANH: out = x / 2 (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
 *                    (approximate="tanh").
 * Backward: d_x += d_out times the derivative of the chosen form.
 *   tape (in)  the step's tape.
 *   x    (in)  any shape.
 *   form (in)  MMREC_GELU_ERF or MMREC_GELU_TANH.
 *   out  (out) shape of x, owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, x of another tape, form not an
 *         mmrec_gelu_form), MMREC_ESTALE, MMREC_ENOMEM.
 * Thread safety: per-handle (the tape). Since 0.1. */
MMREC_API mmrec_status mmrec_gelu(mmrec_tape *tape, mmrec_tensor *x, mmrec_gelu_form form,
                                  mmrec_tensor **out);

/* Logistic sigmoid: out = 1 / (1 + exp(-x)) (torch.sigmoid). Backward:
 * d_x += d_out * out * (1 - out).
 *   tape (in)  the step's tape.
 *   x    (in)  any shape.
 *   out  (out) shape of x, values in [0, 1], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, x of another tape), MMREC_ESTALE,
 *         MMREC_ENOMEM.
 * Thread safety: per-handle (the tape). Since 0.1. */
MMREC_API mmrec_status mmrec_sigmoid(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor **out);

/* Hyperbolic tangent: out = tanh(x) (torch.tanh). Backward:
 * d_x += d_out * (1 - out^2).
 *   tape (in)  the step's tape.
 *   x    (in)  any shape.
 *   out  (out) shape of x, values in [-1, 1], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, x of another tape), MMREC_ESTALE,
 *         MMREC_ENOMEM.
 * Thread safety: per-handle (the tape). Since 0.1. */
MMREC_API mmrec_status mmrec_tanh(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor **out);

/* Softmax over the last dim: out[.., j] = exp(x[.., j]) / sum_k exp(x[.., k])
 * over the kept positions k (torch.softmax(x, -1)), exponentials summed in
 * double. A row with a NaN at a kept position is all NaN (as in PyTorch).
 * Backward: d_x += out * (d_out - sum_k d_out[k] out[k]), row by row.
 *   tape (in)  the step's tape.
 *   x    (in)  any shape; rows along the last dim.
 *   mask (in, may be NULL) a tensor broadcastable to the shape of x (the
 *        broadcast result is x's shape); an entry 0 removes that position
 *        (probability 0), non-zero keeps it. Not differentiated. A row with
 *        every position removed gives all zeros and passes no gradient.
 *   out  (out) shape of x, owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a tensor of another tape),
 *         MMREC_ESHAPE (mask does not broadcast to x; the message gives
 *         both shapes), MMREC_ESTALE, MMREC_ENOMEM.
 * Thread safety: per-handle (the tape). Since 0.1. */
MMREC_API mmrec_status mmrec_softmax(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor *mask,
                                     mmrec_tensor **out);

/* Log-softmax over the last dim: out[.., j] = x[.., j] - log sum_k
 * exp(x[.., k]) over the kept positions k (torch.log_softmax(x, -1)),
 * computed as (x - max) - log(sum exp(x - max)) so large logits keep their
 * low bits. A row with a NaN at a kept position is all NaN. Backward:
 * d_x += d_out - softmax(x) * sum_k d_out[k], row by row, at the kept
 * positions (removed ones get no gradient).
 *   tape (in)  the step's tape.
 *   x    (in)  any shape; rows along the last dim.
 *   mask (in, may be NULL) as for mmrec_softmax(); a removed position
 *        gives -inf, and a row with every position removed is all -inf
 *        and passes no gradient.
 *   out  (out) shape of x, owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a tensor of another tape),
 *         MMREC_ESHAPE (mask does not broadcast to x; the message gives
 *         both shapes), MMREC_ESTALE, MMREC_ENOMEM.
 * Thread safety: per-handle (the tape). Since 0.1. */
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

/* The `axis` of mmrec_sum() and mmrec_mean() that reduces over every
 * element. */
enum { MMREC_AXIS_ALL = 1000 };

/* Sum over `axis` (torch.sum(x, axis), keepdim=False), accumulated in
 * double. Backward: d_x += d_out, repeated along the reduced axis.
 *   tape (in)  the step's tape.
 *   x    (in)  any shape.
 *   axis (in)  -ndim .. ndim - 1 (negative counts from the end), or
 *              MMREC_AXIS_ALL for the sum of every element.
 *   out  (out) x's shape without `axis` (a 1-D x gives [1]); [1] with
 *              MMREC_AXIS_ALL. Owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, x of another tape), MMREC_ERANGE
 *         (axis out of range; the message gives it and the rank),
 *         MMREC_ESTALE, MMREC_ENOMEM.
 * Thread safety: per-handle (the tape). Since 0.1. */
MMREC_API mmrec_status mmrec_sum(mmrec_tape *tape, mmrec_tensor *x, int axis,
                                 mmrec_tensor **out);

/* Mean over `axis` (torch.mean(x, axis), keepdim=False): the sum of
 * mmrec_sum() divided by the number of elements reduced, in double.
 * Backward: d_x += d_out / n, repeated along the reduced axis (n its size,
 * or numel(x) with MMREC_AXIS_ALL).
 *   tape (in)  the step's tape.
 *   x    (in)  any shape.
 *   axis (in)  as for mmrec_sum().
 *   out  (out) as for mmrec_sum(); owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, x of another tape), MMREC_ERANGE
 *         (axis out of range; the message gives it and the rank),
 *         MMREC_ESTALE, MMREC_ENOMEM.
 * Thread safety: per-handle (the tape). Since 0.1. */
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

/* Late-interaction MaxSim (ColBERT's colbert_score): every query against
 * every item, out[b, n] = sum over the real vectors i of query b of the max
 * over the real vectors j of item n of <queries[b, i], items[n, j]>. The
 * max is the true one (a query vector whose best match is negative adds
 * that negative value). Backward flows through each max's arg-max only,
 * ties resolved to the lowest j, so the gradient is deterministic; results
 * do not depend on the thread count. For cosine scores, as ColBERT, the
 * caller normalizes both sides first with mmrec_l2_normalize. The output is
 * the [B, N] logits an in-batch softmax takes.
 *   tape       (in)  the step's tape.
 *   queries    (in)  [B, Lq, d] query vectors (differentiated).
 *   query_mask (in)  [B, Lq], non-zero for a real vector, or NULL (all
 *                    real); not differentiated. A masked query vector adds
 *                    nothing; a query with every vector masked scores 0
 *                    (as ColBERT's zeroed padding rows).
 *   items      (in)  [N, Ld, d] item vectors (differentiated).
 *   item_mask  (in)  [N, Ld], non-zero for a real vector, or NULL; not
 *                    differentiated. A masked vector is never the max; every
 *                    item needs at least one real vector.
 *   out        (out) [B, N], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a tensor of another tape, d = 0,
 *         a non-finite mask value, an item row with every vector masked:
 *         the message names the row), MMREC_ESHAPE (queries or items not
 *         3-D, their d differ, a mask not [B, Lq] / [N, Ld]),
 *         MMREC_ESTALE (an input from a reset step), MMREC_ENOMEM.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_maxsim(mmrec_tape *tape, mmrec_tensor *queries,
                                    mmrec_tensor *query_mask, mmrec_tensor *items,
                                    mmrec_tensor *item_mask, mmrec_tensor **out);

/* Paired late-interaction MaxSim: query b against item b only,
 * out[b] = sum over the real vectors i of query b of the max over the real
 * vectors j of item b of <queries[b, i], items[b, j]> (ColBERT's scoring of
 * its (query, positive, negative) triples). Masks, ties, the gradient and
 * errors as mmrec_maxsim.
 *   tape       (in)  the step's tape.
 *   queries    (in)  [B, Lq, d] query vectors (differentiated).
 *   query_mask (in)  [B, Lq], non-zero for a real vector, or NULL.
 *   items      (in)  [B, Ld, d] item vectors (differentiated).
 *   item_mask  (in)  [B, Ld], non-zero for a real vector, or NULL; every
 *                    item needs at least one real vector.
 *   out        (out) [B], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (as mmrec_maxsim), MMREC_ESHAPE (as
 *         mmrec_maxsim, or queries and items of different B),
 *         MMREC_ESTALE, MMREC_ENOMEM.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_maxsim_paired(mmrec_tape *tape, mmrec_tensor *queries,
                                           mmrec_tensor *query_mask, mmrec_tensor *items,
                                           mmrec_tensor *item_mask, mmrec_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_OPS_H */
