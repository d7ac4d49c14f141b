/* What the LightGCN examples share (lightgcn.c, mpi/examples/mpi_lightgcn.c):
 * each user's training items, the BPR triple sampler of LightGCN-PyTorch
 * (a user with training items, one of them, a uniform item not among them)
 * and Recall@20 / NDCG@20 of the propagated embeddings over all items. A
 * header of static functions, after example_util.h. */
#ifndef MMREC_LIGHTGCN_DATA_H
#define MMREC_LIGHTGCN_DATA_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mmrec/mmrec.h>

#include "example_util.h"

/* Each user's training items, sorted (for the negative sampler). */
typedef struct user_lists {
    int64_t *ptr, *items;
    int64_t *active; /* users with at least one item */
    size_t n_active;
} user_lists;

static inline int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The lists of the n pairs (us[k], is[k]) of U users. */
static inline void build_lists(const int64_t *us, const int64_t *is, size_t n, int64_t U,
                               user_lists *l) {
    l->ptr = xmalloc((size_t)(U + 1) * sizeof *l->ptr);
    l->items = xmalloc(n * sizeof *l->items);
    memset(l->ptr, 0, (size_t)(U + 1) * sizeof *l->ptr);
    for (size_t k = 0; k < n; k++) l->ptr[us[k] + 1]++;
    for (int64_t u = 0; u < U; u++) l->ptr[u + 1] += l->ptr[u];
    int64_t *fill = xmalloc((size_t)U * sizeof *fill);
    memcpy(fill, l->ptr, (size_t)U * sizeof *fill);
    for (size_t k = 0; k < n; k++) l->items[fill[us[k]]++] = is[k];
    free(fill);
    l->active = xmalloc((size_t)U * sizeof *l->active);
    l->n_active = 0;
    for (int64_t u = 0; u < U; u++) {
        qsort(l->items + l->ptr[u], (size_t)(l->ptr[u + 1] - l->ptr[u]), sizeof *l->items,
              cmp_i64);
        if (l->ptr[u + 1] > l->ptr[u]) l->active[l->n_active++] = u;
    }
}

static inline void free_lists(user_lists *l) {
    free(l->ptr);
    free(l->items);
    free(l->active);
}

static inline int has_item(const user_lists *l, int64_t u, int64_t item) {
    int64_t lo = l->ptr[u], hi = l->ptr[u + 1];
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (l->items[mid] < item) lo = mid + 1;
        else hi = mid;
    }
    return lo < l->ptr[u + 1] && l->items[lo] == item;
}

static inline uint64_t below(mmrec_rng *rng, uint64_t n) {
    uint64_t v;
    CHECK(mmrec_rng_below(rng, n, &v));
    return v;
}

/* One batch of b triples, node ids: users, U + positive, U + negative.
 * Users and positives come from `from`, negatives are items not in the
 * user's list of `all` (the same lists, or every training pair when `from`
 * holds a share of them). */
static inline void sample(const user_lists *from, const user_lists *all, int64_t U, int64_t I,
                          mmrec_rng *rng, size_t b, int64_t *ids) {
    for (size_t k = 0; k < b; k++) {
        int64_t u = from->active[below(rng, from->n_active)];
        int64_t n_pos = from->ptr[u + 1] - from->ptr[u];
        int64_t pos = from->items[from->ptr[u] + (int64_t)below(rng, (uint64_t)n_pos)];
        int64_t neg;
        do neg = (int64_t)below(rng, (uint64_t)I);
        while (has_item(all, u, neg));
        ids[k] = u;
        ids[b + k] = U + pos;
        ids[2 * b + k] = U + neg;
    }
}

/* One BPR step's loss on the batch's triples ids = [users | positives |
 * negatives] (3 * batch rows of ego [U + I, dim]): the mean BPR loss of the
 * K-layer rows, plus l2 / 2 * the sum of squares of the ego rows / batch.
 * *bpr is the BPR term alone (for the log). */
static inline void bpr_step_loss(mmrec_tape *tape, const mmrec_graph *g, mmrec_tensor *ego,
                                 int layers, const int64_t *ids, size_t batch, float l2,
                                 mmrec_tensor **bpr, mmrec_tensor **loss) {
    mmrec_tensor *rows, *ur, *pr, *nr, *ps, *ns, *prod, *ego_rows, *sq, *reg;
    CHECK(mmrec_lightgcn_rows(tape, g, ego, layers, NULL, ids, 3 * batch, &rows));
    CHECK(mmrec_slice(tape, rows, 0, 0, (int64_t)batch, &ur));
    CHECK(mmrec_slice(tape, rows, 0, (int64_t)batch, (int64_t)batch, &pr));
    CHECK(mmrec_slice(tape, rows, 0, (int64_t)(2 * batch), (int64_t)batch, &nr));
    CHECK(mmrec_mul(tape, ur, pr, &prod));
    CHECK(mmrec_sum(tape, prod, 1, &ps));
    CHECK(mmrec_mul(tape, ur, nr, &prod));
    CHECK(mmrec_sum(tape, prod, 1, &ns));
    CHECK(mmrec_loss_bpr(tape, ps, ns, bpr));
    CHECK(mmrec_gather_rows(tape, ego, ids, 3 * batch, &ego_rows));
    CHECK(mmrec_mul(tape, ego_rows, ego_rows, &sq));
    CHECK(mmrec_sum(tape, sq, MMREC_AXIS_ALL, &reg));
    CHECK(mmrec_scale(tape, reg, 0.5f * l2 / (float)batch, &reg));
    CHECK(mmrec_add(tape, *bpr, reg, loss));
}

/* Recall@20 and NDCG@20 of the K-layer propagation of ego [U + I, dim]. */
static inline void evaluate(mmrec_tape *tape, const mmrec_graph *g, mmrec_tensor *ego, int layers,
                            int64_t U, int64_t I, int64_t dim, const mmrec_interactions *train,
                            const mmrec_interactions *test, double *recall, double *ndcg) {
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    mmrec_tensor *e;
    float *data;
    CHECK(mmrec_lightgcn(tape, g, ego, layers, NULL, &e));
    CHECK(mmrec_tensor_data(e, &data));
    int ks[1] = {20};
    mmrec_rank_metrics m[1];
    m[0].struct_size = sizeof m[0];
    CHECK(mmrec_eval_full_ranking(data, data + U * dim, U, I, dim, train, test, ks, 1, m));
    *recall = m[0].recall;
    *ndcg = m[0].ndcg;
    mmrec_tape_reset(tape);
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_TRAIN));
}

#endif
