/* MVKE user tower (Xu et al., KDD 2022; shared/METHODS-twotower.md 4.3):
 * the VKE bottom A = softmax_fields(Kf Qk^T / sqrt(e)),
 * O = LayerNorm(A Vf + X) [B, K, F, e] here (kernel-major), one MLP
 * expert per kernel over its flattened fields, the VKG gate
 * w = softmax_{k in S}(t . VK_k), u = sum_k w_k E_k, the score <u, t> and
 * the multi-task BCE. Built from the library's ops, one node each.
 * Reference: tests/golden/make_golden.py::write_mvke, a port of the
 * released core/mvke_ops.py (mvke_bottom_layer, _build_mvke_layers,
 * vkg_layer) and model_graph_type.py's loss. */
#include "twotower_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const int mmrec__mvke_default_kernels[] = {0, 1, 2, 1, 2, 3, 4};
static const int mmrec__mvke_default_counts[] = {3, 4};

static const mmrec_mvke_config mmrec__mvke_defaults = {
    .struct_size = sizeof(mmrec_mvke_config),
    .num_kernels = 5,
    .num_tasks = 2,
    .task_kernels = mmrec__mvke_default_kernels,
    .task_num_kernels = mmrec__mvke_default_counts,
    .expert_activation = MMREC_ACT_RELU,
    .init_std = 0.01f,
    .layer_norm_eps = 1e-12f,
};

mmrec_status mmrec_mvke_config_init_sized(mmrec_mvke_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_mvke_config, cfg, size, mmrec__mvke_defaults);
}

/* The checks of the config that do not need the tasks' arrays. */
static mmrec_status mmrec__mvke_check_sizes(const mmrec_mvke_config *c) {
    const char *func = "mmrec_mvke_create";
    MMREC_FAIL_IF_FOR(func, c->dim < 1 || c->dim > INT32_MAX, MMREC_EINVAL,
                      "cfg->dim is %lld, must be in [1, 2^31 - 1]", (long long)c->dim);
    MMREC_FAIL_IF_FOR(func, c->num_fields < 1 || c->num_fields > INT32_MAX, MMREC_EINVAL,
                      "cfg->num_fields is %lld, must be in [1, 2^31 - 1]",
                      (long long)c->num_fields);
    MMREC_FAIL_IF_FOR(func, c->num_fields * c->dim > INT32_MAX, MMREC_EINVAL,
                      "cfg->num_fields * cfg->dim is %lld, must be at most 2^31 - 1",
                      (long long)(c->num_fields * c->dim));
    MMREC_FAIL_IF_FOR(func, c->num_kernels < 1 || c->num_kernels > MMREC__MVKE_MAX_KERNELS,
                      MMREC_EINVAL, "cfg->num_kernels is %d, must be in [1, %d]",
                      c->num_kernels, MMREC__MVKE_MAX_KERNELS);
    MMREC_FAIL_IF_FOR(func, c->num_tasks < 1 || c->num_tasks > MMREC__MVKE_MAX_TASKS,
                      MMREC_EINVAL, "cfg->num_tasks is %d, must be in [1, %d]", c->num_tasks,
                      MMREC__MVKE_MAX_TASKS);
    MMREC_FAIL_IF_FOR(func, c->num_expert_hidden < 0 ||
                                c->num_expert_hidden > MMREC__MVKE_MAX_HIDDEN,
                      MMREC_EINVAL, "cfg->num_expert_hidden is %d, must be in [0, %d]",
                      c->num_expert_hidden, MMREC__MVKE_MAX_HIDDEN);
    MMREC_FAIL_IF_FOR(func, c->num_expert_hidden > 0 && c->expert_hidden == NULL, MMREC_EINVAL,
                      "cfg->expert_hidden is NULL with num_expert_hidden %d",
                      c->num_expert_hidden);
    for (int i = 0; i < c->num_expert_hidden; i++)
        MMREC_FAIL_IF_FOR(func, c->expert_hidden[i] < 1 || c->expert_hidden[i] > INT32_MAX,
                          MMREC_EINVAL, "cfg->expert_hidden[%d] is %lld, must be in [1, 2^31 - 1]",
                          i, (long long)c->expert_hidden[i]);
    MMREC_FAIL_IF_FOR(func, !mmrec__activation_ok(c->expert_activation), MMREC_EINVAL,
                      "cfg->expert_activation is %d, not an mmrec_activation",
                      (int)c->expert_activation);
    MMREC_FAIL_IF_FOR(func, !(c->init_std > 0.0f) || !isfinite(c->init_std), MMREC_EINVAL,
                      "cfg->init_std is %g, must be > 0 and finite", (double)c->init_std);
    MMREC_FAIL_IF_FOR(func, !(c->layer_norm_eps > 0.0f) || !isfinite(c->layer_norm_eps),
                      MMREC_EINVAL, "cfg->layer_norm_eps is %g, must be > 0 and finite",
                      (double)c->layer_norm_eps);
    return MMREC_OK;
}

