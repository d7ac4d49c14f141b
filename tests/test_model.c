/* Model: parameter registry, freezing, counts, flat buffers, lifetime with
 * optimizers and tapes, checkpoints (round trip, crash-safe writing, and
 * truncated, corrupt and foreign files). */
#include "mt.h"
#include "io/io_internal.h"
#include "model/model_internal.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

MT_SUITE(model_suite)

/* ---- helpers ---- */

/* A model with "enc.w" [2,3], "enc.b" [3] and "head.v" [3,2], filled with
 * values from `seed`. */
static mmrec_model *mt_small_model(uint64_t seed) {
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    int64_t sw[2] = {2, 3}, sb[1] = {3}, sv[2] = {3, 2};
    mmrec_tensor *t;
    float buf[6];
    MT_OK(mmrec_model_add_param(m, "enc.w", 2, sw, &t));
    mt_fill_uniform(buf, 6, -1, 1, seed);
    MT_OK(mmrec_tensor_copy_from(t, buf, 6));
    MT_OK(mmrec_model_add_param(m, "enc.b", 1, sb, &t));
    mt_fill_uniform(buf, 3, -1, 1, seed + 1);
    MT_OK(mmrec_tensor_copy_from(t, buf, 3));
    MT_OK(mmrec_model_add_param(m, "head.v", 2, sv, &t));
    mt_fill_uniform(buf, 6, -1, 1, seed + 2);
    MT_OK(mmrec_tensor_copy_from(t, buf, 6));
    return m;
}

static void mt_params(const mmrec_model *m, float *dst, size_t cap, size_t *n_out) {
    size_t trainable, total;
    MT_OK(mmrec_model_param_count(m, &trainable, &total));
    ck_assert_uint_le(trainable, cap);
    MT_OK(mmrec_model_export_params(m, dst, trainable));
    *n_out = trainable;
}


/* Loading `path` into `m` fails with `status` naming `needle`, and leaves
 * the parameters as they were. */
static void mt_expect_load_fails(mmrec_model *m, const char *path, mmrec_status status,
                                 const char *needle) {
    float before[64], after[64];
    size_t n, n2;
    mt_params(m, before, 64, &n);
    MT_EXPECT(mmrec_model_load(m, path), status, needle);
    mt_params(m, after, 64, &n2);
    ck_assert_msg(memcmp(before, after, n * sizeof(float)) == 0,
                  "a failed load changed the model (%s)", needle);
}

/* ---- registry ---- */

START_TEST(test_model_registry_names_and_lookup) {
    mmrec_model *m = mt_small_model(1);
    size_t n;
    MT_OK(mmrec_model_num_params(m, &n));
    ck_assert_uint_eq(n, 3);
    const char *name;
    mmrec_tensor *t, *u;
    MT_OK(mmrec_model_param_at(m, 2, &name, &t));
    ck_assert_str_eq(name, "head.v");
    MT_OK(mmrec_model_param(m, "head.v", &u));
    ck_assert_ptr_eq(t, u);
    MT_OK(mmrec_model_param_at(m, 0, NULL, &t));
    MT_EXPECT(mmrec_model_param_at(m, 3, &name, &t), MMREC_ERANGE, "index 3");
    MT_EXPECT(mmrec_model_param(m, "nope", &t), MMREC_ENOTFOUND, "'nope'");
    int64_t shape[2] = {2, 3}, bad[2] = {2, 0};
    MT_EXPECT(mmrec_model_add_param(m, "enc.w", 2, shape, NULL), MMREC_ESTATE, "already exists");
    MT_EXPECT(mmrec_model_add_param(m, "", 2, shape, NULL), MMREC_EINVAL, "name");
    MT_EXPECT(mmrec_model_add_param(m, "a\nb", 2, shape, NULL), MMREC_EINVAL, "control");
    MT_EXPECT(mmrec_model_add_param(m, "x", 2, bad, NULL), MMREC_EINVAL, "shape[1] is 0");
    MT_EXPECT(mmrec_model_add_param(NULL, "x", 2, shape, NULL), MMREC_EINVAL, "'model'");
    MT_EXPECT(mmrec_model_add_param(m, NULL, 2, shape, NULL), MMREC_EINVAL, "'name'");
    MT_EXPECT(mmrec_model_num_params(m, NULL), MMREC_EINVAL, "'out'");
    MT_EXPECT(mmrec_model_param(m, NULL, &t), MMREC_EINVAL, "'name'");
    MT_EXPECT(mmrec_model_seed(NULL, 1), MMREC_EINVAL, "'model'");
    MT_OK(mmrec_model_seed(m, 7));
    /* parameters start at zero */
    MT_OK(mmrec_model_add_param(m, "zero", 2, shape, &t));
    const float *d;
    MT_OK(mmrec_tensor_data_const(t, &d));
    for (int i = 0; i < 6; i++) ck_assert(d[i] == 0.0f);
    mmrec_model_destroy(m);
    mmrec_model_destroy(NULL);
}
END_TEST

