/* EM3 internals: the first-release sizes of em3.h's config structs
 * (core/config_sizes.h explains the rows). */
#ifndef MMREC_EM3_INTERNAL_H
#define MMREC_EM3_INTERNAL_H

#include "mmrec/em3.h"
#include "../core/config_sizes.h"

MMREC__SIZED_STRUCT(mmrec_fqformer_config, flatten, 0.1, 72)
MMREC__SIZED_STRUCT(mmrec_target_attention_config, activation, 0.1, 40)
MMREC__SIZED_STRUCT(mmrec_cic_config, negatives, 0.1, 24)

#endif
