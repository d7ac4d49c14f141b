/* A frozen text encoder for item titles, for a host that has no pretrained
 * language model at hand (none can be downloaded on the machines these
 * examples run on; a host with a real backbone, BERT say, writes its
 * per-layer states into the feature cache itself, from a 3-D .npy file of
 * [num_items, layers, width] through mmrec_cache_writer_add_npy).
 *
 * What it computes, all from the titles themselves:
 *   1. Words: each title lowercased and cut into the maximal runs of
 *      [a-z0-9] (an HTML entity such as "&amp;" separates words); at most
 *      `max_tokens` words per title.
 *   2. Vocabulary: the words found in at least 2 titles; the others map to
 *      one unknown-word vector.
 *   3. Word vectors (random indexing, an LSA-style embedding): every title
 *      t gets a fixed random Gaussian vector r_t of `width` dims, and word w
 *      the idf-weighted sum of the vectors of the titles holding it,
 *      v_w = idf_w * sum_{t : w in t} r_t, then scaled to norm sqrt(width).
 *      This is a random projection of the word-title matrix: two words that
 *      share titles get vectors with a large cosine (Johnson-Lindenstrauss),
 *      so the vectors carry the titles' co-occurrence meaning without an
 *      SVD.
 *   4. Layers: a title's word vectors plus fixed sinusoidal positions go
 *      through `layers` Transformer encoder layers of the library (pre-LN,
 *      random frozen weights, run on inference tapes); the state of every
 *      layer, the input included, is mean-pooled over the title's words:
 *      a record of [layers + 1, width] per item, as IISAN caches a
 *      backbone's per-layer CLS states.
 * Nothing is trained: the encoder is frozen by construction, as IISAN's
 * backbones are. The examples include this file (a header with static
 * functions) and check every call with their own CHECK macro. */
#ifndef MMREC_EXAMPLE_TEXT_ENCODER_H
#define MMREC_EXAMPLE_TEXT_ENCODER_H

#include <mmrec/mmrec.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The words of a title: lowercased copies separated by single 0 bytes in
 * `buf` (at least strlen(title) + 1 bytes); returns the word count and their
 * starts and lengths in start/len (at least strlen(title) entries each). */
static inline size_t te_split_words(const char *title, char *buf, size_t *start, size_t *len) {
    size_t n_words = 0, w = 0;
    int in_word = 0;
    for (const char *p = title; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '&') { /* skip an entity "&name;" or "&#123;" */
            const char *q = p + 1;
            while ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '#') q++;
            if (*q == ';' && q > p + 1) {
                p = q;
                in_word = 0;
                continue;
            }
        }
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (!in_word) {
                start[n_words] = w;
                len[n_words] = 0;
                n_words++;
                in_word = 1;
            }
            buf[w++] = (char)c;
            len[n_words - 1]++;
        } else if (in_word) {
            buf[w++] = 0;
            in_word = 0;
        }
    }
    buf[w] = 0;
    return n_words;
}

/* ---- the encoder ---- */

#define TE_MAX_LAYERS 24

typedef struct te_encoder {
    int width, layers, max_tokens;
    size_t table_size;  /* open-addressing table of the vocabulary's hashes */
    uint64_t *keys;     /* word hash, 0 = empty */
    int32_t *ids;       /* the word's row in vectors */
    size_t vocab;       /* rows 0 .. vocab-1 known words, row vocab unknown */
    float *vectors;     /* [vocab + 1, width] */
    float *positions;   /* [max_tokens, width] */
    mmrec_model *model; /* the frozen layers */
    mmrec_module *layer[TE_MAX_LAYERS];
} te_encoder;

static inline uint64_t te_mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static inline uint64_t te_hash(const char *word, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t k = 0; k < n; k++) h = (h ^ (unsigned char)word[k]) * 1099511628211ULL;
    return h ? h : 1; /* 0 marks an empty slot */
}

/* The slot of hash h: where it is, or the empty slot where it goes. */
static inline size_t te_slot(const te_encoder *e, uint64_t h) {
    size_t mask = e->table_size - 1, i = (size_t)te_mix(h) & mask;
    while (e->keys[i] != 0 && e->keys[i] != h) i = (i + 1) & mask;
    return i;
}

