/* A frozen text encoder for item titles, for a host that has no pretrained
 * language model at hand (none can be downloaded on the machines these
 * examples run on; a host with a real backbone, BERT say, writes its
 * per-layer CLS states into the feature cache itself, from a 3-D .npy file
 * of [num_items, layers, width] through mmrec_cache_writer_add_npy).
 *
 * What it computes, all from the titles themselves (LSA-style statistics of
 * the titles, not a language model):
 *   1. Words: each title lowercased and cut into the maximal runs of
 *      [a-z0-9] (an HTML entity such as "&amp;" separates words); at most
 *      `max_tokens` words per title.
 *   2. Vocabulary: the words found in at least `min_titles` titles; the
 *      others are unknown words, whose vector is zero.
 *   3. Word vectors, PPMI-SVD (Levy, Goldberg and Dagan, TACL 2015): two
 *      words co-occur when they are in the same title; with c(a, b) the
 *      number of titles holding both, n(a) = sum_b c(a, b), D = sum_a n(a)
 *      and the smoothed counts s(a) = n(a)^0.75, S = sum_a s(a),
 *          PPMI(a, b) = max(0, log(c(a, b) * S^2 / (D * s(a) * s(b)))),
 *      a sparse symmetric [vocab, vocab] matrix. Its `width` leading
 *      eigenpairs (by |lambda|) come from a randomized eigendecomposition
 *      (Halko, Martinsson and Tropp 2011: a Gaussian sketch, power
 *      iterations, Cholesky QR, Jacobi on the small projected matrix), and
 *      word a's vector is U[a] * |lambda|^0.5, scaled to norm sqrt(width).
 *      The dense products run through the library's matmul on an inference
 *      tape (so over its threads); the sparse ones are plain loops.
 *   4. Layers: a title's word vectors plus fixed sinusoidal positions go
 *      through `layers` Transformer encoder layers of the library (pre-LN,
 *      random frozen weights) on inference tapes, titles sorted by length
 *      and batched, each batch padded to its longest title under a key
 *      mask; the state of every layer, the input included, is mean-pooled
 *      over the title's words: a record of [layers + 1, width] per item, as
 *      IISAN caches a backbone's per-layer CLS states.
 * Nothing is trained: the encoder is frozen by construction, as IISAN's
 * backbones are.
 *
 * te_build_cache() does all of it for an mmrec_sequences object and writes
 * the records to a feature cache file (ids 1 .. num_items, as the sequences
 * number the items), or reuses the file when it was made from the same
 * items and options.
 *
 * A header of static functions: the examples include it. Every library call
 * is checked; a failure returns its status, and te_error() gives the call
 * and mmrec_last_error()'s sentence. Not thread-safe (one message buffer). */
#ifndef MMREC_EXAMPLE_TEXT_ENCODER_H
#define MMREC_EXAMPLE_TEXT_ENCODER_H

#include <mmrec/mmrec.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- options and errors ---- */

#define TE_MAX_LAYERS 24
#define TE_SVD_OVERSAMPLE 16 /* extra sketch columns of the randomized SVD */
#define TE_SVD_POWER 3       /* its power iterations */
#define TE_FORMAT 1          /* bump when the encoder's maths change: old caches rebuild */

typedef struct te_options {
    int width;               /* H, the vector and state width: a multiple of 64 (heads of
                              * 64); default 256 */
    int layers;              /* L frozen layers, 0 .. TE_MAX_LAYERS: records are
                              * [L + 1, H]; default 6 */
    int max_tokens;          /* words read of each title, 1 .. 512; default 30 */
    int min_titles;          /* a word is in the vocabulary when in at least this many
                              * titles, >= 1; default 2 */
    int ffn_dim;             /* feed-forward width of the layers, >= 1, or 0 (default):
                              * H, half of the FLOPs of the usual 4 * H (the layers are
                              * random, so their width adds nothing learned) */
    int batch;               /* titles per inference batch, >= 1; default 128 (the
                              * results do not depend on it beyond rounding) */
    uint64_t seed;           /* the sketch's and the layers' random draws; default 1 */
    mmrec_cache_dtype dtype; /* storage of the cached states; default MMREC_CACHE_F16 */
    const char *field;       /* cache field of the [L + 1, H] records; default "text"; the
                              * fingerprint goes in "<field>.fingerprint" */
} te_options;

/* The defaults above. */
static inline void te_options_init(te_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->width = 256;
    opt->layers = 6;
    opt->max_tokens = 30;
    opt->min_titles = 2;
    opt->batch = 128;
    opt->seed = 1;
    opt->dtype = MMREC_CACHE_F16;
    opt->field = "text";
}

/* The last failure's sentence (a library call and mmrec_last_error(), or
 * what was wrong); "" after a success. */
static inline char *te__error_buf(void) {
    static char buf[512];
    return buf;
}
static inline const char *te_error(void) { return te__error_buf(); }

