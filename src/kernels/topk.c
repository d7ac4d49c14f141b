/* The bounded top-K heap (kernels_internal.h): the scan with its
 * vectorized prefilter, and the final sort. Used by the full-ranking
 * evaluation and the kNN graph. */
#include "kernels_internal.h"

/* Ids scanned per step of the prefilter. */
#define MMREC__TOPK_STRIDE 64

MMREC__SIMD_CLONES
void mmrec__topk_scan(const float *row, size_t base, size_t len, size_t k, float *hs,
                      int32_t *hid, size_t *n_kept) {
    size_t i = 0;
    for (; i < len && *n_kept < k; i++)
        mmrec__topk_offer(hs, hid, n_kept, k, row[i], (int32_t)(base + i));
    while (i < len) {
        size_t end = len - i < MMREC__TOPK_STRIDE ? len : i + MMREC__TOPK_STRIDE;
        float thr = hs[0];
        int above = 0;
        for (size_t j = i; j < end; j++) above += row[j] > thr;
        if (above)
            for (size_t j = i; j < end; j++)
                mmrec__topk_offer(hs, hid, n_kept, k, row[j], (int32_t)(base + j));
        i = end;
    }
}

void mmrec__topk_sort(float *hs, int32_t *hid, size_t n) {
    for (size_t m = n; m > 1; m--) {
        float x = hs[m - 1];
        int32_t xid = hid[m - 1];
        hs[m - 1] = hs[0];
        hid[m - 1] = hid[0];
        mmrec__topk_sift(hs, hid, m - 1, 0, x, xid);
    }
}
