/* Exact top-K search (index.h). The items are cut into blocks of a size
 * fixed by the call's shape (never by the thread count); the blocks are
 * split over the pool, each part keeping one bounded heap per query
 * (kernels/topk.c), and the parts' heaps are merged by (score desc, id
 * asc), so the result does not depend on how many parts ran.
 *
 * A block's scores, every query vector against every item vector: for up
 * to MMREC__INDEX_ROW_SCORER_MAX query vectors in all (one query, a small
 * batch, a multi-vector query), the row scorer (kernels/dot.c), which reads
 * each tile of 16 item vectors once for all of them, 16-bit ones without
 * widening when the CPU has AVX-512. More query vectors, when the CPU has
 * AVX-512 (and dim <= 256), go to the full-ranking scorer (kernels/score.c),
 * groups of 64 query vectors against runs of 6 items, each score one
 * multiply-add chain whatever its place: for single-vector queries the
 * scores are compared in registers with each query's K-th best so far, so
 * only the few that can enter leave the registers; for MaxSim every score
 * comes back (thresholds -inf). Otherwise one BLAS product per block
 * (mmrec__sgemm_serial: BLAS's order within a block is fixed by the block,
 * not by the thread). 16-bit vectors are widened into per-part scratch
 * first except for the row scorer on AVX-512. MaxSim then takes per query and item the sum (or
 * max) over query vectors of the max over item vectors. Each query's
 * filter sets the scores of its excluded, not-allowed items to -inf (which
 * never enters a heap), and the heap scan skips runs that cannot beat the
 * K-th best kept so far.
 *
 * One single-vector query whose allow list is short (at most 1/16 of the
 * items) scores only its allowed rows, with the same row scorer.
 *
 * Memory: one allocation per call holds the normalized queries, the
 * filters' sorted rows and every part's scratch. */
#include "index_internal.h"
#include "../cache/cache_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Scores of one block, all queries: [num_queries, block] floats. */
#define MMREC__INDEX_BLOCK_FLOATS ((size_t)1 << 16)
/* Widened vectors of one block (16-bit storage): floats. */
#define MMREC__INDEX_WIDEN_FLOATS ((size_t)1 << 15)
#define MMREC__INDEX_BLOCK_MIN 64
#define MMREC__INDEX_BLOCK_MAX 4096
/* Calls with at most this many query vectors in all score with the row
 * scorer (each tile of 16 item vectors read once for all of them); more
 * use a BLAS product per block, or the AVX-512 scorer. */
#define MMREC__INDEX_ROW_SCORER_MAX 16
/* One single-vector query whose allow list holds at most 1 / this of the
 * items scores only them (with the row scorer: the same scores as a scan). */
#define MMREC__INDEX_SPARSE_RATIO 16
/* Multiply-adds a part should at least get. */
#define MMREC__INDEX_MIN_WORK ((size_t)1 << 18)

/* One query's filter, as rows of the version. */
typedef struct mmrec__qfilter {
    const int32_t *exclude; /* sorted, unique */
    size_t n_exclude;
    const int32_t *allow;   /* sorted, unique; used when has_allow */
    size_t n_allow;
    bool has_allow;
    const uint64_t *bitmap; /* NULL: none */
    uint64_t bits;
    bool any;
} mmrec__qfilter;

typedef struct mmrec__search_job {
    const mmrec__index_version *v;
    const float *queries; /* [nq, qv, dim] */
    size_t nq, qv, dim, vecs, k, block, n_items;
    const mmrec__qfilter *qf; /* NULL: no query has a filter */
    unsigned char *scratch;   /* parts x part_bytes */
    size_t part_bytes;
    /* offsets within a part's scratch */
    size_t off_hs, off_hi, off_kept, off_ex, off_al, off_scores, off_widen, off_gram;
    size_t off_maxrow; /* MaxSim: one query vector's maxima, block floats */
    /* the AVX-512 scorer: groups of 64 queries packed [dim, 64] each, and
     * per part 64 thresholds a group, 6 x 64 scores and 6 masks */
    const float *packed; /* NULL: not used */
    bool row_scorer;     /* a few query vectors: the row scorer, not BLAS */
    bool half_direct;    /* the row scorer reads 16-bit rows without widening */
    size_t off_row;      /* one widened row (one query with a short allow list) */
    size_t n_groups, off_thr, off_masks;
    /* MaxSim with the AVX-512 scorer: every product of a block, 6 x 64 at a
     * time through a tile (off_tile) */
    bool gram_kernel;
    size_t off_tile;
} mmrec__search_job;

