/* AlignRec's intermediate evaluations of content features (metrics.h;
 * shared/METHODS.md, AlignRec, "Intermediate evaluations"): zero-shot from
 * history, item-CF, and mask-modality.
 *
 * Cosine ranking without copying the features: a query row is scored
 * against the raw features in whole rows (rows.c), then each score is
 * multiplied by 1 / |item| (0 for a zero item). The query's own norm does
 * not change its ranking and is left out; the zero-shot query is the sum of
 * the history's features, which has the mean's direction (and makes the
 * scores exact for small-integer features, so tests can compare ranks with
 * a brute-force reference). Each query's rank of its target is stored, and
 * the metrics are summed over the queries in order after the parallel part,
 * so they do not depend on the thread count.
 * Reference: tests/golden/make_golden.py::write_content_eval. */
#include "metrics_internal.h"
#include "../core/config_sizes.h"
#include "../data/data_internal.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* Checks an interactions argument: the object, and items below I. */
static mmrec_status mmrec__content_pairs(const mmrec_interactions *x, const char *name, size_t I,
                                         const char *func) {
    if (x->magic != MMREC__INTERACTIONS_MAGIC)
        return mmrec__set_error(MMREC_EINVAL, func, "argument '%s' is not an interactions object",
                                name);
    for (size_t k = 0; k < x->count; k++)
        if ((uint64_t)x->items[k] >= I)
            return mmrec__set_error(MMREC_ERANGE, func, "%s items[%zu] is %lld, outside [0, %zu)",
                                    name, k, (long long)x->items[k], I);
    return MMREC_OK;
}

/* Checks what both evaluations share (pointers already checked), the
 * interactions argument `x` (named `name`) last. */
static mmrec_status mmrec__content_check(const float *features, int64_t num_items,
                                         int64_t feat_dim, const mmrec_interactions *x,
                                         const char *name, const int *ks, int num_ks,
                                         const mmrec_rank_metrics *out, const char *func) {
    if (num_items < 1 || num_items >= INT32_MAX || feat_dim < 1 || feat_dim > (1 << 20))
        return mmrec__set_error(MMREC_EINVAL, func,
                                "num_items %lld, feat_dim %lld: each must be >= 1 (num_items "
                                "below 2^31 - 1, feat_dim at most 2^20)",
                                (long long)num_items, (long long)feat_dim);
    if (num_ks < 1 || num_ks > 64)
        return mmrec__set_error(MMREC_EINVAL, func, "num_ks is %d, expected 1..64", num_ks);
    size_t min_size = MMREC__MIN_SIZE(mmrec_rank_metrics);
    if (out[0].struct_size < min_size)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "out[0].struct_size is %zu, expected at least %zu (set it to "
                                "sizeof(mmrec_rank_metrics))",
                                out[0].struct_size, min_size);
    for (int q = 0; q < num_ks; q++)
        if (ks[q] < 1 || ks[q] > num_items)
            return mmrec__set_error(MMREC_EINVAL, func, "ks[%d] is %d, expected 1..%lld", q,
                                    ks[q], (long long)num_items);
    MMREC_FORWARD_IF(mmrec__metrics_check_finite(features, (size_t)num_items * (size_t)feat_dim,
                                                 "features", func));
    return mmrec__content_pairs(x, name, (size_t)num_items, func);
}

/* 1 / |features[i]| per item, 0 for a zero row. */
static float *mmrec__inverse_norms(const float *features, size_t I, size_t F) {
    float *inv = mmrec__alloc(I * sizeof *inv);
    if (inv == NULL) return NULL;
    for (size_t i = 0; i < I; i++) {
        const float *f = features + i * F;
        double ss = 0.0;
        for (size_t c = 0; c < F; c++) ss += (double)f[c] * (double)f[c];
        inv[i] = ss > 0.0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
    }
    return inv;
}

/* Cosine scores (up to the query's norm) from the raw products. */
MMREC__SIMD_CLONES
static void mmrec__scale_row(float *row, const float *inv, size_t I) {
    for (size_t i = 0; i < I; i++) row[i] *= inv[i];
}

