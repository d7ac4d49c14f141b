/* The index handle: building a version from a matrix or a cache field,
 * the handle's current version, refresh, info, open and save.
 *
 * Every search takes a reference to the current version under the
 * handle's lock, works on that version without the lock, and drops the
 * reference at the end; the last reference frees the version. A refresh
 * takes a reference to the source's version, then swaps the pointer under
 * the lock: a search sees exactly one version, and the lock is held only
 * for a pointer read and a counter update. The counts are atomic because
 * a version may be shared by several handles, each with its own lock. */
#include "index_internal.h"
#include "../cache/cache_internal.h"
#include "../io/file_io.h"
#include "../io/io_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MMREC__INDEX_HANDLE_MAGIC 0x6d6d4958u /* "mmIX" */

struct mmrec_index {
    uint32_t magic;
    /* The lock and the reference counts are bookkeeping, not part of the
     * index's value: const searches update them. */
    pthread_mutex_t lock;
    mmrec__index_version *current;
};

static const mmrec_index_config mmrec__index_defaults = {
    .struct_size = sizeof(mmrec_index_config),
    .metric = MMREC_INDEX_INNER_PRODUCT,
    .storage = MMREC_INDEX_F32,
    .vectors_per_item = 1,
    .query_combine = MMREC_INDEX_COMBINE_SUM,
};

static const mmrec_index_filter mmrec__index_filter_defaults = {
    .struct_size = sizeof(mmrec_index_filter),
};

mmrec_status mmrec_index_config_init_sized(mmrec_index_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_index_config, cfg, size, mmrec__index_defaults);
}

mmrec_status mmrec_index_filter_init_sized(mmrec_index_filter *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_index_filter, cfg, size, mmrec__index_filter_defaults);
}

/* ---- versions ---- */

mmrec__index_version *mmrec__index_version_new(size_t n_items, size_t dim, size_t vecs,
                                               mmrec_index_metric metric,
                                               mmrec_index_storage storage) {
    size_t elems, bytes, ids_bytes = (size_t)mmrec__align_up(n_items * 8, MMREC__INDEX_ALIGN);
    if (!mmrec__mul_size(n_items, vecs, &elems) || !mmrec__mul_size(elems, dim, &elems) ||
        !mmrec__mul_size(elems, mmrec__index_elem_size(storage), &bytes) ||
        bytes > SIZE_MAX - ids_bytes)
        return NULL;
    mmrec__index_version *v = mmrec__calloc(1, sizeof *v);
    unsigned char *mem = mmrec__alloc(ids_bytes + (bytes ? bytes : 1));
    if (v == NULL || mem == NULL) {
        mmrec__free(mem);
        mmrec__free(v);
        return NULL;
    }
    atomic_init(&v->refs, 1);
    v->metric = metric;
    v->storage = storage;
    v->n_items = n_items;
    v->dim = dim;
    v->vecs = vecs;
    v->owned = mem;
    v->ids = (const int64_t *)(void *)mem;
    v->vectors = mem + ids_bytes; /* 64-byte aligned: mmrec__alloc aligns to 64 */
    return v;
}

void mmrec__index_version_release(mmrec__index_version *v) {
    if (v == NULL) return;
    if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1) return;
    if (v->map) mmrec__io_unmap(v->map, v->map_size);
    mmrec__free(v->owned);
    mmrec__free(v);
}

void mmrec__index_normalize(float *x, size_t n, size_t dim) {
    for (size_t i = 0; i < n; i++) {
        float *r = x + i * dim;
        double ss = 0.0;
        for (size_t k = 0; k < dim; k++) ss += (double)r[k] * (double)r[k];
        if (ss == 0.0) continue;
        float inv = (float)(1.0 / sqrt(ss));
        for (size_t k = 0; k < dim; k++) r[k] *= inv;
    }
}

/* ---- the handle ---- */

