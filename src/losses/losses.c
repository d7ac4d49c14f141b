/* Losses returning the batch mean as a [1] tensor. Reference:
 * torch.nn.functional.binary_cross_entropy_with_logits, cross_entropy,
 * softplus (BPR) and mse_loss. */
#include "mmrec/losses.h"
#include "../ops/ops_internal.h"

#include <math.h>
#include <string.h>

typedef enum { MMREC__BCE, MMREC__CE, MMREC__BPR, MMREC__MSE } mmrec__loss_kind;

typedef struct mmrec__loss_ctx {
    mmrec__loss_kind kind;
    size_t n;          /* elements (BCE, BPR, MSE) or batch rows (CE) */
    size_t classes;    /* CE */
    int64_t *labels;   /* CE, arena copy */
    float *probs;      /* CE softmax [n, classes], arena */
} mmrec__loss_ctx;

/* softplus(z) = log(1 + exp(z)), stable for large |z|. */
static inline float mmrec__softplus(float z) {
    return z > 0.0f ? z + log1pf(expf(-z)) : log1pf(expf(z));
}

static inline float mmrec__sigmoidf(float z) {
    if (z >= 0.0f) return 1.0f / (1.0f + expf(-z));
    float e = expf(z);
    return e / (1.0f + e);
}

static mmrec_status mmrec__loss_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__loss_ctx *c = node->ctx;
    mmrec_tensor *a = node->in[0], *b = node->n_in > 1 ? node->in[1] : NULL;
    float g = node->out->grad[0] / (float)c->n;
    float *da = mmrec__requires_grad(a) ? mmrec__grad(tape, a) : NULL;
    if (mmrec__requires_grad(a) && da == NULL) return MMREC_ENOMEM;
    float *db = NULL;
    if (c->kind == MMREC__BPR && mmrec__requires_grad(b) && (db = mmrec__grad(tape, b)) == NULL)
        return MMREC_ENOMEM;
    switch (c->kind) {
    case MMREC__BCE: /* d/dx = sigmoid(x) - y */
        for (size_t i = 0; i < c->n; i++)
            da[i] += g * (mmrec__sigmoidf(a->data[i]) - b->data[i]);
        break;
    case MMREC__MSE:
        for (size_t i = 0; i < c->n; i++) da[i] += g * 2.0f * (a->data[i] - b->data[i]);
        break;
    case MMREC__BPR: /* loss = softplus(neg - pos) */
        for (size_t i = 0; i < c->n; i++) {
            float s = mmrec__sigmoidf(b->data[i] - a->data[i]);
            if (da) da[i] -= g * s;
            if (db) db[i] += g * s;
        }
        break;
    case MMREC__CE:
        for (size_t r = 0; r < c->n; r++) {
            const float *p = c->probs + r * c->classes;
            float *d = da + r * c->classes;
            for (size_t j = 0; j < c->classes; j++) d[j] += g * p[j];
            d[c->labels[r]] -= g;
        }
        break;
    }
    return MMREC_OK;
}

