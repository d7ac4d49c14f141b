/* twotower: two-tower retrieval on real data, five ways to train the same
 * towers with an in-batch softmax:
 *   plain    in-batch softmax: each user against the batch's items, cosine
 *            scores over a temperature of 0.05 (Yi et al., RecSys 2019,
 *            without the correction)
 *   logq     the same with the logQ correction: every column's score minus
 *            log p_j, p_j the probability that item j is in a batch, from
 *            the streaming frequency estimator (twotower.h), updated every
 *            step with the batch's items (Yi et al., Algorithm 2)
 *   mixed    mixed negative sampling (Yang et al., WWW 2020): B' extra
 *            items drawn uniformly from the corpus (mmrec_item_sampler) go
 *            through the item tower and are appended to the candidates.
 *            The correction subtracts log q_j from every column, with
 *            q_j = p_j + B' / num_items the expected number of copies of
 *            item j among the B + B' candidates: p_j for the batch part (as
 *            in logq) plus B' draws of probability 1 / num_items each (the
 *            paper does not spell out its mixture; this is the one whose
 *            terms are the two proposals' expected counts)
 *   colbert  late interaction (ColBERT's MaxSim): an item is KERNELS
 *            vectors, a user the vectors of its last HIST history items,
 *            scored by the mean over the user's real vectors of
 *            max_k cos(q_i, d_k) over the same temperature (mmrec_maxsim,
 *            then a per-row scale), trained with logq's softmax over the
 *            [B, B] scores (mmrec_loss_batch_softmax_logits, row b's
 *            positive at column b): logq with MaxSim in place of the
 *            single-vector cosine
 *   inttower IntTower (Li et al., CIKM 2022; inttower.h): the user's
 *            fields are its history items' vectors hist(j), the item's
 *            one field its vector item(i); Light-SE and a tower MLP on
 *            each side (HIDDEN, then d), FE heads (IT_HEADS of width
 *            IT_FIELD_DIM) from the input of every user layer and from the
 *            item's last output, scored by the sum over the user heads of
 *            the best item head's dot product (mmrec_inttower_score),
 *            trained as colbert (logq's correction, softmax over [B, B]);
 *            CIR, its contrastive term, is left out (the paper's weight is
 *            not published and the code leaves it out too)
 * Every variant removes accidental hits (a column holding the row's
 * positive item again: candidate_ids of the batch softmax, on vectors or
 * on the scores of colbert and inttower) and has the same budget: epochs,
 * batch, widths, optimizer (Adam, lr 1e-3).
 *
 * The towers (widths in the #defines below):
 *   content(i) = the frozen title features of item i: the input state of
 *                text_encoder.h's encoder, the mean of the title's word
 *                vectors (256 floats; of the encoder's states it ranked
 *                best here)
 *   item(i)    = MLP(content(i)) + id(i) -> d = 64, or KERNELS x d for
 *                colbert (MLP: 256 -> 128 -> out, ReLU; id: a learned
 *                embedding of the item id, added: the item tower is
 *                content plus ID)
 *   hist(j)    = MLP'(content(j)) + id'(j) -> d, the user side's own
 *                encoder of an item the user had
 *   user       = MLP''(mean of hist(j) over the last HIST = 5 history
 *                items) -> d; for colbert the HIST vectors hist(j)
 *                themselves, L2-normalized, padding masked; for inttower
 *                the HIST vectors hist(j), each times its weight in that
 *                mean (padding 0), as the user tower's fields
 *
 * Data (<data dir>, default ../shared/data/iisan-scientific): IISAN's two
 * files, *_items.tsv ("asin<TAB>title") and *_users*.tsv ("user<TAB>asin
 * asin ...", oldest first), read by mmrec_sequences_read_tsv (sequences of
 * 5+ items, their last 13 kept, items numbered from 1). Leave-one-out: a
 * user's last item is the test target, the one before it the validation
 * target, the rest the training part. Training samples: every item of the
 * training part after the first, with the (up to HIST) items before it as
 * the history; an epoch is one pass over them in random order.
 * Evaluation: full ranking of every item for every user, the user vector
 * made from the HIST items before the target, every earlier item of the
 * user excluded from the ranking; Recall@10/20 and NDCG@10/20 (one target
 * a user, so Recall@K = HR@K). Validation after each epoch on a fixed
 * random sample of --valid-users users (3,000; the same for every variant:
 * MaxSim against every item is the costly part), test on every user once,
 * with the parameters of the epoch of best validation Recall@20.
 * Single-vector variants rank with mmrec_eval_full_ranking over the
 * scorer's serving vectors (mmrec_twotower_serving_vectors: their inner
 * products are the cosines over tau); colbert and inttower score users
 * against all items with mmrec_maxsim / mmrec_inttower_score on an
 * inference tape and rank those scores here with the same rules
 * (rank_scores below).
 *
 * The title features: no pretrained language model can be downloaded where
 * this runs, so they come from the frozen encoder of text_encoder.h
 * (LSA-style statistics of the titles, see there), cached in --cache
 * (default twotower_text.mmfc; make passes build/iisan_text.mmfc, the IISAN
 * example's, whose options are the same) and reused while the titles and
 * options match; building it takes a minute or two.
 *
 * --synthetic: generated data instead (no files): 3,000 items in 30
 * categories with 32 features each (the category's direction plus noise)
 * and Zipf popularity within a category, 4,000 users who take 80% of their
 * items from one category. For a quick end-to-end run (CI).
 *
 * Results (Amazon Scientific, default options, seed 2024; test at the
 * best validation epoch):
 *   variant  best epoch  valid R@20  test R@10   R@20    N@10    N@20
 *   plain         7        0.0607     0.0319   0.0422  0.0204  0.0230
 *   logq          5        0.0970     0.0493   0.0681  0.0291  0.0339
 *   mixed         5        0.1100     0.0568   0.0749  0.0350  0.0395
 *   colbert      10        0.1117     0.0546   0.0752  0.0332  0.0384
 *   inttower      6        0.0983     0.0463   0.0676  0.0265  0.0318
 * The correction is what matters here (+61% Recall@20 over plain); mixed
 * negatives and ColBERT's late interaction add about 10% more and are
 * tied with each other (their difference, 0.0003, is far below the noise
 * of 12,076 test users, about 0.0023 in Recall@20); IntTower is level with
 * logq. colbert was still improving at its last epoch; without the
 * correction it reached 0.0460. Figures move by about that noise with the
 * thread count and the BLAS kernels (float rounding changes the path). The
 * run takes about 3.5 minutes on 2 cores.

 * Speed: the products run through BLAS; OpenBLAS 0.3.21 does not know
 * recent Intel CPUs and falls back to a slow kernel there, which
 * OPENBLAS_CORETYPE=SkylakeX in the environment avoids (README).
 *
 * Usage: twotower [data dir] [--epochs N] [--batch B] [--extra B'] [--lr LR]
 *                 [--valid-users N] [--variants LIST] [--cache PATH]
 *                 [--threads T] [--seed S] [--synthetic]
 * Defaults: 10 epochs, batch 256, B' 256, lr 1e-3, 3,000 validation users
 * (0: all). --variants: a comma-separated subset of
 * plain,logq,mixed,colbert,inttower (default all). Progress goes to stderr
 * (a bar per epoch, then the epoch's loss, validation Recall@20 and
 * NDCG@20 and its times); the table and the last line go to stdout:
 *   RESULT twotower plain_recall@20=... logq_recall@20=...
 *     mixed_recall@20=... colbert_recall@20=... inttower_recall@20=...
 *     seconds=...
 * (test Recall@20 at each variant's best validation epoch; with
 * --synthetic the name is twotower_synthetic). */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mmrec/mmrec.h>

