/* Benchmark inttower_step: one CTR training step of IntTower at the size
 * of the authors' MovieLens-1M run: batch 2048, 4 user fields and 2 item
 * fields of width 32 plus one dense feature a side, towers (300, 300, 128),
 * 32 heads of width 64 a side, dropout 0.3. A step: both towers (Light-SE,
 * the MLPs, the FE projections), the paired FE score with its bias,
 * mmrec_loss_bce_logits, backward into every parameter and the field
 * embeddings (bench/inttower_step.py has the PyTorch counterpart: the
 * reference code's modules with dnn_use_bn=False, BCE with logits). Also
 * prints the forward alone (fwd_ms=) and the tape arena's high-water mark. */
#include "bench_util.h"

#define B 2048
#define FU 4
#define FI 2
#define E 32

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 20;
    BENCH_CHECK(mmrec_set_num_threads(bench_threads()));
    float *ue = malloc((size_t)B * FU * E * sizeof *ue);
    float *ie = malloc((size_t)B * FI * E * sizeof *ie);
    float *ud = malloc(B * sizeof *ud), *id = malloc(B * sizeof *id), *y = malloc(B * sizeof *y);
    mmrec_rng *rng;
    BENCH_CHECK(mmrec_rng_create(0, &rng));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, ue, (size_t)B * FU * E));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, ie, (size_t)B * FI * E));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, ud, B));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, id, B));
    for (int b = 0; b < B; b++) y[b] = (float)(b % 3 == 0);

    mmrec_model *model;
    BENCH_CHECK(mmrec_model_create(&model));
    mmrec_inttower_config c;
    BENCH_CHECK(mmrec_inttower_config_init(&c));
    c.user_fields = FU;
    c.item_fields = FI;
    c.embedding_dim = E;
    c.user_dense_dim = 1;
    c.item_dense_dim = 1;
    c.dropout = 0.3f;
    mmrec_module *it;
    BENCH_CHECK(mmrec_inttower_create(model, "it", &c, &it));
    mmrec_tape *tape;
    BENCH_CHECK(mmrec_tape_create(&tape));
    int64_t su[3] = {B, FU, E}, si[3] = {B, FI, E}, sd[2] = {B, 1}, sy[1] = {B};
    double *times = malloc((size_t)runs * sizeof *times);
    double *fwd = malloc((size_t)runs * sizeof *fwd);
    for (int r = -3; r < runs; r++) {
        double t0 = bench_now_ms();
        mmrec_tensor *tue, *tie, *tud, *tid, *ty, *ufe, *ife, *s, *loss;
        BENCH_CHECK(mmrec_tape_wrap(tape, ue, 3, su, MMREC_TENSOR_REQUIRES_GRAD, &tue));
        BENCH_CHECK(mmrec_tape_wrap(tape, ie, 3, si, MMREC_TENSOR_REQUIRES_GRAD, &tie));
        BENCH_CHECK(mmrec_tape_wrap(tape, ud, 2, sd, MMREC_TENSOR_READONLY, &tud));
        BENCH_CHECK(mmrec_tape_wrap(tape, id, 2, sd, MMREC_TENSOR_READONLY, &tid));
        BENCH_CHECK(mmrec_tape_wrap(tape, y, 1, sy, MMREC_TENSOR_READONLY, &ty));
        BENCH_CHECK(mmrec_inttower_user_forward(it, tape, tue, tud, &ufe, NULL));
        BENCH_CHECK(mmrec_inttower_item_forward(it, tape, tie, tid, &ife, NULL));
        BENCH_CHECK(mmrec_inttower_score_paired(it, tape, ufe, ife, &s));
        BENCH_CHECK(mmrec_loss_bce_logits(tape, s, ty, &loss));
        double t1 = bench_now_ms();
        BENCH_CHECK(mmrec_tape_backward(tape, loss));
        BENCH_CHECK(mmrec_model_zero_grad(model));
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
    int rc = bench_report_fields("inttower_step", c_ms, runs, extra, "ref_fwd_ms");
    free(times);
    free(fwd);
    free(ue);
    free(ie);
    free(ud);
    free(id);
    free(y);
    mmrec_rng_destroy(rng);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
    return rc;
}
