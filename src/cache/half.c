/* float16 and bfloat16: rounding float32 to nearest (ties to even) when a
 * field is written, exact widening when it is gathered. Bit-level, so the
 * results do not depend on the compiler or the CPU's half support. */
#include "cache_internal.h"

static uint32_t mmrec__bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float mmrec__float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t mmrec__cache_f32_to_f16(float value) {
    uint32_t f = mmrec__bits(value);
    uint32_t sign = f & 0x80000000u;
    uint16_t h;
    f ^= sign;
    if (f >= 0x47800000u) {
        /* >= 2^16: infinity, or NaN kept quiet */
        h = f > 0x7f800000u ? 0x7e00 : 0x7c00;
    } else if (f < 0x38800000u) {
        /* below 2^-14, the smallest normal half: adding 0.5 lines the
         * significand up with the half's subnormal bits and rounds it in the
         * FPU's (to-nearest-even) mode. */
        const uint32_t half_one = 126u << 23;
        h = (uint16_t)(mmrec__bits(mmrec__float(f) + mmrec__float(half_one)) - half_one);
    } else {
        uint32_t odd = (f >> 13) & 1u;
        f -= 112u << 23; /* rebias the exponent from 127 to 15 */
        f += 0xfffu + odd;
        h = (uint16_t)(f >> 13); /* a carry into the exponent rounds up to infinity */
    }
    return (uint16_t)(h | (sign >> 16));
}

float mmrec__cache_f16_to_f32(uint16_t half) {
    uint32_t f = (uint32_t)(half & 0x7fffu) << 13;
    uint32_t exp = f & 0x0f800000u;
    f += 112u << 23; /* rebias the exponent from 15 to 127 */
    if (exp == 0x0f800000u) {
        f += 112u << 23; /* infinity or NaN */
    } else if (exp == 0) {
        /* subnormal: m * 2^-24 = (1 + m/1024) * 2^-14 - 2^-14, exact */
        f += 1u << 23;
        f = mmrec__bits(mmrec__float(f) - mmrec__float(113u << 23));
    }
    return mmrec__float(f | (uint32_t)(half & 0x8000u) << 16);
}

uint16_t mmrec__cache_f32_to_bf16(float value) {
    uint32_t f = mmrec__bits(value);
    if ((f & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((f >> 16) | 0x40u);
    f += 0x7fffu + ((f >> 16) & 1u);
    return (uint16_t)(f >> 16);
}

size_t mmrec__cache_encode(mmrec_cache_dtype dtype, const float *src, void *dst, size_t count) {
    if (dtype == MMREC_CACHE_F32) {
        memcpy(dst, src, count * sizeof(float));
        return count;
    }
    uint16_t *out = dst;
    if (dtype == MMREC_CACHE_F16)
        for (size_t i = 0; i < count; i++) out[i] = mmrec__cache_f32_to_f16(src[i]);
    else
        for (size_t i = 0; i < count; i++) out[i] = mmrec__cache_f32_to_bf16(src[i]);
    const uint16_t inf = dtype == MMREC_CACHE_F16 ? 0x7c00 : 0x7f80;
    for (size_t i = 0; i < count; i++)
        if ((out[i] & 0x7fffu) == inf) return i;
    return count;
}

void mmrec__cache_widen(mmrec_cache_dtype dtype, const void *src, float *dst, size_t count) {
    if (dtype == MMREC_CACHE_F32) {
        memcpy(dst, src, count * sizeof(float));
        return;
    }
    const uint16_t *in = src;
    if (dtype == MMREC_CACHE_F16)
        for (size_t i = 0; i < count; i++) dst[i] = mmrec__cache_f16_to_f32(in[i]);
    else
        for (size_t i = 0; i < count; i++) dst[i] = mmrec__cache_bf16_to_f32(in[i]);
}