static mmrec_status mmrec__index_check(const mmrec_index *index, const char *name,
                                       const char *func) {
    if (index == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument '%s' is NULL", name);
    if (index->magic != MMREC__INDEX_HANDLE_MAGIC)
        return mmrec__set_error(MMREC_EINVAL, func, "argument '%s' is not an index", name);
    return MMREC_OK;
}

mmrec_status mmrec__index_acquire(const mmrec_index *index, mmrec__index_version **out,
                                  const char *func) {
    MMREC_FORWARD_IF(mmrec__index_check(index, "index", func));
    mmrec_index *x = (mmrec_index *)index;
    pthread_mutex_lock(&x->lock);
    mmrec__index_version *v = x->current;
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&x->lock);
    *out = v;
    return MMREC_OK;
}

/* A new handle serving `v` (its reference passes to the handle; on failure
 * it is released). */
static mmrec_status mmrec__index_wrap(mmrec__index_version *v, mmrec_index **out,
                                      const char *func) {
    mmrec_index *x = mmrec__calloc(1, sizeof *x);
    if (x == NULL || pthread_mutex_init(&x->lock, NULL) != 0) {
        mmrec__free(x);
        mmrec__index_version_release(v);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    }
    x->current = v;
    x->magic = MMREC__INDEX_HANDLE_MAGIC;
    *out = x;
    return MMREC_OK;
}

void mmrec_index_destroy(mmrec_index *index) {
    if (index == NULL || index->magic != MMREC__INDEX_HANDLE_MAGIC) return;
    index->magic = 0;
    mmrec__index_version_release(index->current);
    pthread_mutex_destroy(&index->lock);
    mmrec__free(index);
}

mmrec_status mmrec_index_refresh(mmrec_index *index, const mmrec_index *source) {
    MMREC_FORWARD_IF(mmrec__index_check(index, "index", __func__));
    MMREC_FORWARD_IF(mmrec__index_check(source, "source", __func__));
    mmrec__index_version *fresh, *old;
    MMREC_FORWARD_IF(mmrec__index_acquire(source, &fresh, __func__));
    MMREC_FORWARD_IF(mmrec__index_acquire(index, &old, __func__));
    mmrec_status s = MMREC_OK;
    if (fresh->dim != old->dim || fresh->vecs != old->vecs)
        s = mmrec__set_error(MMREC_ESHAPE, __func__,
                             "source has %zu vectors of dim %zu per item, index %zu of dim %zu",
                             fresh->vecs, fresh->dim, old->vecs, old->dim);
    else if (fresh->metric != old->metric)
        s = mmrec__set_error(MMREC_EINVAL, __func__,
                             "source's metric is %d, the index's is %d", (int)fresh->metric,
                             (int)old->metric);
    else if (fresh->combine != old->combine)
        s = mmrec__set_error(MMREC_EINVAL, __func__,
                             "source's query combination is %d, the index's is %d",
                             (int)fresh->combine, (int)old->combine);
    mmrec__index_version_release(old);
    if (s != MMREC_OK) {
        mmrec__index_version_release(fresh);
        return s;
    }
    pthread_mutex_lock(&index->lock);
    old = index->current;
    index->current = fresh; /* the reference taken above passes to the handle */
    pthread_mutex_unlock(&index->lock);
    mmrec__index_version_release(old); /* the handle's own reference */
    return MMREC_OK;
}

mmrec_status mmrec_index_info(const mmrec_index *index, int64_t *num_items_out,
                              int64_t *dim_out, int64_t *vectors_out,
                              mmrec_index_metric *metric_out,
                              mmrec_index_storage *storage_out) {
    mmrec__index_version *v;
    MMREC_FORWARD_IF(mmrec__index_acquire(index, &v, __func__));
    if (num_items_out) *num_items_out = (int64_t)v->n_items;
    if (dim_out) *dim_out = (int64_t)v->dim;
    if (vectors_out) *vectors_out = (int64_t)v->vecs;
    if (metric_out) *metric_out = v->metric;
    if (storage_out) *storage_out = v->storage;
    mmrec__index_version_release(v);
    return MMREC_OK;
}