/* Prefixes match whole name components: "fq.layers.1" is layer 1 and what
 * is below it, not layers 10 .. 12; the same rule picks an optimizer
 * group's parameters; a prefix ending in '.' and "" work as before. */
START_TEST(test_prefix_matches_whole_name_components) {
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    const char *names[6] = {"fq.layers.1",   "fq.layers.1.w", "fq.layers.10.w",
                            "fq.layers.12.w", "fq.layers.1x", "head.w"};
    int64_t one[1] = {2};
    for (int i = 0; i < 6; i++) MT_OK(mmrec_model_add_param(m, names[i], 1, one, NULL));
    size_t count;
    MT_OK(mmrec_model_freeze(m, "fq.layers.1", &count));
    ck_assert_uint_eq(count, 2);
    size_t trainable, total;
    MT_OK(mmrec_model_param_count(m, &trainable, &total));
    ck_assert_uint_eq(trainable, 4 * 2);
    MT_OK(mmrec_model_freeze(m, "fq.", &count));
    ck_assert_uint_eq(count, 5);
    MT_EXPECT(mmrec_model_freeze(m, "fq.lay", &count), MMREC_ENOTFOUND, "whole name components");
    MT_OK(mmrec_model_unfreeze(m, "", &count));
    ck_assert_uint_eq(count, 6);
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    mmrec_optimizer *o;
    MT_OK(mmrec_optimizer_create(m, &oc, &o));
    int g;
    MT_OK(mmrec_optimizer_add_group(o, "fq.layers.1", 0.5f, 0.0f, &g));
    MT_EXPECT(mmrec_optimizer_add_group(o, "hea", 0.5f, 0.0f, NULL), MMREC_ENOTFOUND, "'hea'");
    /* one step with every gradient 1: lr 0.5 moves by 0.5, lr 1e-3 by 1e-3 (Adam's first step) */
    float before[6][2];
    mmrec_tensor *t[6];
    for (int i = 0; i < 6; i++) {
        MT_OK(mmrec_model_param(m, names[i], &t[i]));
        MT_OK(mmrec_tensor_copy_to(t[i], before[i], 2));
        t[i]->grad[0] = t[i]->grad[1] = 1.0f;
    }
    MT_OK(mmrec_optimizer_step(o));
    for (int i = 0; i < 6; i++) {
        const float *d;
        MT_OK(mmrec_tensor_data_const(t[i], &d));
        float step = before[i][0] - d[0], want = i < 2 ? 0.5f : 1e-3f;
        ck_assert_msg(fabsf(step - want) < 1e-4f, "%s moved by %g, expected %g", names[i],
                      (double)step, (double)want);
    }
    mmrec_optimizer_destroy(o);
    mmrec_model_destroy(m);
}
END_TEST

