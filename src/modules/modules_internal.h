/* Building blocks shared by the modules: a fused linear layer that other
 * modules embed, the attention core, creation bookkeeping. */
#ifndef MMREC_MODULES_INTERNAL_H
#define MMREC_MODULES_INTERNAL_H

#include "mmrec/modules.h"
#include "mmrec/ops.h"
#include "../model/model_internal.h"
#include "../ops/ops_internal.h"

/* Low-rank adapter of a linear map (lora.c). */
typedef struct mmrec__lora {
    mmrec_tensor *a, *b;    /* [rank, in], [out, rank] */
    int rank;
    float scale;            /* alpha / rank */
    bool merged;            /* B A folded into the weight */
    float *saved_w;         /* the weight before the merge, while merged */
    bool was_trainable[4];  /* W, b, A, B before the merge */
} mmrec__lora;

/* Weight [out, in] and optional bias [out] of a linear map, and its LoRA
 * adapter when one is attached. */
typedef struct mmrec__lin {
    mmrec_tensor *w, *b;
    int64_t in, out;
    mmrec__lora *lora;
} mmrec__lin;

/* The Linear module. */
typedef struct mmrec__linear {
    struct mmrec_module base;
    mmrec__lin lin;
} mmrec__linear;

/* y = sg(x W^T + b) + scale (x A^T) B^T (lora.c). */
mmrec_status mmrec__lora_forward(const mmrec__lin *lin, mmrec_tape *tape, const char *func,
                                 mmrec_tensor *x, mmrec_tensor **out) MMREC__WUR;
/* Frees the adapter of a linear map, if any (lora.c). */
void mmrec__lin_free_adapter(mmrec__lin *lin);

/* Adds "<prefix>.<w_leaf>" and, when bias, "<prefix>.<b_leaf>" (bias
 * zero) to the model, the weight initialized per `init`. */
mmrec_status mmrec__lin_create(mmrec_model *model, const char *func, const char *prefix,
                               const char *w_leaf, const char *b_leaf, int64_t in, int64_t out,
                               bool bias, mmrec_init init, float init_std,
                               mmrec__lin *lin) MMREC__WUR;

/* y = x W^T + b over the last dim of x, one recorded node. */
mmrec_status mmrec__lin_forward(const mmrec__lin *lin, mmrec_tape *tape, const char *func,
                                mmrec_tensor *x, mmrec_tensor **out) MMREC__WUR;

/* y = (x W1^T + b1) W2^T + b2, two linear maps with nothing between them
 * (lin1: in -> mid, lin2: mid -> out). When it costs fewer multiply-adds
 * (many rows, out < rows) and neither map has an unmerged LoRA, one node
 * through the product M = W2 W1 [out, in]: forward y = x M^T + (W2 b1 +
 * b2), backward from G = dy^T x [out, in] (dW2 = G W1^T + colsum(dy) b1^T,
 * dW1 = W2^T G, dx = dy M), so no [rows, mid] product is ever formed;
 * otherwise the two linear nodes. The same function and gradients either
 * way, up to float rounding. */
mmrec_status mmrec__lin2_forward(const mmrec__lin *lin1, const mmrec__lin *lin2,
                                 mmrec_tape *tape, const char *func, mmrec_tensor *x,
                                 mmrec_tensor **out) MMREC__WUR;

/* Bottleneck adapter y = x + act(x W_down^T + b_down) W_up^T + b_up
 * (adapter.c): the kernel of the Adapter module, also run by composite
 * blocks that fuse several adapters into one node (IISAN's SAN towers). */
typedef struct mmrec__adapter {
    mmrec__lin down, up;     /* dim -> bottleneck, bottleneck -> dim; biases */
    mmrec_activation act;
} mmrec__adapter;

/* Adds "<prefix>.fc_down.{weight,bias}" and "<prefix>.fc_up.{weight,bias}",
 * weights N(0, init_std^2), biases zero. */
mmrec_status mmrec__adapter_create(mmrec_model *model, const char *func, const char *prefix,
                                   int64_t dim, int64_t bottleneck, mmrec_activation act,
                                   float init_std, mmrec__adapter *a) MMREC__WUR;

/* Forward over `rows` rows: pre = x W_down^T + b_down and hid = act(pre)
 * ([rows, bottleneck] each, kept for the backward), y = x + hid W_up^T +
 * b_up. y may be x (in place). */
void mmrec__adapter_rows(const mmrec__adapter *a, size_t rows, const float *x, float *pre,
                         float *hid, float *y);

/* Its backward from the output gradient scale * dy: adds into the
 * gradients of the trainable parameters and, when dx is not NULL, sets
 * dx = scale * dx + dpre W_down. With dx = dy (in place) that is the whole
 * input gradient, the skip connection's share included; a caller with its
 * own dx adds scale * dy into it first. scratch: 2 rows bottleneck floats.
 * Parameter gradients are the model's: nothing is allocated. */
void mmrec__adapter_rows_backward(const mmrec__adapter *a, mmrec_tape *tape, size_t rows,
                                  const float *x, const float *pre, const float *hid,
                                  const float *dy, float scale, float *dx, float *scratch);

/* out[j] += scale * (sum over rows of x[i * ld + j]), j < cols, each column
 * summed in double in row order (the result does not depend on the thread
 * count). */
void mmrec__colsum_add(const float *x, size_t rows, size_t cols, size_t ld, float scale,
                       float *out);

