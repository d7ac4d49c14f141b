/* The cache file format (layout in cache_internal.h): encoding the header
 * and index for the writer, and the validating parse of a mapped file for
 * the reader. The parse checks every size, offset and checksum before any
 * record is read, so readers never go past the end of the mapping. */
#include "cache_internal.h"
#include "../io/file_io.h"

#include <limits.h>

const char mmrec__cache_magic[8] = {'M', 'M', 'R', 'C', 'A', 'C', 'H', 'E'};

/* ---- encoding ---- */

size_t mmrec__cache_entry_size(size_t name_len) {
    return MMREC__CACHE_ENTRY_FIXED + (size_t)mmrec__align_up(name_len + 1, 8);
}

void mmrec__cache_put_entry(unsigned char *dst, const mmrec__cache_entry *entry) {
    size_t len = strlen(entry->name);
    mmrec__le_put32(dst, (uint32_t)len);
    dst[4] = (unsigned char)entry->dtype;
    mmrec__le_put64(dst + 8, entry->dim);
    mmrec__le_put64(dst + 16, entry->offset);
    mmrec__le_put64(dst + 24, entry->size);
    mmrec__le_put32(dst + 32, entry->crc);
    mmrec__le_put32(dst + 36, entry->layers > 1 ? entry->layers : 0);
    memcpy(dst + MMREC__CACHE_ENTRY_FIXED, entry->name, len);
}

void mmrec__cache_put_header(unsigned char *dst, uint32_t n_fields, uint64_t n_items,
                             uint64_t index_offset, uint64_t index_size, uint32_t ids_crc,
                             uint32_t index_crc) {
    memset(dst, 0, MMREC__CACHE_HEADER_SIZE);
    memcpy(dst, mmrec__cache_magic, 8);
    mmrec__le_put32(dst + 8, MMREC__CACHE_VERSION);
    mmrec__le_put32(dst + 12, n_fields);
    mmrec__le_put64(dst + 16, n_items);
    mmrec__le_put64(dst + 24, index_offset);
    mmrec__le_put64(dst + 32, index_size);
    mmrec__le_put64(dst + 40, index_offset + index_size);
    mmrec__le_put32(dst + 48, ids_crc);
    mmrec__le_put32(dst + 52, index_crc);
    mmrec__le_put32(dst + 60, mmrec__crc32c(0, dst, 60));
}

/* ---- validating parse ---- */

#define MMREC__BAD(...) mmrec__set_error(MMREC_EFORMAT, func, __VA_ARGS__)

/* Parses the index entry at `e` (`avail` bytes left in the index) into
 * field `i`. Its data must lie in [*data_from, index_offset). */
