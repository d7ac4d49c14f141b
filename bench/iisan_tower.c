/* Benchmark iisan_tower: forward + backward of IISAN's text tower, the
 * intra-modal SAN over 7 kept layers (0, 2, .., 12 of 13) with its gates,
 * then the head Linear(768, 768), Linear(768, 64) and the fusion
 * Linear(64, 64) (the item encoder in MMREC_IISAN_TEXT mode), for one step
 * of the reference's batch: 64 users x 11 items = 704 items, H = 768,
 * adapters 768 -> 64 -> 768, ReLU; loss = sum(r * y) for a fixed random r.
 * In libmmrec as one fused node per SAN (the cached states of all 13 layers
 * as input, as the reference reads them, and only the 7 kept ones), the
 * same tower built from one adapter node per layer and element-wise gate
 * ops (what fusing the tower saves; it also runs the head as two Linear
 * layers where the encoder uses the product of their weights), and in
 * PyTorch (bench/iisan_tower.py, the reference's modules, with the head
 * through the product of its weights as the encoder's). */
#include "bench_util.h"

#define ITEMS 704
#define LAYERS 13
#define KEPT 7
#define H 768
#define R 64
#define D 64

static mmrec_module *bench_encoder(mmrec_model *m) {
    mmrec_iisan_item_encoder_config c;
    BENCH_CHECK(mmrec_iisan_item_encoder_config_init(&c));
    c.mode = MMREC_IISAN_TEXT; /* hidden_dim 768, dim 64, adapter_dim 64, ReLU, stride 2 */
    mmrec_module *enc;
    BENCH_CHECK(mmrec_iisan_item_encoder_create(m, "enc", &c, &enc));
    return enc;
}

/* The unfused tower: per kept layer l, g = sigmoid(p / 0.1),
 * x = h + g (s_l - h) (= g s_l + (1 - g) h), h = Adapter(x); then the head
 * and the fusion. */
typedef struct bench_unfused {
    mmrec_module *adapter[KEPT], *fc_bert, *bert_pre_fc, *com_dense;
    mmrec_tensor *gate[KEPT];
} bench_unfused;

static void bench_unfused_create(mmrec_model *m, bench_unfused *u) {
    mmrec_adapter_config ac;
    BENCH_CHECK(mmrec_adapter_config_init(&ac));
    ac.dim = H;
    ac.bottleneck_dim = R;
    char name[64];
    int64_t one[1] = {1};
    for (int k = 0; k < KEPT; k++) {
        snprintf(name, sizeof name, "u.bert_adapter_list.%d", k);
        BENCH_CHECK(mmrec_adapter_create(m, name, &ac, &u->adapter[k]));
        snprintf(name, sizeof name, "u.side_gate_params_text.%d", k);
        BENCH_CHECK(mmrec_model_add_param(m, name, 1, one, &u->gate[k]));
    }
    mmrec_linear_config lc;
    BENCH_CHECK(mmrec_linear_config_init(&lc));
    lc.in_dim = lc.out_dim = H;
    BENCH_CHECK(mmrec_linear_create(m, "u.fc_bert", &lc, &u->fc_bert));
    lc.out_dim = D;
    BENCH_CHECK(mmrec_linear_create(m, "u.bert_pre_fc", &lc, &u->bert_pre_fc));
    lc.in_dim = D;
    BENCH_CHECK(mmrec_linear_create(m, "u.com_dense", &lc, &u->com_dense));
}

