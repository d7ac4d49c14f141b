/* Internal file I/O: CRC-32C, crash-safe file replacement, and the
 * checkpoint container (DESIGN.md §5).
 *
 * Container layout, all integers little-endian:
 *   header (64 bytes)
 *     0  magic "MMRECCKP"           8 bytes
 *     8  u32 format version (1)
 *    12  u32 reserved (0)
 *    16  u64 entry count
 *    24  u64 index offset (64)
 *    32  u64 index size
 *    40  u64 data offset (64-byte aligned, >= index end)
 *    48  u64 file size
 *    56  u32 CRC-32C of the index
 *    60  u32 CRC-32C of header bytes 0..59
 *   index: one record per entry, each 8-byte aligned
 *     0  u32 name length (1..1023)    4  u8 kind (1 param, 2 optimizer state, 3 meta)
 *     5  u8 dtype (1 f32, 2 u64)      6  u8 ndim (1..4)       7  u8 reserved (0)
 *     8  u64 shape[4] (unused dims 0)
 *    40  u64 data offset (64-byte aligned, from the start of the file)
 *    48  u64 byte size (numel * element size)
 *    56  u32 CRC-32C of the data      60  u32 reserved (0)
 *    64  name bytes (no NUL), zero-padded to a multiple of 8
 *   data: each entry's bytes at its offset, in index order, zero padding
 *         between them. */
#ifndef MMREC_IO_INTERNAL_H
#define MMREC_IO_INTERNAL_H

#include "../core/core_internal.h"

/* CRC-32C (Castagnoli), software slice-by-8. `crc` is the running value:
 * 0 to start, the previous result to continue. Thread-safe. */
uint32_t mmrec__crc32c(uint32_t crc, const void *data, size_t size);

/* True when the CRC-32C of `size` bytes at `data` differs from `stored`:
 * every reader checks a stored checksum through this. A fuzzing build
 * (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, make fuzz) accepts any stored
 * value, so mutated files reach the structural checks behind the
 * checksums. A checksum catches corruption, not a crafted file: whatever
 * a fuzzing build finds, a file with matching checksums reaches too. */
static inline bool mmrec__crc_mismatch(const void *data, size_t size, uint32_t stored) {
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    (void)mmrec__crc32c(0, data, size);
    (void)stored;
    return false;
#else
    return mmrec__crc32c(0, data, size) != stored;
#endif
}

/* ---- crash-safe replacement of a file ----
 * Writes go to "<path>.tmp.<pid>" in the same directory, held under an
 * exclusive flock until it is renamed; commit fsyncs it, renames it over
 * `path`, closes it and fsyncs the directory. Any failure before the rename
 * removes the temporary file and leaves the old file as it was; a failure
 * while syncing the directory (after the rename) leaves the new file in
 * place, and the message says so. Opening first removes the temporaries of
 * `path` that no live writer holds (left by a crash). A second save of the
 * same path while this process holds its temporary fails with MMREC_EIO and
 * disturbs nothing. Errors are MMREC_EIO naming the path and the system
 * error (MMREC_ENOMEM for memory, only ever from mmrec__atomic_open). The
 * system calls go through syscalls.h. */
typedef struct mmrec__atomic_file {
    int fd;
    const char *path; /* borrowed */
    char *tmp_path;   /* owned: one block holding tmp_path, dir_path, scratch */
    char *dir_path;   /* in tmp_path's block */
} mmrec__atomic_file;

mmrec_status mmrec__atomic_open(mmrec__atomic_file *f, const char *path, const char *func)
    MMREC__WUR;
mmrec_status mmrec__atomic_write(mmrec__atomic_file *f, const void *data, size_t size,
                                 const char *func) MMREC__WUR;
/* On failure the temporary file is already removed. */
mmrec_status mmrec__atomic_commit(mmrec__atomic_file *f, const char *func) MMREC__WUR;
/* Closes and removes the temporary file. */
void mmrec__atomic_abort(mmrec__atomic_file *f);

/* ---- checkpoint container ---- */

#define MMREC__CKPT_VERSION 1u
#define MMREC__CKPT_HEADER_SIZE 64u
#define MMREC__CKPT_ALIGN 64u
#define MMREC__CKPT_MAX_NAME 1023u

typedef enum mmrec__ckpt_kind {
    MMREC__CKPT_PARAM = 1,
    MMREC__CKPT_OPTIM = 2,
    MMREC__CKPT_META = 3
} mmrec__ckpt_kind;

typedef enum mmrec__ckpt_dtype { MMREC__CKPT_F32 = 1, MMREC__CKPT_U64 = 2 } mmrec__ckpt_dtype;

/* One entry to write. Its name is "<label>:<name>", or `name` alone when
 * label is NULL. Its bytes are `data`, or `inline_u64` when data is NULL
 * (up to 4 values, for small metadata). */
typedef struct mmrec__ckpt_item {
    const char *label;
    const char *name;
    mmrec__ckpt_kind kind;
    mmrec__ckpt_dtype dtype;
    int ndim;
    int64_t shape[MMREC_MAX_DIMS];
    const void *data;
    uint64_t inline_u64[4];
} mmrec__ckpt_item;

/* Writes the items as one container, crash-safely. */
mmrec_status mmrec__ckpt_write(const char *path, const mmrec__ckpt_item *items, size_t n_items,
                               const char *func) MMREC__WUR;

/* A validated entry of a file being read; name and data point into the
 * mapping (the name is not NUL-terminated). */
typedef struct mmrec__ckpt_entry {
    const char *name;
    size_t name_len;
    mmrec__ckpt_kind kind;
    mmrec__ckpt_dtype dtype;
    int ndim;
    int64_t shape[MMREC_MAX_DIMS];
    size_t numel;
    const void *data;
    size_t size;
} mmrec__ckpt_entry;

typedef struct mmrec__ckpt_reader {
    const char *path; /* borrowed */
    const unsigned char *base;
    size_t size;
    mmrec__ckpt_entry *entries;
    size_t n_entries;
} mmrec__ckpt_reader;

/* Maps `path` and validates all of it: size, magic, version, both
 * checksums of the header and index, every entry's bounds and every data
 * checksum. MMREC_EIO if the file cannot be read, MMREC_EFORMAT naming what
 * is wrong, MMREC_ENOMEM. On success close with mmrec__ckpt_close. */
mmrec_status mmrec__ckpt_open(mmrec__ckpt_reader *r, const char *path, const char *func)
    MMREC__WUR;
void mmrec__ckpt_close(mmrec__ckpt_reader *r);

/* The entry of `kind` named "<label>:<name>" (or `name`), or NULL. */
const mmrec__ckpt_entry *mmrec__ckpt_find(const mmrec__ckpt_reader *r, mmrec__ckpt_kind kind,
                                          const char *label, const char *name);

/* True when `e` holds `dtype` with exactly the given shape. */
bool mmrec__ckpt_entry_is(const mmrec__ckpt_entry *e, mmrec__ckpt_dtype dtype, int ndim,
                          const int64_t *shape);

#endif
