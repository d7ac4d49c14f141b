/* Modules: layers whose parameters live in a model.
 *
 * A module is created into a model under a unique name and dies with the
 * model (there is no module destroy). Its parameters are registered in the
 * model as "<name>.<leaf>", using PyTorch's names for the same layer
 * (Linear: "weight" [out_dim, in_dim] and "bias"; MultiheadAttention:
 * "in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"; ...),
 * so a PyTorch state_dict maps onto a libmmrec model name for name.
 * Parameters are initialized from the model's seeded generator.
 *
 * Forward calls take the module, the step's tape, the inputs, and write a
 * tensor owned by the tape. They record one node per fused layer on a
 * training tape and nothing on an inference tape.
 *
 * Config structs begin with their size and are filled by
 * mmrec_X_config_init(&cfg) (a macro over the exported _sized function):
 * set the fields you need after it.
 *
 * Errors: MMREC_EINVAL (NULL, bad config value: the message names the
 * field), MMREC_ESTATE (name taken; model destroyed), MMREC_ESHAPE (input
 * shape vs config, with both), MMREC_ERANGE (id out of range), MMREC_ESTALE,
 * MMREC_ENOMEM.
 *
 * Thread safety: creating modules is per-handle (the model). Forward calls
 * on the same module from several threads, each with its own inference-mode
 * tape, are safe while nobody updates the parameters (serving). Training
 * tapes record into the model (gradients, its reference count): one
 * training thread per model. */
#ifndef MMREC_MODULES_H
#define MMREC_MODULES_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Activation functions for MLP and the Transformer feed-forward. */
typedef enum mmrec_activation {
    MMREC_ACT_NONE = 0,
    MMREC_ACT_RELU = 1,
    MMREC_ACT_GELU = 2,      /* erf form */
    MMREC_ACT_GELU_TANH = 3, /* tanh approximation */
    MMREC_ACT_SIGMOID = 4,
    MMREC_ACT_TANH = 5
} mmrec_activation;

/* Weight initializations. */
typedef enum mmrec_init {
    MMREC_INIT_XAVIER_UNIFORM = 0, /* U(-a, a), a = sqrt(6 / (fan_in + fan_out)) */
    MMREC_INIT_NORMAL = 1,         /* N(0, init_std^2) */
    MMREC_INIT_ZEROS = 2
} mmrec_init;

/* ---- Linear: y = x W^T + b, x [..., in_dim] -> [..., out_dim] ---- */
typedef struct mmrec_linear_config {
    size_t struct_size;
    int64_t in_dim, out_dim; /* required, >= 1 */
    int bias;                /* default 1 */
    mmrec_init init;         /* weight; default Xavier uniform; bias starts at 0 */
    float init_std;          /* for MMREC_INIT_NORMAL; default 0.02 */
} mmrec_linear_config;

/* Fills cfg with defaults for the first `size` bytes (size = sizeof *cfg).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 * released struct). Since 0.1. */
MMREC_API mmrec_status mmrec_linear_config_init_sized(mmrec_linear_config *cfg, size_t size);
#define mmrec_linear_config_init(cfg) mmrec_linear_config_init_sized((cfg), sizeof *(cfg))

/* Creates a Linear layer named `name` in `model`: parameters
 * "<name>.weight" [out_dim, in_dim], initialized per cfg->init from the
 * model's generator, and with cfg->bias "<name>.bias" [out_dim], zeros.
 *   model (in)  the model; it owns the module and its parameters.
 *   name  (in)  module name, 1..200 bytes, unique in the model; copied.
 *   cfg   (in)  from mmrec_linear_config_init(), in_dim and out_dim set;
 *               borrowed for the call.
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a name empty,
 *         over 200 bytes or with control characters; in_dim or out_dim < 1;
 *         init not an mmrec_init; init_std not > 0 with MMREC_INIT_NORMAL;
 *         a bad cfg->struct_size or a config from a newer libmmrec),
 *         MMREC_ESTATE (a module or parameter of that name exists; the
 *         model was destroyed), MMREC_ENOMEM. A failed call leaves the
 *         model as it was.
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_linear_create(mmrec_model *model, const char *name,
                                           const mmrec_linear_config *cfg, mmrec_module **out);

/* y = x W^T + b over the last dim of x (torch.nn.Linear), one node on a
 * training tape; with an unmerged LoRA attached, the LoRA form below.
 *   linear (in)  a module made by mmrec_linear_create().
 *   tape   (in)  the step's tape.
 *   x      (in)  [..., in_dim], 1 to 4 dims.
 *   out    (out) [..., out_dim], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, linear not a Linear module, x of
 *         another tape), MMREC_ESTATE (the module's model was destroyed),
 *         MMREC_ESHAPE (the last dim of x is not in_dim; the message gives
 *         x's shape and in_dim), MMREC_ESTALE (x from a reset step),
 *         MMREC_ENOMEM. A failed call leaves the tape as it was.
 * Thread safety: per-handle (the tape). Threads with inference tapes may
 * share the module while nobody changes its parameters; a training tape
 * records into the model, so one training thread per model. Since 0.1. */
MMREC_API mmrec_status mmrec_linear_forward(mmrec_module *linear, mmrec_tape *tape,
                                            mmrec_tensor *x, mmrec_tensor **out);

