/* Shared by the libFuzzer harnesses of tests/fuzz (make fuzz): the input
 * goes into a per-process in-memory file (memfd, opened by the library
 * through /proc/self/fd/N like any path), then the harness calls the public
 * API on it. A failed call must leave a message; anything else the harness
 * finds wrong stops the run with a report (abort), as a sanitizer would. */
#ifndef MMREC_FUZZ_COMMON_H
#define MMREC_FUZZ_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mmrec/mmrec.h"

/* Stops the run with a message naming the harness's complaint. */
#define FUZZ_REQUIRE(cond, ...)                                                 \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "fuzz: %s:%d: requirement failed: %s: ", __FILE__,  \
                    __LINE__, #cond);                                           \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* A status from the library: OK, or a failure with a non-empty message and
 * a status of the documented set (not a stray value). */
static inline int fuzz_ok(mmrec_status s, const char *call) {
    if (s == MMREC_OK) return 1;
    const char *msg = mmrec_last_error();
    FUZZ_REQUIRE(msg != NULL && msg[0] != '\0', "%s returned %s with an empty message", call,
                 mmrec_status_name(s));
    FUZZ_REQUIRE(strcmp(mmrec_status_name(s), "MMREC_UNKNOWN") != 0 &&
                     strncmp(mmrec_status_name(s), "MMREC_E", 7) == 0,
                 "%s returned the unknown status %d", call, (int)s);
    return 0;
}
#define FUZZ_OK(call) fuzz_ok((call), #call)
/* A call that must succeed on a valid object. */
#define FUZZ_MUST(call)                                                        \
    do {                                                                       \
        mmrec_status fuzz__s = (call);                                         \
        FUZZ_REQUIRE(fuzz__s == MMREC_OK, "%s: %s", mmrec_status_name(fuzz__s), \
                     mmrec_last_error());                                      \
    } while (0)

/* One in-memory file per slot and process; its path is /proc/self/fd/N. */
typedef struct fuzz_file {
    int fd;
    char path[64];
} fuzz_file;

static inline void fuzz_file_init(fuzz_file *f, const char *name) {
    f->fd = memfd_create(name, MFD_CLOEXEC);
    FUZZ_REQUIRE(f->fd >= 0, "memfd_create: %s", strerror(errno));
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

/* Replaces the file's contents with `size` bytes at `data`. */
static inline const char *fuzz_file_set(fuzz_file *f, const uint8_t *data, size_t size) {
    FUZZ_REQUIRE(ftruncate(f->fd, 0) == 0, "ftruncate: %s", strerror(errno));
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(f->fd, data + done, size - done, (off_t)done);
        FUZZ_REQUIRE(n > 0, "pwrite: %s", strerror(errno));
        done += (size_t)n;
    }
    return f->path;
}

/* A per-process path in a RAM-backed directory, for files the library
 * writes itself (a writer's temporary file and its rename need a real
 * directory). */
static inline void fuzz_scratch_path(char *buf, size_t cap, const char *name) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(buf, cap, "%s/mmrec-fuzz-%ld-%s", dir, (long)getpid(), name);
}

#endif
