/* LoRA on a Linear layer: y = sg(x W^T + b) + (alpha / r) (x A^T) B^T, with
 * merge / unmerge of B A into W for serving. While merged, W, b, A and B
 * are held frozen (the optimizer skips them; freeze / unfreeze refuse), so
 * nothing can train B A into W, and unmerge restores W from the copy taken
 * at merge: bit for bit what it was. Reference: the LoRA paper's formula as
 * EM3 uses it (METHODS.md, EM3); tests/golden/make_golden.py::write_modules. */
#include "modules_internal.h"
#include "../core/config_sizes.h"

#include <math.h>
#include <string.h>

static const mmrec_lora_config mmrec__lora_defaults = {
    .struct_size = sizeof(mmrec_lora_config),
};

mmrec_status mmrec_lora_config_init_sized(mmrec_lora_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_lora_config, cfg, size, mmrec__lora_defaults);
}

static void mmrec__lora_free(mmrec__lora *lora) {
    if (lora == NULL) return;
    mmrec__free(lora->saved_w);
    mmrec__free(lora);
}

void mmrec__lin_free_adapter(mmrec__lin *lin) {
    mmrec__lora_free(lin->lora);
    lin->lora = NULL;
}

/* The parameters a merge holds frozen: W, b (may be NULL), A, B. */
static void mmrec__lora_params(const mmrec__lin *lin, mmrec__param *out[4]) {
    out[0] = lin->w->param;
    out[1] = lin->b ? lin->b->param : NULL;
    out[2] = lin->lora->a->param;
    out[3] = lin->lora->b->param;
}

mmrec_status mmrec_lora_attach(mmrec_module *linear, const mmrec_lora_config *cfg) {
    MMREC_CHECK_MODULE(linear, "linear");
    MMREC_CHECK_NULL(cfg);
    mmrec__linear *m = (mmrec__linear *)linear;
    mmrec__lin *lin = &m->lin;
    MMREC_FAIL_IF(lin->lora != NULL, MMREC_ESTATE, "linear '%s' already has LoRA", linear->name);
    mmrec_lora_config c = mmrec__lora_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_lora_config, &c, cfg));
    int64_t max_rank = lin->in < lin->out ? lin->in : lin->out;
    MMREC_FAIL_IF(c.rank < 1 || c.rank > max_rank, MMREC_EINVAL,
                  "cfg->rank is %d, must be in [1, %lld]", c.rank, (long long)max_rank);
    MMREC_FAIL_IF(!isfinite(c.alpha) || c.alpha < 0.0f, MMREC_EINVAL,
                  "cfg->alpha is %g, must be >= 0 and finite", (double)c.alpha);
    mmrec_model *model = linear->model;
    mmrec__lora *lora = mmrec__calloc(1, sizeof *lora);
    MMREC_FAIL_IF(lora == NULL, MMREC_ENOMEM, "out of memory");
    size_t n_params = model->n_params, n_modules = model->n_modules;
    mmrec__rng_state rng = model->rng;
    int64_t sa[2] = {c.rank, lin->in}, sb[2] = {lin->out, c.rank};
    mmrec_status s = mmrec__model_add_param(model, __func__, linear->name, "lora_A", 2, sa, false,
                                            &lora->a);
    if (s == MMREC_OK)
        s = mmrec__model_add_param(model, __func__, linear->name, "lora_B", 2, sb, false,
                                   &lora->b);
    if (s != MMREC_OK) {
        mmrec__model_truncate(model, n_params, n_modules);
        model->rng = rng;
        mmrec__lora_free(lora);
        return s;
    }
    mmrec__init_xavier_uniform(model, lora->a, lin->in, c.rank);
    lora->rank = c.rank;
    lora->scale = (c.alpha > 0.0f ? c.alpha : (float)c.rank) / (float)c.rank;
    mmrec__param_set_trainable(lin->w->param, false);
    if (lin->b) mmrec__param_set_trainable(lin->b->param, false);
    lin->lora = lora;
    return MMREC_OK;
}

