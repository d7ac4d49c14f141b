/* iisan: IISAN (Fu et al., SIGIR 2024; shared/METHODS.md "IISAN"),
 * decoupled parameter-efficient fine-tuning for sequential recommendation:
 * side adapters (SANs) over the cached per-layer states of a frozen
 * backbone, a SASRec sequence encoder and the in-batch debiased
 * cross-entropy, trained on IISAN's own data files, against two baselines
 * trained by the same code with the same budget:
 *   iisan   text-only IISAN: the intra-modal text SAN over the LayerDrop-kept
 *           layers (0, 2, 4, 6 of 7), the text head, the fusion layer
 *   id      ID-only SASRec: a learned item table, no content
 *   frozen  the frozen backbone's last layer through the same head (Linear
 *           H -> H, Linear H -> d), no SAN
 * All three share the sequence encoder (learned positions, LayerNorm eps
 * 1e-6, 2 post-LN blocks of 2 heads without attention biases, ReLU FFN 4d,
 * dropout 0.1), the loss (every position against every item of the batch,
 * minus log training popularity, the user's own other items and padding
 * removed) and Adam with the reference's learning-rate groups (sequence
 * encoder, fusion, gates and the ID table 2e-4, adapters 1e-4, text head
 * 5e-5, image head 1e-4), all scaled by --lr-scale, 5 by default: the
 * reference trains 100 epochs, this example at most 30 with early stopping
 * (patience 5), and at the reference's rates (--lr-scale 1) no model is
 * near convergence within that budget.
 *
 * Data (<data dir>, default ../shared/data/iisan-scientific): the two files
 * of IISAN's format, found as *_items.tsv ("asin<TAB>title") and *_users*.tsv
 * ("user<TAB>asin asin ...", oldest first), read by mmrec_sequences_read_tsv:
 * sequences of 5+ items, the last 13 kept, items numbered from 1. Split
 * leave-one-out: per user the last item is the test target, the one before
 * it the validation target, the rest the training part; a training sample
 * is the last 11 items of the training part (10 inputs and their next
 * items), padded on the left. Evaluation: full ranking of every item for
 * every user, the user's earlier items excluded, user vector = the encoder's
 * output at the last position of the user's last 10 items; HR@10 and
 * NDCG@10 on validation after each epoch, on test at the epoch with the
 * best validation NDCG@10.
 *
 * Content: the data has titles and no images, and no pretrained language
 * model can be downloaded where this runs, so the text backbone is the
 * frozen encoder of text_encoder.h: LSA-style word vectors computed from the
 * titles themselves and frozen random Transformer layers, the mean-pooled
 * state of every layer cached as a [7, 256] float16 record per item. Its
 * states are statistics of the titles, not a language model's: read the
 * content-versus-ID comparison with that in mind. A host with a real
 * backbone writes its per-layer CLS states into a cache file of its own
 * (field "text", [layers, width] records of item ids 1 .. num_items, e.g.
 * from a 3-D .npy: README, "Filling IISAN's feature cache") and passes it
 * as --features; that file is only read. Without it the frozen encoder's
 * cache is built at --cache (default iisan_text.mmfc; make passes
 * build/iisan_text.mmfc) and reused while the items and the encoder's
 * options stay the same.
 *
 * --synthetic: two generated modalities carrying a planted signal, to run
 * the full intra+inter model end to end and to show when the inter-modal
 * SAN helps. Item i is one pair of 5-bit codes (a, b), 1024 items: its
 * "text" states carry a (one direction per bit, signed, growing with
 * depth), its "image" states b along the same directions, and nothing
 * else; users prefer one category c = a XOR b (32 categories of 32
 * items), 85% of their items from it. Every function of a alone plus a
 * function of b alone is uncorrelated with the category, so the intra-modal
 * model (text SAN and image SAN fused by a linear layer, scored by a dot
 * product) cannot see it; the inter-modal SAN adds the two modalities inside
 * its adapters (ReLU gives |x|, hence each bit's XOR) and can. Compared:
 * intra+inter, intra and text-only.
 *
 * Usage: iisan [data dir] [--epochs N] [--patience N] [--batch B]
 *          [--lr-scale S] [--cache PATH] [--features PATH] [--models LIST]
 *          [--threads T] [--seed S] [--synthetic]
 * --models: a comma-separated subset of iisan,id,frozen (of
 * intra+inter,intra,text with --synthetic); default all of them.
 * Progress goes to stderr (a bar per epoch, validation metrics); the last
 * line on stdout is
 *   RESULT iisan hr@10=... ndcg@10=... baseline_id_hr@10=...
 *     baseline_frozen_hr@10=... trainable_params=... step_ms=...
 *     peak_rss_mb=... seconds=...
 * with IISAN's efficiency report (time per step, trainable parameters,
 * peak memory), or with --synthetic
 *   RESULT iisan_synthetic hr@10_intra_inter=... hr@10_intra=...
 *     hr@10_text=... seconds=... */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <mmrec/mmrec.h>

