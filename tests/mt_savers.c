/* The four saves behind one interface (see mt_savers.h). */
#include "mt_savers.h"
#include "model/model_internal.h"
#include "optim/optim_internal.h"

#include <stdio.h>
#include <stdlib.h>

static void mt_fill(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

/* The common value of x[0..n), which must be 1 or 2; `v` is the value
 * found so far (0 for none). */
static float mt_uniform(const char *what, const float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) {
        if (v == 0.0f) v = x[i];
        if (x[i] != v || (v != 1.0f && v != 2.0f)) /* (ck_assert costs a syscall) */
            ck_abort_msg("%s[%zu] is %g where version %g was found: a torn or mixed file", what,
                         i, (double)x[i], (double)v);
    }
    return v;
}

/* ---- model and checkpoint ---- */

static mmrec_model *mt_two_params(size_t scale) {
    mmrec_model *m;
    mmrec_tensor *t;
    int64_t sa[2] = {3 * (int64_t)scale, 5}, sb[1] = {7};
    MT_OK(mmrec_model_create(&m));
    MT_OK(mmrec_model_add_param(m, "a", 2, sa, &t));
    MT_OK(mmrec_model_add_param(m, "b", 1, sb, &t));
    return m;
}

static void mt_set_params(mmrec_model *m, float v) {
    for (size_t i = 0; i < m->n_params; i++)
        mt_fill(m->params[i]->tensor.data, m->params[i]->tensor.numel, v);
}

static float mt_params_version(const mmrec_model *m, float v) {
    for (size_t i = 0; i < m->n_params; i++)
        v = mt_uniform(m->params[i]->name, m->params[i]->tensor.data,
                       m->params[i]->tensor.numel, v);
    return v;
}

/* A model and an Adam optimizer that has taken one step, so every
 * parameter has state. */
static void mt_trained(size_t scale, mmrec_model **m_out, mmrec_optimizer **o_out) {
    mmrec_model *m = mt_two_params(scale);
    mmrec_optimizer_config cfg;
    MT_OK(mmrec_optimizer_config_init(&cfg));
    MT_OK(mmrec_optimizer_create(m, &cfg, o_out));
    for (size_t i = 0; i < m->n_params; i++)
        mt_fill(m->params[i]->tensor.grad, m->params[i]->tensor.numel, 0.5f);
    MT_OK(mmrec_optimizer_step(*o_out));
    *m_out = m;
}

static void mt_set_state(mmrec_optimizer *o, const mmrec_model *m, float v) {
    for (size_t i = 0; i < m->n_params; i++)
        for (int b = 0; b < MMREC__OPTIM_MAX_BUFFERS; b++)
            if (o->slots[i].buf[b]) mt_fill(o->slots[i].buf[b], m->params[i]->tensor.numel, v);
}

static float mt_state_version(const mmrec_optimizer *o, const mmrec_model *m, float v) {
    for (size_t i = 0; i < m->n_params; i++) {
        ck_assert_msg(o->slots[i].ready, "no optimizer state for %s", m->params[i]->name);
        for (int b = 0; b < MMREC__OPTIM_MAX_BUFFERS; b++)
            if (o->slots[i].buf[b])
                v = mt_uniform("optimizer state", o->slots[i].buf[b],
                               m->params[i]->tensor.numel, v);
    }
    return v;
}

static mmrec_status mt_model_save(mt_saver *sv, const char *path, float v) {
    mt_set_params(sv->m, v);
    return mmrec_model_save(sv->m, path);
}

static mmrec_status mt_ckpt_save(mt_saver *sv, const char *path, float v) {
    mt_set_params(sv->m, v);
    mt_set_state(sv->o, sv->m, v);
    return mmrec_checkpoint_save(sv->m, sv->o, path);
}

/* ---- cache: ids in unsorted order, a float32 and a float16 field ---- */

static const int64_t mt_cache_ids[4] = {5, 1, 9, 3};
#define MT_CACHE_X 16 /* record length of x per item, times scale */
#define MT_CACHE_Y 8

