/* AlignRec's item-item kNN content graph (shared/METHODS.md, AlignRec,
 * "Item-item view"), built as the MMRec / AlignRec code builds it:
 *   S = norm(X) norm(X)^T, each row divided by max(|x|, 1e-12) (F.normalize);
 *   row i keeps the top k of S[i, :] (torch.topk; ties to the lower id),
 *   with weight S_ij (binary: 1); deg_i = sum_j w_ij over row i;
 *   A_ij = w_ij / sqrt(deg_i deg_j), 0 when either degree is <= 0.
 * S is never formed: a block of rows (normalized) is multiplied against
 * tiles of raw columns, one sgemm per tile, the scores scaled by the
 * columns' inverse norms and fed to a bounded top-k heap per row
 * (kernels/topk.c). Blocks are split over the pool with per-chunk scratch;
 * a row's scores come from the same products whatever the thread count, so
 * the graph has the same bits on any number of threads. A is not
 * symmetric: its transpose is stored for the backward products
 * (propagate.c).
 * Reference: tests/golden/make_golden.py::write_knn. */
#include "graph_internal.h"
#include "../core/config_sizes.h"
#include "../kernels/kernels_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows per block and columns per tile: a tile of scores (256 x 1024
 * floats, 1 MiB) stays in cache between the product and the scan. */
#define MMREC__KNN_BLOCK 256
#define MMREC__KNN_TILE 1024
#define MMREC__KNN_MAX_DIM ((int64_t)1 << 20)

static const mmrec_knn_config mmrec__knn_defaults = {
    .struct_size = sizeof(mmrec_knn_config),
    .k = 10,
    .binary = 0,
};

mmrec_status mmrec_knn_config_init_sized(mmrec_knn_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_knn_config, cfg, size, mmrec__knn_defaults);
}

typedef struct mmrec__knn_entry {
    int32_t id;
    float w;
} mmrec__knn_entry;

static int mmrec__knn_by_id(const void *a, const void *b) {
    int32_t x = ((const mmrec__knn_entry *)a)->id, y = ((const mmrec__knn_entry *)b)->id;
    return (x > y) - (x < y);
}

/* ---- the blocks ---- */

typedef struct mmrec__knn_job {
    const float *x;   /* [I, dim] */
    const float *inv; /* [I] 1 / max(|x_i|, 1e-12) */
    size_t I, dim, k, tile;
    bool binary;
    float *scratch; /* per part: scratch_len floats */
    size_t scratch_len;
    mmrec_graph *g; /* col and val filled with the raw weights */
    double *deg;    /* [I] */
} mmrec__knn_job;

/* Floats of scratch of one part (a multiple of 16: 64-byte aligned): the
 * block's normalized rows, a tile of scores, the heaps (similarities, then
 * ids) and the entries of one row. */
static size_t mmrec__knn_scratch_len(size_t dim, size_t tile, size_t k) {
    size_t B = MMREC__KNN_BLOCK;
    return (B * dim + B * tile + B * k + B * k + 2 * k + 15) / 16 * 16;
}

MMREC__SIMD_CLONES
static void mmrec__knn_scale(float *row, const float *inv, size_t len) {
    for (size_t c = 0; c < len; c++) row[c] *= inv[c];
}

