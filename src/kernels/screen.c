/* The exact int8 screen of full ranking (kernels_internal.h, used by
 * metrics/ranking.c). Every (user, item) score is first estimated from
 * int8 copies of the embeddings with AVX-512 VNNI (vpdpbusd: 64 byte
 * products per instruction, four times the products of a float FMA), or
 * with AVX-VNNI on AVX2 CPUs without AVX-512 (32 bytes per instruction),
 * and the exact float score, the one fused multiply-add chain of
 * kernels/score.c, is computed only for the pairs whose estimate plus a
 * proven error bound reaches the user's threshold; the rest provably
 * cannot enter the user's top K, so the kept items and their scores are
 * those of the exact scorer, bit for bit.
 *
 * Quantization. User u (one row, dim D) gets a float scale a = max|u_k| /
 * 127 and q_k = round(u_k / a) in [-127, 127]; item v likewise b and p_k.
 * The residuals e = u - a q and f = v - b p are exact in double (a q has at
 * most 32 significant bits), and so are their norms up to a relative 2^-44
 * (D <= 256), covered by a factor 1 + 2^-40 on every norm, which is then
 * rounded up to float. Q = sum_k q_k p_k is an integer, summed exactly in
 * int32 (|Q| <= 256 * 127^2 < 2^24, so it also converts to float exactly;
 * vpdpbusd multiplies unsigned by signed bytes, so the users are stored as
 * q + 128 and each item's sum starts from -128 sum_k p_k).
 *
 * Error of the estimate. With S = sum_k u_k v_k the exact real score,
 *   S - a b Q = sum u f + sum e (b p),
 *   |S - a b Q| <= ||u|| ||f|| + ||e|| ||b p||        (Cauchy-Schwarz)
 *              <= [rho ||u|| + (1 + rho) ||e||] ||v||,
 * rho being the largest ||f|| / ||v|| over the item table (||b p|| <=
 * ||v|| + ||f||).
 * Error of the exact score. s, the float chain s_k = fl(s_(k-1) + u_k v_k)
 * from s_0 = 0 (one rounding per step, relative eps = 2^-24 or, in the
 * subnormal range, absolute 2^-150), satisfies, when nothing overflows,
 *   |s - S| <= gamma_D sum |u_k v_k| + D 2^-149 <= gamma_D ||u|| ||v|| + D 2^-149,
 * gamma_D = D eps / (1 - D eps). Nothing overflows when ||u|| ||v|| <
 * 2^124: every product and partial sum is then below 2^125. The screen is
 * used only for item tables with every ||v|| < 2^62; a user with ||u|| >=
 * 2^62 is not screened (all its pairs are scored exactly).
 * The test. The kernel computes P = fl(Q b) (|P - Q b| <= eps |Q b| +
 * 2^-150, |Q b| <= ||q|| ||b p|| <= ||q|| (1 + rho) ||v||) and passes the
 * pair when fl(M n + P) >= L, with n >= ||v|| (the item's norm rounded
 * up), M >= [(gamma_D + rho) ||u|| + (1 + rho) ||e||] / a + eps (1 + rho)
 * ||q|| (rounded up; computed in double with a 1 + 2^-40 margin) and L <=
 * thr / a - D 2^-149 / a - 2^-150 (rounded down; mmrec__screen_low). If s
 * > thr then S > thr - |s - S|, so a b Q > thr - |s - S| - |S - a b Q|,
 * so P + |P - Q b| + (|s - S| + |S - a b Q|) / a > thr / a, so M n + P > L
 * as real numbers, and since rounding is monotone and L is a float,
 * fl(M n + P) >= L: a pair that can enter is never skipped. Nothing in the
 * test overflows into NaN: P, M and n are finite (|q|, |p| <= 127, the
 * norms < 2^62), and L is -inf, a float or +inf. */
#include "kernels_internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define MMREC__SCREEN_X86 1
#endif

#define MMREC__SCREEN_MAX_DIM 256
/* Norm limit of a screened vector, 2^62 (see above). */
#define MMREC__SCREEN_MAX_NORM 4611686018427387904.0
#define MMREC__SCREEN_SLACK (1.0 + 0x1p-40)

bool mmrec__screen_usable(mmrec__screen_isa isa, size_t dim) {
#ifdef MMREC__SCREEN_X86
    if (dim > MMREC__SCREEN_MAX_DIM) return false;
    if (isa == MMREC__SCREEN_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vnni");
    /* AVX-VNNI: CPUID leaf 7, subleaf 1, EAX bit 4 (read directly: not
     * every compiler's __builtin_cpu_supports knows it) */
    unsigned a, b, c, d;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1u);
#else
    (void)isa, (void)dim;
    return false;
#endif
}

