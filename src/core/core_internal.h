/* Internal core: error reporting macros, allocation wrappers, the generator
 * state and the thread setting. Shared by every area; never installed. */
#ifndef MMREC_CORE_INTERNAL_H
#define MMREC_CORE_INTERNAL_H

#include "mmrec/core.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define MMREC__WUR __attribute__((warn_unused_result))
#define MMREC__PRINTF(a, b) __attribute__((format(printf, a, b)))
#define MMREC__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define MMREC__WUR
#define MMREC__PRINTF(a, b)
#define MMREC__UNLIKELY(x) (x)
#endif

/* MMREC__ASAN: built with AddressSanitizer (gcc or clang). Such builds
 * allocate exactly what is asked and poison the rest, so an overflow of a
 * few bytes is caught. */
#if defined(__SANITIZE_ADDRESS__)
#define MMREC__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MMREC__ASAN 1
#endif
#endif

/* Hot element-wise loops are compiled for AVX-512, AVX2 and the baseline,
 * and the loader picks the widest the CPU has (GNU ifunc). The build keeps
 * ISO C's -ffp-contract=off, so every clone gives the same bits. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(MMREC_NO_CLONES)
#define MMREC__SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MMREC__SIMD_CLONES
#endif

/* Whether the CPU converts half floats (x86-64 F16C; CPUID leaf 1, ECX bit
 * 29): clang's __builtin_cpu_supports does not know "f16c". Thread-safe.
 * (cpu.c) */
bool mmrec__cpu_has_f16c(void);

/* Writes "func: message" into the thread-local buffer and returns `status`.
 * Never allocates. */
mmrec_status mmrec__set_error(mmrec_status status, const char *func, const char *fmt, ...)
    MMREC__PRINTF(3, 4);

/* Fail with a message when `cond` holds: one line per check at the public
 * boundary. The message is prefixed with the enclosing function's name. */
#define MMREC_FAIL_IF(cond, status, ...)                                       \
    do {                                                                       \
        if (MMREC__UNLIKELY(cond))                                             \
            return mmrec__set_error((status), __func__, __VA_ARGS__);          \
    } while (0)

#define MMREC_FAIL(status, ...) return mmrec__set_error((status), __func__, __VA_ARGS__)

