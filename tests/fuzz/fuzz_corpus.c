/* Writes the seed corpora of the fuzz harnesses (make fuzz-corpus):
 * tests/fuzz/corpus/<harness>/ gets small valid files made by the
 * library's own writers, and edge cases derived from them or written out
 * by hand (empty, truncated, wrong magic, newer version, huge counts,
 * unsupported .npy headers, malformed lines). Deterministic: running it
 * again rewrites the same bytes.
 *   fuzz_corpus <corpus-dir> */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mmrec/mmrec.h"

#include "fuzz_model.h"

static const char *root;

#define CHECK(call)                                                                      \
    do {                                                                                 \
        mmrec_status s_ = (call);                                                        \
        if (s_ != MMREC_OK) {                                                            \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,                \
                    mmrec_last_error());                                                 \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

static void die(const char *what, const char *path) {
    fprintf(stderr, "fuzz_corpus: %s '%s': %s\n", what, path, strerror(errno));
    exit(1);
}

/* root/harness/name; creates root/harness. */
static void path_of(char *buf, size_t cap, const char *harness, const char *name) {
    snprintf(buf, cap, "%s/%s", root, harness);
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) die("cannot create", buf);
    snprintf(buf, cap, "%s/%s/%s", root, harness, name);
}

static void put(const char *harness, const char *name, const void *data, size_t size) {
    char path[1024];
    path_of(path, sizeof path, harness, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        die("cannot write", path);
}

static void put_text(const char *harness, const char *name, const char *text) {
    put(harness, name, text, strlen(text));
}

static unsigned char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) die("cannot read", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) die("cannot read", path);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static void put_le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Moves a file the library wrote into the corpus as `name`, plus its
 * edge cases: truncated to its header's half, cut by one byte, wrong
 * magic, format version 99, and a huge count at `count_off`. */
static void adopt(const char *harness, const char *tmp, const char *name, size_t count_off,
                  int variants) {
    size_t size;
    unsigned char *b = slurp(tmp, &size);
    unlink(tmp);
    char n2[256];
    put(harness, name, b, size);
    if (!variants) {
        free(b);
        return;
    }
    snprintf(n2, sizeof n2, "%s.header-half", name);
    put(harness, n2, b, 32);
    snprintf(n2, sizeof n2, "%s.cut1", name);
    put(harness, n2, b, size - 1);
    unsigned char *c = malloc(size);
    memcpy(c, b, size);
    c[0] ^= 0x20;
    snprintf(n2, sizeof n2, "%s.bad-magic", name);
    put(harness, n2, c, size);
    memcpy(c, b, size);
    c[8] = 99;
    snprintf(n2, sizeof n2, "%s.version99", name);
    put(harness, n2, c, size);
    memcpy(c, b, size);
    put_le64(c + count_off, UINT64_C(0x7fffffffffffffff));
    snprintf(n2, sizeof n2, "%s.huge-count", name);
    put(harness, n2, c, size);
    free(c);
    free(b);
}

/* ---- checkpoint: the model of fuzz_checkpoint.c ---- */

static void corpus_checkpoint(void) {
    mmrec_model *m;
    CHECK(fuzz_checkpoint_model(&m));
    float values[FUZZ_CKPT_PARAMS];
    for (int i = 0; i < FUZZ_CKPT_PARAMS; i++) values[i] = (float)(i - 8) * 0.125f;
    CHECK(mmrec_model_import_params(m, values, FUZZ_CKPT_PARAMS));
    char tmp[1024];
    path_of(tmp, sizeof tmp, "checkpoint", "tmp");
    CHECK(mmrec_model_save(m, tmp));
    adopt("checkpoint", tmp, "model", 16, 1);

    mmrec_optimizer_config cfg;
    CHECK(mmrec_optimizer_config_init(&cfg));
    mmrec_optimizer *opt;
    CHECK(mmrec_optimizer_create(m, &cfg, &opt));
    for (int i = 0; i < FUZZ_CKPT_PARAMS; i++) values[i] = (float)(i % 5) * 0.5f - 1.0f;
    CHECK(mmrec_model_import_grads(m, values, FUZZ_CKPT_PARAMS));
    CHECK(mmrec_optimizer_step(opt));
    CHECK(mmrec_checkpoint_save(m, opt, tmp));
    adopt("checkpoint", tmp, "adam-step1", 16, 1);
    mmrec_optimizer_destroy(opt);

    /* another optimizer's state: the harness's Adam must refuse it */
    cfg.type = MMREC_OPT_SGD;
    cfg.momentum = 0.9f;
    CHECK(mmrec_optimizer_create(m, &cfg, &opt));
    CHECK(mmrec_model_import_grads(m, values, FUZZ_CKPT_PARAMS));
    CHECK(mmrec_optimizer_step(opt));
    CHECK(mmrec_checkpoint_save(m, opt, tmp));
    adopt("checkpoint", tmp, "sgd-step1", 16, 0);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(m);

    /* another model (a parameter of another shape) */
    static const int64_t other[2] = {3, 2};
    CHECK(mmrec_model_create(&m));
    CHECK(mmrec_model_add_param(m, "layer.weight", 2, other, NULL));
    CHECK(mmrec_model_save(m, tmp));
    adopt("checkpoint", tmp, "other-model", 16, 0);
    mmrec_model_destroy(m);
    put("checkpoint", "empty", "", 0);
}

