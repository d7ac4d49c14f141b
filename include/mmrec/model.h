/* The model: a registry of named parameters and of the modules that own
 * them.
 *
 * Modules (modules.h) are created into a model and die with it; their
 * parameters are named "<module name>.<leaf>" (e.g. "tower.0.weight").
 * Parameters are tensors owned by the model: borrowed pointers, valid while
 * the model lives. Each trainable parameter has a gradient buffer that
 * backward accumulates into; mmrec_optimizer_step() or mmrec_model_zero_grad()
 * clears it.
 *
 * Checkpoints (mmrec_model_save / mmrec_model_load) hold every parameter and,
 * through optim.h, the optimizer state. The file format: little-endian,
 * magic "MMRECCKP", format version, a header and an index each with a CRC-32C,
 * 64-byte-aligned tensor data with a CRC-32C per tensor. Written to a
 * temporary file, fsync'ed, renamed over the target, directory fsync'ed: a
 * crash leaves the old file or the new one, never a torn one.
 *
 * Lifetime: optimizers and tapes that refer to a model keep it alive; a
 * model destroyed while referenced is freed when the last reference goes.
 *
 * Thread safety: per-handle. A model not being trained or changed is
 * read-only: any number of threads may run inference on it, one tape each. */
#ifndef MMREC_MODEL_H
#define MMREC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates an empty model whose initialization generator is seeded with 0.
 *   out (out) new model, owned by the caller (mmrec_model_destroy).
 * Returns MMREC_OK, MMREC_EINVAL (out NULL), MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_model_create(mmrec_model **out);

/* Releases the caller's reference; the model, its modules and parameters are
 * freed now or when the last optimizer/tape referring to it lets go. NULL is a
 * no-op. Since 0.1. */
MMREC_API void mmrec_model_destroy(mmrec_model *model);

/* Reseeds the generator that initializes parameters of modules created
 * afterwards. Returns MMREC_OK or MMREC_EINVAL. Since 0.1. */
MMREC_API mmrec_status mmrec_model_seed(mmrec_model *model, uint64_t seed);

/* Adds a zero-filled trainable parameter (for custom layers).
 *   name  (in)  unique, 1..255 bytes, no control characters.
 *   out   (out) the parameter; borrowed, owned by the model. May be NULL.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, bad name or shape), MMREC_ESTATE
 *         (name already used), MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_model_add_param(mmrec_model *model, const char *name, int ndim,
                                             const int64_t *shape, mmrec_tensor **out);

/* Looks a parameter up by name.
 *   out (out) borrowed parameter tensor.
 * Returns MMREC_OK, MMREC_EINVAL, MMREC_ENOTFOUND. Since 0.1. */
MMREC_API mmrec_status mmrec_model_param(const mmrec_model *model, const char *name,
                                         mmrec_tensor **out);

/* Number of parameters, and the index-th one in creation order with its
 * name (borrowed, valid while the model lives). name_out may be NULL.
 * Returns MMREC_OK, MMREC_EINVAL, MMREC_ERANGE (index >= count). Since 0.1. */
MMREC_API mmrec_status mmrec_model_num_params(const mmrec_model *model, size_t *out);
MMREC_API mmrec_status mmrec_model_param_at(const mmrec_model *model, size_t index,
                                            const char **name_out, mmrec_tensor **out);

/* Freezes (no gradient, not updated) or unfreezes every parameter whose
 * name starts with `prefix` ("" = all).
 *   count_out (out, may be NULL) number of parameters matched.
 * Returns MMREC_OK, MMREC_EINVAL, MMREC_ENOTFOUND (no parameter matched),
 *         MMREC_ENOMEM (unfreeze allocates gradient buffers).
 * Do not call between a forward and its backward. Since 0.1. */
MMREC_API mmrec_status mmrec_model_freeze(mmrec_model *model, const char *prefix,
                                          size_t *count_out);
MMREC_API mmrec_status mmrec_model_unfreeze(mmrec_model *model, const char *prefix,
                                            size_t *count_out);

/* Element counts of the trainable parameters and of all parameters.
 *   trainable_out (out, may be NULL) elements of the trainable parameters.
 *   total_out     (out, may be NULL) elements of all parameters.
 * Returns MMREC_OK or MMREC_EINVAL (model NULL or not a model).
 * Since 0.1. */
MMREC_API mmrec_status mmrec_model_param_count(const mmrec_model *model, size_t *trainable_out,
                                               size_t *total_out);

/* Zeroes every trainable parameter's gradient (only the touched rows of a
 * sparse table that only row gathers wrote). Returns MMREC_OK or MMREC_EINVAL. Since 0.1. */
MMREC_API mmrec_status mmrec_model_zero_grad(mmrec_model *model);

/* Flat buffers of the trainable parameters in creation order, for
 * data-parallel training: export gradients, all-reduce them in the host,
 * import them back, step. `n` must equal the trainable element count.
 * Importing gradients into a sparse table marks the rows holding any
 * non-zero value as touched.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, n mismatch), MMREC_ENUMERIC (import
 *         of NaN/Inf; nothing changed). Since 0.1. */
MMREC_API mmrec_status mmrec_model_export_params(const mmrec_model *model, float *dst, size_t n);
MMREC_API mmrec_status mmrec_model_import_params(mmrec_model *model, const float *src, size_t n);
MMREC_API mmrec_status mmrec_model_export_grads(const mmrec_model *model, float *dst, size_t n);
MMREC_API mmrec_status mmrec_model_import_grads(mmrec_model *model, const float *src, size_t n);

/* Saves every parameter to `path` crash-safely (see above).
 * Returns MMREC_OK, MMREC_EINVAL, MMREC_EIO (message names the path and the
 *         system error), MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_model_save(const mmrec_model *model, const char *path);

/* Loads parameters saved by mmrec_model_save into a model with the same
 * parameter names and shapes. Validates the whole file first: on any error
 * the model is unchanged.
 * Returns MMREC_OK, MMREC_EINVAL, MMREC_EIO, MMREC_EFORMAT (truncated,
 *         corrupt or foreign file; a parameter missing, extra or of another
 *         shape — the message names it), MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_model_load(mmrec_model *model, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_MODEL_H */