mmrec_status mmrec_index_open(const char *path, mmrec_index **out) {
    MMREC_CHECK_NULL(path);
    MMREC_CHECK_NULL(out);
    mmrec__index_version *v;
    MMREC_FORWARD_IF(mmrec__index_version_open(path, &v, __func__));
    return mmrec__index_wrap(v, out, __func__);
}

mmrec_status mmrec_index_save(const mmrec_index *index, const char *path) {
    MMREC_CHECK_NULL(path);
    mmrec__index_version *v;
    MMREC_FORWARD_IF(mmrec__index_acquire(index, &v, __func__));
    mmrec_status s = mmrec__index_version_save(v, path, __func__);
    mmrec__index_version_release(v);
    return s;
}

/* ---- building ---- */

/* The float32 vectors of the item at sorted position `pos`, [vecs, dim]:
 * a pointer into the source, or `tmp` filled. */
typedef const float *(*mmrec__index_row_fn)(void *ctx, size_t pos, float *tmp);

static mmrec_status mmrec__index_check_config(mmrec_index_config *c,
                                              const mmrec_index_config *cfg, const char *func) {
    *c = mmrec__index_defaults;
    if (cfg) MMREC_FORWARD_IF(mmrec__config_merge(c, sizeof *c, MMREC__MIN_SIZE(mmrec_index_config),
                                                  cfg, func));
    if (c->metric != MMREC_INDEX_INNER_PRODUCT && c->metric != MMREC_INDEX_COSINE)
        return mmrec__set_error(MMREC_EINVAL, func, "cfg->metric is %d, expected 0 or 1",
                                (int)c->metric);
    if (c->storage != MMREC_INDEX_F32 && c->storage != MMREC_INDEX_F16 &&
        c->storage != MMREC_INDEX_BF16)
        return mmrec__set_error(MMREC_EINVAL, func, "cfg->storage is %d, expected 0, 1 or 2",
                                (int)c->storage);
    if (c->query_combine != MMREC_INDEX_COMBINE_SUM && c->query_combine != MMREC_INDEX_COMBINE_MAX)
        return mmrec__set_error(MMREC_EINVAL, func, "cfg->query_combine is %d, expected 0 or 1",
                                (int)c->query_combine);
    if (c->vectors_per_item < 1 || c->vectors_per_item > UINT32_MAX)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "cfg->vectors_per_item is %lld, expected 1 .. 2^32 - 1",
                                (long long)c->vectors_per_item);
    return MMREC_OK;
}

/* Builds a version of n items from sorted ids and a row source. `perm`
 * (may be NULL: identity) maps a sorted position to the caller's item
 * index, for messages; `what` names the source. */
