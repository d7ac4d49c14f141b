/* Test helpers (see mt.h). */
#include "mt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t mt_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float mt_unit(uint64_t *s) { return (float)(mt_next(s) >> 40) * (1.0f / 16777216.0f); }

void mt_fill_uniform(float *x, size_t n, float low, float high, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) x[i] = low + (high - low) * mt_unit(&s);
}

void mt_fill_away(float *x, size_t n, float low, float high, float gap, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        float v;
        do v = low + (high - low) * mt_unit(&s);
        while (fabsf(v) < gap);
        x[i] = v;
    }
}

uint64_t mt_lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

bool mt_has_pair(const mmrec_interactions *x, int64_t u, int64_t i) {
    const int64_t *us, *is;
    size_t n;
    MT_OK(mmrec_interactions_pairs(x, &us, &is));
    MT_OK(mmrec_interactions_info(x, NULL, NULL, &n));
    for (size_t k = 0; k < n; k++)
        if (us[k] == u && is[k] == i) return true;
    return false;
}

const char *mt_path(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", MMREC_TEST_DIR, rel);
    return buf;
}

void mt_check_message(const char *call, const char *needle) {
    if (needle == NULL) return;
    ck_assert_msg(strstr(mmrec_last_error(), needle) != NULL, "%s: message '%s' does not mention '%s'",
                  call, mmrec_last_error(), needle);
}

/* ---- gradient check ---- */

static size_t mt_numel(const mt_input *in) {
    size_t n = 1;
    for (int d = 0; d < in->ndim; d++) n *= (size_t)in->shape[d];
    return n;
}

typedef struct mt_gc {
    const char *name;
    mt_forward_fn forward;
    void *ctx;
    mt_input *inputs;
    int n_inputs;
    mmrec_tape *tape;
    const float *r;
    size_t out_numel;
} mt_gc;

static mmrec_tensor *mt_gc_forward(mt_gc *gc, mmrec_tensor **ins) {
    mmrec_tape_reset(gc->tape);
    MT_OK(mmrec_tape_seed(gc->tape, 12345));
    for (int i = 0; i < gc->n_inputs; i++) {
        mt_input *in = &gc->inputs[i];
        MT_OK(mmrec_tape_wrap(gc->tape, in->data, in->ndim, in->shape,
                              in->no_grad ? 0 : MMREC_TENSOR_REQUIRES_GRAD, &ins[i]));
    }
    mmrec_tensor *out = NULL;
    mmrec_status s = gc->forward(gc->ctx, gc->tape, ins, &out);
    ck_assert_msg(s == MMREC_OK, "%s: forward failed: %s", gc->name, mmrec_last_error());
    return out;
}

static double mt_gc_loss(mt_gc *gc) {
    mmrec_tensor *ins[16];
    mmrec_tensor *out = mt_gc_forward(gc, ins);
    const float *y;
    MT_OK(mmrec_tensor_data_const(out, &y));
    double f = 0;
    for (size_t i = 0; i < gc->out_numel; i++) f += (double)gc->r[i] * (double)y[i];
    return f;
}

static double mt_gc_numeric(mt_gc *gc, float *x, float h) {
    float saved = *x;
    *x = saved + h;
    double f1 = mt_gc_loss(gc);
    *x = saved - h;
    double fm1 = mt_gc_loss(gc);
    *x = saved + 2 * h;
    double f2 = mt_gc_loss(gc);
    *x = saved - 2 * h;
    double fm2 = mt_gc_loss(gc);
    *x = saved;
    return (8.0 * (f1 - fm1) - (f2 - fm2)) / (12.0 * h);
}

static void mt_gc_compare(mt_gc *gc, const char *what, float *x, const float *analytic,
                          size_t numel, float h, float tol, float floor, int max_coords,
                          uint64_t seed) {
    uint64_t s = seed;
    size_t count = numel <= (size_t)max_coords ? numel : (size_t)max_coords;
    for (size_t c = 0; c < count; c++) {
        size_t idx = numel <= (size_t)max_coords ? c : (size_t)(mt_next(&s) % numel);
        double gn = mt_gc_numeric(gc, &x[idx], h);
        double ga = analytic ? analytic[idx] : 0.0;
        double denom = fmax(fmax(fabs(gn), fabs(ga)), floor);
        ck_assert_msg(fabs(gn - ga) / denom <= tol,
                      "%s: d/d %s[%zu]: numeric %.6g, analytic %.6g", gc->name, what, idx, gn, ga);
    }
}

