/* What the LightGCN examples share (lightgcn.c, mpi/examples/mpi_lightgcn.c):
 * the data directory's layout (which file trains, which selects, which is
 * reported, which items each ranking masks), each user's training items,
 * the BPR triple sampler of LightGCN-PyTorch (a user with training items,
 * one of them, a uniform item not among them), Recall@20 / NDCG@20 of the
 * propagated embeddings over all items, and early stopping on validation
 * Recall@20 with the best epoch's parameters kept. A header of static
 * functions, after example_util.h. */
#ifndef MMREC_LIGHTGCN_DATA_H
#define MMREC_LIGHTGCN_DATA_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Recall@20 and NDCG@20 of the K-layer propagation of ego [U + I, dim] on
 * `test`, the items of `mask` left out of each user's ranking. */
static inline void evaluate(mmrec_tape *tape, const mmrec_graph *g, mmrec_tensor *ego, int layers,
                            int64_t U, int64_t I, int64_t dim, const mmrec_interactions *mask,
                            const mmrec_interactions *test, double *recall, double *ndcg) {
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    mmrec_tensor *e;
    float *data;
    CHECK(mmrec_lightgcn(tape, g, ego, layers, NULL, &e));
    CHECK(mmrec_tensor_data(e, &data));
    int ks[1] = {20};
    mmrec_rank_metrics m[1];
    m[0].struct_size = sizeof m[0];
    CHECK(mmrec_eval_full_ranking(data, data + U * dim, U, I, dim, mask, test, ks, 1, m));
    *recall = m[0].recall;
    *ndcg = m[0].ndcg;
    mmrec_tape_reset(tape);
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_TRAIN));
}

/* ---- the data directory ---- */

/* The layouts of a LightGCN-format directory ("user item item ..." files),
 * told apart by the files present:
 *   LAYOUT_TRAIN_TEST  train.txt, test.txt: train, then rank test.txt with
 *                      the train items masked;
 *   LAYOUT_HELD_OUT    train.txt, valid.txt, test.txt, three disjoint
 *                      splits (LightGCN++ and later papers): train on
 *                      train.txt, select on valid.txt (train items
 *                      masked), rank test.txt with train and valid items
 *                      masked;
 *   LAYOUT_NESTED      train.txt, test.txt, train_minus_valid.txt,
 *                      valid.txt with train_minus_valid.txt + valid.txt =
 *                      train.txt (LightGCN's Gowalla as provided here):
 *                      as LAYOUT_TRAIN_TEST, or with `nested_valid` train
 *                      on train_minus_valid.txt and select and report on
 *                      valid.txt (train_minus_valid items masked). */
typedef enum lgcn_layout { LAYOUT_TRAIN_TEST, LAYOUT_HELD_OUT, LAYOUT_NESTED } lgcn_layout;

typedef struct lgcn_data {
    lgcn_layout layout;
    const char *train_file, *valid_file, *report_file; /* names in the directory */
    mmrec_interactions *train;  /* trained on */
    mmrec_interactions *valid;  /* selected on (train masked), or NULL */
    mmrec_interactions *report; /* the final figures: test.txt, or valid.txt */
    mmrec_interactions *mask;   /* masked when ranking `report` */
    mmrec_interactions *union_; /* train + valid pairs, owned here (LAYOUT_HELD_OUT) */
    int64_t num_users, num_items; /* the largest ids of the files read, + 1 */
    size_t n_train;
} lgcn_data;