/* ---- cache ---- */

static void corpus_cache(void) {
    char tmp[1024];
    path_of(tmp, sizeof tmp, "cache", "tmp");
    float data[4 * 6];
    for (int i = 0; i < 24; i++) data[i] = (float)(i - 12) * 0.25f;

    static const int64_t dense[4] = {0, 1, 2, 3}, sparse[4] = {42, 3, 10, 1};
    mmrec_cache_writer *w;
    CHECK(mmrec_cache_writer_create(tmp, dense, 4, &w));
    CHECK(mmrec_cache_writer_add(w, "image", MMREC_CACHE_F32, data, 3));
    CHECK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    adopt("cache", tmp, "f32-dense", 16, 1);

    CHECK(mmrec_cache_writer_create(tmp, sparse, 4, &w));
    CHECK(mmrec_cache_writer_add(w, "text", MMREC_CACHE_F16, data, 2));
    CHECK(mmrec_cache_writer_add(w, "image", MMREC_CACHE_BF16, data, 6));
    CHECK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    adopt("cache", tmp, "f16-bf16-sparse", 16, 1);

    CHECK(mmrec_cache_writer_create(tmp, sparse, 4, &w));
    CHECK(mmrec_cache_writer_add_layers(w, "text.layers", MMREC_CACHE_F32, data, 3, 2));
    CHECK(mmrec_cache_writer_add_layers(w, "image.layers", MMREC_CACHE_F16, data, 2, 3));
    CHECK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    adopt("cache", tmp, "layers", 16, 1);

    CHECK(mmrec_cache_writer_create(tmp, sparse, 1, &w));
    CHECK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    adopt("cache", tmp, "ids-only", 16, 0);
    put("cache", "empty", "", 0);
}

/* ---- index ---- */

static void corpus_index(void) {
    char tmp[1024];
    path_of(tmp, sizeof tmp, "index", "tmp");
    float vec[5 * 2 * 3];
    for (int i = 0; i < 30; i++) vec[i] = (float)((i * 7) % 11 - 5) * 0.2f;
    static const int64_t ids[5] = {7, 0, 3, 1, 2};
    mmrec_index *ix;
    CHECK(mmrec_index_create(vec, NULL, 4, 3, NULL, &ix));
    CHECK(mmrec_index_save(ix, tmp));
    mmrec_index_destroy(ix);
    adopt("index", tmp, "ip-f32", 16, 1);

    mmrec_index_config cfg;
    CHECK(mmrec_index_config_init(&cfg));
    cfg.metric = MMREC_INDEX_COSINE;
    cfg.storage = MMREC_INDEX_F16;
    CHECK(mmrec_index_create(vec, ids, 5, 3, &cfg, &ix));
    CHECK(mmrec_index_save(ix, tmp));
    mmrec_index_destroy(ix);
    adopt("index", tmp, "cosine-f16", 16, 1);

    CHECK(mmrec_index_config_init(&cfg));
    cfg.storage = MMREC_INDEX_BF16;
    cfg.vectors_per_item = 2;
    cfg.query_combine = MMREC_INDEX_COMBINE_MAX;
    CHECK(mmrec_index_create(vec, ids, 5, 3, &cfg, &ix));
    CHECK(mmrec_index_save(ix, tmp));
    mmrec_index_destroy(ix);
    adopt("index", tmp, "maxsim-bf16", 16, 1);
    put("index", "empty", "", 0);
}