/* ---- LoRA on a Linear module ----
 * y = sg(x W^T + b) + (alpha / rank) (x A^T) B^T, with A [rank, in] and
 * B [out, rank] added to the model as "<linear>.lora_A" / "<linear>.lora_B"
 * (A Xavier-uniform, B zero, so the layer starts as before). Attaching
 * freezes the layer's weight and bias; sg (stop-gradient) means the frozen
 * path passes no gradient at all, also not to x: only the low-rank path
 * trains and backpropagates, which is what makes LoRA cheap on long
 * sequences. Parameter counts, optimizers and checkpoints see A and B like
 * any parameter. */
typedef struct mmrec_lora_config {
    size_t struct_size;
    int rank;    /* required, 1 .. min(in, out) */
    float alpha; /* scale numerator; default = rank (scale 1) when 0 */
} mmrec_lora_config;

/* Fills cfg with the defaults for the first `size` bytes: rank 0 (to be
 * set), alpha 0 (scale 1). Call it through mmrec_lora_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_lora_config_init_sized(mmrec_lora_config *cfg, size_t size);
#define mmrec_lora_config_init(cfg) mmrec_lora_config_init_sized((cfg), sizeof *(cfg))

/* Attaches LoRA to a Linear module (once): adds A and B, freezes W and the
 * bias. Returns MMREC_OK, MMREC_EINVAL (NULL, not a Linear, rank outside
 * [1, min(in, out)], alpha < 0 or not finite), MMREC_ESTATE (already
 * attached), MMREC_ENOMEM. Thread safety: per-handle (the model).
 * Since 0.1. */
MMREC_API mmrec_status mmrec_lora_attach(mmrec_module *linear, const mmrec_lora_config *cfg);

/* Merge for serving: W += (alpha / rank) B A, after which the forward is the
 * plain Linear (one product). While merged, W, the bias, A and B are held
 * frozen: the optimizer skips them (a step cannot train B A into W), and
 * mmrec_model_freeze / _unfreeze naming any of them, mmrec_checkpoint_save /
 * _load and mmrec_model_save / _load return MMREC_ESTATE. The merge keeps a
 * copy of W (allocated here) for mmrec_lora_unmerge().
 *   linear (in) a Linear module with LoRA attached and not merged.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not a Linear), MMREC_ESTATE (no
 *         LoRA attached; already merged; the model was destroyed),
 *         MMREC_ENOMEM (the copy of W; nothing changed).
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_lora_merge(mmrec_module *linear);

/* Undoes mmrec_lora_merge(): restores W exactly, bit for bit, from the copy
 * taken at merge (and frees it), and gives W, the bias, A and B back the
 * trainable state they had before the merge. Allocates nothing.
 *   linear (in) a Linear module whose LoRA is merged.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not a Linear), MMREC_ESTATE (no
 *         LoRA attached; not merged; the model was destroyed).
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_lora_unmerge(mmrec_module *linear);

/* ---- Bottleneck adapter: y = x + Up(act(Down(x))) ----
 * The residual adapter of Houlsby et al. (2019) as IISAN's side adapter
 * network uses it (AdapterBlock of github.com/GAIR-Lab/IISAN): Down
 * [dim -> bottleneck_dim] and Up [bottleneck_dim -> dim] are Linear layers
 * with biases, x [..., dim]. Parameters "<name>.fc_down.weight"
 * [bottleneck_dim, dim], "<name>.fc_down.bias" [bottleneck_dim],
 * "<name>.fc_up.weight" [dim, bottleneck_dim], "<name>.fc_up.bias" [dim]:
 * weights N(0, init_std^2), biases zero, as the reference. The reference
 * creates a dropout it never applies; there is none here. Forward and
 * backward are one fused node (four BLAS products backward). */
typedef struct mmrec_adapter_config {
    size_t struct_size;
    int64_t dim;                 /* required: the width of x, >= 1 */
    int64_t bottleneck_dim;      /* default 64 */
    mmrec_activation activation; /* default MMREC_ACT_RELU; MMREC_ACT_GELU is the
                                    reference's other choice; any mmrec_activation */
    float init_std;              /* std of both weights; default 0.01 */
} mmrec_adapter_config;

/* Fills cfg with the defaults for the first `size` bytes: dim 0 (to be
 * set), bottleneck_dim 64, activation MMREC_ACT_RELU, init_std 0.01. Call
 * it through mmrec_adapter_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_adapter_config_init_sized(mmrec_adapter_config *cfg, size_t size);
#define mmrec_adapter_config_init(cfg) mmrec_adapter_config_init_sized((cfg), sizeof *(cfg))

/* Creates a bottleneck adapter named `name` in `model` with the parameters
 * above, drawn from the model's generator.
 *   model (in)  the model; it owns the module and its parameters.
 *   name  (in)  module name, 1..200 bytes, unique in the model; copied.
 *   cfg   (in)  from mmrec_adapter_config_init(), dim set; borrowed for
 *               the call.
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a bad name as
 *         for mmrec_linear_create; dim or bottleneck_dim < 1; activation
 *         not an mmrec_activation; init_std not > 0 and finite; a bad
 *         cfg->struct_size or a config from a newer libmmrec: the message
 *         names the field), MMREC_ESTATE (a module or parameter of that
 *         name exists; the model was destroyed), MMREC_ENOMEM. A failed
 *         call leaves the model as it was.
 * Thread safety: per-handle (the model). Since 0.2. */
MMREC_API mmrec_status mmrec_adapter_create(mmrec_model *model, const char *name,
                                            const mmrec_adapter_config *cfg,
                                            mmrec_module **out);

