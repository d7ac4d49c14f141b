/* libmmrec core: export macros, version, status codes, the thread-local
 * error message, the thread-count setting, the allocator hook and the seeded
 * random generator.
 *
 * Every fallible libmmrec call returns an mmrec_status. MMREC_OK (0) is
 * success; any other value means the call did nothing (outputs untouched) and
 * mmrec_last_error() holds one sentence naming the function, the argument and
 * what was expected. Callers branch on the status, never on the text.
 *
 * Thread safety: functions here are thread-safe unless their block says
 * otherwise ("not thread-safe" = global, call before starting threads).
 *
 * NaN and Inf. One status for a non-finite number found in data:
 * MMREC_ENUMERIC, its message naming the function (the op), the array or
 * tensor and the first bad index ("mmrec_loss_bpr: neg[17] is nan (must
 * be finite)"); MMREC_EINVAL stays for a non-finite option: a scalar
 * argument, a config field or a config array (a temperature, a learning
 * rate, row weights, a column bias, popularities): a wrong call rather
 * than bad numbers. Checked always: every input tensor of every loss
 * (losses.h, distill.h and the losses of em3.h, alignrec.h, inttower.h,
 * mvke.h; B x N logits or B x d embeddings, so the scan costs about 0.2%
 * of a batch softmax at B 256, N 512, d 64; a failing loss leaves the
 * tape as it was), the float inputs of the metrics (metrics.h:
 * embeddings, features, scores; the AUCs rank infinite scores and refuse
 * NaN only), data entering the library's state (parameter imports, cache
 * writers, index builds, the seed of mmrec_tape_backward_from) and the
 * gradients at mmrec_optimizer_step (refused, or the step skipped: see
 * mmrec_optimizer_config.nonfinite_grads). Not checked: the outputs of
 * matrix products, element-wise ops, modules and backward nodes, where a
 * scan is one more pass over every intermediate of a step; a NaN born there
 * reaches a loss's inputs or the optimizer's gradients, both checked. To
 * find where it was born, turn on the check-finite mode
 * (mmrec_set_check_finite): then every op and module forward checks its
 * output, and backward every gradient a node wrote. */
#ifndef MMREC_CORE_H
#define MMREC_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(MMREC_BUILDING)
#define MMREC_API __declspec(dllexport)
#elif defined(_WIN32) && !defined(MMREC_STATIC)
#define MMREC_API __declspec(dllimport)
#elif defined(__GNUC__)
#define MMREC_API __attribute__((visibility("default")))
#else
#define MMREC_API
#endif
#define MMREC_API_EXPERIMENTAL MMREC_API

/* The version, defined once here; the Makefile reads it from these lines. */
#define MMREC_VERSION_MAJOR 0
#define MMREC_VERSION_MINOR 2
#define MMREC_VERSION_PATCH 0
#define MMREC_VERSION_NUMBER \
    (MMREC_VERSION_MAJOR * 10000 + MMREC_VERSION_MINOR * 100 + MMREC_VERSION_PATCH)
#define MMREC_VERSION_STRING "0.2.0"

/* Largest tensor rank. Function twin: mmrec_max_dims(). */
#define MMREC_MAX_DIMS 4

/* Status codes. Values are fixed forever; new codes are appended to their
 * group. X(name, value, default text). */
#define MMREC_STATUS_TABLE(X)                                                 \
    X(MMREC_OK, 0, "success")                                                 \
    X(MMREC_EINVAL, 10, "invalid argument")                                   \
    X(MMREC_ESHAPE, 11, "tensor shape mismatch")                              \
    X(MMREC_ERANGE, 12, "value or index out of range")                        \
    X(MMREC_ENOTFOUND, 13, "no such name")                                    \
    X(MMREC_ESTATE, 20, "call not valid in the current state")                \
    X(MMREC_ESTALE, 21, "tensor used after its tape was reset")               \
    X(MMREC_EUNSUPPORTED, 22, "operation not supported")                      \
    X(MMREC_ENOMEM, 30, "out of memory")                                      \
    X(MMREC_EIO, 31, "input/output error")                                    \
    X(MMREC_EFORMAT, 32, "malformed, truncated or foreign file")              \
    X(MMREC_ENUMERIC, 40, "NaN or infinity found")

typedef enum mmrec_status {
#define MMREC__STATUS_ENUM(name, value, text) name = value,
    MMREC_STATUS_TABLE(MMREC__STATUS_ENUM)
#undef MMREC__STATUS_ENUM
    MMREC__STATUS_FORCE_INT = 0x7fffffff
} mmrec_status;

/* The opaque handles, declared once here so every area header needs only
 * this one. */
