/* Softmax and log-softmax over the last dim with an optional broadcast mask.
 * Reference: torch.softmax / torch.log_softmax of x.masked_fill(mask == 0,
 * -inf) (tests/golden/make_golden.py). */
#include "ops_internal.h"

#include <math.h>

mmrec__row_lse mmrec__softmax_row(const float *x, const float *mask, size_t mask_stride,
                                  float *y, size_t n, bool log) {
    mmrec__row_lse lse = {-INFINITY, 0.0};
    for (size_t j = 0; j < n; j++) /* a kept NaN makes the max, and the row, NaN */
        if ((mask == NULL || mask[j * mask_stride] != 0.0f) && (x[j] > lse.max || isnan(x[j])))
            lse.max = x[j];
    if (lse.max == -INFINITY) { /* every position removed */
        for (size_t j = 0; j < n; j++) y[j] = log ? -INFINITY : 0.0f;
        return lse;
    }
    double sum = 0.0;
    for (size_t j = 0; j < n; j++) {
        bool keep = mask == NULL || mask[j * mask_stride] != 0.0f;
        float e = keep ? expf(x[j] - lse.max) : 0.0f;
        y[j] = e;
        sum += e;
    }
    lse.log_sum = log1p(sum - 1.0); /* sum >= 1: the maximum contributes exp(0) */
    if (log) {
        for (size_t j = 0; j < n; j++)
            y[j] = (mask == NULL || mask[j * mask_stride] != 0.0f)
                       ? (float)mmrec__log_softmax_at(lse, x[j])
                       : -INFINITY;
    } else {
        float inv = (float)(1.0 / sum);
        for (size_t j = 0; j < n; j++) y[j] *= inv;
    }
    return lse;
}

void mmrec__softmax_row_backward(const float *y, const float *dy, float *dx, size_t n,
                                 bool log) {
    double s = 0.0;
    if (log) {
        for (size_t j = 0; j < n; j++) s += dy[j];
        float sf = (float)s;
        for (size_t j = 0; j < n; j++)
            if (y[j] != -INFINITY) dx[j] += dy[j] - expf(y[j]) * sf;
    } else {
        for (size_t j = 0; j < n; j++) s += (double)dy[j] * y[j];
        float sf = (float)s;
        for (size_t j = 0; j < n; j++) dx[j] += y[j] * (dy[j] - sf);
    }
}

static mmrec_status mmrec__softmax_backward(mmrec__node *node, mmrec_tape *tape) {
    bool log = *(const bool *)node->ctx;
    mmrec_tensor *x = node->in[0], *y = node->out;
    float *dx = mmrec__grad(tape, x);
    if (dx == NULL) return MMREC_ENOMEM;
    size_t n = (size_t)mmrec__last_dim(x), rows = mmrec__rows(x);
    for (size_t r = 0; r < rows; r++)
        mmrec__softmax_row_backward(y->data + r * n, y->grad + r * n, dx + r * n, n, log);
    return MMREC_OK;
}

static mmrec_status mmrec__softmax_op(const char *func, bool log, mmrec_tape *tape,
                                      mmrec_tensor *x, mmrec_tensor *mask, mmrec_tensor **out) {
    MMREC_FORWARD_IF(mmrec__tape_check(func, tape));
    MMREC_FORWARD_IF(mmrec__tensor_check_on(func, "x", x, tape));
    if (mask != NULL) MMREC_FORWARD_IF(mmrec__tensor_check_on(func, "mask", mask, tape));
    if (out == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'out' is NULL");
    mmrec__bcast bc;
    if (mask != NULL) {
        bool ok = mmrec__bcast_init(&bc, x, mask) && bc.ndim == x->ndim;
        for (int d = 0; ok && d < x->ndim; d++) ok = bc.shape[d] == x->shape[d];
        if (!ok) {
            char sx[64], sm[64];
            return mmrec__set_error(MMREC_ESHAPE, func,
                                    "mask does not broadcast to x: x is %s, mask is %s",
                                    mmrec__shape_str(x, sx, sizeof sx),
                                    mmrec__shape_str(mask, sm, sizeof sm));
        }
    }
    mmrec_tensor *y;
    const mmrec__op op = {func, log ? "log_softmax" : "softmax", mmrec__softmax_backward, &x, 1,
                          0, &log, sizeof log};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x->ndim, x->shape, false, &y, NULL, &mark));
    if (mask == NULL) {
        size_t n = (size_t)mmrec__last_dim(x), rows = mmrec__rows(x);
        for (size_t r = 0; r < rows; r++)
            mmrec__softmax_row(x->data + r * n, NULL, 0, y->data + r * n, n, log);
    } else {
        const float *xd = x->data, *md = mask->data;
        float *yd = y->data;
        MMREC__BCAST_LOOP(&bc, mmrec__softmax_row(xd + oa, md + ob, s3b, yd + oy, n3, log));
    }
    if (log && mask != NULL)
        MMREC_FORWARD_IF(mmrec__op_end_masked(tape, &op, y, mark));
    else
        MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

mmrec_status mmrec_softmax(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor *mask,
                           mmrec_tensor **out) {
    return mmrec__softmax_op(__func__, false, tape, x, mask, out);
}

mmrec_status mmrec_log_softmax(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor *mask,
                               mmrec_tensor **out) {
    return mmrec__softmax_op(__func__, true, tape, x, mask, out);
}
