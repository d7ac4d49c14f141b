/* Seeded generator: xoshiro256** (Blackman & Vigna), seeded by splitmix64. */
#include "core_internal.h"

#include <math.h>

struct mmrec_rng {
    mmrec__rng_state state;
};

static uint64_t mmrec__splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t mmrec__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void mmrec__rng_seed(mmrec__rng_state *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = mmrec__splitmix64(&x);
}

uint64_t mmrec__rng_u64(mmrec__rng_state *rng) {
    uint64_t *s = rng->s;
    uint64_t result = mmrec__rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = mmrec__rotl(s[3], 45);
    return result;
}

float mmrec__rng_uniform(mmrec__rng_state *rng) {
    return (float)(mmrec__rng_u64(rng) >> 40) * (1.0f / 16777216.0f);
}

float mmrec__rng_normal(mmrec__rng_state *rng) {
    /* u1 in (0, 1] so the log is finite. */
    double u1 = ((double)(mmrec__rng_u64(rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(mmrec__rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t mmrec__rng_below(mmrec__rng_state *rng, uint64_t bound) {
    /* Lemire's nearly divisionless method with rejection. */
    uint64_t x = mmrec__rng_u64(rng);
    __uint128_t m = (__uint128_t)x * bound;
    uint64_t low = (uint64_t)m;
    if (low < bound) {
        uint64_t threshold = -bound % bound;
        while (low < threshold) {
            x = mmrec__rng_u64(rng);
            m = (__uint128_t)x * bound;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

mmrec_status mmrec_rng_create(uint64_t seed, mmrec_rng **out) {
    MMREC_CHECK_NULL(out);
    mmrec_rng *rng = mmrec__alloc(sizeof *rng);
    MMREC_FAIL_IF(rng == NULL, MMREC_ENOMEM, "out of memory creating a generator");
    mmrec__rng_seed(&rng->state, seed);
    *out = rng;
    return MMREC_OK;
}

void mmrec_rng_destroy(mmrec_rng *rng) { mmrec__free(rng); }

mmrec_status mmrec_rng_seed(mmrec_rng *rng, uint64_t seed) {
    MMREC_CHECK_NULL(rng);
    mmrec__rng_seed(&rng->state, seed);
    return MMREC_OK;
}

mmrec_status mmrec_rng_next_u64(mmrec_rng *rng, uint64_t *out) {
    MMREC_CHECK_NULL(rng);
    MMREC_CHECK_NULL(out);
    *out = mmrec__rng_u64(&rng->state);
    return MMREC_OK;
}

mmrec_status mmrec_rng_uniform(mmrec_rng *rng, float low, float high, float *values, size_t n) {
    MMREC_CHECK_NULL(rng);
    MMREC_FAIL_IF(values == NULL && n > 0, MMREC_EINVAL, "argument 'values' is NULL");
    MMREC_FAIL_IF(!isfinite(low) || !isfinite(high) || low > high, MMREC_EINVAL,
                  "need finite low <= high, got low=%g high=%g", (double)low, (double)high);
    for (size_t i = 0; i < n; i++) values[i] = low + (high - low) * mmrec__rng_uniform(&rng->state);
    return MMREC_OK;
}

mmrec_status mmrec_rng_normal(mmrec_rng *rng, float mean, float std, float *values, size_t n) {
    MMREC_CHECK_NULL(rng);
    MMREC_FAIL_IF(values == NULL && n > 0, MMREC_EINVAL, "argument 'values' is NULL");
    MMREC_FAIL_IF(!isfinite(mean) || !isfinite(std) || std < 0, MMREC_EINVAL,
                  "need finite mean and std >= 0, got mean=%g std=%g", (double)mean, (double)std);
    for (size_t i = 0; i < n; i++) values[i] = mean + std * mmrec__rng_normal(&rng->state);
    return MMREC_OK;
}

mmrec_status mmrec_rng_below(mmrec_rng *rng, uint64_t bound, uint64_t *out) {
    MMREC_CHECK_NULL(rng);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(bound == 0, MMREC_EINVAL, "bound is 0, expected >= 1");
    *out = mmrec__rng_below(&rng->state, bound);
    return MMREC_OK;
}