/* ---- npy ---- */

static void npy(const char *name, int major, const char *dict, const void *data, size_t bytes) {
    unsigned char buf[4096];
    size_t dict_len = strlen(dict), pre = major == 1 ? 10 : 12;
    size_t total = (pre + dict_len + 1 + 63) / 64 * 64, hlen = total - pre;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    if (major == 1) {
        buf[8] = (unsigned char)hlen;
        buf[9] = (unsigned char)(hlen >> 8);
    } else {
        for (int i = 0; i < 4; i++) buf[8 + i] = (unsigned char)(hlen >> (8 * i));
    }
    memcpy(buf + pre, dict, dict_len);
    memset(buf + pre + dict_len, ' ', hlen - dict_len - 1);
    buf[total - 1] = '\n';
    memcpy(buf + total, data, bytes);
    put("npy", name, buf, total + bytes);
}

static void corpus_npy(void) {
    float f4[4 * 6];
    double f8[4];
    uint16_t f2[4 * 6];
    unsigned char be[4 * 2 * 4];
    for (int i = 0; i < 24; i++) f4[i] = (float)(i - 12) * 0.25f;
    for (int i = 0; i < 4; i++) f8[i] = (double)i * 1.5 - 2.0;
    for (int i = 0; i < 24; i++) f2[i] = (uint16_t)(0x3c00 + i * 64); /* 1.0 upward */
    for (int i = 0; i < 8; i++) {
        uint32_t u;
        memcpy(&u, &f4[i], 4);
        for (int b = 0; b < 4; b++) be[i * 4 + b] = (unsigned char)(u >> (8 * (3 - b)));
    }
    npy("f4-4x3", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", f4, 48);
    npy("f8-4", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", f8, 32);
    npy("f2-4x2x3", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (4, 2, 3), }", f2,
        48);
    npy("be-f4-4x2", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (4, 2), }", be, 32);
    npy("v2-f4-4x6", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 6), }", f4, 96);
    npy("v3-native", 3, "{\"descr\": \"=f4\", \"fortran_order\": False, \"shape\": (4, 2)}",
        f4, 32);
    npy("fortran", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (4, 3), }", f4, 48);
    npy("object", 1, "{'descr': '|O', 'fortran_order': False, 'shape': (4,), }", f8, 32);
    npy("int32", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (4, 2), }", f4, 32);
    npy("4d", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 1, 2, 3), }", f4, 96);
    npy("zero-width", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }", f4, 0);
    npy("rows3", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f4, 24);
    npy("truncated-data", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", f4,
        40);
    npy("extra-data", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }", f4,
        36);
    npy("huge-shape", 1,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4611686018427387904), }", f4,
        32);
    npy("no-shape", 1, "{'descr': '<f4', 'fortran_order': False, }", f4, 32);
    npy("dup-key", 1,
        "{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", f4, 16);
    float bad[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    memcpy(&bad[3], &(uint32_t){0x7fc00000u}, 4); /* NaN */
    npy("nan", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }", bad, 32);
    bad[3] = 70000.0f; /* beyond float16 */
    npy("beyond-f16", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }", bad,
        32);
    put("npy", "magic-only", "\x93NUMPY", 6);
    put("npy", "bad-magic", "\x93NUMPX\x01\x00\x10\x00{}              \n", 26);
    put("npy", "header-past-end", "\x93NUMPY\x01\x00\xff\xff{'descr'", 18);
    put("npy", "empty", "", 0);
}

/* ---- text formats ---- */

