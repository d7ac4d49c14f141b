/* Gathering cached records by item id into a tape tensor or caller memory.
 * Ids are found by binary search in the sorted id table, or directly when
 * the table is exactly 0 .. n_items - 1. Ids are checked before anything is
 * written, so a failed gather leaves its outputs untouched; a steady-state
 * gather allocates nothing (the output comes from the tape's arena). */
#include "cache_internal.h"
#include "../autograd/autograd_internal.h"

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

/* Copies the rows of `ids` into dst ([n, dim]); a missing id gives a zero
 * row. presence (may be NULL) gets 1 / 0. */
static void mmrec__cache_fill(const mmrec__cache_version *v, const mmrec__cache_field *f,
                              const int64_t *ids, size_t n, float *dst, float *presence) {
    for (size_t i = 0; i < n; i++, dst += f->dim) {
        size_t row;
        bool found = mmrec__cache_lookup(v, ids[i], &row);
        if (found) mmrec__cache_widen(f->dtype, f->data + row * f->row_bytes, dst, f->dim);
        else memset(dst, 0, f->dim * sizeof *dst);
        if (presence) presence[i] = found ? 1.0f : 0.0f;
    }
}

/* Validates the arguments every gather shares and takes a reference to the
 * current version and the field; the caller releases the version. */
static mmrec_status mmrec__cache_gather_begin(const mmrec_cache *cache, const char *field,
                                              const int64_t *ids, size_t n, uint32_t flags,
                                              mmrec__cache_version **v_out,
                                              const mmrec__cache_field **f_out,
                                              const char *func) {
    MMREC__CACHE_CHECK_NULL(field);
    MMREC__CACHE_CHECK_NULL(ids);
    MMREC__CACHE_FAIL_IF(flags & ~(uint32_t)MMREC_CACHE_MISSING_ZERO, MMREC_EINVAL,
                         "flags 0x%x has unknown bits (only MMREC_CACHE_MISSING_ZERO)", flags);
    mmrec__cache_version *v;
    MMREC_FORWARD_IF(mmrec__cache_acquire(cache, &v, func));
    const mmrec__cache_field *f = mmrec__cache_find_field(v, field);
    size_t row;
    mmrec_status s = MMREC_OK;
    if (f == NULL) {
        s = mmrec__set_error(MMREC_ENOTFOUND, func, "the cache has no field '%s'", field);
    } else if (!(flags & MMREC_CACHE_MISSING_ZERO)) {
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

static mmrec_status mmrec__cache_gather_tape(const mmrec_cache *cache, mmrec_tape *tape,
                                             const char *field, const int64_t *ids, size_t n,
                                             uint32_t flags, mmrec_tensor **out,
                                             mmrec_tensor **presence_out, const char *func) {
    MMREC_FORWARD_IF(mmrec__tape_check(func, tape));
    MMREC__CACHE_CHECK_NULL(out);
    MMREC__CACHE_FAIL_IF(n < 1 || n > (size_t)INT64_MAX, MMREC_EINVAL,
                         "n is %zu, must be >= 1", n);
    mmrec__cache_version *v;
    const mmrec__cache_field *f;
    MMREC_FORWARD_IF(mmrec__cache_gather_begin(cache, field, ids, n, flags, &v, &f, func));
    int64_t shape[2] = {(int64_t)n, (int64_t)f->dim};
    size_t numel;
    mmrec_status s = mmrec__shape_check(func, "out", 2, shape, &numel);
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_tensor *y = NULL, *p = NULL;
    if (s == MMREC_OK) {
        y = mmrec__tape_new(tape, 2, shape, false);
        if (y && presence_out) p = mmrec__tape_new(tape, 1, shape, false);
        if (y == NULL || (presence_out && p == NULL)) s = mmrec__tape_oom(tape, mark, func);
    }
    if (s == MMREC_OK) mmrec__cache_fill(v, f, ids, n, y->data, p ? p->data : NULL);
    mmrec__cache_release(cache, v);
    if (s != MMREC_OK) return s;
    *out = y;
    if (presence_out) *presence_out = p;
    return MMREC_OK;
}

mmrec_status mmrec_cache_gather(const mmrec_cache *cache, mmrec_tape *tape, const char *field,
                                const int64_t *ids, size_t n, mmrec_tensor **out) {
    return mmrec__cache_gather_tape(cache, tape, field, ids, n, 0, out, NULL, __func__);
}

mmrec_status mmrec_cache_gather_ex(const mmrec_cache *cache, mmrec_tape *tape, const char *field,
                                   const int64_t *ids, size_t n, uint32_t flags,
                                   mmrec_tensor **out, mmrec_tensor **presence_out) {
    return mmrec__cache_gather_tape(cache, tape, field, ids, n, flags, out, presence_out,
                                    __func__);
}

mmrec_status mmrec_cache_gather_into(const mmrec_cache *cache, const char *field,
                                     const int64_t *ids, size_t n, uint32_t flags, float *dst,
                                     float *presence) {
    MMREC_CHECK_NULL(dst);
    mmrec__cache_version *v;
    const mmrec__cache_field *f;
    MMREC_FORWARD_IF(mmrec__cache_gather_begin(cache, field, ids, n, flags, &v, &f, __func__));
    size_t numel;
    bool fits = mmrec__mul_size(n, f->dim, &numel) && numel <= SIZE_MAX / sizeof(float);
    if (fits) mmrec__cache_fill(v, f, ids, n, dst, presence);
    mmrec__cache_release(cache, v);
    MMREC_FAIL_IF(!fits, MMREC_EINVAL, "n is %zu: n * dim overflows", n);
    return MMREC_OK;
}
