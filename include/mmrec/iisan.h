/* IISAN building blocks (Fu et al., "IISAN: Efficiently Adapting
 * Multimodal Representation for Sequential Recommendation with Decoupled
 * PEFT", SIGIR 2024), as the authors' cached code computes them
 * (IISANAdaptedMModel of github.com/GAIR-Lab/IISAN, Code_Cached): the item
 * encoder that turns the cached per-layer CLS states of a frozen text and a
 * frozen image backbone into an item embedding through side adapter
 * networks (SANs). The rest of IISAN lives with its kind: the sequence
 * encoder over the item embeddings is mmrec_sequence_encoder (modules.h),
 * the in-batch debiased cross-entropy mmrec_loss_sequence_softmax (a
 * configuration of the batch softmax, losses.h), the per-layer states a
 * gather of the kept layers from the feature cache
 * (mmrec_cache_gather_layers, cache.h), the data IISAN's TSV files
 * (mmrec_sequences_read_tsv, data.h).
 *
 * With kept layers l_1 < ... < l_K of the backbones' num_layers (LayerDrop:
 * 0, 2, .., 12 of 13), states s_k = hidden state of layer l_k, gates
 * g = sigmoid(p / T) (T = 0.1, each p a learned scalar starting at 0) and
 * Adapter = the bottleneck adapter x + Up(act(Down(x))) of modules.h:
 *
 *   intra-modal SAN (text; image alike)   h = 0
 *     for k = 1..K:  h = Adapter_k(g_k s_k + (1 - g_k) h)
 *   inter-modal SAN                       m = 0
 *     for k = 1..K:  m = Adapter_k(m + q_k image_k + (1 - q_k) text_k)
 *   heads (no activation between)         e_text  = Linear_Hd(Linear_HH(h_text))
 *                                         e_image = Linear_Hd(Linear_HH(h_image))
 *                                         e_inter = Linear_Hd(Linear_HH(m))
 *   item embedding                        e = Linear(concat(e_image, e_text, e_inter))
 *
 * The mode picks the SANs and the fusion input, as the reference's
 * `modality` option (text-only and image-only are this library's, built
 * the same way):
 *   MMREC_IISAN_INTRA_INTER  concat(e_image, e_text, e_inter)  3d -> d
 *   MMREC_IISAN_INTRA        concat(e_image, e_text)           2d -> d
 *   MMREC_IISAN_INTER        e_inter                            d -> d
 *   MMREC_IISAN_TEXT         e_text                             d -> d
 *   MMREC_IISAN_IMAGE        e_image                            d -> d
 * With remove_first, the first kept layer starts the intra-modal SANs
 * (h = s_1) and the adapters run over the other K - 1 layers only, the
 * inter-modal SAN too (m = 0), as the reference's remove_first. With
 * MMREC_IISAN_GATE_NONE the mixes are plain sums (s_k + h; m + image_k +
 * text_k), the reference's non-gated fusion_method.
 *
 * Each SAN (its K adapters and gates) records one fused node, its backward
 * one pass down the tower with four BLAS products per adapter.
 *
 * Errors: MMREC_EINVAL (NULL, bad config value: the message names the
 * field), MMREC_ESTATE (name taken; model destroyed), MMREC_ESHAPE (both
 * shapes in the message), MMREC_ESTALE, MMREC_ENOMEM. A failed call changes
 * nothing.
 *
 * Thread safety: as modules.h: creation is per-handle (the model); forward
 * calls on inference tapes from many threads are safe while nobody changes
 * the parameters. */
#ifndef MMREC_IISAN_H
#define MMREC_IISAN_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"
#include "mmrec/modules.h" /* mmrec_activation */

