/* Distillation: losses between a teacher's outputs and a student's, for
 * teacher-student training of recommenders and retrievers (PFD, ColBERTv2's
 * score distillation, ENDX, TRMD and their kin). Each loss is one node on
 * the tape and returns a one-element tensor owned by the tape, ready for
 * mmrec_tape_backward() or to be scaled and added to the student's own
 * loss.
 *
 * Gradient flow. Every loss has a `detach_target` field in its config. 1
 * (the default): the teacher's side is a constant of the distillation term,
 * as torch's teacher.detach() makes it; the teacher's tensor gets no
 * gradient from the node (its gradient stays whatever the teacher's own
 * loss gives it), whether or not it requires one. 0: the gradient flows to
 * both sides, for methods whose teacher co-adapts (an on-the-fly cascade).
 * The student always gets its gradient when it requires one.
 *
 * Feature regression (TRMD: MSE of the student's representation to a
 * frozen teacher's, with a weight) needs no function of its own: it is
 * mmrec_loss_mse(tape, student, teacher, &l) of losses.h, whose target
 * (the second argument) is never differentiated, followed by
 * mmrec_scale(tape, l, weight, &out) of ops.h.
 *
 * Arrays passed by pointer in a config (masks, weights) are borrowed for
 * the call only: the tape keeps what its backward needs.
 * Thread safety: per-handle (the tape); mmrec_distill_warmup_weight is
 * thread-safe. */
#ifndef MMREC_DISTILL_H
#define MMREC_DISTILL_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Soft-label distillation of logits (PFD, Xu et al., KDD'20) ----
 * With s the student's logits and t the teacher's (same shape, n
 * elements), T the temperature:
 *   MMREC_DISTILL_BCE: y = sigmoid(t / T),
 *       L_d = mean(max(s, 0) - s y + log(1 + exp(-|s|)))
 *     the binary cross-entropy of the student's logit against the
 *     teacher's probability (torch.nn.functional.
 *     binary_cross_entropy_with_logits(s, sigmoid(t / T))); with
 *     detach_target 0 the teacher gets d t = -s y (1 - y) / (T n).
 *   MMREC_DISTILL_MSE: L_d = mean((s - t)^2); T is not read.
 *
 * PFD's objective, with L_s the student's loss on the labels and L_t the
 * teacher's (each e.g. mmrec_loss_bce_logits of losses.h), is
 *   (1 - lambda) L_s + lambda L_d + L_t
 * minimised over both models at every step: the teacher keeps training on
 * its own loss L_t, and detach_target 1 keeps L_d out of the teacher's
 * gradient (PFD's Algorithm 1). lambda is 0 for the first k steps (the
 * warm-up: the student learns from the labels only while the teacher
 * becomes worth imitating), then constant: mmrec_distill_warmup_weight
 * below. PFD uses lambda 0.5 (it changed little over 0.1 to 0.9). */
typedef enum mmrec_distill_kind {
    MMREC_DISTILL_BCE = 0, /* soft-label binary cross-entropy */
    MMREC_DISTILL_MSE = 1  /* squared error of the logits */
} mmrec_distill_kind;

typedef struct mmrec_distill_logits_config {
    size_t struct_size;
    int kind;            /* a mmrec_distill_kind; default MMREC_DISTILL_BCE */
    float temperature;   /* T: > 0 with a finite inverse; default 1 */
    int detach_target;   /* 1 (default): no gradient to the teacher; 0:
                            gradient to both sides */
} mmrec_distill_logits_config;

