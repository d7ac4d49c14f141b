/* Adam and AdamW as torch.optim.Adam / AdamW (single-tensor path), float32
 * element-wise with the bias corrections in double as torch computes them:
 *   g = grad * clip_coef
 *   Adam:  g = g + wd * p            AdamW: p = p * (1 - lr * wd)
 *   m = lerp(m, g, 1 - beta1);  v = v * beta2 + (1 - beta2) * g * g
 *   step_size = lr / (1 - beta1^t);  denom = sqrt(v) / sqrt(1 - beta2^t) + eps
 *   p = p + (-step_size) * m / denom
 * Sparse tables are updated lazily, like torch.optim.SparseAdam: only the
 * touched rows (their moments and weight decay), with the parameter's step
 * count t in the bias corrections. */
#include "optim_internal.h"

#include <math.h>
#include <string.h>

static int mmrec__adam_n_buffers(const mmrec_optimizer_config *cfg) {
    (void)cfg;
    return 2;
}

static float mmrec__adam_initial(const mmrec_optimizer_config *cfg, int i) {
    (void)cfg;
    (void)i;
    return 0.0f;
}

typedef struct mmrec__adam_consts {
    float coef, wd, decay, w1, one_minus_w1, beta2, one_minus_beta2, neg_step_size, bc2_sqrt,
        eps;
    bool decoupled;
} mmrec__adam_consts;

MMREC__SIMD_CLONES
static void mmrec__adam_range(const mmrec__adam_consts *k, float *restrict p,
                              const float *restrict g, float *restrict m, float *restrict v,
                              size_t n) {
    const bool small_w = k->w1 < 0.5f; /* torch's lerp formula switch */
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * k->coef;
        float pi = p[i];
        if (k->decoupled)
            pi = pi * k->decay;
        else if (k->wd != 0.0f)
            gi = gi + k->wd * pi;
        float mi = m[i];
        mi = small_w ? mi + k->w1 * (gi - mi) : gi - (gi - mi) * k->one_minus_w1;
        float vi = v[i] * k->beta2 + k->one_minus_beta2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / k->bc2_sqrt + k->eps;
        p[i] = pi + k->neg_step_size * mi / denom;
    }
}

/* A dense parameter of at least this many elements is split over the
 * pool, each part at least half of it (element-wise: the same bits). */
#define MMREC__ADAM_SPLIT ((size_t)1 << 15)

/* The split update zeroes the gradient block by block right after
 * reading it, while the block is still in cache: one pass over the
 * gradient instead of two. */
#define MMREC__ADAM_BLOCK 4096

typedef struct mmrec__adam_job {
    const mmrec__adam_consts *k;
    float *p, *g, *m, *v;
} mmrec__adam_job;

static void mmrec__adam_chunk(void *ctx, size_t lo, size_t hi, int part) {
    (void)part;
    const mmrec__adam_job *j = ctx;
    for (size_t b = lo; b < hi; b += MMREC__ADAM_BLOCK) {
        size_t n = hi - b < MMREC__ADAM_BLOCK ? hi - b : MMREC__ADAM_BLOCK;
        mmrec__adam_range(j->k, j->p + b, j->g + b, j->m + b, j->v + b, n);
        memset(j->g + b, 0, n * sizeof *j->g);
    }
}

/* The listed rows of a row-sparse table (distinct rows: each is updated
 * once, so a large list is split over the pool), or the whole of a small
 * dense parameter. */
typedef struct mmrec__adam_rows_job {
    const mmrec__adam_consts *k;
    const mmrec__opt_update *u;
    float *p, *g, *m, *v;
} mmrec__adam_rows_job;

static void mmrec__adam_rows_chunk(void *ctx, size_t lo, size_t hi, int part) {
    (void)part;
    const mmrec__adam_rows_job *j = ctx;
    size_t dim = j->u->dim;
    for (size_t r = lo; r < hi; r++) {
        size_t off = j->u->rows ? (size_t)j->u->rows[r] * dim : 0;
        mmrec__adam_range(j->k, j->p + off, j->g + off, j->m + off, j->v + off, dim);
    }
}

static bool mmrec__adam_update(const mmrec__opt_update *u, mmrec__opt_slot *slot, float *param,
                               float *grad) {
    const mmrec_optimizer_config *cfg = u->cfg;
    double beta1 = cfg->beta1, beta2 = cfg->beta2, t = (double)u->step;
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    mmrec__adam_consts k;
    k.coef = u->clip_coef;
    k.wd = u->weight_decay;
    k.decoupled = cfg->type == MMREC_OPT_ADAMW;
    k.decay = (float)(1.0 - (double)u->lr * (double)u->weight_decay);
    k.w1 = (float)(1.0 - beta1);
    k.one_minus_w1 = 1.0f - k.w1;
    k.beta2 = cfg->beta2;
    k.one_minus_beta2 = (float)(1.0 - beta2);
    k.neg_step_size = (float)(-((double)u->lr / bc1));
    k.bc2_sqrt = (float)sqrt(bc2);
    k.eps = cfg->eps;
    if (u->rows == NULL && u->dim >= MMREC__ADAM_SPLIT) {
        mmrec__adam_job j = {&k, param, grad, slot->buf[0], slot->buf[1]};
        mmrec__parallel_for(u->dim, mmrec__parallel_parts(u->dim, MMREC__ADAM_SPLIT / 2),
                            mmrec__adam_chunk, &j);
        return true;
    }
    mmrec__adam_rows_job j = {&k, u, param, grad, slot->buf[0], slot->buf[1]};
    size_t n = u->n_rows;
    int parts = u->rows && n * u->dim >= MMREC__ADAM_SPLIT
                    ? mmrec__parallel_parts(n, mmrec__grain(u->dim, MMREC__ADAM_SPLIT / 2))
                    : 1;
    mmrec__parallel_for(n, parts, mmrec__adam_rows_chunk, &j);
    return false;
}

const mmrec__opt_kind mmrec__opt_adam = {
    "Adam", mmrec__adam_n_buffers, {"exp_avg", "exp_avg_sq"}, mmrec__adam_initial,
    mmrec__adam_update};
