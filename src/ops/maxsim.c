/* Late-interaction MaxSim (ColBERT): every query against every item,
 *   out[b, n] = sum over real i of max over real j of <q[b, i], d[n, j]>,
 * the true maximum (the padded path of colbert_score, which fills padded
 * item positions with -9999; not segmented_maxsim's 0-initialised one).
 * Items go in fixed groups of MMREC__MAXSIM_GROUP: per group, one product
 * of the group's vectors against every query vector (mmrec__sgemm_serial,
 * [G Ld, d] x [d, B Lq], so each item vector's scores are a contiguous row),
 * then the arg-max over each item's real vectors for all query vectors at
 * once (a branch-free select per element that vectorizes across the query
 * vectors), ties to the lowest index. Groups are split over the pool and a
 * group is computed the same way whatever the split, so results do not
 * depend on the thread count.
 * The paired form scores query b against item b only, one [Lq, Ld] product
 * per pair, split over the pairs.
 * Reference: einsum + masked max + sum (tests/golden/make_golden.py). */
#include "ops_internal.h"

#include <math.h>

typedef struct mmrec__maxsim_ctx {
    size_t B, Lq, N, Ld, d;
    bool paired;  /* query b against item b only (N == B) */
    int32_t *arg; /* [B, N, Lq] ([B, Lq] paired) arg-max item vector, -1 for a
                     masked query vector */
} mmrec__maxsim_ctx;

/* Items are split over the pool in chunks of at least this many
 * multiply-adds; each part has its own score block. */
#define MMREC__MAXSIM_GRAIN_MACS ((size_t)1 << 16)

/* Items per product in the all-pairs form: one [G Ld, d] x [d, B Lq]
 * product amortizes BLAS's packing of the query vectors over G items. A
 * fixed group (never a function of the thread count) keeps each score the
 * same bits whatever the split. */
#define MMREC__MAXSIM_GROUP ((size_t)8)

typedef struct mmrec__maxsim_job {
    const mmrec__maxsim_ctx *c;
    const float *q, *qm, *items, *im, *dout;
    float *y, *dq, *dd;
    float *scratch; /* per part: paired Lq Ld floats; else G Ld B Lq floats,
                       then B Lq running maxima and B Lq int32 arg-maxima */
} mmrec__maxsim_job;

/* The score of one (query, item) pair from its [Lq, Ld] block of dot
 * products s (row stride ld): the sum over real rows i of the max over real
 * columns; arg (may be NULL) gets each row's arg-max, -1 for a masked row. */
static double mmrec__maxsim_pair(const float *s, size_t ld, size_t Lq, size_t Ld,
                                 const float *qm, const float *im, int32_t *arg) {
    double total = 0.0;
    for (size_t i = 0; i < Lq; i++) {
        int32_t best = -1;
        if (qm == NULL || qm[i] != 0.0f) {
            const float *sr = s + i * ld;
            for (size_t k = 0; k < Ld; k++) {
                if (im && im[k] == 0.0f) continue;
                /* strict: a tie keeps the lowest index */
                if (best < 0 || sr[k] > sr[best]) best = (int32_t)k;
            }
            total += (double)sr[best];
        }
        if (arg) arg[i] = best;
    }
    return total;
}

/* Paired, items lo .. hi: s = q_n D_n^T ([Lq, Ld]), then its score. */
static void mmrec__maxsim_forward_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__maxsim_job *j = ctx;
    const mmrec__maxsim_ctx *c = j->c;
    size_t Lq = c->Lq, Ld = c->Ld, d = c->d;
    float *s = j->scratch + (size_t)part * Lq * Ld;
    for (size_t n = lo; n < hi; n++) {
        const float *im = j->im ? j->im + n * Ld : NULL;
        mmrec__sgemm_serial(false, true, Lq, Ld, d, 1.0f, j->q + n * Lq * d, d,
                            j->items + n * Ld * d, d, 0.0f, s, Ld);
        int32_t *arg = c->arg ? c->arg + n * Lq : NULL;
        const float *qm = j->qm ? j->qm + n * Lq : NULL;
        j->y[n] = (float)mmrec__maxsim_pair(s, Ld, Lq, Ld, qm, im, arg);
    }
}

/* Floats of one part's scratch in the all-pairs form. */
static size_t mmrec__maxsim_group_scratch(const mmrec__maxsim_ctx *c) {
    size_t rows = c->B * c->Lq;
    return MMREC__MAXSIM_GROUP * c->Ld * rows + 2 * rows;
}

/* best_v[r], best_k[r] = s[r], k where s[r] > best_v[r] (strict: a tie
 * keeps the earlier k), r < n: branch-free (the arg-max through a mask),
 * so it vectorizes across r. */
