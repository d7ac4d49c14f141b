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
 * do not depend on the thread count.
 *
 * Also here: pointwise AUC and GAUC of scored samples (what CTR models
 * report), the per-user AUC of full ranking, and the intermediate
 * evaluations of a content representation from AlignRec (Liu et al., CIKM
 * 2024): zero-shot from history, item-CF, mask-modality. Every input is
 * borrowed for the duration of the call; outputs are written only on
 * success. */
#ifndef MMREC_METRICS_H
#define MMREC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

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
 * Scores: on x86-64 CPUs with AVX2 and FMA, for dim <= 256, each score is
 * one fused multiply-add chain over the dimensions in order, so the top
 * lists and metrics are the same, bit for bit, on every such CPU; with
 * AVX-512 VNNI, or AVX-VNNI on CPUs without AVX-512, most pairs are first
 * ruled out exactly, from int8 estimates with a proven error bound.
 * Elsewhere one BLAS product per block of users,
 * whose scores may differ in the last bit.
 * Memory: per thread a block of 64 users and their top K (with BLAS, a
 * 64 x 2048 block of scores), with the int8 screen a quantized copy of the
 * item table (num_items x (dim rounded up to 4) bytes plus 12 bytes per
 * item), and the users' train and test lists.
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

/* ---- AUC ---- */

/* ROC AUC of scored samples, ties counted 1/2, as
 * sklearn.metrics.roc_auc_score computes it: with P positives and N
 * negatives,
 *   AUC = 1/(P N) * sum over positives i and negatives j of
 *         ([s_i > s_j] + [s_i == s_j] / 2).
 * Computed from a radix sort of the scores in O(n), not pairwise. -0.0
 * equals 0.0; infinite scores are allowed.
 *   scores (in)  n scores; borrowed.
 *   labels (in)  n labels, each 0 or 1 (1 = positive); borrowed.
 *   n      (in)  number of samples, >= 1.
 *   out    (out) the AUC, in [0, 1].
 * Memory: 32 bytes per sample plus 144 KiB, freed before returning.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, n == 0, a label other than 0 or 1
 *         (the message names its index), no positive or no negative label
 *         (the message says which)), MMREC_ENUMERIC (a NaN score; the
 *         message names its index), MMREC_ENOMEM.
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_metric_auc(const float *scores, const float *labels, size_t n,
                                        double *out);

/* Group AUC (GAUC; DIN's user-weighted AUC): the samples are grouped by
 * groups[k] (e.g. the user of the impression); each group g with at least
 * one positive and one negative gets AUC_g as mmrec_metric_auc defines it,
 * groups lacking either are skipped, and
 *   GAUC = sum_g n_g AUC_g / sum_g n_g   over the groups kept,
 * n_g being the number of samples (impressions) of group g.
 *   scores, labels, n (in) as mmrec_metric_auc.
 *   groups     (in)  n group ids, any int64 values; borrowed.
 *   gauc_out   (out) the GAUC, in [0, 1].
 *   groups_out (out, may be NULL) number of groups kept.
 * Memory: as mmrec_metric_auc.
 * Returns as mmrec_metric_auc, and MMREC_EINVAL when no group has both a
 *         positive and a negative.
 * Thread safety: thread-safe. Since 0.1. */
MMREC_API mmrec_status mmrec_metric_gauc(const float *scores, const float *labels,
                                         const int64_t *groups, size_t n, double *gauc_out,
                                         size_t *groups_out);

/* Per-user AUC of full ranking. Scores are s_ui = user_emb[u] . item_emb[i].
 * For each user u with test items, the candidates are all items except u's
 * train items, the positives u's test items among them (P_u) and the
 * negatives the other candidates (N_u):
 *   AUC_u = 1/(P_u N_u) * sum over positives i and negatives j of
 *           ([s_ui > s_uj] + [s_ui == s_uj] / 2).
 * Users without a positive or without a negative are skipped. Reported:
 *   mean_out     = the mean of AUC_u over the users kept;
 *   weighted_out = sum_u P_u AUC_u / sum_u P_u, the positive-weighted mean
 *                  (the weighting of RecBole's full-sort GAUC).
 *   user_emb, item_emb, num_users, num_items, dim, train, test (in) as
 *                mmrec_eval_full_ranking (train may be NULL: no exclusion).
 *   mean_out     (out) mean AUC; 0 when no user is kept.
 *   weighted_out (out, may be NULL) positive-weighted AUC; 0 when no user
 *                is kept.
 *   users_out    (out, may be NULL) number of users kept.
 * All of a user's scores come from one BLAS product, never mixed with
 * scores computed another way, so ties are compared like any other scores.
 * Cost: the products, and two vectorized comparisons per item for each
 * test item (once per run of equal test-item scores).
 * Memory: the users' train and test lists (as mmrec_eval_full_ranking), and
 * per thread a block of up to 64 users' score rows (at most 16 MiB, or one
 * row when a row is larger) and the scores of one user's test items.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, sizes out of range), MMREC_ERANGE
 *         (an id of train or test out of range; the message names it),
 *         MMREC_ENUMERIC (an embedding value is NaN or infinite; the
 *         message names it), MMREC_ENOMEM.
 * Thread safety: thread-safe; results do not depend on the thread count.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_eval_full_auc(const float *user_emb, const float *item_emb,
                                           int64_t num_users, int64_t num_items, int64_t dim,
                                           const mmrec_interactions *train,
                                           const mmrec_interactions *test, double *mean_out,
                                           double *weighted_out, int64_t *users_out);

/* ---- AlignRec's intermediate evaluations of content features ----
 * These judge a content representation (frozen-encoder features, or a
 * model's content embeddings) without the recommender. Items are ranked by
 * cosine similarity of their features to a query (0 when either vector is
 * zero), equal scores ranking the lower item id first. Each query has one
 * target, at rank r among the candidates; per cutoff K the fields of
 * mmrec_rank_metrics are recall = hit_rate = [r <= K], ndcg =
 * 1 / log2(r + 1) if r <= K, precision = hit_rate / K, mrr = 1 / r if
 * r <= K (else 0), averaged over the queries evaluated (`users` counts
 * them). */

