/* User sequences from IISAN's TSV files: filtering (short sequences
 * dropped, the last 13 items kept), item ids from 1 in items-file order
 * with unused items dropped, user ids in file order, titles, the
 * leave-one-out split and its interactions, training popularity, every
 * malformed line naming file and line, bad arguments, allocation failures,
 * and Amazon Scientific as the reference code reads it (when present). */
#include "mt.h"
#include "mmrec/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

MT_SUITE(sequences_suite)

static void mt_text(const char *path, const char *text) {
    mt_write_file(path, text, strlen(text));
}

/* The items: I0 .. I9 ("T<k>" titles), I3 only in a dropped sequence, I7
 * in none; I9 is listed first. */
static const char mt_items[] = "I9\tNine\n"
                               "I0\tZero &amp; more\r\n"
                               "I1\tT1\n"
                               "\n"
                               "I2\tT2 with  spaces \n"
                               "I3\tT3\n"
                               "I4\tT4\n"
                               "I5\tT5\n"
                               "I6\tT6\n"
                               "I7\tT7\n"
                               "I8\tT8\n";

/* u0: 4 items (dropped); u1: 5; u2: 15 (the first 2 cut); u3: 13; u4: an
 * empty sequence (dropped); u5: 6 items, blanks between them. */
static const char mt_users[] =
    "u0\tI3 I1 I2 I4\n"
    "u1\tI1 I2 I1 I4 I5\n"
    "u2\tI0 I9 I2 I2 I4 I5 I6 I8 I8 I1 I2 I4 I5 I6 I0\r\n"
    "\n"
    "u3\tI4 I5 I6 I8 I8 I1 I2 I4 I5 I6 I9 I1 I0\n"
    "u4\t\n"
    "u5\tI6  I6 \tI5 I2 I9 I8";

/* Ids: I9 1, I0 2, I1 3, I2 4, I4 5, I5 6, I6 7, I8 8 (I3, I7 dropped). */
static const char *const mt_asin_of[9] = {"", "I9", "I0", "I1", "I2", "I4", "I5", "I6", "I8"};

static mmrec_sequences *mt_read(const char *items, const char *users,
                                const mmrec_sequences_config *cfg) {
    const char *ip = mt_file(0, "items.tsv"), *up = mt_file(1, "users.tsv");
    mt_text(ip, items);
    mt_text(up, users);
    mmrec_sequences *s = NULL;
    MT_OK(mmrec_sequences_read_tsv(ip, up, cfg, &s));
    return s;
}

static void mt_expect_user(const mmrec_sequences *s, int64_t user, const char *name,
                           const int64_t *want, size_t len) {
    const int64_t *items;
    size_t n;
    MT_OK(mmrec_sequences_user(s, user, &items, &n));
    ck_assert_uint_eq(n, len);
    for (size_t k = 0; k < len; k++)
        ck_assert_msg(items[k] == want[k], "user %lld item %zu is %lld, want %lld",
                      (long long)user, k, (long long)items[k], (long long)want[k]);
    const char *got;
    MT_OK(mmrec_sequences_user_name(s, user, &got));
    ck_assert_str_eq(got, name);
}

