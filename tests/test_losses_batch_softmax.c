/* The batch softmax loss: PyTorch golden vectors, gradients of every
 * option, agreement with a double-precision reference at sizes that take
 * several blocks and threads, the equivalences with CIC and InfoNCE, bad
 * input, config sizes, steady-state allocation and allocation failures. */
#include "mt.h"
#include "losses/losses_internal.h" /* the tape's record, to see a failed call change nothing */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

MT_SUITE(batch_softmax_suite)

static float mt_value(mmrec_tensor *t) {
    const float *d;
    MT_OK(mmrec_tensor_data_const(t, &d));
    return d[0];
}

/* ---- golden ---- */

START_TEST(test_batch_softmax_golden) {
    mt_golden g;
    mt_golden_load(&g, "batch_softmax.bin");
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int cases = 0;
    for (size_t a = 0; a < g.n; a++) {
        const char *nm = g.arrays[a].name;
        size_t len = strlen(nm);
        if (len < 5 || strcmp(nm + len - 4, ".cfg") != 0) continue;
        char kase[64];
        memcpy(kase, nm, len - 4);
        kase[len - 4] = '\0';
        const float *cfgv = g.arrays[a].data;
        const mt_array *q, *c;
        char name[128];
        snprintf(name, sizeof name, "%s.q", kase);
        q = mt_golden_get(&g, name);
        snprintf(name, sizeof name, "%s.c", kase);
        c = mt_golden_get(&g, name);
        size_t B = (size_t)q->shape[0], N = (size_t)c->shape[0];
        mmrec_batch_softmax_config cfg;
        MT_OK(mmrec_batch_softmax_config_init(&cfg));
        cfg.temperature = cfgv[0];
        cfg.normalize = (int)cfgv[1];
        cfg.symmetric = (int)cfgv[2];
        cfg.weight_mean = (int)cfgv[3];
        mt_bsm_buffers buf;
        mt_golden_bsm_options(&g, kase, B, N, &cfg, &buf);
        mmrec_tensor *tq = mt_tape_tensor(tape, 2, q->shape, q->data, MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *tc = mt_tape_tensor(tape, 2, c->shape, c->data, MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *loss;
        MT_OK(mmrec_loss_batch_softmax(tape, tq, tc, &cfg, &loss));
        snprintf(name, sizeof name, "%s.y", kase);
        float y = mt_value(loss);
        mt_assert_close(name, &y, mt_golden_get(&g, name)->data, 1, 0, 0);
        MT_OK(mmrec_tape_backward(tape, loss));
        snprintf(name, sizeof name, "%s.dq", kase);
        mt_close_scaled(name, mt_grad_of(tq), mt_golden_get(&g, name)->data, q->numel);
        snprintf(name, sizeof name, "%s.dc", kase);
        mt_close_scaled(name, mt_grad_of(tc), mt_golden_get(&g, name)->data, c->numel);
        mmrec_tape_reset(tape);
        cases++;
    }
    ck_assert_int_ge(cases, 7);
    mmrec_tape_destroy(tape);
    mt_golden_free(&g);
}
END_TEST

/* ---- gradients of every option ---- */

typedef struct mt_bsm_case {
    mmrec_batch_softmax_config cfg;
    bool same; /* queries and candidates are one tensor */
} mt_bsm_case;

static mmrec_status mt_bsm_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    const mt_bsm_case *k = ctx;
    return mmrec_loss_batch_softmax(tape, in[0], k->same ? in[0] : in[1], &k->cfg, out);
}

static mt_bsm_case mt_bsm_cfg(float tau, int normalize) {
    mt_bsm_case k = {.same = false};
    MT_OK(mmrec_batch_softmax_config_init(&k.cfg));
    k.cfg.temperature = tau;
    k.cfg.normalize = normalize;
    return k;
}

START_TEST(test_batch_softmax_gradients) {
    enum { B = 5, N = 8, D = 4 };
    float q[B * D], c[N * D], bias[N];
    mt_fill_uniform(q, B * D, -1, 1, 11);
    mt_fill_uniform(c, N * D, -1, 1, 12);
    mt_fill_uniform(bias, N, -1, 1, 13);
    int64_t pos[B] = {3, 0, 7, 3, 5};
    int64_t ids[N] = {4, 9, 4, 7, 1, 9, 2, 5};
    uint8_t mask[B * N];
    float w[B] = {1.0f, 0.0f, 2.5f, 0.5f, 1.0f};
    uint64_t s = 5;
    for (int i = 0; i < B * N; i++) mask[i] = mt_lcg(&s) % 4 != 0;
    mt_input in[2] = {{2, {B, D}, q, false}, {2, {N, D}, c, false}};
    mt_input sq[2] = {{2, {B, D}, q, false}, {2, {B, D}, c, false}}; /* N == B */

    mt_bsm_case k = mt_bsm_cfg(0.7f, 0);
    mt_gradcheck("plain", mt_bsm_fwd, &k, in, 2, NULL, NULL);
    k = mt_bsm_cfg(0.3f, 1);
    mt_gradcheck("normalize", mt_bsm_fwd, &k, in, 2, NULL, NULL);
    k = mt_bsm_cfg(0.5f, 0);
    k.cfg.column_bias = bias;
    mt_gradcheck("bias", mt_bsm_fwd, &k, in, 2, NULL, NULL);
    k.cfg.positives = pos; /* columns 1, 2, 4, 6 are every row's extra negatives */
    mt_gradcheck("positives with extra columns", mt_bsm_fwd, &k, in, 2, NULL, NULL);
    k.cfg.candidate_ids = ids;
    mt_gradcheck("accidental hits", mt_bsm_fwd, &k, in, 2, NULL, NULL);
    k.cfg.candidate_ids = NULL;
    k.cfg.mask = mask;
    mt_gradcheck("mask", mt_bsm_fwd, &k, in, 2, NULL, NULL);
    k = mt_bsm_cfg(0.4f, 1);
    k.cfg.row_weights = w;
    mt_gradcheck("weights", mt_bsm_fwd, &k, in, 2, NULL, NULL);
    k.cfg.weight_mean = 1;
    mt_gradcheck("weights with weight_mean", mt_bsm_fwd, &k, in, 2, NULL, NULL);
    k = mt_bsm_cfg(0.5f, 0);
    k.cfg.symmetric = 1;
    mt_gradcheck("symmetric", mt_bsm_fwd, &k, sq, 2, NULL, NULL);
    k.cfg.column_bias = bias;
    mt_gradcheck("symmetric with bias", mt_bsm_fwd, &k, sq, 2, NULL, NULL);
    k = mt_bsm_cfg(0.5f, 1);
    k.cfg.symmetric = 1;
    k.cfg.column_bias = bias;
    k.cfg.candidate_ids = ids;
    k.cfg.mask = mask; /* its first [B, B] entries, row stride B */
    k.cfg.row_weights = w;
    k.cfg.weight_mean = 1;
    mt_gradcheck("symmetric, every option", mt_bsm_fwd, &k, sq, 2, NULL, NULL);
    /* one tensor on both sides: both gradients land in one buffer */
    int64_t perm[B] = {2, 0, 4, 1, 3};
    k = mt_bsm_cfg(0.5f, 1);
    k.cfg.positives = perm;
    k.same = true;
    mt_gradcheck("queries are the candidates", mt_bsm_fwd, &k, sq, 1, NULL, NULL);
}
END_TEST

/* ---- double-precision reference ---- */

typedef struct mt_ref {
    double loss;
    double *dq, *dc; /* [B * d], [N * d] */
} mt_ref;

/* Direction of the loss over scores a b^T / tau (+ bias_j), row i's
 * positive pos[i], keep(i, j) from mask[i * n + j], ids and the positive;
 * adds coef_i d l_i into da, db (of the scored rows). */
static double mt_ref_direction(const double *a, const double *b, size_t B, size_t n, size_t d,
                               double tau, const float *bias, const int64_t *pos,
                               const int64_t *ids, const uint8_t *mask, const double *coef,
                               double *da, double *db) {
    double total = 0, *s = malloc(n * sizeof *s);
    bool *keep = malloc(n * sizeof *keep);
    for (size_t i = 0; i < B; i++) {
        size_t p = pos ? (size_t)pos[i] : i;
        double mx = -INFINITY;
        for (size_t j = 0; j < n; j++) {
            double dot = 0;
            for (size_t e = 0; e < d; e++) dot += a[i * d + e] * b[j * d + e];
            s[j] = dot / tau + (bias ? bias[j] : 0.0);
            keep[j] = j == p || ((!mask || mask[i * n + j]) && (!ids || ids[j] != ids[p]));
            if (keep[j] && s[j] > mx) mx = s[j];
        }
        double sum = 0;
        for (size_t j = 0; j < n; j++)
            if (keep[j]) sum += exp(s[j] - mx);
        total += coef[i] * (log(sum) - (s[p] - mx));
        for (size_t j = 0; j < n; j++) {
            double g = coef[i] * ((keep[j] ? exp(s[j] - mx) / sum : 0.0) - (j == p ? 1.0 : 0.0));
            for (size_t e = 0; e < d; e++) {
                da[i * d + e] += g * b[j * d + e] / tau;
                db[j * d + e] += g * a[i * d + e] / tau;
            }
        }
    }
    free(s);
    free(keep);
    return total;
}

static void mt_ref_run(const float *q, const float *c, size_t B, size_t n, size_t d,
                       const mmrec_batch_softmax_config *cfg, mt_ref *out) {
    double *a = malloc(B * d * sizeof *a), *b = malloc(n * d * sizeof *b);
    double *da = calloc(B * d, sizeof *da), *db = calloc(n * d, sizeof *db);
    double *na = malloc(B * sizeof *na), *nb = malloc(n * sizeof *nb);
    for (int side = 0; side < 2; side++) {
        const float *x = side ? c : q;
        double *y = side ? b : a, *norm = side ? nb : na;
        size_t rows = side ? n : B;
        for (size_t r = 0; r < rows; r++) {
            double ss = 0;
            for (size_t e = 0; e < d; e++) ss += (double)x[r * d + e] * x[r * d + e];
            norm[r] = sqrt(ss);
            for (size_t e = 0; e < d; e++)
                y[r * d + e] = cfg->normalize ? x[r * d + e] / fmax(norm[r], 1e-12) : x[r * d + e];
        }
    }
    double *coef = malloc(B * sizeof *coef), wsum = 0;
    for (size_t i = 0; i < B; i++) wsum += cfg->row_weights ? cfg->row_weights[i] : 1.0;
    for (size_t i = 0; i < B; i++)
        coef[i] = (cfg->row_weights ? cfg->row_weights[i] : 1.0) /
                  (cfg->weight_mean ? wsum : (double)B) * (cfg->symmetric ? 0.5 : 1.0);
    out->loss = mt_ref_direction(a, b, B, n, d, cfg->temperature, cfg->column_bias,
                                 cfg->positives, cfg->candidate_ids, cfg->mask, coef, da, db);
    if (cfg->symmetric)
        out->loss += mt_ref_direction(b, a, B, n, d, cfg->temperature, cfg->column_bias, NULL,
                                      cfg->candidate_ids, cfg->mask, coef, db, da);
    out->dq = calloc(B * d, sizeof *out->dq);
    out->dc = calloc(n * d, sizeof *out->dc);
    for (int side = 0; side < 2; side++) {
        const double *y = side ? b : a, *g = side ? db : da, *norm = side ? nb : na;
        double *dx = side ? out->dc : out->dq;
        size_t rows = side ? n : B;
        for (size_t r = 0; r < rows; r++) {
            double dot = 0;
            for (size_t e = 0; e < d; e++) dot += g[r * d + e] * y[r * d + e];
            for (size_t e = 0; e < d; e++)
                dx[r * d + e] = cfg->normalize ? (g[r * d + e] - y[r * d + e] * dot) / norm[r]
                                               : g[r * d + e];
        }
    }
    free(a), free(b), free(da), free(db), free(na), free(nb), free(coef);
}

static void mt_ref_compare(const char *what, const float *got, const double *want, size_t n) {
    double scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= 2e-5 * fabs(want[i]) + 2e-5 * scale,
                      "%s[%zu]: got %.9g, reference %.9g", what, i, (double)got[i], want[i]);
}

