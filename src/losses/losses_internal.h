/* Losses shared with the systems' blocks (em3/, alignrec/, ...): the batch
 * softmax on arguments already validated, so that a block which is that
 * loss with fixed options (CIC, InfoNCE) is a configuration of it. */
#ifndef MMREC_LOSSES_INTERNAL_H
#define MMREC_LOSSES_INTERNAL_H

#include "../ops/ops_internal.h"
#include "mmrec/losses.h"

/* Sets the pairs a mask keeps in `keep` (zeroed on entry): bit j of row i,
 * at keep[i * words + j / 64] bit j % 64, keeps the pair (i, j). Cannot
 * fail. The positives and the accidental-hit rule are applied afterwards. */
typedef void (*mmrec__batch_softmax_mask_fn)(void *ctx, uint64_t *keep, size_t words);

static inline void mmrec__batch_softmax_keep(uint64_t *keep, size_t words, size_t i, size_t j) {
    keep[i * words + (j >> 6)] |= (uint64_t)1 << (j & 63);
}

/* The options of mmrec_loss_batch_softmax, validated (losses.h). Arrays are
 * borrowed for the call. */
typedef struct mmrec__batch_softmax_args {
    float temperature;
    bool normalize, symmetric, weight_mean;
    const float *column_bias;     /* [N] or NULL */
    const int64_t *positives;     /* [B] or NULL = the diagonal */
    const int64_t *candidate_ids; /* [N] or NULL */
    const float *row_weights;     /* [B] or NULL */
    mmrec__batch_softmax_mask_fn mask; /* NULL: no mask */
    void *mask_ctx;
} mmrec__batch_softmax_args;

/* mmrec_loss_batch_softmax on valid arguments: queries [B, d], candidates
 * [N, d]. Fails only with MMREC_ENOMEM (message on behalf of `func`),
 * leaving the tape as it was. */
mmrec_status mmrec__loss_batch_softmax(mmrec_tape *tape, const char *func, mmrec_tensor *queries,
                                       mmrec_tensor *candidates,
                                       const mmrec__batch_softmax_args *args,
                                       mmrec_tensor **out) MMREC__WUR;

/* Merges the caller's config (NULL: the defaults) into *c and checks the
 * options that do not depend on the inputs' shapes, for B query rows and
 * n candidate columns: the temperature, the flags, positives in range,
 * finite column bias, finite non-negative row weights. Errors name `func`
 * and the field (MMREC_EINVAL, MMREC_ERANGE). */
mmrec_status mmrec__batch_softmax_config(const char *func, const mmrec_batch_softmax_config *cfg,
                                         size_t batch, size_t cands,
                                         mmrec_batch_softmax_config *c) MMREC__WUR;

#endif
