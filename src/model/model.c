/* Model: parameter registry, modules, freezing, counts, flat buffers. */
#include "model_internal.h"

#include <math.h>
#include <string.h>

mmrec_status mmrec__model_check(const char *func, const mmrec_model *model) {
    if (model == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'model' is NULL");
    if (model->magic != MMREC__MODEL_MAGIC)
        return mmrec__set_error(MMREC_EINVAL, func, "argument 'model' is not a model");
    if (model->destroyed)
        return mmrec__set_error(MMREC_ESTATE, func, "the model was destroyed");
    return MMREC_OK;
}

mmrec_status mmrec__module_check(const char *func, const char *what, const mmrec_module *module,
                                 const char *kind) {
    if (module == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument '%s' is NULL", what);
    if (module->magic != MMREC__MODULE_MAGIC)
        return mmrec__set_error(MMREC_EINVAL, func, "argument '%s' is not a module", what);
    if (kind && strcmp(module->kind, kind) != 0)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "argument '%s': module '%s' is a %s, expected a %s", what,
                                module->name, module->kind, kind);
    if (module->model->destroyed)
        return mmrec__set_error(MMREC_ESTATE, func, "the model of module '%s' was destroyed",
                                module->name);
    return MMREC_OK;
}

mmrec_status mmrec_model_create(mmrec_model **out) {
    MMREC_CHECK_NULL(out);
    mmrec_model *model = mmrec__calloc(1, sizeof *model);
    MMREC_FAIL_IF(model == NULL, MMREC_ENOMEM, "out of memory");
    model->magic = MMREC__MODEL_MAGIC;
    atomic_init(&model->refs, 1);
    mmrec__rng_seed(&model->rng, 0);
    *out = model;
    return MMREC_OK;
}

static void mmrec__param_free(mmrec__param *p) {
    mmrec__free(p->tensor.data);
    mmrec__free(p->tensor.grad);
    mmrec__free(p->row_touched);
    mmrec__free(p->touched_rows);
    mmrec__free(p->name);
    p->tensor.magic = 0;
    mmrec__free(p);
}

static void mmrec__module_free(mmrec_module *m) {
    if (m->destroy) m->destroy(m);
    mmrec__free(m->name);
    m->magic = 0;
    mmrec__free(m);
}

static void mmrec__model_free(mmrec_model *model) {
    for (size_t i = 0; i < model->n_modules; i++) mmrec__module_free(model->modules[i]);
    for (size_t i = 0; i < model->n_params; i++) mmrec__param_free(model->params[i]);
    mmrec__free(model->modules);
    mmrec__free(model->params);
    model->magic = 0;
    mmrec__free(model);
}

void mmrec__model_retain(mmrec_model *model) {
    atomic_fetch_add_explicit(&model->refs, 1, memory_order_relaxed);
}

void mmrec__model_release(mmrec_model *model) {
    /* the last reference, on whichever thread drops it, frees the model */
    if (atomic_fetch_sub_explicit(&model->refs, 1, memory_order_acq_rel) == 1)
        mmrec__model_free(model);
}

void mmrec_model_destroy(mmrec_model *model) {
    if (model == NULL || model->magic != MMREC__MODEL_MAGIC || model->destroyed) return;
    model->destroyed = true;
    mmrec__model_release(model);
}

mmrec_status mmrec_model_seed(mmrec_model *model, uint64_t seed) {
    MMREC_CHECK_MODEL(model);
    mmrec__rng_seed(&model->rng, seed);
    return MMREC_OK;
}

static mmrec__param *mmrec__model_find(const mmrec_model *model, const char *name) {
    for (size_t i = 0; i < model->n_params; i++)
        if (strcmp(model->params[i]->name, name) == 0) return model->params[i];
    return NULL;
}

static bool mmrec__name_ok(const char *name, size_t len) {
    if (len == 0 || len > 255) return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) return false;
    return true;
}

