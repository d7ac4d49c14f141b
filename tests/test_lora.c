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
    /* a module that is not a Linear */
    mmrec_layernorm_config nc;
    MT_OK(mmrec_layernorm_config_init(&nc));
    nc.dim = 2;
    mmrec_module *ln;
    MT_OK(mmrec_layernorm_create(model, "ln", &nc, &ln));
    MT_EXPECT(mmrec_lora_attach(ln, &c), MMREC_EINVAL,
              "argument 'linear': module 'ln' is a layernorm, expected a linear");
    MT_EXPECT(mmrec_lora_merge(ln), MMREC_EINVAL, "argument 'linear': module 'ln' is a layernorm");
    MT_EXPECT(mmrec_lora_unmerge(ln), MMREC_EINVAL,
              "argument 'linear': module 'ln' is a layernorm");
    MT_EXPECT(mmrec_lora_attach(NULL, &c), MMREC_EINVAL, "argument 'linear' is NULL");
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

/* A Linear "lin" 6 -> 5 with LoRA of rank 2 under a Linear "head" 5 -> 1,
 * every parameter perturbed, and an Adam optimizer. */
typedef struct mt_lora_net {
    mmrec_model *model;
    mmrec_module *lin, *head;
    mmrec_optimizer *opt;
    mmrec_tape *tape;
} mt_lora_net;

static void mt_lora_net_make(mt_lora_net *n) {
    MT_OK(mmrec_model_create(&n->model));
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = 6;
    lc.out_dim = 5;
    MT_OK(mmrec_linear_create(n->model, "lin", &lc, &n->lin));
    lc.in_dim = 5;
    lc.out_dim = 1;
    MT_OK(mmrec_linear_create(n->model, "head", &lc, &n->head));
    mmrec_lora_config c;
    MT_OK(mmrec_lora_config_init(&c));
    c.rank = 2;
    MT_OK(mmrec_lora_attach(n->lin, &c));
    mt_perturb_params(n->model, 3);
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    oc.lr = 0.05f;
    MT_OK(mmrec_optimizer_create(n->model, &oc, &n->opt));
    MT_OK(mmrec_tape_create(&n->tape));
}

static void mt_lora_net_free(mt_lora_net *n) {
    mmrec_tape_destroy(n->tape);
    mmrec_optimizer_destroy(n->opt);
    mmrec_model_destroy(n->model);
}

/* One BCE training step of the net on a fixed batch of 4. */
static void mt_lora_net_step(mt_lora_net *n) {
    static float t[4] = {1, 0, 1, 0};
    float x[4 * 6];
    mt_fill_uniform(x, 24, -1, 1, 4);
    mmrec_tensor *tx, *h, *y, *ty, *loss;
    int64_t xs[2] = {4, 6}, ys[2] = {4, 1};
    MT_OK(mmrec_tape_wrap(n->tape, x, 2, xs, MMREC_TENSOR_READONLY, &tx));
    MT_OK(mmrec_linear_forward(n->lin, n->tape, tx, &h));
    MT_OK(mmrec_linear_forward(n->head, n->tape, h, &y));
    MT_OK(mmrec_tape_wrap(n->tape, t, 2, ys, MMREC_TENSOR_READONLY, &ty));
    MT_OK(mmrec_loss_bce_logits(n->tape, y, ty, &loss));
    MT_OK(mmrec_tape_backward(n->tape, loss));
    MT_OK(mmrec_optimizer_step(n->opt));
    mmrec_tape_reset(n->tape);
}

/* A copy of parameter `name` (at most 32 values). */
static void mt_param_copy(mmrec_model *m, const char *name, float *dst, size_t n) {
    mmrec_tensor *t;
    MT_OK(mmrec_model_param(m, name, &t));
    MT_OK(mmrec_tensor_copy_to(t, dst, n));
}

/* Merge, train a step, unmerge: the merged W, bias, A and B are held
 * frozen, so the step cannot move them, freeze / unfreeze / save / load
 * refuse, and unmerge gives back W bit for bit and the trainable state. */
