/* Interaction data: pairs from caller memory, LightGCN / NGCF text files
 * (users without items, repeated users, tabs, CRLF, empty lines, lines
 * longer than the read buffer), MMRec .inter files (columns in any order,
 * each split), malformed files naming file and line, missing files,
 * allocation failures, and the Gowalla training file when it is present. */
#include "mt.h"
#include "mmrec/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

MT_SUITE(data_suite)

/* ---- helpers ---- */

static void mt_write_text(const char *path, const char *text) {
    mt_write_file(path, text, strlen(text));
}

/* Asserts x holds exactly these sizes and pairs. */
static void mt_expect_pairs(const mmrec_interactions *x, int64_t num_users, int64_t num_items,
                            const int64_t *users, const int64_t *items, size_t count) {
    int64_t nu = -1, ni = -1;
    size_t n = 999;
    MT_OK(mmrec_interactions_info(x, &nu, &ni, &n));
    ck_assert_int_eq(nu, num_users);
    ck_assert_int_eq(ni, num_items);
    ck_assert_uint_eq(n, count);
    const int64_t *u = NULL, *i = NULL;
    MT_OK(mmrec_interactions_pairs(x, &u, &i));
    if (count == 0) return;
    for (size_t k = 0; k < count; k++) {
        ck_assert_msg(u[k] == users[k] && i[k] == items[k],
                      "pair %zu is (%lld, %lld), expected (%lld, %lld)", k, (long long)u[k],
                      (long long)i[k], (long long)users[k], (long long)items[k]);
    }
}

static mmrec_interactions *mt_read_lightgcn_text(const char *text) {
    const char *path = mt_file(0, "train.txt");
    mt_write_text(path, text);
    mmrec_interactions *x = NULL;
    MT_OK(mmrec_interactions_read_lightgcn(path, &x));
    return x;
}

/* ---- from memory ---- */

START_TEST(test_data_create_copies_pairs_and_sizes) {
    int64_t users[5] = {3, 0, 3, 7, 1};
    int64_t items[5] = {10, 2, 11, 0, 10};
    mmrec_interactions *x;
    MT_OK(mmrec_interactions_create(users, items, 5, &x));
    int64_t want_u[5] = {3, 0, 3, 7, 1}, want_i[5] = {10, 2, 11, 0, 10};
    users[0] = 99; /* a copy: the caller's memory is not referenced */
    items[4] = 99;
    mt_expect_pairs(x, 8, 12, want_u, want_i, 5);
    /* any out pointer may be NULL */
    size_t n = 0;
    MT_OK(mmrec_interactions_info(x, NULL, NULL, &n));
    ck_assert_uint_eq(n, 5);
    int64_t nu = 0;
    MT_OK(mmrec_interactions_info(x, &nu, NULL, NULL));
    ck_assert_int_eq(nu, 8);
    MT_OK(mmrec_interactions_info(x, NULL, NULL, NULL));
    mmrec_interactions_destroy(x);

    /* no pairs: NULL arrays allowed, sizes 0, views NULL */
    MT_OK(mmrec_interactions_create(NULL, NULL, 0, &x));
    mt_expect_pairs(x, 0, 0, NULL, NULL, 0);
    const int64_t *u = users, *i = items;
    MT_OK(mmrec_interactions_pairs(x, &u, &i));
    ck_assert_ptr_null(u);
    ck_assert_ptr_null(i);
    mmrec_interactions_destroy(x);

    /* the largest id accepted */
    int64_t big = INT64_MAX - 1, zero = 0;
    MT_OK(mmrec_interactions_create(&big, &zero, 1, &x));
    MT_OK(mmrec_interactions_info(x, &nu, NULL, NULL));
    ck_assert_int_eq(nu, INT64_MAX);
    mmrec_interactions_destroy(x);
    mmrec_interactions_destroy(NULL);
}
END_TEST

