/* AUC (metrics.h): pointwise AUC and GAUC of scored samples, and the
 * per-user AUC of full ranking.
 *
 * Pointwise: the samples are sorted by (group, score) with an LSD radix sort
 * (11-bit digits; digits that every sample shares are skipped, so plain AUC
 * and small group ids cost three or four passes), then each group is one
 * sweep over its tie runs: a run of p positives and q negatives above
 * `below` negatives adds p * below + p * q / 2 pairs (counted doubled, so
 * exactly, in a double). Same definition as sklearn.metrics.roc_auc_score.
 *
 * Full ranking: whole rows of scores (rows.c); a user's train items become
 * NaN, which no comparison counts; for each run of equal positive scores one
 * vectorized pass counts the row's scores below and equal to it, and the
 * positives' own share is subtracted from the (sorted) positive scores.
 * Reference: tests/golden/make_golden.py::write_metrics_auc. */
#include "metrics_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- pointwise ---- */

typedef struct mmrec__auc_rec {
    uint64_t group; /* group id with the sign bit flipped: unsigned order */
    uint32_t key;   /* score bits mapped to unsigned order */
    uint32_t label;
} mmrec__auc_rec;

#define MMREC__RADIX_BITS 11
#define MMREC__RADIX_SIZE ((size_t)1 << MMREC__RADIX_BITS)
#define MMREC__KEY_DIGITS 3   /* 32 bits of the score key */
#define MMREC__GROUP_DIGITS 6 /* 64 bits of the group */
#define MMREC__DIGITS (MMREC__KEY_DIGITS + MMREC__GROUP_DIGITS)

/* Float bits in an order where unsigned comparison is numeric comparison;
 * -0.0 is mapped as 0.0. NaN is rejected before. */
static inline uint32_t mmrec__score_key(float x) {
    if (x == 0.0f) x = 0.0f;
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return (b & 0x80000000u) ? ~b : b | 0x80000000u;
}

static inline size_t mmrec__digit(const mmrec__auc_rec *r, int d) {
    uint64_t v = d < MMREC__KEY_DIGITS ? (uint64_t)r->key >> (MMREC__RADIX_BITS * d)
                                       : r->group >> (MMREC__RADIX_BITS * (d - MMREC__KEY_DIGITS));
    return (size_t)(v & (MMREC__RADIX_SIZE - 1));
}

/* Sorts a by (group, key), using tmp; returns the buffer holding the
 * result (a or tmp). */
static mmrec__auc_rec *mmrec__auc_sort(mmrec__auc_rec *a, mmrec__auc_rec *tmp, size_t n,
                                       size_t *hist) {
    memset(hist, 0, MMREC__DIGITS * MMREC__RADIX_SIZE * sizeof *hist);
    for (size_t k = 0; k < n; k++)
        for (int d = 0; d < MMREC__DIGITS; d++) hist[(size_t)d * MMREC__RADIX_SIZE +
                                                     mmrec__digit(&a[k], d)]++;
    for (int d = 0; d < MMREC__DIGITS; d++) {
        size_t *h = hist + (size_t)d * MMREC__RADIX_SIZE;
        if (h[mmrec__digit(&a[0], d)] == n) continue; /* every sample has this digit */
        size_t sum = 0;
        for (size_t b = 0; b < MMREC__RADIX_SIZE; b++) {
            size_t c = h[b];
            h[b] = sum;
            sum += c;
        }
        for (size_t k = 0; k < n; k++) tmp[h[mmrec__digit(&a[k], d)]++] = a[k];
        mmrec__auc_rec *t = a;
        a = tmp;
        tmp = t;
    }
    return a;
}

/* AUC of one group's samples a[0 .. n), sorted by key; false when the group
 * lacks a positive or a negative. */
static bool mmrec__auc_group(const mmrec__auc_rec *a, size_t n, double *auc) {
    double pairs2 = 0.0; /* twice the pairs ranked right, ties counting 1/2 */
    size_t below = 0, pos = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i, p = 0;
        for (; j < n && a[j].key == a[i].key; j++) p += a[j].label;
        size_t q = (j - i) - p;
        pairs2 += (double)p * (2.0 * (double)below + (double)q);
        below += q;
        pos += p;
        i = j;
    }
    if (pos == 0 || below == 0) return false;
    *auc = pairs2 / (2.0 * (double)pos * (double)below);
    return true;
}