/* 0 when the options are usable, else -1 with te_error() naming the bad one. */
static inline int te__check_options(const te_options *opt) {
    const char *bad = opt->width < 64 || opt->width % 64 != 0     ? "width"
                      : opt->layers < 0 || opt->layers > TE_MAX_LAYERS ? "layers"
                      : opt->max_tokens < 1 || opt->max_tokens > 512   ? "max_tokens"
                      : opt->min_titles < 1                            ? "min_titles"
                      : opt->ffn_dim < 0                               ? "ffn_dim"
                      : opt->batch < 1                                 ? "batch"
                      : !opt->field || !opt->field[0] || strlen(opt->field) > 200 ? "field"
                                                                                    : NULL;
    if (!bad) return 0;
    snprintf(te__error_buf(), 512,
             "te_options: bad %s (width %d, a multiple of 64; layers %d, 0..%d; max_tokens %d, "
             "1..512; min_titles %d, >= 1; ffn_dim %d, >= 0; batch %d, >= 1; field a name of "
             "1..200 bytes)",
             bad, opt->width, opt->layers, TE_MAX_LAYERS, opt->max_tokens, opt->min_titles,
             opt->ffn_dim, opt->batch);
    return -1;
}

/* Runs a library call; on failure records "<call>: <message>" and goes to
 * `fail` with its status in `rc`. */
#define TE_TRY(call)                                                                    \
    do {                                                                                \
        mmrec_status te_s_ = (call);                                                    \
        if (te_s_ != MMREC_OK) {                                                        \
            snprintf(te__error_buf(), 512, "%s: %s", #call, mmrec_last_error());        \
            rc = te_s_;                                                                 \
            goto fail;                                                                  \
        }                                                                               \
    } while (0)

/* Records an allocation failure when `ok` is false and goes to `fail`. */
#define TE_ALLOC(ok)                                                                    \
    do {                                                                                \
        if (!(ok)) {                                                                    \
            snprintf(te__error_buf(), 512, "%s:%d: out of memory", __FILE__, __LINE__); \
            rc = MMREC_ENOMEM;                                                          \
            goto fail;                                                                  \
        }                                                                               \
    } while (0)

static inline double te__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the vocabulary ---- */

typedef struct te_encoder {
    te_options opt;
    size_t table_size;  /* open-addressing table of the words' hashes */
    uint64_t *keys;     /* word hash, 0 = empty */
    int32_t *ids;       /* the word's row in vectors, -1 = unknown */
    size_t vocab;       /* rows 0 .. vocab-1 known words, row vocab unknown (zeros) */
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

/* FNV-1a of n bytes, continuing from h. */
static inline uint64_t te_fnv(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t k = 0; k < n; k++) h = (h ^ p[k]) * 1099511628211ULL;
    return h;
}

static inline uint64_t te_hash(const char *word, size_t n) {
    uint64_t h = te_fnv(1469598103934665603ULL, word, n);
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

/* Scratch for splitting one title. */
typedef struct te_words {
    size_t cap;
    char *buf;
    size_t *start, *len;
    uint64_t *hash;
} te_words;

static inline void te_words_free(te_words *w) {
    free(w->buf);
    free(w->start);
    free(w->len);
    free(w->hash);
    memset(w, 0, sizeof *w);
}

/* Room for the longest of n titles; 0, or -1 when out of memory. */
static inline int te_words_init(te_words *w, const char *const *titles, size_t n) {
    memset(w, 0, sizeof *w);
    w->cap = 1;
    for (size_t t = 0; t < n; t++) {
        size_t l = strlen(titles[t]) + 1;
        if (l > w->cap) w->cap = l;
    }
    w->buf = malloc(w->cap);
    w->start = malloc(w->cap * sizeof *w->start);
    w->len = malloc(w->cap * sizeof *w->len);
    w->hash = malloc(w->cap * sizeof *w->hash);
    if (!w->buf || !w->start || !w->len || !w->hash) {
        te_words_free(w);
        return -1;
    }
    return 0;
}

/* The word hashes of a title (its first max_tokens words; each word once
 * when `distinct`) into w->hash; returns how many. */
static inline size_t te_title_hashes(te_words *w, const char *title, int max_tokens,
                                     int distinct) {
    size_t n_words = te_split_words(title, w->buf, w->start, w->len), n = 0;
    if (n_words > (size_t)max_tokens) n_words = (size_t)max_tokens;
    for (size_t k = 0; k < n_words; k++) {
        uint64_t h = te_hash(w->buf + w->start[k], w->len[k]);
        int seen = 0;
        for (size_t j = 0; distinct && j < n && !seen; j++) seen = w->hash[j] == h;
        if (!seen) w->hash[n++] = h;
    }
    return n;
}

/* The vocabulary row of word hash h, or e->vocab for an unknown word. */
static inline size_t te_row(const te_encoder *e, uint64_t h) {
    size_t slot = te_slot(e, h);
    if (e->keys[slot] == h && e->ids[slot] >= 0) return (size_t)e->ids[slot];
    return e->vocab;
}

/* ---- PPMI-SVD word vectors ---- */

/* A sparse symmetric matrix in CSR form. */
typedef struct te_csr {
    size_t rows, nnz;
    size_t *row_start; /* rows + 1 */
    int32_t *col;
    float *val;
} te_csr;

static inline void te_csr_free(te_csr *m) {
    free(m->row_start);
    free(m->col);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static inline int te__cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The PPMI matrix of the vocabulary's title co-occurrences (formula at the
 * top). Returns 0, or -1 when out of memory. */
static inline int te__ppmi(const te_encoder *e, const char *const *titles, size_t n,
                           te_words *w, te_csr *m) {
    const size_t V = e->vocab;
    const int T = e->opt.max_tokens;
    memset(m, 0, sizeof *m);
    m->rows = V;
    size_t *fill = calloc(V + 1, sizeof *fill);
    int32_t *row = malloc((size_t)T * sizeof *row), *pairs = NULL;
    double *count = NULL, *smooth = NULL;
    m->row_start = calloc(V + 1, sizeof *m->row_start);
    if (!fill || !row || !m->row_start) goto oom;
    /* rows of every ordered pair of distinct known words of a title,
     * counted, then filled by a counting sort on the first word */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t t = 0; t < n; t++) {
            size_t k = te_title_hashes(w, titles[t], T, 1), r = 0;
            for (size_t j = 0; j < k; j++) {
                size_t id = te_row(e, w->hash[j]);
                if (id < V) row[r++] = (int32_t)id;
            }
            for (size_t a = 0; a < r; a++) {
                if (pass == 0) {
                    m->row_start[row[a] + 1] += r - 1;
                    continue;
                }
                for (size_t b = 0; b < r; b++)
                    if (b != a) pairs[fill[row[a]]++] = row[b];
            }
        }
        if (pass == 0) {
            for (size_t a = 0; a < V; a++) m->row_start[a + 1] += m->row_start[a];
            memcpy(fill, m->row_start, V * sizeof *fill);
            pairs = malloc((m->row_start[V] + 1) * sizeof *pairs);
            if (!pairs) goto oom;
        }
    }
    /* each row sorted; repeats become counts (in place, rows shrink) */
    count = malloc((m->row_start[V] + 1) * sizeof *count);
    smooth = malloc((V + 1) * sizeof *smooth);
    if (!count || !smooth) goto oom;
    size_t out = 0;
    double D = 0, S = 0;
    for (size_t a = 0; a < V; a++) {
        size_t lo = m->row_start[a], hi = m->row_start[a + 1];
        qsort(pairs + lo, hi - lo, sizeof *pairs, te__cmp_i32);
        m->row_start[a] = out;
        for (size_t k = lo; k < hi; k++) {
            if (k > lo && pairs[k] == pairs[k - 1]) {
                count[out - 1] += 1.0;
                continue;
            }
            pairs[out] = pairs[k];
            count[out++] = 1.0;
        }
        D += (double)(hi - lo);
        smooth[a] = pow((double)(hi - lo), 0.75);
        S += smooth[a];
    }
    m->row_start[V] = out;
    /* PPMI, keeping the positive entries */
    m->col = malloc((out + 1) * sizeof *m->col);
    m->val = malloc((out + 1) * sizeof *m->val);
    if (!m->col || !m->val) goto oom;
    size_t kept = 0, lo = 0;
    double scale = S * S / D;
    for (size_t a = 0; a < V; a++) {
        size_t hi = m->row_start[a + 1];
        m->row_start[a] = kept;
        for (size_t k = lo; k < hi; k++) {
            double pmi = log(count[k] * scale / (smooth[a] * smooth[pairs[k]]));
            if (pmi <= 0) continue;
            m->col[kept] = pairs[k];
            m->val[kept++] = (float)pmi;
        }
        lo = hi;
    }
    m->row_start[V] = kept;
    m->nnz = kept;
    free(fill);
    free(row);
    free(pairs);
    free(count);
    free(smooth);
    return 0;
oom:
    free(fill);
    free(row);
    free(pairs);
    free(count);
    free(smooth);
    te_csr_free(m);
    return -1;
}

