/* IntTower's CIR contrastive term (inttower.h; shared/METHODS-twotower.md
 * 4.2) as a configuration of the batch softmax (losses.h): cosine scores
 * over tau between the users' last FE outputs and the batch's items;
 * the paper's InfoNCE weights the rows by their click label and averages
 * over the clicked ones (row weights y, weight_mean), the code's variant
 * takes column y_i as row i's positive. Reference:
 * tests/golden/make_golden.py::write_inttower (contrast_loss and the
 * InfoNCE over the clicked rows). */
#include "twotower_internal.h"
#include "../losses/losses_internal.h"

#include <math.h>

static const mmrec_inttower_cir_config mmrec__cir_defaults = {
    .struct_size = sizeof(mmrec_inttower_cir_config),
    .temperature = 0.07f,
    .weight = 1.0f,
    .label_indexed = 0,
};

mmrec_status mmrec_inttower_cir_config_init_sized(mmrec_inttower_cir_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_inttower_cir_config, cfg, size, mmrec__cir_defaults);
}

static mmrec_status mmrec__cir_run(mmrec_tape *tape, const char *func, mmrec_tensor *user_vec,
                                   mmrec_tensor *item_vec, const float *labels,
                                   const mmrec_inttower_cir_config *c, mmrec_tensor **out) {
    size_t B = (size_t)user_vec->shape[0];
    mmrec__batch_softmax_args a = {.temperature = c->temperature, .normalize = true};
    if (c->label_indexed) {
        int64_t *pos = mmrec__tape_alloc(tape, B * sizeof *pos);
        if (pos == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
        for (size_t i = 0; i < B; i++) pos[i] = labels[i] != 0.0f;
        a.positives = pos;
    } else {
        a.row_weights = labels;
        a.weight_mean = true;
    }
    mmrec_tensor *loss;
    MMREC_FORWARD_IF(mmrec__loss_batch_softmax(tape, func, user_vec, item_vec, &a, &loss));
    if (c->weight != 1.0f) MMREC_FORWARD_IF(mmrec_scale(tape, loss, c->weight, &loss));
    *out = loss;
    return MMREC_OK;
}

mmrec_status mmrec_loss_inttower_cir(mmrec_tape *tape, mmrec_tensor *user_vec,
                                     mmrec_tensor *item_vec, const float *labels, size_t n,
                                     const mmrec_inttower_cir_config *cfg, mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, user_vec, item_vec, out);
    MMREC_CHECK_NULL(labels);
    mmrec_inttower_cir_config c = mmrec__cir_defaults;
    if (cfg) MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_inttower_cir_config, &c, cfg));
    MMREC_FAIL_IF(!(c.temperature > 0.0f) || !isfinite(c.temperature) ||
                      !isfinite(1.0f / c.temperature),
                  MMREC_EINVAL, "cfg->temperature is %g, must be > 0 with a finite inverse",
                  (double)c.temperature);
    MMREC_FAIL_IF(!(c.weight >= 0.0f) || !isfinite(c.weight), MMREC_EINVAL,
                  "cfg->weight is %g, must be finite and >= 0", (double)c.weight);
    MMREC_FAIL_IF(c.label_indexed != 0 && c.label_indexed != 1, MMREC_EINVAL,
                  "cfg->label_indexed is %d, must be 0 or 1", c.label_indexed);
    if (user_vec->ndim != 2 || item_vec->ndim != 2 || user_vec->shape[0] != item_vec->shape[0] ||
        user_vec->shape[1] != item_vec->shape[1])
        MMREC_FAIL_SHAPE2("user_vec and item_vec must both be [B, d] (H_u f = H_i f)", user_vec,
                          item_vec);
    MMREC_CHECK_FINITE(user_vec);
    MMREC_CHECK_FINITE(item_vec);
    size_t B = (size_t)user_vec->shape[0];
    MMREC_FAIL_IF(n != B, MMREC_ESHAPE, "n is %zu, user_vec has %zu rows", n, B);
    MMREC_FAIL_IF(c.label_indexed && B < 2, MMREC_ESHAPE,
                  "user_vec has %zu row: label_indexed needs B >= 2 (columns 0 and 1)", B);
    for (size_t i = 0; i < B; i++)
        MMREC_FAIL_IF(labels[i] != 0.0f && labels[i] != 1.0f, MMREC_EINVAL,
                      "labels[%zu] is %g, must be 0 or 1", i, (double)labels[i]);
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__cir_run(tape, __func__, user_vec, item_vec, labels, &c, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}
