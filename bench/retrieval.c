/* Benchmark retrieval: exact top-K search of mmrec_index (index.h) against
 * FAISS's IndexFlatIP and torch's matmul + topk, in one run.
 *
 * Items: NUM_ITEMS = 1,000,000 vectors of DIM = 64 N(0, 1) floats; queries:
 * NUM_QUERIES = 100 of the same; K = 100; inner product. Workloads:
 *   retrieval_batch100    the 100 queries in one call
 *   retrieval_single      one query per call (the serving case), float32
 *                         storage; retrieval_single_f16 the same over
 *                         float16 storage (FAISS has no exact float16 flat
 *                         index: the reference is its float32 search)
 *   retrieval_maxsim      MaxSim of 4 query vectors against 200,000 items
 *                         of 4 vectors each, one query per call: C only
 * The reference (bench/retrieval.py) is FAISS at 1 thread, 2 threads and
 * 2 threads with OMP_WAIT_POLICY=PASSIVE, and on an AVX-512 CPU each again
 * with OPENBLAS_CORETYPE=SkylakeX (unless the environment sets a core
 * type); each workload compares with the fastest setting (ref_setting=
 * says which; faiss1_ms= and faiss2_ms= are the best at each thread
 * count) and also prints torch's time there (torch_ms=). The C side uses the library's threads
 * (MMREC_BENCH_THREADS, default 2).
 *
 * The single-query lines also print the memory-bandwidth floor: the bytes
 * of the stored item matrix over the copy bandwidth measured here
 * (memcpy of a 512 MiB buffer, bytes copied per second; copy_gbs=), and
 * c_ms over that floor (floor_ratio=).
 *
 * Correctness: the C top-K of the batch is written with the data and the
 * reference compares it with FAISS's (ids_mismatched= counts positions
 * whose ids differ where the scores are not tied; max_score_rel_diff=).
 * Peak RSS of both sides: c_peak_rss_mib=, ref_peak_rss_mib=.
 * Usage: retrieval [runs] (default 5): the reference's timed runs; the C
 * side, cheaper, times three times as many (c_runs=). */
#include "bench_util.h"

#include <math.h>
#include <stdint.h>
#include <unistd.h>

#define NUM_ITEMS 1000000
#define DIM 64
#define NUM_QUERIES 100
#define K 100
#define MAXSIM_ITEMS 200000
#define MAXSIM_VECTORS 4

static float *random_floats(mmrec_rng *rng, size_t n) {
    float *v = malloc(n * sizeof *v);
    if (!v) {
        fprintf(stderr, "retrieval: out of memory\n");
        exit(1);
    }
    BENCH_CHECK(mmrec_rng_normal(rng, 0.0f, 1.0f, v, n));
    return v;
}

/* Median ms of `runs` calls of one batch search of nq queries. */
static double time_search(const mmrec_index *index, const float *queries, size_t nq,
                          int64_t qvectors, int runs, int64_t *ids, float *scores) {
    double *t = malloc((size_t)runs * sizeof *t);
    for (int r = -1; r < runs; r++) { /* one warm-up */
        double t0 = bench_now_ms();
        if (qvectors == 1)
            BENCH_CHECK(mmrec_index_search(index, queries, nq, DIM, K, NULL, ids, scores, NULL));
        else
            BENCH_CHECK(mmrec_index_search_multi(index, queries, nq, qvectors, DIM, K, NULL, ids,
                                                 scores, NULL));
        if (r >= 0) t[r] = bench_now_ms() - t0;
    }
    double m = bench_median(t, runs);
    free(t);
    return m;
}

/* Median ms of one query per call, over the nq queries, `runs` times. */
static double time_single(const mmrec_index *index, const float *queries, size_t nq,
                          int64_t qvectors, int runs, int64_t *ids, float *scores) {
    double *t = malloc((size_t)runs * sizeof *t);
    for (int r = -1; r < runs; r++) {
        double t0 = bench_now_ms();
        for (size_t q = 0; q < nq; q++) {
            const float *x = queries + q * (size_t)qvectors * DIM;
            if (qvectors == 1)
                BENCH_CHECK(mmrec_index_search(index, x, 1, DIM, K, NULL, ids, scores, NULL));
            else
                BENCH_CHECK(mmrec_index_search_multi(index, x, 1, qvectors, DIM, K, NULL, ids,
                                                     scores, NULL));
        }
        if (r >= 0) t[r] = (bench_now_ms() - t0) / (double)nq;
    }
    double m = bench_median(t, runs);
    free(t);
    return m;
}