/* y = M x for x, y [rows, cols] row-major. */
static inline void te__spmm(const te_csr *m, const float *x, float *y, size_t cols) {
    for (size_t a = 0; a < m->rows; a++) {
        float *ya = y + a * cols;
        memset(ya, 0, cols * sizeof *ya);
        for (size_t k = m->row_start[a]; k < m->row_start[a + 1]; k++) {
            const float v = m->val[k], *xb = x + (size_t)m->col[k] * cols;
            for (size_t j = 0; j < cols; j++) ya[j] += v * xb[j];
        }
    }
}

/* out = op(a) op(b) through mmrec_matmul on the inference tape (flags as
 * mmrec_matmul's); a is [a0, a1], b [b0, b1] as stored; out has the
 * product's rows * cols floats and may alias neither. */
static inline mmrec_status te__matmul(mmrec_tape *tape, float *a, int64_t a0, int64_t a1,
                                      float *b, int64_t b0, int64_t b1, uint32_t flags,
                                      float *out) {
    mmrec_status rc = MMREC_OK;
    int64_t as[2] = {a0, a1}, bs[2] = {b0, b1};
    mmrec_tensor *ta, *tb, *tc;
    const float *c;
    TE_TRY(mmrec_tape_wrap(tape, a, 2, as, MMREC_TENSOR_READONLY, &ta));
    TE_TRY(mmrec_tape_wrap(tape, b, 2, bs, MMREC_TENSOR_READONLY, &tb));
    TE_TRY(mmrec_matmul(tape, ta, tb, flags, &tc));
    TE_TRY(mmrec_tensor_data_const(tc, &c));
    memcpy(out, c,
           (size_t)((flags & MMREC_TRANS_A) ? a1 : a0) *
               (size_t)((flags & MMREC_TRANS_B) ? b0 : b1) * sizeof *out);
fail:
    mmrec_tape_reset(tape);
    return rc;
}

