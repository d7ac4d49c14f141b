/* Two-tower internals: the first-release sizes of twotower.h's and
 * inttower.h's config structs (core/config_sizes.h explains the rows), and
 * the kernels the family's blocks share. */
#ifndef MMREC_TWOTOWER_INTERNAL_H
#define MMREC_TWOTOWER_INTERNAL_H

#include "mmrec/inttower.h"
#include "mmrec/twotower.h"
#include "mmrec/mvke.h"
#include "../core/config_sizes.h"
#include "../ops/ops_internal.h"

MMREC__SIZED_STRUCT(mmrec_freq_estimator_config, num_items, 0.2, 48)
MMREC__SIZED_STRUCT(mmrec_twotower_config, eps, 0.2, 24)
MMREC__SIZED_STRUCT(mmrec_mvke_config, layer_norm_eps, 0.2, 72)


/* ---- MVKE (mvke.c, mvke_export.c) ---- */
#include "../modules/modules_internal.h"

enum { MMREC__MVKE_MAX_KERNELS = 64, MMREC__MVKE_MAX_TASKS = 16, MMREC__MVKE_MAX_HIDDEN = 8 };

typedef struct mmrec__mvke {
    struct mmrec_module base;
    int64_t dim, num_fields;
    int num_kernels, num_tasks;
    float ln_eps;
    int task_n[MMREC__MVKE_MAX_TASKS];                          /* |S_task| */
    int task_k[MMREC__MVKE_MAX_TASKS][MMREC__MVKE_MAX_KERNELS]; /* S_task, in order */
    mmrec_tensor *vk;                                            /* [K, e] */
    mmrec__lin query, key, value;
    mmrec_tensor *ln_w, *ln_b;
    mmrec_module *experts[MMREC__MVKE_MAX_KERNELS];
} mmrec__mvke;

/* Checks `task` of an MVKE module on behalf of `func`. */
mmrec_status mmrec__mvke_check_task(const char *func, const mmrec__mvke *m, int task) MMREC__WUR;

MMREC__SIZED_STRUCT(mmrec_inttower_config, lightse_bias, 0.2, 88)
MMREC__SIZED_STRUCT(mmrec_inttower_cir_config, label_indexed, 0.2, 24)

/* IntTower's Light-SE (lightse.c) on valid arguments: fields [B, F, e],
 * weight [F, F], bias [F] or NULL -> out [B, F e], one node. Fails only
 * with MMREC_ENOMEM (message on behalf of `func`), leaving the tape as it
 * was. */
mmrec_status mmrec__lightse_forward(mmrec_tape *tape, const char *func, mmrec_tensor *fields,
                                    mmrec_tensor *weight, mmrec_tensor *bias,
                                    mmrec_tensor **out) MMREC__WUR;

#endif
