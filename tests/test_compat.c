/* Files written by earlier releases still load (zstd's all-versions test).
 * tests/compat/<version>/ holds what release <version> wrote, made by
 * tests/compat/make_files_<version>.c from tests/compat/recipe_<version>.h;
 * each release adds its directory and a TCase here, and none is removed
 * while the soname is libmmrec.so.0.
 *
 * 0.1: a checkpoint with AdamW state must give back every parameter, the
 * step count, both groups' learning rates and the last gradient norm, and the
 * next step taken from it must reproduce 0.1's parameters to float32
 * rounding (a later release may compute a step's row statistics more
 * precisely than 0.1 did, which moves the last bits; a lost optimizer state
 * moves them by far more); a model file must load; a feature cache must list
 * its items and fields and gather the written values exactly, 16-bit fields
 * included. */
#include "mt.h"
#include "compat/recipe_0.1.h"

#include <math.h>
#include <stdio.h>

MT_SUITE(compat_suite)

static const char *c01_path(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/compat/0.1/%s", MMREC_TEST_DIR, name);
    return buf;
}

/* The expected values of the 0.1 checkpoint (golden record format). */
static void c01_expected(mt_golden *g) {
    mt_golden_load(g, "../compat/0.1/checkpoint_adamw.expected");
}

/* Asserts every parameter of r equals the record "<prefix>/<name>" of g,
 * bit for bit when `exact`, else to 1e-5 relative (1e-6 absolute), and that
 * g has no record for a parameter r lacks. */
static void c01_expect_params(const compat01_run *r, const mt_golden *g, const char *prefix,
                              bool exact) {
    size_t count, records = 0, plen = strlen(prefix);
    MT_OK(mmrec_model_num_params(r->model, &count));
    for (size_t i = 0; i < g->n; i++)
        records += strncmp(g->arrays[i].name, prefix, plen) == 0 && g->arrays[i].name[plen] == '/';
    ck_assert_uint_eq(records, count);
    for (size_t i = 0; i < count; i++) {
        const char *name;
        mmrec_tensor *t;
        int ndim;
        int64_t shape[MMREC_MAX_DIMS];
        const float *data;
        MT_OK(mmrec_model_param_at(r->model, i, &name, &t));
        MT_OK(mmrec_tensor_shape(t, &ndim, shape));
        MT_OK(mmrec_tensor_data_const(t, &data));
        char rec[128];
        snprintf(rec, sizeof rec, "%s/%s", prefix, name);
        const mt_array *want = mt_golden_get(g, rec);
        ck_assert_int_eq(ndim, want->ndim);
        for (int d = 0; d < ndim; d++) ck_assert_int_eq(shape[d], want->shape[d]);
        for (size_t k = 0; k < want->numel; k++) {
            float d = fabsf(data[k] - want->data[k]);
            bool same = exact ? memcmp(&data[k], &want->data[k], sizeof(float)) == 0
                              : d <= 1e-6f + 1e-5f * fabsf(want->data[k]);
            ck_assert_msg(same, "%s[%zu] is %a, 0.1 had %a", rec, k, (double)data[k],
                          (double)want->data[k]);
        }
    }
}

/* A run built from another seed and other learning rates than 0.1's, then
 * loaded from the 0.1 checkpoint (opt: with its optimizer state). */
static void c01_load(compat01_run *r, bool opt) {
    char path[512];
    MT_OK(compat01_build(r, COMPAT01_SEED + 7, 0.5f, 0.25f));
    MT_OK(mmrec_checkpoint_load(r->model, opt ? r->opt : NULL,
                                c01_path(path, sizeof path, "checkpoint_adamw.mmrc")));
}

START_TEST(test_checkpoint_0_1_loads_every_parameter_bitwise) {
    mt_golden g;
    c01_expected(&g);
    compat01_run r;
    c01_load(&r, true);
    c01_expect_params(&r, &g, "saved", true);
    compat01_free(&r);
    c01_load(&r, false); /* parameters only */
    c01_expect_params(&r, &g, "saved", true);
    compat01_free(&r);
    mt_golden_free(&g);
}
END_TEST

START_TEST(test_checkpoint_0_1_restores_step_count_lrs_and_grad_norm) {
    mt_golden g;
    c01_expected(&g);
    compat01_run r;
    c01_load(&r, true);
    uint64_t steps;
    MT_OK(mmrec_optimizer_step_count(r.opt, &steps));
    ck_assert_uint_eq(steps, COMPAT01_SAVED_STEPS);
    float lr;
    MT_OK(mmrec_optimizer_get_lr(r.opt, 0, &lr));
    ck_assert(lr == COMPAT01_LR);
    MT_OK(mmrec_optimizer_get_lr(r.opt, 1, &lr));
    ck_assert(lr == COMPAT01_ITEM_LR);
    MT_EXPECT(mmrec_optimizer_get_lr(r.opt, 2, &lr), MMREC_ERANGE, NULL);
    float norm;
    MT_OK(mmrec_optimizer_last_grad_norm(r.opt, &norm));
    const mt_array *want = mt_golden_get(&g, "last_grad_norm");
    ck_assert_msg(memcmp(&norm, want->data, sizeof norm) == 0, "last grad norm %a, 0.1 had %a",
                  (double)norm, (double)want->data[0]);
    compat01_free(&r);
    mt_golden_free(&g);
}
END_TEST

