/* libFuzzer harness: feature cache files, opened by mmrec_cache_open(),
 * refreshed from the same file, and read through every query and gather:
 * each field's info and shape, flat gathers (tape and caller memory, with
 * the missing-id flag and a presence mask) and layered gathers (every
 * layer, the first and the last). Ids present in the presence mask must
 * then gather without the flag, and an open must report a message when it
 * fails. Seeds: tests/fuzz/corpus/cache (make fuzz-corpus). */
#include "fuzz_common.h"

#define FUZZ_N_IDS 6
static const int64_t fuzz_ids[FUZZ_N_IDS] = {0, 1, 3, 10, 42, INT64_MAX};

static fuzz_file file;
static mmrec_tape *tape;

static void fuzz_teardown(void) {
    mmrec_tape_destroy(tape);
    close(file.fd);
}

static void fuzz_field(const mmrec_cache *cache, const char *name, int64_t dim) {
    int64_t layers = 0, width = 0;
    FUZZ_MUST(mmrec_cache_field_shape(cache, name, &layers, &width));
    FUZZ_REQUIRE(layers >= 1 && width >= 1 && layers * width == dim,
                 "field '%s': shape [%lld, %lld] for dim %lld", name, (long long)layers,
                 (long long)width, (long long)dim);

    mmrec_tensor *out = NULL, *presence = NULL;
    FUZZ_MUST(mmrec_cache_gather_ex(cache, tape, name, fuzz_ids, FUZZ_N_IDS,
                                    MMREC_CACHE_MISSING_ZERO, &out, &presence));
    const float *mask = NULL;
    FUZZ_MUST(mmrec_tensor_data_const(presence, &mask));
    int64_t present[FUZZ_N_IDS];
    size_t n_present = 0;
    for (size_t i = 0; i < FUZZ_N_IDS; i++) {
        FUZZ_REQUIRE(mask[i] == 0.0f || mask[i] == 1.0f, "presence %g", (double)mask[i]);
        if (mask[i] == 1.0f) present[n_present++] = fuzz_ids[i];
    }
    if (n_present > 0) {
        FUZZ_MUST(mmrec_cache_gather(cache, tape, name, present, n_present, &out));
        size_t elems = n_present * (size_t)dim;
        float *dst = malloc(elems * sizeof *dst);
        FUZZ_REQUIRE(dst != NULL, "out of memory");
        FUZZ_MUST(mmrec_cache_gather_into(cache, name, present, n_present, 0, dst, NULL));
        free(dst);

        FUZZ_MUST(mmrec_cache_gather_layers(cache, tape, name, present, n_present, NULL, &out,
                                            NULL));
        mmrec_cache_gather_config cfg;
        FUZZ_MUST(mmrec_cache_gather_config_init(&cfg));
        int64_t keep[2] = {0, layers - 1};
        cfg.keep = keep;
        cfg.n_keep = layers > 1 ? 2 : 1;
        FUZZ_MUST(mmrec_cache_gather_layers(cache, tape, name, present, n_present, &cfg, &out,
                                            NULL));
        float *rows = malloc(n_present * cfg.n_keep * (size_t)width * sizeof *rows);
        FUZZ_REQUIRE(rows != NULL, "out of memory");
        FUZZ_MUST(mmrec_cache_gather_layers_into(cache, name, present, n_present, &cfg, rows,
                                                 NULL));
        free(rows);
    }
    /* an id the cache lacks is an error without the flag */
    if (n_present < FUZZ_N_IDS)
        FUZZ_REQUIRE(!FUZZ_OK(mmrec_cache_gather(cache, tape, name, fuzz_ids, FUZZ_N_IDS, &out)),
                     "field '%s': gather of a missing id succeeded", name);
    mmrec_tape_reset(tape);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (tape == NULL) {
        FUZZ_MUST(mmrec_tape_create(&tape));
        fuzz_file_init(&file, "cache");
        atexit(fuzz_teardown);
    }
    const char *path = fuzz_file_set(&file, data, size);
    mmrec_cache *cache = NULL;
    if (!FUZZ_OK(mmrec_cache_open(path, &cache))) {
        FUZZ_REQUIRE(cache == NULL, "a failed mmrec_cache_open wrote its output");
        return 0;
    }
    /* the same file again, through the hot swap */
    FUZZ_MUST(mmrec_cache_refresh(cache, NULL));
    int64_t n_items = 0;
    int n_fields = 0;
    FUZZ_MUST(mmrec_cache_num_items(cache, &n_items));
    FUZZ_MUST(mmrec_cache_num_fields(cache, &n_fields));
    FUZZ_REQUIRE(n_items >= 0 && n_fields >= 0, "%lld items, %d fields", (long long)n_items,
                 n_fields);
    for (int f = 0; f < n_fields; f++) {
        const char *name = NULL;
        int64_t dim = 0, dim2 = 0;
        mmrec_cache_dtype dtype;
        FUZZ_MUST(mmrec_cache_field_info(cache, f, &name, &dim, &dtype));
        FUZZ_REQUIRE(name != NULL && dim >= 1, "field %d: dim %lld", f, (long long)dim);
        FUZZ_MUST(mmrec_cache_field_dim(cache, name, &dim2));
        /* a repeated name finds the first field of that name */
        if (dim2 == dim) fuzz_field(cache, name, dim);
    }
    FUZZ_REQUIRE(!FUZZ_OK(mmrec_cache_field_info(cache, n_fields, NULL, NULL, NULL)),
                 "field_info past the last field succeeded");
    mmrec_cache_close(cache);
    return 0;
}
