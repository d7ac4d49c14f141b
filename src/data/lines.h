/* The line reader shared by the data readers (lines.c): a file read a
 * chunk at a time, lines of any length, "\n" or "\r\n" endings, NUL bytes
 * rejected, the 1-based number of each line kept for messages. Internal to
 * src/data/. */
#ifndef MMREC_DATA_LINES_H
#define MMREC_DATA_LINES_H

#include "data_internal.h"

/* Bytes read at a time (and the line buffer's first size). */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
/* a fuzzing build (make fuzz): small inputs cross refills and doublings */
#define MMREC__DATA_CHUNK ((size_t)64)
#else
#define MMREC__DATA_CHUNK ((size_t)1 << 20)
#endif

typedef struct mmrec__lines {
    const char *path; /* borrowed */
    const char *func;
    int fd;
    char *buf;
    size_t cap;
    size_t start, end; /* unread bytes buf[start, end) */
    size_t scan;       /* no '\n' in buf[start, scan) */
    bool eof;
    unsigned long long line_no; /* of the line last returned, 1-based */
    uint64_t size;              /* of the file when opened */
    uint64_t read_total;        /* bytes read so far */
} mmrec__lines;

/* Bytes of the file consumed: up to the end of the last line returned. */
static inline uint64_t mmrec__lines_consumed(const mmrec__lines *r) {
    return r->read_total - (r->end - r->start);
}

/* Opens `path` for reading; messages name `func`. MMREC_EIO, MMREC_ENOMEM. */
mmrec_status mmrec__lines_open(mmrec__lines *r, const char *path, const char *func) MMREC__WUR;
void mmrec__lines_close(mmrec__lines *r);

/* The next line, without its "\n" or "\r\n"; *line is NULL at the end of
 * the file. The line stays valid until the next call. A NUL byte in it is
 * MMREC_EFORMAT; MMREC_EIO, MMREC_ENOMEM. */
mmrec_status mmrec__lines_next(mmrec__lines *r, const char **line, size_t *len) MMREC__WUR;

/* A field for a message: at most 40 bytes of s[0, len), control and
 * non-ASCII bytes as \xNN, "..." when cut, into dst (cap >= 200 bytes). */
const char *mmrec__data_quote(const char *s, size_t len, char *dst, size_t cap);

#endif
