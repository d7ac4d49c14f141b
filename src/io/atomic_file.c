/* Crash-safe file replacement: write a temporary file in the target's
 * directory, fsync it, rename it over the target, fsync the directory. A
 * crash at any moment leaves the old file or the new one, never a torn one. */
#define _XOPEN_SOURCE 700
#include "io_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static mmrec_status mmrec__io_error(const char *func, const char *what, const char *path,
                                    int err) {
    char msg[128];
    if (strerror_r(err, msg, sizeof msg) != 0) snprintf(msg, sizeof msg, "errno %d", err);
    return mmrec__set_error(MMREC_EIO, func, "cannot %s '%s': %s", what, path, msg);
}

mmrec_status mmrec__atomic_open(mmrec__atomic_file *f, const char *path, const char *func) {
    size_t len = strlen(path);
    f->fd = -1;
    f->path = path;
    f->tmp_path = mmrec__alloc(len + 32);
    if (f->tmp_path == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    snprintf(f->tmp_path, len + 32, "%s.tmp.%ld", path, (long)getpid());
    f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        mmrec_status s = mmrec__io_error(func, "create", f->tmp_path, errno);
        mmrec__free(f->tmp_path);
        f->tmp_path = NULL;
        return s;
    }
    return MMREC_OK;
}

mmrec_status mmrec__atomic_write(mmrec__atomic_file *f, const void *data, size_t size,
                                 const char *func) {
    const unsigned char *p = data;
    while (size > 0) {
        ssize_t n = write(f->fd, p, size > ((size_t)1 << 30) ? ((size_t)1 << 30) : size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return mmrec__io_error(func, "write", f->tmp_path, errno);
        }
        p += n;
        size -= (size_t)n;
    }
    return MMREC_OK;
}

void mmrec__atomic_abort(mmrec__atomic_file *f) {
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    if (f->tmp_path) {
        unlink(f->tmp_path);
        mmrec__free(f->tmp_path);
        f->tmp_path = NULL;
    }
}

/* fsync of the directory holding `path`, so the rename itself is durable. */
static mmrec_status mmrec__sync_dir(const char *path, const char *func) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (slash == NULL) {
        dir = mmrec__strdup(".");
    } else {
        size_t len = slash == path ? 1 : (size_t)(slash - path);
        dir = mmrec__alloc(len + 1);
        if (dir) {
            memcpy(dir, path, len);
            dir[len] = '\0';
        }
    }
    if (dir == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    mmrec_status s = MMREC_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        s = mmrec__io_error(func, "open directory", dir, errno);
    } else {
        /* Some file systems cannot fsync a directory (EINVAL): nothing more
         * can be done there. */
        if (fsync(fd) != 0 && errno != EINVAL) s = mmrec__io_error(func, "fsync", dir, errno);
        close(fd);
    }
    mmrec__free(dir);
    return s;
}

mmrec_status mmrec__atomic_commit(mmrec__atomic_file *f, const char *func) {
    mmrec_status s = MMREC_OK;
    if (fsync(f->fd) != 0) s = mmrec__io_error(func, "fsync", f->tmp_path, errno);
    int fd = f->fd;
    f->fd = -1;
    if (close(fd) != 0 && s == MMREC_OK) s = mmrec__io_error(func, "close", f->tmp_path, errno);
    if (s == MMREC_OK && rename(f->tmp_path, f->path) != 0)
        s = mmrec__io_error(func, "replace", f->path, errno);
    if (s != MMREC_OK) {
        mmrec__atomic_abort(f);
        return s;
    }
    mmrec__free(f->tmp_path);
    f->tmp_path = NULL;
    return mmrec__sync_dir(f->path, func);
}
