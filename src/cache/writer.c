/* The cache writer: takes the item ids (sorted here, the caller's order kept
 * as a permutation), streams the id table and then each field to a
 * temporary file, and at commit appends the index, writes the header at
 * offset 0 and renames the file into place (mmrec__atomic_*). */
#include "cache_internal.h"
#include "../io/file_io.h"

#define MMREC__CACHE_WRITER_MAGIC 0x6d6d4657u /* "mmFW" */

typedef struct mmrec__cache_pair {
    int64_t id;
    size_t row;
} mmrec__cache_pair;

/* Stable bottom-up merge sort of pairs by id; tmp holds n pairs. */
static void mmrec__cache_sort(mmrec__cache_pair *a, mmrec__cache_pair *tmp, size_t n) {
    mmrec__cache_pair *src = a, *dst = tmp;
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = mid + width < n ? mid + width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) dst[k++] = src[j].id < src[i].id ? src[j++] : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        mmrec__cache_pair *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
}

/* Fills w->ids (sorted) and w->perm (NULL when the ids come sorted);
 * MMREC_EINVAL naming two indices holding the same id. */
static mmrec_status mmrec__cache_sort_ids(mmrec_cache_writer *w, const int64_t *ids, size_t n,
                                          const char *func) {
    memcpy(w->ids, ids, n * sizeof *ids);
    size_t k = 1;
    while (k < n && ids[k] > ids[k - 1]) k++;
    if (k == n) return MMREC_OK;
    mmrec__cache_pair *pairs = mmrec__alloc(2 * n * sizeof *pairs);
    w->perm = mmrec__alloc(n * sizeof *w->perm);
    if (pairs == NULL || w->perm == NULL) {
        mmrec__free(pairs);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    }
    for (size_t i = 0; i < n; i++) pairs[i] = (mmrec__cache_pair){ids[i], i};
    mmrec__cache_sort(pairs, pairs + n, n);
    mmrec_status s = MMREC_OK;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && pairs[i].id == pairs[i - 1].id) {
            s = mmrec__set_error(MMREC_EINVAL, func, "ids[%zu] and ids[%zu] are both %lld (ids "
                                 "must be unique)", pairs[i - 1].row, pairs[i].row,
                                 (long long)pairs[i].id);
            break;
        }
        w->ids[i] = pairs[i].id;
        w->perm[i] = pairs[i].row;
    }
    mmrec__free(pairs);
    return s;
}

static void mmrec__cache_writer_free(mmrec_cache_writer *w) {
    mmrec__atomic_abort(&w->file); /* no-op once committed */
    mmrec__free(w->path);
    mmrec__free(w->ids);
    mmrec__free(w->perm);
    mmrec__free(w->fields);
    mmrec__free(w->buf);
    w->magic = 0;
    mmrec__free(w);
}

mmrec_status mmrec_cache_writer_create(const char *path, const int64_t *ids, size_t num_items,
                                       mmrec_cache_writer **out) {
    MMREC_CHECK_NULL(path);
    MMREC_CHECK_NULL(ids);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(num_items < 1 || num_items > SIZE_MAX / 32, MMREC_EINVAL,
                  "num_items is %zu, must be >= 1", num_items);
    for (size_t i = 0; i < num_items; i++)
        MMREC_FAIL_IF(ids[i] < 0, MMREC_EINVAL, "ids[%zu] is %lld, must be >= 0", i,
                      (long long)ids[i]);
    mmrec_cache_writer *w = mmrec__calloc(1, sizeof *w);
    MMREC_FAIL_IF(w == NULL, MMREC_ENOMEM, "out of memory");
    w->file.fd = -1;
    w->n_items = num_items;
    w->path = mmrec__strdup(path);
    w->ids = mmrec__alloc(num_items * sizeof *w->ids);
    w->buf = mmrec__alloc(MMREC__CACHE_CHUNK);
    mmrec_status s = MMREC_OK;
    if (w->path == NULL || w->ids == NULL || w->buf == NULL)
        s = mmrec__set_error(MMREC_ENOMEM, __func__, "out of memory");
    if (s == MMREC_OK) s = mmrec__cache_sort_ids(w, ids, num_items, __func__);
    if (s == MMREC_OK) s = mmrec__atomic_open(&w->file, w->path, __func__);
    if (s == MMREC_OK) {
        size_t bytes = num_items * sizeof *w->ids;
        w->ids_crc = mmrec__crc32c(0, w->ids, bytes);
        w->end = MMREC__CACHE_HEADER_SIZE + bytes;
        s = mmrec__io_pwrite(w->file.fd, w->ids, bytes, MMREC__CACHE_HEADER_SIZE,
                             w->file.tmp_path, __func__);
    }
    if (s != MMREC_OK) {
        mmrec__cache_writer_free(w);
        return s;
    }
    w->magic = MMREC__CACHE_WRITER_MAGIC;
    *out = w;
    return MMREC_OK;
}

