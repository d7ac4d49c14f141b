/* IISAN side adapter network (SAN) tower as one fused node: K bottleneck
 * adapters (modules/adapter.c) with the learned gates between them,
 *   intra:  h_k = Adapter_k(g_k s_k + (1 - g_k) h_{k-1}),  h_0 = 0 or s_first
 *   inter:  m_k = Adapter_k(m_{k-1} + g_k image_k + (1 - g_k) text_k),  m_0 = 0
 * with g_k = sigmoid(p_k / T) (or plain sums without gates). Reference:
 * IISANAdaptedMModel.forward of github.com/GAIR-Lab/IISAN
 * (Code_Cached/model/model.py); tests/golden/make_golden.py::write_iisan.
 *
 * Forward: per adapter, one mixing pass over the rows, then the adapter's
 * two products in place. A training tape keeps h_1 .. h_{K-1} and each
 * adapter's pre-activation and activation ([rows, r]); the adapter inputs
 * x_k are recomputed in the backward from them (one element-wise pass)
 * rather than kept. Backward: one walk down the tower, per adapter its four
 * products and one read-only pass for the gate's gradient and the states'
 * gradients (the gate's (1 - g) on the running gradient goes into the next
 * products' alpha and beta); gate gradients are row dots in double, summed
 * in row order (independent of the thread count). */
#include "iisan_internal.h"

#include <math.h>
#include <string.h>

/* The states a SAN reads and how they mix into step k. */
typedef struct mmrec__san_ctx {
    const mmrec__san *san;
    size_t rows, dim, r;
    size_t a_ld, b_ld;                    /* row strides of the states (L H) */
    size_t a_col[MMREC__IISAN_MAX_LAYERS]; /* offsets of step k's state in a row */
    size_t b_col[MMREC__IISAN_MAX_LAYERS];
    size_t a_first;                       /* offset of h_0's state (from_first) */
    float ch[MMREC__IISAN_MAX_LAYERS];    /* x_k = ch h + ca a_k + cb b_k */
    float ca[MMREC__IISAN_MAX_LAYERS];
    float cb[MMREC__IISAN_MAX_LAYERS];
    double g[MMREC__IISAN_MAX_LAYERS];    /* the gates, gated only */
    float *h;                             /* [K - 1, rows, dim]: h_1 .. h_{K-1} */
    float *pre;                           /* [K, rows, r] */
    float *hid;                           /* [K, rows, r] */
} mmrec__san_ctx;

/* Element-wise passes are split over the pool by rows, in chunks of at
 * least this many elements. */
#define MMREC__SAN_GRAIN 16384

/* ---- the mixing pass: dst = ch prev + ca a + cb b (prev, b may be NULL) ---- */

typedef struct mmrec__mix_job {
    const float *prev, *a, *b;
    size_t prev_ld, a_ld, b_ld, dim;
    float ch, ca, cb;
    float *dst;
} mmrec__mix_job;

MMREC__SIMD_CLONES
static void mmrec__mix_chunk(void *ctx, size_t lo, size_t hi, int part) {
    (void)part;
    const mmrec__mix_job *j = ctx;
    size_t n = j->dim;
    for (size_t i = lo; i < hi; i++) {
        const float *a = j->a + i * j->a_ld;
        float *d = j->dst + i * n;
        float ca = j->ca, ch = j->ch, cb = j->cb;
        if (j->prev && j->b) {
            const float *p = j->prev + i * j->prev_ld, *b = j->b + i * j->b_ld;
            for (size_t c = 0; c < n; c++) d[c] = (ch * p[c] + ca * a[c]) + cb * b[c];
        } else if (j->prev) {
            const float *p = j->prev + i * j->prev_ld;
            for (size_t c = 0; c < n; c++) d[c] = ca * a[c] + ch * p[c];
        } else if (j->b) {
            const float *b = j->b + i * j->b_ld;
            for (size_t c = 0; c < n; c++) d[c] = ca * a[c] + cb * b[c];
        } else {
            for (size_t c = 0; c < n; c++) d[c] = ca * a[c];
        }
    }
}

static void mmrec__san_mix(const mmrec__san_ctx *c, int k, const float *a, const float *b,
                           const float *prev, size_t prev_ld, float *dst) {
    mmrec__mix_job j = {prev,     a + c->a_col[k], b ? b + c->b_col[k] : NULL,
                        prev_ld,  c->a_ld,         c->b_ld,
                        c->dim,   c->ch[k],        c->ca[k],
                        c->cb[k], dst};
    int parts = mmrec__parallel_parts(c->rows, mmrec__grain(c->dim, MMREC__SAN_GRAIN));
    mmrec__parallel_for(c->rows, parts, mmrec__mix_chunk, &j);
}

/* h_{k-1}, the running state before step k, and its row stride. */
static const float *mmrec__san_prev(const mmrec__san_ctx *c, int k, const float *a,
                                    const float *hs, size_t *ld) {
    *ld = c->dim;
    if (k > 0) return hs + (size_t)(k - 1) * c->rows * c->dim;
    if (!c->san->from_first) return NULL;
    *ld = c->a_ld;
    return a + c->a_first;
}

