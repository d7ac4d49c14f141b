/* AlignRec internals: the first-release sizes of alignrec.h's structs
 * (core/config_sizes.h explains the rows). */
#ifndef MMREC_ALIGNREC_INTERNAL_H
#define MMREC_ALIGNREC_INTERNAL_H

#include "mmrec/alignrec.h"
#include "../core/config_sizes.h"

MMREC__SIZED_STRUCT(mmrec_alignrec_config, layernorm, 0.1, 64)
MMREC__SIZED_STRUCT(mmrec_alignrec_views, mm_items, 0.1, 56)

#endif
