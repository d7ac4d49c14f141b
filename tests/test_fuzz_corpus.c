/* The fuzz harnesses' seed corpora (tests/fuzz/corpus), replayed through
 * the public parsers of this build: checkpoint and model loads, cache open
 * and gathers, index open and search, .npy import, the LightGCN, .inter
 * and IISAN TSV readers. Each file's status is the one listed for it below
 * (the files written by the library's writers load; each edge case fails
 * with its status), every failure comes with a message, and nothing
 * crashes or leaks (make test-asan replays them with exact-size reads). */
#include "mt.h"
#include "fuzz/fuzz_model.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

MT_SUITE(fuzz_corpus_suite)

/* ---- one parser per harness; each returns the status of the parse ---- */

static mmrec_status mt_fz_checkpoint(const char *path) {
    mmrec_model *m;
    MT_OK(fuzz_checkpoint_model(&m));
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    mmrec_optimizer *opt;
    MT_OK(mmrec_optimizer_create(m, &cfg, &opt));
    /* the status is mmrec_model_load's; the Adam state loads from the
     * file saved with it, and any failure of the full load has a message */
    mmrec_status s = mmrec_model_load(m, path);
    mmrec_status full = mmrec_checkpoint_load(m, opt, path);
    if (strcmp(strrchr(path, '/') + 1, "adam-step1") == 0)
        MT_EXPECT(full, MMREC_OK, NULL);
    else if (full != MMREC_OK)
        ck_assert_msg(mmrec_last_error()[0] != '\0', "%s: no message", path);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(m);
    return s;
}

static mmrec_status mt_fz_cache(const char *path) {
    mmrec_cache *c = NULL;
    mmrec_status s = mmrec_cache_open(path, &c);
    if (s != MMREC_OK) return s;
    int n_fields = 0;
    MT_OK(mmrec_cache_num_fields(c, &n_fields));
    static const int64_t ids[4] = {0, 1, 3, 42};
    for (int f = 0; f < n_fields; f++) {
        const char *name;
        int64_t dim;
        MT_OK(mmrec_cache_field_info(c, f, &name, &dim, NULL));
        float *dst = malloc((size_t)dim * 4 * sizeof *dst), presence[4];
        MT_OK(mmrec_cache_gather_into(c, name, ids, 4, MMREC_CACHE_MISSING_ZERO, dst, presence));
        free(dst);
    }
    mmrec_cache_close(c);
    return MMREC_OK;
}

static mmrec_status mt_fz_index(const char *path) {
    mmrec_index *ix = NULL;
    mmrec_status s = mmrec_index_open(path, &ix);
    if (s != MMREC_OK) return s;
    int64_t dim = 0;
    MT_OK(mmrec_index_info(ix, NULL, &dim, NULL, NULL, NULL));
    float *q = malloc((size_t)dim * sizeof *q);
    for (int64_t k = 0; k < dim; k++) q[k] = 0.5f - (float)k * 0.25f;
    int64_t ids[3];
    float scores[3];
    MT_OK(mmrec_index_search(ix, q, 1, dim, 3, NULL, ids, scores, NULL));
    free(q);
    mmrec_index_destroy(ix);
    return MMREC_OK;
}

static mmrec_status mt_fz_npy(const char *path) {
    static const int64_t ids[4] = {5, 0, 2, 9};
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(mt_file(0, "npy.mmfc"), ids, 4, &w));
    mmrec_status s = mmrec_cache_writer_add_npy(w, "x", MMREC_CACHE_F32, path);
    mmrec_cache_writer_destroy(w);
    return s;
}

static mmrec_status mt_fz_lightgcn(const char *path) {
    mmrec_interactions *x = NULL;
    mmrec_status s = mmrec_interactions_read_lightgcn(path, &x);
    mmrec_interactions_destroy(x);
    return s;
}

static mmrec_status mt_fz_inter(const char *path) {
    mmrec_interactions *x = NULL;
    mmrec_status s = mmrec_interactions_read_inter(path, -1, &x);
    mmrec_interactions_destroy(x);
    return s;
}