/* Loss and both gradients of one call (fresh tape) into loss, dq, dc. */
static void mt_bsm_run(const float *q, const float *c, size_t B, size_t n, size_t d,
                       const mmrec_batch_softmax_config *cfg, float *loss, float *dq, float *dc) {
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t sq[2] = {(int64_t)B, (int64_t)d}, sc[2] = {(int64_t)n, (int64_t)d};
    mmrec_tensor *tq = mt_tape_tensor(tape, 2, sq, q, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tc = mt_tape_tensor(tape, 2, sc, c, MMREC_TENSOR_REQUIRES_GRAD), *l;
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc, cfg, &l));
    MT_OK(mmrec_tape_backward(tape, l));
    *loss = mt_value(l);
    memcpy(dq, mt_grad_of(tq), B * d * sizeof *dq);
    memcpy(dc, mt_grad_of(tc), n * d * sizeof *dc);
    mmrec_tape_destroy(tape);
}

/* Sizes that take several row blocks per thread (256 rows each here), a
 * block start inside a mask word, one and two threads: every option against
 * the reference, and two runs bitwise equal. */
START_TEST(test_batch_softmax_matches_reference_over_blocks_and_threads) {
    enum { B = 600, N = 700, D = 7 };
    float *q = malloc(B * D * sizeof *q), *c = malloc(N * D * sizeof *c);
    float bias[N], w[B];
    int64_t pos[B], ids[N];
    uint8_t *mask = malloc(B * N);
    mt_fill_uniform(q, B * D, -1, 1, 21);
    mt_fill_uniform(c, N * D, -1, 1, 22);
    mt_fill_uniform(bias, N, 0, 3, 23);
    mt_fill_uniform(w, B, 0, 2, 24);
    uint64_t s = 9;
    for (int i = 0; i < B; i++) pos[i] = (int64_t)(mt_lcg(&s) % N);
    for (int j = 0; j < N; j++) ids[j] = (int64_t)(mt_lcg(&s) % 500);
    for (int i = 0; i < B * N; i++) mask[i] = mt_lcg(&s) % 5 != 0;
    float *dq = malloc(B * D * sizeof *dq), *dc = malloc(N * D * sizeof *dc);
    float *dq2 = malloc(B * D * sizeof *dq2), *dc2 = malloc(N * D * sizeof *dc2);
    for (int threads = 1; threads <= 2; threads++) {
        MT_OK(mmrec_set_num_threads(threads));
        for (int variant = 0; variant < 4; variant++) {
            /* one and both directions, with every option and without the
             * pair removals (the kernels' other loops) */
            int sym = variant & 1, removals = variant < 2;
            mmrec_batch_softmax_config cfg;
            MT_OK(mmrec_batch_softmax_config_init(&cfg));
            cfg.temperature = 0.2f;
            cfg.normalize = removals;
            cfg.column_bias = bias;
            cfg.candidate_ids = removals ? ids : NULL;
            cfg.mask = removals ? mask : NULL;
            cfg.row_weights = w;
            cfg.weight_mean = removals;
            cfg.symmetric = sym;
            cfg.positives = sym ? NULL : pos;
            size_t n = sym ? B : N;
            mt_ref ref;
            mt_ref_run(q, c, B, n, D, &cfg, &ref);
            float loss, loss2;
            mt_bsm_run(q, c, B, n, D, &cfg, &loss, dq, dc);
            ck_assert_msg(fabs(loss - ref.loss) <= 1e-5 * fabs(ref.loss), "loss %.9g vs %.9g",
                          (double)loss, ref.loss);
            mt_ref_compare("dq", dq, ref.dq, B * D);
            mt_ref_compare("dc", dc, ref.dc, n * D);
            mt_bsm_run(q, c, B, n, D, &cfg, &loss2, dq2, dc2);
            ck_assert(memcmp(&loss, &loss2, sizeof loss) == 0);
            ck_assert(memcmp(dq, dq2, B * D * sizeof *dq) == 0);
            ck_assert(memcmp(dc, dc2, n * D * sizeof *dc) == 0);
            free(ref.dq);
            free(ref.dc);
        }
    }
    MT_OK(mmrec_set_num_threads(1));
    free(q), free(c), free(mask), free(dq), free(dc), free(dq2), free(dc2);
}
END_TEST

