/* Gathering cached records by item id into a tape tensor or caller memory,
 * whole or, for [L, H] records, only the kept layers (each kept row read
 * straight from the mapping and widened as it is copied).
 * Ids are found by binary search in the sorted id table, or directly when
 * the table is exactly 0 .. n_items - 1. Ids are checked before anything is
 * written, so a failed gather leaves its outputs untouched; a steady-state
 * gather allocates nothing (the output comes from the tape's arena). */
#include "cache_internal.h"
#include "../autograd/autograd_internal.h"
#include "../core/config_sizes.h"

/* The row of `id`, or false when the cache does not hold it. */
static inline bool mmrec__cache_lookup(const mmrec__cache_version *v, int64_t id, size_t *row) {
    if (id < 0) return false;
    if (v->dense) {
        *row = (size_t)id;
        return (uint64_t)id < v->n_items;
    }
    size_t lo = 0, hi = v->n_items;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->ids[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    *row = lo;
    return lo < v->n_items && v->ids[lo] == id;
}

/* What one gather copies: for each id, the kept layers of its record
 * (keep NULL: the whole record, one run of dim elements), each widened to
 * float32 straight from the mapping; a missing id gives zeros. */
typedef struct mmrec__cache_plan {
    const mmrec__cache_version *v;
    const mmrec__cache_field *f;
    const int64_t *ids;
    const int64_t *keep; /* NULL: every layer */
    size_t n_keep;       /* layers per output record */
    size_t out_dim;      /* floats per output record */
    float *dst, *presence;
} mmrec__cache_plan;

/* Elements copied per chunk of the pool: below this a gather runs on the
 * calling thread (a chunk costs about as much as waking a worker). */
#define MMREC__CACHE_GATHER_GRAIN ((size_t)1 << 15)

static void mmrec__cache_fill_chunk(void *ctx, size_t begin, size_t end, int part) {
    (void)part;
    const mmrec__cache_plan *p = ctx;
    const mmrec__cache_field *f = p->f;
    size_t width = f->width, elem = mmrec__cache_elem_size(f->dtype);
    float *dst = p->dst + begin * p->out_dim;
    for (size_t i = begin; i < end; i++, dst += p->out_dim) {
        size_t row;
        bool found = mmrec__cache_lookup(p->v, p->ids[i], &row);
        if (p->presence) p->presence[i] = found ? 1.0f : 0.0f;
        if (!found) {
            memset(dst, 0, p->out_dim * sizeof *dst);
            continue;
        }
        const unsigned char *rec = f->data + row * f->row_bytes;
        if (p->keep == NULL) {
            mmrec__cache_widen(f->dtype, rec, dst, f->dim);
            continue;
        }
        for (size_t k = 0; k < p->n_keep; k++)
            mmrec__cache_widen(f->dtype, rec + (size_t)p->keep[k] * width * elem,
                               dst + k * width, width);
    }
}

/* Copies the records of n ids as the plan says, split over the pool when
 * the copy is large. The split depends only on the sizes, and every chunk
 * writes its own rows: the result is the same for any thread count. */
static void mmrec__cache_fill(const mmrec__cache_plan *p, size_t n) {
    size_t grain = mmrec__grain(p->out_dim, MMREC__CACHE_GATHER_GRAIN);
    mmrec__parallel_for(n, mmrec__parallel_parts(n, grain), mmrec__cache_fill_chunk,
                        (void *)p);
}

/* The options of one gather: the missing-id policy and the kept layers.
 * `prefix` is how messages name where they came from: "" for the flags
 * argument of mmrec_cache_gather_ex, "cfg->" for a gather config. */
typedef struct mmrec__cache_opts {
    uint32_t flags;
    const int64_t *keep; /* NULL: every layer */
    size_t n_keep;
    const char *prefix;
} mmrec__cache_opts;

/* The kept layers of field f: each in [0, layers), strictly increasing. */
static mmrec_status mmrec__cache_check_keep(const mmrec__cache_field *f,
                                            const mmrec__cache_opts *o, const char *func) {
    const char *c = o->prefix;
    for (size_t k = 0; k < o->n_keep; k++) {
        int64_t l = o->keep[k];
        MMREC__CACHE_FAIL_IF(l < 0 || (uint64_t)l >= f->layers, MMREC_ERANGE,
                             "%skeep[%zu] is %lld, outside [0, %zu) (field '%s' has %zu "
                             "layers of width %zu)",
                             c, k, (long long)l, f->layers, f->name, f->layers, f->width);
        MMREC__CACHE_FAIL_IF(k > 0 && l <= o->keep[k - 1], MMREC_EINVAL,
                             "%skeep[%zu] is %lld, not above %skeep[%zu] = %lld (kept layers "
                             "are strictly increasing, each once)",
                             c, k, (long long)l, c, k - 1, (long long)o->keep[k - 1]);
    }
    return MMREC_OK;
}

/* Validates the arguments every gather shares and takes a reference to the
 * current version and the field; the caller releases the version. */
static mmrec_status mmrec__cache_gather_begin(const mmrec_cache *cache, const char *field,
                                              const int64_t *ids, size_t n,
                                              const mmrec__cache_opts *o,
                                              mmrec__cache_version **v_out,
                                              const mmrec__cache_field **f_out,
                                              const char *func) {
    MMREC__CACHE_CHECK_NULL(field);
    MMREC__CACHE_CHECK_NULL(ids);
    MMREC__CACHE_FAIL_IF(o->flags & ~(uint32_t)MMREC_CACHE_MISSING_ZERO, MMREC_EINVAL,
                         "%sflags 0x%x has unknown bits (only MMREC_CACHE_MISSING_ZERO)",
                         o->prefix, o->flags);
    MMREC__CACHE_FAIL_IF(o->keep == NULL && o->n_keep != 0, MMREC_EINVAL,
                         "%sn_keep is %zu with %skeep NULL (NULL keeps every layer; n_keep "
                         "must then be 0)",
                         o->prefix, o->n_keep, o->prefix);
    MMREC__CACHE_FAIL_IF(o->keep != NULL && o->n_keep == 0, MMREC_EINVAL,
                         "%sn_keep is 0 with %skeep set (keep at least one layer, or set keep "
                         "NULL for every layer)",
                         o->prefix, o->prefix);
    mmrec__cache_version *v;
    MMREC_FORWARD_IF(mmrec__cache_acquire(cache, &v, func));
    const mmrec__cache_field *f = mmrec__cache_find_field(v, field);
    size_t row;
    mmrec_status s = MMREC_OK;
    if (f == NULL) {
        s = mmrec__set_error(MMREC_ENOTFOUND, func, "the cache has no field '%s'", field);
    } else {
        s = mmrec__cache_check_keep(f, o, func);
        if (!(o->flags & MMREC_CACHE_MISSING_ZERO))
            for (size_t i = 0; i < n && s == MMREC_OK; i++)
                if (!mmrec__cache_lookup(v, ids[i], &row))
                    s = mmrec__set_error(MMREC_ERANGE, func,
                                         "ids[%zu] is %lld, which the cache does not hold (pass "
                                         "MMREC_CACHE_MISSING_ZERO for a zero row)",
                                         i, (long long)ids[i]);
    }
    if (s != MMREC_OK) {
        mmrec__cache_release(cache, v);
        return s;
    }
    *v_out = v;
    *f_out = f;
    return MMREC_OK;
}

/* The plan of a validated gather into dst / presence. */
static mmrec__cache_plan mmrec__cache_plan_make(const mmrec__cache_version *v,
                                                const mmrec__cache_field *f, const int64_t *ids,
                                                const mmrec__cache_opts *o, float *dst,
                                                float *presence) {
    mmrec__cache_plan p = {v, f, ids, o->keep, o->keep ? o->n_keep : f->layers, 0, dst,
                           presence};
    p.out_dim = o->keep ? o->n_keep * f->width : f->dim;
    return p;
}

/* A gather into a tape tensor: [n, dim] (layered false) or
 * [n, kept layers, width] (layered true). */
static mmrec_status mmrec__cache_gather_tape(const mmrec_cache *cache, mmrec_tape *tape,
                                             const char *field, const int64_t *ids, size_t n,
                                             const mmrec__cache_opts *o, bool layered,
                                             mmrec_tensor **out, mmrec_tensor **presence_out,
                                             const char *func) {
    MMREC_FORWARD_IF(mmrec__tape_check(func, tape));
    MMREC__CACHE_CHECK_NULL(out);
    MMREC__CACHE_FAIL_IF(n < 1 || n > (size_t)INT64_MAX, MMREC_EINVAL,
                         "n is %zu, must be >= 1", n);
    mmrec__cache_version *v;
    const mmrec__cache_field *f;
    MMREC_FORWARD_IF(mmrec__cache_gather_begin(cache, field, ids, n, o, &v, &f, func));
    mmrec__cache_plan plan = mmrec__cache_plan_make(v, f, ids, o, NULL, NULL);
    int64_t shape[3] = {(int64_t)n, (int64_t)plan.out_dim, 0};
    if (layered) {
        shape[1] = (int64_t)plan.n_keep;
        shape[2] = (int64_t)f->width;
    }
    int ndim = layered ? 3 : 2;
    size_t numel;
    mmrec_status s = mmrec__shape_check(func, "out", ndim, shape, &numel);
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_tensor *y = NULL, *p = NULL;
    if (s == MMREC_OK) {
        y = mmrec__tape_new(tape, ndim, shape, false);
        if (y && presence_out) p = mmrec__tape_new(tape, 1, shape, false);
        if (y == NULL || (presence_out && p == NULL)) s = mmrec__tape_oom(tape, mark, func);
    }
    if (s == MMREC_OK) {
        plan.dst = y->data;
        plan.presence = p ? p->data : NULL;
        mmrec__cache_fill(&plan, n);
    }
    mmrec__cache_release(cache, v);
    if (s != MMREC_OK) return s;
    *out = y;
    if (presence_out) *presence_out = p;
    return MMREC_OK;
}

/* A gather into caller memory. */
static mmrec_status mmrec__cache_gather_mem(const mmrec_cache *cache, const char *field,
                                            const int64_t *ids, size_t n,
                                            const mmrec__cache_opts *o, float *dst,
                                            float *presence, const char *func) {
    mmrec__cache_version *v;
    const mmrec__cache_field *f;
    MMREC_FORWARD_IF(mmrec__cache_gather_begin(cache, field, ids, n, o, &v, &f, func));
    mmrec__cache_plan plan = mmrec__cache_plan_make(v, f, ids, o, dst, presence);
    size_t numel;
    bool fits = mmrec__mul_size(n, plan.out_dim, &numel) && numel <= SIZE_MAX / sizeof(float);
    if (fits) mmrec__cache_fill(&plan, n);
    mmrec__cache_release(cache, v);
    MMREC__CACHE_FAIL_IF(!fits, MMREC_EINVAL, "n is %zu: n * record length overflows", n);
    return MMREC_OK;
}

mmrec_status mmrec_cache_gather(const mmrec_cache *cache, mmrec_tape *tape, const char *field,
                                const int64_t *ids, size_t n, mmrec_tensor **out) {
    mmrec__cache_opts o = {0, NULL, 0, ""};
    return mmrec__cache_gather_tape(cache, tape, field, ids, n, &o, false, out, NULL, __func__);
}

mmrec_status mmrec_cache_gather_ex(const mmrec_cache *cache, mmrec_tape *tape, const char *field,
                                   const int64_t *ids, size_t n, uint32_t flags,
                                   mmrec_tensor **out, mmrec_tensor **presence_out) {
    mmrec__cache_opts o = {flags, NULL, 0, ""};
    return mmrec__cache_gather_tape(cache, tape, field, ids, n, &o, false, out, presence_out,
                                    __func__);
}

mmrec_status mmrec_cache_gather_into(const mmrec_cache *cache, const char *field,
                                     const int64_t *ids, size_t n, uint32_t flags, float *dst,
                                     float *presence) {
    MMREC_CHECK_NULL(dst);
    mmrec__cache_opts o = {flags, NULL, 0, ""};
    return mmrec__cache_gather_mem(cache, field, ids, n, &o, dst, presence, __func__);
}

/* ---- layered gathers ---- */

static const mmrec_cache_gather_config mmrec__cache_gather_defaults = {
    .struct_size = sizeof(mmrec_cache_gather_config),
    .flags = 0,
    .keep = NULL,
    .n_keep = 0,
};

mmrec_status mmrec_cache_gather_config_init_sized(mmrec_cache_gather_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_cache_gather_config, cfg, size,
                              mmrec__cache_gather_defaults);
}

