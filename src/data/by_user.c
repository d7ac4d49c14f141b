/* Grouping pairs by user with two counting sorts (see data_internal.h). */
#include "data_internal.h"

#include <string.h>

size_t mmrec__pairs_by_user(const int64_t *users, const int64_t *items, size_t n, size_t U,
                            size_t I, int32_t offset, int64_t *row_ptr, int32_t *col,
                            int32_t *by_item, int64_t *item_ptr) {
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
