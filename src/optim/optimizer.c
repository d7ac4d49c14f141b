/* Optimizer: configuration, parameter groups, learning rates, and the step
 * driver (finiteness check, global-norm clipping, per-parameter update,
 * gradient clearing). The update rules live in sgd.c, adam.c, adagrad.c. */
#include "optim_internal.h"
#include "../core/config_sizes.h"

#include <math.h>
#include <string.h>

static const mmrec_optimizer_config mmrec__opt_defaults = {
    sizeof(mmrec_optimizer_config), /* struct_size */
    MMREC_OPT_ADAM,                 /* type */
    1e-3f,                          /* lr */
    -1.0f,                          /* weight_decay: the type's */
    0.0f, 0.0f, 0,                  /* momentum, dampening, nesterov */
    0.9f, 0.999f,                   /* beta1, beta2 */
    0.0f,                           /* eps: the type's */
    0.0f,                           /* initial_accumulator */
    0.0f,                           /* clip_norm: off */
    MMREC_NONFINITE_ERROR           /* nonfinite_grads */
};

mmrec_status mmrec_optimizer_config_init_sized(mmrec_optimizer_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_optimizer_config, cfg, size, mmrec__opt_defaults);
}

const mmrec__opt_kind *mmrec__opt_kind_of(mmrec_optimizer_type type) {
    switch (type) {
    case MMREC_OPT_SGD: return &mmrec__opt_sgd;
    case MMREC_OPT_ADAM:
    case MMREC_OPT_ADAMW: return &mmrec__opt_adam;
    case MMREC_OPT_ADAGRAD: return &mmrec__opt_adagrad;
    }
    return NULL;
}

const char *mmrec__opt_type_name(mmrec_optimizer_type type) {
    switch (type) {
    case MMREC_OPT_SGD: return "SGD";
    case MMREC_OPT_ADAM: return "Adam";
    case MMREC_OPT_ADAMW: return "AdamW";
    case MMREC_OPT_ADAGRAD: return "Adagrad";
    }
    return "unknown";
}

