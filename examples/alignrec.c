/* alignrec: the AlignRec block (Liu et al., CIKM 2024; shared/METHODS.md
 * "AlignRec") on Amazon "Industrial and Scientific" as prepared for IISAN,
 * trained with BPR alone and with BPR + the alignment losses from the same
 * seed, and AlignRec's intermediate evaluations of the content and of the
 * learned multimodal item view.
 *
 * Data (<data dir>, e.g. ../shared/data/iisan-scientific):
 *   Industrial_and_Scientific_items.tsv    "asin<TAB>title", one item a line
 *   am_Industrial_and_Scientific_users.tsv "user<TAB>asin asin ...", oldest first
 * Split: leave-one-out, IISAN's protocol for these files (chronological
 * sequences of 5+ items; an 8/1/1 split of 5 items would leave most users
 * without a validation item): per user the last item is the test target,
 * the one before it the validation target, the rest (distinct items) the
 * training interactions. Validation picks the
 * epoch (early stopping on Recall@20); test is evaluated only at the best
 * validation epoch, for reporting. A target is ranked against all items
 * but the user's other earlier items (so a repeat purchase stays rankable).
 *
 * Content features: there are no images, so two "modalities" come from
 * the title text, each a TF-IDF vector over hashed terms reduced by a fixed
 * sparse random projection to 128 dims, norm sqrt(128):
 *   words [0, 128)   word unigrams and bigrams (lowercased alphanumeric runs)
 *   chars [128, 256) character trigrams of each word with boundary marks
 * concatenated into 256 dims (see featurize()).
 *
 * Model: mmrec_alignrec_create/_forward with the item kNN graph (k 10) of
 * the features and the bipartite graph of the training interactions;
 *   loss = BPR + reg                        reg: lambda/2 (|u|^2+|i|^2+|j|^2)/B
 *        + w_cl (InfoNCE(mm_i, id_i) + InfoNCE(mm_u, id_u))   tau 0.2
 *        + w_sim anti_collapse(mm_i, content_i) + w_ui (1 - cos(u, i))
 * Adam, learning rate x 0.96^(epoch/50), the content path ("ar.content.")
 * in its own optimizer group with its own learning rate. Configuration
 * "bpr" sets the three weights to 0; "align" uses --w-cl, --w-sim, --w-ui.
 *
 * Intermediate evaluations (metrics.h): zero-shot (user = mean content of
 * the history, target = the last item) and item-CF (target = the item
 * co-occurring most with the query item in the training interactions) on the
 * raw features, on each modality alone, on the raw features with one
 * modality masked for half the items, and on each trained model's mm_items;
 * mask-modality on a trained model: one modality zeroed for half the items
 * in its (trained) content table and in the features the kNN graph is
 * rebuilt from, test Recall@20 again.
 *
 * Usage: alignrec <data dir> [--epochs N] [--patience N] [--eval-every N]
 *          [--batch B] [--lr LR] [--content-lr LR] [--w-cl W] [--w-sim W]
 *          [--w-ui W] [--reg L] [--seed S] [--threads T] [--config both|bpr|align]
 * Progress goes to stderr, one line per epoch; the last line on stdout is
 * RESULT alignrec recall@20_bpr=... recall@20_align=... ndcg@20_bpr=...
 *   ndcg@20_align=... zero_shot_hr@20=... item_cf_hr@20=... seconds=... */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mmrec/mmrec.h>

#include "text_encoder.h" /* te_split_words */

#define ITEMS_FILE "Industrial_and_Scientific_items.tsv"
#define USERS_FILE "am_Industrial_and_Scientific_users.tsv"

#define MOD_DIM 128             /* dims per modality */
#define FEAT_DIM (2 * MOD_DIM)  /* words | chars */
#define HASH_BITS 20            /* hashed vocabulary of 2^20 terms per modality */
#define PROJ_NNZ 4              /* non-zeros per term in the random projection */
#define DIM 64
#define KNN_K 10
#define TAU 0.2f
#define MASK_RATIO 0.5

