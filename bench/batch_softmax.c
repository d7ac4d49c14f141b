/* Benchmark batch_softmax: forward and backward of the fused batch softmax
 * loss at B = N = 4096 queries and candidates of d = 64, L2-normalized,
 * tau 0.05, a logQ column bias (bench/batch_softmax.py has the PyTorch
 * counterpart, composed of its ops). Then CIC at two batch sizes, all
 * negatives and 16 sampled ones: the fused loss against the same loss
 * composed of the public ops (normalize, matmul, scale, transpose, a
 * [B, B] bias for the sampled negatives, two softmax CEs, add, scale), time
 * and the tape arena's high-water mark (mmrec_tape_memory), one line each:
 *   CIC batch=... negatives=... composed_ms=... fused_ms=... speedup=...
 *       composed_arena_mib=... fused_arena_mib=... */
#include "bench_util.h"

#include <math.h>

#define B 4096
#define N 4096
#define D 64

/* CIC as the public ops compose it: S = norm(C) norm(I)^T / tau, the rows of
 * S and of S^T with every pair off the diagonal and the row's negatives at
 * -1e30 (bias NULL: all negatives). */
static void cic_composed(mmrec_tape *t, mmrec_tensor *c, mmrec_tensor *i, float tau,
                         const float *bias, const int64_t *labels, int64_t batch,
                         mmrec_tensor **out) {
    mmrec_tensor *cn, *in, *s, *st, *bt, *l1, *l2, *sum;
    BENCH_CHECK(mmrec_l2_normalize(t, c, 1e-12f, &cn));
    BENCH_CHECK(mmrec_l2_normalize(t, i, 1e-12f, &in));
    BENCH_CHECK(mmrec_matmul(t, cn, in, MMREC_TRANS_B, &s));
    BENCH_CHECK(mmrec_scale(t, s, 1.0f / tau, &s));
    BENCH_CHECK(mmrec_transpose(t, s, &st));
    if (bias) {
        int64_t shape[2] = {batch, batch};
        BENCH_CHECK(mmrec_tape_tensor(t, 2, shape, 0, &bt));
        BENCH_CHECK(mmrec_tensor_copy_from(bt, bias, (size_t)(batch * batch)));
        BENCH_CHECK(mmrec_add(t, s, bt, &s));
        BENCH_CHECK(mmrec_add(t, st, bt, &st));
    }
    BENCH_CHECK(mmrec_loss_softmax_ce(t, s, labels, (size_t)batch, &l1));
    BENCH_CHECK(mmrec_loss_softmax_ce(t, st, labels, (size_t)batch, &l2));
    BENCH_CHECK(mmrec_add(t, l1, l2, &sum));
    BENCH_CHECK(mmrec_scale(t, sum, 0.5f, out));
}

/* Median step time (ms) and the fresh tape's arena high-water mark (MiB)
 * of `runs` CIC steps, composed or fused. */
