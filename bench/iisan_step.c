/* Benchmark iisan_step: one IISAN training step with cached CLS states
 * (bench/iisan_step.py has the PyTorch counterpart, the reference's code):
 * 64 users x (10 inputs + target) with left padding, lengths drawn like
 * Amazon Scientific's training sequences, ids from a 20,000-item catalogue
 * with popularity from counts (8 batches, cycled; the same as the Python
 * side's); per item the CLS states of 13 layers of a text and an image
 * backbone in a float16 feature cache, of which the 7 kept layers (0, 2,
 * .., 12) are gathered; the intra+inter item encoder (d = 64, adapters
 * 768 -> 64 -> 768); the sequence encoder (2 blocks, 2 heads, dropout
 * 0.1); the debiased in-batch cross-entropy; Adam with the reference's
 * learning-rate groups. Padding (id 0, not in the cache) gathers as zero
 * states, as the reference's. Each head runs through the product of its two
 * weights (iisan.h), and so does the PyTorch side: the same maths on both.
 * Reports the gather's time and share of the step, the fastest step
 * (c_min_ms) and the CPU time of a step (c_cpu_ms) besides the medians: on
 * a shared machine they show what waiting for the cores adds.
 *
 * The cache is written to a temporary file at start by a child process
 * (its float32 source, 800 MB, does not count in this process's peak RSS);
 * the step reads it through the mapping. c_peak_rss_mib counts the mapped
 * file's pages (799 MB, shared and clean: opening the cache reads every
 * page to verify its checksums); ref_peak_rss_mib counts PyTorch's float32
 * tables of the kept layers (860 MB). */
#include "bench_util.h"

#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#define USERS 64
#define T 10
#define L (T + 1)
#define ROWS (USERS * L)
#define LAYERS 13
#define H 768
#define D 64
#define N_ITEMS 20000
#define N_BATCHES 8

/* ---- the batches (bench/iisan_step.py builds the same) ---- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Interaction counts of items 1..N_ITEMS: count(i) = 1 + floor(400 / i^0.75). */
static int64_t item_count(int64_t i) { return 1 + (int64_t)(400.0 / pow((double)i, 0.75)); }

/* Amazon Scientific's users by history length (13: the longer ones, cut
 * to their last 13); a training sequence drops the last two items. */
static const int hist_len[9] = {5, 6, 7, 8, 9, 10, 11, 12, 13};
static const int64_t hist_users[9] = {4892, 2652, 1465, 895, 609, 356, 300, 208, 699};

static void make_batches(int64_t ids[N_BATCHES][ROWS], float masks[N_BATCHES][USERS * T],
                         float *popularity) {
    static int64_t cum[N_ITEMS];
    int64_t total = 0, users_total = 0;
    popularity[0] = 1.0f; /* padding; not read */
    for (int64_t i = 1; i <= N_ITEMS; i++) {
        total += item_count(i);
        cum[i - 1] = total;
    }
    for (int64_t i = 1; i <= N_ITEMS; i++) popularity[i] = (float)item_count(i) / (float)total;
    for (int h = 0; h < 9; h++) users_total += hist_users[h];
    uint64_t s = 12345;
    for (int bt = 0; bt < N_BATCHES; bt++) {
        for (int u = 0; u < USERS; u++) {
            uint64_t v = splitmix64(&s) % (uint64_t)users_total;
            int h = 0;
            while (v >= (uint64_t)hist_users[h]) v -= (uint64_t)hist_users[h++];
            int n = hist_len[h] - 2;
            int64_t *row = ids[bt] + u * L;
            for (int p = 0; p < L - n; p++) row[p] = 0;
            for (int p = L - n; p < L; p++) {
                uint64_t x = splitmix64(&s) % (uint64_t)total;
                size_t lo = 0, hi = N_ITEMS; /* first cum > x */
                while (lo < hi) {
                    size_t mid = (lo + hi) / 2;
                    if ((uint64_t)cum[mid] <= x) lo = mid + 1;
                    else hi = mid;
                }
                row[p] = (int64_t)lo + 1;
            }
            for (int t = 0; t < T; t++) masks[bt][u * T + t] = row[t] != 0 ? 1.0f : 0.0f;
        }
    }
}

/* ---- the cache ---- */

