/* Small helpers the examples on IISAN's data files share (iisan.c,
 * twotower.c): a CHECK that exits with the library's message, allocation
 * that exits on failure, a monotonic clock, and finding the data
 * directory's two files. A header of static functions: the examples
 * include it. */
#ifndef MMREC_EXAMPLE_UTIL_H
#define MMREC_EXAMPLE_UTIL_H

#include <mmrec/mmrec.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Exits with the failed call, its status and the library's message. */
#define CHECK(call)                                                                   \
    do {                                                                              \
        mmrec_status s_ = (call);                                                     \
        if (s_ != MMREC_OK) {                                                         \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call, \
                    mmrec_status_name(s_), mmrec_last_error());                       \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static inline void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static inline void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu x %zu bytes)\n", n, size);
        exit(1);
    }
    return p;
}

static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The data directory's *_items.tsv and *_users*.tsv (IISAN's layout). */
static inline void find_files(const char *dir, char *items, char *users, size_t cap) {
    DIR *dp = opendir(dir);
    if (!dp) {
        fprintf(stderr, "cannot open the data directory %s\n", dir);
        exit(1);
    }
    items[0] = users[0] = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 10 && strcmp(e->d_name + n - 10, "_items.tsv") == 0)
            snprintf(items, cap, "%s/%s", dir, e->d_name);
        else if (strstr(e->d_name, "_users") && n > 4 && strcmp(e->d_name + n - 4, ".tsv") == 0)
            snprintf(users, cap, "%s/%s", dir, e->d_name);
    }
    closedir(dp);
    if (!items[0] || !users[0]) {
        fprintf(stderr, "%s: expected a *_items.tsv and a *_users*.tsv file\n", dir);
        exit(1);
    }
}

#endif /* MMREC_EXAMPLE_UTIL_H */
