/* Golden tests: every op, loss, module and optimizer against references
 * computed by PyTorch (tests/golden/make_golden.py, which documents the
 * file layout and the operation codes used here). */
#include "mt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MT_SUITE(golden_suite)

enum { MT_AXIS_ALL_GOLDEN = 1000, MT_MAX_IN = 8 };

/* ---- helpers ---- */

static const mt_array *mt_find(const mt_golden *g, const char *kase, const char *what) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", kase, what);
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->arrays[i].name, name) == 0) return &g->arrays[i];
    return NULL;
}

static const mt_array *mt_need(const mt_golden *g, const char *kase, const char *what) {
    const mt_array *a = mt_find(g, kase, what);
    ck_assert_msg(a != NULL, "golden array %s.%s is missing", kase, what);
    return a;
}

/* The distinct case names of a file, in order (those with a "<case>.<tag>"). */
static size_t mt_cases(const mt_golden *g, const char *tag, char (*out)[64], size_t max) {
    size_t n = 0;
    size_t tl = strlen(tag);
    for (size_t i = 0; i < g->n && n < max; i++) {
        const char *nm = g->arrays[i].name;
        size_t len = strlen(nm);
        if (len > tl + 1 && nm[len - tl - 1] == '.' && strcmp(nm + len - tl, tag) == 0) {
            memcpy(out[n], nm, len - tl - 1);
            out[n][len - tl - 1] = '\0';
            n++;
        }
    }
    return n;
}

static mmrec_tensor *mt_from(mmrec_tape *tape, const mt_array *a, bool grad) {
    return mt_tape_tensor(tape, a->ndim, a->shape, a->data, grad ? MMREC_TENSOR_REQUIRES_GRAD : 0);
}

/* Compares a tensor's values (or gradient) with a reference; -inf entries
 * must match exactly and are left out of the tolerance check. */
static void mt_compare(const char *what, mmrec_tensor *t, const mt_array *want, bool grad) {
    size_t n;
    MT_OK(mmrec_tensor_numel(t, &n));
    ck_assert_msg(n == want->numel, "%s: %zu elements, reference has %zu", what, n, want->numel);
    const float *got;
    if (grad) MT_OK(mmrec_tensor_grad(t, &got));
    else MT_OK(mmrec_tensor_data_const(t, &got));
    float *g = malloc(n * sizeof *g), *w = malloc(n * sizeof *w);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(want->data[i])) {
            ck_assert_msg(got[i] == want->data[i], "%s[%zu]: got %g, expected %g", what, i,
                          (double)got[i], (double)want->data[i]);
            continue;
        }
        g[m] = got[i];
        w[m++] = want->data[i];
    }
    bool all_zero = true; /* e.g. a bias that softmax cancels: must stay zero */
    for (size_t i = 0; i < m; i++) all_zero = all_zero && fabsf(w[i]) <= 1e-6f;
    if (all_zero)
        for (size_t i = 0; i < m; i++)
            ck_assert_msg(fabsf(g[i]) <= 1e-6f, "%s[%zu]: got %g, expected 0", what, i,
                          (double)g[i]);
    else
        mt_assert_close(what, g, w, m, 0, 0);
    free(g);
    free(w);
}

static size_t mt_ids(const mt_array *a, int64_t *ids, size_t max) {
    ck_assert_uint_le(a->numel, max);
    for (size_t i = 0; i < a->numel; i++) ids[i] = (int64_t)a->data[i];
    return a->numel;
}

/* ---- ops and losses ---- */

