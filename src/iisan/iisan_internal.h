/* IISAN internals: a side adapter network (SAN) tower as one fused node
 * (san.c), run by the item encoder (item_encoder.c). */
#ifndef MMREC_IISAN_INTERNAL_H
#define MMREC_IISAN_INTERNAL_H

#include "mmrec/iisan.h"
#include "../modules/modules_internal.h"
#include "../core/config_sizes.h"

MMREC__SIZED_STRUCT(mmrec_iisan_item_encoder_config, adapter_init_std, 0.2, 80)

enum { MMREC__IISAN_MAX_LAYERS = 64 };

/* One SAN: n adapters over kept-layer positions pos[0..n) (indices into the
 * encoder's kept list), with gates, mixing
 *   intra:  x_k = c_h h + c_a a_k                 (h = 0 or a at pos `first`)
 *   inter:  x_k = h + c_a a_k + c_b b_k           (h = 0)
 * where a is the modality (intra) or the image (inter), b the text. */
typedef struct mmrec__san {
    int n;                       /* adapters */
    bool inter;
    bool gated;                  /* sigmoid gates; else plain sums */
    bool from_first;             /* intra: h starts at a's kept position `first` */
    int first;
    float temperature;
    int pos[MMREC__IISAN_MAX_LAYERS];
    mmrec__adapter adapter[MMREC__IISAN_MAX_LAYERS];
    mmrec_tensor *gate[MMREC__IISAN_MAX_LAYERS]; /* [1] each, when gated */
} mmrec__san;

/* The SAN over states a (and b when inter), each [rows.., L, H] with L the
 * number of kept layers (a gather of them) or every layer (`kept` maps a
 * kept position to its layer then): out [rows.., H], one node. */
mmrec_status mmrec__san_forward(const mmrec__san *san, mmrec_tape *tape, const char *func,
                                const int *kept, int num_kept, mmrec_tensor *a, mmrec_tensor *b,
                                mmrec_tensor **out) MMREC__WUR;

#endif