/* The options of a merged gather config. */
static mmrec__cache_opts mmrec__cache_layer_opts(const mmrec_cache_gather_config *c) {
    return (mmrec__cache_opts){c->flags, c->keep, c->n_keep, "cfg->"};
}

mmrec_status mmrec_cache_gather_layers(const mmrec_cache *cache, mmrec_tape *tape,
                                       const char *field, const int64_t *ids, size_t n,
                                       const mmrec_cache_gather_config *cfg, mmrec_tensor **out,
                                       mmrec_tensor **presence_out) {
    mmrec_cache_gather_config c = mmrec__cache_gather_defaults;
    if (cfg != NULL) MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_cache_gather_config, &c, cfg));
    mmrec__cache_opts o = mmrec__cache_layer_opts(&c);
    return mmrec__cache_gather_tape(cache, tape, field, ids, n, &o, true, out, presence_out,
                                    __func__);
}

mmrec_status mmrec_cache_gather_layers_into(const mmrec_cache *cache, const char *field,
                                            const int64_t *ids, size_t n,
                                            const mmrec_cache_gather_config *cfg, float *dst,
                                            float *presence) {
    MMREC_CHECK_NULL(dst);
    mmrec_cache_gather_config c = mmrec__cache_gather_defaults;
    if (cfg != NULL) MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_cache_gather_config, &c, cfg));
    mmrec__cache_opts o = mmrec__cache_layer_opts(&c);
    return mmrec__cache_gather_mem(cache, field, ids, n, &o, dst, presence, __func__);
}