size_t mmrec__screen_stride(size_t dim) {
    return (dim + 3) & ~(size_t)3;
}

static float mmrec__round_up(double x) {
    float f = (float)x;
    return (double)f < x ? nextafterf(f, INFINITY) : f;
}

static float mmrec__round_down(double x) {
    float f = (float)x;
    return (double)f > x ? nextafterf(f, -INFINITY) : f;
}

/* Quantizes one row: scale, codes q[0 .. stride) (zero past dim) and the
 * sums of squares of the row, of its residual and of its codes. */
static float mmrec__screen_quantize(const float *x, size_t dim, size_t stride, int8_t *q,
                                    double *x2, double *e2, double *q2) {
    float mx = 0.0f;
    for (size_t k = 0; k < dim; k++) mx = fabsf(x[k]) > mx ? fabsf(x[k]) : mx;
    float scale = mx > 0.0f ? (float)((double)mx / 127.0) : 1.0f;
    if (scale == 0.0f) scale = FLT_TRUE_MIN;
    double sx = 0.0, se = 0.0, sq = 0.0;
    for (size_t k = 0; k < dim; k++) {
        double c = nearbyint((double)x[k] / (double)scale);
        c = c > 127.0 ? 127.0 : c < -127.0 ? -127.0 : c;
        double e = (double)x[k] - (double)scale * c; /* exact */
        q[k] = (int8_t)c;
        sx += (double)x[k] * (double)x[k];
        se += e * e;
        sq += c * c;
    }
    for (size_t k = dim; k < stride; k++) q[k] = 0;
    *x2 = sx, *e2 = se, *q2 = sq;
    return scale;
}

void mmrec__screen_items(mmrec__screen_isa isa, const float *items, size_t first, size_t n,
                         size_t dim, int8_t *q, int32_t *corr, float *scale, float *norm,
                         double *rho_out, double *max_norm_out) {
    size_t stride = mmrec__screen_stride(dim);
    double rho = 0.0, max_norm = 0.0;
    for (size_t i = first; i < first + n; i++) {
        int8_t *row = q + i * stride;
        double x2, e2, q2;
        scale[i] = mmrec__screen_quantize(items + i * dim, dim, stride, row, &x2, &e2, &q2);
        int32_t sum = 0;
        for (size_t k = 0; k < dim; k++) sum += row[k];
        corr[i] = -128 * sum;
        if (isa == MMREC__SCREEN_VNNI256) /* code + 128 as an unsigned byte */
            for (size_t k = 0; k < stride; k++) row[k] = (int8_t)((uint8_t)row[k] ^ 0x80u);
        double nv = sqrt(x2) * MMREC__SCREEN_SLACK;
        norm[i] = mmrec__round_up(nv);
        if (x2 > 0.0) {
            double r = sqrt(e2) / sqrt(x2) * MMREC__SCREEN_SLACK;
            rho = r > rho ? r : rho;
        }
        max_norm = nv > max_norm ? nv : max_norm;
    }
    *rho_out = rho;
    *max_norm_out = max_norm;
}

bool mmrec__screen_items_ok(double max_norm) {
    return max_norm < MMREC__SCREEN_MAX_NORM;
}

size_t mmrec__screen_packed_bytes(size_t dim) {
    return MMREC__SCORE_USERS * (mmrec__screen_stride(dim) + sizeof(int32_t));
}

