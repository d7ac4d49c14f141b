/* Allocation wrappers and the allocator hook. */
#include "core_internal.h"
#include "config_sizes.h"

#include <stdlib.h>
#include <string.h>

/* Blocks are 64-byte aligned and, in a normal build, rounded up to a
 * multiple of 64 bytes. An AddressSanitizer build asks for exactly `size`
 * bytes, so a read or write past the end of any allocation is reported
 * (the rounding would make up to 63 bytes past it addressable). */
static void *mmrec__default_alloc(void *user, size_t size) {
    (void)user;
    void *ptr = NULL;
#ifdef MMREC__ASAN
    size_t rounded = size ? size : 1;
#else
    size_t rounded = (size + 63) & ~(size_t)63;
    if (rounded < size) return NULL;
    if (rounded == 0) rounded = 64;
#endif
    if (posix_memalign(&ptr, 64, rounded) != 0) return NULL;
    return ptr;
}

static void mmrec__default_release(void *user, void *ptr) {
    (void)user;
    free(ptr);
}

static mmrec_allocator mmrec__allocator = {sizeof(mmrec_allocator), mmrec__default_alloc,
                                           mmrec__default_release, NULL};

mmrec_status mmrec_set_allocator(const mmrec_allocator *allocator) {
    if (allocator == NULL) {
        mmrec__allocator.alloc = mmrec__default_alloc;
        mmrec__allocator.release = mmrec__default_release;
        mmrec__allocator.user = NULL;
        return MMREC_OK;
    }
    MMREC_FAIL_IF(allocator->struct_size < (size_t)MMREC__MIN_SIZE(mmrec_allocator), MMREC_EINVAL,
                  "allocator->struct_size is %zu, expected at least %zu",
                  allocator->struct_size, (size_t)MMREC__MIN_SIZE(mmrec_allocator));
    MMREC_CHECK_NULL(allocator->alloc);
    MMREC_CHECK_NULL(allocator->release);
    mmrec__allocator.alloc = allocator->alloc;
    mmrec__allocator.release = allocator->release;
    mmrec__allocator.user = allocator->user;
    return MMREC_OK;
}

void *mmrec__alloc(size_t size) { return mmrec__allocator.alloc(mmrec__allocator.user, size); }

void *mmrec__calloc(size_t count, size_t size) {
    size_t total;
    if (!mmrec__mul_size(count, size, &total)) return NULL;
    void *ptr = mmrec__alloc(total);
    if (ptr) memset(ptr, 0, total);
    return ptr;
}

void mmrec__free(void *ptr) {
    if (ptr) mmrec__allocator.release(mmrec__allocator.user, ptr);
}

char *mmrec__strdup(const char *s) {
    size_t len = strlen(s) + 1;
    char *copy = mmrec__alloc(len);
    if (copy) memcpy(copy, s, len);
    return copy;
}
