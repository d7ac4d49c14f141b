/* MLP: Linear layers with an activation and dropout between them.
 * Reference: torch.nn.Sequential of Linear / activation / Dropout. */
#include "modules_internal.h"
#include "../core/config_sizes.h"

#include <math.h>
#include <stdio.h>

enum { MMREC__MLP_MAX_LAYERS = 32 };

typedef struct mmrec__mlp {
    struct mmrec_module base;
    mmrec__lin layers[MMREC__MLP_MAX_LAYERS];
    int n_layers;
    mmrec_activation act;
    bool activate_last;
    float dropout;
} mmrec__mlp;

static const mmrec_mlp_config mmrec__mlp_defaults = {
    .struct_size = sizeof(mmrec_mlp_config),
    .activation = MMREC_ACT_RELU,
    .bias = 1,
    .init = MMREC_INIT_XAVIER_UNIFORM,
    .init_std = 0.02f,
};

mmrec_status mmrec_mlp_config_init_sized(mmrec_mlp_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_mlp_config, cfg, size, mmrec__mlp_defaults);
}

mmrec_status mmrec__mlp_create(const char *func, mmrec_model *model, const char *name,
                               const mmrec_mlp_config *cfg, mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, func));
    mmrec_mlp_config c = mmrec__mlp_defaults;
    MMREC_FORWARD_IF(mmrec__config_merge(&c, sizeof c, MMREC__MIN_SIZE(mmrec_mlp_config), cfg,
                                         func));
    MMREC_FAIL_IF_FOR(func, c.num_sizes < 2 || c.num_sizes > MMREC__MLP_MAX_LAYERS + 1,
                      MMREC_EINVAL, "cfg->num_sizes is %d, must be in [2, %d]", c.num_sizes,
                      MMREC__MLP_MAX_LAYERS + 1);
    MMREC_FAIL_IF_FOR(func, c.sizes == NULL, MMREC_EINVAL, "cfg->sizes is NULL");
    for (int i = 0; i < c.num_sizes; i++)
        MMREC_FAIL_IF_FOR(func, c.sizes[i] < 1, MMREC_EINVAL,
                          "cfg->sizes[%d] is %lld, must be >= 1", i, (long long)c.sizes[i]);
    MMREC_FAIL_IF_FOR(func, !mmrec__activation_ok(c.activation), MMREC_EINVAL,
                      "cfg->activation is %d, not an mmrec_activation", (int)c.activation);
    MMREC_FAIL_IF_FOR(func, !(c.dropout >= 0.0f && c.dropout < 1.0f), MMREC_EINVAL,
                      "cfg->dropout is %g, must be in [0, 1)", (double)c.dropout);
    MMREC_FORWARD_IF(mmrec__init_check(func, "init", c.init, c.init_std));

    mmrec__mlp *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = MMREC_OK;
    if (m) {
        m->n_layers = c.num_sizes - 1;
        m->act = c.activation;
        m->activate_last = c.activate_last != 0;
        m->dropout = c.dropout;
        for (int i = 0; i < m->n_layers && s == MMREC_OK; i++) {
            char wleaf[32], bleaf[32];
            snprintf(wleaf, sizeof wleaf, "%d.weight", i);
            snprintf(bleaf, sizeof bleaf, "%d.bias", i);
            s = mmrec__lin_create(model, func, name, wleaf, bleaf, c.sizes[i], c.sizes[i + 1],
                                  c.bias != 0, c.init, c.init_std, &m->layers[i]);
        }
    }
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "mlp", name, NULL, out);
}

mmrec_status mmrec_mlp_create(mmrec_model *model, const char *name, const mmrec_mlp_config *cfg,
                              mmrec_module **out) {
    return mmrec__mlp_create(__func__, model, name, cfg, out);
}

mmrec_status mmrec_mlp_forward(mmrec_module *mlp, mmrec_tape *tape, mmrec_tensor *x,
                               mmrec_tensor **out) {
    MMREC_CHECK_MODULE(mlp, "mlp");
    MMREC_CHECK_OP1(tape, x, out);
    const mmrec__mlp *m = (const mmrec__mlp *)mlp;
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_tensor *h = x;
    mmrec_status s = MMREC_OK;
    for (int i = 0; i < m->n_layers && s == MMREC_OK; i++) {
        s = mmrec__lin_forward(&m->layers[i], tape, __func__, h, &h);
        bool last = i == m->n_layers - 1;
        if (s == MMREC_OK && (!last || m->activate_last)) s = mmrec__activate(tape, m->act, h, &h);
        if (s == MMREC_OK && !last && m->dropout > 0.0f) s = mmrec_dropout(tape, h, m->dropout, &h);
    }
    if (s != MMREC_OK) {
        mmrec__tape_rollback(tape, mark);
        return s;
    }
    *out = h;
    return MMREC_OK;
}