START_TEST(test_model_freeze_counts_and_frozen_get_no_gradient) {
    mmrec_model *m = mt_small_model(2);
    size_t count, trainable, total;
    MT_OK(mmrec_model_param_count(m, &trainable, &total));
    ck_assert_uint_eq(trainable, 15);
    ck_assert_uint_eq(total, 15);
    MT_OK(mmrec_model_freeze(m, "enc.", &count));
    ck_assert_uint_eq(count, 2);
    MT_OK(mmrec_model_param_count(m, &trainable, &total));
    ck_assert_uint_eq(trainable, 6);
    ck_assert_uint_eq(total, 15);
    MT_EXPECT(mmrec_model_freeze(m, "dec", &count), MMREC_ENOTFOUND, "'dec'");
    MT_EXPECT(mmrec_model_unfreeze(m, "dec", &count), MMREC_ENOTFOUND, "'dec'");
    MT_EXPECT(mmrec_model_freeze(m, NULL, &count), MMREC_EINVAL, "'prefix'");
    total = 0;
    MT_OK(mmrec_model_param_count(m, NULL, &total));
    ck_assert_uint_eq(total, 15);
    trainable = 0;
    MT_OK(mmrec_model_param_count(m, &trainable, NULL));
    ck_assert_uint_eq(trainable, 6);
    MT_EXPECT(mmrec_model_param_count(NULL, &trainable, &total), MMREC_EINVAL, "model");

    /* y = x W V: W frozen gets nothing, V gets its gradient. */
    mmrec_tensor *w, *v, *x, *h, *y;
    MT_OK(mmrec_model_param(m, "enc.w", &w));
    MT_OK(mmrec_model_param(m, "head.v", &v));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    float xd[4] = {1, 2, 3, 4}, seed[4] = {1, -1, 0.5f, 2};
    int64_t sx[2] = {2, 2};
    MT_OK(mmrec_tape_wrap(tape, xd, 2, sx, 0, &x));
    MT_OK(mmrec_matmul(tape, x, w, 0, &h));
    MT_OK(mmrec_matmul(tape, h, v, 0, &y));
    MT_OK(mmrec_tape_backward_from(tape, y, seed));
    const float *gw, *gv;
    MT_OK(mmrec_tensor_grad(w, &gw));
    MT_OK(mmrec_tensor_grad(v, &gv));
    for (int i = 0; gw && i < 6; i++) ck_assert(gw[i] == 0.0f);
    ck_assert_ptr_nonnull(gv);
    float norm = 0;
    for (int i = 0; i < 6; i++) norm += fabsf(gv[i]);
    ck_assert(norm > 0);
    mmrec_tape_reset(tape);

    MT_OK(mmrec_model_unfreeze(m, "", &count));
    ck_assert_uint_eq(count, 3);
    MT_OK(mmrec_model_param_count(m, &trainable, &total));
    ck_assert_uint_eq(trainable, 15);
    MT_OK(mmrec_model_zero_grad(m));
    MT_OK(mmrec_tensor_grad(v, &gv));
    for (int i = 0; i < 6; i++) ck_assert(gv[i] == 0.0f);
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(m);
}
END_TEST

START_TEST(test_model_flat_buffers_round_trip) {
    mmrec_model *m = mt_small_model(3);
    float p[15], q[15], g[15];
    MT_OK(mmrec_model_export_params(m, p, 15));
    for (int i = 0; i < 15; i++) q[i] = p[i] * 2 + 1;
    MT_OK(mmrec_model_import_params(m, q, 15));
    MT_OK(mmrec_model_export_params(m, p, 15));
    ck_assert(memcmp(p, q, sizeof p) == 0);
    MT_OK(mmrec_model_import_grads(m, q, 15));
    MT_OK(mmrec_model_export_grads(m, g, 15));
    ck_assert(memcmp(g, q, sizeof g) == 0);
    MT_EXPECT(mmrec_model_export_params(m, p, 14), MMREC_EINVAL, "n is 14, expected 15");
    MT_EXPECT(mmrec_model_import_grads(m, q, 16), MMREC_EINVAL, "n is 16");
    MT_EXPECT(mmrec_model_export_grads(m, NULL, 15), MMREC_EINVAL, "argument 'dst' is NULL");
    MT_EXPECT(mmrec_model_export_grads(m, g, 16), MMREC_EINVAL, "n is 16, expected 15");
    q[4] = NAN;
    MT_EXPECT(mmrec_model_import_params(m, q, 15), MMREC_ENUMERIC, "src[4] is nan");
    MT_OK(mmrec_model_export_params(m, p, 15));
    ck_assert(p[4] == 4 * 0 + p[4]); /* unchanged: not NaN */
    ck_assert(!isnan(p[4]));
    /* frozen parameters leave the flat view */
    MT_OK(mmrec_model_freeze(m, "enc.b", NULL));
    MT_EXPECT(mmrec_model_export_params(m, p, 15), MMREC_EINVAL, "expected 12");
    MT_OK(mmrec_model_export_params(m, p, 12));

    /* a sparse table: importing gradients marks the non-zero rows */
    mmrec_tensor *table;
    int64_t st[2] = {4, 2};
    MT_OK(mmrec__model_add_param(m, "t", "emb", "table", 2, st, true, &table));
    float big[20] = {0};
    big[12 + 3] = 1.0f; /* row 1 of the table (after 12 dense elements) */
    MT_OK(mmrec_model_import_grads(m, big, 20));
    ck_assert_uint_eq(table->param->n_touched, 1);
    ck_assert_int_eq(table->param->touched_rows[0], 1);
    MT_OK(mmrec_model_zero_grad(m));
    ck_assert_uint_eq(table->param->n_touched, 0);
    mmrec_model_destroy(m);
}
END_TEST