mmrec_status mmrec__optim_check(const char *func, const mmrec_optimizer *opt) {
    if (opt == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'opt' is NULL");
    if (opt->magic != MMREC__OPTIM_MAGIC)
        return mmrec__set_error(MMREC_EINVAL, func, "argument 'opt' is not an optimizer");
    return MMREC_OK;
}

static bool mmrec__ok_nonneg(float x) { return isfinite(x) && x >= 0.0f; }

/* Range checks of a merged config; fills the type's eps and weight decay. */
static mmrec_status mmrec__opt_config_resolve(mmrec_optimizer_config *c, const char *func) {
#define MMREC__CFG_FAIL(cond, ...) \
    if (cond) return mmrec__set_error(MMREC_EINVAL, func, __VA_ARGS__)
    MMREC__CFG_FAIL(mmrec__opt_kind_of(c->type) == NULL,
                    "cfg->type is %d, expected MMREC_OPT_SGD, _ADAM, _ADAMW or _ADAGRAD",
                    (int)c->type);
    MMREC__CFG_FAIL(!mmrec__ok_nonneg(c->lr), "cfg->lr is %g, expected finite and >= 0",
                    (double)c->lr);
    MMREC__CFG_FAIL(isnan(c->weight_decay) || isinf(c->weight_decay),
                    "cfg->weight_decay is %g, expected finite (>= 0, or < 0 for the default)",
                    (double)c->weight_decay);
    MMREC__CFG_FAIL(!mmrec__ok_nonneg(c->momentum), "cfg->momentum is %g, expected finite and >= 0",
                    (double)c->momentum);
    MMREC__CFG_FAIL(!isfinite(c->dampening), "cfg->dampening is %g, expected finite",
                    (double)c->dampening);
    MMREC__CFG_FAIL(c->nesterov != 0 && c->nesterov != 1, "cfg->nesterov is %d, expected 0 or 1",
                    c->nesterov);
    MMREC__CFG_FAIL(c->nesterov && (c->momentum <= 0.0f || c->dampening != 0.0f),
                    "cfg->nesterov needs momentum > 0 and dampening 0 (momentum %g, "
                    "dampening %g)",
                    (double)c->momentum, (double)c->dampening);
    MMREC__CFG_FAIL(!(c->beta1 >= 0.0f && c->beta1 < 1.0f), "cfg->beta1 is %g, expected [0, 1)",
                    (double)c->beta1);
    MMREC__CFG_FAIL(!(c->beta2 >= 0.0f && c->beta2 < 1.0f), "cfg->beta2 is %g, expected [0, 1)",
                    (double)c->beta2);
    MMREC__CFG_FAIL(!mmrec__ok_nonneg(c->eps), "cfg->eps is %g, expected finite and >= 0",
                    (double)c->eps);
    MMREC__CFG_FAIL(!mmrec__ok_nonneg(c->initial_accumulator),
                    "cfg->initial_accumulator is %g, expected finite and >= 0",
                    (double)c->initial_accumulator);
    MMREC__CFG_FAIL(!mmrec__ok_nonneg(c->clip_norm),
                    "cfg->clip_norm is %g, expected finite and >= 0 (0 = off)",
                    (double)c->clip_norm);
    MMREC__CFG_FAIL(c->nonfinite_grads != MMREC_NONFINITE_ERROR &&
                        c->nonfinite_grads != MMREC_NONFINITE_SKIP,
                    "cfg->nonfinite_grads is %d, expected MMREC_NONFINITE_ERROR or _SKIP",
                    c->nonfinite_grads);
#undef MMREC__CFG_FAIL
    if (c->weight_decay < 0.0f) c->weight_decay = c->type == MMREC_OPT_ADAMW ? 0.01f : 0.0f;
    if (c->eps == 0.0f) c->eps = c->type == MMREC_OPT_ADAGRAD ? 1e-10f : 1e-8f;
    return MMREC_OK;
}

/* The group of a parameter: the newest group whose prefix matches, else 0. */
static int mmrec__opt_group_of(const mmrec_optimizer *opt, const char *name) {
    for (size_t g = opt->n_groups; g-- > 1;)
        if (mmrec__name_under(name, opt->groups[g].prefix))
            return (int)g;
    return 0;
}

mmrec_status mmrec__optim_sync_slots(mmrec_optimizer *opt, const char *func) {
    mmrec_model *model = opt->model;
    if (opt->n_slots >= model->n_params) return MMREC_OK;
    mmrec__opt_slot *slots = mmrec__calloc(model->n_params, sizeof *slots);
    if (slots == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    if (opt->n_slots) memcpy(slots, opt->slots, opt->n_slots * sizeof *slots);
    for (size_t i = opt->n_slots; i < model->n_params; i++)
        slots[i].group = mmrec__opt_group_of(opt, model->params[i]->name);
    mmrec__free(opt->slots);
    opt->slots = slots;
    opt->n_slots = model->n_params;
    return MMREC_OK;
}

mmrec_status mmrec__optim_slot_alloc(mmrec_optimizer *opt, size_t i, const char *func) {
    const mmrec__opt_kind *kind = mmrec__opt_kind_of(opt->cfg.type);
    mmrec__param *p = opt->model->params[i];
    mmrec__opt_slot *slot = &opt->slots[i];
    for (int b = 0; b < kind->n_buffers(&opt->cfg); b++) {
        if (slot->buf[b]) continue;
        slot->buf[b] = mmrec__alloc(p->tensor.numel * sizeof(float));
        if (slot->buf[b] == NULL)
            return mmrec__set_error(MMREC_ENOMEM, func,
                                    "out of memory for the optimizer state of '%s'", p->name);
    }
    return MMREC_OK;
}

static void mmrec__opt_free(mmrec_optimizer *opt) {
    for (size_t i = 0; i < opt->n_slots; i++)
        for (int b = 0; b < MMREC__OPTIM_MAX_BUFFERS; b++) mmrec__free(opt->slots[i].buf[b]);
    for (size_t g = 0; g < opt->n_groups; g++) mmrec__free(opt->groups[g].prefix);
    mmrec__free(opt->slots);
    mmrec__free(opt->groups);
    opt->magic = 0;
    mmrec__free(opt);
}

mmrec_status mmrec_optimizer_create(mmrec_model *model, const mmrec_optimizer_config *cfg,
                                    mmrec_optimizer **out) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(cfg);
    MMREC_CHECK_NULL(out);
    mmrec_optimizer_config c = mmrec__opt_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_optimizer_config, &c, cfg));
    MMREC_FORWARD_IF(mmrec__opt_config_resolve(&c, __func__));
    mmrec_optimizer *opt = mmrec__calloc(1, sizeof *opt);
    MMREC_FAIL_IF(opt == NULL, MMREC_ENOMEM, "out of memory");
    opt->magic = MMREC__OPTIM_MAGIC;
    opt->model = model;
    opt->cfg = c;
    opt->groups = mmrec__calloc(4, sizeof *opt->groups);
    if (opt->groups == NULL) {
        mmrec__opt_free(opt);
        MMREC_FAIL(MMREC_ENOMEM, "out of memory");
    }
    opt->cap_groups = 4;
    opt->n_groups = 1;
    opt->groups[0].lr = c.lr;
    opt->groups[0].weight_decay = c.weight_decay;
    mmrec_status s = mmrec__optim_sync_slots(opt, __func__);
    if (s != MMREC_OK) {
        mmrec__opt_free(opt);
        return s;
    }
    mmrec__model_retain(model);
    *out = opt;
    return MMREC_OK;
}

