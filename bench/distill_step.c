/* Benchmark distill_step: one training step of a two-tower student with KL
 * score distillation from a frozen joint-Transformer teacher (the step of
 * examples/distill.c).
 *
 * Data, fixed for the run: NUM_ITEMS = 20000 items (ids 1..NUM_ITEMS, 0 the
 * padding), a feature table [NUM_ITEMS + 1, 256] of N(0, 1) floats (row 0
 * zeros), wrapped read-only. A batch of B = 256 rows, each with HIST = 5
 * history ids (the first row of every 4 has 2 padding ids on the left) and
 * one target id; p_j, the sampling probabilities of the B targets,
 * log-uniform in [1e-5, 1e-2].
 *
 * Student (trained, Adam lr 1e-3): encode(mlp, id, ids) = mlp(features[ids])
 * + id(ids), each mlp 256 -> 128 -> 64 with ReLU between, each id table
 * [NUM_ITEMS + 1, 64] N(0, 0.01^2). Items v = encode(item, targets) [B, 64];
 * users u = user.mlp(sum_t w[b, t] encode(hist, hist ids)[b, t]) [B, 64],
 * w[b, t] = 1 / (real items of row b) at real positions, 0 at padding,
 * user.mlp 64 -> 128 -> 64. L_s = mmrec_loss_batch_softmax(u, v): cosine,
 * temperature 0.05, column bias -log p_j, accidental hits removed by the
 * targets' ids. Distillation scores over C = 8 candidates per row,
 * cand[b, c] = targets[(b + c) % B] (c = 0 the row's positive):
 * S[b, c] = cos(u_b, v_{(b + c) % B}) / 0.05.
 *
 * Teacher (frozen: its own model, no optimizer; its forward on a separate
 * inference tape): token e(i) = mlp(features[i]) + id(i) (mlp 256 -> 128 ->
 * 64 ReLU, id [NUM_ITEMS + 1, 64] N(0, 0.01^2)); the sequence of (b, c) is
 * [e(cand[b, c]), e(hist_b,1) .. e(hist_b,5)] + pos [6, 64] (N(0, 0.02^2)),
 * its key mask 0 at the padding history positions; one post-LN Transformer
 * encoder layer (dim 64, 2 heads, FFN 256, GELU, dropout 0.1, off at
 * inference) over all B * C = 2048 sequences; T[b, c] = head(out[b, c, 0])
 * with head a Linear 64 -> 1. Only the candidate's output is read, so the
 * layer computes its row alone (mmrec_transformer_forward_rows; the
 * history tokens cost only their keys and values), as the example does.
 * The reference runs both ways (bench/distill_step.py: the whole
 * nn.TransformerEncoderLayer, and the same layer's modules applied to the
 * candidate's row) and the comparison is with the faster
 * (ref_ms_full_layer=, ref_ms_rows=, ref_setting=). The history tokens are computed once per row
 * and the candidates' once per target, then gathered into [B * C, 6, 64].
 * T is copied out and wrapped on the student's tape.
 *
 * A step: the teacher's forward, the student's forward, loss = L_s +
 * mmrec_distill_kl(S, T) (defaults: T_s = T_t = 1, teacher detached,
 * batchmean KL(softmax(T) || softmax(S))), backward, Adam on the student.
 * bench/distill_step.py has the PyTorch counterpart.
 *
 * Both sides start from the same weights and inputs: this side writes the
 * features, the ids (as float32, exact below 2^24), -log p and the initial
 * parameters of the student, then of the teacher (mmrec_model_export_params,
 * creation order) as float32 to a temporary file whose path the counterpart
 * reads from MMREC_BENCH_DISTILL_DATA. Both run the same number of steps (5
 * warm-up, then the timed ones) and report the loss of the first step and
 * of the last; the counterpart reads this side's two losses from
 * MMREC_BENCH_DISTILL_LOSS and reports the relative differences in parts
 * per million (loss_first_diff_ppm=, loss_last_diff_ppm=). Also prints the
 * medians of the parts of a step: the teacher's forward (c_teacher_ms=),
 * the student's forward with both losses (c_student_ms=), the backward
 * (c_bwd_ms=) and the optimizer step (c_opt_ms=), the fastest step
 * (c_min_ms=), the CPU time of a step (c_cpu_ms=) and OPENBLAS_CORETYPE. */
