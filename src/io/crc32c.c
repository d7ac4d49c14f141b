/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven
 * slice-by-8 in portable C. Check value: "123456789" -> 0xE3069283. */
#include "io_internal.h"

#include <pthread.h>

static uint32_t mmrec__crc_table[8][256];
static pthread_once_t mmrec__crc_once = PTHREAD_ONCE_INIT;

static void mmrec__crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        mmrec__crc_table[0][i] = c;
    }
    for (int i = 0; i < 256; i++) {
        uint32_t c = mmrec__crc_table[0][i];
        for (int t = 1; t < 8; t++) {
            c = mmrec__crc_table[0][c & 0xffu] ^ (c >> 8);
            mmrec__crc_table[t][i] = c;
        }
    }
}

uint32_t mmrec__crc32c(uint32_t crc, const void *data, size_t size) {
    pthread_once(&mmrec__crc_once, mmrec__crc_init);
    const uint32_t(*t)[256] = (const uint32_t(*)[256])mmrec__crc_table;
    const unsigned char *p = data;
    crc = ~crc;
    while (size >= 8) {
        /* Assembled byte by byte: endian-independent; one load on x86/ARM. */
        uint32_t lo = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                      (uint32_t)p[3] << 24;
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                      (uint32_t)p[7] << 24;
        lo ^= crc;
        crc = t[7][lo & 0xffu] ^ t[6][(lo >> 8) & 0xffu] ^ t[5][(lo >> 16) & 0xffu] ^
              t[4][lo >> 24] ^ t[3][hi & 0xffu] ^ t[2][(hi >> 8) & 0xffu] ^
              t[1][(hi >> 16) & 0xffu] ^ t[0][hi >> 24];
        p += 8;
        size -= 8;
    }
    while (size--) crc = t[0][(crc ^ *p++) & 0xffu] ^ (crc >> 8);
    return ~crc;
}