static mmrec_status mmrec__cache_parse_entry(mmrec__cache_version *v, const char *path,
                                             const unsigned char *e, size_t avail, int i,
                                             uint64_t *data_from, uint64_t index_offset,
                                             size_t *used, const char *func) {
    if (avail < mmrec__cache_entry_size(1))
        return MMREC__BAD("'%s': index entry %d runs past the index", path, i);
    uint32_t len = mmrec__le_get32(e);
    if (len == 0 || len > MMREC__CACHE_MAX_NAME)
        return MMREC__BAD("'%s': index entry %d has a name of %u bytes (1..%u)", path, i, len,
                          MMREC__CACHE_MAX_NAME);
    size_t rec = mmrec__cache_entry_size(len);
    if (avail < rec) return MMREC__BAD("'%s': index entry %d runs past the index", path, i);
    const char *name = (const char *)e + MMREC__CACHE_ENTRY_FIXED;
    for (uint32_t k = 0; k < len; k++)
        if ((unsigned char)name[k] < 0x20 || name[k] == 0x7f)
            return MMREC__BAD("'%s': index entry %d has a control character in its name",
                              path, i);
    if (name[len] != '\0')
        return MMREC__BAD("'%s': index entry %d has an unterminated name", path, i);
    unsigned dtype = e[4];
    if (dtype > MMREC_CACHE_BF16)
        return MMREC__BAD("'%s': field '%s' has unknown dtype %u", path, name, dtype);
    if (e[5] != 0 || e[6] != 0 || e[7] != 0)
        return MMREC__BAD("'%s': field '%s' has non-zero reserved bytes", path, name);
    for (int k = 0; k < i; k++)
        if (strcmp(v->fields[k].name, name) == 0)
            return MMREC__BAD("'%s': field '%s' appears twice", path, name);
    uint64_t dim = mmrec__le_get64(e + 8), off = mmrec__le_get64(e + 16);
    uint64_t bytes = mmrec__le_get64(e + 24);
    size_t elem = mmrec__cache_elem_size((mmrec_cache_dtype)dtype), row_bytes = 0, want = 0;
    if (dim == 0 || dim > v->size || !mmrec__mul_size((size_t)dim, elem, &row_bytes) ||
        !mmrec__mul_size(row_bytes, v->n_items, &want) || bytes != want)
        return MMREC__BAD("'%s': field '%s' has dim %llu and %llu bytes of data for %zu items",
                          path, name, (unsigned long long)dim, (unsigned long long)bytes,
                          v->n_items);
    uint32_t layers = mmrec__le_get32(e + 36);
    if (layers > 1 && dim % layers != 0)
        return MMREC__BAD("'%s': field '%s' has %u layers, which do not divide its dim %llu",
                          path, name, layers, (unsigned long long)dim);
    if (off % MMREC__CACHE_ALIGN != 0 || off < *data_from || off > index_offset ||
        bytes > index_offset - off)
        return MMREC__BAD("'%s': field '%s' data [%llu, +%llu) lies outside the data area",
                          path, name, (unsigned long long)off, (unsigned long long)bytes);
    const unsigned char *data = v->base + off;
    if (mmrec__crc_mismatch(data, (size_t)bytes, mmrec__le_get32(e + 32)))
        return MMREC__BAD("'%s': checksum mismatch in the data of field '%s' (corrupt file)",
                          path, name);
    mmrec__cache_field *f = &v->fields[i];
    f->name = name;
    f->dtype = (mmrec_cache_dtype)dtype;
    f->dim = (size_t)dim;
    f->layers = layers > 1 ? layers : 1;
    f->width = f->dim / f->layers;
    f->row_bytes = row_bytes;
    f->data = data;
    *data_from = off + bytes;
    *used = rec;
    return MMREC_OK;
}

/* The id table: its checksum, then strictly increasing ids >= 0. */
static mmrec_status mmrec__cache_parse_ids(mmrec__cache_version *v, const char *path,
                                           uint32_t crc, const char *func) {
    const unsigned char *table = v->base + MMREC__CACHE_HEADER_SIZE;
    if (mmrec__crc_mismatch(table, v->n_items * 8, crc))
        return MMREC__BAD("'%s': id table checksum mismatch (corrupt file)", path);
    v->ids = (const int64_t *)(const void *)table; /* 64-byte aligned in the mapping */
    if (v->ids[0] < 0)
        return MMREC__BAD("'%s': id table starts with the negative id %lld", path,
                          (long long)v->ids[0]);
    for (size_t k = 1; k < v->n_items; k++)
        if (v->ids[k] <= v->ids[k - 1])
            return MMREC__BAD("'%s': id table is not sorted and unique at position %zu "
                              "(%lld after %lld)",
                              path, k, (long long)v->ids[k], (long long)v->ids[k - 1]);
    v->dense = (uint64_t)v->ids[v->n_items - 1] == v->n_items - 1;
    return MMREC_OK;
}