#include "example_util.h"
#include "text_encoder.h"

#define SEQ 10          /* input positions: max_seq_len */
#define DIM 64          /* d */
#define BLOCKS 2        /* sequence encoder blocks */
#define HEADS 2
#define DROPOUT 0.1f
#define TOPK 10
#define TEXT_WIDTH 256  /* the frozen text encoder's width (H) */
#define TEXT_LAYERS 6   /* its layers: 7 states with the input */
#define TEXT_TOKENS 30  /* words per title */
/* The reference's learning rates (groups of Adam). */
#define LR_BASE 2e-4f    /* sequence encoder, fusion, gates, ID table */
#define LR_ADAPTER 1e-4f /* SAN adapters */
#define LR_TEXT 5e-5f    /* text head */
#define LR_IMAGE 1e-4f   /* image head */

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
}

/* ---- data: user sequences and the feature cache ---- */

typedef struct data {
    int64_t num_users, num_items; /* items 1 .. num_items, 0 = padding */
    int64_t *items;               /* user u: items[off[u] .. off[u + 1]) */
    size_t *off;
    float *popularity;            /* [num_items + 1]: training counts */
    mmrec_cache *cache;
    int64_t layers, width;        /* the cached records: [layers, width] */
    int has_image;                /* a field "image" besides "text" */
} data;

static size_t user_len(const data *d, int64_t u) { return d->off[u + 1] - d->off[u]; }

static void data_counts(data *d) {
    d->popularity = xcalloc((size_t)d->num_items + 1, sizeof *d->popularity);
    for (int64_t u = 0; u < d->num_users; u++) {
        const int64_t *s = d->items + d->off[u];
        size_t n = user_len(d, u);
        for (size_t k = 0; k + 2 < n; k++) d->popularity[s[k]] += 1.0f;
    }
}

static void data_read(data *d, const char *dir, const char *cache_path, const char *features) {
    size_t count;
    mmrec_sequences *seqs =
        read_sequences(dir, &d->num_users, &d->num_items, &count, &d->items, &d->off);
    data_counts(d);

    if (features) { /* the host's own backbone states, used as they are */
        cache_path = features;
    } else {
        te_options opt;
        te_options_init(&opt); /* [7, 256] float16 records in the field "text" */
        opt.width = TEXT_WIDTH;
        opt.layers = TEXT_LAYERS;
        opt.max_tokens = TEXT_TOKENS;
        if (te_build_cache(seqs, cache_path, &opt, stderr) != MMREC_OK) {
            fprintf(stderr, "cannot build the text cache %s: %s\n", cache_path, te_error());
            exit(1);
        }
    }
    mmrec_sequences_destroy(seqs);
    CHECK(mmrec_cache_open(cache_path, &d->cache));
    CHECK(mmrec_cache_field_shape(d->cache, "text", &d->layers, &d->width));
    d->has_image = 0;
}

/* ---- synthetic data with two modalities ---- */

