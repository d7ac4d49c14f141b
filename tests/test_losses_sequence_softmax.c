/* The sequence softmax loss: PyTorch golden vectors of IISAN's in-batch
 * debiased CE (repeated items within and across users, left and right
 * padding, a user without items, a zero count), finite-difference
 * gradients, bitwise agreement with mmrec_loss_batch_softmax given the
 * equivalent explicit mask, bad input, config sizes, allocation failures. */
#include "mt.h"
#include "losses/losses_internal.h" /* the tape's record: a failed call adds nothing */
#include "core/config_sizes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

MT_SUITE(sequence_softmax_suite)

static const mt_array *mt_arr(const mt_golden *g, const char *kase, const char *what) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", kase, what);
    return mt_golden_get(g, name);
}

static float mt_value(mmrec_tensor *t) {
    const float *d;
    MT_OK(mmrec_tensor_data_const(t, &d));
    return d[0];
}

/* Where the reference is exactly 0 (the rows of padded positions, the
 * padding columns) got is exactly 0 too; elsewhere |got - want| <=
 * 1e-5 |want| + 1e-5 max|want| + 1e-6. */
static void mt_close_nonzero(const char *what, const float *got, const float *want, size_t n) {
    float scale = 0, *g = malloc(n * sizeof *g), *w = malloc(n * sizeof *w);
    ck_assert(g && w);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        scale = fmaxf(scale, fabsf(want[i]));
        if (want[i] == 0.0f) {
            ck_assert_msg(got[i] == 0.0f, "%s[%zu]: got %g, expected 0", what, i, (double)got[i]);
            continue;
        }
        g[m] = got[i];
        w[m++] = want[i];
    }
    ck_assert_uint_gt(m, n / 4);
    mt_assert_close(what, g, w, m, 1e-5f, 1e-6f + 1e-5f * scale);
    free(g);
    free(w);
}

/* ---- golden ---- */

START_TEST(test_sequence_softmax_golden) {
    static const char *cases[3] = {"left", "right_tau", "no_debias"};
    mt_golden g;
    mt_golden_load(&g, "sequence_softmax.bin");
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (int k = 0; k < 3; k++) {
        const char *kase = cases[k];
        const float *cfg = mt_arr(&g, kase, "cfg")->data;
        const mt_array *st = mt_arr(&g, kase, "states"), *it = mt_arr(&g, kase, "items");
        const mt_array *ida = mt_arr(&g, kase, "ids"), *pop = mt_arr(&g, kase, "pop");
        int64_t ids[64];
        ck_assert_uint_le(ida->numel, 64);
        for (size_t i = 0; i < ida->numel; i++) ids[i] = (int64_t)ida->data[i];
        mmrec_sequence_softmax_config c;
        MT_OK(mmrec_sequence_softmax_config_init(&c));
        c.temperature = cfg[0];
        c.debias = (int)cfg[1];
        c.popularity = pop->data;
        c.num_items = (int64_t)pop->numel;
        mmrec_tensor *ts = mt_tape_tensor(tape, 3, st->shape, st->data, MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *ti = mt_tape_tensor(tape, 3, it->shape, it->data, MMREC_TENSOR_REQUIRES_GRAD);
        mmrec_tensor *loss;
        MT_OK(mmrec_loss_sequence_softmax(tape, ts, ti, ids, ida->numel, &c, &loss));
        char what[128];
        snprintf(what, sizeof what, "%s.y", kase);
        float y = mt_value(loss);
        mt_assert_close(what, &y, mt_arr(&g, kase, "y")->data, 1, 0, 0);
        MT_OK(mmrec_tape_backward(tape, loss));
        snprintf(what, sizeof what, "%s.dstates", kase);
        mt_close_nonzero(what, mt_grad_of(ts), mt_arr(&g, kase, "dstates")->data, st->numel);
        snprintf(what, sizeof what, "%s.ditems", kase);
        mt_close_nonzero(what, mt_grad_of(ti), mt_arr(&g, kase, "ditems")->data, it->numel);
        mmrec_tape_reset(tape);
    }
    mmrec_tape_destroy(tape);
    mt_golden_free(&g);
}
END_TEST

/* ---- gradients ---- */

enum { GB = 3, GT = 4, GD = 5 };
/* left padding, a repeat within user 0 (its positive 2 twice), items
 * shared across users, right padding in user 2 */
static const int64_t mt_gids[GB * (GT + 1)] = {2, 6, 2, 4, 9, 0, 0, 6, 3, 5, 7, 1, 4, 0, 0};
static const float mt_gpop[10] = {0, 3, 1, 4, 2, 8, 1, 5, 2, 6};

static mmrec_status mt_seq_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                               mmrec_tensor **out) {
    return mmrec_loss_sequence_softmax(tape, in[0], in[1], mt_gids, GB * (GT + 1), ctx, out);
}