/* ---- semantics ---- */

START_TEST(test_batch_softmax_semantics) {
    enum { B = 4, N = 6, D = 3 };
    float q[B * D], c[N * D];
    mt_fill_uniform(q, B * D, -1, 1, 31);
    mt_fill_uniform(c, N * D, -1, 1, 32);
    int64_t sq[2] = {B, D}, sc[2] = {N, D}, s4[2] = {B, D};
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *tq = mt_tape_tensor(tape, 2, sq, q, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tc = mt_tape_tensor(tape, 2, sc, c, MMREC_TENSOR_REQUIRES_GRAD), *l, *l2;
    mmrec_batch_softmax_config cfg;
    MT_OK(mmrec_batch_softmax_config_init(&cfg));
    ck_assert(cfg.temperature == 1.0f && cfg.normalize == 0 && cfg.mask == NULL);

    /* A column that every row's mask removes (and no row's positive) gets
     * exactly zero gradient: removed pairs take no part. */
    uint8_t mask[B * N];
    memset(mask, 1, sizeof mask);
    for (int i = 0; i < B; i++) mask[i * N + 5] = 0;
    cfg.mask = mask;
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc, &cfg, &l));
    MT_OK(mmrec_tape_backward(tape, l));
    const float *g = mt_grad_of(tc);
    for (int e = 0; e < D; e++) ck_assert(g[5 * D + e] == 0.0f);
    ck_assert(g[4 * D] != 0.0f);
    /* ... and the loss equals that over the first five candidates */
    mmrec_tensor *tc5 = mt_tape_tensor(tape, 2, (int64_t[2]){5, D}, c, 0);
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc5, NULL, &l2));
    ck_assert_msg(fabsf(mt_value(l) - mt_value(l2)) <= 1e-6f * fabsf(mt_value(l2)), "%g vs %g",
                  (double)mt_value(l), (double)mt_value(l2));

    /* accidental hits are the mask of the same pairs, bit for bit */
    int64_t ids[N] = {7, 8, 7, 9, 8, 3}; /* columns 0 and 2, 1 and 4 hold one item */
    uint8_t hits[B * N];
    for (int i = 0; i < B; i++)
        for (int j = 0; j < N; j++) hits[i * N + j] = !(ids[j] == ids[i] && j != i);
    cfg.mask = NULL;
    cfg.candidate_ids = ids;
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc, &cfg, &l));
    cfg.candidate_ids = NULL;
    cfg.mask = hits;
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc, &cfg, &l2));
    ck_assert(mt_value(l) == mt_value(l2));
    cfg.mask = NULL;

    /* only the positives kept: every row's loss is 0 */
    uint8_t none[B * N];
    memset(none, 0, sizeof none);
    cfg.mask = none;
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc, &cfg, &l));
    ck_assert(mt_value(l) == 0.0f);
    cfg.mask = NULL;

    /* every weight 0 with weight_mean: loss 0 and zero gradients */
    mmrec_tape_reset(tape);
    tq = mt_tape_tensor(tape, 2, sq, q, MMREC_TENSOR_REQUIRES_GRAD);
    tc = mt_tape_tensor(tape, 2, sc, c, MMREC_TENSOR_REQUIRES_GRAD);
    float zero[B] = {0};
    cfg.row_weights = zero;
    cfg.weight_mean = 1;
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc, &cfg, &l));
    ck_assert(mt_value(l) == 0.0f);
    MT_OK(mmrec_tape_backward(tape, l));
    g = mt_grad_of(tq);
    for (int e = 0; e < B * D; e++) ck_assert(g[e] == 0.0f);
    cfg.row_weights = NULL;
    cfg.weight_mean = 0;

    /* a weight of 2 on every row doubles the loss; with weight_mean it
     * does not */
    float two[B] = {2, 2, 2, 2};
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc, NULL, &l));
    cfg.row_weights = two;
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc, &cfg, &l2));
    ck_assert(fabsf(mt_value(l2) - 2 * mt_value(l)) <= 1e-6f * mt_value(l2));
    cfg.weight_mean = 1;
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc, &cfg, &l2));
    ck_assert(fabsf(mt_value(l2) - mt_value(l)) <= 1e-6f * mt_value(l));
    cfg.row_weights = NULL;
    cfg.weight_mean = 0;

    /* a bias constant over the columns changes nothing */
    float shift[N] = {3, 3, 3, 3, 3, 3};
    cfg.column_bias = shift;
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc, &cfg, &l2));
    ck_assert(fabsf(mt_value(l2) - mt_value(l)) <= 1e-5f * mt_value(l));
    cfg.column_bias = NULL;

    /* symmetric = mean of the two directions */
    mmrec_tensor *tc4 = mt_tape_tensor(tape, 2, s4, c, 0), *ab, *ba;
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc4, NULL, &ab));
    MT_OK(mmrec_loss_batch_softmax(tape, tc4, tq, NULL, &ba));
    cfg.symmetric = 1;
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc4, &cfg, &l));
    ck_assert(fabsf(mt_value(l) - 0.5f * (mt_value(ab) + mt_value(ba))) <= 1e-6f);
    cfg.symmetric = 0;

    /* an inference tape computes the same value and records nothing */
    float train = mt_value(ab);
    mmrec_tape *inf;
    MT_OK(mmrec_tape_create(&inf));
    MT_OK(mmrec_tape_set_mode(inf, MMREC_TAPE_INFERENCE));
    mmrec_tensor *iq = mt_tape_tensor(inf, 2, sq, q, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *ic = mt_tape_tensor(inf, 2, s4, c, 0);
    MT_OK(mmrec_loss_batch_softmax(inf, iq, ic, NULL, &l));
    ck_assert(mt_value(l) == train);
    MT_EXPECT(mmrec_tape_backward(inf, l), MMREC_ESTATE, "inference");
    mmrec_tape_destroy(inf);
    mmrec_tape_destroy(tape);
}
END_TEST

