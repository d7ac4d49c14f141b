/* Branch-free float exp and normal CDF that the compiler can vectorize
 * (libm's expf / erff are scalar calls). Accuracy: a few ulp for exp; about
 * 2e-7 relative for the CDF (Numerical Recipes' Chebyshev erfc, fractional
 * error below 1.2e-7), exactly 0 or 1 past |x| = 9 sqrt 2, where no step
 * reaches a subnormal. Used on the hot element-wise paths (GELU). */
#ifndef MMREC_FASTMATH_H
#define MMREC_FASTMATH_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* e^x for any x (below -87.3 it stays at about 1e-38, above 88.3 at about
 * 2e38; NaN gives NaN); Cephes' range reduction and polynomial. */
static inline float mmrec__exp(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    /* n = round(x log2 e): adding 1.5 * 2^23 rounds to an integer held in
     * the low bits of the sum. */
    float t = x * 1.44269504088896341f + 12582912.0f;
    float fn = t - 12582912.0f;
    int32_t n;
    memcpy(&n, &t, sizeof n);
    n -= 0x4B400000;
    float r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)(n + 127) << 23; /* x NaN: any bits, p is NaN */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* erfc(z) for z >= 0. */
static inline float mmrec__erfc_pos(float z) {
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    return t * mmrec__exp(-z * z + p);
}

/* Past this |z| the tail erfc(|z|) / 2 (2.1e-37 at 9) is set to 0: Phi is
 * 0 or 1 there, as torch's saturating erf gives, and no step of the tail's
 * formula reaches the subnormal range, whose arithmetic costs a microcode
 * assist per vector on x86 (a GELU over pre-activations beyond +-12.7 ran
 * ten times slower). */
#define MMREC__CDF_TAIL_Z 9.0f

/* Phi(x) = P(N(0,1) <= x) = erfc(-x / sqrt 2) / 2; NaN gives NaN. */
static inline float mmrec__normal_cdf(float x) {
    float z = x * 0.70710678118654752440f;
    float a = z < 0.0f ? -z : z;
    bool tail = a > MMREC__CDF_TAIL_Z;
    float e = 0.5f * mmrec__erfc_pos(tail ? MMREC__CDF_TAIL_Z : a);
    e = tail ? 0.0f : e;
    return z < 0.0f ? e : 1.0f - e;
}

/* The normal density phi(x) = exp(-x^2 / 2) / sqrt(2 pi), set to 0 past
 * the same cut, |x| = 9 sqrt 2 (below 1e-35), so GELU's derivative
 * Phi + x phi is exactly 0 or 1 beyond it. */
#define MMREC__PDF_TAIL_X 12.7279220613578554f
static inline float mmrec__normal_pdf(float x) {
    bool tail = x > MMREC__PDF_TAIL_X || x < -MMREC__PDF_TAIL_X;
    float v = tail ? MMREC__PDF_TAIL_X : x;
    float p = 0.39894228040143267794f * mmrec__exp(-0.5f * v * v);
    return tail ? 0.0f : p;
}

#endif