/* A model of "lin" (Linear 3 -> 2: weight [2,3] index 0, bias [2] index 1)
 * over "emb" (row-sparse [6,3] table, index 2), noise in every parameter. */
static mmrec_model *mt_sparse_model(mmrec_module **lin, mmrec_module **emb) {
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    mmrec_embedding_config ec;
    MT_OK(mmrec_embedding_config_init(&ec));
    ec.num_rows = 6;
    ec.dim = 3;
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = 3;
    lc.out_dim = 2;
    MT_OK(mmrec_linear_create(m, "lin", &lc, lin));
    MT_OK(mmrec_embedding_create(m, "emb", &ec, emb));
    mt_perturb_params(m, 11);
    return m;
}

START_TEST(test_model_sparse_rows_and_dense_part) {
    mmrec_module *lin, *emb;
    mmrec_model *m = mt_sparse_model(&lin, &emb);
    int flag;
    MT_OK(mmrec_model_param_row_sparse(m, 0, &flag));
    ck_assert_int_eq(flag, 0);
    MT_OK(mmrec_model_param_row_sparse(m, 2, &flag));
    ck_assert_int_eq(flag, 1);

    /* one step: rows 4 and 1 gathered (4 twice) */
    mmrec_tape *t;
    MT_OK(mmrec_tape_create(&t));
    const int64_t ids[3] = {4, 1, 4};
    mmrec_tensor *e, *y, *loss;
    MT_OK(mmrec_embedding_forward(emb, t, ids, 3, &e));
    MT_OK(mmrec_linear_forward(lin, t, e, &y));
    MT_OK(mmrec_sum(t, y, MMREC_AXIS_ALL, &loss));
    MT_OK(mmrec_tape_backward(t, loss));
    int64_t rows[6];
    size_t count;
    MT_OK(mmrec_model_grad_rows(m, 2, rows, 6, &count));
    ck_assert_uint_eq(count, 2);
    ck_assert(rows[0] == 4 && rows[1] == 1); /* first-touch order */

    /* the dense flat buffer is the flat buffer without the table */
    float all[26], dense[8];
    MT_OK(mmrec_model_export_grads(m, all, 26));
    MT_OK(mmrec_model_export_dense_grads(m, dense, 8));
    ck_assert(memcmp(all, dense, sizeof dense) == 0);
    float d2[8];
    for (int i = 0; i < 8; i++) d2[i] = 0.5f * (float)i - 1.0f;
    MT_OK(mmrec_model_import_dense_grads(m, d2, 8));
    MT_OK(mmrec_model_export_grads(m, all, 26));
    ck_assert(memcmp(all, d2, sizeof d2) == 0);
    MT_OK(mmrec_model_grad_rows(m, 2, rows, 6, &count)); /* the table kept its rows */
    ck_assert_uint_eq(count, 2);

    /* overwrite with rows 5, 1, 5: row 5 is the sum of its two, in order */
    const int64_t set[3] = {5, 1, 5};
    float src[9];
    mt_fill_uniform(src, 9, -1, 1, 12);
    MT_OK(mmrec_model_set_grad_rows(m, 2, set, 3, src));
    MT_OK(mmrec_model_grad_rows(m, 2, rows, 6, &count));
    ck_assert(count == 2 && rows[0] == 5 && rows[1] == 1);
    mmrec_tensor *table;
    const float *g;
    MT_OK(mmrec_model_param(m, "emb.weight", &table));
    MT_OK(mmrec_tensor_grad(table, &g));
    for (int r = 0; r < 6; r++)
        for (int j = 0; j < 3; j++) {
            float want = r == 5 ? src[j] + src[6 + j] : r == 1 ? src[3 + j] : 0.0f;
            ck_assert_msg(g[r * 3 + j] == want, "grad[%d][%d] %g, want %g", r, j,
                          (double)g[r * 3 + j], (double)want);
        }

    /* a failed call changes nothing */
    float before[18];
    memcpy(before, g, sizeof before);
    const int64_t bad[2] = {1, 6};
    MT_EXPECT(mmrec_model_set_grad_rows(m, 2, bad, 2, src), MMREC_ERANGE, "rows[1] is 6");
    src[4] = NAN;
    MT_EXPECT(mmrec_model_set_grad_rows(m, 2, set, 2, src), MMREC_ENUMERIC, "src[4] is nan");
    ck_assert(memcmp(before, g, sizeof before) == 0);
    MT_OK(mmrec_model_grad_rows(m, 2, rows, 6, &count));
    ck_assert_uint_eq(count, 2);

    /* the next step (SGD, lr 1) moves only the listed rows */
    float p0[26], p1[26];
    MT_OK(mmrec_model_export_params(m, p0, 26));
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_SGD;
    oc.lr = 1.0f;
    mmrec_optimizer *opt;
    MT_OK(mmrec_optimizer_create(m, &oc, &opt));
    MT_OK(mmrec_optimizer_step(opt));
    MT_OK(mmrec_model_export_params(m, p1, 26));
    for (int r = 0; r < 6; r++)
        for (int j = 0; j < 3; j++) {
            int i = 8 + r * 3 + j;
            ck_assert_msg(p1[i] == p0[i] - before[r * 3 + j], "row %d: %g -> %g", r,
                          (double)p0[i], (double)p1[i]);
        }
    MT_OK(mmrec_model_grad_rows(m, 2, rows, 6, &count)); /* the step cleared them */
    ck_assert_uint_eq(count, 0);
    mmrec_tape_reset(t);

    /* a dense write into the table lists every row */
    MT_OK(mmrec_sum(t, table, MMREC_AXIS_ALL, &loss));
    MT_OK(mmrec_tape_backward(t, loss));
    MT_OK(mmrec_model_grad_rows(m, 2, rows, 6, &count));
    ck_assert_uint_eq(count, 6);
    for (int r = 0; r < 6; r++) ck_assert_int_eq(rows[r], r);
    MT_OK(mmrec_model_set_grad_rows(m, 2, NULL, 0, NULL)); /* clears it, rows only again */
    MT_OK(mmrec_model_grad_rows(m, 2, rows, 6, &count));
    ck_assert_uint_eq(count, 0);
    mmrec_tape_reset(t);

    /* a frozen table is no row-sparse table; the dense part keeps its size */
    MT_OK(mmrec_model_freeze(m, "emb", NULL));
    MT_OK(mmrec_model_param_row_sparse(m, 2, &flag));
    ck_assert_int_eq(flag, 0);
    MT_OK(mmrec_model_export_dense_grads(m, dense, 8));
    MT_EXPECT(mmrec_model_grad_rows(m, 2, rows, 6, &count), MMREC_EINVAL, "index 2");
    mmrec_optimizer_destroy(opt);
    mmrec_tape_destroy(t);
    mmrec_model_destroy(m);
}
END_TEST

