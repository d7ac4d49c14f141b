/* Internal to libmmrec_mpi: the thread-local error message. */
#ifndef MMREC_MPI_INTERNAL_H
#define MMREC_MPI_INTERNAL_H

#include "mmrec_mpi.h"

#if defined(__GNUC__)
#define MMREC_MPI__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MMREC_MPI__PRINTF(a, b)
#endif

/* Writes "<func>: <message>" into this thread's buffer (no allocation) and
 * returns `status`. */
mmrec_status mmrec_mpi__set_error(mmrec_status status, const char *func, const char *fmt, ...)
    MMREC_MPI__PRINTF(3, 4);

/* The same for a failed libmmrec call: "<func>: <what>: <libmmrec's
 * message>". */
mmrec_status mmrec_mpi__forward_error(mmrec_status status, const char *func, const char *what);

/* The same for a failed MPI call: MMREC_EIO quoting MPI's error string. */
mmrec_status mmrec_mpi__mpi_error(int code, const char *func, const char *call);

#endif
