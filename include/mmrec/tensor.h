/* Tensors: dense float32, row-major, 1 to MMREC_MAX_DIMS dims, shapes listed
 * outermost first ([batch, seq, dim]).
 *
 * A tensor has exactly one owner:
 *   - a model (parameters; see model.h), valid while the model lives;
 *   - a tape (step intermediates and per-step wraps), valid until
 *     mmrec_tape_reset(); a later use returns MMREC_ESTALE;
 *   - the caller: mmrec_tensor_create() (library-allocated data) or
 *     mmrec_tensor_wrap() (caller memory, never copied, never freed by the
 *     library); both are destroyed with mmrec_tensor_destroy().
 *
 * Thread safety: per-handle. Reading a tensor from several threads is fine
 * while nobody writes it. */
#ifndef MMREC_TENSOR_H
#define MMREC_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags of mmrec_tensor_wrap(). */
enum {
    MMREC_TENSOR_READONLY = 1u << 0,     /* the library never writes the data */
    MMREC_TENSOR_REQUIRES_GRAD = 1u << 1 /* on a tape: backward computes d(loss)/d(this) */
};

/* Called when a wrap's header dies (mmrec_tensor_destroy or tape reset),
 * with the wrapped pointer; lets an FFI host keep its buffer alive exactly as
 * long as the library may read it. */
typedef void (*mmrec_release_fn)(void *user, float *data);

/* Creates a zero-filled tensor with library-allocated data.
 *   ndim  (in)  1 .. MMREC_MAX_DIMS.
 *   shape (in)  ndim sizes, each >= 1.
 *   out   (out) new tensor, owned by the caller (mmrec_tensor_destroy).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, ndim or a size out of range,
 *         element count overflows), MMREC_ENOMEM.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_tensor_create(int ndim, const int64_t *shape, mmrec_tensor **out);

/* Wraps caller memory as a tensor without copying.
 *   data    (in)  ndim-shaped row-major float32 buffer; borrowed: it must
 *                 outlive the tensor (or use mmrec_tensor_wrap_ex).
 *   flags   (in)  MMREC_TENSOR_READONLY or 0.
 *   out     (out) new header owned by the caller; destroying it frees the
 *                 header only.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, bad ndim/shape/flags), MMREC_ENOMEM.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_tensor_wrap(float *data, int ndim, const int64_t *shape,
                                         uint32_t flags, mmrec_tensor **out);

/* mmrec_tensor_wrap with a release callback (may be NULL), called once with
 * (user, data) when the header is destroyed. Since 0.1. */
MMREC_API mmrec_status mmrec_tensor_wrap_ex(float *data, int ndim, const int64_t *shape,
                                            uint32_t flags, mmrec_release_fn release,
                                            void *user, mmrec_tensor **out);

/* Destroys a caller-owned tensor (created or wrapped). NULL is a no-op.
 * Tensors owned by a model or a tape are ignored (their owner frees them).
 * Since 0.1. */
MMREC_API void mmrec_tensor_destroy(mmrec_tensor *tensor);

/* Re-points a caller-owned wrap at another buffer of the same shape.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not a wrap). Since 0.1. */
MMREC_API mmrec_status mmrec_tensor_set_data(mmrec_tensor *tensor, float *data);

/* Rank and shape.
 *   shape_out (out) MMREC_MAX_DIMS slots; the first *ndim_out are written.
 * Returns MMREC_OK, MMREC_EINVAL (NULL), MMREC_ESTALE (tape was reset).
 * Since 0.1. */
MMREC_API mmrec_status mmrec_tensor_shape(const mmrec_tensor *tensor, int *ndim_out,
                                          int64_t *shape_out);

/* Number of elements. Returns MMREC_OK, MMREC_EINVAL, MMREC_ESTALE. Since 0.1. */
MMREC_API mmrec_status mmrec_tensor_numel(const mmrec_tensor *tensor, size_t *out);

/* The generation of the tape step that made `tensor` (the tape's
 * mmrec_tape_generation() at that time), or 0 for a tensor no tape owns
 * (parameters, caller tensors and wraps). Call it while the tensor is
 * live, e.g. right after the call that returned it, and keep the number
 * with the handle: the handle stays usable exactly while its tape's
 * generation equals it.
 *   out (out) the generation.
 * Returns MMREC_OK, MMREC_EINVAL (tensor or out NULL, not a tensor),
 *         MMREC_ESTALE (its tape was reset since).
 * Thread safety: per-handle (the tensor). Since 0.2. */
MMREC_API mmrec_status mmrec_tensor_generation(const mmrec_tensor *tensor, uint64_t *out);

/* Pointer to the data (row-major float32), for reading and writing.
 *   tensor (in)  any tensor except a read-only wrap.
 *   out    (out) numel floats; borrowed from the tensor's owner: valid while
 *                the tensor is (a tape tensor until mmrec_tape_reset(), a
 *                parameter while its model lives, a wrap while the caller's
 *                buffer does).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not a tensor), MMREC_ESTALE (its
 *         tape was reset), MMREC_ESTATE (read-only wrap: use
 *         mmrec_tensor_data_const).
 * Thread safety: per-handle (the tensor). Since 0.1. */
MMREC_API mmrec_status mmrec_tensor_data(mmrec_tensor *tensor, float **out);

/* Pointer to the data (row-major float32), for reading only; works on every
 * tensor, read-only wraps included.
 *   out (out) numel floats; borrowed, valid as for mmrec_tensor_data().
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not a tensor), MMREC_ESTALE (its
 *         tape was reset).
 * Thread safety: per-handle (the tensor); any number of threads may read a
 * tensor nobody writes. Since 0.1. */
MMREC_API mmrec_status mmrec_tensor_data_const(const mmrec_tensor *tensor, const float **out);

/* Pointer to the gradient d(loss)/d(tensor) accumulated by backward, or
 * *out = NULL when no gradient was computed for it (also for a frozen
 * parameter). For a parameter it is
 * the model's accumulated gradient (cleared by mmrec_optimizer_step or
 * mmrec_model_zero_grad); for a tape tensor it lives until reset.
 * Returns MMREC_OK, MMREC_EINVAL, MMREC_ESTALE. Since 0.1. */
MMREC_API mmrec_status mmrec_tensor_grad(const mmrec_tensor *tensor, const float **out);

/* Copies the tensor's elements out, row-major.
 *   dst (out) n floats of caller memory.
 *   n   (in)  must equal the tensor's element count.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not a tensor, n != numel: the
 *         message gives both), MMREC_ESTALE (its tape was reset).
 * Thread safety: per-handle (the tensor). Since 0.1. */
MMREC_API mmrec_status mmrec_tensor_copy_to(const mmrec_tensor *tensor, float *dst, size_t n);

/* Overwrites the tensor's elements with `n` floats, row-major (for a
 * parameter: its values; a wrap: the caller's buffer it points at).
 *   tensor (in)  any tensor except a read-only wrap.
 *   src    (in)  n floats; borrowed for the call.
 *   n      (in)  must equal the tensor's element count.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not a tensor, n != numel: the
 *         message gives both), MMREC_ESTALE (its tape was reset),
 *         MMREC_ESTATE (read-only wrap). On failure nothing is written.
 * Thread safety: per-handle (the tensor); not while another thread reads
 * it. Since 0.1. */
MMREC_API mmrec_status mmrec_tensor_copy_from(mmrec_tensor *tensor, const float *src, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_TENSOR_H */
