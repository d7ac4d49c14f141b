/* Small helpers the examples on IISAN's data files share (iisan.c,
 * twotower.c, distill.c, serve.c): a CHECK that exits with the library's message,
 * allocation that exits on failure, a monotonic clock, command-line
 * options, and reading the data directory's two files. A header of static functions: the examples
 * include it. */
#ifndef MMREC_EXAMPLE_UTIL_H
#define MMREC_EXAMPLE_UTIL_H

#include <mmrec/mmrec.h>

#include <dirent.h>
#include <stdint.h>
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

/* A training epoch's progress on stderr: a bar redrawn in place on a
 * terminal, else a line at each quarter of the steps; `name` padded to
 * `width` columns. */
static inline void progress(const char *name, int epoch, size_t step, size_t steps, double loss,
                            int tty, int width) {
    if (tty) {
        char bar[31];
        size_t done = 30 * step / steps;
        for (size_t k = 0; k < 30; k++) bar[k] = k < done ? '=' : k == done ? '>' : ' ';
        bar[30] = 0;
        fprintf(stderr, "\r  %-*s epoch %3d [%s] loss %.4f", width, name, epoch, bar, loss);
    } else if (steps >= 4 && step % (steps / 4) == 0 && step < steps) {
        fprintf(stderr, "  %-*s epoch %3d step %zu/%zu loss %.4f\n", width, name, epoch, step,
                steps, loss);
    }
    fflush(stderr);
}

/* Reads the data directory's two files (mmrec_sequences_read_tsv) and
 * copies the users' sequences out: user u's items are items[off[u] ..
 * off[u + 1]), *count of them in all. Returns the sequences handle (the
 * caller destroys it); exits on an error. */
static inline mmrec_sequences *read_sequences(const char *dir, int64_t *num_users,
                                              int64_t *num_items, size_t *count, int64_t **items,
                                              size_t **off) {
    char items_path[4096], users_path[4096];
    find_files(dir, items_path, users_path, sizeof items_path);
    mmrec_sequences *seqs;
    CHECK(mmrec_sequences_read_tsv(items_path, users_path, NULL, &seqs));
    CHECK(mmrec_sequences_info(seqs, num_users, num_items, count));
    *items = xmalloc(*count * sizeof **items);
    *off = xmalloc(((size_t)*num_users + 1) * sizeof **off);
    (*off)[0] = 0;
    for (int64_t u = 0; u < *num_users; u++) {
        const int64_t *s;
        size_t n;
        CHECK(mmrec_sequences_user(seqs, u, &s, &n));
        memcpy(*items + (*off)[u], s, n * sizeof *s);
        (*off)[u + 1] = (*off)[u] + n;
    }
    fprintf(stderr, "data: %lld users, %lld items, %zu interactions (%s)\n",
            (long long)*num_users, (long long)*num_items, *count, dir);
    return seqs;
}

/* A command-line option "--name value" (or "--name" alone for a flag),
 * stored through dst: int, size_t, float, uint64_t, const char * or, for
 * OPT_FLAG, an int set to 1. */
typedef enum opt_type { OPT_INT, OPT_SIZE, OPT_FLOAT, OPT_U64, OPT_STR, OPT_FLAG } opt_type;

typedef struct opt_spec {
    const char *name; /* with its dashes: "--epochs" */
    opt_type type;
    void *dst;
} opt_spec;

/* Parses argv by specs; a word that does not start with '-' goes to
 * *positional. Returns 1, or prints "usage: <argv[0]> <usage>" and
 * returns 0 for an unknown option or a value missing. */
static inline int parse_options(int argc, char **argv, const opt_spec *specs, size_t n,
                                const char **positional, const char *usage) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            *positional = a;
            continue;
        }
        const opt_spec *o = NULL;
        for (size_t k = 0; k < n && !o; k++)
            if (strcmp(a, specs[k].name) == 0) o = &specs[k];
        if (o && o->type == OPT_FLAG) {
            *(int *)o->dst = 1;
            continue;
        }
        if (!o || i + 1 >= argc) {
            fprintf(stderr, "%s %s\nusage: %s %s\n",
                    o ? "a value is missing after" : "unknown option", a, argv[0], usage);
            return 0;
        }
        const char *v = argv[++i];
        switch (o->type) {
        case OPT_INT: *(int *)o->dst = atoi(v); break;
        case OPT_SIZE: *(size_t *)o->dst = (size_t)strtoull(v, NULL, 10); break;
        case OPT_FLOAT: *(float *)o->dst = strtof(v, NULL); break;
        case OPT_U64: *(uint64_t *)o->dst = (uint64_t)strtoull(v, NULL, 10); break;
        default: *(const char **)o->dst = v; break;
        }
    }
    return 1;
}

#endif /* MMREC_EXAMPLE_UTIL_H */
