/* Internal model: parameter records, module base, reference counting. */
#ifndef MMREC_MODEL_INTERNAL_H
#define MMREC_MODEL_INTERNAL_H

#include "mmrec/model.h"
#include "../tensor/tensor_internal.h"

#include <stdatomic.h>
#include <string.h>

typedef struct mmrec__param {
    mmrec_tensor tensor;        /* header; flags include MMREC__T_PARAM */
    char *name;
    struct mmrec_model *model;
    size_t index;               /* position in the model's list */
    bool trainable;             /* false when frozen */
    bool held;                  /* held frozen by a merged adapter (LoRA): freeze,
                                 * unfreeze, save and load refuse */
    bool state;                 /* a statistic the library updates itself (an
                                 * estimator's counters): never trainable, so
                                 * optimizers skip it; unfreeze refuses; save
                                 * and load carry it like any parameter */
    bool sparse;                /* row-sparse gradient (embedding tables) */
    /* Sparse bookkeeping: rows whose gradient may be non-zero since the last
     * clear, as a flag per row and a list, both sized for every row. Only
     * the row gather marks rows (mmrec__grad_rows); any other write into the
     * gradient (a matmul, a graph product, a loss: mmrec__grad) sets
     * dense_grad, and the next step then updates and clears every row. */
    uint8_t *row_touched;
    int64_t *touched_rows;
    size_t n_touched;
    bool dense_grad;
} mmrec__param;

/* Base of every module; module-specific structs embed it first. */
struct mmrec_module {
    uint32_t magic;
    const char *kind;            /* "linear", "mlp", ... */
    char *name;
    struct mmrec_model *model;
    void (*destroy)(mmrec_module *module); /* frees the specific part; may be NULL */
};

#define MMREC__MODULE_MAGIC 0x6d6d4d44u /* "mmMD" */
#define MMREC__MODEL_MAGIC 0x6d6d4d4cu  /* "mmML" */

struct mmrec_model {
    uint32_t magic;
    atomic_int refs;             /* caller + optimizers + tapes holding nodes */
    bool destroyed;              /* the caller let go; freed at refs == 0 */
    mmrec__param **params;
    size_t n_params, cap_params;
    mmrec_module **modules;
    size_t n_modules, cap_modules;
    mmrec__rng_state rng;        /* initialization */
};

void mmrec__model_retain(struct mmrec_model *model);
void mmrec__model_release(struct mmrec_model *model);

/* Validates a model argument (NULL, magic, destroyed). */
mmrec_status mmrec__model_check(const char *func, const mmrec_model *model) MMREC__WUR;
#define MMREC_CHECK_MODEL(m) MMREC_FORWARD_IF(mmrec__model_check(__func__, (m)))

/* Validates a module argument and that it is of `kind` (NULL: any kind).
 * `what` names the argument as the public header does ("mlp", "linear");
 * the macro uses the parameter's C name, which is the header's. */
mmrec_status mmrec__module_check(const char *func, const char *what, const mmrec_module *module,
                                 const char *kind) MMREC__WUR;
#define MMREC_CHECK_MODULE(mod, kind) \
    MMREC_FORWARD_IF(mmrec__module_check(__func__, #mod, (mod), (kind)))

/* Adds a parameter "<prefix>.<leaf>" (or "<leaf>" when prefix is NULL),
 * zero-filled, trainable, with a zeroed gradient. */
mmrec_status mmrec__model_add_param(mmrec_model *model, const char *func, const char *prefix,
                                    const char *leaf, int ndim, const int64_t *shape, bool sparse,
                                    mmrec_tensor **out) MMREC__WUR;

/* Registers a module (allocated by the caller with mmrec__alloc, base at
 * offset 0); the model frees it on destruction. Sets base fields. */
mmrec_status mmrec__model_add_module(mmrec_model *model, const char *func, mmrec_module *module,
                                     const char *kind, const char *name,
                                     void (*destroy)(mmrec_module *)) MMREC__WUR;

/* Frees the parameters and modules added after the first n_params and
 * n_modules (rolls back a creation that failed part-way). */
void mmrec__model_truncate(mmrec_model *model, size_t n_params, size_t n_modules);

/* True when a module of that name exists. */
bool mmrec__model_has_module(const mmrec_model *model, const char *name);

/* Marks `row` of a sparse parameter as touched (gradient may be non-zero). */
static inline void mmrec__param_touch_row(mmrec__param *p, int64_t row) {
    if (!p->row_touched[row]) {
        p->row_touched[row] = 1;
        p->touched_rows[p->n_touched++] = row;
    }
}

/* Whether parameter `name` is under `prefix`, matched by whole name
 * components: "" matches every name; a prefix ending in '.' matches names
 * that start with it; any other prefix matches the name itself and the
 * names below it ("fq.layers.1" matches "fq.layers.1" and "fq.layers.1.w",
 * not "fq.layers.10.w"). */
static inline bool mmrec__name_under(const char *name, const char *prefix) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0) return false;
    return n == 0 || prefix[n - 1] == '.' || name[n] == '\0' || name[n] == '.';
}

/* Freezes (gradient cleared) or unfreezes one parameter; its gradient
 * buffer exists (every parameter gets one at creation). */
void mmrec__param_set_trainable(mmrec__param *p, bool trainable);

/* Marks a parameter as state (see mmrec__param.state): frozen for good. */
void mmrec__param_mark_state(mmrec__param *p);

/* Fails with MMREC_ESTATE naming the first parameter held frozen by a
 * merged adapter, for an operation (`what`) that would undo or bypass the
 * hold. */
mmrec_status mmrec__model_check_unheld(const mmrec_model *model, const char *func,
                                       const char *what) MMREC__WUR;

/* Whether the next step updates only the touched rows. */
static inline bool mmrec__param_rows_only(const mmrec__param *p) {
    return p->sparse && !p->dense_grad;
}

/* Zeroes a parameter's gradient (only the touched rows when rows-only). */
void mmrec__param_zero_grad(mmrec__param *p);
/* The same for a gradient a dense pass already zeroed (not rows-only):
 * resets the row bookkeeping only. */
void mmrec__param_grad_zeroed(mmrec__param *p);

/* Parameter initializers drawing from the model's generator. */
void mmrec__init_xavier_uniform(mmrec_model *model, mmrec_tensor *weight, int64_t fan_in,
                                int64_t fan_out);
void mmrec__init_normal(mmrec_model *model, mmrec_tensor *weight, float mean, float std);
void mmrec__init_fill(mmrec_tensor *weight, float value);

#endif