#ifdef __cplusplus
extern "C" {
#endif

/* Which SANs run and what the fusion layer reads (table above). */
typedef enum mmrec_iisan_mode {
    MMREC_IISAN_INTRA_INTER = 0,
    MMREC_IISAN_INTRA = 1,
    MMREC_IISAN_INTER = 2,
    MMREC_IISAN_TEXT = 3,
    MMREC_IISAN_IMAGE = 4
} mmrec_iisan_mode;

/* How a SAN mixes a layer's state into its running state. */
typedef enum mmrec_iisan_gate {
    MMREC_IISAN_GATE_SIGMOID = 0, /* learned gates g = sigmoid(p / T) (the reference's "gated") */
    MMREC_IISAN_GATE_NONE = 1     /* plain sums, no gate parameters */
} mmrec_iisan_gate;

/* ---- the IISAN item encoder ----
 * Parameters, with the reference's names (its mm_encoder.<X> and
 * com_dense are "<name>.<X>" and "<name>.com_dense" here), in the
 * reference's order:
 *   "<name>.cv_pre_fc.{weight,bias}"         [d, H], [d]    image head, second layer
 *   "<name>.bert_pre_fc.{weight,bias}"       [d, H], [d]    text head, second layer
 *   "<name>.cv_adapter_list.<k>.fc_down.{weight,bias}", ".fc_up.{weight,bias}"  image SAN
 *   "<name>.bert_adapter_list.<k>.*"                        text SAN
 *   "<name>.mm_adapter_list.<k>.*"                          inter-modal SAN
 *   "<name>.fc_bert.{weight,bias}"           [H, H], [H]    text head, first layer
 *   "<name>.fc_cv.{weight,bias}"             [H, H], [H]    image head, first layer
 *   "<name>.fc_mm.{weight,bias}"             [H, H], [H]    inter head, first layer
 *   "<name>.fc_mm_down.{weight,bias}"        [d, H], [d]    inter head, second layer
 *   "<name>.side_gate_params_text.<k>"       [1]            gates p of the text SAN
 *   "<name>.side_gate_params_cv.<k>"         [1]            gates p of the image SAN
 *   "<name>.side_gate_params_mm.<k>"         [1]            gates q of the inter SAN
 *   "<name>.com_dense.{weight,bias}"         [d, n d], [d]  fusion (n = 1, 2 or 3)
 * with k = 0 .. K - 1 (K - 1 with remove_first). Only the parts the mode
 * uses exist (text-only: bert_*, fc_bert, side_gate_params_text,
 * com_dense); with MMREC_IISAN_GATE_NONE there are no gates.
 * Initialization, as the reference: adapters as mmrec_adapter_create
 * (weights N(0, adapter_init_std^2), biases 0), gates 0, cv_pre_fc Xavier
 * normal with bias 0 (ViT's replaced classifier), every other Linear as
 * torch.nn.Linear (weight and bias U(-1/sqrt(in), 1/sqrt(in))), all drawn
 * from the model's generator. */
typedef struct mmrec_iisan_item_encoder_config {
    size_t struct_size;
    int64_t hidden_dim;          /* H, the backbones' width; default 768 */
    int64_t dim;                 /* d, the item embedding; default 64 */
    int64_t adapter_dim;         /* the adapters' bottleneck; default 64 */
    mmrec_activation activation; /* the adapters'; default MMREC_ACT_RELU (the
                                    reference's option: MMREC_ACT_GELU) */
    mmrec_iisan_mode mode;       /* default MMREC_IISAN_INTRA_INTER */
    mmrec_iisan_gate gate;       /* default MMREC_IISAN_GATE_SIGMOID */
    float gate_temperature;      /* T; default 0.1 */
    int num_layers;              /* states per item in the backbones' cache (embedding
                                    output + blocks); default 13; 1 .. 64 */
    int layer_stride;            /* LayerDrop: keep layers 0, s, 2s, .. < num_layers;
                                    default 2; read when kept_layers is NULL */
    const int *kept_layers;      /* or the kept layers, increasing, in
                                    [0, num_layers); borrowed for the create call */
    int num_kept;                /* entries of kept_layers */
    int remove_first;            /* default 0; 1: the first kept layer starts the
                                    intra-modal SANs and gets no adapter */
    float adapter_init_std;      /* std of the adapters' weights; default 0.01 */
} mmrec_iisan_item_encoder_config;

/* Fills cfg with the defaults for the first `size` bytes: the reference's
 * values, hidden_dim 768, dim 64, adapter_dim 64, MMREC_ACT_RELU,
 * MMREC_IISAN_INTRA_INTER, MMREC_IISAN_GATE_SIGMOID, gate_temperature 0.1,
 * num_layers 13, layer_stride 2 (layers 0, 2, .., 12), kept_layers NULL,
 * num_kept 0, remove_first 0, adapter_init_std 0.01. Call it through
 * mmrec_iisan_item_encoder_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status
mmrec_iisan_item_encoder_config_init_sized(mmrec_iisan_item_encoder_config *cfg, size_t size);
#define mmrec_iisan_item_encoder_config_init(cfg) \
    mmrec_iisan_item_encoder_config_init_sized((cfg), sizeof *(cfg))

/* Creates an IISAN item encoder named `name` in `model`: the SANs, heads
 * and fusion layer of cfg->mode, with the parameters above.
 *   model (in)  the model; it owns the module and its parameters.
 *   name  (in)  module name, 1..200 bytes, unique in the model; copied.
 *   cfg   (in)  from mmrec_iisan_item_encoder_config_init(); borrowed for
 *               the call (kept_layers too: the list is copied).
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a bad name as
 *         for mmrec_linear_create; hidden_dim, dim or adapter_dim < 1;
 *         activation not an mmrec_activation; mode or gate not one of its
 *         enum; gate_temperature or adapter_init_std not > 0 and finite;
 *         num_layers outside [1, 64]; layer_stride < 1 without
 *         kept_layers; num_kept outside [1, num_layers] or kept_layers[i]
 *         out of range or not increasing with kept_layers; remove_first
 *         with a single kept layer; a bad cfg->struct_size or a config
 *         from a newer libmmrec: the message names the field),
 *         MMREC_ESTATE (a module or parameter of one of these names exists;
 *         the model was destroyed), MMREC_ENOMEM. A failed call leaves the
 *         model as it was.
 * Thread safety: per-handle (the model). Since 0.2. */
MMREC_API mmrec_status mmrec_iisan_item_encoder_create(mmrec_model *model, const char *name,
                                                       const mmrec_iisan_item_encoder_config *cfg,
                                                       mmrec_module **out);

/* Item embeddings from the cached states (the equations above), one node
 * per SAN, per head and for the fusion. A head's two layers run as one
 * product, x (W2 W1)^T + (W2 b1 + b2), when a call has more rows than d
 * (fewer multiply-adds; the same values up to float rounding), else as
 * two linear layers.
 *   encoder      (in)  a module made by mmrec_iisan_item_encoder_create().
 *   tape         (in)  the step's tape.
 *   text_states  (in)  [n, L, H] or [batch, seq, L, H]: each item's text
 *                      states, either the kept layers in order (L = K, as
 *                      a gather of the kept layers returns them) or every
 *                      layer (L = num_layers; the kept ones are read in
 *                      place). May be NULL in modes that do not read text
 *                      (MMREC_IISAN_IMAGE): it is not read then.
 *   image_states (in)  the same for the image backbone, the same leading
 *                      dims; may be NULL in MMREC_IISAN_TEXT.
 *   out          (out) [n, d] or [batch, seq, d], owned by `tape` until
 *                      reset.
 * Gradients reach the parameters and, when they require one, the states.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, or a states argument NULL in a
 *         mode that reads it; encoder not an IISAN item encoder; a tensor
 *         of another tape), MMREC_ESTATE (the module's model was
 *         destroyed), MMREC_ESHAPE (states not of 3 or 4 dims, a layer
 *         count other than K and num_layers, a width other than H, leading
 *         dims that differ between text and image; the message gives the
 *         shapes), MMREC_ESTALE, MMREC_ENOMEM. A failed call leaves the
 *         tape as it was.
 * Thread safety: per-handle (the tape); the module may be shared by
 * threads with inference tapes while nobody changes its parameters.
 * Since 0.2. */
MMREC_API mmrec_status mmrec_iisan_item_encoder_forward(mmrec_module *encoder, mmrec_tape *tape,
                                                        mmrec_tensor *text_states,
                                                        mmrec_tensor *image_states,
                                                        mmrec_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_IISAN_H */