static bool mmrec__grow(void **array, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t new_cap = *cap ? *cap * 2 : 16;
    while (new_cap < need) new_cap *= 2;
    void *grown = mmrec__alloc(new_cap * elem);
    if (grown == NULL) return false;
    if (*array) memcpy(grown, *array, *cap * elem);
    mmrec__free(*array);
    *array = grown;
    *cap = new_cap;
    return true;
}

static mmrec_status mmrec__param_alloc_grad(mmrec__param *p) {
    if (p->tensor.grad == NULL) {
        p->tensor.grad = mmrec__calloc(p->tensor.numel, sizeof(float));
        if (p->tensor.grad == NULL) return MMREC_ENOMEM;
    }
    return MMREC_OK;
}

mmrec_status mmrec__model_add_param(mmrec_model *model, const char *func, const char *prefix,
                                    const char *leaf, int ndim, const int64_t *shape, bool sparse,
                                    mmrec_tensor **out) {
    size_t numel;
    MMREC_FORWARD_IF(mmrec__shape_check(func, "parameter shape", ndim, shape, &numel));
    size_t plen = prefix ? strlen(prefix) : 0, llen = strlen(leaf);
    char name[512];
    if (plen + llen + 2 > sizeof name || !mmrec__name_ok(prefix ? prefix : "x", prefix ? plen : 1) ||
        !mmrec__name_ok(leaf, llen) || plen + llen + (prefix ? 1 : 0) > 255)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "parameter name '%s%s%s' is empty, too long (max 255) or has "
                                "control characters",
                                prefix ? prefix : "", prefix ? "." : "", leaf);
    if (prefix) {
        memcpy(name, prefix, plen);
        name[plen] = '.';
        memcpy(name + plen + 1, leaf, llen + 1);
    } else {
        memcpy(name, leaf, llen + 1);
    }
    if (mmrec__model_find(model, name))
        return mmrec__set_error(MMREC_ESTATE, func, "a parameter named '%s' already exists", name);
    if (!mmrec__grow((void **)&model->params, &model->cap_params, model->n_params + 1,
                     sizeof *model->params))
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    mmrec__param *p = mmrec__calloc(1, sizeof *p);
    if (p == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    p->name = mmrec__strdup(name);
    p->tensor.numel = numel; /* sizes the gradient buffer */
    p->tensor.data = mmrec__calloc(numel, sizeof(float));
    if (p->name == NULL || p->tensor.data == NULL || mmrec__param_alloc_grad(p) != MMREC_OK)
        goto oom;
    if (sparse) {
        size_t rows = (size_t)shape[0];
        p->row_touched = mmrec__calloc(rows, 1);
        p->touched_rows = mmrec__calloc(rows, sizeof *p->touched_rows);
        if (p->row_touched == NULL || p->touched_rows == NULL) goto oom;
    }
    p->tensor.magic = MMREC__TENSOR_MAGIC;
    p->tensor.flags = MMREC__T_PARAM | MMREC__T_REQUIRES_GRAD;
    p->tensor.ndim = ndim;
    memcpy(p->tensor.shape, shape, (size_t)ndim * sizeof *shape);
    p->tensor.param = p;
    p->model = model;
    p->trainable = true;
    p->sparse = sparse;
    p->index = model->n_params;
    model->params[model->n_params++] = p;
    if (out) *out = &p->tensor;
    return MMREC_OK;
oom:
    mmrec__param_free(p);
    return mmrec__set_error(MMREC_ENOMEM, func, "out of memory for parameter '%s'", name);
}

void mmrec__model_truncate(mmrec_model *model, size_t n_params, size_t n_modules) {
    while (model->n_modules > n_modules) mmrec__module_free(model->modules[--model->n_modules]);
    while (model->n_params > n_params) mmrec__param_free(model->params[--model->n_params]);
}

bool mmrec__model_has_module(const mmrec_model *model, const char *name) {
    for (size_t i = 0; i < model->n_modules; i++)
        if (strcmp(model->modules[i]->name, name) == 0) return true;
    return false;
}

