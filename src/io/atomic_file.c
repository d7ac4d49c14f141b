/* Crash-safe file replacement: write a temporary file in the target's
 * directory, fsync it, rename it over the target, fsync the directory. A
 * crash at any moment leaves the old file or the new one, never a torn one.
 *
 * The temporary file "<path>.tmp.<pid>" is locked (flock, exclusive) from
 * its creation to its rename, so a temporary that nobody holds was left by
 * a writer that died: the next save of the same path removes it
 * (mmrec__atomic_sweep). The lock goes with the open file, so a process
 * killed mid-write releases it; a live writer's temporary is never touched.
 * Every system call that changes a file goes through syscalls.h. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include "io_internal.h"
#include "syscalls.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static mmrec_status mmrec__io_error(const char *func, const char *what, const char *path,
                                    int err) {
    char msg[128];
    if (strerror_r(err, msg, sizeof msg) != 0) snprintf(msg, sizeof msg, "errno %d", err);
    return mmrec__set_error(MMREC_EIO, func, "cannot %s '%s': %s", what, path, msg);
}

/* Room for "<path>.tmp.<pid>" and for any name the sweep looks at. */
#define MMREC__TMP_ROOM(len) ((len) + 32)

/* Whether `fd` is still the file named `path` (not renamed or removed
 * between the open and the lock). */
static bool mmrec__same_file(int fd, const char *path) {
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* Removes the temporaries "<base>.tmp.<digits>" of `f->path` that no live
 * writer holds (left by a process that died while writing). Best effort:
 * a file that cannot be opened, locked or removed is left alone. */
static void mmrec__atomic_sweep(const mmrec__atomic_file *f, char *scratch, size_t room) {
    const char *slash = strrchr(f->path, '/');
    const char *base = slash ? slash + 1 : f->path;
    size_t base_len = strlen(base), dir_len = slash ? (size_t)(slash - f->path) + 1 : 0;
    DIR *d = opendir(f->dir_path);
    if (d == NULL) return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const char *name = e->d_name;
        if (strncmp(name, base, base_len) != 0 || strncmp(name + base_len, ".tmp.", 5) != 0)
            continue;
        const char *digits = name + base_len + 5;
        size_t n_digits = strspn(digits, "0123456789");
        if (n_digits == 0 || digits[n_digits] != '\0') continue;
        if (dir_len + strlen(name) + 1 > room) continue;
        memcpy(scratch, f->path, dir_len);
        strcpy(scratch + dir_len, name);
        if (strcmp(scratch, f->tmp_path) == 0) continue; /* ours: reused below */
        int fd = mmrec__sys_open(scratch, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
        if (fd < 0) continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && mmrec__same_file(fd, scratch))
            (void)mmrec__sys_unlink(scratch);
        (void)mmrec__sys_close(fd); /* releases the lock */
    }
    closedir(d);
}

/* Opens and locks the temporary file, then empties it (it may be a dead
 * writer's of the same pid). */