static mmrec_status mmrec__lora_check(const char *func, mmrec_module *linear, bool merge) {
    MMREC_FORWARD_IF(mmrec__module_check(func, "linear", linear, "linear"));
    const mmrec__lin *lin = &((mmrec__linear *)linear)->lin;
    if (lin->lora == NULL)
        return mmrec__set_error(MMREC_ESTATE, func, "linear '%s' has no LoRA", linear->name);
    if (lin->lora->merged == merge)
        return mmrec__set_error(MMREC_ESTATE, func, "LoRA of '%s' is already %s", linear->name,
                                merge ? "merged" : "unmerged");
    return MMREC_OK;
}

mmrec_status mmrec_lora_merge(mmrec_module *linear) {
    MMREC_FORWARD_IF(mmrec__lora_check(__func__, linear, true));
    mmrec__lin *lin = &((mmrec__linear *)linear)->lin;
    mmrec__lora *l = lin->lora;
    size_t numel = lin->w->numel;
    l->saved_w = mmrec__alloc(numel * sizeof(float));
    MMREC_FAIL_IF(l->saved_w == NULL, MMREC_ENOMEM, "out of memory for a copy of '%s.weight'",
                  linear->name);
    memcpy(l->saved_w, lin->w->data, numel * sizeof(float));
    mmrec__param *held[4];
    mmrec__lora_params(lin, held);
    for (int i = 0; i < 4; i++) {
        if (held[i] == NULL) continue;
        l->was_trainable[i] = held[i]->trainable;
        mmrec__param_set_trainable(held[i], false);
        held[i]->held = true;
    }
    /* W += scale * B A */
    mmrec__sgemm(false, false, (size_t)lin->out, (size_t)lin->in, (size_t)l->rank, l->scale,
                 l->b->data, (size_t)l->rank, l->a->data, (size_t)lin->in, 1.0f, lin->w->data,
                 (size_t)lin->in);
    l->merged = true;
    return MMREC_OK;
}

mmrec_status mmrec_lora_unmerge(mmrec_module *linear) {
    MMREC_FORWARD_IF(mmrec__lora_check(__func__, linear, false));
    mmrec__lin *lin = &((mmrec__linear *)linear)->lin;
    mmrec__lora *l = lin->lora;
    memcpy(lin->w->data, l->saved_w, lin->w->numel * sizeof(float));
    mmrec__free(l->saved_w);
    l->saved_w = NULL;
    mmrec__param *held[4];
    mmrec__lora_params(lin, held);
    for (int i = 0; i < 4; i++) {
        if (held[i] == NULL) continue;
        held[i]->held = false;
        mmrec__param_set_trainable(held[i], l->was_trainable[i]);
    }
    l->merged = false;
    return MMREC_OK;
}

mmrec_status mmrec__lora_forward(const mmrec__lin *lin, mmrec_tape *tape, const char *func,
                                 mmrec_tensor *x, mmrec_tensor **out) {
    const mmrec__lora *l = lin->lora;
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    /* The frozen path sees x as a constant: no gradient flows through it. */
    mmrec_tensor *xc = mmrec__tape_view(tape, x->data, x->ndim, x->shape);
    if (xc == NULL) return mmrec__tape_oom(tape, mark, func);
    mmrec__lin plain = *lin;
    plain.lora = NULL;
    int64_t flat[2] = {(int64_t)mmrec__rows(x), lin->in};
    mmrec_tensor *base, *x2, *h, *z;
    mmrec_status s = mmrec__lin_forward(&plain, tape, func, xc, &base);
    if (s == MMREC_OK) s = mmrec_reshape(tape, x, 2, flat, &x2);
    if (s == MMREC_OK) s = mmrec_matmul(tape, x2, l->a, MMREC_TRANS_B, &h);
    if (s == MMREC_OK) s = mmrec_matmul(tape, h, l->b, MMREC_TRANS_B, &z);
    if (s == MMREC_OK) s = mmrec_scale(tape, z, l->scale, &z);
    if (s == MMREC_OK) s = mmrec_reshape(tape, z, base->ndim, base->shape, &z);
    if (s == MMREC_OK) s = mmrec_add(tape, base, z, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}