START_TEST(test_data_bad_arguments_name_the_argument) {
    int64_t users[4] = {0, 1, -2, 3}, items[4] = {0, 1, 2, -5}, ok[4] = {0, 1, 2, 3};
    mmrec_interactions *x = (mmrec_interactions *)0x1;
    MT_EXPECT(mmrec_interactions_create(ok, ok, 4, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_interactions_create(NULL, ok, 4, &x), MMREC_EINVAL, "'users'");
    MT_EXPECT(mmrec_interactions_create(ok, NULL, 4, &x), MMREC_EINVAL, "'items'");
    MT_EXPECT(mmrec_interactions_create(users, ok, 4, &x), MMREC_EINVAL, "users[2] is -2");
    MT_EXPECT(mmrec_interactions_create(ok, items, 4, &x), MMREC_EINVAL, "items[3] is -5");
    int64_t max = INT64_MAX;
    MT_EXPECT(mmrec_interactions_create(ok, &max, 1, &x), MMREC_EINVAL, "items[0]");
    MT_EXPECT(mmrec_interactions_read_lightgcn(NULL, &x), MMREC_EINVAL, "'path'");
    MT_EXPECT(mmrec_interactions_read_lightgcn("a.txt", NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_interactions_read_inter(NULL, 0, &x), MMREC_EINVAL, "'path'");
    MT_EXPECT(mmrec_interactions_read_inter("a.inter", 0, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_interactions_read_inter("a.inter", 3, &x), MMREC_EINVAL, "split is 3");
    MT_EXPECT(mmrec_interactions_read_inter("a.inter", -2, &x), MMREC_EINVAL, "split is -2");
    ck_assert_ptr_eq(x, (mmrec_interactions *)0x1); /* untouched */
    MT_EXPECT(mmrec_interactions_read_inter("a.inter", -2, &x), MMREC_EINVAL,
              "mmrec_interactions_read_inter");

    int64_t n_users;
    size_t count;
    const int64_t *u, *i;
    MT_EXPECT(mmrec_interactions_info(NULL, &n_users, NULL, &count), MMREC_EINVAL, "'x'");
    MT_EXPECT(mmrec_interactions_pairs(NULL, &u, &i), MMREC_EINVAL, "'x'");
    MT_OK(mmrec_interactions_create(ok, ok, 4, &x));
    MT_EXPECT(mmrec_interactions_pairs(x, NULL, &i), MMREC_EINVAL, "'users'");
    MT_EXPECT(mmrec_interactions_pairs(x, &u, NULL), MMREC_EINVAL, "'items'");
    mmrec_interactions_destroy(x);
}
END_TEST

/* ---- LightGCN / NGCF text ---- */

START_TEST(test_data_lightgcn_users_without_items_repeats_tabs_crlf) {
    mt_tmp_dir();
    /* user 4 alone, user 1 on two lines, tabs and runs of blanks, CRLF,
     * empty and blank lines, leading and trailing blanks */
    mmrec_interactions *x = mt_read_lightgcn_text("0 5 3 5\n"
                                                  "\n"
                                                  "1\t2  \t 7\r\n"
                                                  "4\n"
                                                  "   \t \r\n"
                                                  "\r\n"
                                                  "  1 0 \n"
                                                  "2 007\n");
    int64_t u[8] = {0, 0, 0, 1, 1, 1, 2}, i[8] = {5, 3, 5, 2, 7, 0, 7};
    mt_expect_pairs(x, 5, 8, u, i, 7);
    mmrec_interactions_destroy(x);

    /* no final newline, and a last line that is a user alone */
    x = mt_read_lightgcn_text("0 1\n3 2");
    int64_t u2[2] = {0, 3}, i2[2] = {1, 2};
    mt_expect_pairs(x, 4, 3, u2, i2, 2);
    mmrec_interactions_destroy(x);
    x = mt_read_lightgcn_text("0 1\r\n9");
    mt_expect_pairs(x, 10, 2, u2, i2, 1);
    mmrec_interactions_destroy(x);

    /* users without any item: counted, but no pair and no item */
    x = mt_read_lightgcn_text("5\n2\n");
    mt_expect_pairs(x, 6, 0, NULL, NULL, 0);
    mmrec_interactions_destroy(x);

    /* empty file and a file of empty lines */
    x = mt_read_lightgcn_text("");
    mt_expect_pairs(x, 0, 0, NULL, NULL, 0);
    mmrec_interactions_destroy(x);
    x = mt_read_lightgcn_text("\n\r\n\n");
    mt_expect_pairs(x, 0, 0, NULL, NULL, 0);
    mmrec_interactions_destroy(x);

    /* the largest id */
    x = mt_read_lightgcn_text("9223372036854775806 0\n");
    int64_t u3 = INT64_MAX - 1, i3 = 0;
    mt_expect_pairs(x, INT64_MAX, 1, &u3, &i3, 1);
    mmrec_interactions_destroy(x);
    mt_tmp_clean();
}
END_TEST

/* A file larger than the 1 MiB read buffer: many short lines crossing the
 * chunk boundaries, then one line of over 2 MiB (the buffer must grow),
 * then short lines again, without a final newline. */
START_TEST(test_data_lightgcn_lines_longer_than_the_buffer) {
    mt_tmp_dir();
    const char *path = mt_file(0, "long.txt");
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    size_t expected = 0;
    uint64_t sum = 0;
    for (int64_t user = 0; user < 40000; user++) {
        fprintf(f, "%lld", (long long)user);
        for (int64_t k = 0; k < user % 7; k++) {
            int64_t item = (user * 31 + k * 1009) % 50000;
            fprintf(f, k % 2 ? "\t%lld" : " %lld", (long long)item);
            expected++;
            sum += (uint64_t)(user * 3 + item);
        }
        fputs(user % 3 ? "\n" : "\r\n", f);
    }
    int64_t big_user = 40000;
    fprintf(f, "%lld", (long long)big_user);
    for (int64_t item = 0; item < 400000; item++) {
        fprintf(f, " %lld", (long long)item);
        expected++;
        sum += (uint64_t)(big_user * 3 + item);
    }
    fputs("\n", f);
    for (int64_t user = 40001; user < 40100; user++) {
        fprintf(f, "%s%lld 7", user > 40001 ? "\n" : "", (long long)user);
        expected++;
        sum += (uint64_t)(user * 3 + 7);
    }
    fclose(f);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_gt(st.st_size, 3 << 20);

    mmrec_interactions *x;
    MT_OK(mmrec_interactions_read_lightgcn(path, &x));
    int64_t nu, ni;
    size_t n;
    MT_OK(mmrec_interactions_info(x, &nu, &ni, &n));
    ck_assert_int_eq(nu, 40100);
    ck_assert_int_eq(ni, 400000);
    ck_assert_uint_eq(n, expected);
    const int64_t *u, *i;
    MT_OK(mmrec_interactions_pairs(x, &u, &i));
    uint64_t got = 0;
    bool in_order = true; /* file order: users ascending */
    for (size_t k = 0; k < n; k++) {
        got += (uint64_t)(u[k] * 3 + i[k]);
        in_order = in_order && (k == 0 || u[k] >= u[k - 1]);
    }
    ck_assert_uint_eq(got, sum);
    ck_assert(in_order);
    mmrec_interactions_destroy(x);
    mt_tmp_clean();
}
END_TEST

/* ---- MMRec .inter ---- */

START_TEST(test_data_inter_columns_in_any_order_and_splits) {
    mt_tmp_dir();
    const char *path = mt_file(0, "baby.inter");
    mt_write_text(path, "itemID\tx_label\trating\tuserID\ttimestamp\r\n"
                        "3\t0\t5.0\t0\t1400000000\r\n"
                        "8\t2\t4.0\t0\t1400000001\r\n"
                        "1\t1\tnot-a-number\t2\t1400000002\r\n"
                        "\r\n"
                        "0\t0\t\t5\t\r\n"
                        "9\t2\t3.0\t1\t1400000004\r\n"
                        "2\t0\t1.0\t1\t1400000005");
    mmrec_interactions *x;
    int64_t all_u[6] = {0, 0, 2, 5, 1, 1}, all_i[6] = {3, 8, 1, 0, 9, 2};
    MT_OK(mmrec_interactions_read_inter(path, -1, &x));
    mt_expect_pairs(x, 6, 10, all_u, all_i, 6);
    mmrec_interactions_destroy(x);
    int64_t train_u[3] = {0, 5, 1}, train_i[3] = {3, 0, 2};
    MT_OK(mmrec_interactions_read_inter(path, 0, &x));
    mt_expect_pairs(x, 6, 4, train_u, train_i, 3);
    mmrec_interactions_destroy(x);
    int64_t valid_u[1] = {2}, valid_i[1] = {1};
    MT_OK(mmrec_interactions_read_inter(path, 1, &x));
    mt_expect_pairs(x, 3, 2, valid_u, valid_i, 1);
    mmrec_interactions_destroy(x);
    int64_t test_u[2] = {0, 1}, test_i[2] = {8, 9};
    MT_OK(mmrec_interactions_read_inter(path, 2, &x));
    mt_expect_pairs(x, 2, 10, test_u, test_i, 2);
    mmrec_interactions_destroy(x);

    /* the toolbox's own column order, LF endings, final newline; only the
     * header; a split with no row */
    mt_write_text(path, "userID\titemID\trating\ttimestamp\tx_label\n"
                        "0\t1\t5.0\t978300760\t0\n"
                        "1\t0\t3.0\t978302109\t0\n");
    int64_t u[2] = {0, 1}, i[2] = {1, 0};
    MT_OK(mmrec_interactions_read_inter(path, 0, &x));
    mt_expect_pairs(x, 2, 2, u, i, 2);
    mmrec_interactions_destroy(x);
    MT_OK(mmrec_interactions_read_inter(path, 2, &x));
    mt_expect_pairs(x, 0, 0, NULL, NULL, 0);
    mmrec_interactions_destroy(x);
    mt_write_text(path, "x_label\titemID\tuserID\n");
    MT_OK(mmrec_interactions_read_inter(path, -1, &x));
    mt_expect_pairs(x, 0, 0, NULL, NULL, 0);
    mmrec_interactions_destroy(x);
    /* a UTF-8 byte order mark before the header */
    mt_write_text(path, "\xef\xbb\xbfuserID\titemID\tx_label\n4\t6\t0\n");
    int64_t u4 = 4, i6 = 6;
    MT_OK(mmrec_interactions_read_inter(path, -1, &x));
    mt_expect_pairs(x, 5, 7, &u4, &i6, 1);
    mmrec_interactions_destroy(x);
    mt_tmp_clean();
}
END_TEST

/* ---- malformed and missing files ---- */

typedef struct mt_bad_file {
    bool inter;          /* .inter (split -1) or LightGCN */
    const char *content;
    size_t size;         /* 0: strlen(content) */
    int line;
    const char *needle;
} mt_bad_file;

#define MT_HDR5 "userID\titemID\trating\ttimestamp\tx_label\n"

START_TEST(test_data_malformed_files_name_file_and_line) {
    mt_tmp_dir();
    static const mt_bad_file cases[] = {
        {false, "0 1 2\n1 x12 3\n", 0, 2, "'x12' is not a non-negative integer"},
        {false, "-3 1\n", 0, 1, "'-3' is not a non-negative integer"},
        {false, "3 -1\n", 0, 1, "'-1' is not a non-negative integer"},
        {false, "0 +3\n", 0, 1, "'+3' is not a non-negative integer"},
        {false, "0 3.0\n", 0, 1, "'3.0' is not a non-negative integer"},
        {false, "0,1,2\n", 0, 1, "'0,1,2' is not a non-negative integer"},
        {false, "0 1\n\n2 99999999999999999999\n", 0, 3,
         "id 99999999999999999999 does not fit int64"},
        {false, "0 1\n1 9223372036854775808", 0, 2, "does not fit int64"},
        {false, "0 9223372036854775807\n", 0, 1, "too large"},
        {false, "0 1\n1 2\0 3\n", 11, 2, "NUL byte at column 4"},
        {false, "0 1\r\r\n", 0, 1, "'1\\x0d' is not a non-negative integer"},
        {false, "0 1\n2 3\v\n", 0, 2, "'3\\x0b'"},
        {true, "", 0, 1, "no header line"},
        {true, "\n\n", 0, 3, "no header line"},
        {true, "userID\titem\tx_label\n", 0, 1, "no column 'itemID' in the header"},
        {true, "userID itemID x_label\n0 1 0\n", 0, 1, "no column 'userID' in the header"},
        {true, "userID\titemID\tx_label\tuserID\n", 0, 1,
         "column 'userID' appears twice in the header (fields 1 and 4)"},
        {true, MT_HDR5 "0\t1\t5\t9\t0\n1\t1\t5\t9\t0\n\n2\t1\t5\n", 0, 5,
         "3 fields, the header has 5"},
        {true, MT_HDR5 "0\t1\t5\t9\t0\t7\n", 0, 2, "6 fields, the header has 5"},
        {true, MT_HDR5 "0\t1\t5\t9\t0\n0\t1\t5\t9\t1\n0\t1\t5\t9\t2\n0\t1\t5\t9\t2\n"
               "0\t1\t5\t9\t0\n0\t1\t5\t9\t1\n0\t1\t5\t9\t0\n0\t1\t5\t9\t7\n",
         0, 9, "x_label is 7, expected 0, 1 or 2"},
        {true, MT_HDR5 "0\t1\t5\t9\t-1\n", 0, 2, "x_label '-1' is not a non-negative integer"},
        {true, MT_HDR5 "0\t1\t5\t9\t\n", 0, 2, "x_label '' is not a non-negative integer"},
        {true, MT_HDR5 "a\t1\t5\t9\t0\n", 0, 2, "userID 'a' is not a non-negative integer"},
        {true, MT_HDR5 "0\t-4\t5\t9\t0\n", 0, 2, "itemID '-4' is not a non-negative integer"},
        {true, MT_HDR5 "0\t 4\t5\t9\t0\n", 0, 2, "itemID ' 4' is not a non-negative integer"},
        {true, MT_HDR5 "0\t1\t5\t9\t0\n0\t12345678901234567890\t5\t9\t0\n", 0, 3,
         "itemID 12345678901234567890 does not fit int64"},
        {true, "userID\titemID\tx_label\n0\t1\t0\n0\t\0\t0\n", 34, 3, "NUL byte at column 3"},
    };
    const char *path[2] = {"bad.txt", "bad.inter"};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const mt_bad_file *b = &cases[c];
        const char *file = mt_file(0, path[b->inter]);
        mt_write_file(file, b->content, b->size ? b->size : strlen(b->content));
        mmrec_interactions *x = (mmrec_interactions *)0x1;
        mmrec_status s = b->inter ? mmrec_interactions_read_inter(file, -1, &x)
                                  : mmrec_interactions_read_lightgcn(file, &x);
        ck_assert_msg(s == MMREC_EFORMAT, "case %zu: %s (%s)", c, mmrec_status_name(s),
                      mmrec_last_error());
        ck_assert_ptr_eq(x, (mmrec_interactions *)0x1);
        char where[300];
        snprintf(where, sizeof where, "'%s' line %d: ", file, b->line);
        ck_assert_msg(strstr(mmrec_last_error(), where) != NULL,
                      "case %zu: '%s' does not mention '%s'", c, mmrec_last_error(), where);
        ck_assert_msg(strstr(mmrec_last_error(), b->needle) != NULL,
                      "case %zu: '%s' does not mention '%s'", c, mmrec_last_error(), b->needle);
        /* every split checks every row */
        if (b->inter) MT_EXPECT(mmrec_interactions_read_inter(file, 1, &x), MMREC_EFORMAT, where);
    }
    /* the message prefix names the function */
    const char *file = mt_file(0, "bad.txt");
    mt_write_text(file, "0 1\n1 x12 3\n");
    mmrec_interactions *x;
    MT_EXPECT(mmrec_interactions_read_lightgcn(file, &x), MMREC_EFORMAT,
              "mmrec_interactions_read_lightgcn: ");
    /* a very long bad field is cut in the message */
    char long_field[400];
    memset(long_field, 'z', sizeof long_field - 1);
    long_field[sizeof long_field - 1] = '\0';
    mt_write_text(file, long_field);
    MT_EXPECT(mmrec_interactions_read_lightgcn(file, &x), MMREC_EFORMAT, "zzz...' is not");
    mt_tmp_clean();
}
END_TEST

START_TEST(test_data_missing_file_or_directory_is_eio) {
    mt_tmp_dir();
    mmrec_interactions *x = (mmrec_interactions *)0x1;
    const char *missing = mt_file(0, "missing.txt");
    MT_EXPECT(mmrec_interactions_read_lightgcn(missing, &x), MMREC_EIO, missing);
    MT_EXPECT(mmrec_interactions_read_lightgcn(missing, &x), MMREC_EIO, "No such file");
    MT_EXPECT(mmrec_interactions_read_inter(missing, 0, &x), MMREC_EIO, missing);
    MT_EXPECT(mmrec_interactions_read_inter(missing, 0, &x), MMREC_EIO, "No such file");
    MT_EXPECT(mmrec_interactions_read_lightgcn(mt_dir, &x), MMREC_EIO, "not a regular file");
    MT_EXPECT(mmrec_interactions_read_inter(mt_dir, -1, &x), MMREC_EIO, mt_dir);
    ck_assert_ptr_eq(x, (mmrec_interactions *)0x1);
    mt_tmp_clean();
}
END_TEST

/* ---- allocation failures ---- */

typedef struct mt_data_paths {
    char lightgcn[160], inter[160], long_line[160];
} mt_data_paths;

static mmrec_status mt_data_scenario(void *ctx) {
    const mt_data_paths *p = ctx;
    int64_t users[3] = {0, 1, 2}, items[3] = {2, 1, 0};
    mmrec_interactions *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    mmrec_status s;
    if ((s = mmrec_interactions_create(users, items, 3, &a)) != MMREC_OK) goto done;
    if ((s = mmrec_interactions_read_lightgcn(p->lightgcn, &b)) != MMREC_OK) goto done;
    if ((s = mmrec_interactions_read_inter(p->inter, 0, &c)) != MMREC_OK) goto done;
    if ((s = mmrec_interactions_read_lightgcn(p->long_line, &d)) != MMREC_OK) goto done;
    size_t n = 0;
    MT_OK(mmrec_interactions_info(b, NULL, NULL, &n));
    ck_assert_uint_eq(n, 5000);
    MT_OK(mmrec_interactions_info(d, NULL, NULL, &n));
    ck_assert_uint_eq(n, 300000);
done:
    mmrec_interactions_destroy(a);
    mmrec_interactions_destroy(b);
    mmrec_interactions_destroy(c);
    mmrec_interactions_destroy(d);
    return s;
}

START_TEST(test_data_oom_every_allocation_reports_enomem_without_leaks) {
    mt_tmp_dir();
    mt_data_paths p;
    snprintf(p.lightgcn, sizeof p.lightgcn, "%s", mt_file(0, "o.txt"));
    snprintf(p.inter, sizeof p.inter, "%s", mt_file(1, "o.inter"));
    snprintf(p.long_line, sizeof p.long_line, "%s", mt_file(2, "long.txt"));
    /* 5000 pairs: the pair arrays grow several times */
    FILE *f = fopen(p.lightgcn, "wb");
    ck_assert_ptr_nonnull(f);
    for (int user = 0; user < 500; user++) {
        fprintf(f, "%d", user);
        for (int k = 0; k < 10; k++) fprintf(f, " %d", (user + k) % 97);
        fputs("\n", f);
    }
    fclose(f);
    f = fopen(p.inter, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("userID\titemID\tx_label\n", f);
    for (int k = 0; k < 3000; k++) fprintf(f, "%d\t%d\t%d\n", k % 50, k % 70, k % 3);
    fclose(f);
    /* one line over the 1 MiB read buffer: the buffer grows */
    f = fopen(p.long_line, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("0", f);
    for (int k = 0; k < 300000; k++) fprintf(f, " %d", 100000 + k);
    fclose(f);
    ck_assert_int_gt(mt_oom_loop("data", mt_data_scenario, &p), 8);
    mt_tmp_clean();
}
END_TEST

/* ---- the Gowalla training file (skipped when absent) ---- */

START_TEST(test_data_gowalla_train_file) {
    const char *path = "/work/shared/data/gowalla/train.txt";
    if (access(path, R_OK) != 0) return;
    mmrec_interactions *x;
    MT_OK(mmrec_interactions_read_lightgcn(path, &x));
    int64_t nu, ni;
    size_t n;
    MT_OK(mmrec_interactions_info(x, &nu, &ni, &n));
    ck_assert_uint_eq(n, 810128);
    ck_assert_int_eq(nu, 29858);
    ck_assert_int_eq(ni, 40981);
    const int64_t *u, *i;
    MT_OK(mmrec_interactions_pairs(x, &u, &i));
    ck_assert_int_eq(u[0], 0);
    ck_assert_int_eq(u[n - 1], nu - 1);
    mmrec_interactions_destroy(x);
}
END_TEST

static Suite *data_suite(void) {
    Suite *s = suite_create("data");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_data_create_copies_pairs_and_sizes);
    tcase_add_test(api, test_data_bad_arguments_name_the_argument);
    suite_add_tcase(s, api);
    TCase *read = tcase_create("read");
    tcase_set_timeout(read, 60);
    tcase_add_test(read, test_data_lightgcn_users_without_items_repeats_tabs_crlf);
    tcase_add_test(read, test_data_lightgcn_lines_longer_than_the_buffer);
    tcase_add_test(read, test_data_inter_columns_in_any_order_and_splits);
    tcase_add_test(read, test_data_gowalla_train_file);
    suite_add_tcase(s, read);
    TCase *files = tcase_create("files");
    tcase_add_test(files, test_data_malformed_files_name_file_and_line);
    tcase_add_test(files, test_data_missing_file_or_directory_is_eio);
    suite_add_tcase(s, files);
    TCase *lc = tcase_create("lifecycle");
    tcase_set_timeout(lc, 60);
    tcase_add_test(lc, test_data_oom_every_allocation_reports_enomem_without_leaks);
    suite_add_tcase(s, lc);
    return s;
}