/* ---- backward ---- */

/* After adapter k's backward, d = dL/dx_k. One pass reading it: the gate's
 * row dots dot[i] = d_i . dx_k/dg (row i) and the states' gradients
 * da += ca d, db += cb d. (dL/dh_{k-1} = ch d: the next adapter's backward
 * takes ch as its scale, so d is not rewritten.) */
typedef struct mmrec__gate_job {
    const float *prev, *a, *b;
    size_t prev_ld, a_ld, b_ld, dim;
    float ca, cb;
    bool gate, inter;
    float *d, *da, *db;
    double *dot;
} mmrec__gate_job;

MMREC__SIMD_CLONES
static void mmrec__gate_chunk(void *ctx, size_t lo, size_t hi, int part) {
    (void)part;
    const mmrec__gate_job *j = ctx;
    size_t n = j->dim;
    for (size_t i = lo; i < hi; i++) {
        const float *d = j->d + i * n;
        const float *a = j->a + i * j->a_ld;
        if (j->gate) {
            /* dx/dg: intra a - prev, inter a - b */
            double acc[MMREC__LANES] = {0};
            const float *o = j->inter  ? j->b + i * j->b_ld
                             : j->prev ? j->prev + i * j->prev_ld
                                       : NULL;
            size_t c = 0;
            if (o) {
                for (; c + MMREC__LANES <= n; c += MMREC__LANES)
                    for (size_t l = 0; l < MMREC__LANES; l++)
                        acc[l] += (double)d[c + l] * (double)(a[c + l] - o[c + l]);
                for (size_t l = 0; c + l < n; l++)
                    acc[l] += (double)d[c + l] * (double)(a[c + l] - o[c + l]);
            } else {
                for (; c + MMREC__LANES <= n; c += MMREC__LANES)
                    for (size_t l = 0; l < MMREC__LANES; l++)
                        acc[l] += (double)d[c + l] * (double)a[c + l];
                for (size_t l = 0; c + l < n; l++) acc[l] += (double)d[c + l] * (double)a[c + l];
            }
            j->dot[i] = mmrec__lanes_total(acc);
        }
        if (j->da) {
            float *da = j->da + i * j->a_ld, ca = j->ca;
            for (size_t c = 0; c < n; c++) da[c] += ca * d[c];
        }
        if (j->db) {
            float *db = j->db + i * j->b_ld, cb = j->cb;
            for (size_t c = 0; c < n; c++) db[c] += cb * d[c];
        }
    }
}

static mmrec_status mmrec__san_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__san_ctx *c = node->ctx;
    const mmrec__san *san = c->san;
    mmrec_tensor *ta = node->in[0], *tb = node->in[1];
    size_t rows = c->rows, dim = c->dim, r = c->r, plane = rows * dim;
    bool need_a = mmrec__requires_grad(ta), need_b = tb && mmrec__requires_grad(tb);
    /* Everything this walk needs, before any gradient is written. */
    float *d = mmrec__tape_alloc(tape, 2 * plane * sizeof(float));
    float *scratch = mmrec__tape_alloc(tape, 2 * rows * r * sizeof(float));
    double *dot = mmrec__tape_alloc(tape, rows * sizeof(double));
    float *da = need_a ? mmrec__grad(tape, ta) : NULL;
    float *db = need_b ? mmrec__grad(tape, tb) : NULL;
    if (d == NULL || scratch == NULL || dot == NULL || (need_a && da == NULL) ||
        (need_b && db == NULL))
        return MMREC_ENOMEM;
    float *x = d + plane;
    memcpy(d, node->out->grad, plane * sizeof(float));
    const float *a = ta->data, *b = tb ? tb->data : NULL;
    int parts = mmrec__parallel_parts(rows, mmrec__grain(dim, MMREC__SAN_GRAIN));
    float scale = 1.0f; /* dL/dh_k = scale d */
    for (int k = san->n - 1; k >= 0; k--) {
        const mmrec__adapter *ad = &san->adapter[k];
        size_t prev_ld;
        const float *prev = mmrec__san_prev(c, k, a, c->h, &prev_ld);
        if (mmrec__requires_grad(ad->down.w)) mmrec__san_mix(c, k, a, b, prev, prev_ld, x);
        /* d = scale d + dpre W_down = dL/dx_k, the skip connection's share in */
        mmrec__adapter_rows_backward(ad, tape, rows, x, c->pre + (size_t)k * rows * r,
                                     c->hid + (size_t)k * rows * r, d, scale, d, scratch);
        bool gate = san->gated && mmrec__requires_grad(san->gate[k]);
        mmrec__gate_job j = {prev,
                             a + c->a_col[k],
                             b ? b + c->b_col[k] : NULL,
                             prev_ld,
                             c->a_ld,
                             c->b_ld,
                             dim,
                             c->ca[k],
                             c->cb[k],
                             gate,
                             san->inter,
                             d,
                             da ? da + c->a_col[k] : NULL,
                             db ? db + c->b_col[k] : NULL,
                             dot};
        if (gate || da || db) mmrec__parallel_for(rows, parts, mmrec__gate_chunk, &j);
        if (gate) {
            double dg = 0.0;
            for (size_t i = 0; i < rows; i++) dg += dot[i];
            double g = c->g[k];
            float *dp = mmrec__grad(tape, san->gate[k]);
            dp[0] += (float)(dg * g * (1.0 - g) / (double)san->temperature);
        }
        scale = c->ch[k];
    }
    if (da && san->from_first) { /* h_0 = a at the first kept position */
        for (size_t i = 0; i < rows; i++) {
            float *dst = da + i * c->a_ld + c->a_first;
            const float *src = d + i * dim;
            for (size_t col = 0; col < dim; col++) dst[col] += scale * src[col];
        }
    }
    return MMREC_OK;
}