/* Logits near 1e4 that float32 holds exactly: the loss keeps its low bits. */
START_TEST(test_batch_softmax_large_logits_keep_precision) {
    enum { B = 3, D = 2 };
    float q[B * D] = {100, 1, 100, -2, 100, 0}, c[B * D] = {100, 2, 100, 0, 100, -1};
    int64_t s[2] = {B, D};
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *tq = mt_tape_tensor(tape, 2, s, q, 0), *tc = mt_tape_tensor(tape, 2, s, c, 0);
    mmrec_tensor *l;
    MT_OK(mmrec_loss_batch_softmax(tape, tq, tc, NULL, &l));
    double want = 0;
    for (int i = 0; i < B; i++) { /* s_ij = 1e4 + q_i1 c_j1: only the offsets matter */
        double sum = 0;
        for (int j = 0; j < B; j++) sum += exp(q[i * D + 1] * c[j * D + 1]);
        want += log(sum) - q[i * D + 1] * c[i * D + 1];
    }
    want /= B;
    ck_assert_msg(fabs(mt_value(l) - want) <= 1e-6 * fabs(want), "%.9g vs %.9g",
                  (double)mt_value(l), want);
    mmrec_tape_destroy(tape);
}
END_TEST

/* CIC and InfoNCE are configurations of the batch softmax. */
START_TEST(test_batch_softmax_is_cic_and_infonce) {
    enum { B = 6, D = 4, H = 2 };
    float a[B * D], b[B * D];
    mt_fill_uniform(a, B * D, -1, 1, 41);
    mt_fill_uniform(b, B * D, -1, 1, 42);
    int64_t negs[B * H] = {1, 2, 0, 5, 4, 1, 2, 0, 3, 5, 0, 4};
    uint8_t mask[B * B] = {0};
    for (int i = 0; i < B; i++)
        for (int h = 0; h < H; h++) mask[i * B + negs[i * H + h]] = 1;
    int64_t s[2] = {B, D};
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *ta = mt_tape_tensor(tape, 2, s, a, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tb = mt_tape_tensor(tape, 2, s, b, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *ta2 = mt_tape_tensor(tape, 2, s, a, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *tb2 = mt_tape_tensor(tape, 2, s, b, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *cic, *bs, *nce;
    mmrec_cic_config cc;
    MT_OK(mmrec_cic_config_init(&cc));
    cc.temperature = 0.3f;
    cc.num_negatives = H;
    cc.negatives = negs;
    MT_OK(mmrec_loss_cic(tape, ta, tb, &cc, &cic));
    mmrec_batch_softmax_config cfg;
    MT_OK(mmrec_batch_softmax_config_init(&cfg));
    cfg.temperature = 0.3f;
    cfg.normalize = 1;
    cfg.symmetric = 1;
    cfg.mask = mask;
    MT_OK(mmrec_loss_batch_softmax(tape, ta2, tb2, &cfg, &bs));
    ck_assert(mt_value(cic) == mt_value(bs));
    MT_OK(mmrec_tape_backward(tape, cic));
    MT_OK(mmrec_tape_backward(tape, bs));
    ck_assert(memcmp(mt_grad_of(ta), mt_grad_of(ta2), sizeof a) == 0);
    ck_assert(memcmp(mt_grad_of(tb), mt_grad_of(tb2), sizeof b) == 0);
    MT_OK(mmrec_loss_infonce(tape, ta, tb, 0.2f, &nce));
    cfg.temperature = 0.2f;
    cfg.symmetric = 0;
    cfg.mask = NULL;
    MT_OK(mmrec_loss_batch_softmax(tape, ta, tb, &cfg, &bs));
    ck_assert(mt_value(nce) == mt_value(bs));
    mmrec_tape_destroy(tape);
}
END_TEST

/* CIC's sampled negatives: for each row in turn, a partial Fisher-Yates
 * shuffle of the other rows (in order) with the tape's generator, H draws. */
START_TEST(test_cic_sampled_negatives_are_the_tape_draws) {
    enum { B = 9, D = 4, H = 3 };
    float a[B * D], b[B * D];
    mt_fill_uniform(a, B * D, -1, 1, 43);
    mt_fill_uniform(b, B * D, -1, 1, 44);
    uint8_t mask[B * B] = {0};
    mmrec__rng_state rng;
    mmrec__rng_seed(&rng, 5);
    for (int i = 0; i < B; i++) {
        int64_t pool[B];
        int n = 0;
        for (int j = 0; j < B; j++)
            if (j != i) pool[n++] = j;
        for (int h = 0; h < H; h++) {
            int k = h + (int)mmrec__rng_below(&rng, (uint64_t)(n - h));
            int64_t t = pool[h];
            pool[h] = pool[k];
            pool[k] = t;
            mask[i * B + pool[h]] = 1;
        }
    }
    int64_t s[2] = {B, D};
    for (int grad = 0; grad < 2; grad++) { /* no node kept, and a node */
        uint32_t flags = grad ? MMREC_TENSOR_REQUIRES_GRAD : 0;
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        MT_OK(mmrec_tape_seed(tape, 5));
        mmrec_tensor *ta = mt_tape_tensor(tape, 2, s, a, flags);
        mmrec_tensor *tb = mt_tape_tensor(tape, 2, s, b, flags), *cic, *bs;
        mmrec_cic_config cc;
        MT_OK(mmrec_cic_config_init(&cc));
        cc.num_negatives = H;
        MT_OK(mmrec_loss_cic(tape, ta, tb, &cc, &cic));
        /* the generator moved on by exactly these draws */
        ck_assert(memcmp(&rng, &tape->rng, sizeof rng) == 0);
        mmrec_batch_softmax_config cfg;
        MT_OK(mmrec_batch_softmax_config_init(&cfg));
        cfg.temperature = cc.temperature;
        cfg.normalize = 1;
        cfg.symmetric = 1;
        cfg.mask = mask;
        MT_OK(mmrec_loss_batch_softmax(tape, ta, tb, &cfg, &bs));
        ck_assert(mt_value(cic) == mt_value(bs));
        mmrec_tape_destroy(tape);
    }
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_batch_softmax_bad_input) {
    enum { B = 3, N = 4, D = 2 };
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    int64_t sq[2] = {B, D}, sc[2] = {N, D}, s3[2] = {N, 3}, s1[1] = {B};
    mmrec_tensor *q, *c, *c3, *v1, *qo, *l = NULL;
    MT_OK(mmrec_tape_tensor(tape, 2, sq, MMREC_TENSOR_REQUIRES_GRAD, &q));
    MT_OK(mmrec_tape_tensor(tape, 2, sc, MMREC_TENSOR_REQUIRES_GRAD, &c));
    MT_OK(mmrec_tape_tensor(tape, 2, s3, 0, &c3));
    MT_OK(mmrec_tape_tensor(tape, 1, s1, 0, &v1));
    MT_OK(mmrec_tape_tensor(other, 2, sq, 0, &qo));
    mmrec_batch_softmax_config cfg;
    MT_OK(mmrec_batch_softmax_config_init(&cfg));
    MT_EXPECT(mmrec_loss_batch_softmax(NULL, q, c, &cfg, &l), MMREC_EINVAL, "tape");
    MT_EXPECT(mmrec_loss_batch_softmax(tape, NULL, c, &cfg, &l), MMREC_EINVAL, "queries");
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, NULL, &cfg, &l), MMREC_EINVAL, "candidates");
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, c, &cfg, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_loss_batch_softmax(tape, qo, c, &cfg, &l), MMREC_EINVAL, "queries");
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, c3, &cfg, &l), MMREC_ESHAPE, "candidates is [4,3]");
    MT_EXPECT(mmrec_loss_batch_softmax(tape, v1, c, &cfg, &l), MMREC_ESHAPE, "queries is [3]");
    /* row i's positive is candidate i: N >= B unless positives are given */
    MT_EXPECT(mmrec_loss_batch_softmax(tape, c, q, &cfg, &l), MMREC_ESHAPE, "cfg->positives");
    float bad_tau[3] = {0.0f, NAN, 1e-39f};
    for (int k = 0; k < 3; k++) {
        cfg.temperature = bad_tau[k];
        MT_EXPECT(mmrec_loss_batch_softmax(tape, q, c, &cfg, &l), MMREC_EINVAL,
                  "cfg->temperature");
    }
    cfg.temperature = 1.0f;
    cfg.normalize = 2;
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, c, &cfg, &l), MMREC_EINVAL,
              "cfg->normalize is 2");
    cfg.normalize = 0;
    cfg.weight_mean = -1;
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, c, &cfg, &l), MMREC_EINVAL,
              "cfg->weight_mean is -1");
    cfg.weight_mean = 0;
    cfg.symmetric = 1;
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, c, &cfg, &l), MMREC_ESHAPE, "cfg->symmetric");
    int64_t pos[B] = {0, 3, 4};
    cfg.positives = pos;
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, q, &cfg, &l), MMREC_EINVAL,
              "cfg->positives must be NULL");
    cfg.symmetric = 0;
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, c, &cfg, &l), MMREC_ERANGE,
              "cfg->positives[2] is 4");
    pos[2] = -1;
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, c, &cfg, &l), MMREC_ERANGE,
              "cfg->positives[2] is -1");
    cfg.positives = NULL;
    float bias[N] = {0, 1, INFINITY, 0};
    cfg.column_bias = bias;
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, c, &cfg, &l), MMREC_EINVAL,
              "cfg->column_bias[2] is inf");
    bias[2] = NAN;
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, c, &cfg, &l), MMREC_EINVAL,
              "cfg->column_bias[2] is nan");
    cfg.column_bias = NULL;
    float w[B] = {1, NAN, 1};
    cfg.row_weights = w;
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, c, &cfg, &l), MMREC_EINVAL,
              "cfg->row_weights[1] is nan");
    w[1] = -0.5f;
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, c, &cfg, &l), MMREC_EINVAL,
              "cfg->row_weights[1] is -0.5");
    w[1] = INFINITY;
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, c, &cfg, &l), MMREC_EINVAL,
              "cfg->row_weights[1] is inf");
    ck_assert_ptr_null(l); /* failed calls wrote nothing */
    /* NULL cfg: the defaults */
    MT_OK(mmrec_loss_batch_softmax(tape, q, c, NULL, &l));
    MT_OK(mmrec_tape_backward(tape, l));
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
}
END_TEST

