/* LoRA on a Linear module: gradients (the frozen path passes none), merge
 * equivalence, merged parameters held frozen and restored exactly, the
 * checkpoint round trip, bad input. */
#include "mt.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

MT_SUITE(lora_suite)

static mmrec_status mt_linear_fwd(void *ctx, mmrec_tape *tape, mmrec_tensor **in,
                                  mmrec_tensor **out) {
    return mmrec_linear_forward(ctx, tape, in[0], out);
}

START_TEST(test_lora) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = 9;
    lc.out_dim = 7;
    mmrec_module *lin;
    MT_OK(mmrec_linear_create(model, "lin", &lc, &lin));
    size_t trainable, total;
    mmrec_lora_config c;
    MT_OK(mmrec_lora_config_init(&c));
    c.rank = 3;
    c.alpha = 6.0f;
    MT_OK(mmrec_lora_attach(lin, &c));
    MT_OK(mmrec_model_param_count(model, &trainable, &total));
    ck_assert_uint_eq(trainable, 3 * 9 + 7 * 3);          /* only A and B train */
    ck_assert_uint_eq(total, 9 * 7 + 7 + 3 * 9 + 7 * 3);
    MT_EXPECT(mmrec_lora_attach(lin, &c), MMREC_ESTATE, "already has LoRA");
    mt_perturb_params(model, 5); /* B starts at zero: give the low-rank path a value */

    float x[2 * 4 * 9];
    mt_fill_uniform(x, 72, -1, 1, 1);
    /* sg: x's gradient is by design not the derivative of y, so only the
     * parameters are compared with finite differences here */
    mt_input in[1] = {{3, {2, 4, 9}, x, true}};
    mt_gradcheck("lora", mt_linear_fwd, lin, in, 1, model, NULL);

    /* x's gradient comes from the low-rank path only: dx = scale (dy B) A */
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *tx = mt_tape_tensor(tape, 3, in[0].shape, x, MMREC_TENSOR_REQUIRES_GRAD), *y;
    MT_OK(mmrec_linear_forward(lin, tape, tx, &y));
    float ones[56], want_dx[72] = {0};
    for (int i = 0; i < 56; i++) ones[i] = 1.0f;
    MT_OK(mmrec_tape_backward_from(tape, y, ones));
    mmrec_tensor *ta, *tb;
    const float *a, *b, *dx;
    MT_OK(mmrec_model_param(model, "lin.lora_A", &ta));
    MT_OK(mmrec_model_param(model, "lin.lora_B", &tb));
    MT_OK(mmrec_tensor_data_const(ta, &a));
    MT_OK(mmrec_tensor_data_const(tb, &b));
    MT_OK(mmrec_tensor_grad(tx, &dx));
    for (int row = 0; row < 8; row++)
        for (int k = 0; k < 9; k++) {
            double v = 0;
            for (int r = 0; r < 3; r++) {
                double colsum = 0; /* sum over outputs of dy * B[o, r], dy = 1 */
                for (int o = 0; o < 7; o++) colsum += b[o * 3 + r];
                v += colsum * a[r * 9 + k];
            }
            want_dx[row * 9 + k] = (float)(2.0 * v); /* scale = alpha / rank = 2 */
        }
    mt_assert_close("lora dx", dx, want_dx, 72, 1e-5f, 1e-6f);
    MT_OK(mmrec_model_zero_grad(model));
    mmrec_tape_reset(tape);
    tx = mt_tape_tensor(tape, 3, in[0].shape, x, MMREC_TENSOR_REQUIRES_GRAD);
    float unmerged[2 * 4 * 7], merged[2 * 4 * 7];
    MT_OK(mmrec_linear_forward(lin, tape, tx, &y));
    MT_OK(mmrec_tensor_copy_to(y, unmerged, 56));
    MT_OK(mmrec_lora_merge(lin));
    MT_EXPECT(mmrec_lora_merge(lin), MMREC_ESTATE, "already merged");
    MT_OK(mmrec_linear_forward(lin, tape, tx, &y));
    MT_OK(mmrec_tensor_copy_to(y, merged, 56));
    mt_assert_close("merged vs unmerged", merged, unmerged, 56, 1e-5f, 1e-6f);
    MT_OK(mmrec_lora_unmerge(lin));
    MT_EXPECT(mmrec_lora_unmerge(lin), MMREC_ESTATE, "already unmerged");
    MT_OK(mmrec_linear_forward(lin, tape, tx, &y));
    MT_OK(mmrec_tensor_copy_to(y, merged, 56));
    mt_assert_close("unmerged again", merged, unmerged, 56, 1e-5f, 1e-6f);

    mmrec_module *lin2;
    lc.in_dim = 2;
    MT_OK(mmrec_linear_create(model, "small", &lc, &lin2));
    c.rank = 3;
    MT_EXPECT(mmrec_lora_attach(lin2, &c), MMREC_EINVAL, "cfg->rank is 3");
    MT_EXPECT(mmrec_lora_merge(lin2), MMREC_ESTATE, "has no LoRA");
    MT_EXPECT(mmrec_lora_attach(NULL, &c), MMREC_EINVAL, "module");
    mmrec_tape_destroy(tape);
    mmrec_model_destroy(model);
}
END_TEST