/* Fills `cfg` (`size` bytes, sizeof *cfg) with the defaults: kind
 * MMREC_DISTILL_BCE, temperature 1, detach_target 1.
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_distill_logits_config_init_sized(mmrec_distill_logits_config *cfg,
                                                              size_t size);
#define mmrec_distill_logits_config_init(cfg) \
    mmrec_distill_logits_config_init_sized((cfg), sizeof *(cfg))

/* The soft-label distillation loss L_d above, one node.
 *   tape    (in)  the step's tape.
 *   student (in)  the student's logits, any shape, at least one element.
 *   teacher (in)  the teacher's logits, the shape of student. May be a
 *                 tape tensor, a parameter or a wrap of precomputed logits.
 *   cfg     (in)  options, or NULL for the defaults.
 *   out     (out) [1], owned by `tape`.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a tensor of another tape, a config
 *         value: the message names the field; config from a newer
 *         libmmrec), MMREC_ESHAPE (shapes differ: both in the message),
 *         MMREC_ENUMERIC (a non-finite logit: the message names the tensor
 *         and the index), MMREC_ESTALE, MMREC_ENOMEM. A failed call changes
 *         nothing.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_distill_logits(mmrec_tape *tape, mmrec_tensor *student,
                                            mmrec_tensor *teacher,
                                            const mmrec_distill_logits_config *cfg,
                                            mmrec_tensor **out);

/* PFD's warm-up schedule of the distillation weight: 0 while
 * step < warmup_steps, then lambda. A pure function, nothing recorded;
 * multiply the losses by it (mmrec_scale of ops.h) or skip the term when
 * it is 0.
 *   step         (in) the training step, counted from 0.
 *   warmup_steps (in) k, the steps without distillation (0: none).
 *   lambda       (in) the weight after the warm-up, returned as given.
 * Returns lambda(step).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API float mmrec_distill_warmup_weight(int64_t step, int64_t warmup_steps, float lambda);

/* ---- KL divergence of score distributions (Hinton et al. 2015;
 * ColBERTv2's cross-encoder distillation; ERNIE-Search's cascade) ----
 * Student scores s [B, N] and teacher scores t [B, N] of the same N
 * candidates per row; K_i the candidates row i keeps (all without a mask).
 * Over K_i:
 *   p_i = softmax(t_i / T_t),  q_i = softmax(s_i / T_s)
 *   KL_i = sum_{j in K_i} p_ij (log p_ij - log q_ij)
 *   out  = c sum_i w_i KL_i / B     (w_i = 1 without row weights)
 * with c = T_s T_t when cfg->hinton_scale is 1 (T^2 when both are T, so
 * that the gradients keep their size as T changes, as Hinton et al.
 * advise), else 1. Removed pairs take no part in either distribution
 * (probability 0, no gradient); a row that keeps no candidate adds 0.
 *
 * The defaults (T_s = T_t = 1, hinton_scale 0, teacher detached) are
 * ColBERTv2's loss: torch.nn.KLDivLoss(reduction='batchmean',
 * log_target=True)(log_softmax(s), log_softmax(alpha t)), alpha =
 * distillation_alpha = 1 / T_t, with no T^2 factor (and its teacher scores
 * are data). The gradients are
 *   d s_ij = c w_i (q_ij - p_ij) / (B T_s)
 *   d t_ij = c w_i p_ij (log p_ij - log q_ij - KL_i) / (B T_t)
 * the second only with detach_target 0. */
typedef struct mmrec_distill_kl_config {
    size_t struct_size;
    float student_temperature; /* T_s: > 0 with a finite inverse; default 1 */
    float teacher_temperature; /* T_t: > 0 with a finite inverse; default 1 */
    int hinton_scale;          /* 1: multiply by T_s T_t; default 0 */
    int detach_target;         /* 1 (default): no gradient to the teacher;
                                  0: gradient to both sides */
    const uint8_t *mask;       /* [B, N] row-major or NULL: 0 removes the
                                  candidate j from row i's distributions */
    const float *row_weights;  /* [B] or NULL: w_i, finite and >= 0 */
} mmrec_distill_kl_config;

