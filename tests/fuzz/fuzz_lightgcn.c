/* libFuzzer harness: LightGCN / NGCF text files ("user item item ..."),
 * read by mmrec_interactions_read_lightgcn(). A failed read must leave a
 * message; a successful one an object whose pairs lie inside its id
 * ranges. Seeds: tests/fuzz/corpus/lightgcn. */
#include "fuzz_data_check.h"

static fuzz_file file;

static void fuzz_teardown(void) { close(file.fd); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (file.path[0] == '\0') {
        fuzz_file_init(&file, "lightgcn");
        atexit(fuzz_teardown);
    }
    const char *path = fuzz_file_set(&file, data, size);
    mmrec_interactions *x = NULL;
    if (!FUZZ_OK(mmrec_interactions_read_lightgcn(path, &x))) {
        FUZZ_REQUIRE(x == NULL, "a failed read wrote its output");
        return 0;
    }
    (void)fuzz_check_interactions(x);
    mmrec_interactions_destroy(x);
    return 0;
}