/* Orthonormalizes the columns of y [rows, cols] in place (Cholesky QR, two
 * passes; a small shift keeps a rank-deficient sketch factorable). g and
 * rinv are cols * cols scratch; gd is cols * cols doubles. */
static inline mmrec_status te__orthonormalize(mmrec_tape *tape, float *y, size_t rows,
                                              size_t cols, float *g, float *rinv, double *gd,
                                              float *tmp) {
    mmrec_status rc = MMREC_OK;
    const size_t r = cols;
    for (int pass = 0; pass < 2; pass++) {
        rc = te__matmul(tape, y, (int64_t)rows, (int64_t)r, y, (int64_t)rows, (int64_t)r,
                        MMREC_TRANS_A, g);
        if (rc != MMREC_OK) return rc;
        double trace = 0;
        for (size_t i = 0; i < r; i++) trace += g[i * r + i];
        double shift = 1e-6 * trace / (double)r + 1e-30;
        for (size_t i = 0; i < r * r; i++) gd[i] = g[i];
        /* G = R^T R, R upper triangular, in place in the upper half */
        for (size_t i = 0; i < r; i++) {
            double d = gd[i * r + i] + shift;
            for (size_t k = 0; k < i; k++) d -= gd[k * r + i] * gd[k * r + i];
            d = d > shift ? sqrt(d) : sqrt(shift);
            gd[i * r + i] = d;
            for (size_t j = i + 1; j < r; j++) {
                double s = gd[i * r + j];
                for (size_t k = 0; k < i; k++) s -= gd[k * r + i] * gd[k * r + j];
                gd[i * r + j] = s / d;
            }
        }
        /* R^-1, upper triangular, column by column */
        memset(rinv, 0, r * r * sizeof *rinv);
        for (size_t j = 0; j < r; j++) {
            for (size_t ii = j + 1; ii-- > 0;) {
                double s = ii == j ? 1.0 : 0.0;
                for (size_t k = ii + 1; k <= j; k++) s -= gd[ii * r + k] * rinv[k * r + j];
                rinv[ii * r + j] = (float)(s / gd[ii * r + ii]);
            }
        }
        rc = te__matmul(tape, y, (int64_t)rows, (int64_t)r, rinv, (int64_t)r, (int64_t)r, 0,
                        tmp);
        if (rc != MMREC_OK) return rc;
        memcpy(y, tmp, rows * r * sizeof *y);
    }
    return MMREC_OK;
}

/* Eigenpairs of the symmetric r x r matrix a (destroyed) by cyclic Jacobi:
 * eigenvalues into lambda, eigenvectors as the columns of v. */
static inline void te__jacobi(double *a, size_t r, double *lambda, double *v) {
    for (size_t i = 0; i < r * r; i++) v[i] = 0;
    for (size_t i = 0; i < r; i++) v[i * r + i] = 1;
    for (int sweep = 0; sweep < 50; sweep++) {
        double off = 0, diag = 0;
        for (size_t i = 0; i < r; i++) {
            diag += a[i * r + i] * a[i * r + i];
            for (size_t j = i + 1; j < r; j++) off += a[i * r + j] * a[i * r + j];
        }
        if (off <= 1e-22 * diag) break;
        for (size_t p = 0; p < r; p++)
            for (size_t q = p + 1; q < r; q++) {
                double apq = a[p * r + q];
                if (fabs(apq) < 1e-300) continue;
                double theta = (a[q * r + q] - a[p * r + p]) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (size_t k = 0; k < r; k++) { /* columns p, q */
                    double akp = a[k * r + p], akq = a[k * r + q];
                    a[k * r + p] = c * akp - s * akq;
                    a[k * r + q] = s * akp + c * akq;
                }
                for (size_t k = 0; k < r; k++) { /* rows p, q */
                    double apk = a[p * r + k], aqk = a[q * r + k];
                    a[p * r + k] = c * apk - s * aqk;
                    a[q * r + k] = s * apk + c * aqk;
                }
                for (size_t k = 0; k < r; k++) {
                    double vkp = v[k * r + p], vkq = v[k * r + q];
                    v[k * r + p] = c * vkp - s * vkq;
                    v[k * r + q] = s * vkp + c * vkq;
                }
            }
    }
    for (size_t i = 0; i < r; i++) lambda[i] = a[i * r + i];
}

/* The word vectors from the PPMI matrix m into e->vectors (rows 0 ..
 * vocab-1; formula at the top). */
