/* The one thread-count setting, applied to BLAS and to the library's loops. */
#include "core_internal.h"
#include "../tensor/blas.h"

#include <stdatomic.h>
#include <unistd.h>

static int mmrec__threads = 0;           /* 0 = not yet decided: online CPUs */
static atomic_int mmrec__blas_applied = 0; /* thread count last given to BLAS */

int mmrec__num_threads(void) {
    if (mmrec__threads > 0) return mmrec__threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 1024 ? 1024 : (int)n);
}

void mmrec__blas_threads_sync(void) {
    int want = mmrec__num_threads();
    if (atomic_load_explicit(&mmrec__blas_applied, memory_order_relaxed) == want) return;
    mmrec__blas_set_threads(want);
    atomic_store(&mmrec__blas_applied, want);
}

mmrec_status mmrec_set_num_threads(int num_threads) {
    MMREC_FAIL_IF(num_threads < 1 || num_threads > 1024, MMREC_ERANGE,
                  "num_threads is %d, expected 1..1024", num_threads);
    mmrec__threads = num_threads;
    mmrec__blas_threads_sync();
    return MMREC_OK;
}

int mmrec_get_num_threads(void) { return mmrec__num_threads(); }
