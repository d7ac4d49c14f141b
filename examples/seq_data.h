/* The sequence data the retrieval examples share (twotower.c,
 * distill.c, serve.c): IISAN's two files (or generated data), the frozen
 * title features, training samples, the towers' item encoder, the
 * leave-one-out evaluation sets and their full-ranking metrics. A header
 * of static functions, after example_util.h and text_encoder.h. */
#ifndef MMREC_SEQ_DATA_H
#define MMREC_SEQ_DATA_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmrec/mmrec.h>

#include "example_util.h"
#include "text_encoder.h"

#define TEXT_WIDTH 256  /* the frozen text encoder's width */
#define TEXT_LAYERS 6   /* its layers (7 states with the input) */
#define TEXT_TOKENS 30  /* words read of a title */

/* ---- data: sequences, item features, samples ---- */

typedef struct data {
    int64_t num_users, num_items; /* items 1 .. num_items, 0 = padding */
    int64_t *items;               /* user u: items[off[u] .. off[u + 1]) */
    size_t *off;
    float *features;              /* [num_items + 1, dim_features], row 0 zeros */
    int64_t dim_features;
    mmrec_sequences *seqs;        /* the files' sequences and titles; NULL when
                                     generated */
} data;

static inline size_t user_len(const data *d, int64_t u) { return d->off[u + 1] - d->off[u]; }

static inline void data_read(data *d, const char *dir, const char *cache_path) {
    size_t count;
    mmrec_sequences *seqs =
        read_sequences(dir, &d->num_users, &d->num_items, &count, &d->items, &d->off);

    /* The frozen encoder's [7, 256] records, built once and reused. */
    te_options opt;
    te_options_init(&opt);
    opt.width = TEXT_WIDTH;
    opt.layers = TEXT_LAYERS;
    opt.max_tokens = TEXT_TOKENS;
    if (te_build_cache(seqs, cache_path, &opt, stderr) != MMREC_OK) {
        fprintf(stderr, "cannot build the text cache %s: %s\n", cache_path, te_error());
        exit(1);
    }
    d->seqs = seqs; /* kept for the titles (mmrec_sequences_item) */

    /* Features: the input layer (the mean word vector) and the last layer,
     * side by side, read once into memory (row 0, the padding, zeros). */
    mmrec_cache *cache;
    CHECK(mmrec_cache_open(cache_path, &cache));
    int64_t layers, width;
    CHECK(mmrec_cache_field_shape(cache, "text", &layers, &width));
    int64_t keep = 0;
    mmrec_cache_gather_config gc;
    CHECK(mmrec_cache_gather_config_init(&gc));
    gc.keep = &keep;
    gc.n_keep = 1;
    d->dim_features = width;
    d->features = xcalloc((size_t)(d->num_items + 1) * (size_t)d->dim_features, sizeof(float));
    int64_t *ids = xmalloc((size_t)d->num_items * sizeof *ids);
    for (int64_t i = 0; i < d->num_items; i++) ids[i] = i + 1;
    CHECK(mmrec_cache_gather_layers_into(cache, "text", ids, (size_t)d->num_items, &gc,
                                         d->features + d->dim_features, NULL));
    free(ids);
    mmrec_cache_close(cache);
}

/* ---- synthetic data ---- */

#define SYN_USERS 4000
#define SYN_ITEMS 3000
#define SYN_CATEGORIES 30
#define SYN_DIM 32

