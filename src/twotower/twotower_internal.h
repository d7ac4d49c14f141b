/* Two-tower internals: the first-release sizes of twotower.h's config
 * structs (core/config_sizes.h explains the rows). */
#ifndef MMREC_TWOTOWER_INTERNAL_H
#define MMREC_TWOTOWER_INTERNAL_H

#include "mmrec/twotower.h"
#include "../core/config_sizes.h"

MMREC__SIZED_STRUCT(mmrec_freq_estimator_config, num_items, 0.2, 48)
MMREC__SIZED_STRUCT(mmrec_twotower_config, eps, 0.2, 24)

#endif