static void mmrec__maxsim_max_row(float *restrict best_v, int32_t *restrict best_k,
                                  const float *restrict s, int32_t k, size_t n) {
    for (size_t r = 0; r < n; r++) {
        float v = s[r], b = best_v[r];
        int32_t gt = -(int32_t)(v > b); /* all ones where s[r] wins */
        best_v[r] = v > b ? v : b;
        best_k[r] = (best_k[r] & ~gt) | (k & gt);
    }
}

/* All pairs, item groups lo .. hi: per group S = D_g Q^T ([G Ld, B Lq]),
 * then per item the running max over its real vectors k (in order, strict
 * greater: a tie keeps the lowest k) of row k of its block, for every query
 * vector at once. */
static void mmrec__maxsim_forward_groups(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__maxsim_job *j = ctx;
    const mmrec__maxsim_ctx *c = j->c;
    size_t Lq = c->Lq, Ld = c->Ld, d = c->d, N = c->N, rows = c->B * Lq;
    float *s = j->scratch + (size_t)part * mmrec__maxsim_group_scratch(c);
    float *best_v = s + MMREC__MAXSIM_GROUP * Ld * rows;
    int32_t *best_k = (int32_t *)(best_v + rows);
    for (size_t g = lo; g < hi; g++) {
        size_t n0 = g * MMREC__MAXSIM_GROUP;
        size_t gn = N - n0 < MMREC__MAXSIM_GROUP ? N - n0 : MMREC__MAXSIM_GROUP;
        mmrec__sgemm_serial(false, true, gn * Ld, rows, d, 1.0f, j->items + n0 * Ld * d, d, j->q,
                            d, 0.0f, s, rows);
        for (size_t t = 0; t < gn; t++) {
            size_t n = n0 + t;
            const float *im = j->im ? j->im + n * Ld : NULL;
            const float *sn = s + t * Ld * rows;
            size_t first = 0;
            if (im)
                while (im[first] == 0.0f) first++; /* the mask check: one real */
            const float *sf = sn + first * rows;
            for (size_t r = 0; r < rows; r++) {
                best_v[r] = sf[r];
                best_k[r] = (int32_t)first;
            }
            for (size_t k = first + 1; k < Ld; k++) {
                if (im && im[k] == 0.0f) continue;
                mmrec__maxsim_max_row(best_v, best_k, sn + k * rows, (int32_t)k, rows);
            }
            for (size_t b = 0; b < c->B; b++) {
                const float *qm = j->qm ? j->qm + b * Lq : NULL;
                int32_t *arg = c->arg ? c->arg + (b * N + n) * Lq : NULL;
                double total = 0.0;
                for (size_t i = 0; i < Lq; i++) {
                    bool real = qm == NULL || qm[i] != 0.0f;
                    if (real) total += (double)best_v[b * Lq + i];
                    if (arg) arg[i] = real ? best_k[b * Lq + i] : -1;
                }
                j->y[b * N + n] = (float)total;
            }
        }
    }
}

/* Paired: dq[b] and dd[b] from pair b alone, split over b. */
static void mmrec__maxsim_paired_chunk(void *ctx, size_t lo, size_t hi, int part) {
    (void)part;
    const mmrec__maxsim_job *j = ctx;
    const mmrec__maxsim_ctx *c = j->c;
    size_t d = c->d;
    for (size_t b = lo; b < hi; b++) {
        float g = j->dout[b];
        const int32_t *arg = c->arg + b * c->Lq;
        for (size_t i = 0; i < c->Lq; i++) {
            if (arg[i] < 0) continue;
            size_t qi = b * c->Lq + i, dj = b * c->Ld + (size_t)arg[i];
            if (j->dq)
                for (size_t k = 0; k < d; k++) j->dq[qi * d + k] += g * j->items[dj * d + k];
            if (j->dd)
                for (size_t k = 0; k < d; k++) j->dd[dj * d + k] += g * j->q[qi * d + k];
        }
    }
}

/* dq[b, i] += sum over n of g[b, n] d[n, arg]: split over queries b. */
static void mmrec__maxsim_dq_chunk(void *ctx, size_t lo, size_t hi, int part) {
    (void)part;
    const mmrec__maxsim_job *j = ctx;
    const mmrec__maxsim_ctx *c = j->c;
    size_t d = c->d;
    for (size_t b = lo; b < hi; b++)
        for (size_t n = 0; n < c->N; n++) {
            float g = j->dout[b * c->N + n];
            const int32_t *arg = c->arg + (b * c->N + n) * c->Lq;
            for (size_t i = 0; i < c->Lq; i++) {
                if (arg[i] < 0) continue;
                const float *dv = j->items + (n * c->Ld + (size_t)arg[i]) * d;
                float *dqi = j->dq + (b * c->Lq + i) * d;
                for (size_t k = 0; k < d; k++) dqi[k] += g * dv[k];
            }
        }
}