#define SYN_USERS 6000
#define SYN_BITS 5                           /* bits of each modality's code */
#define SYN_ITEMS (1 << (2 * SYN_BITS))      /* one item per pair of codes */
#define SYN_LAYERS 7
#define SYN_WIDTH 128

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static float rng_normal(uint64_t *s) {
    double u = rng_uniform(s), v = rng_uniform(s);
    return (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

/* Draws from a cumulative table cdf[0 .. n-1] (last = 1). */
static size_t draw(const double *cdf, size_t n, uint64_t *s) {
    double r = rng_uniform(s);
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cdf[mid] < r) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void data_synthetic(data *d, const char *cache_path, uint64_t seed) {
    uint64_t s = seed * 0x2545F4914F6CDD1Dull + 7;
    const int C = 1 << SYN_BITS;
    int *code_a = xmalloc(SYN_ITEMS * sizeof *code_a), *code_b = xmalloc(SYN_ITEMS * sizeof *code_b);
    /* items of each category, Zipf popularity within it */
    int64_t *cat_items = xmalloc(SYN_ITEMS * sizeof *cat_items);
    size_t cat_n[1 << SYN_BITS] = {0}, cat_off[(1 << SYN_BITS) + 1];
    for (int i = 0; i < SYN_ITEMS; i++) {
        code_a[i] = i >> SYN_BITS;
        code_b[i] = i & (C - 1);
        cat_n[code_a[i] ^ code_b[i]]++;
    }
    cat_off[0] = 0;
    for (int c = 0; c < C; c++) cat_off[c + 1] = cat_off[c] + cat_n[c];
    size_t fill[1 << SYN_BITS];
    memcpy(fill, cat_off, sizeof fill);
    for (int i = 0; i < SYN_ITEMS; i++) cat_items[fill[code_a[i] ^ code_b[i]]++] = i + 1;
    double *cdf = xmalloc(SYN_ITEMS * sizeof *cdf);
    for (int c = 0; c < C; c++) {
        double sum = 0;
        for (size_t k = 0; k < cat_n[c]; k++) sum += 1.0 / (double)(k + 1);
        double acc = 0;
        for (size_t k = 0; k < cat_n[c]; k++) {
            acc += 1.0 / (double)(k + 1) / sum;
            cdf[cat_off[c] + k] = acc;
        }
        cdf[cat_off[c] + cat_n[c] - 1] = 1.0;
    }
    /* sequences: 5 .. 13 items, 85% from the user's category, no repeats */
    d->num_users = SYN_USERS;
    d->num_items = SYN_ITEMS;
    d->items = xmalloc((size_t)SYN_USERS * 13 * sizeof *d->items);
    d->off = xmalloc(((size_t)SYN_USERS + 1) * sizeof *d->off);
    d->off[0] = 0;
    for (int u = 0; u < SYN_USERS; u++) {
        int c = (int)(rng_next(&s) % (uint64_t)C);
        size_t n = 5 + (size_t)(rng_next(&s) % 9);
        int64_t *seq = d->items + d->off[u];
        for (size_t k = 0; k < n; k++) {
            int64_t item;
            int again;
            do {
                int cc = rng_uniform(&s) < 0.85 ? c : (int)(rng_next(&s) % (uint64_t)C);
                item = cat_items[cat_off[cc] + draw(cdf + cat_off[cc], cat_n[cc], &s)];
                again = 0;
                for (size_t j = 0; j < k; j++) again |= seq[j] == item;
            } while (again);
            seq[k] = item;
        }
        d->off[u + 1] = d->off[u] + n;
    }
    data_counts(d);

    /* states: layer l of item i, text = amp_l sum_j sign_j(a) u_lj + noise,
     * image the same with b; amp grows with depth */
    const size_t L = SYN_LAYERS, H = SYN_WIDTH, rec = L * H;
    float *dirs = xmalloc(L * SYN_BITS * H * sizeof *dirs);
    for (size_t k = 0; k < L * SYN_BITS * H; k++) dirs[k] = rng_normal(&s) / sqrtf((float)H);
    float *text = xmalloc((size_t)SYN_ITEMS * rec * sizeof *text);
    float *image = xmalloc((size_t)SYN_ITEMS * rec * sizeof *image);
    for (int i = 0; i < SYN_ITEMS; i++)
        for (size_t l = 0; l < L; l++) {
            float amp = 0.5f + 2.5f * (float)l / (float)(L - 1);
            float *t = text + (size_t)i * rec + l * H, *m = image + (size_t)i * rec + l * H;
            memset(t, 0, H * sizeof *t);
            memset(m, 0, H * sizeof *m);
            for (int j = 0; j < SYN_BITS; j++) {
                const float *u = dirs + (l * SYN_BITS + (size_t)j) * H;
                float sa = (code_a[i] >> j) & 1 ? amp : -amp, sb = (code_b[i] >> j) & 1 ? amp : -amp;
                for (size_t h = 0; h < H; h++) {
                    t[h] += sa * u[h];
                    m[h] += sb * u[h];
                }
            }
        }
    int64_t *ids = xmalloc(SYN_ITEMS * sizeof *ids);
    for (int i = 0; i < SYN_ITEMS; i++) ids[i] = i + 1;
    mmrec_cache_writer *w;
    CHECK(mmrec_cache_writer_create(cache_path, ids, SYN_ITEMS, &w));
    CHECK(mmrec_cache_writer_add_layers(w, "text", MMREC_CACHE_F16, text, (int64_t)L, (int64_t)H));
    CHECK(mmrec_cache_writer_add_layers(w, "image", MMREC_CACHE_F16, image, (int64_t)L,
                                        (int64_t)H));
    CHECK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    CHECK(mmrec_cache_open(cache_path, &d->cache));
    d->layers = (int64_t)L;
    d->width = (int64_t)H;
    d->has_image = 1;
    fprintf(stderr,
            "synthetic data: %d users, %d items, %d categories (a XOR b), states [%zu, %zu] "
            "per item and modality\n",
            SYN_USERS, SYN_ITEMS, C, L, H);
    free(code_a);
    free(code_b);
    free(cat_items);
    free(cdf);
    free(dirs);
    free(text);
    free(image);
    free(ids);
}

static void data_free(data *d) {
    mmrec_cache_close(d->cache);
    free(d->items);
    free(d->off);
    free(d->popularity);
}

/* ---- models ---- */

typedef enum kind { K_IISAN, K_ID, K_FROZEN } kind;

typedef struct net {
    kind kind;
    mmrec_iisan_mode mode;
    const data *d;
    mmrec_model *model;
    mmrec_module *items;          /* IISAN item encoder or ID table */
    mmrec_module *fc, *pre_fc;    /* the frozen baseline's head */
    mmrec_module *seq;            /* sequence encoder */
    mmrec_optimizer *opt;
    int64_t keep[64];             /* kept layers of the gathers */
    size_t n_keep;
} net;

static void net_create(net *n, kind k, mmrec_iisan_mode mode, const data *d, float lr_scale,
                       uint64_t seed) {
    memset(n, 0, sizeof *n);
    n->kind = k;
    n->mode = mode;
    n->d = d;
    CHECK(mmrec_model_create(&n->model));
    CHECK(mmrec_model_seed(n->model, seed));
    int64_t H = d->width;
    if (k == K_IISAN) {
        mmrec_iisan_item_encoder_config c;
        CHECK(mmrec_iisan_item_encoder_config_init(&c));
        c.hidden_dim = H;
        c.dim = DIM;
        c.mode = mode;
        c.num_layers = (int)d->layers; /* LayerDrop: every second layer */
        CHECK(mmrec_iisan_item_encoder_create(n->model, "item", &c, &n->items));
        for (int64_t l = 0; l < d->layers; l += c.layer_stride) n->keep[n->n_keep++] = l;
    } else if (k == K_ID) {
        mmrec_embedding_config c;
        CHECK(mmrec_embedding_config_init(&c));
        c.num_rows = d->num_items + 1;
        c.dim = DIM;
        c.init_std = sqrtf(2.0f / (float)(c.num_rows + DIM)); /* Xavier normal */
        CHECK(mmrec_embedding_create(n->model, "item", &c, &n->items));
    } else {
        mmrec_linear_config c;
        CHECK(mmrec_linear_config_init(&c));
        c.in_dim = H;
        c.out_dim = H;
        CHECK(mmrec_linear_create(n->model, "item.fc_bert", &c, &n->fc));
        c.out_dim = DIM;
        CHECK(mmrec_linear_create(n->model, "item.bert_pre_fc", &c, &n->pre_fc));
        n->keep[n->n_keep++] = d->layers - 1;
    }
    mmrec_sequence_encoder_config sc;
    CHECK(mmrec_sequence_encoder_config_init(&sc));
    sc.dim = DIM;
    sc.max_length = SEQ;
    sc.num_layers = BLOCKS;
    sc.num_heads = HEADS;
    sc.dropout = DROPOUT;
    CHECK(mmrec_sequence_encoder_create(n->model, "user", &sc, &n->seq));

    mmrec_optimizer_config oc;
    CHECK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = LR_BASE * lr_scale;
    CHECK(mmrec_optimizer_create(n->model, &oc, &n->opt));
    /* the reference's groups; a prefix that names no parameter in this
     * model (another mode's tower) is skipped */
    static const struct {
        const char *prefix;
        float lr;
    } groups[] = {
        {"item.bert_adapter_list", LR_ADAPTER}, {"item.cv_adapter_list", LR_ADAPTER},
        {"item.mm_adapter_list", LR_ADAPTER},   {"item.fc_bert", LR_TEXT},
        {"item.bert_pre_fc", LR_TEXT},          {"item.fc_cv", LR_IMAGE},
        {"item.cv_pre_fc", LR_IMAGE},
    };
    for (size_t g = 0; g < sizeof groups / sizeof *groups; g++) {
        mmrec_status s = mmrec_optimizer_add_group(n->opt, groups[g].prefix,
                                                   groups[g].lr * lr_scale, 0.0f, NULL);
        if (s != MMREC_OK && s != MMREC_ENOTFOUND) CHECK(s);
    }
}

static void net_free(net *n) {
    mmrec_optimizer_destroy(n->opt);
    mmrec_model_destroy(n->model);
}

static size_t net_trainable(const net *n) {
    size_t t;
    CHECK(mmrec_model_param_count(n->model, &t, NULL));
    return t;
}

/* Item embeddings [count, d] of ids (0 = padding: zero states). */
static mmrec_tensor *item_embed(net *n, mmrec_tape *tape, const int64_t *ids, size_t count,
                                double *gather_s) {
    mmrec_tensor *out;
    if (n->kind == K_ID) {
        CHECK(mmrec_embedding_forward(n->items, tape, ids, count, &out));
        return out;
    }
    mmrec_cache_gather_config gc;
    CHECK(mmrec_cache_gather_config_init(&gc));
    gc.flags = MMREC_CACHE_MISSING_ZERO; /* the padding id 0 is not cached */
    gc.keep = n->keep;
    gc.n_keep = n->n_keep;
    double t0 = now();
    mmrec_tensor *text = NULL, *image = NULL;
    if (n->mode != MMREC_IISAN_IMAGE || n->kind != K_IISAN)
        CHECK(mmrec_cache_gather_layers(n->d->cache, tape, "text", ids, count, &gc, &text, NULL));
    if (n->kind == K_IISAN && n->mode != MMREC_IISAN_TEXT && n->d->has_image)
        CHECK(mmrec_cache_gather_layers(n->d->cache, tape, "image", ids, count, &gc, &image,
                                        NULL));
    if (gather_s) *gather_s += now() - t0;
    if (n->kind == K_IISAN) {
        CHECK(mmrec_iisan_item_encoder_forward(n->items, tape, text, image, &out));
        return out;
    }
    int64_t shape[2] = {(int64_t)count, n->d->width};
    mmrec_tensor *x, *h;
    CHECK(mmrec_reshape(tape, text, 2, shape, &x));
    CHECK(mmrec_linear_forward(n->fc, tape, x, &h));
    CHECK(mmrec_linear_forward(n->pre_fc, tape, h, &out));
    return out;
}

/* The last `len` items of seq, left-padded into row[0 .. width). */
static void left_pad(const int64_t *seq, size_t len, int64_t *row, size_t width) {
    size_t take = len < width ? len : width;
    memset(row, 0, (width - take) * sizeof *row);
    memcpy(row + width - take, seq + len - take, take * sizeof *row);
}

/* One training step on the users batch[0 .. B): returns the loss. */
static double train_step(net *n, mmrec_tape *tape, const int64_t *users, size_t B, int64_t *ids,
                         float *mask, double *gather_s) {
    const data *d = n->d;
    const size_t L1 = SEQ + 1;
    for (size_t b = 0; b < B; b++) {
        int64_t u = users[b];
        left_pad(d->items + d->off[u], user_len(d, u) - 2, ids + b * L1, L1);
        for (size_t t = 0; t < SEQ; t++) mask[b * SEQ + t] = ids[b * L1 + t] != 0 ? 1.0f : 0.0f;
    }
    mmrec_tensor *emb = item_embed(n, tape, ids, B * L1, gather_s), *items, *inputs, *m, *states,
                 *loss;
    int64_t is[3] = {(int64_t)B, (int64_t)L1, DIM}, ms[2] = {(int64_t)B, SEQ};
    CHECK(mmrec_reshape(tape, emb, 3, is, &items));
    CHECK(mmrec_slice(tape, items, 1, 0, SEQ, &inputs));
    CHECK(mmrec_tape_wrap(tape, mask, 2, ms, MMREC_TENSOR_READONLY, &m));
    CHECK(mmrec_sequence_encoder_forward(n->seq, tape, inputs, m, &states, NULL));
    mmrec_sequence_softmax_config lc;
    CHECK(mmrec_sequence_softmax_config_init(&lc));
    lc.popularity = d->popularity;
    lc.num_items = d->num_items + 1;
    CHECK(mmrec_loss_sequence_softmax(tape, states, items, ids, B * L1, &lc, &loss));
    const float *lv;
    CHECK(mmrec_tensor_data_const(loss, &lv));
    double value = lv[0];
    CHECK(mmrec_tape_backward(tape, loss));
    CHECK(mmrec_optimizer_step(n->opt));
    return value;
}

/* Full-ranking HR@10 / NDCG@10: the target of each user is seq[len - back]
 * (back 2: validation, 1: test), its history the items before it. */
typedef struct eval_sets {
    mmrec_interactions *hist[2], *target[2]; /* [0] validation, [1] test; item ids - 1 */
} eval_sets;

static void eval_sets_make(eval_sets *e, const data *d) {
    for (int part = 0; part < 2; part++) {
        size_t back = part == 0 ? 2 : 1, nh = 0;
        for (int64_t u = 0; u < d->num_users; u++) nh += user_len(d, u) - back;
        int64_t *hu = xmalloc(nh * sizeof *hu), *hi = xmalloc(nh * sizeof *hi);
        int64_t *tu = xmalloc((size_t)d->num_users * sizeof *tu);
        int64_t *ti = xmalloc((size_t)d->num_users * sizeof *ti);
        size_t k = 0;
        for (int64_t u = 0; u < d->num_users; u++) {
            const int64_t *s = d->items + d->off[u];
            size_t len = user_len(d, u);
            for (size_t j = 0; j + back < len; j++, k++) {
                hu[k] = u;
                hi[k] = s[j] - 1;
            }
            tu[u] = u;
            ti[u] = s[len - back] - 1;
        }
        CHECK(mmrec_interactions_create(hu, hi, nh, &e->hist[part]));
        CHECK(mmrec_interactions_create(tu, ti, (size_t)d->num_users, &e->target[part]));
        free(hu);
        free(hi);
        free(tu);
        free(ti);
    }
}

static void eval_sets_free(eval_sets *e) {
    for (int p = 0; p < 2; p++) {
        mmrec_interactions_destroy(e->hist[p]);
        mmrec_interactions_destroy(e->target[p]);
    }
}

static void evaluate(net *n, mmrec_tape *tape, const eval_sets *e, int part, float *item_table,
                     float *user_table, double *hr, double *ndcg) {
    const data *d = n->d;
    /* items 2048 at a time; users 256 at a time (their SEQ items each): the
     * inference tape stays small */
    const size_t chunk = 2048, users = 256, back = part == 0 ? 2 : 1;
    int64_t *ids = xmalloc((chunk > users * SEQ ? chunk : users * SEQ) * sizeof *ids);
    float *mask = xmalloc(users * SEQ * sizeof *mask);
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    for (int64_t first = 1; first <= d->num_items; first += (int64_t)chunk) {
        size_t c = (size_t)(d->num_items - first + 1) < chunk ? (size_t)(d->num_items - first + 1)
                                                               : chunk;
        for (size_t i = 0; i < c; i++) ids[i] = first + (int64_t)i;
        mmrec_tensor *emb = item_embed(n, tape, ids, c, NULL);
        CHECK(mmrec_tensor_copy_to(emb, item_table + (size_t)(first - 1) * DIM, c * DIM));
        mmrec_tape_reset(tape);
    }
    for (int64_t first = 0; first < d->num_users; first += (int64_t)users) {
        size_t c = (size_t)(d->num_users - first) < users ? (size_t)(d->num_users - first) : users;
        for (size_t b = 0; b < c; b++) {
            int64_t u = first + (int64_t)b;
            left_pad(d->items + d->off[u], user_len(d, u) - back, ids + b * SEQ, SEQ);
            for (size_t t = 0; t < SEQ; t++) mask[b * SEQ + t] = ids[b * SEQ + t] != 0;
        }
        int64_t ms[2] = {(int64_t)c, SEQ}, is[3] = {(int64_t)c, SEQ, DIM};
        mmrec_tensor *emb = item_embed(n, tape, ids, c * SEQ, NULL), *x, *m, *last;
        CHECK(mmrec_reshape(tape, emb, 3, is, &x));
        CHECK(mmrec_tape_wrap(tape, mask, 2, ms, MMREC_TENSOR_READONLY, &m));
        CHECK(mmrec_sequence_encoder_forward(n->seq, tape, x, m, NULL, &last));
        CHECK(mmrec_tensor_copy_to(last, user_table + (size_t)first * DIM, c * DIM));
        mmrec_tape_reset(tape);
    }
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_TRAIN));
    int ks[1] = {TOPK};
    mmrec_rank_metrics r;
    r.struct_size = sizeof r;
    CHECK(mmrec_eval_full_ranking(user_table, item_table, d->num_users, d->num_items, DIM,
                                  e->hist[part], e->target[part], ks, 1, &r));
    *hr = r.hit_rate;
    *ndcg = r.ndcg;
    free(ids);
    free(mask);
}

