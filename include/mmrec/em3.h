/* EM3 building blocks (End-to-end training of Multimodal Model and ranking
 * Model): the FQ-Former content encoder, target attention over a behaviour
 * sequence, and the content-ID contrastive (CIC) loss. They compose with the
 * modules of modules.h on one model and tape; LoRA, which EM3 puts on long
 * sequences, is an adapter of the Linear module (modules.h).
 *
 * Errors: MMREC_EINVAL (NULL, bad config value: the message names the
 * field), MMREC_ESTATE (name taken; LoRA already attached or merged),
 * MMREC_ESHAPE (both shapes in the message), MMREC_ERANGE, MMREC_ESTALE,
 * MMREC_ENOMEM. A failed call changes nothing.
 *
 * Thread safety: as modules.h: creation is per-handle (the model); forward
 * calls on inference tapes from many threads are safe while nobody changes
 * the parameters. */
#ifndef MMREC_EM3_H
#define MMREC_EM3_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"
#include "mmrec/modules.h" /* mmrec_activation */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- FQ-Former: fixed-length content embedding from modality tokens ----
 * tokens = [q_1..q_Q, f_v(image_1..image_M), f_t(text_1..text_K)], an
 * L-layer Transformer encoder over them, output the first Q tokens.
 * Parameters: "<name>.queries" [Q, d], "<name>.f_v.{weight,bias}",
 * "<name>.f_t.{weight,bias}", "<name>.layers.<l>.*" (Transformer layer l). */
typedef struct mmrec_fqformer_config {
    size_t struct_size;
    int64_t image_dim, text_dim; /* required: cached feature dims */
    int64_t dim;                 /* required: d */
    int num_queries;             /* default 4 */
    int num_layers;              /* default 1 */
    int num_heads;               /* default 4; divides dim */
    int64_t ffn_dim;             /* default 4 * dim */
    float dropout;               /* default 0.1 */
    int norm_first;              /* default 1 (pre-LN) */
    int flatten;                 /* default 0: output [B, Q, d]; 1: [B, Q * d] */
} mmrec_fqformer_config;

/* Fills cfg with the defaults for the first `size` bytes: image_dim,
 * text_dim and dim 0 (to be set), num_queries 4, num_layers 1, num_heads
 * 4, ffn_dim 0 (= 4 * dim), dropout 0.1, norm_first 1, flatten 0. Call it
 * through mmrec_fqformer_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_fqformer_config_init_sized(mmrec_fqformer_config *cfg,
                                                        size_t size);
#define mmrec_fqformer_config_init(cfg) mmrec_fqformer_config_init_sized((cfg), sizeof *(cfg))

/* Creates an FQ-Former named `name` in `model`: the queries
 * "<name>.queries" [Q, d] drawn from N(0, 0.02^2), and three kinds of
 * sub-modules registered in the model under their own names: the Linear
 * projections "<name>.f_v" (image_dim -> d) and "<name>.f_t" (text_dim ->
 * d), and the Transformer encoder layers "<name>.layers.<l>" (as
 * mmrec_transformer_create with cfg's dim, num_heads, ffn_dim, dropout
 * and norm_first, GELU, eps 1e-5). All are initialized from the model's
 * generator.
 *   model (in)  the model; it owns the module, its sub-modules and their
 *               parameters.
 *   name  (in)  module name, unique in the model, at most 190 bytes (the
 *               sub-module names add up to 10); copied.
 *   cfg   (in)  from mmrec_fqformer_config_init(), image_dim, text_dim and
 *               dim set; borrowed for the call.
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a bad name;
 *         image_dim, text_dim or dim < 1; num_queries outside [1, 1024];
 *         num_layers outside [1, 16]; num_heads < 1 or not dividing dim;
 *         dropout outside [0, 1); ffn_dim < 0; a bad cfg->struct_size or a
 *         config from a newer libmmrec), MMREC_ESTATE (a module or
 *         parameter of one of these names exists; the model was
 *         destroyed), MMREC_ENOMEM. A failed call leaves the model as it
 *         was.
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_fqformer_create(mmrec_model *model, const char *name,
                                             const mmrec_fqformer_config *cfg,
                                             mmrec_module **out);

/* Runs the FQ-Former over a batch of items (the equations above): the
 * tokens [queries; f_v(image); f_t(text)] go through the layers, and the
 * last layer computes the Q query positions only.
 *   fq       (in)  a module made by mmrec_fqformer_create().
 *   tape     (in)  the step's tape.
 *   image    (in)  [B, M, image_dim], M >= 1 image tokens per item.
 *   text     (in)  [B, K, text_dim], K >= 1 text tokens, same B.
 *   presence (in, may be NULL = all present) [B, M + K]: 1 = the token is
 *            there, 0 = that modality is missing for the item (removed from
 *            attention; the queries are always present).
 *   out      (out) [B, Q, d], or [B, Q * d] with flatten; owned by `tape`
 *            until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, fq not an FQ-Former, a tensor of
 *         another tape), MMREC_ESTATE (the module's model was destroyed),
 *         MMREC_ESHAPE (image, text or presence not of the shapes above;
 *         the message gives the shape found and the one expected),
 *         MMREC_ESTALE, MMREC_ENOMEM. A failed call leaves the tape as it
 *         was.
 * Thread safety: per-handle (the tape); the module may be shared by
 * threads with inference tapes while nobody changes its parameters.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_fqformer_forward(mmrec_module *fq, mmrec_tape *tape,
                                              mmrec_tensor *image, mmrec_tensor *text,
                                              mmrec_tensor *presence, mmrec_tensor **out);

/* ---- Target attention of a candidate over a behaviour sequence ----
 * u = sum_j softmax_j(score(c, s_j)) s_j over the unmasked positions j.
 *   MMREC_TA_DOT: score = c . s_j / sqrt(d) (no parameters).
 *   MMREC_TA_MLP: DIN's activation unit, score = MLP([s_j, c, s_j - c,
 *   s_j * c]) with hidden sizes `hidden` and a final Linear to 1
 *   ("<name>.mlp.<i>.*"). */