static inline mmrec_status te__svd_vectors(te_encoder *e, const te_csr *m) {
    const size_t V = m->rows, H = (size_t)e->opt.width;
    if (V == 0) return MMREC_OK; /* no known word: every vector stays zero */
    size_t k = H < V ? H : V, r = k + TE_SVD_OVERSAMPLE < V ? k + TE_SVD_OVERSAMPLE : V;
    mmrec_status rc = MMREC_OK;
    mmrec_tape *tape = NULL;
    float *q = malloc(V * r * sizeof *q), *y = malloc(V * r * sizeof *y);
    float *g = malloc(r * r * sizeof *g), *rinv = malloc(r * r * sizeof *rinv);
    double *gd = malloc(r * r * sizeof *gd), *vd = malloc(r * r * sizeof *vd);
    double *lambda = malloc(r * sizeof *lambda);
    size_t *order = malloc(r * sizeof *order);
    TE_ALLOC(q && y && g && rinv && gd && vd && lambda && order);
    TE_TRY(mmrec_tape_create(&tape));
    TE_TRY(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    /* sketch and power iterations: q = orth(M^(1 + power) omega) */
    for (size_t i = 0; i < V * r; i++) y[i] = te_normal(e->opt.seed ^ 0x5bd1e995ULL, i);
    te__spmm(m, y, q, r);
    for (int it = 0; it <= TE_SVD_POWER; it++) {
        if ((rc = te__orthonormalize(tape, q, V, r, g, rinv, gd, y)) != MMREC_OK) goto fail;
        if (it < TE_SVD_POWER) {
            te__spmm(m, q, y, r);
            memcpy(q, y, V * r * sizeof *q);
        }
    }
    /* B = Q^T M Q, r x r; its eigenpairs give M's: U = Q W */
    te__spmm(m, q, y, r);
    if ((rc = te__matmul(tape, q, (int64_t)V, (int64_t)r, y, (int64_t)V, (int64_t)r,
                         MMREC_TRANS_A, g)) != MMREC_OK)
        goto fail;
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < r; j++) gd[i * r + j] = 0.5 * ((double)g[i * r + j] + g[j * r + i]);
    te__jacobi(gd, r, lambda, vd);
    for (size_t i = 0; i < r; i++) order[i] = i;
    for (size_t i = 1; i < r; i++) { /* by |lambda|, largest first */
        size_t o = order[i], j = i;
        for (; j > 0 && fabs(lambda[order[j - 1]]) < fabs(lambda[o]); j--) order[j] = order[j - 1];
        order[j] = o;
    }
    /* W_k |lambda|^0.5 as an r x k matrix, then U_k |lambda|^0.5 = Q (W_k ...) */
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < k; j++)
            rinv[i * k + j] = (float)(vd[i * r + order[j]] * sqrt(fabs(lambda[order[j]])));
    if ((rc = te__matmul(tape, q, (int64_t)V, (int64_t)r, rinv, (int64_t)r, (int64_t)k, 0, y)) !=
        MMREC_OK)
        goto fail;
    for (size_t a = 0; a < V; a++) {
        float *v = e->vectors + a * H;
        memset(v, 0, H * sizeof *v);
        memcpy(v, y + a * k, k * sizeof *v);
    }
fail:
    mmrec_tape_destroy(tape);
    free(q);
    free(y);
    free(g);
    free(rinv);
    free(gd);
    free(vd);
    free(lambda);
    free(order);
    return rc;
}

/* ---- the encoder ---- */

static inline void te_free(te_encoder *e) {
    mmrec_model_destroy(e->model);
    free(e->keys);
    free(e->ids);
    free(e->vectors);
    free(e->positions);
    memset(e, 0, sizeof *e);
}

/* Builds the vocabulary, the word vectors and the frozen layers from n
 * titles with the options `opt` (te_options_init's defaults, then changed).
 * Phases and times go to `progress` when not NULL. Returns MMREC_OK, or
 * MMREC_EINVAL (a bad option), MMREC_ENOMEM or a failed library call's
 * status; te_error() says why; e is then empty (te_free is a no-op). */
