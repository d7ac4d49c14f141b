/* IntTower's Light-SE field re-weighting (inttower.h; shared/
 * METHODS-twotower.md 4.2) as one fused node: over E [B, F, e],
 *   z = mean of E over e, a = softmax over F of (z W^T + b), E' = E + E a,
 * written flattened, [B, F e] (the tower's input). Row statistics in
 * double. Reference: tests/golden/make_golden.py::LightSE (the code's
 * layers/interaction.py LightSE). */
#include "twotower_internal.h"

#include <math.h>
#include <string.h>

typedef struct mmrec__lightse_ctx {
    size_t B, F, e;
    float *z, *a; /* [B, F] each, kept for the backward */
} mmrec__lightse_ctx;

/* z, a and the output of one row b. */
static void mmrec__lightse_row(const float *x, const float *w, const float *bias, size_t F,
                               size_t e, float *z, float *a, double *s, float *y) {
    for (size_t f = 0; f < F; f++) z[f] = (float)(mmrec__sum_wide(x + f * e, e) / (double)e);
    double mx = -INFINITY;
    for (size_t i = 0; i < F; i++) {
        double acc = bias ? (double)bias[i] : 0.0;
        for (size_t j = 0; j < F; j++) acc += (double)w[i * F + j] * (double)z[j];
        s[i] = acc;
        if (acc > mx) mx = acc;
    }
    double total = 0.0;
    for (size_t i = 0; i < F; i++) {
        s[i] = exp(s[i] - mx);
        total += s[i];
    }
    for (size_t i = 0; i < F; i++) a[i] = (float)(s[i] / total);
    for (size_t f = 0; f < F; f++) {
        const float *xf = x + f * e;
        float *yf = y + f * e, af = a[f];
        for (size_t k = 0; k < e; k++) yf[k] = xf[k] + xf[k] * af;
    }
}

static mmrec_status mmrec__lightse_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__lightse_ctx *c = node->ctx;
    mmrec_tensor *x = node->in[0], *w = node->in[1], *b = node->n_in > 2 ? node->in[2] : NULL;
    size_t B = c->B, F = c->F, e = c->e;
    const float *dy = node->out->grad;
    bool need_x = mmrec__requires_grad(x), need_w = mmrec__requires_grad(w),
         need_b = b && mmrec__requires_grad(b);
    double *da = mmrec__tape_alloc(tape, 2 * F * sizeof(double));
    double *acc = need_w || need_b ? mmrec__tape_calloc(tape, (F * F + F) * sizeof(double)) : NULL;
    float *dx = need_x ? mmrec__grad(tape, x) : NULL;
    float *dw = need_w ? mmrec__grad(tape, w) : NULL, *db = need_b ? mmrec__grad(tape, b) : NULL;
    if (da == NULL || ((need_w || need_b) && acc == NULL) || (need_x && dx == NULL) ||
        (need_w && dw == NULL) || (need_b && db == NULL))
        return MMREC_ENOMEM;
    double *ds = da + F;
    for (size_t r = 0; r < B; r++) {
        const float *xr = x->data + r * F * e, *dyr = dy + r * F * e;
        const float *z = c->z + r * F, *a = c->a + r * F;
        /* through E' = E (1 + a): da_f = <dy_f, E_f> */
        double dot = 0.0;
        for (size_t f = 0; f < F; f++) {
            da[f] = mmrec__dot_wide(dyr + f * e, xr + f * e, e);
            dot += (double)a[f] * da[f];
        }
        /* through the softmax */
        for (size_t i = 0; i < F; i++) ds[i] = (double)a[i] * (da[i] - dot);
        if (acc) {
            for (size_t i = 0; i < F; i++) {
                for (size_t j = 0; j < F; j++) acc[i * F + j] += ds[i] * (double)z[j];
                acc[F * F + i] += ds[i];
            }
        }
        if (dx) {
            float *dxr = dx + r * F * e;
            for (size_t f = 0; f < F; f++) {
                /* through z = mean E: dz_f = sum_i ds_i W[i, f], shared by the row */
                double dz = 0.0;
                for (size_t i = 0; i < F; i++) dz += ds[i] * (double)w->data[i * F + f];
                float g = (float)(dz / (double)e), s = 1.0f + a[f];
                const float *dyf = dyr + f * e;
                float *dxf = dxr + f * e;
                for (size_t k = 0; k < e; k++) dxf[k] += dyf[k] * s + g;
            }
        }
    }
    if (dw)
        for (size_t i = 0; i < F * F; i++) dw[i] += (float)acc[i];
    if (db)
        for (size_t i = 0; i < F; i++) db[i] += (float)acc[F * F + i];
    return MMREC_OK;
}

mmrec_status mmrec__lightse_forward(mmrec_tape *tape, const char *func, mmrec_tensor *fields,
                                    mmrec_tensor *weight, mmrec_tensor *bias,
                                    mmrec_tensor **out) {
    mmrec__lightse_ctx c = {(size_t)fields->shape[0], (size_t)fields->shape[1],
                            (size_t)fields->shape[2], NULL, NULL};
    int64_t shape[2] = {fields->shape[0], fields->shape[1] * fields->shape[2]};
    mmrec_tensor *in[3] = {fields, weight, bias}, *y;
    const mmrec__op op = {func, "lightse", mmrec__lightse_backward, in, bias ? 3 : 2, 0, &c,
                          sizeof c};
    mmrec__node *node;
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 2, shape, false, &y, &node, &mark));
    size_t B = c.B, F = c.F, e = c.e;
    /* z and a: kept in the node's workspace when recorded, scratch otherwise */
    float *za = mmrec__tape_alloc(tape, 2 * B * F * sizeof(float));
    double *s = mmrec__tape_alloc(tape, F * sizeof(double));
    if (za == NULL || s == NULL) return mmrec__tape_oom(tape, mark, func);
    for (size_t r = 0; r < B; r++)
        mmrec__lightse_row(fields->data + r * F * e, weight->data, bias ? bias->data : NULL, F,
                           e, za + r * F, za + B * F + r * F, s, y->data + r * F * e);
    if (node) {
        mmrec__lightse_ctx *nc = node->ctx;
        nc->z = za;
        nc->a = za + B * F;
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