/* The tasks' kernel subsets: non-empty, in range, no kernel twice in one. */
static mmrec_status mmrec__mvke_check_tasks(const mmrec_mvke_config *c) {
    const char *func = "mmrec_mvke_create";
    MMREC_FAIL_IF_FOR(func, c->task_kernels == NULL, MMREC_EINVAL, "cfg->task_kernels is NULL");
    MMREC_FAIL_IF_FOR(func, c->task_num_kernels == NULL, MMREC_EINVAL,
                      "cfg->task_num_kernels is NULL");
    int at = 0;
    for (int t = 0; t < c->num_tasks; t++) {
        int n = c->task_num_kernels[t];
        MMREC_FAIL_IF_FOR(func, n < 1 || n > c->num_kernels, MMREC_EINVAL,
                          "cfg->task_num_kernels[%d] is %d: task %d needs 1 .. %d kernels "
                          "(num_kernels)",
                          t, n, t, c->num_kernels);
        uint64_t seen = 0;
        for (int j = 0; j < n; j++, at++) {
            int k = c->task_kernels[at];
            MMREC_FAIL_IF_FOR(func, k < 0 || k >= c->num_kernels, MMREC_EINVAL,
                              "cfg->task_kernels[%d] (task %d) is %d, must be in [0, %d) "
                              "(num_kernels)",
                              at, t, k, c->num_kernels);
            MMREC_FAIL_IF_FOR(func, (seen >> k) & 1u, MMREC_EINVAL,
                              "cfg->task_kernels[%d] (task %d) is %d, already in the task's "
                              "subset",
                              at, t, k);
            seen |= (uint64_t)1 << k;
        }
    }
    return MMREC_OK;
}

static mmrec_status mmrec__mvke_parts(mmrec__mvke *m, mmrec_model *model, const char *name,
                                      const mmrec_mvke_config *c) {
    const char *func = "mmrec_mvke_create";
    int64_t e = c->dim, vshape[2] = {c->num_kernels, e};
    MMREC_FORWARD_IF(
        mmrec__model_add_param(model, func, name, "virtual_kernels", 2, vshape, false, &m->vk));
    mmrec__init_normal(model, m->vk, 0.0f, c->init_std);
    char sub[256];
    static const char *const proj[3] = {"query_proj", "key_proj", "value_proj"};
    mmrec__lin *lin[3] = {&m->query, &m->key, &m->value};
    for (int i = 0; i < 3; i++) {
        snprintf(sub, sizeof sub, "%s.%s", name, proj[i]);
        MMREC_FORWARD_IF(mmrec__lin_create(model, func, sub, "weight", "bias", e, e, true,
                                           MMREC_INIT_NORMAL, c->init_std, lin[i]));
    }
    snprintf(sub, sizeof sub, "%s.layer_norm", name);
    MMREC_FORWARD_IF(mmrec__ln_params(model, func, sub, e, &m->ln_w, &m->ln_b));
    int64_t sizes[MMREC__MVKE_MAX_HIDDEN + 2];
    int n = 0;
    sizes[n++] = c->num_fields * e;
    for (int i = 0; i < c->num_expert_hidden; i++) sizes[n++] = c->expert_hidden[i];
    sizes[n++] = e;
    mmrec_mlp_config mc;
    MMREC_FORWARD_IF(mmrec_mlp_config_init(&mc));
    mc.sizes = sizes;
    mc.num_sizes = n;
    mc.activation = c->expert_activation;
    for (int k = 0; k < c->num_kernels; k++) {
        snprintf(sub, sizeof sub, "%s.experts.%d", name, k);
        MMREC_FORWARD_IF(mmrec__mlp_create(func, model, sub, &mc, &m->experts[k]));
    }
    return MMREC_OK;
}

