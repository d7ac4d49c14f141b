/* The AlignRec model block (shared/METHODS.md "AlignRec"):
 *   m = Linear(LayerNorm?(content)); seed = item_emb * sigmoid(Linear(m));
 *   mm_items = S^L seed (item kNN graph); mm_users = R_hat mm_items;
 *   id = LightGCN([user_emb; item_emb]); final = id + mm.
 * Composed of the public ops and the graph ops, so every piece keeps its
 * own tested backward. Reference: ALIGNREC.__init__ and forward in
 * sjtulyf123/AlignRec_CIKM24 src/models/alignrec.py;
 * tests/golden/make_golden.py::write_alignrec. */
#include "../modules/modules_internal.h"
#include "../graph/graph_internal.h"
#include "alignrec_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { MMREC__AR_MAX_LAYERS = 64 };
#define MMREC__AR_LN_EPS 1e-5f

typedef struct mmrec__alignrec {
    struct mmrec_module base;
    mmrec_tensor *user_emb, *item_emb; /* [U, d], [I, d] */
    mmrec_tensor *content;             /* [I, content_dim] */
    mmrec_tensor *norm_w, *norm_b;     /* [content_dim], layernorm only */
    mmrec__lin proj, gate;             /* content_dim -> d, d -> d */
    mmrec_alignrec_config cfg;
} mmrec__alignrec;

static const mmrec_alignrec_config mmrec__ar_defaults = {
    .struct_size = sizeof(mmrec_alignrec_config),
    .dim = 64,
    .id_layers = 2,
    .mm_layers = 1,
};

mmrec_status mmrec_alignrec_config_init_sized(mmrec_alignrec_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_alignrec_config, cfg, size, mmrec__ar_defaults);
}

static const mmrec_alignrec_views mmrec__views_zero = {
    .struct_size = sizeof(mmrec_alignrec_views),
};

mmrec_status mmrec_alignrec_views_init_sized(mmrec_alignrec_views *views, size_t size) {
    if (views == NULL)
        return mmrec__set_error(MMREC_EINVAL, __func__, "argument 'views' is NULL");
    return MMREC__CONFIG_INIT(mmrec_alignrec_views, views, size, mmrec__views_zero);
}

/* torch.nn.Linear's default initialization: weight and bias
 * U(-1/sqrt(in), 1/sqrt(in)). */
static void mmrec__ar_init_linear(mmrec_model *model, const mmrec__lin *lin) {
    float bound = 1.0f / sqrtf((float)lin->in);
    for (size_t i = 0; i < lin->w->numel; i++)
        lin->w->data[i] = bound * (2.0f * mmrec__rng_uniform(&model->rng) - 1.0f);
    for (size_t i = 0; i < lin->b->numel; i++)
        lin->b->data[i] = bound * (2.0f * mmrec__rng_uniform(&model->rng) - 1.0f);
}

static mmrec_status mmrec__ar_parts(mmrec__alignrec *m, mmrec_model *model, const char *name) {
    const mmrec_alignrec_config *c = &m->cfg;
    const char *func = "mmrec_alignrec_create";
    char sub[256];
    int64_t ushape[2] = {c->num_users, c->dim}, ishape[2] = {c->num_items, c->dim};
    int64_t cshape[2] = {c->num_items, c->content_dim};
    snprintf(sub, sizeof sub, "%s.user_embedding", name);
    MMREC_FORWARD_IF(mmrec__model_add_param(model, func, sub, "weight", 2, ushape, false,
                                            &m->user_emb));
    mmrec__init_xavier_uniform(model, m->user_emb, c->dim, c->num_users);
    snprintf(sub, sizeof sub, "%s.item_embedding", name);
    MMREC_FORWARD_IF(mmrec__model_add_param(model, func, sub, "weight", 2, ishape, false,
                                            &m->item_emb));
    mmrec__init_xavier_uniform(model, m->item_emb, c->dim, c->num_items);
    snprintf(sub, sizeof sub, "%s.content", name);
    MMREC_FORWARD_IF(
        mmrec__model_add_param(model, func, sub, "features", 2, cshape, false, &m->content));
    memcpy(m->content->data, c->features, m->content->numel * sizeof(float));
    if (c->layernorm) {
        snprintf(sub, sizeof sub, "%s.content.norm", name);
        MMREC_FORWARD_IF(mmrec__ln_params(model, func, sub, c->content_dim, &m->norm_w,
                                          &m->norm_b));
    }
    snprintf(sub, sizeof sub, "%s.content.proj", name);
    MMREC_FORWARD_IF(mmrec__lin_create(model, func, sub, "weight", "bias", c->content_dim, c->dim,
                                       true, MMREC_INIT_ZEROS, 0.0f, &m->proj));
    mmrec__ar_init_linear(model, &m->proj);
    snprintf(sub, sizeof sub, "%s.content.gate", name);
    MMREC_FORWARD_IF(mmrec__lin_create(model, func, sub, "weight", "bias", c->dim, c->dim, true,
                                       MMREC_INIT_ZEROS, 0.0f, &m->gate));
    mmrec__ar_init_linear(model, &m->gate);
    return MMREC_OK;
}