typedef struct mmrec_tensor mmrec_tensor;
typedef struct mmrec_tape mmrec_tape;
typedef struct mmrec_model mmrec_model;
typedef struct mmrec_module mmrec_module;
typedef struct mmrec_optimizer mmrec_optimizer;
typedef struct mmrec_rng mmrec_rng;
typedef struct mmrec_cache mmrec_cache;
typedef struct mmrec_cache_writer mmrec_cache_writer;
typedef struct mmrec_interactions mmrec_interactions;
typedef struct mmrec_graph mmrec_graph;
typedef struct mmrec_index mmrec_index;

/* Short default text of a status ("out of memory"); "unknown status" for a
 * value not in the table. Never NULL; static storage. Thread-safe. Since 0.1. */
MMREC_API const char *mmrec_status_str(mmrec_status status);

/* The status's name as a string ("MMREC_ENOMEM"); "MMREC_UNKNOWN" for a value
 * not in the table. Never NULL; static storage. Thread-safe. Since 0.1. */
MMREC_API const char *mmrec_status_name(mmrec_status status);

/* The message of the last failed call on this thread: one sentence naming
 * the function, the argument and expected vs actual. Only meaningful right
 * after a call returned a status other than MMREC_OK. Never NULL; the memory
 * is the library's (thread-local) and is overwritten by the next failure.
 * Thread-safe. Since 0.1. */
MMREC_API const char *mmrec_last_error(void);

/* The version number of the library actually loaded: the
 * MMREC_VERSION_NUMBER it was built with, major * 10000 + minor * 100 +
 * patch (200 for 0.2.0). Compare it with the macro of the headers a program
 * was compiled against to detect a mismatch. Never fails.
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API unsigned mmrec_version_number(void);

/* The version string of the library actually loaded: the
 * MMREC_VERSION_STRING it was built with ("0.2.0"). Never NULL; static
 * storage, owned by the library (never free it).
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API const char *mmrec_version_string(void);

/* MMREC_MAX_DIMS, for FFI callers. Thread-safe. Since 0.1. */
MMREC_API int mmrec_max_dims(void);

/* Sets the number of threads every heavy operation uses. The library splits
 * large matrix products, element-wise ops, layer norm and attention over its
 * own worker pool (the calling thread plus num_threads - 1 workers, started
 * at the first parallel operation, spinning briefly between operations and
 * then sleeping); BLAS runs single-threaded inside, so two thread pools
 * never compete for the cores. When several host threads run operations at
 * once, one uses the pool and the others compute alone. Results are
 * deterministic for a given seed and thread count.
 * BLAS's thread count is a process-wide setting: at its first matrix
 * product the library sets it to one (openblas_set_num_threads(1), or
 * BLIS's bli_thread_set_num_threads(1)) for the whole process and never
 * restores it, so a host that calls the same BLAS directly gets
 * single-threaded products from then on. A host that sets BLAS threads
 * again makes the library's products compete with its pool (slower, and
 * their last bits may change).
 * The workers live until the process ends; the shared library is linked
 * with -z nodelete, so dlclose() never unmaps code they run.
 *   num_threads (in) 1 .. 1024.
 * Returns MMREC_OK or MMREC_ERANGE.
 * Thread safety: not thread-safe; call before starting threads that use the
 * library. Since 0.1. */
MMREC_API mmrec_status mmrec_set_num_threads(int num_threads);

/* The current thread count (default: the number of online CPUs).
 * Thread-safe. Since 0.1. */
MMREC_API int mmrec_get_num_threads(void);

/* Turns the check-finite mode on (1) or off (0, the default). When on,
 * every op and module forward that records into a tape (ops.h, modules.h,
 * losses, graph products, the systems' blocks) scans its output after
 * computing it; a NaN or infinity makes the call return MMREC_ENUMERIC,
 * the message naming the function, the node and the first bad flat index
 * (for a module built of ops, the op inside it that made the value), with
 * the tape rolled back (the call changed nothing, the module's earlier
 * nodes included). Backward
 * (mmrec_tape_backward, mmrec_tape_backward_from) scans the gradients each
 * node wrote right after the node ran and stops at the first node whose
 * backward produced a non-finite gradient, returning MMREC_ENUMERIC naming
 * that node's op and the input; gradients already accumulated by the walk
 * stay (as on any failed backward), and mmrec_optimizer_step then refuses
 * or skips the step. The scans read every output and gradient once more
 * (a parameter's whole gradient after each node that writes it, so a
 * large embedding table costs most): a mode for finding where a NaN is
 * born. Views that copy nothing (reshape) and wrapped caller memory are
 * not scanned.
 *   enabled (in) 0 or 1.
 * Returns MMREC_OK or MMREC_EINVAL (enabled neither 0 nor 1).
 * Thread safety: a process-wide setting, stored atomically: safe to call
 * from any thread, and ops running on other threads see the change at
 * their next call; set it before training, as mmrec_set_num_threads.
 * Since 0.2. */
