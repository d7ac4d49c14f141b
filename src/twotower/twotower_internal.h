/* Two-tower internals: the first-release sizes of twotower.h's and
 * inttower.h's config structs (core/config_sizes.h explains the rows), and
 * the kernels the family's blocks share. */
#ifndef MMREC_TWOTOWER_INTERNAL_H
#define MMREC_TWOTOWER_INTERNAL_H

#include "mmrec/inttower.h"
#include "mmrec/twotower.h"
#include "../core/config_sizes.h"
#include "../ops/ops_internal.h"

MMREC__SIZED_STRUCT(mmrec_freq_estimator_config, num_items, 0.2, 48)
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