/* y = x + act(x W_down^T + b_down) W_up^T + b_up over the last dim of x,
 * one node on a training tape.
 *   adapter (in)  a module made by mmrec_adapter_create().
 *   tape    (in)  the step's tape.
 *   x       (in)  [..., dim], 1 to 4 dims.
 *   out     (out) the shape of x, owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, adapter not an adapter module, x
 *         of another tape), MMREC_ESTATE (the module's model was
 *         destroyed), MMREC_ESHAPE (the last dim of x is not dim; the
 *         message gives x's shape and dim), MMREC_ESTALE (x from a reset
 *         step), MMREC_ENOMEM. A failed call leaves the tape as it was.
 * Thread safety: per-handle (the tape); the module may be shared as for
 * mmrec_linear_forward(). Since 0.2. */
MMREC_API mmrec_status mmrec_adapter_forward(mmrec_module *adapter, mmrec_tape *tape,
                                             mmrec_tensor *x, mmrec_tensor **out);

/* ---- MLP: Linear layers with an activation (and dropout) between ----
 * Parameters "<name>.<i>.weight", "<name>.<i>.bias" for layer i. */
typedef struct mmrec_mlp_config {
    size_t struct_size;
    const int64_t *sizes;        /* required: num_sizes sizes, input first; borrowed */
    int num_sizes;               /* >= 2 (num_sizes - 1 Linear layers), <= 33 */
    mmrec_activation activation; /* between layers; default ReLU */
    int activate_last;           /* also after the last layer; default 0 */
    float dropout;               /* after each hidden activation, [0, 1); default 0 */
    int bias;                    /* default 1 */
    mmrec_init init;             /* default Xavier uniform */
    float init_std;              /* default 0.02 */
} mmrec_mlp_config;

/* Fills cfg with the defaults for the first `size` bytes: sizes NULL and
 * num_sizes 0 (to be set), activation ReLU, activate_last 0, dropout 0,
 * bias 1, init Xavier uniform, init_std 0.02. Call it through
 * mmrec_mlp_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_mlp_config_init_sized(mmrec_mlp_config *cfg, size_t size);
#define mmrec_mlp_config_init(cfg) mmrec_mlp_config_init_sized((cfg), sizeof *(cfg))

/* Creates an MLP named `name` in `model`: num_sizes - 1 Linear layers,
 * layer i mapping sizes[i] to sizes[i + 1] with parameters
 * "<name>.<i>.weight" [sizes[i + 1], sizes[i]] (cfg->init) and, with
 * cfg->bias, "<name>.<i>.bias" (zeros), drawn from the model's generator.
 *   model (in)  the model; it owns the module and its parameters.
 *   name  (in)  module name, 1..200 bytes, unique in the model; copied.
 *   cfg   (in)  from mmrec_mlp_config_init(), sizes and num_sizes set;
 *               borrowed for the call (sizes too: the sizes are copied).
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a bad name as
 *         for mmrec_linear_create; num_sizes outside [2, 33]; sizes NULL or
 *         a size < 1; activation not an mmrec_activation; dropout outside
 *         [0, 1); init or init_std as for mmrec_linear_create; a bad
 *         cfg->struct_size or a config from a newer libmmrec: the message
 *         names the field), MMREC_ESTATE (a module or parameter of that
 *         name exists; the model was destroyed), MMREC_ENOMEM. A failed
 *         call leaves the model as it was.
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_mlp_create(mmrec_model *model, const char *name,
                                        const mmrec_mlp_config *cfg, mmrec_module **out);

/* Runs the MLP: h_0 = x, h_{i+1} = Linear_i(h_i) followed by the activation
 * (after the last layer only with activate_last) and, after each hidden
 * layer, dropout with probability cfg->dropout (training tapes only; the
 * identity on inference tapes). One node per layer, activation and
 * dropout on a training tape.
 *   mlp  (in)  a module made by mmrec_mlp_create().
 *   tape (in)  the step's tape.
 *   x    (in)  [..., sizes[0]], 1 to 4 dims.
 *   out  (out) [..., sizes[num_sizes - 1]], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, mlp not an MLP module, x of
 *         another tape), MMREC_ESTATE (the module's model was destroyed),
 *         MMREC_ESHAPE (the last dim of x is not sizes[0]; the message
 *         gives x's shape and sizes[0]), MMREC_ESTALE (x from a reset
 *         step), MMREC_ENOMEM. A failed call leaves the tape as it was.
 * Thread safety: per-handle (the tape); the module may be shared as for
 * mmrec_linear_forward(). Since 0.1. */
MMREC_API mmrec_status mmrec_mlp_forward(mmrec_module *mlp, mmrec_tape *tape, mmrec_tensor *x,
                                         mmrec_tensor **out);

/* ---- Embedding: rows of a [num_rows, dim] table ("<name>.weight") ----
 * By default the gradient is row-sparse: backward and the optimizer touch
 * only the rows gathered in the step (torch.nn.Embedding(sparse=True) with
 * a lazy optimizer such as SparseAdam). Used by any other op as well (e.g.
 * its weight as the output layer of a full softmax), the table trains as a
 * dense parameter in the steps where that happens (optim.h). With `dense`
 * the table is always a dense parameter: every step updates every row, as
 * torch.nn.Embedding's default (sparse=False) with torch.optim.Adam does
 * (moments of untouched rows decay, weight decay reaches every row). */
typedef struct mmrec_embedding_config {
    size_t struct_size;
    int64_t num_rows, dim;  /* required, >= 1 */
    mmrec_init init;        /* default MMREC_INIT_NORMAL */
    float init_std;         /* default 1.0 (PyTorch's N(0, 1)) */
    int dense;              /* 0 (default): row-sparse updates; 1: dense. Since 0.2 */
} mmrec_embedding_config;

