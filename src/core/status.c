/* Status table, thread-local error message and version queries. */
#include "core_internal.h"

#include <stdarg.h>
#include <stdio.h>

#define MMREC__ERROR_CAPACITY 512

static _Thread_local char mmrec__error_buf[MMREC__ERROR_CAPACITY];

const char *mmrec_status_str(mmrec_status status) {
    switch (status) {
#define MMREC__STATUS_TEXT(name, value, text) \
    case name:                                \
        return text;
        MMREC_STATUS_TABLE(MMREC__STATUS_TEXT)
#undef MMREC__STATUS_TEXT
    default:
        return "unknown status";
    }
}

const char *mmrec_status_name(mmrec_status status) {
    switch (status) {
#define MMREC__STATUS_NAME(name, value, text) \
    case name:                                \
        return #name;
        MMREC_STATUS_TABLE(MMREC__STATUS_NAME)
#undef MMREC__STATUS_NAME
    default:
        return "MMREC_UNKNOWN";
    }
}

const char *mmrec_last_error(void) {
    return mmrec__error_buf[0] ? mmrec__error_buf : "no error";
}

mmrec_status mmrec__set_error(mmrec_status status, const char *func, const char *fmt, ...) {
    int head = snprintf(mmrec__error_buf, sizeof mmrec__error_buf, "%s: ", func);
    if (head < 0 || (size_t)head >= sizeof mmrec__error_buf) head = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mmrec__error_buf + head, sizeof mmrec__error_buf - (size_t)head, fmt, ap);
    va_end(ap);
    return status;
}

unsigned mmrec_version_number(void) { return MMREC_VERSION_NUMBER; }

const char *mmrec_version_string(void) { return MMREC_VERSION_STRING; }

int mmrec_max_dims(void) { return MMREC_MAX_DIMS; }