mmrec_status mmrec__model_add_module(mmrec_model *model, const char *func, mmrec_module *module,
                                     const char *kind, const char *name,
                                     void (*destroy)(mmrec_module *)) {
    if (!mmrec__grow((void **)&model->modules, &model->cap_modules, model->n_modules + 1,
                     sizeof *model->modules))
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    module->name = mmrec__strdup(name);
    if (module->name == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    module->magic = MMREC__MODULE_MAGIC;
    module->kind = kind;
    module->model = model;
    module->destroy = destroy;
    model->modules[model->n_modules++] = module;
    return MMREC_OK;
}

mmrec_status mmrec_model_add_param(mmrec_model *model, const char *name, int ndim,
                                   const int64_t *shape, mmrec_tensor **out) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(name);
    size_t numel;
    MMREC_FORWARD_IF(mmrec__shape_check(__func__, "shape", ndim, shape, &numel));
    return mmrec__model_add_param(model, __func__, NULL, name, ndim, shape, false, out);
}

mmrec_status mmrec_model_param(const mmrec_model *model, const char *name, mmrec_tensor **out) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(name);
    MMREC_CHECK_NULL(out);
    mmrec__param *p = mmrec__model_find(model, name);
    MMREC_FAIL_IF(p == NULL, MMREC_ENOTFOUND, "no parameter named '%s'", name);
    *out = &p->tensor;
    return MMREC_OK;
}

mmrec_status mmrec_model_num_params(const mmrec_model *model, size_t *out) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(out);
    *out = model->n_params;
    return MMREC_OK;
}

mmrec_status mmrec_model_param_at(const mmrec_model *model, size_t index, const char **name_out,
                                  mmrec_tensor **out) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(index >= model->n_params, MMREC_ERANGE, "index %zu, model has %zu parameters",
                  index, model->n_params);
    if (name_out) *name_out = model->params[index]->name;
    *out = &model->params[index]->tensor;
    return MMREC_OK;
}

static mmrec_status mmrec__model_set_trainable(mmrec_model *model, const char *prefix,
                                               bool trainable, size_t *count_out,
                                               const char *func) {
    size_t count = 0, other = 0;
    const mmrec__param *state = NULL; /* the first state parameter matched */
    for (size_t i = 0; i < model->n_params; i++) {
        const mmrec__param *p = model->params[i];
        if (!mmrec__name_under(p->name, prefix)) continue;
        if (p->held)
            return mmrec__set_error(MMREC_ESTATE, func,
                                    "parameter '%s' is held frozen by a merged LoRA; unmerge "
                                    "it first",
                                    p->name);
        if (p->state && !state) state = p;
        other += !p->state;
    }
    /* unfreezing skips an estimator's state (never trainable); a prefix
     * that covers nothing else is refused */
    if (trainable && state && other == 0)
        return mmrec__set_error(MMREC_ESTATE, func,
                                "parameter '%s' is state an estimator updates, never "
                                "trainable",
                                state->name);
    if (trainable) /* allocate first so a failure changes nothing */
        for (size_t i = 0; i < model->n_params; i++)
            if (mmrec__name_under(model->params[i]->name, prefix) && !model->params[i]->state &&
                mmrec__param_alloc_grad(model->params[i]) != MMREC_OK)
                return mmrec__set_error(MMREC_ENOMEM, func, "out of memory for gradients");
    for (size_t i = 0; i < model->n_params; i++) {
        mmrec__param *p = model->params[i];
        if (!mmrec__name_under(p->name, prefix) || (trainable && p->state)) continue;
        count++;
        mmrec__param_set_trainable(p, trainable);
    }
    if (count == 0)
        return mmrec__set_error(MMREC_ENOTFOUND, func,
                                "no parameter is '%s' or below it (prefixes match whole name "
                                "components)",
                                prefix);
    if (count_out) *count_out = count;
    return MMREC_OK;
}