/* The metrics of one-target queries from their ranks (metrics.h). */
static void mmrec__content_metrics(const int64_t *ranks, size_t n_queries, const int *ks,
                                   int num_ks, mmrec_rank_metrics *out) {
    size_t stride = out[0].struct_size;
    size_t min_size = MMREC__MIN_SIZE(mmrec_rank_metrics);
    for (int q = 0; q < num_ks; q++) {
        double hit = 0.0, ndcg = 0.0, mrr = 0.0;
        for (size_t i = 0; i < n_queries; i++)
            if (ranks[i] <= ks[q]) {
                hit += 1.0;
                ndcg += 1.0 / log2((double)ranks[i] + 1.0);
                mrr += 1.0 / (double)ranks[i];
            }
        double den = n_queries ? (double)n_queries : 1.0;
        mmrec_rank_metrics r;
        memset(&r, 0, sizeof r); /* the padding is copied out too */
        r.struct_size = stride;
        r.k = ks[q];
        r.users = (int64_t)n_queries;
        r.recall = hit / den;
        r.ndcg = ndcg / den;
        r.precision = hit / den / (double)ks[q];
        r.hit_rate = hit / den;
        r.mrr = mrr / den;
        memcpy((unsigned char *)out + (size_t)q * stride, &r, min_size);
    }
}

/* ---- zero-shot ---- */

typedef struct mmrec__zero_shot {
    const float *features, *inv;
    size_t I, F;
    const int64_t *ptr;   /* sequences by user, in pair order */
    const int32_t *seq;
    const int64_t *users; /* the users evaluated (sequences of 2 or more) */
    int64_t *ranks;
} mmrec__zero_shot;

static void mmrec__zero_shot_fill(void *ctx, size_t first, size_t n, float *q, void *scratch) {
    const mmrec__zero_shot *j = ctx;
    double *acc = scratch; /* F sums */
    for (size_t r = 0; r < n; r++) {
        size_t u = (size_t)j->users[first + r];
        size_t lo = (size_t)j->ptr[u], hi = (size_t)j->ptr[u + 1] - 1; /* without the last */
        memset(acc, 0, j->F * sizeof *acc);
        for (size_t k = lo; k < hi; k++) {
            const float *f = j->features + (size_t)j->seq[k] * j->F;
            for (size_t c = 0; c < j->F; c++) acc[c] += (double)f[c];
        }
        for (size_t c = 0; c < j->F; c++) q[r * j->F + c] = (float)acc[c];
    }
}

static void mmrec__zero_shot_reduce(void *ctx, size_t first, size_t n, float *scores,
                                    double *sums, void *scratch) {
    const mmrec__zero_shot *j = ctx;
    for (size_t r = 0; r < n; r++) {
        size_t u = (size_t)j->users[first + r];
        size_t lo = (size_t)j->ptr[u], hi = (size_t)j->ptr[u + 1] - 1;
        float *row = scores + r * j->I;
        int32_t target = j->seq[hi];
        mmrec__scale_row(row, j->inv, j->I);
        for (size_t k = lo; k < hi; k++)
            if (j->seq[k] != target) row[j->seq[k]] = NAN;
        j->ranks[first + r] = (int64_t)mmrec__metrics_rank_of(row, j->I, (size_t)target);
    }
}

mmrec_status mmrec_eval_zero_shot(const float *features, int64_t num_items, int64_t feat_dim,
                                  const mmrec_interactions *sequences, const int *ks, int num_ks,
                                  mmrec_rank_metrics *out) {
    MMREC_CHECK_NULL(features);
    MMREC_CHECK_NULL(sequences);
    MMREC_CHECK_NULL(ks);
    MMREC_CHECK_NULL(out);
    MMREC_FORWARD_IF(mmrec__content_check(features, num_items, feat_dim, sequences, "sequences",
                                          ks, num_ks, out, __func__));
    size_t I = (size_t)num_items, F = (size_t)feat_dim;
    size_t U = (size_t)sequences->num_users, n = sequences->count;
    /* each user's items in pair order: a stable counting sort by user */
    int64_t *ptr = mmrec__calloc(U + 1, sizeof *ptr);
    int32_t *seq = mmrec__alloc((n ? n : 1) * sizeof *seq);
    float *inv = mmrec__inverse_norms(features, I, F);
    int64_t *users = NULL, *ranks = NULL;
    mmrec_status s = MMREC_OK;
    if (ptr == NULL || seq == NULL || inv == NULL) goto oom;
    for (size_t k = 0; k < n; k++) ptr[sequences->users[k] + 1]++;
    size_t n_q = 0;
    for (size_t u = 0; u < U; u++) {
        n_q += ptr[u + 1] >= 2;
        ptr[u + 1] += ptr[u];
    }
    for (size_t k = 0; k < n; k++) seq[ptr[sequences->users[k]]++] = (int32_t)sequences->items[k];
    for (size_t u = U; u > 0; u--) ptr[u] = ptr[u - 1]; /* the fill moved each start to the end */
    ptr[0] = 0;
    users = mmrec__alloc((n_q ? n_q : 1) * sizeof *users);
    ranks = mmrec__alloc((n_q ? n_q : 1) * sizeof *ranks);
    if (users == NULL || ranks == NULL) goto oom;
    n_q = 0;
    for (size_t u = 0; u < U; u++)
        if (ptr[u + 1] - ptr[u] >= 2) users[n_q++] = (int64_t)u;
    mmrec__zero_shot job = {features, inv, I, F, ptr, seq, users, ranks};
    mmrec__rows rows = {features, I, F, n_q, 0, F * sizeof(double),
                        mmrec__zero_shot_fill, mmrec__zero_shot_reduce, &job};
    s = mmrec__metrics_rows_run(&rows, NULL, __func__);
    if (s == MMREC_OK) mmrec__content_metrics(ranks, n_q, ks, num_ks, out);
    goto done;
oom:
    s = mmrec__set_error(MMREC_ENOMEM, __func__, "out of memory for %zu sequence pairs", n);
done:
    mmrec__free(ptr);
    mmrec__free(seq);
    mmrec__free(inv);
    mmrec__free(users);
    mmrec__free(ranks);
    return s;
}