static mmrec_status mt_run_op(int op, const float *args, mmrec_tape *tape, mmrec_tensor **in,
                              int n_in, const int64_t *ids, size_t n_ids, mmrec_tensor **y) {
    switch (op) {
    case 0: return mmrec_matmul(tape, in[0], in[1], (uint32_t)args[0], y);
    case 1: return mmrec_add(tape, in[0], in[1], y);
    case 2: return mmrec_sub(tape, in[0], in[1], y);
    case 3: return mmrec_mul(tape, in[0], in[1], y);
    case 4: return mmrec_scale(tape, in[0], args[0], y);
    case 5: return mmrec_bias_add(tape, in[0], in[1], y);
    case 6: return mmrec_relu(tape, in[0], y);
    case 7: return mmrec_gelu(tape, in[0], MMREC_GELU_ERF, y);
    case 8: return mmrec_gelu(tape, in[0], MMREC_GELU_TANH, y);
    case 9: return mmrec_sigmoid(tape, in[0], y);
    case 10: return mmrec_tanh(tape, in[0], y);
    case 11: return mmrec_softmax(tape, in[0], args[0] != 0 ? in[1] : NULL, y);
    case 12: return mmrec_log_softmax(tape, in[0], args[0] != 0 ? in[1] : NULL, y);
    case 13:
        return mmrec_layer_norm(tape, in[0], args[0] != 0 ? in[1] : NULL,
                                args[1] != 0 ? in[2] : NULL, args[2], y);
    case 14: return mmrec_concat(tape, in, (size_t)n_in, (int)args[0], y);
    case 15: return mmrec_slice(tape, in[0], (int)args[0], (int64_t)args[1], (int64_t)args[2], y);
    case 16: {
        int64_t shape[2] = {(int64_t)args[0], (int64_t)args[1]};
        return mmrec_reshape(tape, in[0], 2, shape, y);
    }
    case 17: return mmrec_transpose(tape, in[0], y);
    case 18:
    case 19: {
        int axis = args[0] == MT_AXIS_ALL_GOLDEN ? MMREC_AXIS_ALL : (int)args[0];
        return op == 18 ? mmrec_sum(tape, in[0], axis, y) : mmrec_mean(tape, in[0], axis, y);
    }
    case 20: return mmrec_l2_normalize(tape, in[0], args[0], y);
    case 21: return mmrec_cosine_similarity(tape, in[0], in[1], args[0], y);
    case 22: return mmrec_gather_rows(tape, in[0], ids, n_ids, y);
    case 30: return mmrec_loss_bce_logits(tape, in[0], in[1], y);
    case 31: return mmrec_loss_softmax_ce(tape, in[0], ids, n_ids, y);
    case 32: return mmrec_loss_bpr(tape, in[0], in[1], y);
    case 33: return mmrec_loss_mse(tape, in[0], in[1], y);
    case 34: {
        mmrec_cic_config c;
        MT_OK(mmrec_cic_config_init(&c));
        c.temperature = args[0];
        c.num_negatives = (int)args[1];
        c.negatives = c.num_negatives > 0 ? ids : NULL;
        return mmrec_loss_cic(tape, in[0], in[1], &c, y);
    }
    }
    ck_abort_msg("unknown golden op %d", op);
    return MMREC_EINVAL;
}

static void mt_golden_ops_file(const char *file, size_t min_cases) {
    mt_golden g;
    mt_golden_load(&g, file);
    char cases[128][64];
    size_t n_cases = mt_cases(&g, "op", cases, 128);
    ck_assert_uint_ge(n_cases, min_cases);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (size_t c = 0; c < n_cases; c++) {
        const char *k = cases[c];
        int op = (int)mt_need(&g, k, "op")->data[0];
        const float *args = mt_need(&g, k, "args")->data;
        mmrec_tensor *in[MT_MAX_IN];
        int n_in = 0;
        char nm[16];
        for (; n_in < MT_MAX_IN; n_in++) {
            snprintf(nm, sizeof nm, "in%d", n_in);
            const mt_array *a = mt_find(&g, k, nm);
            if (a == NULL) break;
            snprintf(nm, sizeof nm, "d%d", n_in);
            in[n_in] = mt_from(tape, a, mt_find(&g, k, nm) != NULL);
        }
        int64_t ids[64];
        size_t n_ids = 0;
        const mt_array *ida = mt_find(&g, k, "ids");
        if (ida) n_ids = mt_ids(ida, ids, 64);
        mmrec_tensor *y;
        mmrec_status s = mt_run_op(op, args, tape, in, n_in, ids, n_ids, &y);
        ck_assert_msg(s == MMREC_OK, "%s: %s", k, mmrec_last_error());
        char what[96];
        snprintf(what, sizeof what, "%s.y", k);
        mt_compare(what, y, mt_need(&g, k, "y"), false);
        /* A loss is a [1] tensor: its gradients come from the plain backward
         * (the file's r is [1.0]). */
        if (op >= 30) MT_OK(mmrec_tape_backward(tape, y));
        else MT_OK(mmrec_tape_backward_from(tape, y, mt_need(&g, k, "r")->data));
        for (int i = 0; i < n_in; i++) {
            snprintf(nm, sizeof nm, "d%d", i);
            const mt_array *d = mt_find(&g, k, nm);
            if (d == NULL) continue;
            snprintf(what, sizeof what, "%s.d%d", k, i);
            mt_compare(what, in[i], d, true);
        }
        mmrec_tape_reset(tape);
    }
    mmrec_tape_destroy(tape);
    mt_golden_free(&g);
}

