/* The writer's streaming field encoder: values arrive row by row in sorted-id
 * order, are checked (finite, within the dtype's range), converted, summed
 * into the field's CRC-32C and written to the temporary file a chunk at a
 * time. Nothing counts as written until mmrec__cache_field_end records the
 * field, so a failed add leaves the writer as it was: the next field simply
 * overwrites the bytes, and commit cuts the file at its real end. */
#include "cache_internal.h"
#include "../io/file_io.h"

#include <limits.h>
#include <math.h>

static mmrec_status mmrec__cache_sink_flush(mmrec__cache_sink *s, const char *func) {
    mmrec_cache_writer *w = s->writer;
    if (s->used == 0) return MMREC_OK;
    MMREC_FORWARD_IF(
        mmrec__io_pwrite(w->file.fd, w->buf, s->used, s->offset, w->file.tmp_path, func));
    s->crc = mmrec__crc32c(s->crc, w->buf, s->used);
    s->offset += s->used;
    s->used = 0;
    return MMREC_OK;
}

static mmrec_status mmrec__cache_bad_value(const mmrec__cache_sink *s, mmrec_status status,
                                           size_t row, size_t col, float value,
                                           const char *func) {
    static const char *const names[] = {"float32", "float16", "bfloat16"};
    const char *q = s->source_is_file ? "'" : "";
    if (status == MMREC_ENUMERIC)
        return mmrec__set_error(status, func, "%s%s%s row %zu column %zu is %g", q, s->source, q,
                                row, col, (double)value);
    return mmrec__set_error(status, func, "%s%s%s row %zu column %zu is %g, beyond the range of %s",
                            q, s->source, q, row, col, (double)value, names[s->dtype]);
}

mmrec_status mmrec__cache_sink_put(mmrec__cache_sink *s, size_t row, size_t col,
                                   const float *src, size_t count, const char *func) {
    for (size_t i = 0; i < count; i++)
        if (!isfinite(src[i]))
            return mmrec__cache_bad_value(s, MMREC_ENUMERIC, row, col + i, src[i], func);
    size_t elem = mmrec__cache_elem_size(s->dtype);
    while (count > 0) {
        size_t room = (MMREC__CACHE_CHUNK - s->used) / elem;
        if (room == 0) {
            MMREC_FORWARD_IF(mmrec__cache_sink_flush(s, func));
            continue;
        }
        size_t k = count < room ? count : room;
        size_t ok = mmrec__cache_encode(s->dtype, src, s->writer->buf + s->used, k);
        if (ok < k) return mmrec__cache_bad_value(s, MMREC_ERANGE, row, col + ok, src[ok], func);
        s->used += k * elem;
        src += k;
        col += k;
        count -= k;
    }
    return MMREC_OK;
}

mmrec_status mmrec__cache_field_begin(mmrec_cache_writer *w, mmrec__cache_sink *sink,
                                      mmrec_cache_dtype dtype, size_t layers, size_t width,
                                      const char *source, bool source_is_file,
                                      const char *func) {
    size_t dim = 0, bytes = 0;
    if (layers > 1)
        MMREC__CACHE_FAIL_IF(layers > UINT32_MAX || !mmrec__mul_size(layers, width, &dim),
                             MMREC_EINVAL, "a record of %zu layers of width %zu is too large",
                             layers, width);
    else
        dim = width;
    MMREC__CACHE_FAIL_IF(!mmrec__mul_size(w->n_items, dim, &bytes) ||
                             !mmrec__mul_size(bytes, mmrec__cache_elem_size(dtype), &bytes),
                         MMREC_EINVAL, "dim %zu is too large for %zu items", dim, w->n_items);
    MMREC__CACHE_FAIL_IF(w->n_fields >= INT_MAX, MMREC_ESTATE, "the writer has %zu fields",
                         w->n_fields);
    if (w->n_fields == w->cap_fields) {
        size_t cap = w->cap_fields ? 2 * w->cap_fields : 4;
        mmrec__cache_wfield *grown = mmrec__calloc(cap, sizeof *grown);
        MMREC__CACHE_FAIL_IF(grown == NULL, MMREC_ENOMEM, "out of memory");
        if (w->n_fields) memcpy(grown, w->fields, w->n_fields * sizeof *grown);
        mmrec__free(w->fields);
        w->fields = grown;
        w->cap_fields = cap;
    }
    memset(sink, 0, sizeof *sink);
    sink->writer = w;
    sink->dtype = dtype;
    sink->dim = dim;
    sink->layers = layers > 1 ? (uint32_t)layers : 0;
    sink->start = sink->offset = mmrec__align_up(w->end, MMREC__CACHE_ALIGN);
    sink->source = source;
    sink->source_is_file = source_is_file;
    return MMREC_OK;
}

mmrec_status mmrec__cache_field_end(mmrec_cache_writer *w, mmrec__cache_sink *sink,
                                    const char *field, const char *func) {
    MMREC_FORWARD_IF(mmrec__cache_sink_flush(sink, func));
    mmrec__cache_wfield *f = &w->fields[w->n_fields];
    memset(f, 0, sizeof *f);
    memcpy(f->name, field, strlen(field));
    f->dtype = sink->dtype;
    f->dim = sink->dim;
    f->layers = sink->layers;
    f->offset = sink->start;
    f->size = sink->offset - sink->start;
    f->crc = sink->crc;
    w->end = sink->offset;
    w->n_fields++;
    return MMREC_OK;
}
