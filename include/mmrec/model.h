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
 * 64-byte-aligned tensor data with a CRC-32C per tensor.
 *
 * Crash safety (checkpoints, caches and index files alike): a save writes
 * the temporary file "<path>.tmp.<pid>" in the same directory, fsyncs it,
 * renames it over `path` and fsyncs the directory, so a crash at any moment
 * (a killed process, a power loss) leaves the old file or the new one,
 * never a torn one. A failed save leaves the old file and removes its
 * temporary, with one exception: MMREC_EIO from syncing the directory comes
 * after the rename, so the new file is in place but may not survive a
 * power loss (the message says so). A process killed mid-save leaves its
 * temporary behind; the writer holds an exclusive flock on it while it
 * writes, so the next save of the same path, by any process, removes the
 * temporaries of that path nobody holds and never a live writer's. A save
 * of a path whose temporary this process holds (a cache writer not yet
 * committed) fails with MMREC_EIO and disturbs nothing.
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

/* Number of parameters (tensors, trainable or frozen) in the model.
 *   out (out) the count; parameters are indexed 0 .. count - 1 in creation
 *             order by mmrec_model_param_at().
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not a model), MMREC_ESTATE (the
 *         model was destroyed).
 * Thread safety: per-handle (the model); any number of threads may query
 * a model nobody changes. Since 0.1. */
MMREC_API mmrec_status mmrec_model_num_params(const mmrec_model *model, size_t *out);

/* The index-th parameter in creation order, with its name.
 *   index    (in)  0 .. mmrec_model_num_params() - 1.
 *   name_out (out, may be NULL) the full name ("tower.0.weight"); borrowed,
 *            valid while the model lives.
 *   out      (out) the parameter tensor; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (model or out NULL, not a model),
 *         MMREC_ESTATE (the model was destroyed), MMREC_ERANGE (index >=
 *         count; the message gives both).
 * Thread safety: per-handle (the model); any number of threads may query
 * a model nobody changes. Since 0.1. */
MMREC_API mmrec_status mmrec_model_param_at(const mmrec_model *model, size_t index,
                                            const char **name_out, mmrec_tensor **out);

/* Freezes every parameter under `prefix`: no gradient is computed for it,
 * the optimizer skips it and keeps its state, and its accumulated gradient
 * is cleared. A prefix matches whole name components: "fq.layers.1" is the
 * parameter of that name and those below it ("fq.layers.1.weight"), not
 * "fq.layers.10.weight"; a prefix ending in '.' ("enc.") matches the names
 * starting with it; "" matches every parameter.
 *   prefix    (in)  name prefix; borrowed for the call.
 *   count_out (out, may be NULL) number of parameters matched.
 * Returns MMREC_OK, MMREC_EINVAL (model or prefix NULL, not a model),
 *         MMREC_ENOTFOUND (no parameter matched), MMREC_ESTATE (a matched
 *         parameter is held by a merged LoRA; the model was destroyed).
 *         A failed call changes nothing.
 * Do not call between a forward and its backward.
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_model_freeze(mmrec_model *model, const char *prefix,
                                          size_t *count_out);

/* Unfreezes every parameter under `prefix` (matched by whole name
 * components, as mmrec_model_freeze matches them): backward computes its
 * gradient again and the optimizer updates it (starting with fresh state if
 * it had none).
 * The state of an estimator (mmrec_freq_estimator_create's arrays) is
 * never trainable: a prefix covering it unfreezes the other parameters
 * under it and leaves the state alone.
 *   prefix    (in)  name prefix; borrowed for the call.
 *   count_out (out, may be NULL) number of parameters unfrozen.
 * Returns MMREC_OK, MMREC_EINVAL (model or prefix NULL, not a model),
 *         MMREC_ENOTFOUND (no parameter matched), MMREC_ESTATE (a matched
 *         parameter is held by a merged LoRA; every matched parameter is
 *         an estimator's state; the model was destroyed),
 *         MMREC_ENOMEM (gradient buffers are allocated first, so nothing
 *         changed). A failed call changes nothing.
 * Do not call between a forward and its backward.
 * Thread safety: per-handle (the model). Since 0.1. */
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