static void bench_unfused_forward(const bench_unfused *u, mmrec_tape *t, mmrec_tensor *states,
                                  mmrec_tensor **out) {
    int64_t flat[2] = {ITEMS, H};
    mmrec_tensor *h = NULL;
    for (int k = 0; k < KEPT; k++) {
        mmrec_tensor *s, *g, *x;
        BENCH_CHECK(mmrec_slice(t, states, 1, 2 * k, 1, &s));
        BENCH_CHECK(mmrec_reshape(t, s, 2, flat, &s));
        BENCH_CHECK(mmrec_scale(t, u->gate[k], 10.0f, &g));
        BENCH_CHECK(mmrec_sigmoid(t, g, &g));
        if (h == NULL) {
            BENCH_CHECK(mmrec_mul(t, s, g, &x));
        } else {
            BENCH_CHECK(mmrec_sub(t, s, h, &x));
            BENCH_CHECK(mmrec_mul(t, x, g, &x));
            BENCH_CHECK(mmrec_add(t, x, h, &x));
        }
        BENCH_CHECK(mmrec_adapter_forward(u->adapter[k], t, x, &h));
    }
    BENCH_CHECK(mmrec_linear_forward(u->fc_bert, t, h, &h));
    BENCH_CHECK(mmrec_linear_forward(u->bert_pre_fc, t, h, &h));
    BENCH_CHECK(mmrec_linear_forward(u->com_dense, t, h, out));
}

/* Median ms of `runs` steps (after 5 warm-up steps) of variant v: 0 fused
 * over 13 layers, 1 fused over the 7 kept, 2 unfused. */
static double bench_variant(int v, int runs, mmrec_model *m, mmrec_module *enc,
                            const bench_unfused *u, mmrec_tape *t, float *all, float *kept,
                            const float *r) {
    double *times = malloc((size_t)runs * sizeof *times);
    int64_t s_all[3] = {ITEMS, LAYERS, H}, s_kept[3] = {ITEMS, KEPT, H};
    for (int i = -5; i < runs; i++) {
        double t0 = bench_now_ms();
        mmrec_tensor *states, *y;
        BENCH_CHECK(mmrec_model_zero_grad(m));
        BENCH_CHECK(mmrec_tape_wrap(t, v == 1 ? kept : all, 3, v == 1 ? s_kept : s_all,
                                    MMREC_TENSOR_READONLY, &states));
        if (v == 2)
            bench_unfused_forward(u, t, states, &y);
        else
            BENCH_CHECK(mmrec_iisan_item_encoder_forward(enc, t, states, NULL, &y));
        BENCH_CHECK(mmrec_tape_backward_from(t, y, r));
        mmrec_tape_reset(t);
        if (i >= 0) times[i] = bench_now_ms() - t0;
    }
    double ms = bench_median(times, runs);
    free(times);
    return ms;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 30;
    BENCH_CHECK(mmrec_set_num_threads(bench_threads()));
    mmrec_model *m;
    BENCH_CHECK(mmrec_model_create(&m));
    mmrec_module *enc = bench_encoder(m);
    bench_unfused u;
    bench_unfused_create(m, &u);
    mmrec_tape *t;
    BENCH_CHECK(mmrec_tape_create(&t));
    float *all = malloc((size_t)ITEMS * LAYERS * H * sizeof *all);
    float *kept = malloc((size_t)ITEMS * KEPT * H * sizeof *kept);
    static float r[ITEMS * D];
    mmrec_rng *rng;
    BENCH_CHECK(mmrec_rng_create(0, &rng));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, all, (size_t)ITEMS * LAYERS * H));
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, r, ITEMS * D));
    for (size_t i = 0; i < ITEMS; i++)
        for (size_t k = 0; k < KEPT; k++)
            memcpy(kept + (i * KEPT + k) * H, all + (i * LAYERS + 2 * k) * H, H * sizeof *all);

    double fused = bench_variant(0, runs, m, enc, &u, t, all, kept, r);
    double fused_kept = bench_variant(1, runs, m, enc, &u, t, all, kept, r);
    double unfused = bench_variant(2, runs, m, enc, &u, t, all, kept, r);
    printf("iisan_tower c_ms_all_layers=%.3f c_ms_kept_layers=%.3f c_ms_unfused=%.3f "
           "threads=%d\n",
           fused, fused_kept, unfused, mmrec_get_num_threads());
    int rc = bench_report("iisan_tower", fused, runs);
    free(all);
    free(kept);
    mmrec_tape_destroy(t);
    mmrec_model_destroy(m);
    mmrec_rng_destroy(rng);
    return rc;
}
