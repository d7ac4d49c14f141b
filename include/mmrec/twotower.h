/* Two-tower retrieval building blocks: the scorer of a two-tower
 * (dual-encoder) model, and the streaming item-frequency estimator of its
 * logQ-corrected in-batch softmax.
 *
 * ---- The scorer ----
 * A two-tower model maps a user (query) to a vector u = f(user) and an
 * item to a vector v = g(item) with two towers that never see each other's
 * input, and scores the pair by
 *
 *   dot:     s(u, v) = <u, v> / tau
 *   cosine:  s(u, v) = <u / max(|u|, eps), v / max(|v|, eps)> / tau
 *
 * (Yi et al., RecSys 2019, section 3: cosine with tau = 0.05 was their
 * best). The towers are any modules of the library, run by the caller:
 * an MLP over features (mmrec_mlp_forward), an
 * Embedding of ids, mean-pooled over a bag with mmrec_mean (YouTube DNN's
 * watch history), the sequence encoder (mmrec_sequence_encoder_forward,
 * modules.h), the FQ-Former (em3.h), or a composition of them; the scorer
 * takes their outputs, [B, d] and [N, d]. The same scores train with
 * mmrec_loss_batch_softmax (losses.h): its normalize flag and temperature
 * are the cosine and tau here, and its column_bias is the logQ
 * correction (log p from the estimator below, subtracted from every
 * column). For serving, mmrec_twotower_serving_vectors folds the
 * normalization and the temperature into the vectors, so an exact
 * inner-product search over the item vectors ranks by s.
 *
 * ---- The streaming frequency estimator ----
 * Yi et al., "Sampling-Bias-Corrected Neural Modeling for
 * Large Corpus Item Recommendations" (RecSys 2019), Algorithms 2 and 3:
 * it estimates, from the ids of the batches seen so far, the probability
 * p(y) that item y appears in a batch, for the logQ correction of an
 * in-batch softmax (losses.h: subtract log p from every column).
 *
 * With m hash functions h_1..h_m onto H buckets each, arrays A_i (the last
 * step a bucket was seen) and B_i (an exponential moving average of the
 * gap between two sightings), and learning rate alpha, an update at global
 * step t does, for each id y of the batch and each hash i:
 *
 *   B_i[h_i(y)] = (1 - alpha) B_i[h_i(y)] + alpha (t - A_i[h_i(y)])
 *   A_i[h_i(y)] = t
 *
 * and the estimate is p(y) = 1 / max_i B_i[h_i(y)] (a collision shortens
 * the gap a bucket sees, so the largest of the m gaps is the closest).
 *
 * Choices this library makes, each where the paper leaves it open:
 *   - Steps are the caller's global step counter, 1 .. 2^48 - 1, strictly
 *     increasing from one update to the next (the paper counts steps from
 *     1). A starts at 0 (the paper's A <- 0), so a bucket's first sighting
 *     at step t counts a gap of t.
 *   - B starts at cfg.initial_gap (the paper's simulation: 100), so an id
 *     never seen has p = 1 / initial_gap, finite and non-zero. Every later
 *     B is a convex mix of positive numbers (gaps are >= 1), so p stays in
 *     (0, 1 / min(initial_gap, 1)]: never 0, never infinite.
 *   - A bucket is updated at most once per step: an id repeated in a batch,
 *     and two ids of one batch that share a bucket, update it once (the
 *     paper's loop would count a gap of 0 on the second visit, which only
 *     measures the batch's duplicates).
 *   - h_i(y) = mix(mix(seed + i) ^ y) mod H, with mix the splitmix64
 *     finalizer: z = x + 0x9E3779B97F4A7C15; z = (z ^ (z >> 30)) *
 *     0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
 *     z ^ (z >> 31), all mod 2^64, y taken as an unsigned 64-bit number.
 *   - The EMA is computed in double, (1 - alpha) B + alpha (t - A) with
 *     alpha widened from float, and stored as float; p = 1 / max B is
 *     computed in double and rounded to float.
 *
 * State lives in the model, so mmrec_model_save / mmrec_model_load and
 * mmrec_checkpoint_save / mmrec_checkpoint_load carry it with the rest.
 * Its parameters are never trainable: backward gives them no gradient,
 * optimizers skip them, and mmrec_model_unfreeze leaves them frozen (a
 * prefix covering only them is refused with MMREC_ESTATE).
 * A float holds integers exactly only up to 2^24, so a step is kept as two
 * floats, its high and low 24 bits (step = high * 2^24 + low), both exact:
 *   "<name>.last_step_high", "<name>.last_step_low"  [m, H]  A
 *   "<name>.gap"                                      [m, H]  B
 *   "<name>.step"                                     [2]     the last
 *                     update's step (high, low); 0 before the first update
 *   "<name>.static_p"                                 [num_items]  only
 *                     with cfg.num_items > 0: the static probabilities
 *                     (below), all 0 while the estimator streams
 *
 * Static option: with cfg.num_items > 0, mmrec_freq_estimator_set_counts
 * switches the estimator to probabilities from counts the caller gives,
 * p(y) = count(y) / sum of counts (e.g. the training set's item counts,
 * as DeepMatch and torch-rechub use them), and back to streaming with
 * NULL counts. Updates keep running the streaming arrays in either mode,
 * so switching back resumes from them. The mode is part of the state: a
 * load restores it.
 * Memory: 3 m H floats of state plus, as for every parameter, a gradient
 * buffer of the same size that stays zero.
 *
 * Errors: MMREC_EINVAL (NULL, n 0, a step not after the last one, a bad
 * config value: the message names the argument or field), MMREC_ERANGE (a
 * negative id: the message gives its index), MMREC_ESTATE (name taken;
 * model destroyed), MMREC_ENOMEM. A failed call changes nothing.
 *
 * Thread safety: per-handle (the model): updates must be serialised with
 * each other and with probability calls; any number of threads may call
 * mmrec_freq_estimator_probability while nobody updates. */
