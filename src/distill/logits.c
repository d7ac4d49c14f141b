/* Soft-label distillation of logits (distill.h, mmrec_distill_logits):
 * PFD's L_d (Xu et al., KDD'20, Eq. 5; shared/METHODS-twotower.md 3.1),
 * the binary cross-entropy of the student's logit s against the teacher's
 * probability y = sigmoid(t / T), mean(softplus(s) - s y), or the squared
 * error of the logits; the teacher's gradient only with detach_target 0.
 * One node; the backward recomputes y from the teacher's logits. Also the
 * warm-up schedule of the distillation weight. Reference:
 * tests/golden/make_golden.py::write_distill_logits. */
#include "distill_internal.h"

#include <math.h>

static const mmrec_distill_logits_config mmrec__dl_defaults = {
    .struct_size = sizeof(mmrec_distill_logits_config),
    .kind = MMREC_DISTILL_BCE,
    .temperature = 1.0f,
    .detach_target = 1,
};

mmrec_status mmrec_distill_logits_config_init_sized(mmrec_distill_logits_config *cfg,
                                                    size_t size) {
    return MMREC__CONFIG_INIT(mmrec_distill_logits_config, cfg, size, mmrec__dl_defaults);
}

float mmrec_distill_warmup_weight(int64_t step, int64_t warmup_steps, float lambda) {
    return step < warmup_steps ? 0.0f : lambda;
}

typedef struct mmrec__dl_ctx {
    size_t n;
    int kind;
    float inv_t;
    bool detach;
} mmrec__dl_ctx;

static inline float mmrec__dl_sigmoid(float z) {
    if (z >= 0.0f) return 1.0f / (1.0f + expf(-z));
    float e = expf(z);
    return e / (1.0f + e);
}

static mmrec_status mmrec__dl_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__dl_ctx *c = node->ctx;
    mmrec_tensor *s = node->in[0], *t = node->in[1];
    float *ds = NULL, *dt = NULL;
    if (mmrec__requires_grad(s) && (ds = mmrec__grad(tape, s)) == NULL) return MMREC_ENOMEM;
    if (!c->detach && mmrec__requires_grad(t) && (dt = mmrec__grad(tape, t)) == NULL)
        return MMREC_ENOMEM;
    float g = node->out->grad[0] / (float)c->n;
    for (size_t i = 0; i < c->n; i++) {
        float si = s->data[i], ti = t->data[i];
        if (c->kind == MMREC_DISTILL_MSE) {
            float d = 2.0f * g * (si - ti);
            if (ds) ds[i] += d;
            if (dt) dt[i] -= d;
        } else {
            float y = mmrec__dl_sigmoid(ti * c->inv_t);
            if (ds) ds[i] += g * (mmrec__dl_sigmoid(si) - y);
            if (dt) dt[i] -= g * si * y * (1.0f - y) * c->inv_t;
        }
    }
    return MMREC_OK;
}

mmrec_status mmrec_distill_logits(mmrec_tape *tape, mmrec_tensor *student, mmrec_tensor *teacher,
                                  const mmrec_distill_logits_config *cfg, mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, student, teacher, out);
    mmrec_distill_logits_config cf = mmrec__dl_defaults;
    if (cfg) MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_distill_logits_config, &cf, cfg));
    MMREC_FAIL_IF(cf.kind != MMREC_DISTILL_BCE && cf.kind != MMREC_DISTILL_MSE, MMREC_EINVAL,
                  "cfg->kind is %d, must be MMREC_DISTILL_BCE or MMREC_DISTILL_MSE", cf.kind);
    if (cf.kind == MMREC_DISTILL_BCE)
        MMREC_FORWARD_IF(
            mmrec__distill_check_temperature(__func__, "cfg->temperature", cf.temperature));
    MMREC_FORWARD_IF(mmrec__distill_check_flag(__func__, "cfg->detach_target", cf.detach_target));
    bool same = student->ndim == teacher->ndim;
    for (int d = 0; same && d < student->ndim; d++) same = student->shape[d] == teacher->shape[d];
    if (!same) MMREC_FAIL_SHAPE2("the logits must have one shape", student, teacher);
    size_t n = student->numel;
    MMREC_FAIL_IF(n == 0, MMREC_ESHAPE, "student has no element");
    MMREC_CHECK_FINITE(student);
    MMREC_CHECK_FINITE(teacher);
    mmrec__dl_ctx c = {.n = n,
                       .kind = cf.kind,
                       .inv_t = 1.0f / cf.temperature,
                       .detach = cf.detach_target != 0};
    int64_t one[1] = {1};
    mmrec_tensor *in[2] = {student, teacher}, *y;
    const mmrec__op op = {__func__, "distill_logits", mmrec__dl_backward, in, 2,
                          c.detach ? 1 : 2, &c, sizeof c};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 1, one, false, &y, NULL, &mark));
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        float s = student->data[i], t = teacher->data[i];
        if (c.kind == MMREC_DISTILL_MSE) {
            double d = (double)s - (double)t;
            sum += d * d;
        } else {
            float p = mmrec__dl_sigmoid(t * c.inv_t);
            sum += (double)(s > 0.0f ? s : 0.0f) - (double)s * (double)p +
                   (double)log1pf(expf(-fabsf(s)));
        }
    }
    y->data[0] = (float)(sum / (double)n);
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