#define MMREC_CHECK_NULL(ptr)                                                  \
    MMREC_FAIL_IF((ptr) == NULL, MMREC_EINVAL, "argument '%s' is NULL", #ptr)

/* The same on behalf of `func`, in a helper that validates the arguments of
 * the public function calling it (one implementation behind two public
 * names, e.g. mmrec_gather_rows and mmrec_embedding_forward): the message
 * names that function. */
#define MMREC_FAIL_IF_FOR(func, cond, status, ...)                             \
    do {                                                                       \
        if (MMREC__UNLIKELY(cond))                                             \
            return mmrec__set_error((status), (func), __VA_ARGS__);            \
    } while (0)

#define MMREC_CHECK_NULL_FOR(func, ptr)                                        \
    MMREC_FAIL_IF_FOR(func, (ptr) == NULL, MMREC_EINVAL, "argument '%s' is NULL", #ptr)

/* Propagate a callee's failure (its message already set). */
#define MMREC_FORWARD_IF(expr)                                                 \
    do {                                                                       \
        mmrec_status mmrec__fw = (expr);                                       \
        if (MMREC__UNLIKELY(mmrec__fw != MMREC_OK)) return mmrec__fw;          \
    } while (0)

/* Allocation: all library memory goes through these (the allocator hook).
 * Memory is 64-byte aligned. mmrec__alloc returns NULL on failure without
 * setting an error; callers report MMREC_ENOMEM. */
void *mmrec__alloc(size_t size);
void *mmrec__calloc(size_t count, size_t size);
void mmrec__free(void *ptr);
char *mmrec__strdup(const char *s);

/* size = a * b with overflow detection; returns false on overflow. */
static inline bool mmrec__mul_size(size_t a, size_t b, size_t *out) {
    if (b != 0 && a > SIZE_MAX / b) return false;
    *out = a * b;
    return true;
}

/* Generator state (xoshiro256**). */
typedef struct mmrec__rng_state {
    uint64_t s[4];
} mmrec__rng_state;

void mmrec__rng_seed(mmrec__rng_state *rng, uint64_t seed);
uint64_t mmrec__rng_u64(mmrec__rng_state *rng);
/* Uniform in [0, 1) with 24 random bits. */
float mmrec__rng_uniform(mmrec__rng_state *rng);
/* Standard normal (Box-Muller, one draw per two uniforms; no cached spare so
 * the stream position is a pure function of the number of calls). */
float mmrec__rng_normal(mmrec__rng_state *rng);
uint64_t mmrec__rng_below(mmrec__rng_state *rng, uint64_t bound);

/* ---- NaN and Inf (finite.c; the policy is in core.h) ---- */

/* The index of the first NaN or infinite value of x[0 .. n), or n when
 * all are finite. Vectorized; memory speed. */
size_t mmrec__first_nonfinite(const float *x, size_t n);

/* MMREC_ENUMERIC on behalf of `func`, "<name>[i] is <value> (must be
 * finite)" for the first NaN or infinite value of x[0 .. n); MMREC_OK when
 * there is none. The check of every loss and metric input. */
mmrec_status mmrec__check_finite(const char *func, const char *name, const float *x, size_t n)
    MMREC__WUR;

/* The check-finite mode (mmrec_set_check_finite): read once per op. */
extern atomic_int mmrec__check_finite_mode;
static inline bool mmrec__check_finite_on(void) {
    return atomic_load_explicit(&mmrec__check_finite_mode, memory_order_relaxed) != 0;
}

/* Thread count used by heavy loops. */
int mmrec__num_threads(void);

/* Runs fn(ctx, begin, end, part) over [0, n) split into `parts` contiguous
 * chunks (part 0 .. parts - 1), on the calling thread and the pool's
 * workers (pool.c); returns when all are done. `parts` comes from one call
 * of mmrec__parallel_parts, made by the caller, which sizes any per-part
 * scratch from the same value: the thread count is read once per region,
 * so a concurrent mmrec_set_num_threads cannot make a part index run past
 * that scratch. The split depends only on n and parts, never on which
 * thread runs a chunk. Nested calls and calls while another thread's region
 * runs execute their chunks on the calling thread. */
typedef void (*mmrec__chunk_fn)(void *ctx, size_t begin, size_t end, int part);
void mmrec__parallel_for(size_t n, int parts, mmrec__chunk_fn fn, void *ctx);
/* The grain (items per chunk) that gives each chunk at least min_work units
 * of work when one item costs per_item units. */
static inline size_t mmrec__grain(size_t per_item, size_t min_work) {
    return per_item == 0 ? min_work : per_item >= min_work ? 1 : min_work / per_item;
}
/* The number of chunks (1 .. 64) to split n items into, each of at least
 * `grain` items, from the current thread count. */
int mmrec__parallel_parts(size_t n, size_t grain);

#endif

/* Extensible config structs (STYLE.md §5). Every public config begins with
 * `size_t struct_size`.
 *
 * mmrec__config_init: writes the library's `defaults` (ours_size bytes) into
 * the caller's struct of `size` bytes: the covered prefix, zeros for any tail
 * the library does not know, struct_size = size. Fails when size < min_size
 * (the size of the first release of that struct).
 *
 * mmrec__config_merge: copies the caller's struct (its struct_size says how
 * big) over `ours` (pre-filled with defaults): a shorter caller struct
 * leaves our defaults for the fields it lacks; a longer one is accepted only
 * if the unknown tail is all zero ("config from a newer libmmrec"). */
mmrec_status mmrec__config_init(void *cfg, size_t size, const void *defaults, size_t ours_size,
                                size_t min_size, const char *func) MMREC__WUR;
mmrec_status mmrec__config_merge(void *ours, size_t ours_size, size_t min_size,
                                 const void *theirs, const char *func) MMREC__WUR;