/* Flat buffers of the trainable parameters, for data-parallel training:
 * export gradients, all-reduce them in the host, import them back, step.
 * A flat buffer holds every trainable parameter's elements, row-major, one
 * parameter after the other in creation order (frozen ones left out), so
 * its length is the trainable element count of mmrec_model_param_count(). */

/* Copies every trainable parameter's values into one flat buffer (layout
 * above), e.g. to broadcast a model to other workers.
 *   dst (out) n floats of caller memory.
 *   n   (in)  must equal the trainable element count.
 * Returns MMREC_OK, MMREC_EINVAL (model or dst NULL, not a model, n not
 *         the trainable element count: the message gives both),
 *         MMREC_ESTATE (the model was destroyed).
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_model_export_params(const mmrec_model *model, float *dst, size_t n);

/* Overwrites every trainable parameter's values from one flat buffer
 * (layout above). Frozen parameters are not touched; neither are
 * gradients nor optimizer state.
 *   src (in) n finite floats; borrowed for the call.
 *   n   (in) must equal the trainable element count.
 * Returns MMREC_OK, MMREC_EINVAL (model or src NULL, not a model, n not
 *         the trainable element count: the message gives both),
 *         MMREC_ESTATE (the model was destroyed), MMREC_ENUMERIC (a NaN or
 *         infinity in src: the message names its index; nothing changed).
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_model_import_params(mmrec_model *model, const float *src, size_t n);

/* Copies every trainable parameter's accumulated gradient into one flat
 * buffer (layout above), e.g. before an all-reduce; a sparse table
 * contributes all its rows, zeros where no gradient was added.
 *   dst (out) n floats of caller memory.
 *   n   (in)  must equal the trainable element count.
 * Returns MMREC_OK, MMREC_EINVAL (model or dst NULL, not a model, n not
 *         the trainable element count: the message gives both),
 *         MMREC_ESTATE (the model was destroyed).
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_model_export_grads(const mmrec_model *model, float *dst, size_t n);

/* Overwrites every trainable parameter's gradient from one flat buffer
 * (layout above), e.g. after an all-reduce; the next mmrec_optimizer_step()
 * uses it. Importing into a sparse table marks the rows holding any
 * non-zero value as touched.
 *   src (in) n finite floats; borrowed for the call.
 *   n   (in) must equal the trainable element count.
 * Returns MMREC_OK, MMREC_EINVAL (model or src NULL, not a model, n not
 *         the trainable element count: the message gives both),
 *         MMREC_ESTATE (the model was destroyed), MMREC_ENUMERIC (a NaN or
 *         infinity in src: the message names its index; nothing changed).
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_model_import_grads(mmrec_model *model, const float *src, size_t n);

/* Row-sparse tables and the dense part, for data-parallel training that
 * sends only the rows a step touched of large embedding tables.
 * A row-sparse table is a trainable parameter whose gradient is tracked by
 * row: the table of an Embedding made without `dense` (modules.h). A step's
 * row gathers touch its rows; only those rows' gradients may be non-zero,
 * and the optimizer updates only them. The dense part is every other
 * trainable parameter; its flat buffer (the "dense flat buffer") is the
 * flat buffer above with the row-sparse tables left out, so its length is
 * the trainable element count minus the tables' elements. */

/* Whether the index-th parameter is a row-sparse table (see above).
 *   index (in)  0 .. mmrec_model_num_params() - 1.
 *   out   (out) 1 for a trainable row-sparse table, 0 otherwise (a dense
 *               or frozen parameter).
 * Returns MMREC_OK, MMREC_EINVAL (model or out NULL, not a model),
 *         MMREC_ESTATE (the model was destroyed), MMREC_ERANGE (index >=
 *         count; the message gives both).
 * Thread safety: per-handle (the model). Since 0.2. */
MMREC_API mmrec_status mmrec_model_param_row_sparse(const mmrec_model *model, size_t index,
                                                    int *out);

