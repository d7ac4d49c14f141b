/* MVKE, the Mixture of Virtual-Kernel Experts user tower of Xu et al.,
 * "Mixture of Virtual-Kernel Experts for Multi-Objective User Profile
 * Modeling" (KDD 2022), as its released code computes it (the upstream
 * repository motefly/MVKE: mvke_bottom_layer, _build_mvke_layers,
 * vkg_layer and the training graph's loss).
 *
 * A user is F field embeddings X [B, F, e] (the caller's embedding layers
 * and field combiner make them). K virtual kernels VK [K, e] are trainable
 * queries; each task tau uses a subset S_tau of them. With e the width:
 *
 *   Virtual-Kernel Experts (VKE) bottom, every kernel over every field:
 *     Qk = VK Wq^T + bq [K, e],  Kf = X Wk^T + bk,  Vf = X Wv^T + bv [B, F, e]
 *     A[b, f, k] = softmax over the FIELDS f of Kf[b, f] . Qk[k] / sqrt(e)
 *     O[b, f, k, :] = LayerNorm(A[b, f, k] Vf[b, f, :] + X[b, f, :])
 *                     (over the last axis, learned weight and bias)
 *   Experts, one per kernel: E_k = MLP_k(O[b, :, k, :] flattened to F e)
 *     -> [B, e]. The released graph's per-kernel "field layers" are
 *     configured by protobufs that were not released; this library makes
 *     each expert an MLP over the flattened fields (widths F e, hidden...,
 *     e; cfg->expert_hidden), its own parameters per kernel (the released
 *     shared_model = False).
 *   Virtual-Kernel Gating (VKG) per task, from the task's tag vector t
 *   [B, e] (the output of the caller's tag tower for that task):
 *     w = softmax over k in S_tau of t . VK_k        [B, |S_tau|]
 *     u_tau = sum over k in S_tau of w_k E_k         [B, e]
 *     (no scale and no projection of VK: the released projection is
 *     commented out).
 *   Score: s_tau = <u_tau, t> (a dot product; the probability is
 *     sigmoid(s_tau)), trained with BCE per task (mmrec_loss_bce_logits),
 *     the multi-task loss sum_tau weight_tau mean_b BCE (equal weights 1
 *     as released).
 *
 * t, u_tau and the kernels share the width e: the experts' last layer
 * maps to e, and a tag tower must output e (the released code has no
 * projection; a caller whose tag tower is wider adds a Linear of its own).
 * The repository's later TF 1.x variant of the bottom (a LayerNorm over
 * the flattened F K e vector) is not offered.
 *
 * Serving: the gate depends on the tag only, so
 *   s_tau = <[E_k]_{k in S_tau}, [w_k t]_{k in S_tau}>,
 * an inner product of |S_tau| e floats. mmrec_mvke_export_user writes a
 * user's vector (the selected experts' outputs, concatenated in the order
 * of S_tau) and mmrec_mvke_export_tag a tag's (its gate weights times t),
 * so an exact inner-product top-K over the users' vectors (or the tags')
 * ranks exactly by the model's scores.
 *
 * A training step, the tags coming from the caller's tag tower (one
 * [B, e] tensor per task), labels one [B] tensor per task (error checks
 * left out):
 *   mmrec_mvke_forward(mvke, tape, fields, &experts);   (once for all tasks)
 *   mmrec_mvke_loss(mvke, tape, experts, tags, labels, NULL, 2, &loss);
 *   mmrec_tape_backward(tape, loss);
 * Serving, on an inference tape: mmrec_mvke_forward for a batch of users,
 * then mmrec_mvke_export_user per task; mmrec_mvke_export_tag for the
 * tags; mmrec_mvke_serving_dim gives the vectors' width.
 *
 * Parameters (names as the reference's layers):
 *   "<name>.virtual_kernels"                    [K, e]   N(0, init_std^2)
 *   "<name>.query_proj.{weight,bias}"           [e, e], [e]
 *   "<name>.key_proj.{weight,bias}"             [e, e], [e]
 *   "<name>.value_proj.{weight,bias}"           [e, e], [e]
 *       weights N(0, init_std^2), biases 0 (tf.layers.dense's default);
 *       key_proj.bias adds the same b . Qk[k] to every field's logit of
 *       kernel k, which the softmax over the fields removes: its gradient
 *       is 0 and it never trains (kept, as in the reference)
 *   "<name>.layer_norm.{weight,bias}"           [e]      1, 0
 *   "<name>.experts.<k>.<i>.{weight,bias}"      layer i of expert k, as
 *       mmrec_mlp_create names them (Xavier uniform weights, zero biases)
 *
 * Errors: MMREC_EINVAL (NULL, a bad config value, a tensor of another
 * tape: the message names the argument or field), MMREC_ESHAPE (the
 * message gives the shape and the one expected), MMREC_ERANGE (a task
 * index out of range), MMREC_ESTATE (the model was destroyed; a name
 * taken), MMREC_ESTALE, MMREC_ENOMEM. A failed call changes nothing.
 *
 * Thread safety: per-handle (the tape; the model while it is trained). A
 * model not being trained serves any number of threads, one tape each; the
 * export functions only read the model and may run on any thread then. */