#ifndef MMREC_TWOTOWER_H
#define MMREC_TWOTOWER_H

#include <stddef.h>
#include <stdint.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the scorer ---- */
typedef enum mmrec_score_fn {
    MMREC_SCORE_DOT = 0,   /* <u, v> / tau */
    MMREC_SCORE_COSINE = 1 /* <u, v> / (max(|u|, eps) max(|v|, eps)) / tau */
} mmrec_score_fn;

/* Which tower's vectors mmrec_twotower_serving_vectors() writes. */
typedef enum mmrec_tower_side {
    MMREC_TOWER_USER = 0, /* the query side: carries 1 / tau */
    MMREC_TOWER_ITEM = 1  /* the item side: the indexed vectors */
} mmrec_tower_side;

typedef struct mmrec_twotower_config {
    size_t struct_size;
    int score;         /* an mmrec_score_fn; default MMREC_SCORE_DOT */
    float temperature; /* tau: > 0 with a finite inverse; default 1 */
    float eps;         /* cosine: the norm floor, as torch.nn.functional.
                          normalize's; > 0, default 1e-12 */
} mmrec_twotower_config;

/* Fills cfg with the defaults for the first `size` bytes: score
 * MMREC_SCORE_DOT, temperature 1, eps 1e-12. Call it through
 * mmrec_twotower_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_twotower_config_init_sized(mmrec_twotower_config *cfg, size_t size);
#define mmrec_twotower_config_init(cfg) mmrec_twotower_config_init_sized((cfg), sizeof *(cfg))

/* Scores every user against every item: out[b, n] = s(users[b], items[n])
 * as above. Backward flows to both towers' outputs (through the
 * normalization with cosine). Nodes: one product and one scale, plus one
 * normalization per side with cosine.
 *   tape  (in)  the step's tape.
 *   users (in)  [B, d], the user tower's output.
 *   items (in)  [N, d], the item tower's output; may be users itself.
 *   cfg   (in)  from mmrec_twotower_config_init(), or NULL for the
 *               defaults; borrowed for the call.
 *   out   (out) [B, N] logits, owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (NULL tape, users, items or out; a tensor
 *         of another tape; cfg->score not an mmrec_score_fn, a bad
 *         temperature or eps, a config from a newer libmmrec: the message
 *         names the field), MMREC_ESHAPE (users or items not 2-D, or
 *         their d differ; the message gives both shapes), MMREC_ESTALE
 *         (an input from a reset step), MMREC_ENOMEM. A failed call leaves
 *         the tape as it was.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_twotower_score(mmrec_tape *tape, mmrec_tensor *users,
                                            mmrec_tensor *items,
                                            const mmrec_twotower_config *cfg,
                                            mmrec_tensor **out);

/* Scores each user against its own item: out[b] = s(users[b], items[b])
 * (pointwise training, e.g. BCE on clicks with mmrec_loss_bce_logits, or
 * scoring a candidate list row by row). Gradients and nodes as
 * mmrec_twotower_score, with a row sum in place of the product.
 *   tape  (in)  the step's tape.
 *   users (in)  [B, d].
 *   items (in)  [B, d].
 *   cfg   (in)  as for mmrec_twotower_score(), or NULL.
 *   out   (out) [B], owned by `tape` until reset.
 * Returns MMREC_OK, MMREC_EINVAL (as mmrec_twotower_score), MMREC_ESHAPE
 *         (users and items not both [B, d]; the message gives both
 *         shapes), MMREC_ESTALE, MMREC_ENOMEM. A failed call leaves the
 *         tape as it was.
 * Thread safety: per-handle (the tape). Since 0.2. */