START_TEST(test_lora_merge_step_unmerge_restores_weight) {
    mt_lora_net n;
    mt_lora_net_make(&n);
    mt_lora_net_step(&n);
    mt_lora_net_step(&n); /* A and B have trained */
    float w0[30], a0[12], b0[10], h0[5], w1[30], a1[12], b1[10], h1[5];
    mt_param_copy(n.model, "lin.weight", w0, 30);
    mt_param_copy(n.model, "lin.lora_A", a0, 12);
    mt_param_copy(n.model, "lin.lora_B", b0, 10);
    mt_param_copy(n.model, "head.weight", h0, 5);
    MT_OK(mmrec_lora_merge(n.lin));
    MT_EXPECT(mmrec_model_unfreeze(n.model, "lin.lora_A", NULL), MMREC_ESTATE,
              "held frozen by a merged LoRA");
    MT_EXPECT(mmrec_model_unfreeze(n.model, "", NULL), MMREC_ESTATE, "lin.weight");
    MT_EXPECT(mmrec_model_freeze(n.model, "lin.lora_B", NULL), MMREC_ESTATE, "unmerge");
    MT_EXPECT(mmrec_checkpoint_save(n.model, n.opt, "/nonexistent/x.mmrc"), MMREC_ESTATE,
              "before saving");
    MT_EXPECT(mmrec_model_load(n.model, "/nonexistent/x.mmrc"), MMREC_ESTATE,
              "before loading");
    size_t trainable, total;
    MT_OK(mmrec_model_param_count(n.model, &trainable, &total));
    ck_assert_uint_eq(trainable, 5 + 1); /* the head only */
    mt_lora_net_step(&n);                /* while merged: only the head moves */
    mt_param_copy(n.model, "lin.lora_A", a1, 12);
    mt_param_copy(n.model, "lin.lora_B", b1, 10);
    mt_param_copy(n.model, "head.weight", h1, 5);
    ck_assert(memcmp(a1, a0, sizeof a1) == 0);
    ck_assert(memcmp(b1, b0, sizeof b1) == 0);
    ck_assert(memcmp(h1, h0, sizeof h1) != 0);
    MT_OK(mmrec_lora_unmerge(n.lin));
    mt_param_copy(n.model, "lin.weight", w1, 30);
    ck_assert_msg(memcmp(w1, w0, sizeof w1) == 0, "unmerge did not restore the weight exactly");
    MT_OK(mmrec_model_param_count(n.model, &trainable, &total));
    ck_assert_uint_eq(trainable, 12 + 10 + 5 + 1); /* A, B and the head */
    mmrec_tensor *w;
    const float *g;
    MT_OK(mmrec_model_param(n.model, "lin.weight", &w));
    MT_OK(mmrec_tensor_grad(w, &g));
    ck_assert_ptr_null(g); /* W stays frozen, as attach left it */
    mt_lora_net_step(&n);   /* and A, B train again */
    mt_param_copy(n.model, "lin.lora_A", a1, 12);
    ck_assert(memcmp(a1, a0, sizeof a1) != 0);
    mt_lora_net_free(&n);
}
END_TEST

/* Every allocation of the merge failing in turn: each failure is
 * MMREC_ENOMEM, leaks nothing and changes nothing (nothing held, the
 * trainable state as before, the layer still unmerged). */
static mmrec_status mt_merge_scenario(void *ctx) {
    mt_lora_net *n = ctx;
    size_t before, after, total;
    MT_OK(mmrec_model_param_count(n->model, &before, &total));
    mmrec_status s = mmrec_lora_merge(n->lin);
    if (s == MMREC_OK) return mmrec_lora_unmerge(n->lin); /* frees the copy of W */
    MT_OK(mmrec_model_param_count(n->model, &after, &total));
    ck_assert_uint_eq(after, before);
    MT_EXPECT(mmrec_lora_unmerge(n->lin), MMREC_ESTATE, "already unmerged");
    return s;
}

START_TEST(test_lora_merge_out_of_memory_changes_nothing) {
    mt_lora_net n; /* built first: only the merge's allocations fail */
    mt_lora_net_make(&n);
    ck_assert_int_ge(mt_oom_loop("lora merge", mt_merge_scenario, &n), 1);
    MT_OK(mmrec_model_unfreeze(n.model, "lin.lora_A", NULL)); /* not held */
    mt_lora_net_free(&n);
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
