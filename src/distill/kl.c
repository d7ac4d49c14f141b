/* KL divergence of score distributions (distill.h, mmrec_distill_kl):
 * KL(softmax(t_i / T_t) || softmax(s_i / T_s)) per row over the kept
 * candidates, weighted, summed over rows and divided by B (batchmean),
 * optionally times T_s T_t (Hinton et al. 2015). ColBERTv2's distillation
 * (shared/METHODS-twotower.md 3.7) is the default. One node: the forward
 * keeps each row's maxima, log-sum-exps and KL; the backward recomputes
 * both distributions from the scores. Reference:
 * tests/golden/make_golden.py::write_distill_kl (torch.nn.KLDivLoss with
 * log_target=True on masked log_softmax). */
#include "distill_internal.h"

#include <math.h>
#include <string.h>

static const mmrec_distill_kl_config mmrec__kl_defaults = {
    .struct_size = sizeof(mmrec_distill_kl_config),
    .student_temperature = 1.0f,
    .teacher_temperature = 1.0f,
    .hinton_scale = 0,
    .detach_target = 1,
};

mmrec_status mmrec_distill_kl_config_init_sized(mmrec_distill_kl_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_distill_kl_config, cfg, size, mmrec__kl_defaults);
}

typedef struct mmrec__kl_ctx {
    mmrec__kl_rows rows;
    bool detach;
    float *coef; /* [B]: c w_i / B */
} mmrec__kl_ctx;

static inline bool mmrec__kl_keep(const mmrec__kl_rows *r, size_t i, size_t j) {
    if (r->mask) return r->mask[i * r->cands + j] != 0;
    if (r->bits) return (r->bits[i * r->words + (j >> 6)] >> (j & 63)) & 1u;
    return true;
}

double mmrec__kl_row(const mmrec__kl_rows *r, const float *s, const float *t, size_t i) {
    size_t n = r->cands;
    const float *si = s + i * n, *ti = t + i * n;
    float *st = r->stat + 5 * i;
    float ms = -INFINITY, mt = -INFINITY;
    for (size_t j = 0; j < n; j++)
        if (mmrec__kl_keep(r, i, j)) {
            ms = fmaxf(ms, si[j] * r->inv_ts);
            mt = fmaxf(mt, ti[j] * r->inv_tt);
        }
    if (ms == -INFINITY) {
        memset(st, 0, 5 * sizeof *st);
        return 0.0;
    }
    double zs = 0.0, zt = 0.0;
    for (size_t j = 0; j < n; j++)
        if (mmrec__kl_keep(r, i, j)) {
            zs += exp((double)(si[j] * r->inv_ts - ms));
            zt += exp((double)(ti[j] * r->inv_tt - mt));
        }
    double ls = log(zs), lt = log(zt), kl = 0.0;
    for (size_t j = 0; j < n; j++)
        if (mmrec__kl_keep(r, i, j)) {
            double lp = (double)(ti[j] * r->inv_tt - mt) - lt;
            double lq = (double)(si[j] * r->inv_ts - ms) - ls;
            kl += exp(lp) * (lp - lq);
        }
    st[0] = ms;
    st[1] = (float)ls;
    st[2] = mt;
    st[3] = (float)lt;
    st[4] = (float)kl;
    return kl;
}

void mmrec__kl_row_backward(const mmrec__kl_rows *r, const float *s, const float *t, size_t i,
                            float g, float *ds_row, float *dt_row) {
    size_t n = r->cands;
    const float *st = r->stat + 5 * i, *si = s + i * n, *ti = t + i * n;
    for (size_t j = 0; j < n; j++) {
        if (!mmrec__kl_keep(r, i, j)) continue;
        float lp = (ti[j] * r->inv_tt - st[2]) - st[3];
        float lq = (si[j] * r->inv_ts - st[0]) - st[1];
        float p = expf(lp), q = expf(lq);
        if (ds_row) ds_row[j] += g * (q - p) * r->inv_ts;
        if (dt_row) dt_row[j] += g * p * (lp - lq - st[4]) * r->inv_tt;
    }
}

static mmrec_status mmrec__kl_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__kl_ctx *c = node->ctx;
    mmrec_tensor *s = node->in[0], *t = node->in[1];
    float *ds = NULL, *dt = NULL;
    if (mmrec__requires_grad(s) && (ds = mmrec__grad(tape, s)) == NULL) return MMREC_ENOMEM;
    if (!c->detach && mmrec__requires_grad(t) && (dt = mmrec__grad(tape, t)) == NULL)
        return MMREC_ENOMEM;
    float g = node->out->grad[0];
    size_t n = c->rows.cands;
    for (size_t i = 0; i < c->rows.batch; i++) {
        if (c->coef[i] == 0.0f) continue;
        mmrec__kl_row_backward(&c->rows, s->data, t->data, i, g * c->coef[i],
                               ds ? ds + i * n : NULL, dt ? dt + i * n : NULL);
    }
    return MMREC_OK;
}

