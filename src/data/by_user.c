/* Checking pairs and grouping them by user with two counting sorts (see
 * data_internal.h). */
#include "data_internal.h"

#include <string.h>

static size_t mmrec__pairs_by_user(const int64_t *users, const int64_t *items, size_t n,
                                   size_t U, size_t I, int32_t offset, int64_t *row_ptr,
                                   int32_t *col, int32_t *by_item, int64_t *item_ptr) {
    /* stable order by item, then stable by user: each row comes out sorted */
    memset(item_ptr, 0, (I + 1) * sizeof *item_ptr);
    for (size_t k = 0; k < n; k++) item_ptr[items[k] + 1]++;
    for (size_t i = 0; i < I; i++) item_ptr[i + 1] += item_ptr[i];
    for (size_t k = 0; k < n; k++) by_item[item_ptr[items[k]]++] = (int32_t)k;
    memset(row_ptr, 0, (U + 1) * sizeof *row_ptr);
    for (size_t k = 0; k < n; k++) row_ptr[users[k] + 1]++;
    for (size_t u = 0; u < U; u++) row_ptr[u + 1] += row_ptr[u];
    /* row_ptr[u] is row u's cursor during the fill, then shifted back */
    for (size_t j = 0; j < n; j++) {
        size_t k = (size_t)by_item[j];
        col[row_ptr[users[k]]++] = (int32_t)items[k] + offset;
    }
    for (size_t u = U; u > 0; u--) row_ptr[u] = row_ptr[u - 1];
    row_ptr[0] = 0;
    size_t w = 0;
    for (size_t u = 0; u < U; u++) {
        size_t lo = (size_t)row_ptr[u], hi = (size_t)row_ptr[u + 1];
        row_ptr[u] = (int64_t)w;
        for (size_t j = lo; j < hi; j++)
            if (j == lo || col[j] != col[j - 1]) col[w++] = col[j];
    }
    row_ptr[U] = (int64_t)w;
    return w;
}

mmrec_status mmrec__group_by_user(const int64_t *users, const int64_t *items, size_t n, size_t U,
                                  size_t I, int32_t offset, size_t extra_rows, const char *name,
                                  int64_t **row_ptr_out, int32_t **col_out, size_t *distinct,
                                  const char *func) {
    for (size_t k = 0; k < n; k++) {
        if (users[k] < 0 || (uint64_t)users[k] >= U)
            return mmrec__set_error(MMREC_ERANGE, func, "%susers[%zu] is %lld, outside [0, %zu)",
                                    name, k, (long long)users[k], U);
        if (items[k] < 0 || (uint64_t)items[k] >= I)
            return mmrec__set_error(MMREC_ERANGE, func, "%sitems[%zu] is %lld, outside [0, %zu)",
                                    name, k, (long long)items[k], I);
    }
    int64_t *row_ptr = mmrec__alloc((U + 1 + extra_rows) * sizeof *row_ptr);
    int32_t *col = mmrec__alloc((n ? 2 * n : 1) * sizeof *col);
    int64_t *item_ptr = mmrec__alloc((I + 1) * sizeof *item_ptr);
    if (row_ptr == NULL || col == NULL || item_ptr == NULL) {
        mmrec__free(row_ptr);
        mmrec__free(col);
        mmrec__free(item_ptr);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory grouping %zu %spairs by user",
                                n, name);
    }
    /* the upper half of col is the sort's scratch */
    *distinct = mmrec__pairs_by_user(users, items, n, U, I, offset, row_ptr, col, col + n,
                                     item_ptr);
    mmrec__free(item_ptr);
    *row_ptr_out = row_ptr;
    *col_out = col;
    return MMREC_OK;
}