/* dd[n, arg] += sum over b, i of g[b, n] q[b, i]: split over items n. */
static void mmrec__maxsim_dd_chunk(void *ctx, size_t lo, size_t hi, int part) {
    (void)part;
    const mmrec__maxsim_job *j = ctx;
    const mmrec__maxsim_ctx *c = j->c;
    size_t d = c->d;
    for (size_t n = lo; n < hi; n++)
        for (size_t b = 0; b < c->B; b++) {
            float g = j->dout[b * c->N + n];
            const int32_t *arg = c->arg + (b * c->N + n) * c->Lq;
            for (size_t i = 0; i < c->Lq; i++) {
                if (arg[i] < 0) continue;
                const float *qv = j->q + (b * c->Lq + i) * d;
                float *ddj = j->dd + (n * c->Ld + (size_t)arg[i]) * d;
                for (size_t k = 0; k < d; k++) ddj[k] += g * qv[k];
            }
        }
}

static mmrec_status mmrec__maxsim_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__maxsim_ctx *c = node->ctx;
    mmrec_tensor *q = node->in[0], *items = node->in[1];
    float *dq = NULL, *dd = NULL;
    if (mmrec__requires_grad(q) && (dq = mmrec__grad(tape, q)) == NULL) return MMREC_ENOMEM;
    if (mmrec__requires_grad(items) && (dd = mmrec__grad(tape, items)) == NULL)
        return MMREC_ENOMEM;
    mmrec__maxsim_job job = {c, q->data, NULL, items->data, NULL, node->out->grad,
                             NULL, dq, dd, NULL};
    size_t per = c->Lq * c->d;
    if (c->paired) {
        mmrec__parallel_for(c->B, mmrec__parallel_parts(c->B, mmrec__grain(2 * per, 16384)),
                            mmrec__maxsim_paired_chunk, &job);
        return MMREC_OK;
    }
    if (dq)
        mmrec__parallel_for(c->B, mmrec__parallel_parts(c->B, mmrec__grain(c->N * per, 16384)),
                            mmrec__maxsim_dq_chunk, &job);
    if (dd)
        mmrec__parallel_for(c->N, mmrec__parallel_parts(c->N, mmrec__grain(c->B * per, 16384)),
                            mmrec__maxsim_dd_chunk, &job);
    return MMREC_OK;
}

/* Checks a mask [rows, len] (NULL: none): finite values; with `need_one`,
 * at least one non-zero per row. */
static mmrec_status mmrec__maxsim_check_mask(const char *func, const char *name,
                                             const mmrec_tensor *mask, const mmrec_tensor *x,
                                             bool need_one) {
    if (mask == NULL) return MMREC_OK;
    if (mask->ndim != 2 || mask->shape[0] != x->shape[0] || mask->shape[1] != x->shape[1]) {
        char sm[64], sx[64];
        return mmrec__set_error(MMREC_ESHAPE, func, "%s must be [%lld, %lld] to match %s, is %s",
                                name, (long long)x->shape[0], (long long)x->shape[1],
                                mmrec__shape_str(x, sx, sizeof sx),
                                mmrec__shape_str(mask, sm, sizeof sm));
    }
    size_t rows = (size_t)mask->shape[0], len = (size_t)mask->shape[1];
    for (size_t r = 0; r < rows; r++) {
        bool any = false;
        for (size_t k = 0; k < len; k++) {
            float v = mask->data[r * len + k];
            if (!isfinite(v))
                return mmrec__set_error(MMREC_EINVAL, func, "%s[%zu, %zu] is %g, must be finite",
                                        name, r, k, (double)v);
            any = any || v != 0.0f;
        }
        if (need_one && !any)
            return mmrec__set_error(MMREC_EINVAL, func,
                                    "%s row %zu masks every vector of item %zu", name, r, r);
    }
    return MMREC_OK;
}

/* MMREC_ESHAPE for `func`, naming both shapes. */
static mmrec_status mmrec__maxsim_shape_error(const char *func, const char *what,
                                              const mmrec_tensor *queries,
                                              const mmrec_tensor *items) {
    char sq[64], sd[64];
    return mmrec__set_error(MMREC_ESHAPE, func, "%s: queries is %s, items is %s", what,
                            mmrec__shape_str(queries, sq, sizeof sq),
                            mmrec__shape_str(items, sd, sizeof sd));
}