/* Fills cfg with the defaults for the first `size` bytes: num_rows and dim
 * 0 (to be set), init MMREC_INIT_NORMAL, init_std 1.0, dense 0 (row-sparse).
 * Call it through mmrec_embedding_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg; a caller built against 0.1 passes the 0.1 size
 *              (without `dense`) and gets the row-sparse table.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_embedding_config_init_sized(mmrec_embedding_config *cfg,
                                                         size_t size);
#define mmrec_embedding_config_init(cfg) mmrec_embedding_config_init_sized((cfg), sizeof *(cfg))

/* Creates an Embedding named `name` in `model`: the table "<name>.weight"
 * [num_rows, dim], row-sparse unless cfg->dense (see above), initialized
 * from the model's generator: N(0, init_std^2) (the default, PyTorch's
 * N(0, 1)), Xavier uniform with fan_in dim and fan_out num_rows, or zeros.
 *   model (in)  the model; it owns the module and the table.
 *   name  (in)  module name, 1..200 bytes, unique in the model; copied.
 *   cfg   (in)  from mmrec_embedding_config_init(), num_rows and dim set;
 *               borrowed for the call.
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a bad name as
 *         for mmrec_linear_create; num_rows or dim < 1; dense not 0 or 1;
 *         init not an mmrec_init; init_std not > 0 with MMREC_INIT_NORMAL;
 *         a bad cfg->struct_size or a config from a newer libmmrec),
 *         MMREC_ESTATE (a module or parameter of that name exists; the
 *         model was destroyed), MMREC_ENOMEM. A failed call leaves the
 *         model as it was.
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_embedding_create(mmrec_model *model, const char *name,
                                              const mmrec_embedding_config *cfg,
                                              mmrec_module **out);

/* Looks up rows of the table: out[i] = weight[ids[i]], as
 * mmrec_gather_rows() on "<name>.weight". The backward adds into the
 * gathered rows only and, for a row-sparse table, marks them for the
 * optimizer's lazy update.
 *   embedding (in)  a module made by mmrec_embedding_create().
 *   tape      (in)  the step's tape.
 *   ids       (in)  n row ids, each in [0, num_rows), repeats allowed;
 *                   borrowed for the call (the tape keeps a copy for the
 *                   backward).
 *   n         (in)  >= 1.
 *   out       (out) [n, dim], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, embedding not an Embedding module,
 *         n == 0), MMREC_ESTATE (the module's model was destroyed),
 *         MMREC_ERANGE (an id out of range; the message names the first
 *         such index and its id), MMREC_ENOMEM. A failed call leaves the
 *         tape as it was.
 * Thread safety: per-handle (the tape); the module may be shared as for
 * mmrec_linear_forward(). Since 0.1. */
MMREC_API mmrec_status mmrec_embedding_forward(mmrec_module *embedding, mmrec_tape *tape,
                                               const int64_t *ids, size_t n, mmrec_tensor **out);

/* ---- LayerNorm over the last dim ("<name>.weight", "<name>.bias") ---- */
typedef struct mmrec_layernorm_config {
    size_t struct_size;
    int64_t dim;      /* required */
    float eps;        /* default 1e-5 */
    int affine;       /* default 1: learnable weight (1) and bias (0) */
} mmrec_layernorm_config;

/* Fills cfg with the defaults for the first `size` bytes: dim 0 (to be
 * set), eps 1e-5, affine 1. Call it through mmrec_layernorm_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_layernorm_config_init_sized(mmrec_layernorm_config *cfg,
                                                         size_t size);
#define mmrec_layernorm_config_init(cfg) mmrec_layernorm_config_init_sized((cfg), sizeof *(cfg))

/* Creates a LayerNorm over the last dim named `name` in `model`; with
 * cfg->affine (any non-zero value), parameters "<name>.weight" [dim] (ones)
 * and "<name>.bias" [dim] (zeros), as torch.nn.LayerNorm(dim, eps).
 *   model (in)  the model; it owns the module and its parameters.
 *   name  (in)  module name, 1..200 bytes, unique in the model; copied.
 *   cfg   (in)  from mmrec_layernorm_config_init(), dim set; borrowed for
 *               the call.
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a bad name as
 *         for mmrec_linear_create; dim < 1; eps not > 0 or not finite; a
 *         bad cfg->struct_size or a config from a newer libmmrec),
 *         MMREC_ESTATE (a module or parameter of that name exists; the
 *         model was destroyed), MMREC_ENOMEM. A failed call leaves the
 *         model as it was.
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_layernorm_create(mmrec_model *model, const char *name,
                                              const mmrec_layernorm_config *cfg,
                                              mmrec_module **out);

/* (x - mean) / sqrt(var + eps) * weight + bias over the last dim of x, the
 * variance biased (mmrec_layer_norm() with the module's parameters; no
 * weight and bias without affine). One node on a training tape.
 *   layernorm (in)  a module made by mmrec_layernorm_create().
 *   tape      (in)  the step's tape.
 *   x         (in)  [..., dim], 1 to 4 dims.
 *   out       (out) shape of x, owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, layernorm not a LayerNorm module,
 *         x of another tape), MMREC_ESTATE (the module's model was
 *         destroyed), MMREC_ESHAPE (the last dim of x is not dim; the
 *         message gives x's shape and dim), MMREC_ESTALE (x from a reset
 *         step), MMREC_ENOMEM.
 * Thread safety: per-handle (the tape); the module may be shared as for
 * mmrec_linear_forward(). Since 0.1. */