mmrec_status mmrec_mvke_create(mmrec_model *model, const char *name,
                               const mmrec_mvke_config *cfg, mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, __func__));
    mmrec_mvke_config c = mmrec__mvke_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_mvke_config, &c, cfg));
    MMREC_FAIL_IF(strlen(name) > 188, MMREC_EINVAL,
                  "name is %zu bytes, at most 188 (its experts are '<name>.experts.<k>')",
                  strlen(name));
    MMREC_FORWARD_IF(mmrec__mvke_check_sizes(&c));
    MMREC_FORWARD_IF(mmrec__mvke_check_tasks(&c));
    mmrec__mvke *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = MMREC_OK;
    if (m) {
        m->dim = c.dim;
        m->num_fields = c.num_fields;
        m->num_kernels = c.num_kernels;
        m->num_tasks = c.num_tasks;
        m->ln_eps = c.layer_norm_eps;
        for (int t = 0, at = 0; t < c.num_tasks; t++) {
            m->task_n[t] = c.task_num_kernels[t];
            for (int j = 0; j < m->task_n[t]; j++) m->task_k[t][j] = c.task_kernels[at++];
        }
        s = mmrec__mvke_parts(m, model, name, &c);
    }
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "mvke", name, NULL, out);
}

mmrec_status mmrec__mvke_check_task(const char *func, const mmrec__mvke *m, int task) {
    MMREC_FAIL_IF_FOR(func, task < 0 || task >= m->num_tasks, MMREC_ERANGE,
                      "task is %d, must be in [0, %d) (num_tasks)", task, m->num_tasks);
    return MMREC_OK;
}

/* ---- the user side ---- */

static mmrec_status mmrec__mvke_run(const mmrec__mvke *m, mmrec_tape *tape, mmrec_tensor *x,
                                    mmrec_tensor **out) {
    const char *func = "mmrec_mvke_forward";
    int64_t B = x->shape[0], F = m->num_fields, e = m->dim, K = m->num_kernels;
    mmrec_tensor *q, *kf, *vf, *s, *ss, *a, *a4, *v4, *x4, *o, *h, *ln, *flat;
    MMREC_FORWARD_IF(mmrec__lin_forward(&m->query, tape, func, m->vk, &q)); /* [K, e] */
    MMREC_FORWARD_IF(mmrec__lin_forward(&m->key, tape, func, x, &kf));     /* [B, F, e] */
    MMREC_FORWARD_IF(mmrec__lin_forward(&m->value, tape, func, x, &vf));
    MMREC_FORWARD_IF(mmrec_matmul(tape, q, kf, MMREC_TRANS_B, &s)); /* [B, K, F] */
    MMREC_FORWARD_IF(mmrec_scale(tape, s, (float)(1.0 / sqrt((double)e)), &ss));
    MMREC_FORWARD_IF(mmrec_softmax(tape, ss, NULL, &a)); /* over the fields */
    int64_t sa[4] = {B, K, F, 1}, sv[4] = {B, 1, F, e}, sf[3] = {B, K, F * e};
    MMREC_FORWARD_IF(mmrec_reshape(tape, a, 4, sa, &a4));
    MMREC_FORWARD_IF(mmrec_reshape(tape, vf, 4, sv, &v4));
    MMREC_FORWARD_IF(mmrec_reshape(tape, x, 4, sv, &x4));
    MMREC_FORWARD_IF(mmrec_mul(tape, a4, v4, &o)); /* [B, K, F, e] */
    MMREC_FORWARD_IF(mmrec_add(tape, o, x4, &h));
    MMREC_FORWARD_IF(mmrec__layer_norm(func, tape, h, m->ln_w, m->ln_b, m->ln_eps, &ln));
    MMREC_FORWARD_IF(mmrec_reshape(tape, ln, 3, sf, &flat));
    mmrec_tensor *parts[MMREC__MVKE_MAX_KERNELS];
    for (int k = 0; k < K; k++) {
        mmrec_tensor *xk;
        MMREC_FORWARD_IF(mmrec_slice(tape, flat, 1, k, 1, &xk)); /* [B, 1, F e] */
        MMREC_FORWARD_IF(mmrec_mlp_forward(m->experts[k], tape, xk, &parts[k]));
    }
    return mmrec_concat(tape, parts, (size_t)K, 1, out); /* [B, K, e] */
}