START_TEST(test_model_sparse_rows_bad_input) {
    mmrec_module *lin, *emb;
    mmrec_model *m = mt_sparse_model(&lin, &emb);
    int flag;
    int64_t rows[6] = {0};
    size_t count;
    float buf[9] = {0};
    MT_EXPECT(mmrec_model_param_row_sparse(m, 3, &flag), MMREC_ERANGE, "index 3");
    MT_EXPECT(mmrec_model_grad_rows(m, 3, rows, 6, &count), MMREC_ERANGE, "index 3");
    MT_EXPECT(mmrec_model_grad_rows(m, 1, rows, 6, &count), MMREC_EINVAL,
              "index 1: parameter 'lin.bias' is not a row-sparse table");
    MT_OK(mmrec_model_set_grad_rows(m, 2, rows, 3, buf)); /* row 0 touched */
    MT_EXPECT(mmrec_model_grad_rows(m, 2, rows, 0, &count), MMREC_ERANGE, "capacity is 0");
    MT_EXPECT(mmrec_model_set_grad_rows(m, 0, rows, 1, buf), MMREC_EINVAL, "index 0");
    MT_EXPECT(mmrec_model_set_grad_rows(m, 2, NULL, 1, buf), MMREC_EINVAL,
              "argument 'rows' is NULL");
    rows[2] = -1;
    MT_EXPECT(mmrec_model_set_grad_rows(m, 2, rows, 3, buf), MMREC_ERANGE, "rows[2] is -1");
    MT_EXPECT(mmrec_model_export_dense_grads(m, buf, 9), MMREC_EINVAL,
              "n is 9, expected 8 (the dense element count)");
    MT_EXPECT(mmrec_model_import_dense_grads(m, buf, 26), MMREC_EINVAL, "n is 26, expected 8");
    buf[7] = INFINITY;
    MT_EXPECT(mmrec_model_import_dense_grads(m, buf, 8), MMREC_ENUMERIC, "src[7] is inf");
    mmrec_model_destroy(m);
}
END_TEST