static size_t mmrec__lower_bound32(const int32_t *a, size_t n, size_t x) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((size_t)a[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Sets the scores of rows base .. base + len - 1 that the filter drops to
 * -inf; the cursors move forward over the sorted rows. */
static void mmrec__index_mask(float *row, size_t base, size_t len, const mmrec__qfilter *f,
                              const int64_t *ids, size_t *ex, size_t *al) {
    if (f->has_allow) {
        size_t c = *al;
        for (size_t j = 0; j < len; j++) {
            while (c < f->n_allow && (size_t)f->allow[c] < base + j) c++;
            if (c == f->n_allow || (size_t)f->allow[c] != base + j) row[j] = -INFINITY;
        }
        *al = c;
    }
    if (f->bitmap)
        for (size_t j = 0; j < len; j++) {
            uint64_t id = (uint64_t)ids[base + j];
            if (id >= f->bits || !((f->bitmap[id >> 6] >> (id & 63)) & 1u)) row[j] = -INFINITY;
        }
    size_t c = *ex;
    for (; c < f->n_exclude && (size_t)f->exclude[c] < base + len; c++)
        row[(size_t)f->exclude[c] - base] = -INFINITY;
    *ex = c;
}

/* Whether the filter keeps `row`; rows are asked in increasing order (the
 * cursors move forward). */
static bool mmrec__index_passes(const mmrec__qfilter *f, size_t row, const int64_t *ids,
                                size_t *ex, size_t *al) {
    size_t c = *ex;
    while (c < f->n_exclude && (size_t)f->exclude[c] < row) c++;
    *ex = c;
    if (c < f->n_exclude && (size_t)f->exclude[c] == row) return false;
    if (f->has_allow) {
        c = *al;
        while (c < f->n_allow && (size_t)f->allow[c] < row) c++;
        *al = c;
        if (c == f->n_allow || (size_t)f->allow[c] != row) return false;
    }
    if (f->bitmap) {
        uint64_t id = (uint64_t)ids[row];
        if (id >= f->bits || !((f->bitmap[id >> 6] >> (id & 63)) & 1u)) return false;
    }
    return true;
}

/* The AVX-512 scorer over one block for every group of queries: each run
 * of items it stops at is offered item by item, in increasing row. */
static void mmrec__search_block_kernel(const mmrec__search_job *j, const float *items,
                                       size_t base, size_t len, float *thr, float *scores,
                                       uint64_t *masks, float *hs, int32_t *hid, size_t *kept,
                                       size_t *ex, size_t *al) {
    enum { USERS = MMREC__SCORE_USERS };
    size_t K = j->k;
    for (size_t g = 0; g < j->n_groups; g++) {
        const float *packed = j->packed + g * j->dim * USERS;
        float *t = thr + g * USERS;
        /* a last group of at most 48 queries: the three-quarter kernel */
        bool narrow = j->nq - g * USERS <= 48;
        size_t run = narrow ? MMREC__SCORE_RUN48 : MMREC__SCORE_RUN;
        for (size_t i = 0;
             (i = narrow ? mmrec__score_find48(packed, items, j->dim, i, len, t, scores, masks)
                         : mmrec__score_find(packed, items, j->dim, i, len, t, scores, masks)) <
             len;
             i += run)
            for (size_t q = 0; q < run && i + q < len; q++)
                for (uint64_t m = masks[q]; m != 0; m &= m - 1) {
                    size_t r = (size_t)__builtin_ctzll(m), n = g * USERS + r, row = base + i + q;
                    float s = scores[q * USERS + r];
                    if (!(s > t[r])) continue; /* raised by an earlier item of the run */
                    if (j->qf && j->qf[n].any &&
                        !mmrec__index_passes(&j->qf[n], row, j->v->ids, &ex[n], &al[n]))
                        continue;
                    float *h = hs + n * K;
                    mmrec__topk_offer(h, hid + n * K, &kept[n], K, s, (int32_t)row);
                    t[r] = kept[n] < K ? -INFINITY : h[0];
                }
    }
}

/* The max over `vecs` consecutive values of g, for `len` items: the loop
 * inlined with a constant vecs vectorizes (strided loads). */
static inline __attribute__((always_inline)) void
mmrec__maxsim_max(const float *g, size_t len, size_t vecs, float *m) {
    for (size_t i = 0; i < len; i++) {
        float x = g[i * vecs];
        for (size_t e = 1; e < vecs; e++) x = g[i * vecs + e] > x ? g[i * vecs + e] : x;
        m[i] = x;
    }
}

/* MaxSim from the products of a block: gram [nq * qv, len * vecs] ->
 * scores [nq, len], per query and item the sum (or max) over its query
 * vectors, in their order, of the max over the item's vectors; `row` is
 * scratch of len floats. */
MMREC__SIMD_CLONES
static void mmrec__maxsim_reduce(const float *gram, size_t nq, size_t qv, size_t vecs,
                                 size_t len, bool sum, float *scores, float *row) {
    size_t cols = len * vecs;
    for (size_t n = 0; n < nq; n++) {
        float *s = scores + n * len;
        for (size_t q = 0; q < qv; q++) {
            const float *g = gram + (n * qv + q) * cols;
            float *m = q == 0 ? s : row;
            switch (vecs) {
            case 1: mmrec__maxsim_max(g, len, 1, m); break;
            case 2: mmrec__maxsim_max(g, len, 2, m); break;
            case 4: mmrec__maxsim_max(g, len, 4, m); break;
            case 8: mmrec__maxsim_max(g, len, 8, m); break;
            default: mmrec__maxsim_max(g, len, vecs, m); break;
            }
            if (q == 0) {
                if (sum)
                    for (size_t i = 0; i < len; i++) s[i] = 0.0f + s[i];
                continue;
            }
            if (sum)
                for (size_t i = 0; i < len; i++) s[i] += m[i];
            else
                for (size_t i = 0; i < len; i++) s[i] = m[i] > s[i] ? m[i] : s[i];
        }
    }
}

/* Every product of the query vectors with the `cols` item vectors of a
 * block into gram [nq * qv, cols], by the AVX-512 scorer with every
 * threshold -inf: it stops at every run of 6 items and hands back its
 * 6 x 64 scores in `tile`. A run it passes over holds no score above -inf
 * (-inf or NaN from an overflow): its products are written as -inf. */
static void mmrec__search_gram_kernel(const mmrec__search_job *j, const float *items,
                                      size_t cols, float *gram, float *thr, float *tile,
                                      uint64_t *masks) {
    enum { RUN = MMREC__SCORE_RUN, USERS = MMREC__SCORE_USERS };
    size_t nqv = j->nq * j->qv;
    for (size_t g = 0; g < j->n_groups; g++) {
        const float *packed = j->packed + g * j->dim * USERS;
        size_t first = g * USERS, rows = nqv - first < USERS ? nqv - first : USERS;
        for (size_t r = 0; r < USERS; r++) thr[r] = r < rows ? -INFINITY : INFINITY;
        size_t next = 0; /* the first column not yet written */
        for (size_t i = 0;
             (i = mmrec__score_find(packed, items, j->dim, i, cols, thr, tile, masks)) < cols;
             i += RUN) {
            for (size_t r = 0; r < rows; r++) {
                float *dst = gram + (first + r) * cols;
                for (size_t c = next; c < i; c++) dst[c] = -INFINITY;
                for (size_t q = 0; q < RUN && i + q < cols; q++) dst[i + q] = tile[q * USERS + r];
            }
            next = i + RUN < cols ? i + RUN : cols;
        }
        for (size_t r = 0; r < rows; r++)
            for (size_t c = next; c < cols; c++) gram[(first + r) * cols + c] = -INFINITY;
    }
}

static void mmrec__search_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__search_job *j = ctx;
    const mmrec__index_version *v = j->v;
    unsigned char *p = j->scratch + (size_t)part * j->part_bytes;
    float *hs = (float *)(void *)(p + j->off_hs);
    int32_t *hid = (int32_t *)(void *)(p + j->off_hi);
    size_t *kept = (size_t *)(void *)(p + j->off_kept);
    size_t *ex = (size_t *)(void *)(p + j->off_ex), *al = (size_t *)(void *)(p + j->off_al);
    float *scores = (float *)(void *)(p + j->off_scores);
    float *widen = (float *)(void *)(p + j->off_widen), *gram = (float *)(void *)(p + j->off_gram);
    float *maxrow = (float *)(void *)(p + j->off_maxrow);
    size_t nq = j->nq, qv = j->qv, dim = j->dim, vecs = j->vecs, K = j->k, B = j->block;
    size_t row_elems = vecs * dim, elem = mmrec__index_elem_size(v->storage);
    if (j->qf)
        for (size_t n = 0; n < nq; n++) {
            ex[n] = mmrec__lower_bound32(j->qf[n].exclude, j->qf[n].n_exclude, lo * B);
            al[n] = mmrec__lower_bound32(j->qf[n].allow, j->qf[n].n_allow, lo * B);
        }
    float *thr = (float *)(void *)(p + j->off_thr);
    uint64_t *masks = (uint64_t *)(void *)(p + j->off_masks);
    float *tile = (float *)(void *)(p + j->off_tile);
    if (j->packed && !j->gram_kernel)
        for (size_t r = 0; r < j->n_groups * MMREC__SCORE_USERS; r++)
            thr[r] = r < nq ? -INFINITY : INFINITY;
    for (size_t b = lo; b < hi; b++) {
        size_t base = b * B, len = j->n_items - base < B ? j->n_items - base : B;
        const unsigned char *src = (const unsigned char *)v->vectors + base * row_elems * elem;
        const float *items = (const float *)(const void *)src;
        if (v->storage != MMREC_INDEX_F32 && !j->half_direct) {
            mmrec__cache_widen((mmrec_cache_dtype)v->storage, src, widen, len * row_elems);
            items = widen;
        }
        if (j->packed && !j->gram_kernel) {
            mmrec__search_block_kernel(j, items, base, len, thr, scores, masks, hs, hid, kept,
                                       ex, al);
            continue;
        }
        /* every query vector against every item vector: [nq * qv, len * vecs] */
        size_t cols = len * vecs;
        float *dst = vecs == 1 && qv == 1 ? scores : gram;
        if (j->half_direct) {
            const uint16_t *half = (const uint16_t *)(const void *)src;
            bool done = mmrec__dot_rows_half(j->queries, nq * qv, half,
                                             v->storage == MMREC_INDEX_BF16, cols, dim, dst, cols);
            assert(done);
            (void)done;
        } else if (j->row_scorer) {
            mmrec__dot_rows(j->queries, nq * qv, items, cols, dim, dst, cols);
        } else if (j->gram_kernel) {
            mmrec__search_gram_kernel(j, items, cols, dst, thr, tile, masks);
        } else {
            mmrec__sgemm_serial(false, true, nq * qv, cols, dim, 1.0f, j->queries, dim, items,
                                dim, 0.0f, dst, cols);
        }
        if (dst == gram)
            mmrec__maxsim_reduce(gram, nq, qv, vecs, len, v->combine == MMREC_INDEX_COMBINE_SUM,
                                 scores, maxrow);
        for (size_t n = 0; n < nq; n++) {
            float *row = scores + n * len;
            if (j->qf && j->qf[n].any)
                mmrec__index_mask(row, base, len, &j->qf[n], v->ids, &ex[n], &al[n]);
            mmrec__topk_scan(row, base, len, K, hs + n * K, hid + n * K, &kept[n]);
        }
    }
}

/* One single-vector query with a short allow list: its allowed rows, in
 * increasing order, scored one by one into part 0's heap. */
static void mmrec__search_allowed(const mmrec__search_job *j, float *wide) {
    const mmrec__index_version *v = j->v;
    const mmrec__qfilter *f = &j->qf[0];
    mmrec__qfilter rest = *f; /* the exclude list and bitmap; the allow list is the loop */
    rest.has_allow = false;
    unsigned char *p = j->scratch;
    float *hs = (float *)(void *)(p + j->off_hs);
    int32_t *hid = (int32_t *)(void *)(p + j->off_hi);
    size_t *kept = (size_t *)(void *)(p + j->off_kept), ex = 0, al = 0, d = j->dim;
    size_t elem = mmrec__index_elem_size(v->storage);
    for (size_t c = 0; c < f->n_allow; c++) {
        size_t row = (size_t)f->allow[c];
        if (!mmrec__index_passes(&rest, row, v->ids, &ex, &al)) continue;
        const unsigned char *src = (const unsigned char *)v->vectors + row * d * elem;
        float s;
        if (v->storage == MMREC_INDEX_F32) {
            mmrec__dot_rows(j->queries, 1, (const float *)(const void *)src, 1, d, &s, 1);
        } else if (!mmrec__dot_rows_half(j->queries, 1, (const uint16_t *)(const void *)src,
                                         v->storage == MMREC_INDEX_BF16, 1, d, &s, 1)) {
            mmrec__cache_widen((mmrec_cache_dtype)v->storage, src, wide, d);
            mmrec__dot_rows(j->queries, 1, wide, 1, d, &s, 1);
        }
        mmrec__topk_offer(hs, hid, kept, j->k, s, (int32_t)row);
    }
}

static int mmrec__cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The rows of the ids in the index, sorted and unique, into dst; returns
 * their count. */
static size_t mmrec__index_rows(const mmrec__index_version *v, const int64_t *ids, size_t n,
                                int32_t *dst) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t r = mmrec__index_row_of(v, ids[i]);
        if (r >= 0) dst[m++] = (int32_t)r;
    }
    qsort(dst, m, sizeof *dst, mmrec__cmp_i32);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (u == 0 || dst[i] != dst[u - 1]) dst[u++] = dst[i];
    return u;
}