MMREC_API mmrec_status mmrec_layernorm_forward(mmrec_module *layernorm, mmrec_tape *tape,
                                               mmrec_tensor *x, mmrec_tensor **out);

/* ---- Multi-head self-attention, as torch.nn.MultiheadAttention with
 * batch_first=True: x [batch, seq, dim] -> [batch, seq, dim]. ---- */
typedef struct mmrec_mha_config {
    size_t struct_size;
    int64_t dim;        /* required */
    int num_heads;      /* required; divides dim */
    float dropout;      /* on attention probabilities; default 0 */
    int bias;           /* default 1 */
    int causal;         /* default 0: 1 adds a causal mask */
} mmrec_mha_config;

/* Fills cfg with the defaults for the first `size` bytes: dim and
 * num_heads 0 (to be set), dropout 0, bias 1, causal 0. Call it through
 * mmrec_mha_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_mha_config_init_sized(mmrec_mha_config *cfg, size_t size);
#define mmrec_mha_config_init(cfg) mmrec_mha_config_init_sized((cfg), sizeof *(cfg))

/* Creates a multi-head self-attention layer named `name` in `model`, with
 * torch.nn.MultiheadAttention's parameters: "<name>.in_proj_weight"
 * [3 dim, dim] (q, k, v stacked) and "<name>.out_proj.weight" [dim, dim],
 * Xavier uniform from the model's generator, and with cfg->bias
 * "<name>.in_proj_bias" [3 dim] and "<name>.out_proj.bias" [dim], zeros.
 *   model (in)  the model; it owns the module and its parameters.
 *   name  (in)  module name, 1..200 bytes, unique in the model; copied.
 *   cfg   (in)  from mmrec_mha_config_init(), dim and num_heads set;
 *               borrowed for the call.
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a bad name as
 *         for mmrec_linear_create; dim < 1; num_heads < 1 or not dividing
 *         dim; dropout outside [0, 1); a bad cfg->struct_size or a config
 *         from a newer libmmrec), MMREC_ESTATE (a module or parameter of
 *         that name exists; the model was destroyed), MMREC_ENOMEM. A
 *         failed call leaves the model as it was.
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_mha_create(mmrec_model *model, const char *name,
                                        const mmrec_mha_config *cfg, mmrec_module **out);

/* Self-attention of x over itself: [q k v] = x W_in^T + b_in; per head h
 * (dh = dim / num_heads), O_h = softmax(Q_h K_h^T / sqrt(dh), masked) V_h,
 * dropout on the probabilities (training tapes only); out = [O_1 .. O_H]
 * W_out^T + b_out. With cfg->causal, query i sees keys j <= i only.
 *   mha      (in)  a module made by mmrec_mha_create().
 *   tape     (in)  the step's tape.
 *   x        (in)  [batch, seq, dim].
 *   key_mask (in, may be NULL) [batch, seq]: 1 (non-zero) = real token,
 *            0 = padding (PyTorch's key_padding_mask inverted); not
 *            differentiated. A query whose keys are all masked attends to
 *            nothing and outputs the out_proj bias.
 *   out      (out) [batch, seq, dim], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, mha not an attention module, a
 *         tensor of another tape), MMREC_ESTATE (the module's model was
 *         destroyed), MMREC_ESHAPE (x not [batch, seq, dim], key_mask not
 *         [batch, seq]; the message gives the shapes), MMREC_ESTALE,
 *         MMREC_ENOMEM. A failed call leaves the tape as it was.
 * Thread safety: per-handle (the tape); the module may be shared as for
 * mmrec_linear_forward(). Since 0.1. */
MMREC_API mmrec_status mmrec_mha_forward(mmrec_module *mha, mmrec_tape *tape, mmrec_tensor *x,
                                         mmrec_tensor *key_mask, mmrec_tensor **out);

/* Flags of mmrec_mha_forward_probs() and mmrec_transformer_forward_probs():
 * the attention probabilities per head (0, torch's need_weights=True with
 * average_attn_weights=False) or averaged over the heads (torch's
 * average_attn_weights=True). Since 0.2. */
typedef enum mmrec_attn_probs_flags {
    MMREC_ATTN_PROBS_PER_HEAD = 0,
    MMREC_ATTN_PROBS_AVERAGE = 1
} mmrec_attn_probs_flags;

/* mmrec_mha_forward() that also returns the attention probabilities
 * P_h = softmax(Q_h K_h^T / sqrt(dh), masked) as a differentiable tensor of
 * the tape, for attention-map losses (distillation of attention maps): a
 * loss on `probs` back-propagates through the softmax into x and the
 * in-projection. `probs` are before dropout, as torch's weights; a masked
 * key has probability 0, and a query whose keys are all masked has a zero
 * row. `out` is the same value as mmrec_mha_forward() gives. The path is
 * recorded as two nodes (probabilities, then their product with V), so it
 * keeps the probabilities as long as the tape: a [batch, heads, seq, seq]
 * buffer per call.
 *   mha      (in)  a module made by mmrec_mha_create().
 *   tape     (in)  the step's tape.
 *   x        (in)  [batch, seq, dim].
 *   key_mask (in, may be NULL) [batch, seq], as for mmrec_mha_forward().
 *   flags    (in)  MMREC_ATTN_PROBS_PER_HEAD (0) or
 *                  MMREC_ATTN_PROBS_AVERAGE.
 *   out      (out, may be NULL) [batch, seq, dim], owned by `tape` until
 *            reset.
 *   probs    (out) [batch, heads, seq, seq] (query, then key), or
 *            [batch, seq, seq] (the mean over the heads) with
 *            MMREC_ATTN_PROBS_AVERAGE; owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL mha, tape, x or probs; mha not an
 *         attention module; a tensor of another tape; flags with an unknown
 *         bit), MMREC_ESTATE (the module's model was destroyed),
 *         MMREC_ESHAPE (x not [batch, seq, dim], key_mask not [batch, seq];
 *         the message gives the shapes), MMREC_ESTALE, MMREC_ENOMEM. A
 *         failed call leaves the tape as it was and writes no output.
 * Thread safety: per-handle (the tape); the module may be shared as for
 * mmrec_linear_forward(). Since 0.2. */