/* Writes items 1..N_ITEMS with "text" and "image" [13, 768] float16
 * records, N(0, 1), to `path`, in a child process. */
static void write_cache(const char *path) {
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        size_t n = (size_t)N_ITEMS * LAYERS * H;
        float *data = malloc(n * sizeof *data);
        int64_t *ids = malloc(N_ITEMS * sizeof *ids);
        if (data == NULL || ids == NULL) _exit(1);
        for (int64_t i = 0; i < N_ITEMS; i++) ids[i] = i + 1;
        mmrec_rng *rng;
        mmrec_cache_writer *w;
        BENCH_CHECK(mmrec_rng_create(7, &rng));
        BENCH_CHECK(mmrec_cache_writer_create(path, ids, N_ITEMS, &w));
        const char *fields[2] = {"text", "image"};
        for (int f = 0; f < 2; f++) {
            BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, data, n));
            BENCH_CHECK(mmrec_cache_writer_add_layers(w, fields[f], MMREC_CACHE_F16, data,
                                                      LAYERS, H));
        }
        BENCH_CHECK(mmrec_cache_writer_commit(w));
        mmrec_cache_writer_destroy(w);
        mmrec_rng_destroy(rng);
        _exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "iisan_step: writing the cache failed\n");
        exit(1);
    }
}

/* ---- the model ---- */

typedef struct bench_model {
    mmrec_model *m;
    mmrec_module *enc, *user;
} bench_model;

static void bench_model_create(bench_model *b) {
    BENCH_CHECK(mmrec_model_create(&b->m));
    mmrec_iisan_item_encoder_config ic;
    BENCH_CHECK(mmrec_iisan_item_encoder_config_init(&ic)); /* the reference's defaults */
    BENCH_CHECK(mmrec_iisan_item_encoder_create(b->m, "enc", &ic, &b->enc));
    mmrec_sequence_encoder_config sc;
    BENCH_CHECK(mmrec_sequence_encoder_config_init(&sc));
    sc.dim = D;
    sc.max_length = T;
    sc.activation = MMREC_ACT_RELU;
    BENCH_CHECK(mmrec_sequence_encoder_create(b->m, "user", &sc, &b->user));
}

/* The reference's Adam groups (run.py's name rules on its parameter
 * names): everything 2e-4 (sequence encoder, cv_pre_fc, bert_pre_fc,
 * fc_mm, fc_mm_down, the text and inter gates, com_dense) but the
 * adapters 1e-4, the image head's first layer and the image gates 1e-4,
 * the text head's first layer 5e-5. */
static mmrec_optimizer *bench_optimizer(mmrec_model *m) {
    mmrec_optimizer_config oc;
    BENCH_CHECK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = 2e-4f;
    mmrec_optimizer *opt;
    BENCH_CHECK(mmrec_optimizer_create(m, &oc, &opt));
    static const struct {
        const char *prefix;
        float lr;
    } groups[] = {{"enc.cv_adapter_list", 1e-4f},   {"enc.bert_adapter_list", 1e-4f},
                  {"enc.mm_adapter_list", 1e-4f},   {"enc.fc_cv", 1e-4f},
                  {"enc.side_gate_params_cv", 1e-4f}, {"enc.fc_bert", 5e-5f}};
    for (size_t g = 0; g < sizeof groups / sizeof *groups; g++)
        BENCH_CHECK(mmrec_optimizer_add_group(opt, groups[g].prefix, groups[g].lr, 0.0f, NULL));
    return opt;
}

typedef struct bench_step {
    const mmrec_cache *cache;
    const mmrec_cache_gather_config *gc;
    const mmrec_sequence_softmax_config *lc;
    bench_model *b;
    mmrec_optimizer *opt;
    mmrec_tape *tape;
} bench_step;