static mmrec_status mmrec__atomic_create(mmrec__atomic_file *f, const char *func) {
    for (int attempt = 0;; attempt++) {
        int fd;
        while ((fd = mmrec__sys_open(f->tmp_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0 &&
               errno == EINTR) {
        }
        if (fd < 0) return mmrec__io_error(func, "create", f->tmp_path, errno);
        int r;
        while ((r = flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {
        }
        if (r != 0 && errno == EWOULDBLOCK) {
            /* Another save of this path in this process (or in a process of
             * the same pid in another pid namespace) is writing it. */
            (void)mmrec__sys_close(fd);
            return mmrec__set_error(MMREC_EIO, func,
                                    "cannot create '%s': another save of '%s' is writing it",
                                    f->tmp_path, f->path);
        }
        /* r != 0 otherwise: a file system without flock; write unlocked. */
        if (mmrec__same_file(fd, f->tmp_path) || attempt == 8) {
            f->fd = fd;
            break;
        }
        (void)mmrec__sys_close(fd); /* swept away between open and lock: again */
    }
    int r;
    while ((r = mmrec__sys_ftruncate(f->fd, 0)) != 0 && errno == EINTR) {
    }
    if (r != 0) {
        mmrec_status s = mmrec__io_error(func, "empty", f->tmp_path, errno);
        mmrec__atomic_abort(f);
        return s;
    }
    return MMREC_OK;
}

mmrec_status mmrec__atomic_open(mmrec__atomic_file *f, const char *path, const char *func) {
    size_t len = strlen(path), room = MMREC__TMP_ROOM(len);
    f->fd = -1;
    f->path = path;
    f->dir_path = NULL;
    /* One block: the temporary's name, the directory's, the sweep's scratch. */
    f->tmp_path = mmrec__alloc(3 * room);
    if (f->tmp_path == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    f->dir_path = f->tmp_path + room;
    snprintf(f->tmp_path, room, "%s.tmp.%ld", path, (long)getpid());
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        strcpy(f->dir_path, ".");
    } else {
        size_t dir_len = slash == path ? 1 : (size_t)(slash - path);
        memcpy(f->dir_path, path, dir_len);
        f->dir_path[dir_len] = '\0';
    }
    mmrec__atomic_sweep(f, f->tmp_path + 2 * room, room);
    mmrec_status s = mmrec__atomic_create(f, func);
    if (s != MMREC_OK && f->tmp_path) {
        mmrec__free(f->tmp_path);
        f->tmp_path = f->dir_path = NULL;
    }
    return s;
}

mmrec_status mmrec__atomic_write(mmrec__atomic_file *f, const void *data, size_t size,
                                 const char *func) {
    const unsigned char *p = data;
    while (size > 0) {
        ssize_t n = mmrec__sys_write(f->fd, p, size > ((size_t)1 << 30) ? ((size_t)1 << 30) : size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return mmrec__io_error(func, "write", f->tmp_path, errno);
        }
        if (n == 0) return mmrec__io_error(func, "write", f->tmp_path, EIO); /* no progress */
        p += n;
        size -= (size_t)n;
    }
    return MMREC_OK;
}

void mmrec__atomic_abort(mmrec__atomic_file *f) {
    if (f->tmp_path && f->fd >= 0) {
        /* Removed while still locked, so no sweep can meet a half-gone file. */
        (void)mmrec__sys_unlink(f->tmp_path);
    }
    if (f->fd >= 0) (void)mmrec__sys_close(f->fd);
    f->fd = -1;
    mmrec__free(f->tmp_path);
    f->tmp_path = f->dir_path = NULL;
}

/* fsync of the directory holding the file, so the rename itself is
 * durable. Called after the rename: a failure here leaves the new file in
 * place, and the message says so. */
static mmrec_status mmrec__sync_dir(const mmrec__atomic_file *f, const char *func) {
    char what[64];
    int fd;
    while ((fd = mmrec__sys_open(f->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)) < 0 &&
           errno == EINTR) {
    }
    int err = fd < 0 ? errno : 0;
    snprintf(what, sizeof what, "%s directory", fd < 0 ? "open" : "fsync");
    if (fd >= 0) {
        int r;
        while ((r = mmrec__sys_fsync(fd)) != 0 && errno == EINTR) {
        }
        /* Some file systems cannot fsync a directory (EINVAL): nothing more
         * can be done there. */
        err = r != 0 && errno != EINVAL ? errno : 0;
        (void)mmrec__sys_close(fd); /* read-only: nothing to lose */
    }
    if (err == 0) return MMREC_OK;
    char msg[128];
    if (strerror_r(err, msg, sizeof msg) != 0) snprintf(msg, sizeof msg, "errno %d", err);
    return mmrec__set_error(MMREC_EIO, func,
                            "cannot %s '%s': %s ('%s' is replaced but the replacement may not "
                            "survive a crash)",
                            what, f->dir_path, msg, f->path);
}

mmrec_status mmrec__atomic_commit(mmrec__atomic_file *f, const char *func) {
    mmrec_status s = MMREC_OK;
    int r;
    while ((r = mmrec__sys_fsync(f->fd)) != 0 && errno == EINTR) {
    }
    if (r != 0) s = mmrec__io_error(func, "fsync", f->tmp_path, errno);
    /* Renamed while still open and locked (see the top of this file). */
    if (s == MMREC_OK) {
        while ((r = mmrec__sys_rename(f->tmp_path, f->path)) != 0 && errno == EINTR) {
        }
        if (r != 0) s = mmrec__io_error(func, "replace", f->path, errno);
    }
    if (s != MMREC_OK) {
        mmrec__atomic_abort(f);
        return s;
    }
    /* The new file is in place. Its data were synced above, so closing cannot
     * lose them: an error of close (which releases the descriptor whatever it
     * reports) is not the caller's. */
    (void)mmrec__sys_close(f->fd);
    f->fd = -1;
    s = mmrec__sync_dir(f, func);
    mmrec__free(f->tmp_path);
    f->tmp_path = f->dir_path = NULL;
    return s;
}