START_TEST(test_sequences_filter_truncate_reindex_split) {
    mt_tmp_dir();
    mmrec_sequences *s = mt_read(mt_items, mt_users, NULL);
    int64_t nu = 0, ni = 0;
    size_t count = 0;
    MT_OK(mmrec_sequences_info(s, &nu, &ni, &count));
    ck_assert_int_eq(nu, 4);
    ck_assert_int_eq(ni, 8);
    ck_assert_uint_eq(count, 5 + 13 + 13 + 6);
    MT_OK(mmrec_sequences_info(s, NULL, NULL, NULL));
    const int64_t u1[5] = {3, 4, 3, 5, 6};
    const int64_t u2[13] = {4, 4, 5, 6, 7, 8, 8, 3, 4, 5, 6, 7, 2};
    const int64_t u3[13] = {5, 6, 7, 8, 8, 3, 4, 5, 6, 7, 1, 3, 2};
    const int64_t u5[6] = {7, 7, 6, 4, 1, 8};
    mt_expect_user(s, 0, "u1", u1, 5);
    mt_expect_user(s, 1, "u2", u2, 13);
    mt_expect_user(s, 2, "u3", u3, 13);
    mt_expect_user(s, 3, "u5", u5, 6);
    /* items: ids, ASINs and titles as in the file */
    for (int64_t i = 1; i <= 8; i++) {
        const char *asin, *title;
        MT_OK(mmrec_sequences_item(s, i, &asin, &title));
        ck_assert_str_eq(asin, mt_asin_of[i]);
    }
    const char *title;
    MT_OK(mmrec_sequences_item(s, 2, NULL, &title));
    ck_assert_str_eq(title, "Zero &amp; more");
    MT_OK(mmrec_sequences_item(s, 4, NULL, &title));
    ck_assert_str_eq(title, "T2 with  spaces ");
    MT_OK(mmrec_sequences_item(s, 1, NULL, NULL));
    /* training popularity: every item but the last two of each sequence */
    int64_t want[9] = {0};
    const int64_t *seqs[4] = {u1, u2, u3, u5};
    const size_t lens[4] = {5, 13, 13, 6};
    for (int u = 0; u < 4; u++)
        for (size_t k = 0; k + 2 < lens[u]; k++) want[seqs[u][k]]++;
    const int64_t *counts;
    MT_OK(mmrec_sequences_train_counts(s, &counts));
    for (int i = 0; i < 9; i++)
        ck_assert_msg(counts[i] == want[i], "count of %d is %lld, want %lld", i,
                      (long long)counts[i], (long long)want[i]);
    ck_assert_int_eq(counts[0], 0);
    ck_assert_int_eq(counts[1], 1); /* I9 in u3's training part only */

    /* the split as interactions */
    mmrec_interactions *x;
    const int64_t *pu, *pi;
    size_t n;
    int64_t xu, xi;
    MT_OK(mmrec_sequences_interactions(s, MMREC_SEQUENCES_TEST, &x));
    MT_OK(mmrec_interactions_info(x, &xu, &xi, &n));
    MT_OK(mmrec_interactions_pairs(x, &pu, &pi));
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(xu, 4);
    for (int u = 0; u < 4; u++) ck_assert(pu[u] == u && pi[u] == seqs[u][lens[u] - 1]);
    mmrec_interactions_destroy(x);
    MT_OK(mmrec_sequences_interactions(s, MMREC_SEQUENCES_VALID, &x));
    MT_OK(mmrec_interactions_pairs(x, &pu, &pi));
    for (int u = 0; u < 4; u++) ck_assert(pu[u] == u && pi[u] == seqs[u][lens[u] - 2]);
    mmrec_interactions_destroy(x);
    const uint32_t parts[3] = {MMREC_SEQUENCES_TRAIN,
                               MMREC_SEQUENCES_TRAIN | MMREC_SEQUENCES_VALID,
                               MMREC_SEQUENCES_TRAIN | MMREC_SEQUENCES_VALID |
                                   MMREC_SEQUENCES_TEST};
    for (int p = 0; p < 3; p++) {
        MT_OK(mmrec_sequences_interactions(s, parts[p], &x));
        MT_OK(mmrec_interactions_info(x, &xu, &xi, &n));
        MT_OK(mmrec_interactions_pairs(x, &pu, &pi));
        size_t w = 0;
        for (int u = 0; u < 4; u++)
            for (size_t k = 0; k + 2 - (size_t)p < lens[u]; k++, w++)
                ck_assert(pu[w] == u && pi[w] == seqs[u][k]);
        ck_assert_uint_eq(n, w);
        ck_assert_int_eq(xi, 9); /* item 8 occurs in every part set */
        mmrec_interactions_destroy(x);
    }
    /* TRAIN | TEST skips each validation target */
    MT_OK(mmrec_sequences_interactions(s, MMREC_SEQUENCES_TRAIN | MMREC_SEQUENCES_TEST, &x));
    MT_OK(mmrec_interactions_info(x, NULL, NULL, &n));
    ck_assert_uint_eq(n, count - 4);
    mmrec_interactions_destroy(x);
    mmrec_sequences_destroy(s);
    mmrec_sequences_destroy(NULL);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_sequences_lengths_are_configurable) {
    mt_tmp_dir();
    mmrec_sequences_config cfg;
    MT_OK(mmrec_sequences_config_init(&cfg));
    ck_assert_uint_eq(cfg.struct_size, sizeof cfg);
    ck_assert_int_eq(cfg.min_length, 5);
    ck_assert_int_eq(cfg.max_length, 13);
    /* whole sequences, 3 items enough: u0 kept, so I3 gets an id */
    cfg.min_length = 3;
    cfg.max_length = 0;
    mmrec_sequences *s = mt_read(mt_items, mt_users, &cfg);
    int64_t nu, ni;
    size_t count;
    MT_OK(mmrec_sequences_info(s, &nu, &ni, &count));
    ck_assert_int_eq(nu, 5);
    ck_assert_int_eq(ni, 9); /* all but I7 */
    ck_assert_uint_eq(count, 4 + 5 + 15 + 13 + 6);
    const int64_t u0[4] = {5, 3, 4, 6}; /* I3 is id 5 now */
    mt_expect_user(s, 0, "u0", u0, 4);
    const char *asin;
    MT_OK(mmrec_sequences_item(s, 5, &asin, NULL));
    ck_assert_str_eq(asin, "I3");
    mmrec_sequences_destroy(s);
    /* the last 3 of each */
    cfg.max_length = 3;
    s = mt_read(mt_items, mt_users, &cfg);
    MT_OK(mmrec_sequences_info(s, &nu, &ni, &count));
    ck_assert_int_eq(nu, 5);
    ck_assert_uint_eq(count, 15);
    const int64_t *items;
    size_t len;
    MT_OK(mmrec_sequences_user(s, 2, &items, &len));
    ck_assert_uint_eq(len, 3);
    const char *title;
    MT_OK(mmrec_sequences_item(s, items[2], &asin, &title));
    ck_assert_str_eq(asin, "I0");
    mmrec_sequences_destroy(s);
    /* every sequence filtered out: no user, no item */
    cfg.min_length = 100;
    cfg.max_length = 13;
    s = mt_read(mt_items, mt_users, &cfg);
    MT_OK(mmrec_sequences_info(s, &nu, &ni, &count));
    ck_assert(nu == 0 && ni == 0 && count == 0);
    const int64_t *counts;
    MT_OK(mmrec_sequences_train_counts(s, &counts));
    ck_assert_int_eq(counts[0], 0);
    mmrec_interactions *x;
    MT_OK(mmrec_sequences_interactions(s, MMREC_SEQUENCES_TRAIN, &x));
    size_t n = 9;
    MT_OK(mmrec_interactions_info(x, NULL, NULL, &n));
    ck_assert_uint_eq(n, 0);
    mmrec_interactions_destroy(x);
    mmrec_sequences_destroy(s);
    /* an empty users file */
    s = mt_read(mt_items, "", NULL);
    MT_OK(mmrec_sequences_info(s, &nu, &ni, &count));
    ck_assert(nu == 0 && ni == 0 && count == 0);
    mmrec_sequences_destroy(s);
    mt_tmp_clean();
}
END_TEST