mmrec_status mmrec_model_freeze(mmrec_model *model, const char *prefix, size_t *count_out) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(prefix);
    return mmrec__model_set_trainable(model, prefix, false, count_out, __func__);
}

mmrec_status mmrec_model_unfreeze(mmrec_model *model, const char *prefix, size_t *count_out) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(prefix);
    return mmrec__model_set_trainable(model, prefix, true, count_out, __func__);
}

mmrec_status mmrec_model_param_count(const mmrec_model *model, size_t *trainable_out,
                                     size_t *total_out) {
    MMREC_CHECK_MODEL(model);
    size_t trainable = 0, total = 0;
    for (size_t i = 0; i < model->n_params; i++) {
        total += model->params[i]->tensor.numel;
        if (model->params[i]->trainable) trainable += model->params[i]->tensor.numel;
    }
    if (trainable_out) *trainable_out = trainable;
    if (total_out) *total_out = total;
    return MMREC_OK;
}

void mmrec__param_set_trainable(mmrec__param *p, bool trainable) {
    assert(p->tensor.grad != NULL);
    if (!trainable) mmrec__param_zero_grad(p);
    p->trainable = trainable;
    if (trainable)
        p->tensor.flags |= MMREC__T_REQUIRES_GRAD;
    else
        p->tensor.flags &= ~(uint32_t)MMREC__T_REQUIRES_GRAD;
}

void mmrec__param_mark_state(mmrec__param *p) {
    mmrec__param_set_trainable(p, false);
    p->state = true;
}

mmrec_status mmrec__model_check_unheld(const mmrec_model *model, const char *func,
                                       const char *what) {
    for (size_t i = 0; i < model->n_params; i++)
        if (model->params[i]->held)
            return mmrec__set_error(MMREC_ESTATE, func,
                                    "parameter '%s' holds a merged LoRA; unmerge before %s",
                                    model->params[i]->name, what);
    return MMREC_OK;
}

static void mmrec__param_clear_grad(mmrec__param *p, bool dense_done) {
    if (p->tensor.grad == NULL) return;
    bool rows_only = mmrec__param_rows_only(p);
    if (p->sparse) {
        size_t dim = p->tensor.numel / (size_t)p->tensor.shape[0];
        for (size_t i = 0; i < p->n_touched; i++) {
            int64_t row = p->touched_rows[i];
            if (rows_only) memset(p->tensor.grad + (size_t)row * dim, 0, dim * sizeof(float));
            p->row_touched[row] = 0;
        }
        p->n_touched = 0;
        p->dense_grad = false;
    }
    if (!rows_only && !dense_done) memset(p->tensor.grad, 0, p->tensor.numel * sizeof(float));
}

void mmrec__param_zero_grad(mmrec__param *p) { mmrec__param_clear_grad(p, false); }

void mmrec__param_grad_zeroed(mmrec__param *p) {
    assert(!mmrec__param_rows_only(p));
    mmrec__param_clear_grad(p, true);
}

mmrec_status mmrec_model_zero_grad(mmrec_model *model) {
    MMREC_CHECK_MODEL(model);
    for (size_t i = 0; i < model->n_params; i++) mmrec__param_zero_grad(model->params[i]);
    return MMREC_OK;
}

/* ---- flat buffers ---- */

/* Whether a parameter is in a flat buffer: trainable, and not a row-sparse
 * table when the buffer is the dense one. */
static bool mmrec__flat_has(const mmrec__param *p, bool dense_only) {
    return p->trainable && !(dense_only && p->sparse);
}

static mmrec_status mmrec__flat_check(const mmrec_model *model, size_t n, bool dense_only,
                                      const char *func) {
    size_t count = 0;
    for (size_t i = 0; i < model->n_params; i++)
        if (mmrec__flat_has(model->params[i], dense_only)) count += model->params[i]->tensor.numel;
    if (n != count)
        return mmrec__set_error(MMREC_EINVAL, func, "n is %zu, expected %zu (the %s element count)",
                                n, count, dense_only ? "dense" : "trainable");
    return MMREC_OK;
}

