/* Benchmark em3_step: one EM3 ranking training step (bench/em3_step.py has
 * the PyTorch counterpart and the workload): B = 256 items, 2 image + 2 text
 * features of dim 768 projected to d = 128, FQ-Former (Q = 4, 2 pre-LN
 * layers, 4 heads, FFN 512), flatten, Linear 512 -> 128, dot with a
 * 100k x 128 item-ID embedding (sparse rows), BCE, AdamW. */
#include "bench_util.h"

#define B 256
#define M 2
#define K 2
#define FEAT 768
#define D 128
#define Q 4
#define ITEMS 100000

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 20;
    BENCH_CHECK(mmrec_set_num_threads(bench_threads()));
    mmrec_model *m;
    BENCH_CHECK(mmrec_model_create(&m));
    mmrec_fqformer_config fc;
    BENCH_CHECK(mmrec_fqformer_config_init(&fc));
    fc.image_dim = FEAT;
    fc.text_dim = FEAT;
    fc.dim = D;
    fc.num_queries = Q;
    fc.num_layers = 2;
    fc.num_heads = 4;
    fc.ffn_dim = 512;
    fc.dropout = 0.0f;
    fc.flatten = 1;
    mmrec_module *fq, *head, *item;
    BENCH_CHECK(mmrec_fqformer_create(m, "fq", &fc, &fq));
    mmrec_linear_config lc;
    BENCH_CHECK(mmrec_linear_config_init(&lc));
    lc.in_dim = Q * D;
    lc.out_dim = D;
    BENCH_CHECK(mmrec_linear_create(m, "head", &lc, &head));
    mmrec_embedding_config ec;
    BENCH_CHECK(mmrec_embedding_config_init(&ec));
    ec.num_rows = ITEMS;
    ec.dim = D;
    BENCH_CHECK(mmrec_embedding_create(m, "item", &ec, &item));
    mmrec_optimizer_config oc;
    BENCH_CHECK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAMW;
    mmrec_optimizer *opt;
    BENCH_CHECK(mmrec_optimizer_create(m, &oc, &opt));
    mmrec_tape *tape;
    BENCH_CHECK(mmrec_tape_create(&tape));

    static float image[B * M * FEAT], text[B * K * FEAT], labels[B];
    static int64_t ids[B];
    mmrec_rng *rng;
    BENCH_CHECK(mmrec_rng_create(0, &rng));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, image, B * M * FEAT));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, text, B * K * FEAT));
    for (int i = 0; i < B; i++) {
        uint64_t u;
        BENCH_CHECK(mmrec_rng_below(rng, 2, &u));
        labels[i] = (float)u;
    }
    int64_t si[3] = {B, M, FEAT}, st[3] = {B, K, FEAT}, sl[1] = {B};

    double *times = malloc((size_t)runs * sizeof *times);
    for (int i = -5; i < runs; i++) {
        double t0 = bench_now_ms();
        for (int b = 0; b < B; b++) {
            uint64_t u;
            BENCH_CHECK(mmrec_rng_below(rng, ITEMS, &u));
            ids[b] = (int64_t)u;
        }
        mmrec_tensor *img, *txt, *lab, *c, *h, *e, *prod, *logit, *loss;
        BENCH_CHECK(mmrec_tape_wrap(tape, image, 3, si, MMREC_TENSOR_READONLY, &img));
        BENCH_CHECK(mmrec_tape_wrap(tape, text, 3, st, MMREC_TENSOR_READONLY, &txt));
        BENCH_CHECK(mmrec_tape_wrap(tape, labels, 1, sl, MMREC_TENSOR_READONLY, &lab));
        BENCH_CHECK(mmrec_fqformer_forward(fq, tape, img, txt, NULL, &c));
        BENCH_CHECK(mmrec_linear_forward(head, tape, c, &h));
        BENCH_CHECK(mmrec_embedding_forward(item, tape, ids, B, &e));
        BENCH_CHECK(mmrec_mul(tape, h, e, &prod));
        BENCH_CHECK(mmrec_sum(tape, prod, -1, &logit));
        BENCH_CHECK(mmrec_loss_bce_logits(tape, logit, lab, &loss));
        BENCH_CHECK(mmrec_tape_backward(tape, loss));
        BENCH_CHECK(mmrec_optimizer_step(opt));
        mmrec_tape_reset(tape);
        if (i >= 0) times[i] = bench_now_ms() - t0;
    }
    double c_ms = bench_median(times, runs);
    int rc = bench_report("em3_step", c_ms, runs);
    free(times);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(m);
    mmrec_rng_destroy(rng);
    return rc;
}