typedef struct run_result {
    double hr, ndcg;  /* test, at the best validation epoch */
    double valid_ndcg;
    int best_epoch;
    double step_ms;   /* median training step */
    size_t trainable;
} run_result;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Trains one model with early stopping on validation NDCG@10. */
static run_result run(const char *name, kind k, mmrec_iisan_mode mode, const data *d,
                      const eval_sets *e, int epochs, int patience, size_t batch, float lr_scale,
                      uint64_t seed, double *gather_share) {
    net n;
    net_create(&n, k, mode, d, lr_scale, seed);
    run_result res = {0};
    res.trainable = net_trainable(&n);
    fprintf(stderr, "%s: %zu trainable parameters\n", name, res.trainable);
    mmrec_tape *tape;
    CHECK(mmrec_tape_create(&tape));
    CHECK(mmrec_tape_seed(tape, seed + 1));
    size_t U = (size_t)d->num_users, steps = (U + batch - 1) / batch;
    int64_t *order = xmalloc(U * sizeof *order);
    int64_t *ids = xmalloc(batch * (SEQ + 1) * sizeof *ids);
    float *mask = xmalloc(batch * SEQ * sizeof *mask);
    float *item_table = xmalloc((size_t)d->num_items * DIM * sizeof *item_table);
    float *user_table = xmalloc(U * DIM * sizeof *user_table);
    double *step_s = xmalloc(steps * (size_t)epochs * sizeof *step_s);
    size_t n_steps = 0;
    double gather_s = 0, train_s = 0;
    for (size_t u = 0; u < U; u++) order[u] = (int64_t)u;
    uint64_t rs = seed ^ 0xD1B54A32D192ED03ull;
    int tty = isatty(2), since_best = 0;
    res.valid_ndcg = -1;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        for (size_t u = U - 1; u > 0; u--) { /* shuffle */
            size_t j = (size_t)(rng_next(&rs) % (uint64_t)(u + 1));
            int64_t t = order[u];
            order[u] = order[j];
            order[j] = t;
        }
        double loss_sum = 0, t_epoch = now();
        for (size_t s = 0; s < steps; s++) {
            size_t B = U - s * batch < batch ? U - s * batch : batch;
            double t0 = now();
            loss_sum += train_step(&n, tape, order + s * batch, B, ids, mask, &gather_s);
            mmrec_tape_reset(tape);
            double dt = now() - t0;
            if (B == batch) step_s[n_steps++] = dt;
            train_s += dt;
            progress(name, epoch, s + 1, steps, loss_sum / (double)(s + 1), tty, 12);
        }
        if (tty) fprintf(stderr, "\r%78s\r", "");
        double hr, ndcg;
        evaluate(&n, tape, e, 0, item_table, user_table, &hr, &ndcg);
        const char *mark = "";
        if (ndcg > res.valid_ndcg) {
            res.valid_ndcg = ndcg;
            res.best_epoch = epoch;
            evaluate(&n, tape, e, 1, item_table, user_table, &res.hr, &res.ndcg);
            since_best = 0;
            mark = " *";
        } else {
            since_best++;
        }
        fprintf(stderr, "  %-12s epoch %3d loss %.4f valid hr@10 %.4f ndcg@10 %.4f (%.1f s)%s\n",
                name, epoch, loss_sum / (double)steps, hr, ndcg, now() - t_epoch, mark);
        if (since_best >= patience) break;
    }
    qsort(step_s, n_steps, sizeof *step_s, cmp_double);
    res.step_ms = n_steps ? 1e3 * step_s[n_steps / 2] : 0.0;
    if (gather_share) *gather_share = train_s > 0 ? gather_s / train_s : 0.0;
    fprintf(stderr, "%s: best epoch %d, test hr@10 %.4f ndcg@10 %.4f, step %.2f ms\n", name,
            res.best_epoch, res.hr, res.ndcg, res.step_ms);
    free(order);
    free(ids);
    free(mask);
    free(item_table);
    free(user_table);
    free(step_s);
    mmrec_tape_destroy(tape);
    net_free(&n);
    return res;
}

