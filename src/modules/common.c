/* Shared module plumbing: creation with rollback, activations, init checks. */
#include "modules_internal.h"

#include <math.h>
#include <string.h>

mmrec_status mmrec__create_begin(mmrec__create *c, mmrec_model *model, const char *name,
                                 const void *cfg, const char *func) {
    MMREC_FORWARD_IF(mmrec__model_check(func, model));
    if (name == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'name' is NULL");
    if (cfg == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'cfg' is NULL");
    if (name[0] == '\0' || strlen(name) > 200)
        return mmrec__set_error(MMREC_EINVAL, func, "module name is empty or longer than 200");
    if (mmrec__model_has_module(model, name))
        return mmrec__set_error(MMREC_ESTATE, func, "a module named '%s' already exists", name);
    c->model = model;
    c->func = func;
    c->n_params = model->n_params;
    c->n_modules = model->n_modules;
    c->rng = model->rng;
    return MMREC_OK;
}

mmrec_status mmrec__create_end(mmrec__create *c, mmrec_status status, mmrec_module *module,
                               const char *kind, const char *name,
                               void (*destroy)(mmrec_module *), mmrec_module **out) {
    if (status == MMREC_OK) {
        if (module == NULL)
            status = mmrec__set_error(MMREC_ENOMEM, c->func, "out of memory");
        else
            status = mmrec__model_add_module(c->model, c->func, module, kind, name, destroy);
    }
    if (status != MMREC_OK) {
        if (module) {
            if (destroy) destroy(module);
            mmrec__free(module->name);
            mmrec__free(module);
        }
        mmrec__model_truncate(c->model, c->n_params, c->n_modules);
        c->model->rng = c->rng;
        return status;
    }
    if (out) *out = module;
    return MMREC_OK;
}

bool mmrec__activation_ok(mmrec_activation act) {
    return act >= MMREC_ACT_NONE && act <= MMREC_ACT_TANH;
}

mmrec_status mmrec__activate(mmrec_tape *tape, mmrec_activation act, mmrec_tensor *x,
                             mmrec_tensor **out) {
    switch (act) {
    case MMREC_ACT_NONE: *out = x; return MMREC_OK;
    case MMREC_ACT_RELU: return mmrec_relu(tape, x, out);
    case MMREC_ACT_GELU: return mmrec_gelu(tape, x, MMREC_GELU_ERF, out);
    case MMREC_ACT_GELU_TANH: return mmrec_gelu(tape, x, MMREC_GELU_TANH, out);
    case MMREC_ACT_SIGMOID: return mmrec_sigmoid(tape, x, out);
    case MMREC_ACT_TANH: return mmrec_tanh(tape, x, out);
    }
    MMREC_FAIL(MMREC_EINVAL, "unknown activation %d", (int)act);
}

mmrec_status mmrec__init_check(const char *func, const char *field, mmrec_init init,
                               float init_std) {
    if (init != MMREC_INIT_XAVIER_UNIFORM && init != MMREC_INIT_NORMAL && init != MMREC_INIT_ZEROS)
        return mmrec__set_error(MMREC_EINVAL, func, "cfg->%s is %d, not an mmrec_init", field,
                                (int)init);
    if (init == MMREC_INIT_NORMAL && !(init_std > 0.0f && isfinite(init_std)))
        return mmrec__set_error(MMREC_EINVAL, func, "cfg->init_std is %g, must be > 0",
                                (double)init_std);
    return MMREC_OK;
}