static mmrec_status mmrec__cache_validate(mmrec__cache_version *v, const char *path,
                                          const char *func) {
    const unsigned char *h = v->base;
    MMREC_FORWARD_IF(mmrec__io_check_prologue(h, v->size, MMREC__CACHE_HEADER_SIZE,
                                              mmrec__cache_magic, MMREC__CACHE_VERSION,
                                              "feature cache", path, func));
    if (mmrec__le_get32(h + 56) != 0)
        return MMREC__BAD("'%s': header has non-zero reserved bytes", path);
    uint32_t n_fields = mmrec__le_get32(h + 12);
    uint64_t n_items = mmrec__le_get64(h + 16), index_off = mmrec__le_get64(h + 24);
    uint64_t index_size = mmrec__le_get64(h + 32), file_size = mmrec__le_get64(h + 40);
    if (file_size != v->size)
        return MMREC__BAD("'%s' is %zu bytes, its header says %llu (truncated or extended)",
                          path, v->size, (unsigned long long)file_size);
    uint64_t ids_end = MMREC__CACHE_HEADER_SIZE + 8 * n_items;
    if (n_items == 0 || n_items > (v->size - MMREC__CACHE_HEADER_SIZE) / 8 ||
        index_off % 8 != 0 || index_off < ids_end || index_off > v->size ||
        index_size != v->size - index_off)
        return MMREC__BAD("'%s': %llu items and index [%llu, +%llu) do not fit the file", path,
                          (unsigned long long)n_items, (unsigned long long)index_off,
                          (unsigned long long)index_size);
    if (n_fields > index_size / mmrec__cache_entry_size(1) || n_fields > INT_MAX)
        return MMREC__BAD("'%s': %u fields cannot fit in a %llu-byte index", path, n_fields,
                          (unsigned long long)index_size);
    const unsigned char *index = h + index_off;
    if (mmrec__crc_mismatch(index, (size_t)index_size, mmrec__le_get32(h + 52)))
        return MMREC__BAD("'%s': index checksum mismatch (corrupt file)", path);
    v->n_items = (size_t)n_items;
    MMREC_FORWARD_IF(mmrec__cache_parse_ids(v, path, mmrec__le_get32(h + 48), func));
    v->fields = mmrec__calloc(n_fields ? n_fields : 1, sizeof *v->fields);
    if (v->fields == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    v->n_fields = (int)n_fields;
    size_t pos = 0;
    uint64_t data_from = ids_end;
    for (int i = 0; i < v->n_fields; i++) {
        size_t used = 0;
        MMREC_FORWARD_IF(mmrec__cache_parse_entry(v, path, index + pos, (size_t)index_size - pos,
                                                  i, &data_from, index_off, &used, func));
        pos += used;
    }
    if (pos != index_size)
        return MMREC__BAD("'%s': the index has %zu bytes after its last entry", path,
                          (size_t)index_size - pos);
    return MMREC_OK;
}

mmrec_status mmrec__cache_version_open(const char *path, mmrec__cache_version **out,
                                       const char *func) {
    const unsigned char *base;
    size_t size;
    MMREC_FORWARD_IF(mmrec__io_map_read(path, &base, &size, func));
    mmrec__cache_version *v = mmrec__calloc(1, sizeof *v);
    if (v == NULL) {
        mmrec__io_unmap(base, size);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    }
    v->refs = 1;
    v->base = base;
    v->size = size;
    mmrec_status s = mmrec__cache_validate(v, path, func);
    if (s != MMREC_OK) {
        mmrec__cache_version_free(v);
        return s;
    }
    *out = v;
    return MMREC_OK;
}

void mmrec__cache_version_free(mmrec__cache_version *version) {
    if (version == NULL) return;
    mmrec__io_unmap(version->base, version->size);
    mmrec__free(version->fields);
    mmrec__free(version);
}

const mmrec__cache_field *mmrec__cache_find_field(const mmrec__cache_version *version,
                                                  const char *name) {
    for (int i = 0; i < version->n_fields; i++)
        if (strcmp(version->fields[i].name, name) == 0) return &version->fields[i];
    return NULL;
}