void mmrec_optimizer_destroy(mmrec_optimizer *opt) {
    if (opt == NULL || opt->magic != MMREC__OPTIM_MAGIC) return;
    mmrec_model *model = opt->model;
    mmrec__opt_free(opt);
    mmrec__model_release(model);
}

mmrec_status mmrec_optimizer_add_group(mmrec_optimizer *opt, const char *prefix, float lr,
                                       float weight_decay, int *group_out) {
    MMREC_CHECK_OPTIM(opt);
    MMREC_CHECK_NULL(prefix);
    MMREC_FAIL_IF(!mmrec__ok_nonneg(lr), MMREC_EINVAL, "lr is %g, expected finite and >= 0",
                  (double)lr);
    MMREC_FAIL_IF(!mmrec__ok_nonneg(weight_decay), MMREC_EINVAL,
                  "weight_decay is %g, expected finite and >= 0", (double)weight_decay);
    mmrec_model *model = opt->model;
    MMREC_FAIL_IF(model->destroyed, MMREC_ESTATE, "the optimizer's model was destroyed");
    size_t matched = 0;
    for (size_t i = 0; i < model->n_params; i++)
        if (mmrec__name_under(model->params[i]->name, prefix)) matched++;
    MMREC_FAIL_IF(matched == 0, MMREC_ENOTFOUND,
                  "no parameter is '%s' or below it (prefixes match whole name components)",
                  prefix);
    MMREC_FORWARD_IF(mmrec__optim_sync_slots(opt, __func__));
    if (opt->n_groups == opt->cap_groups) {
        mmrec__opt_group *grown = mmrec__calloc(opt->cap_groups * 2, sizeof *grown);
        MMREC_FAIL_IF(grown == NULL, MMREC_ENOMEM, "out of memory");
        memcpy(grown, opt->groups, opt->n_groups * sizeof *grown);
        mmrec__free(opt->groups);
        opt->groups = grown;
        opt->cap_groups *= 2;
    }
    char *copy = mmrec__strdup(prefix);
    MMREC_FAIL_IF(copy == NULL, MMREC_ENOMEM, "out of memory");
    int g = (int)opt->n_groups++;
    opt->groups[g].prefix = copy;
    opt->groups[g].lr = lr;
    opt->groups[g].weight_decay = weight_decay;
    for (size_t i = 0; i < model->n_params; i++)
        if (mmrec__name_under(model->params[i]->name, prefix)) opt->slots[i].group = g;
    if (group_out) *group_out = g;
    return MMREC_OK;
}

mmrec_status mmrec_optimizer_set_lr(mmrec_optimizer *opt, int group, float lr) {
    MMREC_CHECK_OPTIM(opt);
    MMREC_FAIL_IF(group < 0 || (size_t)group >= opt->n_groups, MMREC_ERANGE,
                  "group is %d, the optimizer has %zu groups", group, opt->n_groups);
    MMREC_FAIL_IF(!mmrec__ok_nonneg(lr), MMREC_EINVAL, "lr is %g, expected finite and >= 0",
                  (double)lr);
    opt->groups[group].lr = lr;
    return MMREC_OK;
}

mmrec_status mmrec_optimizer_get_lr(const mmrec_optimizer *opt, int group, float *out) {
    MMREC_CHECK_OPTIM(opt);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(group < 0 || (size_t)group >= opt->n_groups, MMREC_ERANGE,
                  "group is %d, the optimizer has %zu groups", group, opt->n_groups);
    *out = opt->groups[group].lr;
    return MMREC_OK;
}

mmrec_status mmrec_optimizer_step_count(const mmrec_optimizer *opt, uint64_t *out) {
    MMREC_CHECK_OPTIM(opt);
    MMREC_CHECK_NULL(out);
    *out = opt->step;
    return MMREC_OK;
}

mmrec_status mmrec_optimizer_skipped_steps(const mmrec_optimizer *opt, uint64_t *out) {
    MMREC_CHECK_OPTIM(opt);
    MMREC_CHECK_NULL(out);
    *out = opt->skipped;
    return MMREC_OK;
}

