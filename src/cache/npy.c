/* Importing a field from a numpy .npy file (format versions 1.0, 2.0, 3.0):
 *   "\x93NUMPY", u8 major, u8 minor, header length (u16 LE for 1.0, u32 LE
 *   for 2.0 and 3.0), then a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 768), }
 *   padded with spaces and a newline, then the raw C-order data.
 * A 3-D array [num_items, layers, width] is a field of [layers, width]
 * records (row-major, so each record is its layers one after another).
 * Floating dtypes of 2, 4 or 8 bytes in either byte order are read a chunk
 * at a time (runs of consecutive rows, or parts of one long row), converted
 * to float32 and streamed to the writer's field encoder in sorted-id order:
 * the matrix is never held in memory. */
#include "cache_internal.h"
#include "../io/file_io.h"

#include <float.h>
#include <math.h>
#include <unistd.h>

#define MMREC__NPY_MAX_HEADER ((size_t)1 << 20)

typedef struct mmrec__npy {
    const char *path;
    int fd;
    size_t file_size;
    uint64_t data_offset;
    size_t elem;      /* 2, 4 or 8 */
    bool big_endian;
    bool has_descr, has_order, has_shape;
    bool fortran;
    int ndim;
    uint64_t rows, layers, width; /* [rows], [rows, width] or [rows, layers, width] */
    uint64_t dim;                 /* layers * width: the record length */
} mmrec__npy;

#define MMREC__NPY_BAD(...) mmrec__set_error(MMREC_EFORMAT, func, __VA_ARGS__)

/* ---- the header dict ---- */

typedef struct mmrec__npy_text {
    const char *s;
    size_t pos;
} mmrec__npy_text;

static void mmrec__npy_skip(mmrec__npy_text *t) {
    while (t->s[t->pos] == ' ' || t->s[t->pos] == '\t' || t->s[t->pos] == '\n' ||
           t->s[t->pos] == '\r')
        t->pos++;
}

static bool mmrec__npy_eat(mmrec__npy_text *t, char c) {
    mmrec__npy_skip(t);
    if (t->s[t->pos] != c) return false;
    t->pos++;
    return true;
}

static bool mmrec__npy_word(mmrec__npy_text *t, const char *word) {
    mmrec__npy_skip(t);
    size_t len = strlen(word);
    if (strncmp(t->s + t->pos, word, len) != 0) return false;
    t->pos += len;
    return true;
}

/* A quoted string ('...' or "...") of at most cap - 1 bytes into out. */
static bool mmrec__npy_string(mmrec__npy_text *t, char *out, size_t cap) {
    mmrec__npy_skip(t);
    char quote = t->s[t->pos];
    if (quote != '\'' && quote != '"') return false;
    size_t len = 0;
    for (t->pos++; t->s[t->pos] != quote; t->pos++) {
        if (t->s[t->pos] == '\0' || t->s[t->pos] == '\\' || len + 1 >= cap) return false;
        out[len++] = t->s[t->pos];
    }
    t->pos++;
    out[len] = '\0';
    return true;
}

/* Dimensions parsed from a shape tuple, more than any accepted array has,
 * so a 4-D array is reported as such. */
#define MMREC__NPY_MAX_DIMS 32

/* A tuple of non-negative integers, e.g. "(3, 4)", "(3,)" or "()". */
static bool mmrec__npy_tuple(mmrec__npy_text *t, mmrec__npy *npy) {
    uint64_t dims[MMREC__NPY_MAX_DIMS];
    int n = 0;
    if (!mmrec__npy_eat(t, '(')) return false;
    while (!mmrec__npy_eat(t, ')')) {
        mmrec__npy_skip(t);
        if (t->s[t->pos] < '0' || t->s[t->pos] > '9' || n == MMREC__NPY_MAX_DIMS) return false;
        uint64_t v = 0;
        for (; t->s[t->pos] >= '0' && t->s[t->pos] <= '9'; t->pos++) {
            if (v > ((uint64_t)INT64_MAX - 9) / 10) return false;
            v = v * 10 + (uint64_t)(t->s[t->pos] - '0');
        }
        dims[n++] = v;
        if (!mmrec__npy_eat(t, ',')) {
            if (!mmrec__npy_eat(t, ')')) return false;
            break;
        }
    }
    npy->ndim = n;
    npy->rows = n > 0 ? dims[0] : 0;
    npy->layers = n > 2 ? dims[1] : 1;
    npy->width = n > 2 ? dims[2] : n > 1 ? dims[1] : 1;
    return true;
}