/* The harness's input: items file, NUL, users file. */
static mmrec_status mt_fz_sequences(const char *path) {
    size_t size;
    unsigned char *data = mt_read_file(path, &size);
    const unsigned char *nul = memchr(data, 0, size);
    size_t n = nul ? (size_t)(nul - data) : size, rest = nul ? size - n - 1 : 0;
    const char *items = mt_file(1, "items.tsv"), *users = mt_file(2, "users.tsv");
    mt_write_file(items, data, n);
    mt_write_file(users, data + size - rest, rest);
    free(data);
    mmrec_sequences *s = NULL;
    mmrec_status st = mmrec_sequences_read_tsv(items, users, NULL, &s);
    mmrec_sequences_destroy(s);
    return st;
}

typedef struct mt_fz_harness {
    const char *name;
    mmrec_status (*parse)(const char *path);
} mt_fz_harness;

static const mt_fz_harness mt_fz_harnesses[] = {
    {"checkpoint", mt_fz_checkpoint}, {"cache", mt_fz_cache}, {"index", mt_fz_index},
    {"npy", mt_fz_npy},               {"lightgcn", mt_fz_lightgcn}, {"inter", mt_fz_inter},
    {"sequences", mt_fz_sequences},
};

/* The status each seed gives. The writer-made files derived by
 * fuzz_corpus.c (".header-half", ".cut1", ".bad-magic", ".version99",
 * ".huge-count") are EFORMAT in this build (a checksum or a size check);
 * every file not listed here or so named must fail with a message. */
typedef struct mt_fz_expect {
    const char *harness, *file;
    mmrec_status status;
} mt_fz_expect;

static const mt_fz_expect mt_fz_expected[] = {
    {"checkpoint", "model", MMREC_OK},
    {"checkpoint", "adam-step1", MMREC_OK},
    {"checkpoint", "sgd-step1", MMREC_OK}, /* the parameters; not into Adam */
    {"checkpoint", "other-model", MMREC_EFORMAT},
    {"checkpoint", "empty", MMREC_EFORMAT},
    {"cache", "f32-dense", MMREC_OK},
    {"cache", "f16-bf16-sparse", MMREC_OK},
    {"cache", "layers", MMREC_OK},
    {"cache", "ids-only", MMREC_OK},
    {"cache", "empty", MMREC_EFORMAT},
    {"index", "ip-f32", MMREC_OK},
    {"index", "cosine-f16", MMREC_OK},
    {"index", "maxsim-bf16", MMREC_OK},
    {"index", "empty", MMREC_EFORMAT},
    {"npy", "f4-4x3", MMREC_OK},
    {"npy", "f8-4", MMREC_OK},
    {"npy", "f2-4x2x3", MMREC_OK},
    {"npy", "be-f4-4x2", MMREC_OK},
    {"npy", "v2-f4-4x6", MMREC_OK},
    {"npy", "v3-native", MMREC_OK},
    {"npy", "beyond-f16", MMREC_OK}, /* imported as float32 */
    {"npy", "nan", MMREC_ENUMERIC},
    {"npy", "rows3", MMREC_ESHAPE},
    {"npy", "fortran", MMREC_EFORMAT},
    {"npy", "object", MMREC_EFORMAT},
    {"npy", "int32", MMREC_EFORMAT},
    {"npy", "4d", MMREC_EFORMAT},
    {"npy", "zero-width", MMREC_EFORMAT},
    {"npy", "truncated-data", MMREC_EFORMAT},
    {"npy", "extra-data", MMREC_EFORMAT},
    {"npy", "huge-shape", MMREC_EFORMAT},
    {"npy", "no-shape", MMREC_EFORMAT},
    {"npy", "dup-key", MMREC_EFORMAT},
    {"npy", "magic-only", MMREC_EFORMAT},
    {"npy", "bad-magic", MMREC_EFORMAT},
    {"npy", "header-past-end", MMREC_EFORMAT},
    {"npy", "empty", MMREC_EFORMAT},
    {"lightgcn", "train", MMREC_OK},
    {"lightgcn", "crlf-blank", MMREC_OK},
    {"lightgcn", "user-alone", MMREC_OK},
    {"lightgcn", "int64-max-1", MMREC_OK},
    {"lightgcn", "no-final-newline", MMREC_OK},
    {"lightgcn", "empty", MMREC_OK},
    {"lightgcn", "junk", MMREC_EFORMAT},
    {"lightgcn", "negative", MMREC_EFORMAT},
    {"lightgcn", "plus", MMREC_EFORMAT},
    {"lightgcn", "decimal", MMREC_EFORMAT},
    {"lightgcn", "huge-id", MMREC_EFORMAT},
    {"lightgcn", "int64-max", MMREC_EFORMAT},
    {"lightgcn", "nul", MMREC_EFORMAT},
    {"inter", "mmrec", MMREC_OK},
    {"inter", "reordered-crlf", MMREC_OK},
    {"inter", "header-only", MMREC_OK},
    {"inter", "missing-column", MMREC_EFORMAT},
    {"inter", "repeated-column", MMREC_EFORMAT},
    {"inter", "bad-label", MMREC_EFORMAT},
    {"inter", "short-row", MMREC_EFORMAT},
    {"inter", "long-row", MMREC_EFORMAT},
    {"inter", "bad-id", MMREC_EFORMAT},
    {"inter", "huge-id", MMREC_EFORMAT},
    {"inter", "nul", MMREC_EFORMAT},
    {"inter", "empty", MMREC_EFORMAT},
    {"sequences", "valid", MMREC_OK},
    {"sequences", "crlf", MMREC_OK},
    {"sequences", "all-short", MMREC_OK},
    {"sequences", "no-tab", MMREC_EFORMAT},
    {"sequences", "empty-title", MMREC_EFORMAT},
    {"sequences", "second-tab", MMREC_EFORMAT},
    {"sequences", "space-in-id", MMREC_EFORMAT},
    {"sequences", "dup-item", MMREC_EFORMAT},
    {"sequences", "dup-user", MMREC_EFORMAT},
    {"sequences", "unknown-item", MMREC_EFORMAT},
    {"sequences", "no-items", MMREC_EFORMAT},
    {"sequences", "non-ascii", MMREC_EFORMAT},
    {"sequences", "empty-user", MMREC_EFORMAT},
};

