/* lightgcn: LightGCN (He et al., SIGIR 2020) trained with BPR on the
 * LightGCN-format Gowalla split, evaluated by full ranking.
 *
 *   E = mean_k A_hat^k E0 over K = 3 layers, read at the batch's rows
 *   (mmrec_lightgcn_rows, one op),
 *   BPR over (user, positive, uniform negative) triples, plus
 *   L2 = lambda / 2 (|E0_u|^2 + |E0_i|^2 + |E0_j|^2) / batch on the ego rows,
 *   Adam; Recall@20 and NDCG@20 over all items with training items masked.
 *
 * Usage: lightgcn <data dir> [--epochs N] [--batch B] [--lr LR] [--constant-lr]
 *                 [--eval-every N] [--valid] [--seed S] [--threads T]
 *   <data dir> holds train.txt and test.txt ("user item item ..." lines);
 *   with --valid, training uses train_minus_valid.txt and evaluation
 *   valid.txt (model selection), as ../shared/data/gowalla provides.
 * Default schedule: batch 8192, Adam lr 2e-2 decayed by a half cosine to 0
 * over the epochs (lr * (1 + cos(pi t / T)) / 2 at epoch t of T), 350 by
 * default: of the schedules compared on valid.txt it gains the most
 * accuracy per minute (larger batches mean fewer propagations per epoch),
 * and on valid.txt Recall@20 stops rising after about 320 of the 350
 * epochs. On test.txt it reaches Recall@20 0.18 and NDCG@20 0.154 in
 * under 55 minutes on 2 cores. The paper's schedule is --batch 2048
 * --lr 1e-3 --constant-lr (many hundreds of epochs). The model, loss and
 * L2 are the paper's.
 * Each epoch draws as many triples as there are training interactions
 * (LightGCN-PyTorch's sampler) and shows a progress bar; the last line is
 * RESULT lightgcn recall@20=... ndcg@20=... epochs=... seconds=... */
#include <math.h>
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
    if (argc < 2) {
        fprintf(stderr, "usage: %s <data dir> [--epochs N] [--batch B] [--lr LR] "
                        "[--constant-lr] [--eval-every N] [--valid] [--seed S] [--threads T]\n",
                argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int epochs = 350, eval_every = 10, use_valid = 0;
    size_t batch = 8192;
    float lr = 2e-2f;
    uint64_t seed = 2020;
    int threads = 2, cosine = 1;
    for (int a = 2; a < argc; a++) {
        const char *v = a + 1 < argc ? argv[a + 1] : "";
        if (strcmp(argv[a], "--epochs") == 0) epochs = atoi(v), a++;
        else if (strcmp(argv[a], "--batch") == 0) batch = (size_t)atol(v), a++;
        else if (strcmp(argv[a], "--lr") == 0) lr = (float)atof(v), a++;
        else if (strcmp(argv[a], "--eval-every") == 0) eval_every = atoi(v), a++;
        else if (strcmp(argv[a], "--seed") == 0) seed = strtoull(v, NULL, 10), a++;
        else if (strcmp(argv[a], "--threads") == 0) threads = atoi(v), a++;
        else if (strcmp(argv[a], "--valid") == 0) use_valid = 1;
        else if (strcmp(argv[a], "--constant-lr") == 0) cosine = 0;
        else {
            fprintf(stderr, "unknown option '%s'\n", argv[a]);
            return 2;
        }
    }
    if (epochs < 1 || batch < 1 || !(lr > 0) || eval_every < 1 || threads < 1) {
        fprintf(stderr, "epochs, batch, lr, eval-every and threads must be positive\n");
        return 2;
    }
    CHECK(mmrec_set_num_threads(threads));
    char train_path[1024], test_path[1024];
    snprintf(train_path, sizeof train_path, "%s/%s", dir,
             use_valid ? "train_minus_valid.txt" : "train.txt");
    snprintf(test_path, sizeof test_path, "%s/%s", dir, use_valid ? "valid.txt" : "test.txt");
    mmrec_interactions *train, *test;
    CHECK(mmrec_interactions_read_lightgcn(train_path, &train));
    CHECK(mmrec_interactions_read_lightgcn(test_path, &test));
    int64_t U, I, tu, ti;
    size_t n_train, n_test;
    CHECK(mmrec_interactions_info(train, &U, &I, &n_train));
    CHECK(mmrec_interactions_info(test, &tu, &ti, &n_test));
    if (tu > U) U = tu;
    if (ti > I) I = ti;
    printf("lightgcn: %s, %lld users, %lld items, %zu train / %zu %s interactions\n", dir,
           (long long)U, (long long)I, n_train, n_test, use_valid ? "valid" : "test");
    printf("d=%d layers=%d batch=%zu lr=%g (%s) l2=%g epochs=%d seed=%llu threads=%d\n", DIM,
           LAYERS, batch, (double)lr, cosine ? "cosine decay" : "constant", (double)L2, epochs,
           (unsigned long long)seed, mmrec_get_num_threads());

    const int64_t *pu, *pi;
    CHECK(mmrec_interactions_pairs(train, &pu, &pi));
    mmrec_graph *g;
    CHECK(mmrec_graph_create_bipartite(pu, pi, n_train, U, I, &g));
    user_lists lists;
    build_lists(pu, pi, n_train, U, &lists);

    mmrec_model *model;
    CHECK(mmrec_model_create(&model));
    int64_t shape[2] = {U + I, DIM};
    mmrec_tensor *ego;
    CHECK(mmrec_model_add_param(model, "embedding", 2, shape, &ego));
    float *ego_data;
    CHECK(mmrec_tensor_data(ego, &ego_data));
    mmrec_rng *rng;
    CHECK(mmrec_rng_create(seed, &rng));
    CHECK(mmrec_rng_normal(rng, 0.0f, 0.1f, ego_data, (size_t)((U + I) * DIM)));
    mmrec_optimizer_config oc;
    CHECK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = lr;
    mmrec_optimizer *opt;
    CHECK(mmrec_optimizer_create(model, &oc, &opt));
    mmrec_tape *tape;
    CHECK(mmrec_tape_create(&tape));

    int64_t *ids = xmalloc(3 * batch * sizeof *ids);
    size_t steps = (n_train + batch - 1) / batch;
    int tty = isatty(2);
    double t_start = now(), recall = 0, ndcg = 0;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        double t0 = now(), loss_sum = 0;
        if (cosine) /* lr * (1 + cos(pi t / T)) / 2 over the epochs */
            CHECK(mmrec_optimizer_set_lr(
                opt, 0, lr * 0.5f * (1.0f + cosf(3.14159265f * (float)(epoch - 1) / (float)epochs))));
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
        if (epoch % eval_every == 0 || epoch == epochs) {
            double te0 = now();
            evaluate(tape, g, ego, LAYERS, U, I, DIM, train, test, &recall, &ndcg);
            printf("epoch %d  loss %.5f  recall@20 %.4f  ndcg@20 %.4f  (eval %.1f s, %.0f s "
                   "total)\n",
                   epoch, loss_sum / (double)steps, recall, ndcg, now() - te0,
                   now() - t_start);
            fflush(stdout);
        }
    }
    double seconds = now() - t_start;
    printf("RESULT lightgcn recall@20=%.4f ndcg@20=%.4f epochs=%d seconds=%.0f\n", recall, ndcg,
           epochs, seconds);
    free(ids);
    free_lists(&lists);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(model);
    mmrec_rng_destroy(rng);
    mmrec_graph_destroy(g);
    mmrec_interactions_destroy(train);
    mmrec_interactions_destroy(test);
    return 0;
}