static mmrec_status mmrec__npy_descr(mmrec__npy *npy, const char *descr, const char *func) {
    const char *path = npy->path;
    if (strlen(descr) == 3 && strchr("<>|=", descr[0]) && descr[1] == 'f' &&
        strchr("248", descr[2])) {
        npy->big_endian = descr[0] == '>';
        npy->elem = (size_t)(descr[2] - '0');
        return MMREC_OK;
    }
    return MMREC__NPY_BAD("'%s' has dtype '%s'; supported are float16, float32 and float64 "
                          "('<f2' '<f4' '<f8', or '>' for big-endian)",
                          path, descr);
}

/* Parses the dict into npy: every key once, no other key. */
static mmrec_status mmrec__npy_dict(mmrec__npy *npy, const char *header, const char *func) {
    const char *path = npy->path;
    mmrec__npy_text t = {header, 0};
    char key[32], descr[32];
    if (!mmrec__npy_eat(&t, '{'))
        return MMREC__NPY_BAD("'%s': the .npy header is not a dict (byte %zu)", path, t.pos);
    while (!mmrec__npy_eat(&t, '}')) {
        if (!mmrec__npy_string(&t, key, sizeof key) || !mmrec__npy_eat(&t, ':'))
            return MMREC__NPY_BAD("'%s': bad .npy header: expected a key at byte %zu", path,
                                  t.pos);
        bool ok, seen;
        if (strcmp(key, "descr") == 0) {
            seen = npy->has_descr;
            npy->has_descr = true;
            ok = mmrec__npy_string(&t, descr, sizeof descr);
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = npy->has_order;
            npy->has_order = true;
            npy->fortran = mmrec__npy_word(&t, "True");
            ok = npy->fortran || mmrec__npy_word(&t, "False");
        } else if (strcmp(key, "shape") == 0) {
            seen = npy->has_shape;
            npy->has_shape = true;
            ok = mmrec__npy_tuple(&t, npy);
        } else {
            return MMREC__NPY_BAD("'%s': unexpected key '%s' in the .npy header", path, key);
        }
        if (seen) return MMREC__NPY_BAD("'%s': key '%s' appears twice in the .npy header", path, key);
        if (!ok)
            return MMREC__NPY_BAD("'%s': bad value for '%s' in the .npy header (byte %zu)", path,
                                  key, t.pos);
        if (!mmrec__npy_eat(&t, ',')) {
            if (!mmrec__npy_eat(&t, '}'))
                return MMREC__NPY_BAD("'%s': bad .npy header: expected ',' or '}' at byte %zu",
                                      path, t.pos);
            break;
        }
    }
    mmrec__npy_skip(&t);
    if (header[t.pos] != '\0')
        return MMREC__NPY_BAD("'%s': the .npy header has text after its dict (byte %zu)", path,
                              t.pos);
    if (!npy->has_descr || !npy->has_order || !npy->has_shape)
        return MMREC__NPY_BAD("'%s': the .npy header lacks '%s'", path,
                              !npy->has_descr ? "descr"
                              : !npy->has_order ? "fortran_order"
                                                : "shape");
    MMREC_FORWARD_IF(mmrec__npy_descr(npy, descr, func));
    if (npy->fortran)
        return MMREC__NPY_BAD("'%s' is in Fortran order (fortran_order True); save a C-order "
                              "array (numpy.ascontiguousarray)",
                              path);
    if (npy->ndim < 1 || npy->ndim > 3)
        return MMREC__NPY_BAD("'%s' holds a %d-D array, expected 1-D, 2-D or 3-D "
                              "([num_items], [num_items, dim] or [num_items, layers, width])",
                              path, npy->ndim);
    if (npy->ndim < 3 && npy->width == 0)
        return MMREC__NPY_BAD("'%s' holds a matrix with 0 columns", path);
    if (npy->layers == 0 || npy->width == 0)
        return MMREC__NPY_BAD("'%s' holds an array of shape (%llu, %llu, %llu): records of 0 "
                              "elements",
                              path, (unsigned long long)npy->rows,
                              (unsigned long long)npy->layers, (unsigned long long)npy->width);
    if (npy->layers > UINT32_MAX || npy->width > UINT64_MAX / npy->layers)
        return MMREC__NPY_BAD("'%s': records of shape (%llu, %llu) are too large", path,
                              (unsigned long long)npy->layers, (unsigned long long)npy->width);
    npy->dim = npy->layers * npy->width;
    return MMREC_OK;
}

