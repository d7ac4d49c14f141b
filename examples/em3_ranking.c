/* em3_ranking: an EM3 click-through-rate ranker trained end to end, with
 * and without the content-ID contrastive (CIC) loss.
 *
 * Generated data with a planted structure: every item has a hidden 8-d
 * latent z; its 2 image and 2 text features are fixed random linear views
 * of z plus noise. Users have hidden preference vectors p; a user clicks an
 * item with probability sigmoid(SCALE <p, z> / sqrt(8) + POP z_0 + BIAS),
 * so content predicts clicks. Each user's behaviour sequence holds 3..8
 * items they clicked, so it reveals p. Items split into warm ones (training
 * impressions) and cold-start ones that no training impression or
 * behaviour sequence contains; both get held-out test impressions.
 *
 * The item features are written once into a feature cache (float16 fields
 * "image" and "text") and every feature read goes through
 * mmrec_cache_gather, as a trainer reads a frozen encoder's outputs.
 *
 * The model (EM3, METHODS.md):
 *   content   c_i = Linear(flatten(FQ-Former(image tokens, text tokens)))
 *   id        e_i = item-ID embedding; items unseen in training share one
 *                   "unknown" row that stays zero (as a production
 *                   vocabulary maps out-of-vocabulary ids)
 *   item      v_i = c_i + e_i (for a cold item, its content alone)
 *   interest  u   = target attention of the candidate's v over the v of
 *                   the user's behaviour sequence (padding masked)
 *   logit         = MLP([v, u, v * u]),  L_rank = BCE
 *   CIC           L = L_rank + alpha * CIC(f_CIC(c_i), e_i) over the
 *                   distinct candidate items of the batch, from epoch 2 on
 *                   (in epoch 1 the ID embeddings are still near zero);
 *                   f_CIC is a Linear d -> d and f'_CIC the identity, so
 *                   f_CIC maps content into the ID embeddings' space.
 * The ID embeddings learn at 2e-2, the content side at 2e-4 (a large
 * content encoder fine-tunes slowly): IDs fit warm items fast. A cold item
 * has no trained ID row; with CIC its ID embedding is its content mapped
 * into ID space, f_CIC(c_i) scaled to the warm rows' mean norm, which is
 * what the contrastive alignment trained f_CIC for. Without CIC there is no
 * such map and a cold item keeps the unknown row (zero). The whole training
 * runs twice on the same data and seed, alpha > 0 and alpha = 0; each epoch
 * prints the AUC of held-out warm and cold-item impressions.
 *
 * Usage: em3_ranking [cache path] [seed] [epochs]
 *        (defaults: build/em3_items.mmfc, 1, 6) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mmrec/mmrec.h>

/* data */
#define LATENT 8
#define N_WARM 1000
#define N_COLD 250
#define N_ITEMS (N_WARM + N_COLD)
#define N_FEAT 2 /* features per modality: 2 image, 2 text */
#define F_IMG 24
#define F_TXT 16
#define FEAT_NOISE 0.3f
#define N_USERS 2000
#define SEQ_MIN 3
#define SEQ_MAX 8
#define TRAIN_PER_USER 20
#define TEST_PER_USER 4
#define SCALE 2.5f
#define POP 1.5f
#define BIAS (-0.5f)

/* model and training */
#define DIM 32 /* d */
#define QUERIES 2
#define BATCH 256
#define EVAL_BATCH 500
#define ALPHA 0.5f
#define TEMPERATURE 0.1f
#define CIC_FROM_EPOCH 2
#define LR 2e-4f
#define ID_LR 2e-2f