typedef enum mmrec_ta_score { MMREC_TA_DOT = 0, MMREC_TA_MLP = 1 } mmrec_ta_score;

typedef struct mmrec_target_attention_config {
    size_t struct_size;
    int64_t dim;                 /* required: d of candidate and sequence */
    mmrec_ta_score score;        /* default MMREC_TA_DOT */
    const int64_t *hidden;       /* MLP hidden sizes, num_hidden of them (borrowed) */
    int num_hidden;              /* 0 .. 8; 0 (default): one hidden layer of 4 * dim,
                                    and hidden is not read */
    mmrec_activation activation; /* MLP; default MMREC_ACT_SIGMOID (as DIN's PReLU/Dice stand-in) */
} mmrec_target_attention_config;

/* Fills cfg with the defaults for the first `size` bytes: dim 0 (to be
 * set), score MMREC_TA_DOT, hidden NULL, num_hidden 0, activation
 * MMREC_ACT_SIGMOID. Call it through mmrec_target_attention_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status
mmrec_target_attention_config_init_sized(mmrec_target_attention_config *cfg, size_t size);
#define mmrec_target_attention_config_init(cfg) \
    mmrec_target_attention_config_init_sized((cfg), sizeof *(cfg))

/* Creates a target-attention block named `name` in `model`. MMREC_TA_DOT
 * has no parameters. MMREC_TA_MLP adds the sub-module "<name>.mlp",
 * registered in the model under that name: an MLP (mmrec_mlp_create) of
 * sizes [4 d, hidden[0], .., hidden[num_hidden - 1], 1], or [4 d, 4 d, 1]
 * when num_hidden is 0, with cfg->activation between the layers and none
 * after the last, biases, Xavier uniform from the model's generator.
 *   model (in)  the model; it owns the module (and the MLP).
 *   name  (in)  module name, unique in the model, at most 196 bytes (the
 *               MLP's name adds 4); copied.
 *   cfg   (in)  from mmrec_target_attention_config_init(), dim set;
 *               borrowed for the call (hidden too: its sizes are copied).
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a bad name;
 *         dim < 1; score not an mmrec_ta_score; num_hidden outside
 *         [0, 8]; hidden NULL with num_hidden > 0; with MMREC_TA_MLP a
 *         hidden size < 1 or activation not an mmrec_activation; a bad
 *         cfg->struct_size or a config from a newer libmmrec),
 *         MMREC_ESTATE (a module or parameter of these names exists; the
 *         model was destroyed), MMREC_ENOMEM. A failed call leaves the
 *         model as it was.
 * Thread safety: per-handle (the model). Since 0.1. */
MMREC_API mmrec_status mmrec_target_attention_create(mmrec_model *model, const char *name,
                                                     const mmrec_target_attention_config *cfg,
                                                     mmrec_module **out);