static mmrec_status mmrec__flat_finite(const float *src, size_t n, const char *func) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return mmrec__set_error(MMREC_ENUMERIC, func, "src[%zu] is %g", i, (double)src[i]);
    return MMREC_OK;
}

/* Copies between the flat buffer and each trainable parameter's data (or
 * gradient when `grads`); `to_flat` chooses the direction; `dense_only`
 * leaves the row-sparse tables out. */
static void mmrec__flat_copy(const mmrec_model *model, float *flat, bool grads, bool to_flat,
                             bool dense_only) {
    size_t off = 0;
    for (size_t i = 0; i < model->n_params; i++) {
        mmrec__param *p = model->params[i];
        if (!mmrec__flat_has(p, dense_only)) continue;
        float *mine = grads ? p->tensor.grad : p->tensor.data;
        size_t n = p->tensor.numel;
        if (to_flat) {
            memcpy(flat + off, mine, n * sizeof(float));
        } else {
            memcpy(mine, flat + off, n * sizeof(float));
            if (grads && p->sparse) {
                size_t dim = n / (size_t)p->tensor.shape[0];
                for (int64_t r = 0; r < p->tensor.shape[0]; r++) {
                    const float *row = mine + (size_t)r * dim;
                    for (size_t j = 0; j < dim; j++)
                        if (row[j] != 0.0f) {
                            mmrec__param_touch_row(p, r);
                            break;
                        }
                }
            }
        }
        off += n;
    }
}

mmrec_status mmrec_model_export_params(const mmrec_model *model, float *dst, size_t n) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(dst);
    MMREC_FORWARD_IF(mmrec__flat_check(model, n, false, __func__));
    mmrec__flat_copy(model, dst, false, true, false);
    return MMREC_OK;
}

mmrec_status mmrec_model_export_grads(const mmrec_model *model, float *dst, size_t n) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(dst);
    MMREC_FORWARD_IF(mmrec__flat_check(model, n, false, __func__));
    mmrec__flat_copy(model, dst, true, true, false);
    return MMREC_OK;
}

mmrec_status mmrec_model_import_params(mmrec_model *model, const float *src, size_t n) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(src);
    MMREC_FORWARD_IF(mmrec__flat_check(model, n, false, __func__));
    MMREC_FORWARD_IF(mmrec__flat_finite(src, n, __func__));
    mmrec__flat_copy(model, (float *)src, false, false, false);
    return MMREC_OK;
}

mmrec_status mmrec_model_import_grads(mmrec_model *model, const float *src, size_t n) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(src);
    MMREC_FORWARD_IF(mmrec__flat_check(model, n, false, __func__));
    MMREC_FORWARD_IF(mmrec__flat_finite(src, n, __func__));
    mmrec__flat_copy(model, (float *)src, true, false, false);
    return MMREC_OK;
}

mmrec_status mmrec_model_export_dense_grads(const mmrec_model *model, float *dst, size_t n) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(dst);
    MMREC_FORWARD_IF(mmrec__flat_check(model, n, true, __func__));
    mmrec__flat_copy(model, dst, true, true, true);
    return MMREC_OK;
}

mmrec_status mmrec_model_import_dense_grads(mmrec_model *model, const float *src, size_t n) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(src);
    MMREC_FORWARD_IF(mmrec__flat_check(model, n, true, __func__));
    MMREC_FORWARD_IF(mmrec__flat_finite(src, n, __func__));
    mmrec__flat_copy(model, (float *)src, true, false, true);
    return MMREC_OK;
}

/* ---- row-sparse tables ---- */

/* The index-th parameter, which must be a trainable row-sparse table. */
static mmrec_status mmrec__sparse_param(const mmrec_model *model, size_t index, const char *func,
                                        mmrec__param **out) {
    if (index >= model->n_params)
        return mmrec__set_error(MMREC_ERANGE, func, "index %zu, model has %zu parameters", index,
                                model->n_params);
    mmrec__param *p = model->params[index];
    if (!p->sparse || !p->trainable)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "index %zu: parameter '%s' is not a row-sparse table (%s)", index,
                                p->name, p->sparse ? "frozen" : "a dense parameter");
    *out = p;
    return MMREC_OK;
}