/* Lists the rows of a row-sparse table whose gradient may be non-zero: the
 * rows touched since its gradient was last cleared, in the order first
 * touched; every row, in order, when an op other than a row gather wrote
 * into the table since then (its next step is then dense, modules.h).
 *   index     (in)  a row-sparse table (mmrec_model_param_row_sparse()).
 *   rows      (out) capacity row ids of caller memory; the first
 *                   *count_out are written.
 *   capacity  (in)  room in rows; the table's row count always suffices.
 *   count_out (out) number of rows listed.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not a model, index not a row-sparse
 *         table), MMREC_ESTATE (the model was destroyed), MMREC_ERANGE
 *         (index >= count; capacity below the number of rows: the message
 *         gives both, nothing is written).
 * Thread safety: per-handle (the model). Since 0.2. */
MMREC_API mmrec_status mmrec_model_grad_rows(const mmrec_model *model, size_t index,
                                             int64_t *rows, size_t capacity, size_t *count_out);

/* Overwrites a row-sparse table's gradient with rows given by id, e.g.
 * after gathering every worker's touched rows: afterwards the gradient of
 * row rows[k] is the sum of the src rows given for it, added in the order
 * given; every other row's is zero; exactly the listed rows are touched
 * (mmrec_model_grad_rows() lists them in the order first given), so the
 * next mmrec_optimizer_step() updates those rows only.
 *   index    (in) a row-sparse table (mmrec_model_param_row_sparse()).
 *   rows     (in) num_rows ids in [0, table rows), repeats allowed;
 *                 borrowed for the call. May be NULL when num_rows is 0.
 *   num_rows (in) number of ids; 0 clears the gradient.
 *   src      (in) [num_rows, dim] finite floats, row k for id rows[k];
 *                 borrowed for the call. May be NULL when num_rows is 0.
 * Returns MMREC_OK, MMREC_EINVAL (model NULL, rows or src NULL with
 *         num_rows > 0, not a model, index not a row-sparse table),
 *         MMREC_ESTATE (the model was destroyed), MMREC_ERANGE (index >=
 *         count; an id out of range: the message names its position),
 *         MMREC_ENUMERIC (a NaN or infinity in src: the message names its
 *         index). A failed call changes nothing.
 * Thread safety: per-handle (the model). Since 0.2. */
MMREC_API mmrec_status mmrec_model_set_grad_rows(mmrec_model *model, size_t index,
                                                 const int64_t *rows, size_t num_rows,
                                                 const float *src);

/* Copies the dense part's gradients into the dense flat buffer (layout
 * above): with mmrec_model_grad_rows() for the tables, everything a worker
 * contributes to a data-parallel step.
 *   dst (out) n floats of caller memory.
 *   n   (in)  must equal the dense element count.
 * Returns MMREC_OK, MMREC_EINVAL (model or dst NULL, not a model, n not
 *         the dense element count: the message gives both), MMREC_ESTATE
 *         (the model was destroyed).
 * Thread safety: per-handle (the model). Since 0.2. */
MMREC_API mmrec_status mmrec_model_export_dense_grads(const mmrec_model *model, float *dst,
                                                      size_t n);

/* Overwrites the dense part's gradients from the dense flat buffer (layout
 * above); the row-sparse tables' gradients are not touched.
 *   src (in) n finite floats; borrowed for the call.
 *   n   (in) must equal the dense element count.
 * Returns MMREC_OK, MMREC_EINVAL (model or src NULL, not a model, n not
 *         the dense element count: the message gives both),
 *         MMREC_ESTATE (the model was destroyed), MMREC_ENUMERIC (a NaN or
 *         infinity in src: the message names its index; nothing changed).
 * Thread safety: per-handle (the model). Since 0.2. */
MMREC_API mmrec_status mmrec_model_import_dense_grads(mmrec_model *model, const float *src,
                                                      size_t n);

/* Saves every parameter to `path` crash-safely (see above).
 * Returns MMREC_OK, MMREC_EINVAL, MMREC_EIO (message names the path and the
 *         system error; the old file is intact unless the message says the
 *         path is replaced), MMREC_ENOMEM. Since 0.1. */
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