START_TEST(test_sequence_softmax_gradients) {
    float s[GB * GT * GD], it[GB * (GT + 1) * GD];
    mt_fill_uniform(s, sizeof s / sizeof *s, -1, 1, 31);
    mt_fill_uniform(it, sizeof it / sizeof *it, -1, 1, 32);
    mt_input in[2] = {{3, {GB, GT, GD}, s, false}, {3, {GB, GT + 1, GD}, it, false}};
    mmrec_sequence_softmax_config c;
    MT_OK(mmrec_sequence_softmax_config_init(&c));
    c.popularity = mt_gpop;
    c.num_items = 10;
    mt_gradcheck("sequence softmax", mt_seq_fwd, &c, in, 2, NULL, NULL);
    c.temperature = 0.3f;
    mt_gradcheck("sequence softmax, temperature", mt_seq_fwd, &c, in, 2, NULL, NULL);
    c.debias = 0;
    c.popularity = NULL;
    c.num_items = 0;
    mt_gradcheck("sequence softmax, no debias", mt_seq_fwd, &c, in, 2, NULL, NULL);
}
END_TEST

/* ---- the configuration of the batch softmax it is ---- */

/* The explicit arguments IISAN's loss gives the batch softmax: positives,
 * row weights, column bias and the byte mask [B T, B (T + 1)]. */
static void mt_explicit(size_t B, size_t T, const int64_t *ids, const float *pop, int64_t *pos,
                        float *w, float *bias, uint8_t *mask) {
    size_t L = T + 1, n = B * L;
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            size_t r = b * T + t;
            pos[r] = (int64_t)(b * L + t + 1);
            w[r] = ids[b * L + t] != 0 && ids[b * L + t + 1] != 0 ? 1.0f : 0.0f;
            for (size_t j = 0; j < n; j++) {
                bool own = false;
                for (size_t p = 0; p < L; p++) own = own || ids[b * L + p] == ids[j];
                mask[r * n + j] = ids[j] != 0 && !own;
            }
        }
    for (size_t j = 0; j < n; j++)
        bias[j] = pop && ids[j] != 0 ? (float)-log((double)pop[ids[j]]) : 0.0f;
}

/* Loss and gradients, bit for bit, of the helper and of the batch softmax
 * with the explicit arguments, over B users of T + 1 ids. */