MMREC_API mmrec_status mmrec_set_check_finite(int enabled);

/* The check-finite mode: 1 when on, 0 when off (the default). Never fails.
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API int mmrec_get_check_finite(void);

/* Allocator hook. Every allocation the library makes for its own objects
 * (tensors, tape arenas, models, optimizer state, file buffers) goes through
 * these functions; BLAS keeps its own allocator. `alloc` returns memory
 * aligned to at least 64 bytes or NULL; `release` frees it (NULL allowed).
 * The struct begins with its size (set it to sizeof(mmrec_allocator)). */
typedef struct mmrec_allocator {
    size_t struct_size;
    void *(*alloc)(void *user, size_t size);
    void (*release)(void *user, void *ptr);
    void *user;
} mmrec_allocator;

/* Installs `allocator`, or restores the default (aligned malloc / free) when
 * it is NULL. Memory allocated under one allocator must be released under the
 * same one: install it before creating any object, restore after destroying
 * them all.
 * Returns MMREC_OK or MMREC_EINVAL (struct_size too small, a NULL function).
 * Thread safety: not thread-safe (global). Since 0.1. */
MMREC_API mmrec_status mmrec_set_allocator(const mmrec_allocator *allocator);

/* Seeded pseudo-random generator (xoshiro256**, seeded through splitmix64).
 * The same seed gives the same stream on every platform. Models and tapes
 * own one each; this handle is for hosts that want the same generator
 * (e.g. negative sampling). Per-handle thread safety. */
/* Creates a generator.
 *   seed (in)  any value.
 *   out  (out) new generator, owned by the caller (mmrec_rng_destroy).
 * Returns MMREC_OK, MMREC_EINVAL (out NULL), MMREC_ENOMEM. Since 0.1. */
MMREC_API mmrec_status mmrec_rng_create(uint64_t seed, mmrec_rng **out);

/* Destroys a generator; NULL is a no-op. Since 0.1. */
MMREC_API void mmrec_rng_destroy(mmrec_rng *rng);

/* Restarts the stream from `seed`. Returns MMREC_OK or MMREC_EINVAL.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_rng_seed(mmrec_rng *rng, uint64_t seed);

/* Next 64 random bits. Returns MMREC_OK or MMREC_EINVAL (NULL argument).
 * Since 0.1. */
MMREC_API mmrec_status mmrec_rng_next_u64(mmrec_rng *rng, uint64_t *out);

/* Fills `values` with `n` draws uniform in [low, high): value k is
 * low + (high - low) * u_k, u_k the top 24 bits of the stream's next 64-bit
 * output scaled to [0, 1) (one output per value).
 *   rng       (in)  the generator; borrowed.
 *   low, high (in)  finite, low <= high (low == high gives n copies of low).
 *   values    (out) n floats of caller memory.
 *   n         (in)  number of draws; may be 0 (values may then be NULL).
 * Returns MMREC_OK, MMREC_EINVAL (rng NULL, values NULL with n > 0, low or
 *         high not finite, low > high; nothing is drawn).
 * Thread safety: per-handle (rng). Since 0.1. */
MMREC_API mmrec_status mmrec_rng_uniform(mmrec_rng *rng, float low, float high, float *values,
                                         size_t n);

/* Fills `values` with `n` normal draws, mean + std * z_k with z_k standard
 * normal (Box-Muller, cosine branch: two 64-bit outputs of the stream per
 * value).
 *   rng    (in)  the generator; borrowed.
 *   mean   (in)  finite.
 *   std    (in)  finite, >= 0 (0 gives n copies of mean).
 *   values (out) n floats of caller memory.
 *   n      (in)  number of draws; may be 0 (values may then be NULL).
 * Returns MMREC_OK, MMREC_EINVAL (rng NULL, values NULL with n > 0, mean
 *         not finite, std negative or not finite; nothing is drawn).
 * Thread safety: per-handle (rng). Since 0.1. */
MMREC_API mmrec_status mmrec_rng_normal(mmrec_rng *rng, float mean, float std, float *values,
                                        size_t n);

/* A uniform integer in [0, bound) without modulo bias (bound >= 1).
 * Returns MMREC_OK or MMREC_EINVAL. Since 0.1. */
MMREC_API mmrec_status mmrec_rng_below(mmrec_rng *rng, uint64_t bound, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_CORE_H */