static inline int file_exists(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static inline mmrec_interactions *read_pairs(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    mmrec_interactions *x;
    CHECK(mmrec_interactions_read_lightgcn(path, &x));
    return x;
}

typedef struct lgcn_pair {
    int64_t user, item;
} lgcn_pair;

static inline int cmp_pair(const void *a, const void *b) {
    const lgcn_pair *x = a, *y = b;
    if (x->user != y->user) return (x->user > y->user) - (x->user < y->user);
    return (x->item > y->item) - (x->item < y->item);
}

/* How many pairs of `x` are also pairs of `of` (one sort of `of`, a binary
 * search per pair of x); *first is the first such pair of x. */
static inline size_t count_shared(const mmrec_interactions *x, const mmrec_interactions *of,
                                  lgcn_pair *first) {
    const int64_t *xu, *xi, *ou, *oi;
    size_t nx, no, shared = 0;
    CHECK(mmrec_interactions_info(x, NULL, NULL, &nx));
    CHECK(mmrec_interactions_info(of, NULL, NULL, &no));
    CHECK(mmrec_interactions_pairs(x, &xu, &xi));
    CHECK(mmrec_interactions_pairs(of, &ou, &oi));
    lgcn_pair *sorted = xmalloc(no * sizeof *sorted);
    for (size_t k = 0; k < no; k++) sorted[k] = (lgcn_pair){ou[k], oi[k]};
    qsort(sorted, no, sizeof *sorted, cmp_pair);
    for (size_t k = 0; k < nx; k++) {
        lgcn_pair key = {xu[k], xi[k]};
        if (bsearch(&key, sorted, no, sizeof *sorted, cmp_pair)) {
            if (shared++ == 0) *first = key;
        }
    }
    free(sorted);
    return shared;
}

/* Exits with a message when the held-out file `valid` shares a pair with
 * the training file: selecting on it would reward memorising train. */
static inline void require_disjoint(const lgcn_data *d, const char *dir) {
    lgcn_pair first;
    size_t n_valid, shared = count_shared(d->valid, d->train, &first);
    if (shared == 0) return;
    CHECK(mmrec_interactions_info(d->valid, NULL, NULL, &n_valid));
    fprintf(stderr,
            "%s: %s shares %zu of its %zu pairs with %s (the first: user %lld, item %lld), "
            "so it is not a held-out split: selecting on it would leak training pairs. "
            "Held-out layout: train.txt, valid.txt, test.txt, disjoint; nested layout "
            "(valid.txt inside train.txt): add train_minus_valid.txt = train.txt without "
            "valid.txt.\n",
            dir, d->valid_file, shared, n_valid, d->train_file, (long long)first.user,
            (long long)first.item);
    exit(1);
}

/* Reads the directory's files by its layout (above); nested_valid is the
 * --valid option (LAYOUT_NESTED only). Exits with a message on a missing
 * file, --valid outside the nested layout, or a held-out valid.txt that
 * shares pairs with the training file; writes a note to `notes` (unless
 * NULL) when the reported file shares pairs with its mask (those pairs can
 * never be hits). */
static inline void lgcn_data_open(const char *dir, int nested_valid, FILE *notes, lgcn_data *d) {
    memset(d, 0, sizeof *d);
    if (!file_exists(dir, "train.txt") || !file_exists(dir, "test.txt")) {
        fprintf(stderr, "%s: expected train.txt and test.txt (\"user item item ...\" lines), "
                        "optionally valid.txt\n",
                dir);
        exit(1);
    }
    int has_valid = file_exists(dir, "valid.txt");
    if (file_exists(dir, "train_minus_valid.txt") && has_valid) d->layout = LAYOUT_NESTED;
    else if (has_valid) d->layout = LAYOUT_HELD_OUT;
    else d->layout = LAYOUT_TRAIN_TEST;
    if (nested_valid && d->layout != LAYOUT_NESTED) {
        fprintf(stderr, "%s: --valid trains on train_minus_valid.txt and selects on valid.txt, "
                        "which this directory does not have both of%s\n",
                dir, d->layout == LAYOUT_HELD_OUT
                         ? "; its valid.txt is held out and selects without --valid" : "");
        exit(2);
    }
    d->train_file = "train.txt";
    d->report_file = "test.txt";
    if (d->layout == LAYOUT_HELD_OUT) d->valid_file = "valid.txt";
    if (d->layout == LAYOUT_NESTED && nested_valid) {
        d->train_file = "train_minus_valid.txt";
        d->valid_file = d->report_file = "valid.txt";
    }
    d->train = read_pairs(dir, d->train_file);
    if (d->valid_file) d->valid = read_pairs(dir, d->valid_file);
    d->report = d->valid && strcmp(d->report_file, d->valid_file) == 0
                    ? d->valid : read_pairs(dir, d->report_file);
    const mmrec_interactions *files[3] = {d->train, d->valid, d->report};
    for (int f = 0; f < 3; f++) {
        int64_t users, items;
        if (!files[f]) continue;
        CHECK(mmrec_interactions_info(files[f], &users, &items, f == 0 ? &d->n_train : NULL));
        if (users > d->num_users) d->num_users = users;
        if (items > d->num_items) d->num_items = items;
    }
    d->mask = d->train;
    if (d->valid) require_disjoint(d, dir);
    if (d->layout == LAYOUT_HELD_OUT) { /* test ranks without train and valid items */
        const int64_t *tu, *ti, *vu, *vi;
        size_t n_valid;
        CHECK(mmrec_interactions_info(d->valid, NULL, NULL, &n_valid));
        CHECK(mmrec_interactions_pairs(d->train, &tu, &ti));
        CHECK(mmrec_interactions_pairs(d->valid, &vu, &vi));
        size_t n = d->n_train + n_valid;
        int64_t *us = xmalloc(n * sizeof *us), *is = xmalloc(n * sizeof *is);
        if (d->n_train) memcpy(us, tu, d->n_train * sizeof *us);
        if (d->n_train) memcpy(is, ti, d->n_train * sizeof *is);
        if (n_valid) memcpy(us + d->n_train, vu, n_valid * sizeof *us);
        if (n_valid) memcpy(is + d->n_train, vi, n_valid * sizeof *is);
        CHECK(mmrec_interactions_create(us, is, n, &d->union_));
        free(us);
        free(is);
        d->mask = d->union_;
    }
    lgcn_pair first;
    size_t shared = count_shared(d->report, d->mask, &first);
    if (shared && notes)
        fprintf(notes, "note: %zu pairs of %s are also in %s%s (the first: user %lld, item "
                        "%lld); they are masked and never count as hits\n",
                shared, d->report_file, d->train_file, d->union_ ? " or valid.txt" : "",
                (long long)first.user, (long long)first.item);
}

/* One line: the layout, what trains, selects, is reported and is masked. */
static inline void lgcn_data_describe(const lgcn_data *d, FILE *f) {
    if (d->layout == LAYOUT_HELD_OUT)
        fprintf(f, "layout: held-out validation (train.txt, valid.txt, test.txt, disjoint): "
                   "train on train.txt, select on valid.txt, test with train and valid items "
                   "masked\n");
    else if (d->layout == LAYOUT_NESTED && d->valid)
        fprintf(f, "layout: nested validation (valid.txt inside train.txt): train on "
                   "train_minus_valid.txt, select and report on valid.txt with "
                   "train_minus_valid items masked\n");
    else
        fprintf(f, "layout: %s: train on train.txt, test with train items masked\n",
                d->layout == LAYOUT_NESTED ? "nested validation, unused without --valid"
                                           : "train.txt and test.txt");
}

static inline void lgcn_data_close(lgcn_data *d) {
    if (d->report != d->valid) mmrec_interactions_destroy(d->report);
    mmrec_interactions_destroy(d->valid);
    mmrec_interactions_destroy(d->train);
    mmrec_interactions_destroy(d->union_);
    memset(d, 0, sizeof *d);
}

/* ---- early stopping ---- */

/* Model selection on validation Recall@20: the best evaluation so far
 * (ties keep the earlier epoch), its epoch and a copy of the model's
 * trainable parameters then; training stops after `patience` evaluations
 * without a better one. */
typedef struct early_stop {
    int patience, since_best, best_epoch;
    double best_recall, best_ndcg;
    float *best;
    size_t n;
} early_stop;

static inline void early_stop_init(early_stop *es, const mmrec_model *model, int patience) {
    memset(es, 0, sizeof *es);
    es->patience = patience;
    es->best_recall = -1.0;
    CHECK(mmrec_model_param_count(model, &es->n, NULL));
    es->best = xmalloc(es->n * sizeof *es->best);
}

/* Records epoch's validation figures; returns 1 when it is a new best,
 * whose parameters are then copied. */
static inline int early_stop_update(early_stop *es, const mmrec_model *model, int epoch,
                                    double recall, double ndcg) {
    if (recall > es->best_recall) {
        es->best_recall = recall;
        es->best_ndcg = ndcg;
        es->best_epoch = epoch;
        es->since_best = 0;
        CHECK(mmrec_model_export_params(model, es->best, es->n));
        return 1;
    }
    es->since_best++;
    return 0;
}

static inline int early_stop_done(const early_stop *es) {
    return es->since_best >= es->patience;
}

/* Puts the best epoch's parameters back into the model. */
static inline void early_stop_restore(const early_stop *es, mmrec_model *model) {
    CHECK(mmrec_model_import_params(model, es->best, es->n));
}

static inline void early_stop_free(early_stop *es) {
    free(es->best);
    es->best = NULL;
}

/* ---- options, model and schedule ---- */

/* The options both programs take; the caller sets the defaults. */
typedef struct lgcn_options {
    int epochs, eval_every, patience, use_valid, no_early_stop, threads;
    int cosine; /* 1 cosine decay, 0 constant rate, -1 by the schedule */
    size_t batch;
    float lr;
    uint64_t seed;
} lgcn_options;

/* Reads the options argv[2 ..] into o. Returns 0, or 2 after telling
 * `err` (NULL: nobody) what was wrong: an unknown option (followed by
 * "usage: <program> <data dir> <usage>" when usage is not NULL), or a
 * count or rate that is not positive. */
static inline int lgcn_parse_options(int argc, char **argv, lgcn_options *o, const char *usage,
                                     FILE *err) {
    for (int a = 2; a < argc; a++) {
        const char *v = a + 1 < argc ? argv[a + 1] : "";
        if (strcmp(argv[a], "--epochs") == 0) o->epochs = atoi(v), a++;
        else if (strcmp(argv[a], "--batch") == 0) o->batch = (size_t)atol(v), a++;
        else if (strcmp(argv[a], "--lr") == 0) o->lr = (float)atof(v), a++;
        else if (strcmp(argv[a], "--eval-every") == 0) o->eval_every = atoi(v), a++;
        else if (strcmp(argv[a], "--patience") == 0) o->patience = atoi(v), a++;
        else if (strcmp(argv[a], "--seed") == 0) o->seed = strtoull(v, NULL, 10), a++;
        else if (strcmp(argv[a], "--threads") == 0) o->threads = atoi(v), a++;
        else if (strcmp(argv[a], "--valid") == 0) o->use_valid = 1;
        else if (strcmp(argv[a], "--no-early-stop") == 0) o->no_early_stop = 1;
        else if (strcmp(argv[a], "--constant-lr") == 0) o->cosine = 0;
        else if (strcmp(argv[a], "--cosine") == 0) o->cosine = 1;
        else {
            if (err) fprintf(err, "unknown option '%s'\n", argv[a]);
            if (err && usage) fprintf(err, "usage: %s <data dir> %s\n", argv[0], usage);
            return 2;
        }
    }
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0) || o->eval_every < 1 || o->patience < 1 ||
        o->threads < 1) {
        if (err)
            fprintf(err, "epochs, batch, lr, eval-every, patience and threads must be positive\n");
        return 2;
    }
    return 0;
}