static void mt_same_bits(size_t B, size_t T, size_t D, const int64_t *ids, const float *pop,
                         int64_t num_items, float tau) {
    size_t L = T + 1, n = B * L, rows = B * T;
    float *s = malloc(rows * D * sizeof *s), *it = malloc(n * D * sizeof *it);
    float *w = malloc(rows * sizeof *w), *bias = malloc(n * sizeof *bias);
    int64_t *pos = malloc(rows * sizeof *pos);
    uint8_t *mask = malloc(rows * n);
    ck_assert(s && it && w && bias && pos && mask);
    mt_fill_uniform(s, rows * D, -1, 1, 41);
    mt_fill_uniform(it, n * D, -1, 1, 42);
    mt_explicit(B, T, ids, pop, pos, w, bias, mask);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t ss[3] = {(int64_t)B, (int64_t)T, (int64_t)D}, si[3] = {(int64_t)B, (int64_t)L, (int64_t)D};
    int64_t qs[2] = {(int64_t)rows, (int64_t)D}, cs[2] = {(int64_t)n, (int64_t)D};
    mmrec_tensor *ts1 = mt_tape_tensor(tape, 3, ss, s, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *ti1 = mt_tape_tensor(tape, 3, si, it, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *ts2 = mt_tape_tensor(tape, 3, ss, s, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *ti2 = mt_tape_tensor(tape, 3, si, it, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *l1, *l2, *q, *cand;
    mmrec_sequence_softmax_config c;
    MT_OK(mmrec_sequence_softmax_config_init(&c));
    c.temperature = tau;
    c.debias = pop != NULL;
    c.popularity = pop;
    c.num_items = num_items;
    MT_OK(mmrec_loss_sequence_softmax(tape, ts1, ti1, ids, n, &c, &l1));
    mmrec_batch_softmax_config bc;
    MT_OK(mmrec_batch_softmax_config_init(&bc));
    bc.temperature = tau;
    bc.weight_mean = 1;
    bc.column_bias = pop ? bias : NULL;
    bc.positives = pos;
    bc.row_weights = w;
    bc.mask = mask;
    MT_OK(mmrec_reshape(tape, ts2, 2, qs, &q));
    MT_OK(mmrec_reshape(tape, ti2, 2, cs, &cand));
    MT_OK(mmrec_loss_batch_softmax(tape, q, cand, &bc, &l2));
    float y1 = mt_value(l1), y2 = mt_value(l2);
    ck_assert_msg(memcmp(&y1, &y2, sizeof y1) == 0, "loss %.9g vs %.9g", (double)y1, (double)y2);
    ck_assert(isfinite(y1));
    float one = 1.0f;
    MT_OK(mmrec_tape_backward_from(tape, l1, &one));
    MT_OK(mmrec_tape_backward_from(tape, l2, &one));
    ck_assert(memcmp(mt_grad_of(ts1), mt_grad_of(ts2), rows * D * sizeof(float)) == 0);
    ck_assert(memcmp(mt_grad_of(ti1), mt_grad_of(ti2), n * D * sizeof(float)) == 0);
    mmrec_tape_destroy(tape);
    free(s);
    free(it);
    free(w);
    free(bias);
    free(pos);
    free(mask);
}

START_TEST(test_sequence_softmax_is_the_batch_softmax_with_its_mask) {
    mt_same_bits(GB, GT, GD, mt_gids, mt_gpop, 10, 1.0f);
    mt_same_bits(GB, GT, GD, mt_gids, NULL, 0, 0.5f);
    /* IISAN's shape: 64 users of 10 inputs (704 columns, 11 mask words),
     * left padding, ids from a small catalogue so that items repeat within
     * and across users; two threads */
    enum { B = 64, T = 10, NI = 300 };
    static int64_t ids[B * (T + 1)];
    static float pop[NI];
    uint64_t s = 17;
    for (int b = 0; b < B; b++) {
        int pad = b == 5 ? T + 1 : (int)(mt_lcg(&s) % (T - 1)); /* user 5: no item */
        for (int p = 0; p <= T; p++)
            ids[b * (T + 1) + p] = p < pad ? 0 : 1 + (int64_t)(mt_lcg(&s) % (NI - 1));
    }
    for (int i = 0; i < NI; i++) pop[i] = (float)(1 + mt_lcg(&s) % 50);
    MT_OK(mmrec_set_num_threads(2));
    mt_same_bits(B, T, 16, ids, pop, NI, 0.7f);
    MT_OK(mmrec_set_num_threads(1));
}
END_TEST

/* Counts and probabilities give one loss; a batch without a counted row
 * gives 0 and zero gradients. */
START_TEST(test_sequence_softmax_scale_and_empty_batch) {
    float prob[10], s[GB * GT * GD], it[GB * (GT + 1) * GD];
    float sum = 0;
    for (int i = 1; i < 10; i++) sum += mt_gpop[i];
    for (int i = 0; i < 10; i++) prob[i] = mt_gpop[i] / sum;
    mt_fill_uniform(s, sizeof s / sizeof *s, -1, 1, 51);
    mt_fill_uniform(it, sizeof it / sizeof *it, -1, 1, 52);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t ss[3] = {GB, GT, GD}, si[3] = {GB, GT + 1, GD};
    mmrec_tensor *ts = mt_tape_tensor(tape, 3, ss, s, MMREC_TENSOR_REQUIRES_GRAD);
    mmrec_tensor *ti = mt_tape_tensor(tape, 3, si, it, MMREC_TENSOR_REQUIRES_GRAD), *l1, *l2, *l3;
    mmrec_sequence_softmax_config c;
    MT_OK(mmrec_sequence_softmax_config_init(&c));
    c.popularity = mt_gpop;
    c.num_items = 10;
    MT_OK(mmrec_loss_sequence_softmax(tape, ts, ti, mt_gids, GB * (GT + 1), &c, &l1));
    c.popularity = prob;
    MT_OK(mmrec_loss_sequence_softmax(tape, ts, ti, mt_gids, GB * (GT + 1), &c, &l2));
    ck_assert_msg(fabsf(mt_value(l1) - mt_value(l2)) <= 1e-6f * fabsf(mt_value(l1)), "%g vs %g",
                  (double)mt_value(l1), (double)mt_value(l2));
    /* every user: an item, then padding: no row counts */
    static const int64_t lone[GB * (GT + 1)] = {3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
    MT_OK(mmrec_loss_sequence_softmax(tape, ts, ti, lone, GB * (GT + 1), &c, &l3));
    ck_assert_float_eq(mt_value(l3), 0.0f);
    float one = 1.0f;
    MT_OK(mmrec_tape_backward_from(tape, l3, &one));
    for (int i = 0; i < GB * GT * GD; i++) ck_assert_float_eq(mt_grad_of(ts)[i], 0.0f);
    for (int i = 0; i < GB * (GT + 1) * GD; i++) ck_assert_float_eq(mt_grad_of(ti)[i], 0.0f);
    mmrec_tape_destroy(tape);
}
END_TEST

/* ---- bad input and config ---- */

START_TEST(test_sequence_softmax_bad_input) {
    mmrec_tape *tape, *other;
    MT_OK(mmrec_tape_create(&tape));
    MT_OK(mmrec_tape_create(&other));
    int64_t ss[3] = {GB, GT, GD}, si[3] = {GB, GT + 1, GD}, sbad[3] = {GB, GT, GD},
            sd[3] = {GB, GT + 1, GD + 1}, sb2[3] = {GB - 1, GT + 1, GD}, s2[2] = {GB * GT, GD};
    mmrec_tensor *ts, *ti, *tbad, *td, *tb2, *t2, *to, *l = NULL;
    MT_OK(mmrec_tape_tensor(tape, 3, ss, MMREC_TENSOR_REQUIRES_GRAD, &ts));
    MT_OK(mmrec_tape_tensor(tape, 3, si, MMREC_TENSOR_REQUIRES_GRAD, &ti));
    MT_OK(mmrec_tape_tensor(tape, 3, sbad, 0, &tbad));
    MT_OK(mmrec_tape_tensor(tape, 3, sd, 0, &td));
    MT_OK(mmrec_tape_tensor(tape, 3, sb2, 0, &tb2));
    MT_OK(mmrec_tape_tensor(tape, 2, s2, 0, &t2));
    MT_OK(mmrec_tape_tensor(other, 3, ss, 0, &to));
    size_t n = GB * (GT + 1), nodes = tape->n_nodes;
    mmrec_sequence_softmax_config c;
    MT_OK(mmrec_sequence_softmax_config_init(&c));
    ck_assert(c.debias == 1 && c.temperature == 1.0f && c.popularity == NULL &&
              c.num_items == 0);
    c.popularity = mt_gpop;
    c.num_items = 10;
    /* shapes that disagree */
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, tbad, mt_gids, n, &c, &l), MMREC_ESHAPE,
              "states must be [B, T, d] and items [B, T + 1, d]: states is [3,4,5], items is "
              "[3,4,5]");
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, td, mt_gids, n, &c, &l), MMREC_ESHAPE,
              "items is [3,5,6]");
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, tb2, mt_gids, n, &c, &l), MMREC_ESHAPE,
              "items is [2,5,5]");
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, t2, ti, mt_gids, n, &c, &l), MMREC_ESHAPE,
              "states is [12,5]");
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, mt_gids, n - 1, &c, &l), MMREC_ESHAPE,
              "num_ids is 14, items is [3,5,5]: expected 15 ids");
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, to, ti, mt_gids, n, &c, &l), MMREC_EINVAL,
              "states");
    /* item ids out of range */
    int64_t ids[GB * (GT + 1)];
    memcpy(ids, mt_gids, sizeof ids);
    ids[7] = 10;
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, &c, &l), MMREC_ERANGE,
              "item_ids[7] is 10, outside [0, 10) (cfg->num_items)");
    ids[7] = -2;
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, &c, &l), MMREC_ERANGE,
              "item_ids[7] is -2");
    ids[7] = mt_gids[7];
    /* popularity NULL when required; a zero or bad popularity of an item
     * of the batch */
    c.popularity = NULL;
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, &c, &l), MMREC_EINVAL,
              "cfg->popularity is NULL: required with cfg->debias");
    c.popularity = mt_gpop;
    c.num_items = 0;
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, &c, &l), MMREC_EINVAL,
              "cfg->num_items is 0");
    c.num_items = -1;
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, &c, &l), MMREC_EINVAL,
              "cfg->num_items is -1");
    c.num_items = 10;
    float pop[10];
    memcpy(pop, mt_gpop, sizeof pop);
    pop[0] = NAN; /* padding: not read */
    pop[8] = 0.0f; /* an item no user of the batch holds: not read */
    c.popularity = pop;
    MT_OK(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, &c, &l));
    nodes = tape->n_nodes;
    l = NULL;
    pop[6] = 0.0f; /* item 6 is in users 0 and 1 */
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, &c, &l), MMREC_EINVAL,
              "cfg->popularity[6] is 0, item_ids[1] holds that item");
    pop[6] = INFINITY;
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, &c, &l), MMREC_EINVAL,
              "cfg->popularity[6] is inf");
    pop[6] = -1.0f;
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, &c, &l), MMREC_EINVAL,
              "cfg->popularity[6] is -1");
    pop[6] = 1.0f;
    c.debias = 2;
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, &c, &l), MMREC_EINVAL,
              "cfg->debias is 2");
    c.debias = 1;
    c.temperature = 0.0f;
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, &c, &l), MMREC_EINVAL,
              "cfg->temperature is 0");
    c.temperature = 1e-39f;
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, &c, &l), MMREC_EINVAL,
              "cfg->temperature");
    c.temperature = 1.0f;
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, NULL, &l), MMREC_EINVAL, "'cfg'");
    ck_assert_ptr_null(l); /* failed calls wrote nothing */
    ck_assert_uint_eq(tape->n_nodes, nodes); /* and recorded nothing */
    /* without debiasing the popularity is not read and ids are unbounded */
    c.debias = 0;
    c.popularity = NULL;
    c.num_items = 0;
    ids[7] = INT64_C(1) << 40;
    MT_OK(mmrec_loss_sequence_softmax(tape, ts, ti, ids, n, &c, &l));
    MT_OK(mmrec_tape_backward(tape, l));
    /* config sizes */
    MT_EXPECT(mmrec_sequence_softmax_config_init_sized(
                  &c, (size_t)MMREC__MIN_SIZE(mmrec_sequence_softmax_config) - 1),
              MMREC_EINVAL, "size is");
    struct {
        mmrec_sequence_softmax_config c;
        int64_t extra;
    } big;
    memset(&big, 0xab, sizeof big);
    MT_OK(mmrec_sequence_softmax_config_init_sized(&big.c, sizeof big));
    ck_assert(big.extra == 0 && big.c.struct_size == sizeof big && big.c.debias == 1);
    big.c.debias = 0;
    MT_OK(mmrec_loss_sequence_softmax(tape, ts, ti, mt_gids, n, &big.c, &l));
    big.extra = 1;
    MT_EXPECT(mmrec_loss_sequence_softmax(tape, ts, ti, mt_gids, n, &big.c, &l), MMREC_EINVAL,
              "newer libmmrec");
    mmrec_tape_destroy(other);
    mmrec_tape_destroy(tape);
}
END_TEST

