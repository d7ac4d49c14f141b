/* Optimizers over a model's trainable parameters.
 *
 * mmrec_optimizer_step() updates every trainable parameter from its
 * accumulated gradient and then clears the gradients (the one clearing call
 * besides mmrec_model_zero_grad). Several backward calls before one step
 * accumulate (gradient accumulation).
 *
 * Update rules follow PyTorch's torch.optim classes of the same name:
 * SGD (momentum, dampening, Nesterov; weight decay added to the gradient),
 * Adam (L2 weight decay added to the gradient), AdamW (decoupled decay
 * p -= lr * wd * p), Adagrad (initial accumulator, weight decay added to the
 * gradient). Optional clipping scales all gradients by
 * min(1, clip_norm / (global L2 norm + 1e-6)) first, as
 * torch.nn.utils.clip_grad_norm_.
 *
 * Every trainable dense parameter is updated at every step, also when its
 * gradient is zero (torch with zero_grad(set_to_none=False)); frozen
 * parameters are skipped and keep their state. State is created at a
 * parameter's first step, so one unfrozen later starts afresh.
 *
 * Sparse tables (Embedding weights) are updated lazily: only rows whose
 * gradient was touched since the last step change, and their optimizer state
 * only then (as torch.optim.SparseAdam for Adam, with the parameter's step
 * count in the bias corrections; weight decay too applies to those rows
 * only); step time does not depend on the table size. This holds while the
 * table is only read through row gathers (mmrec_embedding_forward,
 * mmrec_gather_rows). A step after which any other op wrote the table's
 * gradient (the table as a matmul operand for a full softmax, tied weights,
 * graph propagation, a loss on the whole table) updates and clears every
 * row, as for a dense parameter; the next gather-only step is lazy again.
 *
 * Parameter groups: group 0 holds every parameter; mmrec_optimizer_add_group
 * moves the parameters under a name prefix (whole name components, as
 * mmrec_model_freeze matches them) into a new group with its own learning
 * rate and weight decay.
 *
 * The optimizer keeps its model alive. State (step count, moments, group
 * settings) is saved and loaded with mmrec_checkpoint_save/_load, so training
 * resumes bit for bit.
 *
 * Thread safety: per-handle; the model must not be used meanwhile. */
#ifndef MMREC_OPTIM_H
#define MMREC_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mmrec_optimizer_type {
    MMREC_OPT_SGD = 0,
    MMREC_OPT_ADAM = 1,
    MMREC_OPT_ADAMW = 2,
    MMREC_OPT_ADAGRAD = 3
} mmrec_optimizer_type;

/* What mmrec_optimizer_step() does with a gradient holding a NaN or an
 * infinity (mmrec_optimizer_config.nonfinite_grads). */
typedef enum mmrec_nonfinite_policy {
    MMREC_NONFINITE_ERROR = 0, /* refuse: MMREC_ENUMERIC, nothing changed, gradients kept */
    MMREC_NONFINITE_SKIP = 1   /* skip the step: gradients cleared, nothing updated,
                                  counted (mmrec_optimizer_skipped_steps) */
} mmrec_nonfinite_policy;

typedef struct mmrec_optimizer_config {
    size_t struct_size;
    mmrec_optimizer_type type;  /* default MMREC_OPT_ADAM */
    float lr;                   /* default 1e-3; >= 0 */
    float weight_decay;         /* default -1 = the type's: 0, AdamW 0.01 (PyTorch's) */
    float momentum;             /* SGD; default 0 */
    float dampening;            /* SGD; default 0 */
    int nesterov;               /* SGD; default 0 (needs momentum > 0, dampening 0) */
    float beta1, beta2;         /* Adam/AdamW; default 0.9, 0.999 */
    float eps;                  /* Adam/AdamW 1e-8, Adagrad 1e-10 by default */
    float initial_accumulator;  /* Adagrad; default 0 */
    float clip_norm;            /* global-norm clipping; default 0 = off */
    int nonfinite_grads;        /* an mmrec_nonfinite_policy; default 0 =
                                   MMREC_NONFINITE_ERROR (since 0.2) */
} mmrec_optimizer_config;

/* Fills the defaults above (type MMREC_OPT_ADAM); set cfg.type and the
 * fields you need after it. eps = 0 and, for AdamW, weight_decay < 0 mean
 * "the type's default".
 * Returns MMREC_OK or MMREC_EINVAL. Since 0.1. */
MMREC_API mmrec_status mmrec_optimizer_config_init_sized(mmrec_optimizer_config *cfg,
                                                         size_t size);
#define mmrec_optimizer_config_init(cfg) mmrec_optimizer_config_init_sized((cfg), sizeof *(cfg))

/* Creates an optimizer over the trainable parameters of `model` (those
 * frozen later are skipped; unfrozen later are included).
 *   out (out) new optimizer, owned by the caller (mmrec_optimizer_destroy).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a config value out of range: the
 *         message names it), MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_optimizer_create(mmrec_model *model,
                                              const mmrec_optimizer_config *cfg,
                                              mmrec_optimizer **out);

/* Destroys the optimizer and releases its model. NULL is a no-op. Since 0.1. */
MMREC_API void mmrec_optimizer_destroy(mmrec_optimizer *opt);

