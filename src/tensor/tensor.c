/* Caller-owned tensors (created or wrapped) and the accessors. */
#include "tensor_internal.h"
#include "../autograd/autograd_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

mmrec_status mmrec__shape_check(const char *func, const char *what, int ndim,
                                const int64_t *shape, size_t *numel_out) {
    if (shape == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument '%s' is NULL", what);
    if (ndim < 1 || ndim > MMREC_MAX_DIMS)
        return mmrec__set_error(MMREC_EINVAL, func, "ndim is %d, expected 1..%d dims", ndim,
                                MMREC_MAX_DIMS);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return mmrec__set_error(MMREC_EINVAL, func, "%s[%d] is %lld, expected >= 1", what, i,
                                    (long long)shape[i]);
        if (!mmrec__mul_size(numel, (size_t)shape[i], &numel) || numel > (SIZE_MAX >> 3))
            return mmrec__set_error(MMREC_EINVAL, func, "%s: the element count overflows", what);
    }
    *numel_out = numel;
    return MMREC_OK;
}

mmrec_status mmrec__tensor_check(const char *func, const char *what, const mmrec_tensor *t) {
    if (t == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument '%s' is NULL", what);
    if (t->magic != MMREC__TENSOR_MAGIC)
        return mmrec__set_error(MMREC_EINVAL, func, "argument '%s' is not a tensor", what);
    if (t->tape && t->gen != t->tape->gen)
        return mmrec__set_error(MMREC_ESTALE, func,
                                "'%s' belongs to a step that mmrec_tape_reset() ended", what);
    return MMREC_OK;
}

mmrec_status mmrec__tensor_check_on(const char *func, const char *what, const mmrec_tensor *t,
                                    const mmrec_tape *tape) {
    MMREC_FORWARD_IF(mmrec__tensor_check(func, what, t));
    if (t->tape && t->tape != tape)
        return mmrec__set_error(MMREC_EINVAL, func, "'%s' belongs to another tape", what);
    return MMREC_OK;
}

const char *mmrec__shape_str(const mmrec_tensor *t, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < t->ndim && len < size; i++) {
        int w = snprintf(buf + len, size - len, "%s%lld", i ? "," : "[", (long long)t->shape[i]);
        if (w < 0) break;
        len += (size_t)w;
    }
    if (len < size) snprintf(buf + len, size - len, "]");
    return buf;
}

static mmrec_status mmrec__tensor_new_header(int ndim, const int64_t *shape, size_t numel,
                                             mmrec_tensor **out) {
    mmrec_tensor *t = mmrec__calloc(1, sizeof *t);
    if (t == NULL) return MMREC_ENOMEM;
    t->magic = MMREC__TENSOR_MAGIC;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = numel;
    *out = t;
    return MMREC_OK;
}

mmrec_status mmrec_tensor_create(int ndim, const int64_t *shape, mmrec_tensor **out) {
    size_t numel;
    MMREC_CHECK_NULL(out);
    MMREC_FORWARD_IF(mmrec__shape_check(__func__, "shape", ndim, shape, &numel));
    mmrec_tensor *t;
    MMREC_FAIL_IF(mmrec__tensor_new_header(ndim, shape, numel, &t) != MMREC_OK, MMREC_ENOMEM,
                  "out of memory");
    t->data = mmrec__calloc(numel, sizeof(float));
    if (t->data == NULL) {
        mmrec__free(t);
        MMREC_FAIL(MMREC_ENOMEM, "out of memory for %zu floats", numel);
    }
    t->flags = MMREC__T_OWNS_DATA;
    *out = t;
    return MMREC_OK;
}

/* mmrec_tensor_wrap_ex on behalf of `func` (either wrap). */
static mmrec_status mmrec__tensor_wrap(const char *func, float *data, int ndim,
                                       const int64_t *shape, uint32_t flags,
                                       mmrec_release_fn release, void *user, mmrec_tensor **out) {
    size_t numel;
    MMREC_CHECK_NULL_FOR(func, data);
    MMREC_CHECK_NULL_FOR(func, out);
    MMREC_FORWARD_IF(mmrec__shape_check(func, "shape", ndim, shape, &numel));
    MMREC_FAIL_IF_FOR(func, flags & ~(uint32_t)MMREC_TENSOR_READONLY, MMREC_EINVAL,
                      "flags 0x%x: only MMREC_TENSOR_READONLY is valid here", flags);
    mmrec_tensor *t;
    MMREC_FAIL_IF_FOR(func, mmrec__tensor_new_header(ndim, shape, numel, &t) != MMREC_OK,
                      MMREC_ENOMEM, "out of memory");
    t->data = data;
    t->flags = MMREC__T_WRAP | flags;
    t->release = release;
    t->user = user;
    *out = t;
    return MMREC_OK;
}