mmrec_status mmrec_optimizer_last_grad_norm(const mmrec_optimizer *opt, float *out) {
    MMREC_CHECK_OPTIM(opt);
    MMREC_CHECK_NULL(out);
    *out = opt->last_grad_norm;
    return MMREC_OK;
}

/* ---- step ---- */

static size_t mmrec__param_row_dim(const mmrec__param *p) {
    return p->tensor.numel / (size_t)p->tensor.shape[0];
}

#define MMREC__OPT_LANES 16

/* Sum of squares of g[0 .. n) in double, over independent lanes (a single
 * running sum would serialize on the adds' latency). */
static double mmrec__sumsq_range(const float *g, size_t n) {
    double acc[MMREC__OPT_LANES] = {0};
    size_t i = 0;
    for (; i + MMREC__OPT_LANES <= n; i += MMREC__OPT_LANES)
        for (size_t l = 0; l < MMREC__OPT_LANES; l++) acc[l] += (double)g[i + l] * (double)g[i + l];
    for (size_t l = 0; i + l < n; l++) acc[l] += (double)g[i + l] * (double)g[i + l];
    double s = 0.0;
    for (size_t l = 0; l < MMREC__OPT_LANES; l++) s += acc[l];
    return s;
}

/* A gradient of at least two blocks is summed block by block over the
 * pool: each block's sum in double, the sums added in block order. The
 * blocks depend only on the size (at most MMREC__SUMSQ_MAX_BLOCKS, larger
 * blocks past that), so neither does the norm on the thread count. */
#define MMREC__SUMSQ_BLOCK ((size_t)1 << 16)
#define MMREC__SUMSQ_MAX_BLOCKS 1024

typedef struct mmrec__sumsq_job {
    const float *g;
    size_t n, block;
    double *sums;
} mmrec__sumsq_job;

static void mmrec__sumsq_chunk(void *ctx, size_t lo, size_t hi, int part) {
    (void)part;
    const mmrec__sumsq_job *j = ctx;
    for (size_t b = lo; b < hi; b++) {
        size_t start = b * j->block, len = j->n - start < j->block ? j->n - start : j->block;
        j->sums[b] = mmrec__sumsq_range(j->g + start, len);
    }
}

static double mmrec__sumsq_dense(const float *g, size_t n) {
    if (n < 2 * MMREC__SUMSQ_BLOCK) return mmrec__sumsq_range(g, n);
    size_t block = MMREC__SUMSQ_BLOCK;
    while ((n + block - 1) / block > MMREC__SUMSQ_MAX_BLOCKS) block *= 2;
    size_t n_blocks = (n + block - 1) / block;
    double sums[MMREC__SUMSQ_MAX_BLOCKS];
    mmrec__sumsq_job j = {g, n, block, sums};
    mmrec__parallel_for(n_blocks, mmrec__parallel_parts(n_blocks, 1), mmrec__sumsq_chunk, &j);
    double s = 0.0;
    for (size_t b = 0; b < n_blocks; b++) s += sums[b];
    return s;
}

/* Sum of squares of a gradient in double (touched rows only when rows-only):
 * finite exactly when every element is. */
static double mmrec__grad_sumsq(const mmrec__param *p) {
    const float *g = p->tensor.grad;
    if (!mmrec__param_rows_only(p)) return mmrec__sumsq_dense(g, p->tensor.numel);
    size_t dim = mmrec__param_row_dim(p);
    double s = 0.0;
    for (size_t r = 0; r < p->n_touched; r++)
        s += mmrec__sumsq_range(g + (size_t)p->touched_rows[r] * dim, dim);
    return s;
}

static mmrec_status mmrec__grad_report_bad(const mmrec__param *p, const char *func) {
    size_t i = mmrec__first_nonfinite(p->tensor.grad, p->tensor.numel);
    if (i < p->tensor.numel)
        return mmrec__set_error(MMREC_ENUMERIC, func,
                                "gradient of parameter '%s' has %g at element %zu; nothing "
                                "was updated",
                                p->name, (double)p->tensor.grad[i], i);
    return mmrec__set_error(MMREC_ENUMERIC, func, "gradient of parameter '%s' is not finite",
                            p->name);
}

static void mmrec__slot_init(const mmrec_optimizer *opt, const mmrec__opt_kind *kind,
                             mmrec__opt_slot *slot, size_t numel) {
    for (int b = 0; b < kind->n_buffers(&opt->cfg); b++) {
        float v = kind->initial(&opt->cfg, b);
        for (size_t j = 0; j < numel; j++) slot->buf[b][j] = v;
    }
    slot->step = 0;
    slot->momentum_set = false;
    slot->ready = true;
}