/* Fills `cfg` (`size` bytes, sizeof *cfg) with the defaults: both
 * temperatures 1, hinton_scale 0, detach_target 1, mask and row_weights
 * NULL.
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_distill_kl_config_init_sized(mmrec_distill_kl_config *cfg,
                                                          size_t size);
#define mmrec_distill_kl_config_init(cfg) mmrec_distill_kl_config_init_sized((cfg), sizeof *(cfg))

/* The KL distillation loss above, one node. The backward recomputes both
 * distributions from the scores and each row's statistics; the node keeps
 * O(B) floats and, with a mask, one bit per pair.
 *   tape    (in)  the step's tape.
 *   student (in)  [B, N] student scores, B >= 1, N >= 1.
 *   teacher (in)  [B, N] teacher scores of the same candidates.
 *   cfg     (in)  options, or NULL for the defaults; its arrays are
 *                 borrowed for the call.
 *   out     (out) [1], owned by `tape`.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a tensor of another tape, a config
 *         value: the message names the field and, for row_weights, the
 *         first bad index; config from a newer libmmrec), MMREC_ESHAPE
 *         (not 2-D or shapes differ: both in the message), MMREC_ENUMERIC
 *         (a non-finite score of a kept pair: the message names the tensor,
 *         row and column), MMREC_ESTALE, MMREC_ENOMEM. A failed call
 *         changes nothing.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_distill_kl(mmrec_tape *tape, mmrec_tensor *student,
                                        mmrec_tensor *teacher, const mmrec_distill_kl_config *cfg,
                                        mmrec_tensor **out);

/* ---- Geometry alignment (ENDX's GAM, Wang et al., Findings EMNLP 2021) ----
 * The in-batch similarity distributions of a dual encoder (the student)
 * are pulled towards those of a cross encoder's embeddings (the teacher).
 * Student embeddings Q_s, A_s [B, d_s] (questions or queries, answers or
 * items), teacher embeddings Q_t, A_t [B, d_t]; d_s and d_t may differ.
 * For each pair type k = (X, Y) of q-a (Q, A), a-a (A, A), a-q (A, Q) and
 * q-q (Q, Q), with sim the inner product (MMREC_DISTILL_DOT) or the cosine
 * (MMREC_DISTILL_COSINE: rows first divided by max(||x||, 1e-12), as
 * torch.nn.functional.normalize), and T the temperature:
 *   P^k_i = softmax_j(sim(X_t[i], Y_t[j]) / T)
 *   Q^k_i = softmax_j(sim(X_s[i], Y_s[j]) / T)
 *   out   = sum_k w_k (1 / B) sum_i KL(P^k_i || Q^k_i)
 * over every j of the batch, i itself included (for a-a and q-q the
 * self-similarity is part of the geometry). Each KL is the one of
 * mmrec_distill_kl with T_s = T_t = T. The paper publishes neither the
 * similarity, the temperature, the weights nor whether the teacher side is
 * detached; the defaults here are the inner product (a dual encoder's
 * score), T = 1, every weight 1 and the teacher detached. One node; it
 * keeps the 8 [B, B] similarity matrices (and the normalized rows for the
 * cosine), so its memory grows with B^2. */
typedef enum mmrec_distill_similarity {
    MMREC_DISTILL_DOT = 0,   /* inner product */
    MMREC_DISTILL_COSINE = 1 /* cosine of the rows */
} mmrec_distill_similarity;

/* Indices of mmrec_distill_gam_config.weights. */
enum {
    MMREC_DISTILL_GAM_QA = 0,
    MMREC_DISTILL_GAM_AA = 1,
    MMREC_DISTILL_GAM_AQ = 2,
    MMREC_DISTILL_GAM_QQ = 3
};

typedef struct mmrec_distill_gam_config {
    size_t struct_size;
    float temperature; /* T: > 0 with a finite inverse; default 1 */
    int similarity;    /* a mmrec_distill_similarity; default
                          MMREC_DISTILL_DOT */
    int detach_target; /* 1 (default): no gradient to the teacher's
                          embeddings; 0: gradient to both sides */
    float weights[4];  /* w_k by MMREC_DISTILL_GAM_*: finite, >= 0; 0 skips
                          the type; default 1 each */
} mmrec_distill_gam_config;