/* The size-first config rules (STYLE.md section 5). */
START_TEST(test_batch_softmax_config_sizes) {
    struct {
        mmrec_batch_softmax_config c;
        int64_t extra;
    } big;
    memset(&big, 0xab, sizeof big);
    MT_OK(mmrec_batch_softmax_config_init_sized(&big.c, sizeof big));
    ck_assert_uint_eq(big.c.struct_size, sizeof big);
    ck_assert(big.c.temperature == 1.0f && big.c.mask == NULL && big.extra == 0);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t s[2] = {3, 2};
    mmrec_tensor *q, *l;
    MT_OK(mmrec_tape_tensor(tape, 2, s, MMREC_TENSOR_REQUIRES_GRAD, &q));
    MT_OK(mmrec_loss_batch_softmax(tape, q, q, &big.c, &l));
    big.extra = 1;
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, q, &big.c, &l), MMREC_EINVAL, "newer libmmrec");
    mmrec_batch_softmax_config small;
    MT_OK(mmrec_batch_softmax_config_init(&small));
    small.struct_size = sizeof small - 1;
    MT_EXPECT(mmrec_loss_batch_softmax(tape, q, q, &small, &l), MMREC_EINVAL, "struct_size");
    MT_EXPECT(mmrec_batch_softmax_config_init_sized(&small, sizeof small - 1), MMREC_EINVAL,
              "smaller");
    MT_EXPECT(mmrec_batch_softmax_config_init_sized(NULL, sizeof small), MMREC_EINVAL, "'cfg'");
    mmrec_tape_destroy(tape);
}
END_TEST