void mt_gradcheck(const char *name, mt_forward_fn forward, void *ctx, mt_input *inputs,
                  int n_inputs, mmrec_model *model, const mt_gradcheck_opts *opts) {
    float h = opts && opts->h > 0 ? opts->h : 1e-2f;
    float tol = opts && opts->tol > 0 ? opts->tol : 1e-2f;
    int max_coords = opts && opts->max_coords > 0 ? opts->max_coords : 64;
    float floor = opts && opts->floor > 0 ? opts->floor : 1e-3f;
    ck_assert_int_le(n_inputs, 16);
    mt_gc gc = {name, forward, ctx, inputs, n_inputs, NULL, NULL, 0};
    MT_OK(mmrec_tape_create(&gc.tape));

    mmrec_tensor *ins[16];
    mmrec_tensor *out = mt_gc_forward(&gc, ins);
    MT_OK(mmrec_tensor_numel(out, &gc.out_numel));
    float *r = malloc(gc.out_numel * sizeof *r);
    mt_fill_uniform(r, gc.out_numel, -1.0f, 1.0f, 777);
    gc.r = r;
    if (model) MT_OK(mmrec_model_zero_grad(model));
    MT_OK(mmrec_tape_backward_from(gc.tape, out, r));

    /* Save the analytic gradients. */
    size_t n_params = 0;
    if (model) MT_OK(mmrec_model_num_params(model, &n_params));
    float **g_in = calloc((size_t)n_inputs, sizeof *g_in);
    float **g_par = calloc(n_params + 1, sizeof *g_par);
    for (int i = 0; i < n_inputs; i++) {
        const float *g;
        MT_OK(mmrec_tensor_grad(ins[i], &g));
        if (inputs[i].no_grad) continue;
        size_t n = mt_numel(&inputs[i]);
        g_in[i] = calloc(n, sizeof(float));
        if (g) memcpy(g_in[i], g, n * sizeof(float));
    }
    for (size_t p = 0; p < n_params; p++) {
        mmrec_tensor *t;
        size_t n;
        const float *g;
        MT_OK(mmrec_model_param_at(model, p, NULL, &t));
        MT_OK(mmrec_tensor_numel(t, &n));
        MT_OK(mmrec_tensor_grad(t, &g));
        if (g == NULL) continue; /* frozen */
        g_par[p] = malloc(n * sizeof(float));
        memcpy(g_par[p], g, n * sizeof(float));
    }

    /* A second walk must double every gradient (accumulate, never set). */
    MT_OK(mmrec_tape_backward_from(gc.tape, out, r));
    for (int i = 0; i < n_inputs; i++) {
        if (!g_in[i]) continue;
        const float *g;
        MT_OK(mmrec_tensor_grad(ins[i], &g));
        /* an input the forward does not read has no gradient: zeros */
        for (size_t j = 0; j < mt_numel(&inputs[i]); j++) {
            float gj = g ? g[j] : 0.0f;
            ck_assert_msg(fabsf(gj - 2 * g_in[i][j]) <= 1e-5f * fabsf(g_in[i][j]) + 1e-6f,
                          "%s: second backward gives input %d grad[%zu] = %g, expected %g", name,
                          i, j, gj, 2 * g_in[i][j]);
        }
    }
    for (size_t p = 0; p < n_params; p++) {
        if (!g_par[p]) continue;
        mmrec_tensor *t;
        const float *g;
        size_t n;
        const char *pname;
        MT_OK(mmrec_model_param_at(model, p, &pname, &t));
        MT_OK(mmrec_tensor_numel(t, &n));
        MT_OK(mmrec_tensor_grad(t, &g));
        for (size_t j = 0; j < n; j++)
            ck_assert_msg(fabsf(g[j] - 2 * g_par[p][j]) <= 1e-5f * fabsf(g_par[p][j]) + 1e-6f,
                          "%s: second backward gives %s grad[%zu] = %g, expected %g", name, pname,
                          j, g[j], 2 * g_par[p][j]);
    }

    /* Finite differences. */
    for (int i = 0; i < n_inputs; i++) {
        if (!g_in[i]) continue;
        char what[32];
        snprintf(what, sizeof what, "input%d", i);
        mt_gc_compare(&gc, what, inputs[i].data, g_in[i], mt_numel(&inputs[i]), h, tol, floor,
                      max_coords, 1000 + (uint64_t)i);
    }
    for (size_t p = 0; p < n_params; p++) {
        if (!g_par[p]) continue;
        mmrec_tensor *t;
        float *x;
        size_t n;
        const char *pname;
        MT_OK(mmrec_model_param_at(model, p, &pname, &t));
        MT_OK(mmrec_tensor_numel(t, &n));
        MT_OK(mmrec_tensor_data(t, &x));
        mt_gc_compare(&gc, pname, x, g_par[p], n, h, tol, floor, max_coords, 2000 + p);
    }
    for (int i = 0; i < n_inputs; i++) free(g_in[i]);
    for (size_t p = 0; p < n_params; p++) free(g_par[p]);
    free(g_in);
    free(g_par);
    free(r);
    if (model) MT_OK(mmrec_model_zero_grad(model));
    mmrec_tape_destroy(gc.tape);
}