/* ---- lifetime ---- */

START_TEST(test_model_destroyed_before_optimizer_lives_on) {
    mmrec_model *m = mt_small_model(4);
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    mmrec_optimizer *opt;
    MT_OK(mmrec_optimizer_create(m, &cfg, &opt));
    mmrec_model_destroy(m); /* the optimizer still holds it */
    size_t n;
    MT_EXPECT(mmrec_model_num_params(m, &n), MMREC_ESTATE, "destroyed");
    MT_EXPECT(mmrec_optimizer_step(opt), MMREC_ESTATE, "destroyed");
    float lr;
    MT_OK(mmrec_optimizer_get_lr(opt, 0, &lr));
    mmrec_model_destroy(m); /* a second destroy is harmless */
    mmrec_optimizer_destroy(opt); /* frees the model */
}
END_TEST

START_TEST(test_model_destroyed_before_tape_lives_on) {
    for (int reset_first = 0; reset_first < 2; reset_first++) {
        mmrec_model *m = mt_small_model(5);
        mmrec_tensor *w, *x, *y;
        MT_OK(mmrec_model_param(m, "enc.w", &w));
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        float xd[4] = {1, 2, 3, 4}, seed[6] = {1, 1, 1, 1, 1, 1};
        int64_t sx[2] = {2, 2};
        MT_OK(mmrec_tape_wrap(tape, xd, 2, sx, 0, &x));
        MT_OK(mmrec_matmul(tape, x, w, 0, &y)); /* the node keeps the model alive */
        mmrec_model_destroy(m);
        MT_OK(mmrec_tape_backward_from(tape, y, seed));
        const float *g;
        MT_OK(mmrec_tensor_grad(w, &g));
        ck_assert(g[0] == 4.0f && g[3] == 6.0f); /* dW = x^T 1 */
        if (reset_first) mmrec_tape_reset(tape);
        mmrec_tape_destroy(tape);
    }
}
END_TEST

/* ---- checkpoints ---- */

