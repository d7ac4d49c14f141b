/* Attention-map distillation (distill.h, mmrec_distill_attn): VIRT's
 * squared error and the Distilled Dual-Encoder's row-wise
 * KL(teacher || student) between two attention maps of one shape, with
 * the floor eps on both logs; the teacher's gradient only with
 * detach_target 0. One node; the backward reads both maps. Reference:
 * tests/golden/make_golden.py::write_distill_attn. */
#include "distill_internal.h"

static const mmrec_distill_attn_config mmrec__da_defaults = {
    .struct_size = sizeof(mmrec_distill_attn_config),
    .kind = MMREC_DISTILL_ATTN_L2,
    .eps = 1e-8f,
    .detach_target = 1,
};

mmrec_status mmrec_distill_attn_config_init_sized(mmrec_distill_attn_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_distill_attn_config, cfg, size, mmrec__da_defaults);
}

typedef struct mmrec__da_ctx {
    size_t n, rows;
    int kind;
    float eps;
    bool detach;
} mmrec__da_ctx;

static mmrec_status mmrec__da_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__da_ctx *c = node->ctx;
    mmrec_tensor *s = node->in[0], *t = node->in[1];
    float *ds = NULL, *dt = NULL;
    if (mmrec__requires_grad(s) && (ds = mmrec__grad(tape, s)) == NULL) return MMREC_ENOMEM;
    if (!c->detach && mmrec__requires_grad(t) && (dt = mmrec__grad(tape, t)) == NULL)
        return MMREC_ENOMEM;
    float g = node->out->grad[0];
    if (c->kind == MMREC_DISTILL_ATTN_L2) {
        float gn = 2.0f * g / (float)c->n;
        for (size_t i = 0; i < c->n; i++) {
            float d = gn * (s->data[i] - t->data[i]);
            if (ds) ds[i] += d;
            if (dt) dt[i] -= d;
        }
        return MMREC_OK;
    }
    float gr = g / (float)c->rows;
    for (size_t i = 0; i < c->n; i++) {
        float si = s->data[i], ti = t->data[i];
        if (ds && si > c->eps) ds[i] -= gr * ti / si;
        if (dt) {
            float lt = ti > c->eps ? logf(ti) + 1.0f : logf(c->eps);
            dt[i] += gr * (lt - logf(si > c->eps ? si : c->eps));
        }
    }
    return MMREC_OK;
}

/* Checks that every value of `x` is finite and in [0, 1]. */
static mmrec_status mmrec__da_check_map(const char *func, const char *name,
                                        const mmrec_tensor *x) {
    for (size_t i = 0; i < x->numel; i++) {
        float v = x->data[i];
        if (!(v >= 0.0f && v <= 1.0f))
            return mmrec__set_error(MMREC_ENUMERIC, func,
                                    "%s[%zu] is %g, a probability must be in [0, 1]", name, i,
                                    (double)v);
    }
    return MMREC_OK;
}

mmrec_status mmrec_distill_attn(mmrec_tape *tape, mmrec_tensor *student, mmrec_tensor *teacher,
                                const mmrec_distill_attn_config *cfg, mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, student, teacher, out);
    mmrec_distill_attn_config cf = mmrec__da_defaults;
    if (cfg) MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_distill_attn_config, &cf, cfg));
    MMREC_FAIL_IF(cf.kind != MMREC_DISTILL_ATTN_L2 && cf.kind != MMREC_DISTILL_ATTN_KL,
                  MMREC_EINVAL, "cfg->kind is %d, must be MMREC_DISTILL_ATTN_L2 or "
                  "MMREC_DISTILL_ATTN_KL", cf.kind);
    MMREC_FAIL_IF(!(cf.eps > 0.0f) || !isfinite(cf.eps), MMREC_EINVAL,
                  "cfg->eps is %g, must be > 0 and finite", (double)cf.eps);
    MMREC_FORWARD_IF(mmrec__distill_check_flag(__func__, "cfg->detach_target", cf.detach_target));
    bool same = student->ndim == teacher->ndim && student->ndim >= 2;
    for (int d = 0; same && d < student->ndim; d++) same = student->shape[d] == teacher->shape[d];
    if (!same)
        MMREC_FAIL_SHAPE2("the maps must have one shape [..., Tq, Tk]", student, teacher);
    size_t n = student->numel, cols = (size_t)student->shape[student->ndim - 1];
    MMREC_FAIL_IF(n == 0, MMREC_ESHAPE, "student has no element");
    MMREC_FORWARD_IF(mmrec__da_check_map(__func__, "student", student));
    MMREC_FORWARD_IF(mmrec__da_check_map(__func__, "teacher", teacher));
    mmrec__da_ctx c = {.n = n,
                       .rows = n / cols,
                       .kind = cf.kind,
                       .eps = cf.eps,
                       .detach = cf.detach_target != 0};
    int64_t one[1] = {1};
    mmrec_tensor *in[2] = {student, teacher}, *y;
    const mmrec__op op = {__func__, "distill_attn", mmrec__da_backward, in, 2,
                          c.detach ? 1 : 2, &c, sizeof c};
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 1, one, false, &y, NULL, &mark));
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double s = student->data[i], t = teacher->data[i];
        if (c.kind == MMREC_DISTILL_ATTN_L2) {
            sum += (s - t) * (s - t);
        } else if (t > 0.0) {
            double e = (double)c.eps;
            sum += t * (log(t > e ? t : e) - log(s > e ? s : e));
        }
    }
    y->data[0] = (float)(sum / (double)(c.kind == MMREC_DISTILL_ATTN_L2 ? n : c.rows));
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
