/* Layer normalization over the last dim (biased variance) with optional
 * affine weight and bias. Reference: torch.nn.functional.layer_norm. */
#include "ops_internal.h"

#include <math.h>

MMREC__SIMD_CLONES
void mmrec__layer_norm_rows(const float *x, const float *w, const float *b, float eps,
                            size_t rows, size_t n, float *y, float *mean, float *rstd) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        float sum = 0.0f;
        for (size_t j = 0; j < n; j++) sum += xr[j];
        float mu = sum / (float)n, var = 0.0f;
        for (size_t j = 0; j < n; j++) {
            float d = xr[j] - mu;
            var += d * d;
        }
        float rs = 1.0f / sqrtf(var / (float)n + eps);
        mean[r] = mu;
        rstd[r] = rs;
        for (size_t j = 0; j < n; j++) {
            float v = (xr[j] - mu) * rs;
            if (w) v *= w[j];
            if (b) v += b[j];
            yr[j] = v;
        }
    }
}

MMREC__SIMD_CLONES
void mmrec__layer_norm_rows_backward(const float *x, const float *w, const float *mean,
                                     const float *rstd, const float *dy, size_t rows, size_t n,
                                     float *dx, float *dw, float *db) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n, *dyr = dy + r * n;
        float mu = mean[r], rs = rstd[r];
        if (dw || db)
            for (size_t j = 0; j < n; j++) {
                if (dw) dw[j] += dyr[j] * (xr[j] - mu) * rs;
                if (db) db[j] += dyr[j];
            }
        if (dx == NULL) continue;
        float sg = 0.0f, sgx = 0.0f;
        for (size_t j = 0; j < n; j++) {
            float g = w ? dyr[j] * w[j] : dyr[j];
            sg += g;
            sgx += g * (xr[j] - mu) * rs;
        }
        float mg = sg / (float)n, mgx = sgx / (float)n;
        float *dxr = dx + r * n;
        for (size_t j = 0; j < n; j++) {
            float g = w ? dyr[j] * w[j] : dyr[j];
            dxr[j] += rs * (g - mg - (xr[j] - mu) * rs * mgx);
        }
    }
}

/* Rows are split over the pool in chunks of at least this many elements. */
#define MMREC__LN_GRAIN 8192

typedef struct mmrec__ln_job {
    const float *x, *w, *b, *dy;
    float eps;
    size_t n;
    float *y, *mean, *rstd, *dx;
} mmrec__ln_job;

static void mmrec__ln_forward_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__ln_job *j = ctx;
    mmrec__layer_norm_rows(j->x + lo * j->n, j->w, j->b, j->eps, hi - lo, j->n, j->y + lo * j->n,
                           j->mean + lo, j->rstd + lo);
}

static void mmrec__ln_dx_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__ln_job *j = ctx;
    mmrec__layer_norm_rows_backward(j->x + lo * j->n, j->w, j->mean + lo, j->rstd + lo,
                                    j->dy + lo * j->n, hi - lo, j->n, j->dx + lo * j->n, NULL,
                                    NULL);
}


typedef struct mmrec__ln_ctx {
    float *mean, *rstd; /* per row, arena */
    bool has_w, has_b;
} mmrec__ln_ctx;

static mmrec_status mmrec__layer_norm_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__ln_ctx *c = node->ctx;
    mmrec_tensor *x = node->in[0];
    mmrec_tensor *w = c->has_w ? node->in[1] : NULL;
    mmrec_tensor *b = c->has_b ? node->in[c->has_w ? 2 : 1] : NULL;
    float *dx = NULL, *dw = NULL, *db = NULL;
    if (mmrec__requires_grad(x) && (dx = mmrec__grad(tape, x)) == NULL) return MMREC_ENOMEM;
    if (w && mmrec__requires_grad(w) && (dw = mmrec__grad(tape, w)) == NULL) return MMREC_ENOMEM;
    if (b && mmrec__requires_grad(b) && (db = mmrec__grad(tape, b)) == NULL) return MMREC_ENOMEM;
    size_t rows = mmrec__rows(x), n = (size_t)mmrec__last_dim(x);
    const float *wd = w ? w->data : NULL;
    if (dx) {
        mmrec__ln_job job = {x->data, wd, NULL, node->out->grad, 0.0f, n,
                             NULL, c->mean, c->rstd, dx};
        mmrec__parallel_for(rows, mmrec__parallel_parts(rows, mmrec__grain(n, MMREC__LN_GRAIN)),
                            mmrec__ln_dx_chunk, &job);
    }
    if (dw || db)
        mmrec__layer_norm_rows_backward(x->data, wd, c->mean, c->rstd, node->out->grad, rows, n,
                                        NULL, dw, db);
    return MMREC_OK;
}

mmrec_status mmrec_layer_norm(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor *weight,
                              mmrec_tensor *bias, float eps, mmrec_tensor **out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(x, tape);
    if (weight) MMREC_CHECK_TENSOR_ON(weight, tape);
    if (bias) MMREC_CHECK_TENSOR_ON(bias, tape);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(!(eps > 0.0f) || !isfinite(eps), MMREC_EINVAL, "eps is %g, must be > 0",
                  (double)eps);
    int64_t n = mmrec__last_dim(x);
    if (weight && (weight->ndim != 1 || weight->shape[0] != n))
        MMREC_FAIL_SHAPE2("weight must be 1-D of x's last dim", x, weight);
    if (bias && (bias->ndim != 1 || bias->shape[0] != n))
        MMREC_FAIL_SHAPE2("bias must be 1-D of x's last dim", x, bias);

    size_t rows = mmrec__rows(x);
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_tensor *y = mmrec__tape_new_like(tape, x, false);
    if (y == NULL) return mmrec__tape_oom(tape, mark, __func__);
    mmrec_tensor *in[3];
    int n_in = 0;
    in[n_in++] = x;
    if (weight) in[n_in++] = weight;
    if (bias) in[n_in++] = bias;
    mmrec__ln_ctx *c = NULL;
    float *mean, *rstd;
    if (mmrec__tape_wants_grad(tape, in, n_in)) {
        mmrec__node *node = mmrec__tape_record(tape, "layer_norm", mmrec__layer_norm_backward, y,
                                               in, n_in, sizeof *c);
        if (node == NULL) return mmrec__tape_oom(tape, mark, __func__);
        c = node->ctx;
        c->has_w = weight != NULL;
        c->has_b = bias != NULL;
    }
    mean = mmrec__tape_alloc(tape, 2 * rows * sizeof(float));
    if (mean == NULL) return mmrec__tape_oom(tape, mark, __func__);
    rstd = mean + rows;
    if (c) {
        c->mean = mean;
        c->rstd = rstd;
    }
    mmrec__ln_job job = {x->data, weight ? weight->data : NULL, bias ? bias->data : NULL,
                         NULL, eps, (size_t)n, y->data, mean, rstd, NULL};
    mmrec__parallel_for(rows, mmrec__parallel_parts(rows, mmrec__grain((size_t)n, MMREC__LN_GRAIN)),
                        mmrec__ln_forward_chunk,
                        &job);
    *out = y;
    return MMREC_OK;
}