START_TEST(test_checkpoint_0_1_resumes_the_next_step) {
    int threads = mmrec_get_num_threads();
    MT_OK(mmrec_set_num_threads(1)); /* as 0.1 ran it */
    mt_golden g;
    c01_expected(&g);
    compat01_run r;
    c01_load(&r, true);
    MT_OK(compat01_step(&r, COMPAT01_SAVED_STEPS));
    c01_expect_params(&r, &g, "resumed", false);
    uint64_t steps;
    MT_OK(mmrec_optimizer_step_count(r.opt, &steps));
    ck_assert_uint_eq(steps, COMPAT01_SAVED_STEPS + 1);

    /* Sparse rows: the table rows no step touched (29..47) kept their
     * values; the rows of this step's batch moved. */
    mmrec_tensor *table;
    const float *now;
    MT_OK(mmrec_model_param(r.model, "item.weight", &table));
    MT_OK(mmrec_tensor_data_const(table, &now));
    const mt_array *saved = mt_golden_get(&g, "saved/item.weight");
    size_t from = 29 * COMPAT01_DIM;
    ck_assert(memcmp(now + from, saved->data + from, (saved->numel - from) * sizeof(float)) == 0);
    int64_t ids[COMPAT01_BATCH];
    float target[COMPAT01_BATCH * COMPAT01_OUT];
    compat01_batch(COMPAT01_SAVED_STEPS, ids, target);
    for (int i = 0; i < COMPAT01_BATCH; i++)
        ck_assert(memcmp(now + ids[i] * COMPAT01_DIM, saved->data + ids[i] * COMPAT01_DIM,
                         COMPAT01_DIM * sizeof(float)) != 0);
    compat01_free(&r);

    /* Without the optimizer state the same step gives other parameters: the
     * comparison above proves the state resumed, not only the parameters. */
    c01_load(&r, false);
    MT_OK(mmrec_optimizer_set_lr(r.opt, 0, COMPAT01_LR));
    MT_OK(mmrec_optimizer_set_lr(r.opt, 1, COMPAT01_ITEM_LR));
    MT_OK(compat01_step(&r, COMPAT01_SAVED_STEPS));
    const float *head;
    mmrec_tensor *hw;
    MT_OK(mmrec_model_param(r.model, "head.weight", &hw));
    MT_OK(mmrec_tensor_data_const(hw, &head));
    const mt_array *want = mt_golden_get(&g, "resumed/head.weight");
    float far = 0.0f;
    for (size_t k = 0; k < want->numel; k++) far = fmaxf(far, fabsf(head[k] - want->data[k]));
    ck_assert_msg(far > 1e-3f, "without the state the step is off by only %g", (double)far);
    compat01_free(&r);
    mt_golden_free(&g);
    MT_OK(mmrec_set_num_threads(threads));
}
END_TEST

START_TEST(test_model_0_1_loads_into_the_same_model) {
    mt_golden g;
    c01_expected(&g);
    compat01_run r;
    char path[512];
    MT_OK(compat01_build(&r, COMPAT01_SEED + 7, COMPAT01_LR, COMPAT01_ITEM_LR));
    MT_OK(mmrec_model_load(r.model, c01_path(path, sizeof path, "model.mmrc")));
    c01_expect_params(&r, &g, "resumed", true); /* saved after step 5 */
    compat01_free(&r);
    mt_golden_free(&g);
}
END_TEST

/* The 0.1 cache's fields: name, storage type, record length. */
static const struct {
    const char *name;
    mmrec_cache_dtype dtype;
    int64_t dim;
} c01_fields[3] = {{"image", MMREC_CACHE_F32, COMPAT01_IMAGE_DIM},
                   {"text", MMREC_CACHE_F16, COMPAT01_TEXT_DIM},
                   {"hidden", MMREC_CACHE_BF16, COMPAT01_HIDDEN_DIM}};

static mmrec_cache *c01_cache_open(void) {
    char path[512];
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(c01_path(path, sizeof path, "features.mmfc"), &c));
    return c;
}

