/* Internal feature cache (DESIGN.md §3, §5): the file layout, a validated
 * mapped version of a file, the writer and its streaming field encoder, and
 * the 16-bit float conversions.
 *
 * File layout (format version 1), all integers little-endian:
 *   header (64 bytes)
 *     0  magic "MMRCACHE"              8 bytes
 *     8  u32 format version (1)
 *    12  u32 field count
 *    16  u64 item count (>= 1)
 *    24  u64 index offset (8-byte aligned, after the last field's data)
 *    32  u64 index size
 *    40  u64 file size (= index offset + index size)
 *    48  u32 CRC-32C of the id table
 *    52  u32 CRC-32C of the index
 *    56  u32 reserved (0)
 *    60  u32 CRC-32C of header bytes 0..59
 *   id table at offset 64: item count i64 ids, strictly increasing, >= 0
 *   field data: for each field in index order, at a 64-byte-aligned offset
 *     after the id table, item count records of dim elements (f32, f16 or
 *     bf16), record k belonging to id k of the table; zero padding between
 *   index: one entry per field, in the order the fields were added
 *     0  u32 name length (1..255)
 *     4  u8 dtype (0 f32, 1 f16, 2 bf16)    5  u8[3] reserved (0)
 *     8  u64 dim (>= 1)
 *    16  u64 data offset (64-byte aligned)
 *    24  u64 data size (item count * dim * element size)
 *    32  u32 CRC-32C of the data
 *    36  u32 layers: 0 for a flat record of dim elements (read as [1, dim]);
 *        L >= 1 for an [L, dim / L] record, L dividing dim. 0.1 wrote 0
 *        here (the field was reserved), so its files read as flat; a 0.1
 *        reader rejects a file with a layered field (non-zero reserved
 *        bytes) rather than misreading it. Writers store 0 for L = 1.
 *    40  name bytes, a NUL, zero padding to a multiple of 8
 *
 * The writer streams the id table and each field to a temporary file as
 * they come, then appends the index and writes the header at offset 0 when
 * committing. The reader maps the file and checks every size, offset and
 * checksum before anything reads a record. */
#ifndef MMREC_CACHE_INTERNAL_H
#define MMREC_CACHE_INTERNAL_H

#include "mmrec/cache.h"
#include "../core/core_internal.h"
#include "../io/io_internal.h"

#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the feature cache reads ids and records in host order: little-endian hosts only"
#endif

#define MMREC__CACHE_VERSION 1u
#define MMREC__CACHE_HEADER_SIZE 64u
#define MMREC__CACHE_ALIGN 64u
#define MMREC__CACHE_ENTRY_FIXED 40u
#define MMREC__CACHE_MAX_NAME 255u
/* Bytes converted and written (or read from an .npy file) at a time. */
#define MMREC__CACHE_CHUNK ((size_t)1 << 16)

extern const char mmrec__cache_magic[8];

/* On behalf of `func`, a variable in scope: for checks shared by several
 * public functions. */
#define MMREC__CACHE_FAIL_IF(cond, status, ...)                                \
    do {                                                                       \
        if (MMREC__UNLIKELY(cond)) return mmrec__set_error((status), func, __VA_ARGS__); \
    } while (0)
