/* float16 and bfloat16: rounding float32 to nearest (ties to even) when a
 * field is written, exact widening when it is gathered. Bit-level, so the
 * results do not depend on the compiler or the CPU's half support.
 *
 * Widening float16 is the hot part of a gather (IISAN gathers 704 records
 * of 7 x 768 halves a step). The portable loop below vectorizes (its
 * branches become selects) but takes about 1 ns an element; on x86-64 CPUs
 * with F16C, chosen at run time whatever the build flags, vcvtph2ps widens
 * 8 halves an instruction (measured: the gather of 704 x 7 x 768 halves
 * from 3.7 to 1.3 ms on one core). bfloat16 gets AVX2 the same way. Both
 * paths are exact, so they give the same floats for every finite value
 * (and infinities); only a NaN's payload may differ, and the writer stores
 * no NaN. */
#include "cache_internal.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MMREC__CACHE_F16C 1
#endif

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

void mmrec__cache_widen_generic(mmrec_cache_dtype dtype, const void *src, float *dst,
                                size_t count) {
    const uint16_t *in = src;
    if (dtype == MMREC_CACHE_F32)
        memcpy(dst, src, count * sizeof(float));
    else if (dtype == MMREC_CACHE_F16)
        for (size_t i = 0; i < count; i++) dst[i] = mmrec__cache_f16_to_f32(in[i]);
    else
        for (size_t i = 0; i < count; i++) dst[i] = mmrec__cache_bf16_to_f32(in[i]);
}

#ifdef MMREC__CACHE_F16C
__attribute__((target("avx,f16c")))
static void mmrec__cache_widen_f16_f16c(const uint16_t *src, float *dst, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 8));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(a));
        _mm256_storeu_ps(dst + i + 8, _mm256_cvtph_ps(b));
    }
    for (; i + 8 <= count; i += 8) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(a));
    }
    for (; i < count; i++) dst[i] = mmrec__cache_f16_to_f32(src[i]);
}

/* bfloat16 is the top half of a float32: zero-extend and shift. The
 * portable loop vectorizes with 128-bit vectors; AVX2 doubles that. */
__attribute__((target("avx2")))
static void mmrec__cache_widen_bf16_avx2(const uint16_t *src, float *dst, size_t count) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        __m256i w = _mm256_cvtepu16_epi32(h);
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    for (; i < count; i++) dst[i] = mmrec__cache_bf16_to_f32(src[i]);
}
#endif

bool mmrec__cache_f16c_usable(void) {
#ifdef MMREC__CACHE_F16C
    return __builtin_cpu_supports("avx") && mmrec__cpu_has_f16c();
#else
    return false;
#endif
}

void mmrec__cache_widen(mmrec_cache_dtype dtype, const void *src, float *dst, size_t count) {
#ifdef MMREC__CACHE_F16C
    if (dtype == MMREC_CACHE_F16 && mmrec__cache_f16c_usable()) {
        mmrec__cache_widen_f16_f16c(src, dst, count);
        return;
    }
    if (dtype == MMREC_CACHE_BF16 && __builtin_cpu_supports("avx2")) {
        mmrec__cache_widen_bf16_avx2(src, dst, count);
        return;
    }
#endif
    mmrec__cache_widen_generic(dtype, src, dst, count);
}