/* ---- reliability ---- */

typedef struct mt_step {
    int kind; /* 0 every option, 1 symmetric with mask, 2 CIC sampled */
    size_t B, N, D;
} mt_step;

/* One forward and backward on `tape` with fixed inputs. */
static mmrec_status mt_bsm_step(const mt_step *k, mmrec_tape *tape) {
    size_t B = k->B, N = k->kind ? k->B : k->N, D = k->D;
    static float q[512 * 300], c[512 * 300], bias[512], w[512];
    static int64_t pos[512], ids[512];
    static uint8_t mask[512 * 512];
    static bool filled;
    if (!filled) {
        mt_fill_uniform(q, sizeof q / sizeof *q, -1, 1, 51);
        mt_fill_uniform(c, sizeof c / sizeof *c, -1, 1, 52);
        mt_fill_uniform(bias, 512, 0, 2, 53);
        mt_fill_uniform(w, 512, 0, 1, 54);
        uint64_t s = 3;
        for (int i = 0; i < 512; i++) pos[i] = (int64_t)(mt_lcg(&s) % 256);
        for (int i = 0; i < 512; i++) ids[i] = (int64_t)(mt_lcg(&s) % 400);
        for (int i = 0; i < 512 * 512; i++) mask[i] = mt_lcg(&s) % 3 != 0;
        filled = true;
    }
    int64_t sq[2] = {(int64_t)B, (int64_t)D}, sc[2] = {(int64_t)N, (int64_t)D};
    mmrec_tensor *tq, *tc, *l;
    mmrec_status s = mmrec_tape_wrap(tape, q, 2, sq, MMREC_TENSOR_REQUIRES_GRAD, &tq);
    if (s == MMREC_OK) s = mmrec_tape_wrap(tape, c, 2, sc, MMREC_TENSOR_REQUIRES_GRAD, &tc);
    if (s != MMREC_OK) return s;
    if (k->kind == 2) {
        mmrec_cic_config cc;
        s = mmrec_cic_config_init(&cc);
        cc.num_negatives = 5;
        if (s == MMREC_OK) s = mmrec_loss_cic(tape, tq, tc, &cc, &l);
    } else {
        mmrec_batch_softmax_config cfg;
        s = mmrec_batch_softmax_config_init(&cfg);
        cfg.temperature = 0.1f;
        cfg.normalize = 1;
        cfg.column_bias = bias;
        cfg.candidate_ids = ids;
        cfg.mask = mask;
        cfg.row_weights = w;
        cfg.weight_mean = 1;
        cfg.symmetric = k->kind == 1;
        cfg.positives = k->kind == 1 ? NULL : pos;
        if (s == MMREC_OK) s = mmrec_loss_batch_softmax(tape, tq, tc, &cfg, &l);
    }
    if (s == MMREC_OK) s = mmrec_tape_backward(tape, l);
    return s;
}

