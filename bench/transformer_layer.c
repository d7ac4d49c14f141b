/* Benchmark transformer_layer: one TransformerEncoderLayer training step
 * (256 sequences x 8 tokens, d = 128, 4 heads, FFN 512, pre-LN, GELU,
 * dropout 0, AdamW; loss = sum(r * y) for a fixed random r), in libmmrec and
 * in PyTorch (bench/transformer_layer.py) in one run, 2 threads each. */
#include "bench_util.h"

#define B 256
#define T 8
#define D 128

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 50;
    BENCH_CHECK(mmrec_set_num_threads(bench_threads()));
    mmrec_model *m;
    BENCH_CHECK(mmrec_model_create(&m));
    mmrec_transformer_config cfg;
    BENCH_CHECK(mmrec_transformer_config_init(&cfg));
    cfg.dim = D;
    cfg.num_heads = 4;
    cfg.ffn_dim = 512;
    cfg.dropout = 0.0f;
    cfg.norm_first = 1;
    cfg.activation = MMREC_ACT_GELU;
    mmrec_module *layer;
    BENCH_CHECK(mmrec_transformer_create(m, "layer", &cfg, &layer));
    mmrec_optimizer_config ocfg;
    BENCH_CHECK(mmrec_optimizer_config_init(&ocfg));
    ocfg.type = MMREC_OPT_ADAMW;
    mmrec_optimizer *opt;
    BENCH_CHECK(mmrec_optimizer_create(m, &ocfg, &opt));
    mmrec_tape *tape;
    BENCH_CHECK(mmrec_tape_create(&tape));

    static float x[B * T * D], r[B * T * D];
    mmrec_rng *rng;
    BENCH_CHECK(mmrec_rng_create(0, &rng));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, x, B * T * D));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, r, B * T * D));
    int64_t shape[3] = {B, T, D};

    double *times = malloc((size_t)runs * sizeof *times);
    for (int i = -10; i < runs; i++) {
        double t0 = bench_now_ms();
        mmrec_tensor *in, *y;
        BENCH_CHECK(mmrec_tape_wrap(tape, x, 3, shape, MMREC_TENSOR_READONLY, &in));
        BENCH_CHECK(mmrec_transformer_forward(layer, tape, in, NULL, &y));
        BENCH_CHECK(mmrec_tape_backward_from(tape, y, r));
        BENCH_CHECK(mmrec_optimizer_step(opt));
        mmrec_tape_reset(tape);
        if (i >= 0) times[i] = bench_now_ms() - t0;
    }
    double c_ms = bench_median(times, runs);
    int rc = bench_report("transformer_layer", c_ms, runs);
    free(times);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(m);
    mmrec_rng_destroy(rng);
    return rc;
}