mmrec_status mmrec_tensor_wrap_ex(float *data, int ndim, const int64_t *shape, uint32_t flags,
                                  mmrec_release_fn release, void *user, mmrec_tensor **out) {
    return mmrec__tensor_wrap(__func__, data, ndim, shape, flags, release, user, out);
}

mmrec_status mmrec_tensor_wrap(float *data, int ndim, const int64_t *shape, uint32_t flags,
                               mmrec_tensor **out) {
    return mmrec__tensor_wrap(__func__, data, ndim, shape, flags, NULL, NULL, out);
}

void mmrec_tensor_destroy(mmrec_tensor *tensor) {
    if (tensor == NULL || tensor->magic != MMREC__TENSOR_MAGIC) return;
    if (tensor->flags & (MMREC__T_ON_TAPE | MMREC__T_PARAM)) return;
    if (tensor->release) tensor->release(tensor->user, tensor->data);
    if (tensor->flags & MMREC__T_OWNS_DATA) mmrec__free(tensor->data);
    mmrec__free(tensor->grad);
    tensor->magic = 0;
    mmrec__free(tensor);
}

mmrec_status mmrec_tensor_set_data(mmrec_tensor *tensor, float *data) {
    MMREC_CHECK_TENSOR(tensor);
    MMREC_CHECK_NULL(data);
    MMREC_FAIL_IF(!(tensor->flags & MMREC__T_WRAP), MMREC_EINVAL,
                  "argument 'tensor' is not a wrap of caller memory");
    tensor->data = data;
    return MMREC_OK;
}

mmrec_status mmrec_tensor_shape(const mmrec_tensor *tensor, int *ndim_out, int64_t *shape_out) {
    MMREC_CHECK_TENSOR(tensor);
    MMREC_CHECK_NULL(ndim_out);
    MMREC_CHECK_NULL(shape_out);
    *ndim_out = tensor->ndim;
    memcpy(shape_out, tensor->shape, (size_t)tensor->ndim * sizeof *shape_out);
    return MMREC_OK;
}

mmrec_status mmrec_tensor_numel(const mmrec_tensor *tensor, size_t *out) {
    MMREC_CHECK_TENSOR(tensor);
    MMREC_CHECK_NULL(out);
    *out = tensor->numel;
    return MMREC_OK;
}

mmrec_status mmrec_tensor_generation(const mmrec_tensor *tensor, uint64_t *out) {
    MMREC_CHECK_TENSOR(tensor);
    MMREC_CHECK_NULL(out);
    *out = tensor->tape ? tensor->gen : 0;
    return MMREC_OK;
}

mmrec_status mmrec_tensor_data(mmrec_tensor *tensor, float **out) {
    MMREC_CHECK_TENSOR(tensor);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(tensor->flags & MMREC__T_READONLY, MMREC_ESTATE,
                  "tensor is a read-only wrap; use mmrec_tensor_data_const");
    *out = tensor->data;
    return MMREC_OK;
}

mmrec_status mmrec_tensor_data_const(const mmrec_tensor *tensor, const float **out) {
    MMREC_CHECK_TENSOR(tensor);
    MMREC_CHECK_NULL(out);
    *out = tensor->data;
    return MMREC_OK;
}

mmrec_status mmrec_tensor_grad(const mmrec_tensor *tensor, const float **out) {
    MMREC_CHECK_TENSOR(tensor);
    MMREC_CHECK_NULL(out);
    bool frozen = (tensor->flags & MMREC__T_PARAM) && !(tensor->flags & MMREC__T_REQUIRES_GRAD);
    *out = frozen ? NULL : tensor->grad;
    return MMREC_OK;
}

mmrec_status mmrec_tensor_copy_to(const mmrec_tensor *tensor, float *dst, size_t n) {
    MMREC_CHECK_TENSOR(tensor);
    MMREC_CHECK_NULL(dst);
    MMREC_FAIL_IF(n != tensor->numel, MMREC_EINVAL, "n is %zu, tensor has %zu elements", n,
                  tensor->numel);
    memcpy(dst, tensor->data, n * sizeof(float));
    return MMREC_OK;
}

mmrec_status mmrec_tensor_copy_from(mmrec_tensor *tensor, const float *src, size_t n) {
    MMREC_CHECK_TENSOR(tensor);
    MMREC_CHECK_NULL(src);
    MMREC_FAIL_IF(tensor->flags & MMREC__T_READONLY, MMREC_ESTATE, "tensor is a read-only wrap");
    MMREC_FAIL_IF(n != tensor->numel, MMREC_EINVAL, "n is %zu, tensor has %zu elements", n,
                  tensor->numel);
    memcpy(tensor->data, src, n * sizeof(float));
    return MMREC_OK;
}