/* ---- golden vectors ---- */

void mt_golden_load(mt_golden *g, const char *rel_path) {
    char rel[512];
    snprintf(rel, sizeof rel, "golden/%s", rel_path);
    const char *path = mt_path(rel);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open golden file %s", path);
    g->arrays = NULL;
    g->n = 0;
    size_t cap = 0;
    uint32_t name_len;
    while (fread(&name_len, 4, 1, f) == 1) {
        if (g->n == cap) {
            cap = cap ? cap * 2 : 16;
            g->arrays = realloc(g->arrays, cap * sizeof *g->arrays);
        }
        mt_array *a = &g->arrays[g->n];
        memset(a, 0, sizeof *a);
        ck_assert_msg(name_len > 0 && name_len < sizeof a->name, "%s: bad name length", path);
        ck_assert(fread(a->name, 1, name_len, f) == name_len);
        uint32_t ndim;
        ck_assert(fread(&ndim, 4, 1, f) == 1);
        ck_assert_msg(ndim >= 1 && ndim <= MMREC_MAX_DIMS, "%s: %s bad ndim", path, a->name);
        a->ndim = (int)ndim;
        ck_assert(fread(a->shape, 8, ndim, f) == ndim);
        a->numel = 1;
        for (uint32_t d = 0; d < ndim; d++) a->numel *= (size_t)a->shape[d];
        a->data = malloc(a->numel * sizeof(float));
        ck_assert_msg(fread(a->data, 4, a->numel, f) == a->numel, "%s: %s truncated", path,
                      a->name);
        g->n++;
    }
    fclose(f);
    ck_assert_msg(g->n > 0, "%s holds no arrays", path);
}

void mt_golden_free(mt_golden *g) {
    for (size_t i = 0; i < g->n; i++) free(g->arrays[i].data);
    free(g->arrays);
    g->arrays = NULL;
    g->n = 0;
}

const mt_array *mt_golden_find(const mt_golden *g, const char *kase, const char *what) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", kase, what);
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->arrays[i].name, name) == 0) return &g->arrays[i];
    return NULL;
}

void mt_golden_bsm_options(const mt_golden *g, const char *kase, size_t batch, size_t cands,
                           mmrec_batch_softmax_config *cfg, mt_bsm_buffers *buf) {
    const mt_array *bias = mt_golden_find(g, kase, "bias");
    const mt_array *pos = mt_golden_find(g, kase, "pos");
    const mt_array *ids = mt_golden_find(g, kase, "ids");
    const mt_array *mask = mt_golden_find(g, kase, "mask");
    const mt_array *w = mt_golden_find(g, kase, "w");
    if (bias) cfg->column_bias = bias->data;
    if (w) cfg->row_weights = w->data;
    if (pos) {
        ck_assert_uint_le(pos->numel, 64);
        for (size_t i = 0; i < pos->numel; i++) buf->pos[i] = (int64_t)pos->data[i];
        cfg->positives = buf->pos;
    }
    if (ids) {
        ck_assert_uint_le(ids->numel, 64);
        for (size_t i = 0; i < ids->numel; i++) buf->ids[i] = (int64_t)ids->data[i];
        cfg->candidate_ids = buf->ids;
    }
    if (mask) {
        ck_assert_uint_eq(mask->numel, batch * cands);
        ck_assert_uint_le(mask->numel, 64 * 64);
        for (size_t i = 0; i < mask->numel; i++) buf->mask[i] = mask->data[i] != 0.0f;
        cfg->mask = buf->mask;
    }
}

