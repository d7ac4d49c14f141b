/* Reads one byte past the end of a 10-byte file opened through the
 * library's file mapping (mmrec__io_map_read, which the cache, index and
 * checkpoint readers use). Built with the sanitizer flags by `make
 * test-asan`, which expects AddressSanitizer to report a
 * heap-buffer-overflow: a sanitizer build serves files from a heap block
 * of exactly their size, where a mapping would make the rest of the last
 * page readable. */
#include "io/file_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
    char path[] = "/tmp/mmrec-asan-map-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, "0123456789", 10) != 10) return 2;
    close(fd);
    const unsigned char *base = NULL;
    size_t size = 0;
    mmrec_status s = mmrec__io_map_read(path, &base, &size, "probe");
    unlink(path);
    if (s != MMREC_OK || size != 10) return 2;
    volatile const unsigned char *v = base;
    int past = v[size];
    printf("asan_map_overflow: the read past the end (%d) was not reported\n", past);
    mmrec__io_unmap(base, size);
    return 0;
}
