/* Size-first config structs (the Linux openat2 rules). */
#include "core_internal.h"

#include <string.h>

mmrec_status mmrec__config_init(void *cfg, size_t size, const void *defaults, size_t ours_size,
                                size_t min_size, const char *func) {
    if (cfg == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'cfg' is NULL");
    if (size < min_size)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "size is %zu, smaller than %zu (the struct's first release)",
                                size, min_size);
    size_t copy = size < ours_size ? size : ours_size;
    memcpy(cfg, defaults, copy);
    if (size > ours_size) memset((char *)cfg + ours_size, 0, size - ours_size);
    memcpy(cfg, &size, sizeof size);
    return MMREC_OK;
}

mmrec_status mmrec__config_merge(void *ours, size_t ours_size, size_t min_size,
                                 const void *theirs, const char *func) {
    if (theirs == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'cfg' is NULL");
    size_t size;
    memcpy(&size, theirs, sizeof size);
    if (size < min_size)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "cfg->struct_size is %zu, expected at least %zu (use "
                                "the _config_init macro)",
                                size, min_size);
    if (size > ours_size) {
        const unsigned char *tail = (const unsigned char *)theirs + ours_size;
        for (size_t i = 0; i < size - ours_size; i++)
            if (tail[i] != 0)
                return mmrec__set_error(MMREC_EINVAL, func,
                                        "config from a newer libmmrec: field at byte %zu is "
                                        "set but unknown to this version",
                                        ours_size + i);
    }
    memcpy(ours, theirs, size < ours_size ? size : ours_size);
    memcpy(ours, &ours_size, sizeof ours_size);
    return MMREC_OK;
}
