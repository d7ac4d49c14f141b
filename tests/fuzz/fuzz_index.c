/* libFuzzer harness: serving index files, opened by mmrec_index_open() and
 * searched: a batch of two single-vector queries (one with an exclude list
 * and an allow list) and a two-vector MaxSim query. Every returned row must
 * be sorted by score, hold ids of the index only (-1 past the count) and
 * respect the exclude list; a failed open must report a message. Seeds:
 * tests/fuzz/corpus/index (make fuzz-corpus). */
#include "fuzz_common.h"

#include <math.h>

#define FUZZ_K 4

static fuzz_file file;

static void fuzz_teardown(void) { close(file.fd); }

static void fuzz_check_rows(const int64_t *ids, const float *scores, const size_t *counts,
                            size_t num_queries, int64_t num_items) {
    for (size_t q = 0; q < num_queries; q++) {
        FUZZ_REQUIRE(counts[q] <= FUZZ_K && counts[q] <= (size_t)num_items,
                     "query %zu: count %zu", q, counts[q]);
        for (size_t j = 0; j < FUZZ_K; j++) {
            int64_t id = ids[q * FUZZ_K + j];
            float s = scores[q * FUZZ_K + j];
            if (j >= counts[q]) {
                FUZZ_REQUIRE(id == -1 && isinf(s) && s < 0, "query %zu: slot %zu past the count",
                             q, j);
                continue;
            }
            FUZZ_REQUIRE(id >= 0, "query %zu: id %lld", q, (long long)id);
            if (j > 0) FUZZ_REQUIRE(!(s > scores[q * FUZZ_K + j - 1]), "query %zu unsorted", q);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (file.path[0] == '\0') {
        fuzz_file_init(&file, "index");
        atexit(fuzz_teardown);
    }
    const char *path = fuzz_file_set(&file, data, size);
    mmrec_index *index = NULL;
    if (!FUZZ_OK(mmrec_index_open(path, &index))) {
        FUZZ_REQUIRE(index == NULL, "a failed mmrec_index_open wrote its output");
        return 0;
    }
    int64_t num_items = 0, dim = 0, vectors = 0;
    mmrec_index_metric metric;
    mmrec_index_storage storage;
    FUZZ_MUST(mmrec_index_info(index, &num_items, &dim, &vectors, &metric, &storage));
    FUZZ_REQUIRE(num_items >= 1 && dim >= 1 && vectors >= 1, "info %lld %lld %lld",
                 (long long)num_items, (long long)dim, (long long)vectors);
    /* the file holds num_items * vectors * dim values: bounded by its size */
    size_t q_elems = 2 * (size_t)dim;
    float *queries = malloc(q_elems * sizeof *queries);
    FUZZ_REQUIRE(queries != NULL, "out of memory");
    for (size_t i = 0; i < q_elems; i++) queries[i] = (float)((int)(i % 7) - 3) * 0.25f;

    int64_t ids[2 * FUZZ_K];
    float scores[2 * FUZZ_K];
    size_t counts[2];
    mmrec_index_filter filters[2];
    FUZZ_MUST(mmrec_index_filter_init(&filters[0]));
    FUZZ_MUST(mmrec_index_filter_init(&filters[1]));
    static const int64_t exclude[2] = {0, 3}, allow[4] = {0, 1, 2, 3};
    filters[1].exclude = exclude;
    filters[1].num_exclude = 2;
    filters[1].allow = allow;
    filters[1].num_allow = 4;
    FUZZ_MUST(mmrec_index_search(index, queries, 2, dim, FUZZ_K, filters, ids, scores, counts));
    fuzz_check_rows(ids, scores, counts, 2, num_items);
    for (size_t j = 0; j < counts[1]; j++)
        FUZZ_REQUIRE(ids[FUZZ_K + j] == 1 || ids[FUZZ_K + j] == 2,
                     "filtered query returned id %lld", (long long)ids[FUZZ_K + j]);
    /* one query of two vectors (MaxSim) */
    FUZZ_MUST(mmrec_index_search_multi(index, queries, 1, 2, dim, FUZZ_K, NULL, ids, scores,
                                       counts));
    fuzz_check_rows(ids, scores, counts, 1, num_items);
    free(queries);

    /* a second handle on the same file, swapped in */
    mmrec_index *again = NULL;
    FUZZ_MUST(mmrec_index_open(path, &again));
    FUZZ_MUST(mmrec_index_refresh(index, again));
    mmrec_index_destroy(again);
    mmrec_index_destroy(index);
    return 0;
}