START_TEST(test_golden_ops) { mt_golden_ops_file("ops.bin", 49); }
END_TEST

START_TEST(test_golden_losses) { mt_golden_ops_file("losses.bin", 4); }
END_TEST

/* ---- modules ---- */

static mmrec_module *mt_make_module(mmrec_model *model, int kind, const mt_array *cfg_array) {
    const float *cfg = cfg_array->data;
    mmrec_module *m = NULL;
    switch (kind) {
    case 0: {
        mmrec_linear_config c;
        MT_OK(mmrec_linear_config_init(&c));
        c.in_dim = (int64_t)cfg[0];
        c.out_dim = (int64_t)cfg[1];
        c.bias = (int)cfg[2];
        MT_OK(mmrec_linear_create(model, "m", &c, &m));
        break;
    }
    case 1: {
        static int64_t sizes[3];
        for (int i = 0; i < 3; i++) sizes[i] = (int64_t)cfg[i];
        mmrec_mlp_config c;
        MT_OK(mmrec_mlp_config_init(&c));
        c.sizes = sizes;
        c.num_sizes = 3;
        c.activation = cfg[3] == 1 ? MMREC_ACT_RELU : MMREC_ACT_GELU;
        MT_OK(mmrec_mlp_create(model, "m", &c, &m));
        break;
    }
    case 2: {
        mmrec_embedding_config c;
        MT_OK(mmrec_embedding_config_init(&c));
        c.num_rows = (int64_t)cfg[0];
        c.dim = (int64_t)cfg[1];
        MT_OK(mmrec_embedding_create(model, "m", &c, &m));
        break;
    }
    case 3: {
        mmrec_layernorm_config c;
        MT_OK(mmrec_layernorm_config_init(&c));
        c.dim = (int64_t)cfg[0];
        c.eps = cfg[1];
        MT_OK(mmrec_layernorm_create(model, "m", &c, &m));
        break;
    }
    case 4: {
        mmrec_mha_config c;
        MT_OK(mmrec_mha_config_init(&c));
        c.dim = (int64_t)cfg[0];
        c.num_heads = (int)cfg[1];
        c.causal = (int)cfg[2];
        MT_OK(mmrec_mha_create(model, "m", &c, &m));
        break;
    }
    case 6: {
        mmrec_linear_config c;
        MT_OK(mmrec_linear_config_init(&c));
        c.in_dim = (int64_t)cfg[0];
        c.out_dim = (int64_t)cfg[1];
        MT_OK(mmrec_linear_create(model, "m", &c, &m));
        mmrec_lora_config lc;
        MT_OK(mmrec_lora_config_init(&lc));
        lc.rank = (int)cfg[2];
        lc.alpha = cfg[3];
        MT_OK(mmrec_lora_attach(m, &lc));
        break;
    }
    case 7: {
        mmrec_fqformer_config c;
        MT_OK(mmrec_fqformer_config_init(&c));
        c.image_dim = (int64_t)cfg[0];
        c.text_dim = (int64_t)cfg[1];
        c.dim = (int64_t)cfg[2];
        c.num_queries = (int)cfg[3];
        c.num_layers = (int)cfg[4];
        c.num_heads = (int)cfg[5];
        c.ffn_dim = (int64_t)cfg[6];
        c.norm_first = (int)cfg[7];
        c.dropout = 0.0f;
        MT_OK(mmrec_fqformer_create(model, "m", &c, &m));
        break;
    }
    case 8: {
        static int64_t hidden[1];
        mmrec_target_attention_config c;
        MT_OK(mmrec_target_attention_config_init(&c));
        c.dim = (int64_t)cfg[0];
        if (cfg[1] > 0) {
            hidden[0] = (int64_t)cfg[1];
            c.score = MMREC_TA_MLP;
            c.hidden = hidden;
            c.num_hidden = 1;
            c.activation = MMREC_ACT_SIGMOID;
        }
        MT_OK(mmrec_target_attention_create(model, "m", &c, &m));
        break;
    }
    default: {
        mmrec_transformer_config c;
        MT_OK(mmrec_transformer_config_init(&c));
        c.dim = (int64_t)cfg[0];
        c.num_heads = (int)cfg[1];
        c.ffn_dim = (int64_t)cfg[2];
        c.norm_first = (int)cfg[3];
        c.dropout = 0.0f;
        c.activation = MMREC_ACT_GELU;
        if (cfg_array->numel >= 6) { /* [.., causal, activation code] */
            c.causal = (int)cfg[4];
            c.activation = (mmrec_activation)(int)cfg[5];
        }
        MT_OK(mmrec_transformer_create(model, "m", &c, &m));
    }
    }
    return m;
}

