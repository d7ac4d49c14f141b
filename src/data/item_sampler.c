/* Corpus sampler (data.h): i.i.d. item ids, uniform or by weight, with
 * Walker's alias method (Vose's construction, in double): draw a slot k
 * uniformly and a uniform u; the id is k when u < prob[k], else alias[k].
 * Reference: the sampling test in tests/test_item_sampler.c (empirical
 * frequencies of 10^6 draws against the weights). */
#include "data_internal.h"
#include "../core/config_sizes.h"

#include <math.h>

#define MMREC__SAMPLER_MAGIC 0x6d6d5341u /* "mmSA" */
#define MMREC__SAMPLER_MAX_ITEMS ((int64_t)1 << 31)

struct mmrec_item_sampler {
    uint32_t magic;
    int64_t num_items;
    float *p;         /* [num_items] per-draw probabilities; NULL = uniform */
    double *prob;     /* [num_items] alias thresholds; NULL = uniform */
    int32_t *alias;   /* [num_items]; NULL = uniform */
    mmrec__rng_state rng;
};

static const mmrec_item_sampler_config mmrec__sampler_defaults = {
    .struct_size = sizeof(mmrec_item_sampler_config),
    .num_items = 0,
    .weights = NULL,
    .seed = 0,
};

mmrec_status mmrec_item_sampler_config_init_sized(mmrec_item_sampler_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_item_sampler_config, cfg, size, mmrec__sampler_defaults);
}

void mmrec_item_sampler_destroy(mmrec_item_sampler *sampler) {
    if (sampler == NULL || sampler->magic != MMREC__SAMPLER_MAGIC) return;
    sampler->magic = 0;
    mmrec__free(sampler->p);
    mmrec__free(sampler->prob);
    mmrec__free(sampler->alias);
    mmrec__free(sampler);
}

/* Vose's alias table for weights w of sum `total`: slots whose scaled
 * weight n w / total is below 1 take the rest of their slot from a slot
 * above 1. `work` holds n indices. */
static void mmrec__sampler_alias(mmrec_item_sampler *s, const float *w, double total,
                                 int32_t *work) {
    size_t n = (size_t)s->num_items, small = 0, large = n;
    for (size_t j = 0; j < n; j++) {
        s->prob[j] = (double)w[j] * (double)n / total;
        s->alias[j] = (int32_t)j;
        if (s->prob[j] < 1.0) work[small++] = (int32_t)j;
        else work[--large] = (int32_t)j;
    }
    /* small slots sit in work[0, small), large ones in work[large, n) */
    size_t si = 0;
    while (si < small && large < n) {
        int32_t lo = work[si++], hi = work[large];
        s->alias[lo] = hi;
        s->prob[hi] -= 1.0 - s->prob[lo];
        if (s->prob[hi] < 1.0) {
            large++;
            work[small++] = hi; /* work[small] is free: small < large here */
        }
    }
    /* what is left is 1 up to rounding */
    for (size_t k = si; k < small; k++) s->prob[work[k]] = 1.0;
    for (size_t k = large; k < n; k++) s->prob[work[k]] = 1.0;
}

mmrec_status mmrec_item_sampler_create(const mmrec_item_sampler_config *cfg,
                                       mmrec_item_sampler **out) {
    MMREC_CHECK_NULL(cfg);
    MMREC_CHECK_NULL(out);
    mmrec_item_sampler_config c = mmrec__sampler_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_item_sampler_config, &c, cfg));
    MMREC_FAIL_IF(c.num_items < 1 || c.num_items > MMREC__SAMPLER_MAX_ITEMS, MMREC_EINVAL,
                  "cfg->num_items is %lld, expected 1 .. 2^31", (long long)c.num_items);
    size_t n = (size_t)c.num_items;
    double total = 0.0;
    if (c.weights != NULL) {
        for (size_t j = 0; j < n; j++) {
            float w = c.weights[j];
            MMREC_FAIL_IF(!(w >= 0.0f) || !isfinite(w), MMREC_EINVAL,
                          "cfg->weights[%zu] is %g, expected >= 0 and finite", j, (double)w);
            total += (double)w;
        }
        MMREC_FAIL_IF(!(total > 0.0), MMREC_EINVAL, "cfg->weights: every weight is 0");
    }
    mmrec_item_sampler *s = mmrec__calloc(1, sizeof *s);
    if (s == NULL) MMREC_FAIL(MMREC_ENOMEM, "out of memory for a sampler of %zu items", n);
    s->num_items = c.num_items;
    mmrec__rng_seed(&s->rng, c.seed);
    if (c.weights != NULL) {
        int32_t *work = mmrec__alloc(n * sizeof *work);
        s->p = mmrec__alloc(n * sizeof *s->p);
        s->prob = mmrec__alloc(n * sizeof *s->prob);
        s->alias = mmrec__alloc(n * sizeof *s->alias);
        if (work == NULL || s->p == NULL || s->prob == NULL || s->alias == NULL) {
            mmrec__free(work);
            s->magic = MMREC__SAMPLER_MAGIC;
            mmrec_item_sampler_destroy(s);
            MMREC_FAIL(MMREC_ENOMEM, "out of memory for a sampler of %zu items", n);
        }
        for (size_t j = 0; j < n; j++) s->p[j] = (float)((double)c.weights[j] / total);
        mmrec__sampler_alias(s, c.weights, total, work);
        mmrec__free(work);
    }
    s->magic = MMREC__SAMPLER_MAGIC;
    *out = s;
    return MMREC_OK;
}

#define MMREC__CHECK_SAMPLER(x)                                                          \
    do {                                                                                 \
        MMREC_CHECK_NULL(x);                                                             \
        MMREC_FAIL_IF((x)->magic != MMREC__SAMPLER_MAGIC, MMREC_EINVAL,                  \
                      #x " is not a live mmrec_item_sampler");                           \
    } while (0)

mmrec_status mmrec_item_sampler_draw(mmrec_item_sampler *sampler, int64_t *ids, size_t n) {
    MMREC__CHECK_SAMPLER(sampler);
    MMREC_CHECK_NULL(ids);
    MMREC_FAIL_IF(n == 0, MMREC_EINVAL, "n is 0, expected >= 1");
    uint64_t items = (uint64_t)sampler->num_items;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = mmrec__rng_below(&sampler->rng, items);
        if (sampler->prob != NULL) {
            /* a 53-bit uniform in [0, 1) against the slot's threshold */
            double u = (double)(mmrec__rng_u64(&sampler->rng) >> 11) * 0x1p-53;
            if (u >= sampler->prob[k]) k = (uint64_t)sampler->alias[k];
        }
        ids[i] = (int64_t)k;
    }
    return MMREC_OK;
}

mmrec_status mmrec_item_sampler_probability(const mmrec_item_sampler *sampler,
                                            const int64_t *ids, size_t n, float *out) {
    MMREC__CHECK_SAMPLER(sampler);
    MMREC_CHECK_NULL(ids);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(n == 0, MMREC_EINVAL, "n is 0, expected >= 1");
    for (size_t i = 0; i < n; i++)
        MMREC_FAIL_IF(ids[i] < 0 || ids[i] >= sampler->num_items, MMREC_ERANGE,
                      "ids[%zu] is %lld, expected 0 .. %lld", i, (long long)ids[i],
                      (long long)sampler->num_items - 1);
    float uniform = (float)(1.0 / (double)sampler->num_items);
    for (size_t i = 0; i < n; i++) out[i] = sampler->p != NULL ? sampler->p[ids[i]] : uniform;
    return MMREC_OK;
}
