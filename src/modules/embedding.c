/* Embedding table with a row-sparse gradient, or a dense one (cfg->dense).
 * Reference: torch.nn.Embedding. */
#include "modules_internal.h"
#include "../core/config_sizes.h"

#include <math.h>

typedef struct mmrec__embedding {
    struct mmrec_module base;
    mmrec_tensor *weight;
} mmrec__embedding;

static const mmrec_embedding_config mmrec__embedding_defaults = {
    .struct_size = sizeof(mmrec_embedding_config),
    .init = MMREC_INIT_NORMAL,
    .init_std = 1.0f,
};

mmrec_status mmrec_embedding_config_init_sized(mmrec_embedding_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_embedding_config, cfg, size, mmrec__embedding_defaults);
}

mmrec_status mmrec_embedding_create(mmrec_model *model, const char *name,
                                    const mmrec_embedding_config *cfg, mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, __func__));
    mmrec_embedding_config c = mmrec__embedding_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_embedding_config, &c, cfg));
    MMREC_FAIL_IF(c.num_rows < 1, MMREC_EINVAL, "cfg->num_rows is %lld, must be >= 1",
                  (long long)c.num_rows);
    MMREC_FAIL_IF(c.dim < 1, MMREC_EINVAL, "cfg->dim is %lld, must be >= 1", (long long)c.dim);
    MMREC_FAIL_IF(c.dense != 0 && c.dense != 1, MMREC_EINVAL, "cfg->dense is %d, must be 0 or 1",
                  c.dense);
    MMREC_FORWARD_IF(mmrec__init_check(__func__, "init", c.init, c.init_std));
    mmrec__embedding *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = MMREC_OK;
    if (m) {
        int64_t shape[2] = {c.num_rows, c.dim};
        s = mmrec__model_add_param(model, __func__, name, "weight", 2, shape, c.dense == 0,
                                   &m->weight);
        if (s == MMREC_OK && c.init == MMREC_INIT_NORMAL)
            mmrec__init_normal(model, m->weight, 0.0f, c.init_std);
        else if (s == MMREC_OK && c.init == MMREC_INIT_XAVIER_UNIFORM)
            mmrec__init_xavier_uniform(model, m->weight, c.dim, c.num_rows);
    }
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "embedding", name, NULL, out);
}

mmrec_status mmrec_embedding_forward(mmrec_module *embedding, mmrec_tape *tape,
                                     const int64_t *ids, size_t n, mmrec_tensor **out) {
    MMREC_CHECK_MODULE(embedding, "embedding");
    return mmrec__gather_rows(__func__, tape, ((mmrec__embedding *)embedding)->weight, ids, n,
                              out);
}