typedef struct mt_steady {
    const mt_step *k;
    mmrec_tape *tape;
} mt_steady;

static mmrec_status mt_bsm_steady(void *ctx) {
    mt_steady *c = ctx;
    mmrec_tape_reset(c->tape);
    return mt_bsm_step(c->k, c->tape);
}

/* After the first steps a step allocates nothing. */
START_TEST(test_batch_softmax_steady_state_no_malloc) {
    mmrec_allocator al = {sizeof al, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_num_threads(2));
    MT_OK(mmrec_set_allocator(&al));
    for (int kind = 0; kind < 3; kind++) {
        mt_step k = {kind, 200, 256, 16};
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        mt_steady c = {&k, tape};
        mt_assert_steady_state(mt_bsm_steady, &c);
        mmrec_tape_destroy(tape);
    }
    MT_OK(mmrec_set_allocator(NULL));
    MT_OK(mmrec_set_num_threads(1));
}
END_TEST

static mmrec_status mt_bsm_oom(void *ctx) {
    const mt_step *k = ctx;
    mmrec_tape *tape = NULL;
    mmrec_status s = mmrec_tape_create(&tape);
    if (s == MMREC_OK) s = mt_bsm_step(k, tape);
    mmrec_tape_destroy(tape);
    return s;
}

/* Every allocation failing in turn (large enough rows that the loss grows
 * the arena several times): MMREC_ENOMEM and no leak. */
START_TEST(test_batch_softmax_oom_reports_enomem_without_leaks) {
    for (int kind = 0; kind < 3; kind++) {
        mt_step k = {kind, 512, 400, 300};
        ck_assert_int_gt(mt_oom_loop("batch softmax", mt_bsm_oom, &k), 2);
    }
}
END_TEST

static long mt_fail_at = -1, mt_alloc_count;
static void *mt_nth_alloc(void *user, size_t size) {
    (void)user;
    void *p = NULL;
    if (mt_alloc_count++ == mt_fail_at || posix_memalign(&p, 64, size ? size : 64) != 0)
        return NULL;
    return p;
}
static void mt_plain_release(void *user, void *p) {
    (void)user;
    free(p);
}