/* Bump allocation within one buffer: each piece 64-byte aligned. */
static size_t mmrec__take(size_t *at, size_t bytes) {
    size_t off = *at;
    *at += (bytes + 63) & ~(size_t)63;
    return off;
}

static mmrec_status mmrec__index_search(const mmrec_index *index, const float *queries,
                                        size_t num_queries, int64_t query_vectors, int64_t dim,
                                        int64_t k, const mmrec_index_filter *filters,
                                        int64_t *ids_out, float *scores_out, size_t *counts_out,
                                        const char *func) {
    MMREC_CHECK_NULL_FOR(func, index);
    MMREC_CHECK_NULL_FOR(func, queries);
    MMREC_CHECK_NULL_FOR(func, ids_out);
    MMREC_CHECK_NULL_FOR(func, scores_out);
    MMREC_FAIL_IF_FOR(func, num_queries < 1, MMREC_EINVAL, "num_queries is 0, expected >= 1");
    MMREC_FAIL_IF_FOR(func, query_vectors < 1, MMREC_EINVAL,
                      "query_vectors is %lld, expected >= 1", (long long)query_vectors);
    MMREC_FAIL_IF_FOR(func, k < 1, MMREC_EINVAL, "k is %lld, expected >= 1", (long long)k);
    MMREC_FAIL_IF_FOR(func, dim < 1, MMREC_EINVAL, "dim is %lld, expected >= 1", (long long)dim);
    size_t nq = num_queries, qv = (size_t)query_vectors, d = (size_t)dim, qn;
    MMREC_FAIL_IF_FOR(func, !mmrec__mul_size(nq, qv, &qn) || !mmrec__mul_size(qn, d, &qn) ||
                                qn > SIZE_MAX / 64,
                      MMREC_EINVAL, "%zu queries of %zu vectors of dim %zu are too large", nq,
                      qv, d);
    size_t stride = 0, n_rows = 0;
    if (filters) {
        stride = filters[0].struct_size;
        MMREC_FAIL_IF_FOR(func, stride < MMREC__MIN_SIZE(mmrec_index_filter), MMREC_EINVAL,
                          "filters[0].struct_size is %zu, expected at least %zu (use "
                          "mmrec_index_filter_init)",
                          stride, (size_t)MMREC__MIN_SIZE(mmrec_index_filter));
        for (size_t n = 0; n < nq; n++) {
            const mmrec_index_filter *f =
                (const mmrec_index_filter *)(const void *)((const char *)filters + n * stride);
            MMREC_FAIL_IF_FOR(func, f->struct_size != stride, MMREC_EINVAL,
                              "filters[%zu].struct_size is %zu, filters[0].struct_size %zu", n,
                              f->struct_size, stride);
            mmrec_index_filter c;
            MMREC_FORWARD_IF(mmrec__config_merge(&c, sizeof c,
                                                 MMREC__MIN_SIZE(mmrec_index_filter), f, func));
            MMREC_FAIL_IF_FOR(func, c.exclude == NULL && c.num_exclude > 0, MMREC_EINVAL,
                              "filters[%zu].exclude is NULL with num_exclude %zu", n,
                              c.num_exclude);
            MMREC_FAIL_IF_FOR(func, c.allow == NULL && c.num_allow > 0, MMREC_EINVAL,
                              "filters[%zu].allow is NULL with num_allow %zu", n, c.num_allow);
            MMREC_FAIL_IF_FOR(func, c.num_exclude > SIZE_MAX / 8 - n_rows ||
                                        c.num_allow > SIZE_MAX / 8 - n_rows - c.num_exclude,
                              MMREC_EINVAL, "filters[%zu] lists too many ids", n);
            n_rows += c.num_exclude + c.num_allow;
        }
    }
    for (size_t i = 0; i < qn; i++)
        MMREC_FAIL_IF_FOR(func, !isfinite(queries[i]), MMREC_ENUMERIC,
                          "queries: query %zu, vector %zu, element %zu is %g", i / (qv * d),
                          i / d % qv, i % d, (double)queries[i]);

    mmrec__index_version *v;
    MMREC_FORWARD_IF(mmrec__index_acquire(index, &v, func));
    mmrec_status s = MMREC_OK;
    if (d != v->dim) {
        s = mmrec__set_error(MMREC_ESHAPE, func, "dim is %zu, the index's vectors have dim %zu",
                             d, v->dim);
        mmrec__index_version_release(v);
        return s;
    }
    size_t vecs = v->vecs, n_items = v->n_items;
    size_t K = (uint64_t)k < n_items ? (size_t)k : n_items;
    size_t nqv = nq * qv; /* query vectors in all */
    bool multi = vecs > 1 || qv > 1;
    bool row_scorer = nqv <= MMREC__INDEX_ROW_SCORER_MAX;
    bool usable = !row_scorer && mmrec__score_kernel_usable(d);
    bool kernel = usable && !multi, gram_kernel = usable && multi;
    size_t n_groups = usable ? (nqv + MMREC__SCORE_USERS - 1) / MMREC__SCORE_USERS : 0;
    bool half_direct = row_scorer && v->storage != MMREC_INDEX_F32 && mmrec__dot_half_usable(d);
    bool widen = v->storage != MMREC_INDEX_F32 && !half_direct;
    /* the block: its scores, its widened vectors and its MaxSim products in
     * cache (the AVX-512 scorer keeps its scores in registers) */
    size_t per_item = kernel ? 1 : nqv * vecs;
    size_t block = MMREC__INDEX_BLOCK_FLOATS / per_item;
    if (widen && MMREC__INDEX_WIDEN_FLOATS / (vecs * d) < block)
        block = MMREC__INDEX_WIDEN_FLOATS / (vecs * d);
    block = block / MMREC__INDEX_BLOCK_MIN * MMREC__INDEX_BLOCK_MIN;
    if (block < MMREC__INDEX_BLOCK_MIN) block = MMREC__INDEX_BLOCK_MIN;
    if (block > MMREC__INDEX_BLOCK_MAX) block = MMREC__INDEX_BLOCK_MAX;
    size_t n_blocks = (n_items + block - 1) / block;
    size_t work = block * d * (usable ? n_groups * MMREC__SCORE_USERS : nqv * vecs);
    int parts = mmrec__parallel_parts(n_blocks, mmrec__grain(work, MMREC__INDEX_MIN_WORK));
    size_t at = 0, heap_bytes;
    mmrec__search_job j = {.v = v, .queries = queries, .nq = nq, .qv = qv, .dim = d,
                           .vecs = vecs, .k = K, .block = block, .n_items = n_items};
    if (!mmrec__mul_size(nq, K, &heap_bytes) || heap_bytes > SIZE_MAX / 16 / 64) {
        mmrec__index_version_release(v);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory for %zu queries of k %zu",
                                nq, K);
    }
    j.off_hs = mmrec__take(&at, heap_bytes * sizeof(float));
    j.off_hi = mmrec__take(&at, heap_bytes * sizeof(int32_t));
    j.off_kept = mmrec__take(&at, nq * sizeof(size_t));
    j.off_ex = mmrec__take(&at, nq * sizeof(size_t));
    j.off_al = mmrec__take(&at, nq * sizeof(size_t));
    j.off_scores = mmrec__take(&at, (kernel ? MMREC__SCORE_RUN48 * MMREC__SCORE_USERS
                                            : nq * block) * sizeof(float));
    j.off_thr = mmrec__take(&at, n_groups * MMREC__SCORE_USERS * sizeof(float));
    j.off_masks = mmrec__take(&at, usable ? MMREC__SCORE_RUN48 * sizeof(uint64_t) : 0);
    j.off_tile = mmrec__take(&at, gram_kernel ? MMREC__SCORE_RUN * MMREC__SCORE_USERS *
                                                    sizeof(float)
                                              : 0);
    j.gram_kernel = gram_kernel;
    j.off_widen = mmrec__take(&at, widen ? block * vecs * d * sizeof(float) : 0);
    j.half_direct = half_direct;
    j.row_scorer = row_scorer;
    bool sparse_ok = nq == 1 && !multi; /* then a short allow list is scored alone */
    j.off_row = mmrec__take(&at, sparse_ok ? d * sizeof(float) : 0);
    j.off_gram = mmrec__take(&at, multi ? nq * qv * block * vecs * sizeof(float) : 0);
    j.off_maxrow = mmrec__take(&at, multi ? block * sizeof(float) : 0);
    j.part_bytes = at;
    size_t all = 0;
    size_t off_parts = mmrec__take(&all, (size_t)parts * j.part_bytes);
    size_t off_q = mmrec__take(&all, v->metric == MMREC_INDEX_COSINE ? qn * sizeof(float) : 0);
    size_t off_qf = mmrec__take(&all, filters ? nq * sizeof(mmrec__qfilter) : 0);
    size_t off_rows = mmrec__take(&all, n_rows * sizeof(int32_t));
    size_t off_packed = mmrec__take(&all, n_groups * d * MMREC__SCORE_USERS * sizeof(float));
    unsigned char *mem = mmrec__alloc(all);
    if (mem == NULL) {
        mmrec__index_version_release(v);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory for the search's scratch");
    }
    j.scratch = mem + off_parts;
    if (v->metric == MMREC_INDEX_COSINE) {
        float *q = (float *)(void *)(mem + off_q);
        memcpy(q, queries, qn * sizeof *q);
        mmrec__index_normalize(q, nq * qv, d);
        j.queries = q;
    }
    if (usable) { /* groups of 64 query vectors, [dim, 64] each */
        float *packed = (float *)(void *)(mem + off_packed);
        for (size_t g = 0; g < n_groups; g++)
            for (size_t e = 0; e < d; e++)
                for (size_t r = 0; r < MMREC__SCORE_USERS; r++) {
                    size_t n = g * MMREC__SCORE_USERS + r;
                    packed[(g * d + e) * MMREC__SCORE_USERS + r] = n < nqv ? j.queries[n * d + e]
                                                                          : 0.0f;
                }
        j.packed = packed;
        j.n_groups = n_groups;
    }
    if (filters) {
        mmrec__qfilter *qf = (mmrec__qfilter *)(void *)(mem + off_qf);
        int32_t *rows = (int32_t *)(void *)(mem + off_rows);
        bool any = false;
        for (size_t n = 0; n < nq; n++) {
            mmrec_index_filter c;
            s = mmrec__config_merge(&c, sizeof c, MMREC__MIN_SIZE(mmrec_index_filter),
                                    (const char *)filters + n * stride, func);
            assert(s == MMREC_OK); /* checked above */
            mmrec__qfilter *f = &qf[n];
            f->exclude = rows;
            f->n_exclude = c.num_exclude ? mmrec__index_rows(v, c.exclude, c.num_exclude, rows) : 0;
            rows += f->n_exclude;
            f->allow = rows;
            f->has_allow = c.allow != NULL;
            f->n_allow = c.num_allow ? mmrec__index_rows(v, c.allow, c.num_allow, rows) : 0;
            rows += f->n_allow;
            f->bitmap = c.allow_bitmap;
            f->bits = c.allow_bitmap ? c.allow_bitmap_bits : 0;
            f->any = f->n_exclude > 0 || f->has_allow || f->bitmap != NULL;
            any = any || f->any;
        }
        j.qf = any ? qf : NULL;
    }
    for (int part = 0; part < parts; part++)
        memset(j.scratch + (size_t)part * j.part_bytes + j.off_kept, 0, nq * sizeof(size_t));
    if (sparse_ok && j.qf && j.qf[0].has_allow &&
        j.qf[0].n_allow <= n_items / MMREC__INDEX_SPARSE_RATIO)
        mmrec__search_allowed(&j, (float *)(void *)(j.scratch + j.off_row));
    else
        mmrec__parallel_for(n_blocks, parts, mmrec__search_chunk, &j);

    /* merge the parts into part 0's heaps, sort, write the rows */
    float *hs0 = (float *)(void *)(j.scratch + j.off_hs);
    int32_t *hi0 = (int32_t *)(void *)(j.scratch + j.off_hi);
    size_t *kept0 = (size_t *)(void *)(j.scratch + j.off_kept);
    for (size_t n = 0; n < nq; n++) {
        float *hs = hs0 + n * K;
        int32_t *hid = hi0 + n * K;
        for (int part = 1; part < parts; part++) {
            const unsigned char *p = j.scratch + (size_t)part * j.part_bytes;
            const float *ps = (const float *)(const void *)(p + j.off_hs) + n * K;
            const int32_t *pi = (const int32_t *)(const void *)(p + j.off_hi) + n * K;
            size_t pk = ((const size_t *)(const void *)(p + j.off_kept))[n];
            for (size_t e = 0; e < pk; e++) mmrec__topk_merge(hs, hid, &kept0[n], K, ps[e], pi[e]);
        }
        mmrec__topk_sort(hs, hid, kept0[n]);
        int64_t *io = ids_out + n * (size_t)k;
        float *so = scores_out + n * (size_t)k;
        for (size_t r = 0; r < kept0[n]; r++) {
            io[r] = v->ids[hid[r]];
            so[r] = hs[r];
        }
        for (size_t r = kept0[n]; r < (size_t)k; r++) {
            io[r] = -1;
            so[r] = -INFINITY;
        }
        if (counts_out) counts_out[n] = kept0[n];
    }
    mmrec__free(mem);
    mmrec__index_version_release(v);
    return MMREC_OK;
}

mmrec_status mmrec_index_search(const mmrec_index *index, const float *queries,
                                size_t num_queries, int64_t dim, int64_t k,
                                const mmrec_index_filter *filters, int64_t *ids_out,
                                float *scores_out, size_t *counts_out) {
    return mmrec__index_search(index, queries, num_queries, 1, dim, k, filters, ids_out,
                               scores_out, counts_out, __func__);
}

mmrec_status mmrec_index_search_multi(const mmrec_index *index, const float *queries,
                                      size_t num_queries, int64_t query_vectors, int64_t dim,
                                      int64_t k, const mmrec_index_filter *filters,
                                      int64_t *ids_out, float *scores_out, size_t *counts_out) {
    return mmrec__index_search(index, queries, num_queries, query_vectors, dim, k, filters,
                               ids_out, scores_out, counts_out, __func__);
}
