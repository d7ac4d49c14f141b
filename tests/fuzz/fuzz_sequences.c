/* libFuzzer harness: IISAN's TSV files, read by mmrec_sequences_read_tsv().
 * The input holds both files: the items file up to the first NUL byte, the
 * users file after it (no NUL: an empty users file). Each pair is read with
 * the default lengths and with min_length 3 and whole sequences. A failed
 * read must leave a message; a successful one an object whose every
 * accessor works: sequences of valid length over items 1 .. num_items,
 * names and titles, training counts summing to the training parts, and
 * the interactions of each part. Seeds: tests/fuzz/corpus/sequences. */
#include "fuzz_common.h"

static fuzz_file items_file, users_file;

static void fuzz_teardown(void) {
    close(items_file.fd);
    close(users_file.fd);
}

static void fuzz_check(const mmrec_sequences *s, const mmrec_sequences_config *cfg) {
    int64_t num_users = -1, num_items = -1;
    size_t count = 0, total = 0, train = 0;
    FUZZ_MUST(mmrec_sequences_info(s, &num_users, &num_items, &count));
    FUZZ_REQUIRE(num_users >= 0 && num_items >= 0, "ranges %lld %lld", (long long)num_users,
                 (long long)num_items);
    for (int64_t u = 0; u < num_users; u++) {
        const int64_t *items = NULL;
        size_t len = 0;
        const char *name = NULL;
        FUZZ_MUST(mmrec_sequences_user(s, u, &items, &len));
        FUZZ_REQUIRE(len >= 3 && len >= (size_t)cfg->min_length &&
                         (cfg->max_length == 0 || len <= (size_t)cfg->max_length),
                     "user %lld: length %zu", (long long)u, len);
        for (size_t j = 0; j < len; j++)
            FUZZ_REQUIRE(items[j] >= 1 && items[j] <= num_items, "user %lld: item %lld",
                         (long long)u, (long long)items[j]);
        FUZZ_MUST(mmrec_sequences_user_name(s, u, &name));
        FUZZ_REQUIRE(name != NULL && name[0] != '\0', "user %lld: empty name", (long long)u);
        total += len;
        train += len - 2;
    }
    FUZZ_REQUIRE(total == count, "sequences hold %zu items, info says %zu", total, count);
    for (int64_t i = 1; i <= num_items; i++) {
        const char *asin = NULL, *title = NULL;
        FUZZ_MUST(mmrec_sequences_item(s, i, &asin, &title));
        FUZZ_REQUIRE(asin[0] != '\0' && title[0] != '\0', "item %lld: empty id or title",
                     (long long)i);
    }
    FUZZ_REQUIRE(!FUZZ_OK(mmrec_sequences_item(s, num_items + 1, NULL, NULL)),
                 "item past the last succeeded");
    const int64_t *counts = NULL;
    FUZZ_MUST(mmrec_sequences_train_counts(s, &counts));
    size_t counted = 0;
    for (int64_t i = 0; i <= num_items; i++) counted += (size_t)counts[i];
    FUZZ_REQUIRE(counts[0] == 0 && counted == train, "training counts sum to %zu, expected %zu",
                 counted, train);
    static const uint32_t parts[3] = {MMREC_SEQUENCES_TRAIN, MMREC_SEQUENCES_VALID,
                                      MMREC_SEQUENCES_TEST};
    for (int p = 0; p < 3; p++) {
        mmrec_interactions *x = NULL;
        size_t n = 0;
        FUZZ_MUST(mmrec_sequences_interactions(s, parts[p], &x));
        FUZZ_MUST(mmrec_interactions_info(x, NULL, NULL, &n));
        FUZZ_REQUIRE(n == (p == 0 ? train : (size_t)num_users), "part %d: %zu pairs", p, n);
        mmrec_interactions_destroy(x);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (items_file.path[0] == '\0') {
        fuzz_file_init(&items_file, "items");
        fuzz_file_init(&users_file, "users");
        atexit(fuzz_teardown);
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t items_size = nul ? (size_t)(nul - data) : size;
    const char *items_path = fuzz_file_set(&items_file, data, items_size);
    const char *users_path = fuzz_file_set(&users_file, data + items_size + (nul ? 1 : 0),
                                           size - items_size - (nul ? 1 : 0));
    mmrec_sequences_config cfgs[2];
    FUZZ_MUST(mmrec_sequences_config_init(&cfgs[0]));
    FUZZ_MUST(mmrec_sequences_config_init(&cfgs[1]));
    cfgs[1].min_length = 3;
    cfgs[1].max_length = 0;
    for (int c = 0; c < 2; c++) {
        mmrec_sequences *s = NULL;
        if (!FUZZ_OK(mmrec_sequences_read_tsv(items_path, users_path, &cfgs[c], &s))) {
            FUZZ_REQUIRE(s == NULL, "a failed read wrote its output");
            continue;
        }
        fuzz_check(s, &cfgs[c]);
        mmrec_sequences_destroy(s);
    }
    return 0;
}