/* ---- item-CF ---- */

typedef struct mmrec__cooc_job {
    size_t I;
    const int64_t *uptr, *iptr; /* items by user, users by item (distinct, increasing) */
    const int32_t *uitems, *iusers;
    uint32_t *counts; /* per part: I counters (zero between items) */
    int32_t *touched; /* per part: I */
    int32_t *targets;
} mmrec__cooc_job;

/* Target of each item: the other item sharing the most users, the lower id
 * on ties; -1 when no other item shares a user. */
static void mmrec__cooc_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__cooc_job *j = ctx;
    uint32_t *count = j->counts + (size_t)part * j->I;
    int32_t *touched = j->touched + (size_t)part * j->I;
    for (size_t item = lo; item < hi; item++) {
        size_t n_touched = 0;
        for (int64_t a = j->iptr[item]; a < j->iptr[item + 1]; a++) {
            size_t u = (size_t)j->iusers[a];
            for (int64_t b = j->uptr[u]; b < j->uptr[u + 1]; b++) {
                int32_t other = j->uitems[b];
                if ((size_t)other != item && count[other]++ == 0) touched[n_touched++] = other;
            }
        }
        int32_t best = -1;
        uint32_t best_count = 0;
        for (size_t t = 0; t < n_touched; t++) {
            int32_t other = touched[t];
            if (count[other] > best_count || (count[other] == best_count && other < best)) {
                best = other;
                best_count = count[other];
            }
            count[other] = 0;
        }
        j->targets[item] = best;
    }
}

typedef struct mmrec__item_cf {
    const float *features, *inv;
    size_t I, F;
    const int64_t *queries; /* the items with a target */
    const int32_t *targets;
    int64_t *ranks;
} mmrec__item_cf;

static void mmrec__item_cf_fill(void *ctx, size_t first, size_t n, float *q, void *scratch) {
    const mmrec__item_cf *j = ctx;
    mmrec__metrics_copy_rows(q, j->features, j->F, j->queries + first, n);
}

static void mmrec__item_cf_reduce(void *ctx, size_t first, size_t n, float *scores, double *sums,
                                  void *scratch) {
    const mmrec__item_cf *j = ctx;
    for (size_t r = 0; r < n; r++) {
        size_t item = (size_t)j->queries[first + r];
        float *row = scores + r * j->I;
        mmrec__scale_row(row, j->inv, j->I);
        row[item] = NAN;
        j->ranks[first + r] = (int64_t)mmrec__metrics_rank_of(row, j->I, (size_t)j->targets[item]);
    }
}

