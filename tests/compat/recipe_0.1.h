/* What the files in tests/compat/0.1/ hold and how they were made: the
 * model, the optimizer, the training steps and the feature-cache values.
 * make_files_0.1.c ran this against libmmrec 0.1.0 and wrote the files;
 * tests/test_compat.c runs it against the current library to read them back
 * and take the same next step. It is frozen together with those files (any
 * change here makes them disagree) and uses only the public API.
 *
 * Everything is deterministic: fixed seeds, integer formulas for the data,
 * matrix products small enough for the library's own loops (no BLAS), and
 * only +, -, *, /, sqrt and max in float32, so the same step gives the same
 * bits on any machine, with OpenBLAS or BLIS. */
#ifndef MMREC_COMPAT_RECIPE_0_1_H
#define MMREC_COMPAT_RECIPE_0_1_H

#include <stdint.h>
#include <string.h>

#include "mmrec/mmrec.h"

#define COMPAT01_TRY(call)                               \
    do {                                                 \
        mmrec_status compat01__s = (call);               \
        if (compat01__s != MMREC_OK) return compat01__s; \
    } while (0)

/* ---- the checkpoint ----
 * Model "item" Embedding [48, 8] (a sparse table) -> "norm" LayerNorm(8) ->
 * "tower" MLP 8-16-8 (ReLU) -> "head" Linear 8 -> 4, MSE against a target.
 * AdamW (lr 0.02, betas 0.9 / 0.999, eps 1e-8, weight decay 0.01, clipping
 * at global norm 1); group 1 = the "item." parameters with lr 0.05 and no
 * weight decay. Steps t = 0..4 were taken, then the model and optimizer were
 * saved (checkpoint_adamw.mmrc); step t = 5 followed. */
enum {
    COMPAT01_ROWS = 48,
    COMPAT01_DIM = 8,
    COMPAT01_HIDDEN = 16,
    COMPAT01_OUT = 4,
    COMPAT01_BATCH = 8,
    COMPAT01_SAVED_STEPS = 5 /* steps before the checkpoint */
};
#define COMPAT01_SEED 2024u
#define COMPAT01_LR 0.02f
#define COMPAT01_ITEM_LR 0.05f
#define COMPAT01_ITEM_WD 0.0f

typedef struct compat01_run {
    mmrec_model *model;
    mmrec_optimizer *opt;
    mmrec_module *item, *norm, *tower, *head;
    mmrec_tape *tape;
} compat01_run;

/* Frees what compat01_build made (also after a failed build). */
static void compat01_free(compat01_run *r) {
    mmrec_tape_destroy(r->tape);
    mmrec_optimizer_destroy(r->opt);
    mmrec_model_destroy(r->model);
    memset(r, 0, sizeof *r);
}

/* The model with parameters drawn from `seed`, the optimizer with learning
 * rates lr (group 0) and item_lr (group 1), and a training tape. */