MMREC_API mmrec_status mmrec_mha_forward_probs(mmrec_module *mha, mmrec_tape *tape,
                                               mmrec_tensor *x, mmrec_tensor *key_mask,
                                               uint32_t flags, mmrec_tensor **out,
                                               mmrec_tensor **probs);

/* ---- Transformer encoder layer, as torch.nn.TransformerEncoderLayer with
 * batch_first=True. Parameters: "self_attn.*", "linear1.*", "linear2.*",
 * "norm1.*", "norm2.*". ---- */
typedef struct mmrec_transformer_config {
    size_t struct_size;
    int64_t dim;                  /* required */
    int num_heads;                /* required */
    int64_t ffn_dim;              /* default 4 * dim */
    float dropout;                /* default 0.1 (PyTorch's) */
    int norm_first;               /* 1 = pre-LN, 0 = post-LN (PyTorch default); default 0 */
    mmrec_activation activation;  /* default MMREC_ACT_GELU */
    float eps;                    /* LayerNorm eps; default 1e-5 */
    int causal;                   /* default 0 */
    int no_attn_bias;             /* 1: the attention's in- and out-projections
                                     have no biases (SASRec, IISAN); default 0:
                                     biases, as PyTorch. Since 0.2 */
    int no_act_dropout;           /* 1: the feed-forward drops out after
                                     linear2 only, not after the activation
                                     (SASRec, IISAN); default 0: both, as
                                     PyTorch. Since 0.2 */
} mmrec_transformer_config;

/* Fills cfg with the defaults for the first `size` bytes: dim and
 * num_heads 0 (to be set), ffn_dim 0 (= 4 * dim), dropout 0.1, norm_first
 * 0, activation MMREC_ACT_GELU, eps 1e-5, causal 0, no_attn_bias 0,
 * no_act_dropout 0. Call it through
 * mmrec_transformer_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_transformer_config_init_sized(mmrec_transformer_config *cfg,
                                                           size_t size);
#define mmrec_transformer_config_init(cfg) \
    mmrec_transformer_config_init_sized((cfg), sizeof *(cfg))

/* Creates a Transformer encoder layer named `name` in `model`, with
 * torch.nn.TransformerEncoderLayer's parameters: "<name>.self_attn.*" (as
 * mmrec_mha_create; with biases unless cfg->no_attn_bias),
 * "<name>.linear1.weight" [ffn_dim, dim] and "<name>.linear2.weight"
 * [dim, ffn_dim] (Xavier uniform) with their biases (zeros),
 * "<name>.norm1.*" and "<name>.norm2.*" (LayerNorm weight ones, bias
 * zeros, [dim]).
 *   model (in)  the model; it owns the module and its parameters.
 *   name  (in)  module name, 1..200 bytes, unique in the model; copied.
 *   cfg   (in)  from mmrec_transformer_config_init(), dim and num_heads
 *               set; borrowed for the call.
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a bad name as
 *         for mmrec_linear_create; dim < 1; num_heads < 1 or not dividing
 *         dim; dropout outside [0, 1); ffn_dim < 0; activation
 *         MMREC_ACT_NONE or not an mmrec_activation; eps not > 0 or not
 *         finite; a bad cfg->struct_size or a config from a newer
 *         libmmrec), MMREC_ESTATE (a module or parameter of that name
 *         exists; the model was destroyed), MMREC_ENOMEM. A failed call
 *         leaves the model as it was.
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_transformer_create(mmrec_model *model, const char *name,
                                                const mmrec_transformer_config *cfg,
                                                mmrec_module **out);

/* Runs the layer, with sa = the self-attention of mmrec_mha_forward() (key
 * mask and cfg->causal applied), ff(h) = linear2(drop(act(linear1(h))))
 * (linear2(act(linear1(h))) with cfg->no_act_dropout) and drop = dropout
 * with cfg->dropout (training tapes only):
 *   norm_first 1 (pre-LN):  h = x + drop(sa(norm1(x)));  out = h + drop(ff(norm2(h)))
 *   norm_first 0 (post-LN): h = norm1(x + drop(sa(x)));  out = norm2(h + drop(ff(h)))
 *   layer    (in)  a module made by mmrec_transformer_create().
 *   tape     (in)  the step's tape.
 *   x        (in)  [batch, seq, dim].
 *   key_mask (in, may be NULL) [batch, seq], as for mmrec_mha_forward().
 *   out      (out) [batch, seq, dim], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, layer not a Transformer layer, a
 *         tensor of another tape), MMREC_ESTATE (the module's model was
 *         destroyed), MMREC_ESHAPE (x not [batch, seq, dim], key_mask not
 *         [batch, seq]; the message gives the shapes), MMREC_ESTALE,
 *         MMREC_ENOMEM. A failed call leaves the tape as it was.
 * Thread safety: per-handle (the tape); the module may be shared as for
 * mmrec_linear_forward(). Since 0.1. */