/* A standard normal draw from counter `c` of stream `seed` (Box-Muller). */
static inline float te_normal(uint64_t seed, uint64_t c) {
    uint64_t a = te_mix(seed ^ te_mix(2 * c)), b = te_mix(seed ^ te_mix(2 * c + 1));
    double u1 = ((double)(a >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(b >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* The distinct word hashes of a title (at most max_tokens words); returns
 * how many. buf, start, len as te_split_words needs them. */
static inline size_t te_title_hashes(const char *title, int max_tokens, char *buf,
                                     size_t *start, size_t *len, uint64_t *out, int distinct) {
    size_t n_words = te_split_words(title, buf, start, len), n = 0;
    if (n_words > (size_t)max_tokens) n_words = (size_t)max_tokens;
    for (size_t w = 0; w < n_words; w++) {
        uint64_t h = te_hash(buf + start[w], len[w]);
        int seen = 0;
        for (size_t k = 0; distinct && k < n && !seen; k++) seen = out[k] == h;
        if (!seen) out[n++] = h;
    }
    return n;
}

/* Builds the vocabulary, the word vectors and `layers` frozen layers of
 * `width` (a multiple of 64) from n titles. Returns 0, or -1 when out of
 * memory (a library call that fails stops the program through check). */
static inline int te_build(te_encoder *e, const char *const *titles, size_t n, int width,
                           int layers, int max_tokens, uint64_t seed) {
    memset(e, 0, sizeof *e);
    if (layers > TE_MAX_LAYERS || width % 64 != 0) return -1;
    e->width = width;
    e->layers = layers;
    e->max_tokens = max_tokens;
    size_t longest = 1;
    for (size_t t = 0; t < n; t++) {
        size_t l = strlen(titles[t]) + 1;
        if (l > longest) longest = l;
    }
    char *buf = malloc(longest);
    size_t *start = malloc(longest * sizeof *start), *len = malloc(longest * sizeof *len);
    uint64_t *hs = malloc(longest * sizeof *hs);
    /* document frequencies in a table sized for every distinct word */
    size_t total = 0;
    for (size_t t = 0; t < n; t++) total += strlen(titles[t]) / 2 + 1;
    e->table_size = 1024;
    while (e->table_size < 2 * total) e->table_size *= 2;
    e->keys = calloc(e->table_size, sizeof *e->keys);
    e->ids = calloc(e->table_size, sizeof *e->ids);
    int32_t *df = calloc(e->table_size, sizeof *df);
    if (!buf || !start || !len || !hs || !e->keys || !e->ids || !df) return -1;
    for (size_t t = 0; t < n; t++) {
        size_t m = te_title_hashes(titles[t], max_tokens, buf, start, len, hs, 1);
        for (size_t k = 0; k < m; k++) {
            size_t i = te_slot(e, hs[k]);
            e->keys[i] = hs[k];
            df[i]++;
        }
    }
    /* the vocabulary: words in >= 2 titles; the rest leave the table */
    for (size_t i = 0; i < e->table_size; i++) {
        if (e->keys[i] == 0) continue;
        if (df[i] >= 2) e->ids[i] = (int32_t)e->vocab++;
        else e->ids[i] = -1;
    }
    size_t rows = e->vocab + 1;
    e->vectors = calloc(rows * (size_t)width, sizeof *e->vectors);
    float *r = malloc((size_t)width * sizeof *r);
    if (!e->vectors || !r) return -1;
    for (size_t t = 0; t < n; t++) {
        for (int j = 0; j < width; j++)
            r[j] = te_normal(seed, (uint64_t)t * (uint64_t)width + (uint64_t)j);
        size_t m = te_title_hashes(titles[t], max_tokens, buf, start, len, hs, 1);
        for (size_t k = 0; k < m; k++) {
            size_t i = te_slot(e, hs[k]);
            if (e->ids[i] < 0) continue;
            float idf = (float)log((double)n / (double)df[i]);
            float *v = e->vectors + (size_t)e->ids[i] * (size_t)width;
            for (int j = 0; j < width; j++) v[j] += idf * r[j];
        }
    }
    float *unk = e->vectors + e->vocab * (size_t)width;
    for (int j = 0; j < width; j++) unk[j] = te_normal(seed ^ 0x5eed, (uint64_t)j);
    for (size_t w = 0; w < rows; w++) { /* norm sqrt(width): unit-scale values */
        float *v = e->vectors + w * (size_t)width;
        double ss = 0;
        for (int j = 0; j < width; j++) ss += (double)v[j] * v[j];
        float s = ss > 0 ? (float)sqrt((double)width / ss) : 0.0f;
        for (int j = 0; j < width; j++) v[j] *= s;
    }
    e->positions = malloc((size_t)max_tokens * (size_t)width * sizeof *e->positions);
    if (!e->positions) return -1;
    for (int p = 0; p < max_tokens; p++) /* sinusoidal, as the Transformer paper's */
        for (int j = 0; j < width; j++) {
            double f = pow(10000.0, -(double)(2 * (j / 2)) / (double)width);
            e->positions[p * width + j] = (float)(j % 2 ? cos(p * f) : sin(p * f));
        }
    free(buf);
    free(start);
    free(len);
    free(hs);
    free(df);
    free(r);
    if (mmrec_model_create(&e->model) != MMREC_OK) return -1;
    if (mmrec_model_seed(e->model, seed) != MMREC_OK) return -1;
    for (int l = 0; l < layers; l++) {
        mmrec_transformer_config c;
        if (mmrec_transformer_config_init(&c) != MMREC_OK) return -1;
        c.dim = width;
        c.num_heads = width / 64;
        c.dropout = 0.0f;
        c.norm_first = 1;
        char name[32];
        snprintf(name, sizeof name, "text.layer%d", l);
        if (mmrec_transformer_create(e->model, name, &c, &e->layer[l]) != MMREC_OK) return -1;
    }
    return 0;
}

/* The [layers + 1, width] record of each of titles[0 .. n) into out
 * (n * (layers + 1) * width floats): the word vectors plus positions, then
 * each layer's output, mean-pooled over the title's words. Items go through
 * in blocks of `block` titles on one inference tape. Returns 0, or -1 when a
 * library call fails (mmrec_last_error() says why). */
static inline int te_encode(const te_encoder *e, const char *const *titles, size_t n,
                            size_t block, float *out) {
    const int W = e->width, T = e->max_tokens, L = e->layers;
    size_t longest = 1;
    for (size_t t = 0; t < n; t++) {
        size_t l = strlen(titles[t]) + 1;
        if (l > longest) longest = l;
    }
    char *buf = malloc(longest);
    size_t *start = malloc(longest * sizeof *start), *len = malloc(longest * sizeof *len);
    uint64_t *hs = malloc(longest * sizeof *hs);
    float *x = malloc(block * (size_t)T * (size_t)W * sizeof *x);
    float *mask = malloc(block * (size_t)T * sizeof *mask);
    int *count = malloc(block * sizeof *count);
    mmrec_tape *tape = NULL;
    int rc = -1;
    if (!buf || !start || !len || !hs || !x || !mask || !count) goto done;
    if (mmrec_tape_create(&tape) != MMREC_OK ||
        mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE) != MMREC_OK)
        goto done;
    for (size_t first = 0; first < n; first += block) {
        size_t b = n - first < block ? n - first : block;
        memset(mask, 0, b * (size_t)T * sizeof *mask);
        for (size_t i = 0; i < b; i++) {
            size_t m = te_title_hashes(titles[first + i], T, buf, start, len, hs, 0);
            if (m == 0) m = 1, hs[0] = 0; /* an empty title: one unknown word */
            count[i] = (int)m;
            for (int p = 0; p < T; p++) {
                float *xp = x + (i * (size_t)T + (size_t)p) * (size_t)W;
                if ((size_t)p >= m) {
                    memset(xp, 0, (size_t)W * sizeof *xp);
                    continue;
                }
                mask[i * (size_t)T + (size_t)p] = 1.0f;
                size_t row = e->vocab;
                if (hs[p] != 0) {
                    size_t slot = te_slot(e, hs[p]);
                    if (e->keys[slot] == hs[p] && e->ids[slot] >= 0) row = (size_t)e->ids[slot];
                }
                const float *v = e->vectors + row * (size_t)W, *pe = e->positions + p * W;
                for (int j = 0; j < W; j++) xp[j] = v[j] + pe[j];
            }
        }
        int64_t xs[3] = {(int64_t)b, T, W}, ms[2] = {(int64_t)b, T};
        mmrec_tensor *h, *tm;
        if (mmrec_tape_wrap(tape, x, 3, xs, MMREC_TENSOR_READONLY, &h) != MMREC_OK ||
            mmrec_tape_wrap(tape, mask, 2, ms, MMREC_TENSOR_READONLY, &tm) != MMREC_OK)
            goto done;
        for (int l = 0; l <= L; l++) {
            if (l > 0 && mmrec_transformer_forward(e->layer[l - 1], tape, h, tm, &h) != MMREC_OK)
                goto done;
            const float *hd;
            if (mmrec_tensor_data_const(h, &hd) != MMREC_OK) goto done;
            for (size_t i = 0; i < b; i++) { /* mean over the title's words */
                float *o = out + ((first + i) * (size_t)(L + 1) + (size_t)l) * (size_t)W;
                memset(o, 0, (size_t)W * sizeof *o);
                for (int p = 0; p < count[i]; p++) {
                    const float *hp = hd + (i * (size_t)T + (size_t)p) * (size_t)W;
                    for (int j = 0; j < W; j++) o[j] += hp[j];
                }
                for (int j = 0; j < W; j++) o[j] /= (float)count[i];
            }
        }
        mmrec_tape_reset(tape);
    }
    rc = 0;
done:
    mmrec_tape_destroy(tape);
    free(buf);
    free(start);
    free(len);
    free(hs);
    free(x);
    free(mask);
    free(count);
    return rc;
}

static inline void te_free(te_encoder *e) {
    mmrec_model_destroy(e->model);
    free(e->keys);
    free(e->ids);
    free(e->vectors);
    free(e->positions);
    memset(e, 0, sizeof *e);
}

#endif /* MMREC_EXAMPLE_TEXT_ENCODER_H */