mmrec_status mmrec_eval_item_cf(const float *features, int64_t num_items, int64_t feat_dim,
                                const mmrec_interactions *interactions, const int *ks, int num_ks,
                                mmrec_rank_metrics *out) {
    MMREC_CHECK_NULL(features);
    MMREC_CHECK_NULL(interactions);
    MMREC_CHECK_NULL(ks);
    MMREC_CHECK_NULL(out);
    MMREC_FORWARD_IF(mmrec__content_check(features, num_items, feat_dim, interactions,
                                          "interactions", ks, num_ks, out, __func__));
    size_t I = (size_t)num_items, F = (size_t)feat_dim;
    MMREC_FAIL_IF(interactions->num_users >= INT32_MAX, MMREC_EINVAL,
                  "interactions has %lld users, at most 2^31 - 2 supported",
                  (long long)interactions->num_users);
    size_t U = (size_t)interactions->num_users, n = interactions->count, distinct;
    int64_t *uptr = NULL, *iptr = NULL;
    int32_t *uitems = NULL, *iusers = NULL;
    int64_t *queries = NULL;
    float *inv = NULL;
    mmrec__cooc_job cj = {I, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    mmrec__item_cf job = {features, NULL, I, F, NULL, NULL, NULL};
    mmrec_status s = mmrec__group_by_user(interactions->users, interactions->items, n, U, I, 0, 0,
                                          "interactions ", &uptr, &uitems, &distinct, __func__);
    if (s != MMREC_OK) return s;
    /* users by item: the same grouping with the roles swapped */
    s = mmrec__group_by_user(interactions->items, interactions->users, n, I, U, 0, 0,
                             "interactions ", &iptr, &iusers, &distinct, __func__);
    if (s != MMREC_OK) goto done;
    cj.uptr = uptr;
    cj.uitems = uitems;
    cj.iptr = iptr;
    cj.iusers = iusers;
    size_t grain = 16;
    int parts = mmrec__parallel_parts(I, grain);
    cj.counts = mmrec__calloc((size_t)parts * I, sizeof *cj.counts);
    cj.touched = mmrec__alloc((size_t)parts * I * sizeof *cj.touched);
    cj.targets = mmrec__alloc(I * sizeof *cj.targets);
    job.inv = inv = mmrec__inverse_norms(features, I, F);
    if (cj.counts == NULL || cj.touched == NULL || cj.targets == NULL || inv == NULL) goto oom;
    mmrec__parallel_for(I, parts, mmrec__cooc_chunk, &cj);
    size_t n_q = 0;
    for (size_t i = 0; i < I; i++) n_q += cj.targets[i] >= 0;
    queries = mmrec__alloc((n_q ? n_q : 1) * sizeof *queries);
    job.ranks = mmrec__alloc((n_q ? n_q : 1) * sizeof *job.ranks);
    if (queries == NULL || job.ranks == NULL) goto oom;
    n_q = 0;
    for (size_t i = 0; i < I; i++)
        if (cj.targets[i] >= 0) queries[n_q++] = (int64_t)i;
    job.queries = queries;
    job.targets = cj.targets;
    mmrec__rows rows = {features, I, F, n_q, 0, 0, mmrec__item_cf_fill, mmrec__item_cf_reduce,
                        &job};
    s = mmrec__metrics_rows_run(&rows, NULL, __func__);
    if (s == MMREC_OK) mmrec__content_metrics(job.ranks, n_q, ks, num_ks, out);
    goto done;
oom:
    s = mmrec__set_error(MMREC_ENOMEM, __func__, "out of memory counting co-occurrences of %zu "
                         "items", I);
done:
    mmrec__free(uptr);
    mmrec__free(uitems);
    mmrec__free(iptr);
    mmrec__free(iusers);
    mmrec__free(cj.counts);
    mmrec__free(cj.touched);
    mmrec__free(cj.targets);
    mmrec__free(inv);
    mmrec__free(queries);
    mmrec__free(job.ranks);
    return s;
}

/* ---- mask-modality ---- */

mmrec_status mmrec_eval_mask_modality(float *features, int64_t num_items, int64_t dim,
                                      int64_t col_begin, int64_t col_end, double ratio,
                                      uint64_t seed) {
    MMREC_CHECK_NULL(features);
    MMREC_FAIL_IF(num_items < 1 || dim < 1, MMREC_EINVAL,
                  "num_items %lld, dim %lld: each must be >= 1", (long long)num_items,
                  (long long)dim);
    MMREC_FAIL_IF(col_begin < 0 || col_end <= col_begin || col_end > dim, MMREC_EINVAL,
                  "col_begin %lld, col_end %lld: expected 0 <= col_begin < col_end <= dim (%lld)",
                  (long long)col_begin, (long long)col_end, (long long)dim);
    MMREC_FAIL_IF(!(ratio >= 0.0 && ratio <= 1.0), MMREC_EINVAL,
                  "ratio is %g, expected 0 .. 1", ratio);
    size_t total;
    MMREC_FAIL_IF(!mmrec__mul_size((size_t)num_items, (size_t)dim, &total) ||
                      total > SIZE_MAX / sizeof(float),
                  MMREC_EINVAL, "num_items %lld x dim %lld is too large", (long long)num_items,
                  (long long)dim);
    uint64_t I = (uint64_t)num_items;
    uint64_t m = (uint64_t)floor(ratio * (double)num_items + 0.5);
    if (m > I) m = I;
    mmrec__rng_state rng;
    mmrec__rng_seed(&rng, seed);
    size_t width = (size_t)(col_end - col_begin);
    for (uint64_t i = 0; i < I && m > 0; i++)
        if (mmrec__rng_below(&rng, I - i) < m) {
            memset(features + (size_t)i * (size_t)dim + (size_t)col_begin, 0,
                   width * sizeof *features);
            m--;
        }
    return MMREC_OK;
}
