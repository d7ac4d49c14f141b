/* AlignRec's anti-collapse regularizer as one fused node:
 *   G = M M^T - S,  S = norm(C) norm(C)^T (a constant),  out = ||G||_F / B,
 *   dM = (G + G^T) M / (||G||_F B) = 2 G M / (||G||_F B)  (G symmetric).
 * The forward keeps G [B, B] as the node's workspace; the backward is one
 * product. Reference: ALIGNREC.sim_loss with MMRec's EmbLoss (torch.norm,
 * p = 2, over the whole matrix, divided by its rows) and build_sim, in
 * sjtulyf123/AlignRec_CIKM24 src/models/alignrec.py and src/utils/utils.py;
 * tests/golden/make_golden.py::write_alignrec. */
#include "../ops/ops_internal.h"
#include "mmrec/alignrec.h"

#include <math.h>

typedef struct mmrec__anti_ctx {
    float *diff; /* G = M M^T - S, [batch, batch] */
    float norm;  /* ||G||_F */
    size_t batch, dim;
} mmrec__anti_ctx;

static mmrec_status mmrec__anti_backward(mmrec__node *node, mmrec_tape *tape) {
    const mmrec__anti_ctx *c = node->ctx;
    mmrec_tensor *m = node->in[0];
    float g = node->out->grad[0];
    if (c->norm == 0.0f) return MMREC_OK; /* the subgradient 0, as torch.norm's backward */
    float *dm = mmrec__grad(tape, m);
    if (dm == NULL) return MMREC_ENOMEM;
    float alpha = 2.0f * g / (c->norm * (float)c->batch);
    mmrec__sgemm(false, false, c->batch, c->dim, c->batch, alpha, c->diff, c->batch, m->data,
                 c->dim, 1.0f, dm, c->dim);
    return MMREC_OK;
}

/* S = norm(C) norm(C)^T into `s` [batch, batch]; the normalized rows go to
 * arena scratch released before returning. false on OOM. */
static bool mmrec__content_similarity(mmrec_tape *tape, const mmrec_tensor *content, float *s) {
    size_t batch = (size_t)content->shape[0], cdim = (size_t)content->shape[1];
    mmrec__tape_mark scratch = mmrec__tape_mark_get(tape);
    float *cn = mmrec__tape_alloc(tape, batch * cdim * sizeof *cn);
    if (cn == NULL) return false;
    for (size_t r = 0; r < batch; r++) {
        const float *x = content->data + r * cdim;
        double ss = 0.0;
        for (size_t j = 0; j < cdim; j++) ss += (double)x[j] * x[j];
        double norm = sqrt(ss);
        float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
        for (size_t j = 0; j < cdim; j++) cn[r * cdim + j] = x[j] * inv;
    }
    mmrec__sgemm(false, true, batch, batch, cdim, 1.0f, cn, cdim, cn, cdim, 0.0f, s, batch);
    mmrec__tape_rollback(tape, scratch);
    return true;
}

mmrec_status mmrec_loss_anti_collapse(mmrec_tape *tape, mmrec_tensor *embeddings,
                                      mmrec_tensor *content, mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, embeddings, content, out);
    if (embeddings->ndim != 2 || content->ndim != 2 ||
        embeddings->shape[0] != content->shape[0])
        MMREC_FAIL_SHAPE2("embeddings must be [batch, dim] and content [batch, content_dim]",
                          embeddings, content);
    MMREC_CHECK_FINITE(embeddings);
    MMREC_CHECK_FINITE(content);
    size_t batch = (size_t)embeddings->shape[0], dim = (size_t)embeddings->shape[1], bb;
    MMREC_FAIL_IF(!mmrec__mul_size(batch, batch * sizeof(float), &bb), MMREC_EINVAL,
                  "batch %zu is too large", batch);
    int64_t one[1] = {1};
    mmrec_tensor *y;
    mmrec__node *node;
    mmrec__tape_mark mark;
    mmrec__anti_ctx c = {NULL, 0.0f, batch, dim};
    const mmrec__op op = {__func__, "anti_collapse", mmrec__anti_backward, &embeddings, 1, 0,
                          NULL, sizeof c};
    MMREC_FORWARD_IF(mmrec__op_begin(tape, &op, 1, one, false, &y, &node, &mark));
    c.diff = mmrec__tape_alloc(tape, bb);
    if (c.diff == NULL || !mmrec__content_similarity(tape, content, c.diff))
        return mmrec__tape_oom(tape, mark, __func__);
    /* G = M M^T - S */
    mmrec__sgemm(false, true, batch, batch, dim, 1.0f, embeddings->data, dim, embeddings->data,
                 dim, -1.0f, c.diff, batch);
    double ss = 0.0;
    for (size_t i = 0; i < batch * batch; i++) ss += (double)c.diff[i] * c.diff[i];
    c.norm = (float)sqrt(ss);
    y->data[0] = (float)(sqrt(ss) / (double)batch);
    if (node) *(mmrec__anti_ctx *)node->ctx = c;
    MMREC_FORWARD_IF(mmrec__op_end(tape, &op, y, mark));
    *out = y;
    return MMREC_OK;
}
