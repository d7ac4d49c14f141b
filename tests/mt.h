/* Test helpers shared by every suite: suite registration, random inputs,
 * the finite-difference gradient check, golden-vector loading and
 * comparison, and error-message assertions. */
#ifndef MMREC_MT_H
#define MMREC_MT_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "mmrec/mmrec.h"

/* Registers a suite constructor; the runner adds every registered suite. */
typedef Suite *(*mt_suite_fn)(void);
void mt_register(mt_suite_fn fn);
#define MT_SUITE(fn)                                                     \
    static Suite *fn(void);                                              \
    __attribute__((constructor)) static void mt_reg_##fn(void) { mt_register(fn); }

/* Asserts a call returns `expected` and, on failure, that the message
 * mentions `needle` (NULL: any message). */
#define MT_EXPECT(call, expected, needle)                                                 \
    do {                                                                                  \
        mmrec_status mt__s = (call);                                                      \
        ck_assert_msg(mt__s == (expected), "%s returned %s, expected %s (%s)", #call,     \
                      mmrec_status_name(mt__s), mmrec_status_name(expected),              \
                      mmrec_last_error());                                                \
        if ((expected) != MMREC_OK) mt_check_message(#call, (needle));                    \
    } while (0)
/* Asserts mmrec_last_error() contains `needle` (NULL: anything). */
void mt_check_message(const char *call, const char *needle);
#define MT_OK(call) MT_EXPECT(call, MMREC_OK, NULL)

/* A tape tensor (flags 0 or MMREC_TENSOR_REQUIRES_GRAD) holding a copy of
 * `data`. */
mmrec_tensor *mt_tape_tensor(mmrec_tape *tape, int ndim, const int64_t *shape, const float *data,
                             uint32_t flags);

/* Adds U(-0.3, 0.3) noise to every parameter of `model`, so biases, norms
 * and zero-initialized weights take generic values before a check. */
void mt_perturb_params(mmrec_model *model, uint64_t seed);

/* Deterministic random fill (own generator, independent of the library). */
void mt_fill_uniform(float *x, size_t n, float low, float high, uint64_t seed);
/* Uniform in [low, high) with |x| >= gap: keeps inputs away from kinks. */
void mt_fill_away(float *x, size_t n, float low, float high, float gap, uint64_t seed);
/* The LCG the data tests draw ids and small integers from (Knuth's MMIX
 * constants): advances *s and returns its top 31 bits. */
uint64_t mt_lcg(uint64_t *s);

/* Whether `x` holds the pair (u, i) (a linear scan). */
bool mt_has_pair(const mmrec_interactions *x, int64_t u, int64_t i);

/* ---- gradient check ----
 * `forward` computes out from the inputs (tape tensors requiring a gradient,
 * in the order given) and from any model parameters it uses. The check
 * seeds backward with a fixed random r (loss = sum(r * out)), compares the
 * analytic gradient of each input and of each trainable parameter of
 * `model` (may be NULL) with central differences on up to 64 random
 * coordinates each, and checks that a second backward doubles every
 * gradient. */
typedef mmrec_status (*mt_forward_fn)(void *ctx, mmrec_tape *tape, mmrec_tensor **inputs,
                                      mmrec_tensor **out);

typedef struct mt_input {
    int ndim;
    int64_t shape[MMREC_MAX_DIMS];
    float *data;     /* caller's buffer, numel floats */
    bool no_grad;    /* true: not differentiated (e.g. targets, masks) */
} mt_input;

typedef struct mt_gradcheck_opts {
    float h;         /* step; 0 = 1e-2 */
    float tol;       /* 0 = 1e-2 */
    int max_coords;  /* 0 = 64 */
    float floor;     /* smallest |gradient| compared relatively; 0 = 1e-3 */
} mt_gradcheck_opts;

void mt_gradcheck(const char *name, mt_forward_fn forward, void *ctx, mt_input *inputs,
                  int n_inputs, mmrec_model *model, const mt_gradcheck_opts *opts);

/* ---- golden vectors ----
 * A golden file holds named float32 arrays written by
 * tests/golden/make_golden.py: repeated records of
 *   u32 name_len, name bytes, u32 ndim, i64 shape[ndim], f32 data[numel]. */
typedef struct mt_array {
    char name[64];
    int ndim;
    int64_t shape[MMREC_MAX_DIMS];
    size_t numel;
    float *data;
} mt_array;

typedef struct mt_golden {
    mt_array *arrays;
    size_t n;
} mt_golden;

/* Loads tests/golden/<rel_path>; fails the test if missing or malformed. */
void mt_golden_load(mt_golden *g, const char *rel_path);
void mt_golden_free(mt_golden *g);
/* The array "<kase>.<what>", or NULL when absent (optional inputs). */
const mt_array *mt_golden_find(const mt_golden *g, const char *kase, const char *what);
/* The optional arrays of a batch-softmax golden case into cfg:
 * "<kase>.bias" (column_bias), ".w" (row_weights), ".pos" (positives),
 * ".ids" (candidate_ids) and ".mask" (mask, [batch, cands]), each only
 * when present; the integer ones converted into the caller's buffers
 * (positives and ids at least 64 entries, mask at least 64 * 64). */
typedef struct mt_bsm_buffers {
    int64_t pos[64], ids[64];
    uint8_t mask[64 * 64];
} mt_bsm_buffers;
void mt_golden_bsm_options(const mt_golden *g, const char *kase, size_t batch, size_t cands,
                           mmrec_batch_softmax_config *cfg, mt_bsm_buffers *buf);
/* The named array; fails the test if absent. */
const mt_array *mt_golden_get(const mt_golden *g, const char *name);

/* Asserts |got - want| <= atol + rtol * |want| element-wise (rtol 1e-5,
 * atol 1e-6 by default when 0), and refuses a reference that is mostly
 * zeros (it would prove nothing). */
void mt_assert_close(const char *what, const float *got, const float *want, size_t n, float rtol,
                     float atol);

/* mt_assert_close with rtol 1e-5 and atol 1e-6 + 1e-5 max|want|: an
 * element far below the array's scale is compared on that scale. */
void mt_close_scaled(const char *what, const float *got, const float *want, size_t n);

/* A tensor's data and its gradient (asserted present). */
const float *mt_data_of(const mmrec_tensor *t);
const float *mt_grad_of(const mmrec_tensor *t);

/* Copies the golden's "<kase>.param.<name>" into every parameter of
 * `model`, whose names are "<prefix>.<name>" (prefix_len bytes, the '.'
 * included); the golden must hold one for every parameter and no other. */
void mt_load_params(const mt_golden *gold, const char *kase, mmrec_model *model,
                    size_t prefix_len);
/* Checks every parameter's gradient against the golden's
 * "<kase>.grad.<name>" (names as for mt_load_params), rtol 1e-5, atol 1e-6. */
void mt_check_grads(const mt_golden *gold, const char *kase, mmrec_model *model,
                    size_t prefix_len);

/* Path of a file under tests/ (static buffer). */
const char *mt_path(const char *rel);

/* ---- temporary files and allocation counting (mt_files.c) ---- */

/* The directory mt_tmp_dir() made. */
extern char mt_dir[64];
/* Makes a fresh temporary directory; mt_tmp_clean() removes it and its
 * files. */
const char *mt_tmp_dir(void);
/* Path of `name` in that directory; `slot` (0..3) picks one of four buffers
 * so several paths can be held at once. */
const char *mt_file(int slot, const char *name);
/* Number of files in it whose name holds ".tmp." (writers' temporaries). */
int mt_count_tmp_files(void);
void mt_tmp_clean(void);
/* Whole-file read (malloc'd, caller frees) and write. */
unsigned char *mt_read_file(const char *path, size_t *size);
void mt_write_file(const char *path, const void *data, size_t size);

/* An mmrec_allocator pair that counts allocations in mt_allocs. */
extern size_t mt_allocs;
void *mt_count_alloc(void *user, size_t size);
void mt_count_release(void *user, void *p);
/* Runs step(ctx) 4 times with the counting allocator installed by the
 * caller; asserts the first run allocates and the third and fourth
 * allocate nothing (a steady-state step does no malloc). */
void mt_assert_steady_state(mmrec_status (*step)(void *ctx), void *ctx);

/* Runs `run` with the n-th allocation failing, n = 0, 1, ... until it
 * succeeds; asserts every failure is MMREC_ENOMEM and leaks nothing. Returns
 * the number of failed runs. */
typedef mmrec_status (*mt_scenario)(void *ctx);
int mt_oom_loop(const char *name, mt_scenario run, void *ctx);

/* ---- the golden graph (mt_graph.c) ----
 * tests/golden/graph.bin (make_golden.py::write_graph): one bipartite
 * graph and the cases PyTorch ran on it ("propagate", "lightgcn3",
 * "lightgcn2w"). */
typedef struct mt_graph_case {
    int layers;                     /* -1: one mmrec_graph_propagate */
    const float *weights;           /* per-layer weights; NULL: the mean */
    const mt_array *x, *r, *y, *dx; /* ego, upstream gradient, output, ego gradient */
} mt_graph_case;

/* Loads graph.bin into *gold and returns its graph (the caller destroys
 * both). */
mmrec_graph *mt_golden_graph(mt_golden *gold);
/* The arrays of case `name`, borrowed from *gold. */
void mt_golden_graph_case(const mt_golden *gold, const char *name, mt_graph_case *c);
/* Checks `out` (n <= 256 values) against `want`, then runs the backward
 * from `out` seeded with `r` and checks the gradient of `ego` (a tape
 * tensor holding c->x) against c->dx. */
void mt_golden_graph_check(const char *name, const mt_graph_case *c, mmrec_tape *tape,
                           mmrec_tensor *ego, mmrec_tensor *out, const float *want,
                           const float *r, size_t n);

#endif