START_TEST(test_lora_checkpoint_round_trip) {
    char path[] = "/tmp/mmrec-lora-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    float before[7], after[7];
    for (int round = 0; round < 2; round++) {
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        MT_OK(mmrec_model_seed(model, (uint64_t)round + 1));
        mmrec_linear_config lc;
        MT_OK(mmrec_linear_config_init(&lc));
        lc.in_dim = 5;
        lc.out_dim = 7;
        mmrec_module *lin;
        MT_OK(mmrec_linear_create(model, "lin", &lc, &lin));
        mmrec_lora_config c;
        MT_OK(mmrec_lora_config_init(&c));
        c.rank = 2;
        MT_OK(mmrec_lora_attach(lin, &c));
        if (round == 0) mt_perturb_params(model, 9);
        else MT_OK(mmrec_model_load(model, path));
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        int64_t s[2] = {1, 5};
        float xv[5] = {1, -2, 3, -4, 5};
        mmrec_tensor *x = mt_tape_tensor(tape, 2, s, xv, 0), *y;
        MT_OK(mmrec_linear_forward(lin, tape, x, &y));
        MT_OK(mmrec_tensor_copy_to(y, round ? after : before, 7));
        if (round == 0) MT_OK(mmrec_model_save(model, path));
        mmrec_tape_destroy(tape);
        mmrec_model_destroy(model);
    }
    for (int i = 0; i < 7; i++) ck_assert_float_eq(before[i], after[i]);
    close(fd);
    unlink(path);
}
END_TEST

/* Merge, train a step, unmerge: the merged W, bias, A and B are held
 * frozen, so the step cannot move them, freeze / unfreeze / save / load
 * refuse, and unmerge gives back W bit for bit and the trainable state. */
START_TEST(test_lora_merge_step_unmerge_restores_weight) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = 6;
    lc.out_dim = 5;
    mmrec_module *lin, *head;
    MT_OK(mmrec_linear_create(model, "lin", &lc, &lin));
    lc.in_dim = 5;
    lc.out_dim = 1;
    MT_OK(mmrec_linear_create(model, "head", &lc, &head));
    mmrec_lora_config c;
    MT_OK(mmrec_lora_config_init(&c));
    c.rank = 2;
    MT_OK(mmrec_lora_attach(lin, &c));
    mt_perturb_params(model, 3);
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = 0.05f;
    mmrec_optimizer *opt;
    MT_OK(mmrec_optimizer_create(model, &oc, &opt));
    mmrec_tensor *w, *a, *b, *hw;
    MT_OK(mmrec_model_param(model, "lin.weight", &w));
    MT_OK(mmrec_model_param(model, "lin.lora_A", &a));
    MT_OK(mmrec_model_param(model, "lin.lora_B", &b));
    MT_OK(mmrec_model_param(model, "head.weight", &hw));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    float x[4 * 6], t[4] = {1, 0, 1, 0};
    mt_fill_uniform(x, 24, -1, 1, 4);
    for (int step = 0; step < 4; step++) {
        if (step == 2) {
            float w_before[30], a_before[12], b_before[10], hw_before[5];
            MT_OK(mmrec_tensor_copy_to(w, w_before, 30));
            MT_OK(mmrec_tensor_copy_to(a, a_before, 12));
            MT_OK(mmrec_tensor_copy_to(b, b_before, 10));
            MT_OK(mmrec_tensor_copy_to(hw, hw_before, 5));
            MT_OK(mmrec_lora_merge(lin));
            MT_EXPECT(mmrec_model_unfreeze(model, "lin.lora_", NULL), MMREC_ESTATE,
                      "held frozen by a merged LoRA");
            MT_EXPECT(mmrec_model_unfreeze(model, "", NULL), MMREC_ESTATE, "lin.weight");
            MT_EXPECT(mmrec_model_freeze(model, "lin.lora_B", NULL), MMREC_ESTATE, "unmerge");
            MT_EXPECT(mmrec_checkpoint_save(model, opt, "/nonexistent/x.mmrc"), MMREC_ESTATE,
                      "before saving");
            MT_EXPECT(mmrec_model_load(model, "/nonexistent/x.mmrc"), MMREC_ESTATE,
                      "before loading");
            size_t trainable, total;
            MT_OK(mmrec_model_param_count(model, &trainable, &total));
            ck_assert_uint_eq(trainable, 5 + 1); /* the head only */
            /* one step while merged: only the head moves */
            mmrec_tensor *tx, *h, *y, *loss;
            int64_t xs[2] = {4, 6}, ys[2] = {4, 1};
            MT_OK(mmrec_tape_wrap(tape, x, 2, xs, MMREC_TENSOR_READONLY, &tx));
            MT_OK(mmrec_linear_forward(lin, tape, tx, &h));
            MT_OK(mmrec_linear_forward(head, tape, h, &y));
            mmrec_tensor *ty;
            MT_OK(mmrec_tape_wrap(tape, t, 2, ys, MMREC_TENSOR_READONLY, &ty));
            MT_OK(mmrec_loss_bce_logits(tape, y, ty, &loss));
            MT_OK(mmrec_tape_backward(tape, loss));
            MT_OK(mmrec_optimizer_step(opt));
            mmrec_tape_reset(tape);
            float a_now[12], b_now[10], hw_now[5], w_now[30];
            MT_OK(mmrec_tensor_copy_to(a, a_now, 12));
            MT_OK(mmrec_tensor_copy_to(b, b_now, 10));
            MT_OK(mmrec_tensor_copy_to(hw, hw_now, 5));
            ck_assert(memcmp(a_now, a_before, sizeof a_now) == 0);
            ck_assert(memcmp(b_now, b_before, sizeof b_now) == 0);
            ck_assert(memcmp(hw_now, hw_before, sizeof hw_now) != 0);
            MT_OK(mmrec_lora_unmerge(lin));
            MT_OK(mmrec_tensor_copy_to(w, w_now, 30));
            ck_assert_msg(memcmp(w_now, w_before, sizeof w_now) == 0,
                          "unmerge did not restore the weight exactly");
            MT_OK(mmrec_model_param_count(model, &trainable, &total));
            ck_assert_uint_eq(trainable, 12 + 10 + 5 + 1); /* A, B and the head */
            const float *g;
            MT_OK(mmrec_tensor_grad(w, &g));
            ck_assert_ptr_null(g); /* W stays frozen, as attach left it */
            continue;
        }
        mmrec_tensor *tx, *h, *y, *loss, *ty;
        int64_t xs[2] = {4, 6}, ys[2] = {4, 1};
        MT_OK(mmrec_tape_wrap(tape, x, 2, xs, MMREC_TENSOR_READONLY, &tx));
        MT_OK(mmrec_linear_forward(lin, tape, tx, &h));
        MT_OK(mmrec_linear_forward(head, tape, h, &y));
        MT_OK(mmrec_tape_wrap(tape, t, 2, ys, MMREC_TENSOR_READONLY, &ty));
        MT_OK(mmrec_loss_bce_logits(tape, y, ty, &loss));
        MT_OK(mmrec_tape_backward(tape, loss));
        MT_OK(mmrec_optimizer_step(opt));
        mmrec_tape_reset(tape);
    }
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(model);
}
END_TEST