/* ---- reliability ---- */

static mmrec_status mt_seq_oom(void *ctx) {
    (void)ctx;
    float s[GB * GT * GD], it[GB * (GT + 1) * GD];
    mt_fill_uniform(s, sizeof s / sizeof *s, -1, 1, 61);
    mt_fill_uniform(it, sizeof it / sizeof *it, -1, 1, 62);
    mmrec_tape *tape = NULL;
    mmrec_status st = mmrec_tape_create(&tape);
    int64_t ss[3] = {GB, GT, GD}, si[3] = {GB, GT + 1, GD};
    mmrec_tensor *ts, *ti, *l;
    if (st == MMREC_OK) st = mmrec_tape_wrap(tape, s, 3, ss, MMREC_TENSOR_REQUIRES_GRAD, &ts);
    if (st == MMREC_OK) st = mmrec_tape_wrap(tape, it, 3, si, MMREC_TENSOR_REQUIRES_GRAD, &ti);
    mmrec_sequence_softmax_config c;
    if (st == MMREC_OK) st = mmrec_sequence_softmax_config_init(&c);
    c.popularity = mt_gpop;
    c.num_items = 10;
    if (st == MMREC_OK)
        st = mmrec_loss_sequence_softmax(tape, ts, ti, mt_gids, GB * (GT + 1), &c, &l);
    if (st == MMREC_OK) st = mmrec_tape_backward(tape, l);
    mmrec_tape_destroy(tape);
    return st;
}

START_TEST(test_sequence_softmax_oom_reports_enomem_without_leaks) {
    ck_assert_int_gt(mt_oom_loop("sequence softmax", mt_seq_oom, NULL), 1);
}
END_TEST

static Suite *sequence_softmax_suite(void) {
    Suite *s = suite_create("sequence_softmax");
    TCase *tc = tcase_create("sequence_softmax");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sequence_softmax_golden);
    tcase_add_test(tc, test_sequence_softmax_gradients);
    tcase_add_test(tc, test_sequence_softmax_is_the_batch_softmax_with_its_mask);
    tcase_add_test(tc, test_sequence_softmax_scale_and_empty_batch);
    tcase_add_test(tc, test_sequence_softmax_bad_input);
    tcase_add_test(tc, test_sequence_softmax_oom_reports_enomem_without_leaks);
    suite_add_tcase(s, tc);
    return s;
}