static mmrec_status mmrec__cache_writer_usable(const mmrec_cache_writer *w, const char *func) {
    MMREC__CACHE_FAIL_IF(w == NULL, MMREC_EINVAL, "argument 'writer' is NULL");
    MMREC__CACHE_FAIL_IF(w->magic != MMREC__CACHE_WRITER_MAGIC, MMREC_EINVAL,
                         "argument 'writer' is not a cache writer");
    MMREC__CACHE_FAIL_IF(w->finished, MMREC_ESTATE,
                         "the writer is finished (committed, or its commit failed); destroy it");
    return MMREC_OK;
}

mmrec_status mmrec__cache_writer_check(const mmrec_cache_writer *w, const char *field,
                                       mmrec_cache_dtype dtype, const char *func) {
    MMREC_FORWARD_IF(mmrec__cache_writer_usable(w, func));
    MMREC__CACHE_CHECK_NULL(field);
    size_t len = strlen(field);
    MMREC__CACHE_FAIL_IF(len < 1 || len > MMREC__CACHE_MAX_NAME, MMREC_EINVAL,
                         "field name is %zu bytes, expected 1..%u", len, MMREC__CACHE_MAX_NAME);
    for (size_t i = 0; i < len; i++)
        MMREC__CACHE_FAIL_IF((unsigned char)field[i] < 0x20 || field[i] == 0x7f, MMREC_EINVAL,
                             "field name has a control character at byte %zu", i);
    for (size_t i = 0; i < w->n_fields; i++)
        MMREC__CACHE_FAIL_IF(strcmp(w->fields[i].name, field) == 0, MMREC_ESTATE,
                             "field '%s' was already added", field);
    MMREC__CACHE_FAIL_IF(dtype != MMREC_CACHE_F32 && dtype != MMREC_CACHE_F16 &&
                             dtype != MMREC_CACHE_BF16,
                         MMREC_EINVAL,
                         "dtype is %d, expected MMREC_CACHE_F32, MMREC_CACHE_F16 or "
                         "MMREC_CACHE_BF16",
                         (int)dtype);
    return MMREC_OK;
}

/* Streams [num_items, layers * width] floats from caller memory. */
static mmrec_status mmrec__cache_writer_put(mmrec_cache_writer *w, const char *field,
                                            mmrec_cache_dtype dtype, const float *data,
                                            size_t layers, size_t width, const char *func) {
    mmrec__cache_sink sink;
    MMREC_FORWARD_IF(
        mmrec__cache_field_begin(w, &sink, dtype, layers, width, "data", false, func));
    size_t d = sink.dim;
    for (size_t pos = 0; pos < w->n_items; pos++) {
        size_t row = mmrec__cache_writer_row(w, pos);
        MMREC_FORWARD_IF(mmrec__cache_sink_put(&sink, row, 0, data + row * d, d, func));
    }
    return mmrec__cache_field_end(w, &sink, field, func);
}

