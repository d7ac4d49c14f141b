/* The NaN and Inf policy's shared pieces: the scan every check uses and the
 * process-wide check-finite mode (core.h). */
#include "core_internal.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

atomic_int mmrec__check_finite_mode = 0;

mmrec_status mmrec_set_check_finite(int enabled) {
    MMREC_FAIL_IF(enabled != 0 && enabled != 1, MMREC_EINVAL, "enabled is %d, expected 0 or 1",
                  enabled);
    atomic_store_explicit(&mmrec__check_finite_mode, enabled, memory_order_relaxed);
    return MMREC_OK;
}

int mmrec_get_check_finite(void) { return mmrec__check_finite_on() ? 1 : 0; }

/* A float is NaN or infinite exactly when its exponent bits are all ones:
 * the integer test vectorizes (a float compare chain would not, without
 * -ffast-math), so the scan runs at memory speed. Blocks of 1024 keep the
 * search for the exact index short once a block is known to hold one. */
MMREC__SIMD_CLONES
static bool mmrec__block_has_nonfinite(const float *x, size_t n) {
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return bad != 0;
}

size_t mmrec__first_nonfinite(const float *x, size_t n) {
    for (size_t b = 0; b < n; b += 1024) {
        size_t len = n - b < 1024 ? n - b : 1024;
        if (!mmrec__block_has_nonfinite(x + b, len)) continue;
        for (size_t i = b; i < b + len; i++)
            if (!isfinite(x[i])) return i;
    }
    return n;
}

mmrec_status mmrec__check_finite(const char *func, const char *name, const float *x, size_t n) {
    size_t i = mmrec__first_nonfinite(x, n);
    if (MMREC__UNLIKELY(i < n))
        return mmrec__set_error(MMREC_ENUMERIC, func, "%s[%zu] is %g (must be finite)", name, i,
                                (double)x[i]);
    return MMREC_OK;
}
