/* Sequence softmax (losses.h): the next-item in-batch cross-entropy of
 * sequential recommenders as a configuration of the batch softmax. Queries
 * are the B T positions, candidates the B (T + 1) items of the batch; row
 * (b, t) has the positive b (T + 1) + t + 1, the column bias
 * -log popularity[id], weight 1 when ids (b, t) and (b, t + 1) are items
 * (0 otherwise) with weight_mean, and a keep mask made inside the node:
 * every non-padding column whose id is none of user b's ids (the batch
 * softmax then keeps the positive).
 *
 * The mask of user b is built once for its T rows: the columns holding an
 * item, minus, for each of its ids, the columns holding that id, found in
 * the columns sorted by id (a merge sort done before the node, in the
 * arena). Cost O(N log N + B T N / 64) for N = B (T + 1) columns.
 * Reference: IISAN, github.com/GAIR-Lab/IISAN Code_Cached/model/model.py
 * (ModelMM.forward, the in-batch cross-entropy);
 * tests/golden/make_golden.py::write_sequence_softmax. */
#include "losses_internal.h"
#include "../core/config_sizes.h"

#include <math.h>
#include <string.h>

static const mmrec_sequence_softmax_config mmrec__seqsm_defaults = {
    .struct_size = sizeof(mmrec_sequence_softmax_config),
    .debias = 1,
    .temperature = 1.0f,
};

mmrec_status mmrec_sequence_softmax_config_init_sized(mmrec_sequence_softmax_config *cfg,
                                                      size_t size) {
    return MMREC__CONFIG_INIT(mmrec_sequence_softmax_config, cfg, size, mmrec__seqsm_defaults);
}

typedef struct mmrec__seqsm_mask {
    const int64_t *ids;   /* [B, T + 1] */
    const int64_t *order; /* [N]: the columns by id, then by column */
    const uint64_t *base; /* [words]: the columns holding an item */
    size_t batch, seq;    /* B, T */
} mmrec__seqsm_mask;

/* The first place in `order` whose column's id is >= id. */
static size_t mmrec__seqsm_lower(const mmrec__seqsm_mask *m, size_t n, int64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->ids[m->order[mid]] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void mmrec__seqsm_fill(void *ctx, uint64_t *keep, size_t words) {
    const mmrec__seqsm_mask *m = ctx;
    size_t T = m->seq, L = T + 1, n = m->batch * L;
    for (size_t b = 0; b < m->batch; b++) {
        uint64_t *row = keep + b * T * words;
        memcpy(row, m->base, words * sizeof *row);
        for (size_t p = 0; p < L; p++) {
            int64_t id = m->ids[b * L + p];
            if (id == 0) continue;
            size_t i = mmrec__seqsm_lower(m, n, id);
            size_t c0 = (size_t)m->order[i]; /* the id's first column */
            if (!((row[c0 >> 6] >> (c0 & 63)) & 1u)) continue; /* a repeat: done */
            for (; i < n && m->ids[m->order[i]] == id; i++) {
                size_t c = (size_t)m->order[i];
                row[c >> 6] &= ~((uint64_t)1 << (c & 63));
            }
        }
        for (size_t t = 1; t < T; t++) memcpy(row + t * words, row, words * sizeof *row);
    }
}

/* order = 0 .. n-1 sorted by ids[order[i]], ties by column (bottom-up
 * merge sort, stable; tmp holds n entries). */
static void mmrec__seqsm_sort(const int64_t *ids, size_t n, int64_t *order, int64_t *tmp) {
    for (size_t i = 0; i < n; i++) order[i] = (int64_t)i;
    int64_t *src = order, *dst = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) dst[k++] = ids[src[b]] < ids[src[a]] ? src[b++] : src[a++];
            while (a < mid) dst[k++] = src[a++];
            while (b < hi) dst[k++] = src[b++];
        }
        int64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != order) memcpy(order, src, n * sizeof *order);
}