void mmrec__screen_pack_users(mmrec__screen_isa isa, uint8_t *dst, float *bound,
                              mmrec__screen_user *par, const float *user_emb, size_t dim,
                              const int64_t *ids, size_t n, double rho) {
    assert(n <= MMREC__SCORE_USERS);
    size_t stride = mmrec__screen_stride(dim);
    const double eps = 0x1p-24, gamma = (double)dim * eps / (1.0 - (double)dim * eps);
    int8_t q[MMREC__SCREEN_MAX_DIM];
    for (size_t r = 0; r < MMREC__SCORE_USERS; r++) {
        memset(q, 0, stride);
        par[r].scale = 1.0;
        par[r].abs = 0.0;
        bound[r] = 0.0f;
        if (r < n) {
            double x2, e2, q2;
            float a = mmrec__screen_quantize(user_emb + (size_t)ids[r] * dim, dim, stride, q,
                                             &x2, &e2, &q2);
            double nu = sqrt(x2) * MMREC__SCREEN_SLACK;
            double ne = sqrt(e2) * MMREC__SCREEN_SLACK, nq = sqrt(q2) * MMREC__SCREEN_SLACK;
            double m = ((gamma + rho) * nu + (1.0 + rho) * ne) / (double)a +
                       eps * (1.0 + rho) * nq;
            par[r].scale = (double)a;
            if (nu < MMREC__SCREEN_MAX_NORM) {
                bound[r] = mmrec__round_up(m * MMREC__SCREEN_SLACK);
                par[r].abs = ((double)dim * 0x1p-149 / (double)a + 0x1p-150) *
                             MMREC__SCREEN_SLACK;
            } else {
                par[r].abs = INFINITY; /* not screened: every pair passes */
            }
        }
        int32_t sum = 0;
        for (size_t k = 0; k < stride; k++) {
            sum += q[k];
            dst[(k / 4) * 4 * MMREC__SCORE_USERS + r * 4 + k % 4] =
                (uint8_t)(isa == MMREC__SCREEN_AVX512 ? q[k] + 128 : q[k]);
        }
        int32_t corr = -128 * sum;
        memcpy(dst + MMREC__SCORE_USERS * stride + r * sizeof corr, &corr, sizeof corr);
    }
}

float mmrec__screen_low(float thr, const mmrec__screen_user *par) {
    if (par->abs == INFINITY || thr == -INFINITY) return -INFINITY;
    if (thr == INFINITY) return INFINITY;
    double d = (double)thr / par->scale; /* one rounding, and abs carries a margin */
    double low = d - par->abs - (fabs(d) + par->abs) * 0x1p-50;
    return mmrec__round_down(low);
}

float mmrec__screen_floor(float t, const mmrec__screen_user *par) {
    if (par->abs == INFINITY || !(t > -INFINITY)) return -INFINITY;
    /* K runs hold a pair whose fl(P - M n) >= t, so K distinct items have
     * P - M n >= t - 2^-24 |t| - 2^-150 (one rounding), hence an exact
     * score s with s / a >= t - 2^-24 |t| - 2^-150 - abs (the derivation
     * above read the other way): the user's K-th best score is at least
     * that, and a pair can enter only if its own score is, so only if
     * fl(M n + P) >= that - abs. */
    double low = (double)t - fabs((double)t) * 0x1p-24 - 0x1p-150 - 2.0 * par->abs;
    low -= (fabs(low) + fabs((double)t)) * 0x1p-50;
    return mmrec__round_down(low);
}

#ifdef MMREC__SCREEN_X86
#define MMREC__EACH_ITEM(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define MMREC__INIT(j)                                                                     \
    __m512i c##j##0 = _mm512_set1_epi32(corr[i + j < end ? i + j : end - 1]),             \
            c##j##1 = c##j##0, c##j##2 = c##j##0, c##j##3 = c##j##0;