#include "example_util.h"
#include "text_encoder.h"
#include "seq_data.h"

#define DIM 64          /* d: the towers' output width */
#define HIDDEN 128      /* the hidden width of every MLP */
#define HIST 5          /* history items a user is made of (its last ones) */
#define KERNELS 4       /* colbert: vectors per item */
#define IT_HEADS 4      /* inttower: heads per FE output, each side */
#define IT_FIELD_DIM 16 /* inttower: a head's width */
#define IT_LAYERS 2     /* inttower: tower layers (HIDDEN, then DIM) */
#define TEMPERATURE 0.05f

/* ---- the model ---- */

typedef struct net {
    const data *d;
    int multi;                  /* 0: single vectors; 1: colbert (items are
                                   KERNELS vectors); 2: inttower */
    mmrec_model *model;
    mmrec_tensor *features;     /* the feature table, wrapped (not trained) */
    mmrec_module *item_mlp, *item_id;  /* item tower */
    mmrec_module *hist_mlp, *hist_id;  /* history items' encoder */
    mmrec_module *user_mlp;     /* single-vector user head */
    mmrec_module *inttower;     /* inttower: Light-SE, towers, FE heads */
    mmrec_module *freq;         /* streaming frequency estimator (logq, mixed) */
    mmrec_optimizer *opt;
    int64_t step;               /* global step, for the estimator */
    mmrec_item_sampler *sampler; /* uniform extra negatives */
} net;

