/* The checkpoint container: writer and validating reader (layout in
 * io_internal.h). The reader maps the file (mmrec__io_map_read) and checks
 * every size, offset and checksum before anyone looks at an entry, so it
 * never reads past the end of the mapping. */
#include "io_internal.h"
#include "file_io.h"

#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the checkpoint writer stores tensor data in host order: little-endian hosts only"
#endif

static const char mmrec__ckpt_magic[8] = {'M', 'M', 'R', 'E', 'C', 'C', 'K', 'P'};

#define MMREC__ENTRY_FIXED 64u

static size_t mmrec__elem_size(mmrec__ckpt_dtype dtype) { return dtype == MMREC__CKPT_U64 ? 8 : 4; }

static size_t mmrec__item_name_len(const mmrec__ckpt_item *it) {
    return (it->label ? strlen(it->label) + 1 : 0) + strlen(it->name);
}

static uint64_t mmrec__item_bytes(const mmrec__ckpt_item *it) {
    uint64_t n = 1;
    for (int d = 0; d < it->ndim; d++) n *= (uint64_t)it->shape[d];
    return n * mmrec__elem_size(it->dtype);
}

static const void *mmrec__item_data(const mmrec__ckpt_item *it) {
    return it->data ? it->data : (const void *)it->inline_u64;
}

/* ---- writer ---- */