static mmrec_status mmrec__maxsim(mmrec_tape *tape, const char *func, mmrec_tensor *queries,
                                  mmrec_tensor *query_mask, mmrec_tensor *items,
                                  mmrec_tensor *item_mask, bool paired, mmrec_tensor **out) {
    if (queries->ndim != 3 || items->ndim != 3 || queries->shape[2] != items->shape[2])
        return mmrec__maxsim_shape_error(func, "queries must be [B, Lq, d] and items [N, Ld, d]",
                                         queries, items);
    if (paired && queries->shape[0] != items->shape[0])
        return mmrec__maxsim_shape_error(func, "paired queries and items must have one B",
                                         queries, items);
    MMREC_FAIL_IF_FOR(func, queries->shape[2] == 0, MMREC_EINVAL, "queries and items have d = 0");
    MMREC_FAIL_IF_FOR(func, items->shape[1] == 0 && items->shape[0] > 0, MMREC_EINVAL,
                      "items has Ld = 0: item row 0 has no vector");
    MMREC_FORWARD_IF(mmrec__maxsim_check_mask(func, "query_mask", query_mask, queries, false));
    MMREC_FORWARD_IF(mmrec__maxsim_check_mask(func, "item_mask", item_mask, items, true));
    mmrec__maxsim_ctx c = {0};
    c.B = (size_t)queries->shape[0];
    c.Lq = (size_t)queries->shape[1];
    c.N = (size_t)items->shape[0];
    c.Ld = (size_t)items->shape[1];
    c.d = (size_t)queries->shape[2];
    c.paired = paired;

    int64_t shape[2] = {(int64_t)c.B, (int64_t)c.N};
    mmrec_tensor *in[2] = {queries, items}, *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__op op = {func, paired ? "maxsim_paired" : "maxsim", mmrec__maxsim_backward,
                          in, 2, 0, NULL, sizeof c};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, paired ? 1 : 2, shape, false, &y, &node, &mark));
    size_t rows = paired ? c.Lq : c.B * c.Lq, pairs = paired ? c.B : c.B * c.N;
    size_t units = paired ? c.N : (c.N + MMREC__MAXSIM_GROUP - 1) / MMREC__MAXSIM_GROUP;
    size_t per_unit = paired ? rows * c.Ld : MMREC__MAXSIM_GROUP * rows * c.Ld;
    int parts = mmrec__parallel_parts(units,
                                      mmrec__grain(per_unit * c.d, MMREC__MAXSIM_GRAIN_MACS));
    size_t part_floats = paired ? rows * c.Ld : mmrec__maxsim_group_scratch(&c);
    float *scratch = mmrec__tape_alloc(tape, (size_t)parts * part_floats * sizeof(float) + 1);
    if (scratch == NULL) return mmrec__tape_oom(tape, mark, func);
    if (node) {
        c.arg = mmrec__tape_alloc(tape, pairs * c.Lq * sizeof(int32_t) + 1);
        if (c.arg == NULL) return mmrec__tape_oom(tape, mark, func);
        *(mmrec__maxsim_ctx *)node->ctx = c;
    }
    mmrec__maxsim_job job = {&c,  queries->data, query_mask ? query_mask->data : NULL,
                             items->data, item_mask ? item_mask->data : NULL, NULL,
                             y->data, NULL, NULL, scratch};
    mmrec__parallel_for(units, parts,
                        paired ? mmrec__maxsim_forward_chunk : mmrec__maxsim_forward_groups,
                        &job);
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}

mmrec_status mmrec_maxsim(mmrec_tape *tape, mmrec_tensor *queries, mmrec_tensor *query_mask,
                          mmrec_tensor *items, mmrec_tensor *item_mask, mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, queries, items, out);
    if (query_mask) MMREC_CHECK_TENSOR_ON(query_mask, tape);
    if (item_mask) MMREC_CHECK_TENSOR_ON(item_mask, tape);
    return mmrec__maxsim(tape, __func__, queries, query_mask, items, item_mask, false, out);
}

mmrec_status mmrec_maxsim_paired(mmrec_tape *tape, mmrec_tensor *queries,
                                 mmrec_tensor *query_mask, mmrec_tensor *items,
                                 mmrec_tensor *item_mask, mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, queries, items, out);
    if (query_mask) MMREC_CHECK_TENSOR_ON(query_mask, tape);
    if (item_mask) MMREC_CHECK_TENSOR_ON(item_mask, tape);
    return mmrec__maxsim(tape, __func__, queries, query_mask, items, item_mask, true, out);
}