const mt_array *mt_golden_get(const mt_golden *g, const char *name) {
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->arrays[i].name, name) == 0) return &g->arrays[i];
    ck_abort_msg("golden array '%s' not found", name);
    return NULL;
}

void mt_assert_close(const char *what, const float *got, const float *want, size_t n, float rtol,
                     float atol) {
    if (rtol <= 0) rtol = 1e-5f;
    if (atol <= 0) atol = 1e-6f;
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++) zeros += fabsf(want[i]) <= atol;
    ck_assert_msg(zeros * 2 <= n, "%s: reference is mostly zeros (%zu of %zu): it proves nothing",
                  what, zeros, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabsf(got[i] - want[i]) <= atol + rtol * fabsf(want[i]),
                      "%s[%zu]: got %.9g, expected %.9g", what, i, got[i], want[i]);
}

void mt_close_scaled(const char *what, const float *got, const float *want, size_t n) {
    float scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmaxf(scale, fabsf(want[i]));
    mt_assert_close(what, got, want, n, 1e-5f, 1e-6f + 1e-5f * scale);
}

const float *mt_data_of(const mmrec_tensor *t) {
    const float *d;
    MT_OK(mmrec_tensor_data_const(t, &d));
    return d;
}

const float *mt_grad_of(const mmrec_tensor *t) {
    const float *g;
    MT_OK(mmrec_tensor_grad(t, &g));
    ck_assert_ptr_nonnull(g);
    return g;
}

void mt_load_params(const mt_golden *gold, const char *kase, mmrec_model *model,
                    size_t prefix_len) {
    size_t n, in_golden = 0;
    MT_OK(mmrec_model_num_params(model, &n));
    char key[96];
    for (size_t p = 0; p < n; p++) {
        const char *name;
        mmrec_tensor *t;
        MT_OK(mmrec_model_param_at(model, p, &name, &t));
        snprintf(key, sizeof key, "%s.param.%s", kase, name + prefix_len);
        const mt_array *want = mt_golden_get(gold, key);
        size_t numel;
        MT_OK(mmrec_tensor_numel(t, &numel));
        ck_assert_msg(numel == want->numel, "%s: %zu values, golden %zu", key, numel, want->numel);
        MT_OK(mmrec_tensor_copy_from(t, want->data, want->numel));
    }
    snprintf(key, sizeof key, "%s.param.", kase);
    for (size_t i = 0; i < gold->n; i++)
        in_golden += strncmp(gold->arrays[i].name, key, strlen(key)) == 0;
    ck_assert_uint_eq(in_golden, n);
}

void mt_check_grads(const mt_golden *gold, const char *kase, mmrec_model *model,
                    size_t prefix_len) {
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    char key[96];
    for (size_t p = 0; p < n; p++) {
        const char *name;
        mmrec_tensor *t;
        const float *g;
        MT_OK(mmrec_model_param_at(model, p, &name, &t));
        MT_OK(mmrec_tensor_grad(t, &g));
        snprintf(key, sizeof key, "%s.grad.%s", kase, name + prefix_len);
        const mt_array *want = mt_golden_get(gold, key);
        mt_assert_close(key, g, want->data, want->numel, 1e-5f, 1e-6f);
    }
}

mmrec_tensor *mt_tape_tensor(mmrec_tape *tape, int ndim, const int64_t *shape, const float *data,
                             uint32_t flags) {
    mmrec_tensor *t;
    MT_OK(mmrec_tape_tensor(tape, ndim, shape, flags, &t));
    size_t n;
    MT_OK(mmrec_tensor_numel(t, &n));
    MT_OK(mmrec_tensor_copy_from(t, data, n));
    return t;
}

void mt_perturb_params(mmrec_model *model, uint64_t seed) {
    size_t n;
    MT_OK(mmrec_model_num_params(model, &n));
    for (size_t i = 0; i < n; i++) {
        mmrec_tensor *p;
        size_t k;
        float *d;
        MT_OK(mmrec_model_param_at(model, i, NULL, &p));
        MT_OK(mmrec_tensor_numel(p, &k));
        MT_OK(mmrec_tensor_data(p, &d));
        float *noise = malloc(k * sizeof *noise);
        ck_assert_ptr_nonnull(noise);
        mt_fill_uniform(noise, k, -0.3f, 0.3f, seed + i);
        for (size_t j = 0; j < k; j++) d[j] += noise[j];
        free(noise);
    }
}
