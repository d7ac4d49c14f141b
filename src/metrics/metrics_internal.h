/* Internal metrics helpers shared by the evaluations of src/metrics/: the
 * users' item lists, the finiteness check of embeddings, and the full-row
 * scorer (every query against every item, whole rows at a time). Never
 * installed. */
#ifndef MMREC_METRICS_INTERNAL_H
#define MMREC_METRICS_INTERNAL_H

#include "mmrec/metrics.h"
#include "../core/core_internal.h"
#include "../kernels/kernels_internal.h"

/* Each user's distinct items, increasing (CSR over users): the items of
 * user u are items[ptr[u] .. ptr[u + 1]). */
typedef struct mmrec__lists {
    int64_t *ptr;
    int32_t *items;
} mmrec__lists;

/* Groups an interactions object by user (mmrec__group_by_user). `name`
 * names the argument in messages ("train", "test"). MMREC_EINVAL (not an
 * interactions object), MMREC_ERANGE (a user >= U or an item >= I; the
 * message names "<name> users[k]" or "<name> items[k]"), MMREC_ENOMEM. On
 * failure *l is left empty. */
mmrec_status mmrec__metrics_lists_build(const mmrec_interactions *x, const char *name, size_t U,
                                        size_t I, mmrec__lists *l, const char *func) MMREC__WUR;
/* Frees both arrays (NULL members allowed) and empties *l. */
void mmrec__metrics_lists_free(mmrec__lists *l);

/* MMREC_ENUMERIC naming "<name>[i]" for the first value of x[0 .. n) that
 * is NaN or infinite. */
mmrec_status mmrec__metrics_check_finite(const float *x, size_t n, const char *name,
                                         const char *func) MMREC__WUR;

/* ---- the user-by-item evaluations (ranking.c, auc.c) ----
 * Their arguments are checked in two steps, so an evaluation can check its
 * own arguments in between. First the sizes: MMREC_EINVAL naming num_users,
 * num_items and dim unless each is >= 1, num_items below 2^31 - 1 and dim
 * at most 2^20. */
mmrec_status mmrec__metrics_check_sizes(int64_t num_users, int64_t num_items, int64_t dim,
                                        const char *func) MMREC__WUR;
/* Then the inputs: user_emb [U, dim] and item_emb [I, dim] finite
 * (mmrec__metrics_check_finite), then the users' train lists (train NULL:
 * *tr stays empty) and test lists (mmrec__metrics_lists_build). Both lists
 * are the caller's to free; on failure both are left empty. */
mmrec_status mmrec__metrics_eval_inputs(const float *user_emb, const float *item_emb, size_t U,
                                        size_t I, size_t dim, const mmrec_interactions *train,
                                        const mmrec_interactions *test, mmrec__lists *tr,
                                        mmrec__lists *te, const char *func) MMREC__WUR;

/* The scorers of full ranking (ranking.c), fastest last. The exact ones
 * (AVX2, AVX-512 and the two screens, which score exactly every pair their
 * int8 estimate cannot rule out) give the same scores, bit for bit, so the
 * same metrics and top-K lists; BLAS's may differ in the last bit. */
typedef enum mmrec__eval_scorer {
    MMREC__EVAL_BLAS = 0,
    MMREC__EVAL_AVX2 = 1,          /* mmrec__score_find_avx2 */
    MMREC__EVAL_SCREEN_VNNI256 = 2, /* the screen with AVX-VNNI (AVX2 CPUs) */
    MMREC__EVAL_AVX512 = 3,        /* mmrec__score_find */
    MMREC__EVAL_SCREEN = 4,        /* mmrec__screen_find (AVX-512), then mmrec__score_pairs */
    MMREC__EVAL_AUTO = 5           /* the fastest usable here */
} mmrec__eval_scorer;

/* Whether `scorer` runs here for embeddings of dim floats (the screen also
 * needs item norms below 2^62, else the call takes the AVX-512 scorer). */
bool mmrec__eval_scorer_usable(mmrec__eval_scorer scorer, size_t dim);

/* Pairs scored exactly by the screen since the start of the process (the
 * tests read it to see that the screen screens). */
extern atomic_ullong mmrec__eval_rescored;

/* mmrec_eval_full_ranking after its argument checks (sizes, num_ks,
 * struct_size, ks), which the caller has made; messages name `func`.
 * Scores with `scorer`, or the next slower one usable here when it is not
 * (the public call passes MMREC__EVAL_AUTO; the tests run each). top, when
 * not NULL, receives each evaluated user's top list, [users with a test
 * item, max K] item ids best first, -1 past the items kept. */
mmrec_status mmrec__eval_full_ranking_with(const float *user_emb, const float *item_emb,
                                           int64_t num_users, int64_t num_items, int64_t dim,
                                           const mmrec_interactions *train,
                                           const mmrec_interactions *test, const int *ks,
                                           int num_ks, mmrec_rank_metrics *out,
                                           mmrec__eval_scorer scorer, int32_t *top,
                                           const char *func) MMREC__WUR;

/* ---- the full-row scorer (rows.c) ----
 * Queries are scored in blocks of up to 64 against every item with one BLAS
 * product per block (scores[r, i] = query_r . item_i), whole rows at once,
 * so a query's scores are all from one product and compare exactly. Blocks
 * are split over the pool; each block adds into its own num_sums doubles,
 * and the block sums are added in block order, so the totals do not depend
 * on the thread count. */
typedef struct mmrec__rows {
    const float *items;  /* [num_items, dim] */
    size_t num_items, dim, num_queries;
    size_t num_sums;     /* doubles each block adds into (may be 0) */
    size_t scratch_size; /* bytes of per-chunk scratch for fill and reduce */
    /* Writes queries first .. first + n - 1 into q ([n, dim]). */
    void (*fill)(void *ctx, size_t first, size_t n, float *q, void *scratch);
    /* Reads (and may overwrite) their scores [n, num_items] and adds into
     * sums[0 .. num_sums), zeroed per block. */
    void (*reduce)(void *ctx, size_t first, size_t n, float *scores, double *sums,
                   void *scratch);
    void *ctx;
} mmrec__rows;

/* Runs the scorer: totals[0 .. num_sums) = the sums over all blocks (zeros
 * without queries). Memory: per chunk (at most one per thread) a block of
 * queries, a block of scores (at most 16 MiB, one row when a row is larger)
 * and scratch_size bytes; num_sums doubles per block. MMREC_ENOMEM (message
 * set) is the only failure. */
mmrec_status mmrec__metrics_rows_run(const mmrec__rows *rows, double *totals,
                                     const char *func) MMREC__WUR;

/* A fill's usual body: q[r] = table[ids[r]] for r < n, rows of dim
 * floats. */
void mmrec__metrics_copy_rows(float *q, const float *table, size_t dim, const int64_t *ids,
                              size_t n);

/* Counts of a row against one score s, masked (NaN) entries never counted:
 * *lt_out = #{j : row[j] < s}, *le_out = #{j : row[j] <= s}. */
void mmrec__metrics_count_below(const float *row, size_t n, float s, size_t *lt_out,
                                size_t *le_out);

/* Rank (1-based) of row[target] among the row's unmasked entries, equal
 * scores ranking the lower index first: 1 + #{j < target : row[j] >= s} +
 * #{j > target : row[j] > s}, s = row[target] (not NaN). */
size_t mmrec__metrics_rank_of(const float *row, size_t n, size_t target);

#endif