static void net_create(net *n, const data *d, int multi, float lr, uint64_t seed) {
    memset(n, 0, sizeof *n);
    n->d = d;
    n->multi = multi;
    CHECK(mmrec_model_create(&n->model));
    CHECK(mmrec_model_seed(n->model, seed));
    int64_t fs[2] = {d->num_items + 1, d->dim_features};
    CHECK(mmrec_tensor_wrap(d->features, 2, fs, MMREC_TENSOR_READONLY, &n->features));

    int64_t out = multi == 1 ? KERNELS * DIM : DIM;
    int64_t item_sizes[3] = {d->dim_features, HIDDEN, out};
    int64_t hist_sizes[3] = {d->dim_features, HIDDEN, DIM};
    int64_t user_sizes[3] = {DIM, HIDDEN, DIM};
    mmrec_mlp_config mc;
    CHECK(mmrec_mlp_config_init(&mc));
    mc.num_sizes = 3;
    mc.sizes = item_sizes;
    CHECK(mmrec_mlp_create(n->model, "item.mlp", &mc, &n->item_mlp));
    mc.sizes = hist_sizes;
    CHECK(mmrec_mlp_create(n->model, "hist.mlp", &mc, &n->hist_mlp));
    if (!multi) {
        mc.sizes = user_sizes;
        CHECK(mmrec_mlp_create(n->model, "user.mlp", &mc, &n->user_mlp));
    }
    if (multi == 2) { /* fields: the user's HIST hist(j), the item's item(i) */
        int64_t hidden[IT_LAYERS] = {HIDDEN, DIM};
        mmrec_inttower_config ic;
        CHECK(mmrec_inttower_config_init(&ic));
        ic.user_fields = HIST;
        ic.item_fields = 1;
        ic.embedding_dim = DIM;
        ic.hidden_sizes = hidden;
        ic.num_hidden = IT_LAYERS;
        ic.user_heads = IT_HEADS;
        ic.item_heads = IT_HEADS;
        ic.field_dim = IT_FIELD_DIM;
        ic.init_std = 0.1f; /* no BatchNorm here: the header's advice */
        CHECK(mmrec_inttower_create(n->model, "inttower", &ic, &n->inttower));
    }
    mmrec_embedding_config ec;
    CHECK(mmrec_embedding_config_init(&ec));
    ec.num_rows = d->num_items + 1;
    ec.dim = out;
    ec.init_std = 0.01f;
    CHECK(mmrec_embedding_create(n->model, "item.id", &ec, &n->item_id));
    ec.dim = DIM;
    CHECK(mmrec_embedding_create(n->model, "hist.id", &ec, &n->hist_id));

    logq_training_create(n->model, lr, &n->freq, &n->opt);
    mmrec_item_sampler_config sc;
    CHECK(mmrec_item_sampler_config_init(&sc));
    sc.num_items = d->num_items; /* uniform over 0 .. num_items - 1: item id - 1 */
    sc.seed = seed ^ 0x5DEECE66Dull;
    CHECK(mmrec_item_sampler_create(&sc, &n->sampler));
}

static void net_free(net *n) {
    mmrec_item_sampler_destroy(n->sampler);
    mmrec_optimizer_destroy(n->opt);
    mmrec_tensor_destroy(n->features);
    mmrec_model_destroy(n->model);
}

/* Item vectors: the tower's output [count, d] (the cosine's
 * normalization is the loss's and the scorer's), or for colbert
 * [count, KERNELS, d], each vector L2-normalized (MaxSim of cosines). */
static mmrec_tensor *item_vectors(net *n, mmrec_tape *tape, const int64_t *ids, size_t count) {
    mmrec_tensor *v = tower_encode(n->features, tape, n->item_mlp, n->item_id, ids, count);
    mmrec_tensor *v3, *out;
    if (!n->multi) return v;
    if (n->multi == 2) { /* one field, through IntTower's item tower: [count, H_i, f] */
        int64_t fs[3] = {(int64_t)count, 1, DIM};
        CHECK(mmrec_reshape(tape, v, 3, fs, &v3));
        CHECK(mmrec_inttower_item_forward(n->inttower, tape, v3, NULL, &out, NULL));
        return out;
    }
    int64_t shape[3] = {(int64_t)count, KERNELS, DIM};
    CHECK(mmrec_reshape(tape, v, 3, shape, &v3));
    CHECK(mmrec_l2_normalize(tape, v3, 1e-12f, &out));
    return out;
}

/* The user side from B history rows of HIST ids (0 = padding) and
 * their weights (history() above): single-vector, [B, d] =
 * MLP''(sum_t w[b, t] hist(ids[b, t])); multi, [B, HIST, d] = the
 * L2-normalized hist vectors (the mask is w > 0). */