static void mt_golden_modules_file(const char *file, size_t min_cases) {
    mt_golden g;
    mt_golden_load(&g, file);
    char cases[32][64];
    size_t n_cases = mt_cases(&g, "kind", cases, 32);
    ck_assert_uint_ge(n_cases, min_cases);
    for (size_t c = 0; c < n_cases; c++) {
        const char *k = cases[c];
        int kind = (int)mt_need(&g, k, "kind")->data[0];
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        mmrec_module *m = mt_make_module(model, kind, mt_need(&g, k, "cfg"));
        /* load PyTorch's parameters, name for name */
        char prefix[96];
        int n_loaded = snprintf(prefix, sizeof prefix, "%s.param.", k), n_params = 0;
        for (size_t i = 0; i < g.n; i++) {
            if (strncmp(g.arrays[i].name, prefix, (size_t)n_loaded) != 0) continue;
            char pname[128];
            snprintf(pname, sizeof pname, "m.%s", g.arrays[i].name + n_loaded);
            mmrec_tensor *p;
            mmrec_status s = mmrec_model_param(model, pname, &p);
            ck_assert_msg(s == MMREC_OK, "%s: %s", k, mmrec_last_error());
            MT_OK(mmrec_tensor_copy_from(p, g.arrays[i].data, g.arrays[i].numel));
            n_params++;
        }
        size_t total;
        MT_OK(mmrec_model_num_params(model, &total));
        ck_assert_msg((size_t)n_params == total, "%s: loaded %d of %zu parameters", k, n_params,
                      total);
        mmrec_tape *tape;
        MT_OK(mmrec_tape_create(&tape));
        mmrec_tensor *x = NULL, *x2 = NULL, *mask = NULL, *y;
        const mt_array *xa = mt_find(&g, k, "x"), *ma = mt_find(&g, k, "key_mask");
        const mt_array *x2a = mt_find(&g, k, "x2");
        if (xa) x = mt_from(tape, xa, true);
        if (x2a) x2 = mt_from(tape, x2a, true);
        if (ma) mask = mt_from(tape, ma, false);
        int64_t ids[64];
        size_t n_ids = 0;
        mmrec_status s;
        switch (kind) {
        case 0: s = mmrec_linear_forward(m, tape, x, &y); break;
        case 1: s = mmrec_mlp_forward(m, tape, x, &y); break;
        case 2:
            n_ids = mt_ids(mt_need(&g, k, "ids"), ids, 64);
            s = mmrec_embedding_forward(m, tape, ids, n_ids, &y);
            break;
        case 3: s = mmrec_layernorm_forward(m, tape, x, &y); break;
        case 4: s = mmrec_mha_forward(m, tape, x, mask, &y); break;
        case 6: s = mmrec_linear_forward(m, tape, x, &y); break;
        case 7: s = mmrec_fqformer_forward(m, tape, x, x2, mask, &y); break;
        case 8: s = mmrec_target_attention_forward(m, tape, x, x2, mask, &y); break;
        default: s = mmrec_transformer_forward(m, tape, x, mask, &y);
        }
        ck_assert_msg(s == MMREC_OK, "%s: %s", k, mmrec_last_error());
        char what[160];
        snprintf(what, sizeof what, "%s.y", k);
        mt_compare(what, y, mt_need(&g, k, "y"), false);
        MT_OK(mmrec_tape_backward_from(tape, y, mt_need(&g, k, "r")->data));
        if (x) {
            snprintf(what, sizeof what, "%s.dx", k);
            mt_compare(what, x, mt_need(&g, k, "dx"), true);
        }
        if (x2) {
            snprintf(what, sizeof what, "%s.dx2", k);
            mt_compare(what, x2, mt_need(&g, k, "dx2"), true);
        }
        int n_prefix = snprintf(prefix, sizeof prefix, "%s.grad.", k);
        for (size_t i = 0; i < g.n; i++) {
            if (strncmp(g.arrays[i].name, prefix, (size_t)n_prefix) != 0) continue;
            char pname[128];
            snprintf(pname, sizeof pname, "m.%s", g.arrays[i].name + n_prefix);
            mmrec_tensor *p;
            MT_OK(mmrec_model_param(model, pname, &p));
            mt_compare(g.arrays[i].name, p, &g.arrays[i], true);
        }
        mmrec_tape_destroy(tape);
        mmrec_model_destroy(model);
    }
    mt_golden_free(&g);
}

