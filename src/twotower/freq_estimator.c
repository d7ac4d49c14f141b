/* Streaming item-frequency estimator of Yi et al. (RecSys 2019),
 * Algorithms 2 and 3 (shared/METHODS-twotower.md 2.3 and 8): per hash i,
 * B_i[h] = (1 - alpha) B_i[h] + alpha (t - A_i[h]); A_i[h] = t, once per
 * bucket per step; p(y) = 1 / max_i B_i[h_i(y)]. A is kept exactly as two
 * float arrays, the high and low 24 bits of the step. The static option
 * reads p = count / sum from a table instead. Reference: the
 * direct simulation in tests/test_freq_estimator.c. */
#include "twotower_internal.h"
#include "../modules/modules_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MMREC__FREQ_MAX_HASHES 16
#define MMREC__FREQ_MAX_BUCKETS ((int64_t)1 << 31)
#define MMREC__FREQ_LOW_BITS 24
#define MMREC__FREQ_LOW ((int64_t)1 << MMREC__FREQ_LOW_BITS)
#define MMREC__FREQ_MAX_STEP (((int64_t)1 << 48) - 1)

typedef struct mmrec__freq {
    struct mmrec_module base;
    mmrec_freq_estimator_config cfg;
    mmrec_tensor *a_high, *a_low, *gap, *step; /* [m, H] x3, [2] */
    mmrec_tensor *static_p;                    /* [num_items] or NULL */
    uint64_t hash_seed[MMREC__FREQ_MAX_HASHES];
} mmrec__freq;

static const mmrec_freq_estimator_config mmrec__freq_defaults = {
    .struct_size = sizeof(mmrec_freq_estimator_config),
    .num_buckets = 0,
    .num_hashes = 1,
    .alpha = 0.01f,
    .initial_gap = 100.0f,
    .seed = 0,
    .num_items = 0,
};

mmrec_status mmrec_freq_estimator_config_init_sized(mmrec_freq_estimator_config *cfg,
                                                    size_t size) {
    return MMREC__CONFIG_INIT(mmrec_freq_estimator_config, cfg, size, mmrec__freq_defaults);
}