/* ---- malformed files ---- */

START_TEST(test_sequences_malformed_lines_name_file_and_line) {
    mt_tmp_dir();
    char ip[200], up[200];
    snprintf(ip, sizeof ip, "%s", mt_file(0, "items.tsv"));
    snprintf(up, sizeof up, "%s", mt_file(1, "users.tsv"));
    const char *good_users = "u1\tI1 I2 I1 I4 I5\n";
    static const struct {
        const char *items, *users, *needle;
    } cases[] = {
        /* the items file */
        {"I1\tT1\nI2 T2\n", NULL, "items.tsv' line 2: no tab (expected item_id<TAB>title)"},
        {"I1\tT1\n\tT2\n", NULL, "items.tsv' line 2: empty item id"},
        {"I1\tT1\r\nI2\t\r\n", NULL, "items.tsv' line 2: item 'I2' has an empty title"},
        {"I1\tT1\nI 2\tT2\n", NULL, "items.tsv' line 2: item id 'I 2' has byte 0x20 at column 2"},
        {"I1\tT1\nI\xc3\xa9\tT2\n", NULL, "items.tsv' line 2: item id 'I\\xc3\\xa9' has byte 0xc3"},
        {"I1\tT1\nI2\tT2\tmore\n", NULL, "items.tsv' line 2: a second tab at column 6"},
        {"I1\tT1\nI2\tT2\n\nI1\tagain\n", NULL,
         "items.tsv' line 4: item 'I1' appears again (first on line 1)"},
        {"", NULL, "items.tsv' holds no item line"},
        {"\n\r\n", NULL, "items.tsv' holds no item line"},
        /* the users file */
        {NULL, "u1 I1 I2 I1 I4 I5\n", "users.tsv' line 1: no tab (expected user_id<TAB>item"},
        {NULL, "u1\tI1 I2 I1 I4 I5\n\tI1 I2 I1 I4 I5\n", "users.tsv' line 2: empty user id"},
        {NULL, "u1\tI1 I2 I1 I4 I5\nu2\tI1 I2 X9 I4 I5\n",
         "users.tsv' line 2: item 'X9' (item 3 of user 'u2') is not in '"},
        {NULL, "u1\tI1 I2 I1 I4 I5\nu2\tX9\n", "users.tsv' line 2: item 'X9' (item 1 of user"},
        {NULL, "u1\tI1 I2 I1 I4 I5\nu2\tI1 I2 \xe2\x80\x8b I4\n",
         "users.tsv' line 2: byte 0xe2 at column 10 is not printable ASCII"},
        {NULL, "u1\tI1 I2 I1 I4 I5\nu\xff\tI1 I2\n",
         "users.tsv' line 2: byte 0xff at column 2"},
        {NULL, "u1\tI1 I2\x01 I1 I4 I5\n", "users.tsv' line 1: byte 0x01 at column 9"},
        {NULL, "u1\tI1 I2 I1 I4 I5\nu2\tI1\nu1\tI2 I2\n",
         "users.tsv' line 3: user 'u1' appears again (first on line 1)"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const char *items = cases[k].items ? cases[k].items : mt_items;
        mt_text(ip, items);
        mt_text(up, cases[k].users ? cases[k].users : good_users);
        mmrec_sequences *s = (mmrec_sequences *)0x1;
        MT_EXPECT(mmrec_sequences_read_tsv(ip, up, NULL, &s), MMREC_EFORMAT, cases[k].needle);
        MT_EXPECT(mmrec_sequences_read_tsv(ip, up, NULL, &s), MMREC_EFORMAT,
                  cases[k].items ? ip : up);
        ck_assert_ptr_eq(s, (mmrec_sequences *)0x1); /* untouched */
    }
    /* a NUL byte in a title */
    mmrec_sequences *s = NULL;
    mt_write_file(ip, "I1\tT1\nI2\tT\0\n", 12);
    mt_text(up, good_users);
    MT_EXPECT(mmrec_sequences_read_tsv(ip, up, NULL, &s), MMREC_EFORMAT,
              "items.tsv' line 2: NUL byte");
    /* missing files */
    mt_text(ip, mt_items);
    mt_text(up, good_users);
    MT_EXPECT(mmrec_sequences_read_tsv(mt_file(2, "none.tsv"), up, NULL, &s), MMREC_EIO,
              "none.tsv");
    MT_EXPECT(mmrec_sequences_read_tsv(ip, mt_file(2, "none.tsv"), NULL, &s), MMREC_EIO,
              "none.tsv");
    MT_EXPECT(mmrec_sequences_read_tsv(ip, mt_dir, NULL, &s), MMREC_EIO, mt_dir);
    ck_assert_ptr_null(s);
    mt_tmp_clean();
}
END_TEST

/* A users line whose item shares a hash slot with a short item id stored
 * at the very end of the reader's text arena: the comparison of the two
 * must not read past that id (a fuzzer found it; make test-asan reports
 * the overread). The input is the fuzz harness's: the items file, a NUL,
 * the users file. */
START_TEST(test_sequences_key_compare_stays_inside_the_arena) {
    mt_tmp_dir();
    size_t size = 0;
    unsigned char *data = mt_read_file(mt_path("fuzz/regressions/sequences/key-past-arena"),
                                       &size);
    const unsigned char *nul = memchr(data, 0, size);
    ck_assert_ptr_nonnull(nul);
    size_t n = (size_t)(nul - data);
    const char *ip = mt_file(0, "items.tsv"), *up = mt_file(1, "users.tsv");
    mt_write_file(ip, data, n);
    mt_write_file(up, nul + 1, size - n - 1);
    free(data);
    mmrec_sequences *s = NULL;
    MT_EXPECT(mmrec_sequences_read_tsv(ip, up, NULL, &s), MMREC_EFORMAT, "users.tsv' line 1");
    ck_assert_ptr_null(s);
    mt_tmp_clean();
}
END_TEST

/* ---- bad arguments ---- */

START_TEST(test_sequences_bad_arguments_name_the_argument) {
    mt_tmp_dir();
    mmrec_sequences *s = mt_read(mt_items, mt_users, NULL);
    const char *ip = mt_file(0, "items.tsv"), *up = mt_file(1, "users.tsv");
    mmrec_sequences_config cfg;
    MT_OK(mmrec_sequences_config_init(&cfg));
    mmrec_sequences *t = (mmrec_sequences *)0x1;
    cfg.min_length = 2;
    MT_EXPECT(mmrec_sequences_read_tsv(ip, up, &cfg, &t), MMREC_EINVAL, "cfg->min_length is 2");
    cfg.min_length = 5;
    cfg.max_length = 2;
    MT_EXPECT(mmrec_sequences_read_tsv(ip, up, &cfg, &t), MMREC_EINVAL, "cfg->max_length is 2");
    cfg.max_length = -1;
    MT_EXPECT(mmrec_sequences_read_tsv(ip, up, &cfg, &t), MMREC_EINVAL, "cfg->max_length is -1");
    ck_assert_ptr_eq(t, (mmrec_sequences *)0x1);
    MT_EXPECT(mmrec_sequences_read_tsv(NULL, up, NULL, &t), MMREC_EINVAL, "'items_path'");
    MT_EXPECT(mmrec_sequences_config_init_sized(&cfg, 16), MMREC_EINVAL, "size is 16");
    struct {
        mmrec_sequences_config cfg;
        int64_t newer;
    } big;
    MT_OK(mmrec_sequences_config_init_sized(&big.cfg, sizeof big));
    big.newer = 3;
    MT_EXPECT(mmrec_sequences_read_tsv(ip, up, &big.cfg, &t), MMREC_EINVAL,
              "config from a newer libmmrec");

    const int64_t *items;
    size_t len;
    const char *name;
    MT_EXPECT(mmrec_sequences_user(s, 4, &items, &len), MMREC_ERANGE, "user is 4, outside [0, 4)");
    MT_EXPECT(mmrec_sequences_user(s, -1, &items, &len), MMREC_ERANGE, "user is -1");
    MT_EXPECT(mmrec_sequences_user_name(s, 4, &name), MMREC_ERANGE, "user is 4");
    MT_EXPECT(mmrec_sequences_item(s, 0, &name, NULL), MMREC_ERANGE,
              "item is 0, outside [1, 8] (0 is the padding id)");
    MT_EXPECT(mmrec_sequences_item(s, 9, NULL, &name), MMREC_ERANGE, "item is 9");
    mmrec_interactions *x = (mmrec_interactions *)0x1;
    MT_EXPECT(mmrec_sequences_interactions(s, 0, &x), MMREC_EINVAL, "parts is 0x0");
    MT_EXPECT(mmrec_sequences_interactions(s, MMREC_SEQUENCES_TEST | 8u, &x), MMREC_EINVAL,
              "parts is 0xc");
    ck_assert_ptr_eq(x, (mmrec_interactions *)0x1);
    MT_EXPECT(mmrec_sequences_info(NULL, NULL, NULL, NULL), MMREC_EINVAL, "'seqs'");
    /* an object of another kind */
    mmrec_interactions *other;
    MT_OK(mmrec_sequences_interactions(s, MMREC_SEQUENCES_TEST, &other));
    MT_EXPECT(mmrec_sequences_info((const mmrec_sequences *)(const void *)other, NULL, NULL,
                                   NULL),
              MMREC_EINVAL, "not a sequences object");
    mmrec_interactions_destroy(other);
    mmrec_sequences_destroy(s);
    mt_tmp_clean();
}
END_TEST

/* ---- allocation failures ---- */

typedef struct mt_seq_paths {
    char items[200], users[200];
} mt_seq_paths;

static mmrec_status mt_sequences_scenario(void *ctx) {
    const mt_seq_paths *p = ctx;
    mmrec_sequences *s = NULL;
    mmrec_interactions *x = NULL;
    mmrec_status st = mmrec_sequences_read_tsv(p->items, p->users, NULL, &s);
    if (st == MMREC_OK)
        st = mmrec_sequences_interactions(s, MMREC_SEQUENCES_TRAIN | MMREC_SEQUENCES_VALID, &x);
    if (st == MMREC_OK) {
        size_t n;
        MT_OK(mmrec_interactions_info(x, NULL, NULL, &n));
        ck_assert_uint_gt(n, 1000);
    }
    mmrec_interactions_destroy(x);
    mmrec_sequences_destroy(s);
    return st;
}

START_TEST(test_sequences_oom_every_allocation_reports_enomem_without_leaks) {
    mt_tmp_dir();
    mt_seq_paths p;
    snprintf(p.items, sizeof p.items, "%s", mt_file(0, "items.tsv"));
    snprintf(p.users, sizeof p.users, "%s", mt_file(1, "users.tsv"));
    /* enough items and users for the tables and arrays to grow */
    FILE *f = fopen(p.items, "wb");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 900; i++) fprintf(f, "A%05d\tItem number %d\n", i, i);
    fclose(f);
    f = fopen(p.users, "wb");
    ck_assert_ptr_nonnull(f);
    uint64_t seed = 5;
    for (int u = 0; u < 700; u++) {
        fprintf(f, "U%d\t", u);
        int len = 3 + (int)(mt_lcg(&seed) % 20);
        for (int k = 0; k < len; k++) fprintf(f, "%sA%05d", k ? " " : "", (int)(mt_lcg(&seed) % 900));
        fputs("\n", f);
    }
    fclose(f);
    ck_assert_int_gt(mt_oom_loop("sequences", mt_sequences_scenario, &p), 10);
    mt_tmp_clean();
}
END_TEST

