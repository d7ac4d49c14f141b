/* Internal tape: arena, node record, and the helpers every op uses to make
 * outputs and record its backward. */
#ifndef MMREC_AUTOGRAD_INTERNAL_H
#define MMREC_AUTOGRAD_INTERNAL_H

#include "../tensor/tensor_internal.h"
#include "arena.h"

struct mmrec_model; /* model/model_internal.h */

typedef struct mmrec__node mmrec__node;

/* Backward of one recorded op: reads node->out->grad and adds into the
 * grads of the inputs that require one (mmrec__grad gives the buffer). May
 * only fail with MMREC_ENOMEM (arena growth). */
typedef mmrec_status (*mmrec__backward_fn)(mmrec__node *node, mmrec_tape *tape);

struct mmrec__node {
    mmrec__node *prev;
    mmrec__backward_fn backward;
    const char *name;    /* op name, for messages */
    mmrec_tensor *out;
    mmrec_tensor **in;   /* n_in inputs (arena) */
    int n_in;
    void *ctx;           /* op workspace (arena), ctx_size bytes, zeroed */
};

typedef struct mmrec__retained {
    struct mmrec__retained *next;
    struct mmrec_model *model;
} mmrec__retained;

struct mmrec_tape {
    uint32_t magic;
    mmrec_tape_mode mode;
    uint64_t gen;
    mmrec__arena data;      /* tensor data, nodes, workspaces */
    mmrec__arena headers[2];/* tensor headers, alternating per generation */
    mmrec__node *tail;      /* last recorded node */
    size_t n_nodes;
    mmrec__retained *retained;
    mmrec__rng_state rng;
};

#define MMREC__TAPE_MAGIC 0x6d6d5450u /* "mmTP" */

/* Rollback point: an op that fails part-way restores the tape to it, so a
 * failed call leaves the tape as it was: its arena, its record and the
 * position of its generator (dropout and sampling draws are undone). */
typedef struct mmrec__tape_mark {
    mmrec__arena_mark data, header;
    mmrec__node *tail;
    size_t n_nodes;
    mmrec__retained *retained;
    mmrec__rng_state rng;
} mmrec__tape_mark;

mmrec__tape_mark mmrec__tape_mark_get(mmrec_tape *tape);
void mmrec__tape_rollback(mmrec_tape *tape, mmrec__tape_mark mark);

/* Validates a tape argument (NULL, magic). */
mmrec_status mmrec__tape_check(const char *func, const mmrec_tape *tape) MMREC__WUR;
#define MMREC_CHECK_TAPE(tape) MMREC_FORWARD_IF(mmrec__tape_check(__func__, (tape)))

/* True when the tape records and any of the inputs requires a gradient. */
bool mmrec__tape_wants_grad(const mmrec_tape *tape, mmrec_tensor *const *in, int n_in);

/* Raw arena memory for this step (64-byte aligned), NULL on OOM. */
void *mmrec__tape_alloc(mmrec_tape *tape, size_t size);
void *mmrec__tape_calloc(mmrec_tape *tape, size_t size);

/* A new tensor on the tape (header + data), data uninitialised unless
 * `zero`. NULL on OOM. Shape must be valid. */
mmrec_tensor *mmrec__tape_new(mmrec_tape *tape, int ndim, const int64_t *shape, bool zero);
/* Same shape as `like`. */
mmrec_tensor *mmrec__tape_new_like(mmrec_tape *tape, const mmrec_tensor *like, bool zero);
/* A header on the tape viewing `data` (no copy), e.g. a reshape. */
mmrec_tensor *mmrec__tape_view(mmrec_tape *tape, float *data, int ndim, const int64_t *shape);

/* Records a node producing `out` from `in`, with a zeroed workspace of
 * ctx_size bytes; marks `out` as requiring a gradient. NULL on OOM. Call
 * only when mmrec__tape_wants_grad() is true. */
mmrec__node *mmrec__tape_record(mmrec_tape *tape, const char *name, mmrec__backward_fn backward,
                                mmrec_tensor *out, mmrec_tensor *const *in, int n_in,
                                size_t ctx_size);

/* Gradient buffer of `t` for accumulation: a parameter's model-owned
 * buffer, or a zeroed arena buffer allocated on first use. NULL on OOM.
 * The caller may write anywhere in it: a row-sparse parameter's next
 * optimizer step becomes a dense one. */