#ifndef MMREC_MVKE_H
#define MMREC_MVKE_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"
#include "mmrec/modules.h" /* mmrec_activation */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mmrec_mvke_config {
    size_t struct_size;
    int64_t dim;                  /* e, the field embeddings' width; required, >= 1 */
    int64_t num_fields;           /* F, user fields; required, >= 1 */
    int num_kernels;              /* K; default 5 (as released); 1 .. 64 */
    int num_tasks;                /* default 2 (pctr, pcvr); 1 .. 16 */
    const int *task_kernels;      /* the tasks' kernel subsets one after the other,
                                     sum of task_num_kernels entries, each in
                                     [0, num_kernels), none twice in one task;
                                     default {0, 1, 2, 1, 2, 3, 4} (as released:
                                     pctr {0, 1, 2}, pcvr {1, 2, 3, 4}); borrowed */
    const int *task_num_kernels;  /* num_tasks subset sizes, each >= 1; default
                                     {3, 4}; borrowed */
    const int64_t *expert_hidden; /* the hidden widths of each expert MLP, input
                                     F e and output e around them; default NULL */
    int num_expert_hidden;        /* 0 .. 8; default 0 (an expert is one Linear
                                     F e -> e) */
    mmrec_activation expert_activation; /* between an expert's layers; default ReLU */
    float init_std;               /* kernels and the q/k/v projections' weights;
                                     default 0.01 (as released); > 0 */
    float layer_norm_eps;         /* default 1e-12 (tf.contrib.layers.layer_norm's);
                                     > 0 */
} mmrec_mvke_config;

/* Fills cfg with the defaults for the first `size` bytes: dim 0 and
 * num_fields 0 (must be set), num_kernels 5, num_tasks 2, task_kernels
 * {0, 1, 2, 1, 2, 3, 4}, task_num_kernels {3, 4} (library memory),
 * expert_hidden NULL, num_expert_hidden 0, expert_activation ReLU,
 * init_std 0.01, layer_norm_eps 1e-12. Call it through
 * mmrec_mvke_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_mvke_config_init_sized(mmrec_mvke_config *cfg, size_t size);
#define mmrec_mvke_config_init(cfg) mmrec_mvke_config_init_sized((cfg), sizeof *(cfg))

/* Creates an MVKE user tower named `name` in `model`, with the parameters
 * listed above drawn from the model's generator.
 *   model (in)  the model; it owns the module and its parameters.
 *   name  (in)  module name, 1..188 bytes, unique in the model; copied.
 *   cfg   (in)  from mmrec_mvke_config_init(), dim and num_fields set;
 *               borrowed for the call (its arrays are copied).
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a bad name;
 *         dim, num_fields, num_kernels, num_tasks, num_expert_hidden,
 *         init_std or layer_norm_eps out of range; task_kernels or
 *         task_num_kernels NULL; a task with no kernel, a kernel out of
 *         range or twice in one task's subset; an expert hidden width < 1;
 *         expert_activation not an mmrec_activation; a bad
 *         cfg->struct_size or a config from a newer libmmrec: the message
 *         names the field and entry), MMREC_ESTATE (a module or parameter
 *         of these names exists; the model was destroyed), MMREC_ENOMEM. A
 *         failed call leaves the model as it was.
 * Thread safety: per-handle (the model). Since 0.2. */