static void mmrec__knn_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__knn_job *j = ctx;
    size_t B = MMREC__KNN_BLOCK, d = j->dim, K = j->k;
    float *xb = j->scratch + (size_t)part * j->scratch_len;
    float *scores = xb + B * d, *hs = scores + B * j->tile;
    int32_t *hid = (int32_t *)(hs + B * K);
    mmrec__knn_entry *e = (mmrec__knn_entry *)(hid + B * K);
    size_t kept[MMREC__KNN_BLOCK];
    for (size_t b = lo; b < hi; b++) {
        size_t first = b * B, n = j->I - first < B ? j->I - first : B;
        for (size_t r = 0; r < n; r++) {
            const float *src = j->x + (first + r) * d;
            float s = j->inv[first + r];
            for (size_t c = 0; c < d; c++) xb[r * d + c] = src[c] * s;
            kept[r] = 0;
        }
        for (size_t t0 = 0; t0 < j->I; t0 += j->tile) {
            size_t len = j->I - t0 < j->tile ? j->I - t0 : j->tile;
            /* one BLAS call per tile whatever the thread count: the same bits */
            mmrec__sgemm_serial(false, true, n, len, d, 1.0f, xb, d, j->x + t0 * d, d, 0.0f,
                                scores, len);
            for (size_t r = 0; r < n; r++) {
                mmrec__knn_scale(scores + r * len, j->inv + t0, len);
                mmrec__topk_scan(scores + r * len, t0, len, K, hs + r * K, hid + r * K, &kept[r]);
            }
        }
        /* each row in id order, its raw weights and degree */
        for (size_t r = 0; r < n; r++) {
            size_t i = first + r;
            for (size_t p = 0; p < K; p++)
                e[p] = (mmrec__knn_entry){hid[r * K + p], j->binary ? 1.0f : hs[r * K + p]};
            qsort(e, K, sizeof *e, mmrec__knn_by_id);
            double deg = 0.0;
            for (size_t p = 0; p < K; p++) {
                j->g->col[i * K + p] = e[p].id;
                j->g->val[i * K + p] = e[p].w;
                deg += e[p].w;
            }
            j->deg[i] = deg;
        }
    }
}

/* ---- norms ---- */

typedef struct mmrec__knn_norm_job {
    const float *x;
    size_t dim;
    float *inv;
    double *sq; /* [I] squared norms; NaN or inf for a row that is not finite */
} mmrec__knn_norm_job;

static void mmrec__knn_norm_chunk(void *ctx, size_t lo, size_t hi, int part) {
    const mmrec__knn_norm_job *j = ctx;
    for (size_t i = lo; i < hi; i++) {
        const float *r = j->x + i * j->dim;
        double s = 0.0;
        for (size_t c = 0; c < j->dim; c++) s += (double)r[c] * (double)r[c];
        j->sq[i] = s;
        j->inv[i] = (float)(1.0 / fmax(sqrt(s), 1e-12));
    }
}

/* MMREC_ENUMERIC naming the first feature that is NaN or infinite: only
 * the rows whose squared norm is not finite hold one. */
static mmrec_status mmrec__knn_check_finite(const float *x, const double *sq, size_t I, size_t d,
                                            const char *func) {
    for (size_t i = 0; i < I; i++)
        if (!isfinite(sq[i]))
            for (size_t c = 0; c < d; c++)
                if (!isfinite(x[i * d + c]))
                    return mmrec__set_error(MMREC_ENUMERIC, func,
                                            "features at row %zu, column %zu is %g, must be "
                                            "finite",
                                            i, c, (double)x[i * d + c]);
    return MMREC_OK;
}

/* w_ij / sqrt(deg_i deg_j) in place; 0 where a degree is <= 0. */
static void mmrec__knn_normalize(mmrec_graph *g, const double *deg) {
    for (int64_t i = 0; i < g->num_nodes; i++)
        for (int64_t p = g->row_ptr[i]; p < g->row_ptr[i + 1]; p++) {
            double di = deg[i], dj = deg[g->col[p]];
            g->val[p] = di > 0.0 && dj > 0.0 ? (float)(g->val[p] / sqrt(di * dj)) : 0.0f;
        }
}

/* A^T by a counting sort over the columns: each row of A^T comes out in
 * increasing source row. */
static void mmrec__knn_transpose(mmrec_graph *g) {
    size_t N = (size_t)g->num_nodes, nnz = (size_t)g->row_ptr[N];
    int64_t *tp = g->t_row_ptr;
    memset(tp, 0, (N + 1) * sizeof *tp);
    for (size_t j = 0; j < nnz; j++) tp[g->col[j] + 1]++;
    for (size_t c = 0; c < N; c++) tp[c + 1] += tp[c];
    for (size_t r = 0; r < N; r++)
        for (int64_t j = g->row_ptr[r]; j < g->row_ptr[r + 1]; j++) {
            int64_t at = tp[g->col[j]]++;
            g->t_col[at] = (int32_t)r;
            g->t_val[at] = g->val[j];
        }
    for (size_t c = N; c > 0; c--) tp[c] = tp[c - 1];
    tp[0] = 0;
}