static mmrec_status mmrec__index_build(size_t n, size_t dim, const mmrec_index_config *c,
                                       const int64_t *sorted_ids, const size_t *perm,
                                       mmrec__index_row_fn row, void *ctx, const char *what,
                                       mmrec__index_version **out, const char *func) {
    size_t vecs = (size_t)c->vectors_per_item, len;
    if (!mmrec__mul_size(vecs, dim, &len))
        return mmrec__set_error(MMREC_EINVAL, func, "items of %zu vectors of dim %zu are too large",
                                vecs, dim);
    mmrec__index_version *v = mmrec__index_version_new(n, dim, vecs, c->metric, c->storage);
    float *tmp = v ? mmrec__alloc(len * sizeof *tmp) : NULL;
    if (tmp == NULL) {
        mmrec__index_version_release(v);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory for an index of %zu items", n);
    }
    v->combine = c->query_combine;
    memcpy((int64_t *)v->ids, sorted_ids, n * sizeof *sorted_ids);
    size_t elem = mmrec__index_elem_size(c->storage);
    mmrec_status s = MMREC_OK;
    for (size_t pos = 0; pos < n && s == MMREC_OK; pos++) {
        const float *src = row(ctx, pos, tmp);
        size_t item = perm ? perm[pos] : pos;
        for (size_t e = 0; e < len; e++)
            if (!isfinite(src[e])) {
                s = mmrec__set_error(MMREC_ENUMERIC, func,
                                     "%s: item %zu (id %lld), vector %zu, element %zu is %g",
                                     what, item, (long long)sorted_ids[pos], e / dim, e % dim,
                                     (double)src[e]);
                break;
            }
        if (s != MMREC_OK) break;
        if (c->metric == MMREC_INDEX_COSINE) {
            if (src != tmp) memcpy(tmp, src, len * sizeof *tmp);
            mmrec__index_normalize(tmp, vecs, dim);
            src = tmp;
        }
        unsigned char *dst = (unsigned char *)v->vectors + pos * len * elem;
        if (c->storage == MMREC_INDEX_F32) {
            memcpy(dst, src, len * sizeof *src);
            continue;
        }
        size_t bad = mmrec__cache_encode((mmrec_cache_dtype)c->storage, src, dst, len);
        if (bad < len)
            s = mmrec__set_error(MMREC_ERANGE, func,
                                 "%s: item %zu (id %lld), vector %zu, element %zu is %g, beyond "
                                 "the range of float16 storage",
                                 what, item, (long long)sorted_ids[pos], bad / dim, bad % dim,
                                 (double)src[bad]);
    }
    mmrec__free(tmp);
    if (s != MMREC_OK) {
        mmrec__index_version_release(v);
        return s;
    }
    *out = v;
    return MMREC_OK;
}

typedef struct mmrec__index_pair {
    int64_t id;
    size_t item;
} mmrec__index_pair;