MMREC_API mmrec_status mmrec_mvke_create(mmrec_model *model, const char *name,
                                         const mmrec_mvke_config *cfg, mmrec_module **out);

/* The user side: the VKE bottom over the fields and every kernel's expert,
 * E [B, K, e] (E[b, k] = E_k of user b). Every task's gate and score reads
 * it, so a multi-task step runs it once.
 *   mvke   (in)  a module made by mmrec_mvke_create().
 *   tape   (in)  the step's tape (an inference tape for serving).
 *   fields (in)  X [batch, num_fields, dim], batch >= 1.
 *   out    (out) E [batch, num_kernels, dim], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, mvke not an MVKE module, fields
 *         of another tape), MMREC_ESHAPE (fields not [batch, num_fields,
 *         dim]: the message gives both), MMREC_ESTATE (the module's model
 *         was destroyed), MMREC_ESTALE, MMREC_ENOMEM. A failed call leaves
 *         the tape as it was.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_mvke_forward(mmrec_module *mvke, mmrec_tape *tape,
                                          mmrec_tensor *fields, mmrec_tensor **out);

/* The VKG gate of task `task`: u = sum over k in S_task of w_k E_k with
 * w = softmax over S_task of tag . VK_k (kernels outside S_task get weight
 * 0 and no gradient).
 *   mvke    (in)  a module made by mmrec_mvke_create().
 *   tape    (in)  the step's tape.
 *   experts (in)  E [batch, num_kernels, dim] from mmrec_mvke_forward().
 *   tag     (in)  t [batch, dim], the task's tag vector of each row.
 *   task    (in)  0 .. num_tasks - 1.
 *   out     (out) u [batch, dim], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, mvke not an MVKE module, a tensor
 *         of another tape), MMREC_ESHAPE (experts or tag of the wrong
 *         shape: the message gives both), MMREC_ERANGE (task out of range),
 *         MMREC_ESTATE, MMREC_ESTALE, MMREC_ENOMEM. A failed call leaves
 *         the tape as it was.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_mvke_gate(mmrec_module *mvke, mmrec_tape *tape,
                                       mmrec_tensor *experts, mmrec_tensor *tag, int task,
                                       mmrec_tensor **out);

/* The score logit of task `task`, s = <u_task, tag> per row (the gate
 * above, then the dot product); sigmoid(s) is the probability.
 *   mvke    (in)  a module made by mmrec_mvke_create().
 *   tape    (in)  the step's tape.
 *   experts (in)  E [batch, num_kernels, dim] from mmrec_mvke_forward().
 *   tag     (in)  t [batch, dim].
 *   task    (in)  0 .. num_tasks - 1.
 *   out     (out) s [batch], owned by `tape` until reset.
 * Returns as mmrec_mvke_gate().
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_mvke_score(mmrec_module *mvke, mmrec_tape *tape,
                                        mmrec_tensor *experts, mmrec_tensor *tag, int task,
                                        mmrec_tensor **out);

/* The multi-task loss sum over tasks of weights[task] * mean over the
 * batch of BCE(sigmoid(s_task), labels[task]) (mmrec_loss_bce_logits per
 * task), [1].
 *   mvke      (in)  a module made by mmrec_mvke_create().
 *   tape      (in)  the step's tape.
 *   experts   (in)  E [batch, num_kernels, dim] from mmrec_mvke_forward().
 *   tags      (in)  num_tasks tensors [batch, dim], task by task; borrowed
 *                   for the call.
 *   labels    (in)  num_tasks tensors [batch], targets in [0, 1]; not
 *                   differentiated; borrowed for the call.
 *   weights   (in, may be NULL) num_tasks finite weights; NULL: all 1 (as
 *                   released); borrowed for the call.
 *   num_tasks (in)  the module's number of tasks.
 *   out       (out) the loss [1], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, mvke not an MVKE module, num_tasks
 *         not the module's, a NULL entry of tags or labels, a weight not
 *         finite, a tensor of another tape: the message names it),
 *         MMREC_ESHAPE (a tag or label of the wrong shape: the message
 *         names its task), MMREC_ENUMERIC (a NaN or infinity in experts, a
 *         tag or a label: the message names it and the first bad index),
 *         MMREC_ESTATE, MMREC_ESTALE, MMREC_ENOMEM. A failed call leaves
 *         the tape as it was.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_mvke_loss(mmrec_module *mvke, mmrec_tape *tape,
                                       mmrec_tensor *experts, mmrec_tensor *const *tags,
                                       mmrec_tensor *const *labels, const float *weights,
                                       size_t num_tasks, mmrec_tensor **out);

/* The width of task `task`'s serving vectors, |S_task| * dim floats.
 *   mvke (in)  a module made by mmrec_mvke_create().
 *   task (in)  0 .. num_tasks - 1.
 *   out  (out) the width.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, mvke not an MVKE module),
 *         MMREC_ERANGE (task out of range), MMREC_ESTATE (the model was
 *         destroyed).
 * Thread safety: thread-safe while the model lives. Since 0.2. */