static mmrec_tensor *user_vectors(net *n, mmrec_tape *tape, const int64_t *ids, float *w,
                                  size_t B) {
    mmrec_tensor *h = tower_encode(n->features, tape, n->hist_mlp, n->hist_id, ids, B * HIST);
    mmrec_tensor *h3, *out;
    int64_t shape[3] = {(int64_t)B, HIST, DIM};
    CHECK(mmrec_reshape(tape, h, 3, shape, &h3));
    if (n->multi == 1) {
        CHECK(mmrec_l2_normalize(tape, h3, 1e-12f, &out));
        return out;
    }
    mmrec_tensor *wt, *weighted, *pooled;
    int64_t ws[3] = {(int64_t)B, HIST, 1};
    CHECK(mmrec_tape_wrap(tape, w, 3, ws, MMREC_TENSOR_READONLY, &wt));
    CHECK(mmrec_mul(tape, h3, wt, &weighted));
    if (n->multi == 2) { /* the fields, weighted as for the mean (padding 0):
                            [B, IT_LAYERS H_u, f] */
        CHECK(mmrec_inttower_user_forward(n->inttower, tape, weighted, NULL, &out, NULL));
        return out;
    }
    CHECK(mmrec_sum(tape, weighted, 1, &pooled));
    CHECK(mmrec_mlp_forward(n->user_mlp, tape, pooled, &out));
    return out;
}

/* ---- the variants: one loss function each ---- */

/* A training batch: B users' histories and their target items. */
typedef struct train_batch {
    size_t size;            /* B */
    int64_t *hist;          /* [B, HIST] history rows (history() above) */
    float *weight;          /* [B, HIST] their weights */
    int64_t *targets;       /* [2 (B + extra)]: the targets, the extra items,
                               then scratch for the losses */
    float *bias;            /* [2 (B + extra)]: column biases, then scratch */
    float *scale;           /* [B]: colbert's per-row 1 / (real items) */
    size_t extra;           /* B' of the mixed variant */
} train_batch;

/* Records the batch's B targets (ids[0 .. B)) in the estimator at the next
 * global step, then reads p_j = P(item j in a batch) for all `count` ids
 * (the columns). */
static void batch_probabilities(net *n, const int64_t *ids, size_t count, size_t B,
                                float *p) {
    CHECK(mmrec_freq_estimator_update(n->freq, ids, B, ++n->step));
    CHECK(mmrec_freq_estimator_probability(n->freq, ids, count, p));
}

/* (a) plain in-batch softmax. */
static mmrec_tensor *loss_plain(net *n, mmrec_tape *tape, train_batch *b) {
    mmrec_tensor *u = user_vectors(n, tape, b->hist, b->weight, b->size);
    mmrec_tensor *v = item_vectors(n, tape, b->targets, b->size), *loss;
    mmrec_batch_softmax_config c;
    CHECK(mmrec_batch_softmax_config_init(&c));
    c.temperature = TEMPERATURE;
    c.normalize = 1;
    c.candidate_ids = b->targets; /* accidental hits removed */
    CHECK(mmrec_loss_batch_softmax(tape, u, v, &c, &loss));
    return loss;
}

/* (b) with the logQ correction: column j's score minus log p_j. */
static mmrec_tensor *loss_logq(net *n, mmrec_tape *tape, train_batch *b) {
    batch_probabilities(n, b->targets, b->size, b->size, b->bias);
    for (size_t j = 0; j < b->size; j++) b->bias[j] = -logf(b->bias[j]);
    mmrec_tensor *u = user_vectors(n, tape, b->hist, b->weight, b->size);
    mmrec_tensor *v = item_vectors(n, tape, b->targets, b->size), *loss;
    mmrec_batch_softmax_config c;
    CHECK(mmrec_batch_softmax_config_init(&c));
    c.temperature = TEMPERATURE;
    c.normalize = 1;
    c.candidate_ids = b->targets;
    c.column_bias = b->bias;
    CHECK(mmrec_loss_batch_softmax(tape, u, v, &c, &loss));
    return loss;
}

/* (c) mixed negatives: B' uniform items appended to the candidates, and
 * every column corrected by its expected count among the B + B'
 * candidates, q_j = p_j + B' r_j, p_j from the estimator (the batch
 * part) and r_j = 1 / num_items the probability of one uniform draw. */