START_TEST(test_crc32c_check_value) {
    ck_assert_uint_eq(mmrec__crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(mmrec__crc32c(0, "", 0), 0);
    /* chaining equals one pass, at every split and alignment */
    unsigned char buf[100];
    for (int i = 0; i < 100; i++) buf[i] = (unsigned char)(i * 37 + 11);
    uint32_t whole = mmrec__crc32c(0, buf, 100);
    for (size_t k = 0; k <= 100; k += 7)
        ck_assert_uint_eq(mmrec__crc32c(mmrec__crc32c(0, buf, k), buf + k, 100 - k), whole);
}
END_TEST

START_TEST(test_checkpoint_round_trip_and_no_temp_file) {
    mt_tmp_dir();
    const char *path = mt_file(0, "m.ckpt");
    mmrec_model *a = mt_small_model(10), *b = mt_small_model(20);
    MT_OK(mmrec_model_save(a, path));
    ck_assert_int_eq(mt_count_tmp_files(), 0);
    MT_OK(mmrec_model_save(a, path)); /* replaces the old file */
    ck_assert_int_eq(mt_count_tmp_files(), 0);
    MT_OK(mmrec_model_load(b, path));
    float pa[15], pb[15];
    size_t n;
    mt_params(a, pa, 15, &n);
    mt_params(b, pb, 15, &n);
    ck_assert(memcmp(pa, pb, sizeof pa) == 0);
    /* 64-byte aligned data, exact size */
    size_t size;
    unsigned char *file = mt_read_file(path, &size);
    ck_assert(memcmp(file, "MMRECCKP", 8) == 0);
    ck_assert_uint_eq(file[8], 1);
    uint64_t data_off = 0;
    for (int i = 7; i >= 0; i--) data_off = (data_off << 8) | file[40 + i];
    ck_assert_uint_eq(data_off % 64, 0);
    free(file);

    MT_EXPECT(mmrec_model_save(NULL, path), MMREC_EINVAL, "'model'");
    MT_EXPECT(mmrec_model_save(a, NULL), MMREC_EINVAL, "'path'");
    MT_EXPECT(mmrec_model_load(a, NULL), MMREC_EINVAL, "'path'");
    MT_EXPECT(mmrec_checkpoint_save(NULL, NULL, path), MMREC_EINVAL, "'model'");
    MT_EXPECT(mmrec_checkpoint_load(a, NULL, NULL), MMREC_EINVAL, "'path'");
    mmrec_model_destroy(a);
    mmrec_model_destroy(b);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_checkpoint_io_errors) {
    mt_tmp_dir();
    mmrec_model *m = mt_small_model(11);
    mt_expect_load_fails(m, mt_file(0, "missing.ckpt"), MMREC_EIO, "No such file");
    mt_expect_load_fails(m, mt_file(0, "missing.ckpt"), MMREC_EIO, "missing.ckpt");
    MT_EXPECT(mmrec_model_save(m, "/nonexistent-mmrec-dir/m.ckpt"), MMREC_EIO,
              "/nonexistent-mmrec-dir/m.ckpt.tmp.");
    /* a directory cannot be replaced: the temporary file is removed */
    const char *dir = mt_file(0, "adir");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    MT_EXPECT(mmrec_model_save(m, dir), MMREC_EIO, "adir");
    ck_assert_int_eq(mt_count_tmp_files(), 0);
    mt_expect_load_fails(m, dir, MMREC_EIO, "not a regular file");
    mmrec_model_destroy(m);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_checkpoint_truncated_files_rejected) {
    mt_tmp_dir();
    char full[128];
    snprintf(full, sizeof full, "%s", mt_file(0, "full.ckpt"));
    const char *cut = mt_file(0, "cut.ckpt");
    mmrec_model *a = mt_small_model(12), *b = mt_small_model(13);
    MT_OK(mmrec_model_save(a, full));
    size_t size;
    unsigned char *file = mt_read_file(full, &size);
    size_t lengths[] = {0, 1, 8, 63, 64, 65, 100, 200, size / 2, size - 64, size - 1};
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        mt_write_file(cut, file, lengths[i]);
        mt_expect_load_fails(b, cut, MMREC_EFORMAT, lengths[i] < 64 ? "shorter than" : "truncated");
        mt_expect_load_fails(b, cut, MMREC_EFORMAT, "cut.ckpt");
    }
    /* a longer file is also refused */
    unsigned char *longer = calloc(size + 10, 1);
    memcpy(longer, file, size);
    mt_write_file(cut, longer, size + 10);
    mt_expect_load_fails(b, cut, MMREC_EFORMAT, "its header says");
    free(longer);
    free(file);
    mmrec_model_destroy(a);
    mmrec_model_destroy(b);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_checkpoint_flipped_bytes_rejected) {
    mt_tmp_dir();
    char full[128];
    snprintf(full, sizeof full, "%s", mt_file(0, "full.ckpt"));
    const char *bad = mt_file(0, "bad.ckpt");
    mmrec_model *a = mt_small_model(14), *b = mt_small_model(15);
    MT_OK(mmrec_model_save(a, full));
    size_t size;
    unsigned char *file = mt_read_file(full, &size);
    uint64_t data_off = 0;
    for (int i = 7; i >= 0; i--) data_off = (data_off << 8) | file[40 + i];
    struct {
        size_t pos;
        const char *needle;
    } cases[] = {
        {0, "bad magic"},
        {7, "bad magic"},
        {8, "header checksum"},
        {20, "header checksum"},
        {48, "header checksum"},
        {61, "header checksum"},
        {64, "index checksum"},
        {64 + 70, "index checksum"},
        {data_off - 1 > 64 + 80 ? 64 + 80 : 64, "index checksum"},
        {data_off, "data of entry 'enc.w'"},
        {data_off + 23, "data of entry 'enc.w'"},
        {data_off + 64, "data of entry 'enc.b'"},
        {size - 1, "checksum mismatch in the data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        file[cases[i].pos] ^= 0x10;
        mt_write_file(bad, file, size);
        file[cases[i].pos] ^= 0x10;
        mt_expect_load_fails(b, bad, MMREC_EFORMAT, cases[i].needle);
    }
    /* another format version, with a valid header checksum */
    file[8] = 2;
    uint32_t crc = mmrec__crc32c(0, file, 60);
    for (int i = 0; i < 4; i++) file[60 + i] = (unsigned char)(crc >> (8 * i));
    mt_write_file(bad, file, size);
    mt_expect_load_fails(b, bad, MMREC_EFORMAT, "format version 2");
    free(file);
    /* a foreign file */
    char text[200];
    memset(text, 'x', sizeof text);
    mt_write_file(bad, text, sizeof text);
    mt_expect_load_fails(b, bad, MMREC_EFORMAT, "not a libmmrec checkpoint");
    mmrec_model_destroy(a);
    mmrec_model_destroy(b);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_checkpoint_of_another_model_rejected) {
    mt_tmp_dir();
    const char *path = mt_file(0, "m.ckpt");
    mmrec_model *a = mt_small_model(16);
    MT_OK(mmrec_model_save(a, path));
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s3[1] = {3};

    /* same names, one shape differs */
    mmrec_model *b;
    MT_OK(mmrec_model_create(&b));
    MT_OK(mmrec_model_add_param(b, "enc.w", 2, s32, NULL));
    MT_OK(mmrec_model_add_param(b, "enc.b", 1, s3, NULL));
    MT_OK(mmrec_model_add_param(b, "head.v", 2, s32, NULL));
    mt_expect_load_fails(b, path, MMREC_EFORMAT, "parameter 'enc.w' is [2,3] in");
    mt_expect_load_fails(b, path, MMREC_EFORMAT, "[3,2] in the model");
    mmrec_model_destroy(b);

    /* the model has a parameter the file lacks */
    mmrec_model *c = mt_small_model(17);
    MT_OK(mmrec_model_add_param(c, "extra", 1, s3, NULL));
    mt_expect_load_fails(c, path, MMREC_EFORMAT, "has no parameter 'extra'");
    mmrec_model_destroy(c);

    /* the file has a parameter the model lacks */
    mmrec_model *d;
    MT_OK(mmrec_model_create(&d));
    MT_OK(mmrec_model_add_param(d, "enc.w", 2, s23, NULL));
    MT_OK(mmrec_model_add_param(d, "head.v", 2, s32, NULL));
    mt_expect_load_fails(d, path, MMREC_EFORMAT, "has parameter 'enc.b', which the model lacks");
    mmrec_model_destroy(d);

    /* different names altogether */
    mmrec_model *e;
    MT_OK(mmrec_model_create(&e));
    MT_OK(mmrec_model_add_param(e, "tower.w", 2, s23, NULL));
    mt_expect_load_fails(e, path, MMREC_EFORMAT, "no parameter 'tower.w'");
    mmrec_model_destroy(e);
    mmrec_model_destroy(a);
    mt_tmp_clean();
}
END_TEST

static Suite *model_suite(void) {
    Suite *s = suite_create("model");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_model_registry_names_and_lookup);
    tcase_add_test(api, test_model_freeze_counts_and_frozen_get_no_gradient);
    tcase_add_test(api, test_prefix_matches_whole_name_components);
    tcase_add_test(api, test_model_flat_buffers_round_trip);
    tcase_add_test(api, test_model_sparse_rows_and_dense_part);
    tcase_add_test(api, test_model_sparse_rows_bad_input);
    suite_add_tcase(s, api);
    TCase *lc = tcase_create("lifecycle");
    tcase_add_test(lc, test_model_destroyed_before_optimizer_lives_on);
    tcase_add_test(lc, test_model_destroyed_before_tape_lives_on);
    suite_add_tcase(s, lc);
    TCase *ck = tcase_create("checkpoint");
    tcase_add_test(ck, test_crc32c_check_value);
    tcase_add_test(ck, test_checkpoint_round_trip_and_no_temp_file);
    tcase_add_test(ck, test_checkpoint_io_errors);
    tcase_add_test(ck, test_checkpoint_truncated_files_rejected);
    tcase_add_test(ck, test_checkpoint_flipped_bytes_rejected);
    tcase_add_test(ck, test_checkpoint_of_another_model_rejected);
    suite_add_tcase(s, ck);
    return s;
}
