/* CIC: content-ID contrastive loss with H in-batch negatives per row, the
 * symmetric batch softmax over cosine similarities (losses.h):
 * S = norm(C) norm(I)^T / tau; the rows of S (C2I) and of S^T (I2C) are
 * softmax cross-entropies over {own pair} and the row's negatives, the other
 * pairs removed by the keep mask. The H negatives of a row are drawn
 * without repetition from the tape's generator (a partial Fisher-Yates
 * shuffle of the other rows, row by row) or given.
 * Reference: EM3 (METHODS.md); tests/golden/make_golden.py::cic_reference. */
#include "../losses/losses_internal.h"
#include "em3_internal.h"

#include <math.h>

static const mmrec_cic_config mmrec__cic_defaults = {
    .struct_size = sizeof(mmrec_cic_config),
    .temperature = 0.1f,
};

mmrec_status mmrec_cic_config_init_sized(mmrec_cic_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_cic_config, cfg, size, mmrec__cic_defaults);
}

typedef struct mmrec__cic_mask {
    mmrec_tape *tape;
    const int64_t *negatives; /* [B, H] or NULL: draw them */
    int64_t *pool;            /* [2B]: the other rows, then the swaps */
    size_t batch, num_negatives;
} mmrec__cic_mask;

/* Keeps each row's H negatives (the positives are added by the loss). A
 * sampled row shuffles the first H places of the other rows in order,
 * pool = [0 .. i-1, i+1 .. B-1]; undoing its swaps and setting pool[i] = i
 * gives the next row's pool, so a row costs O(H), not O(B). */
static void mmrec__cic_fill(void *ctx, uint64_t *keep, size_t words) {
    mmrec__cic_mask *m = ctx;
    size_t B = m->batch, H = m->num_negatives, n = B - 1;
    int64_t *pool = m->pool, *swaps = m->pool + n;
    if (m->negatives == NULL)
        for (size_t j = 0; j < n; j++) pool[j] = (int64_t)j + 1;
    for (size_t i = 0; i < B; i++) {
        if (m->negatives) {
            for (size_t h = 0; h < H; h++)
                mmrec__batch_softmax_keep(keep, words, i, (size_t)m->negatives[i * H + h]);
            continue;
        }
        for (size_t h = 0; h < H; h++) {
            size_t k = h + (size_t)mmrec__rng_below(&m->tape->rng, (uint64_t)(n - h));
            int64_t t = pool[h];
            pool[h] = pool[k];
            pool[k] = t;
            swaps[h] = (int64_t)k;
            mmrec__batch_softmax_keep(keep, words, i, (size_t)pool[h]);
        }
        for (size_t h = H; h-- > 0;) {
            int64_t t = pool[h];
            pool[h] = pool[swaps[h]];
            pool[swaps[h]] = t;
        }
        if (i < n) pool[i] = (int64_t)i;
    }
}

/* Each given negative in [0, B), not its own row, not repeated in the row
 * (seen: B scratch entries). */
static mmrec_status mmrec__cic_check_negatives(const mmrec_cic_config *c, size_t B,
                                               int64_t *seen) {
    const char *func = "mmrec_loss_cic";
    size_t H = (size_t)c->num_negatives;
    for (size_t j = 0; j < B; j++) seen[j] = -1;
    for (size_t i = 0; i < B; i++)
        for (size_t h = 0; h < H; h++) {
            int64_t j = c->negatives[i * H + h];
            if (j < 0 || j >= (int64_t)B || j == (int64_t)i)
                return mmrec__set_error(MMREC_ERANGE, func,
                                        "cfg->negatives[%zu] is %lld: must be in [0, %zu) "
                                        "and not its row %zu",
                                        i * H + h, (long long)j, B, i);
            if (seen[j] == (int64_t)i)
                return mmrec__set_error(MMREC_EINVAL, func,
                                        "cfg->negatives repeats %lld in row %zu", (long long)j,
                                        i);
            seen[j] = (int64_t)i;
        }
    return MMREC_OK;
}

static mmrec_status mmrec__cic_run(mmrec_tape *tape, mmrec_tensor *content, mmrec_tensor *ids,
                                   const mmrec_cic_config *c, mmrec_tensor **out) {
    size_t B = (size_t)content->shape[0], H = (size_t)c->num_negatives;
    mmrec__batch_softmax_args a = {.temperature = c->temperature, .normalize = true,
                                   .symmetric = true};
    mmrec__cic_mask m = {tape, c->negatives, NULL, B, H};
    if (c->negatives || H < B - 1) {
        m.pool = mmrec__tape_alloc(tape, 2 * B * sizeof *m.pool);
        if (m.pool == NULL)
            return mmrec__set_error(MMREC_ENOMEM, "mmrec_loss_cic", "out of memory");
        if (c->negatives) MMREC_FORWARD_IF(mmrec__cic_check_negatives(c, B, m.pool));
    }
    if (H < B - 1) { /* fewer than every other row */
        a.mask = mmrec__cic_fill;
        a.mask_ctx = &m;
    }
    return mmrec__loss_batch_softmax(tape, "mmrec_loss_cic", content, ids, &a, out);
}

mmrec_status mmrec_loss_cic(mmrec_tape *tape, mmrec_tensor *content, mmrec_tensor *ids,
                            const mmrec_cic_config *cfg, mmrec_tensor **out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(content, tape);
    MMREC_CHECK_TENSOR_ON(ids, tape);
    MMREC_CHECK_NULL(cfg);
    MMREC_CHECK_NULL(out);
    mmrec_cic_config c = mmrec__cic_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_cic_config, &c, cfg));
    if (content->ndim != 2 || ids->ndim != 2 || content->shape[0] != ids->shape[0] ||
        content->shape[1] != ids->shape[1])
        MMREC_FAIL_SHAPE2("content and ids must both be [batch, dim]", content, ids);
    MMREC_CHECK_FINITE(content);
    MMREC_CHECK_FINITE(ids);
    int64_t B = content->shape[0];
    MMREC_FAIL_IF(B < 2, MMREC_ESHAPE, "batch is %lld, needs at least 2 rows", (long long)B);
    MMREC_FAIL_IF(!(c.temperature > 0.0f) || !isfinite(c.temperature) ||
                      !isfinite(1.0f / c.temperature),
                  MMREC_EINVAL, "cfg->temperature is %g, must be > 0", (double)c.temperature);
    MMREC_FAIL_IF(c.num_negatives < 0 || c.num_negatives > B - 1, MMREC_EINVAL,
                  "cfg->num_negatives is %d, must be in [0, %lld] (batch - 1)", c.num_negatives,
                  (long long)(B - 1));
    MMREC_FAIL_IF(c.negatives != NULL && c.num_negatives == 0, MMREC_EINVAL,
                  "cfg->negatives given without cfg->num_negatives");
    if (c.num_negatives == 0) c.num_negatives = (int)(B - 1);
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__cic_run(tape, content, ids, &c, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}
