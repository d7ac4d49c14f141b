/* Plain file access with error messages (see file_io.h). */
#define _XOPEN_SOURCE 700
#include "file_io.h"
#include "io_internal.h"
#include "syscalls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static mmrec_status mmrec__io_fail(const char *func, const char *what, const char *path, int err) {
    char msg[128];
    if (strerror_r(err, msg, sizeof msg) != 0) snprintf(msg, sizeof msg, "errno %d", err);
    return mmrec__set_error(MMREC_EIO, func, "cannot %s '%s': %s", what, path, msg);
}

mmrec_status mmrec__io_open_read(const char *path, int *fd_out, size_t *size_out,
                                 const char *func) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mmrec__io_fail(func, "open", path, errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return mmrec__io_fail(func, "stat", path, err);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return mmrec__set_error(MMREC_EIO, func, "cannot read '%s': not a regular file", path);
    }
    *fd_out = fd;
    *size_out = (size_t)st.st_size;
    return MMREC_OK;
}

#ifdef MMREC__ASAN
/* Sanitizer builds serve the file from a heap block of exactly its size
 * instead of a mapping: a read past the end of the file that stays inside
 * its last page is then reported, not silently served by the page. */
static mmrec_status mmrec__io_read_whole(int fd, size_t size, const unsigned char **base_out,
                                         const char *path, const char *func) {
    void *buf = NULL;
    if (posix_memalign(&buf, 64, size) != 0)
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory reading '%s'", path);
    mmrec_status s = mmrec__io_pread(fd, buf, size, 0, path, func);
    if (s != MMREC_OK) {
        free(buf);
        return s;
    }
    *base_out = buf;
    return MMREC_OK;
}
#endif

mmrec_status mmrec__io_map_read(const char *path, const unsigned char **base_out,
                                size_t *size_out, const char *func) {
    int fd = -1;
    size_t size = 0;
    MMREC_FORWARD_IF(mmrec__io_open_read(path, &fd, &size, func));
    const unsigned char *base = NULL;
    if (size > 0) {
#ifdef MMREC__ASAN
        mmrec_status s = mmrec__io_read_whole(fd, size, &base, path, func);
        if (s != MMREC_OK) {
            close(fd);
            return s;
        }
#else
        void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            int err = errno;
            close(fd);
            return mmrec__io_fail(func, "map", path, err);
        }
        base = map;
#endif
    }
    close(fd); /* the mapping keeps the file */
    *base_out = base;
    *size_out = size;
    return MMREC_OK;
}

void mmrec__io_unmap(const unsigned char *base, size_t size) {
#ifdef MMREC__ASAN
    (void)size;
    free((void *)base);
#else
    if (base) munmap((void *)base, size);
#endif
}

mmrec_status mmrec__io_pread(int fd, void *buf, size_t size, uint64_t offset, const char *path,
                             const char *func) {
    unsigned char *p = buf;
    while (size > 0) {
        ssize_t n = pread(fd, p, size > ((size_t)1 << 30) ? ((size_t)1 << 30) : size,
                          (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return mmrec__io_fail(func, "read", path, errno);
        }
        if (n == 0)
            return mmrec__set_error(MMREC_EFORMAT, func, "'%s' ends at byte %llu (truncated)",
                                    path, (unsigned long long)offset);
        p += n;
        size -= (size_t)n;
        offset += (uint64_t)n;
    }
    return MMREC_OK;
}

mmrec_status mmrec__io_pwrite(int fd, const void *buf, size_t size, uint64_t offset,
                              const char *path, const char *func) {
    const unsigned char *p = buf;
    while (size > 0) {
        ssize_t n = mmrec__sys_pwrite(
            fd, p, size > ((size_t)1 << 30) ? ((size_t)1 << 30) : size, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return mmrec__io_fail(func, "write", path, errno);
        }
        if (n == 0) return mmrec__io_fail(func, "write", path, EIO); /* no progress */
        p += n;
        size -= (size_t)n;
        offset += (uint64_t)n;
    }
    return MMREC_OK;
}

mmrec_status mmrec__io_truncate(int fd, uint64_t size, const char *path, const char *func) {
    while (mmrec__sys_ftruncate(fd, (off_t)size) != 0)
        if (errno != EINTR) return mmrec__io_fail(func, "resize", path, errno);
    return MMREC_OK;
}

mmrec_status mmrec__io_check_prologue(const unsigned char *base, size_t size, size_t header_size,
                                      const char magic[8], uint32_t version, const char *kind,
                                      const char *path, const char *func) {
    if (size < header_size)
        return mmrec__set_error(MMREC_EFORMAT, func,
                                "'%s' is %zu bytes, shorter than the %zu-byte header (truncated "
                                "or not a %s)",
                                path, size, header_size, kind);
    if (memcmp(base, magic, 8) != 0)
        return mmrec__set_error(MMREC_EFORMAT, func, "'%s' is not a libmmrec %s (bad magic)", path,
                                kind);
    if (mmrec__crc_mismatch(base, 60, mmrec__le_get32(base + 60)))
        return mmrec__set_error(MMREC_EFORMAT, func,
                                "'%s': header checksum mismatch (corrupt file)", path);
    uint32_t found = mmrec__le_get32(base + 8);
    if (found != version)
        return mmrec__set_error(MMREC_EFORMAT, func,
                                "'%s' has format version %u, this library reads version %u", path,
                                found, version);
    return MMREC_OK;
}