static inline mmrec_status te_build(te_encoder *e, const char *const *titles, size_t n,
                                    const te_options *opt, FILE *progress) {
    mmrec_status rc = MMREC_OK;
    te_words w = {0};
    te_csr m = {0};
    int32_t *df = NULL;
    double t0 = te__now();
    memset(e, 0, sizeof *e);
    te__error_buf()[0] = 0;
    if (te__check_options(opt) != 0) return MMREC_EINVAL;
    e->opt = *opt;
    if (e->opt.ffn_dim == 0) e->opt.ffn_dim = opt->width;
    const int W = opt->width, T = opt->max_tokens;
    TE_ALLOC(te_words_init(&w, titles, n) == 0);
    /* document frequencies in a table sized for every distinct word */
    size_t total = 0;
    for (size_t t = 0; t < n; t++) total += strlen(titles[t]) / 2 + 1;
    e->table_size = 1024;
    while (e->table_size < 2 * total) e->table_size *= 2;
    e->keys = calloc(e->table_size, sizeof *e->keys);
    e->ids = calloc(e->table_size, sizeof *e->ids);
    df = calloc(e->table_size, sizeof *df);
    TE_ALLOC(e->keys && e->ids && df);
    for (size_t t = 0; t < n; t++) {
        size_t k = te_title_hashes(&w, titles[t], T, 1);
        for (size_t j = 0; j < k; j++) {
            size_t i = te_slot(e, w.hash[j]);
            e->keys[i] = w.hash[j];
            df[i]++;
        }
    }
    for (size_t i = 0; i < e->table_size; i++) {
        if (e->keys[i] == 0) continue;
        e->ids[i] = df[i] >= opt->min_titles ? (int32_t)e->vocab++ : -1;
    }
    e->vectors = calloc((e->vocab + 1) * (size_t)W, sizeof *e->vectors);
    TE_ALLOC(e->vectors);
    TE_ALLOC(te__ppmi(e, titles, n, &w, &m) == 0);
    if (progress)
        fprintf(progress, "text encoder: %zu titles, vocabulary %zu words, PPMI %zu nonzeros (%.1f s)\n",
                n, e->vocab, m.nnz, te__now() - t0);
    if ((rc = te__svd_vectors(e, &m)) != MMREC_OK) goto fail;
    for (size_t a = 0; a < e->vocab; a++) { /* norm sqrt(width): unit-scale values */
        float *v = e->vectors + a * (size_t)W;
        double ss = 0;
        for (int j = 0; j < W; j++) ss += (double)v[j] * v[j];
        float s = ss > 0 ? (float)sqrt((double)W / ss) : 0.0f;
        for (int j = 0; j < W; j++) v[j] *= s;
    }
    if (progress)
        fprintf(progress, "text encoder: PPMI-SVD word vectors of %d dims (%.1f s)\n", W,
                te__now() - t0);
    e->positions = malloc((size_t)T * (size_t)W * sizeof *e->positions);
    TE_ALLOC(e->positions);
    for (int p = 0; p < T; p++) /* sinusoidal, as the Transformer paper's */
        for (int j = 0; j < W; j++) {
            double f = pow(10000.0, -(double)(2 * (j / 2)) / (double)W);
            e->positions[p * W + j] = (float)(j % 2 ? cos(p * f) : sin(p * f));
        }
    TE_TRY(mmrec_model_create(&e->model));
    TE_TRY(mmrec_model_seed(e->model, opt->seed));
    for (int l = 0; l < opt->layers; l++) {
        mmrec_transformer_config c;
        TE_TRY(mmrec_transformer_config_init(&c));
        c.dim = W;
        c.num_heads = W / 64;
        c.ffn_dim = e->opt.ffn_dim;
        c.dropout = 0.0f;
        c.norm_first = 1;
        char name[32];
        snprintf(name, sizeof name, "text.layer%d", l);
        TE_TRY(mmrec_transformer_create(e->model, name, &c, &e->layer[l]));
    }
    te_words_free(&w);
    te_csr_free(&m);
    free(df);
    return MMREC_OK;
fail:
    te_words_free(&w);
    te_csr_free(&m);
    free(df);
    te_free(e);
    return rc;
}

/* The [layers + 1, width] record of each of titles[0 .. n) into out
 * (n * (layers + 1) * width floats, row-major by title): the word vectors
 * plus positions, then each layer's output, mean-pooled over the title's
 * words (an empty title reads as one unknown word). Titles go through
 * sorted by word count, opt.batch at a time, each batch padded to its
 * longest title under a key mask; progress every 4096 titles to `progress`
 * when not NULL. Returns MMREC_OK, MMREC_ENOMEM or a failed library call's
 * status (te_error() says why). */