#define MMREC__DOT(j)                                                                      \
    {                                                                                      \
        int32_t w;                                                                         \
        memcpy(&w, row[j] + 4 * g, 4);                                                     \
        __m512i v = _mm512_set1_epi32(w);                                                  \
        MMREC__DPBUSD(c##j##0, u0, v);                                                     \
        MMREC__DPBUSD(c##j##1, u1, v);                                                     \
        MMREC__DPBUSD(c##j##2, u2, v);                                                     \
        MMREC__DPBUSD(c##j##3, u3, v);                                                     \
    }
/* The integer dot products of the 64 users with the run's 6 items, in
 * c<item><quarter of the users>. */
#define MMREC__DOTS()                                                                      \
    MMREC__EACH_ITEM(MMREC__INIT)                                                          \
    for (size_t g = 0; g < groups; g++) {                                                  \
        const uint8_t *u = users + g * 256;                                                \
        __m512i u0 = _mm512_loadu_si512(u), u1 = _mm512_loadu_si512(u + 64);               \
        __m512i u2 = _mm512_loadu_si512(u + 128), u3 = _mm512_loadu_si512(u + 192);         \
        MMREC__EACH_ITEM(MMREC__DOT)                                                       \
    }
/* acc += the byte products of u (unsigned) and v (signed), four per lane.
 * In assembly: GCC 12 copies the accumulator of _mm512_dpbusd_epi32 through
 * a spare register and the stack on every step (measured on Gowalla, one
 * core: the whole evaluation 1290 ms with the intrinsic, 930 ms without). */
#define MMREC__DPBUSD(acc, u, v) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(v))
#define MMREC__PASS(j, qq)                                                                 \
    _mm512_cmp_ps_mask(                                                                    \
        _mm512_fmadd_ps(m##qq, n##j, _mm512_mul_ps(_mm512_cvtepi32_ps(c##j##qq), b##j)),     \
        l##qq, _CMP_GE_OQ)
#define MMREC__TEST(j)                                                                     \
    {                                                                                      \
        size_t at = i + j < end ? i + j : end - 1;                                         \
        __m512 b##j = _mm512_set1_ps(scale[at]), n##j = _mm512_set1_ps(norm[at]);          \
        bits[j] = (uint64_t)MMREC__PASS(j, 0) | (uint64_t)MMREC__PASS(j, 1) << 16 |        \
                  (uint64_t)MMREC__PASS(j, 2) << 32 | (uint64_t)MMREC__PASS(j, 3) << 48;   \
        any |= bits[j];                                                                    \
    }

__attribute__((target("avx512f,avx512bw,avx512vnni")))
static size_t mmrec__screen_find512(const uint8_t *users, const int8_t *items,
                                    const int32_t *corr, const float *scale, const float *norm,
                                    size_t dim, size_t first, size_t end, const float *bound,
                                    const float *low, uint64_t *masks) {
    size_t stride = mmrec__screen_stride(dim), groups = stride / 4;
    const size_t ahead = 2 * 6;
    __m512 m0 = _mm512_loadu_ps(bound), m1 = _mm512_loadu_ps(bound + 16);
    __m512 m2 = _mm512_loadu_ps(bound + 32), m3 = _mm512_loadu_ps(bound + 48);
    for (size_t i = first; i < end; i += 6) {
        const int8_t *row[6];
        MMREC__RUN_ROWS(row, items, stride, i, end, 6, ahead);
        MMREC__DOTS();
        __m512 l0 = _mm512_loadu_ps(low), l1 = _mm512_loadu_ps(low + 16);
        __m512 l2 = _mm512_loadu_ps(low + 32), l3 = _mm512_loadu_ps(low + 48);
        uint64_t bits[6], any = 0;
        MMREC__EACH_ITEM(MMREC__TEST)
        if (any == 0) continue;
        memcpy(masks, bits, sizeof bits);
        return i;
    }
    return end;
}

#define MMREC__LOWER(j, qq)                                                                \
    _mm512_fnmadd_ps(m##qq, n##j, _mm512_mul_ps(_mm512_cvtepi32_ps(c##j##qq), b##j))
#define MMREC__MAXLOW(j)                                                                   \
    {                                                                                      \
        __m512 b##j = _mm512_set1_ps(scale[i + j]), n##j = _mm512_set1_ps(norm[i + j]);    \
        x0 = _mm512_max_ps(x0, MMREC__LOWER(j, 0));                                        \
        x1 = _mm512_max_ps(x1, MMREC__LOWER(j, 1));                                        \
        x2 = _mm512_max_ps(x2, MMREC__LOWER(j, 2));                                        \
        x3 = _mm512_max_ps(x3, MMREC__LOWER(j, 3));                                        \
    }

__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void mmrec__screen_lower512(const uint8_t *users, const int8_t *items,
                                   const int32_t *corr, const float *scale, const float *norm,
                                   size_t dim, size_t i, const float *bound, float *out) {
    size_t stride = mmrec__screen_stride(dim), groups = stride / 4, end = i + 6;
    __m512 m0 = _mm512_loadu_ps(bound), m1 = _mm512_loadu_ps(bound + 16);
    __m512 m2 = _mm512_loadu_ps(bound + 32), m3 = _mm512_loadu_ps(bound + 48);
    const int8_t *row[6];
    for (size_t j = 0; j < 6; j++) row[j] = items + (i + j) * stride;
    MMREC__DOTS();
    __m512 x0 = _mm512_set1_ps(-INFINITY), x1 = x0, x2 = x0, x3 = x0;
    MMREC__EACH_ITEM(MMREC__MAXLOW)
    _mm512_storeu_ps(out, x0);
    _mm512_storeu_ps(out + 16, x1);
    _mm512_storeu_ps(out + 32, x2);
    _mm512_storeu_ps(out + 48, x3);
}

/* The same with AVX-VNNI, for AVX2 CPUs without AVX-512 (Alder Lake and
 * later clients, Sierra Forest): 32-byte vpdpbusd, 8 users per vector, 16
 * vector registers, no broadcast operand. The roles of the bytes swap: the
 * users' codes are signed and read straight from memory by vpdpbusd, the
 * items' codes are stored unsigned (p + 128) and broadcast 4 at a time,
 * so a sum is Q + 128 sum_k q_k, and it starts from the user's correction
 * -128 sum_k q_k. The 6 x 64 sums of a run are formed in four
 * passes of 3 items x 32 users (12 accumulators, 3 broadcasts), kept in
 * memory, then tested as above: the same integers Q, the same float test,
 * so the same pairs pass. */
#define MMREC__DPBUSD256M(acc, u, m)                                                       \
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u), "m"(*(m)))

__attribute__((target("avx2,fma,avxvnni"))) static inline void
mmrec__screen_dots256(const uint8_t *users, const int8_t *const *row, size_t stride,
                      int32_t (*c)[MMREC__SCORE_USERS]) {
    const int32_t *ucorr = (const int32_t *)(users + MMREC__SCORE_USERS * stride);
    size_t groups = stride / 4;
    for (int third = 0; third < 2; third++)
        for (int half = 0; half < 2; half++) {
            const int8_t *r0 = row[3 * third], *r1 = row[3 * third + 1], *r2 = row[3 * third + 2];
            __m256i a[3][4];
            for (int h = 0; h < 4; h++)
                a[0][h] = a[1][h] = a[2][h] =
                    _mm256_loadu_si256((const __m256i *)(ucorr + 32 * half + 8 * h));
            const uint8_t *u = users + 128 * half;
            for (size_t g = 0; g < groups; g++, u += 256) {
                int32_t w0, w1, w2;
                memcpy(&w0, r0 + 4 * g, 4);
                memcpy(&w1, r1 + 4 * g, 4);
                memcpy(&w2, r2 + 4 * g, 4);
                __m256i v0 = _mm256_set1_epi32(w0), v1 = _mm256_set1_epi32(w1);
                __m256i v2 = _mm256_set1_epi32(w2);
                for (int h = 0; h < 4; h++) {
                    const __m256i *m = (const __m256i *)(u + 32 * h);
                    MMREC__DPBUSD256M(a[0][h], v0, m);
                    MMREC__DPBUSD256M(a[1][h], v1, m);
                    MMREC__DPBUSD256M(a[2][h], v2, m);
                }
            }
            for (int k = 0; k < 3; k++)
                for (int h = 0; h < 4; h++)
                    _mm256_storeu_si256((__m256i *)(c[3 * third + k] + 32 * half + 8 * h),
                                        a[k][h]);
        }
}

__attribute__((target("avx2,fma,avxvnni")))
static size_t mmrec__screen_find256(const uint8_t *users, const int8_t *items,
                                    const int32_t *corr, const float *scale, const float *norm,
                                    size_t dim, size_t first, size_t end, const float *bound,
                                    const float *low, uint64_t *masks) {
    enum { RUN = 6, USERS = MMREC__SCORE_USERS };
    size_t stride = mmrec__screen_stride(dim);
    const size_t ahead = 2 * RUN;
    int32_t c[RUN][USERS];
    (void)corr; /* the users carry the correction here */
    for (size_t i = first; i < end; i += RUN) {
        const int8_t *row[RUN];
        MMREC__RUN_ROWS(row, items, stride, i, end, RUN, ahead);
        mmrec__screen_dots256(users, row, stride, c);
        uint64_t bits[RUN], any = 0;
        for (size_t j = 0; j < RUN; j++) {
            size_t at = i + j < end ? i + j : end - 1;
            __m256 b = _mm256_set1_ps(scale[at]), nv = _mm256_set1_ps(norm[at]);
            bits[j] = 0;
            for (size_t h = 0; h < USERS / 8; h++) {
                __m256 p = _mm256_mul_ps(
                    _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(c[j] + 8 * h))), b);
                __m256 t = _mm256_fmadd_ps(_mm256_loadu_ps(bound + 8 * h), nv, p);
                unsigned m = (unsigned)_mm256_movemask_ps(
                    _mm256_cmp_ps(t, _mm256_loadu_ps(low + 8 * h), _CMP_GE_OQ));
                bits[j] |= (uint64_t)m << (8 * h);
            }
            any |= bits[j];
        }
        if (any == 0) continue;
        memcpy(masks, bits, sizeof bits);
        return i;
    }
    return end;
}

__attribute__((target("avx2,fma,avxvnni")))
static void mmrec__screen_lower256(const uint8_t *users, const int8_t *items,
                                   const int32_t *corr, const float *scale, const float *norm,
                                   size_t dim, size_t i, const float *bound, float *out) {
    enum { RUN = 6, USERS = MMREC__SCORE_USERS };
    size_t stride = mmrec__screen_stride(dim);
    int32_t c[RUN][USERS];
    const int8_t *row[RUN];
    (void)corr;
    for (size_t j = 0; j < RUN; j++) row[j] = items + (i + j) * stride;
    mmrec__screen_dots256(users, row, stride, c);
    for (size_t h = 0; h < USERS / 8; h++) {
        __m256 m = _mm256_loadu_ps(bound + 8 * h), x = _mm256_set1_ps(-INFINITY);
        for (size_t j = 0; j < RUN; j++) {
            __m256 p = _mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(c[j] + 8 * h))),
                _mm256_set1_ps(scale[i + j]));
            x = _mm256_max_ps(x, _mm256_fnmadd_ps(m, _mm256_set1_ps(norm[i + j]), p));
        }
        _mm256_storeu_ps(out + 8 * h, x);
    }
}

