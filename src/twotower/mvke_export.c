/* MVKE serving export (shared/METHODS-twotower.md 4.3): the gate depends on
 * the tag only, so <u, t> = <[E_k]_{k in S}, [w_k t]_{k in S}>; the user's
 * and the tag's vectors of that inner product, written into caller memory.
 * Reference: the score of mvke.c (tests/test_mvke.c compares the two). */
#include "twotower_internal.h"

#include <math.h>
#include <string.h>

mmrec_status mmrec_mvke_serving_dim(const mmrec_module *mvke, int task, size_t *out) {
    MMREC_CHECK_MODULE(mvke, "mvke");
    MMREC_CHECK_NULL(out);
    const mmrec__mvke *m = (const mmrec__mvke *)mvke;
    MMREC_FORWARD_IF(mmrec__mvke_check_task(__func__, m, task));
    *out = (size_t)m->task_n[task] * (size_t)m->dim;
    return MMREC_OK;
}

/* The batch * |S| * dim floats an export writes, checked against out_size. */
static mmrec_status mmrec__mvke_out_size(const char *func, const mmrec__mvke *m, int task,
                                         int64_t batch, size_t out_size) {
    size_t need = (size_t)batch * (size_t)m->task_n[task] * (size_t)m->dim;
    MMREC_FAIL_IF_FOR(func, out_size < need, MMREC_EINVAL,
                      "out_size is %zu floats, task %d needs %zu (%lld rows of %d x %lld)",
                      out_size, task, need, (long long)batch, m->task_n[task],
                      (long long)m->dim);
    return MMREC_OK;
}

mmrec_status mmrec_mvke_export_user(const mmrec_module *mvke, const mmrec_tensor *experts,
                                    int task, float *out, size_t out_size) {
    MMREC_CHECK_MODULE(mvke, "mvke");
    MMREC_CHECK_TENSOR(experts);
    MMREC_CHECK_NULL(out);
    const mmrec__mvke *m = (const mmrec__mvke *)mvke;
    if (experts->ndim != 3 || experts->shape[1] != m->num_kernels ||
        experts->shape[2] != m->dim) {
        char s[64];
        MMREC_FAIL(MMREC_ESHAPE, "experts is %s, expected [batch, %d, %lld] (num_kernels, dim)",
                   mmrec__shape_str(experts, s, sizeof s), m->num_kernels, (long long)m->dim);
    }
    MMREC_FORWARD_IF(mmrec__mvke_check_task(__func__, m, task));
    int64_t B = experts->shape[0];
    MMREC_FORWARD_IF(mmrec__mvke_out_size(__func__, m, task, B, out_size));
    size_t e = (size_t)m->dim, K = (size_t)m->num_kernels, n = (size_t)m->task_n[task];
    for (size_t b = 0; b < (size_t)B; b++)
        for (size_t j = 0; j < n; j++)
            memcpy(out + (b * n + j) * e, experts->data + (b * K + (size_t)m->task_k[task][j]) * e,
                   e * sizeof(float));
    return MMREC_OK;
}

mmrec_status mmrec_mvke_export_tag(const mmrec_module *mvke, const mmrec_tensor *tag, int task,
                                   float *out, size_t out_size) {
    MMREC_CHECK_MODULE(mvke, "mvke");
    MMREC_CHECK_TENSOR(tag);
    MMREC_CHECK_NULL(out);
    const mmrec__mvke *m = (const mmrec__mvke *)mvke;
    if (tag->ndim != 2 || tag->shape[1] != m->dim) {
        char s[64];
        MMREC_FAIL(MMREC_ESHAPE, "tag is %s, expected [batch, %lld] (dim)",
                   mmrec__shape_str(tag, s, sizeof s), (long long)m->dim);
    }
    MMREC_FORWARD_IF(mmrec__mvke_check_task(__func__, m, task));
    int64_t B = tag->shape[0];
    MMREC_FORWARD_IF(mmrec__mvke_out_size(__func__, m, task, B, out_size));
    size_t e = (size_t)m->dim, n = (size_t)m->task_n[task];
    const float *vk = m->vk->data;
    for (size_t b = 0; b < (size_t)B; b++) {
        const float *t = tag->data + b * e;
        double logit[MMREC__MVKE_MAX_KERNELS], mx = -INFINITY, sum = 0.0;
        for (size_t j = 0; j < n; j++) {
            logit[j] = mmrec__dot_wide(t, vk + (size_t)m->task_k[task][j] * e, e);
            if (logit[j] > mx) mx = logit[j];
        }
        for (size_t j = 0; j < n; j++) {
            logit[j] = exp(logit[j] - mx);
            sum += logit[j];
        }
        for (size_t j = 0; j < n; j++) {
            double w = logit[j] / sum;
            float *o = out + (b * n + j) * e;
            for (size_t i = 0; i < e; i++) o[i] = (float)(w * (double)t[i]);
        }
    }
    return MMREC_OK;
}