mmrec_status mmrec_mvke_forward(mmrec_module *mvke, mmrec_tape *tape, mmrec_tensor *fields,
                                mmrec_tensor **out) {
    MMREC_CHECK_MODULE(mvke, "mvke");
    MMREC_CHECK_OP1(tape, fields, out);
    const mmrec__mvke *m = (const mmrec__mvke *)mvke;
    if (fields->ndim != 3 || fields->shape[1] != m->num_fields || fields->shape[2] != m->dim) {
        char s[64];
        MMREC_FAIL(MMREC_ESHAPE, "fields is %s, expected [batch, %lld, %lld] (num_fields, dim)",
                   mmrec__shape_str(fields, s, sizeof s), (long long)m->num_fields,
                   (long long)m->dim);
    }
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__mvke_run(m, tape, fields, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}

/* ---- gate, score, loss ---- */

/* experts [B, K, e] and tag [B, e] of the module, on behalf of `func`. */
static mmrec_status mmrec__mvke_check_pair(const char *func, const mmrec__mvke *m,
                                           const mmrec_tensor *experts, const mmrec_tensor *tag,
                                           const char *tag_name) {
    char s[64], s2[64];
    if (experts->ndim != 3 || experts->shape[1] != m->num_kernels ||
        experts->shape[2] != m->dim)
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "experts is %s, expected [batch, %d, %lld] (num_kernels, dim)",
                                mmrec__shape_str(experts, s, sizeof s), m->num_kernels,
                                (long long)m->dim);
    if (tag->ndim != 2 || tag->shape[0] != experts->shape[0] || tag->shape[1] != m->dim)
        return mmrec__set_error(MMREC_ESHAPE, func, "%s is %s, expected [%lld, %lld] (experts is %s)",
                                tag_name, mmrec__shape_str(tag, s, sizeof s),
                                (long long)experts->shape[0], (long long)m->dim,
                                mmrec__shape_str(experts, s2, sizeof s2));
    return MMREC_OK;
}

/* u [B, e] of task `task`: softmax over the task's kernels (a mask over all
 * K) of tag VK^T, times the experts. */
static mmrec_status mmrec__mvke_gate_run(const mmrec__mvke *m, mmrec_tape *tape,
                                         mmrec_tensor *experts, mmrec_tensor *tag, int task,
                                         mmrec_tensor **out) {
    int64_t B = tag->shape[0], K = m->num_kernels, e = m->dim;
    int64_t sk[1] = {K}, sw[3] = {B, 1, K}, su[2] = {B, e};
    mmrec_tensor *logits, *w, *w3, *u3;
    mmrec_tensor *mask = mmrec__tape_new(tape, 1, sk, true);
    if (mask == NULL) return mmrec__set_error(MMREC_ENOMEM, "mmrec_mvke_gate", "out of memory");
    for (int j = 0; j < m->task_n[task]; j++) mask->data[m->task_k[task][j]] = 1.0f;
    MMREC_FORWARD_IF(mmrec_matmul(tape, tag, m->vk, MMREC_TRANS_B, &logits)); /* [B, K] */
    MMREC_FORWARD_IF(mmrec_softmax(tape, logits, mask, &w));
    MMREC_FORWARD_IF(mmrec_reshape(tape, w, 3, sw, &w3));
    MMREC_FORWARD_IF(mmrec_matmul(tape, w3, experts, 0, &u3)); /* [B, 1, e] */
    return mmrec_reshape(tape, u3, 2, su, out);
}

static mmrec_status mmrec__mvke_score_run(const mmrec__mvke *m, mmrec_tape *tape,
                                          mmrec_tensor *experts, mmrec_tensor *tag, int task,
                                          mmrec_tensor **out) {
    mmrec_tensor *u, *p;
    MMREC_FORWARD_IF(mmrec__mvke_gate_run(m, tape, experts, tag, task, &u));
    MMREC_FORWARD_IF(mmrec_mul(tape, u, tag, &p));
    return mmrec_sum(tape, p, -1, out); /* [B] */
}