/* LightGCN's model: a rows x dim ego table drawn from N(0, 0.1) by a
 * generator seeded `seed` (which then draws the triples), and Adam at lr. */
static inline void lgcn_model_create(int64_t rows, int64_t dim, uint64_t seed, float lr,
                                     mmrec_model **model, mmrec_tensor **ego, mmrec_rng **rng,
                                     mmrec_optimizer **opt) {
    CHECK(mmrec_model_create(model));
    int64_t shape[2] = {rows, dim};
    CHECK(mmrec_model_add_param(*model, "embedding", 2, shape, ego));
    float *ego_data;
    CHECK(mmrec_tensor_data(*ego, &ego_data));
    CHECK(mmrec_rng_create(seed, rng));
    CHECK(mmrec_rng_normal(*rng, 0.0f, 0.1f, ego_data, (size_t)(rows * dim)));
    mmrec_optimizer_config oc;
    CHECK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = lr;
    CHECK(mmrec_optimizer_create(*model, &oc, opt));
}

/* The rate of epoch `epoch` (from 1) under cosine decay, lr (1 + cos(pi
 * (epoch - 1) / epochs)) / 2; nothing to set at a constant rate. */
static inline void lgcn_schedule(mmrec_optimizer *opt, const lgcn_options *o, int epoch) {
    if (o->cosine)
        CHECK(mmrec_optimizer_set_lr(
            opt, 0,
            o->lr * 0.5f * (1.0f + cosf(3.14159265f * (float)(epoch - 1) / (float)o->epochs))));
}