MMREC_API mmrec_status mmrec_twotower_score_paired(mmrec_tape *tape, mmrec_tensor *users,
                                                   mmrec_tensor *items,
                                                   const mmrec_twotower_config *cfg,
                                                   mmrec_tensor **out);

/* Writes serving vectors whose inner products are the scores: with u' the
 * user side's and v' the item side's output, <u', v'> = s(u, v) up to
 * float rounding. The item side gets v (dot) or v / max(|v|, eps)
 * (cosine); the user side gets u / tau or u / max(|u|, eps) / tau. So an
 * exact inner-product top-K over the item side's vectors ranks by s, and
 * the item vectors do not depend on the temperature. No tape: plain
 * memory in, plain memory out (e.g. the tower outputs read with
 * mmrec_tensor_data on an inference tape).
 *   cfg  (in)  as for mmrec_twotower_score(), or NULL for the defaults.
 *   side (in)  MMREC_TOWER_USER or MMREC_TOWER_ITEM.
 *   x    (in)  [n, dim] row-major, finite; borrowed for the call.
 *   n    (in)  rows, >= 1.
 *   dim  (in)  >= 1.
 *   out  (out) [n, dim] in caller memory; may be x itself (in place).
 * Returns MMREC_OK, MMREC_EINVAL (NULL x or out; n or dim 0; side not an
 *         mmrec_tower_side; a bad config as for mmrec_twotower_score),
 *         MMREC_ENUMERIC (a NaN or infinity in x: the message gives its
 *         row and column). A failed call leaves out untouched.
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_twotower_serving_vectors(const mmrec_twotower_config *cfg,
                                                      int side, const float *x, size_t n,
                                                      size_t dim, float *out);

/* ---- the streaming frequency estimator ---- */
typedef struct mmrec_freq_estimator_config {
    size_t struct_size;
    int64_t num_buckets; /* H, buckets per hash; required: 1 .. 2^31 */
    int num_hashes;      /* m; default 1 (the paper's Wikipedia and YouTube runs);
                            1 .. 16 */
    float alpha;         /* EMA learning rate; default 0.01 (the paper's); (0, 1] */
    float initial_gap;   /* B's starting value; default 100 (the paper's
                            simulation); > 0 and finite */
    uint64_t seed;       /* seeds the hash functions; default 0 */
    int64_t num_items;   /* ids 0 .. num_items - 1 of the static option; default 0
                            (no static option); 0 .. 2^31 */
} mmrec_freq_estimator_config;

/* Fills cfg with the defaults for the first `size` bytes: num_buckets 0
 * (must be set), num_hashes 1, alpha 0.01, initial_gap 100, seed 0,
 * num_items 0. Call it
 * through mmrec_freq_estimator_config_init(&cfg).
 *   cfg  (out) the caller's struct; struct_size is set to `size`.
 *   size (in)  sizeof *cfg (a larger size gets zeros past the fields this
 *              library knows).
 * Returns MMREC_OK, MMREC_EINVAL (NULL, size smaller than the first
 *         released struct).
 * Thread safety: thread-safe. Since 0.2. */
MMREC_API mmrec_status mmrec_freq_estimator_config_init_sized(mmrec_freq_estimator_config *cfg,
                                                              size_t size);
#define mmrec_freq_estimator_config_init(cfg) \
    mmrec_freq_estimator_config_init_sized((cfg), sizeof *(cfg))