mmrec_status mmrec_model_param_row_sparse(const mmrec_model *model, size_t index, int *out) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(index >= model->n_params, MMREC_ERANGE, "index %zu, model has %zu parameters",
                  index, model->n_params);
    const mmrec__param *p = model->params[index];
    *out = p->sparse && p->trainable;
    return MMREC_OK;
}

mmrec_status mmrec_model_grad_rows(const mmrec_model *model, size_t index, int64_t *rows,
                                   size_t capacity, size_t *count_out) {
    MMREC_CHECK_MODEL(model);
    MMREC_CHECK_NULL(rows);
    MMREC_CHECK_NULL(count_out);
    mmrec__param *p = NULL;
    MMREC_FORWARD_IF(mmrec__sparse_param(model, index, __func__, &p));
    bool rows_only = mmrec__param_rows_only(p);
    size_t count = rows_only ? p->n_touched : (size_t)p->tensor.shape[0];
    MMREC_FAIL_IF(capacity < count, MMREC_ERANGE,
                  "capacity is %zu, parameter '%s' has %zu rows to list", capacity, p->name,
                  count);
    if (rows_only)
        memcpy(rows, p->touched_rows, count * sizeof *rows);
    else
        for (size_t r = 0; r < count; r++) rows[r] = (int64_t)r;
    *count_out = count;
    return MMREC_OK;
}

mmrec_status mmrec_model_set_grad_rows(mmrec_model *model, size_t index, const int64_t *rows,
                                       size_t num_rows, const float *src) {
    MMREC_CHECK_MODEL(model);
    if (num_rows > 0) {
        MMREC_CHECK_NULL(rows);
        MMREC_CHECK_NULL(src);
    }
    mmrec__param *p = NULL;
    MMREC_FORWARD_IF(mmrec__sparse_param(model, index, __func__, &p));
    int64_t n_rows = p->tensor.shape[0];
    size_t dim = p->tensor.numel / (size_t)n_rows;
    for (size_t k = 0; k < num_rows; k++)
        MMREC_FAIL_IF(rows[k] < 0 || rows[k] >= n_rows, MMREC_ERANGE,
                      "rows[%zu] is %lld, outside [0, %lld) (parameter '%s')", k,
                      (long long)rows[k], (long long)n_rows, p->name);
    if (num_rows > 0) MMREC_FORWARD_IF(mmrec__flat_finite(src, num_rows * dim, __func__));
    mmrec__param_zero_grad(p);
    for (size_t k = 0; k < num_rows; k++) {
        float *g = p->tensor.grad + (size_t)rows[k] * dim;
        const float *s = src + k * dim;
        if (!p->row_touched[rows[k]]) {
            memcpy(g, s, dim * sizeof *g);
            mmrec__param_touch_row(p, rows[k]);
        } else {
            for (size_t j = 0; j < dim; j++) g[j] += s[j];
        }
    }
    return MMREC_OK;
}

/* ---- initializers ---- */

void mmrec__init_xavier_uniform(mmrec_model *model, mmrec_tensor *weight, int64_t fan_in,
                                int64_t fan_out) {
    float bound = sqrtf(6.0f / (float)(fan_in + fan_out));
    for (size_t i = 0; i < weight->numel; i++)
        weight->data[i] = bound * (2.0f * mmrec__rng_uniform(&model->rng) - 1.0f);
}

void mmrec__init_normal(mmrec_model *model, mmrec_tensor *weight, float mean, float std) {
    for (size_t i = 0; i < weight->numel; i++)
        weight->data[i] = mean + std * mmrec__rng_normal(&model->rng);
}

void mmrec__init_fill(mmrec_tensor *weight, float value) {
    for (size_t i = 0; i < weight->numel; i++) weight->data[i] = value;
}