static inline mmrec_status te_encode(const te_encoder *e, const char *const *titles, size_t n,
                                     float *out, FILE *progress) {
    const int W = e->opt.width, T = e->opt.max_tokens, L = e->opt.layers;
    const size_t block = (size_t)e->opt.batch, rec = (size_t)(L + 1) * (size_t)W;
    mmrec_status rc = MMREC_OK;
    te_words w = {0};
    mmrec_tape *tape = NULL;
    size_t *order = malloc((n + 1) * sizeof *order), *first = calloc((size_t)T + 2, sizeof *first);
    uint16_t *count = malloc((n + 1) * sizeof *count);
    float *x = malloc(block * (size_t)T * (size_t)W * sizeof *x);
    float *mask = malloc(block * (size_t)T * sizeof *mask);
    double t0 = te__now();
    te__error_buf()[0] = 0;
    TE_ALLOC(order && first && count && x && mask);
    TE_ALLOC(te_words_init(&w, titles, n) == 0);
    /* word counts, then titles in order of count (a counting sort) */
    for (size_t t = 0; t < n; t++) {
        size_t m = te_title_hashes(&w, titles[t], T, 0);
        count[t] = (uint16_t)(m == 0 ? 1 : m); /* m <= max_tokens <= 512 */
        first[count[t] + 1]++;
    }
    for (int c = 1; c <= T + 1; c++) first[c] += first[c - 1];
    for (size_t t = 0; t < n; t++) order[first[count[t]]++] = t;
    TE_TRY(mmrec_tape_create(&tape));
    TE_TRY(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    size_t next_report = 4096;
    for (size_t lo = 0; lo < n; lo += block) {
        size_t b = n - lo < block ? n - lo : block;
        int len = count[order[lo + b - 1]]; /* the batch's longest title */
        memset(mask, 0, b * (size_t)len * sizeof *mask);
        for (size_t i = 0; i < b; i++) {
            size_t t = order[lo + i], m = te_title_hashes(&w, titles[t], T, 0);
            if (m == 0) m = 1, w.hash[0] = 0; /* an empty title: one unknown word */
            for (int p = 0; p < len; p++) {
                float *xp = x + (i * (size_t)len + (size_t)p) * (size_t)W;
                if ((size_t)p >= m) {
                    memset(xp, 0, (size_t)W * sizeof *xp);
                    continue;
                }
                mask[i * (size_t)len + (size_t)p] = 1.0f;
                size_t row = w.hash[p] ? te_row(e, w.hash[p]) : e->vocab;
                const float *v = e->vectors + row * (size_t)W, *pe = e->positions + p * W;
                for (int j = 0; j < W; j++) xp[j] = v[j] + pe[j];
            }
        }
        int64_t xs[3] = {(int64_t)b, len, W}, ms[2] = {(int64_t)b, len};
        const size_t numel = b * (size_t)len * (size_t)W;
        for (int l = 0; l <= L; l++) {
            /* layer l's input is in x: the tape holds one layer at a time */
            mmrec_tensor *h, *tm;
            TE_TRY(mmrec_tape_wrap(tape, x, 3, xs, MMREC_TENSOR_READONLY, &h));
            TE_TRY(mmrec_tape_wrap(tape, mask, 2, ms, MMREC_TENSOR_READONLY, &tm));
            if (l > 0) TE_TRY(mmrec_transformer_forward(e->layer[l - 1], tape, h, tm, &h));
            const float *hd;
            TE_TRY(mmrec_tensor_data_const(h, &hd));
            for (size_t i = 0; i < b; i++) { /* mean over the title's words */
                size_t t = order[lo + i];
                float *o = out + t * rec + (size_t)l * (size_t)W;
                memset(o, 0, (size_t)W * sizeof *o);
                for (int p = 0; p < count[t]; p++) {
                    const float *hp = hd + (i * (size_t)len + (size_t)p) * (size_t)W;
                    for (int j = 0; j < W; j++) o[j] += hp[j];
                }
                for (int j = 0; j < W; j++) o[j] /= (float)count[t];
            }
            if (l > 0) memcpy(x, hd, numel * sizeof *x);
            mmrec_tape_reset(tape);
        }
        if (progress && (lo + b >= next_report || lo + b == n)) {
            fprintf(progress, "text encoder: %zu / %zu titles encoded (%.1f s)\n", lo + b, n,
                    te__now() - t0);
            next_report += 4096;
        }
    }
fail:
    mmrec_tape_destroy(tape);
    te_words_free(&w);
    free(order);
    free(first);
    free(count);
    free(x);
    free(mask);
    return rc;
}

/* ---- the feature cache of an mmrec_sequences object's titles ---- */

/* The fingerprint of the encoder's options and the items (ids, ASINs,
 * titles): a cache file made from other items or options does not match. */
static inline uint64_t te_fingerprint(const te_options *opt, const char *const *asins,
                                      const char *const *titles, size_t n) {
    int64_t o[9] = {TE_FORMAT,
                    opt->width,
                    opt->layers,
                    opt->max_tokens,
                    opt->min_titles,
                    opt->ffn_dim ? opt->ffn_dim : opt->width,
                    (int64_t)opt->seed,
                    (int64_t)opt->dtype,
                    (int64_t)n};
    uint64_t h = te_fnv(1469598103934665603ULL, o, sizeof o);
    h = te_fnv(h, opt->field, strlen(opt->field) + 1);
    for (size_t i = 0; i < n; i++) {
        h = te_fnv(h, asins[i], strlen(asins[i]) + 1);
        h = te_fnv(h, titles[i], strlen(titles[i]) + 1);
    }
    return h;
}

/* 1 when the cache at `path` holds ids 1 .. n, the field opt->field of
 * [layers + 1, width] records and the fingerprint `fp`; 0 otherwise (no
 * file, another file, a damaged one: it is rebuilt). */
static inline int te__cache_matches(const char *path, const te_options *opt, size_t n,
                                    uint64_t fp, FILE *progress) {
    mmrec_cache *c = NULL;
    char fp_field[300];
    snprintf(fp_field, sizeof fp_field, "%s.fingerprint", opt->field);
    mmrec_status s = mmrec_cache_open(path, &c);
    if (s != MMREC_OK) {
        if (progress && s != MMREC_EIO)
            fprintf(progress, "text encoder: %s cannot be reused (%s); rebuilding it\n", path,
                    mmrec_last_error());
        return 0;
    }
    int64_t items = 0, layers = 0, width = 0, ids[2] = {1, (int64_t)n};
    float got[8];
    int ok = mmrec_cache_num_items(c, &items) == MMREC_OK && items == (int64_t)n &&
             mmrec_cache_field_shape(c, opt->field, &layers, &width) == MMREC_OK &&
             layers == opt->layers + 1 && width == opt->width &&
             mmrec_cache_gather_into(c, fp_field, ids, 2, 0, got, NULL) == MMREC_OK;
    for (int k = 0; ok && k < 4; k++)
        ok = got[k] == (float)((fp >> (16 * k)) & 0xffff) && got[4 + k] == got[k];
    mmrec_cache_close(c);
    if (!ok && progress)
        fprintf(progress, "text encoder: %s was made from other items or options; rebuilding it\n",
                path);
    return ok;
}

/* Encodes n titles and writes the cache file (ids 1 .. n) with the states
 * and the fingerprint fields; see te_build_cache(). */
static inline mmrec_status te__write_cache(const char *path, const char *const *titles,
                                           size_t n, const te_options *opt, uint64_t fp,
                                           FILE *progress) {
    mmrec_status rc = MMREC_OK;
    te_encoder e = {0};
    mmrec_cache_writer *writer = NULL;
    size_t rec = (size_t)(opt->layers + 1) * (size_t)opt->width;
    int64_t *ids = malloc((n + 1) * sizeof *ids);
    float *states = malloc((n + 1) * rec * sizeof *states);
    float *fp_rows = malloc((n + 1) * 4 * sizeof *fp_rows);
    char fp_field[300];
    double t0 = te__now();
    TE_ALLOC(ids && states && fp_rows);
    for (size_t i = 0; i < n; i++) {
        ids[i] = (int64_t)i + 1;
        for (int k = 0; k < 4; k++) fp_rows[i * 4 + (size_t)k] = (float)((fp >> (16 * k)) & 0xffff);
    }
    snprintf(fp_field, sizeof fp_field, "%s.fingerprint", opt->field);
    /* the temporary file first: an unwritable path fails before the work */
    TE_TRY(mmrec_cache_writer_create(path, ids, n, &writer));
    if ((rc = te_build(&e, titles, n, opt, progress)) != MMREC_OK) goto fail;
    if ((rc = te_encode(&e, titles, n, states, progress)) != MMREC_OK) goto fail;
    TE_TRY(mmrec_cache_writer_add_layers(writer, opt->field, opt->dtype, states,
                                         opt->layers + 1, opt->width));
    TE_TRY(mmrec_cache_writer_add(writer, fp_field, MMREC_CACHE_F32, fp_rows, 4));
    TE_TRY(mmrec_cache_writer_commit(writer));
    if (progress)
        fprintf(progress, "text encoder: wrote %s, %zu items of [%d, %d] (%.1f s)\n", path, n,
                opt->layers + 1, opt->width, te__now() - t0);
fail:
    mmrec_cache_writer_destroy(writer);
    te_free(&e);
    free(ids);
    free(states);
    free(fp_rows);
    return rc;
}

/* Fills the feature cache at `cache_path` with the frozen encoder's
 * [layers + 1, width] record of every item of `seqs` (field opt->field,
 * storage opt->dtype; ids 1 .. num_items as `seqs` numbers them), or keeps
 * the file there when it was made from the same items and options: the
 * field "<field>.fingerprint" holds a 64-bit hash of both (te_fingerprint)
 * as four 16-bit pieces. A new file replaces the old one crash-safely
 * (mmrec_cache_writer_commit).
 *   seqs       (in) the items and their titles; borrowed.
 *   cache_path (in) the cache file to reuse or write.
 *   opt        (in, may be NULL) the encoder's options (te_options_init,
 *                   then changed); NULL: the defaults.
 *   progress   (in, may be NULL) where phases, times and reuse go, one line
 *                   each.
 * Returns MMREC_OK, MMREC_EINVAL (a NULL argument, bad options, no items),
 *         MMREC_ENOMEM, or a failed library call's status; te_error() says
 *         why. */
static inline mmrec_status te_build_cache(const mmrec_sequences *seqs, const char *cache_path,
                                          const te_options *opt, FILE *progress) {
    mmrec_status rc = MMREC_OK;
    te_options defaults;
    const char **asins = NULL, **titles = NULL;
    int64_t num_items = 0;
    te__error_buf()[0] = 0;
    if (!seqs || !cache_path) {
        snprintf(te__error_buf(), 512, "te_build_cache: %s is NULL",
                 seqs ? "cache_path" : "seqs");
        return MMREC_EINVAL;
    }
    if (!opt) {
        te_options_init(&defaults);
        opt = &defaults;
    }
    if (te__check_options(opt) != 0) return MMREC_EINVAL;
    TE_TRY(mmrec_sequences_info(seqs, NULL, &num_items, NULL));
    size_t n = (size_t)num_items;
    asins = malloc((n + 1) * sizeof *asins);
    titles = malloc((n + 1) * sizeof *titles);
    TE_ALLOC(asins && titles);
    for (size_t i = 0; i < n; i++)
        TE_TRY(mmrec_sequences_item(seqs, (int64_t)i + 1, &asins[i], &titles[i]));
    uint64_t fp = te_fingerprint(opt, asins, titles, n);
    if (n > 0 && te__cache_matches(cache_path, opt, n, fp, progress)) {
        if (progress)
            fprintf(progress, "text encoder: reusing %s (%zu items of [%d, %d])\n", cache_path,
                    n, opt->layers + 1, opt->width);
    } else {
        rc = te__write_cache(cache_path, titles, n, opt, fp, progress);
    }
fail:
    free(asins);
    free(titles);
    return rc;
}

#endif /* MMREC_EXAMPLE_TEXT_ENCODER_H */
