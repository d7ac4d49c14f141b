/* libFuzzer harness: numpy .npy files, read by the feature-cache writer
 * (mmrec_cache_writer_add_npy) for a cache of 4 items, as float32 and as
 * float16; a cache that takes a field is committed, opened and gathered
 * from, and the gathered rows must be finite (the writer rejects NaN and
 * infinity). A failed add must leave a message and the writer usable.
 * Seeds: tests/fuzz/corpus/npy (make fuzz-corpus). */
#include "fuzz_common.h"

#include <math.h>

#define FUZZ_ITEMS 4
static const int64_t fuzz_ids[FUZZ_ITEMS] = {5, 0, 2, 9};

static fuzz_file file;
static char cache_path[256];

static void fuzz_teardown(void) {
    unlink(cache_path);
    close(file.fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (cache_path[0] == '\0') {
        fuzz_file_init(&file, "npy");
        fuzz_scratch_path(cache_path, sizeof cache_path, "npy.mmfc");
        atexit(fuzz_teardown);
    }
    const char *path = fuzz_file_set(&file, data, size);
    mmrec_cache_writer *w = NULL;
    FUZZ_MUST(mmrec_cache_writer_create(cache_path, fuzz_ids, FUZZ_ITEMS, &w));
    int added = 0;
    added += FUZZ_OK(mmrec_cache_writer_add_npy(w, "f32", MMREC_CACHE_F32, path));
    added += FUZZ_OK(mmrec_cache_writer_add_npy(w, "f16", MMREC_CACHE_F16, path));
    if (added == 0) {
        /* the failed adds left the writer as it was: a plain field fits */
        static const float rows[FUZZ_ITEMS] = {1, 2, 3, 4};
        FUZZ_MUST(mmrec_cache_writer_add(w, "plain", MMREC_CACHE_F32, rows, 1));
        mmrec_cache_writer_destroy(w);
        return 0;
    }
    FUZZ_MUST(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);

    mmrec_cache *cache = NULL;
    FUZZ_MUST(mmrec_cache_open(cache_path, &cache));
    int n_fields = 0;
    FUZZ_MUST(mmrec_cache_num_fields(cache, &n_fields));
    FUZZ_REQUIRE(n_fields == added, "%d fields after %d adds", n_fields, added);
    for (int f = 0; f < n_fields; f++) {
        const char *name = NULL;
        int64_t dim = 0;
        FUZZ_MUST(mmrec_cache_field_info(cache, f, &name, &dim, NULL));
        float *dst = malloc((size_t)dim * FUZZ_ITEMS * sizeof *dst);
        FUZZ_REQUIRE(dst != NULL, "out of memory");
        FUZZ_MUST(mmrec_cache_gather_into(cache, name, fuzz_ids, FUZZ_ITEMS, 0, dst, NULL));
        for (size_t i = 0; i < (size_t)dim * FUZZ_ITEMS; i++)
            FUZZ_REQUIRE(isfinite(dst[i]), "field '%s' element %zu is %g", name, i,
                         (double)dst[i]);
        free(dst);
    }
    mmrec_cache_close(cache);
    return 0;
}
