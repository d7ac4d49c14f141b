/* Distillation internals: the first-release sizes of distill.h's config
 * structs (core/config_sizes.h explains the rows). */
#ifndef MMREC_DISTILL_INTERNAL_H
#define MMREC_DISTILL_INTERNAL_H

#include "mmrec/distill.h"
#include "../core/config_sizes.h"
#include "../ops/ops_internal.h"

#include <math.h>

MMREC__SIZED_STRUCT(mmrec_distill_logits_config, detach_target, 0.2, 24)
MMREC__SIZED_STRUCT(mmrec_distill_kl_config, row_weights, 0.2, 40)
MMREC__SIZED_STRUCT(mmrec_distill_gam_config, weights, 0.2, 40)
MMREC__SIZED_STRUCT(mmrec_distill_attn_config, detach_target, 0.2, 24)

/* Checks a temperature field on behalf of `func`: > 0 with a finite
 * inverse. `name` is the field as the caller writes it. */
static inline mmrec_status mmrec__distill_check_temperature(const char *func, const char *name,
                                                            float t) {
    if (!(t > 0.0f) || !isfinite(t) || !isfinite(1.0f / t))
        return mmrec__set_error(MMREC_EINVAL, func, "%s is %g, must be > 0 with a finite inverse",
                                name, (double)t);
    return MMREC_OK;
}

/* Checks a 0/1 flag field on behalf of `func`. */
static inline mmrec_status mmrec__distill_check_flag(const char *func, const char *name, int v) {
    if (v != 0 && v != 1)
        return mmrec__set_error(MMREC_EINVAL, func, "%s is %d, must be 0 or 1", name, v);
    return MMREC_OK;
}

/* ---- The row KL kernel (kl.c), shared by mmrec_distill_kl and the
 * geometry alignment (gam.c) ----
 * Rows of student scores s and teacher scores t, [batch, cands]
 * row-major; row i keeps candidate j unless the mask (bytes, read during
 * the forward) or the bits (the node's copy, [batch, words]) remove it.
 * p_i = softmax(t_i inv_tt), q_i = softmax(s_i inv_ts) over the kept
 * candidates. */
typedef struct mmrec__kl_rows {
    size_t batch, cands, words;
    float inv_ts, inv_tt;
    const uint8_t *mask;  /* [B, N] bytes or NULL */
    const uint64_t *bits; /* [B, words] or NULL */
    float *stat;          /* [B, 5]: student max, log-sum-exp, teacher max,
                             log-sum-exp, KL_i */
} mmrec__kl_rows;

/* KL_i of row i, its statistics into r->stat; 0 for a row that keeps
 * nothing. */
double mmrec__kl_row(const mmrec__kl_rows *r, const float *s, const float *t, size_t i);

/* Adds g d KL_i / d s_i into ds_row and g d KL_i / d t_i into dt_row (each
 * [cands], or NULL to skip), from the statistics of mmrec__kl_row. */
void mmrec__kl_row_backward(const mmrec__kl_rows *r, const float *s, const float *t, size_t i,
                            float g, float *ds_row, float *dt_row);

#endif