mmrec_status mmrec_alignrec_create(mmrec_model *model, const char *name,
                                   const mmrec_alignrec_config *cfg, mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, __func__));
    mmrec_alignrec_config c = mmrec__ar_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_alignrec_config, &c, cfg));
    MMREC_FAIL_IF(c.num_users < 1 || c.num_items < 1 || c.num_users >= INT32_MAX - c.num_items,
                  MMREC_EINVAL,
                  "cfg->num_users is %lld and cfg->num_items %lld: each must be >= 1, their "
                  "sum below 2^31 - 1",
                  (long long)c.num_users, (long long)c.num_items);
    MMREC_FAIL_IF(c.content_dim < 1, MMREC_EINVAL, "cfg->content_dim is %lld, must be >= 1",
                  (long long)c.content_dim);
    MMREC_FAIL_IF(c.dim < 1, MMREC_EINVAL, "cfg->dim is %lld, must be >= 1", (long long)c.dim);
    MMREC_FAIL_IF(c.id_layers < 0 || c.id_layers > MMREC__AR_MAX_LAYERS, MMREC_EINVAL,
                  "cfg->id_layers is %d, must be in [0, %d]", c.id_layers, MMREC__AR_MAX_LAYERS);
    MMREC_FAIL_IF(c.mm_layers < 0 || c.mm_layers > MMREC__AR_MAX_LAYERS, MMREC_EINVAL,
                  "cfg->mm_layers is %d, must be in [0, %d]", c.mm_layers, MMREC__AR_MAX_LAYERS);
    MMREC_FAIL_IF(c.features == NULL, MMREC_EINVAL, "cfg->features is NULL");
    size_t n_features;
    MMREC_FAIL_IF(!mmrec__mul_size((size_t)c.num_items, (size_t)c.content_dim, &n_features),
                  MMREC_EINVAL, "cfg->num_items * cfg->content_dim overflows");
    for (size_t i = 0; i < n_features; i++)
        MMREC_FAIL_IF(!isfinite(c.features[i]), MMREC_EINVAL,
                      "cfg->features[%zu] (item %zu) is %g, must be finite", i,
                      i / (size_t)c.content_dim, (double)c.features[i]);
    mmrec__alignrec *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = MMREC_OK;
    if (m) {
        m->cfg = c;
        s = mmrec__ar_parts(m, model, name);
        m->cfg.features = NULL; /* borrowed for the call only */
    }
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "alignrec", name, NULL, out);
}

/* ---- forward ---- */

static mmrec_status mmrec__ar_check_graphs(const mmrec__alignrec *m, const mmrec_graph *ui,
                                           const mmrec_graph *items) {
    const char *func = "mmrec_alignrec_forward";
    const mmrec_alignrec_config *c = &m->cfg;
    MMREC_FORWARD_IF(mmrec__graph_check(func, "ui_graph", ui));
    if (ui->num_users != c->num_users || ui->num_nodes != c->num_users + c->num_items)
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "ui_graph has %lld users and %lld items, expected %lld and %lld "
                                "(config)",
                                (long long)ui->num_users,
                                (long long)(ui->num_nodes - ui->num_users),
                                (long long)c->num_users, (long long)c->num_items);
    if (c->mm_layers == 0) return MMREC_OK;
    if (items == NULL)
        return mmrec__set_error(MMREC_EINVAL, func, "argument 'item_graph' is NULL");
    MMREC_FORWARD_IF(mmrec__graph_check(func, "item_graph", items));
    if (items->num_nodes != c->num_items)
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "item_graph has %lld nodes, expected %lld (config num_items)",
                                (long long)items->num_nodes, (long long)c->num_items);
    return MMREC_OK;
}