MMREC_API mmrec_status mmrec_transformer_forward(mmrec_module *layer, mmrec_tape *tape,
                                                 mmrec_tensor *x, mmrec_tensor *key_mask,
                                                 mmrec_tensor **out);

/* mmrec_transformer_forward() that also returns the self-attention
 * probabilities of the layer, as mmrec_mha_forward_probs() does (of sa's
 * input: norm1(x) when pre-LN, x when post-LN), differentiable into x and
 * every parameter before them. For a joint (cross) encoder over
 * x = concat(user tokens [batch, Tu, dim], item tokens [batch, Ti, dim])
 * on axis 1, the blocks of the [.., T, T] map (T = Tu + Ti, query rows,
 * key columns) come from two mmrec_slice() calls (start, length), with
 * a = the query axis (2 per head, 1 averaged) and a + 1 the key axis:
 *   user-to-item [.., Tu, Ti]: rows (a, 0, Tu), then columns (a + 1, Tu, Ti);
 *   item-to-user [.., Ti, Tu]: rows (a, Tu, Ti), then columns (a + 1, 0, Tu).
 * Each row of such a block sums to the attention mass the query gives the
 * other side, not to 1.
 *   layer    (in)  a module made by mmrec_transformer_create().
 *   tape     (in)  the step's tape.
 *   x        (in)  [batch, seq, dim].
 *   key_mask (in, may be NULL) [batch, seq], as for mmrec_mha_forward().
 *   flags    (in)  MMREC_ATTN_PROBS_PER_HEAD (0) or
 *                  MMREC_ATTN_PROBS_AVERAGE.
 *   out      (out, may be NULL) [batch, seq, dim], the value
 *            mmrec_transformer_forward() gives; owned by `tape` until reset.
 *   probs    (out) [batch, heads, seq, seq], or [batch, seq, seq] with
 *            MMREC_ATTN_PROBS_AVERAGE; owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL layer, tape, x or probs; layer not a
 *         Transformer layer; a tensor of another tape; flags with an
 *         unknown bit), MMREC_ESTATE (the module's model was destroyed),
 *         MMREC_ESHAPE (x not [batch, seq, dim], key_mask not [batch, seq];
 *         the message gives the shapes), MMREC_ESTALE, MMREC_ENOMEM. A
 *         failed call leaves the tape as it was and writes no output.
 * Thread safety: per-handle (the tape); the module may be shared as for
 * mmrec_linear_forward(). Since 0.2. */
MMREC_API mmrec_status mmrec_transformer_forward_probs(mmrec_module *layer, mmrec_tape *tape,
                                                       mmrec_tensor *x, mmrec_tensor *key_mask,
                                                       uint32_t flags, mmrec_tensor **out,
                                                       mmrec_tensor **probs);

/* mmrec_transformer_forward() computed at the first num_rows positions
 * only: out [batch, num_rows, dim] holds the same values as the full
 * layer's first num_rows rows (the same sums in the same order), while the
 * attention still reads the keys and values of every position. For a
 * model that reads one position of the layer's output (a joint encoder's
 * candidate or [CLS] token put first, a sequence model's query tokens),
 * the rows after num_rows cost only their key and value projections. The
 * gradient flows into x at every position (through the keys and values)
 * and into every parameter.
 *   layer    (in)  a module made by mmrec_transformer_create().
 *   tape     (in)  the step's tape.
 *   x        (in)  [batch, seq, dim].
 *   key_mask (in, may be NULL) [batch, seq], as for mmrec_mha_forward().
 *   num_rows (in)  1 .. seq; seq gives mmrec_transformer_forward().
 *   out      (out) [batch, num_rows, dim], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, layer not a Transformer layer, a
 *         tensor of another tape, num_rows out of range: the message gives
 *         it and seq), MMREC_ESTATE (the module's model was destroyed),
 *         MMREC_ESHAPE (as mmrec_transformer_forward()), MMREC_ESTALE,
 *         MMREC_ENOMEM. A failed call leaves the tape as it was.
 * Thread safety: per-handle (the tape); the module may be shared as for
 * mmrec_linear_forward(). Since 0.2. */
MMREC_API mmrec_status mmrec_transformer_forward_rows(mmrec_module *layer, mmrec_tape *tape,
                                                      mmrec_tensor *x, mmrec_tensor *key_mask,
                                                      int64_t num_rows, mmrec_tensor **out);

/* ---- Sequence encoder (SASRec style), as IISAN's User_Encoder ----
 * out_0 = drop(LayerNorm(items + pos[0 .. T))) with a learned position
 * table pos [max_length, dim], then num_layers post-LN Transformer layers
 * (mmrec_transformer_forward with causal attention, the key mask of the
 * padding, no attention biases unless cfg->attn_bias, the feed-forward
 * linear2(act(linear1(h))) with dropout after linear2 only):
 *   h = LN(x + drop(MHA(x)));  out = LN(h + drop(W2 act(W1 h) + b2))
 * Query t sees the real keys j <= t. The user vector is the output at each
 * row's last real position. Reference: TransformerEncoder and User_Encoder
 * of github.com/GAIR-Lab/IISAN.
 * Parameters "<name>.position_embedding.weight" [max_length, dim],
 * "<name>.layer_norm.weight" and ".bias" [dim], and each layer as a
 * Transformer layer module "<name>.blocks.<i>" with its own parameter names
 * ("<name>.blocks.<i>.self_attn.in_proj_weight", ".linear1.weight", ...,
 * see mmrec_transformer_create). Initialized as the reference: Xavier
 * normal N(0, 2 / (fan_in + fan_out)) for the position table and every
 * weight (each of q, k and v a [dim, dim] map), biases zero, LayerNorm
 * weights one. */
