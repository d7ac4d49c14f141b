/* ENDX's geometry alignment (distill.h, mmrec_distill_gam; Wang et al.,
 * Findings EMNLP 2021; shared/METHODS-twotower.md 3.2): for the pair types
 * q-a, a-a, a-q and q-q, the KL between the teacher's and the student's
 * in-batch similarity distributions, row by row, with the row kernel of
 * mmrec_distill_kl (kl.c). One node: the forward keeps the similarity
 * matrices (and the normalized rows for the cosine) with each row's
 * statistics; the backward takes d sim per type from the row kernel and
 * goes back through the products (and the normalization). Reference:
 * tests/golden/make_golden.py::write_distill (gam cases). */
#include "distill_internal.h"

#include <math.h>
#include <string.h>

static const mmrec_distill_gam_config mmrec__gam_defaults = {
    .struct_size = sizeof(mmrec_distill_gam_config),
    .temperature = 1.0f,
    .similarity = MMREC_DISTILL_DOT,
    .detach_target = 1,
    .weights = {1.0f, 1.0f, 1.0f, 1.0f},
};

mmrec_status mmrec_distill_gam_config_init_sized(mmrec_distill_gam_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_distill_gam_config, cfg, size, mmrec__gam_defaults);
}

/* The rows (X, Y) of each type: 0 = Q, 1 = A. */
static const int mmrec__gam_x[4] = {0, 1, 1, 0}, mmrec__gam_y[4] = {1, 1, 0, 0};

static const float mmrec__gam_eps = 1e-12f;

typedef struct mmrec__gam_ctx {
    size_t batch;
    size_t dim[4];       /* by embedding: student q, a, teacher q, a */
    bool cosine, detach;
    float coef[4];       /* w_k / B */
    const float *e[4];   /* the rows the similarities use (normalized for
                            the cosine) */
    float *inv_norm[4];  /* [B] each, cosine only */
    float *sim[8];       /* [B, B]: student type k at k, teacher at 4 + k */
    mmrec__kl_rows rows[4];
    float *dsim;         /* [B, B] backward scratch */
    float *dhat[4];      /* [B, dim] backward scratch */
} mmrec__gam_ctx;

static mmrec_status mmrec__gam_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__gam_ctx *c = node->ctx;
    float g = node->out->grad[0];
    size_t B = c->batch;
    for (int side = 0; side < 2; side++) {
        if (side == 1 && c->detach) break;
        mmrec_tensor *tq = node->in[2 * side], *ta = node->in[2 * side + 1];
        if (!mmrec__requires_grad(tq) && !mmrec__requires_grad(ta)) continue;
        size_t d = c->dim[2 * side];
        memset(c->dhat[2 * side], 0, B * d * sizeof(float));
        memset(c->dhat[2 * side + 1], 0, B * d * sizeof(float));
        for (int k = 0; k < 4; k++) {
            if (c->coef[k] == 0.0f) continue;
            memset(c->dsim, 0, B * B * sizeof(float));
            for (size_t i = 0; i < B; i++)
                mmrec__kl_row_backward(&c->rows[k], c->sim[k], c->sim[4 + k], i, g * c->coef[k],
                                       side == 0 ? c->dsim + i * B : NULL,
                                       side == 1 ? c->dsim + i * B : NULL);
            int x = 2 * side + mmrec__gam_x[k], y = 2 * side + mmrec__gam_y[k];
            /* sim = X Y^T: dX += dsim Y, dY += dsim^T X */
            mmrec__sgemm(false, false, B, d, B, 1.0f, c->dsim, B, c->e[y], d, 1.0f, c->dhat[x], d);
            mmrec__sgemm(true, false, B, d, B, 1.0f, c->dsim, B, c->e[x], d, 1.0f, c->dhat[y], d);
        }
        for (int m = 2 * side; m < 2 * side + 2; m++) {
            mmrec_tensor *t = node->in[m];
            if (!mmrec__requires_grad(t)) continue;
            float *dt = mmrec__grad(tape, t);
            if (dt == NULL) return MMREC_ENOMEM;
            for (size_t i = 0; i < B; i++) {
                const float *dh = c->dhat[m] + i * d;
                float *dr = dt + i * d;
                if (!c->cosine) {
                    for (size_t j = 0; j < d; j++) dr[j] += dh[j];
                    continue;
                }
                /* x^ = x / max(||x||, eps): d x = (d x^ - x^ <x^, d x^>) / ||x||
                 * above eps, d x^ / eps below */
                const float *xh = c->e[m] + i * d;
                float inv = c->inv_norm[m][i];
                double dot = 0.0;
                if (inv < 1.0f / mmrec__gam_eps)
                    for (size_t j = 0; j < d; j++) dot += (double)xh[j] * dh[j];
                for (size_t j = 0; j < d; j++) dr[j] += (dh[j] - xh[j] * (float)dot) * inv;
            }
        }
    }
    return MMREC_OK;
}