static mmrec_tensor *loss_mixed(net *n, mmrec_tape *tape, train_batch *b) {
    size_t B = b->size, N = B + b->extra;
    int64_t *extra = b->targets + B, *sampler_ids = b->targets + N;
    float *draw_p = b->bias + N;
    CHECK(mmrec_item_sampler_draw(n->sampler, extra, b->extra)); /* ids 0 .. num_items - 1 */
    for (size_t j = 0; j < b->extra; j++) extra[j] += 1;         /* item ids from 1 */
    for (size_t j = 0; j < N; j++) sampler_ids[j] = b->targets[j] - 1;
    CHECK(mmrec_item_sampler_probability(n->sampler, sampler_ids, N, draw_p));
    batch_probabilities(n, b->targets, N, B, b->bias);
    for (size_t j = 0; j < N; j++)
        b->bias[j] = -logf(b->bias[j] + (float)b->extra * draw_p[j]);
    mmrec_tensor *u = user_vectors(n, tape, b->hist, b->weight, B);
    mmrec_tensor *v = item_vectors(n, tape, b->targets, N), *loss;
    mmrec_batch_softmax_config c;
    CHECK(mmrec_batch_softmax_config_init(&c));
    c.temperature = TEMPERATURE;
    c.normalize = 1;
    c.candidate_ids = b->targets; /* also removes an extra that is the row's positive */
    c.column_bias = b->bias;      /* positives NULL: row i's is column i */
    CHECK(mmrec_loss_batch_softmax(tape, u, v, &c, &loss));
    return loss;
}

/* logq's correction over precomputed [B, B] scores: column j's score over
 * tau minus log p_j, accidental hits removed, row b's positive at column b
 * (mmrec_loss_batch_softmax_logits: the batch softmax of logq on scores
 * the towers' vectors do not give as one product). */
static mmrec_tensor *logq_softmax_of_scores(net *n, mmrec_tape *tape, train_batch *b,
                                            mmrec_tensor *scores, float tau) {
    size_t B = b->size;
    batch_probabilities(n, b->targets, B, B, b->bias);
    for (size_t j = 0; j < B; j++) b->bias[j] = -logf(b->bias[j]);
    mmrec_batch_softmax_config c;
    CHECK(mmrec_batch_softmax_config_init(&c));
    c.temperature = tau;
    c.candidate_ids = b->targets;
    c.column_bias = b->bias;
    mmrec_tensor *loss;
    CHECK(mmrec_loss_batch_softmax_logits(tape, scores, &c, &loss));
    return loss;
}

/* (d) ColBERT: [B, B] MaxSim scores of the users' history vectors against
 * the batch's K-vector items, each row divided by its number of real
 * vectors (a mean of best cosines, as the single-vector scores are one
 * cosine), trained with logq's loss over tau. */
static mmrec_tensor *loss_colbert(net *n, mmrec_tape *tape, train_batch *b) {
    size_t B = b->size;
    mmrec_tensor *q = user_vectors(n, tape, b->hist, b->weight, B);
    mmrec_tensor *v = item_vectors(n, tape, b->targets, B);
    mmrec_tensor *qmask, *scores, *st, *mean;
    const size_t L = HIST;
    int64_t ms[2] = {(int64_t)B, (int64_t)L}, ss[2] = {(int64_t)B, 1};
    /* the last weight is 1 / (real vectors): every row has one */
    for (size_t i = 0; i < B; i++) b->scale[i] = b->weight[i * L + L - 1];
    /* the weights are > 0 exactly at the real vectors: they serve as the mask */
    CHECK(mmrec_tape_wrap(tape, b->weight, 2, ms, MMREC_TENSOR_READONLY, &qmask));
    CHECK(mmrec_maxsim(tape, q, qmask, v, NULL, &scores));
    CHECK(mmrec_tape_wrap(tape, b->scale, 2, ss, MMREC_TENSOR_READONLY, &st));
    CHECK(mmrec_mul(tape, scores, st, &mean));
    return logq_softmax_of_scores(n, tape, b, mean, TEMPERATURE);
}

/* (e) IntTower: its user FE heads (from the input of each tower layer)
 * against the item's FE heads, s = sum over user heads of the best item
 * head (mmrec_inttower_score, with its learned bias), trained with logq's
 * loss over those scores as they are (tau 1: the dot products are not
 * normalized, so their scale is learned). The user's fields are its HIST
 * history items hist(j), the item's one field item(i); CIR, the paper's
 * contrastive term, is left out (its weight is not published). */
static mmrec_tensor *loss_inttower(net *n, mmrec_tape *tape, train_batch *b) {
    size_t B = b->size;
    mmrec_tensor *u = user_vectors(n, tape, b->hist, b->weight, B);
    mmrec_tensor *v = item_vectors(n, tape, b->targets, B), *scores;
    CHECK(mmrec_inttower_score(n->inttower, tape, u, v, &scores));
    return logq_softmax_of_scores(n, tape, b, scores, 1.0f);
}