mmrec_status mmrec_graph_create_knn(const float *features, int64_t num_items, int64_t dim,
                                    const mmrec_knn_config *cfg, mmrec_graph **out) {
    MMREC_CHECK_NULL(features);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(num_items < 1 || num_items >= INT32_MAX, MMREC_EINVAL,
                  "num_items is %lld, expected 1 .. 2^31 - 2", (long long)num_items);
    MMREC_FAIL_IF(dim < 1 || dim > MMREC__KNN_MAX_DIM, MMREC_EINVAL,
                  "dim is %lld, expected 1 .. 2^20", (long long)dim);
    mmrec_knn_config c = mmrec__knn_defaults;
    if (cfg) MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_knn_config, &c, cfg));
    MMREC_FAIL_IF(c.k < 1 || c.k > num_items, MMREC_EINVAL,
                  "cfg->k is %d, expected 1 .. %lld (num_items)", c.k, (long long)num_items);
    MMREC_FAIL_IF(c.binary != 0 && c.binary != 1, MMREC_EINVAL,
                  "cfg->binary is %d, expected 0 or 1", c.binary);
    size_t I = (size_t)num_items, d = (size_t)dim, K = (size_t)c.k, nnz = I * K;
    size_t tile = I < MMREC__KNN_TILE ? I : MMREC__KNN_TILE;
    size_t n_blocks = (I + MMREC__KNN_BLOCK - 1) / MMREC__KNN_BLOCK;
    size_t parts = (size_t)mmrec__parallel_parts(n_blocks, 1);
    size_t scratch_len = mmrec__knn_scratch_len(d, tile, K);

    mmrec_status s = MMREC_OK;
    float *inv = mmrec__alloc(I * sizeof *inv);
    double *deg = mmrec__alloc(I * sizeof *deg); /* holds the squared norms first */
    float *scratch = NULL;
    mmrec_graph *g = NULL;
    if (inv == NULL || deg == NULL) goto oom;
    mmrec__knn_norm_job nj = {features, d, inv, deg};
    mmrec__parallel_for(I, mmrec__parallel_parts(I, mmrec__grain(d, 1 << 16)),
                        mmrec__knn_norm_chunk, &nj);
    s = mmrec__knn_check_finite(features, deg, I, d, __func__);
    if (s != MMREC_OK) goto done;

    g = mmrec__calloc(1, sizeof *g);
    if (g == NULL) goto oom;
    g->magic = MMREC__GRAPH_MAGIC;
    g->num_nodes = num_items;
    g->row_ptr = mmrec__alloc((I + 1) * sizeof *g->row_ptr);
    g->col = mmrec__alloc(nnz * sizeof *g->col);
    g->val = mmrec__alloc(nnz * sizeof *g->val);
    g->t_row_ptr = mmrec__alloc((I + 1) * sizeof *g->t_row_ptr);
    g->t_col = mmrec__alloc(nnz * sizeof *g->t_col);
    g->t_val = mmrec__alloc(nnz * sizeof *g->t_val);
    scratch = mmrec__alloc(parts * scratch_len * sizeof *scratch);
    if (g->row_ptr == NULL || g->col == NULL || g->val == NULL || g->t_row_ptr == NULL ||
        g->t_col == NULL || g->t_val == NULL || scratch == NULL)
        goto oom;

    for (size_t i = 0; i <= I; i++) g->row_ptr[i] = (int64_t)(i * K);
    mmrec__knn_job job = {features, inv, I, d, K, tile, c.binary == 1, scratch, scratch_len,
                          g, deg};
    mmrec__parallel_for(n_blocks, (int)parts, mmrec__knn_chunk, &job);
    mmrec__knn_normalize(g, deg);
    mmrec__knn_transpose(g);
    *out = g;
    g = NULL;
    goto done;
oom:
    s = mmrec__set_error(MMREC_ENOMEM, __func__,
                         "out of memory for the kNN graph of %zu items (k %zu, dim %zu)", I, K,
                         d);
done:
    mmrec_graph_destroy(g);
    mmrec__free(scratch);
    mmrec__free(inv);
    mmrec__free(deg);
    return s;
}