/* Copy bandwidth in bytes per ms: the median of 5 memcpy of 512 MiB. */
static double copy_bandwidth(void) {
    size_t n = (size_t)512 << 20;
    char *a = malloc(n), *b = malloc(n);
    if (!a || !b) {
        fprintf(stderr, "retrieval: out of memory\n");
        exit(1);
    }
    memset(a, 1, n);
    memset(b, 2, n);
    double t[5];
    for (int r = 0; r < 5; r++) {
        double t0 = bench_now_ms();
        memcpy(r % 2 ? a : b, r % 2 ? b : a, n);
        t[r] = bench_now_ms() - t0;
    }
    volatile char sink = a[n / 2] + b[n / 3];
    (void)sink;
    free(a);
    free(b);
    return (double)n / bench_median(t, 5);
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 5, c_runs = 3 * runs;
    BENCH_CHECK(mmrec_set_num_threads(bench_threads()));
    mmrec_rng *rng;
    BENCH_CHECK(mmrec_rng_create(2024, &rng));
    float *items = random_floats(rng, (size_t)NUM_ITEMS * DIM);
    float *queries = random_floats(rng, (size_t)NUM_QUERIES * DIM);
    int64_t *ids = malloc((size_t)NUM_QUERIES * K * sizeof *ids);
    float *scores = malloc((size_t)NUM_QUERIES * K * sizeof *scores);

    mmrec_index_config cfg;
    BENCH_CHECK(mmrec_index_config_init(&cfg));
    mmrec_index *f32, *f16;
    BENCH_CHECK(mmrec_index_create(items, NULL, NUM_ITEMS, DIM, &cfg, &f32));
    cfg.storage = MMREC_INDEX_F16;
    BENCH_CHECK(mmrec_index_create(items, NULL, NUM_ITEMS, DIM, &cfg, &f16));

    double c_batch = time_search(f32, queries, NUM_QUERIES, 1, c_runs, ids, scores);
    /* the data and the batch's top-K for the reference */
    char path[] = "/tmp/mmrec_bench_retrieval_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    int64_t head[4] = {NUM_ITEMS, DIM, NUM_QUERIES, K};
    if (!f || fwrite(head, sizeof *head, 4, f) != 4 ||
        fwrite(items, sizeof *items, (size_t)NUM_ITEMS * DIM, f) != (size_t)NUM_ITEMS * DIM ||
        fwrite(queries, sizeof *queries, (size_t)NUM_QUERIES * DIM, f) !=
            (size_t)NUM_QUERIES * DIM ||
        fwrite(ids, sizeof *ids, (size_t)NUM_QUERIES * K, f) != (size_t)NUM_QUERIES * K ||
        fwrite(scores, sizeof *scores, (size_t)NUM_QUERIES * K, f) != (size_t)NUM_QUERIES * K ||
        fclose(f) != 0) {
        perror("retrieval: writing the data file");
        return 1;
    }
    double c_single = time_single(f32, queries, NUM_QUERIES, 1, c_runs, ids, scores);
    double c_single16 = time_single(f16, queries, NUM_QUERIES, 1, c_runs, ids, scores);
    mmrec_index_destroy(f16);
    mmrec_index_destroy(f32);
    free(items);

    /* MaxSim: 200k items of 4 vectors, queries of 4 vectors */
    float *mitems = random_floats(rng, (size_t)MAXSIM_ITEMS * MAXSIM_VECTORS * DIM);
    float *mqueries = random_floats(rng, (size_t)NUM_QUERIES * MAXSIM_VECTORS * DIM);
    mmrec_index *mx;
    BENCH_CHECK(mmrec_index_config_init(&cfg));
    cfg.vectors_per_item = MAXSIM_VECTORS;
    BENCH_CHECK(mmrec_index_create(mitems, NULL, MAXSIM_ITEMS, DIM, &cfg, &mx));
    free(mitems);
    double c_maxsim =
        time_single(mx, mqueries, NUM_QUERIES, MAXSIM_VECTORS, c_runs, ids, scores);
    mmrec_index_destroy(mx);
    free(mqueries);
    double c_rss = bench_peak_rss_mib();
    char f_batch[256], f_single[256], f_single16[256], f_maxsim[256];
    if (bench_c_fields("retrieval_batch100", c_batch, f_batch, sizeof f_batch) |
        bench_c_fields("retrieval_single", c_single, f_single, sizeof f_single) |
        bench_c_fields("retrieval_single_f16", c_single16, f_single16, sizeof f_single16) |
        bench_c_fields("retrieval_maxsim", c_maxsim, f_maxsim, sizeof f_maxsim)) {
        unlink(path);
        mmrec_rng_destroy(rng);
        free(queries);
        free(ids);
        free(scores);
        return 0;
    }
    double bw = copy_bandwidth();

    /* the reference at each setting: 1 thread, 2 threads, 2 threads with
     * OMP_WAIT_POLICY=PASSIVE; each also with OPENBLAS_CORETYPE=SkylakeX
     * on an AVX-512 CPU when the environment does not set a core type
     * (OpenBLAS 0.3.21 does not know recent Intel CPUs and would run
     * FAISS's products on a generic kernel) */
    enum { SETTINGS = 6 };
    static const char *const env_of[3] = {"MMREC_BENCH_FAISS_THREADS=1 ",
                                          "MMREC_BENCH_FAISS_THREADS=2 ",
                                          "MMREC_BENCH_FAISS_THREADS=2 OMP_WAIT_POLICY=PASSIVE "};
    static const char *const names[SETTINGS] = {"faiss1",         "faiss2",
                                                "faiss2_passive", "faiss1_skx",
                                                "faiss2_skx",     "faiss2_passive_skx"};
    __builtin_cpu_init();
    int n_settings = getenv("OPENBLAS_CORETYPE") == NULL && __builtin_cpu_supports("avx512f")
                         ? SETTINGS
                         : SETTINGS / 2;
    char line[SETTINGS][1024];
    double batch[SETTINGS], single[SETTINGS];
    int ok = 1;
    for (int s = 0; s < n_settings; s++) {
        char env[512], args[32];
        snprintf(env, sizeof env, "%s%sMMREC_BENCH_RETRIEVAL_DATA=%s ", env_of[s % 3],
                 s >= 3 ? "OPENBLAS_CORETYPE=SkylakeX " : "", path);
        snprintf(args, sizeof args, "%d", runs);
        if (bench_run_reference_env("retrieval.py", args, env, line[s], sizeof line[s]) != 0) {
            fprintf(stderr, "retrieval: the reference failed (python3-faiss installed?)\n");
            ok = 0;
            break;
        }
        batch[s] = bench_field(line[s], "faiss_batch_ms");
        single[s] = bench_field(line[s], "faiss_single_ms");
    }
    unlink(path);
    if (!ok) {
        printf("BENCH retrieval_batch100 c_ms=%.3f ref_ms=nan speedup=nan %s\n", c_batch,
               f_batch);
        return 1;
    }
    int bb = 0, bs = 0;
    double faiss1 = INFINITY, faiss2 = INFINITY;
    for (int s = 0; s < n_settings; s++) {
        if (s % 3 == 0) faiss1 = fmin(faiss1, batch[s]);
        else faiss2 = fmin(faiss2, batch[s]);
    }
    for (int s = 1; s < n_settings; s++) {
        if (batch[s] < batch[bb]) bb = s;
        if (single[s] < single[bs]) bs = s;
    }
    double floor32 = (double)NUM_ITEMS * DIM * 4 / bw, floor16 = floor32 / 2;
    const char *l = line[bb];
    printf("BENCH retrieval_batch100 c_ms=%.3f ref_ms=%.3f speedup=%.2f %s ref_setting=%s "
           "c_qps=%.0f ref_qps=%.0f torch_ms=%.3f faiss1_ms=%.3f faiss2_ms=%.3f "
           "ids_mismatched=%.0f max_score_rel_diff=%.2e threads=%d runs=%d c_runs=%d "
           "c_peak_rss_mib=%.1f ref_peak_rss_mib=%.1f\n",
           c_batch, batch[bb], batch[bb] / c_batch, f_batch, names[bb], NUM_QUERIES * 1e3 / c_batch,
           NUM_QUERIES * 1e3 / batch[bb], bench_field(l, "torch_batch_ms"),
           faiss1, faiss2,
           bench_field(l, "ids_mismatched"), bench_field(l, "max_score_rel_diff"),
           mmrec_get_num_threads(), runs, c_runs, c_rss, bench_field(l, "peak_rss_mib"));
    l = line[bs];
    printf("BENCH retrieval_single c_ms=%.4f ref_ms=%.4f speedup=%.2f %s ref_setting=%s "
           "torch_ms=%.4f floor_ms=%.4f floor_ratio=%.2f copy_gbs=%.2f storage=f32\n",
           c_single, single[bs], single[bs] / c_single, f_single, names[bs],
           bench_field(l, "torch_single_ms"), floor32, c_single / floor32, bw / 1e6);
    printf("BENCH retrieval_single_f16 c_ms=%.4f ref_ms=%.4f speedup=%.2f %s ref_setting=%s "
           "floor_ms=%.4f floor_ratio=%.2f copy_gbs=%.2f storage=f16 ref_storage=f32\n",
           c_single16, single[bs], single[bs] / c_single16, f_single16, names[bs], floor16,
           c_single16 / floor16, bw / 1e6);
    printf("BENCH retrieval_maxsim c_ms=%.4f ref_ms=nan speedup=nan %s items=%d vectors=%d "
           "query_vectors=%d\n",
           c_maxsim, f_maxsim, MAXSIM_ITEMS, MAXSIM_VECTORS, MAXSIM_VECTORS);
    mmrec_rng_destroy(rng);
    free(queries);
    free(ids);
    free(scores);
    return 0;
}