#include "bench_util.h"

#include <math.h>
#include <unistd.h>

#define NUM_ITEMS 20000
#define FEAT 256
#define DIM 64
#define B 256
#define HIST 5
#define C 8
#define SEQ (HIST + 1)
#define TAU 0.05f
#define WARMUP 5

static void write_ids(FILE *f, const int64_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = (float)ids[i];
        bench_write_floats(f, &x, 1);
    }
}

static mmrec_module *mlp(mmrec_model *model, const char *name, int64_t in, int64_t hidden,
                         int64_t out) {
    int64_t sizes[3] = {in, hidden, out};
    mmrec_mlp_config cfg;
    BENCH_CHECK(mmrec_mlp_config_init(&cfg));
    cfg.sizes = sizes;
    cfg.num_sizes = 3;
    cfg.activation = MMREC_ACT_RELU;
    mmrec_module *m;
    BENCH_CHECK(mmrec_mlp_create(model, name, &cfg, &m));
    return m;
}

static mmrec_module *embedding(mmrec_model *model, const char *name, int64_t rows, float std) {
    mmrec_embedding_config cfg;
    BENCH_CHECK(mmrec_embedding_config_init(&cfg));
    cfg.num_rows = rows;
    cfg.dim = DIM;
    cfg.init_std = std;
    mmrec_module *m;
    BENCH_CHECK(mmrec_embedding_create(model, name, &cfg, &m));
    return m;
}

/* mlp(features[ids]) + id(ids), [n, DIM]. */
static mmrec_tensor *encode(mmrec_tape *tape, mmrec_tensor *features, mmrec_module *m,
                            mmrec_module *id, const int64_t *ids, size_t n) {
    mmrec_tensor *x, *h, *e, *out;
    BENCH_CHECK(mmrec_gather_rows(tape, features, ids, n, &x));
    BENCH_CHECK(mmrec_mlp_forward(m, tape, x, &h));
    BENCH_CHECK(mmrec_embedding_forward(id, tape, ids, n, &e));
    BENCH_CHECK(mmrec_add(tape, h, e, &out));
    return out;
}