static void cic_measure(int composed, int64_t batch, int negatives, int runs, const float *cv,
                        const float *iv, double *ms, double *mib) {
    mmrec_tape *t;
    BENCH_CHECK(mmrec_tape_create(&t));
    float *bias = NULL;
    int64_t *labels = malloc((size_t)batch * sizeof *labels);
    for (int64_t r = 0; r < batch; r++) labels[r] = r;
    /* The composed form's bias: H distinct other rows per row, drawn as CIC
     * draws them but once, outside the timed steps (a step only copies it
     * in), so the composed times are if anything low. */
    if (composed && negatives) {
        bias = malloc((size_t)(batch * batch) * sizeof *bias);
        mmrec_rng *rng;
        BENCH_CHECK(mmrec_rng_create(3, &rng));
        int64_t *pool = malloc((size_t)batch * sizeof *pool);
        for (int64_t r = 0; r < batch; r++) {
            float *row = bias + r * batch;
            for (int64_t j = 0; j < batch; j++) row[j] = -1e30f;
            row[r] = 0.0f;
            int64_t n = 0;
            for (int64_t j = 0; j < batch; j++)
                if (j != r) pool[n++] = j;
            for (int h = 0; h < negatives; h++) {
                uint64_t u;
                BENCH_CHECK(mmrec_rng_below(rng, (uint64_t)(n - h), &u));
                int64_t k = h + (int64_t)u, tmp = pool[h];
                pool[h] = pool[k];
                pool[k] = tmp;
                row[pool[h]] = 0.0f;
            }
        }
        free(pool);
        mmrec_rng_destroy(rng);
    }
    mmrec_cic_config cc;
    BENCH_CHECK(mmrec_cic_config_init(&cc));
    cc.temperature = 0.1f;
    cc.num_negatives = negatives;
    int64_t shape[2] = {batch, D};
    double *times = malloc((size_t)runs * sizeof *times);
    for (int r = -2; r < runs; r++) {
        double t0 = bench_now_ms();
        mmrec_tensor *c, *i, *loss;
        BENCH_CHECK(mmrec_tape_wrap(t, (float *)cv, 2, shape, MMREC_TENSOR_REQUIRES_GRAD, &c));
        BENCH_CHECK(mmrec_tape_wrap(t, (float *)iv, 2, shape, MMREC_TENSOR_REQUIRES_GRAD, &i));
        if (composed) cic_composed(t, c, i, cc.temperature, bias, labels, batch, &loss);
        else BENCH_CHECK(mmrec_loss_cic(t, c, i, &cc, &loss));
        BENCH_CHECK(mmrec_tape_backward(t, loss));
        mmrec_tape_reset(t);
        if (r >= 0) times[r] = bench_now_ms() - t0;
    }
    size_t capacity, high;
    BENCH_CHECK(mmrec_tape_memory(t, &capacity, &high));
    *ms = bench_median(times, runs);
    *mib = (double)high / (1024.0 * 1024.0);
    free(times);
    free(labels);
    free(bias);
    mmrec_tape_destroy(t);
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 20;
    BENCH_CHECK(mmrec_set_num_threads(bench_threads()));
    float *q = malloc((size_t)B * D * sizeof *q), *c = malloc((size_t)N * D * sizeof *c);
    float *bias = malloc(N * sizeof *bias);
    mmrec_rng *rng;
    BENCH_CHECK(mmrec_rng_create(0, &rng));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, q, (size_t)B * D));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, c, (size_t)N * D));
    /* -log p_j of a Zipf-like sampling distribution */
    double total = 0;
    for (int j = 0; j < N; j++) total += 1.0 / (j + 1);
    for (int j = 0; j < N; j++) bias[j] = (float)-log(1.0 / (j + 1) / total);

    mmrec_tape *tape;
    BENCH_CHECK(mmrec_tape_create(&tape));
    mmrec_batch_softmax_config cfg;
    BENCH_CHECK(mmrec_batch_softmax_config_init(&cfg));
    cfg.temperature = 0.05f;
    cfg.normalize = 1;
    cfg.column_bias = bias;
    int64_t sq[2] = {B, D}, sc[2] = {N, D};
    double *times = malloc((size_t)runs * sizeof *times);
    for (int i = -3; i < runs; i++) {
        double t0 = bench_now_ms();
        mmrec_tensor *tq, *tc, *loss;
        BENCH_CHECK(mmrec_tape_wrap(tape, q, 2, sq, MMREC_TENSOR_REQUIRES_GRAD, &tq));
        BENCH_CHECK(mmrec_tape_wrap(tape, c, 2, sc, MMREC_TENSOR_REQUIRES_GRAD, &tc));
        BENCH_CHECK(mmrec_loss_batch_softmax(tape, tq, tc, &cfg, &loss));
        BENCH_CHECK(mmrec_tape_backward(tape, loss));
        mmrec_tape_reset(tape);
        if (i >= 0) times[i] = bench_now_ms() - t0;
    }
    size_t capacity, high;
    BENCH_CHECK(mmrec_tape_memory(tape, &capacity, &high));
    double c_ms = bench_median(times, runs);
    fprintf(stderr, "batch_softmax: arena high-water %.1f MiB\n", high / (1024.0 * 1024.0));
    int rc = bench_report("batch_softmax", c_ms, runs);

    static const int64_t batches[2] = {1024, 4096};
    static const int negatives[2] = {0, 16};
    for (int b = 0; b < 2 && !bench_c_only(); b++)
        for (int h = 0; h < 2; h++) {
            double ms[2], mib[2];
            int cic_runs = batches[b] > 2048 ? 5 : 20;
            for (int composed = 0; composed < 2; composed++)
                cic_measure(composed, batches[b], negatives[h], cic_runs, q, c, &ms[composed],
                            &mib[composed]);
            printf("CIC batch=%lld negatives=%s composed_ms=%.3f fused_ms=%.3f speedup=%.2f "
                   "composed_arena_mib=%.1f fused_arena_mib=%.1f\n",
                   (long long)batches[b], negatives[h] ? "16" : "all", ms[1], ms[0],
                   ms[1] / ms[0], mib[1], mib[0]);
        }
    free(times);
    free(q);
    free(c);
    free(bias);
    mmrec_rng_destroy(rng);
    mmrec_tape_destroy(tape);
    return rc;
}
