/* The small model of the checkpoint seeds: fuzz_corpus.c writes the seeds
 * from it, and the checkpoint harness and the fuzz_corpus suite load them
 * into it, so all three build it here. */
#ifndef MMREC_FUZZ_MODEL_H
#define MMREC_FUZZ_MODEL_H

#include "mmrec/mmrec.h"

/* Its parameters' values in all: layer.weight [2, 3], layer.bias [3],
 * emb.weight [4, 2]. */
#define FUZZ_CKPT_PARAMS (2 * 3 + 3 + 4 * 2)

/* The model into *out, or the failing call's status (nothing made). */
static inline mmrec_status fuzz_checkpoint_model(mmrec_model **out) {
    static const int64_t w_shape[2] = {2, 3}, b_shape[1] = {3}, e_shape[2] = {4, 2};
    mmrec_model *m;
    mmrec_status s = mmrec_model_create(&m);
    if (s != MMREC_OK) return s;
    if (s == MMREC_OK) s = mmrec_model_add_param(m, "layer.weight", 2, w_shape, NULL);
    if (s == MMREC_OK) s = mmrec_model_add_param(m, "layer.bias", 1, b_shape, NULL);
    if (s == MMREC_OK) s = mmrec_model_add_param(m, "emb.weight", 2, e_shape, NULL);
    if (s != MMREC_OK) {
        mmrec_model_destroy(m);
        return s;
    }
    *out = m;
    return MMREC_OK;
}

#endif
