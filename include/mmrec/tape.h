/* The tape: one per training step and per thread.
 *
 * A tape is a bump arena for every intermediate tensor of a step plus the
 * record of the operations that made them. Forward calls take the tape and
 * return tensors owned by it. mmrec_tape_backward() walks the record in
 * reverse and accumulates gradients into the model's parameters (and into
 * tape tensors that asked for one). mmrec_tape_reset() rewinds the arena in
 * O(1) and keeps its memory: after the first steps a step allocates nothing.
 *
 * Modes: MMREC_TAPE_TRAIN records operations and applies dropout;
 * MMREC_TAPE_INFERENCE records nothing (no backward possible), keeps no
 * workspace, and dropout is the identity.
 *
 * Stale tensors: every tape tensor carries the tape's generation (its step
 * number). Using a tensor from the previous step (after one reset) returns
 * MMREC_ESTALE. A handle is a pointer into the tape's arena, which later
 * steps reuse: after two resets it may alias a live tensor, and the library
 * cannot tell them apart. A host that keeps handles across steps (an FFI
 * binding, say) records mmrec_tensor_generation() when it receives a tensor
 * and, before each use, compares it with mmrec_tape_generation(): the
 * handle is live exactly while the two are equal, whatever the number of
 * resets since.
 *
 * A tape that recorded an operation on a model's parameters keeps that model
 * alive until the next reset.
 *
 * Thread safety: per-handle. Use one tape per thread. */
#ifndef MMREC_TAPE_H
#define MMREC_TAPE_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mmrec_tape_mode {
    MMREC_TAPE_TRAIN = 0,
    MMREC_TAPE_INFERENCE = 1
} mmrec_tape_mode;

/* Creates an empty tape in training mode, its generator seeded with 0.
 *   out (out) new tape, owned by the caller (mmrec_tape_destroy).
 * Returns MMREC_OK, MMREC_EINVAL (out NULL), MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_tape_create(mmrec_tape **out);

/* Destroys a tape and every tensor it owns. NULL is a no-op. Since 0.1. */
MMREC_API void mmrec_tape_destroy(mmrec_tape *tape);

/* Sets the mode (see above). Changing the mode of a tape that holds recorded
 * operations returns MMREC_ESTATE: reset it first.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, unknown mode), MMREC_ESTATE.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_tape_set_mode(mmrec_tape *tape, mmrec_tape_mode mode);

/* The current mode. Returns MMREC_OK or MMREC_EINVAL. Since 0.1. */
MMREC_API mmrec_status mmrec_tape_get_mode(const mmrec_tape *tape, mmrec_tape_mode *out);

/* Reseeds the tape's generator (dropout masks). Returns MMREC_OK or
 * MMREC_EINVAL. Since 0.1. */
MMREC_API mmrec_status mmrec_tape_seed(mmrec_tape *tape, uint64_t seed);

/* Computes d(loss)/d(x) for every recorded tensor and parameter that needs
 * it, accumulating (adding) into parameter gradients.
 *   loss (in) a tensor of this tape with exactly one element.
 * May be called more than once on the same record: gradients add up.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, loss not of this tape, more than one
 *         element), MMREC_ESTALE, MMREC_ESTATE (inference mode; loss does
 *         not depend on anything that needs a gradient), MMREC_ENOMEM (the
 *         arena could not grow mid-walk: some gradients may already have
 *         been accumulated; clear them with mmrec_model_zero_grad).
 * Thread safety: per-handle (tape); the model must not be used by another
 * thread meanwhile. Since 0.1. */
MMREC_API mmrec_status mmrec_tape_backward(mmrec_tape *tape, mmrec_tensor *loss);

/* Like mmrec_tape_backward but seeds the walk with the caller's upstream
 * gradient d_out (same shape as out), for hosts with their own autograd.
 *   d_out (in) numel(out) floats; borrowed for the duration of the call.
 * Returns as mmrec_tape_backward; MMREC_ENUMERIC when d_out holds NaN/Inf.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_tape_backward_from(mmrec_tape *tape, mmrec_tensor *out,
                                                const float *d_out);

/* Forgets every tensor and record of the step in O(1), keeping the memory.
 * NULL is a no-op. Since 0.1. */
MMREC_API void mmrec_tape_reset(mmrec_tape *tape);

/* The tape's generation: its step number, 1 at creation and one more at
 * every mmrec_tape_reset(). A tensor the tape made is live exactly while
 * this equals the tensor's mmrec_tensor_generation() (see "Stale tensors"
 * above); comparing the two numbers never touches the tensor, so it is
 * safe however old the handle is.
 *   out (out) the generation.
 * Returns MMREC_OK or MMREC_EINVAL (tape or out NULL, not a tape).
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_tape_generation(const mmrec_tape *tape, uint64_t *out);

/* Bytes reserved by the arena, and the most used by any step since
 * creation. Returns MMREC_OK or MMREC_EINVAL. Since 0.1. */
MMREC_API mmrec_status mmrec_tape_memory(const mmrec_tape *tape, size_t *capacity_out,
                                         size_t *high_water_out);

/* A new zero-filled tensor owned by the tape (e.g. to stage a batch).
 *   flags (in) 0 or MMREC_TENSOR_REQUIRES_GRAD.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, bad ndim/shape/flags), MMREC_ENOMEM.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_tape_tensor(mmrec_tape *tape, int ndim, const int64_t *shape,
                                         uint32_t flags, mmrec_tensor **out);

/* Wraps caller memory for this step: the header lives in the arena (no
 * malloc) and dies at reset; the data is borrowed and never freed.
 *   flags (in) MMREC_TENSOR_READONLY and/or MMREC_TENSOR_REQUIRES_GRAD.
 * Returns MMREC_OK, MMREC_EINVAL, MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_tape_wrap(mmrec_tape *tape, float *data, int ndim,
                                       const int64_t *shape, uint32_t flags, mmrec_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_TAPE_H */
