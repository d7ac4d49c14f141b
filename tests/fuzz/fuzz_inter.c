/* libFuzzer harness: MMRec .inter files (TSV with a header naming userID,
 * itemID and x_label), read by mmrec_interactions_read_inter() whole and
 * split by split. A failed read must leave a message; the whole file must
 * read exactly when each split does, and its pair count be the sum of
 * theirs. Seeds: tests/fuzz/corpus/inter. */
#include "fuzz_data_check.h"

static fuzz_file file;

static void fuzz_teardown(void) { close(file.fd); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (file.path[0] == '\0') {
        fuzz_file_init(&file, "inter");
        atexit(fuzz_teardown);
    }
    const char *path = fuzz_file_set(&file, data, size);
    mmrec_interactions *x = NULL;
    int whole_ok = FUZZ_OK(mmrec_interactions_read_inter(path, -1, &x));
    size_t whole = whole_ok ? fuzz_check_interactions(x) : 0, parts = 0;
    FUZZ_REQUIRE(whole_ok || x == NULL, "a failed read wrote its output");
    mmrec_interactions_destroy(x);
    for (int split = 0; split <= 2; split++) {
        mmrec_interactions *y = NULL;
        int ok = FUZZ_OK(mmrec_interactions_read_inter(path, split, &y));
        FUZZ_REQUIRE(ok == whole_ok, "split %d read %s, the whole file %s", split,
                     ok ? "fine" : "failed", whole_ok ? "fine" : "failed");
        if (ok) parts += fuzz_check_interactions(y);
        mmrec_interactions_destroy(y);
    }
    FUZZ_REQUIRE(parts == whole, "splits hold %zu pairs, the file %zu", parts, whole);
    return 0;
}