mmrec_status mmrec_distill_kl(mmrec_tape *tape, mmrec_tensor *student, mmrec_tensor *teacher,
                              const mmrec_distill_kl_config *cfg, mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, student, teacher, out);
    mmrec_distill_kl_config cf = mmrec__kl_defaults;
    if (cfg) MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_distill_kl_config, &cf, cfg));
    MMREC_FORWARD_IF(mmrec__distill_check_temperature(__func__, "cfg->student_temperature",
                                                      cf.student_temperature));
    MMREC_FORWARD_IF(mmrec__distill_check_temperature(__func__, "cfg->teacher_temperature",
                                                      cf.teacher_temperature));
    MMREC_FORWARD_IF(mmrec__distill_check_flag(__func__, "cfg->hinton_scale", cf.hinton_scale));
    MMREC_FORWARD_IF(mmrec__distill_check_flag(__func__, "cfg->detach_target", cf.detach_target));
    if (student->ndim != 2 || teacher->ndim != 2 || student->shape[0] != teacher->shape[0] ||
        student->shape[1] != teacher->shape[1])
        MMREC_FAIL_SHAPE2("the scores must both be [batch, candidates]", student, teacher);
    size_t B = (size_t)student->shape[0], n = (size_t)student->shape[1];
    MMREC_FAIL_IF(B == 0 || n == 0, MMREC_ESHAPE, "student is [%zu,%zu], must not be empty", B,
                  n);
    if (cf.row_weights)
        for (size_t i = 0; i < B; i++)
            MMREC_FAIL_IF(!(cf.row_weights[i] >= 0.0f) || !isfinite(cf.row_weights[i]),
                          MMREC_EINVAL, "cfg->row_weights[%zu] is %g, must be finite and >= 0", i,
                          (double)cf.row_weights[i]);
    mmrec__kl_ctx c = {
        .rows = {.batch = B,
                 .cands = n,
                 .words = (n + 63) / 64,
                 .inv_ts = 1.0f / cf.student_temperature,
                 .inv_tt = 1.0f / cf.teacher_temperature,
                 .mask = cf.mask},
        .detach = cf.detach_target != 0,
    };
    for (size_t i = 0; i < B; i++)
        for (size_t j = 0; j < n; j++) {
            if (!mmrec__kl_keep(&c.rows, i, j)) continue;
            MMREC_FAIL_IF(!isfinite(student->data[i * n + j]), MMREC_ENUMERIC,
                          "student[%zu, %zu] is %g, a kept pair must be finite", i, j,
                          (double)student->data[i * n + j]);
            MMREC_FAIL_IF(!isfinite(teacher->data[i * n + j]), MMREC_ENUMERIC,
                          "teacher[%zu, %zu] is %g, a kept pair must be finite", i, j,
                          (double)teacher->data[i * n + j]);
        }
    int64_t one[1] = {1};
    mmrec_tensor *in[2] = {student, teacher}, *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    const mmrec__op op = {__func__, "distill_kl", mmrec__kl_backward, in, 2,
                          c.detach ? 1 : 2, NULL, sizeof c};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 1, one, false, &y, &node, &mark));
    c.coef = mmrec__tape_alloc(tape, 6 * B * sizeof(float));
    if (c.coef == NULL) return mmrec__tape_oom(tape, mark, __func__);
    c.rows.stat = c.coef + B;
    double scale = cf.hinton_scale ? (double)cf.student_temperature * cf.teacher_temperature : 1.0;
    for (size_t i = 0; i < B; i++) {
        double w = cf.row_weights ? (double)cf.row_weights[i] : 1.0;
        c.coef[i] = (float)(scale * w / (double)B);
    }
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        double kl = mmrec__kl_row(&c.rows, student->data, teacher->data, i);
        if (c.coef[i] != 0.0f) total += (double)c.coef[i] * kl;
    }
    y->data[0] = (float)total;
    if (node) {
        if (cf.mask) {
            size_t words = c.rows.words;
            uint64_t *bits = mmrec__tape_alloc(tape, B * words * sizeof *bits);
            if (bits == NULL) return mmrec__tape_oom(tape, mark, __func__);
            memset(bits, 0, B * words * sizeof *bits);
            for (size_t i = 0; i < B; i++)
                for (size_t j = 0; j < n; j++)
                    if (cf.mask[i * n + j]) bits[i * words + (j >> 6)] |= (uint64_t)1 << (j & 63);
            c.rows.bits = bits;
            c.rows.mask = NULL;
        }
        *(mmrec__kl_ctx *)node->ctx = c;
    }
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
