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
 * Thread safety: as modules.h: creation is per-handle (the model); forward calls on inference tapes from many
 * threads are safe while nobody changes the parameters. */
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

MMREC_API mmrec_status mmrec_fqformer_config_init_sized(mmrec_fqformer_config *cfg,
                                                        size_t size);
#define mmrec_fqformer_config_init(cfg) mmrec_fqformer_config_init_sized((cfg), sizeof *(cfg))
MMREC_API mmrec_status mmrec_fqformer_create(mmrec_model *model, const char *name,
                                             const mmrec_fqformer_config *cfg,
                                             mmrec_module **out);

/* image [B, M, image_dim], text [B, K, text_dim] (M, K >= 1);
 * presence (in, may be NULL = all present) [B, M + K]: 1 = the token is
 * there, 0 = that modality is missing for the item (removed from
 * attention; the queries are always present).
 * out: [B, Q, d], or [B, Q * d] with flatten. Since 0.1. */
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
    const int64_t *hidden;       /* MLP hidden sizes (borrowed); default NULL = {4 * dim} */
    int num_hidden;              /* 0 .. 8 */
    mmrec_activation activation; /* MLP; default MMREC_ACT_SIGMOID (as DIN's PReLU/Dice stand-in) */
} mmrec_target_attention_config;

MMREC_API mmrec_status
mmrec_target_attention_config_init_sized(mmrec_target_attention_config *cfg, size_t size);
#define mmrec_target_attention_config_init(cfg) \
    mmrec_target_attention_config_init_sized((cfg), sizeof *(cfg))
MMREC_API mmrec_status mmrec_target_attention_create(mmrec_model *model, const char *name,
                                                     const mmrec_target_attention_config *cfg,
                                                     mmrec_module **out);

/* candidate [B, d], sequence [B, N, d], mask (may be NULL) [B, N]: 1 =
 * behaviour, 0 = padding. A row with no behaviour gives zeros.
 * out [B, d]. Since 0.1. */
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

MMREC_API mmrec_status mmrec_cic_config_init_sized(mmrec_cic_config *cfg, size_t size);
#define mmrec_cic_config_init(cfg) mmrec_cic_config_init_sized((cfg), sizeof *(cfg))
MMREC_API mmrec_status mmrec_loss_cic(mmrec_tape *tape, mmrec_tensor *content,
                                      mmrec_tensor *ids, const mmrec_cic_config *cfg,
                                      mmrec_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_EM3_H */
