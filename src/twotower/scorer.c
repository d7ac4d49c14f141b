/* The two-tower scorer (twotower.h): dot or cosine scores over a
 * temperature, composed of the public ops (normalize, product or row sum,
 * scale), and the serving vectors that fold the normalization and the
 * temperature into plain inner products.
 * Reference: Yi et al., RecSys'19, section 3 (METHODS-twotower.md 2.3);
 * tests/golden/make_golden.py::write_twotower_score (F.normalize, matmul,
 * division by tau). */
#include "twotower_internal.h"
#include "../ops/ops_internal.h"
#include "mmrec/ops.h"

#include <math.h>

static const mmrec_twotower_config mmrec__tt_defaults = {
    .struct_size = sizeof(mmrec_twotower_config),
    .score = MMREC_SCORE_DOT,
    .temperature = 1.0f,
    .eps = 1e-12f,
};

mmrec_status mmrec_twotower_config_init_sized(mmrec_twotower_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_twotower_config, cfg, size, mmrec__tt_defaults);
}

/* Merges and checks the caller's config into *c (defaults for NULL). */
static mmrec_status mmrec__tt_config(const mmrec_twotower_config *cfg, const char *func,
                                     mmrec_twotower_config *c) {
    *c = mmrec__tt_defaults;
    if (cfg != NULL) {
        mmrec_status s = mmrec__config_merge(c, sizeof *c, MMREC__MIN_SIZE(mmrec_twotower_config),
                                             cfg, func);
        if (s != MMREC_OK) return s;
    }
    MMREC_FAIL_IF_FOR(func, c->score != MMREC_SCORE_DOT && c->score != MMREC_SCORE_COSINE,
                      MMREC_EINVAL, "cfg->score is %d, expected MMREC_SCORE_DOT or "
                      "MMREC_SCORE_COSINE", c->score);
    MMREC_FAIL_IF_FOR(func, !(c->temperature > 0.0f) || !isfinite(c->temperature) ||
                                !isfinite(1.0f / c->temperature),
                      MMREC_EINVAL, "cfg->temperature is %g, expected > 0 with a finite "
                      "inverse", (double)c->temperature);
    MMREC_FAIL_IF_FOR(func, !(c->eps > 0.0f) || !isfinite(c->eps), MMREC_EINVAL,
                      "cfg->eps is %g, expected > 0 and finite", (double)c->eps);
    return MMREC_OK;
}

/* Normalizes both sides for cosine scores; items may alias users. */
static mmrec_status mmrec__tt_sides(mmrec_tape *tape, const mmrec_twotower_config *c,
                                    mmrec_tensor **users, mmrec_tensor **items) {
    if (c->score != MMREC_SCORE_COSINE) return MMREC_OK;
    bool same = *items == *users;
    MMREC_FORWARD_IF(mmrec_l2_normalize(tape, *users, c->eps, users));
    if (same) {
        *items = *users;
        return MMREC_OK;
    }
    return mmrec_l2_normalize(tape, *items, c->eps, items);
}

static mmrec_status mmrec__tt_score_run(mmrec_tape *tape, const mmrec_twotower_config *c,
                                        bool paired, mmrec_tensor *users, mmrec_tensor *items,
                                        mmrec_tensor **out) {
    mmrec_tensor *s;
    MMREC_FORWARD_IF(mmrec__tt_sides(tape, c, &users, &items));
    if (paired) {
        mmrec_tensor *prod;
        MMREC_FORWARD_IF(mmrec_mul(tape, users, items, &prod));
        MMREC_FORWARD_IF(mmrec_sum(tape, prod, -1, &s));
    } else {
        MMREC_FORWARD_IF(mmrec_matmul(tape, users, items, MMREC_TRANS_B, &s));
    }
    if (c->temperature == 1.0f) {
        *out = s;
        return MMREC_OK;
    }
    return mmrec_scale(tape, s, 1.0f / c->temperature, out);
}

static mmrec_status mmrec__tt_score(mmrec_tape *tape, mmrec_tensor *users, mmrec_tensor *items,
                                    const mmrec_twotower_config *c, bool paired,
                                    mmrec_tensor **out) {
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__tt_score_run(tape, c, paired, users, items, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}

mmrec_status mmrec_twotower_score(mmrec_tape *tape, mmrec_tensor *users, mmrec_tensor *items,
                                  const mmrec_twotower_config *cfg, mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, users, items, out);
    mmrec_twotower_config c;
    MMREC_FORWARD_IF(mmrec__tt_config(cfg, __func__, &c));
    if (users->ndim != 2 || items->ndim != 2 || users->shape[1] != items->shape[1])
        MMREC_FAIL_SHAPE2("users must be [B, d] and items [N, d]", users, items);
    return mmrec__tt_score(tape, users, items, &c, false, out);
}

mmrec_status mmrec_twotower_score_paired(mmrec_tape *tape, mmrec_tensor *users,
                                         mmrec_tensor *items, const mmrec_twotower_config *cfg,
                                         mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, users, items, out);
    mmrec_twotower_config c;
    MMREC_FORWARD_IF(mmrec__tt_config(cfg, __func__, &c));
    if (users->ndim != 2 || items->ndim != 2 || users->shape[0] != items->shape[0] ||
        users->shape[1] != items->shape[1])
        MMREC_FAIL_SHAPE2("users and items must both be [B, d]", users, items);
    return mmrec__tt_score(tape, users, items, &c, true, out);
}

mmrec_status mmrec_twotower_serving_vectors(const mmrec_twotower_config *cfg, int side,
                                            const float *x, size_t n, size_t dim, float *out) {
    MMREC_CHECK_NULL(x);
    MMREC_CHECK_NULL(out);
    mmrec_twotower_config c;
    MMREC_FORWARD_IF(mmrec__tt_config(cfg, __func__, &c));
    MMREC_FAIL_IF(n == 0 || dim == 0, MMREC_EINVAL, "n is %zu and dim %zu, expected both >= 1",
                  n, dim);
    MMREC_FAIL_IF(side != MMREC_TOWER_USER && side != MMREC_TOWER_ITEM, MMREC_EINVAL,
                  "side is %d, expected MMREC_TOWER_USER or MMREC_TOWER_ITEM", side);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++)
            MMREC_FAIL_IF(!isfinite(x[i * dim + j]), MMREC_ENUMERIC,
                          "x[%zu, %zu] is %g, expected a finite value", i, j,
                          (double)x[i * dim + j]);
    bool cosine = c.score == MMREC_SCORE_COSINE;
    double inv_tau = side == MMREC_TOWER_USER ? 1.0 / (double)c.temperature : 1.0;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * dim;
        float *oi = out + i * dim;
        double scale = inv_tau;
        if (cosine) {
            double norm = sqrt(mmrec__dot_wide(xi, xi, dim));
            scale /= norm > (double)c.eps ? norm : (double)c.eps;
        }
        for (size_t j = 0; j < dim; j++) oi[j] = (float)((double)xi[j] * scale);
    }
    return MMREC_OK;
}