/* One step on batch (ids, mask); returns the gather's ms in *gather_ms. */
static void step(const bench_step *s, const int64_t *ids, float *mask, double *gather_ms) {
    mmrec_tape *t = s->tape;
    double t0 = bench_now_ms();
    mmrec_tensor *text, *image, *items, *inputs, *m, *states, *loss;
    BENCH_CHECK(mmrec_cache_gather_layers(s->cache, t, "text", ids, ROWS, s->gc, &text, NULL));
    BENCH_CHECK(mmrec_cache_gather_layers(s->cache, t, "image", ids, ROWS, s->gc, &image, NULL));
    *gather_ms = bench_now_ms() - t0;
    int64_t shape4[4] = {USERS, L, 7, H}, shape_m[2] = {USERS, T};
    BENCH_CHECK(mmrec_reshape(t, text, 4, shape4, &text));
    BENCH_CHECK(mmrec_reshape(t, image, 4, shape4, &image));
    BENCH_CHECK(mmrec_iisan_item_encoder_forward(s->b->enc, t, text, image, &items));
    BENCH_CHECK(mmrec_slice(t, items, 1, 0, T, &inputs));
    BENCH_CHECK(mmrec_tape_wrap(t, mask, 2, shape_m, MMREC_TENSOR_READONLY, &m));
    BENCH_CHECK(mmrec_sequence_encoder_forward(s->b->user, t, inputs, m, &states, NULL));
    BENCH_CHECK(mmrec_loss_sequence_softmax(t, states, items, ids, ROWS, s->lc, &loss));
    BENCH_CHECK(mmrec_tape_backward(t, loss));
    BENCH_CHECK(mmrec_optimizer_step(s->opt));
    mmrec_tape_reset(t);
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 30;
    char dir[] = "/tmp/mmrec-bench-XXXXXX", path[64];
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/iisan.mmfc", dir);
    write_cache(path); /* before any thread of the library starts */

    BENCH_CHECK(mmrec_set_num_threads(bench_threads()));
    static int64_t ids[N_BATCHES][ROWS];
    static float masks[N_BATCHES][USERS * T], popularity[N_ITEMS + 1];
    make_batches(ids, masks, popularity);
    mmrec_cache *cache;
    BENCH_CHECK(mmrec_cache_open(path, &cache));
    static const int64_t keep[7] = {0, 2, 4, 6, 8, 10, 12};
    mmrec_cache_gather_config gc;
    BENCH_CHECK(mmrec_cache_gather_config_init(&gc));
    gc.flags = MMREC_CACHE_MISSING_ZERO; /* padding (id 0): zero states, as the reference */
    gc.keep = keep;
    gc.n_keep = 7;
    mmrec_sequence_softmax_config lc;
    BENCH_CHECK(mmrec_sequence_softmax_config_init(&lc));
    lc.popularity = popularity;
    lc.num_items = N_ITEMS + 1;
    bench_model b;
    bench_model_create(&b);
    mmrec_tape *tape;
    BENCH_CHECK(mmrec_tape_create(&tape));
    BENCH_CHECK(mmrec_tape_seed(tape, 1));
    bench_step s = {cache, &gc, &lc, &b, bench_optimizer(b.m), tape};

    double *times = malloc((size_t)runs * sizeof *times);
    double *gathers = malloc((size_t)runs * sizeof *gathers);
    double *cpu = malloc((size_t)runs * sizeof *cpu);
    for (int i = -5; i < runs; i++) {
        int bt = (i + 5) % N_BATCHES;
        double g, t0 = bench_now_ms(), c0 = bench_cpu_ms();
        step(&s, ids[bt], masks[bt], &g);
        if (i >= 0) {
            times[i] = bench_now_ms() - t0;
            cpu[i] = bench_cpu_ms() - c0;
            gathers[i] = g;
        }
    }
    double c_ms = bench_median(times, runs), gather_ms = bench_median(gathers, runs);
    double c_cpu = bench_median(cpu, runs), c_min = times[0];
    for (int i = 1; i < runs; i++) c_min = times[i] < c_min ? times[i] : c_min;
    char extra[256];
    const char *core = getenv("OPENBLAS_CORETYPE");
    snprintf(extra, sizeof extra,
             "gather_ms=%.3f gather_share=%.3f c_min_ms=%.3f c_cpu_ms=%.3f openblas_coretype=%s",
             gather_ms, gather_ms / c_ms, c_min, c_cpu, core ? core : "default");
    int rc = bench_report_fields("iisan_step", c_ms, runs, extra, "ref_gather_ms");
    free(times);
    free(gathers);
    free(cpu);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(s.opt);
    mmrec_model_destroy(b.m);
    mmrec_cache_close(cache);
    unlink(path);
    rmdir(dir);
    return rc;
}