/* The arguments of the batch softmax, in the arena, then the loss. */
static mmrec_status mmrec__seqsm_run(mmrec_tape *tape, mmrec_tensor *states, mmrec_tensor *items,
                                     const int64_t *ids, const mmrec_sequence_softmax_config *c,
                                     mmrec_tensor **out) {
    const char *func = "mmrec_loss_sequence_softmax";
    size_t B = (size_t)states->shape[0], T = (size_t)states->shape[1], L = T + 1;
    size_t d = (size_t)states->shape[2], rows = B * T, n = B * L, words = (n + 63) / 64;
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    int64_t *pos = mmrec__tape_alloc(tape, rows * sizeof *pos);
    float *weights = mmrec__tape_alloc(tape, rows * sizeof *weights);
    int64_t *order = mmrec__tape_alloc(tape, n * sizeof *order);
    int64_t *tmp = mmrec__tape_alloc(tape, n * sizeof *tmp);
    uint64_t *base = mmrec__tape_calloc(tape, words * sizeof *base);
    float *bias = c->debias ? mmrec__tape_alloc(tape, n * sizeof *bias) : NULL;
    if (!pos || !weights || !order || !tmp || !base || (c->debias && !bias))
        return mmrec__tape_oom(tape, mark, func);
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            const int64_t *u = ids + b * L;
            pos[b * T + t] = (int64_t)(b * L + t + 1);
            weights[b * T + t] = u[t] != 0 && u[t + 1] != 0 ? 1.0f : 0.0f;
        }
    for (size_t j = 0; j < n; j++) {
        if (ids[j] != 0) base[j >> 6] |= (uint64_t)1 << (j & 63);
        if (bias) bias[j] = ids[j] != 0 ? (float)-log((double)c->popularity[ids[j]]) : 0.0f;
    }
    mmrec__seqsm_sort(ids, n, order, tmp);
    mmrec__seqsm_mask m = {ids, order, base, B, T};
    mmrec__batch_softmax_args a = {
        .temperature = c->temperature,
        .weight_mean = true,
        .column_bias = bias,
        .positives = pos,
        .row_weights = weights,
        .mask = mmrec__seqsm_fill,
        .mask_ctx = &m,
    };
    int64_t qs[2] = {(int64_t)rows, (int64_t)d}, cs[2] = {(int64_t)n, (int64_t)d};
    mmrec_tensor *q, *cand;
    mmrec_status s = mmrec_reshape(tape, states, 2, qs, &q);
    if (s == MMREC_OK) s = mmrec_reshape(tape, items, 2, cs, &cand);
    if (s == MMREC_OK) s = mmrec__loss_batch_softmax(tape, func, q, cand, &a, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}

mmrec_status mmrec_loss_sequence_softmax(mmrec_tape *tape, mmrec_tensor *states,
                                         mmrec_tensor *items, const int64_t *item_ids,
                                         size_t num_ids, const mmrec_sequence_softmax_config *cfg,
                                         mmrec_tensor **out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(states, tape);
    MMREC_CHECK_TENSOR_ON(items, tape);
    MMREC_CHECK_NULL(item_ids);
    MMREC_CHECK_NULL(cfg);
    MMREC_CHECK_NULL(out);
    mmrec_sequence_softmax_config c = mmrec__seqsm_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_sequence_softmax_config, &c, cfg));
    if (states->ndim != 3 || items->ndim != 3 || items->shape[0] != states->shape[0] ||
        items->shape[1] != states->shape[1] + 1 || items->shape[2] != states->shape[2])
        MMREC_FAIL_SHAPE2("states must be [B, T, d] and items [B, T + 1, d]", states, items);
    MMREC_CHECK_FINITE(states);
    MMREC_CHECK_FINITE(items);
    size_t B = (size_t)states->shape[0], L = (size_t)items->shape[1], n, pairs;
    MMREC_FAIL_IF(!mmrec__mul_size(B, L, &n) || !mmrec__mul_size(n, n, &pairs), MMREC_EINVAL,
                  "%zu users of %zu items each are too many for one batch", B, L);
    if (num_ids != n) {
        char si[64];
        MMREC_FAIL(MMREC_ESHAPE, "num_ids is %zu, items is %s: expected %zu ids (B (T + 1))",
                   num_ids, mmrec__shape_str(items, si, sizeof si), n);
    }
    MMREC_FAIL_IF(c.debias != 0 && c.debias != 1, MMREC_EINVAL, "cfg->debias is %d, must be 0 or 1",
                  c.debias);
    MMREC_FAIL_IF(!(c.temperature > 0.0f) || !isfinite(c.temperature) ||
                      !isfinite(1.0f / c.temperature),
                  MMREC_EINVAL, "cfg->temperature is %g, must be > 0 with a finite inverse",
                  (double)c.temperature);
    MMREC_FAIL_IF(c.num_items < 0, MMREC_EINVAL, "cfg->num_items is %lld, must be >= 0",
                  (long long)c.num_items);
    MMREC_FAIL_IF(c.debias && c.popularity == NULL, MMREC_EINVAL,
                  "cfg->popularity is NULL: required with cfg->debias");
    MMREC_FAIL_IF(c.debias && c.num_items < 1, MMREC_EINVAL,
                  "cfg->num_items is %lld: the length of cfg->popularity is required with "
                  "cfg->debias",
                  (long long)c.num_items);
    for (size_t j = 0; j < n; j++) {
        int64_t id = item_ids[j];
        MMREC_FAIL_IF(id < 0 || (c.num_items > 0 && id >= c.num_items), MMREC_ERANGE,
                      "item_ids[%zu] is %lld, outside [0, %lld) (cfg->num_items)", j,
                      (long long)id, (long long)(c.num_items > 0 ? c.num_items : INT64_MAX));
        if (!c.debias || id == 0) continue;
        float p = c.popularity[id];
        MMREC_FAIL_IF(!(p > 0.0f) || !isfinite(p), MMREC_EINVAL,
                      "cfg->popularity[%lld] is %g, item_ids[%zu] holds that item: its "
                      "popularity must be finite and > 0 (the score subtracts its log)",
                      (long long)id, (double)p, j);
    }
    return mmrec__seqsm_run(tape, states, items, item_ids, &c, out);
}