/* Attends from each candidate over its behaviour sequence (the equations
 * above): scores over the positions, a softmax over the unmasked ones,
 * the weighted sum of the sequence rows. Gradients flow to candidate,
 * sequence and the MLP's parameters.
 *   ta        (in)  a module made by mmrec_target_attention_create().
 *   tape      (in)  the step's tape.
 *   candidate (in)  [B, d].
 *   sequence  (in)  [B, N, d].
 *   mask      (in, may be NULL) [B, N]: 1 (non-zero) = behaviour, 0 =
 *             padding; not differentiated. A row with no behaviour gives
 *             zeros.
 *   out       (out) [B, d], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, ta not a target-attention module,
 *         a tensor of another tape), MMREC_ESTATE (the module's model was
 *         destroyed), MMREC_ESHAPE (sequence not [B, N, d], candidate not
 *         [B, d], mask not [B, N]; the message gives the shapes),
 *         MMREC_ESTALE, MMREC_ENOMEM. A failed call leaves the tape as it
 *         was.
 * Thread safety: per-handle (the tape); the module may be shared by
 * threads with inference tapes while nobody changes its parameters.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_target_attention_forward(mmrec_module *ta, mmrec_tape *tape,
                                                      mmrec_tensor *candidate,
                                                      mmrec_tensor *sequence,
                                                      mmrec_tensor *mask, mmrec_tensor **out);

/* ---- CIC: content-ID contrastive loss ----
 * With C_i and I_i the rows of content [B, e] and ids [B, e] (already
 * projected by the host's f_CIC and f'_CIC), s = cosine similarity and
 * N_i the negatives of row i:
 *   L_C2I = -mean_i log(e^{s(C_i,I_i)/tau} / (e^{s(C_i,I_i)/tau} +
 *           sum_{j in N_i} e^{s(C_i,I_j)/tau}))
 *   L_I2C the same with C and I swapped; out = (L_C2I + L_I2C) / 2, [1].
 * The host adds alpha * out to its ranking loss. This is the symmetric,
 * normalized mmrec_loss_batch_softmax of losses.h with the pairs that are
 * not negatives removed by its mask: one node, memory linear in B. */
typedef struct mmrec_cic_config {
    size_t struct_size;
    float temperature;  /* default 0.1 */
    int num_negatives;  /* H per row, drawn without repetition from the other
                           rows of the batch with the tape's generator;
                           default 0 = all B - 1 */
    const int64_t *negatives; /* optional fixed negatives [B * H], row-major,
                                 each in [0, B) and != its row; borrowed */
} mmrec_cic_config;

/* Fills cfg with the defaults for the first `size` bytes: temperature
 * 0.1, num_negatives 0 (every other row), negatives NULL. Call it through
 * mmrec_cic_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_cic_config_init_sized(mmrec_cic_config *cfg, size_t size);
#define mmrec_cic_config_init(cfg) mmrec_cic_config_init_sized((cfg), sizeof *(cfg))

/* The CIC loss above, out = (L_C2I + L_I2C) / 2. Row i's negatives are
 * cfg->negatives[i * H .. i * H + H) when given, else H rows drawn without
 * repetition from the other rows with the tape's generator (all B - 1
 * rows, no draw, when num_negatives is 0 or B - 1). Gradients flow to
 * content and ids, through the normalization.
 *   tape    (in)  the step's tape.
 *   content (in)  [B, e], B >= 2.
 *   ids     (in)  [B, e], the same shape.
 *   cfg     (in)  from mmrec_cic_config_init(); required (not NULL);
 *                 borrowed for the call (negatives too).
 *   out     (out) [1], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, cfg included; a tensor of another
 *         tape; temperature not > 0, not finite or with an infinite
 *         inverse; num_negatives outside [0, B - 1]; negatives given with
 *         num_negatives 0; a negative repeated within its row; a bad
 *         cfg->struct_size or a config from a newer libmmrec),
 *         MMREC_ESHAPE (content and ids not both [B, e]; B < 2),
 *         MMREC_ERANGE (a given negative outside [0, B) or equal to its
 *         row; the message names its index), MMREC_ENUMERIC (a NaN or
 *         infinity in content or ids: the message names the tensor and
 *         the first bad index), MMREC_ESTALE, MMREC_ENOMEM. A failed call
 *         leaves the tape, its generator included, as it was.
 * Thread safety: per-handle (the tape). Since 0.1. */
MMREC_API mmrec_status mmrec_loss_cic(mmrec_tape *tape, mmrec_tensor *content,
                                      mmrec_tensor *ids, const mmrec_cic_config *cfg,
                                      mmrec_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_EM3_H */
