/* Ranking metrics by full ranking: every test user's scores over all items
 * (dot products of user and item embeddings), the user's training items
 * excluded, the top K kept; Recall@K, NDCG@K, Precision@K, HR@K and MRR@K
 * averaged over the users with at least one test item, as LightGCN's and
 * the MMRec toolbox's evaluations define them:
 *   Recall@K    = hits in the top K / number of test items of the user
 *   Precision@K = hits / K
 *   NDCG@K      = sum over hits at rank r (1-based) of 1 / log2(r + 1),
 *                 divided by the same sum over ranks 1 .. min(K, |test|)
 *   HR@K        = 1 if any hit, else 0
 *   MRR@K       = 1 / rank of the first hit, 0 without a hit.
 * Equal scores rank the lower item id first.
 *
 * Scores are computed in blocks of users with one BLAS product per block,
 * blocks split over the library's threads (mmrec_set_num_threads); results
 * do not depend on the thread count. */
#ifndef MMREC_METRICS_H
#define MMREC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"
#include "mmrec/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Metrics at one cutoff K. Extensible: the caller sets struct_size in the
 * first element of the output array (sizeof(mmrec_rank_metrics) of its
 * headers); the library writes only the fields that size covers and steps
 * through the array by it. */
typedef struct mmrec_rank_metrics {
    size_t struct_size;
    int k;           /* the cutoff (written) */
    int64_t users;   /* users evaluated: those with at least one test item */
    double recall, ndcg, precision, hit_rate, mrr;
} mmrec_rank_metrics;

/* Full-ranking evaluation of embeddings against held-out interactions.
 *   user_emb  (in) [num_users, dim] float32, row-major; borrowed.
 *   item_emb  (in) [num_items, dim] float32, row-major; borrowed.
 *   train     (in) interactions excluded from each user's ranking (may be
 *                  NULL: nothing excluded); ids must be below num_users /
 *                  num_items.
 *   test      (in) the held-out interactions; ids as for train. Repeated
 *                  pairs count once.
 *   ks        (in) num_ks cutoffs, each 1 .. min(num_items, 1000).
 *   out       (out) num_ks results, out[0].struct_size set by the caller.
 * Memory: a block of scores per thread (at most 64 MiB each) and the
 * users' train and test lists.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, sizes or cutoffs out of range,
 *         struct_size too small), MMREC_ERANGE (an id of train or test out
 *         of range; the message names it), MMREC_ENUMERIC (an embedding
 *         value is NaN or infinite; the message names it), MMREC_ENOMEM.
 * Thread safety: thread-safe (concurrent calls compute alone). Since 0.1. */
MMREC_API mmrec_status mmrec_eval_full_ranking(const float *user_emb, const float *item_emb,
                                               int64_t num_users, int64_t num_items,
                                               int64_t dim, const mmrec_interactions *train,
                                               const mmrec_interactions *test, const int *ks,
                                               int num_ks, mmrec_rank_metrics *out);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_METRICS_H */