typedef mmrec_tensor *(*loss_fn)(net *n, mmrec_tape *tape, train_batch *b);

/* The variants: each is its loss function, plus what its towers and
 * batches need. */
static const struct variant {
    const char *name;
    int multi;        /* 1: multi-vector towers (MaxSim); 2: IntTower */
    int extra;        /* 1: B' extra candidates in the batch */
    loss_fn loss;
} variants[] = {
    {"plain", 0, 0, loss_plain},
    {"logq", 0, 0, loss_logq},
    {"mixed", 0, 1, loss_mixed},
    {"colbert", 1, 0, loss_colbert},
    {"inttower", 2, 0, loss_inttower},
};
#define NUM_VARIANTS (sizeof variants / sizeof *variants)

/* Full-ranking metrics of the model on e, on an inference tape: the item
 * table (items 2048 at a time), the users' vectors (256 at a time), then
 * mmrec_eval_full_ranking, or for colbert MaxSim scores of 256 users
 * against every item at a time, ranked by rank_scores. */
static metrics evaluate(net *n, mmrec_tape *tape, const eval_set *e) {
    const data *d = n->d;
    const size_t chunk = 2048, users = 256, U = e->num_users, L = HIST;
    const size_t width = n->multi == 1   ? (size_t)KERNELS * DIM
                         : n->multi == 2 ? (size_t)IT_HEADS * IT_FIELD_DIM
                                         : DIM;
    const size_t qwidth = n->multi == 1   ? L * DIM
                          : n->multi == 2 ? (size_t)IT_LAYERS * IT_HEADS * IT_FIELD_DIM
                                          : DIM;
    float *item_table = xmalloc((size_t)d->num_items * width * sizeof *item_table);
    float *user_table = xmalloc(U * qwidth * sizeof *user_table);
    int64_t *ids = xmalloc((chunk > users * L ? chunk : users * L) * sizeof *ids);
    float *weight = xmalloc(U * L * sizeof *weight);
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    for (int64_t first = 1; first <= d->num_items; first += (int64_t)chunk) {
        size_t c = (size_t)(d->num_items - first + 1) < chunk ? (size_t)(d->num_items - first + 1)
                                                               : chunk;
        for (size_t i = 0; i < c; i++) ids[i] = first + (int64_t)i;
        mmrec_tensor *v = item_vectors(n, tape, ids, c);
        CHECK(mmrec_tensor_copy_to(v, item_table + (size_t)(first - 1) * width, c * width));
        mmrec_tape_reset(tape);
    }
    for (size_t first = 0; first < U; first += users) {
        size_t c = U - first < users ? U - first : users;
        for (size_t b = 0; b < c; b++) {
            int64_t u = e->users[first + b];
            history(d->items + d->off[u], user_len(d, u) - e->back, L, ids + b * L,
                    weight + (first + b) * L);
        }
        mmrec_tensor *q = user_vectors(n, tape, ids, weight + first * L, c);
        CHECK(mmrec_tensor_copy_to(q, user_table + first * qwidth, c * qwidth));
        mmrec_tape_reset(tape);
    }
    metrics m = {0};
    if (!n->multi) {
        m = rank_vectors(user_table, item_table, e, d->num_items, DIM, TEMPERATURE);
    } else {
        float *scores = xmalloc(users * (size_t)d->num_items * sizeof *scores);
        /* the item table as [num_items, vectors, width of a vector], and
         * each user's as [vectors, width] */
        const int64_t vw = n->multi == 1 ? DIM : IT_FIELD_DIM;
        int64_t is[3] = {d->num_items, (int64_t)width / vw, vw};
        for (size_t first = 0; first < U; first += users) {
            size_t c = U - first < users ? U - first : users;
            int64_t qs[3] = {(int64_t)c, (int64_t)qwidth / vw, vw};
            int64_t ms[2] = {(int64_t)c, (int64_t)L};
            mmrec_tensor *items, *q, *mask, *s;
            CHECK(mmrec_tape_wrap(tape, item_table, 3, is, MMREC_TENSOR_READONLY, &items));
            CHECK(mmrec_tape_wrap(tape, user_table + first * qwidth, 3, qs,
                                  MMREC_TENSOR_READONLY, &q));
            if (n->multi == 1) {
                CHECK(mmrec_tape_wrap(tape, weight + first * L, 2, ms, MMREC_TENSOR_READONLY,
                                      &mask));
                CHECK(mmrec_maxsim(tape, q, mask, items, NULL, &s));
            } else {
                CHECK(mmrec_inttower_score(n->inttower, tape, q, items, &s));
            }
            CHECK(mmrec_tensor_copy_to(s, scores, c * (size_t)d->num_items));
            mmrec_tape_reset(tape);
            for (size_t b = 0; b < c; b++) {
                int64_t u = e->users[first + b];
                const int64_t *seq = d->items + d->off[u];
                size_t len = user_len(d, u) - e->back;
                rank_scores(scores + b * (size_t)d->num_items, d->num_items, seq, len, seq[len],
                            &m);
            }
        }
        m.recall10 /= (double)U;
        m.recall20 /= (double)U;
        m.ndcg10 /= (double)U;
        m.ndcg20 /= (double)U;
        free(scores);
    }
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_TRAIN));
    free(item_table);
    free(user_table);
    free(ids);
    free(weight);
    return m;
}

