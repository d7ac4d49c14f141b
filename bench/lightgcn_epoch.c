/* Benchmark lightgcn_epoch: LightGCN training batches on Gowalla, the
 * workload of bench/lightgcn_epoch.py (its PyTorch counterpart): per batch
 * of 2048 (user, positive, negative) triples, the 3-layer propagation of
 * the [users + items, 64] ego embeddings with layer mean read at the batch
 * rows (mmrec_lightgcn_rows: the last hop forward and the first hop
 * backward touch only what the batch reaches; PyTorch propagates in full),
 * BPR + 1e-4 / 2 (|e_u|^2 + |e_i|^2 + |e_j|^2) / batch on the ego rows,
 * backward and Adam (lr 1e-3). Triples are drawn before the timed region.
 * A fixed number of batches is timed and the epoch (396 batches) scaled
 * from their median. Data: $MMREC_GOWALLA, default ../shared/data/gowalla
 * next to the project. */
#include "bench_util.h"

#define D 64
#define BATCH 2048

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 10;
    if (runs < 1 || runs > 10000) runs = 10;
    BENCH_CHECK(mmrec_set_num_threads(bench_threads()));
    const char *dir = getenv("MMREC_GOWALLA");
    char path[1024];
    snprintf(path, sizeof path, "%s/train.txt",
             dir ? dir : MMREC_BENCH_DIR "/../../shared/data/gowalla");
    mmrec_interactions *train;
    if (mmrec_interactions_read_lightgcn(path, &train) != MMREC_OK) {
        fprintf(stderr, "lightgcn_epoch: skipped: %s\n", mmrec_last_error());
        return 0;
    }
    int64_t U, I;
    size_t n;
    const int64_t *pu, *pi;
    BENCH_CHECK(mmrec_interactions_info(train, &U, &I, &n));
    BENCH_CHECK(mmrec_interactions_pairs(train, &pu, &pi));
    mmrec_graph *g;
    BENCH_CHECK(mmrec_graph_create_bipartite(pu, pi, n, U, I, &g));
    mmrec_model *model;
    BENCH_CHECK(mmrec_model_create(&model));
    int64_t shape[2] = {U + I, D};
    mmrec_tensor *ego;
    float *ego_data;
    BENCH_CHECK(mmrec_model_add_param(model, "embedding", 2, shape, &ego));
    BENCH_CHECK(mmrec_tensor_data(ego, &ego_data));
    mmrec_rng *rng;
    BENCH_CHECK(mmrec_rng_create(2020, &rng));
    BENCH_CHECK(mmrec_rng_normal(rng, 0.0f, 0.1f, ego_data, (size_t)((U + I) * D)));
    mmrec_optimizer_config oc;
    BENCH_CHECK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = 1e-3f;
    mmrec_optimizer *opt;
    BENCH_CHECK(mmrec_optimizer_create(model, &oc, &opt));
    mmrec_tape *tape;
    BENCH_CHECK(mmrec_tape_create(&tape));
    /* triples: a uniform pair's user and item (every user has items), a
     * uniform negative (training pairs are 2% of all: rejections are rare
     * and do not change the cost) */
    int warm = 2, total = warm + runs;
    int64_t *ids = malloc((size_t)total * 3 * BATCH * sizeof *ids);
    for (int b = 0; b < total; b++) {
        int64_t *t = ids + (size_t)b * 3 * BATCH;
        for (int k = 0; k < BATCH; k++) {
            uint64_t p, neg;
            BENCH_CHECK(mmrec_rng_below(rng, n, &p));
            BENCH_CHECK(mmrec_rng_below(rng, (uint64_t)I, &neg));
            t[k] = pu[p];
            t[BATCH + k] = U + pi[p];
            t[2 * BATCH + k] = U + (int64_t)neg;
        }
    }
    double *times = malloc((size_t)runs * sizeof *times);
    for (int b = 0; b < total; b++) {
        const int64_t *t = ids + (size_t)b * 3 * BATCH;
        double t0 = bench_now_ms();
        mmrec_tensor *rows, *ur, *pr, *nr, *prod, *ps, *ns, *bpr, *er, *sq, *reg, *loss;
        BENCH_CHECK(mmrec_lightgcn_rows(tape, g, ego, 3, NULL, t, 3 * BATCH, &rows));
        BENCH_CHECK(mmrec_slice(tape, rows, 0, 0, BATCH, &ur));
        BENCH_CHECK(mmrec_slice(tape, rows, 0, BATCH, BATCH, &pr));
        BENCH_CHECK(mmrec_slice(tape, rows, 0, 2 * BATCH, BATCH, &nr));
        BENCH_CHECK(mmrec_mul(tape, ur, pr, &prod));
        BENCH_CHECK(mmrec_sum(tape, prod, 1, &ps));
        BENCH_CHECK(mmrec_mul(tape, ur, nr, &prod));
        BENCH_CHECK(mmrec_sum(tape, prod, 1, &ns));
        BENCH_CHECK(mmrec_loss_bpr(tape, ps, ns, &bpr));
        BENCH_CHECK(mmrec_gather_rows(tape, ego, t, 3 * BATCH, &er));
        BENCH_CHECK(mmrec_mul(tape, er, er, &sq));
        BENCH_CHECK(mmrec_sum(tape, sq, MMREC_AXIS_ALL, &reg));
        BENCH_CHECK(mmrec_scale(tape, reg, 0.5f * 1e-4f / BATCH, &reg));
        BENCH_CHECK(mmrec_add(tape, bpr, reg, &loss));
        BENCH_CHECK(mmrec_tape_backward(tape, loss));
        BENCH_CHECK(mmrec_optimizer_step(opt));
        mmrec_tape_reset(tape);
        if (b >= warm) times[b - warm] = bench_now_ms() - t0;
    }
    double c_ms = bench_median(times, runs);
    size_t per_epoch = (n + BATCH - 1) / BATCH;
    printf("lightgcn_epoch: median of %d batches of %d, scaled to an epoch of %zu batches: "
           "C %.1f s\n",
           runs, BATCH, per_epoch, c_ms * (double)per_epoch / 1e3);
    int rc = bench_report("lightgcn_epoch", c_ms, runs);
    free(ids);
    free(times);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(model);
    mmrec_rng_destroy(rng);
    mmrec_graph_destroy(g);
    mmrec_interactions_destroy(train);
    return rc;
}
