/* Benchmark maxsim_step: one in-batch training step of ColBERT-style late
 * interaction. B = 256 queries of Lq = 8 vectors against the batch's
 * N = 256 items of Ld = 16 vectors, d = 64; both sides L2-normalized once
 * at setup (not timed), item n has 10 + n % 7 real vectors (the rest
 * padded, masked). A step: mmrec_maxsim to the [256, 256] scores,
 * mmrec_loss_softmax_ce with the diagonal as positives, backward to the
 * query and item vectors (bench/maxsim_step.py has the PyTorch counterpart:
 * einsum, masked fill with -inf, max, sum, cross_entropy). Also prints the
 * forward alone (fwd_ms=) and the tape arena's high-water mark. */
#include "bench_util.h"

#include <math.h>

#define B 256
#define LQ 8
#define N 256
#define LD 16
#define D 64

/* Normalizes each of `rows` vectors of D floats in place. */
static void normalize_rows(float *x, size_t rows) {
    for (size_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int k = 0; k < D; k++) ss += (double)x[r * D + k] * x[r * D + k];
        float inv = (float)(1.0 / fmax(sqrt(ss), 1e-12));
        for (int k = 0; k < D; k++) x[r * D + k] *= inv;
    }
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 30;
    BENCH_CHECK(mmrec_set_num_threads(bench_threads()));
    float *q = malloc((size_t)B * LQ * D * sizeof *q);
    float *it = malloc((size_t)N * LD * D * sizeof *it);
    float *im = malloc((size_t)N * LD * sizeof *im);
    int64_t *labels = malloc(B * sizeof *labels);
    mmrec_rng *rng;
    BENCH_CHECK(mmrec_rng_create(0, &rng));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, q, (size_t)B * LQ * D));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, it, (size_t)N * LD * D));
    normalize_rows(q, (size_t)B * LQ);
    normalize_rows(it, (size_t)N * LD);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < LD; j++) im[n * LD + j] = j < 10 + n % 7 ? 1.0f : 0.0f;
    for (int b = 0; b < B; b++) labels[b] = b;

    mmrec_tape *tape;
    BENCH_CHECK(mmrec_tape_create(&tape));
    int64_t sq[3] = {B, LQ, D}, si[3] = {N, LD, D}, sm[2] = {N, LD};
    double *times = malloc((size_t)runs * sizeof *times);
    double *fwd = malloc((size_t)runs * sizeof *fwd);
    for (int r = -3; r < runs; r++) {
        double t0 = bench_now_ms();
        mmrec_tensor *tq, *ti, *tm, *scores, *loss;
        BENCH_CHECK(mmrec_tape_wrap(tape, q, 3, sq, MMREC_TENSOR_REQUIRES_GRAD, &tq));
        BENCH_CHECK(mmrec_tape_wrap(tape, it, 3, si, MMREC_TENSOR_REQUIRES_GRAD, &ti));
        BENCH_CHECK(mmrec_tape_wrap(tape, im, 2, sm, MMREC_TENSOR_READONLY, &tm));
        BENCH_CHECK(mmrec_maxsim(tape, tq, NULL, ti, tm, &scores));
        double t1 = bench_now_ms();
        BENCH_CHECK(mmrec_loss_softmax_ce(tape, scores, labels, B, &loss));
        BENCH_CHECK(mmrec_tape_backward(tape, loss));
        mmrec_tape_reset(tape);
        if (r >= 0) {
            times[r] = bench_now_ms() - t0;
            fwd[r] = t1 - t0;
        }
    }
    size_t capacity, high;
    BENCH_CHECK(mmrec_tape_memory(tape, &capacity, &high));
    double c_ms = bench_median(times, runs);
    char extra[256];
    snprintf(extra, sizeof extra, "c_fwd_ms=%.3f c_arena_mib=%.1f", bench_median(fwd, runs),
             high / (1024.0 * 1024.0));
    int rc = bench_report_fields("maxsim_step", c_ms, runs, extra, "ref_fwd_ms");
    free(times);
    free(fwd);
    free(q);
    free(it);
    free(im);
    free(labels);
    mmrec_rng_destroy(rng);
    mmrec_tape_destroy(tape);
    return rc;
}
