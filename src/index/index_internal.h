/* Internal serving index (index.h, DESIGN.md §3, §5): the versions a
 * handle serves, the file layout, and the search's helpers.
 *
 * A version holds the items sorted by id, so the order of rows is the
 * order of ids: the top-K heaps of the kernels (kernels_internal.h) keep
 * int32 row numbers and break ties by the lower row, which is the lower
 * id. It owns its memory (built in memory) or a read-only mapping (opened
 * from a file), and is immutable once published; handles share it with a
 * reference count (several handles after mmrec_index_refresh).
 *
 * File layout (format version 1), all integers little-endian:
 *   header (64 bytes)
 *     0  magic "MMRINDEX"               8 bytes
 *     8  u32 format version (1)
 *    12  u32 metric (0 inner product, 1 cosine)
 *    16  u64 item count (1 .. 2^31 - 1)
 *    24  u64 dim (>= 1)
 *    32  u32 vectors per item (>= 1)
 *    36  u32 storage (0 f32, 1 f16, 2 bf16)
 *    40  u64 file size (= vector offset + vector bytes)
 *    48  u32 CRC-32C of the id table
 *    52  u32 CRC-32C of the vectors
 *    56  u32 query combination (0 sum, 1 max)
 *    60  u32 CRC-32C of header bytes 0..59
 *   id table at offset 64: item count i64 ids, strictly increasing, >= 0
 *   vectors at the first 64-byte-aligned offset after the id table (zero
 *     padding between): item count x vectors per item x dim elements of
 *     the storage type, item k's vectors belonging to id k of the table. */
#ifndef MMREC_INDEX_INTERNAL_H
#define MMREC_INDEX_INTERNAL_H

#include "mmrec/index.h"
#include "../core/config_sizes.h"
#include "../core/core_internal.h"
#include "../kernels/kernels_internal.h"

#include <stdatomic.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the index reads ids and vectors in host order: little-endian hosts only"
#endif

MMREC__SIZED_STRUCT(mmrec_index_config, query_combine, 0.2, 32)
MMREC__SIZED_STRUCT(mmrec_index_filter, allow_bitmap_bits, 0.2, 56)

#define MMREC__INDEX_VERSION 1u
#define MMREC__INDEX_HEADER_SIZE 64u
#define MMREC__INDEX_ALIGN 64u
/* Row numbers are int32 in the heaps. */
#define MMREC__INDEX_MAX_ITEMS ((size_t)INT32_MAX)

extern const char mmrec__index_magic[8];

static inline size_t mmrec__index_elem_size(mmrec_index_storage storage) {
    return storage == MMREC_INDEX_F32 ? 4 : 2;
}

/* One immutable version of the items. */
typedef struct mmrec__index_version {
    atomic_size_t refs;
    mmrec_index_metric metric;
    mmrec_index_combine combine;
    mmrec_index_storage storage;
    size_t n_items, dim, vecs; /* vecs: vectors per item */
    const int64_t *ids;        /* n_items, increasing */
    const void *vectors;       /* [n_items, vecs, dim] of the storage type */
    void *owned;               /* memory of ids and vectors, or NULL */
    const unsigned char *map;  /* the mapped file, or NULL */
    size_t map_size;
} mmrec__index_version;

/* A version with room for n items of vecs x dim elements, one reference,
 * ids and vectors uninitialized (one allocation). NULL when out of memory. */
mmrec__index_version *mmrec__index_version_new(size_t n_items, size_t dim, size_t vecs,
                                               mmrec_index_metric metric,
                                               mmrec_index_storage storage);
/* Drops a reference; the last one frees the version (or unmaps its file). */
void mmrec__index_version_release(mmrec__index_version *v);

/* Maps `path` and validates all of it into a new version with one
 * reference. MMREC_EIO, MMREC_EFORMAT naming the file and what is wrong,
 * MMREC_ENOMEM. (format.c) */
mmrec_status mmrec__index_version_open(const char *path, mmrec__index_version **out,
                                       const char *func) MMREC__WUR;
/* Writes a version to `path` crash-safely. (format.c) */
mmrec_status mmrec__index_version_save(const mmrec__index_version *v, const char *path,
                                       const char *func) MMREC__WUR;

/* Validates the handle and takes a reference to its current version, so
 * the caller reads one version from start to end. Never allocates. */
mmrec_status mmrec__index_acquire(const mmrec_index *index, mmrec__index_version **out,
                                  const char *func) MMREC__WUR;

/* The row of `id` in the sorted ids, or -1. */
static inline int64_t mmrec__index_row_of(const mmrec__index_version *v, int64_t id) {
    size_t lo = 0, hi = v->n_items;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->ids[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < v->n_items && v->ids[lo] == id ? (int64_t)lo : -1;
}

/* L2-normalizes each of the n vectors of x ([n, dim]) in place; a zero
 * vector stays zero. The norm is summed in double, so the result does not
 * depend on the vector width. */
void mmrec__index_normalize(float *x, size_t n, size_t dim);

#endif