#define CHECK(call)                                                                   \
    do {                                                                              \
        mmrec_status s_ = (call);                                                     \
        if (s_ != MMREC_OK) {                                                         \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call, \
                    mmrec_status_name(s_), mmrec_last_error());                       \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

/* Impressions: (user, item, click). */
typedef struct impressions {
    int64_t *user, *item;
    float *label;
    size_t n;
} impressions;

typedef struct data {
    float image[N_ITEMS * N_FEAT * F_IMG]; /* per item: its 2 image features */
    float text[N_ITEMS * N_FEAT * F_TXT];
    int64_t seq[N_USERS * SEQ_MAX]; /* behaviour sequences (warm items) */
    int seq_len[N_USERS];
    impressions train, test_warm, test_cold;
    double oracle_warm, oracle_cold; /* AUC of the true click probability */
    float user_pref[N_USERS * LATENT], item_z[N_ITEMS * LATENT];
} data;

/* ---- data ---- */

static float click_prob(const data *d, int64_t u, int64_t i) {
    float s = 0;
    for (int k = 0; k < LATENT; k++) s += d->user_pref[u * LATENT + k] * d->item_z[i * LATENT + k];
    return 1.0f / (1.0f + expf(-(SCALE * s / sqrtf(LATENT) + POP * d->item_z[i * LATENT] + BIAS)));
}

static int bernoulli(mmrec_rng *rng, float p) {
    float r;
    CHECK(mmrec_rng_uniform(rng, 0, 1, &r, 1));
    return r < p;
}

static int64_t draw(mmrec_rng *rng, int64_t low, int64_t high) {
    uint64_t v;
    CHECK(mmrec_rng_below(rng, (uint64_t)(high - low), &v));
    return low + (int64_t)v;
}

/* One modality: N_ITEMS x N_FEAT features of `dim`, each a fixed random
 * linear map of z plus noise. */
static void make_features(mmrec_rng *rng, const float *z, int64_t dim, float *out) {
    float *proj = malloc((size_t)(N_FEAT * LATENT * dim) * sizeof *proj);
    float *noise = malloc((size_t)dim * sizeof *noise);
    if (!proj || !noise) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    CHECK(mmrec_rng_normal(rng, 0, 1, proj, (size_t)(N_FEAT * LATENT * dim)));
    for (int64_t i = 0; i < N_ITEMS; i++) {
        for (int f = 0; f < N_FEAT; f++) {
            CHECK(mmrec_rng_normal(rng, 0, FEAT_NOISE, noise, (size_t)dim));
            float *row = out + (i * N_FEAT + f) * dim;
            for (int64_t j = 0; j < dim; j++) {
                float v = 0;
                for (int k = 0; k < LATENT; k++)
                    v += z[i * LATENT + k] * proj[(f * LATENT + k) * dim + j];
                row[j] = v / sqrtf(LATENT) + noise[j];
            }
        }
    }
    free(proj);
    free(noise);
}

static void alloc_impressions(impressions *imp, size_t n) {
    imp->user = malloc(n * sizeof *imp->user);
    imp->item = malloc(n * sizeof *imp->item);
    imp->label = malloc(n * sizeof *imp->label);
    imp->n = 0;
    if (!imp->user || !imp->item || !imp->label) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
}

static void free_impressions(impressions *imp) {
    free(imp->user);
    free(imp->item);
    free(imp->label);
}

/* `count` impressions per user of items drawn from [low, high). */
static void make_impressions(data *d, mmrec_rng *rng, impressions *imp, int count, int64_t low,
                             int64_t high) {
    alloc_impressions(imp, (size_t)N_USERS * (size_t)count);
    for (int64_t u = 0; u < N_USERS; u++) {
        for (int k = 0; k < count; k++) {
            int64_t i = draw(rng, low, high);
            imp->user[imp->n] = u;
            imp->item[imp->n] = i;
            imp->label[imp->n] = (float)bernoulli(rng, click_prob(d, u, i));
            imp->n++;
        }
    }
}

/* AUC, tied scores counted one half (mmrec_metric_auc). */
static double auc(const float *score, const float *label, size_t n) {
    double a;
    CHECK(mmrec_metric_auc(score, label, n, &a));
    return a;
}

static double oracle_auc(const data *d, const impressions *imp) {
    float *p = malloc(imp->n * sizeof *p);
    if (!p) exit(1);
    for (size_t k = 0; k < imp->n; k++) p[k] = click_prob(d, imp->user[k], imp->item[k]);
    double a = auc(p, imp->label, imp->n);
    free(p);
    return a;
}

static void make_data(data *d, uint64_t seed) {
    mmrec_rng *rng;
    CHECK(mmrec_rng_create(seed, &rng));
    CHECK(mmrec_rng_normal(rng, 0, 1, d->item_z, N_ITEMS * LATENT));
    CHECK(mmrec_rng_normal(rng, 0, 1, d->user_pref, N_USERS * LATENT));
    make_features(rng, d->item_z, F_IMG, d->image);
    make_features(rng, d->item_z, F_TXT, d->text);
    /* Behaviour sequences: distinct warm items the user clicked. */
    for (int64_t u = 0; u < N_USERS; u++) {
        int len = (int)draw(rng, SEQ_MIN, SEQ_MAX + 1);
        int n = 0;
        while (n < len) {
            int64_t i = draw(rng, 0, N_WARM);
            int seen = 0;
            for (int k = 0; k < n; k++) seen |= d->seq[u * SEQ_MAX + k] == i;
            if (!seen && bernoulli(rng, click_prob(d, u, i))) d->seq[u * SEQ_MAX + n++] = i;
        }
        d->seq_len[u] = len;
    }
    make_impressions(d, rng, &d->train, TRAIN_PER_USER, 0, N_WARM);
    make_impressions(d, rng, &d->test_warm, TEST_PER_USER, 0, N_WARM);
    make_impressions(d, rng, &d->test_cold, TEST_PER_USER, N_WARM, N_ITEMS);
    d->oracle_warm = oracle_auc(d, &d->test_warm);
    d->oracle_cold = oracle_auc(d, &d->test_cold);
    mmrec_rng_destroy(rng);
}

/* ---- features ---- */

/* Writes every item's features into a feature cache at `path`: fields
 * "image" [N_ITEMS, 2 * F_IMG] and "text" [N_ITEMS, 2 * F_TXT], float16. */
static void build_cache(const data *d, const char *path) {
    static int64_t ids[N_ITEMS];
    for (int64_t i = 0; i < N_ITEMS; i++) ids[i] = i;
    mmrec_cache_writer *w;
    CHECK(mmrec_cache_writer_create(path, ids, N_ITEMS, &w));
    CHECK(mmrec_cache_writer_add(w, "image", MMREC_CACHE_F16, d->image, N_FEAT * F_IMG));
    CHECK(mmrec_cache_writer_add(w, "text", MMREC_CACHE_F16, d->text, N_FEAT * F_TXT));
    CHECK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
}

/* Gathers the image and text features of n items from the cache as the
 * FQ-Former's tokens: image [n, 2, F_IMG], text [n, 2, F_TXT]. */
static void gather_features(const mmrec_cache *cache, mmrec_tape *t, const int64_t *ids,
                            size_t n, mmrec_tensor **image, mmrec_tensor **text) {
    int64_t si[3] = {(int64_t)n, N_FEAT, F_IMG}, st[3] = {(int64_t)n, N_FEAT, F_TXT};
    mmrec_tensor *rows;
    CHECK(mmrec_cache_gather(cache, t, "image", ids, n, &rows));
    CHECK(mmrec_reshape(t, rows, 3, si, image));
    CHECK(mmrec_cache_gather(cache, t, "text", ids, n, &rows));
    CHECK(mmrec_reshape(t, rows, 3, st, text));
}

/* ---- model ---- */

typedef struct net {
    mmrec_model *model;
    mmrec_module *fq, *fq_out, *ta, *id_emb, *head, *cic_content;
    float cold_id_norm; /* > 0: cold items take f_CIC(c) at this norm as ID embedding */
} net;

static void net_create(net *n, uint64_t seed) {
    CHECK(mmrec_model_create(&n->model));
    CHECK(mmrec_model_seed(n->model, seed));
    mmrec_fqformer_config fc;
    CHECK(mmrec_fqformer_config_init(&fc));
    fc.image_dim = F_IMG;
    fc.text_dim = F_TXT;
    fc.dim = DIM;
    fc.num_queries = QUERIES;
    fc.num_layers = 1;
    fc.num_heads = 4;
    fc.ffn_dim = 2 * DIM;
    fc.dropout = 0.0f;
    fc.flatten = 1;
    CHECK(mmrec_fqformer_create(n->model, "fq", &fc, &n->fq));
    mmrec_linear_config lc;
    CHECK(mmrec_linear_config_init(&lc));
    lc.in_dim = QUERIES * DIM;
    lc.out_dim = DIM;
    CHECK(mmrec_linear_create(n->model, "fq_out", &lc, &n->fq_out));
    mmrec_target_attention_config tc;
    CHECK(mmrec_target_attention_config_init(&tc));
    tc.dim = DIM;
    CHECK(mmrec_target_attention_create(n->model, "interest", &tc, &n->ta));
    /* Row 0 is the shared "unknown item" row: every item without training
     * impressions (the cold ones) maps to it. It gets no gradient in
     * training, and stays zero. */
    mmrec_embedding_config ec;
    CHECK(mmrec_embedding_config_init(&ec));
    ec.num_rows = N_WARM + 1;
    ec.dim = DIM;
    ec.init = MMREC_INIT_ZEROS; /* ID embeddings carry only what clicks taught */
    CHECK(mmrec_embedding_create(n->model, "item_id", &ec, &n->id_emb));
    int64_t sizes[3] = {3 * DIM, 64, 1};
    mmrec_mlp_config mc;
    CHECK(mmrec_mlp_config_init(&mc));
    mc.sizes = sizes;
    mc.num_sizes = 3;
    CHECK(mmrec_mlp_create(n->model, "head", &mc, &n->head));
    lc.in_dim = DIM;
    lc.out_dim = DIM;
    CHECK(mmrec_linear_create(n->model, "cic_content", &lc, &n->cic_content));
    n->cold_id_norm = 0.0f;
}

static int64_t id_row(int64_t item) { return item < N_WARM ? item + 1 : 0; }

/* Per-batch index: the distinct items of the candidates and the behaviour
 * sequences (each goes through the FQ-Former once), and where each
 * candidate / sequence position finds its row. */
typedef struct batch_index {
    int64_t items[EVAL_BATCH * (SEQ_MAX + 1)], id_rows[EVAL_BATCH * (SEQ_MAX + 1)];
    size_t n_items, n_cand_items; /* candidates first: rows [0, n_cand_items) */
    int64_t cand_slot[EVAL_BATCH], seq_slot[EVAL_BATCH * SEQ_MAX], cand_id[EVAL_BATCH];
    int64_t seq_id[EVAL_BATCH * SEQ_MAX];
    float mask[EVAL_BATCH * SEQ_MAX];
    float cold[EVAL_BATCH]; /* 1 for a candidate without a trained ID row */
    int64_t slot_of[N_ITEMS];
    unsigned stamp[N_ITEMS], generation;
} batch_index;

static int64_t slot(batch_index *b, int64_t item) {
    if (b->stamp[item] != b->generation) {
        b->stamp[item] = b->generation;
        b->slot_of[item] = (int64_t)b->n_items;
        b->items[b->n_items] = item;
        b->id_rows[b->n_items] = id_row(item);
        b->n_items++;
    }
    return b->slot_of[item];
}

static void index_batch(batch_index *b, const data *d, const int64_t *users,
                        const int64_t *items, size_t n) {
    b->generation++;
    b->n_items = 0;
    for (size_t k = 0; k < n; k++) {
        b->cand_slot[k] = slot(b, items[k]);
        b->cand_id[k] = id_row(items[k]);
        b->cold[k] = b->cand_id[k] == 0 ? 1.0f : 0.0f;
    }
    b->n_cand_items = b->n_items;
    for (size_t k = 0; k < n; k++) {
        const int64_t *s = d->seq + users[k] * SEQ_MAX;
        for (int j = 0; j < SEQ_MAX; j++) {
            int real = j < d->seq_len[users[k]];
            /* padding points at the candidate's row; the mask removes it */
            b->seq_slot[k * SEQ_MAX + j] = real ? slot(b, s[j]) : b->cand_slot[k];
            b->mask[k * SEQ_MAX + j] = (float)real;
            b->seq_id[k * SEQ_MAX + j] = real ? id_row(s[j]) : 0;
        }
    }
}

/* Logits [n] of n impressions; with cic_out, also the CIC loss over the
 * batch's distinct candidate items. */
static mmrec_tensor *forward(const net *m, mmrec_tape *t, const mmrec_cache *cache,
                             const data *d, batch_index *b, const int64_t *users,
                             const int64_t *items, size_t n, mmrec_tensor **cic_out) {
    index_batch(b, d, users, items, n);
    mmrec_tensor *image, *text, *q, *content, *cand, *id, *v, *seq, *seq_id, *seq_v, *seq3;
    gather_features(cache, t, b->items, b->n_items, &image, &text);
    CHECK(mmrec_fqformer_forward(m->fq, t, image, text, NULL, &q));
    CHECK(mmrec_linear_forward(m->fq_out, t, q, &content)); /* [n_items, d] */
    /* candidates: v = c + e */
    CHECK(mmrec_gather_rows(t, content, b->cand_slot, n, &cand));
    CHECK(mmrec_embedding_forward(m->id_emb, t, b->cand_id, n, &id));
    if (m->cold_id_norm > 0.0f) {
        /* cold items: e = |e|_mean * normalize(f_CIC(c)) */
        mmrec_tensor *proj, *unit, *cold, *fill;
        int64_t s2c[2] = {(int64_t)n, 1};
        CHECK(mmrec_linear_forward(m->cic_content, t, cand, &proj));
        CHECK(mmrec_l2_normalize(t, proj, 1e-12f, &unit));
        CHECK(mmrec_tape_wrap(t, b->cold, 2, s2c, MMREC_TENSOR_READONLY, &cold));
        CHECK(mmrec_mul(t, unit, cold, &fill));
        CHECK(mmrec_scale(t, fill, m->cold_id_norm, &fill));
        CHECK(mmrec_add(t, id, fill, &id));
    }
    CHECK(mmrec_add(t, cand, id, &v));
    /* behaviour sequences: v of each position, padding masked */
    CHECK(mmrec_gather_rows(t, content, b->seq_slot, n * SEQ_MAX, &seq));
    CHECK(mmrec_embedding_forward(m->id_emb, t, b->seq_id, n * SEQ_MAX, &seq_id));
    CHECK(mmrec_add(t, seq, seq_id, &seq_v));
    int64_t s3[3] = {(int64_t)n, SEQ_MAX, DIM}, s2[2] = {(int64_t)n, SEQ_MAX};
    CHECK(mmrec_reshape(t, seq_v, 3, s3, &seq3));
    mmrec_tensor *mask, *interest, *vu, *x, *logit, *flat;
    CHECK(mmrec_tape_wrap(t, b->mask, 2, s2, MMREC_TENSOR_READONLY, &mask));
    CHECK(mmrec_target_attention_forward(m->ta, t, v, seq3, mask, &interest));
    CHECK(mmrec_mul(t, v, interest, &vu));
    mmrec_tensor *parts[3] = {v, interest, vu};
    CHECK(mmrec_concat(t, parts, 3, 1, &x));
    CHECK(mmrec_mlp_forward(m->head, t, x, &logit));
    int64_t s1[1] = {(int64_t)n};
    CHECK(mmrec_reshape(t, logit, 1, s1, &flat));
    if (cic_out) {
        /* rows [0, n_cand_items) of content are the distinct candidates */
        mmrec_tensor *c_rows, *e_rows, *c_proj;
        size_t nc = b->n_cand_items;
        CHECK(mmrec_slice(t, content, 0, 0, (int64_t)nc, &c_rows));
        CHECK(mmrec_embedding_forward(m->id_emb, t, b->id_rows, nc, &e_rows));
        CHECK(mmrec_linear_forward(m->cic_content, t, c_rows, &c_proj));
        mmrec_cic_config cc;
        CHECK(mmrec_cic_config_init(&cc));
        cc.temperature = TEMPERATURE;
        cc.num_negatives = 0; /* all other candidates of the batch */
        CHECK(mmrec_loss_cic(t, c_proj, e_rows, &cc, cic_out));
    }
    return flat;
}

/* AUC of a model on a set of impressions. */
static double evaluate(const net *m, const mmrec_cache *cache, const data *d, batch_index *b,
                       const impressions *imp) {
    float *scores = malloc(imp->n * sizeof *scores);
    if (!scores) exit(1);
    mmrec_tape *t;
    CHECK(mmrec_tape_create(&t));
    CHECK(mmrec_tape_set_mode(t, MMREC_TAPE_INFERENCE));
    for (size_t lo = 0; lo < imp->n; lo += EVAL_BATCH) {
        size_t n = imp->n - lo < EVAL_BATCH ? imp->n - lo : EVAL_BATCH;
        mmrec_tensor *logit =
            forward(m, t, cache, d, b, imp->user + lo, imp->item + lo, n, NULL);
        CHECK(mmrec_tensor_copy_to(logit, scores + lo, n));
        mmrec_tape_reset(t);
    }
    mmrec_tape_destroy(t);
    double a = auc(scores, imp->label, imp->n);
    free(scores);
    return a;
}

/* Mean L2 norm of the trained (warm) ID rows. */
static float mean_id_norm(const net *m) {
    mmrec_tensor *table;
    float *rows;
    CHECK(mmrec_model_param(m->model, "item_id.weight", &table));
    CHECK(mmrec_tensor_data(table, &rows));
    double sum = 0;
    for (int64_t i = 1; i <= N_WARM; i++) {
        double sq = 0;
        for (int k = 0; k < DIM; k++) sq += (double)rows[i * DIM + k] * rows[i * DIM + k];
        sum += sqrt(sq);
    }
    return (float)(sum / N_WARM);
}

static void progress(int epoch, int epochs, size_t step, size_t steps, double loss, int tty) {
    if (tty) {
        char bar[31];
        size_t done = 30 * step / steps;
        for (size_t k = 0; k < 30; k++) bar[k] = k < done ? '=' : k == done ? '>' : ' ';
        bar[30] = 0;
        fprintf(stderr, "\r  epoch %d/%d [%s] loss=%.4f", epoch, epochs, bar, loss);
    } else if (step % (steps / 4) == 0 && step < steps) {
        fprintf(stderr, "  epoch %d/%d step %zu/%zu loss=%.4f\n", epoch, epochs, step, steps,
                loss);
    }
    fflush(stderr);
}

/* Trains a fresh model; returns the last epoch's warm and cold AUC. */
static void train(const mmrec_cache *cache, const data *d, float alpha, int epochs, uint64_t seed, double *warm_out,
                  double *cold_out) {
    net m;
    net_create(&m, seed);
    mmrec_optimizer_config oc;
    CHECK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = LR;
    mmrec_optimizer *opt;
    CHECK(mmrec_optimizer_create(m.model, &oc, &opt));
    CHECK(mmrec_optimizer_add_group(opt, "item_id.", ID_LR, 0.0f, NULL));
    mmrec_tape *t;
    CHECK(mmrec_tape_create(&t));
    CHECK(mmrec_tape_seed(t, seed));
    mmrec_rng *rng; /* shuffles: the same sequence in both runs */
    CHECK(mmrec_rng_create(seed + 1, &rng));
    static batch_index b;
    size_t n_train = d->train.n, steps = n_train / BATCH;
    size_t *order = malloc(n_train * sizeof *order);
    if (!order) exit(1);
    for (size_t k = 0; k < n_train; k++) order[k] = k;
    int tty = isatty(2);
    static int64_t bu[BATCH], bi[BATCH];
    static float bl[BATCH];
    int64_t sl[1] = {BATCH};

    printf("training with alpha=%.2f\n", (double)alpha);
    for (int epoch = 1; epoch <= epochs; epoch++) {
        for (size_t k = n_train - 1; k > 0; k--) {
            uint64_t j;
            CHECK(mmrec_rng_below(rng, k + 1, &j));
            size_t tmp = order[k];
            order[k] = order[j];
            order[j] = tmp;
        }
        double bce_sum = 0, cic_sum = 0;
        for (size_t s = 0; s < steps; s++) {
            for (size_t k = 0; k < BATCH; k++) {
                size_t r = order[s * BATCH + k];
                bu[k] = d->train.user[r];
                bi[k] = d->train.item[r];
                bl[k] = d->train.label[r];
            }
            mmrec_tensor *cic = NULL, *labels, *bce, *loss;
            int use_cic = alpha > 0 && epoch >= CIC_FROM_EPOCH;
            mmrec_tensor *logit =
                forward(&m, t, cache, d, &b, bu, bi, BATCH, use_cic ? &cic : NULL);
            CHECK(mmrec_tape_wrap(t, bl, 1, sl, MMREC_TENSOR_READONLY, &labels));
            CHECK(mmrec_loss_bce_logits(t, logit, labels, &bce));
            loss = bce;
            float value;
            CHECK(mmrec_tensor_copy_to(bce, &value, 1));
            bce_sum += value;
            if (cic) {
                mmrec_tensor *scaled;
                CHECK(mmrec_scale(t, cic, alpha, &scaled));
                CHECK(mmrec_add(t, bce, scaled, &loss));
                CHECK(mmrec_tensor_copy_to(cic, &value, 1));
                cic_sum += value;
            }
            CHECK(mmrec_tape_backward(t, loss));
            CHECK(mmrec_optimizer_step(opt));
            mmrec_tape_reset(t);
            progress(epoch, epochs, s + 1, steps, bce_sum / (double)(s + 1), tty);
        }
        m.cold_id_norm = alpha > 0 ? mean_id_norm(&m) : 0.0f;
        double warm = evaluate(&m, cache, d, &b, &d->test_warm);
        double cold = evaluate(&m, cache, d, &b, &d->test_cold);
        m.cold_id_norm = 0.0f;
        if (tty) fprintf(stderr, "\r%70s\r", "");
        printf("epoch %d/%d  bce=%.4f", epoch, epochs, bce_sum / (double)steps);
        if (alpha > 0) printf(" cic=%.4f", cic_sum / (double)steps);
        printf("  auc=%.4f cold_auc=%.4f\n", warm, cold);
        fflush(stdout);
        *warm_out = warm;
        *cold_out = cold;
    }
    free(order);
    mmrec_rng_destroy(rng);
    mmrec_tape_destroy(t);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(m.model);
}

int main(int argc, char **argv) {
    /* Results go to stdout, progress to stderr: line-buffer stdout so the
     * two keep their order when both go to one file. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *cache_path = argc > 1 ? argv[1] : "build/em3_items.mmfc";
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    int epochs = argc > 3 ? atoi(argv[3]) : 6;
    if (epochs < 1) epochs = 1;
    CHECK(mmrec_set_num_threads(2));

    static data d;
    make_data(&d, seed);
    size_t train_clicks = 0;
    for (size_t k = 0; k < d.train.n; k++) train_clicks += d.train.label[k] > 0.5f;
    printf("em3_ranking: %d users, %d warm + %d cold items, %zu training impressions "
           "(CTR %.3f), seed %llu\n",
           N_USERS, N_WARM, N_COLD, d.train.n, (double)train_clicks / (double)d.train.n,
           (unsigned long long)seed);
    printf("oracle AUC (true click probability): warm %.4f, cold %.4f\n", d.oracle_warm,
           d.oracle_cold);

    build_cache(&d, cache_path);
    mmrec_cache *cache;
    CHECK(mmrec_cache_open(cache_path, &cache));
    printf("feature cache %s: fields image [%d] and text [%d], float16\n", cache_path,
           N_FEAT * F_IMG, N_FEAT * F_TXT);

    double warm_cic, cold_cic, warm_nocic, cold_nocic;
    train(cache, &d, ALPHA, epochs, seed, &warm_cic, &cold_cic);
    train(cache, &d, 0.0f, epochs, seed, &warm_nocic, &cold_nocic);
    mmrec_cache_close(cache);
    printf("cold-start AUC: %.4f with CIC, %.4f without (warm %.4f / %.4f)\n", cold_cic,
           cold_nocic, warm_cic, warm_nocic);

    free_impressions(&d.train);
    free_impressions(&d.test_warm);
    free_impressions(&d.test_cold);
    printf("RESULT em3 auc=%.4f cold_auc_cic=%.4f cold_auc_nocic=%.4f\n", warm_cic, cold_cic,
           cold_nocic);
    return 0;
}