/* The splitmix64 finalizer (the header's `mix`). */
static inline uint64_t mmrec__freq_mix(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static mmrec_status mmrec__freq_check_config(const mmrec_freq_estimator_config *c) {
    const char *func = "mmrec_freq_estimator_create";
    MMREC_FAIL_IF_FOR(func, c->num_buckets < 1 || c->num_buckets > MMREC__FREQ_MAX_BUCKETS,
                      MMREC_EINVAL, "cfg->num_buckets is %lld, expected 1 .. 2^31",
                      (long long)c->num_buckets);
    MMREC_FAIL_IF_FOR(func, c->num_hashes < 1 || c->num_hashes > MMREC__FREQ_MAX_HASHES,
                      MMREC_EINVAL, "cfg->num_hashes is %d, expected 1 .. %d", c->num_hashes,
                      MMREC__FREQ_MAX_HASHES);
    MMREC_FAIL_IF_FOR(func, !(c->alpha > 0.0f && c->alpha <= 1.0f), MMREC_EINVAL,
                      "cfg->alpha is %g, expected (0, 1]", (double)c->alpha);
    MMREC_FAIL_IF_FOR(func, !(c->initial_gap > 0.0f && isfinite(c->initial_gap)), MMREC_EINVAL,
                      "cfg->initial_gap is %g, expected > 0 and finite", (double)c->initial_gap);
    MMREC_FAIL_IF_FOR(func, c->num_items < 0 || c->num_items > MMREC__FREQ_MAX_BUCKETS,
                      MMREC_EINVAL, "cfg->num_items is %lld, expected 0 .. 2^31",
                      (long long)c->num_items);
    MMREC_FAIL_IF_FOR(func, (int64_t)c->num_hashes * c->num_buckets > (int64_t)1 << 40,
                      MMREC_EINVAL, "cfg->num_hashes * cfg->num_buckets is too large");
    return MMREC_OK;
}

static mmrec_status mmrec__freq_state(mmrec_model *model, const char *name, const char *leaf,
                                      int ndim, const int64_t *shape, float value,
                                      mmrec_tensor **out) {
    MMREC_FORWARD_IF(mmrec__model_add_param(model, "mmrec_freq_estimator_create", name, leaf,
                                            ndim, shape, false, out));
    mmrec__init_fill(*out, value);
    mmrec__param_mark_state((*out)->param);
    return MMREC_OK;
}

mmrec_status mmrec_freq_estimator_create(mmrec_model *model, const char *name,
                                         const mmrec_freq_estimator_config *cfg,
                                         mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, __func__));
    mmrec_freq_estimator_config c = mmrec__freq_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_freq_estimator_config, &c, cfg));
    MMREC_FORWARD_IF(mmrec__freq_check_config(&c));
    mmrec__freq *e = mmrec__calloc(1, sizeof *e);
    mmrec_status s = MMREC_OK;
    if (e) {
        e->cfg = c;
        for (int i = 0; i < c.num_hashes; i++)
            e->hash_seed[i] = mmrec__freq_mix(c.seed + (uint64_t)i);
        int64_t shape[2] = {c.num_hashes, c.num_buckets}, two = 2;
        s = mmrec__freq_state(model, name, "last_step_high", 2, shape, 0.0f, &e->a_high);
        if (s == MMREC_OK)
            s = mmrec__freq_state(model, name, "last_step_low", 2, shape, 0.0f, &e->a_low);
        if (s == MMREC_OK)
            s = mmrec__freq_state(model, name, "gap", 2, shape, c.initial_gap, &e->gap);
        if (s == MMREC_OK) s = mmrec__freq_state(model, name, "step", 1, &two, 0.0f, &e->step);
        if (s == MMREC_OK && c.num_items > 0)
            s = mmrec__freq_state(model, name, "static_p", 1, &c.num_items, 0.0f, &e->static_p);
    }
    return mmrec__create_end(&cr, s, e ? &e->base : NULL, "freq_estimator", name, NULL, out);
}

static inline int64_t mmrec__freq_join(float high, float low) {
    return (int64_t)high * MMREC__FREQ_LOW + (int64_t)low;
}

static inline size_t mmrec__freq_bucket(const mmrec__freq *e, int i, int64_t id) {
    return (size_t)i * (size_t)e->cfg.num_buckets +
           (size_t)(mmrec__freq_mix(e->hash_seed[i] ^ (uint64_t)id) %
                    (uint64_t)e->cfg.num_buckets);
}

/* Checks ids (n >= 1, each in [0, limit), limit < 0: no upper bound) for
 * `func`. */
static mmrec_status mmrec__freq_check_ids(const char *func, const int64_t *ids, size_t n,
                                          int64_t limit) {
    MMREC_FAIL_IF_FOR(func, n == 0, MMREC_EINVAL, "argument 'n' is 0, expected >= 1");
    for (size_t k = 0; k < n; k++) {
        MMREC_FAIL_IF_FOR(func, ids[k] < 0, MMREC_ERANGE, "ids[%zu] is %lld, expected >= 0", k,
                          (long long)ids[k]);
        MMREC_FAIL_IF_FOR(func, limit >= 0 && ids[k] >= limit, MMREC_ERANGE,
                          "ids[%zu] is %lld, expected < num_items %lld in the static mode", k,
                          (long long)ids[k], (long long)limit);
    }
    return MMREC_OK;
}

/* Static mode: the table is set (its first entry, like every entry, > 0). */
static inline bool mmrec__freq_static(const mmrec__freq *e) {
    return e->static_p != NULL && e->static_p->data[0] > 0.0f;
}

