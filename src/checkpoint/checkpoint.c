/* Checkpoints: the model's parameters and, optionally, the optimizer's state
 * in one container file (format in src/io/io_internal.h). This area sits
 * above both model/ and optim/, which do not include each other's
 * internals (optim/ only reads the model's parameter records).
 *
 * Entries written:
 *   param  "<name>"              f32, the parameter's shape
 *   meta   "model.rng"           u64 [4], the initialization generator
 *   meta   "optim.type"          u64 [1], mmrec_optimizer_type
 *   meta   "optim.step"          u64 [1], steps taken
 *   meta   "optim.groups"        f32 [groups, 2], each group's lr and weight decay
 *   meta   "optim.last_grad_norm" f32 [1]
 *   optim  "state:<name>"        u64 [3]: the parameter's step count, group,
 *                                SGD momentum-buffer-set flag (only for
 *                                parameters with optimizer state)
 *   optim  "<buffer>:<name>"     f32, the parameter's shape, one per buffer
 *                                (momentum_buffer; exp_avg, exp_avg_sq; sum)
 * Loading validates the file, then matches it against the model (and the
 * optimizer), allocates what it needs, and only then copies: a failed load
 * changes nothing. */
#include "../io/io_internal.h"
#include "../model/model_internal.h"
#include "../optim/optim_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- save ---- */

static void mmrec__item_init(mmrec__ckpt_item *it, mmrec__ckpt_kind kind, const char *label,
                             const char *name, mmrec__ckpt_dtype dtype, int ndim,
                             const int64_t *shape, const void *data) {
    memset(it, 0, sizeof *it);
    it->kind = kind;
    it->label = label;
    it->name = name;
    it->dtype = dtype;
    it->ndim = ndim;
    for (int d = 0; d < ndim; d++) it->shape[d] = shape[d];
    it->data = data;
}

static mmrec_status mmrec__checkpoint_save(const mmrec_model *model, const mmrec_optimizer *opt,
                                           const char *path, const char *func) {
    const mmrec__opt_kind *kind = opt ? mmrec__opt_kind_of(opt->cfg.type) : NULL;
    int n_buf = kind ? kind->n_buffers(&opt->cfg) : 0;
    size_t n_slots = opt ? (opt->n_slots < model->n_params ? opt->n_slots : model->n_params) : 0;
    size_t cap = model->n_params + 1 + (opt ? 4 + n_slots * (1 + (size_t)n_buf) : 0);
    mmrec__ckpt_item *items = mmrec__calloc(cap, sizeof *items);
    float *groups = opt ? mmrec__calloc(opt->n_groups * 2, sizeof *groups) : NULL;
    if (items == NULL || (opt && groups == NULL)) {
        mmrec__free(items);
        mmrec__free(groups);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    }
    size_t n = 0;
    int64_t one = 1, four = 4, three = 3;
    for (size_t i = 0; i < model->n_params; i++) {
        const mmrec__param *p = model->params[i];
        mmrec__item_init(&items[n++], MMREC__CKPT_PARAM, NULL, p->name, MMREC__CKPT_F32,
                         p->tensor.ndim, p->tensor.shape, p->tensor.data);
    }
    mmrec__item_init(&items[n], MMREC__CKPT_META, NULL, "model.rng", MMREC__CKPT_U64, 1, &four,
                     NULL);
    memcpy(items[n++].inline_u64, model->rng.s, sizeof model->rng.s);
    if (opt) {
        mmrec__item_init(&items[n], MMREC__CKPT_META, NULL, "optim.type", MMREC__CKPT_U64, 1,
                         &one, NULL);
        items[n++].inline_u64[0] = (uint64_t)opt->cfg.type;
        mmrec__item_init(&items[n], MMREC__CKPT_META, NULL, "optim.step", MMREC__CKPT_U64, 1,
                         &one, NULL);
        items[n++].inline_u64[0] = opt->step;
        for (size_t g = 0; g < opt->n_groups; g++) {
            groups[2 * g] = opt->groups[g].lr;
            groups[2 * g + 1] = opt->groups[g].weight_decay;
        }
        int64_t gshape[2] = {(int64_t)opt->n_groups, 2};
        mmrec__item_init(&items[n++], MMREC__CKPT_META, NULL, "optim.groups", MMREC__CKPT_F32,
                         2, gshape, groups);
        mmrec__item_init(&items[n++], MMREC__CKPT_META, NULL, "optim.last_grad_norm",
                         MMREC__CKPT_F32, 1, &one, &opt->last_grad_norm);
        for (size_t i = 0; i < n_slots; i++) {
            const mmrec__opt_slot *slot = &opt->slots[i];
            const mmrec__param *p = model->params[i];
            if (!slot->ready) continue;
            mmrec__item_init(&items[n], MMREC__CKPT_OPTIM, "state", p->name, MMREC__CKPT_U64, 1,
                             &three, NULL);
            items[n].inline_u64[0] = slot->step;
            items[n].inline_u64[1] = (uint64_t)slot->group;
            items[n++].inline_u64[2] = slot->momentum_set ? 1u : 0u;
            for (int b = 0; b < n_buf; b++)
                mmrec__item_init(&items[n++], MMREC__CKPT_OPTIM, kind->buffer_names[b], p->name,
                                 MMREC__CKPT_F32, p->tensor.ndim, p->tensor.shape,
                                 slot->buf[b]);
        }
    }
    mmrec_status s = mmrec__ckpt_write(path, items, n, func);
    mmrec__free(items);
    mmrec__free(groups);
    return s;
}

