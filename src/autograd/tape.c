/* Tape: arena-backed step record, reverse-mode walk, O(1) reset. */
#include "autograd_internal.h"
#include "../model/model_internal.h"

#include <math.h>
#include <string.h>

mmrec_status mmrec__tape_check(const char *func, const mmrec_tape *tape) {
    if (tape == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'tape' is NULL");
    if (tape->magic != MMREC__TAPE_MAGIC)
        return mmrec__set_error(MMREC_EINVAL, func, "argument 'tape' is not a tape");
    return MMREC_OK;
}

mmrec_status mmrec_tape_create(mmrec_tape **out) {
    MMREC_CHECK_NULL(out);
    mmrec_tape *tape = mmrec__calloc(1, sizeof *tape);
    MMREC_FAIL_IF(tape == NULL, MMREC_ENOMEM, "out of memory");
    tape->magic = MMREC__TAPE_MAGIC;
    tape->mode = MMREC_TAPE_TRAIN;
    tape->gen = 1;
    mmrec__arena_init(&tape->data);
    mmrec__arena_init(&tape->headers[0]);
    mmrec__arena_init(&tape->headers[1]);
    mmrec__rng_seed(&tape->rng, 0);
    *out = tape;
    return MMREC_OK;
}

static void mmrec__tape_release_models(mmrec_tape *tape, mmrec__retained *keep) {
    while (tape->retained != keep) {
        mmrec__retained *r = tape->retained;
        tape->retained = r->next;
        mmrec__model_release(r->model);
    }
}

void mmrec_tape_destroy(mmrec_tape *tape) {
    if (tape == NULL || tape->magic != MMREC__TAPE_MAGIC) return;
    mmrec__tape_release_models(tape, NULL);
    mmrec__arena_free(&tape->data);
    mmrec__arena_free(&tape->headers[0]);
    mmrec__arena_free(&tape->headers[1]);
    tape->magic = 0;
    mmrec__free(tape);
}

void mmrec_tape_reset(mmrec_tape *tape) {
    if (tape == NULL || tape->magic != MMREC__TAPE_MAGIC) return;
    mmrec__tape_release_models(tape, NULL);
    tape->gen++;
    tape->tail = NULL;
    tape->n_nodes = 0;
    mmrec__arena_reset(&tape->data);
    /* Headers of the step just ended stay readable (and stale) during the
     * next step; the other half is rewound for it. */
    mmrec__arena_reset(&tape->headers[tape->gen & 1]);
}

mmrec_status mmrec_tape_set_mode(mmrec_tape *tape, mmrec_tape_mode mode) {
    MMREC_CHECK_TAPE(tape);
    MMREC_FAIL_IF(mode != MMREC_TAPE_TRAIN && mode != MMREC_TAPE_INFERENCE, MMREC_EINVAL,
                  "mode is %d, expected MMREC_TAPE_TRAIN or MMREC_TAPE_INFERENCE", (int)mode);
    MMREC_FAIL_IF(mode != tape->mode && tape->n_nodes > 0, MMREC_ESTATE,
                  "the tape holds %zu recorded operations; reset it before changing mode",
                  tape->n_nodes);
    tape->mode = mode;
    return MMREC_OK;
}

mmrec_status mmrec_tape_get_mode(const mmrec_tape *tape, mmrec_tape_mode *out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_NULL(out);
    *out = tape->mode;
    return MMREC_OK;
}

mmrec_status mmrec_tape_seed(mmrec_tape *tape, uint64_t seed) {
    MMREC_CHECK_TAPE(tape);
    mmrec__rng_seed(&tape->rng, seed);
    return MMREC_OK;
}

mmrec_status mmrec_tape_generation(const mmrec_tape *tape, uint64_t *out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_NULL(out);
    *out = tape->gen;
    return MMREC_OK;
}

mmrec_status mmrec_tape_memory(const mmrec_tape *tape, size_t *capacity_out,
                               size_t *high_water_out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_NULL(capacity_out);
    MMREC_CHECK_NULL(high_water_out);
    *capacity_out = tape->data.capacity + tape->headers[0].capacity + tape->headers[1].capacity;
    *high_water_out = tape->data.high_water + tape->headers[0].high_water +
                      tape->headers[1].high_water;
    return MMREC_OK;
}

/* ---- internal helpers used by every op ---- */

mmrec__tape_mark mmrec__tape_mark_get(mmrec_tape *tape) {
    mmrec__tape_mark m;
    m.data = mmrec__arena_mark_get(&tape->data);
    m.header = mmrec__arena_mark_get(&tape->headers[tape->gen & 1]);
    m.tail = tape->tail;
    m.n_nodes = tape->n_nodes;
    m.retained = tape->retained;
    m.rng = tape->rng;
    return m;
}

void mmrec__tape_rollback(mmrec_tape *tape, mmrec__tape_mark mark) {
    mmrec__arena_rollback(&tape->data, mark.data);
    mmrec__arena_rollback(&tape->headers[tape->gen & 1], mark.header);
    tape->tail = mark.tail;
    tape->n_nodes = mark.n_nodes;
    tape->rng = mark.rng;
    mmrec__tape_release_models(tape, mark.retained);
}

mmrec_status mmrec__tape_oom(mmrec_tape *tape, mmrec__tape_mark mark, const char *func) {
    mmrec__tape_rollback(tape, mark);
    return mmrec__set_error(MMREC_ENOMEM, func, "out of memory growing the tape arena");
}

void *mmrec__tape_copy(mmrec_tape *tape, const void *src, size_t size) {
    void *p = mmrec__arena_alloc(&tape->data, size);
    if (p && size) memcpy(p, src, size);
    return p;
}

mmrec_status mmrec__op_begin(mmrec_tape *tape, const mmrec__op *op, int ndim,
                             const int64_t *shape, bool zero, mmrec_tensor **y_out,
                             mmrec__node **node_out, mmrec__tape_mark *mark_out) {
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec__node *node = NULL;
    mmrec_tensor *y = mmrec__tape_new(tape, ndim, shape, zero);
    if (y == NULL) return mmrec__tape_oom(tape, mark, op->func);
    if (mmrec__tape_wants_grad(tape, op->in, op->n_diff ? op->n_diff : op->n_in)) {
        node = mmrec__tape_record(tape, op->name, op->backward, y, op->in, op->n_in,
                                  op->ctx_size);
        if (node == NULL) return mmrec__tape_oom(tape, mark, op->func);
        if (op->ctx) memcpy(node->ctx, op->ctx, op->ctx_size);
    }
    *y_out = y;
    if (node_out) *node_out = node;
    if (mark_out) *mark_out = mark;
    return MMREC_OK;
}

mmrec_status mmrec__op_end_check(mmrec_tape *tape, const char *func, const char *name,
                                 const mmrec_tensor *y, mmrec__tape_mark mark,
                                 bool allow_minus_inf) {
    size_t i = mmrec__first_nonfinite(y->data, y->numel);
    while (allow_minus_inf && i < y->numel && y->data[i] == -INFINITY) {
        size_t next = mmrec__first_nonfinite(y->data + i + 1, y->numel - i - 1);
        i += 1 + next;
    }
    if (i == y->numel) return MMREC_OK;
    float v = y->data[i];
    mmrec__tape_rollback(tape, mark);
    return mmrec__set_error(MMREC_ENUMERIC, func,
                            "output of '%s' has %g at index %zu (check-finite mode)", name,
                            (double)v, i);
}

bool mmrec__tape_wants_grad(const mmrec_tape *tape, mmrec_tensor *const *in, int n_in) {
    if (tape->mode != MMREC_TAPE_TRAIN) return false;
    for (int i = 0; i < n_in; i++)
        if (in[i] && mmrec__requires_grad(in[i])) return true;
    return false;
}

void *mmrec__tape_alloc(mmrec_tape *tape, size_t size) {
    return mmrec__arena_alloc(&tape->data, size);
}

/* Zero-fills of at least this many bytes are split over the pool (the
 * gradient buffers of a step's large activations). */
#define MMREC__CALLOC_SPLIT ((size_t)1 << 20)

static void mmrec__zero_chunk(void *ctx, size_t lo, size_t hi, int part) {
    (void)part;
    memset((char *)ctx + lo, 0, hi - lo);
}

void *mmrec__tape_calloc(mmrec_tape *tape, size_t size) {
    void *p = mmrec__arena_alloc(&tape->data, size);
    if (p == NULL) return NULL;
    if (size >= MMREC__CALLOC_SPLIT)
        mmrec__parallel_for(size, mmrec__parallel_parts(size, MMREC__CALLOC_SPLIT / 2),
                            mmrec__zero_chunk, p);
    else
        memset(p, 0, size);
    return p;
}

mmrec_tensor *mmrec__tape_view(mmrec_tape *tape, float *data, int ndim, const int64_t *shape) {
    mmrec_tensor *t = mmrec__arena_alloc(&tape->headers[tape->gen & 1], sizeof *t);
    if (t == NULL) return NULL;
    memset(t, 0, sizeof *t);
    t->magic = MMREC__TENSOR_MAGIC;
    t->flags = MMREC__T_ON_TAPE;
    t->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    t->numel = numel;
    t->data = data;
    t->tape = tape;
    t->gen = tape->gen;
    return t;
}

mmrec_tensor *mmrec__tape_new(mmrec_tape *tape, int ndim, const int64_t *shape, bool zero) {
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= (size_t)shape[i];
    float *data = zero ? mmrec__tape_calloc(tape, numel * sizeof(float))
                       : mmrec__tape_alloc(tape, numel * sizeof(float));
    if (data == NULL) return NULL;
    return mmrec__tape_view(tape, data, ndim, shape);
}

mmrec_tensor *mmrec__tape_new_like(mmrec_tape *tape, const mmrec_tensor *like, bool zero) {
    return mmrec__tape_new(tape, like->ndim, like->shape, zero);
}

static bool mmrec__tape_retain(mmrec_tape *tape, struct mmrec_model *model) {
    for (mmrec__retained *r = tape->retained; r; r = r->next)
        if (r->model == model) return true;
    mmrec__retained *r = mmrec__tape_alloc(tape, sizeof *r);
    if (r == NULL) return false;
    r->model = model;
    r->next = tape->retained;
    tape->retained = r;
    mmrec__model_retain(model);
    return true;
}

mmrec__node *mmrec__tape_record(mmrec_tape *tape, const char *name, mmrec__backward_fn backward,
                                mmrec_tensor *out, mmrec_tensor *const *in, int n_in,
                                size_t ctx_size) {
    mmrec__node *node = mmrec__tape_alloc(tape, sizeof *node);
    mmrec_tensor **ins = mmrec__tape_alloc(tape, (size_t)(n_in > 0 ? n_in : 1) * sizeof *ins);
    void *ctx = ctx_size ? mmrec__tape_calloc(tape, ctx_size) : NULL;
    if (node == NULL || ins == NULL || (ctx_size && ctx == NULL)) return NULL;
    for (int i = 0; i < n_in; i++) {
        ins[i] = in[i];
        if (in[i] && in[i]->param && mmrec__requires_grad(in[i]) &&
            !mmrec__tape_retain(tape, in[i]->param->model))
            return NULL;
    }
    node->prev = tape->tail;
    node->backward = backward;
    node->name = name;
    node->out = out;
    node->in = ins;
    node->n_in = n_in;
    node->ctx = ctx;
    out->flags |= MMREC__T_REQUIRES_GRAD;
    tape->tail = node;
    tape->n_nodes++;
    return node;
}

float *mmrec__grad_rows(mmrec_tape *tape, mmrec_tensor *t) {
    if (t->grad == NULL) t->grad = mmrec__tape_calloc(tape, t->numel * sizeof(float));
    return t->grad;
}

float *mmrec__grad(mmrec_tape *tape, mmrec_tensor *t) {
    /* A dense write into a row-sparse table: its next step is dense. */
    if (t->param && t->param->sparse) t->param->dense_grad = true;
    return mmrec__grad_rows(tape, t);
}

/* ---- backward ---- */

/* Check-finite mode: the gradients node `n`'s backward wrote (those of its
 * inputs; a parameter's whole buffer, accumulated over the walk so far)
 * must be finite, else MMREC_ENUMERIC naming the node and the input. */
static mmrec_status mmrec__backward_check(const mmrec__node *n, const char *func) {
    for (int k = 0; k < n->n_in; k++) {
        const mmrec_tensor *t = n->in[k];
        if (t == NULL || t->grad == NULL) continue;
        size_t i = mmrec__first_nonfinite(t->grad, t->numel);
        if (i < t->numel)
            return mmrec__set_error(MMREC_ENUMERIC, func,
                                    "backward of '%s' gave %g at index %zu of the gradient of "
                                    "its input %d%s%s%s (check-finite mode)",
                                    n->name, (double)t->grad[i], i, k,
                                    t->param ? " (parameter '" : "",
                                    t->param ? t->param->name : "", t->param ? "')" : "");
    }
    return MMREC_OK;
}

static mmrec_status mmrec__backward_run(mmrec_tape *tape, mmrec_tensor *out, const float *seed,
                                        const char *func) {
    if (tape->mode != MMREC_TAPE_TRAIN)
        return mmrec__set_error(MMREC_ESTATE, func, "the tape is in inference mode");
    if (out->tape != tape)
        return mmrec__set_error(MMREC_EINVAL, func, "the output tensor is not of this tape");
    if (!mmrec__requires_grad(out))
        return mmrec__set_error(MMREC_ESTATE, func,
                                "nothing the output depends on needs a gradient");
    /* Gradients of intermediate results start from zero on every walk, so a
     * second walk adds exactly one more contribution to leaves and params. */
    for (mmrec__node *n = tape->tail; n; n = n->prev) n->out->grad = NULL;
    float *g = mmrec__grad(tape, out);
    if (g == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    for (size_t i = 0; i < out->numel; i++) g[i] += seed ? seed[i] : 1.0f;
    bool check = mmrec__check_finite_on();
    for (mmrec__node *n = tape->tail; n; n = n->prev) {
        if (n->out->grad == NULL) continue;
        mmrec_status s = n->backward(n, tape);
        if (s != MMREC_OK)
            return mmrec__set_error(s, func, "backward of '%s' failed: %s", n->name,
                                    mmrec_status_str(s));
        if (check) MMREC_FORWARD_IF(mmrec__backward_check(n, func));
    }
    return MMREC_OK;
}

mmrec_status mmrec_tape_backward(mmrec_tape *tape, mmrec_tensor *loss) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(loss, tape);
    MMREC_FAIL_IF(loss->numel != 1, MMREC_EINVAL,
                  "loss has %zu elements, expected 1 (use mmrec_tape_backward_from)", loss->numel);
    return mmrec__backward_run(tape, loss, NULL, __func__);
}

mmrec_status mmrec_tape_backward_from(mmrec_tape *tape, mmrec_tensor *out, const float *d_out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(out, tape);
    MMREC_CHECK_NULL(d_out);
    for (size_t i = 0; i < out->numel; i++)
        MMREC_FAIL_IF(!isfinite(d_out[i]), MMREC_ENUMERIC, "d_out[%zu] is %g", i,
                      (double)d_out[i]);
    return mmrec__backward_run(tape, out, d_out, __func__);
}

/* ---- public tensor constructors on the tape ---- */

mmrec_status mmrec_tape_tensor(mmrec_tape *tape, int ndim, const int64_t *shape, uint32_t flags,
                               mmrec_tensor **out) {
    size_t numel;
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_NULL(out);
    MMREC_FORWARD_IF(mmrec__shape_check(__func__, "shape", ndim, shape, &numel));
    MMREC_FAIL_IF(flags & ~(uint32_t)MMREC_TENSOR_REQUIRES_GRAD, MMREC_EINVAL,
                  "flags 0x%x: only MMREC_TENSOR_REQUIRES_GRAD is valid here", flags);
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_tensor *t = mmrec__tape_new(tape, ndim, shape, true);
    if (t == NULL) return mmrec__tape_oom(tape, mark, __func__);
    t->flags |= flags;
    *out = t;
    return MMREC_OK;
}

mmrec_status mmrec_tape_wrap(mmrec_tape *tape, float *data, int ndim, const int64_t *shape,
                             uint32_t flags, mmrec_tensor **out) {
    size_t numel;
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_NULL(data);
    MMREC_CHECK_NULL(out);
    MMREC_FORWARD_IF(mmrec__shape_check(__func__, "shape", ndim, shape, &numel));
    MMREC_FAIL_IF(flags & ~(uint32_t)(MMREC_TENSOR_READONLY | MMREC_TENSOR_REQUIRES_GRAD),
                  MMREC_EINVAL, "flags 0x%x has unknown bits", flags);
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_tensor *t = mmrec__tape_view(tape, data, ndim, shape);
    if (t == NULL) return mmrec__tape_oom(tape, mark, __func__);
    t->flags |= MMREC__T_WRAP | flags;
    *out = t;
    return MMREC_OK;
}
