/* SGD as torch.optim.SGD (single-tensor path), in float32:
 *   g = grad * clip_coef;  g = g + wd * p                    (weight decay)
 *   b = g on the first step, else b = b * momentum + (1 - dampening) * g
 *   g = g + momentum * b (Nesterov) or g = b;  p = p + (-lr) * g
 * Sparse tables update only their touched rows; the momentum buffer's
 * "first step" is the parameter's first step (rows first touched later
 * start from a zero buffer). */
#include "optim_internal.h"

static int mmrec__sgd_n_buffers(const mmrec_optimizer_config *cfg) {
    return cfg->momentum != 0.0f ? 1 : 0;
}

static float mmrec__sgd_initial(const mmrec_optimizer_config *cfg, int i) {
    (void)cfg;
    (void)i;
    return 0.0f;
}

static void mmrec__sgd_plain(float *restrict p, const float *restrict g, size_t n, float coef,
                             float wd, float neg_lr) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * coef;
        if (wd != 0.0f) gi = gi + wd * p[i];
        p[i] = p[i] + neg_lr * gi;
    }
}

static void mmrec__sgd_momentum(float *restrict p, const float *restrict g, float *restrict b,
                                size_t n, float coef, float wd, float neg_lr, float momentum,
                                float keep, bool first, bool nesterov) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * coef;
        if (wd != 0.0f) gi = gi + wd * p[i];
        float bi = first ? gi : b[i] * momentum + keep * gi;
        b[i] = bi;
        gi = nesterov ? gi + momentum * bi : bi;
        p[i] = p[i] + neg_lr * gi;
    }
}

static bool mmrec__sgd_update(const mmrec__opt_update *u, mmrec__opt_slot *slot, float *param,
                              float *grad) {
    const mmrec_optimizer_config *cfg = u->cfg;
    const float neg_lr = -u->lr, keep = (float)(1.0 - (double)cfg->dampening);
    for (size_t r = 0; r < u->n_rows; r++) {
        size_t off = u->rows ? (size_t)u->rows[r] * u->dim : 0;
        if (cfg->momentum == 0.0f)
            mmrec__sgd_plain(param + off, grad + off, u->dim, u->clip_coef, u->weight_decay,
                             neg_lr);
        else
            mmrec__sgd_momentum(param + off, grad + off, slot->buf[0] + off, u->dim,
                                u->clip_coef, u->weight_decay, neg_lr, cfg->momentum, keep,
                                !slot->momentum_set, cfg->nesterov != 0);
    }
    if (cfg->momentum != 0.0f) slot->momentum_set = true;
    return false;
}

const mmrec__opt_kind mmrec__opt_sgd = {
    "SGD", mmrec__sgd_n_buffers, {"momentum_buffer", NULL}, mmrec__sgd_initial,
    mmrec__sgd_update};