static bool mt_fz_derived(const char *file) {
    static const char *const suffixes[] = {".header-half", ".cut1", ".bad-magic", ".version99",
                                           ".huge-count"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t n = strlen(file), m = strlen(suffixes[i]);
        if (n > m && strcmp(file + n - m, suffixes[i]) == 0) return true;
    }
    return false;
}

/* Replays every file of `dir`/<harness>; returns the number replayed.
 * `listed` counts the files found in mt_fz_expected. */
static size_t mt_fz_replay(const char *dir, const mt_fz_harness *h, size_t *listed) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, h->name);
    DIR *d = opendir(path);
    if (d == NULL) return 0;
    size_t replayed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s/%s", dir, h->name, e->d_name);
        mmrec_status s = h->parse(path);
        if (s != MMREC_OK)
            ck_assert_msg(mmrec_last_error()[0] != '\0', "%s: %s without a message", path,
                          mmrec_status_name(s));
        bool known = false;
        for (size_t i = 0; i < sizeof mt_fz_expected / sizeof mt_fz_expected[0]; i++) {
            const mt_fz_expect *x = &mt_fz_expected[i];
            if (strcmp(x->harness, h->name) != 0 || strcmp(x->file, e->d_name) != 0) continue;
            ck_assert_msg(s == x->status, "%s: %s (%s), expected %s", path,
                          mmrec_status_name(s), mmrec_last_error(),
                          mmrec_status_name(x->status));
            known = true;
            (*listed)++;
        }
        if (!known && mt_fz_derived(e->d_name))
            ck_assert_msg(s == MMREC_EFORMAT, "%s: %s, expected MMREC_EFORMAT", path,
                          mmrec_status_name(s));
        replayed++;
    }
    closedir(d);
    return replayed;
}

START_TEST(test_fuzz_corpus_replays) {
    mt_tmp_dir();
    size_t listed = 0, replayed = 0;
    for (size_t i = 0; i < sizeof mt_fz_harnesses / sizeof mt_fz_harnesses[0]; i++) {
        size_t n = mt_fz_replay(mt_path("fuzz/corpus"), &mt_fz_harnesses[i], &listed);
        ck_assert_msg(n >= 10, "tests/fuzz/corpus/%s holds %zu files", mt_fz_harnesses[i].name,
                      n);
        replayed += n;
    }
    ck_assert_msg(listed == sizeof mt_fz_expected / sizeof mt_fz_expected[0],
                  "%zu of the %zu listed seeds were found", listed,
                  sizeof mt_fz_expected / sizeof mt_fz_expected[0]);
    ck_assert_uint_gt(replayed, listed);
    mt_tmp_clean();
}
END_TEST

static Suite *fuzz_corpus_suite(void) {
    Suite *s = suite_create("fuzz_corpus");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fuzz_corpus_replays);
    suite_add_tcase(s, tc);
    return s;
}
