/* Matrix product over the last two dims, batched or with a shared 2-D
 * operand; forward and backward through the one sgemm wrapper.
 * Reference: torch.matmul (tests/golden/make_golden.py::matmul). */
#include "ops_internal.h"

typedef struct mmrec__matmul_ctx {
    bool ta, tb;
    size_t batch, m, n, k;
    size_t stride_a, stride_b; /* elements between batch entries (0 = shared) */
} mmrec__matmul_ctx;

static mmrec_status mmrec__matmul_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__matmul_ctx *c = node->ctx;
    mmrec_tensor *a = node->in[0], *b = node->in[1];
    const float *dc = node->out->grad;
    size_t lda = c->ta ? c->m : c->k, ldb = c->tb ? c->k : c->n;
    if (mmrec__requires_grad(a)) {
        float *da = mmrec__grad(tape, a);
        if (da == NULL) return MMREC_ENOMEM;
        for (size_t i = 0; i < c->batch; i++) {
            const float *bi = b->data + i * c->stride_b;
            const float *dci = dc + i * c->m * c->n;
            float *dai = da + i * c->stride_a;
            if (!c->ta) /* dA = dC op(B)^T */
                mmrec__sgemm(false, !c->tb, c->m, c->k, c->n, 1.0f, dci, c->n, bi, ldb, 1.0f,
                             dai, lda);
            else /* dA_stored = op(B) dC^T */
                mmrec__sgemm(c->tb, true, c->k, c->m, c->n, 1.0f, bi, ldb, dci, c->n, 1.0f, dai,
                             lda);
        }
    }
    if (mmrec__requires_grad(b)) {
        float *db = mmrec__grad(tape, b);
        if (db == NULL) return MMREC_ENOMEM;
        if (c->stride_b == 0 && c->stride_a != 0 && !c->ta && !c->tb) {
            /* Shared weight: one product over all batch rows. */
            mmrec__sgemm(true, false, c->k, c->n, c->batch * c->m, 1.0f, a->data, c->k, dc, c->n,
                         1.0f, db, c->n);
            return MMREC_OK;
        }
        for (size_t i = 0; i < c->batch; i++) {
            const float *ai = a->data + i * c->stride_a;
            const float *dci = dc + i * c->m * c->n;
            float *dbi = db + i * c->stride_b;
            if (!c->tb) /* dB = op(A)^T dC */
                mmrec__sgemm(!c->ta, false, c->k, c->n, c->m, 1.0f, ai, lda, dci, c->n, 1.0f, dbi,
                             ldb);
            else /* dB_stored = dC^T op(A) */
                mmrec__sgemm(true, c->ta, c->n, c->k, c->m, 1.0f, dci, c->n, ai, lda, 1.0f, dbi,
                             ldb);
        }
    }
    return MMREC_OK;
}

mmrec_status mmrec_matmul(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b, uint32_t flags,
                          mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, a, b, out);
    MMREC_FAIL_IF(flags & ~(uint32_t)(MMREC_TRANS_A | MMREC_TRANS_B), MMREC_EINVAL,
                  "flags 0x%x has unknown bits", flags);
    MMREC_FAIL_IF(a->ndim < 2 || b->ndim < 2, MMREC_ESHAPE,
                  "a has %d dims and b %d, both need at least 2", a->ndim, b->ndim);
    mmrec__matmul_ctx c;
    c.ta = flags & MMREC_TRANS_A;
    c.tb = flags & MMREC_TRANS_B;
    int64_t a_rows = a->shape[a->ndim - 2], a_cols = a->shape[a->ndim - 1];
    int64_t b_rows = b->shape[b->ndim - 2], b_cols = b->shape[b->ndim - 1];
    c.m = (size_t)(c.ta ? a_cols : a_rows);
    c.k = (size_t)(c.ta ? a_rows : a_cols);
    size_t kb = (size_t)(c.tb ? b_cols : b_rows);
    c.n = (size_t)(c.tb ? b_rows : b_cols);
    if (c.k != kb) MMREC_FAIL_SHAPE2("inner dims differ", a, b);
    const mmrec_tensor *lead = a->ndim >= b->ndim ? a : b;
    if (a->ndim > 2 && b->ndim > 2) {
        if (a->ndim != b->ndim) MMREC_FAIL_SHAPE2("batch dims differ", a, b);
        for (int i = 0; i < a->ndim - 2; i++)
            if (a->shape[i] != b->shape[i]) MMREC_FAIL_SHAPE2("batch dims differ", a, b);
    }
    c.batch = lead->numel / (size_t)(lead->shape[lead->ndim - 2] * lead->shape[lead->ndim - 1]);
    c.stride_a = a->ndim > 2 ? c.m * c.k : 0;
    c.stride_b = b->ndim > 2 ? c.k * c.n : 0;

    int64_t shape[MMREC_MAX_DIMS];
    for (int i = 0; i < lead->ndim - 2; i++) shape[i] = lead->shape[i];
    shape[lead->ndim - 2] = (int64_t)c.m;
    shape[lead->ndim - 1] = (int64_t)c.n;

    mmrec_tensor *in[2] = {a, b}, *y;
    const mmrec__op op = {__func__, "matmul", mmrec__matmul_backward, in, 2, 0, &c, sizeof c};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, lead->ndim, shape, false, &y, NULL, &mark));
    size_t lda = c.ta ? c.m : c.k, ldb = c.tb ? c.k : c.n;
    if (c.stride_b == 0 && !c.ta) {
        /* Shared right operand: stack every batch's rows into one product. */
        mmrec__sgemm(false, c.tb, c.batch * c.m, c.n, c.k, 1.0f, a->data, lda, b->data, ldb, 0.0f,
                     y->data, c.n);
    } else {
        for (size_t i = 0; i < c.batch; i++)
            mmrec__sgemm(c.ta, c.tb, c.m, c.n, c.k, 1.0f, a->data + i * c.stride_a, lda,
                         b->data + i * c.stride_b, ldb, 0.0f, y->data + i * c.m * c.n, c.n);
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
