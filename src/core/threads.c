/* The one thread-count setting, used by the library's pool (pool.c); BLAS
 * runs single-threaded inside the pool's chunks. */
#include "core_internal.h"
#include "../tensor/blas.h"

#include <stdatomic.h>
#include <unistd.h>

static atomic_int mmrec__threads = 0;    /* 0 = not yet decided: online CPUs */
static atomic_int mmrec__blas_single = 0; /* BLAS set to one thread */

int mmrec__num_threads(void) {
    int set = atomic_load_explicit(&mmrec__threads, memory_order_relaxed);
    if (set > 0) return set;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 1024 ? 1024 : (int)n);
}

void mmrec__blas_threads_sync(void) {
    if (atomic_load_explicit(&mmrec__blas_single, memory_order_relaxed)) return;
    mmrec__blas_set_threads(1);
    atomic_store(&mmrec__blas_single, 1);
}

mmrec_status mmrec_set_num_threads(int num_threads) {
    MMREC_FAIL_IF(num_threads < 1 || num_threads > 1024, MMREC_ERANGE,
                  "num_threads is %d, expected 1..1024", num_threads);
    atomic_store_explicit(&mmrec__threads, num_threads, memory_order_relaxed);
    return MMREC_OK;
}

int mmrec_get_num_threads(void) { return mmrec__num_threads(); }