START_TEST(test_golden_modules) { mt_golden_modules_file("modules.bin", 12); }
END_TEST

START_TEST(test_golden_em3) {
    mt_golden_modules_file("em3.bin", 5);
    mt_golden_ops_file("em3_losses.bin", 2);
}
END_TEST

/* ---- optimizers ---- */

START_TEST(test_golden_optim) {
    mt_golden g;
    mt_golden_load(&g, "optim.bin");
    char cases[16][64];
    size_t n_cases = mt_cases(&g, "cfg", cases, 16);
    ck_assert_uint_ge(n_cases, 8);
    for (size_t c = 0; c < n_cases; c++) {
        const char *k = cases[c];
        const float *cf = mt_need(&g, k, "cfg")->data;
        int steps = (int)mt_need(&g, k, "steps")->data[0];
        mmrec_model *model;
        MT_OK(mmrec_model_create(&model));
        mmrec_tensor *p[2];
        size_t total = 0;
        for (int j = 0; j < 2; j++) {
            char nm[32];
            snprintf(nm, sizeof nm, "init.p%d", j);
            const mt_array *a = mt_need(&g, k, nm);
            snprintf(nm, sizeof nm, "p%d", j);
            MT_OK(mmrec_model_add_param(model, nm, a->ndim, a->shape, &p[j]));
            MT_OK(mmrec_tensor_copy_from(p[j], a->data, a->numel));
            total += a->numel;
        }
        mmrec_optimizer_config oc;
        MT_OK(mmrec_optimizer_config_init(&oc));
        oc.type = (mmrec_optimizer_type)cf[0];
        oc.lr = cf[1];
        oc.weight_decay = cf[2];
        oc.momentum = cf[3];
        oc.dampening = cf[4];
        oc.nesterov = (int)cf[5];
        oc.beta1 = cf[6];
        oc.beta2 = cf[7];
        oc.eps = cf[8];
        oc.initial_accumulator = cf[9];
        oc.clip_norm = cf[10];
        mmrec_optimizer *opt;
        MT_OK(mmrec_optimizer_create(model, &oc, &opt));
        float *flat = malloc(total * sizeof *flat);
        for (int s = 0; s < steps; s++) {
            size_t off = 0;
            for (int j = 0; j < 2; j++) {
                char nm[32];
                snprintf(nm, sizeof nm, "g%d.p%d", s, j);
                const mt_array *a = mt_need(&g, k, nm);
                memcpy(flat + off, a->data, a->numel * sizeof *flat);
                off += a->numel;
            }
            MT_OK(mmrec_model_import_grads(model, flat, total));
            MT_OK(mmrec_optimizer_step(opt));
        }
        for (int j = 0; j < 2; j++) {
            char nm[32], what[96];
            snprintf(nm, sizeof nm, "final.p%d", j);
            snprintf(what, sizeof what, "%s.%s", k, nm);
            mt_compare(what, p[j], mt_need(&g, k, nm), false);
        }
        free(flat);
        mmrec_optimizer_destroy(opt);
        mmrec_model_destroy(model);
    }
    mt_golden_free(&g);
}
END_TEST

static Suite *golden_suite(void) {
    Suite *s = suite_create("golden");
    TCase *tc = tcase_create("golden");
    tcase_add_test(tc, test_golden_ops);
    tcase_add_test(tc, test_golden_losses);
    tcase_add_test(tc, test_golden_em3);
    tcase_add_test(tc, test_golden_modules);
    tcase_add_test(tc, test_golden_optim);
    suite_add_tcase(s, tc);
    return s;
}