static int64_t *mt_cache_ids_of(size_t scale) {
    int64_t *ids = malloc(4 * scale * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (size_t i = 0; i < 4 * scale; i++) ids[i] = mt_cache_ids[i % 4] + 10 * (int64_t)(i / 4);
    return ids;
}

static mmrec_status mt_cache_save(mt_saver *sv, const char *path, float v) {
    size_t n = 4 * sv->scale;
    int64_t *ids = mt_cache_ids_of(sv->scale);
    mt_fill(sv->buf, n * MT_CACHE_X, v);
    mmrec_cache_writer *w;
    mmrec_status s = mmrec_cache_writer_create(path, ids, n, &w);
    free(ids);
    if (s != MMREC_OK) return s;
    s = mmrec_cache_writer_add(w, "x", MMREC_CACHE_F32, sv->buf, MT_CACHE_X);
    if (s == MMREC_OK) s = mmrec_cache_writer_add(w, "y", MMREC_CACHE_F16, sv->buf, MT_CACHE_Y);
    if (s == MMREC_OK) s = mmrec_cache_writer_commit(w);
    mmrec_cache_writer_destroy(w);
    return s;
}

static float mt_cache_version(mt_saver *sv, const char *path) {
    size_t n = 4 * sv->scale;
    int64_t *ids = mt_cache_ids_of(sv->scale);
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    MT_OK(mmrec_cache_gather_into(c, "x", ids, n, 0, sv->buf, NULL));
    float v = mt_uniform("cache field x", sv->buf, n * MT_CACHE_X, 0.0f);
    MT_OK(mmrec_cache_gather_into(c, "y", ids, n, 0, sv->buf, NULL));
    v = mt_uniform("cache field y", sv->buf, n * MT_CACHE_Y, v);
    mmrec_cache_close(c);
    free(ids);
    return v;
}

/* ---- index: 8 items of dim 4 (times scale items), a handle per version ---- */

static mmrec_status mt_index_save(mt_saver *sv, const char *path, float v) {
    return mmrec_index_save(sv->idx[(int)v], path);
}

static float mt_index_version(mt_saver *sv, const char *path) {
    size_t n = 8 * sv->scale;
    mmrec_index *ix;
    float q[4] = {1, 1, 1, 1};
    int64_t *ids = malloc(n * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    MT_OK(mmrec_index_open(path, &ix));
    MT_OK(mmrec_index_search(ix, q, 1, 4, (int64_t)n, NULL, ids, sv->buf, NULL));
    mmrec_index_destroy(ix);
    free(ids);
    for (size_t i = 0; i < n; i++) sv->buf[i] /= 4; /* the score is 4 v */
    return mt_uniform("index score / 4", sv->buf, n, 0.0f);
}

/* ---- the interface ---- */

void mt_saver_tmp_dir(void) {
    snprintf(mt_dir, sizeof mt_dir, "/dev/shm/mmrec-test-XXXXXX");
    if (mkdtemp(mt_dir) == NULL) mt_tmp_dir();
}

void mt_saver_init(mt_saver *sv, const char *kind, size_t scale) {
    memset(sv, 0, sizeof *sv);
    sv->name = kind;
    sv->scale = scale;
    if (strcmp(kind, "model") == 0) {
        sv->file = "m.mmrc";
        sv->save = mt_model_save;
        sv->m = mt_two_params(scale);
        sv->m2 = mt_two_params(scale);
    } else if (strcmp(kind, "checkpoint") == 0) {
        sv->file = "c.mmrc";
        sv->save = mt_ckpt_save;
        mt_trained(scale, &sv->m, &sv->o);
        mt_trained(scale, &sv->m2, &sv->o2);
    } else if (strcmp(kind, "cache") == 0) {
        sv->file = "f.mmfc";
        sv->save = mt_cache_save;
        sv->buf = malloc(4 * scale * MT_CACHE_X * sizeof *sv->buf);
        ck_assert_ptr_nonnull(sv->buf);
    } else {
        ck_assert_str_eq(kind, "index");
        sv->file = "i.mmix";
        sv->save = mt_index_save;
        size_t n = 8 * scale;
        sv->buf = malloc(n * 4 * sizeof *sv->buf);
        ck_assert_ptr_nonnull(sv->buf);
        for (int v = 1; v <= 2; v++) {
            mt_fill(sv->buf, n * 4, (float)v);
            MT_OK(mmrec_index_create(sv->buf, NULL, n, 4, NULL, &sv->idx[v]));
        }
    }
}

void mt_saver_free(mt_saver *sv) {
    mmrec_optimizer_destroy(sv->o);
    mmrec_optimizer_destroy(sv->o2);
    mmrec_model_destroy(sv->m);
    mmrec_model_destroy(sv->m2);
    for (int v = 0; v < 3; v++) mmrec_index_destroy(sv->idx[v]);
    free(sv->buf);
    memset(sv, 0, sizeof *sv);
}

float mt_saver_version(mt_saver *sv, const char *path) {
    if (sv->o2) {
        mt_set_params(sv->m2, -1.0f);
        mt_set_state(sv->o2, sv->m2, -1.0f);
        MT_OK(mmrec_checkpoint_load(sv->m2, sv->o2, path));
        return mt_state_version(sv->o2, sv->m2, mt_params_version(sv->m2, 0.0f));
    }
    if (sv->m2) {
        mt_set_params(sv->m2, -1.0f);
        MT_OK(mmrec_model_load(sv->m2, path));
        return mt_params_version(sv->m2, 0.0f);
    }
    if (sv->idx[1]) return mt_index_version(sv, path);
    return mt_cache_version(sv, path);
}

void mt_saver_expect(mt_saver *sv, const char *path, float v) {
    float found = mt_saver_version(sv, path);
    ck_assert_msg(found == v, "%s: '%s' holds version %g, expected %g", sv->name, path,
                  (double)found, (double)v);
}