START_TEST(test_cache_0_1_lists_items_fields_dims_and_dtypes) {
    mmrec_cache *c = c01_cache_open();
    int64_t items;
    MT_OK(mmrec_cache_num_items(c, &items));
    ck_assert_int_eq(items, COMPAT01_ITEMS);
    int fields;
    MT_OK(mmrec_cache_num_fields(c, &fields));
    ck_assert_int_eq(fields, 3);
    for (int k = 0; k < 3; k++) {
        const char *name;
        int64_t dim;
        mmrec_cache_dtype dtype;
        MT_OK(mmrec_cache_field_info(c, k, &name, &dim, &dtype));
        ck_assert_str_eq(name, c01_fields[k].name);
        ck_assert_int_eq(dim, c01_fields[k].dim);
        ck_assert_int_eq(dtype, c01_fields[k].dtype);
        MT_OK(mmrec_cache_field_dim(c, c01_fields[k].name, &dim));
        ck_assert_int_eq(dim, c01_fields[k].dim);
    }
    int64_t dim;
    MT_EXPECT(mmrec_cache_field_dim(c, "audio", &dim), MMREC_ENOTFOUND, "audio");
    mmrec_cache_close(c);
}
END_TEST

START_TEST(test_cache_0_1_gathers_the_written_values_exactly) {
    mmrec_cache *c = c01_cache_open();
    /* every item, last first, and one twice */
    int64_t ids[COMPAT01_ITEMS + 1];
    for (int i = 0; i < COMPAT01_ITEMS; i++) ids[i] = compat01_item_id(COMPAT01_ITEMS - 1 - i);
    ids[COMPAT01_ITEMS] = compat01_item_id(3);
    size_t n = COMPAT01_ITEMS + 1;
    static float got[(COMPAT01_ITEMS + 1) * COMPAT01_HIDDEN_DIM];
    for (int k = 0; k < 3; k++) {
        int dim = (int)c01_fields[k].dim;
        MT_OK(mmrec_cache_gather_into(c, c01_fields[k].name, ids, n, 0, got, NULL));
        for (size_t i = 0; i < n; i++)
            for (int j = 0; j < dim; j++) {
                float want = compat01_value(k, ids[i], j), v = got[i * (size_t)dim + (size_t)j];
                ck_assert_msg(memcmp(&v, &want, sizeof v) == 0, "%s of id %lld [%d]: %a, want %a",
                              c01_fields[k].name, (long long)ids[i], j, (double)v, (double)want);
            }
    }

    /* The [L, H] field into a tape tensor: row-major layers of width H. */
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *hidden, *presence;
    int64_t some[3] = {compat01_item_id(7), 6 /* not in the cache */, compat01_item_id(0)};
    MT_OK(mmrec_cache_gather_ex(c, tape, "hidden", some, 3, MMREC_CACHE_MISSING_ZERO, &hidden,
                                &presence));
    int ndim;
    int64_t shape[MMREC_MAX_DIMS];
    MT_OK(mmrec_tensor_shape(hidden, &ndim, shape));
    ck_assert_int_eq(ndim, 2);
    ck_assert_int_eq(shape[0], 3);
    ck_assert_int_eq(shape[1], COMPAT01_HIDDEN_DIM);
    const float *h, *p;
    MT_OK(mmrec_tensor_data_const(hidden, &h));
    MT_OK(mmrec_tensor_data_const(presence, &p));
    ck_assert(p[0] == 1.0f && p[1] == 0.0f && p[2] == 1.0f);
    for (int l = 0; l < COMPAT01_LAYERS; l++)
        for (int w = 0; w < COMPAT01_WIDTH; w++) {
            int j = l * COMPAT01_WIDTH + w;
            ck_assert(h[j] == (float)((some[0] * 7 + l * 31 + w * 3) % 255 - 127) / 64.0f);
            ck_assert(h[COMPAT01_HIDDEN_DIM + j] == 0.0f);
            ck_assert(h[2 * COMPAT01_HIDDEN_DIM + j] == compat01_value(2, some[2], j));
        }
    MT_EXPECT(mmrec_cache_gather(c, tape, "hidden", some, 3, &hidden), MMREC_ERANGE, "6");
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
}
END_TEST

static Suite *compat_suite(void) {
    Suite *s = suite_create("compat");
    TCase *v01 = tcase_create("v0.1");
    tcase_add_test(v01, test_checkpoint_0_1_loads_every_parameter_bitwise);
    tcase_add_test(v01, test_checkpoint_0_1_restores_step_count_lrs_and_grad_norm);
    tcase_add_test(v01, test_checkpoint_0_1_resumes_the_next_step);
    tcase_add_test(v01, test_model_0_1_loads_into_the_same_model);
    tcase_add_test(v01, test_cache_0_1_lists_items_fields_dims_and_dtypes);
    tcase_add_test(v01, test_cache_0_1_gathers_the_written_values_exactly);
    suite_add_tcase(s, v01);
    return s;
}