mmrec_status mmrec_freq_estimator_update(mmrec_module *estimator, const int64_t *ids, size_t n,
                                         int64_t step) {
    MMREC_CHECK_MODULE(estimator, "freq_estimator");
    MMREC_CHECK_NULL(ids);
    mmrec__freq *e = (mmrec__freq *)estimator;
    int64_t last = mmrec__freq_join(e->step->data[0], e->step->data[1]);
    MMREC_FAIL_IF(step < 1 || step > MMREC__FREQ_MAX_STEP, MMREC_EINVAL,
                  "argument 'step' is %lld, expected 1 .. 2^48 - 1", (long long)step);
    MMREC_FAIL_IF(step <= last, MMREC_EINVAL,
                  "argument 'step' is %lld, expected after the last update's step %lld",
                  (long long)step, (long long)last);
    MMREC_FORWARD_IF(mmrec__freq_check_ids(__func__, ids, n, -1));
    const float t_high = (float)(step / MMREC__FREQ_LOW), t_low = (float)(step % MMREC__FREQ_LOW);
    const double alpha = (double)e->cfg.alpha, keep = 1.0 - alpha;
    float *ah = e->a_high->data, *al = e->a_low->data, *gap = e->gap->data;
    for (size_t k = 0; k < n; k++)
        for (int i = 0; i < e->cfg.num_hashes; i++) {
            size_t b = mmrec__freq_bucket(e, i, ids[k]);
            if (ah[b] == t_high && al[b] == t_low) continue; /* seen this step */
            int64_t seen = mmrec__freq_join(ah[b], al[b]);
            gap[b] = (float)(keep * (double)gap[b] + alpha * (double)(step - seen));
            ah[b] = t_high;
            al[b] = t_low;
        }
    e->step->data[0] = t_high;
    e->step->data[1] = t_low;
    return MMREC_OK;
}

mmrec_status mmrec_freq_estimator_probability(const mmrec_module *estimator, const int64_t *ids,
                                              size_t n, float *out) {
    MMREC_CHECK_MODULE(estimator, "freq_estimator");
    MMREC_CHECK_NULL(ids);
    MMREC_CHECK_NULL(out);
    const mmrec__freq *e = (const mmrec__freq *)estimator;
    bool fixed = mmrec__freq_static(e);
    MMREC_FORWARD_IF(mmrec__freq_check_ids(__func__, ids, n, fixed ? e->cfg.num_items : -1));
    if (fixed) {
        for (size_t k = 0; k < n; k++) out[k] = e->static_p->data[ids[k]];
        return MMREC_OK;
    }
    const float *gap = e->gap->data;
    for (size_t k = 0; k < n; k++) {
        float g = gap[mmrec__freq_bucket(e, 0, ids[k])];
        for (int i = 1; i < e->cfg.num_hashes; i++) {
            float gi = gap[mmrec__freq_bucket(e, i, ids[k])];
            if (gi > g) g = gi;
        }
        out[k] = (float)(1.0 / (double)g);
    }
    return MMREC_OK;
}

mmrec_status mmrec_freq_estimator_set_counts(mmrec_module *estimator, const float *counts,
                                             size_t n) {
    MMREC_CHECK_MODULE(estimator, "freq_estimator");
    mmrec__freq *e = (mmrec__freq *)estimator;
    MMREC_FAIL_IF(e->static_p == NULL, MMREC_ESTATE,
                  "estimator '%s' was created without cfg.num_items, so it has no static mode",
                  estimator->name);
    float *table = e->static_p->data;
    size_t items = (size_t)e->cfg.num_items;
    if (counts == NULL) {
        memset(table, 0, items * sizeof(float));
        return MMREC_OK;
    }
    MMREC_FAIL_IF(n != items, MMREC_EINVAL, "argument 'n' is %zu, expected num_items %zu", n,
                  items);
    double sum = 0;
    for (size_t k = 0; k < n; k++) {
        MMREC_FAIL_IF(!(counts[k] > 0.0f && isfinite(counts[k])), MMREC_EINVAL,
                      "counts[%zu] is %g, expected > 0 and finite", k, (double)counts[k]);
        sum += (double)counts[k];
    }
    for (size_t k = 0; k < n; k++) {
        float p = (float)((double)counts[k] / sum);
        table[k] = p > 0.0f ? p : FLT_MIN; /* a tiny count against a huge sum */
    }
    return MMREC_OK;
}