/* The arguments of a save or load (`what`): a live model, an optimizer
 * (may be NULL) of that model, a path, and no merged adapter. */
static mmrec_status mmrec__ckpt_args(const mmrec_model *model, const mmrec_optimizer *opt,
                                     const char *path, const char *func, const char *what) {
    MMREC_FORWARD_IF(mmrec__model_check(func, model));
    if (path == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'path' is NULL");
    if (opt) {
        MMREC_FORWARD_IF(mmrec__optim_check(func, opt));
        if (opt->model != model)
            return mmrec__set_error(MMREC_EINVAL, func,
                                    "argument 'opt' belongs to another model");
    }
    return mmrec__model_check_unheld(model, func, what);
}

mmrec_status mmrec_checkpoint_save(const mmrec_model *model, const mmrec_optimizer *opt,
                                   const char *path) {
    MMREC_FORWARD_IF(mmrec__ckpt_args(model, opt, path, __func__, "saving"));
    return mmrec__checkpoint_save(model, opt, path, __func__);
}

mmrec_status mmrec_model_save(const mmrec_model *model, const char *path) {
    MMREC_FORWARD_IF(mmrec__ckpt_args(model, NULL, path, __func__, "saving"));
    return mmrec__checkpoint_save(model, NULL, path, __func__);
}

/* ---- load: matching ---- */

#define MMREC__BAD(...) mmrec__set_error(MMREC_EFORMAT, func, __VA_ARGS__)

static const char *mmrec__dims_str(int ndim, const int64_t *shape, char *buf, size_t size) {
    size_t pos = 0;
    buf[0] = '\0';
    for (int d = 0; d < ndim && pos < size; d++) {
        int w = snprintf(buf + pos, size - pos, "%s%lld", d ? "," : "[", (long long)shape[d]);
        if (w < 0) break;
        pos += (size_t)w;
    }
    if (pos < size) snprintf(buf + pos, size - pos, "]");
    return buf;
}

/* The model parameter named by `len` bytes at `name`, or NULL. */
static mmrec__param *mmrec__param_by_bytes(const mmrec_model *model, const char *name,
                                           size_t len) {
    for (size_t i = 0; i < model->n_params; i++) {
        mmrec__param *p = model->params[i];
        if (strlen(p->name) == len && memcmp(p->name, name, len) == 0) return p;
    }
    return NULL;
}

static uint64_t mmrec__entry_u64(const mmrec__ckpt_entry *e, size_t i) {
    uint64_t v;
    memcpy(&v, (const char *)e->data + 8 * i, sizeof v);
    return v;
}

static float mmrec__entry_f32(const mmrec__ckpt_entry *e, size_t i) {
    float v;
    memcpy(&v, (const char *)e->data + 4 * i, sizeof v);
    return v;
}

static mmrec_status mmrec__match_params(const mmrec__ckpt_reader *r, const mmrec_model *model,
                                        const char *func) {
    const char *path = r->path;
    char a[96], b[96];
    for (size_t i = 0; i < model->n_params; i++) {
        const mmrec__param *p = model->params[i];
        const mmrec__ckpt_entry *e = mmrec__ckpt_find(r, MMREC__CKPT_PARAM, NULL, p->name);
        if (e == NULL)
            return MMREC__BAD("'%s' has no parameter '%s' (a checkpoint of another model?)", path,
                              p->name);
        if (!mmrec__ckpt_entry_is(e, MMREC__CKPT_F32, p->tensor.ndim, p->tensor.shape))
            return MMREC__BAD("parameter '%s' is %s%s in '%s', %s in the model", p->name,
                              e->dtype == MMREC__CKPT_F32 ? "" : "u64 ",
                              mmrec__dims_str(e->ndim, e->shape, a, sizeof a), path,
                              mmrec__dims_str(p->tensor.ndim, p->tensor.shape, b, sizeof b));
    }
    size_t n_file = 0;
    for (size_t i = 0; i < r->n_entries; i++) {
        const mmrec__ckpt_entry *e = &r->entries[i];
        if (e->kind != MMREC__CKPT_PARAM) continue;
        n_file++;
        if (mmrec__param_by_bytes(model, e->name, e->name_len) == NULL)
            return MMREC__BAD("'%s' has parameter '%.*s', which the model lacks (a checkpoint "
                              "of another model?)",
                              path, (int)(e->name_len > 255 ? 255 : e->name_len), e->name);
    }
    if (n_file != model->n_params)
        return MMREC__BAD("'%s' has %zu parameter entries for the model's %zu (duplicates)",
                          path, n_file, model->n_params);
    const mmrec__ckpt_entry *rng = mmrec__ckpt_find(r, MMREC__CKPT_META, NULL, "model.rng");
    int64_t four = 4;
    if (rng && !mmrec__ckpt_entry_is(rng, MMREC__CKPT_U64, 1, &four))
        return MMREC__BAD("'%s': entry 'model.rng' is not u64 [4]", path);
    return MMREC_OK;
}

/* A u64 or f32 meta entry of the expected shape, or an error naming it. */
static mmrec_status mmrec__need_meta(const mmrec__ckpt_reader *r, const char *name,
                                     mmrec__ckpt_dtype dtype, int ndim, const int64_t *shape,
                                     const mmrec__ckpt_entry **out, const char *func) {
    char a[96], b[96];
    const mmrec__ckpt_entry *e = mmrec__ckpt_find(r, MMREC__CKPT_META, NULL, name);
    if (e == NULL) return MMREC__BAD("'%s' lacks the optimizer entry '%s'", r->path, name);
    if (!mmrec__ckpt_entry_is(e, dtype, ndim, shape))
        return MMREC__BAD("'%s': entry '%s' is %s %s, expected %s %s", r->path, name,
                          e->dtype == MMREC__CKPT_F32 ? "f32" : "u64",
                          mmrec__dims_str(e->ndim, e->shape, a, sizeof a),
                          dtype == MMREC__CKPT_F32 ? "f32" : "u64",
                          mmrec__dims_str(ndim, shape, b, sizeof b));
    *out = e;
    return MMREC_OK;
}

/* Is `e` an optimizer entry this optimizer reads? */
static bool mmrec__optim_entry_known(const mmrec__ckpt_reader *r, const mmrec_model *model,
                                     const mmrec__opt_kind *kind, int n_buf,
                                     const mmrec__ckpt_entry *e) {
    const char *colon = memchr(e->name, ':', e->name_len);
    if (colon == NULL) return false;
    size_t llen = (size_t)(colon - e->name);
    const mmrec__param *p = mmrec__param_by_bytes(model, colon + 1, e->name_len - llen - 1);
    if (p == NULL || mmrec__ckpt_find(r, MMREC__CKPT_OPTIM, "state", p->name) == NULL)
        return false;
    if (llen == 5 && memcmp(e->name, "state", 5) == 0) return true;
    for (int b = 0; b < n_buf; b++) {
        const char *label = kind->buffer_names[b];
        if (strlen(label) == llen && memcmp(e->name, label, llen) == 0) return true;
    }
    return false;
}

static mmrec_status mmrec__match_optim(const mmrec__ckpt_reader *r, mmrec_optimizer *opt,
                                       const char *func) {
    const char *path = r->path;
    const mmrec_model *model = opt->model;
    const mmrec__opt_kind *kind = mmrec__opt_kind_of(opt->cfg.type);
    int n_buf = kind->n_buffers(&opt->cfg);
    int64_t one = 1, three = 3, gshape[2] = {(int64_t)opt->n_groups, 2};
    const mmrec__ckpt_entry *e;
    if (mmrec__ckpt_find(r, MMREC__CKPT_META, NULL, "optim.type") == NULL)
        return MMREC__BAD("'%s' holds no optimizer state (saved by mmrec_model_save?)", path);
    MMREC_FORWARD_IF(mmrec__need_meta(r, "optim.type", MMREC__CKPT_U64, 1, &one, &e, func));
    uint64_t type = mmrec__entry_u64(e, 0);
    if (type != (uint64_t)opt->cfg.type) {
        const char *saved = type <= MMREC_OPT_ADAGRAD
                                ? mmrec__opt_type_name((mmrec_optimizer_type)type)
                                : "unknown";
        return MMREC__BAD("'%s' holds %s optimizer state, the optimizer is %s", path, saved,
                          mmrec__opt_type_name(opt->cfg.type));
    }
    MMREC_FORWARD_IF(mmrec__need_meta(r, "optim.step", MMREC__CKPT_U64, 1, &one, &e, func));
    MMREC_FORWARD_IF(mmrec__need_meta(r, "optim.last_grad_norm", MMREC__CKPT_F32, 1, &one, &e,
                                      func));
    e = mmrec__ckpt_find(r, MMREC__CKPT_META, NULL, "optim.groups");
    if (e && e->ndim == 2 && e->shape[1] == 2 && e->shape[0] != gshape[0])
        return MMREC__BAD("'%s' has %lld parameter groups, the optimizer has %zu", path,
                          (long long)e->shape[0], opt->n_groups);
    MMREC_FORWARD_IF(mmrec__need_meta(r, "optim.groups", MMREC__CKPT_F32, 2, gshape, &e, func));
    for (size_t i = 0; i < e->numel; i++) {
        float v = mmrec__entry_f32(e, i);
        if (!(isfinite(v) && v >= 0.0f))
            return MMREC__BAD("'%s': group %zu has %s %g", path, i / 2,
                              i % 2 ? "weight decay" : "lr", (double)v);
    }

    /* Parameters added after the optimizer get their slot (and group) now. */
    MMREC_FORWARD_IF(mmrec__optim_sync_slots(opt, func));
    size_t n_file = 0, matched = 0;
    for (size_t i = 0; i < r->n_entries; i++) n_file += r->entries[i].kind == MMREC__CKPT_OPTIM;
    for (size_t i = 0; i < model->n_params; i++) {
        const mmrec__param *p = model->params[i];
        const mmrec__ckpt_entry *st = mmrec__ckpt_find(r, MMREC__CKPT_OPTIM, "state", p->name);
        if (st == NULL) continue;
        if (!mmrec__ckpt_entry_is(st, MMREC__CKPT_U64, 1, &three))
            return MMREC__BAD("'%s': entry 'state:%s' is not u64 [3]", path, p->name);
        uint64_t group = mmrec__entry_u64(st, 1), flag = mmrec__entry_u64(st, 2);
        if (group != (uint64_t)opt->slots[i].group)
            return MMREC__BAD("parameter '%s' is in group %llu in '%s', group %d in the "
                              "optimizer",
                              p->name, (unsigned long long)group, path, opt->slots[i].group);
        if (flag > 1) return MMREC__BAD("'%s': entry 'state:%s' has flag %llu", path, p->name,
                                        (unsigned long long)flag);
        matched++;
        for (int b = 0; b < n_buf; b++) {
            const char *label = kind->buffer_names[b];
            const mmrec__ckpt_entry *be = mmrec__ckpt_find(r, MMREC__CKPT_OPTIM, label, p->name);
            if (be == NULL)
                return MMREC__BAD("'%s' lacks the optimizer state '%s:%s'", path, label,
                                  p->name);
            if (!mmrec__ckpt_entry_is(be, MMREC__CKPT_F32, p->tensor.ndim, p->tensor.shape))
                return MMREC__BAD("'%s': optimizer state '%s:%s' does not have the "
                                  "parameter's shape",
                                  path, label, p->name);
            matched++;
        }
    }
    if (matched != n_file) {
        for (size_t i = 0; i < r->n_entries; i++) {
            const mmrec__ckpt_entry *x = &r->entries[i];
            if (x->kind == MMREC__CKPT_OPTIM && !mmrec__optim_entry_known(r, model, kind, n_buf, x))
                return MMREC__BAD("'%s' has optimizer state '%.*s' that this %s optimizer "
                                  "and model do not have",
                                  path, (int)(x->name_len > 255 ? 255 : x->name_len), x->name,
                                  kind->name);
        }
        return MMREC__BAD("'%s' has duplicate optimizer state entries", path);
    }
    /* Everything matches: make room for the state to load. */
    for (size_t i = 0; i < model->n_params; i++)
        if (mmrec__ckpt_find(r, MMREC__CKPT_OPTIM, "state", model->params[i]->name))
            MMREC_FORWARD_IF(mmrec__optim_slot_alloc(opt, i, func));
    return MMREC_OK;
}

/* ---- load: commit (cannot fail) ---- */

static void mmrec__commit_optim(const mmrec__ckpt_reader *r, mmrec_optimizer *opt) {
    const mmrec_model *model = opt->model;
    const mmrec__opt_kind *kind = mmrec__opt_kind_of(opt->cfg.type);
    int n_buf = kind->n_buffers(&opt->cfg);
    for (size_t i = 0; i < model->n_params; i++) {
        const mmrec__param *p = model->params[i];
        mmrec__opt_slot *slot = &opt->slots[i];
        const mmrec__ckpt_entry *st = mmrec__ckpt_find(r, MMREC__CKPT_OPTIM, "state", p->name);
        if (st == NULL) { /* as if never stepped */
            slot->ready = false;
            slot->step = 0;
            slot->momentum_set = false;
            continue;
        }
        slot->step = mmrec__entry_u64(st, 0);
        slot->momentum_set = mmrec__entry_u64(st, 2) != 0;
        slot->ready = true;
        for (int b = 0; b < n_buf; b++) {
            const mmrec__ckpt_entry *be =
                mmrec__ckpt_find(r, MMREC__CKPT_OPTIM, kind->buffer_names[b], p->name);
            memcpy(slot->buf[b], be->data, be->size);
        }
    }
    const mmrec__ckpt_entry *e = mmrec__ckpt_find(r, MMREC__CKPT_META, NULL, "optim.step");
    opt->step = mmrec__entry_u64(e, 0);
    e = mmrec__ckpt_find(r, MMREC__CKPT_META, NULL, "optim.last_grad_norm");
    opt->last_grad_norm = mmrec__entry_f32(e, 0);
    e = mmrec__ckpt_find(r, MMREC__CKPT_META, NULL, "optim.groups");
    for (size_t g = 0; g < opt->n_groups; g++) {
        opt->groups[g].lr = mmrec__entry_f32(e, 2 * g);
        opt->groups[g].weight_decay = mmrec__entry_f32(e, 2 * g + 1);
    }
}

static mmrec_status mmrec__checkpoint_load(mmrec_model *model, mmrec_optimizer *opt,
                                           const char *path, const char *func) {
    mmrec__ckpt_reader r;
    MMREC_FORWARD_IF(mmrec__ckpt_open(&r, path, func));
    mmrec_status s = mmrec__match_params(&r, model, func);
    if (s == MMREC_OK && opt) s = mmrec__match_optim(&r, opt, func);
    if (s == MMREC_OK) {
        for (size_t i = 0; i < model->n_params; i++) {
            mmrec__param *p = model->params[i];
            const mmrec__ckpt_entry *e = mmrec__ckpt_find(&r, MMREC__CKPT_PARAM, NULL, p->name);
            memcpy(p->tensor.data, e->data, e->size);
        }
        const mmrec__ckpt_entry *rng = mmrec__ckpt_find(&r, MMREC__CKPT_META, NULL, "model.rng");
        if (rng) memcpy(model->rng.s, rng->data, sizeof model->rng.s);
        if (opt) mmrec__commit_optim(&r, opt);
    }
    mmrec__ckpt_close(&r);
    return s;
}

mmrec_status mmrec_checkpoint_load(mmrec_model *model, mmrec_optimizer *opt, const char *path) {
    MMREC_FORWARD_IF(mmrec__ckpt_args(model, opt, path, __func__, "loading"));
    return mmrec__checkpoint_load(model, opt, path, __func__);
}

mmrec_status mmrec_model_load(mmrec_model *model, const char *path) {
    MMREC_FORWARD_IF(mmrec__ckpt_args(model, NULL, path, __func__, "loading"));
    return mmrec__checkpoint_load(model, NULL, path, __func__);
}