MMREC_API mmrec_status mmrec_mvke_serving_dim(const mmrec_module *mvke, int task, size_t *out);

/* Writes each user's serving vector of task `task` into caller memory:
 * row b is [E[b, k] for k in S_task] (the order of cfg->task_kernels),
 * |S_task| * dim floats, rows one after the other. Its inner product with
 * the tag's vector of mmrec_mvke_export_tag() is the model's score.
 *   mvke     (in)  a module made by mmrec_mvke_create().
 *   experts  (in)  E [batch, num_kernels, dim] from mmrec_mvke_forward()
 *                  (an inference tape's output, or any tensor of that
 *                  shape); read only.
 *   task     (in)  0 .. num_tasks - 1.
 *   out      (out) at least batch * mmrec_mvke_serving_dim() floats in
 *                  caller memory; untouched on failure.
 *   out_size (in)  the number of floats `out` holds.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, mvke not an MVKE module, out_size
 *         too small: the message gives both), MMREC_ESHAPE (experts of the
 *         wrong shape), MMREC_ERANGE (task out of range), MMREC_ESTATE,
 *         MMREC_ESTALE (experts of a reset step).
 * Thread safety: thread-safe while nobody trains the model. Since 0.2. */
MMREC_API mmrec_status mmrec_mvke_export_user(const mmrec_module *mvke,
                                              const mmrec_tensor *experts, int task, float *out,
                                              size_t out_size);

/* Writes each tag's serving vector of task `task` into caller memory: row
 * b is [w_k t_b for k in S_task] with w = softmax over S_task of
 * t_b . VK_k (dot products and softmax in double, each w_k t_b rounded to
 * float), |S_task| * dim floats, rows one after the other.
 *   mvke     (in)  a module made by mmrec_mvke_create().
 *   tag      (in)  t [batch, dim], the tag tower's output for the task;
 *                  read only.
 *   task     (in)  0 .. num_tasks - 1.
 *   out      (out) at least batch * mmrec_mvke_serving_dim() floats in
 *                  caller memory; untouched on failure.
 *   out_size (in)  the number of floats `out` holds.
 * Returns as mmrec_mvke_export_user() (MMREC_ESHAPE: tag of the wrong
 *         shape).
 * Thread safety: thread-safe while nobody trains the model. Since 0.2. */
MMREC_API mmrec_status mmrec_mvke_export_tag(const mmrec_module *mvke, const mmrec_tensor *tag,
                                             int task, float *out, size_t out_size);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_MVKE_H */