/* Whether the comma-separated list names `model`. */
static int has_model(const char *list, const char *model) {
    size_t n = strlen(model);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, model, n) == 0) return 1;
        p += len + (end != NULL);
    }
    return 0;
}

int main(int argc, char **argv) {
    /* Results go to stdout, progress to stderr: line-buffer stdout so the
     * two keep their order in one log. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *dir = "../shared/data/iisan-scientific", *cache_path = NULL;
    const char *models = NULL, *features = NULL;
    int epochs = 30, patience = 5, threads = 0, synthetic = 0;
    size_t batch = 64;
    float lr_scale = 5.0f;
    uint64_t seed = 2024;
    const opt_spec specs[] = {
        {"--epochs", OPT_INT, &epochs},
        {"--patience", OPT_INT, &patience},
        {"--batch", OPT_SIZE, &batch},
        {"--lr-scale", OPT_FLOAT, &lr_scale},
        {"--cache", OPT_STR, &cache_path},
        {"--features", OPT_STR, &features},
        {"--models", OPT_STR, &models},
        {"--threads", OPT_INT, &threads},
        {"--seed", OPT_U64, &seed},
        {"--synthetic", OPT_FLAG, &synthetic},
    };
    if (!parse_options(argc, argv, specs, sizeof specs / sizeof *specs, &dir,
                       "[data dir] [--epochs N] [--patience N] [--batch B] [--lr-scale S] "
                       "[--cache PATH] [--features PATH] [--models LIST] [--threads T] "
                       "[--seed S] [--synthetic]"))
        return 2;
    if (epochs < 1 || patience < 1 || batch < 2 || !(lr_scale > 0)) {
        fprintf(stderr, "--epochs, --patience >= 1, --batch >= 2, --lr-scale > 0\n");
        return 2;
    }
    if (threads > 0) CHECK(mmrec_set_num_threads(threads));
    if (!models) models = synthetic ? "intra+inter,intra,text" : "iisan,id,frozen";
    double t0 = now();
    data d;
    memset(&d, 0, sizeof d);
    char syn_path[4096] = "";
    if (synthetic) { /* regenerated every run: a temporary file */
        const char *tmp = getenv("TMPDIR");
        snprintf(syn_path, sizeof syn_path, "%s/iisan_synthetic.%ld.mmfc", tmp ? tmp : "/tmp",
                 (long)getpid());
        data_synthetic(&d, syn_path, seed);
    } else {
        data_read(&d, dir, cache_path ? cache_path : "iisan_text.mmfc", features);
    }
    eval_sets e;
    eval_sets_make(&e, &d);
    fprintf(stderr, "training: batch %zu users, up to %d epochs, early stop after %d epochs "
                    "without a better validation ndcg@10\n",
            batch, epochs, patience);

    if (synthetic) {
        run_result ii = {0}, intra = {0}, text = {0};
        if (has_model(models, "intra+inter"))
            ii = run("intra+inter", K_IISAN, MMREC_IISAN_INTRA_INTER, &d, &e, epochs, patience,
                     batch, lr_scale, seed, NULL);
        if (has_model(models, "intra"))
            intra = run("intra", K_IISAN, MMREC_IISAN_INTRA, &d, &e, epochs, patience, batch,
                        lr_scale, seed, NULL);
        if (has_model(models, "text"))
            text = run("text", K_IISAN, MMREC_IISAN_TEXT, &d, &e, epochs, patience, batch,
                       lr_scale, seed, NULL);
        printf("RESULT iisan_synthetic hr@10_intra_inter=%.4f ndcg@10_intra_inter=%.4f "
               "hr@10_intra=%.4f ndcg@10_intra=%.4f hr@10_text=%.4f ndcg@10_text=%.4f "
               "seconds=%.1f\n",
               ii.hr, ii.ndcg, intra.hr, intra.ndcg, text.hr, text.ndcg, now() - t0);
    } else {
        run_result iisan = {0}, id = {0}, frozen = {0};
        double share = 0;
        if (has_model(models, "iisan"))
            iisan = run("iisan", K_IISAN, MMREC_IISAN_TEXT, &d, &e, epochs, patience, batch,
                        lr_scale, seed, &share);
        if (has_model(models, "id"))
            id = run("id", K_ID, MMREC_IISAN_TEXT, &d, &e, epochs, patience, batch, lr_scale,
                     seed, NULL);
        if (has_model(models, "frozen"))
            frozen = run("frozen", K_FROZEN, MMREC_IISAN_TEXT, &d, &e, epochs, patience, batch,
                         lr_scale, seed, NULL);
        printf("RESULT iisan hr@10=%.4f ndcg@10=%.4f baseline_id_hr@10=%.4f "
               "baseline_id_ndcg@10=%.4f baseline_frozen_hr@10=%.4f "
               "baseline_frozen_ndcg@10=%.4f trainable_params=%zu step_ms=%.2f "
               "gather_share=%.3f peak_rss_mb=%.0f seconds=%.1f\n",
               iisan.hr, iisan.ndcg, id.hr, id.ndcg, frozen.hr, frozen.ndcg, iisan.trainable,
               iisan.step_ms, share, peak_rss_mb(), now() - t0);
    }
    eval_sets_free(&e);
    data_free(&d);
    if (synthetic) remove(syn_path);
    return 0;
}
