/* The open cache: a handle on the current version of a cache file, swapped
 * by refresh while other threads read it.
 *
 * Every read takes a reference to the current version under the lock, works
 * on that version without the lock, and drops the reference at the end; the
 * last reference unmaps the version. A refresh validates the new file first,
 * then swaps the pointer under the lock: a reader sees exactly one version,
 * and the lock is held only for a pointer read and a counter update. */
#include "cache_internal.h"

#include <pthread.h>

#define MMREC__CACHE_MAGIC 0x6d6d4643u /* "mmFC" */

struct mmrec_cache {
    uint32_t magic;
    char *path; /* as given to open */
    /* The lock and the reference counts are bookkeeping, not part of the
     * cache's value: const readers update them. */
    pthread_mutex_t lock;
    mmrec__cache_version *current;
};

static mmrec_status mmrec__cache_check(const mmrec_cache *cache, const char *func) {
    MMREC__CACHE_CHECK_NULL(cache);
    MMREC__CACHE_FAIL_IF(cache->magic != MMREC__CACHE_MAGIC, MMREC_EINVAL,
                         "argument 'cache' is not an open cache");
    return MMREC_OK;
}

mmrec_status mmrec__cache_acquire(const mmrec_cache *cache, mmrec__cache_version **out,
                                  const char *func) {
    MMREC_FORWARD_IF(mmrec__cache_check(cache, func));
    mmrec_cache *c = (mmrec_cache *)cache;
    pthread_mutex_lock(&c->lock);
    mmrec__cache_version *v = c->current;
    v->refs++;
    pthread_mutex_unlock(&c->lock);
    *out = v;
    return MMREC_OK;
}

void mmrec__cache_release(const mmrec_cache *cache, mmrec__cache_version *version) {
    mmrec_cache *c = (mmrec_cache *)cache;
    pthread_mutex_lock(&c->lock);
    size_t left = --version->refs;
    pthread_mutex_unlock(&c->lock);
    if (left == 0) mmrec__cache_version_free(version);
}

mmrec_status mmrec_cache_open(const char *path, mmrec_cache **out) {
    MMREC_CHECK_NULL(path);
    MMREC_CHECK_NULL(out);
    mmrec_cache *c = mmrec__calloc(1, sizeof *c);
    char *copy = mmrec__strdup(path);
    if (c == NULL || copy == NULL || pthread_mutex_init(&c->lock, NULL) != 0) {
        mmrec__free(copy);
        mmrec__free(c);
        MMREC_FAIL(MMREC_ENOMEM, "out of memory");
    }
    mmrec_status s = mmrec__cache_version_open(path, &c->current, __func__);
    if (s != MMREC_OK) {
        pthread_mutex_destroy(&c->lock);
        mmrec__free(copy);
        mmrec__free(c);
        return s;
    }
    c->path = copy;
    c->magic = MMREC__CACHE_MAGIC;
    *out = c;
    return MMREC_OK;
}

void mmrec_cache_close(mmrec_cache *cache) {
    if (cache == NULL || cache->magic != MMREC__CACHE_MAGIC) return;
    cache->magic = 0;
    mmrec__cache_release(cache, cache->current);
    pthread_mutex_destroy(&cache->lock);
    mmrec__free(cache->path);
    mmrec__free(cache);
}

mmrec_status mmrec_cache_refresh(mmrec_cache *cache, const char *path) {
    MMREC_FORWARD_IF(mmrec__cache_check(cache, __func__));
    mmrec__cache_version *fresh;
    MMREC_FORWARD_IF(mmrec__cache_version_open(path ? path : cache->path, &fresh, __func__));
    pthread_mutex_lock(&cache->lock);
    mmrec__cache_version *old = cache->current;
    cache->current = fresh;
    pthread_mutex_unlock(&cache->lock);
    mmrec__cache_release(cache, old); /* the cache's own reference */
    return MMREC_OK;
}

mmrec_status mmrec_cache_num_items(const mmrec_cache *cache, int64_t *out) {
    mmrec__cache_version *v;
    MMREC_CHECK_NULL(out);
    MMREC_FORWARD_IF(mmrec__cache_acquire(cache, &v, __func__));
    *out = (int64_t)v->n_items;
    mmrec__cache_release(cache, v);
    return MMREC_OK;
}

mmrec_status mmrec_cache_num_fields(const mmrec_cache *cache, int *out) {
    mmrec__cache_version *v;
    MMREC_CHECK_NULL(out);
    MMREC_FORWARD_IF(mmrec__cache_acquire(cache, &v, __func__));
    *out = v->n_fields;
    mmrec__cache_release(cache, v);
    return MMREC_OK;
}

mmrec_status mmrec_cache_field_info(const mmrec_cache *cache, int index, const char **name_out,
                                    int64_t *dim_out, mmrec_cache_dtype *dtype_out) {
    mmrec__cache_version *v;
    MMREC_FORWARD_IF(mmrec__cache_acquire(cache, &v, __func__));
    if (index < 0 || index >= v->n_fields) {
        int count = v->n_fields;
        mmrec__cache_release(cache, v);
        MMREC_FAIL(MMREC_ERANGE, "index %d is outside [0, %d) (the cache has %d fields)", index,
                   count, count);
    }
    const mmrec__cache_field *f = &v->fields[index];
    if (name_out) *name_out = f->name;
    if (dim_out) *dim_out = (int64_t)f->dim;
    if (dtype_out) *dtype_out = f->dtype;
    mmrec__cache_release(cache, v);
    return MMREC_OK;
}

mmrec_status mmrec_cache_field_dim(const mmrec_cache *cache, const char *field,
                                   int64_t *dim_out) {
    mmrec__cache_version *v;
    MMREC_CHECK_NULL(field);
    MMREC_CHECK_NULL(dim_out);
    MMREC_FORWARD_IF(mmrec__cache_acquire(cache, &v, __func__));
    const mmrec__cache_field *f = mmrec__cache_find_field(v, field);
    bool found = f != NULL;
    if (found) *dim_out = (int64_t)f->dim;
    mmrec__cache_release(cache, v);
    MMREC_FAIL_IF(!found, MMREC_ENOTFOUND, "the cache has no field '%s'", field);
    return MMREC_OK;
}

mmrec_status mmrec_cache_field_shape(const mmrec_cache *cache, const char *field,
                                     int64_t *layers_out, int64_t *width_out) {
    mmrec__cache_version *v;
    MMREC_CHECK_NULL(field);
    MMREC_CHECK_NULL(layers_out);
    MMREC_CHECK_NULL(width_out);
    MMREC_FORWARD_IF(mmrec__cache_acquire(cache, &v, __func__));
    const mmrec__cache_field *f = mmrec__cache_find_field(v, field);
    bool found = f != NULL;
    if (found) {
        *layers_out = (int64_t)f->layers;
        *width_out = (int64_t)f->width;
    }
    mmrec__cache_release(cache, v);
    MMREC_FAIL_IF(!found, MMREC_ENOTFOUND, "the cache has no field '%s'", field);
    return MMREC_OK;
}
