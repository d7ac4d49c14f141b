/* Layer normalization over the last dim (biased variance) with optional
 * affine weight and bias. Reference: torch.nn.functional.layer_norm. */
#include "ops_internal.h"

#include <math.h>

/* (x - mean) * rstd with the mean as hi + lo, hi the float nearest it:
 * x - hi is exact for x near the mean, so a row far from 0 keeps its
 * spread's bits. */
static inline float mmrec__ln_xhat(float x, float hi, float lo, float rs) {
    return ((x - hi) - lo) * rs;
}

MMREC__SIMD_CLONES
void mmrec__layer_norm_rows(const float *x, const float *w, const float *b, float eps,
                            size_t rows, size_t n, float *y, double *mean, float *rstd) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        double mu = mmrec__sum_wide(xr, n) / (double)n;
        double acc[MMREC__LANES] = {0}; /* sum of (x - mu)^2, two-pass */
        size_t j = 0;
        for (; j + MMREC__LANES <= n; j += MMREC__LANES)
            for (size_t k = 0; k < MMREC__LANES; k++) {
                double d = (double)xr[j + k] - mu;
                acc[k] += d * d;
            }
        for (size_t k = 0; j + k < n; k++) {
            double d = (double)xr[j + k] - mu;
            acc[k] += d * d;
        }
        double var = mmrec__lanes_total(acc) / (double)n;
        float rs = (float)(1.0 / sqrt(var + (double)eps));
        float hi = (float)mu, lo = (float)(mu - (double)hi);
        mean[r] = mu;
        rstd[r] = rs;
        for (j = 0; j < n; j++) {
            float v = mmrec__ln_xhat(xr[j], hi, lo, rs);
            if (w) v *= w[j];
            if (b) v += b[j];
            yr[j] = v;
        }
    }
}

MMREC__SIMD_CLONES
void mmrec__layer_norm_rows_backward(const float *x, const float *w, const double *mean,
                                     const float *rstd, const float *dy, size_t rows, size_t n,
                                     float *dx, float *dw, float *db) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n, *dyr = dy + r * n;
        float rs = rstd[r], hi = (float)mean[r], lo = (float)(mean[r] - (double)hi);
        if (dw || db)
            for (size_t j = 0; j < n; j++) {
                if (dw) dw[j] += dyr[j] * mmrec__ln_xhat(xr[j], hi, lo, rs);
                if (db) db[j] += dyr[j];
            }
        if (dx == NULL) continue;
        /* g = dy * w: sums of g and g * xhat, in double lanes */
        double sg[MMREC__LANES] = {0}, sgx[MMREC__LANES] = {0};
        size_t j = 0;
        for (; j + MMREC__LANES <= n; j += MMREC__LANES)
            for (size_t k = 0; k < MMREC__LANES; k++) {
                float g = w ? dyr[j + k] * w[j + k] : dyr[j + k];
                sg[k] += (double)g;
                sgx[k] += (double)g * (double)mmrec__ln_xhat(xr[j + k], hi, lo, rs);
            }
        for (size_t k = 0; j + k < n; k++) {
            float g = w ? dyr[j + k] * w[j + k] : dyr[j + k];
            sg[k] += (double)g;
            sgx[k] += (double)g * (double)mmrec__ln_xhat(xr[j + k], hi, lo, rs);
        }
        float mg = (float)(mmrec__lanes_total(sg) / (double)n);
        float mgx = (float)(mmrec__lanes_total(sgx) / (double)n);
        float *dxr = dx + r * n;
        for (j = 0; j < n; j++) {
            float g = w ? dyr[j] * w[j] : dyr[j];
            dxr[j] += rs * (g - mg - mmrec__ln_xhat(xr[j], hi, lo, rs) * mgx);
        }
    }
}

/* Rows are split over the pool in chunks of at least this many elements. */
#define MMREC__LN_GRAIN 8192

