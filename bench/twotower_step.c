/* Benchmark twotower_step: one training step of a two-tower retrieval
 * model with the in-batch softmax and the logQ correction (Yi et al.,
 * RecSys 2019). B = 1024 (user, item) pairs; a user tower and an item tower,
 * each an MLP 256 -> 256 -> 64 with ReLU between the layers (not after the
 * last); inputs [B, 256] of N(0, 1) features, fixed for the run; scores
 * cos(u_i, v_j) / 0.05 - log p_j with p a fixed vector of the batch items'
 * sampling probabilities (log-uniform in [1e-6, 1e-2]); the positive of row
 * i is column i. A step: both towers forward, mmrec_loss_batch_softmax
 * (normalize 1, temperature 0.05, column_bias -log p), backward, Adam
 * (lr 1e-3). bench/twotower_step.py has the PyTorch counterpart: nn.Linear,
 * F.normalize, logits / tau - logq, F.cross_entropy, torch.optim.Adam.
 *
 * Both sides start from the same weights and inputs: this side writes the
 * inputs, -log p and its initial parameters (mmrec_model_export_params:
 * user.0.weight, user.0.bias, user.1.weight, user.1.bias, then the item
 * tower's) as float32 to a temporary file whose path the counterpart reads
 * from MMREC_BENCH_TWOTOWER_DATA. Both run the same number of steps (5
 * warm-up, then the timed ones) and report the loss of the first step and
 * of the last (c_loss_first= c_loss_last=, ref_loss_first= ref_loss_last=):
 * equal up to float rounding when the forward, the backward and the Adam
 * update compute the same maths; the counterpart reads this side's two
 * losses from MMREC_BENCH_TWOTOWER_LOSS and reports the relative
 * differences in parts per million (loss_first_diff_ppm=,
 * loss_last_diff_ppm=). Also prints the forward alone (c_fwd_ms=),
 * the optimizer step alone (c_opt_ms=), the fastest step (c_min_ms=), the
 * CPU time of a step (c_cpu_ms=) and OPENBLAS_CORETYPE. */
#include "bench_util.h"

#include <math.h>
#include <unistd.h>