static mmrec_status compat01_build(compat01_run *r, uint64_t seed, float lr, float item_lr) {
    memset(r, 0, sizeof *r);
    COMPAT01_TRY(mmrec_model_create(&r->model));
    COMPAT01_TRY(mmrec_model_seed(r->model, seed));

    mmrec_embedding_config ec;
    COMPAT01_TRY(mmrec_embedding_config_init(&ec));
    ec.num_rows = COMPAT01_ROWS;
    ec.dim = COMPAT01_DIM;
    COMPAT01_TRY(mmrec_embedding_create(r->model, "item", &ec, &r->item));

    mmrec_layernorm_config lc;
    COMPAT01_TRY(mmrec_layernorm_config_init(&lc));
    lc.dim = COMPAT01_DIM;
    COMPAT01_TRY(mmrec_layernorm_create(r->model, "norm", &lc, &r->norm));

    static const int64_t sizes[3] = {COMPAT01_DIM, COMPAT01_HIDDEN, COMPAT01_DIM};
    mmrec_mlp_config mc;
    COMPAT01_TRY(mmrec_mlp_config_init(&mc));
    mc.sizes = sizes;
    mc.num_sizes = 3;
    mc.activation = MMREC_ACT_RELU;
    COMPAT01_TRY(mmrec_mlp_create(r->model, "tower", &mc, &r->tower));

    mmrec_linear_config hc;
    COMPAT01_TRY(mmrec_linear_config_init(&hc));
    hc.in_dim = COMPAT01_DIM;
    hc.out_dim = COMPAT01_OUT;
    COMPAT01_TRY(mmrec_linear_create(r->model, "head", &hc, &r->head));

    mmrec_optimizer_config oc;
    COMPAT01_TRY(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAMW;
    oc.lr = lr;
    oc.weight_decay = 0.01f;
    oc.beta1 = 0.9f;
    oc.beta2 = 0.999f;
    oc.eps = 1e-8f;
    oc.clip_norm = 1.0f;
    COMPAT01_TRY(mmrec_optimizer_create(r->model, &oc, &r->opt));
    COMPAT01_TRY(mmrec_optimizer_add_group(r->opt, "item.", item_lr, COMPAT01_ITEM_WD, NULL));
    COMPAT01_TRY(mmrec_tape_create(&r->tape));
    return mmrec_tape_seed(r->tape, COMPAT01_SEED);
}

/* Batch of step t: 8 item ids among rows 0..28 (rows 29..47 are never
 * touched; the last id repeats the first) and the [8, 4] target. */
static void compat01_batch(int t, int64_t ids[COMPAT01_BATCH],
                           float target[COMPAT01_BATCH * COMPAT01_OUT]) {
    for (int i = 0; i < COMPAT01_BATCH - 1; i++) ids[i] = (t * 11 + i * 5) % 29;
    ids[COMPAT01_BATCH - 1] = ids[0];
    for (int k = 0; k < COMPAT01_BATCH * COMPAT01_OUT; k++)
        target[k] = (float)((t * 7 + k * 3) % 13 - 6) / 8.0f;
}

/* Training step t: forward, MSE, backward, optimizer step, tape reset. */
static mmrec_status compat01_step(compat01_run *r, int t) {
    int64_t ids[COMPAT01_BATCH];
    float target[COMPAT01_BATCH * COMPAT01_OUT];
    compat01_batch(t, ids, target);
    int64_t shape[2] = {COMPAT01_BATCH, COMPAT01_OUT};
    mmrec_tensor *e, *h, *y, *out, *want, *loss;
    COMPAT01_TRY(mmrec_embedding_forward(r->item, r->tape, ids, COMPAT01_BATCH, &e));
    COMPAT01_TRY(mmrec_layernorm_forward(r->norm, r->tape, e, &h));
    COMPAT01_TRY(mmrec_mlp_forward(r->tower, r->tape, h, &y));
    COMPAT01_TRY(mmrec_linear_forward(r->head, r->tape, y, &out));
    COMPAT01_TRY(mmrec_tape_wrap(r->tape, target, 2, shape, MMREC_TENSOR_READONLY, &want));
    COMPAT01_TRY(mmrec_loss_mse(r->tape, out, want, &loss));
    COMPAT01_TRY(mmrec_tape_backward(r->tape, loss));
    COMPAT01_TRY(mmrec_optimizer_step(r->opt));
    mmrec_tape_reset(r->tape);
    return MMREC_OK;
}

/* ---- the feature cache (features.mmfc) ----
 * 40 items with ids 5 + 17 i, given to the writer in the order
 * i = (13 r) % 40 for row r, and three fields, added in this order:
 *   "image"  float32  [16]            ((id * 37 + j * 11) % 257 - 128) / 97
 *   "text"   float16  [12]            ((id * 29 + j * 13) % 2047 - 1023) / 1024
 *   "hidden" bfloat16 [4, 6] = 24     ((id * 7 + l * 31 + h * 3) % 255 - 127) / 64,
 *                                     j = l * 6 + h (every layer's state, [L, H])
 * The 16-bit values are exactly representable (at most 11 and 8 significant
 * bits), so each gathered value equals its formula exactly. */
enum {
    COMPAT01_ITEMS = 40,
    COMPAT01_IMAGE_DIM = 16,
    COMPAT01_TEXT_DIM = 12,
    COMPAT01_LAYERS = 4,
    COMPAT01_WIDTH = 6,
    COMPAT01_HIDDEN_DIM = COMPAT01_LAYERS * COMPAT01_WIDTH
};

static int64_t compat01_item_id(int i) { return 5 + 17 * (int64_t)i; }

/* Value j of field `field` (0 image, 1 text, 2 hidden) of item `id`. */
static float compat01_value(int field, int64_t id, int j) {
    switch (field) {
    case 0: return (float)((id * 37 + j * 11) % 257 - 128) / 97.0f;
    case 1: return (float)((id * 29 + j * 13) % 2047 - 1023) / 1024.0f;
    default: {
        int l = j / COMPAT01_WIDTH, h = j % COMPAT01_WIDTH;
        return (float)((id * 7 + l * 31 + h * 3) % 255 - 127) / 64.0f;
    }
    }
}

#endif
