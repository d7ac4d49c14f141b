/* L2 normalization and cosine similarity over the last dim; norms and dot
 * products accumulated in double.
 * Reference: torch.nn.functional.normalize / cosine_similarity. */
#include "ops_internal.h"

#include <math.h>

/* ---- l2_normalize: y = x / max(||x||, eps) ---- */

typedef struct mmrec__l2n_ctx {
    float eps;
} mmrec__l2n_ctx;

/* max(norm, eps) that keeps a NaN norm NaN (torch's clamp_min). */
static inline double mmrec__clamp_norm(double norm, float eps) {
    return norm < (double)eps ? (double)eps : norm;
}

void mmrec__l2n_rows(const float *x, size_t rows, size_t n, float eps, float *y) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        double inv = 1.0 / mmrec__clamp_norm(sqrt(mmrec__dot_wide(xr, xr, n)), eps);
        for (size_t j = 0; j < n; j++) y[r * n + j] = (float)((double)xr[j] * inv);
    }
}

void mmrec__l2n_row_backward(const float *x, const float *g, size_t n, float eps, float *dx) {
    double norm = sqrt(mmrec__dot_wide(x, x, n));
    if (norm <= eps) { /* y = x / eps: linear */
        for (size_t j = 0; j < n; j++) dx[j] += g[j] / eps;
        return;
    }
    /* dx = (g - y (g . y)) / ||x||, y = x / ||x|| (a NaN norm gives NaN) */
    double inv = 1.0 / norm, gy = mmrec__dot_wide(g, x, n) * inv;
    for (size_t j = 0; j < n; j++) dx[j] += (float)(((double)g[j] - (double)x[j] * inv * gy) * inv);
}

/* Rows are split over the pool in parts of at least this many elements
 * (each row on its own: the same bits for any split). */
#define MMREC__L2N_GRAIN 16384

typedef struct mmrec__l2n_job {
    const float *x, *g; /* g NULL: the forward */
    float *out;         /* y, or dx */
    size_t n;
    float eps;
} mmrec__l2n_job;

static void mmrec__l2n_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__l2n_job *j = ctx;
    size_t n = j->n;
    (void)part;
    if (j->g == NULL)
        mmrec__l2n_rows(j->x + lo * n, hi - lo, n, j->eps, j->out + lo * n);
    else
        for (size_t r = lo; r < hi; r++)
            mmrec__l2n_row_backward(j->x + r * n, j->g + r * n, n, j->eps, j->out + r * n);
}

static void mmrec__l2n_run(const mmrec__l2n_job *j, size_t rows) {
    mmrec__parallel_for(rows, mmrec__parallel_parts(rows, mmrec__grain(j->n, MMREC__L2N_GRAIN)),
                        mmrec__l2n_chunk, (void *)j);
}

static mmrec_status mmrec__l2n_backward(mmrec__node *node, mmrec_tape *tape) {
    float eps = ((const mmrec__l2n_ctx *)node->ctx)->eps;
    mmrec_tensor *x = node->in[0], *y = node->out;
    float *dx = mmrec__grad(tape, x);
    if (dx == NULL) return MMREC_ENOMEM;
    mmrec__l2n_job j = {x->data, y->grad, dx, (size_t)mmrec__last_dim(x), eps};
    mmrec__l2n_run(&j, mmrec__rows(x));
    return MMREC_OK;
}

mmrec_status mmrec_l2_normalize(mmrec_tape *tape, mmrec_tensor *x, float eps,
                                mmrec_tensor **out) {
    MMREC_CHECK_OP1(tape, x, out);
    MMREC_FAIL_IF(!(eps > 0.0f && isfinite(eps)), MMREC_EINVAL, "eps is %g, must be > 0",
                  (double)eps);
    mmrec_tensor *y;
    const mmrec__l2n_ctx c = {eps};
    const mmrec__op op = {__func__, "l2_normalize", mmrec__l2n_backward, &x, 1, 0, &c, sizeof c};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, x->ndim, x->shape, false, &y, NULL, &mark));
    mmrec__l2n_job j = {x->data, NULL, y->data, (size_t)mmrec__last_dim(x), eps};
    mmrec__l2n_run(&j, mmrec__rows(x));
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