/* Shared by mmrec_metric_auc (groups NULL: one group) and mmrec_metric_gauc. */
static mmrec_status mmrec__auc_grouped(const float *scores, const float *labels,
                                       const int64_t *groups, size_t n, double *value,
                                       size_t *kept_out, const char *func) {
    size_t positives = 0;
    for (size_t k = 0; k < n; k++) {
        if (labels[k] != 0.0f && labels[k] != 1.0f)
            return mmrec__set_error(MMREC_EINVAL, func, "labels[%zu] is %g, expected 0 or 1", k,
                                    (double)labels[k]);
        if (isnan(scores[k]))
            return mmrec__set_error(MMREC_ENUMERIC, func, "scores[%zu] is nan", k);
        positives += labels[k] == 1.0f;
    }
    if (positives == 0)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "labels has no positive (all %zu are 0): the AUC is undefined", n);
    if (positives == n)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "labels has no negative (all %zu are 1): the AUC is undefined", n);
    size_t bytes = 0;
    mmrec__auc_rec *a = NULL, *tmp = NULL;
    size_t *hist = mmrec__alloc(MMREC__DIGITS * MMREC__RADIX_SIZE * sizeof *hist);
    if (mmrec__mul_size(n, sizeof *a, &bytes)) {
        a = mmrec__alloc(bytes);
        tmp = mmrec__alloc(bytes);
    }
    if (a == NULL || tmp == NULL || hist == NULL) {
        mmrec__free(a);
        mmrec__free(tmp);
        mmrec__free(hist);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory sorting %zu samples", n);
    }
    for (size_t k = 0; k < n; k++) {
        a[k].group = groups ? (uint64_t)groups[k] ^ ((uint64_t)1 << 63) : 0;
        a[k].key = mmrec__score_key(scores[k]);
        a[k].label = labels[k] == 1.0f;
    }
    const mmrec__auc_rec *s = mmrec__auc_sort(a, tmp, n, hist);
    double weighted = 0.0, weight = 0.0;
    size_t kept = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && s[j].group == s[i].group) j++;
        double auc;
        if (mmrec__auc_group(s + i, j - i, &auc)) {
            weighted += (double)(j - i) * auc;
            weight += (double)(j - i);
            kept++;
        }
        i = j;
    }
    mmrec__free(a);
    mmrec__free(tmp);
    mmrec__free(hist);
    if (kept == 0)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "no group has both a positive and a negative sample: the GAUC "
                                "is undefined");
    *value = weighted / weight;
    if (kept_out) *kept_out = kept;
    return MMREC_OK;
}

mmrec_status mmrec_metric_auc(const float *scores, const float *labels, size_t n, double *out) {
    MMREC_CHECK_NULL(scores);
    MMREC_CHECK_NULL(labels);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(n == 0, MMREC_EINVAL, "n is 0, expected at least one sample");
    return mmrec__auc_grouped(scores, labels, NULL, n, out, NULL, __func__);
}

mmrec_status mmrec_metric_gauc(const float *scores, const float *labels, const int64_t *groups,
                               size_t n, double *gauc_out, size_t *groups_out) {
    MMREC_CHECK_NULL(scores);
    MMREC_CHECK_NULL(labels);
    MMREC_CHECK_NULL(groups);
    MMREC_CHECK_NULL(gauc_out);
    MMREC_FAIL_IF(n == 0, MMREC_EINVAL, "n is 0, expected at least one sample");
    return mmrec__auc_grouped(scores, labels, groups, n, gauc_out, groups_out, __func__);
}

/* ---- full ranking ---- */

enum { MMREC__A_MEAN, MMREC__A_WEIGHTED, MMREC__A_POSITIVES, MMREC__A_USERS, MMREC__A_COUNT };

typedef struct mmrec__full_auc {
    const float *user_emb;
    size_t I, dim;
    const int64_t *users; /* the users with test items */
    const mmrec__lists *train, *test;
} mmrec__full_auc;

static void mmrec__full_auc_fill(void *ctx, size_t first, size_t n, float *q, void *scratch) {
    const mmrec__full_auc *j = ctx;
    mmrec__metrics_copy_rows(q, j->user_emb, j->dim, j->users + first, n);
}

