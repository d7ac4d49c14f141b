/* Writes one float past the end of a 3-float tensor. Built with the
 * sanitizer flags by `make test-asan`, which expects AddressSanitizer to
 * report a heap-buffer-overflow: the sanitizer build allocates exactly what
 * is asked, so an overflow smaller than the normal build's 64-byte rounding
 * is seen too. */
#include <mmrec/mmrec.h>
#include <stdio.h>

int main(void) {
    int64_t shape[1] = {3};
    mmrec_tensor *t;
    float *data;
    if (mmrec_tensor_create(1, shape, &t) != MMREC_OK || mmrec_tensor_data(t, &data) != MMREC_OK)
        return 2;
    volatile float *v = data;
    v[3] = 1.0f;
    puts("asan_overflow: the write past the end was not reported");
    mmrec_tensor_destroy(t);
    return 0;
}