static size_t export_params(const mmrec_model *model, float **out) {
    size_t n;
    BENCH_CHECK(mmrec_model_param_count(model, NULL, &n));
    *out = malloc(n * sizeof **out);
    BENCH_CHECK(mmrec_model_export_params(model, *out, n));
    return n;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 20;
    BENCH_CHECK(mmrec_set_num_threads(bench_threads()));

    /* the student */
    mmrec_model *student;
    BENCH_CHECK(mmrec_model_create(&student));
    BENCH_CHECK(mmrec_model_seed(student, 0));
    mmrec_module *item_mlp = mlp(student, "item.mlp", FEAT, 128, DIM);
    mmrec_module *item_id = embedding(student, "item.id", NUM_ITEMS + 1, 0.01f);
    mmrec_module *hist_mlp = mlp(student, "hist.mlp", FEAT, 128, DIM);
    mmrec_module *hist_id = embedding(student, "hist.id", NUM_ITEMS + 1, 0.01f);
    mmrec_module *user_mlp = mlp(student, "user.mlp", DIM, 128, DIM);
    mmrec_optimizer_config oc;
    BENCH_CHECK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = 1e-3f;
    mmrec_optimizer *opt;
    BENCH_CHECK(mmrec_optimizer_create(student, &oc, &opt));

    /* the teacher: a model of its own, which no optimizer touches */
    mmrec_model *teacher;
    BENCH_CHECK(mmrec_model_create(&teacher));
    BENCH_CHECK(mmrec_model_seed(teacher, 1));
    mmrec_module *t_mlp = mlp(teacher, "mlp", FEAT, 128, DIM);
    mmrec_module *t_id = embedding(teacher, "id", NUM_ITEMS + 1, 0.01f);
    embedding(teacher, "pos", SEQ, 0.02f);
    mmrec_tensor *t_pos;
    BENCH_CHECK(mmrec_model_param(teacher, "pos.weight", &t_pos));
    mmrec_transformer_config tc;
    BENCH_CHECK(mmrec_transformer_config_init(&tc));
    tc.dim = DIM;
    tc.num_heads = 2;
    tc.ffn_dim = 256;
    tc.dropout = 0.1f;
    tc.norm_first = 0;
    tc.activation = MMREC_ACT_GELU;
    mmrec_module *t_layer;
    BENCH_CHECK(mmrec_transformer_create(teacher, "layer", &tc, &t_layer));
    mmrec_linear_config lc;
    BENCH_CHECK(mmrec_linear_config_init(&lc));
    lc.in_dim = DIM;
    lc.out_dim = 1;
    mmrec_module *t_head;
    BENCH_CHECK(mmrec_linear_create(teacher, "head", &lc, &t_head));

    /* the data: features, the batch, -log p */
    mmrec_rng *rng;
    BENCH_CHECK(mmrec_rng_create(1, &rng));
    size_t n_feat = (size_t)(NUM_ITEMS + 1) * FEAT;
    float *feat = malloc(n_feat * sizeof *feat);
    memset(feat, 0, FEAT * sizeof *feat);
    BENCH_CHECK(mmrec_rng_normal(rng, 0, 1, feat + FEAT, n_feat - FEAT));
    int64_t fshape[2] = {NUM_ITEMS + 1, FEAT};
    mmrec_tensor *features;
    BENCH_CHECK(mmrec_tensor_wrap(feat, 2, fshape, MMREC_TENSOR_READONLY, &features));
    static int64_t hist[B * HIST], targets[B], tokens[B * HIST + B], seq_rows[B * C * SEQ],
        rep_rows[B * C], cand_rows[B * C];
    static float weights[B * HIST], key_mask[B * C * SEQ], neg_logq[B], t_scores[B * C];
    for (int b = 0; b < B; b++) {
        int pad = b % 4 == 0 ? 2 : 0;
        for (int t = 0; t < HIST; t++) {
            uint64_t r;
            BENCH_CHECK(mmrec_rng_below(rng, NUM_ITEMS, &r));
            hist[b * HIST + t] = t < pad ? 0 : (int64_t)r + 1;
            weights[b * HIST + t] = t < pad ? 0.0f : 1.0f / (float)(HIST - pad);
        }
        uint64_t r;
        BENCH_CHECK(mmrec_rng_below(rng, NUM_ITEMS, &r));
        targets[b] = (int64_t)r + 1;
    }
    BENCH_CHECK(mmrec_rng_uniform(rng, -5.0f, -2.0f, neg_logq, B));
    for (int j = 0; j < B; j++) neg_logq[j] = -(float)(neg_logq[j] * log(10.0)); /* -ln p_j */
    /* the teacher's tokens: the history, then the targets; its sequences
     * gather rows of them; the student's candidate pairs (b, (b + c) % B) */
    memcpy(tokens, hist, sizeof hist);
    memcpy(tokens + B * HIST, targets, sizeof targets);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            int64_t *row = seq_rows + ((size_t)b * C + c) * SEQ;
            float *mask = key_mask + ((size_t)b * C + c) * SEQ;
            row[0] = B * HIST + (b + c) % B; /* the candidate first */
            mask[0] = 1.0f;
            for (int t = 0; t < HIST; t++) {
                row[1 + t] = b * HIST + t;
                mask[1 + t] = hist[b * HIST + t] != 0;
            }
            rep_rows[b * C + c] = b;
            cand_rows[b * C + c] = (b + c) % B;
        }
    mmrec_batch_softmax_config sc;
    BENCH_CHECK(mmrec_batch_softmax_config_init(&sc));
    sc.normalize = 1;
    sc.temperature = TAU;
    sc.column_bias = neg_logq;
    sc.candidate_ids = targets;
    mmrec_twotower_config pc;
    BENCH_CHECK(mmrec_twotower_config_init(&pc));
    pc.score = MMREC_SCORE_COSINE;
    pc.temperature = TAU;

    /* the same start for the counterpart */
    float *s_params, *t_params;
    size_t n_s = export_params(student, &s_params), n_t = export_params(teacher, &t_params);
    char dir[] = "/tmp/mmrec-bench-XXXXXX", path[64];
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/distill.f32", dir);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    bench_write_floats(f, feat, n_feat);
    write_ids(f, hist, B * HIST);
    write_ids(f, targets, B);
    bench_write_floats(f, neg_logq, B);
    bench_write_floats(f, s_params, n_s);
    bench_write_floats(f, t_params, n_t);
    if (fclose(f) != 0) {
        perror(path);
        return 1;
    }
    setenv("MMREC_BENCH_DISTILL_DATA", path, 1);

    mmrec_tape *tape, *t_tape;
    BENCH_CHECK(mmrec_tape_create(&tape));
    BENCH_CHECK(mmrec_tape_create(&t_tape));
    BENCH_CHECK(mmrec_tape_set_mode(t_tape, MMREC_TAPE_INFERENCE));
    int64_t s_seq[3] = {B * C, SEQ, DIM}, s_mask[2] = {B * C, SEQ}, s_w[3] = {B, HIST, 1},
            s_h[3] = {B, HIST, DIM}, s_bc[2] = {B, C}, s_cand[2] = {B * C, DIM};
    double *times = malloc((size_t)runs * sizeof *times);
    double *tea = malloc((size_t)runs * sizeof *tea);
    double *stu = malloc((size_t)runs * sizeof *stu);
    double *bwd = malloc((size_t)runs * sizeof *bwd);
    double *optt = malloc((size_t)runs * sizeof *optt);
    double *cpu = malloc((size_t)runs * sizeof *cpu);
    float loss_first = 0, loss_last = 0;
    for (int r = -WARMUP; r < runs; r++) {
        double t0 = bench_now_ms(), c0 = bench_cpu_ms();
        /* the teacher's scores T [B, C] */
        mmrec_tensor *e, *x, *m, *y;
        e = encode(t_tape, features, t_mlp, t_id, tokens, B * HIST + B);
        BENCH_CHECK(mmrec_gather_rows(t_tape, e, seq_rows, B * C * SEQ, &x));
        BENCH_CHECK(mmrec_reshape(t_tape, x, 3, s_seq, &x));
        BENCH_CHECK(mmrec_add(t_tape, x, t_pos, &x));
        BENCH_CHECK(mmrec_tape_wrap(t_tape, key_mask, 2, s_mask, MMREC_TENSOR_READONLY, &m));
        BENCH_CHECK(mmrec_transformer_forward_rows(t_layer, t_tape, x, m, 1, &y));
        BENCH_CHECK(mmrec_reshape(t_tape, y, 2, s_cand, &y));
        BENCH_CHECK(mmrec_linear_forward(t_head, t_tape, y, &y));
        BENCH_CHECK(mmrec_tensor_copy_to(y, t_scores, B * C));
        mmrec_tape_reset(t_tape);
        double t1 = bench_now_ms();

        /* the student */
        mmrec_tensor *v, *h, *w, *u, *ls, *ur, *vr, *s, *tt, *kl, *loss;
        v = encode(tape, features, item_mlp, item_id, targets, B);
        h = encode(tape, features, hist_mlp, hist_id, hist, B * HIST);
        BENCH_CHECK(mmrec_reshape(tape, h, 3, s_h, &h));
        BENCH_CHECK(mmrec_tape_wrap(tape, weights, 3, s_w, MMREC_TENSOR_READONLY, &w));
        BENCH_CHECK(mmrec_mul(tape, h, w, &h));
        BENCH_CHECK(mmrec_sum(tape, h, 1, &h));
        BENCH_CHECK(mmrec_mlp_forward(user_mlp, tape, h, &u));
        BENCH_CHECK(mmrec_loss_batch_softmax(tape, u, v, &sc, &ls));
        BENCH_CHECK(mmrec_gather_rows(tape, u, rep_rows, B * C, &ur));
        BENCH_CHECK(mmrec_gather_rows(tape, v, cand_rows, B * C, &vr));
        BENCH_CHECK(mmrec_twotower_score_paired(tape, ur, vr, &pc, &s));
        BENCH_CHECK(mmrec_reshape(tape, s, 2, s_bc, &s));
        BENCH_CHECK(mmrec_tape_wrap(tape, t_scores, 2, s_bc, MMREC_TENSOR_READONLY, &tt));
        BENCH_CHECK(mmrec_distill_kl(tape, s, tt, NULL, &kl));
        BENCH_CHECK(mmrec_add(tape, ls, kl, &loss));
        double t2 = bench_now_ms();
        BENCH_CHECK(mmrec_tape_backward(tape, loss));
        double t3 = bench_now_ms();
        BENCH_CHECK(mmrec_optimizer_step(opt));
        double t4 = bench_now_ms();
        const float *lv;
        BENCH_CHECK(mmrec_tensor_data_const(loss, &lv));
        if (r == -WARMUP) loss_first = lv[0];
        loss_last = lv[0];
        mmrec_tape_reset(tape);
        if (r >= 0) {
            times[r] = bench_now_ms() - t0;
            cpu[r] = bench_cpu_ms() - c0;
            tea[r] = t1 - t0;
            stu[r] = t2 - t1;
            bwd[r] = t3 - t2;
            optt[r] = t4 - t3;
        }
    }
    double c_ms = bench_median(times, runs), c_min = times[0];
    for (int r = 1; r < runs; r++) c_min = times[r] < c_min ? times[r] : c_min;
    const char *core = getenv("OPENBLAS_CORETYPE");
    char extra[512];
    snprintf(extra, sizeof extra,
             "c_teacher_ms=%.3f c_student_ms=%.3f c_bwd_ms=%.3f c_opt_ms=%.3f c_min_ms=%.3f "
             "c_cpu_ms=%.3f c_loss_first=%.6f c_loss_last=%.6f openblas_coretype=%s",
             bench_median(tea, runs), bench_median(stu, runs), bench_median(bwd, runs),
             bench_median(optt, runs), c_min, bench_median(cpu, runs), loss_first, loss_last,
             core ? core : "default");
    char losses[64];
    snprintf(losses, sizeof losses, "%.9g %.9g", loss_first, loss_last);
    setenv("MMREC_BENCH_DISTILL_LOSS", losses, 1);
    static const char *const envs[2] = {"MMREC_BENCH_DISTILL_TEACHER=full ",
                                        "MMREC_BENCH_DISTILL_TEACHER=rows "};
    static const char *const labels[2] = {"full_layer", "rows"};
    int rc = bench_report_settings("distill_step", c_ms, runs, extra,
                                   "ref_teacher_ms ref_student_ms ref_loss_first ref_loss_last "
                                   "loss_first_diff_ppm loss_last_diff_ppm",
                                   envs, labels, 2);
    unlink(path);
    rmdir(dir);
    free(times);
    free(tea);
    free(stu);
    free(bwd);
    free(optt);
    free(cpu);
    free(s_params);
    free(t_params);
    mmrec_tensor_destroy(features);
    free(feat);
    mmrec_rng_destroy(rng);
    mmrec_tape_destroy(t_tape);
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(teacher);
    mmrec_model_destroy(student);
    return rc;
}
