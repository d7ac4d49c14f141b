/* Row gather from a 2-D table with a row-sparse backward.
 * Reference: torch.nn.functional.embedding / table[ids]. */
#include "ops_internal.h"
#include "../model/model_internal.h"

#include <string.h>

typedef struct mmrec__gather_ctx {
    int64_t *ids; /* copied into the arena: the caller's array is borrowed */
    size_t n;
} mmrec__gather_ctx;

static mmrec_status mmrec__gather_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__gather_ctx *c = node->ctx;
    mmrec_tensor *table = node->in[0];
    float *dt = mmrec__grad_rows(tape, table);
    if (dt == NULL) return MMREC_ENOMEM;
    size_t dim = (size_t)table->shape[1];
    mmrec__param *p = table->param;
    bool sparse = p != NULL && p->sparse;
    for (size_t i = 0; i < c->n; i++) {
        int64_t row = c->ids[i];
        float *d = dt + (size_t)row * dim;
        const float *g = node->out->grad + i * dim;
        for (size_t j = 0; j < dim; j++) d[j] += g[j];
        if (sparse) mmrec__param_touch_row(p, row);
    }
    return MMREC_OK;
}

/* The forward's copies are split over the pool in parts of at least this
 * many floats. */
#define MMREC__GATHER_GRAIN 65536

typedef struct mmrec__gather_job {
    const float *table;
    const int64_t *ids;
    size_t dim;
    float *y;
} mmrec__gather_job;

static void mmrec__gather_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__gather_job *j = ctx;
    (void)part;
    for (size_t i = lo; i < hi; i++)
        memcpy(j->y + i * j->dim, j->table + (size_t)j->ids[i] * j->dim, j->dim * sizeof(float));
}

mmrec_status mmrec__gather_rows(const char *func, mmrec_tape *tape, mmrec_tensor *table,
                                const int64_t *ids, size_t n, mmrec_tensor **out) {
    MMREC_FORWARD_IF(mmrec__tape_check(func, tape));
    MMREC_FORWARD_IF(mmrec__tensor_check_on(func, "table", table, tape));
    MMREC_CHECK_NULL_FOR(func, out);
    MMREC_CHECK_NULL_FOR(func, ids);
    MMREC_FAIL_IF_FOR(func, table->ndim != 2, MMREC_ESHAPE, "table has %d dims, must be 2-D",
                      table->ndim);
    MMREC_FAIL_IF_FOR(func, n < 1 || n > (size_t)INT64_MAX, MMREC_EINVAL,
                      "n is %zu, must be >= 1", n);
    int64_t rows = table->shape[0];
    for (size_t i = 0; i < n; i++)
        MMREC_FAIL_IF_FOR(func, ids[i] < 0 || ids[i] >= rows, MMREC_ERANGE,
                          "ids[%zu] is %lld, outside [0, %lld)", i, (long long)ids[i],
                          (long long)rows);
    size_t dim = (size_t)table->shape[1];
    int64_t shape[2] = {(int64_t)n, (int64_t)dim};
    mmrec_tensor *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__op op = {func, "gather_rows", mmrec__gather_backward, &table, 1, 0,
                          NULL, sizeof(mmrec__gather_ctx)};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 2, shape, false, &y, &node, &mark));
    if (node) {
        mmrec__gather_ctx *c = node->ctx;
        c->ids = mmrec__tape_copy(tape, ids, n * sizeof *ids);
        c->n = n;
        if (c->ids == NULL) return mmrec__tape_oom(tape, mark, func);
    }
    mmrec__gather_job j = {table->data, ids, dim, y->data};
    mmrec__parallel_for(n, mmrec__parallel_parts(n, mmrec__grain(dim, MMREC__GATHER_GRAIN)),
                        mmrec__gather_chunk, &j);
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

mmrec_status mmrec_gather_rows(mmrec_tape *tape, mmrec_tensor *table, const int64_t *ids,
                               size_t n, mmrec_tensor **out) {
    return mmrec__gather_rows(__func__, tape, table, ids, n, out);
}