#define CHECK(call)                                                                   \
    do {                                                                              \
        mmrec_status s_ = (call);                                                     \
        if (s_ != MMREC_OK) {                                                         \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call, \
                    mmrec_status_name(s_), mmrec_last_error());                       \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *xmalloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static void *xrealloc(void *p, size_t size) {
    p = realloc(p, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* ---- reading the data ---- */

typedef struct asin_id {
    char *asin;
    int64_t id;
} asin_id;

static int cmp_asin(const void *a, const void *b) {
    return strcmp(((const asin_id *)a)->asin, ((const asin_id *)b)->asin);
}

typedef struct dataset {
    int64_t num_users, num_items;
    char **titles;            /* [num_items] */
    int64_t *seq_ptr, *seq;   /* user u's sequence: seq[seq_ptr[u] .. seq_ptr[u + 1]) */
    size_t num_interactions;
} dataset;

static FILE *open_in(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    return f;
}

static void chomp(char *line) {
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
}

/* Items get ids in the order of the item file, users in the order of the
 * user file. */
static void read_dataset(const char *dir, dataset *d) {
    FILE *f = open_in(dir, ITEMS_FILE);
    char *line = NULL;
    size_t cap = 0, n_alloc = 1024;
    asin_id *index = xmalloc(n_alloc * sizeof *index);
    d->titles = xmalloc(n_alloc * sizeof *d->titles);
    d->num_items = 0;
    while (getline(&line, &cap, f) > 0) {
        chomp(line);
        char *tab = strchr(line, '\t');
        if (tab == NULL) continue;
        *tab = 0;
        if ((size_t)d->num_items == n_alloc) {
            n_alloc *= 2;
            index = xrealloc(index, n_alloc * sizeof *index);
            d->titles = xrealloc(d->titles, n_alloc * sizeof *d->titles);
        }
        index[d->num_items].asin = xstrdup(line);
        index[d->num_items].id = d->num_items;
        d->titles[d->num_items] = xstrdup(tab + 1);
        d->num_items++;
    }
    fclose(f);
    qsort(index, (size_t)d->num_items, sizeof *index, cmp_asin);

    f = open_in(dir, USERS_FILE);
    size_t seq_cap = 1 << 16, users_cap = 1024;
    d->seq = xmalloc(seq_cap * sizeof *d->seq);
    d->seq_ptr = xmalloc((users_cap + 1) * sizeof *d->seq_ptr);
    d->seq_ptr[0] = 0;
    d->num_users = 0;
    size_t n = 0;
    while (getline(&line, &cap, f) > 0) {
        chomp(line);
        char *tab = strchr(line, '\t'), *save = NULL;
        if (tab == NULL) continue;
        for (char *tok = strtok_r(tab + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
            asin_id key = {tok, 0};
            asin_id *hit = bsearch(&key, index, (size_t)d->num_items, sizeof *index, cmp_asin);
            if (hit == NULL) {
                fprintf(stderr, "%s: unknown item '%s'\n", USERS_FILE, tok);
                exit(1);
            }
            if (n == seq_cap) {
                seq_cap *= 2;
                d->seq = xrealloc(d->seq, seq_cap * sizeof *d->seq);
            }
            d->seq[n++] = hit->id;
        }
        if ((size_t)d->num_users == users_cap) {
            users_cap *= 2;
            d->seq_ptr = xrealloc(d->seq_ptr, (users_cap + 1) * sizeof *d->seq_ptr);
        }
        d->seq_ptr[++d->num_users] = (int64_t)n;
    }
    fclose(f);
    free(line);
    if (d->num_items == 0 || d->num_users == 0) {
        fprintf(stderr, "%s: no items or no users\n", dir);
        exit(1);
    }
    for (int64_t i = 0; i < d->num_items; i++) free(index[i].asin);
    free(index);
    d->num_interactions = n;
}

static void free_dataset(dataset *d) {
    for (int64_t i = 0; i < d->num_items; i++) free(d->titles[i]);
    free(d->titles);
    free(d->seq_ptr);
    free(d->seq);
}

/* ---- content features from the titles ----
 * Each title is lowercased and cut into words, the maximal runs of [a-z0-9]
 * (an HTML entity such as "&quot;" separates words). Modality "words" has
 * the terms: every word and every pair of adjacent words; modality "chars"
 * the character trigrams of each word written "^word$" (so "pla" gives "^pl",
 * "pla", "la$"). A term is hashed (64-bit FNV-1a, a different seed per
 * modality) to one of 2^20 buckets, which stand for the vocabulary. A
 * title's vector over the buckets is TF-IDF,
 *   x_b = (1 + log tf_b) * (log((1 + N) / (1 + df_b)) + 1),
 * N the number of titles and df_b the titles holding bucket b (sklearn's
 * smooth idf with sublinear tf). A fixed sparse random projection maps it to
 * 128 dims: bucket b adds x_b * s / sqrt(4) to 4 dims, dims and signs s = +-1
 * drawn from a hash of b (an Achlioptas / count-sketch style projection: dot
 * products are preserved in expectation). Each modality's 128 dims are then
 * scaled to norm sqrt(128): both modalities weigh the same in the cosine of
 * the whole row, and the values have about unit scale, as the content path's
 * Linear layers (torch's default initialization) expect. Unit-norm rows
 * (values ~0.09) would leave the gate at its initial value: masking a
 * modality then changed the multimodal view in its fifth digit. */

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t fnv1a(uint64_t h, const char *s, size_t n) {
    for (size_t k = 0; k < n; k++) h = (h ^ (unsigned char)s[k]) * FNV_PRIME;
    return h;
}

static uint32_t bucket_of(uint64_t h) { return (uint32_t)(splitmix64(h) >> (64 - HASH_BITS)); }

/* The buckets of one title's terms for modality `mod` (0 words, 1 chars),
 * repeats kept; returns how many were written to `out`. */
static size_t title_terms(const char *title, int mod, char *buf, size_t *start, size_t *len,
                          uint32_t *out) {
    size_t n_words = te_split_words(title, buf, start, len), n = 0;
    uint64_t seed = FNV_OFFSET ^ (uint64_t)(mod + 1);
    for (size_t w = 0; w < n_words; w++) {
        const char *word = buf + start[w];
        if (mod == 0) {
            out[n++] = bucket_of(fnv1a(seed, word, len[w]));
            if (w + 1 < n_words) { /* bigram "word next" */
                uint64_t h = fnv1a(seed, word, len[w]);
                h = fnv1a(h, " ", 1);
                out[n++] = bucket_of(fnv1a(h, buf + start[w + 1], len[w + 1]));
            }
        } else {
            char marked[512];
            size_t m = len[w] < sizeof marked - 2 ? len[w] : sizeof marked - 2;
            marked[0] = '^';
            memcpy(marked + 1, word, m);
            marked[m + 1] = '$';
            for (size_t k = 0; k + 3 <= m + 2; k++) out[n++] = bucket_of(fnv1a(seed, marked + k, 3));
        }
    }
    return n;
}

/* features [num_items, FEAT_DIM]: words in [0, MOD_DIM), chars after. */
static void featurize(const dataset *d, float *features) {
    size_t max_len = 0;
    for (int64_t i = 0; i < d->num_items; i++) {
        size_t l = strlen(d->titles[i]);
        if (l > max_len) max_len = l;
    }
    /* a title of L bytes has at most L words, 2L word terms, 3L trigrams */
    char *buf = xmalloc(max_len + 2);
    size_t *start = xmalloc((max_len + 1) * sizeof *start);
    size_t *len = xmalloc((max_len + 1) * sizeof *len);
    uint32_t *terms = xmalloc((3 * max_len + 3) * sizeof *terms);
    uint32_t *df = xmalloc(((size_t)1 << HASH_BITS) * sizeof *df);
    memset(features, 0, (size_t)d->num_items * FEAT_DIM * sizeof *features);
    for (int mod = 0; mod < 2; mod++) {
        memset(df, 0, ((size_t)1 << HASH_BITS) * sizeof *df);
        for (int pass = 0; pass < 2; pass++) { /* pass 0 counts df, pass 1 projects */
            for (int64_t i = 0; i < d->num_items; i++) {
                size_t n = title_terms(d->titles[i], mod, buf, start, len, terms);
                qsort(terms, n, sizeof *terms, cmp_u32);
                float *row = features + i * FEAT_DIM + mod * MOD_DIM;
                for (size_t k = 0; k < n;) {
                    size_t e = k;
                    while (e < n && terms[e] == terms[k]) e++;
                    uint32_t b = terms[k];
                    if (pass == 0) {
                        df[b]++;
                    } else {
                        double idf = log((1.0 + (double)d->num_items) / (1.0 + df[b])) + 1.0;
                        float x = (float)((1.0 + log((double)(e - k))) * idf / sqrt(PROJ_NNZ));
                        uint64_t r = b;
                        for (int t = 0; t < PROJ_NNZ; t++) {
                            r = splitmix64(r);
                            row[(r >> 33) % MOD_DIM] += (r & 1) ? x : -x;
                        }
                    }
                    k = e;
                }
            }
        }
        for (int64_t i = 0; i < d->num_items; i++) {
            float *row = features + i * FEAT_DIM + mod * MOD_DIM;
            double ss = 0;
            for (int j = 0; j < MOD_DIM; j++) ss += (double)row[j] * row[j];
            float inv = ss > 0 ? (float)(sqrt(MOD_DIM) / sqrt(ss)) : 0.0f;
            for (int j = 0; j < MOD_DIM; j++) row[j] *= inv;
        }
    }
    free(buf);
    free(start);
    free(len);
    free(terms);
    free(df);
}

/* ---- leave-one-out split ---- */

typedef struct split {
    /* each user's distinct training items, sorted: items[ptr[u] .. ptr[u + 1]) */
    int64_t *ptr, *items;
    int64_t *pair_user; /* the training pairs, user-major: (pair_user[k], items[k]) */
    size_t n_train;
    mmrec_interactions *train;      /* the training pairs */
    mmrec_interactions *valid;      /* (u, second-to-last item) */
    mmrec_interactions *test;       /* (u, last item) */
    mmrec_interactions *test_cold;  /* the test pairs whose item no training pair has */
    mmrec_interactions *seen_valid; /* hidden when ranking for validation */
    mmrec_interactions *seen_test;  /* hidden when ranking for test */
    mmrec_interactions *sequences;  /* whole sequences in order (zero-shot) */
} split;

static int has_item(const split *s, int64_t u, int64_t item) {
    int64_t lo = s->ptr[u], hi = s->ptr[u + 1];
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (s->items[mid] < item) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->ptr[u + 1] && s->items[lo] == item;
}

/* Growable pair list. */
typedef struct pairs {
    int64_t *u, *i;
    size_t n, cap;
} pairs;

static void push(pairs *p, int64_t u, int64_t i) {
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 1024;
        p->u = xrealloc(p->u, p->cap * sizeof *p->u);
        p->i = xrealloc(p->i, p->cap * sizeof *p->i);
    }
    p->u[p->n] = u;
    p->i[p->n] = i;
    p->n++;
}

static mmrec_interactions *to_interactions(pairs *p) {
    mmrec_interactions *x;
    CHECK(mmrec_interactions_create(p->u, p->i, p->n, &x));
    free(p->u);
    free(p->i);
    memset(p, 0, sizeof *p);
    return x;
}

static void make_split(const dataset *d, split *s) {
    int64_t U = d->num_users;
    s->ptr = xmalloc((size_t)(U + 1) * sizeof *s->ptr);
    s->items = xmalloc(d->num_interactions * sizeof *s->items);
    s->pair_user = xmalloc(d->num_interactions * sizeof *s->pair_user);
    char *in_train = xcalloc((size_t)d->num_items, 1);
    pairs valid = {0}, test = {0}, cold = {0}, seen_v = {0}, seen_t = {0}, seq = {0};
    size_t n = 0;
    for (int64_t u = 0; u < U; u++) {
        const int64_t *q = d->seq + d->seq_ptr[u];
        int64_t len = d->seq_ptr[u + 1] - d->seq_ptr[u]; /* >= 5 in this data */
        if (len < 3) {
            fprintf(stderr, "user %lld has %lld items; leave-one-out needs 3\n", (long long)u,
                    (long long)len);
            exit(1);
        }
        s->ptr[u] = (int64_t)n;
        for (int64_t k = 0; k < len - 2; k++) s->items[n + (size_t)k] = q[k];
        qsort(s->items + n, (size_t)(len - 2), sizeof *s->items, cmp_i64);
        size_t m = 0; /* distinct */
        for (int64_t k = 0; k < len - 2; k++)
            if (m == 0 || s->items[n + (size_t)k] != s->items[n + m - 1])
                s->items[n + m++] = s->items[n + (size_t)k];
        for (size_t k = 0; k < m; k++) s->pair_user[n + k] = u, in_train[s->items[n + k]] = 1;
        n += m;
        int64_t v = q[len - 2], t = q[len - 1];
        push(&valid, u, v);
        push(&test, u, t);
        int v_in_train = 0;
        for (size_t k = (size_t)s->ptr[u]; k < n; k++) {
            if (s->items[k] != v) push(&seen_v, u, s->items[k]);
            if (s->items[k] != t) push(&seen_t, u, s->items[k]);
            v_in_train |= s->items[k] == v;
        }
        if (v != t && !v_in_train) push(&seen_t, u, v);
        for (int64_t k = 0; k < len; k++) push(&seq, u, q[k]);
    }
    s->ptr[U] = (int64_t)n;
    s->n_train = n;
    for (int64_t u = 0; u < U; u++) {
        int64_t t = d->seq[d->seq_ptr[u + 1] - 1];
        if (!in_train[t]) push(&cold, u, t);
    }
    free(in_train);
    CHECK(mmrec_interactions_create(s->pair_user, s->items, n, &s->train));
    s->valid = to_interactions(&valid);
    s->test = to_interactions(&test);
    s->test_cold = to_interactions(&cold);
    s->seen_valid = to_interactions(&seen_v);
    s->seen_test = to_interactions(&seen_t);
    s->sequences = to_interactions(&seq);
}

static void free_split(split *s) {
    free(s->ptr);
    free(s->items);
    free(s->pair_user);
    mmrec_interactions_destroy(s->train);
    mmrec_interactions_destroy(s->valid);
    mmrec_interactions_destroy(s->test);
    mmrec_interactions_destroy(s->test_cold);
    mmrec_interactions_destroy(s->seen_valid);
    mmrec_interactions_destroy(s->seen_test);
    mmrec_interactions_destroy(s->sequences);
}

static size_t count_of(const mmrec_interactions *x) {
    size_t n;
    CHECK(mmrec_interactions_info(x, NULL, NULL, &n));
    return n;
}

/* ---- content evaluations ---- */

typedef struct content_scores {
    double zs_hr, zs_ndcg, cf_hr, cf_ndcg; /* at K = 20 */
} content_scores;

/* Zero-shot over the whole sequences (target: the test item) and item-CF
 * over the training pairs, of `dim` columns starting at `col` of a
 * [num_items, stride] matrix. */
static content_scores content_eval(const float *x, int64_t num_items, int64_t stride,
                                   int64_t col, int64_t dim, const split *s) {
    float *sub = (float *)x;
    if (col != 0 || dim != stride) {
        sub = xmalloc((size_t)(num_items * dim) * sizeof *sub);
        for (int64_t i = 0; i < num_items; i++)
            memcpy(sub + i * dim, x + i * stride + col, (size_t)dim * sizeof *sub);
    }
    int ks[1] = {20};
    mmrec_rank_metrics m[1];
    m[0].struct_size = sizeof m[0];
    content_scores c;
    CHECK(mmrec_eval_zero_shot(sub, num_items, dim, s->sequences, ks, 1, m));
    c.zs_hr = m[0].hit_rate;
    c.zs_ndcg = m[0].ndcg;
    CHECK(mmrec_eval_item_cf(sub, num_items, dim, s->train, ks, 1, m));
    c.cf_hr = m[0].hit_rate;
    c.cf_ndcg = m[0].ndcg;
    if (sub != x) free(sub);
    return c;
}

/* ---- the model ---- */

typedef struct options {
    int epochs, patience, eval_every, threads;
    size_t batch;
    float lr, content_lr, w_cl, w_sim, w_ui, reg;
    uint64_t seed;
    const char *config;
} options;

typedef struct context {
    const dataset *d;
    const split *s;
    const float *features;
    const mmrec_graph *ui_graph, *item_graph;
    const mmrec_graph *masked_graph[2]; /* kNN graphs of the features with words / chars
                                           masked (mask-modality) */
    const options *o;
} context;

typedef struct result {
    const char *name;
    int best_epoch, epochs_run;
    mmrec_rank_metrics valid[2], test[2]; /* K = 10, 20 at the best epoch */
    double test_cold_recall20;
    content_scores mm;                    /* of mm_items at the best epoch */
    double mask_recall20[2];              /* test Recall@20, words / chars masked */
    double seconds;
} result;

/* Full-ranking metrics at K = 10 and 20 of the model's final views, with
 * `item_graph` as the item kNN graph. */
static void eval_ranking(const context *c, mmrec_module *ar, mmrec_tape *tape,
                         const mmrec_graph *item_graph, const mmrec_interactions *seen,
                         const mmrec_interactions *held_out, mmrec_rank_metrics out[2]) {
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    mmrec_alignrec_views v;
    CHECK(mmrec_alignrec_views_init(&v));
    CHECK(mmrec_alignrec_forward(ar, tape, c->ui_graph, item_graph, &v));
    float *users, *items;
    CHECK(mmrec_tensor_data(v.users, &users));
    CHECK(mmrec_tensor_data(v.items, &items));
    int ks[2] = {10, 20};
    out[0].struct_size = sizeof out[0];
    CHECK(mmrec_eval_full_ranking(users, items, c->d->num_users, c->d->num_items, DIM, seen,
                                  held_out, ks, 2, out));
    mmrec_tape_reset(tape);
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_TRAIN));
}

static uint64_t below(mmrec_rng *rng, uint64_t n) {
    uint64_t v;
    CHECK(mmrec_rng_below(rng, n, &v));
    return v;
}

/* loss += w * term (and the term's value into *sum). */
static void add_term(mmrec_tape *t, mmrec_tensor **loss, mmrec_tensor *term, float w,
                     double *sum) {
    float value;
    CHECK(mmrec_tensor_copy_to(term, &value, 1));
    *sum += value;
    CHECK(mmrec_scale(t, term, w, &term));
    CHECK(mmrec_add(t, *loss, term, loss));
}

/* Trains one configuration from the seed; fills `r` at the best validation
 * epoch. Alignment weights 0 give BPR alone (same block, same init, same
 * batches). */
static void train(const context *c, const char *name, float w_cl, float w_sim, float w_ui,
                  result *r) {
    const options *o = c->o;
    int64_t U = c->d->num_users, I = c->d->num_items;
    double t_start = now_s();
    memset(r, 0, sizeof *r);
    r->name = name;

    mmrec_model *model;
    CHECK(mmrec_model_create(&model));
    CHECK(mmrec_model_seed(model, o->seed));
    mmrec_alignrec_config cfg;
    CHECK(mmrec_alignrec_config_init(&cfg));
    cfg.num_users = U;
    cfg.num_items = I;
    cfg.content_dim = FEAT_DIM;
    cfg.features = c->features;
    cfg.dim = DIM; /* id_layers 2, mm_layers 1: the released config */
    mmrec_module *ar;
    CHECK(mmrec_alignrec_create(model, "ar", &cfg, &ar));
    mmrec_tensor *content;
    CHECK(mmrec_model_param(model, "ar.content.features", &content));

    mmrec_optimizer_config oc;
    CHECK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = o->lr;
    mmrec_optimizer *opt;
    CHECK(mmrec_optimizer_create(model, &oc, &opt));
    int content_group;
    CHECK(mmrec_optimizer_add_group(opt, "ar.content.", o->content_lr, 0.0f, &content_group));

    size_t n_params, n_total;
    CHECK(mmrec_model_param_count(model, &n_params, &n_total));
    float *best = xmalloc(n_params * sizeof *best); /* parameters at the best epoch */

    mmrec_tape *tape;
    CHECK(mmrec_tape_create(&tape));
    mmrec_rng *rng; /* shuffles and negatives: the same stream in every configuration */
    CHECK(mmrec_rng_create(o->seed + 1, &rng));
    size_t n = c->s->n_train, B = o->batch;
    size_t *order = xmalloc(n * sizeof *order);
    for (size_t k = 0; k < n; k++) order[k] = k;
    int64_t *u = xmalloc(3 * B * sizeof *u), *i = u + B, *j = u + 2 * B;
    size_t steps = (n + B - 1) / B;
    int align = w_cl > 0 || w_sim > 0 || w_ui > 0;
    double best_valid = -1;
    int since_best = 0;

    fprintf(stderr, "[%s] w_cl=%g w_sim=%g w_ui=%g\n", name, (double)w_cl, (double)w_sim,
            (double)w_ui);
    for (int epoch = 1; epoch <= o->epochs; epoch++) {
        double t0 = now_s();
        /* MMRec's schedule: lr * 0.96^(epoch / 50), epochs counted from 0 */
        float decay = (float)pow(0.96, (double)(epoch - 1) / 50.0);
        CHECK(mmrec_optimizer_set_lr(opt, 0, o->lr * decay));
        CHECK(mmrec_optimizer_set_lr(opt, content_group, o->content_lr * decay));
        for (size_t k = n - 1; k > 0; k--) {
            size_t p = (size_t)below(rng, k + 1), tmp = order[k];
            order[k] = order[p];
            order[p] = tmp;
        }
        double sum_bpr = 0, sum_cl = 0, sum_sim = 0, sum_ui = 0;
        for (size_t step = 0; step < steps; step++) {
            size_t b = step + 1 < steps ? B : n - step * B;
            for (size_t k = 0; k < b; k++) {
                size_t p = order[step * B + k];
                u[k] = c->s->pair_user[p];
                i[k] = c->s->items[p];
                do j[k] = (int64_t)below(rng, (uint64_t)I);
                while (has_item(c->s, u[k], j[k]));
            }
            mmrec_alignrec_views v;
            CHECK(mmrec_alignrec_views_init(&v));
            CHECK(mmrec_alignrec_forward(ar, tape, c->ui_graph, c->item_graph, &v));
            mmrec_tensor *eu, *ei, *ej, *prod, *ps, *ns, *loss, *sq, *reg;
            CHECK(mmrec_gather_rows(tape, v.users, u, b, &eu));
            CHECK(mmrec_gather_rows(tape, v.items, i, b, &ei));
            CHECK(mmrec_gather_rows(tape, v.items, j, b, &ej));
            CHECK(mmrec_mul(tape, eu, ei, &prod));
            CHECK(mmrec_sum(tape, prod, 1, &ps));
            CHECK(mmrec_mul(tape, eu, ej, &prod));
            CHECK(mmrec_sum(tape, prod, 1, &ns));
            CHECK(mmrec_loss_bpr(tape, ps, ns, &loss));
            float value;
            CHECK(mmrec_tensor_copy_to(loss, &value, 1));
            sum_bpr += value;
            /* reg = lambda / 2 * (|eu|^2 + |ei|^2 + |ej|^2) / B on the final views */
            mmrec_tensor *rows[3] = {eu, ei, ej}, *all;
            CHECK(mmrec_concat(tape, rows, 3, 0, &all));
            CHECK(mmrec_mul(tape, all, all, &sq));
            CHECK(mmrec_sum(tape, sq, MMREC_AXIS_ALL, &reg));
            CHECK(mmrec_scale(tape, reg, 0.5f * o->reg / (float)b, &reg));
            CHECK(mmrec_add(tape, loss, reg, &loss));
            if (align) {
                mmrec_tensor *mi, *ii, *mu, *iu, *ci, *term;
                CHECK(mmrec_gather_rows(tape, v.mm_items, i, b, &mi));
                if (w_cl > 0) {
                    CHECK(mmrec_gather_rows(tape, v.id_items, i, b, &ii));
                    CHECK(mmrec_gather_rows(tape, v.mm_users, u, b, &mu));
                    CHECK(mmrec_gather_rows(tape, v.id_users, u, b, &iu));
                    CHECK(mmrec_loss_infonce(tape, mi, ii, TAU, &term));
                    add_term(tape, &loss, term, w_cl, &sum_cl);
                    CHECK(mmrec_loss_infonce(tape, mu, iu, TAU, &term));
                    add_term(tape, &loss, term, w_cl, &sum_cl);
                }
                if (w_sim > 0) { /* content rows of the (trainable) table, as the reference */
                    CHECK(mmrec_gather_rows(tape, content, i, b, &ci));
                    CHECK(mmrec_loss_anti_collapse(tape, mi, ci, &term));
                    add_term(tape, &loss, term, w_sim, &sum_sim);
                }
                if (w_ui > 0) {
                    CHECK(mmrec_loss_ui_alignment(tape, eu, ei, &term));
                    add_term(tape, &loss, term, w_ui, &sum_ui);
                }
            }
            CHECK(mmrec_tape_backward(tape, loss));
            CHECK(mmrec_optimizer_step(opt));
            mmrec_tape_reset(tape);
        }
        r->epochs_run = epoch;
        double train_s = now_s() - t0;
        fprintf(stderr, "[%s] epoch %3d  bpr %.4f", name, epoch, sum_bpr / (double)steps);
        if (w_cl > 0) fprintf(stderr, "  cl %.4f", sum_cl / (double)steps);
        if (w_sim > 0) fprintf(stderr, "  sim %.4f", sum_sim / (double)steps);
        if (w_ui > 0) fprintf(stderr, "  ui %.4f", sum_ui / (double)steps);
        fprintf(stderr, "  (%.1f s)", train_s);
        if (epoch % o->eval_every == 0 || epoch == o->epochs) {
            mmrec_rank_metrics m[2];
            eval_ranking(c, ar, tape, c->item_graph, c->s->seen_valid, c->s->valid, m);
            fprintf(stderr, "  valid R@20 %.4f N@20 %.4f", m[1].recall, m[1].ndcg);
            if (m[1].recall > best_valid) {
                best_valid = m[1].recall;
                since_best = 0;
                r->best_epoch = epoch;
                r->valid[0] = m[0];
                r->valid[1] = m[1];
                CHECK(mmrec_model_export_params(model, best, n_params));
                fprintf(stderr, " *");
            } else {
                since_best++;
            }
        }
        fprintf(stderr, "\n");
        if (since_best >= o->patience) break;
    }

    /* Everything below reads the parameters of the best validation epoch. */
    CHECK(mmrec_model_import_params(model, best, n_params));
    eval_ranking(c, ar, tape, c->item_graph, c->s->seen_test, c->s->test, r->test);
    mmrec_rank_metrics m[2];
    if (count_of(c->s->test_cold) > 0) {
        eval_ranking(c, ar, tape, c->item_graph, c->s->seen_test, c->s->test_cold, m);
        r->test_cold_recall20 = m[1].recall;
    }

    /* the learned multimodal item view */
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    mmrec_alignrec_views v;
    CHECK(mmrec_alignrec_views_init(&v));
    CHECK(mmrec_alignrec_forward(ar, tape, c->ui_graph, c->item_graph, &v));
    float *mm;
    CHECK(mmrec_tensor_data(v.mm_items, &mm));
    r->mm = content_eval(mm, I, DIM, 0, DIM, c->s);
    mmrec_tape_reset(tape);
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_TRAIN));

    /* mask-modality: one modality zeroed for MASK_RATIO of the items (the
     * same items in the trained content table and in the raw features the
     * item graph is rebuilt from), as if it were missing when serving */
    float *table;
    CHECK(mmrec_tensor_data(content, &table));
    float *saved = xmalloc((size_t)(I * FEAT_DIM) * sizeof *saved);
    memcpy(saved, table, (size_t)(I * FEAT_DIM) * sizeof *saved);
    for (int mod = 0; mod < 2; mod++) {
        CHECK(mmrec_eval_mask_modality(table, I, FEAT_DIM, mod * MOD_DIM, (mod + 1) * MOD_DIM,
                                       MASK_RATIO, o->seed));
        eval_ranking(c, ar, tape, c->masked_graph[mod], c->s->seen_test, c->s->test, m);
        r->mask_recall20[mod] = m[1].recall;
        memcpy(table, saved, (size_t)(I * FEAT_DIM) * sizeof *saved);
    }
    free(saved);
    r->seconds = now_s() - t_start;
    fprintf(stderr, "[%s] best epoch %d, test R@20 %.4f N@20 %.4f, %.0f s\n", name,
            r->best_epoch, r->test[1].recall, r->test[1].ndcg, r->seconds);

    free(u);
    free(order);
    free(best);
    mmrec_rng_destroy(rng);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(model);
}