/* Zero-shot from history: for each user whose sequence holds at least two
 * items, the query is the mean of the features of the sequence without its
 * last item, the target is the last item, and the candidates are all items
 * except those of that history (the target stays a candidate when it also
 * appears earlier).
 *   features  (in)  [num_items, feat_dim] float32, row-major (e.g. image
 *                   and text features concatenated); borrowed.
 *   sequences (in)  each user's pairs, in their order in the object (as
 *                   given to mmrec_interactions_create, or the file order of
 *                   the readers), form the user's sequence, oldest first;
 *                   repeats count in the mean. Items below num_items.
 *   ks        (in)  num_ks cutoffs (1..64 of them), each 1 .. num_items.
 *   out       (out) num_ks results, out[0].struct_size set by the caller
 *                   (as mmrec_eval_full_ranking).
 * Memory: the sequences grouped by user (4 bytes per pair, 8 per user), 4
 * bytes per item, 16 per user evaluated, and per thread a block of up to
 * 64 queries and their score rows (at most 16 MiB, or one row when a row is
 * larger) and feat_dim doubles.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, sizes or cutoffs out of range,
 *         struct_size too small), MMREC_ERANGE (an item of sequences at or
 *         above num_items; the message names it), MMREC_ENUMERIC (a feature
 *         is NaN or infinite; the message names it), MMREC_ENOMEM.
 * Thread safety: thread-safe; results do not depend on the thread count.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_eval_zero_shot(const float *features, int64_t num_items,
                                            int64_t feat_dim,
                                            const mmrec_interactions *sequences, const int *ks,
                                            int num_ks, mmrec_rank_metrics *out);

/* Item-CF: the co-occurrence of items j and k is the number of users whose
 * interactions hold both. For each item j that co-occurs with another item,
 * the target is the item k != j of highest co-occurrence with j (ties: the
 * lower id), the query is j's features and the candidates are all items but
 * j.
 *   features, num_items, feat_dim, ks, num_ks, out: as mmrec_eval_zero_shot.
 *   interactions (in) user-item pairs (e.g. the training set); repeats count
 *                once. Items below num_items.
 * Cost: counting co-occurrences takes O(sum over users of their number of
 * items squared), split over the threads.
 * Memory: the pairs grouped by user and by item (16 bytes per pair, 8 per
 * user and per item), 20 bytes per item, and per thread 8 bytes per item
 * and a block of up to 64 queries and their score rows (at most 16 MiB, or
 * one row when a row is larger).
 * Returns as mmrec_eval_zero_shot (MMREC_ERANGE naming an item of
 *         interactions; MMREC_EINVAL also for 2^31 - 1 users or more).
 * Thread safety: thread-safe; results do not depend on the thread count.
 * Since 0.1. */
MMREC_API mmrec_status mmrec_eval_item_cf(const float *features, int64_t num_items,
                                          int64_t feat_dim,
                                          const mmrec_interactions *interactions, const int *ks,
                                          int num_ks, mmrec_rank_metrics *out);

/* Mask-modality: zeroes columns [col_begin, col_end) of the features (one
 * modality's slice of concatenated features) for m = floor(ratio *
 * num_items + 0.5) items chosen uniformly at random, so the host can re-run
 * the evaluations on the masked features. The choice depends only on seed,
 * num_items and ratio: selection sampling in increasing item order, item i
 * chosen when mmrec_rng_below(rng, num_items - i) < (items still to choose),
 * rng being a generator made by mmrec_rng_create(seed) (one draw per item
 * until m are chosen).
 *   features  (in/out) [num_items, dim] float32, row-major; changed in place.
 *   col_begin, col_end (in) 0 <= col_begin < col_end <= dim.
 *   ratio     (in)  0 .. 1.
 *   seed      (in)  any value.
 * Memory: none.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, sizes, columns or ratio out of
 *         range).
 * Thread safety: thread-safe (concurrent calls on distinct buffers).
 * Since 0.1. */
MMREC_API mmrec_status mmrec_eval_mask_modality(float *features, int64_t num_items, int64_t dim,
                                                int64_t col_begin, int64_t col_end, double ratio,
                                                uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_METRICS_H */
