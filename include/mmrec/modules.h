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

/* Creates a Linear layer named `name` in `model`.
 *   out (out) the module, owned by the model. May be NULL.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_linear_create(mmrec_model *model, const char *name,
                                           const mmrec_linear_config *cfg, mmrec_module **out);
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
 * _load and mmrec_model_save / _load return MMREC_ESTATE. Unmerge restores W
 * exactly (from a copy taken at merge, which the merge allocates) and the
 * four parameters' trainable state as it was before the merge.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, not a Linear), MMREC_ESTATE (no
 * LoRA; merging twice, unmerging an unmerged layer), MMREC_ENOMEM (merge).
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_lora_merge(mmrec_module *linear);
MMREC_API mmrec_status mmrec_lora_unmerge(mmrec_module *linear);

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

MMREC_API mmrec_status mmrec_mlp_config_init_sized(mmrec_mlp_config *cfg, size_t size);
#define mmrec_mlp_config_init(cfg) mmrec_mlp_config_init_sized((cfg), sizeof *(cfg))
MMREC_API mmrec_status mmrec_mlp_create(mmrec_model *model, const char *name,
                                        const mmrec_mlp_config *cfg, mmrec_module **out);
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

MMREC_API mmrec_status mmrec_embedding_config_init_sized(mmrec_embedding_config *cfg,
                                                         size_t size);
#define mmrec_embedding_config_init(cfg) mmrec_embedding_config_init_sized((cfg), sizeof *(cfg))
MMREC_API mmrec_status mmrec_embedding_create(mmrec_model *model, const char *name,
                                              const mmrec_embedding_config *cfg,
                                              mmrec_module **out);
/* out [n, dim]; ids in [0, num_rows) (MMREC_ERANGE names the first bad
 * index). ids are borrowed for the call. */
MMREC_API mmrec_status mmrec_embedding_forward(mmrec_module *embedding, mmrec_tape *tape,
                                               const int64_t *ids, size_t n, mmrec_tensor **out);

/* ---- LayerNorm over the last dim ("<name>.weight", "<name>.bias") ---- */
typedef struct mmrec_layernorm_config {
    size_t struct_size;
    int64_t dim;      /* required */
    float eps;        /* default 1e-5 */
    int affine;       /* default 1: learnable weight (1) and bias (0) */
} mmrec_layernorm_config;

MMREC_API mmrec_status mmrec_layernorm_config_init_sized(mmrec_layernorm_config *cfg,
                                                         size_t size);
#define mmrec_layernorm_config_init(cfg) mmrec_layernorm_config_init_sized((cfg), sizeof *(cfg))
MMREC_API mmrec_status mmrec_layernorm_create(mmrec_model *model, const char *name,
                                              const mmrec_layernorm_config *cfg,
                                              mmrec_module **out);
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

MMREC_API mmrec_status mmrec_mha_config_init_sized(mmrec_mha_config *cfg, size_t size);
#define mmrec_mha_config_init(cfg) mmrec_mha_config_init_sized((cfg), sizeof *(cfg))
MMREC_API mmrec_status mmrec_mha_create(mmrec_model *model, const char *name,
                                        const mmrec_mha_config *cfg, mmrec_module **out);
/*   key_mask (in, may be NULL) [batch, seq]: 1 = real token, 0 = padding
 *            (PyTorch's key_padding_mask inverted). A query whose keys are
 *            all masked attends to nothing and outputs the out_proj bias. */
MMREC_API mmrec_status mmrec_mha_forward(mmrec_module *mha, mmrec_tape *tape, mmrec_tensor *x,
                                         mmrec_tensor *key_mask, mmrec_tensor **out);

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
} mmrec_transformer_config;

MMREC_API mmrec_status mmrec_transformer_config_init_sized(mmrec_transformer_config *cfg,
                                                           size_t size);
#define mmrec_transformer_config_init(cfg) \
    mmrec_transformer_config_init_sized((cfg), sizeof *(cfg))
MMREC_API mmrec_status mmrec_transformer_create(mmrec_model *model, const char *name,
                                                const mmrec_transformer_config *cfg,
                                                mmrec_module **out);
MMREC_API mmrec_status mmrec_transformer_forward(mmrec_module *layer, mmrec_tape *tape,
                                                 mmrec_tensor *x, mmrec_tensor *key_mask,
                                                 mmrec_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_MODULES_H */