/* A merge that cannot allocate its copy of W changes nothing. */
static size_t mt_lora_fail_at, mt_lora_count;
static void *mt_lora_alloc(void *user, size_t size) {
    (void)user;
    if (++mt_lora_count == mt_lora_fail_at) return NULL;
    void *p = NULL;
    return posix_memalign(&p, 64, size ? size : 64) == 0 ? p : NULL;
}

START_TEST(test_lora_merge_out_of_memory_changes_nothing) {
    mmrec_model *model;
    MT_OK(mmrec_model_create(&model));
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = 4;
    lc.out_dim = 3;
    mmrec_module *lin;
    MT_OK(mmrec_linear_create(model, "lin", &lc, &lin));
    mmrec_lora_config c;
    MT_OK(mmrec_lora_config_init(&c));
    c.rank = 1;
    MT_OK(mmrec_lora_attach(lin, &c));
    mt_perturb_params(model, 8);
    size_t trainable_before, total;
    MT_OK(mmrec_model_param_count(model, &trainable_before, &total));
    mmrec_allocator al = {sizeof al, mt_lora_alloc, mt_count_release, NULL};
    mt_lora_fail_at = 1;
    mt_lora_count = 0;
    MT_OK(mmrec_set_allocator(&al));
    MT_EXPECT(mmrec_lora_merge(lin), MMREC_ENOMEM, "lin.weight");
    MT_OK(mmrec_set_allocator(NULL));
    size_t trainable;
    MT_OK(mmrec_model_param_count(model, &trainable, &total));
    ck_assert_uint_eq(trainable, trainable_before);
    MT_OK(mmrec_model_unfreeze(model, "lin.lora_", NULL)); /* not held */
    MT_EXPECT(mmrec_lora_unmerge(lin), MMREC_ESTATE, "already unmerged");
    mmrec_model_destroy(model);
}
END_TEST

static Suite *lora_suite(void) {
    Suite *s = suite_create("lora");
    TCase *tc = tcase_create("lora");
    tcase_add_test(tc, test_lora);
    tcase_add_test(tc, test_lora_checkpoint_round_trip);
    tcase_add_test(tc, test_lora_merge_step_unmerge_restores_weight);
    tcase_add_test(tc, test_lora_merge_out_of_memory_changes_nothing);
    suite_add_tcase(s, tc);
    return s;
}
