/* Adagrad as torch.optim.Adagrad (single-tensor path, lr_decay 0), float32:
 *   g = grad * clip_coef;  g = g + wd * p
 *   sum = sum + g * g;  std = sqrt(sum) + eps;  p = p + (-lr) * g / std
 * The accumulator starts at initial_accumulator. Sparse tables update only
 * their touched rows (the same formula, row by row). */
#include "optim_internal.h"

#include <math.h>

static int mmrec__adagrad_n_buffers(const mmrec_optimizer_config *cfg) {
    (void)cfg;
    return 1;
}

static float mmrec__adagrad_initial(const mmrec_optimizer_config *cfg, int i) {
    (void)i;
    return cfg->initial_accumulator;
}

static void mmrec__adagrad_range(float *restrict p, const float *restrict g, float *restrict s,
                                 size_t n, float coef, float wd, float neg_lr, float eps) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * coef;
        if (wd != 0.0f) gi = gi + wd * p[i];
        float si = s[i] + gi * gi;
        s[i] = si;
        float std = sqrtf(si) + eps;
        p[i] = p[i] + neg_lr * gi / std;
    }
}

static bool mmrec__adagrad_update(const mmrec__opt_update *u, mmrec__opt_slot *slot,
                                  float *param, float *grad) {
    const float neg_lr = -u->lr;
    for (size_t r = 0; r < u->n_rows; r++) {
        size_t off = u->rows ? (size_t)u->rows[r] * u->dim : 0;
        mmrec__adagrad_range(param + off, grad + off, slot->buf[0] + off, u->dim, u->clip_coef,
                             u->weight_decay, neg_lr, u->cfg->eps);
    }
    return false;
}

const mmrec__opt_kind mmrec__opt_adagrad = {
    "Adagrad", mmrec__adagrad_n_buffers, {"sum", NULL}, mmrec__adagrad_initial,
    mmrec__adagrad_update};