mmrec_status mmrec_cache_writer_add(mmrec_cache_writer *writer, const char *field,
                                    mmrec_cache_dtype dtype, const float *data, int64_t dim) {
    MMREC_FORWARD_IF(mmrec__cache_writer_check(writer, field, dtype, __func__));
    MMREC_CHECK_NULL(data);
    MMREC_FAIL_IF(dim < 1 || (uint64_t)dim > SIZE_MAX, MMREC_EINVAL, "dim is %lld, must be >= 1",
                  (long long)dim);
    return mmrec__cache_writer_put(writer, field, dtype, data, 1, (size_t)dim, __func__);
}

mmrec_status mmrec_cache_writer_add_layers(mmrec_cache_writer *writer, const char *field,
                                           mmrec_cache_dtype dtype, const float *data,
                                           int64_t layers, int64_t width) {
    MMREC_FORWARD_IF(mmrec__cache_writer_check(writer, field, dtype, __func__));
    MMREC_CHECK_NULL(data);
    MMREC_FAIL_IF(layers < 1 || (uint64_t)layers > UINT32_MAX, MMREC_EINVAL,
                  "layers is %lld, expected 1 .. %u", (long long)layers, UINT32_MAX);
    MMREC_FAIL_IF(width < 1 || (uint64_t)width > SIZE_MAX, MMREC_EINVAL,
                  "width is %lld, must be >= 1", (long long)width);
    return mmrec__cache_writer_put(writer, field, dtype, data, (size_t)layers, (size_t)width,
                                   __func__);
}

/* Appends the index, cuts the file at its end and writes the header. */
static mmrec_status mmrec__cache_write_tail(mmrec_cache_writer *w, const char *func) {
    size_t index_size = 0;
    for (size_t i = 0; i < w->n_fields; i++)
        index_size += mmrec__cache_entry_size(strlen(w->fields[i].name));
    unsigned char *index = mmrec__calloc(1, index_size ? index_size : 1);
    MMREC__CACHE_FAIL_IF(index == NULL, MMREC_ENOMEM, "out of memory");
    size_t pos = 0;
    for (size_t i = 0; i < w->n_fields; i++) {
        const mmrec__cache_wfield *f = &w->fields[i];
        mmrec__cache_entry e = {f->name, f->dtype, f->dim, f->offset, f->size, f->crc, f->layers};
        mmrec__cache_put_entry(index + pos, &e);
        pos += mmrec__cache_entry_size(strlen(f->name));
    }
    uint64_t index_offset = mmrec__align_up(w->end, 8);
    unsigned char header[MMREC__CACHE_HEADER_SIZE];
    mmrec__cache_put_header(header, (uint32_t)w->n_fields, w->n_items, index_offset, index_size,
                            w->ids_crc, mmrec__crc32c(0, index, index_size));
    const char *tmp = w->file.tmp_path;
    mmrec_status s = mmrec__io_pwrite(w->file.fd, index, index_size, index_offset, tmp, func);
    mmrec__free(index);
    if (s == MMREC_OK) s = mmrec__io_truncate(w->file.fd, index_offset + index_size, tmp, func);
    if (s == MMREC_OK) s = mmrec__io_pwrite(w->file.fd, header, sizeof header, 0, tmp, func);
    return s;
}

mmrec_status mmrec_cache_writer_commit(mmrec_cache_writer *writer) {
    MMREC_FORWARD_IF(mmrec__cache_writer_usable(writer, __func__));
    writer->finished = true;
    mmrec_status s = mmrec__cache_write_tail(writer, __func__);
    if (s != MMREC_OK) {
        mmrec__atomic_abort(&writer->file);
        return s;
    }
    return mmrec__atomic_commit(&writer->file, __func__);
}

void mmrec_cache_writer_destroy(mmrec_cache_writer *writer) {
    if (writer == NULL || writer->magic != MMREC__CACHE_WRITER_MAGIC) return;
    mmrec__cache_writer_free(writer);
}