mmrec_status mmrec__ckpt_write(const char *path, const mmrec__ckpt_item *items, size_t n_items,
                               const char *func) {
    uint64_t index_size = 0;
    for (size_t i = 0; i < n_items; i++) {
        size_t len = mmrec__item_name_len(&items[i]);
        assert(len >= 1 && len <= MMREC__CKPT_MAX_NAME);
        index_size += MMREC__ENTRY_FIXED + mmrec__align_up(len, 8);
    }
    uint64_t index_offset = MMREC__CKPT_HEADER_SIZE;
    uint64_t data_offset = mmrec__align_up(index_offset + index_size, MMREC__CKPT_ALIGN);
    size_t head_size = (size_t)data_offset;
    unsigned char *head = mmrec__calloc(1, head_size);
    if (head == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");

    /* Index, with each blob's offset and checksum. */
    unsigned char *e = head + index_offset;
    uint64_t offset = data_offset, file_size = data_offset; /* ends after the last blob */
    for (size_t i = 0; i < n_items; i++) {
        const mmrec__ckpt_item *it = &items[i];
        size_t len = mmrec__item_name_len(it);
        uint64_t bytes = mmrec__item_bytes(it);
        mmrec__le_put32(e, (uint32_t)len);
        e[4] = (unsigned char)it->kind;
        e[5] = (unsigned char)it->dtype;
        e[6] = (unsigned char)it->ndim;
        for (int d = 0; d < it->ndim; d++) mmrec__le_put64(e + 8 + 8 * d, (uint64_t)it->shape[d]);
        mmrec__le_put64(e + 40, offset);
        mmrec__le_put64(e + 48, bytes);
        mmrec__le_put32(e + 56, mmrec__crc32c(0, mmrec__item_data(it), (size_t)bytes));
        char *name = (char *)e + MMREC__ENTRY_FIXED;
        if (it->label) {
            size_t l = strlen(it->label);
            memcpy(name, it->label, l);
            name[l] = ':';
            memcpy(name + l + 1, it->name, len - l - 1);
        } else {
            memcpy(name, it->name, len);
        }
        e += MMREC__ENTRY_FIXED + mmrec__align_up(len, 8);
        file_size = offset + bytes;
        offset = mmrec__align_up(file_size, MMREC__CKPT_ALIGN);
    }
    memcpy(head, mmrec__ckpt_magic, 8);
    mmrec__le_put32(head + 8, MMREC__CKPT_VERSION);
    mmrec__le_put64(head + 16, n_items);
    mmrec__le_put64(head + 24, index_offset);
    mmrec__le_put64(head + 32, index_size);
    mmrec__le_put64(head + 40, data_offset);
    mmrec__le_put64(head + 48, file_size);
    mmrec__le_put32(head + 56, mmrec__crc32c(0, head + index_offset, (size_t)index_size));
    mmrec__le_put32(head + 60, mmrec__crc32c(0, head, 60));

    mmrec__atomic_file f;
    mmrec_status s = mmrec__atomic_open(&f, path, func);
    if (s != MMREC_OK) {
        mmrec__free(head);
        return s;
    }
    static const unsigned char zeros[MMREC__CKPT_ALIGN];
    s = mmrec__atomic_write(&f, head, head_size, func);
    uint64_t pos = data_offset;
    for (size_t i = 0; i < n_items && s == MMREC_OK; i++) {
        uint64_t at = mmrec__align_up(pos, MMREC__CKPT_ALIGN);
        if (at > pos) s = mmrec__atomic_write(&f, zeros, (size_t)(at - pos), func);
        uint64_t bytes = mmrec__item_bytes(&items[i]);
        if (s == MMREC_OK) s = mmrec__atomic_write(&f, mmrec__item_data(&items[i]), bytes, func);
        pos = at + bytes;
    }
    mmrec__free(head);
    if (s != MMREC_OK) {
        mmrec__atomic_abort(&f);
        return s;
    }
    return mmrec__atomic_commit(&f, func);
}

/* ---- reader ---- */

#define MMREC__BAD(...) mmrec__set_error(MMREC_EFORMAT, func, __VA_ARGS__)

static mmrec_status mmrec__ckpt_parse_entry(mmrec__ckpt_reader *r, const unsigned char *e,
                                            size_t avail, size_t i, uint64_t data_start,
                                            uint64_t *prev_end, size_t *used, const char *func) {
    const char *path = r->path;
    if (avail < MMREC__ENTRY_FIXED)
        return MMREC__BAD("'%s': index entry %zu runs past the index", path, i);
    uint32_t len = mmrec__le_get32(e);
    if (len == 0 || len > MMREC__CKPT_MAX_NAME)
        return MMREC__BAD("'%s': index entry %zu has a name of %u bytes (1..%u)", path, i, len,
                          MMREC__CKPT_MAX_NAME);
    size_t rec = MMREC__ENTRY_FIXED + (size_t)mmrec__align_up(len, 8);
    if (avail < rec) return MMREC__BAD("'%s': index entry %zu runs past the index", path, i);
    const char *name = (const char *)e + MMREC__ENTRY_FIXED;
    for (uint32_t k = 0; k < len; k++)
        if ((unsigned char)name[k] < 0x20 || name[k] == 0x7f)
            return MMREC__BAD("'%s': index entry %zu has a control character in its name",
                              path, i);
    int nl = len > 200 ? 200 : (int)len; /* for messages */
    mmrec__ckpt_entry *out = &r->entries[i];
    out->name = name;
    out->name_len = len;
    unsigned kind = e[4], dtype = e[5], ndim = e[6];
    if (kind < MMREC__CKPT_PARAM || kind > MMREC__CKPT_META)
        return MMREC__BAD("'%s': entry '%.*s' has unknown kind %u", path, nl, name, kind);
    if (dtype != MMREC__CKPT_F32 && dtype != MMREC__CKPT_U64)
        return MMREC__BAD("'%s': entry '%.*s' has unknown dtype %u", path, nl, name, dtype);
    if (ndim < 1 || ndim > MMREC_MAX_DIMS)
        return MMREC__BAD("'%s': entry '%.*s' has %u dims (1..%d)", path, nl, name, ndim,
                          MMREC_MAX_DIMS);
    if (e[7] != 0 || mmrec__le_get32(e + 60) != 0)
        return MMREC__BAD("'%s': entry '%.*s' has non-zero reserved bytes", path, nl, name);
    out->kind = (mmrec__ckpt_kind)kind;
    out->dtype = (mmrec__ckpt_dtype)dtype;
    out->ndim = (int)ndim;
    size_t numel = 1;
    for (int d = 0; d < MMREC_MAX_DIMS; d++) {
        uint64_t dim = mmrec__le_get64(e + 8 + 8 * d);
        if (d >= (int)ndim) {
            if (dim != 0)
                return MMREC__BAD("'%s': entry '%.*s' has a size for unused dim %d", path, nl,
                                  name, d);
            out->shape[d] = 0;
            continue;
        }
        if (dim == 0 || dim > r->size || !mmrec__mul_size(numel, (size_t)dim, &numel))
            return MMREC__BAD("'%s': entry '%.*s' has a bad size %llu in dim %d", path, nl, name,
                              (unsigned long long)dim, d);
        out->shape[d] = (int64_t)dim;
    }
    out->numel = numel;
    uint64_t off = mmrec__le_get64(e + 40), bytes = mmrec__le_get64(e + 48);
    size_t want = 0;
    if (!mmrec__mul_size(numel, mmrec__elem_size(out->dtype), &want) || bytes != want)
        return MMREC__BAD("'%s': entry '%.*s' holds %llu bytes, its shape needs %zu", path, nl,
                          name, (unsigned long long)bytes, want);
    if (off % MMREC__CKPT_ALIGN != 0 || off < data_start || off < *prev_end ||
        off > r->size || bytes > r->size - off)
        return MMREC__BAD("'%s': entry '%.*s' data [%llu, +%llu) lies outside the data area "
                          "(file is %zu bytes)",
                          path, nl, name, (unsigned long long)off, (unsigned long long)bytes,
                          r->size);
    out->data = r->base + off;
    out->size = (size_t)bytes;
    if (mmrec__crc_mismatch(out->data, out->size, mmrec__le_get32(e + 56)))
        return MMREC__BAD("'%s': checksum mismatch in the data of entry '%.*s' (corrupt file)",
                          path, nl, name);
    *prev_end = off + bytes;
    *used = rec;
    return MMREC_OK;
}

static mmrec_status mmrec__ckpt_validate(mmrec__ckpt_reader *r, const char *func) {
    const unsigned char *h = r->base;
    const char *path = r->path;
    MMREC_FORWARD_IF(mmrec__io_check_prologue(h, r->size, MMREC__CKPT_HEADER_SIZE,
                                              mmrec__ckpt_magic, MMREC__CKPT_VERSION,
                                              "checkpoint", path, func));
    if (mmrec__le_get32(h + 12) != 0)
        return MMREC__BAD("'%s': header has non-zero reserved bytes", path);
    uint64_t n = mmrec__le_get64(h + 16), index_off = mmrec__le_get64(h + 24);
    uint64_t index_size = mmrec__le_get64(h + 32), data_off = mmrec__le_get64(h + 40);
    uint64_t file_size = mmrec__le_get64(h + 48);
    if (file_size != r->size)
        return MMREC__BAD("'%s' is %zu bytes, its header says %llu (truncated or extended)",
                          path, r->size, (unsigned long long)file_size);
    if (index_off != MMREC__CKPT_HEADER_SIZE || index_size > r->size - index_off ||
        data_off % MMREC__CKPT_ALIGN != 0 || data_off < index_off + index_size ||
        data_off > r->size)
        return MMREC__BAD("'%s': index [%llu, +%llu) or data offset %llu out of bounds", path,
                          (unsigned long long)index_off, (unsigned long long)index_size,
                          (unsigned long long)data_off);
    if (n > index_size / MMREC__ENTRY_FIXED)
        return MMREC__BAD("'%s': %llu entries cannot fit in a %llu-byte index", path,
                          (unsigned long long)n, (unsigned long long)index_size);
    const unsigned char *index = h + index_off;
    if (mmrec__crc_mismatch(index, (size_t)index_size, mmrec__le_get32(h + 56)))
        return MMREC__BAD("'%s': index checksum mismatch (corrupt file)", path);
    r->entries = mmrec__calloc(n ? (size_t)n : 1, sizeof *r->entries);
    if (r->entries == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    r->n_entries = (size_t)n;
    size_t pos = 0;
    uint64_t prev_end = data_off;
    for (size_t i = 0; i < r->n_entries; i++) {
        size_t used = 0;
        MMREC_FORWARD_IF(mmrec__ckpt_parse_entry(r, index + pos, (size_t)index_size - pos, i,
                                                 data_off, &prev_end, &used, func));
        pos += used;
    }
    if (pos != index_size)
        return MMREC__BAD("'%s': the index has %zu bytes after its last entry", path,
                          (size_t)index_size - pos);
    return MMREC_OK;
}

mmrec_status mmrec__ckpt_open(mmrec__ckpt_reader *r, const char *path, const char *func) {
    memset(r, 0, sizeof *r);
    r->path = path;
    MMREC_FORWARD_IF(mmrec__io_map_read(path, &r->base, &r->size, func));
    mmrec_status s = mmrec__ckpt_validate(r, func);
    if (s != MMREC_OK) mmrec__ckpt_close(r);
    return s;
}

void mmrec__ckpt_close(mmrec__ckpt_reader *r) {
    mmrec__io_unmap(r->base, r->size);
    mmrec__free(r->entries);
    r->base = NULL;
    r->entries = NULL;
    r->n_entries = 0;
}

const mmrec__ckpt_entry *mmrec__ckpt_find(const mmrec__ckpt_reader *r, mmrec__ckpt_kind kind,
                                          const char *label, const char *name) {
    size_t llen = label ? strlen(label) + 1 : 0, nlen = strlen(name);
    for (size_t i = 0; i < r->n_entries; i++) {
        const mmrec__ckpt_entry *e = &r->entries[i];
        if (e->kind != kind || e->name_len != llen + nlen) continue;
        if (label && (memcmp(e->name, label, llen - 1) != 0 || e->name[llen - 1] != ':'))
            continue;
        if (memcmp(e->name + llen, name, nlen) == 0) return e;
    }
    return NULL;
}

bool mmrec__ckpt_entry_is(const mmrec__ckpt_entry *e, mmrec__ckpt_dtype dtype, int ndim,
                          const int64_t *shape) {
    if (e->dtype != dtype || e->ndim != ndim) return false;
    for (int d = 0; d < ndim; d++)
        if (e->shape[d] != shape[d]) return false;
    return true;
}