/* Fills `cfg` (`size` bytes, sizeof *cfg) with the defaults: temperature
 * 1, MMREC_DISTILL_DOT, detach_target 1, every weight 1.
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_distill_gam_config_init_sized(mmrec_distill_gam_config *cfg,
                                                           size_t size);
#define mmrec_distill_gam_config_init(cfg) \
    mmrec_distill_gam_config_init_sized((cfg), sizeof *(cfg))

/* The geometry alignment loss above, one node.
 *   tape      (in)  the step's tape.
 *   student_q (in)  [B, d_s] the student's query embeddings, B >= 1.
 *   student_a (in)  [B, d_s] the student's answer (item) embeddings.
 *   teacher_q (in)  [B, d_t] the teacher's query embeddings.
 *   teacher_a (in)  [B, d_t] the teacher's answer (item) embeddings.
 *   cfg       (in)  options, or NULL for the defaults.
 *   out       (out) [1], owned by `tape`.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a tensor of another tape, a config
 *         value: the message names the field; config from a newer
 *         libmmrec), MMREC_ESHAPE (not 2-D, batch or width mismatch: the
 *         shapes in the message), MMREC_ENUMERIC (a non-finite embedding:
 *         the message names the tensor and the index), MMREC_ESTALE,
 *         MMREC_ENOMEM. A failed call changes nothing.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_distill_gam(mmrec_tape *tape, mmrec_tensor *student_q,
                                         mmrec_tensor *student_a, mmrec_tensor *teacher_q,
                                         mmrec_tensor *teacher_a,
                                         const mmrec_distill_gam_config *cfg, mmrec_tensor **out);

/* ---- Attention-map distillation (VIRT, Distilled Dual-Encoder) ----
 * Between a teacher's attention probabilities (e.g. the user-to-item
 * block of a joint encoder's map: mmrec_transformer_forward_probs of
 * modules.h, then mmrec_slice) and the student's "virtual" attention of
 * the same shape [..., Tq, Tk] (e.g. mmrec_softmax of its own per-side
 * projections' products over sqrt(d)). Both are probabilities: each row
 * over Tk sums to 1, or is all zeros (a query attending to nothing).
 * With s the student's map, t the teacher's, R = numel / Tk rows:
 *   MMREC_DISTILL_ATTN_L2 (VIRT): mean over every element of (s - t)^2.
 *   MMREC_DISTILL_ATTN_KL (Distilled Dual-Encoder): per row
 *     sum_j t_j (log max(t_j, eps) - log max(s_j, eps)), mean over the R
 *     rows (a zero row adds 0); eps keeps a student probability of 0
 *     finite where the teacher's is not.
 * Neither paper's exact form was published with code: L2 and KL are
 * their descriptions, the mean reductions and eps (1e-8 by default) this
 * library's choices. detach_target as above (default 1). */
typedef enum mmrec_distill_attn_kind {
    MMREC_DISTILL_ATTN_L2 = 0, /* squared error (VIRT) */
    MMREC_DISTILL_ATTN_KL = 1  /* row-wise KL(teacher || student) (DiDE) */
} mmrec_distill_attn_kind;

typedef struct mmrec_distill_attn_config {
    size_t struct_size;
    int kind;          /* a mmrec_distill_attn_kind; default MMREC_DISTILL_ATTN_L2 */
    float eps;         /* KL: the floor of both logs; > 0 and finite, default 1e-8 */
    int detach_target; /* 1 (default): no gradient to the teacher; 0: both */
} mmrec_distill_attn_config;

/* Fills `cfg` (`size` bytes, sizeof *cfg) with the defaults: kind
 * MMREC_DISTILL_ATTN_L2, eps 1e-8, detach_target 1.
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_distill_attn_config_init_sized(mmrec_distill_attn_config *cfg,
                                                            size_t size);
#define mmrec_distill_attn_config_init(cfg) \
    mmrec_distill_attn_config_init_sized((cfg), sizeof *(cfg))

/* The attention-map distillation loss above, one node. Gradients: L2,
 * d s = 2 (s - t) / n (and its negative to t); KL, d s_j = -t_j / s_j / R
 * where s_j > eps (0 below), and, with detach_target 0, d t_j =
 * (log max(t_j, eps) + [t_j > eps] - log max(s_j, eps)) / R.
 *   tape    (in)  the step's tape.
 *   student (in)  [..., Tq, Tk], at least 2-D, finite values in [0, 1].
 *   teacher (in)  the same shape, finite values in [0, 1].
 *   cfg     (in)  from mmrec_distill_attn_config_init(), or NULL for the
 *                 defaults; borrowed for the call.
 *   out     (out) [1], owned by `tape`.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, a tensor of another tape, kind,
 *         eps or detach_target out of range: the message names the
 *         field; a config from a newer libmmrec), MMREC_ESHAPE (the maps
 *         of different shapes, or not at least 2-D: the message gives
 *         both), MMREC_ENUMERIC (a value not finite or outside [0, 1]: the
 *         message names the map and the index), MMREC_ESTALE,
 *         MMREC_ENOMEM. A failed call changes nothing.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_distill_attn(mmrec_tape *tape, mmrec_tensor *student,
                                          mmrec_tensor *teacher,
                                          const mmrec_distill_attn_config *cfg,
                                          mmrec_tensor **out);

#ifdef __cplusplus
}
#endif

#endif