/* The line announcing early stopping, when there is any. */
static inline void lgcn_describe_early_stop(const lgcn_data *d, const lgcn_options *o, int early) {
    if (early)
        printf("early stopping on %s Recall@20: every %d epochs, patience %d evaluations, at "
               "most %d epochs\n",
               d->valid_file, o->eval_every, o->patience, o->epochs);
}

/* ---- evaluation during and after training ---- */

/* What the evaluations read: the model, its embedding table ego
 * [U + I, dim], the graph it propagates over, a tape to evaluate on. */
typedef struct lgcn_run {
    mmrec_model *model;
    mmrec_tape *tape;
    const mmrec_graph *graph;
    mmrec_tensor *ego;
    int layers;
    int64_t dim;
} lgcn_run;

/* The evaluation after an epoch: on the validation file when there is one
 * (train items masked), else on the reported file (its mask); with `es`
 * (early stopping) also the selection. Prints the epoch's line (loss is
 * the epoch's mean BPR loss) and returns 1 when training should stop. */
static inline int lgcn_eval_epoch(const lgcn_data *d, const lgcn_run *r, early_stop *es,
                                  int epoch, double loss, double t_start, double *recall,
                                  double *ndcg) {
    double t0 = now();
    evaluate(r->tape, r->graph, r->ego, r->layers, d->num_users, d->num_items, r->dim,
             d->valid ? d->train : d->mask, d->valid ? d->valid : d->report, recall, ndcg);
    int best = es && early_stop_update(es, r->model, epoch, *recall, *ndcg);
    printf("epoch %d  loss %.5f  %srecall@20 %.4f  ndcg@20 %.4f  (eval %.1f s, %.0f s "
           "total)%s\n",
           epoch, loss, d->valid ? "valid " : "", *recall, *ndcg, now() - t0, now() - t_start,
           best ? "  best" : "");
    fflush(stdout);
    if (!es || !early_stop_done(es)) return 0;
    printf("early stop at epoch %d: no better validation Recall@20 in %d evaluations\n", epoch,
           es->patience);
    return 1;
}