float *mmrec__grad(mmrec_tape *tape, mmrec_tensor *t);
/* The same buffer for a writer that adds only into rows it marks with
 * mmrec__param_touch_row (the row gather): the step stays row-sparse. */
float *mmrec__grad_rows(mmrec_tape *tape, mmrec_tensor *t);

/* Reports OOM after rolling the tape back to `mark`. */
mmrec_status mmrec__tape_oom(mmrec_tape *tape, mmrec__tape_mark mark, const char *func);

/* A copy of `size` bytes of a borrowed caller array (ids, weights) in the
 * arena, for a backward that reads it after the call returns; NULL on OOM. */
void *mmrec__tape_copy(mmrec_tape *tape, const void *src, size_t size);

/* ---- the common shape of an op ----
 * An op validates its arguments (MMREC_CHECK_OP*), then mmrec__op_begin
 * marks the tape, makes the output and, when the tape records and an input
 * needs a gradient, records one node whose workspace starts as a copy of
 * the op's context; then the op computes. */
typedef struct mmrec__op {
    const char *func;             /* the public function, for messages */
    const char *name;             /* the node's name */
    mmrec__backward_fn backward;
    mmrec_tensor *const *in;      /* the inputs the node reads */
    int n_in;
    int n_diff;                   /* the first n_diff inputs are
                                     differentiated (0: all n_in) */
    const void *ctx;              /* copied into the node's workspace, or
                                     NULL for a zeroed one */
    size_t ctx_size;
} mmrec__op;

/* Marks the tape (*mark_out, may be NULL), makes the output [ndim, shape]
 * (zeroed when `zero`) into *y_out and records the node into *node_out
 * (NULL when nothing is recorded; node_out may be NULL). On OOM the tape is
 * rolled back, the error set for op->func, and MMREC_ENOMEM returned. */
mmrec_status mmrec__op_begin(mmrec_tape *tape, const mmrec__op *op, int ndim,
                             const int64_t *shape, bool zero, mmrec_tensor **y_out,
                             mmrec__node **node_out, mmrec__tape_mark *mark_out) MMREC__WUR;

/* The end of an op, after it computed its output `y`: in check-finite
 * mode (core.h), a NaN or infinity in y rolls the tape back to `mark` (the
 * one mmrec__op_begin returned) and gives MMREC_ENUMERIC naming op->func,
 * the node and the first bad index. MMREC_OK otherwise; free when the mode
 * is off. */
mmrec_status mmrec__op_end_check(mmrec_tape *tape, const char *func, const char *name,
                                 const mmrec_tensor *y, mmrec__tape_mark mark,
                                 bool allow_minus_inf) MMREC__WUR;
static inline mmrec_status mmrec__op_end(mmrec_tape *tape, const mmrec__op *op,
                                         const mmrec_tensor *y, mmrec__tape_mark mark) {
    if (MMREC__UNLIKELY(mmrec__check_finite_on()))
        return mmrec__op_end_check(tape, op->func, op->name, y, mark, false);
    return MMREC_OK;
}
/* The same for an output where -inf is a value (a masked log-softmax's
 * removed positions): only NaN and +inf fail. */
static inline mmrec_status mmrec__op_end_masked(mmrec_tape *tape, const mmrec__op *op,
                                                const mmrec_tensor *y, mmrec__tape_mark mark) {
    if (MMREC__UNLIKELY(mmrec__check_finite_on()))
        return mmrec__op_end_check(tape, op->func, op->name, y, mark, true);
    return MMREC_OK;
}

/* The argument checks an op starts with: the tape, its input tensors (each
 * of the tape or of none; named in messages as in the source), and the
 * output pointer. */
#define MMREC_CHECK_OP1(tape, x, out)                                          \
    do {                                                                       \
        MMREC_CHECK_TAPE(tape);                                                \
        MMREC_CHECK_TENSOR_ON(x, tape);                                        \
        MMREC_CHECK_NULL(out);                                                 \
    } while (0)
#define MMREC_CHECK_OP2(tape, a, b, out)                                       \
    do {                                                                       \
        MMREC_CHECK_TAPE(tape);                                                \
        MMREC_CHECK_TENSOR_ON(a, tape);                                        \
        MMREC_CHECK_TENSOR_ON(b, tape);                                        \
        MMREC_CHECK_NULL(out);                                                 \
    } while (0)

#endif
