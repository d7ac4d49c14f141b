/* The index file (layout in index_internal.h): the crash-safe writer and
 * the validating open. The open checks every size and checksum before a
 * search reads anything, so a search never goes past the end of the
 * mapping. */
#include "index_internal.h"
#include "../io/file_io.h"
#include "../io/io_internal.h"

#include <string.h>

const char mmrec__index_magic[8] = {'M', 'M', 'R', 'I', 'N', 'D', 'E', 'X'};

#define MMREC__BAD(...) mmrec__set_error(MMREC_EFORMAT, func, __VA_ARGS__)

static size_t mmrec__index_vectors_offset(size_t n_items) {
    return (size_t)mmrec__align_up(MMREC__INDEX_HEADER_SIZE + 8 * (uint64_t)n_items,
                                   MMREC__INDEX_ALIGN);
}

mmrec_status mmrec__index_version_save(const mmrec__index_version *v, const char *path,
                                       const char *func) {
    size_t ids_bytes = v->n_items * 8, off = mmrec__index_vectors_offset(v->n_items);
    size_t vec_bytes = v->n_items * v->vecs * v->dim * mmrec__index_elem_size(v->storage);
    unsigned char header[MMREC__INDEX_HEADER_SIZE], pad[MMREC__INDEX_ALIGN];
    memset(header, 0, sizeof header);
    memset(pad, 0, sizeof pad);
    memcpy(header, mmrec__index_magic, 8);
    mmrec__le_put32(header + 8, MMREC__INDEX_VERSION);
    mmrec__le_put32(header + 12, (uint32_t)v->metric);
    mmrec__le_put64(header + 16, v->n_items);
    mmrec__le_put64(header + 24, v->dim);
    mmrec__le_put32(header + 32, (uint32_t)v->vecs);
    mmrec__le_put32(header + 36, (uint32_t)v->storage);
    mmrec__le_put64(header + 40, (uint64_t)off + vec_bytes);
    mmrec__le_put32(header + 48, mmrec__crc32c(0, v->ids, ids_bytes));
    mmrec__le_put32(header + 52, mmrec__crc32c(0, v->vectors, vec_bytes));
    mmrec__le_put32(header + 56, (uint32_t)v->combine);
    mmrec__le_put32(header + 60, mmrec__crc32c(0, header, 60));
    mmrec__atomic_file f;
    MMREC_FORWARD_IF(mmrec__atomic_open(&f, path, func));
    mmrec_status s = mmrec__atomic_write(&f, header, sizeof header, func);
    if (s == MMREC_OK) s = mmrec__atomic_write(&f, v->ids, ids_bytes, func);
    if (s == MMREC_OK)
        s = mmrec__atomic_write(&f, pad, off - MMREC__INDEX_HEADER_SIZE - ids_bytes, func);
    if (s == MMREC_OK) s = mmrec__atomic_write(&f, v->vectors, vec_bytes, func);
    if (s != MMREC_OK) {
        mmrec__atomic_abort(&f);
        return s;
    }
    return mmrec__atomic_commit(&f, func);
}

static mmrec_status mmrec__index_validate(mmrec__index_version *v, const char *path,
                                          const char *func) {
    const unsigned char *h = v->map;
    MMREC_FORWARD_IF(mmrec__io_check_prologue(h, v->map_size, MMREC__INDEX_HEADER_SIZE,
                                              mmrec__index_magic, MMREC__INDEX_VERSION, "index",
                                              path, func));
    uint32_t combine = mmrec__le_get32(h + 56);
    if (combine > MMREC_INDEX_COMBINE_MAX)
        return MMREC__BAD("'%s': unknown query combination %u", path, combine);
    uint32_t metric = mmrec__le_get32(h + 12), vecs = mmrec__le_get32(h + 32);
    uint32_t storage = mmrec__le_get32(h + 36);
    uint64_t n = mmrec__le_get64(h + 16), dim = mmrec__le_get64(h + 24);
    uint64_t file_size = mmrec__le_get64(h + 40);
    if (metric > MMREC_INDEX_COSINE)
        return MMREC__BAD("'%s': unknown metric %u", path, metric);
    if (storage > MMREC_INDEX_BF16)
        return MMREC__BAD("'%s': unknown storage type %u", path, storage);
    if (file_size != v->map_size)
        return MMREC__BAD("'%s' is %zu bytes, its header says %llu (truncated or extended)",
                          path, v->map_size, (unsigned long long)file_size);
    size_t elems = 0, bytes = 0;
    if (n == 0 || n > MMREC__INDEX_MAX_ITEMS || dim == 0 || vecs == 0 ||
        n > (v->map_size - MMREC__INDEX_HEADER_SIZE) / 8 ||
        !mmrec__mul_size((size_t)n, vecs, &elems) || !mmrec__mul_size(elems, (size_t)dim, &elems) ||
        !mmrec__mul_size(elems, mmrec__index_elem_size((mmrec_index_storage)storage), &bytes) ||
        mmrec__index_vectors_offset((size_t)n) > v->map_size ||
        bytes != v->map_size - mmrec__index_vectors_offset((size_t)n))
        return MMREC__BAD("'%s': %llu items of %u vectors of dim %llu do not fit its %zu bytes",
                          path, (unsigned long long)n, vecs, (unsigned long long)dim,
                          v->map_size);
    v->n_items = (size_t)n;
    v->dim = (size_t)dim;
    v->vecs = vecs;
    v->metric = (mmrec_index_metric)metric;
    v->combine = (mmrec_index_combine)combine;
    v->storage = (mmrec_index_storage)storage;
    const unsigned char *table = h + MMREC__INDEX_HEADER_SIZE;
    if (mmrec__crc_mismatch(table, v->n_items * 8, mmrec__le_get32(h + 48)))
        return MMREC__BAD("'%s': id table checksum mismatch (corrupt file)", path);
    size_t off = mmrec__index_vectors_offset(v->n_items);
    for (size_t p = MMREC__INDEX_HEADER_SIZE + v->n_items * 8; p < off; p++)
        if (h[p] != 0) return MMREC__BAD("'%s': non-zero padding after the id table", path);
    if (mmrec__crc_mismatch(h + off, bytes, mmrec__le_get32(h + 52)))
        return MMREC__BAD("'%s': vector checksum mismatch (corrupt file)", path);
    v->ids = (const int64_t *)(const void *)table; /* 64-byte aligned in the mapping */
    v->vectors = h + off;
    if (v->ids[0] < 0)
        return MMREC__BAD("'%s': id table starts with the negative id %lld", path,
                          (long long)v->ids[0]);
    for (size_t k = 1; k < v->n_items; k++)
        if (v->ids[k] <= v->ids[k - 1])
            return MMREC__BAD("'%s': id table is not sorted and unique at position %zu "
                              "(%lld after %lld)",
                              path, k, (long long)v->ids[k], (long long)v->ids[k - 1]);
    return MMREC_OK;
}

mmrec_status mmrec__index_version_open(const char *path, mmrec__index_version **out,
                                       const char *func) {
    const unsigned char *base;
    size_t size;
    MMREC_FORWARD_IF(mmrec__io_map_read(path, &base, &size, func));
    mmrec__index_version *v = mmrec__calloc(1, sizeof *v);
    if (v == NULL) {
        mmrec__io_unmap(base, size);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    }
    atomic_init(&v->refs, 1);
    v->map = base;
    v->map_size = size;
    mmrec_status s = mmrec__index_validate(v, path, func);
    if (s != MMREC_OK) {
        mmrec__index_version_release(v);
        return s;
    }
    *out = v;
    return MMREC_OK;
}