/* A failed call changes nothing: not the tape's record or arena position,
 * not its generator (CIC's sampled negatives draw from it): with the n-th
 * allocation of the call failing, n = 0, 1, ..., the tape is as before and
 * the call then gives what a fresh tape gives. */
START_TEST(test_batch_softmax_failed_call_changes_nothing) {
    mmrec_allocator al = {sizeof al, mt_nth_alloc, mt_plain_release, NULL};
    MT_OK(mmrec_set_allocator(&al));
    /* rows enough that the keep bits and the scratch blocks each need a new
     * arena block: failures before and after the negatives are drawn */
    enum { B = 2000, D = 16 };
    float *a = malloc(B * D * sizeof *a), *b = malloc(B * D * sizeof *b);
    uint8_t *mask = malloc((size_t)B * B);
    int64_t *ids = malloc(B * sizeof *ids);
    for (size_t i = 0; i < (size_t)B * B; i++) mask[i] = (i * 7) % 5 != 0;
    for (int i = 0; i < B; i++) ids[i] = i % 1900;
    mt_fill_uniform(a, B * D, -1, 1, 61);
    mt_fill_uniform(b, B * D, -1, 1, 62);
    int64_t s[2] = {B, D};
    for (int kind = 0; kind < 2; kind++) { /* CIC with sampled negatives; every option */
        float want = 0;
        int failures = 0;
        for (long n = -1;; n++) {
            mmrec_tape *tape;
            MT_OK(mmrec_tape_create(&tape));
            MT_OK(mmrec_tape_seed(tape, 77));
            mmrec_tensor *ta, *tb, *l = NULL;
            MT_OK(mmrec_tape_wrap(tape, a, 2, s, MMREC_TENSOR_REQUIRES_GRAD, &ta));
            MT_OK(mmrec_tape_wrap(tape, b, 2, s, MMREC_TENSOR_REQUIRES_GRAD, &tb));
            mmrec_cic_config cc;
            MT_OK(mmrec_cic_config_init(&cc));
            cc.num_negatives = 3;
            mmrec_batch_softmax_config cfg;
            MT_OK(mmrec_batch_softmax_config_init(&cfg));
            cfg.normalize = 1;
            cfg.symmetric = 1;
            cfg.mask = mask;
            cfg.candidate_ids = ids;
            mmrec__tape_mark before = mmrec__tape_mark_get(tape);
            mmrec__rng_state rng = tape->rng;
            mt_alloc_count = 0;
            mt_fail_at = n;
            mmrec_status st = kind == 0 ? mmrec_loss_cic(tape, ta, tb, &cc, &l)
                                        : mmrec_loss_batch_softmax(tape, ta, tb, &cfg, &l);
            mt_fail_at = -1;
            bool failed = st != MMREC_OK;
            if (failed) {
                ck_assert_msg(st == MMREC_ENOMEM, "%s", mmrec_last_error());
                ck_assert_ptr_null(l);
                mmrec__tape_mark after = mmrec__tape_mark_get(tape);
                ck_assert(after.tail == before.tail && after.n_nodes == before.n_nodes);
                ck_assert(after.data.cur == before.data.cur &&
                          after.data.offset == before.data.offset);
                ck_assert(memcmp(&rng, &tape->rng, sizeof rng) == 0);
                failures++;
                st = kind == 0 ? mmrec_loss_cic(tape, ta, tb, &cc, &l)
                               : mmrec_loss_batch_softmax(tape, ta, tb, &cfg, &l);
                MT_OK(st);
            }
            if (n == -1) want = mt_value(l);
            ck_assert_msg(mt_value(l) == want, "allocation %ld failing: %g vs %g", n,
                          (double)mt_value(l), (double)want);
            ck_assert_uint_eq(tape->n_nodes, 1);
            MT_OK(mmrec_tape_backward(tape, l));
            mmrec_tape_destroy(tape);
            if (n >= 0 && !failed) break; /* the call makes fewer than n + 1 allocations */
        }
        ck_assert_int_ge(failures, 2);
    }
    MT_OK(mmrec_set_allocator(NULL));
    free(a);
    free(b);
    free(mask);
    free(ids);
}
END_TEST

static Suite *batch_softmax_suite(void) {
    Suite *s = suite_create("losses_batch_softmax");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_batch_softmax_bad_input);
    tcase_add_test(api, test_batch_softmax_config_sizes);
    suite_add_tcase(s, api);
    TCase *fwd = tcase_create("forward");
    tcase_add_test(fwd, test_batch_softmax_golden);
    tcase_add_test(fwd, test_batch_softmax_semantics);
    tcase_add_test(fwd, test_batch_softmax_large_logits_keep_precision);
    tcase_add_test(fwd, test_batch_softmax_is_cic_and_infonce);
    tcase_add_test(fwd, test_cic_sampled_negatives_are_the_tape_draws);
    suite_add_tcase(s, fwd);
    TCase *bwd = tcase_create("backward");
    tcase_set_timeout(bwd, 120);
    tcase_add_test(bwd, test_batch_softmax_gradients);
    tcase_add_test(bwd, test_batch_softmax_matches_reference_over_blocks_and_threads);
    suite_add_tcase(s, bwd);
    TCase *rel = tcase_create("reliability");
    tcase_set_timeout(rel, 300);
    tcase_add_test(rel, test_batch_softmax_steady_state_no_malloc);
    tcase_add_test(rel, test_batch_softmax_oom_reports_enomem_without_leaks);
    tcase_add_test(rel, test_batch_softmax_failed_call_changes_nothing);
    suite_add_tcase(s, rel);
    return s;
}
