/* mpi_lightgcn: LightGCN (examples/lightgcn.c: the same data, model, loss
 * and schedule) trained data-parallel over MPI with libmmrec_mpi.
 *
 * Every rank reads the data, builds the graph of all training pairs and
 * the same model; rank 0's initial embeddings are broadcast. The training
 * pairs are split by rank (pair k goes to rank k mod ranks): each rank
 * draws its BPR triples from its share (negatives rejected against all of
 * the user's training items), runs forward and backward on its batch with
 * the mean loss, and mmrec_mpi_dp_average_grads() makes every gradient the
 * mean over the ranks before the Adam step: one step on N ranks of B
 * triples each is one step on N * B triples. An epoch has as many triples
 * over all ranks as there are training pairs. Rank 0 evaluates Recall@20
 * and NDCG@20 over all items.
 *
 * LightGCN's embedding table is a dense parameter: its gradient after
 * K = 3 hops of the graph reaches most rows (the first step prints how
 * many), so it travels in the dense flat buffer; an Embedding's table
 * read by row gathers would travel as rows.
 *
 * Usage: mpirun -np N mpi_lightgcn <data dir> [--epochs N] [--batch B]
 *            [--lr LR] [--constant-lr | --cosine] [--eval-every N]
 *            [--patience P] [--no-early-stop] [--valid] [--seed S]
 *            [--threads T]
 *   The data layouts, masks, early stopping and schedules are
 *   examples/lightgcn's (rank 0 evaluates and decides when to stop);
 *   --batch is per rank (default 8192 / N, at least 1024); --threads is
 *   the library's thread count per rank (default: the online cores divided
 *   by the ranks on this machine, at least 1). With -np 1 it trains exactly
 *   as examples/lightgcn with --batch 8192.
 * Progress on stderr; the last line on stdout is
 * RESULT mpi_lightgcn ranks=... recall@20=... ndcg@20=... step_ms=...
 * ... best_epoch=... split=test|valid
 * with step_ms the median wall time of a training step on rank 0
 * (sampling, forward, backward, gradient exchange, Adam), wait_ms the
 * median wait for the slowest rank (a barrier before the exchange, for the
 * measurement) and exchange_ms the median mmrec_mpi_dp_average_grads(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mmrec/mmrec.h>

#include "../../examples/example_util.h"
#include "../../examples/lightgcn_data.h"
#include "mmrec_mpi.h"

#define DIM 64
#define LAYERS 3
#define L2 1e-4f

/* Exits every rank with the failed call and libmmrec_mpi's message. */
#define CHECK_MPI(call)                                                               \
    do {                                                                              \
        mmrec_status s_ = (call);                                                     \
        if (s_ != MMREC_OK) {                                                         \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call, \
                    mmrec_status_name(s_), mmrec_mpi_last_error());                   \
            MPI_Abort(MPI_COMM_WORLD, 1);                                             \
        }                                                                             \
    } while (0)

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    MPI_Init(&argc, &argv);
    int rank, ranks, local_ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local_ranks);
    MPI_Comm_free(&node);
    if (argc < 2) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np N %s <data dir> [--epochs N] [--batch B] "
                            "[--lr LR] [--constant-lr | --cosine] [--eval-every N] "
                            "[--patience P] [--no-early-stop] [--valid] [--seed S] "
                            "[--threads T]\n",
                    argv[0]);
        MPI_Finalize();
        return 2;
    }
    const char *dir = argv[1];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    lgcn_options o = {.epochs = 350, .eval_every = 10, .patience = 5, .cosine = -1,
                      .lr = 2e-2f, .seed = 2020};
    o.threads = cores / local_ranks >= 1 ? (int)(cores / local_ranks) : 1;
    o.batch = 8192 / (size_t)ranks >= 1024 ? 8192 / (size_t)ranks : 1024;
    if (lgcn_parse_options(argc, argv, &o, NULL, rank == 0 ? stderr : NULL) != 0) {
        MPI_Finalize();
        return 2;
    }
    CHECK(mmrec_set_num_threads(o.threads));

    lgcn_data d;
    lgcn_data_open(dir, o.use_valid, rank == 0 ? stderr : NULL, &d);
    int early = d.valid != NULL && !o.no_early_stop;
    if (o.cosine < 0) o.cosine = !early;
    size_t batch = o.batch;
    const char *split = d.report == d.valid ? "valid" : "test";
    int64_t U = d.num_users, I = d.num_items;
    size_t n_train = d.n_train, n_report;
    CHECK(mmrec_interactions_info(d.report, NULL, NULL, &n_report));
    const int64_t *pu, *pi;
    CHECK(mmrec_interactions_pairs(d.train, &pu, &pi));
    mmrec_graph *g;
    CHECK(mmrec_graph_create_bipartite(pu, pi, n_train, U, I, &g));
    user_lists all, mine;
    build_lists(pu, pi, n_train, U, &all);
    /* this rank's share of the training pairs */
    size_t n_mine = 0;
    int64_t *mu = xmalloc(n_train * sizeof *mu), *mi = xmalloc(n_train * sizeof *mi);
    for (size_t k = (size_t)rank; k < n_train; k += (size_t)ranks, n_mine++) {
        mu[n_mine] = pu[k];
        mi[n_mine] = pi[k];
    }
    build_lists(mu, mi, n_mine, U, &mine);
    free(mu);
    free(mi);
    if (rank == 0) {
        printf("mpi_lightgcn: %s, %lld users, %lld items, %zu train / %zu %s interactions\n",
               dir, (long long)U, (long long)I, n_train, n_report, split);
        lgcn_data_describe(&d, stdout);
        printf("ranks=%d d=%d layers=%d batch=%zu per rank (%zu per step) lr=%g (%s) l2=%g "
               "epochs=%d seed=%llu threads=%d per rank\n",
               ranks, DIM, LAYERS, batch, batch * (size_t)ranks, (double)o.lr,
               o.cosine ? "cosine decay" : "constant", (double)L2, o.epochs,
               (unsigned long long)o.seed, mmrec_get_num_threads());
        lgcn_describe_early_stop(&d, &o, early);
    }

    mmrec_model *model;
    mmrec_tensor *ego;
    mmrec_rng *rng;
    mmrec_optimizer *opt;
    lgcn_model_create(U + I, DIM, o.seed, o.lr, &model, &ego, &rng, &opt);
    /* rank 0 samples on from there (as examples/lightgcn does), the others
     * from their own seeds */
    if (rank > 0) CHECK(mmrec_rng_seed(rng, o.seed + 0x9e3779b97f4a7c15ull * (uint64_t)rank));
    mmrec_tape *tape;
    CHECK(mmrec_tape_create(&tape));
    mmrec_mpi_dp *dp;
    CHECK_MPI(mmrec_mpi_dp_create(model, MPI_COMM_WORLD, &dp));
    CHECK_MPI(mmrec_mpi_dp_broadcast_params(dp));
    early_stop es, *selection = NULL; /* rank 0's; NULL: a fixed schedule */
    if (rank == 0 && early) early_stop_init(selection = &es, model, o.patience);
    lgcn_run run = {model, tape, g, ego, LAYERS, DIM};

    int64_t *ids = xmalloc(3 * batch * sizeof *ids);
    size_t steps = (n_train + batch * (size_t)ranks - 1) / (batch * (size_t)ranks);
    double *step_s = xmalloc((size_t)o.epochs * steps * sizeof *step_s);
    double *sync_s = xmalloc((size_t)o.epochs * steps * sizeof *sync_s);
    double *wait_s = xmalloc((size_t)o.epochs * steps * sizeof *wait_s);
    size_t n_timed = 0;
    double t_start = now(), recall = 0, ndcg = 0;
    int epoch = 0, stop = 0;
    while (epoch < o.epochs && !stop) {
        epoch++;
        double t0 = now(), loss_sum = 0;
        lgcn_schedule(opt, &o, epoch);
        for (size_t s = 0; s < steps; s++) {
            double ts = now();
            sample(&mine, &all, U, I, rng, batch, ids);
            mmrec_tensor *bpr, *loss;
            bpr_step_loss(tape, g, ego, LAYERS, ids, batch, L2, &bpr, &loss);
            float value;
            CHECK(mmrec_tensor_copy_to(bpr, &value, 1));
            loss_sum += value;
            CHECK(mmrec_tape_backward(tape, loss));
            if (rank == 0 && epoch == 1 && s == 0) { /* how dense is LightGCN's gradient? */
                const float *gr;
                CHECK(mmrec_tensor_grad(ego, &gr));
                int64_t nonzero = 0;
                for (int64_t r = 0; r < U + I; r++)
                    for (int c = 0; c < DIM; c++)
                        if (gr[r * DIM + c] != 0.0f) {
                            nonzero++;
                            break;
                        }
                fprintf(stderr, "  the first step's gradient is non-zero in %lld of %lld rows\n",
                        (long long)nonzero, (long long)(U + I));
            }
            /* the wait for the slowest rank, then the exchange itself */
            double tw = now();
            MPI_Barrier(MPI_COMM_WORLD);
            double tx = now();
            CHECK_MPI(mmrec_mpi_dp_average_grads(dp));
            wait_s[n_timed] = tx - tw;
            sync_s[n_timed] = now() - tx;
            CHECK(mmrec_optimizer_step(opt));
            mmrec_tape_reset(tape);
            step_s[n_timed++] = now() - ts;
        }
        double total_loss = 0;
        MPI_Allreduce(&loss_sum, &total_loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (rank == 0) {
            size_t dense_bytes, sparse_rows;
            CHECK_MPI(mmrec_mpi_dp_traffic(dp, &dense_bytes, &sparse_rows, NULL));
            fprintf(stderr, "  epoch %d: %zu steps, loss %.5f, %.1f s, %.1f MB dense and %zu "
                            "table rows sent per step and rank\n",
                    epoch, steps, total_loss / (double)(steps * (size_t)ranks), now() - t0,
                    (double)dense_bytes / 1e6, sparse_rows);
        }
        if (rank == 0 && (epoch % o.eval_every == 0 || epoch == o.epochs))
            stop = lgcn_eval_epoch(&d, &run, selection, epoch,
                                   total_loss / (double)(steps * (size_t)ranks), t_start, &recall,
                                   &ndcg);
        if (early) MPI_Bcast(&stop, 1, MPI_INT, 0, MPI_COMM_WORLD);
    }
    int best_epoch = epoch;
    if (rank == 0) best_epoch = lgcn_report(&d, &run, selection, epoch, &recall, &ndcg);
    double step_ms = 1e3 * median(step_s, n_timed), sync_ms = 1e3 * median(sync_s, n_timed);
    double wait_ms = 1e3 * median(wait_s, n_timed);
    if (rank == 0) {
        fprintf(stderr, "  median step %.1f ms: %.1f ms waiting for the other ranks, %.1f ms "
                        "exchanging gradients\n",
                step_ms, wait_ms, sync_ms);
        printf("RESULT mpi_lightgcn ranks=%d recall@20=%.4f ndcg@20=%.4f step_ms=%.1f "
               "wait_ms=%.1f exchange_ms=%.1f batch=%zu threads=%d epochs=%d seconds=%.0f "
               "best_epoch=%d split=%s\n",
               ranks, recall, ndcg, step_ms, wait_ms, sync_ms, batch, mmrec_get_num_threads(),
               epoch, now() - t_start, best_epoch, split);
    }
    mmrec_mpi_dp_destroy(dp);
    free(ids);
    free(step_s);
    free(sync_s);
    free(wait_s);
    if (selection) early_stop_free(selection);
    free_lists(&all);
    free_lists(&mine);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(model);
    mmrec_rng_destroy(rng);
    mmrec_graph_destroy(g);
    lgcn_data_close(&d);
    MPI_Finalize();
    return 0;
}