size_t mmrec__screen_find(mmrec__screen_isa isa, const uint8_t *users, const int8_t *items,
                          const int32_t *corr, const float *scale, const float *norm, size_t dim,
                          size_t first, size_t end, const float *bound, const float *low,
                          uint64_t *masks) {
    return isa == MMREC__SCREEN_AVX512
               ? mmrec__screen_find512(users, items, corr, scale, norm, dim, first, end, bound,
                                       low, masks)
               : mmrec__screen_find256(users, items, corr, scale, norm, dim, first, end, bound,
                                       low, masks);
}

void mmrec__screen_lower(mmrec__screen_isa isa, const uint8_t *users, const int8_t *items,
                         const int32_t *corr, const float *scale, const float *norm, size_t dim,
                         size_t i, const float *bound, float *out) {
    if (isa == MMREC__SCREEN_AVX512)
        mmrec__screen_lower512(users, items, corr, scale, norm, dim, i, bound, out);
    else
        mmrec__screen_lower256(users, items, corr, scale, norm, dim, i, bound, out);
}

/* Eight chains at a time, so the latency of one fused multiply-add hides
 * behind the others. */
__attribute__((target("fma")))
void mmrec__score_pairs(const float *const *u, const float *const *v, size_t n, size_t dim,
                        float *out) {
    size_t p = 0;
    for (; p + 8 <= n; p += 8) {
        float s[8] = {0};
        const float *a[8], *b[8];
        for (int j = 0; j < 8; j++) a[j] = u[p + (size_t)j], b[j] = v[p + (size_t)j];
        for (size_t k = 0; k < dim; k++)
            for (int j = 0; j < 8; j++) s[j] = __builtin_fmaf(a[j][k], b[j][k], s[j]);
        for (int j = 0; j < 8; j++) out[p + (size_t)j] = s[j];
    }
    for (; p < n; p++) {
        float s = 0.0f;
        for (size_t k = 0; k < dim; k++) s = __builtin_fmaf(u[p][k], v[p][k], s);
        out[p] = s;
    }
}
#else
size_t mmrec__screen_find(mmrec__screen_isa isa, const uint8_t *users, const int8_t *items,
                          const int32_t *corr, const float *scale, const float *norm, size_t dim,
                          size_t first, size_t end, const float *bound, const float *low,
                          uint64_t *masks) {
    (void)isa, (void)users, (void)items, (void)corr, (void)scale, (void)norm, (void)dim;
    (void)first;
    (void)bound, (void)low, (void)masks;
    assert(0 && "mmrec__screen_usable is false here");
    return end;
}

void mmrec__screen_lower(mmrec__screen_isa isa, const uint8_t *users, const int8_t *items,
                         const int32_t *corr, const float *scale, const float *norm, size_t dim,
                         size_t i, const float *bound, float *out) {
    (void)isa, (void)users, (void)items, (void)corr, (void)scale, (void)norm, (void)dim, (void)i;
    (void)bound, (void)out;
    assert(0 && "mmrec__screen_usable is false here");
}

void mmrec__score_pairs(const float *const *u, const float *const *v, size_t n, size_t dim,
                        float *out) {
    for (size_t p = 0; p < n; p++) {
        float s = 0.0f;
        for (size_t k = 0; k < dim; k++) s = fmaf(u[p][k], v[p][k], s);
        out[p] = s;
    }
}
#endif