/* ---- cosine similarity: a.b / (max(||a||, eps) max(||b||, eps)) ---- */

typedef struct mmrec__cos_ctx {
    float eps;
} mmrec__cos_ctx;

typedef struct mmrec__cos_row {
    double dot, na, nb;  /* dot product and the two norms */
    double ca, cb;       /* the norms clamped to eps */
} mmrec__cos_row;

static mmrec__cos_row mmrec__cos_stats(const float *a, const float *b, size_t n, float eps) {
    mmrec__cos_row s;
    s.dot = mmrec__dot_wide(a, b, n);
    s.na = sqrt(mmrec__dot_wide(a, a, n));
    s.nb = sqrt(mmrec__dot_wide(b, b, n));
    s.ca = mmrec__clamp_norm(s.na, eps);
    s.cb = mmrec__clamp_norm(s.nb, eps);
    return s;
}

static mmrec_status mmrec__cos_backward(mmrec__node *node, mmrec_tape *tape) {
    float eps = ((const mmrec__cos_ctx *)node->ctx)->eps;
    mmrec_tensor *a = node->in[0], *b = node->in[1];
    float *da = NULL, *db = NULL;
    if (mmrec__requires_grad(a) && (da = mmrec__grad(tape, a)) == NULL) return MMREC_ENOMEM;
    if (mmrec__requires_grad(b) && (db = mmrec__grad(tape, b)) == NULL) return MMREC_ENOMEM;
    size_t n = (size_t)mmrec__last_dim(a), rows = mmrec__rows(a);
    for (size_t r = 0; r < rows; r++) {
        const float *ar = a->data + r * n, *br = b->data + r * n;
        mmrec__cos_row s = mmrec__cos_stats(ar, br, n, eps);
        double g = node->out->grad[r], inv = 1.0 / (s.ca * s.cb), y = s.dot * inv;
        /* dy/da = b / den - y a / ||a||^2 (the second term only unclamped) */
        double ka = s.na > eps ? y / (s.na * s.na) : 0.0;
        double kb = s.nb > eps ? y / (s.nb * s.nb) : 0.0;
        for (size_t j = 0; j < n; j++) {
            if (da) da[r * n + j] += (float)(g * ((double)br[j] * inv - ka * ar[j]));
            if (db) db[r * n + j] += (float)(g * ((double)ar[j] * inv - kb * br[j]));
        }
    }
    return MMREC_OK;
}

mmrec_status mmrec_cosine_similarity(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b,
                                     float eps, mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, a, b, out);
    MMREC_FAIL_IF(!(eps > 0.0f && isfinite(eps)), MMREC_EINVAL, "eps is %g, must be > 0",
                  (double)eps);
    bool same = a->ndim == b->ndim;
    for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == b->shape[d];
    if (!same) MMREC_FAIL_SHAPE2("a and b must have one shape", a, b);
    int ndim = a->ndim > 1 ? a->ndim - 1 : 1;
    int64_t shape[MMREC_MAX_DIMS] = {1};
    for (int d = 0; d < a->ndim - 1; d++) shape[d] = a->shape[d];
    mmrec_tensor *in[2] = {a, b}, *y;
    const mmrec__cos_ctx c = {eps};
    const mmrec__op op = {__func__, "cosine_similarity", mmrec__cos_backward, in, 2, 0, &c,
                          sizeof c};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, ndim, shape, false, &y, NULL, &mark));
    size_t n = (size_t)mmrec__last_dim(a), rows = mmrec__rows(a);
    for (size_t r = 0; r < rows; r++) {
        mmrec__cos_row s = mmrec__cos_stats(a->data + r * n, b->data + r * n, n, eps);
        y->data[r] = (float)(s.dot / (s.ca * s.cb));
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
