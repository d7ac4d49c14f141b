/* LayerNorm module over the last dim. Reference: torch.nn.LayerNorm. */
#include "modules_internal.h"
#include "../core/config_sizes.h"

#include <math.h>

typedef struct mmrec__layernorm {
    struct mmrec_module base;
    mmrec_tensor *weight, *bias; /* NULL without affine */
    int64_t dim;
    float eps;
} mmrec__layernorm;

static const mmrec_layernorm_config mmrec__layernorm_defaults = {
    .struct_size = sizeof(mmrec_layernorm_config),
    .eps = 1e-5f,
    .affine = 1,
};

mmrec_status mmrec_layernorm_config_init_sized(mmrec_layernorm_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_layernorm_config, cfg, size, mmrec__layernorm_defaults);
}

mmrec_status mmrec__ln_params(mmrec_model *model, const char *func, const char *prefix,
                              int64_t dim, mmrec_tensor **weight, mmrec_tensor **bias) {
    int64_t shape[1] = {dim};
    MMREC_FORWARD_IF(mmrec__model_add_param(model, func, prefix, "weight", 1, shape, false, weight));
    mmrec__init_fill(*weight, 1.0f);
    return mmrec__model_add_param(model, func, prefix, "bias", 1, shape, false, bias);
}

mmrec_status mmrec_layernorm_create(mmrec_model *model, const char *name,
                                    const mmrec_layernorm_config *cfg, mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, __func__));
    mmrec_layernorm_config c = mmrec__layernorm_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_layernorm_config, &c, cfg));
    MMREC_FAIL_IF(c.dim < 1, MMREC_EINVAL, "cfg->dim is %lld, must be >= 1", (long long)c.dim);
    MMREC_FAIL_IF(!(c.eps > 0.0f && isfinite(c.eps)), MMREC_EINVAL, "cfg->eps is %g, must be > 0",
                  (double)c.eps);
    mmrec__layernorm *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = MMREC_OK;
    if (m) {
        m->dim = c.dim;
        m->eps = c.eps;
        if (c.affine) s = mmrec__ln_params(model, __func__, name, c.dim, &m->weight, &m->bias);
    }
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "layernorm", name, NULL, out);
}

mmrec_status mmrec_layernorm_forward(mmrec_module *layernorm, mmrec_tape *tape, mmrec_tensor *x,
                                     mmrec_tensor **out) {
    MMREC_CHECK_MODULE(layernorm, "layernorm");
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(x, tape);
    const mmrec__layernorm *m = (const mmrec__layernorm *)layernorm;
    if (mmrec__last_dim(x) != m->dim) {
        char sx[64];
        MMREC_FAIL(MMREC_ESHAPE, "x is %s, its last dim must be %lld",
                   mmrec__shape_str(x, sx, sizeof sx), (long long)m->dim);
    }
    return mmrec__layer_norm(__func__, tape, x, m->weight, m->bias, m->eps, out);
}