/* ---- training ---- */

typedef struct run_result {
    int ran, best_epoch;
    double valid_recall20;
    metrics test;          /* at the best validation epoch */
    double train_seconds;  /* training steps only, evaluations excluded */
} run_result;

static run_result run(const struct variant *v, const data *d, const sample *samples,
                      size_t n_samples, const eval_set *valid, const eval_set *test,
                      int epochs, size_t B, size_t extra, float lr, uint64_t seed) {
    net n;
    net_create(&n, d, v->multi, lr, seed);
    size_t trainable;
    CHECK(mmrec_model_param_count(n.model, &trainable, NULL));
    fprintf(stderr, "%s: %zu trainable parameters\n", v->name, trainable);
    float *best = xmalloc(trainable * sizeof *best); /* the best epoch's parameters */
    mmrec_tape *tape;
    CHECK(mmrec_tape_create(&tape));
    CHECK(mmrec_tape_seed(tape, seed + 1));
    train_batch b;
    b.extra = v->extra ? extra : 0;
    b.hist = xmalloc(B * HIST * sizeof *b.hist);
    b.weight = xmalloc(B * HIST * sizeof *b.weight);
    b.targets = xmalloc(2 * (B + b.extra) * sizeof *b.targets);
    b.bias = xmalloc(2 * (B + b.extra) * sizeof *b.bias);
    b.scale = xmalloc(B * sizeof *b.scale);
    size_t *order = xmalloc(n_samples * sizeof *order);
    for (size_t k = 0; k < n_samples; k++) order[k] = k;
    uint64_t rs = seed ^ 0xD1B54A32D192ED03ull;
    size_t steps = n_samples / B; /* full batches only: the last partial one is dropped */
    int tty = isatty(2);
    run_result res = {0};
    res.ran = 1;
    res.valid_recall20 = -1;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        for (size_t k = n_samples - 1; k > 0; k--) { /* shuffle */
            size_t j = (size_t)(rng_next(&rs) % (uint64_t)(k + 1));
            size_t t = order[k];
            order[k] = order[j];
            order[j] = t;
        }
        double loss_sum = 0, t0 = now();
        for (size_t s = 0; s < steps; s++) {
            b.size = B;
            for (size_t i = 0; i < B; i++) {
                const sample *sm = &samples[order[s * B + i]];
                const int64_t *seq = d->items + d->off[sm->user];
                history(seq, sm->t, HIST, b.hist + i * HIST,
                        b.weight + i * HIST);
                b.targets[i] = seq[sm->t];
            }
            mmrec_tensor *loss = v->loss(&n, tape, &b);
            const float *lv;
            CHECK(mmrec_tensor_data_const(loss, &lv));
            loss_sum += lv[0];
            CHECK(mmrec_tape_backward(tape, loss));
            CHECK(mmrec_optimizer_step(n.opt));
            mmrec_tape_reset(tape);
            progress(v->name, epoch, s + 1, steps, loss_sum / (double)(s + 1), tty, 8);
        }
        double train_s = now() - t0;
        res.train_seconds += train_s;
        if (tty) fprintf(stderr, "\r%78s\r", "");
        double t1 = now();
        metrics mv = evaluate(&n, tape, valid);
        const char *mark = "";
        if (mv.recall20 > res.valid_recall20) {
            res.valid_recall20 = mv.recall20;
            res.best_epoch = epoch;
            CHECK(mmrec_model_export_params(n.model, best, trainable));
            mark = " *";
        }
        fprintf(stderr,
                "  %-8s epoch %3d loss %.4f valid recall@20 %.4f ndcg@20 %.4f "
                "(train %.1f s, eval %.1f s)%s\n",
                v->name, epoch, loss_sum / (double)steps, mv.recall20, mv.ndcg20, train_s,
                now() - t1, mark);
    }
    /* test once, with the parameters of the best validation epoch */
    CHECK(mmrec_model_import_params(n.model, best, trainable));
    res.test = evaluate(&n, tape, test);
    fprintf(stderr, "%s: best epoch %d, test recall@20 %.4f ndcg@20 %.4f\n", v->name,
            res.best_epoch, res.test.recall20, res.test.ndcg20);
    free(best);
    free(b.hist);
    free(b.weight);
    free(b.targets);
    free(b.bias);
    free(b.scale);
    free(order);
    mmrec_tape_destroy(tape);
    net_free(&n);
    return res;
}