/* Creates a frequency estimator named `name` in `model`, with A = 0,
 * B = initial_gap and no update yet (parameters above).
 *   model (in)  the model; it owns the module and its state.
 *   name  (in)  module name, 1..200 bytes, unique in the model; copied.
 *   cfg   (in)  from mmrec_freq_estimator_config_init(); borrowed for the
 *               call.
 *   out   (out, may be NULL) the module; borrowed, owned by the model.
 * Returns MMREC_OK, MMREC_EINVAL (NULL model, name or cfg; a bad name as
 *         for mmrec_linear_create; num_buckets, num_hashes, alpha,
 *         initial_gap or num_items out of range; a bad cfg->struct_size or a config
 *         from a newer libmmrec: the message names the field),
 *         MMREC_ESTATE (a module or parameter of one of these names
 *         exists; the model was destroyed), MMREC_ENOMEM. A failed call
 *         leaves the model as it was.
 * Thread safety: per-handle (the model). Since 0.2. */
MMREC_API mmrec_status mmrec_freq_estimator_create(mmrec_model *model, const char *name,
                                                   const mmrec_freq_estimator_config *cfg,
                                                   mmrec_module **out);

/* Records the ids of the batch of global step `step` (the update above),
 * once per bucket however often an id repeats. O(n m), no allocation.
 *   estimator (in)  a module made by mmrec_freq_estimator_create().
 *   ids       (in)  n item ids, each >= 0; borrowed for the call.
 *   n         (in)  number of ids, >= 1.
 *   step      (in)  the global step, 1 .. 2^48 - 1, greater than the last
 *                   update's.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, n 0, estimator not a frequency
 *         estimator, step out of range or not after the last update's:
 *         the message gives both), MMREC_ERANGE (a negative id; the message
 *         gives its index), MMREC_ESTATE (the model was destroyed). A
 *         failed call changes nothing.
 * Thread safety: per-handle (the model). Since 0.2. */
MMREC_API mmrec_status mmrec_freq_estimator_update(mmrec_module *estimator, const int64_t *ids,
                                                   size_t n, int64_t step);

/* The estimated probability that each id appears in a batch,
 * p = 1 / max_i B_i[h_i(id)]; 1 / initial_gap for an id whose buckets
 * were never updated. In the static mode (mmrec_freq_estimator_set_counts)
 * p = count(id) / sum of counts instead, and ids must be < num_items. log p
 * is what a logQ-corrected softmax subtracts.
 *   estimator (in)  a module made by mmrec_freq_estimator_create().
 *   ids       (in)  n item ids, each >= 0; borrowed for the call.
 *   n         (in)  number of ids, >= 1.
 *   out       (out) n probabilities in caller memory, each in (0, 1] once
 *                   initial_gap >= 1.
 * Returns MMREC_OK, MMREC_EINVAL (NULL, n 0, estimator not a frequency
 *         estimator), MMREC_ERANGE (a negative id, or in the static mode
 *         an id >= num_items; the message gives its index; out
 *         untouched), MMREC_ESTATE (the model was destroyed).
 * Thread safety: per-handle (the model); any number of threads may call it
 * while nobody updates the estimator. Since 0.2. */
MMREC_API mmrec_status mmrec_freq_estimator_probability(const mmrec_module *estimator,
                                                        const int64_t *ids, size_t n, float *out);

/* Switches the estimator to static probabilities from counts, p(y) =
 * counts[y] / sum of counts (sum in double, each p rounded to float and
 * kept >= FLT_MIN, so never 0), or
 * back to the streaming estimate when counts is NULL.
 *   estimator (in)  a module made by mmrec_freq_estimator_create() with
 *                   cfg.num_items > 0.
 *   counts    (in, may be NULL) n counts, each > 0 and finite (add-one
 *                   smoothing, if wanted, is the caller's: a zero count
 *                   would make log p infinite); borrowed for the call.
 *                   NULL: back to streaming.
 *   n         (in)  number of counts: cfg.num_items (ignored with NULL).
 * Returns MMREC_OK, MMREC_EINVAL (estimator NULL or not a frequency
 *         estimator; n not num_items: the message gives both; a count not
 *         > 0 and finite: the message gives its index), MMREC_ESTATE
 *         (created without num_items; the model was destroyed). A failed
 *         call changes nothing.
 * Thread safety: per-handle (the model). Since 0.2. */
MMREC_API mmrec_status mmrec_freq_estimator_set_counts(mmrec_module *estimator,
                                                       const float *counts, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_TWOTOWER_H */
