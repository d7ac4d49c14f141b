/* The full-row scorer (metrics_internal.h): evaluations that need a query's
 * score of every item before they can use any of them (the rank of one
 * target, a per-user AUC) score whole rows, unlike ranking.c's top-K scan,
 * which streams tiles. A block's rows come from one BLAS product, so the
 * scores of one query are compared only with scores of the same product. */
#include "metrics_internal.h"

#include <string.h>

/* Largest block of scores per chunk, and queries per block. */
#define MMREC__ROWS_BUDGET ((size_t)16 << 20)
#define MMREC__ROWS_MAX_BLOCK 64

typedef struct mmrec__rows_job {
    const mmrec__rows *rows;
    size_t block;
    unsigned char *scratch; /* per chunk: queries, scores, the caller's scratch */
    size_t part_size, scores_offset, user_offset;
    double *sums; /* per block: num_sums */
} mmrec__rows_job;

static size_t mmrec__align64(size_t n) { return (n + 63) & ~(size_t)63; }

static void mmrec__rows_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__rows_job *j = ctx;
    const mmrec__rows *r = j->rows;
    unsigned char *base = j->scratch + (size_t)part * j->part_size;
    float *q = (float *)base, *scores = (float *)(base + j->scores_offset);
    void *user = r->scratch_size ? base + j->user_offset : NULL;
    for (size_t b = lo; b < hi; b++) {
        size_t first = b * j->block;
        size_t n = r->num_queries - first < j->block ? r->num_queries - first : j->block;
        r->fill(r->ctx, first, n, q, user);
        mmrec__sgemm(false, true, n, r->num_items, r->dim, 1.0f, q, r->dim, r->items, r->dim,
                     0.0f, scores, r->num_items);
        double *sums = j->sums + b * r->num_sums;
        memset(sums, 0, r->num_sums * sizeof *sums);
        r->reduce(r->ctx, first, n, scores, sums, user);
    }
}

mmrec_status mmrec__metrics_rows_run(const mmrec__rows *rows, double *totals, const char *func) {
    assert(rows->num_items > 0 && rows->dim > 0);
    for (size_t m = 0; m < rows->num_sums; m++) totals[m] = 0.0;
    if (rows->num_queries == 0) return MMREC_OK;
    size_t row_bytes = rows->num_items * sizeof(float);
    size_t block = MMREC__ROWS_BUDGET / row_bytes;
    if (block < 1) block = 1;
    if (block > MMREC__ROWS_MAX_BLOCK) block = MMREC__ROWS_MAX_BLOCK;
    size_t n_blocks = (rows->num_queries + block - 1) / block;
    int parts = mmrec__parallel_parts(n_blocks, 1);
    mmrec__rows_job job = {rows, block, NULL, 0, 0, 0, NULL};
    job.scores_offset = mmrec__align64(block * rows->dim * sizeof(float));
    job.user_offset = job.scores_offset + mmrec__align64(block * row_bytes);
    job.part_size = job.user_offset + mmrec__align64(rows->scratch_size);
    size_t total = 0, n_sums = 0;
    if (mmrec__mul_size(job.part_size, (size_t)parts, &total) &&
        mmrec__mul_size(n_blocks, rows->num_sums ? rows->num_sums : 1, &n_sums)) {
        job.scratch = mmrec__alloc(total);
        job.sums = mmrec__alloc(n_sums * sizeof *job.sums);
    }
    if (job.scratch == NULL || job.sums == NULL) {
        mmrec__free(job.scratch);
        mmrec__free(job.sums);
        return mmrec__set_error(MMREC_ENOMEM, func,
                                "out of memory for the scores of %zu queries x %zu items",
                                rows->num_queries, rows->num_items);
    }
    mmrec__parallel_for(n_blocks, parts, mmrec__rows_chunk, &job);
    for (size_t b = 0; b < n_blocks; b++)
        for (size_t m = 0; m < rows->num_sums; m++) totals[m] += job.sums[b * rows->num_sums + m];
    mmrec__free(job.scratch);
    mmrec__free(job.sums);
    return MMREC_OK;
}

void mmrec__metrics_copy_rows(float *q, const float *table, size_t dim, const int64_t *ids,
                              size_t n) {
    for (size_t r = 0; r < n; r++)
        memcpy(q + r * dim, table + (size_t)ids[r] * dim, dim * sizeof *q);
}

MMREC__SIMD_CLONES
void mmrec__metrics_count_below(const float *row, size_t n, float s, size_t *lt_out,
                                size_t *le_out) {
    /* 32-bit lane counters (vectorized), flushed before they can wrap */
    size_t lt = 0, le = 0;
    for (size_t i0 = 0; i0 < n; i0 += (size_t)1 << 30) {
        size_t end = n - i0 < ((size_t)1 << 30) ? n : i0 + ((size_t)1 << 30);
        uint32_t a = 0, b = 0;
        for (size_t i = i0; i < end; i++) {
            a += row[i] < s;
            b += row[i] <= s;
        }
        lt += a;
        le += b;
    }
    *lt_out = lt;
    *le_out = le;
}

MMREC__SIMD_CLONES
size_t mmrec__metrics_rank_of(const float *row, size_t n, size_t target) {
    float s = row[target];
    size_t above = 0;
    for (size_t i0 = 0; i0 < n; i0 += (size_t)1 << 30) {
        size_t end = n - i0 < ((size_t)1 << 30) ? n : i0 + ((size_t)1 << 30);
        size_t mid = target < i0 ? i0 : target > end ? end : target;
        uint32_t a = 0;
        for (size_t i = i0; i < mid; i++) a += row[i] >= s; /* lower ids win ties */
        for (size_t i = mid; i < end; i++) a += row[i] > s;  /* the target itself: not > */
        above += a;
    }
    return above + 1;
}
