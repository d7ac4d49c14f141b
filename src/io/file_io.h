/* Internal plain file access with error messages: opening a file for
 * reading, mapping it read-only, positional reads and writes, truncation,
 * and little-endian byte helpers for file formats. Errors are MMREC_EIO
 * naming the path and the system error, on behalf of `func`. */
#ifndef MMREC_IO_FILE_IO_H
#define MMREC_IO_FILE_IO_H

#include "../core/core_internal.h"

/* Opens a regular file read-only; *size_out is its size. MMREC_EIO when it
 * cannot be opened or is not a regular file. */
mmrec_status mmrec__io_open_read(const char *path, int *fd_out, size_t *size_out,
                                 const char *func) MMREC__WUR;

/* Maps a whole regular file read-only and shared (PROT_READ, MAP_SHARED), so
 * every process mapping it shares one page-cache copy. An empty file gives
 * *base_out NULL and *size_out 0. Release with mmrec__io_unmap. Sanitizer
 * builds (MMREC__ASAN) read the file into a heap block of exactly its size
 * instead, so a read past its end is reported even inside its last page;
 * callers see the same bytes and the same ownership either way. */
mmrec_status mmrec__io_map_read(const char *path, const unsigned char **base_out,
                                size_t *size_out, const char *func) MMREC__WUR;
void mmrec__io_unmap(const unsigned char *base, size_t size);

/* Reads exactly `size` bytes at `offset`. A file that ends first gives
 * MMREC_EFORMAT ("truncated"). */
mmrec_status mmrec__io_pread(int fd, void *buf, size_t size, uint64_t offset, const char *path,
                             const char *func) MMREC__WUR;

/* Writes all `size` bytes at `offset`. */
mmrec_status mmrec__io_pwrite(int fd, const void *buf, size_t size, uint64_t offset,
                              const char *path, const char *func) MMREC__WUR;

/* Sets the file's size. */
mmrec_status mmrec__io_truncate(int fd, uint64_t size, const char *path, const char *func)
    MMREC__WUR;

/* Checks the start every libmmrec file format shares: at least header_size
 * bytes, the 8-byte magic, the CRC-32C of bytes 0..59 stored at 60, and the
 * u32 format version at 8. `kind` names the format in messages ("feature
 * cache", "checkpoint"). MMREC_EFORMAT naming what is wrong. */
mmrec_status mmrec__io_check_prologue(const unsigned char *base, size_t size, size_t header_size,
                                      const char magic[8], uint32_t version, const char *kind,
                                      const char *path, const char *func) MMREC__WUR;

/* x rounded up to a multiple of a. */
static inline uint64_t mmrec__align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* ---- little-endian fields ---- */

static inline void mmrec__le_put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void mmrec__le_put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint16_t mmrec__le_get16(const unsigned char *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t mmrec__le_get32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t mmrec__le_get64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

#endif
