/* lightgcn: LightGCN (He et al., SIGIR 2020) trained with BPR on a
 * LightGCN-format data set (Gowalla's split by default), evaluated by full
 * ranking.
 *
 *   E = mean_k A_hat^k E0 over K = 3 layers, read at the batch's rows
 *   (mmrec_lightgcn_rows, one op),
 *   BPR over (user, positive, uniform negative) triples, plus
 *   L2 = lambda / 2 (|E0_u|^2 + |E0_i|^2 + |E0_j|^2) / batch on the ego rows,
 *   Adam; Recall@20 and NDCG@20 over all items with known items masked.
 *
 * Usage: lightgcn <data dir> [--epochs N] [--batch B] [--lr LR]
 *                 [--constant-lr | --cosine] [--eval-every N] [--patience P]
 *                 [--no-early-stop] [--valid] [--seed S] [--threads T]
 * The data directory holds "user item item ..." files; its layout is told
 * by the files present (lightgcn_data.h):
 *   train.txt, test.txt: train, test with train items masked;
 *   train.txt, valid.txt, test.txt, three disjoint splits (LightGCN++ and
 *   later papers): train on train.txt, select on valid.txt (train items
 *   masked), test with train and valid items masked; a valid.txt sharing a
 *   pair with train.txt is refused;
 *   plus train_minus_valid.txt (valid.txt inside train.txt, Gowalla here):
 *   train on train.txt and test; with --valid train on
 *   train_minus_valid.txt, select and report on valid.txt.
 * Early stopping is the default whenever a held-out valid.txt selects:
 * validation Recall@20 every --eval-every epochs (10), stop after
 * --patience evaluations without a better one (5: 50 epochs at the default
 * interval, past the noise of one evaluation to the next), restore the
 * best epoch's embeddings (ties keep the earlier epoch) and report test (or
 * valid, with --valid) for it; --epochs is then the maximum. The rate is
 * constant under early stopping (a cosine tied to the maximum would still
 * be high when the run stops); --cosine overrides. --no-early-stop trains
 * the fixed schedule and reports the last epoch.
 * Fixed schedule (train.txt and test.txt, or --no-early-stop): batch 8192,
 * Adam lr 2e-2 decayed by a half cosine to 0 over the epochs
 * (lr * (1 + cos(pi t / T)) / 2 at epoch t of T), 350 by default: on
 * Gowalla, of the schedules compared on valid.txt it gains the most
 * accuracy per minute (larger batches mean fewer propagations per epoch),
 * and on valid.txt Recall@20 stops rising after about 320 of the 350
 * epochs. On test.txt it reaches Recall@20 0.18 and NDCG@20 0.154 in
 * under 55 minutes on 2 cores. That suits a large set; on a small or
 * unknown one the constant rate with early stopping does better (on
 * another public set the cosine 350-epoch run peaked on validation at
 * epoch 20 and ended ~6% below it). The paper's schedule is --batch 2048
 * --lr 1e-3 --constant-lr (many hundreds of epochs). The model, loss and
 * L2 are the paper's.
 * Each epoch draws as many triples as there are training interactions
 * (LightGCN-PyTorch's sampler) and shows a progress bar; the last line is
 * RESULT lightgcn recall@20=... ndcg@20=... epochs=... seconds=...
 * best_epoch=... split=test|valid
 * with epochs the epochs trained, best_epoch the one reported (the last
 * under a fixed schedule) and split the file the figures are on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mmrec/mmrec.h>

#include "example_util.h"
#include "lightgcn_data.h"

#define DIM 64
#define LAYERS 3
#define L2 1e-4f

static void epoch_progress(int epoch, size_t step, size_t steps, double loss, double t0,
                           int tty) {
    if (!tty) {
        if (step == steps)
            fprintf(stderr, "  epoch %d: %zu batches, loss %.5f, %.1f s\n", epoch, steps, loss,
                    now() - t0);
        return;
    }
    char bar[31];
    size_t done = 30 * step / steps;
    for (size_t k = 0; k < 30; k++) bar[k] = k < done ? '=' : k == done ? '>' : ' ';
    bar[30] = 0;
    fprintf(stderr, "\r  epoch %d [%s] %zu/%zu loss %.5f %.1f s", epoch, bar, step, steps, loss,
            now() - t0);
    if (step == steps) fputc('\n', stderr);
}

int main(int argc, char **argv) {
    /* Results go to stdout, progress to stderr: line-buffer stdout so the
     * two keep their order when both go to one file. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *usage = "[--epochs N] [--batch B] [--lr LR] [--constant-lr | --cosine] "
                        "[--eval-every N] [--patience P] [--no-early-stop] [--valid] [--seed S] "
                        "[--threads T]";
    if (argc < 2) {
        fprintf(stderr, "usage: %s <data dir> %s\n", argv[0], usage);
        return 2;
    }
    const char *dir = argv[1];
    lgcn_options o = {.epochs = 350, .eval_every = 10, .patience = 5, .threads = 2,
                      .cosine = -1, .batch = 8192, .lr = 2e-2f, .seed = 2020};
    if (lgcn_parse_options(argc, argv, &o, usage, stderr) != 0) return 2;
    CHECK(mmrec_set_num_threads(o.threads));
    lgcn_data d;
    lgcn_data_open(dir, o.use_valid, stderr, &d);
    /* early stopping whenever a held-out file selects; then a constant rate */
    int early = d.valid != NULL && !o.no_early_stop;
    if (o.cosine < 0) o.cosine = !early;
    const char *split = d.report == d.valid ? "valid" : "test";
    int64_t U = d.num_users, I = d.num_items;
    size_t n_train = d.n_train, n_valid = 0, n_report;
    if (d.valid) CHECK(mmrec_interactions_info(d.valid, NULL, NULL, &n_valid));
    CHECK(mmrec_interactions_info(d.report, NULL, NULL, &n_report));
    if (d.layout == LAYOUT_HELD_OUT)
        printf("lightgcn: %s, %lld users, %lld items, %zu train / %zu valid / %zu test "
               "interactions\n",
               dir, (long long)U, (long long)I, n_train, n_valid, n_report);
    else
        printf("lightgcn: %s, %lld users, %lld items, %zu train / %zu %s interactions\n", dir,
               (long long)U, (long long)I, n_train, n_report, split);
    lgcn_data_describe(&d, stdout);
    printf("d=%d layers=%d batch=%zu lr=%g (%s) l2=%g epochs=%d seed=%llu threads=%d\n", DIM,
           LAYERS, o.batch, (double)o.lr, o.cosine ? "cosine decay" : "constant", (double)L2,
           o.epochs, (unsigned long long)o.seed, mmrec_get_num_threads());
    lgcn_describe_early_stop(&d, &o, early);

    const int64_t *pu, *pi;
    CHECK(mmrec_interactions_pairs(d.train, &pu, &pi));
    mmrec_graph *g;
    CHECK(mmrec_graph_create_bipartite(pu, pi, n_train, U, I, &g));
    user_lists lists;
    build_lists(pu, pi, n_train, U, &lists);

    mmrec_model *model;
    mmrec_tensor *ego;
    mmrec_rng *rng;
    mmrec_optimizer *opt;
    lgcn_model_create(U + I, DIM, o.seed, o.lr, &model, &ego, &rng, &opt);
    mmrec_tape *tape;
    CHECK(mmrec_tape_create(&tape));
    early_stop es, *selection = NULL; /* NULL: a fixed schedule */
    if (early) early_stop_init(selection = &es, model, o.patience);
    lgcn_run run = {model, tape, g, ego, LAYERS, DIM};

    size_t batch = o.batch;
    int64_t *ids = xmalloc(3 * batch * sizeof *ids);
    size_t steps = (n_train + batch - 1) / batch;
    int tty = isatty(2);
    double t_start = now(), recall = 0, ndcg = 0;
    int epoch = 0;
    while (epoch < o.epochs) {
        epoch++;
        double t0 = now(), loss_sum = 0;
        lgcn_schedule(opt, &o, epoch);
        for (size_t s = 0; s < steps; s++) {
            sample(&lists, &lists, U, I, rng, batch, ids);
            mmrec_tensor *bpr, *loss;
            bpr_step_loss(tape, g, ego, LAYERS, ids, batch, L2, &bpr, &loss);
            float value;
            CHECK(mmrec_tensor_copy_to(bpr, &value, 1));
            loss_sum += value;
            CHECK(mmrec_tape_backward(tape, loss));
            CHECK(mmrec_optimizer_step(opt));
            mmrec_tape_reset(tape);
            if (tty || s + 1 == steps)
                epoch_progress(epoch, s + 1, steps, loss_sum / (double)(s + 1), t0, tty);
        }
        if ((epoch % o.eval_every == 0 || epoch == o.epochs) &&
            lgcn_eval_epoch(&d, &run, selection, epoch, loss_sum / (double)steps, t_start,
                            &recall, &ndcg))
            break;
    }
    int best_epoch = lgcn_report(&d, &run, selection, epoch, &recall, &ndcg);
    double seconds = now() - t_start;
    printf("RESULT lightgcn recall@20=%.4f ndcg@20=%.4f epochs=%d seconds=%.0f best_epoch=%d "
           "split=%s\n",
           recall, ndcg, epoch, seconds, best_epoch, split);
    free(ids);
    if (selection) early_stop_free(selection);
    free_lists(&lists);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(model);
    mmrec_rng_destroy(rng);
    mmrec_graph_destroy(g);
    lgcn_data_close(&d);
    return 0;
}