static void corpus_text(void) {
    put_text("lightgcn", "train", "0 0 1 2 3\n1 2 4\n2 1 3 5 7\n3 0\n4 6 6 2\n");
    put_text("lightgcn", "crlf-blank", "0 1 2\r\n\r\n   \n1\t3  4 \r\n2\n");
    put_text("lightgcn", "user-alone", "5\n");
    put_text("lightgcn", "junk", "0 1 x12\n");
    put_text("lightgcn", "negative", "0 -3\n");
    put_text("lightgcn", "plus", "+0 3\n");
    put_text("lightgcn", "decimal", "0 3.0\n");
    put_text("lightgcn", "huge-id", "0 99999999999999999999\n");
    put_text("lightgcn", "int64-max", "0 9223372036854775807\n");
    put_text("lightgcn", "int64-max-1", "9223372036854775806 9223372036854775806\n");
    put("lightgcn", "nul", "0 1\0 2\n", 7);
    put("lightgcn", "empty", "", 0);
    put_text("lightgcn", "no-final-newline", "0 1 2\n1 3");

    put_text("inter", "mmrec",
             "userID\titemID\trating\ttimestamp\tx_label\n"
             "0\t0\t5\t1400000000\t0\n0\t1\t4\t1400000001\t0\n1\t2\t3\t1400000002\t1\n"
             "1\t0\t5\t1400000003\t2\n2\t3\t1\t1400000004\t0\n");
    put_text("inter", "reordered-crlf",
             "x_label\titemID\tuserID\r\n0\t3\t1\r\n\r\n2\t0\t0\r\n1\t5\t2\r\n");
    put_text("inter", "header-only", "userID\titemID\tx_label\n");
    put_text("inter", "missing-column", "userID\titemID\n0\t1\n");
    put_text("inter", "repeated-column", "userID\titemID\tx_label\tuserID\n0\t1\t0\t0\n");
    put_text("inter", "bad-label", "userID\titemID\tx_label\n0\t1\t3\n");
    put_text("inter", "short-row", "userID\titemID\tx_label\n0\t1\n");
    put_text("inter", "long-row", "userID\titemID\tx_label\n0\t1\t0\t9\n");
    put_text("inter", "bad-id", "userID\titemID\tx_label\n0\tx\t0\n");
    put_text("inter", "huge-id", "userID\titemID\tx_label\n99999999999999999999\t1\t0\n");
    put("inter", "nul", "userID\titemID\tx_label\n0\t1\0\t0\n", 29);
    put("inter", "empty", "", 0);

    static const char items[] =
        "A1\tFirst item\nA2\tSecond &amp; item\nA3\tThird\nA4\tFourth\nA5\tFifth\n"
        "A6\tSixth\nA7\tSeventh\n";
    static const char users[] = "u1\tA1 A2 A3 A4 A5\nu2\tA2 A3  A4 A5 A6 A7\nu3\tA1 A2\n"
                                "u4\tA7 A6 A5 A4 A3 A2 A1 A1 A2 A3 A4 A5 A6 A7 A1\n";
    char buf[1024];
    size_t n = strlen(items);
    memcpy(buf, items, n);
    buf[n] = '\0';
    memcpy(buf + n + 1, users, strlen(users));
    put("sequences", "valid", buf, n + 1 + strlen(users));
    static const struct {
        const char *name, *items, *users;
    } cases[] = {
        {"crlf", "A1\tone\r\nA2\ttwo\r\nA3\tthree\r\n", "u\tA1 A2 A3 A1 A2\r\nv\tA3 A2 A1\r\n"},
        {"no-tab", "A1 one\n", "u\tA1\n"},
        {"empty-title", "A1\t\n", "u\tA1\n"},
        {"second-tab", "A1\tone\ttwo\n", "u\tA1\n"},
        {"space-in-id", "A 1\tone\n", "u\tA 1\n"},
        {"dup-item", "A1\tone\nA1\tagain\n", "u\tA1\n"},
        {"dup-user", "A1\tone\n", "u\tA1 A1 A1 A1 A1\nu\tA1 A1 A1 A1 A1\n"},
        {"unknown-item", "A1\tone\n", "u\tA1 A2 A1 A1 A1\n"},
        {"no-items", "", "u\tA1\n"},
        {"non-ascii", "A1\tt\xc3\xa9l\xc3\xa9\n", "u\tA1 A1 A1 \xc3\xa9\n"},
        {"all-short", "A1\tone\nA2\ttwo\n", "u\tA1 A2\nv\tA2\n"},
        {"empty-user", "A1\tone\n", "\tA1 A1 A1\n"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t a = strlen(cases[c].items), b = strlen(cases[c].users);
        memcpy(buf, cases[c].items, a);
        buf[a] = '\0';
        memcpy(buf + a + 1, cases[c].users, b);
        put("sequences", cases[c].name, buf, a + 1 + b);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_corpus <corpus-dir>\n");
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0777) != 0 && errno != EEXIST) die("cannot create", root);
    corpus_checkpoint();
    corpus_cache();
    corpus_index();
    corpus_npy();
    corpus_text();
    return 0;
}