static inline uint64_t rng_next(uint64_t *s) { /* splitmix64, for the generated data */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static inline float rng_normal(uint64_t *s) {
    double u = rng_uniform(s), v = rng_uniform(s);
    return (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

static inline void data_synthetic(data *d, uint64_t seed) {
    uint64_t s = seed * 0x2545F4914F6CDD1Dull + 11;
    const int per_cat = SYN_ITEMS / SYN_CATEGORIES;
    d->num_users = SYN_USERS;
    d->num_items = SYN_ITEMS;
    d->dim_features = SYN_DIM;
    /* item i (1-based) is in category (i - 1) % C, rank (i - 1) / C in it */
    float *centre = xmalloc((size_t)SYN_CATEGORIES * SYN_DIM * sizeof *centre);
    for (size_t k = 0; k < (size_t)SYN_CATEGORIES * SYN_DIM; k++) centre[k] = rng_normal(&s);
    d->features = xcalloc((size_t)(SYN_ITEMS + 1) * SYN_DIM, sizeof(float));
    for (int i = 1; i <= SYN_ITEMS; i++)
        for (int k = 0; k < SYN_DIM; k++)
            d->features[(size_t)i * SYN_DIM + k] =
                centre[(size_t)((i - 1) % SYN_CATEGORIES) * SYN_DIM + k] + rng_normal(&s);
    /* Zipf popularity within a category: cumulative table */
    double *cdf = xmalloc((size_t)per_cat * sizeof *cdf), sum = 0, acc = 0;
    for (int r = 0; r < per_cat; r++) sum += 1.0 / (double)(r + 1);
    for (int r = 0; r < per_cat; r++) cdf[r] = (acc += 1.0 / (double)(r + 1) / sum);
    cdf[per_cat - 1] = 1.0;
    d->items = xmalloc((size_t)SYN_USERS * 13 * sizeof *d->items);
    d->off = xmalloc(((size_t)SYN_USERS + 1) * sizeof *d->off);
    d->off[0] = 0;
    for (int u = 0; u < SYN_USERS; u++) {
        int c = (int)(rng_next(&s) % SYN_CATEGORIES);
        size_t n = 5 + (size_t)(rng_next(&s) % 9), k = 0;
        int64_t *seq = d->items + d->off[u];
        while (k < n) {
            int cc = rng_uniform(&s) < 0.8 ? c : (int)(rng_next(&s) % SYN_CATEGORIES);
            double r = rng_uniform(&s);
            int rank = 0;
            while (cdf[rank] < r) rank++;
            int64_t item = (int64_t)rank * SYN_CATEGORIES + cc + 1;
            int again = 0;
            for (size_t j = 0; j < k; j++) again |= seq[j] == item;
            if (!again) seq[k++] = item;
        }
        d->off[u + 1] = d->off[u] + n;
    }
    free(centre);
    free(cdf);
    fprintf(stderr, "synthetic data: %d users, %d items in %d categories, %d features\n",
            SYN_USERS, SYN_ITEMS, SYN_CATEGORIES, SYN_DIM);
}

static inline void data_free(data *d) {
    mmrec_sequences_destroy(d->seqs);
    free(d->items);
    free(d->off);
    free(d->features);
}

/* A user's history row: the last `len` items of seq into ids[0 .. width),
 * padded with 0 on the left, and the weights w = 1 / (real items) at the
 * real ones, 0 at the padding (the mean's weights; > 0 marks the real
 * vectors for MaxSim). */
static inline void history(const int64_t *seq, size_t len, size_t width, int64_t *ids,
                           float *w) {
    size_t take = len < width ? len : width;
    memset(ids, 0, (width - take) * sizeof *ids);
    memcpy(ids + width - take, seq + len - take, take * sizeof *ids);
    for (size_t t = 0; t < width; t++) w[t] = t < width - take ? 0.0f : 1.0f / (float)take;
}

/* The towers' encoder of an item: MLP(features of ids) + id embedding,
 * [count, out], on `tape` (features: the wrapped feature table). */
static inline mmrec_tensor *tower_encode(mmrec_tensor *features, mmrec_tape *tape,
                                         mmrec_module *mlp, mmrec_module *id,
                                         const int64_t *ids, size_t count) {
    mmrec_tensor *x, *h, *e, *out;
    CHECK(mmrec_gather_rows(tape, features, ids, count, &x));
    CHECK(mmrec_mlp_forward(mlp, tape, x, &h));
    CHECK(mmrec_embedding_forward(id, tape, ids, count, &e));
    CHECK(mmrec_add(tape, h, e, &out));
    return out;
}

/* The weighted mean of B history rows of `width` ids through the history
 * encoder: sum_t w[b, t] (MLP(features) + id)(ids[b, t]), [B, dim]; with
 * hist3, also the encoded items [B, width, dim] before the weights. */
static inline mmrec_tensor *history_mean(mmrec_tensor *features, mmrec_tape *tape,
                                         mmrec_module *mlp, mmrec_module *id,
                                         const int64_t *ids, float *w, size_t B, size_t width,
                                         int64_t dim, mmrec_tensor **hist3) {
    mmrec_tensor *h = tower_encode(features, tape, mlp, id, ids, B * width);
    mmrec_tensor *h3, *wt, *hw, *pooled;
    int64_t hs[3] = {(int64_t)B, (int64_t)width, dim}, ws[3] = {(int64_t)B, (int64_t)width, 1};
    CHECK(mmrec_reshape(tape, h, 3, hs, &h3));
    CHECK(mmrec_tape_wrap(tape, w, 3, ws, MMREC_TENSOR_READONLY, &wt));
    CHECK(mmrec_mul(tape, h3, wt, &hw));
    CHECK(mmrec_sum(tape, hw, 1, &pooled));
    if (hist3) *hist3 = h3;
    return pooled;
}

/* What the logQ-corrected towers train with, created in `model`: the
 * streaming frequency estimator "freq" (2^16 buckets, the paper's EMA
 * rate 0.01) and Adam with learning rate lr. */
#define FREQ_BUCKETS (1 << 16)
#define FREQ_ALPHA 0.01f
static inline void logq_training_create(mmrec_model *model, float lr, mmrec_module **freq,
                                        mmrec_optimizer **opt) {
    mmrec_freq_estimator_config fc;
    CHECK(mmrec_freq_estimator_config_init(&fc));
    fc.num_buckets = FREQ_BUCKETS;
    fc.alpha = FREQ_ALPHA;
    CHECK(mmrec_freq_estimator_create(model, "freq", &fc, freq));
    mmrec_optimizer_config oc;
    CHECK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = lr;
    CHECK(mmrec_optimizer_create(model, &oc, opt));
}

/* Training samples: (user, position t) for every t of the training part
 * s[0 .. len - 3] after the first; the target is s[t], the history the
 * items before it. */
typedef struct sample {
    int64_t user;
    size_t t;
} sample;

static inline sample *make_samples(const data *d, size_t *n_out) {
    size_t n = 0;
    for (int64_t u = 0; u < d->num_users; u++) n += user_len(d, u) - 3;
    sample *s = xmalloc(n * sizeof *s);
    size_t k = 0;
    for (int64_t u = 0; u < d->num_users; u++)
        for (size_t t = 1; t + 2 < user_len(d, u); t++) s[k++] = (sample){u, t};
    *n_out = n;
    return s;
}

/* ---- evaluation ---- */

/* Users to evaluate and, for each, its target (back 2: validation, 1:
 * test) and its history (the items before the target, excluded from the
 * ranking). In the interactions users are numbered by their place in
 * `users` and items are ids - 1: the tables have no padding row. */
typedef struct eval_set {
    int64_t *users;
    size_t num_users;
    size_t back;
    mmrec_interactions *hist, *target;
} eval_set;

static inline void eval_set_make(eval_set *e, const data *d, const int64_t *users,
                                 size_t num_users, size_t back) {
    size_t nh = 0;
    for (size_t k = 0; k < num_users; k++) nh += user_len(d, users[k]) - back;
    int64_t *hu = xmalloc(nh * sizeof *hu), *hi = xmalloc(nh * sizeof *hi);
    int64_t *tu = xmalloc(num_users * sizeof *tu), *ti = xmalloc(num_users * sizeof *ti);
    e->users = xmalloc(num_users * sizeof *e->users);
    memcpy(e->users, users, num_users * sizeof *users);
    e->num_users = num_users;
    e->back = back;
    size_t h = 0;
    for (size_t k = 0; k < num_users; k++) {
        const int64_t *s = d->items + d->off[users[k]];
        size_t len = user_len(d, users[k]);
        for (size_t j = 0; j + back < len; j++, h++) {
            hu[h] = (int64_t)k;
            hi[h] = s[j] - 1;
        }
        tu[k] = (int64_t)k;
        ti[k] = s[len - back] - 1;
    }
    CHECK(mmrec_interactions_create(hu, hi, nh, &e->hist));
    CHECK(mmrec_interactions_create(tu, ti, num_users, &e->target));
    free(hu);
    free(hi);
    free(tu);
    free(ti);
}

static inline void eval_set_free(eval_set *e) {
    mmrec_interactions_destroy(e->hist);
    mmrec_interactions_destroy(e->target);
    free(e->users);
}

typedef struct metrics {
    double recall10, recall20, ndcg10, ndcg20;
} metrics;

/* Ranks one user's scores over all items (item i at index i - 1): the
 * target's rank among the items not in the history, equal scores ranking
 * the lower id first, as mmrec_eval_full_ranking does; a target that is
 * also in the history cannot be hit (it is excluded). Adds the user's
 * metrics to m. */
static inline void rank_scores(const float *scores, int64_t num_items, const int64_t *seq,
                               size_t len, int64_t target, metrics *m) {
    for (size_t j = 0; j < len; j++)
        if (seq[j] == target) return;
    float st = scores[target - 1];
    size_t above = 0;
    for (int64_t i = 1; i <= num_items; i++) {
        float s = scores[i - 1];
        above += s > st || (s == st && i < target);
    }
    for (size_t j = 0; j < len; j++) { /* history items ranked above do not count */
        float s = scores[seq[j] - 1];
        int dup = 0;
        for (size_t k = 0; k < j; k++) dup |= seq[k] == seq[j];
        if (!dup && (s > st || (s == st && seq[j] < target))) above--;
    }
    double gain = 1.0 / log2((double)above + 2.0);
    if (above < 10) {
        m->recall10 += 1.0;
        m->ndcg10 += gain;
    }
    if (above < 20) {
        m->recall20 += 1.0;
        m->ndcg20 += gain;
    }
}

/* ---- helpers ---- */

static inline int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Whether the comma-separated list names `name`. */
static inline int listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        p += len + (end != NULL);
    }
    return 0;
}

/* The evaluation sets: test (each user's last item) over every user, and
 * validation (the item before it) over a fixed random sample of
 * valid_users users (0: all), the same for every model of a run. */
static inline void eval_sets_make(const data *d, size_t valid_users, uint64_t seed,
                                  eval_set *valid, eval_set *test) {
    int64_t *users = xmalloc((size_t)d->num_users * sizeof *users);
    for (int64_t u = 0; u < d->num_users; u++) users[u] = u;
    eval_set_make(test, d, users, (size_t)d->num_users, 1);
    if (valid_users == 0 || valid_users > (size_t)d->num_users) valid_users = (size_t)d->num_users;
    uint64_t vs = seed ^ 0x94D049BB133111EBull;
    for (size_t k = 0; k < valid_users; k++) { /* a partial shuffle, then in order */
        size_t j = k + (size_t)(rng_next(&vs) % (uint64_t)((size_t)d->num_users - k));
        int64_t t = users[k];
        users[k] = users[j];
        users[j] = t;
    }
    qsort(users, valid_users, sizeof *users, cmp_i64);
    eval_set_make(valid, d, users, valid_users, 2);
    free(users);
}

/* Full-ranking metrics on e of serving vectors: users [U, dim] (e's
 * users in order) and items [num_items, dim] (item i at row i - 1),
 * scored by inner product (mmrec_eval_full_ranking; equal scores rank the
 * lower item id first). */
static inline metrics full_ranking(const float *users, const float *items, const eval_set *e,
                                   int64_t num_items, int64_t dim) {
    int ks[2] = {10, 20};
    mmrec_rank_metrics r[2];
    r[0].struct_size = sizeof r[0];
    CHECK(mmrec_eval_full_ranking(users, items, (int64_t)e->num_users, num_items, dim, e->hist,
                                  e->target, ks, 2, r));
    return (metrics){r[0].recall, r[1].recall, r[0].ndcg, r[1].ndcg};
}

/* Full-ranking metrics of single-vector towers on e: user_table [U, dim]
 * (e's users in order) and item_table [num_items, dim] (item i at row
 * i - 1), scored by cosine / temperature. Both tables are overwritten
 * with the scorer's serving vectors (mmrec_twotower_serving_vectors:
 * their inner products are the training scores), then ranked by
 * full_ranking. */
static inline metrics rank_vectors(float *user_table, float *item_table, const eval_set *e,
                                   int64_t num_items, int64_t dim, float temperature) {
    mmrec_twotower_config tc;
    CHECK(mmrec_twotower_config_init(&tc));
    tc.score = MMREC_SCORE_COSINE;
    tc.temperature = temperature;
    CHECK(mmrec_twotower_serving_vectors(&tc, MMREC_TOWER_ITEM, item_table, (size_t)num_items,
                                         (size_t)dim, item_table));
    CHECK(mmrec_twotower_serving_vectors(&tc, MMREC_TOWER_USER, user_table, e->num_users,
                                         (size_t)dim, user_table));
    return full_ranking(user_table, item_table, e, num_items, dim);
}

#endif /* MMREC_SEQ_DATA_H */