/* out: users, items, id_users, id_items, mm_users, mm_items. */
static mmrec_status mmrec__ar_run(const mmrec__alignrec *m, mmrec_tape *tape,
                                  const mmrec_graph *ui, const mmrec_graph *item_graph,
                                  mmrec_tensor **out) {
    const char *func = "mmrec_alignrec_forward";
    const mmrec_alignrec_config *c = &m->cfg;
    mmrec_tensor *x = m->content, *h, *gate, *mm_items, *mm_users, *ego, *id, *id_users, *id_items;
    /* content path: the behaviour-guided purifier */
    if (m->norm_w)
        MMREC_FORWARD_IF(mmrec_layer_norm(tape, x, m->norm_w, m->norm_b, MMREC__AR_LN_EPS, &x));
    MMREC_FORWARD_IF(mmrec__lin_forward(&m->proj, tape, func, x, &h));
    MMREC_FORWARD_IF(mmrec__lin_forward(&m->gate, tape, func, h, &gate));
    MMREC_FORWARD_IF(mmrec_sigmoid(tape, gate, &gate));
    MMREC_FORWARD_IF(mmrec_mul(tape, m->item_emb, gate, &mm_items));
    /* item-item view, then users from their items */
    for (int l = 0; l < c->mm_layers; l++)
        MMREC_FORWARD_IF(mmrec_graph_propagate(tape, item_graph, mm_items, &mm_items));
    MMREC_FORWARD_IF(mmrec_graph_aggregate_users(tape, ui, mm_items, &mm_users));
    /* user-item view */
    mmrec_tensor *tables[2] = {m->user_emb, m->item_emb};
    MMREC_FORWARD_IF(mmrec_concat(tape, tables, 2, 0, &ego));
    MMREC_FORWARD_IF(mmrec_lightgcn(tape, ui, ego, c->id_layers, NULL, &id));
    MMREC_FORWARD_IF(mmrec_slice(tape, id, 0, 0, c->num_users, &id_users));
    MMREC_FORWARD_IF(mmrec_slice(tape, id, 0, c->num_users, c->num_items, &id_items));
    /* fusion */
    MMREC_FORWARD_IF(mmrec_add(tape, id_users, mm_users, &out[0]));
    MMREC_FORWARD_IF(mmrec_add(tape, id_items, mm_items, &out[1]));
    out[2] = id_users;
    out[3] = id_items;
    out[4] = mm_users;
    out[5] = mm_items;
    return MMREC_OK;
}

mmrec_status mmrec_alignrec_forward(mmrec_module *alignrec, mmrec_tape *tape,
                                    const mmrec_graph *ui_graph, const mmrec_graph *item_graph,
                                    mmrec_alignrec_views *views) {
    MMREC_CHECK_MODULE(alignrec, "alignrec");
    MMREC_CHECK_TAPE(tape);
    MMREC_CHECK_NULL(views);
    MMREC_FAIL_IF(views->struct_size < (size_t)MMREC__MIN_SIZE(mmrec_alignrec_views),
                  MMREC_EINVAL,
                  "views->struct_size is %zu, expected at least %zu (use "
                  "mmrec_alignrec_views_init)",
                  views->struct_size, (size_t)MMREC__MIN_SIZE(mmrec_alignrec_views));
    const mmrec__alignrec *m = (const mmrec__alignrec *)alignrec;
    MMREC_FORWARD_IF(mmrec__ar_check_graphs(m, ui_graph, item_graph));
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_tensor *v[6];
    mmrec_status s = mmrec__ar_run(m, tape, ui_graph, item_graph, v);
    if (s != MMREC_OK) {
        mmrec__tape_rollback(tape, mark);
        return s;
    }
    views->users = v[0];
    views->items = v[1];
    views->id_users = v[2];
    views->id_items = v[3];
    views->mm_users = v[4];
    views->mm_items = v[5];
    return MMREC_OK;
}

mmrec_status mmrec_alignrec_aggregate_users(mmrec_tape *tape, const mmrec_graph *graph,
                                            mmrec_tensor *items, mmrec_tensor **out) {
    return mmrec__graph_aggregate_users(__func__, tape, graph, items, out);
}