/* ---- main ---- */

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s <data dir> [--epochs N] [--patience N] [--eval-every N] [--batch B]\n"
            "          [--lr LR] [--content-lr LR] [--w-cl W] [--w-sim W] [--w-ui W]\n"
            "          [--reg L] [--seed S] [--threads T] [--config both|bpr|align]\n",
            argv0);
}

int main(int argc, char **argv) {
    /* Results go to stdout, progress to stderr: line-buffer stdout so the
     * two keep their order when both go to one file. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || argv[1][0] == '-') {
        usage(argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    /* Defaults chosen on validation Recall@20 (seed 2024) within the
     * reference's ranges: lr 5e-3 (1e-3 converged too slowly for a short
     * run), the content group at the same rate (5e-4 was no better), w_cl
     * 0.01 (1e-3 and 0.1 were worse), w_sim 0.1 (0.5 worse), w_ui 0.1. */
    options o = {.epochs = 60, .patience = 10, .eval_every = 1, .threads = 2, .batch = 2048,
                 .lr = 5e-3f, .content_lr = 5e-3f, .w_cl = 0.01f, .w_sim = 0.1f, .w_ui = 0.1f,
                 .reg = 1e-4f, .seed = 2024, .config = "both"};
    for (int a = 2; a < argc; a++) {
        const char *v = a + 1 < argc ? argv[a + 1] : "";
        if (strcmp(argv[a], "--epochs") == 0) o.epochs = atoi(v), a++;
        else if (strcmp(argv[a], "--patience") == 0) o.patience = atoi(v), a++;
        else if (strcmp(argv[a], "--eval-every") == 0) o.eval_every = atoi(v), a++;
        else if (strcmp(argv[a], "--batch") == 0) o.batch = (size_t)atol(v), a++;
        else if (strcmp(argv[a], "--lr") == 0) o.lr = (float)atof(v), a++;
        else if (strcmp(argv[a], "--content-lr") == 0) o.content_lr = (float)atof(v), a++;
        else if (strcmp(argv[a], "--w-cl") == 0) o.w_cl = (float)atof(v), a++;
        else if (strcmp(argv[a], "--w-sim") == 0) o.w_sim = (float)atof(v), a++;
        else if (strcmp(argv[a], "--w-ui") == 0) o.w_ui = (float)atof(v), a++;
        else if (strcmp(argv[a], "--reg") == 0) o.reg = (float)atof(v), a++;
        else if (strcmp(argv[a], "--seed") == 0) o.seed = strtoull(v, NULL, 10), a++;
        else if (strcmp(argv[a], "--threads") == 0) o.threads = atoi(v), a++;
        else if (strcmp(argv[a], "--config") == 0) o.config = v, a++;
        else {
            fprintf(stderr, "unknown option '%s'\n", argv[a]);
            usage(argv[0]);
            return 2;
        }
    }
    int run_bpr = strcmp(o.config, "both") == 0 || strcmp(o.config, "bpr") == 0;
    int run_align = strcmp(o.config, "both") == 0 || strcmp(o.config, "align") == 0;
    if (o.epochs < 1 || o.patience < 1 || o.eval_every < 1 || o.batch < 2 || o.threads < 1 ||
        !(o.lr > 0) || !(o.content_lr >= 0) || !(o.w_cl >= 0) || !(o.w_sim >= 0) ||
        !(o.w_ui >= 0) || !(o.reg >= 0) || (!run_bpr && !run_align)) {
        fprintf(stderr, "bad option value\n");
        usage(argv[0]);
        return 2;
    }
    double t_start = now_s();
    CHECK(mmrec_set_num_threads(o.threads));

    dataset d;
    read_dataset(dir, &d);
    split s;
    make_split(&d, &s);
    printf("alignrec: %s: %lld users, %lld items, %zu interactions\n", dir,
           (long long)d.num_users, (long long)d.num_items, d.num_interactions);
    printf("leave-one-out: %zu distinct training pairs, %zu valid, %zu test (%zu with an item "
           "never seen in training)\n",
           s.n_train, count_of(s.valid), count_of(s.test), count_of(s.test_cold));

    double t0 = now_s();
    float *features = xmalloc((size_t)(d.num_items * FEAT_DIM) * sizeof *features);
    featurize(&d, features);
    mmrec_graph *ui_graph, *item_graph;
    CHECK(mmrec_graph_create_bipartite(s.pair_user, s.items, s.n_train, d.num_users,
                                       d.num_items, &ui_graph));
    mmrec_knn_config kc;
    CHECK(mmrec_knn_config_init(&kc));
    kc.k = KNN_K;
    CHECK(mmrec_graph_create_knn(features, d.num_items, FEAT_DIM, &kc, &item_graph));
    printf("features: title words+bigrams | char trigrams, TF-IDF, hashed, projected to %d | "
           "%d dims; kNN graph k=%d (%.1f s)\n",
           MOD_DIM, MOD_DIM, KNN_K, now_s() - t0);
    printf("d=%d id_layers=2 mm_layers=1 batch=%zu lr=%g content_lr=%g reg=%g tau=%g "
           "w_cl=%g w_sim=%g w_ui=%g epochs<=%d patience=%d seed=%llu threads=%d\n",
           DIM, o.batch, (double)o.lr, (double)o.content_lr, (double)o.reg, (double)TAU,
           (double)o.w_cl, (double)o.w_sim, (double)o.w_ui, o.epochs, o.patience,
           (unsigned long long)o.seed, mmrec_get_num_threads());
    fflush(stdout);

    /* intermediate evaluations of the raw content */
    t0 = now_s();
    content_scores raw = content_eval(features, d.num_items, FEAT_DIM, 0, FEAT_DIM, &s);
    content_scores raw_mod[2], raw_masked[2];
    float *masked = xmalloc((size_t)(d.num_items * FEAT_DIM) * sizeof *masked);
    mmrec_graph *masked_graph[2];
    for (int mod = 0; mod < 2; mod++) {
        raw_mod[mod] = content_eval(features, d.num_items, FEAT_DIM, mod * MOD_DIM, MOD_DIM, &s);
        memcpy(masked, features, (size_t)(d.num_items * FEAT_DIM) * sizeof *masked);
        CHECK(mmrec_eval_mask_modality(masked, d.num_items, FEAT_DIM, mod * MOD_DIM,
                                       (mod + 1) * MOD_DIM, MASK_RATIO, o.seed));
        raw_masked[mod] = content_eval(masked, d.num_items, FEAT_DIM, 0, FEAT_DIM, &s);
        CHECK(mmrec_graph_create_knn(masked, d.num_items, FEAT_DIM, &kc, &masked_graph[mod]));
    }
    free(masked);
    fprintf(stderr, "content evaluations and masked graphs: %.1f s\n", now_s() - t0);

    context c = {&d, &s, features, ui_graph, item_graph, {masked_graph[0], masked_graph[1]}, &o};
    result res[2];
    int n_res = 0;
    if (run_bpr) train(&c, "bpr", 0.0f, 0.0f, 0.0f, &res[n_res++]);
    if (run_align) train(&c, "align", o.w_cl, o.w_sim, o.w_ui, &res[n_res++]);

    printf("\nrecommendation (test at the best validation epoch; R = Recall, N = NDCG; "
           "cold: test items without training interactions)\n");
    printf("%-6s %5s  %9s %9s  %8s %8s %8s %8s  %8s  %6s\n", "config", "best", "valid R@20",
           "N@20", "test R@10", "N@10", "R@20", "N@20", "cold R@20", "time");
    for (int k = 0; k < n_res; k++)
        printf("%-6s %5d  %9.4f %9.4f  %8.4f %8.4f %8.4f %8.4f  %8.4f  %5.0fs\n", res[k].name,
               res[k].best_epoch, res[k].valid[1].recall, res[k].valid[1].ndcg,
               res[k].test[0].recall, res[k].test[0].ndcg, res[k].test[1].recall,
               res[k].test[1].ndcg, res[k].test_cold_recall20, res[k].seconds);
    printf("\nintermediate evaluations (HR@20 / NDCG@20; zero-shot: %zu users, target the "
           "last item; item-CF over the training pairs)\n",
           count_of(s.test));
    printf("%-34s %9s %9s  %9s %9s\n", "representation", "zs HR@20", "zs N@20", "cf HR@20",
           "cf N@20");
    const char *mod_name[2] = {"words", "chars"};
    printf("%-34s %9.4f %9.4f  %9.4f %9.4f\n", "raw content (words|chars)", raw.zs_hr,
           raw.zs_ndcg, raw.cf_hr, raw.cf_ndcg);
    for (int mod = 0; mod < 2; mod++) {
        char label[64];
        snprintf(label, sizeof label, "raw %s only", mod_name[mod]);
        printf("%-34s %9.4f %9.4f  %9.4f %9.4f\n", label, raw_mod[mod].zs_hr,
               raw_mod[mod].zs_ndcg, raw_mod[mod].cf_hr, raw_mod[mod].cf_ndcg);
    }
    for (int mod = 0; mod < 2; mod++) {
        char label[64];
        snprintf(label, sizeof label, "raw, %s masked for %.0f%% of items", mod_name[mod],
                 100 * MASK_RATIO);
        printf("%-34s %9.4f %9.4f  %9.4f %9.4f\n", label, raw_masked[mod].zs_hr,
               raw_masked[mod].zs_ndcg, raw_masked[mod].cf_hr, raw_masked[mod].cf_ndcg);
    }
    for (int k = 0; k < n_res; k++) {
        char label[64];
        snprintf(label, sizeof label, "mm_items of %s", res[k].name);
        printf("%-34s %9.4f %9.4f  %9.4f %9.4f\n", label, res[k].mm.zs_hr, res[k].mm.zs_ndcg,
               res[k].mm.cf_hr, res[k].mm.cf_ndcg);
    }
    printf("\nmask-modality on the trained models (test Recall@20; one modality zeroed for "
           "%.0f%% of items in the content table and the kNN graph)\n",
           100 * MASK_RATIO);
    printf("%-6s %9s %13s %13s\n", "config", "complete", "words masked", "chars masked");
    for (int k = 0; k < n_res; k++)
        printf("%-6s %9.4f %13.4f %13.4f\n", res[k].name, res[k].test[1].recall,
               res[k].mask_recall20[0], res[k].mask_recall20[1]);

    const result *rb = run_bpr ? &res[0] : NULL, *ra = run_align ? &res[n_res - 1] : NULL;
    printf("RESULT alignrec");
    if (rb) printf(" recall@20_bpr=%.4f", rb->test[1].recall);
    if (ra) printf(" recall@20_align=%.4f", ra->test[1].recall);
    if (rb) printf(" ndcg@20_bpr=%.4f", rb->test[1].ndcg);
    if (ra) printf(" ndcg@20_align=%.4f", ra->test[1].ndcg);
    if (rb) printf(" valid_recall@20_bpr=%.4f", rb->valid[1].recall);
    if (ra) printf(" valid_recall@20_align=%.4f", ra->valid[1].recall);
    printf(" zero_shot_hr@20=%.4f item_cf_hr@20=%.4f seconds=%.0f\n", raw.zs_hr, raw.cf_hr,
           now_s() - t_start);

    free(features);
    mmrec_graph_destroy(ui_graph);
    mmrec_graph_destroy(item_graph);
    mmrec_graph_destroy(masked_graph[0]);
    mmrec_graph_destroy(masked_graph[1]);
    free_split(&s);
    free_dataset(&d);
    return 0;
}