static bool mmrec__same_shape(const mmrec_tensor *a, const mmrec_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

/* Validates, makes the [1] output and records; `labels` only for CE. */
static mmrec_status mmrec__loss_begin(const char *func, mmrec__loss_kind kind, mmrec_tape *tape,
                                      mmrec_tensor *a, mmrec_tensor *b, const int64_t *labels,
                                      size_t n_labels, mmrec_tensor **out, mmrec_tensor **y_out,
                                      mmrec__loss_ctx **ctx, mmrec__tape_mark *mark_out) {
    static const char *const names[] = {"bce_logits", "softmax_ce", "bpr", "mse"};
    static const char *const first[] = {"logits", "logits", "pos", "pred"};
    static const char *const second[] = {"targets", "", "neg", "target"};
    MMREC_FORWARD_IF(mmrec__tape_check(func, tape));
    MMREC_FORWARD_IF(mmrec__tensor_check_on(func, first[kind], a, tape));
    if (kind != MMREC__CE) MMREC_FORWARD_IF(mmrec__tensor_check_on(func, second[kind], b, tape));
    if (out == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'out' is NULL");
    mmrec__loss_ctx c = {.kind = kind, .n = a->numel};
    if (kind == MMREC__CE) {
        if (labels == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'labels' is NULL");
        if (a->ndim != 2) {
            char sa[64];
            return mmrec__set_error(MMREC_ESHAPE, func, "logits is %s, must be [batch, classes]",
                                    mmrec__shape_str(a, sa, sizeof sa));
        }
        c.n = (size_t)a->shape[0];
        c.classes = (size_t)a->shape[1];
        if (n_labels != c.n)
            return mmrec__set_error(MMREC_ESHAPE, func, "n is %zu, logits has %zu rows",
                                    n_labels, c.n);
        for (size_t i = 0; i < c.n; i++)
            if (labels[i] < 0 || labels[i] >= (int64_t)c.classes)
                return mmrec__set_error(MMREC_ERANGE, func, "labels[%zu] is %lld, outside [0, %zu)",
                                        i, (long long)labels[i], c.classes);
    } else if (!mmrec__same_shape(a, b)) {
        char sa[64], sb[64];
        return mmrec__set_error(MMREC_ESHAPE, func, "%s is %s and %s is %s, must be equal",
                                first[kind], mmrec__shape_str(a, sa, sizeof sa), second[kind],
                                mmrec__shape_str(b, sb, sizeof sb));
    }
    /* The NaN and Inf policy (core.h): a loss's inputs are checked. */
    MMREC_FORWARD_IF(mmrec__check_finite(func, first[kind], a->data, a->numel));
    if (kind != MMREC__CE)
        MMREC_FORWARD_IF(mmrec__check_finite(func, second[kind], b->data, b->numel));
    int64_t one[1] = {1};
    mmrec_tensor *in[2] = {a, b}, *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    /* Targets are constants: only the first input (both for BPR) is differentiated. */
    const mmrec__op op = {func, names[kind], mmrec__loss_backward, in,
                          kind == MMREC__CE ? 1 : 2, kind == MMREC__BPR ? 2 : 1, NULL, sizeof c};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 1, one, false, &y, &node, &mark));
    mmrec__loss_ctx *cp = node ? node->ctx : mmrec__tape_alloc(tape, sizeof c);
    if (cp == NULL) return mmrec__tape_oom(tape, mark, func);
    if (kind == MMREC__CE) {
        c.labels = mmrec__tape_copy(tape, labels, c.n * sizeof *c.labels);
        c.probs = c.labels ? mmrec__tape_alloc(tape, a->numel * sizeof(float)) : NULL;
        if (c.probs == NULL) return mmrec__tape_oom(tape, mark, func);
    }
    *cp = c;
    *ctx = cp;
    *y_out = y;
    *mark_out = mark;
    return MMREC_OK;
}

/* Stores the mean into the output and, in check-finite mode, checks it
 * (a loss of finite inputs may still overflow). */
static mmrec_status mmrec__loss_end(const char *func, mmrec_tape *tape, mmrec_tensor *y,
                                    double sum, size_t n, mmrec__tape_mark mark,
                                    const mmrec__loss_ctx *c, mmrec_tensor **out) {
    static const char *const names[] = {"bce_logits", "softmax_ce", "bpr", "mse"};
    y->data[0] = (float)(sum / (double)n);
    if (mmrec__check_finite_on())
        MMREC_FORWARD_IF(mmrec__op_end_check(tape, func, names[c->kind], y, mark, false));
    *out = y;
    return MMREC_OK;
}

mmrec_status mmrec_loss_bce_logits(mmrec_tape *tape, mmrec_tensor *logits, mmrec_tensor *targets,
                                   mmrec_tensor **out) {
    mmrec__loss_ctx *c;
    mmrec_tensor *y;
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(
        mmrec__loss_begin(__func__, MMREC__BCE, tape, logits, targets, NULL, 0, out, &y, &c,
                          &mark));
    double sum = 0.0;
    for (size_t i = 0; i < c->n; i++) {
        float x = logits->data[i], t = targets->data[i];
        sum += (x > 0.0f ? x : 0.0f) - x * t + log1pf(expf(-fabsf(x)));
    }
    return mmrec__loss_end(__func__, tape, y, sum, c->n, mark, c, out);
}

mmrec_status mmrec_loss_softmax_ce(mmrec_tape *tape, mmrec_tensor *logits, const int64_t *labels,
                                   size_t n, mmrec_tensor **out) {
    mmrec__loss_ctx *c;
    mmrec_tensor *y;
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(
        mmrec__loss_begin(__func__, MMREC__CE, tape, logits, NULL, labels, n, out, &y, &c, &mark));
    double sum = 0.0;
    for (size_t r = 0; r < c->n; r++) {
        const float *x = logits->data + r * c->classes;
        float *p = c->probs + r * c->classes;
        mmrec__row_lse lse = mmrec__softmax_row(x, NULL, 0, p, c->classes, false);
        sum -= mmrec__log_softmax_at(lse, x[c->labels[r]]);
    }
    return mmrec__loss_end(__func__, tape, y, sum, c->n, mark, c, out);
}

mmrec_status mmrec_loss_bpr(mmrec_tape *tape, mmrec_tensor *pos, mmrec_tensor *neg,
                            mmrec_tensor **out) {
    mmrec__loss_ctx *c;
    mmrec_tensor *y;
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(
        mmrec__loss_begin(__func__, MMREC__BPR, tape, pos, neg, NULL, 0, out, &y, &c, &mark));
    double sum = 0.0;
    for (size_t i = 0; i < c->n; i++) sum += mmrec__softplus(neg->data[i] - pos->data[i]);
    return mmrec__loss_end(__func__, tape, y, sum, c->n, mark, c, out);
}

mmrec_status mmrec_loss_mse(mmrec_tape *tape, mmrec_tensor *pred, mmrec_tensor *target,
                            mmrec_tensor **out) {
    mmrec__loss_ctx *c;
    mmrec_tensor *y;
    mmrec__tape_mark mark;
    MMREC_FORWARD_IF(
        mmrec__loss_begin(__func__, MMREC__MSE, tape, pred, target, NULL, 0, out, &y, &c, &mark));
    double sum = 0.0;
    for (size_t i = 0; i < c->n; i++) {
        float d = pred->data[i] - target->data[i];
        sum += d * d;
    }
    return mmrec__loss_end(__func__, tape, y, sum, c->n, mark, c, out);
}