typedef struct mmrec__ln_job {
    const float *x, *w, *b, *dy;
    float eps;
    size_t n;
    float *y, *rstd, *dx;
    double *mean;
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
    double *mean; /* per row, arena */
    float *rstd;
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
                             NULL, c->rstd, dx, c->mean};
        mmrec__parallel_for(rows, mmrec__parallel_parts(rows, mmrec__grain(n, MMREC__LN_GRAIN)),
                            mmrec__ln_dx_chunk, &job);
    }
    if (dw || db)
        mmrec__layer_norm_rows_backward(x->data, wd, c->mean, c->rstd, node->out->grad, rows, n,
                                        NULL, dw, db);
    return MMREC_OK;
}

mmrec_status mmrec__layer_norm(const char *func, mmrec_tape *tape, mmrec_tensor *x,
                               mmrec_tensor *weight, mmrec_tensor *bias, float eps,
                               mmrec_tensor **out) {
    MMREC_FORWARD_IF(mmrec__tape_check(func, tape));
    MMREC_FORWARD_IF(mmrec__tensor_check_on(func, "x", x, tape));
    if (weight) MMREC_FORWARD_IF(mmrec__tensor_check_on(func, "weight", weight, tape));
    if (bias) MMREC_FORWARD_IF(mmrec__tensor_check_on(func, "bias", bias, tape));
    MMREC_CHECK_NULL_FOR(func, out);
    MMREC_FAIL_IF_FOR(func, !(eps > 0.0f) || !isfinite(eps), MMREC_EINVAL,
                      "eps is %g, must be > 0", (double)eps);
    int64_t n = mmrec__last_dim(x);
    char sx[64], sp[64];
    MMREC_FAIL_IF_FOR(func, weight && (weight->ndim != 1 || weight->shape[0] != n), MMREC_ESHAPE,
                      "weight must be 1-D of x's last dim: x is %s, weight is %s",
                      mmrec__shape_str(x, sx, sizeof sx), mmrec__shape_str(weight, sp, sizeof sp));
    MMREC_FAIL_IF_FOR(func, bias && (bias->ndim != 1 || bias->shape[0] != n), MMREC_ESHAPE,
                      "bias must be 1-D of x's last dim: x is %s, bias is %s",
                      mmrec__shape_str(x, sx, sizeof sx), mmrec__shape_str(bias, sp, sizeof sp));

    size_t rows = mmrec__rows(x);
    mmrec_tensor *in[3], *y;
    int n_in = 0;
    in[n_in++] = x;
    if (weight) in[n_in++] = weight;
    if (bias) in[n_in++] = bias;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__ln_ctx c0 = {NULL, NULL, weight != NULL, bias != NULL};
    const mmrec__op op = {func, "layer_norm", mmrec__layer_norm_backward, in, n_in, 0,
                          &c0, sizeof c0};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x->ndim, x->shape, false, &y, &node, &mark));
    double *mean = mmrec__tape_alloc(tape, rows * (sizeof *mean + sizeof(float)));
    if (mean == NULL) return mmrec__tape_oom(tape, mark, func);
    float *rstd = (float *)(mean + rows);
    if (node) {
        mmrec__ln_ctx *c = node->ctx;
        c->mean = mean;
        c->rstd = rstd;
    }
    mmrec__ln_job job = {x->data, weight ? weight->data : NULL, bias ? bias->data : NULL,
                         NULL, eps, (size_t)n, y->data, rstd, NULL, mean};
    mmrec__parallel_for(rows, mmrec__parallel_parts(rows, mmrec__grain((size_t)n, MMREC__LN_GRAIN)),
                        mmrec__ln_forward_chunk, &job);
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

mmrec_status mmrec_layer_norm(mmrec_tape *tape, mmrec_tensor *x, mmrec_tensor *weight,
                              mmrec_tensor *bias, float eps, mmrec_tensor **out) {
    return mmrec__layer_norm(__func__, tape, x, weight, bias, eps, out);
}