/* Adds "<prefix>.weight" (ones) and "<prefix>.bias" (zeros) of [dim]. */
mmrec_status mmrec__ln_params(mmrec_model *model, const char *func, const char *prefix,
                              int64_t dim, mmrec_tensor **weight, mmrec_tensor **bias) MMREC__WUR;

/* Applies an activation through the public ops (NONE: x itself). */
mmrec_status mmrec__activate(mmrec_tape *tape, mmrec_activation act, mmrec_tensor *x,
                             mmrec_tensor **out) MMREC__WUR;
bool mmrec__activation_ok(mmrec_activation act);

/* Scaled dot-product attention of `heads` heads over a packed projection
 * qkv [B, T, 3d] (q, k, v side by side), with an optional key mask [B, T]
 * (0 = padding) and causal mask, and dropout p on the probabilities (train
 * tapes only): out [B, tq, d], the outputs of the first tq = query_rows
 * positions (0: all T). One recorded node. */
mmrec_status mmrec__attention(mmrec_tape *tape, const char *func, mmrec_tensor *qkv,
                              mmrec_tensor *key_mask, int heads, bool causal, float dropout,
                              int64_t query_rows, mmrec_tensor **out) MMREC__WUR;
/* The same as two recorded nodes, with the probabilities before dropout
 * as a differentiable tensor *probs_out [B, heads, tq, T]. */
mmrec_status mmrec__attention_probs(mmrec_tape *tape, const char *func, mmrec_tensor *qkv,
                                    mmrec_tensor *key_mask, int heads, bool causal,
                                    float dropout, int64_t query_rows, mmrec_tensor **out,
                                    mmrec_tensor **probs_out) MMREC__WUR;

/* Self-attention parameters and settings, embedded by MHA and the
 * Transformer layer: "<prefix>.in_proj_weight", "<prefix>.in_proj_bias",
 * "<prefix>.out_proj.weight", "<prefix>.out_proj.bias". */
typedef struct mmrec__mha {
    mmrec__lin in_proj, out_proj;
    int heads;
    bool causal;
    float dropout;
} mmrec__mha;

mmrec_status mmrec__mha_check(const char *func, int64_t dim, int heads, float dropout) MMREC__WUR;
mmrec_status mmrec__mha_init(mmrec__mha *m, mmrec_model *model, const char *func,
                             const char *prefix, int64_t dim, int heads, bool bias, bool causal,
                             float dropout) MMREC__WUR;
/* x [B, T, d], key_mask [B, T] or NULL -> out [B, tq, d]: the outputs of
 * the first tq = query_rows positions (0: all T), attending to all T. With
 * probs not NULL, also the probabilities as a tensor of the tape: [B, H,
 * tq, T], or [B, tq, T] with MMREC_ATTN_PROBS_AVERAGE in flags (else
 * flags is ignored). */
mmrec_status mmrec__mha_forward(const mmrec__mha *m, mmrec_tape *tape, const char *func,
                                mmrec_tensor *x, mmrec_tensor *key_mask, int64_t query_rows,
                                uint32_t flags, mmrec_tensor **out,
                                mmrec_tensor **probs) MMREC__WUR;
/* MMREC_EINVAL for bits of flags outside mmrec_attn_probs_flags. */
mmrec_status mmrec__attn_flags_check(const char *func, uint32_t flags) MMREC__WUR;

/* mmrec_transformer_create on behalf of `func` (a module that builds its
 * own layers reports their failures in its name); with xavier_normal every
 * weight is drawn N(0, 2 / (fan_in + fan_out)), in_proj_weight as three
 * [dim, dim] maps (SASRec's separate q, k, v Linear layers), instead of
 * Xavier uniform. */
mmrec_status mmrec__transformer_create(const char *func, mmrec_model *model, const char *name,
                                       const mmrec_transformer_config *cfg, bool xavier_normal,
                                       mmrec_module **out) MMREC__WUR;

/* A Transformer encoder layer's output at the first keep_rows positions
 * only (0: all), [B, keep_rows, d]: the same values as the full layer's
 * first rows, for a fraction of the work when only those are read (the
 * FQ-Former's last layer). */
mmrec_status mmrec__transformer_forward_rows(mmrec_module *layer, mmrec_tape *tape,
                                             mmrec_tensor *x, mmrec_tensor *key_mask,
                                             int64_t keep_rows, mmrec_tensor **out) MMREC__WUR;

/* Creation bookkeeping: validates the model and a fresh module name, and
 * remembers where to roll back to should the creation fail. */
typedef struct mmrec__create {
    mmrec_model *model;
    const char *func;
    size_t n_params, n_modules;
    mmrec__rng_state rng;
} mmrec__create;

mmrec_status mmrec__create_begin(mmrec__create *c, mmrec_model *model, const char *name,
                                 const void *cfg, const char *func) MMREC__WUR;
/* On failure (status != OK) undoes the parameters added since begin, frees
 * `module` (may be NULL) and returns status; on success registers it. */
mmrec_status mmrec__create_end(mmrec__create *c, mmrec_status status, mmrec_module *module,
                               const char *kind, const char *name,
                               void (*destroy)(mmrec_module *), mmrec_module **out);

/* mmrec_mlp_create on behalf of `func`: a module that builds an MLP of its
 * own (target attention's DIN scores) reports its failures in its name. */
mmrec_status mmrec__mlp_create(const char *func, mmrec_model *model, const char *name,
                               const mmrec_mlp_config *cfg, mmrec_module **out) MMREC__WUR;

/* Checks an init choice and its std for a config. */
mmrec_status mmrec__init_check(const char *func, const char *field, mmrec_init init,
                               float init_std) MMREC__WUR;

#endif