/* After training (last_epoch the last one trained): with `es`, restores
 * the best epoch's parameters; then ranks the reported file with its mask
 * unless the last evaluation already did (no validation file, no early
 * stopping). Returns the epoch whose model *recall and *ndcg describe. */
static inline int lgcn_report(const lgcn_data *d, const lgcn_run *r, const early_stop *es,
                              int last_epoch, double *recall, double *ndcg) {
    int epoch = last_epoch;
    if (es) {
        epoch = es->best_epoch;
        early_stop_restore(es, r->model);
        printf("best epoch %d: valid recall@20 %.4f  ndcg@20 %.4f\n", epoch, es->best_recall,
               es->best_ndcg);
    }
    if (es || (d->valid && d->report != d->valid)) {
        /* the restored model on the reported file (for --valid, the
         * validation figures again: a check of the restore) */
        evaluate(r->tape, r->graph, r->ego, r->layers, d->num_users, d->num_items, r->dim,
                 d->mask, d->report, recall, ndcg);
        printf("epoch %d  %s recall@20 %.4f  ndcg@20 %.4f  (%s items masked)\n", epoch,
               d->report == d->valid ? "valid" : "test", *recall, *ndcg,
               d->union_ ? "train and valid" : d->train_file);
    }
    return epoch;
}

#endif