/* ---- Amazon Scientific (skipped when absent) ----
 * The expected numbers come from the reference code's read_behaviors run
 * on the same files (max_seq_len 10, min_seq_len 5). */
#define MT_SCIENTIFIC "/work/shared/data/iisan-scientific/"

START_TEST(test_sequences_amazon_scientific_as_the_reference_reads_it) {
    const char *items_path = MT_SCIENTIFIC "Industrial_and_Scientific_items.tsv";
    const char *users_path = MT_SCIENTIFIC "am_Industrial_and_Scientific_users.tsv";
    if (access(items_path, R_OK) != 0 || access(users_path, R_OK) != 0) return;
    mmrec_sequences *s;
    MT_OK(mmrec_sequences_read_tsv(items_path, users_path, NULL, &s));
    int64_t nu, ni;
    size_t count;
    MT_OK(mmrec_sequences_info(s, &nu, &ni, &count));
    ck_assert_int_eq(nu, 12076);
    ck_assert_int_eq(ni, 20314);
    ck_assert_uint_eq(count, 81711);
    /* every kept item, in order: sum of item * (position + 1) */
    uint64_t sum = 0, pos = 0;
    size_t by_length[14] = {0};
    for (int64_t u = 0; u < nu; u++) {
        const int64_t *items;
        size_t len;
        MT_OK(mmrec_sequences_user(s, u, &items, &len));
        ck_assert(len >= 5 && len <= 13);
        by_length[len]++;
        for (size_t k = 0; k < len; k++) sum += (uint64_t)items[k] * ++pos;
    }
    ck_assert_uint_eq(sum, 34139679887185ull);
    ck_assert_uint_eq(by_length[5], 4892);
    ck_assert_uint_eq(by_length[13], 699);
    const int64_t u0[5] = {19705, 19705, 10473, 7988, 19705};
    mt_expect_user(s, 0, "A0096681Y127OL1H8W3U", u0, 5);
    const int64_t *counts;
    MT_OK(mmrec_sequences_train_counts(s, &counts));
    uint64_t total = 0, weighted = 0, unseen = 0;
    for (int64_t i = 1; i <= ni; i++) {
        total += (uint64_t)counts[i];
        weighted += (uint64_t)counts[i] * (uint64_t)i;
        unseen += counts[i] == 0;
    }
    ck_assert_uint_eq(total, 57559);
    ck_assert_uint_eq(weighted, 590304432);
    ck_assert_uint_eq(unseen, 4008);
    const char *asin, *title;
    MT_OK(mmrec_sequences_item(s, 1, &asin, &title));
    ck_assert_str_eq(asin, "B005FU5HFI");
    ck_assert(strncmp(title, "Manometer 11 Unit of Pressure", 29) == 0);
    MT_OK(mmrec_sequences_item(s, ni, &asin, NULL));
    ck_assert_str_eq(asin, "B00IGPCEFA");
    /* the targets */
    const uint32_t parts[2] = {MMREC_SEQUENCES_VALID, MMREC_SEQUENCES_TEST};
    const uint64_t want_sum[2] = {123882219, 122865017};
    for (int p = 0; p < 2; p++) {
        mmrec_interactions *x;
        MT_OK(mmrec_sequences_interactions(s, parts[p], &x));
        const int64_t *pu, *pi;
        size_t n;
        MT_OK(mmrec_interactions_info(x, NULL, NULL, &n));
        MT_OK(mmrec_interactions_pairs(x, &pu, &pi));
        ck_assert_uint_eq(n, 12076);
        uint64_t t = 0;
        for (size_t k = 0; k < n; k++) t += (uint64_t)pi[k];
        ck_assert_uint_eq(t, want_sum[p]);
        mmrec_interactions_destroy(x);
    }
    mmrec_sequences_destroy(s);
    /* whole sequences: every item and interaction of the files */
    mmrec_sequences_config cfg;
    MT_OK(mmrec_sequences_config_init(&cfg));
    cfg.max_length = 0;
    MT_OK(mmrec_sequences_read_tsv(items_path, users_path, &cfg, &s));
    MT_OK(mmrec_sequences_info(s, &nu, &ni, &count));
    ck_assert_int_eq(nu, 12076);
    ck_assert_int_eq(ni, 20825);
    ck_assert_uint_eq(count, 85211);
    mmrec_sequences_destroy(s);
}
END_TEST

static Suite *sequences_suite(void) {
    Suite *s = suite_create("sequences");
    TCase *read = tcase_create("read");
    tcase_set_timeout(read, 60);
    tcase_add_test(read, test_sequences_filter_truncate_reindex_split);
    tcase_add_test(read, test_sequences_lengths_are_configurable);
    tcase_add_test(read, test_sequences_amazon_scientific_as_the_reference_reads_it);
    suite_add_tcase(s, read);
    TCase *files = tcase_create("files");
    tcase_add_test(files, test_sequences_malformed_lines_name_file_and_line);
    tcase_add_test(files, test_sequences_key_compare_stays_inside_the_arena);
    suite_add_tcase(s, files);
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_sequences_bad_arguments_name_the_argument);
    suite_add_tcase(s, api);
    TCase *lc = tcase_create("lifecycle");
    tcase_set_timeout(lc, 120);
    tcase_add_test(lc, test_sequences_oom_every_allocation_reports_enomem_without_leaks);
    suite_add_tcase(s, lc);
    return s;
}
