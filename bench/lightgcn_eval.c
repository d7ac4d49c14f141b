/* Benchmark lightgcn_eval: full-ranking evaluation on Gowalla (29,858 test
 * users x 40,981 items, d = 64, Recall@20 / NDCG@20 with training items
 * masked) by mmrec_eval_full_ranking (its int8 screen where the CPU has
 * AVX-512 VNNI or AVX-VNNI, else its AVX-512 or AVX2 scorer, else BLAS:
 * metrics.h);
 * bench/lightgcn_eval.py has the PyTorch counterpart
 * (scores in user batches, torch.topk). Embeddings: N(0, 0.1) from a seeded
 * generator. The time depends on them only through the number of scores
 * that enter a user's running top K: about K (1 + ln(num_items / K)) per
 * user when the scores come in random order of item id, as here; more when
 * scores tend to grow with the id.
 * Data: $MMREC_GOWALLA, default ../shared/data/gowalla next to the project. */
#include "bench_util.h"

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 3;
    if (runs < 1 || runs > 1000) runs = 3;
    BENCH_CHECK(mmrec_set_num_threads(bench_threads()));
    const char *dir = getenv("MMREC_GOWALLA");
    char train_path[1024], test_path[1024];
    snprintf(train_path, sizeof train_path, "%s/train.txt",
             dir ? dir : MMREC_BENCH_DIR "/../../shared/data/gowalla");
    snprintf(test_path, sizeof test_path, "%s/test.txt",
             dir ? dir : MMREC_BENCH_DIR "/../../shared/data/gowalla");
    mmrec_interactions *train, *test;
    if (mmrec_interactions_read_lightgcn(train_path, &train) != MMREC_OK) {
        fprintf(stderr, "lightgcn_eval: skipped: %s\n", mmrec_last_error());
        return 0;
    }
    BENCH_CHECK(mmrec_interactions_read_lightgcn(test_path, &test));
    int64_t U, I;
    BENCH_CHECK(mmrec_interactions_info(train, &U, &I, NULL));
    const int64_t D = 64;
    float *emb = malloc((size_t)((U + I) * D) * sizeof *emb);
    mmrec_rng *rng;
    BENCH_CHECK(mmrec_rng_create(2020, &rng));
    BENCH_CHECK(mmrec_rng_normal(rng, 0.0f, 0.1f, emb, (size_t)((U + I) * D)));
    int ks[1] = {20};
    mmrec_rank_metrics m[1];
    m[0].struct_size = sizeof m[0];
    double *times = malloc((size_t)runs * sizeof *times);
    for (int r = -1; r < runs; r++) {
        double t0 = bench_now_ms();
        BENCH_CHECK(mmrec_eval_full_ranking(emb, emb + U * D, U, I, D, train, test, ks, 1, m));
        if (r >= 0) times[r] = bench_now_ms() - t0;
    }
    double c_ms = bench_median(times, runs);
    printf("lightgcn_eval: %lld users, recall@20=%.5f ndcg@20=%.5f (random embeddings)\n",
           (long long)m[0].users, m[0].recall, m[0].ndcg);
    int rc = bench_report("lightgcn_eval", c_ms, runs);
    free(times);
    free(emb);
    mmrec_rng_destroy(rng);
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
    return rc;
}
