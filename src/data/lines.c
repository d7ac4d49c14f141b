/* The data readers' line reader (lines.h): one buffer of MMREC__DATA_CHUNK
 * bytes refilled with read(2), the unfinished last line moved to its front
 * before each refill and the buffer doubled when a single line does not
 * fit, so lines of any length are read without holding the file. */
#include "lines.h"
#include "../io/file_io.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

mmrec_status mmrec__lines_open(mmrec__lines *r, const char *path, const char *func) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->func = func;
    size_t size = 0;
    MMREC_FORWARD_IF(mmrec__io_open_read(path, &r->fd, &size, func));
    r->size = size;
    r->cap = MMREC__DATA_CHUNK;
    r->buf = mmrec__alloc(r->cap);
    if (r->buf == NULL) {
        close(r->fd);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory for the read buffer");
    }
    return MMREC_OK;
}

void mmrec__lines_close(mmrec__lines *r) {
    close(r->fd);
    mmrec__free(r->buf);
    r->buf = NULL;
}

/* Moves the unread bytes to the front, doubles the buffer if they fill it,
 * and reads more after them (or notes the end of the file). */
static mmrec_status mmrec__lines_fill(mmrec__lines *r) {
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->scan -= r->start;
        r->start = 0;
    }
    if (r->end == r->cap) {
        size_t cap = r->cap * 2;
        char *buf = cap > r->cap ? mmrec__alloc(cap) : NULL;
        if (buf == NULL)
            return mmrec__set_error(MMREC_ENOMEM, r->func,
                                    "out of memory for line %llu of '%s' (over %zu bytes)",
                                    r->line_no + 1, r->path, r->cap);
        memcpy(buf, r->buf, r->end);
        mmrec__free(r->buf);
        r->buf = buf;
        r->cap = cap;
    }
    ssize_t n;
    do {
        size_t want = r->cap - r->end;
        n = read(r->fd, r->buf + r->end, want < MMREC__DATA_CHUNK ? want : MMREC__DATA_CHUNK);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        int err = errno;
        char msg[128];
        if (strerror_r(err, msg, sizeof msg) != 0) snprintf(msg, sizeof msg, "errno %d", err);
        return mmrec__set_error(MMREC_EIO, r->func, "cannot read '%s': %s", r->path, msg);
    }
    if (n == 0) r->eof = true;
    r->end += (size_t)n;
    r->read_total += (uint64_t)n;
    return MMREC_OK;
}

/* The next line, without its "\n" or "\r\n"; *line is NULL at the end of
 * the file. The line stays valid until the next call. A NUL byte in it is
 * MMREC_EFORMAT. */
mmrec_status mmrec__lines_next(mmrec__lines *r, const char **line, size_t *len) {
    for (;;) {
        char *nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
        if (nl != NULL || (r->eof && r->start < r->end)) {
            size_t stop = nl ? (size_t)(nl - r->buf) : r->end;
            const char *s = r->buf + r->start;
            size_t n = stop - r->start;
            if (n > 0 && s[n - 1] == '\r') n--;
            r->start = r->scan = nl ? stop + 1 : stop;
            r->line_no++;
            const char *nul = memchr(s, '\0', n);
            if (nul != NULL)
                return mmrec__set_error(MMREC_EFORMAT, r->func,
                                        "'%s' line %llu: NUL byte at column %zu (not a text "
                                        "file?)",
                                        r->path, r->line_no, (size_t)(nul - s) + 1);
            *line = s;
            *len = n;
            return MMREC_OK;
        }
        if (r->eof) {
            *line = NULL;
            *len = 0;
            return MMREC_OK;
        }
        r->scan = r->end;
        MMREC_FORWARD_IF(mmrec__lines_fill(r));
    }
}

/* A field for a message: at most 40 bytes of it, control and non-ASCII
 * bytes as \xNN, "..." when cut. */
const char *mmrec__data_quote(const char *s, size_t len, char *dst, size_t cap) {
    size_t used = 0, k = 0;
    for (; k < len && k < 40 && used + 5 < cap; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c >= 0x20 && c < 0x7f) dst[used++] = (char)c;
        else used += (size_t)snprintf(dst + used, cap - used, "\\x%02x", c);
    }
    if (k < len && used + 4 <= cap) {
        memcpy(dst + used, "...", 3);
        used += 3;
    }
    dst[used] = '\0';
    return dst;
}
