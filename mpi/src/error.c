/* libmmrec_mpi's thread-local error message (libmmrec's own buffer has no
 * public setter). */
#include "mpi_internal.h"

#include <stdarg.h>
#include <stdio.h>

#include <mmrec/mmrec.h>

static _Thread_local char mmrec_mpi__message[512];

mmrec_status mmrec_mpi__set_error(mmrec_status status, const char *func, const char *fmt, ...) {
    int len = snprintf(mmrec_mpi__message, sizeof mmrec_mpi__message, "%s: ", func);
    if (len < 0 || (size_t)len >= sizeof mmrec_mpi__message) return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mmrec_mpi__message + len, sizeof mmrec_mpi__message - (size_t)len, fmt, ap);
    va_end(ap);
    return status;
}

mmrec_status mmrec_mpi__forward_error(mmrec_status status, const char *func, const char *what) {
    return mmrec_mpi__set_error(status, func, "%s: %s", what, mmrec_last_error());
}

mmrec_status mmrec_mpi__mpi_error(int code, const char *func, const char *call) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "code %d", code);
    return mmrec_mpi__set_error(MMREC_EIO, func, "%s failed: %s", call, text);
}

const char *mmrec_mpi_last_error(void) {
    return mmrec_mpi__message[0] ? mmrec_mpi__message : "no error";
}