/* Dense parameters below this many elements are updated whole, several
 * at once over the pool. */
#define MMREC__OPT_SMALL ((size_t)1 << 15)

static bool mmrec__optim_small(const mmrec__param *p) {
    return p->trainable && !mmrec__param_rows_only(p) && p->tensor.numel > 0 &&
           p->tensor.numel < MMREC__OPT_SMALL;
}

/* One parameter's update, then its gradient zeroed. */
static void mmrec__optim_update_param(mmrec_optimizer *opt, size_t i, float coef) {
    mmrec__param *p = opt->model->params[i];
    const mmrec__opt_kind *kind = mmrec__opt_kind_of(opt->cfg.type);
    mmrec__opt_slot *slot = &opt->slots[i];
    if (!slot->ready) mmrec__slot_init(opt, kind, slot, p->tensor.numel);
    slot->step++;
    const mmrec__opt_group *g = &opt->groups[slot->group];
    mmrec__opt_update u = {&opt->cfg, g->lr, g->weight_decay, coef, slot->step,
                           p->tensor.numel, NULL, 1};
    if (mmrec__param_rows_only(p)) {
        u.dim = mmrec__param_row_dim(p);
        u.rows = p->touched_rows;
        u.n_rows = p->n_touched;
    }
    if (kind->update(&u, slot, p->tensor.data, p->tensor.grad))
        mmrec__param_grad_zeroed(p);
    else
        mmrec__param_zero_grad(p);
}

/* The small dense parameters laid end to end, total elements: a part
 * [lo, hi) of them updates each parameter that starts inside it. */
typedef struct mmrec__optim_small_job {
    mmrec_optimizer *opt;
    float coef;
    size_t total;
} mmrec__optim_small_job;

static void mmrec__optim_small_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__optim_small_job *j = ctx;
    const mmrec_model *model = j->opt->model;
    (void)part;
    size_t at = 0;
    for (size_t i = 0; i < model->n_params && at < hi; i++) {
        const mmrec__param *p = model->params[i];
        if (!mmrec__optim_small(p)) continue;
        if (at >= lo) mmrec__optim_update_param(j->opt, i, j->coef);
        at += p->tensor.numel;
    }
}

mmrec_status mmrec_optimizer_step(mmrec_optimizer *opt) {
    MMREC_CHECK_OPTIM(opt);
    mmrec_model *model = opt->model;
    MMREC_FAIL_IF(model->destroyed, MMREC_ESTATE, "the optimizer's model was destroyed");
    MMREC_FORWARD_IF(mmrec__optim_sync_slots(opt, __func__));
    for (size_t i = 0; i < model->n_params; i++)
        if (model->params[i]->trainable)
            MMREC_FORWARD_IF(mmrec__optim_slot_alloc(opt, i, __func__));

    double total = 0.0;
    for (size_t i = 0; i < model->n_params; i++) {
        const mmrec__param *p = model->params[i];
        if (!p->trainable) continue;
        double s = mmrec__grad_sumsq(p);
        if (!isfinite(s)) {
            /* A sum of squares in double is finite exactly when every
             * element is: the check costs nothing beyond the norm. */
            if (opt->cfg.nonfinite_grads == MMREC_NONFINITE_SKIP) {
                for (size_t k = 0; k < model->n_params; k++)
                    if (model->params[k]->trainable) mmrec__param_zero_grad(model->params[k]);
                opt->skipped++;
                return MMREC_OK;
            }
            return mmrec__grad_report_bad(p, __func__);
        }
        total += s;
    }
    /* torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied if < 1. */
    float norm = (float)sqrt(total), coef = 1.0f;
    if (opt->cfg.clip_norm > 0.0f) {
        float c = opt->cfg.clip_norm / (norm + 1e-6f);
        if (c < 1.0f) coef = c;
    }
    opt->last_grad_norm = norm;
    opt->step++;

    /* Large or row-sparse parameters one by one (a large one splits its
     * own update over the pool), then the small dense ones spread over the
     * pool, whole parameters per part: each update is element-wise, so
     * the results are the same. */
    mmrec__optim_small_job job = {opt, coef, 0};
    for (size_t i = 0; i < model->n_params; i++) {
        const mmrec__param *p = model->params[i];
        if (!p->trainable) continue;
        if (mmrec__optim_small(p)) job.total += p->tensor.numel;
        else mmrec__optim_update_param(opt, i, coef);
    }
    if (job.total > 0)
        mmrec__parallel_for(job.total, mmrec__parallel_parts(job.total, MMREC__OPT_SMALL / 2),
                            mmrec__optim_small_chunk, &job);
    return MMREC_OK;
}
