/* Internal optimizer: per-parameter state slots, groups, and the update
 * kernels of each type (sgd.c, adam.c, adagrad.c). */
#ifndef MMREC_OPTIM_INTERNAL_H
#define MMREC_OPTIM_INTERNAL_H

#include "mmrec/optim.h"
#include "../model/model_internal.h"

#define MMREC__OPTIM_MAGIC 0x6d6d4f50u /* "mmOP" */
#define MMREC__OPTIM_MAX_BUFFERS 2

/* State of one parameter, indexed like the model's parameters. Buffers are
 * allocated the first step the parameter is trainable; `ready` turns true
 * when they are initialized (torch's lazily created state). */
typedef struct mmrec__opt_slot {
    float *buf[MMREC__OPTIM_MAX_BUFFERS];
    uint64_t step;      /* updates of this parameter (torch's state["step"]) */
    int group;
    bool ready;
    bool momentum_set;  /* SGD: the momentum buffer holds a value */
} mmrec__opt_slot;

typedef struct mmrec__opt_group {
    char *prefix;       /* NULL for group 0 */
    float lr, weight_decay;
} mmrec__opt_group;

struct mmrec_optimizer {
    uint32_t magic;
    mmrec_model *model;          /* retained */
    mmrec_optimizer_config cfg;  /* resolved: eps and weight_decay set */
    mmrec__opt_group *groups;
    size_t n_groups, cap_groups;
    mmrec__opt_slot *slots;
    size_t n_slots;
    uint64_t step;
    float last_grad_norm;
    uint64_t skipped;            /* steps skipped for a non-finite gradient */
};

/* What a kernel needs for one parameter in one step. */
typedef struct mmrec__opt_update {
    const mmrec_optimizer_config *cfg;
    float lr, weight_decay; /* the parameter's group */
    float clip_coef;        /* gradients are multiplied by it (1 = no clipping) */
    uint64_t step;          /* the slot's step count including this update */
    size_t dim;             /* elements per row */
    const int64_t *rows;    /* rows to update (sparse), or NULL: all of it */
    size_t n_rows;          /* rows listed, or 1 when rows is NULL */
} mmrec__opt_update;

/* One optimizer type: its state buffers and its update. */
typedef struct mmrec__opt_kind {
    const char *name;
    /* Number of state buffers (each shaped like the parameter) and names. */
    int (*n_buffers)(const mmrec_optimizer_config *cfg);
    const char *buffer_names[MMREC__OPTIM_MAX_BUFFERS];
    /* Initial value of buffer `i` (e.g. Adagrad's initial accumulator). */
    float (*initial)(const mmrec_optimizer_config *cfg, int i);
    /* Updates the parameter from its gradient; returns true when it also
     * zeroed the whole gradient on the way (a dense pass that reads each
     * block once), false when the caller still has to. */
    bool (*update)(const mmrec__opt_update *u, mmrec__opt_slot *slot, float *param,
                   float *grad);
} mmrec__opt_kind;

extern const mmrec__opt_kind mmrec__opt_sgd, mmrec__opt_adam, mmrec__opt_adagrad;

const mmrec__opt_kind *mmrec__opt_kind_of(mmrec_optimizer_type type);
const char *mmrec__opt_type_name(mmrec_optimizer_type type);

/* Validates an optimizer argument (NULL, magic). */
mmrec_status mmrec__optim_check(const char *func, const mmrec_optimizer *opt) MMREC__WUR;
#define MMREC_CHECK_OPTIM(o) MMREC_FORWARD_IF(mmrec__optim_check(__func__, (o)))

/* Makes a slot for every parameter of the model (parameters added after
 * the optimizer was created get one too). MMREC_ENOMEM on failure. */
mmrec_status mmrec__optim_sync_slots(mmrec_optimizer *opt, const char *func) MMREC__WUR;

/* Allocates the state buffers of slot `i` if missing (not initialized). */
mmrec_status mmrec__optim_slot_alloc(mmrec_optimizer *opt, size_t i, const char *func)
    MMREC__WUR;

#endif