#define MMREC__CACHE_CHECK_NULL(ptr) \
    MMREC__CACHE_FAIL_IF((ptr) == NULL, MMREC_EINVAL, "argument '%s' is NULL", #ptr)

static inline size_t mmrec__cache_elem_size(mmrec_cache_dtype dtype) {
    return dtype == MMREC_CACHE_F32 ? 4 : 2;
}

/* ---- 16-bit floats (half.c) ---- */

/* Round to nearest, ties to even; overflow gives infinity, NaN stays NaN. */
uint16_t mmrec__cache_f32_to_f16(float value);
uint16_t mmrec__cache_f32_to_bf16(float value);
/* Exact. */
float mmrec__cache_f16_to_f32(uint16_t half);
static inline float mmrec__cache_bf16_to_f32(uint16_t bf) {
    uint32_t bits = (uint32_t)bf << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Converts `count` finite floats to `dtype` into dst. Returns count, or the
 * index of the first value that overflows a 16-bit dtype (dst is then
 * partly written). */
size_t mmrec__cache_encode(mmrec_cache_dtype dtype, const float *src, void *dst, size_t count);
/* Widens `count` elements of `dtype` to float32: float16 with F16C and
 * bfloat16 with AVX2 when the CPU has them, else with the portable loops of
 * mmrec__cache_widen_generic; both give the same floats for every non-NaN
 * value. */
void mmrec__cache_widen(mmrec_cache_dtype dtype, const void *src, float *dst, size_t count);
void mmrec__cache_widen_generic(mmrec_cache_dtype dtype, const void *src, float *dst,
                                size_t count);
/* Whether the CPU has F16C (and AVX), which mmrec__cache_widen uses. */
bool mmrec__cache_f16c_usable(void);

/* ---- format (format.c) ---- */

/* Bytes of the index entry of a field whose name has `name_len` bytes. */
size_t mmrec__cache_entry_size(size_t name_len);

typedef struct mmrec__cache_entry {
    const char *name; /* NUL-terminated */
    mmrec_cache_dtype dtype;
    uint64_t dim, offset, size;
    uint32_t crc;
    uint32_t layers; /* 0 or 1: flat */
} mmrec__cache_entry;

/* Encodes one index entry into mmrec__cache_entry_size() zeroed bytes. */
void mmrec__cache_put_entry(unsigned char *dst, const mmrec__cache_entry *entry);

/* Encodes the 64-byte header, its checksum included. */
void mmrec__cache_put_header(unsigned char *dst, uint32_t n_fields, uint64_t n_items,
                             uint64_t index_offset, uint64_t index_size, uint32_t ids_crc,
                             uint32_t index_crc);

/* One field of a validated file. */
typedef struct mmrec__cache_field {
    const char *name; /* NUL-terminated, in the mapping */
    mmrec_cache_dtype dtype;
    size_t dim;
    size_t layers, width;      /* dim = layers * width; a flat field is [1, dim] */
    size_t row_bytes;
    const unsigned char *data; /* n_items rows of row_bytes, in the mapping */
} mmrec__cache_field;

/* One mapped, validated cache file. Immutable once published; freed when
 * its reference count (held under the owning cache's lock) drops to 0. */
typedef struct mmrec__cache_version {
    size_t refs;
    const unsigned char *base;
    size_t size;
    size_t n_items;
    const int64_t *ids; /* sorted, in the mapping */
    bool dense;         /* ids are exactly 0 .. n_items - 1 */
    mmrec__cache_field *fields;
    int n_fields;
} mmrec__cache_version;

/* Maps `path` and validates all of it; the new version has one reference.
 * MMREC_EIO, MMREC_EFORMAT naming what is wrong, MMREC_ENOMEM. */
mmrec_status mmrec__cache_version_open(const char *path, mmrec__cache_version **out,
                                       const char *func) MMREC__WUR;
void mmrec__cache_version_free(mmrec__cache_version *version);

/* The field named `name`, or NULL. */
const mmrec__cache_field *mmrec__cache_find_field(const mmrec__cache_version *version,
                                                  const char *name);

/* ---- the open cache (reader.c) ---- */

/* Validates the handle and takes a reference to its current version, so the
 * caller reads one version from start to end. Never allocates. */
mmrec_status mmrec__cache_acquire(const mmrec_cache *cache, mmrec__cache_version **out,
                                  const char *func) MMREC__WUR;
/* Drops a reference; the last one unmaps the version. */
void mmrec__cache_release(const mmrec_cache *cache, mmrec__cache_version *version);

/* ---- the writer (writer.c, encode.c) ---- */

typedef struct mmrec__cache_wfield {
    char name[MMREC__CACHE_MAX_NAME + 1];
    mmrec_cache_dtype dtype;
    uint64_t dim, offset, size;
    uint32_t crc;
    uint32_t layers; /* as stored: 0 for a flat field */
} mmrec__cache_wfield;

struct mmrec_cache_writer {
    uint32_t magic;
    bool finished;               /* committed, or a commit failed */
    char *path;                  /* owned */
    mmrec__atomic_file file;
    size_t n_items;
    int64_t *ids;                /* sorted */
    size_t *perm;                /* sorted position -> caller's row; NULL: identity */
    uint32_t ids_crc;
    uint64_t end;                /* bytes of the temporary file in use */
    mmrec__cache_wfield *fields;
    size_t n_fields, cap_fields;
    unsigned char *buf;          /* MMREC__CACHE_CHUNK bytes for the encoder */
};

/* The caller's row of the records at sorted position `pos`. */
static inline size_t mmrec__cache_writer_row(const mmrec_cache_writer *w, size_t pos) {
    return w->perm ? w->perm[pos] : pos;
}

/* Streams one field's records, in sorted-id order, to the temporary file:
 * converts, checks, checksums and writes them a chunk at a time. */
typedef struct mmrec__cache_sink {
    mmrec_cache_writer *writer;
    mmrec_cache_dtype dtype;
    size_t dim;
    uint32_t layers;        /* as stored: 0 for a flat field */
    uint64_t start, offset; /* first byte of the field; where the next flush goes */
    size_t used;            /* bytes waiting in writer->buf */
    uint32_t crc;
    const char *source;     /* "data", or the .npy path (source_is_file) */
    bool source_is_file;
} mmrec__cache_sink;

/* Checks the writer handle (not finished), the field name (valid, not yet
 * added) and the dtype. */
mmrec_status mmrec__cache_writer_check(const mmrec_cache_writer *w, const char *field,
                                       mmrec_cache_dtype dtype, const char *func) MMREC__WUR;

/* Reserves room for one more field of `layers` x `width` elements a record
 * (layers 1: a flat record) and starts its sink. */
mmrec_status mmrec__cache_field_begin(mmrec_cache_writer *w, mmrec__cache_sink *sink,
                                      mmrec_cache_dtype dtype, size_t layers, size_t width,
                                      const char *source, bool source_is_file,
                                      const char *func) MMREC__WUR;

/* Appends `count` values of the caller's row `row`, starting at column
 * `col`. MMREC_ENUMERIC for NaN/Inf, MMREC_ERANGE for a 16-bit overflow,
 * MMREC_EIO; each naming row and column. */
mmrec_status mmrec__cache_sink_put(mmrec__cache_sink *sink, size_t row, size_t col,
                                   const float *src, size_t count, const char *func) MMREC__WUR;

/* Flushes the sink and records the field. Until this succeeds the writer
 * is as it was before mmrec__cache_field_begin. */
mmrec_status mmrec__cache_field_end(mmrec_cache_writer *w, mmrec__cache_sink *sink,
                                    const char *field, const char *func) MMREC__WUR;

#endif