typedef struct mmrec_sequence_encoder_config {
    size_t struct_size;
    int64_t dim;                 /* required: the width of the item vectors */
    int64_t max_length;          /* required: positions; a sequence has T <= max_length */
    int num_layers;              /* default 2; 1 .. 32 */
    int num_heads;               /* default 2; divides dim */
    int64_t ffn_dim;             /* default 0 = 4 * dim */
    float dropout;               /* default 0.1: on the input, the attention
                                    probabilities and both residual branches */
    float eps;                   /* every LayerNorm's; default 1e-6 */
    mmrec_activation activation; /* of the feed-forward; default MMREC_ACT_RELU */
    int attn_bias;               /* default 0: the attention projections have no
                                    biases, as the reference; 1: biases */
} mmrec_sequence_encoder_config;

/* Fills cfg with the defaults for the first `size` bytes: dim and
 * max_length 0 (to be set), num_layers 2, num_heads 2, ffn_dim 0
 * (= 4 * dim), dropout 0.1, eps 1e-6, activation MMREC_ACT_RELU,
 * attn_bias 0. Call it through mmrec_sequence_encoder_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status
mmrec_sequence_encoder_config_init_sized(mmrec_sequence_encoder_config *cfg, size_t size);
#define mmrec_sequence_encoder_config_init(cfg) \
    mmrec_sequence_encoder_config_init_sized((cfg), sizeof *(cfg))

/* Creates a sequence encoder named `name` in `model`, with the parameters
 * and the layer modules "<name>.blocks.<i>" above, drawn from the model's
 * generator.
 *   model (in)  the model; it owns the module, its layers and parameters.
 *   name  (in)  module name, 1..200 bytes, unique in the model; copied.
 *   cfg   (in)  from mmrec_sequence_encoder_config_init(), dim and
 *               max_length set; borrowed for the call.
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a bad name as
 *         for mmrec_linear_create; dim < 1; max_length < 1; num_layers
 *         outside [1, 32]; num_heads < 1 or not dividing dim; ffn_dim < 0;
 *         dropout outside [0, 1); eps not > 0 or not finite; activation
 *         MMREC_ACT_NONE or not an mmrec_activation; attn_bias not 0 or 1;
 *         a bad cfg->struct_size or a config from a newer libmmrec: the
 *         message names the field), MMREC_ESTATE (a module or parameter of
 *         that name, or of one of its layers, exists; the model was
 *         destroyed), MMREC_ENOMEM. A failed call leaves the model as it
 *         was.
 * Thread safety: per-handle (the model). Since 0.2. */
MMREC_API mmrec_status mmrec_sequence_encoder_create(mmrec_model *model, const char *name,
                                                     const mmrec_sequence_encoder_config *cfg,
                                                     mmrec_module **out);

/* Encodes sequences of item vectors: every position's output and/or each
 * row's output at its last real position (the user vector). Padding may
 * sit on the left (as IISAN's data) or on the right, or anywhere: keys
 * that are padding are masked for every query. A padding position with no
 * real position at or before it attends to nothing (its attention output
 * is zero); its row of `states` is defined but carries no meaning. Dropout
 * (cfg->dropout) acts on training tapes only; an inference tape records
 * nothing and gives the same values on every call.
 *   encoder (in)  a module made by mmrec_sequence_encoder_create().
 *   tape    (in)  the step's tape.
 *   items   (in)  [batch, T, dim], the item vectors of the positions,
 *                 1 <= T <= max_length.
 *   mask    (in, may be NULL) [batch, T]: non-zero = a real item, 0 =
 *           padding; NULL: every position is real. Not differentiated;
 *           every row needs a real position.
 *   states  (out, may be NULL) [batch, T, dim], every position's output,
 *           owned by `tape` until reset.
 *   last    (out, may be NULL) [batch, dim], row b the output at the last
 *           position of row b whose mask is non-zero (T - 1 without a
 *           mask); owned by `tape` until reset. At least one of states
 *           and last is not NULL.
 * Returns MMREC_OK, MMREC_EINVAL (NULL encoder, tape or items; states and
 *         last both NULL; encoder not a sequence encoder; a tensor of
 *         another tape; a row of mask without a real position: the message
 *         names the row, "empty sequence"), MMREC_ESTATE (the module's
 *         model was destroyed), MMREC_ESHAPE (items not [batch, T, dim]; T
 *         above max_length; mask not [batch, T]: the message gives the
 *         shapes), MMREC_ENUMERIC (a NaN in mask: the message names the
 *         first), MMREC_ESTALE, MMREC_ENOMEM. A failed call leaves the tape
 *         as it was and writes no output.
 * Thread safety: per-handle (the tape); the module may be shared as for
 * mmrec_linear_forward(). Since 0.2. */
MMREC_API mmrec_status mmrec_sequence_encoder_forward(mmrec_module *encoder, mmrec_tape *tape,
                                                      mmrec_tensor *items, mmrec_tensor *mask,
                                                      mmrec_tensor **states,
                                                      mmrec_tensor **last);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_MODULES_H */