#define B 1024
#define DIN 256
#define DH 256
#define DOUT 64
#define WARMUP 5

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 30;
    BENCH_CHECK(mmrec_set_num_threads(bench_threads()));

    /* the model: two MLP towers */
    mmrec_model *model;
    BENCH_CHECK(mmrec_model_create(&model));
    BENCH_CHECK(mmrec_model_seed(model, 0));
    static const int64_t sizes[3] = {DIN, DH, DOUT};
    mmrec_mlp_config mc;
    BENCH_CHECK(mmrec_mlp_config_init(&mc));
    mc.sizes = sizes;
    mc.num_sizes = 3;
    mc.activation = MMREC_ACT_RELU;
    mmrec_module *user, *item;
    BENCH_CHECK(mmrec_mlp_create(model, "user", &mc, &user));
    BENCH_CHECK(mmrec_mlp_create(model, "item", &mc, &item));
    mmrec_optimizer_config oc;
    BENCH_CHECK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = 1e-3f;
    mmrec_optimizer *opt;
    BENCH_CHECK(mmrec_optimizer_create(model, &oc, &opt));

    /* the batch: features, the logQ bias */
    float *xu = malloc((size_t)B * DIN * sizeof *xu);
    float *xi = malloc((size_t)B * DIN * sizeof *xi);
    float *neg_logq = malloc(B * sizeof *neg_logq);
    mmrec_rng *rng;
    BENCH_CHECK(mmrec_rng_create(1, &rng));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, xu, (size_t)B * DIN));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, xi, (size_t)B * DIN));
    BENCH_CHECK(mmrec_rng_uniform(rng, -6.0f, -2.0f, neg_logq, B));
    for (int j = 0; j < B; j++) neg_logq[j] = -(float)(neg_logq[j] * log(10.0)); /* -ln p_j */
    mmrec_batch_softmax_config lc;
    BENCH_CHECK(mmrec_batch_softmax_config_init(&lc));
    lc.normalize = 1;
    lc.temperature = 0.05f;
    lc.column_bias = neg_logq;

    /* the same start for the counterpart */
    size_t n_params;
    BENCH_CHECK(mmrec_model_param_count(model, &n_params, NULL));
    float *params = malloc(n_params * sizeof *params);
    BENCH_CHECK(mmrec_model_export_params(model, params, n_params));
    char dir[] = "/tmp/mmrec-bench-XXXXXX", path[64];
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/twotower.f32", dir);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    bench_write_floats(f, xu, (size_t)B * DIN);
    bench_write_floats(f, xi, (size_t)B * DIN);
    bench_write_floats(f, neg_logq, B);
    bench_write_floats(f, params, n_params);
    if (fclose(f) != 0) {
        perror(path);
        return 1;
    }
    setenv("MMREC_BENCH_TWOTOWER_DATA", path, 1);

    mmrec_tape *tape;
    BENCH_CHECK(mmrec_tape_create(&tape));
    int64_t sx[2] = {B, DIN};
    double *times = malloc((size_t)runs * sizeof *times);
    double *fwd = malloc((size_t)runs * sizeof *fwd);
    double *optt = malloc((size_t)runs * sizeof *optt);
    double *cpu = malloc((size_t)runs * sizeof *cpu);
    float loss_first = 0, loss_last = 0;
    for (int r = -WARMUP; r < runs; r++) {
        double t0 = bench_now_ms(), c0 = bench_cpu_ms();
        mmrec_tensor *tu, *ti, *u, *v, *loss;
        BENCH_CHECK(mmrec_tape_wrap(tape, xu, 2, sx, MMREC_TENSOR_READONLY, &tu));
        BENCH_CHECK(mmrec_tape_wrap(tape, xi, 2, sx, MMREC_TENSOR_READONLY, &ti));
        BENCH_CHECK(mmrec_mlp_forward(user, tape, tu, &u));
        BENCH_CHECK(mmrec_mlp_forward(item, tape, ti, &v));
        BENCH_CHECK(mmrec_loss_batch_softmax(tape, u, v, &lc, &loss));
        double t1 = bench_now_ms();
        BENCH_CHECK(mmrec_tape_backward(tape, loss));
        double t2 = bench_now_ms();
        BENCH_CHECK(mmrec_optimizer_step(opt));
        double t3 = bench_now_ms();
        const float *lv;
        BENCH_CHECK(mmrec_tensor_data_const(loss, &lv));
        if (r == -WARMUP) loss_first = lv[0];
        loss_last = lv[0];
        mmrec_tape_reset(tape);
        if (r >= 0) {
            times[r] = bench_now_ms() - t0;
            cpu[r] = bench_cpu_ms() - c0;
            fwd[r] = t1 - t0;
            optt[r] = t3 - t2;
        }
    }
    double c_ms = bench_median(times, runs), c_min = times[0];
    for (int r = 1; r < runs; r++) c_min = times[r] < c_min ? times[r] : c_min;
    const char *core = getenv("OPENBLAS_CORETYPE");
    char extra[512];
    snprintf(extra, sizeof extra,
             "c_fwd_ms=%.3f c_opt_ms=%.3f c_min_ms=%.3f c_cpu_ms=%.3f c_loss_first=%.6f "
             "c_loss_last=%.6f openblas_coretype=%s",
             bench_median(fwd, runs), bench_median(optt, runs), c_min, bench_median(cpu, runs),
             loss_first, loss_last, core ? core : "default");
    char losses[64];
    snprintf(losses, sizeof losses, "%.9g %.9g", loss_first, loss_last);
    setenv("MMREC_BENCH_TWOTOWER_LOSS", losses, 1);
    int rc = bench_report_fields("twotower_step", c_ms, runs, extra,
                                 "ref_fwd_ms ref_loss_first ref_loss_last "
                                 "loss_first_diff_ppm loss_last_diff_ppm");
    unlink(path);
    rmdir(dir);
    free(times);
    free(fwd);
    free(optt);
    free(cpu);
    free(params);
    free(xu);
    free(xi);
    free(neg_logq);
    mmrec_rng_destroy(rng);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(model);
    return rc;
}