static int mmrec__float_cmp(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void mmrec__full_auc_reduce(void *ctx, size_t first, size_t n, float *scores,
                                   double *sums, void *scratch) {
    const mmrec__full_auc *j = ctx;
    float *pos = scratch; /* the positives' scores, up to the longest test list */
    for (size_t r = 0; r < n; r++) {
        size_t u = (size_t)j->users[first + r];
        float *row = scores + r * j->I;
        const int32_t *tr = NULL, *te = j->test->items + j->test->ptr[u];
        size_t n_tr = 0, n_te = (size_t)(j->test->ptr[u + 1] - j->test->ptr[u]);
        if (j->train) {
            tr = j->train->items + j->train->ptr[u];
            n_tr = (size_t)(j->train->ptr[u + 1] - j->train->ptr[u]);
        }
        /* positives: test items not in train (both lists increasing) */
        size_t P = 0, c = 0;
        for (size_t t = 0; t < n_te; t++) {
            while (c < n_tr && tr[c] < te[t]) c++;
            if (c < n_tr && tr[c] == te[t]) continue;
            pos[P++] = row[te[t]];
        }
        size_t N = j->I - n_tr - P;
        if (P == 0 || N == 0) continue;
        for (size_t t = 0; t < n_tr; t++) row[tr[t]] = NAN;
        qsort(pos, P, sizeof *pos, mmrec__float_cmp);
        double pairs2 = 0.0;
        for (size_t i = 0; i < P;) {
            size_t e = i + 1;
            while (e < P && pos[e] == pos[i]) e++;
            size_t lt, le;
            mmrec__metrics_count_below(row, j->I, pos[i], &lt, &le);
            /* of those, i positives score below and e - i equal */
            double m = (double)(e - i), below = (double)(lt - i);
            double ties = (double)(le - lt - (e - i));
            pairs2 += m * (2.0 * below + ties);
            i = e;
        }
        double auc = pairs2 / (2.0 * (double)P * (double)N);
        sums[MMREC__A_MEAN] += auc;
        sums[MMREC__A_WEIGHTED] += (double)P * auc;
        sums[MMREC__A_POSITIVES] += (double)P;
        sums[MMREC__A_USERS] += 1.0;
    }
}

mmrec_status mmrec_eval_full_auc(const float *user_emb, const float *item_emb, int64_t num_users,
                                 int64_t num_items, int64_t dim, const mmrec_interactions *train,
                                 const mmrec_interactions *test, double *mean_out,
                                 double *weighted_out, int64_t *users_out) {
    MMREC_CHECK_NULL(user_emb);
    MMREC_CHECK_NULL(item_emb);
    MMREC_CHECK_NULL(test);
    MMREC_CHECK_NULL(mean_out);
    MMREC_FORWARD_IF(mmrec__metrics_check_sizes(num_users, num_items, dim, __func__));
    size_t U = (size_t)num_users, I = (size_t)num_items, d = (size_t)dim;
    mmrec__lists tr, te;
    MMREC_FORWARD_IF(mmrec__metrics_eval_inputs(user_emb, item_emb, U, I, d, train, test, &tr,
                                                &te, __func__));
    mmrec_status s = MMREC_OK;
    size_t n_eval = 0, longest = 0;
    for (size_t u = 0; u < U; u++) {
        size_t len = (size_t)(te.ptr[u + 1] - te.ptr[u]);
        n_eval += len > 0;
        if (len > longest) longest = len;
    }
    int64_t *users = mmrec__alloc((n_eval ? n_eval : 1) * sizeof *users);
    double t[MMREC__A_COUNT] = {0};
    if (users == NULL) {
        s = mmrec__set_error(MMREC_ENOMEM, __func__, "out of memory for the evaluation");
    } else {
        size_t e = 0;
        for (size_t u = 0; u < U; u++)
            if (te.ptr[u + 1] > te.ptr[u]) users[e++] = (int64_t)u;
        mmrec__full_auc job = {user_emb, I, d, users, train ? &tr : NULL, &te};
        mmrec__rows rows = {item_emb, I, d, n_eval, MMREC__A_COUNT, longest * sizeof(float),
                            mmrec__full_auc_fill, mmrec__full_auc_reduce, &job};
        s = mmrec__metrics_rows_run(&rows, t, __func__);
    }
    mmrec__free(users);
    mmrec__metrics_lists_free(&tr);
    mmrec__metrics_lists_free(&te);
    if (s != MMREC_OK) return s;
    bool any = t[MMREC__A_USERS] > 0;
    *mean_out = any ? t[MMREC__A_MEAN] / t[MMREC__A_USERS] : 0.0;
    if (weighted_out) *weighted_out = any ? t[MMREC__A_WEIGHTED] / t[MMREC__A_POSITIVES] : 0.0;
    if (users_out) *users_out = (int64_t)t[MMREC__A_USERS];
    return MMREC_OK;
}
