/* CPU features the compilers' __builtin_cpu_supports does not name
 * everywhere (clang 14 rejects "f16c"). */
#include "core_internal.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#include <stdatomic.h>

bool mmrec__cpu_has_f16c(void) {
    /* 0 unknown, 1 no, 2 yes; racing first calls store the same value */
    static atomic_int known;
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (k == 0) {
        unsigned a, b, c, d;
        k = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) ? 2 : 1;
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k == 2;
}
#else
bool mmrec__cpu_has_f16c(void) { return false; }
#endif
