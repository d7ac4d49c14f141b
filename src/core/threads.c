/* The one thread-count setting, used by the library's pool (pool.c); BLAS
 * runs single-threaded inside the pool's chunks (kernels/blas.c). */
#include "core_internal.h"

#include <stdatomic.h>
#include <unistd.h>

static atomic_int mmrec__threads = 0;    /* 0 = not yet decided: online CPUs */

int mmrec__num_threads(void) {
    int set = atomic_load_explicit(&mmrec__threads, memory_order_relaxed);
    if (set > 0) return set;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 1024 ? 1024 : (int)n);
}

mmrec_status mmrec_set_num_threads(int num_threads) {
    MMREC_FAIL_IF(num_threads < 1 || num_threads > 1024, MMREC_ERANGE,
                  "num_threads is %d, expected 1..1024", num_threads);
    atomic_store_explicit(&mmrec__threads, num_threads, memory_order_relaxed);
    return MMREC_OK;
}

int mmrec_get_num_threads(void) { return mmrec__num_threads(); }