int main(int argc, char **argv) {
    /* Results go to stdout, progress to stderr: line-buffer stdout so the
     * two keep their order in one log. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *dir = "../shared/data/iisan-scientific", *cache_path = "twotower_text.mmfc";
    const char *list = "plain,logq,mixed,colbert,inttower";
    int epochs = 10, threads = 0, synthetic = 0;
    size_t batch = 256, extra = 256, valid_users = 3000;
    float lr = 1e-3f;
    uint64_t seed = 2024;
    const opt_spec specs[] = {
        {"--epochs", OPT_INT, &epochs},
        {"--batch", OPT_SIZE, &batch},
        {"--extra", OPT_SIZE, &extra},
        {"--valid-users", OPT_SIZE, &valid_users},
        {"--lr", OPT_FLOAT, &lr},
        {"--variants", OPT_STR, &list},
        {"--cache", OPT_STR, &cache_path},
        {"--threads", OPT_INT, &threads},
        {"--seed", OPT_U64, &seed},
        {"--synthetic", OPT_FLAG, &synthetic},
    };
    if (!parse_options(argc, argv, specs, sizeof specs / sizeof *specs, &dir,
                       "[data dir] [--epochs N] [--batch B] [--extra B'] [--lr LR] "
                       "[--valid-users N] [--variants LIST] [--cache PATH] [--threads T] "
                       "[--seed S] [--synthetic]"))
        return 2;
    if (epochs < 1 || batch < 2 || extra < 1 || !(lr > 0)) {
        fprintf(stderr, "--epochs >= 1, --batch >= 2, --extra >= 1, --lr > 0\n");
        return 2;
    }
    if (threads > 0) CHECK(mmrec_set_num_threads(threads));
    double t0 = now();
    data d;
    memset(&d, 0, sizeof d);
    if (synthetic) data_synthetic(&d, seed);
    else data_read(&d, dir, cache_path);
    size_t n_samples;
    sample *samples = make_samples(&d, &n_samples);
    if (n_samples < batch) {
        fprintf(stderr, "%zu training samples, fewer than a batch of %zu\n", n_samples, batch);
        return 1;
    }
    /* Validation on a fixed random sample of users (the same for every
     * variant: MaxSim over every item costs), test on all of them. */
    eval_set valid, test;
    eval_sets_make(&d, valid_users, seed, &valid, &test);
    fprintf(stderr,
            "training: %zu samples, batch %zu, %d epochs, %zu extra negatives (mixed), "
            "d %d, temperature %.2f\n",
            n_samples, batch, epochs, extra, DIM, (double)TEMPERATURE);

    run_result res[NUM_VARIANTS] = {{0}};
    for (size_t k = 0; k < NUM_VARIANTS; k++)
        if (listed(list, variants[k].name))
            res[k] = run(&variants[k], &d, samples, n_samples, &valid, &test, epochs, batch,
                         extra, lr, seed);

    printf("\n%-8s %5s %11s %10s %10s %10s %10s %9s\n", "variant", "best", "valid R@20",
           "test R@10", "R@20", "N@10", "N@20", "train s");
    for (size_t k = 0; k < NUM_VARIANTS; k++)
        if (res[k].ran)
            printf("%-8s %5d %11.4f %10.4f %10.4f %10.4f %10.4f %9.1f\n", variants[k].name,
                   res[k].best_epoch, res[k].valid_recall20, res[k].test.recall10,
                   res[k].test.recall20, res[k].test.ndcg10, res[k].test.ndcg20,
                   res[k].train_seconds);
    printf("RESULT twotower%s", synthetic ? "_synthetic" : "");
    for (size_t k = 0; k < NUM_VARIANTS; k++)
        if (res[k].ran) printf(" %s_recall@20=%.4f", variants[k].name, res[k].test.recall20);
    printf(" seconds=%.1f\n", now() - t0);

    eval_set_free(&valid);
    eval_set_free(&test);
    free(samples);
    data_free(&d);
    return 0;
}