/* ---- the file ---- */

/* Reads and checks the magic, version and header; checks the data size. */
static mmrec_status mmrec__npy_open(mmrec__npy *npy, size_t n_items, const char *func) {
    const char *path = npy->path;
    unsigned char pre[12];
    if (npy->file_size < 10)
        return MMREC__NPY_BAD("'%s' is %zu bytes, too short for an .npy file", path,
                              npy->file_size);
    size_t pre_size = npy->file_size < 12 ? 10 : 12;
    MMREC_FORWARD_IF(mmrec__io_pread(npy->fd, pre, pre_size, 0, path, func));
    if (memcmp(pre, "\x93NUMPY", 6) != 0)
        return MMREC__NPY_BAD("'%s' is not an .npy file (bad magic)", path);
    unsigned major = pre[6], minor = pre[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0 || (major > 1 && pre_size < 12))
        return MMREC__NPY_BAD("'%s' has .npy format version %u.%u; 1.0, 2.0 and 3.0 are read",
                              path, major, minor);
    size_t prelude = major == 1 ? 10 : 12;
    size_t header_len = major == 1 ? mmrec__le_get16(pre + 8) : mmrec__le_get32(pre + 8);
    if (header_len > MMREC__NPY_MAX_HEADER || header_len > npy->file_size - prelude)
        return MMREC__NPY_BAD("'%s': the .npy header of %zu bytes runs past the end of the "
                              "file (%zu bytes)",
                              path, header_len, npy->file_size);
    char *header = mmrec__alloc(header_len + 1);
    if (header == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    mmrec_status s = mmrec__io_pread(npy->fd, header, header_len, prelude, path, func);
    if (s == MMREC_OK) {
        header[header_len] = '\0';
        if (strlen(header) != header_len)
            s = MMREC__NPY_BAD("'%s': the .npy header holds a NUL byte", path);
    }
    if (s == MMREC_OK) s = mmrec__npy_dict(npy, header, func);
    mmrec__free(header);
    MMREC_FORWARD_IF(s);
    if (npy->rows != n_items)
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "'%s' has %llu rows, the writer has %zu items", path,
                                (unsigned long long)npy->rows, n_items);
    npy->data_offset = prelude + header_len;
    size_t have = npy->file_size - (size_t)npy->data_offset, want;
    if (!mmrec__mul_size((size_t)npy->rows, (size_t)npy->dim, &want) ||
        !mmrec__mul_size(want, npy->elem, &want))
        return MMREC__NPY_BAD("'%s': %llu records of %llu elements are too large", path,
                              (unsigned long long)npy->rows, (unsigned long long)npy->dim);
    if (have < want)
        return MMREC__NPY_BAD("'%s' holds %zu bytes of data, its header needs %zu (truncated)",
                              path, have, want);
    if (have > want)
        return MMREC__NPY_BAD("'%s' has %zu bytes after its data", path, have - want);
    return MMREC_OK;
}

static uint64_t mmrec__npy_get(const unsigned char *p, size_t size, bool big_endian) {
    uint64_t v = 0;
    for (size_t i = 0; i < size; i++) v = (v << 8) | p[big_endian ? i : size - 1 - i];
    return v;
}

/* Converts `count` raw elements to float32. Returns count, or the index of
 * the first float64 outside float32's finite range. */
static size_t mmrec__npy_decode(const mmrec__npy *npy, const unsigned char *raw, float *dst,
                                size_t count) {
    for (size_t i = 0; i < count; i++, raw += npy->elem) {
        uint64_t bits = mmrec__npy_get(raw, npy->elem, npy->big_endian);
        if (npy->elem == 2) {
            dst[i] = mmrec__cache_f16_to_f32((uint16_t)bits);
        } else if (npy->elem == 4) {
            uint32_t u = (uint32_t)bits;
            memcpy(&dst[i], &u, sizeof u);
        } else {
            double d;
            memcpy(&d, &bits, sizeof d);
            if (isfinite(d) && fabs(d) > FLT_MAX) return i;
            dst[i] = (float)d;
        }
    }
    return count;
}

