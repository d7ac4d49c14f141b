/* quickstart: a two-tower retrieval model trained end to end.
 *
 * Generated data with a planted structure: users and items have hidden
 * 8-d tastes; their 32-d features are noisy linear views of the tastes; a
 * user clicks the items that match their taste best. Two MLP towers map
 * features to 32-d embeddings; in-batch softmax over user x item dot
 * products (temperature 0.1) with AdamW. Each epoch prints the loss and the
 * Recall@10 of held-out clicks over all items; then the model is saved,
 * reloaded into a fresh model and the scores compared.
 *
 * Usage: quickstart [epochs] [checkpoint path]   (defaults: 8, quickstart.mmrc) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmrec/mmrec.h>

#define N_USERS 2000
#define N_ITEMS 1000
#define FEAT 32
#define TASTE 8
#define EMB 32
#define CLICKS_PER_USER 6 /* 5 for training, 1 held out */
#define BATCH 256
#define TEMPERATURE 0.1f

#define CHECK(call)                                                                   \
    do {                                                                              \
        mmrec_status s_ = (call);                                                     \
        if (s_ != MMREC_OK) {                                                         \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call, \
                    mmrec_status_name(s_), mmrec_last_error());                       \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

typedef struct data {
    float user_feat[N_USERS * FEAT], item_feat[N_ITEMS * FEAT];
    int64_t train_user[N_USERS * (CLICKS_PER_USER - 1)], train_item[N_USERS * (CLICKS_PER_USER - 1)];
    int64_t test_item[N_USERS];
    size_t n_train;
} data;

/* Builds the data set from the library's seeded generator. */
static void make_data(data *d, mmrec_rng *rng) {
    static float user_taste[N_USERS * TASTE], item_taste[N_ITEMS * TASTE], proj[TASTE * FEAT];
    CHECK(mmrec_rng_normal(rng, 0, 1, user_taste, N_USERS * TASTE));
    CHECK(mmrec_rng_normal(rng, 0, 1, item_taste, N_ITEMS * TASTE));
    CHECK(mmrec_rng_normal(rng, 0, 1, proj, TASTE * FEAT));
    float noise[FEAT];
    for (int u = 0; u < N_USERS; u++) {
        CHECK(mmrec_rng_normal(rng, 0, 0.3f, noise, FEAT));
        for (int f = 0; f < FEAT; f++) {
            float v = noise[f];
            for (int t = 0; t < TASTE; t++) v += user_taste[u * TASTE + t] * proj[t * FEAT + f];
            d->user_feat[u * FEAT + f] = v / sqrtf(TASTE);
        }
    }
    for (int i = 0; i < N_ITEMS; i++) {
        CHECK(mmrec_rng_normal(rng, 0, 0.3f, noise, FEAT));
        for (int f = 0; f < FEAT; f++) {
            float v = noise[f];
            for (int t = 0; t < TASTE; t++) v += item_taste[i * TASTE + t] * proj[t * FEAT + f];
            d->item_feat[i * FEAT + f] = v / sqrtf(TASTE);
        }
    }
    /* Clicks: the best of 40 random candidates by taste match, repeated. */
    d->n_train = 0;
    for (int u = 0; u < N_USERS; u++) {
        for (int c = 0; c < CLICKS_PER_USER; c++) {
            int64_t best = 0;
            float best_score = -INFINITY;
            for (int k = 0; k < 40; k++) {
                uint64_t i;
                CHECK(mmrec_rng_below(rng, N_ITEMS, &i));
                float s = 0;
                for (int t = 0; t < TASTE; t++)
                    s += user_taste[u * TASTE + t] * item_taste[i * TASTE + t];
                if (s > best_score) best_score = s, best = (int64_t)i;
            }
            if (c == CLICKS_PER_USER - 1) {
                d->test_item[u] = best;
            } else {
                d->train_user[d->n_train] = u;
                d->train_item[d->n_train] = best;
                d->n_train++;
            }
        }
    }
}

/* Embeds rows of a feature table through a tower. */
static mmrec_tensor *embed(mmrec_module *tower, mmrec_tape *t, const float *feat,
                           const int64_t *ids, size_t n, float *staging) {
    for (size_t r = 0; r < n; r++) memcpy(staging + r * FEAT, feat + ids[r] * FEAT, FEAT * sizeof(float));
    int64_t shape[2] = {(int64_t)n, FEAT};
    mmrec_tensor *x, *y;
    CHECK(mmrec_tape_wrap(t, staging, 2, shape, MMREC_TENSOR_READONLY, &x));
    CHECK(mmrec_mlp_forward(tower, t, x, &y));
    return y;
}

/* Scores of every item for every user: [N_USERS, N_ITEMS] into `scores`. */
static void score_all(mmrec_module *user_tower, mmrec_module *item_tower, const data *d,
                      float *scores) {
    static int64_t all_users[N_USERS], all_items[N_ITEMS];
    static float staging_u[N_USERS * FEAT], staging_i[N_ITEMS * FEAT];
    for (int i = 0; i < N_USERS; i++) all_users[i] = i;
    for (int i = 0; i < N_ITEMS; i++) all_items[i] = i;
    mmrec_tape *t;
    CHECK(mmrec_tape_create(&t));
    CHECK(mmrec_tape_set_mode(t, MMREC_TAPE_INFERENCE));
    mmrec_tensor *u = embed(user_tower, t, d->user_feat, all_users, N_USERS, staging_u);
    mmrec_tensor *v = embed(item_tower, t, d->item_feat, all_items, N_ITEMS, staging_i);
    mmrec_tensor *s;
    CHECK(mmrec_matmul(t, u, v, MMREC_TRANS_B, &s));
    CHECK(mmrec_tensor_copy_to(s, scores, (size_t)N_USERS * N_ITEMS));
    mmrec_tape_destroy(t);
}

/* Recall@10 of the held-out click, training clicks excluded from ranking. */
static double recall_at_10(const data *d, float *scores) {
    for (size_t k = 0; k < d->n_train; k++)
        scores[d->train_user[k] * N_ITEMS + d->train_item[k]] = -INFINITY;
    int hits = 0;
    for (int u = 0; u < N_USERS; u++) {
        const float *row = scores + (size_t)u * N_ITEMS;
        float target = row[d->test_item[u]];
        int better = 0;
        for (int i = 0; i < N_ITEMS; i++) better += row[i] > target;
        hits += target > -INFINITY && better < 10;
    }
    return (double)hits / N_USERS;
}

int main(int argc, char **argv) {
    /* Results go to stdout, progress to stderr: line-buffer stdout so the
     * two keep their order when both go to one file. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    int epochs = argc > 1 ? atoi(argv[1]) : 8;
    const char *path = argc > 2 ? argv[2] : "quickstart.mmrc";
    if (epochs < 1) epochs = 1;

    static data d;
    mmrec_rng *rng;
    CHECK(mmrec_rng_create(7, &rng));
    make_data(&d, rng);

    mmrec_model *m;
    CHECK(mmrec_model_create(&m));
    CHECK(mmrec_model_seed(m, 1));
    int64_t sizes[3] = {FEAT, 64, EMB};
    mmrec_mlp_config cfg;
    CHECK(mmrec_mlp_config_init(&cfg));
    cfg.sizes = sizes;
    cfg.num_sizes = 3;
    mmrec_module *user_tower, *item_tower;
    CHECK(mmrec_mlp_create(m, "user_tower", &cfg, &user_tower));
    CHECK(mmrec_mlp_create(m, "item_tower", &cfg, &item_tower));
    size_t trainable, total;
    CHECK(mmrec_model_param_count(m, &trainable, &total));

    mmrec_optimizer_config ocfg;
    CHECK(mmrec_optimizer_config_init(&ocfg));
    ocfg.type = MMREC_OPT_ADAMW;
    ocfg.lr = 3e-3f;
    mmrec_optimizer *opt;
    CHECK(mmrec_optimizer_create(m, &ocfg, &opt));
    mmrec_tape *t;
    CHECK(mmrec_tape_create(&t));

    printf("quickstart: %d users, %d items, %zu training clicks, %zu parameters\n", N_USERS,
           N_ITEMS, d.n_train, trainable);
    static float staging_u[BATCH * FEAT], staging_i[BATCH * FEAT];
    static float scores[(size_t)N_USERS * N_ITEMS];
    static int64_t order[N_USERS * CLICKS_PER_USER], bu[BATCH], bi[BATCH], labels[BATCH];
    for (int k = 0; k < BATCH; k++) labels[k] = k;
    for (size_t k = 0; k < d.n_train; k++) order[k] = (int64_t)k;
    double first_loss = 0, last_loss = 0, recall = 0;
    size_t steps = d.n_train / BATCH;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        for (size_t k = d.n_train - 1; k > 0; k--) { /* shuffle */
            uint64_t j;
            CHECK(mmrec_rng_below(rng, k + 1, &j));
            int64_t tmp = order[k];
            order[k] = order[j];
            order[j] = tmp;
        }
        double epoch_loss = 0;
        for (size_t s = 0; s < steps; s++) {
            for (int k = 0; k < BATCH; k++) {
                bu[k] = d.train_user[order[s * BATCH + (size_t)k]];
                bi[k] = d.train_item[order[s * BATCH + (size_t)k]];
            }
            mmrec_tensor *u = embed(user_tower, t, d.user_feat, bu, BATCH, staging_u);
            mmrec_tensor *v = embed(item_tower, t, d.item_feat, bi, BATCH, staging_i);
            mmrec_tensor *logits, *scaled, *loss;
            CHECK(mmrec_matmul(t, u, v, MMREC_TRANS_B, &logits));
            CHECK(mmrec_scale(t, logits, 1.0f / TEMPERATURE, &scaled));
            CHECK(mmrec_loss_softmax_ce(t, scaled, labels, BATCH, &loss));
            float value;
            CHECK(mmrec_tensor_copy_to(loss, &value, 1));
            epoch_loss += value;
            CHECK(mmrec_tape_backward(t, loss));
            CHECK(mmrec_optimizer_step(opt));
            mmrec_tape_reset(t);
        }
        epoch_loss /= (double)steps;
        score_all(user_tower, item_tower, &d, scores);
        recall = recall_at_10(&d, scores);
        if (epoch == 1) first_loss = epoch_loss;
        last_loss = epoch_loss;
        printf("epoch %2d/%d  loss %.4f  recall@10 %.4f\n", epoch, epochs, epoch_loss, recall);
        fflush(stdout);
    }

    /* Save, reload into a fresh model, compare every score. */
    CHECK(mmrec_checkpoint_save(m, opt, path));
    mmrec_model *m2;
    CHECK(mmrec_model_create(&m2));
    mmrec_module *user2, *item2;
    CHECK(mmrec_mlp_create(m2, "user_tower", &cfg, &user2));
    CHECK(mmrec_mlp_create(m2, "item_tower", &cfg, &item2));
    CHECK(mmrec_model_load(m2, path));
    static float scores2[(size_t)N_USERS * N_ITEMS];
    score_all(user_tower, item_tower, &d, scores);
    score_all(user2, item2, &d, scores2);
    int match = memcmp(scores, scores2, sizeof scores) == 0;
    printf("saved %s; reloaded model scores %s\n", path, match ? "match" : "DIFFER");

    mmrec_tape_destroy(t);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(m);
    mmrec_model_destroy(m2);
    mmrec_rng_destroy(rng);
    printf("RESULT quickstart loss_first=%.4f loss_last=%.4f recall@10=%.4f reload_match=%d\n",
           first_loss, last_loss, recall, match);
    return match && last_loss < first_loss ? 0 : 1;
}