mmrec_status mmrec_mvke_gate(mmrec_module *mvke, mmrec_tape *tape, mmrec_tensor *experts,
                             mmrec_tensor *tag, int task, mmrec_tensor **out) {
    MMREC_CHECK_MODULE(mvke, "mvke");
    MMREC_CHECK_OP2(tape, experts, tag, out);
    const mmrec__mvke *m = (const mmrec__mvke *)mvke;
    MMREC_FORWARD_IF(mmrec__mvke_check_pair(__func__, m, experts, tag, "tag"));
    MMREC_FORWARD_IF(mmrec__mvke_check_task(__func__, m, task));
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__mvke_gate_run(m, tape, experts, tag, task, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}

mmrec_status mmrec_mvke_score(mmrec_module *mvke, mmrec_tape *tape, mmrec_tensor *experts,
                              mmrec_tensor *tag, int task, mmrec_tensor **out) {
    MMREC_CHECK_MODULE(mvke, "mvke");
    MMREC_CHECK_OP2(tape, experts, tag, out);
    const mmrec__mvke *m = (const mmrec__mvke *)mvke;
    MMREC_FORWARD_IF(mmrec__mvke_check_pair(__func__, m, experts, tag, "tag"));
    MMREC_FORWARD_IF(mmrec__mvke_check_task(__func__, m, task));
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__mvke_score_run(m, tape, experts, tag, task, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}

static mmrec_status mmrec__mvke_loss_run(const mmrec__mvke *m, mmrec_tape *tape,
                                         mmrec_tensor *experts, mmrec_tensor *const *tags,
                                         mmrec_tensor *const *labels, const float *weights,
                                         mmrec_tensor **out) {
    mmrec_tensor *total = NULL;
    for (int t = 0; t < m->num_tasks; t++) {
        mmrec_tensor *s, *l, *sum;
        MMREC_FORWARD_IF(mmrec__mvke_score_run(m, tape, experts, tags[t], t, &s));
        MMREC_FORWARD_IF(mmrec_loss_bce_logits(tape, s, labels[t], &l));
        if (weights && weights[t] != 1.0f) MMREC_FORWARD_IF(mmrec_scale(tape, l, weights[t], &l));
        if (total) {
            MMREC_FORWARD_IF(mmrec_add(tape, total, l, &sum));
            total = sum;
        } else {
            total = l;
        }
    }
    *out = total;
    return MMREC_OK;
}

mmrec_status mmrec_mvke_loss(mmrec_module *mvke, mmrec_tape *tape, mmrec_tensor *experts,
                             mmrec_tensor *const *tags, mmrec_tensor *const *labels,
                             const float *weights, size_t num_tasks, mmrec_tensor **out) {
    MMREC_CHECK_MODULE(mvke, "mvke");
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(experts, tape);
    MMREC_CHECK_NULL(tags);
    MMREC_CHECK_NULL(labels);
    MMREC_CHECK_NULL(out);
    const mmrec__mvke *m = (const mmrec__mvke *)mvke;
    MMREC_FAIL_IF(num_tasks != (size_t)m->num_tasks, MMREC_EINVAL,
                  "num_tasks is %zu, the module has %d", num_tasks, m->num_tasks);
    for (int t = 0; t < m->num_tasks; t++) {
        char what[32];
        snprintf(what, sizeof what, "tags[%d]", t);
        MMREC_FORWARD_IF(mmrec__tensor_check_on(__func__, what, tags[t], tape));
        MMREC_FORWARD_IF(mmrec__mvke_check_pair(__func__, m, experts, tags[t], what));
        MMREC_FORWARD_IF(mmrec__check_finite(__func__, what, tags[t]->data, tags[t]->numel));
        snprintf(what, sizeof what, "labels[%d]", t);
        MMREC_FORWARD_IF(mmrec__tensor_check_on(__func__, what, labels[t], tape));
        if (labels[t]->ndim != 1 || labels[t]->shape[0] != experts->shape[0]) {
            char s[64];
            MMREC_FAIL(MMREC_ESHAPE, "labels[%d] is %s, expected [%lld] (the batch)", t,
                       mmrec__shape_str(labels[t], s, sizeof s), (long long)experts->shape[0]);
        }
        MMREC_FORWARD_IF(
            mmrec__check_finite(__func__, what, labels[t]->data, labels[t]->numel));
        MMREC_FAIL_IF(weights && !isfinite(weights[t]), MMREC_EINVAL,
                      "weights[%d] is %g, must be finite", t, (double)(weights ? weights[t] : 0));
    }
    MMREC_CHECK_FINITE(experts);
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__mvke_loss_run(m, tape, experts, tags, labels, weights, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}