/* One update of every trainable parameter, then clears the gradients.
 * Every gradient it reads is checked for NaN and infinity first, in the
 * same pass that sums the squares for the global norm (dense parameters
 * whole, row-sparse tables at their touched rows only). With one found the
 * step changes no parameter, no optimizer state and not the step count:
 * under MMREC_NONFINITE_ERROR (the default) it returns MMREC_ENUMERIC and
 * keeps the gradients; under MMREC_NONFINITE_SKIP it clears the gradients,
 * counts the skip (mmrec_optimizer_skipped_steps) and returns MMREC_OK.
 * Returns MMREC_OK, MMREC_EINVAL, MMREC_ENUMERIC (a NaN/Inf gradient: the
 *         message names the parameter and the first bad flat index; nothing
 *         was updated and the gradients are kept), MMREC_ENOMEM (state for
 *         a parameter unfrozen later), MMREC_ESTATE (the model was
 *         destroyed; the optimizer kept it alive).
 * Since 0.1. */
MMREC_API mmrec_status mmrec_optimizer_step(mmrec_optimizer *opt);

/* Moves the parameters under `prefix` into a new group: prefixes match whole
 * name components ("fq.layers.1" is not "fq.layers.10"; "content." and ""
 * as in mmrec_model_freeze). Parameters added to the model later join the
 * newest group whose prefix they are under.
 *   lr, weight_decay (in) the group's settings (>= 0, finite).
 *   group_out (out, may be NULL) the new group's id (1, 2, ...).
 * Returns MMREC_OK, MMREC_EINVAL, MMREC_ENOTFOUND (no parameter matched),
 *         MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_optimizer_add_group(mmrec_optimizer *opt, const char *prefix,
                                                 float lr, float weight_decay, int *group_out);

/* Sets a group's learning rate, used from the next step on (e.g. a
 * schedule, once per step).
 *   group (in) 0 (every parameter not moved to another group) or an id
 *              returned by mmrec_optimizer_add_group().
 *   lr    (in) >= 0, finite.
 * Returns MMREC_OK, MMREC_EINVAL (opt NULL, not an optimizer, lr < 0 or not
 *         finite), MMREC_ERANGE (no such group; the message gives the
 *         group count).
 * Thread safety: per-handle (the optimizer). Since 0.1. */
MMREC_API mmrec_status mmrec_optimizer_set_lr(mmrec_optimizer *opt, int group, float lr);

/* A group's current learning rate: the config's lr, that given to
 * mmrec_optimizer_add_group(), the last mmrec_optimizer_set_lr(), or the
 * value restored by mmrec_checkpoint_load().
 *   group (in)  as for mmrec_optimizer_set_lr().
 *   out   (out) the learning rate.
 * Returns MMREC_OK, MMREC_EINVAL (opt or out NULL, not an optimizer),
 *         MMREC_ERANGE (no such group; the message gives the group count).
 * Thread safety: per-handle (the optimizer). Since 0.1. */
MMREC_API mmrec_status mmrec_optimizer_get_lr(const mmrec_optimizer *opt, int group,
                                              float *out);

/* Number of successful mmrec_optimizer_step() calls (a failed step does not
 * count), including those of the run a checkpoint restored.
 *   out (out) the count; 0 for a new optimizer.
 * Returns MMREC_OK or MMREC_EINVAL (opt or out NULL, not an optimizer).
 * Thread safety: per-handle (the optimizer). Since 0.1. */
MMREC_API mmrec_status mmrec_optimizer_step_count(const mmrec_optimizer *opt, uint64_t *out);

/* Number of steps skipped for a NaN or infinite gradient under
 * MMREC_NONFINITE_SKIP since the optimizer was created (not saved in
 * checkpoints: a loaded optimizer keeps its own count).
 *   opt (in)  the optimizer; borrowed.
 *   out (out) the count; 0 for a new optimizer.
 * Returns MMREC_OK or MMREC_EINVAL (opt or out NULL, not an optimizer).
 * Thread safety: per-handle (the optimizer). Since 0.2. */
MMREC_API mmrec_status mmrec_optimizer_skipped_steps(const mmrec_optimizer *opt, uint64_t *out);

/* The global L2 norm of the trainable parameters' gradients seen by the
 * last successful step, before clipping (what clip_norm is compared with;
 * computed whether clipping is on or not).
 *   out (out) the norm; 0 before the first step; restored by
 *             mmrec_checkpoint_load().
 * Returns MMREC_OK or MMREC_EINVAL (opt or out NULL, not an optimizer).
 * Thread safety: per-handle (the optimizer). Since 0.1. */
MMREC_API mmrec_status mmrec_optimizer_last_grad_norm(const mmrec_optimizer *opt, float *out);

/* Saves the model's parameters and, when opt is not NULL, the optimizer's
 * state into one checkpoint (format in model.h), crash-safely (model.h says
 * what a crash or a failed save leaves).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, opt of another model), MMREC_EIO
 *         (message names the path and the system error), MMREC_ENOMEM.
 *         Since 0.1. */
MMREC_API mmrec_status mmrec_checkpoint_save(const mmrec_model *model,
                                             const mmrec_optimizer *opt, const char *path);

/* Loads a checkpoint into the model and, when opt is not NULL, the
 * optimizer (which must be of the same type and groups). Validates the
 * whole file first: on error nothing changed. The optimizer gets back its
 * step count, every parameter's state (parameters without state in the file
 * start afresh) and each group's lr and weight decay; the other settings
 * (betas, eps, momentum, clipping) stay those of its own config.
 * Returns MMREC_OK, MMREC_EINVAL, MMREC_EIO, MMREC_EFORMAT (truncated,
 *         corrupt, foreign, another model's or another optimizer's file: the
 *         message names what differs), MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_checkpoint_load(mmrec_model *model, mmrec_optimizer *opt,
                                             const char *path);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_OPTIM_H */