/* ---- forward ---- */

mmrec_status mmrec__san_forward(const mmrec__san *san, mmrec_tape *tape, const char *func,
                                const int *kept, int num_kept, mmrec_tensor *a, mmrec_tensor *b,
                                mmrec_tensor **out) {
    int nd = a->ndim;
    size_t dim = (size_t)a->shape[nd - 1], la = (size_t)a->shape[nd - 2];
    size_t lb = b ? (size_t)b->shape[nd - 2] : 0;
    size_t rows = a->numel / (la * dim), r = (size_t)san->adapter[0].down.out;
    int n = san->n;
    /* The node's context, copied into it by mmrec__op_begin. */
    mmrec__san_ctx cx;
    memset(&cx, 0, sizeof cx);
    cx.san = san;
    cx.rows = rows;
    cx.dim = dim;
    cx.r = r;
    cx.a_ld = la * dim;
    cx.b_ld = lb * dim;
    bool a_all = la != (size_t)num_kept, b_all = lb != (size_t)num_kept;
    for (int k = 0; k < n; k++) {
        int p = san->pos[k];
        cx.a_col[k] = (size_t)(a_all ? kept[p] : p) * dim;
        cx.b_col[k] = (size_t)(b_all ? kept[p] : p) * dim;
        double g = 1.0;
        if (san->gated) {
            g = 1.0 / (1.0 + exp(-(double)san->gate[k]->data[0] / (double)san->temperature));
            cx.g[k] = g;
        }
        if (san->inter) {
            cx.ch[k] = 1.0f;
            cx.ca[k] = san->gated ? (float)g : 1.0f;
            cx.cb[k] = san->gated ? (float)(1.0 - g) : 1.0f;
        } else {
            cx.ch[k] = san->gated ? (float)(1.0 - g) : 1.0f;
            cx.ca[k] = san->gated ? (float)g : 1.0f;
            cx.cb[k] = 0.0f;
        }
    }
    cx.a_first = (size_t)(a_all ? kept[san->first] : san->first) * dim;

    /* The node's inputs: the states, the gates, the adapters' parameters. */
    mmrec_tensor *in[2 + 5 * MMREC__IISAN_MAX_LAYERS];
    int n_in = 0;
    in[n_in++] = a;
    in[n_in++] = b;
    for (int k = 0; k < n && san->gated; k++) in[n_in++] = san->gate[k];
    for (int k = 0; k < n; k++) {
        in[n_in++] = san->adapter[k].down.w;
        in[n_in++] = san->adapter[k].down.b;
        in[n_in++] = san->adapter[k].up.w;
        in[n_in++] = san->adapter[k].up.b;
    }
    int64_t shape[MMREC_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[nd - 2] = (int64_t)dim;
    mmrec_tensor *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__op op = {func, san->inter ? "iisan_inter_san" : "iisan_intra_san",
                          mmrec__san_backward, in, n_in, 0, &cx, sizeof cx};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, nd - 1, shape, false, &y, &node, &mark));
    mmrec__san_ctx *c = node ? node->ctx : &cx;
    size_t plane = rows * dim, small = rows * r;
    /* kept for the backward when recording; otherwise one adapter's scratch */
    size_t n_small = node ? (size_t)n : 1;
    float *pre = mmrec__tape_alloc(tape, 2 * n_small * small * sizeof(float));
    float *hs = node && n > 1 ? mmrec__tape_alloc(tape, (size_t)(n - 1) * plane * sizeof(float))
                              : NULL;
    if (pre == NULL || (node && n > 1 && hs == NULL)) return mmrec__tape_oom(tape, mark, func);
    float *hid = pre + n_small * small;
    c->h = hs;
    c->pre = pre;
    c->hid = hid;
    const float *ad = a->data, *bd = b ? b->data : NULL;
    for (int k = 0; k < n; k++) {
        /* step k writes h_k: kept in hs when recording (but the last), else
         * in y throughout */
        float *dst = node && k < n - 1 ? hs + (size_t)k * plane : y->data;
        size_t prev_ld = dim;
        const float *prev = node || k == 0 ? mmrec__san_prev(c, k, ad, hs, &prev_ld) : y->data;
        mmrec__san_mix(c, k, ad, bd, prev, prev_ld, dst);
        size_t off = node ? (size_t)k * small : 0;
        mmrec__adapter_rows(&san->adapter[k], rows, dst, pre + off, hid + off, dst);
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