/* Checks one embedding on behalf of mmrec_distill_gam. */
static mmrec_status mmrec__gam_check_finite(const char *func, const char *name,
                                            const mmrec_tensor *t) {
    return mmrec__check_finite(func, name, t->data, t->numel);
}

mmrec_status mmrec_distill_gam(mmrec_tape *tape, mmrec_tensor *student_q, mmrec_tensor *student_a,
                               mmrec_tensor *teacher_q, mmrec_tensor *teacher_a,
                               const mmrec_distill_gam_config *cfg, mmrec_tensor **out) {
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_TENSOR_ON(student_q, tape);
    MMREC_CHECK_TENSOR_ON(student_a, tape);
    MMREC_CHECK_TENSOR_ON(teacher_q, tape);
    MMREC_CHECK_TENSOR_ON(teacher_a, tape);
    MMREC_CHECK_NULL(out);
    mmrec_distill_gam_config cf = mmrec__gam_defaults;
    if (cfg) MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_distill_gam_config, &cf, cfg));
    MMREC_FORWARD_IF(
        mmrec__distill_check_temperature(__func__, "cfg->temperature", cf.temperature));
    MMREC_FAIL_IF(cf.similarity != MMREC_DISTILL_DOT && cf.similarity != MMREC_DISTILL_COSINE,
                  MMREC_EINVAL,
                  "cfg->similarity is %d, must be MMREC_DISTILL_DOT or MMREC_DISTILL_COSINE",
                  cf.similarity);
    MMREC_FORWARD_IF(mmrec__distill_check_flag(__func__, "cfg->detach_target", cf.detach_target));
    for (int k = 0; k < 4; k++)
        MMREC_FAIL_IF(!(cf.weights[k] >= 0.0f) || !isfinite(cf.weights[k]), MMREC_EINVAL,
                      "cfg->weights[%d] is %g, must be finite and >= 0", k,
                      (double)cf.weights[k]);
    if (student_q->ndim != 2 || student_a->ndim != 2 || student_q->shape[0] != student_a->shape[0] ||
        student_q->shape[1] != student_a->shape[1])
        MMREC_FAIL_SHAPE2("the student's embeddings must both be [B, d_s]", student_q, student_a);
    if (teacher_q->ndim != 2 || teacher_a->ndim != 2 || teacher_q->shape[0] != teacher_a->shape[0] ||
        teacher_q->shape[1] != teacher_a->shape[1])
        MMREC_FAIL_SHAPE2("the teacher's embeddings must both be [B, d_t]", teacher_q, teacher_a);
    if (teacher_q->shape[0] != student_q->shape[0])
        MMREC_FAIL_SHAPE2("teacher and student must have one batch", student_q, teacher_q);
    size_t B = (size_t)student_q->shape[0];
    MMREC_FAIL_IF(B == 0 || student_q->shape[1] == 0 || teacher_q->shape[1] == 0, MMREC_ESHAPE,
                  "student_q and teacher_q must not be empty");
    mmrec_tensor *in[4] = {student_q, student_a, teacher_q, teacher_a};
    static const char *const names[4] = {"student_q", "student_a", "teacher_q", "teacher_a"};
    for (int m = 0; m < 4; m++) MMREC_FORWARD_IF(mmrec__gam_check_finite(__func__, names[m], in[m]));

    mmrec__gam_ctx c = {.batch = B,
                        .cosine = cf.similarity == MMREC_DISTILL_COSINE,
                        .detach = cf.detach_target != 0};
    for (int m = 0; m < 4; m++) {
        c.dim[m] = (size_t)in[m]->shape[1];
        c.e[m] = in[m]->data;
    }
    for (int k = 0; k < 4; k++) c.coef[k] = (float)((double)cf.weights[k] / (double)B);
    int64_t one[1] = {1};
    mmrec_tensor *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__op op = {__func__, "distill_gam", mmrec__gam_backward, in, 4, c.detach ? 2 : 4,
                          NULL, sizeof c};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 1, one, false, &y, &node, &mark));
    float *sims = mmrec__tape_alloc(tape, (8 * B * B + 4 * 5 * B) * sizeof(float));
    if (sims == NULL) return mmrec__tape_oom(tape, mark, __func__);
    for (int k = 0; k < 8; k++) c.sim[k] = sims + (size_t)k * B * B;
    if (c.cosine) {
        for (int m = 0; m < 4; m++) {
            size_t d = c.dim[m];
            float *xh = mmrec__tape_alloc(tape, (B * d + B) * sizeof(float));
            if (xh == NULL) return mmrec__tape_oom(tape, mark, __func__);
            c.inv_norm[m] = xh + B * d;
            for (size_t i = 0; i < B; i++) {
                const float *x = in[m]->data + i * d;
                double ss = 0.0;
                for (size_t j = 0; j < d; j++) ss += (double)x[j] * x[j];
                double nrm = sqrt(ss);
                float inv = (float)(1.0 / (nrm > mmrec__gam_eps ? nrm : mmrec__gam_eps));
                c.inv_norm[m][i] = inv;
                for (size_t j = 0; j < d; j++) xh[i * d + j] = x[j] * inv;
            }
            c.e[m] = xh;
        }
    }
    float inv_t = 1.0f / cf.temperature;
    double total = 0.0;
    for (int k = 0; k < 4; k++) {
        for (int side = 0; side < 2; side++) {
            int x = 2 * side + mmrec__gam_x[k], yy = 2 * side + mmrec__gam_y[k];
            size_t d = c.dim[x];
            mmrec__sgemm(false, true, B, B, d, 1.0f, c.e[x], d, c.e[yy], d, 0.0f,
                         c.sim[4 * side + k], B);
        }
        c.rows[k] = (mmrec__kl_rows){.batch = B, .cands = B, .words = (B + 63) / 64,
                                     .inv_ts = inv_t, .inv_tt = inv_t,
                                     .stat = sims + 8 * B * B + (size_t)k * 5 * B};
        if (c.coef[k] == 0.0f) continue;
        double sum = 0.0;
        for (size_t i = 0; i < B; i++) sum += mmrec__kl_row(&c.rows[k], c.sim[k], c.sim[4 + k], i);
        total += (double)c.coef[k] * sum;
    }
    y->data[0] = (float)total;
    if (node) {
        size_t dmax = c.dim[0] > c.dim[2] ? c.dim[0] : c.dim[2];
        float *scratch = mmrec__tape_alloc(tape, (B * B + 4 * B * dmax) * sizeof(float));
        if (scratch == NULL) return mmrec__tape_oom(tape, mark, __func__);
        c.dsim = scratch;
        for (int m = 0; m < 4; m++) c.dhat[m] = scratch + B * B + (size_t)m * B * dmax;
        *(mmrec__gam_ctx *)node->ctx = c;
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