static int mmrec__index_pair_cmp(const void *a, const void *b) {
    const mmrec__index_pair *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

typedef struct mmrec__index_matrix {
    const float *vectors;
    size_t len;        /* floats per item */
    const size_t *perm; /* NULL: identity */
} mmrec__index_matrix;

static const float *mmrec__index_matrix_row(void *ctx, size_t pos, float *tmp) {
    const mmrec__index_matrix *m = ctx;
    (void)tmp;
    return m->vectors + (m->perm ? m->perm[pos] : pos) * m->len;
}

mmrec_status mmrec_index_create(const float *vectors, const int64_t *ids, size_t num_items,
                                int64_t dim, const mmrec_index_config *cfg, mmrec_index **out) {
    MMREC_CHECK_NULL(vectors);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(num_items < 1 || num_items > MMREC__INDEX_MAX_ITEMS, MMREC_EINVAL,
                  "num_items is %zu, expected 1 .. 2^31 - 1", num_items);
    MMREC_FAIL_IF(dim < 1, MMREC_EINVAL, "dim is %lld, expected >= 1", (long long)dim);
    mmrec_index_config c;
    MMREC_FORWARD_IF(mmrec__index_check_config(&c, cfg, __func__));
    size_t len;
    MMREC_FAIL_IF(!mmrec__mul_size((size_t)c.vectors_per_item, (size_t)dim, &len) ||
                      len > SIZE_MAX / sizeof(float) / num_items,
                  MMREC_EINVAL, "%zu items of %lld vectors of dim %lld are too large", num_items,
                  (long long)c.vectors_per_item, (long long)dim);
    int64_t *sorted = mmrec__alloc(num_items * sizeof *sorted);
    size_t *perm = NULL;
    mmrec__index_pair *pairs = NULL;
    mmrec_status s = MMREC_OK;
    if (sorted == NULL) MMREC_FAIL(MMREC_ENOMEM, "out of memory");
    bool increasing = true;
    for (size_t i = 0; i < num_items; i++) {
        sorted[i] = ids ? ids[i] : (int64_t)i;
        if (sorted[i] < 0) {
            s = mmrec__set_error(MMREC_EINVAL, __func__, "ids[%zu] is %lld, expected >= 0", i,
                                 (long long)sorted[i]);
            goto done;
        }
        if (i > 0 && sorted[i] <= sorted[i - 1]) increasing = false;
    }
    if (!increasing) {
        pairs = mmrec__alloc(num_items * sizeof *pairs);
        perm = mmrec__alloc(num_items * sizeof *perm);
        if (pairs == NULL || perm == NULL) {
            s = mmrec__set_error(MMREC_ENOMEM, __func__, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < num_items; i++) pairs[i] = (mmrec__index_pair){ids[i], i};
        qsort(pairs, num_items, sizeof *pairs, mmrec__index_pair_cmp);
        for (size_t i = 0; i < num_items; i++) {
            if (i > 0 && pairs[i].id == pairs[i - 1].id) {
                size_t a = pairs[i - 1].item < pairs[i].item ? pairs[i - 1].item : pairs[i].item;
                size_t b = pairs[i - 1].item ^ pairs[i].item ^ a;
                s = mmrec__set_error(MMREC_EINVAL, __func__,
                                     "ids[%zu] repeats ids[%zu] (%lld): ids must differ", b, a,
                                     (long long)pairs[i].id);
                goto done;
            }
            sorted[i] = pairs[i].id;
            perm[i] = pairs[i].item;
        }
    }
    mmrec__index_matrix m = {vectors, len, perm};
    mmrec__index_version *v;
    s = mmrec__index_build(num_items, (size_t)dim, &c, sorted, perm, mmrec__index_matrix_row, &m,
                           "vectors", &v, __func__);
    if (s == MMREC_OK) s = mmrec__index_wrap(v, out, __func__);
done:
    mmrec__free(pairs);
    mmrec__free(perm);
    mmrec__free(sorted);
    return s;
}

typedef struct mmrec__index_field {
    const mmrec__cache_field *field;
} mmrec__index_field;

static const float *mmrec__index_field_row(void *ctx, size_t pos, float *tmp) {
    const mmrec__cache_field *f = ((const mmrec__index_field *)ctx)->field;
    mmrec__cache_widen(f->dtype, f->data + pos * f->row_bytes, tmp, f->dim);
    return tmp;
}

mmrec_status mmrec_index_create_from_cache(const mmrec_cache *cache, const char *field,
                                           const mmrec_index_config *cfg, mmrec_index **out) {
    MMREC_CHECK_NULL(field);
    MMREC_CHECK_NULL(out);
    mmrec_index_config c;
    mmrec__cache_version *cv;
    MMREC_FORWARD_IF(mmrec__cache_acquire(cache, &cv, __func__));
    mmrec_status s = mmrec__index_check_config(&c, cfg, __func__);
    const mmrec__cache_field *f = s == MMREC_OK ? mmrec__cache_find_field(cv, field) : NULL;
    if (s != MMREC_OK) {
    } else if (f == NULL) {
        s = mmrec__set_error(MMREC_ENOTFOUND, __func__, "the cache has no field '%s'", field);
    } else if (f->dim % (size_t)c.vectors_per_item != 0) {
        s = mmrec__set_error(MMREC_ESHAPE, __func__,
                             "field '%s' has records of %zu values, not a multiple of "
                             "cfg->vectors_per_item %lld",
                             field, f->dim, (long long)c.vectors_per_item);
    } else if (cv->n_items > MMREC__INDEX_MAX_ITEMS) {
        s = mmrec__set_error(MMREC_EINVAL, __func__, "cache has %zu items, at most 2^31 - 1",
                             cv->n_items);
    } else {
        mmrec__index_field ctx = {f};
        mmrec__index_version *v;
        s = mmrec__index_build(cv->n_items, f->dim / (size_t)c.vectors_per_item, &c, cv->ids,
                               NULL, mmrec__index_field_row, &ctx, field, &v, __func__);
        if (s == MMREC_OK) s = mmrec__index_wrap(v, out, __func__);
    }
    mmrec__cache_release(cache, cv);
    return s;
}