/* Reads `count` elements at element index `at` of the data, converts them
 * and hands them to the sink as `rows` rows of `cols` starting at the
 * caller's row `row`, column `col`. */
static mmrec_status mmrec__npy_chunk(const mmrec__npy *npy, mmrec__cache_sink *sink,
                                     unsigned char *raw, float *values, size_t row, size_t col,
                                     size_t rows, size_t cols, const char *func) {
    size_t count = rows * cols;
    uint64_t at = (uint64_t)row * npy->dim + col;
    MMREC_FORWARD_IF(mmrec__io_pread(npy->fd, raw, count * npy->elem,
                                     npy->data_offset + at * npy->elem, npy->path, func));
    size_t ok = mmrec__npy_decode(npy, raw, values, count);
    if (ok < count) {
        double d;
        uint64_t bits = mmrec__npy_get(raw + ok * npy->elem, 8, npy->big_endian);
        memcpy(&d, &bits, sizeof d);
        return mmrec__set_error(MMREC_ERANGE, func,
                                "'%s' row %zu column %zu is %g, beyond the range of float32",
                                npy->path, row + ok / cols, col + ok % cols, d);
    }
    for (size_t r = 0; r < rows; r++)
        MMREC_FORWARD_IF(
            mmrec__cache_sink_put(sink, row + r, col, values + r * cols, cols, func));
    return MMREC_OK;
}

/* Streams the data in sorted-id order: runs of consecutive source rows that
 * fit a chunk are read at once; a row longer than a chunk is read in parts. */
static mmrec_status mmrec__npy_stream(const mmrec__npy *npy, mmrec_cache_writer *w,
                                      mmrec__cache_sink *sink, unsigned char *raw, float *values,
                                      const char *func) {
    size_t dim = (size_t)npy->dim, cap = MMREC__CACHE_CHUNK / npy->elem;
    for (size_t pos = 0; pos < w->n_items;) {
        size_t row = mmrec__cache_writer_row(w, pos);
        if (dim <= cap) {
            size_t run = 1;
            while (pos + run < w->n_items && (run + 1) * dim <= cap &&
                   mmrec__cache_writer_row(w, pos + run) == row + run)
                run++;
            MMREC_FORWARD_IF(mmrec__npy_chunk(npy, sink, raw, values, row, 0, run, dim, func));
            pos += run;
        } else {
            for (size_t col = 0; col < dim; col += cap) {
                size_t cols = dim - col < cap ? dim - col : cap;
                MMREC_FORWARD_IF(mmrec__npy_chunk(npy, sink, raw, values, row, col, 1, cols, func));
            }
            pos++;
        }
    }
    return MMREC_OK;
}

mmrec_status mmrec_cache_writer_add_npy(mmrec_cache_writer *writer, const char *field,
                                        mmrec_cache_dtype dtype, const char *npy_path) {
    MMREC_FORWARD_IF(mmrec__cache_writer_check(writer, field, dtype, __func__));
    MMREC_CHECK_NULL(npy_path);
    mmrec__npy npy;
    memset(&npy, 0, sizeof npy);
    npy.path = npy_path;
    MMREC_FORWARD_IF(mmrec__io_open_read(npy_path, &npy.fd, &npy.file_size, __func__));
    /* raw bytes, then the same number of elements as float32 (at most 4x) */
    unsigned char *raw = mmrec__alloc(3 * MMREC__CACHE_CHUNK);
    mmrec_status s = raw ? MMREC_OK : mmrec__set_error(MMREC_ENOMEM, __func__, "out of memory");
    mmrec__cache_sink sink;
    if (s == MMREC_OK) s = mmrec__npy_open(&npy, writer->n_items, __func__);
    if (s == MMREC_OK)
        s = mmrec__cache_field_begin(writer, &sink, dtype, (size_t)npy.layers,
                                     (size_t)npy.width, npy_path, true, __func__);
    if (s == MMREC_OK)
        s = mmrec__npy_stream(&npy, writer, &sink, raw, (float *)(raw + MMREC__CACHE_CHUNK),
                              __func__);
    if (s == MMREC_OK) s = mmrec__cache_field_end(writer, &sink, field, __func__);
    mmrec__free(raw);
    close(npy.fd);
    return s;
}
