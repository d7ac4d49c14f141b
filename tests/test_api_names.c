/* Argument names in messages, for every public function.
 *
 * tests/api_params.h (generated from the headers in include/mmrec/ by
 * tools/api-params.sh; make check-api-params keeps it equal to the headers)
 * lists every MMREC_API function with its parameters. Each function has an
 * entry below: a call with every argument valid, on a fresh fixture, that
 * can set any one pointer argument to NULL. For each pointer parameter the
 * header does not allow to be NULL, the call with that argument NULL must
 * return MMREC_EINVAL with a message "<function>: ... argument '<name>' is
 * NULL", naming the function called and the parameter as the header's
 * declaration spells it. Parameters the header lets
 * be NULL are listed with the entry and must then succeed; the call with
 * every argument valid must succeed too, so each failure came from its NULL
 * alone. Functions with no pointer to check (no pointer parameter, or a
 * void or non-status return: destroyers, getters that cannot fail) are
 * exempt with the reason. A function in the table without an entry, or an
 * entry for no function, fails the test. */
#include "mt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__GNUC__)
#define MT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MT_PRINTF(a, b)
#endif

MT_SUITE(api_names_suite)

/* ---- the generated table ---- */

#define MT_API_MAX_PARAMS 12

typedef struct mt_api_param {
    const char *name, *type;
    int pointer;
} mt_api_param;

typedef struct mt_api_fn {
    const char *name, *ret, *header;
    int n_params;
    mt_api_param params[MT_API_MAX_PARAMS];
} mt_api_fn;

static const mt_api_fn mt_api[] = {
#include "api_params.h"
};
#define MT_API_N (sizeof mt_api / sizeof mt_api[0])

/* ---- the fixture: one of every object, small ---- */

enum { U = 3, I = 4, D = 4 };

typedef struct fx {
    mmrec_model *model;
    mmrec_module *lin, *lin_plain, *lin_lora, *mlp, *emb, *ln, *mha, *trm, *fq, *ta, *ar;
    mmrec_tape *tape;
    mmrec_optimizer *opt;
    mmrec_rng *rng;
    mmrec_graph *ui, *knn;
    mmrec_interactions *train, *test;
    mmrec_sequences *seqs;
    mmrec_cache *cache;
    mmrec_cache_writer *writer;
    mmrec_index *index; /* [I, D] of mt_feat, ids mt_index_ids */
    /* tape tensors: a, b [2, D] (a requires a gradient), seq [2, 3, D],
     * tok [2, 1, D], w [D, 3], table [10, D], ego [U + I, D], items [I, D] */
    mmrec_tensor *a, *b, *seq, *tok, *w, *table, *ego, *items;
    mmrec_tensor *ones22, *ones23; /* masks of ones, [2, 2] and [2, 3] */
    mmrec_tensor *wrap; /* caller-owned wrap of buf */
    /* outputs the calls write; objects among them are freed at teardown */
    mmrec_tensor *t_out, *t_out2, *made_tensor;
    mmrec_model *made_model;
    mmrec_tape *made_tape;
    mmrec_rng *made_rng;
    mmrec_optimizer *made_opt;
    mmrec_graph *made_graph;
    mmrec_interactions *made_x;
    mmrec_sequences *made_seqs;
    mmrec_cache *made_cache;
    mmrec_cache_writer *made_writer;
    mmrec_module *made_module;
    mmrec_item_sampler *made_sampler;
    mmrec_index *made_index;
    float buf[64], buf2[64];
    int64_t shape[2];
} fx;

/* Files every call may read, written once per test run. */
static const char *mt_cache_path, *mt_npy_path, *mt_lightgcn_path, *mt_inter_path;
static const char *mt_items_path, *mt_users_path, *mt_index_path;
static char mt_paths[7][200];
static const int64_t mt_index_ids[I] = {40, 10, 30, 20};

static const int64_t mt_users[5] = {0, 0, 1, 2, 2}, mt_items[5] = {0, 1, 1, 2, 3};
static const int64_t mt_ids2[2] = {0, 1};
static const int64_t mt_cache_ids[3] = {1, 5, 9};
static const float mt_feat[I * D] = {1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1, 1};
static const int mt_ks[2] = {1, 2};

static mmrec_tensor *fx_tape_tensor(fx *f, int ndim, const int64_t *shape, uint32_t flags) {
    mmrec_tensor *t;
    MT_OK(mmrec_tape_tensor(f->tape, ndim, shape, flags, &t));
    float *d;
    size_t n;
    MT_OK(mmrec_tensor_data(t, &d));
    MT_OK(mmrec_tensor_numel(t, &n));
    for (size_t i = 0; i < n; i++) d[i] = 0.1f * (float)((i * 7) % 11) - 0.4f;
    return t;
}

static void fx_setup(fx *f) {
    memset(f, 0, sizeof *f);
    f->shape[0] = 2;
    f->shape[1] = 3;
    for (int i = 0; i < 64; i++) f->buf[i] = f->buf2[i] = 0.25f * (float)(i % 5);
    MT_OK(mmrec_model_create(&f->model));
    mmrec_linear_config lc;
    MT_OK(mmrec_linear_config_init(&lc));
    lc.in_dim = D;
    lc.out_dim = 3;
    MT_OK(mmrec_linear_create(f->model, "lin", &lc, &f->lin));
    MT_OK(mmrec_linear_create(f->model, "plain", &lc, &f->lin_plain));
    MT_OK(mmrec_linear_create(f->model, "lora", &lc, &f->lin_lora));
    mmrec_lora_config rc;
    MT_OK(mmrec_lora_config_init(&rc));
    rc.rank = 2;
    MT_OK(mmrec_lora_attach(f->lin_lora, &rc));
    static const int64_t sizes[3] = {D, 8, 3};
    mmrec_mlp_config mc;
    MT_OK(mmrec_mlp_config_init(&mc));
    mc.sizes = sizes;
    mc.num_sizes = 3;
    MT_OK(mmrec_mlp_create(f->model, "mlp", &mc, &f->mlp));
    mmrec_embedding_config ec;
    MT_OK(mmrec_embedding_config_init(&ec));
    ec.num_rows = 10;
    ec.dim = D;
    MT_OK(mmrec_embedding_create(f->model, "emb", &ec, &f->emb));
    mmrec_layernorm_config nc;
    MT_OK(mmrec_layernorm_config_init(&nc));
    nc.dim = D;
    MT_OK(mmrec_layernorm_create(f->model, "ln", &nc, &f->ln));
    mmrec_mha_config hc;
    MT_OK(mmrec_mha_config_init(&hc));
    hc.dim = D;
    hc.num_heads = 2;
    MT_OK(mmrec_mha_create(f->model, "mha", &hc, &f->mha));
    mmrec_transformer_config tc;
    MT_OK(mmrec_transformer_config_init(&tc));
    tc.dim = D;
    tc.num_heads = 2;
    tc.ffn_dim = 8;
    MT_OK(mmrec_transformer_create(f->model, "trm", &tc, &f->trm));
    mmrec_fqformer_config qc;
    MT_OK(mmrec_fqformer_config_init(&qc));
    qc.image_dim = D;
    qc.text_dim = D;
    qc.dim = D;
    qc.num_queries = 2;
    qc.num_heads = 2;
    qc.ffn_dim = 8;
    MT_OK(mmrec_fqformer_create(f->model, "fq", &qc, &f->fq));
    mmrec_target_attention_config ac;
    MT_OK(mmrec_target_attention_config_init(&ac));
    ac.dim = D;
    MT_OK(mmrec_target_attention_create(f->model, "ta", &ac, &f->ta));
    mmrec_alignrec_config arc;
    MT_OK(mmrec_alignrec_config_init(&arc));
    arc.num_users = U;
    arc.num_items = I;
    arc.content_dim = D;
    arc.features = mt_feat;
    arc.dim = D;
    arc.mm_layers = 1;
    MT_OK(mmrec_alignrec_create(f->model, "ar", &arc, &f->ar));

    MT_OK(mmrec_tape_create(&f->tape));
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    MT_OK(mmrec_optimizer_create(f->model, &oc, &f->opt));
    MT_OK(mmrec_rng_create(1, &f->rng));
    MT_OK(mmrec_graph_create_bipartite(mt_users, mt_items, 5, U, I, &f->ui));
    mmrec_knn_config kc;
    MT_OK(mmrec_knn_config_init(&kc));
    kc.k = 2;
    MT_OK(mmrec_graph_create_knn(mt_feat, I, D, &kc, &f->knn));
    MT_OK(mmrec_interactions_create(mt_users, mt_items, 5, &f->train));
    static const int64_t tu[3] = {0, 1, 2}, ti[3] = {2, 3, 0};
    MT_OK(mmrec_interactions_create(tu, ti, 3, &f->test));
    MT_OK(mmrec_cache_open(mt_cache_path, &f->cache));
    MT_OK(mmrec_cache_writer_create(mt_file(2, "w.mmfc"), mt_ids2, 2, &f->writer));
    MT_OK(mmrec_index_create(mt_feat, mt_index_ids, I, D, NULL, &f->index));
    mmrec_sequences_config sc;
    MT_OK(mmrec_sequences_config_init(&sc));
    sc.min_length = 3;
    MT_OK(mmrec_sequences_read_tsv(mt_items_path, mt_users_path, &sc, &f->seqs));

    int64_t s2[2] = {2, D}, s3[3] = {2, 3, D}, st[3] = {2, 1, D}, sw[2] = {D, 3},
            sTab[2] = {10, D}, sEgo[2] = {U + I, D}, sItems[2] = {I, D};
    f->a = fx_tape_tensor(f, 2, s2, MMREC_TENSOR_REQUIRES_GRAD);
    f->b = fx_tape_tensor(f, 2, s2, 0);
    f->seq = fx_tape_tensor(f, 3, s3, 0);
    f->tok = fx_tape_tensor(f, 3, st, 0);
    f->w = fx_tape_tensor(f, 2, sw, 0);
    f->table = fx_tape_tensor(f, 2, sTab, 0);
    f->ego = fx_tape_tensor(f, 2, sEgo, 0);
    f->items = fx_tape_tensor(f, 2, sItems, 0);
    f->ones23 = fx_tape_tensor(f, 2, f->shape, 0);
    static const int64_t s22[2] = {2, 2};
    MT_OK(mmrec_tape_tensor(f->tape, 2, s22, 0, &f->ones22));
    float *d;
    MT_OK(mmrec_tensor_data(f->ones23, &d));
    for (int i = 0; i < 6; i++) d[i] = 1.0f;
    MT_OK(mmrec_tensor_data(f->ones22, &d));
    for (int i = 0; i < 4; i++) d[i] = 1.0f;
    MT_OK(mmrec_tensor_wrap(f->buf, 2, f->shape, 0, &f->wrap));
}

static void fx_teardown(fx *f) {
    mmrec_tensor_destroy(f->wrap);
    mmrec_tensor_destroy(f->made_tensor);
    mmrec_tape_destroy(f->made_tape);
    mmrec_rng_destroy(f->made_rng);
    mmrec_optimizer_destroy(f->made_opt);
    mmrec_model_destroy(f->made_model);
    mmrec_graph_destroy(f->made_graph);
    mmrec_interactions_destroy(f->made_x);
    mmrec_sequences_destroy(f->made_seqs);
    mmrec_item_sampler_destroy(f->made_sampler);
    mmrec_index_destroy(f->made_index);
    mmrec_index_destroy(f->index);
    mmrec_sequences_destroy(f->seqs);
    mmrec_cache_close(f->made_cache);
    mmrec_cache_writer_destroy(f->made_writer);
    mmrec_cache_writer_destroy(f->writer);
    mmrec_cache_close(f->cache);
    mmrec_interactions_destroy(f->test);
    mmrec_interactions_destroy(f->train);
    mmrec_graph_destroy(f->knn);
    mmrec_graph_destroy(f->ui);
    mmrec_rng_destroy(f->rng);
    mmrec_optimizer_destroy(f->opt);
    mmrec_tape_destroy(f->tape);
    mmrec_model_destroy(f->model);
    mmrec_set_allocator(NULL);
}

/* ---- the calls ----
 * N(i, e): argument i of the call (0-based, as in the header), NULL when
 * it is the one the test sets to NULL. */
#define N(i, e) (k == (i) ? NULL : (e))
#define CALL(fn) static mmrec_status c_##fn(fx *f, int k)

static int64_t fx_trainable(fx *f) {
    size_t n;
    MT_OK(mmrec_model_param_count(f->model, &n, NULL));
    return (int64_t)n;
}

static mmrec_tensor *fx_loss(fx *f) {
    mmrec_tensor *loss;
    MT_OK(mmrec_sum(f->tape, f->a, MMREC_AXIS_ALL, &loss));
    return loss;
}

static void fx_out_size(mmrec_rank_metrics *out) {
    memset(out, 0, 2 * sizeof *out);
    out[0].struct_size = sizeof out[0];
}

static void mt_release_noop(void *user, float *data) {
    (void)user;
    (void)data;
}

/* alignrec.h */
CALL(mmrec_loss_infonce) {
    return mmrec_loss_infonce(N(0, f->tape), N(1, f->a), N(2, f->b), 0.2f, N(4, &f->t_out));
}
CALL(mmrec_loss_anti_collapse) {
    return mmrec_loss_anti_collapse(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, &f->t_out));
}
CALL(mmrec_loss_ui_alignment) {
    return mmrec_loss_ui_alignment(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, &f->t_out));
}
CALL(mmrec_alignrec_aggregate_users) {
    return mmrec_alignrec_aggregate_users(N(0, f->tape), N(1, f->ui), N(2, f->items),
                                          N(3, &f->t_out));
}
CALL(mmrec_alignrec_config_init_sized) {
    mmrec_alignrec_config c;
    return mmrec_alignrec_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_alignrec_create) {
    mmrec_alignrec_config c;
    MT_OK(mmrec_alignrec_config_init(&c));
    c.num_users = U;
    c.num_items = I;
    c.content_dim = D;
    c.features = mt_feat;
    return mmrec_alignrec_create(N(0, f->model), N(1, "new"), N(2, &c), N(3, &f->made_module));
}
CALL(mmrec_alignrec_views_init_sized) {
    mmrec_alignrec_views v;
    return mmrec_alignrec_views_init_sized(N(0, &v), sizeof v);
}
CALL(mmrec_alignrec_forward) {
    mmrec_alignrec_views v;
    MT_OK(mmrec_alignrec_views_init(&v));
    return mmrec_alignrec_forward(N(0, f->ar), N(1, f->tape), N(2, f->ui), N(3, f->knn),
                                  N(4, &v));
}

/* cache.h */
CALL(mmrec_cache_writer_create) {
    return mmrec_cache_writer_create(N(0, mt_file(3, "new.mmfc")), N(1, mt_ids2), 2,
                                     N(3, &f->made_writer));
}
CALL(mmrec_cache_writer_add) {
    return mmrec_cache_writer_add(N(0, f->writer), N(1, "f"), MMREC_CACHE_F32, N(3, f->buf), 2);
}
CALL(mmrec_cache_writer_add_npy) {
    return mmrec_cache_writer_add_npy(N(0, f->writer), N(1, "g"), MMREC_CACHE_F16,
                                      N(3, mt_npy_path));
}
CALL(mmrec_cache_writer_commit) { return mmrec_cache_writer_commit(N(0, f->writer)); }
CALL(mmrec_cache_open) { return mmrec_cache_open(N(0, mt_cache_path), N(1, &f->made_cache)); }
CALL(mmrec_cache_num_items) {
    int64_t n;
    return mmrec_cache_num_items(N(0, f->cache), N(1, &n));
}
CALL(mmrec_cache_num_fields) {
    int n;
    return mmrec_cache_num_fields(N(0, f->cache), N(1, &n));
}
CALL(mmrec_cache_field_info) {
    const char *name;
    int64_t dim;
    mmrec_cache_dtype dtype;
    return mmrec_cache_field_info(N(0, f->cache), 0, N(2, &name), N(3, &dim), N(4, &dtype));
}
CALL(mmrec_cache_field_dim) {
    int64_t dim;
    return mmrec_cache_field_dim(N(0, f->cache), N(1, "a"), N(2, &dim));
}
CALL(mmrec_cache_gather) {
    return mmrec_cache_gather(N(0, f->cache), N(1, f->tape), N(2, "a"), N(3, mt_cache_ids), 3,
                              N(5, &f->t_out));
}
CALL(mmrec_cache_gather_ex) {
    return mmrec_cache_gather_ex(N(0, f->cache), N(1, f->tape), N(2, "a"), N(3, mt_cache_ids),
                                 3, 0, N(6, &f->t_out), N(7, &f->t_out2));
}
CALL(mmrec_cache_gather_into) {
    return mmrec_cache_gather_into(N(0, f->cache), N(1, "a"), N(2, mt_cache_ids), 3, 0,
                                   N(5, f->buf), N(6, f->buf2));
}
CALL(mmrec_cache_writer_add_layers) {
    return mmrec_cache_writer_add_layers(N(0, f->writer), N(1, "l"), MMREC_CACHE_F16,
                                         N(3, f->buf), 2, 3);
}
CALL(mmrec_cache_field_shape) {
    int64_t layers, width;
    return mmrec_cache_field_shape(N(0, f->cache), N(1, "a"), N(2, &layers), N(3, &width));
}
CALL(mmrec_cache_gather_config_init_sized) {
    mmrec_cache_gather_config c;
    return mmrec_cache_gather_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_cache_gather_layers) {
    mmrec_cache_gather_config c;
    MT_OK(mmrec_cache_gather_config_init(&c));
    return mmrec_cache_gather_layers(N(0, f->cache), N(1, f->tape), N(2, "a"),
                                     N(3, mt_cache_ids), 3, N(5, &c), N(6, &f->t_out),
                                     N(7, &f->t_out2));
}
CALL(mmrec_cache_gather_layers_into) {
    mmrec_cache_gather_config c;
    MT_OK(mmrec_cache_gather_config_init(&c));
    return mmrec_cache_gather_layers_into(N(0, f->cache), N(1, "a"), N(2, mt_cache_ids), 3,
                                          N(4, &c), N(5, f->buf), N(6, f->buf2));
}
CALL(mmrec_cache_refresh) { return mmrec_cache_refresh(N(0, f->cache), N(1, mt_cache_path)); }

/* core.h */
CALL(mmrec_set_allocator) {
    (void)f;
    (void)k;
    return mmrec_set_allocator(NULL); /* the only pointer, documented as NULL-able */
}
CALL(mmrec_rng_create) { return mmrec_rng_create(7, N(1, &f->made_rng)); }
CALL(mmrec_rng_seed) { return mmrec_rng_seed(N(0, f->rng), 3); }
CALL(mmrec_rng_next_u64) {
    uint64_t x;
    return mmrec_rng_next_u64(N(0, f->rng), N(1, &x));
}
CALL(mmrec_rng_uniform) { return mmrec_rng_uniform(N(0, f->rng), 0.0f, 1.0f, N(3, f->buf), 4); }
CALL(mmrec_rng_normal) { return mmrec_rng_normal(N(0, f->rng), 0.0f, 1.0f, N(3, f->buf), 4); }
CALL(mmrec_rng_below) {
    uint64_t x;
    return mmrec_rng_below(N(0, f->rng), 10, N(2, &x));
}

/* data.h */
CALL(mmrec_interactions_create) {
    return mmrec_interactions_create(N(0, mt_users), N(1, mt_items), 5, N(3, &f->made_x));
}
CALL(mmrec_interactions_read_lightgcn) {
    return mmrec_interactions_read_lightgcn(N(0, mt_lightgcn_path), N(1, &f->made_x));
}
CALL(mmrec_interactions_read_inter) {
    return mmrec_interactions_read_inter(N(0, mt_inter_path), 0, N(2, &f->made_x));
}
CALL(mmrec_interactions_info) {
    int64_t nu, ni;
    size_t n;
    return mmrec_interactions_info(N(0, f->train), N(1, &nu), N(2, &ni), N(3, &n));
}
CALL(mmrec_interactions_pairs) {
    const int64_t *u, *i;
    return mmrec_interactions_pairs(N(0, f->train), N(1, &u), N(2, &i));
}
CALL(mmrec_sequences_config_init_sized) {
    mmrec_sequences_config c;
    return mmrec_sequences_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_sequences_read_tsv) {
    mmrec_sequences_config c;
    MT_OK(mmrec_sequences_config_init(&c));
    c.min_length = 3;
    return mmrec_sequences_read_tsv(N(0, mt_items_path), N(1, mt_users_path), N(2, &c),
                                    N(3, &f->made_seqs));
}
CALL(mmrec_sequences_info) {
    int64_t users, items;
    size_t count;
    return mmrec_sequences_info(N(0, f->seqs), N(1, &users), N(2, &items), N(3, &count));
}
CALL(mmrec_sequences_user) {
    const int64_t *items;
    size_t len;
    return mmrec_sequences_user(N(0, f->seqs), 1, N(2, &items), N(3, &len));
}
CALL(mmrec_sequences_user_name) {
    const char *name;
    return mmrec_sequences_user_name(N(0, f->seqs), 0, N(2, &name));
}
CALL(mmrec_sequences_item) {
    const char *asin, *title;
    return mmrec_sequences_item(N(0, f->seqs), 2, N(2, &asin), N(3, &title));
}
CALL(mmrec_sequences_train_counts) {
    const int64_t *counts;
    return mmrec_sequences_train_counts(N(0, f->seqs), N(1, &counts));
}
CALL(mmrec_sequences_interactions) {
    return mmrec_sequences_interactions(N(0, f->seqs), MMREC_SEQUENCES_TRAIN, N(2, &f->made_x));
}


/* em3.h */
CALL(mmrec_fqformer_config_init_sized) {
    mmrec_fqformer_config c;
    return mmrec_fqformer_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_fqformer_create) {
    mmrec_fqformer_config c;
    MT_OK(mmrec_fqformer_config_init(&c));
    c.image_dim = c.text_dim = c.dim = D;
    c.num_heads = 2;
    return mmrec_fqformer_create(N(0, f->model), N(1, "new"), N(2, &c), N(3, &f->made_module));
}
CALL(mmrec_fqformer_forward) {
    return mmrec_fqformer_forward(N(0, f->fq), N(1, f->tape), N(2, f->tok), N(3, f->tok),
                                  N(4, f->ones22), N(5, &f->t_out));
}
CALL(mmrec_target_attention_config_init_sized) {
    mmrec_target_attention_config c;
    return mmrec_target_attention_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_target_attention_create) {
    mmrec_target_attention_config c;
    MT_OK(mmrec_target_attention_config_init(&c));
    c.dim = D;
    return mmrec_target_attention_create(N(0, f->model), N(1, "new"), N(2, &c),
                                         N(3, &f->made_module));
}
CALL(mmrec_target_attention_forward) {
    return mmrec_target_attention_forward(N(0, f->ta), N(1, f->tape), N(2, f->b), N(3, f->seq),
                                          N(4, f->ones23), N(5, &f->t_out));
}
CALL(mmrec_cic_config_init_sized) {
    mmrec_cic_config c;
    return mmrec_cic_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_loss_cic) {
    mmrec_cic_config c;
    MT_OK(mmrec_cic_config_init(&c));
    return mmrec_loss_cic(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, &c), N(4, &f->t_out));
}

/* graph.h */
CALL(mmrec_graph_create_bipartite) {
    return mmrec_graph_create_bipartite(N(0, mt_users), N(1, mt_items), 5, U, I,
                                        N(5, &f->made_graph));
}
CALL(mmrec_knn_config_init_sized) {
    mmrec_knn_config c;
    return mmrec_knn_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_graph_create_knn) {
    /* 16 items, so that the default k (10) fits when cfg is NULL */
    float feat[16 * D];
    for (int i = 0; i < 16 * D; i++) feat[i] = (float)((i * 5) % 7) - 3.0f;
    mmrec_knn_config c;
    MT_OK(mmrec_knn_config_init(&c));
    return mmrec_graph_create_knn(N(0, feat), 16, D, N(3, &c), N(4, &f->made_graph));
}
CALL(mmrec_graph_info) {
    int64_t nodes, users, nnz;
    return mmrec_graph_info(N(0, f->ui), N(1, &nodes), N(2, &users), N(3, &nnz));
}
CALL(mmrec_graph_propagate) {
    return mmrec_graph_propagate(N(0, f->tape), N(1, f->ui), N(2, f->ego), N(3, &f->t_out));
}
CALL(mmrec_lightgcn) {
    static const float wts[3] = {0.5f, 0.25f, 0.25f};
    return mmrec_lightgcn(N(0, f->tape), N(1, f->ui), N(2, f->ego), 2, N(4, wts),
                          N(5, &f->t_out));
}
CALL(mmrec_lightgcn_rows) {
    static const float wts[3] = {0.5f, 0.25f, 0.25f};
    return mmrec_lightgcn_rows(N(0, f->tape), N(1, f->ui), N(2, f->ego), 2, N(4, wts),
                               N(5, mt_ids2), 2, N(7, &f->t_out));
}
CALL(mmrec_graph_aggregate_users) {
    return mmrec_graph_aggregate_users(N(0, f->tape), N(1, f->ui), N(2, f->items),
                                       N(3, &f->t_out));
}

/* losses.h */
CALL(mmrec_loss_bce_logits) {
    return mmrec_loss_bce_logits(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, &f->t_out));
}
CALL(mmrec_loss_softmax_ce) {
    return mmrec_loss_softmax_ce(N(0, f->tape), N(1, f->a), N(2, mt_ids2), 2, N(4, &f->t_out));
}
CALL(mmrec_loss_bpr) {
    return mmrec_loss_bpr(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, &f->t_out));
}
CALL(mmrec_loss_mse) {
    return mmrec_loss_mse(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, &f->t_out));
}
CALL(mmrec_batch_softmax_config_init_sized) {
    mmrec_batch_softmax_config c;
    return mmrec_batch_softmax_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_loss_batch_softmax) {
    mmrec_batch_softmax_config c;
    MT_OK(mmrec_batch_softmax_config_init(&c));
    return mmrec_loss_batch_softmax(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, &c),
                                    N(4, &f->t_out));
}
CALL(mmrec_loss_batch_softmax_logits) {
    return mmrec_loss_batch_softmax_logits(N(0, f->tape), N(1, f->ones22), NULL,
                                           N(3, &f->t_out));
}
CALL(mmrec_sequence_softmax_config_init_sized) {
    mmrec_sequence_softmax_config c;
    return mmrec_sequence_softmax_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_loss_sequence_softmax) {
    /* states [2, 3, D], items [2, 4, D]: user 0 left-padded, user 1 full */
    static const int64_t ids[8] = {0, 1, 2, 3, 4, 1, 5, 6};
    static const float pop[7] = {0, 1, 2, 3, 4, 5, 6};
    static const int64_t si[3] = {2, 4, D};
    mmrec_tensor *items = fx_tape_tensor(f, 3, si, 0);
    mmrec_sequence_softmax_config c;
    MT_OK(mmrec_sequence_softmax_config_init(&c));
    c.popularity = pop;
    c.num_items = 7;
    return mmrec_loss_sequence_softmax(N(0, f->tape), N(1, f->seq), N(2, items), N(3, ids), 8,
                                       N(5, &c), N(6, &f->t_out));
}

/* metrics.h */
CALL(mmrec_eval_full_ranking) {
    mmrec_rank_metrics out[2];
    fx_out_size(out);
    return mmrec_eval_full_ranking(N(0, f->buf), N(1, f->buf2), U, I, D, N(5, f->train),
                                   N(6, f->test), N(7, mt_ks), 2, N(9, out));
}
CALL(mmrec_metric_auc) {
    static const float scores[4] = {0.1f, 0.4f, 0.35f, 0.8f}, labels[4] = {0, 0, 1, 1};
    double auc;
    return mmrec_metric_auc(N(0, scores), N(1, labels), 4, N(3, &auc));
}
CALL(mmrec_metric_gauc) {
    static const float scores[4] = {0.1f, 0.4f, 0.35f, 0.8f}, labels[4] = {0, 1, 0, 1};
    static const int64_t groups[4] = {7, 7, 9, 9};
    double g;
    size_t kept;
    return mmrec_metric_gauc(N(0, scores), N(1, labels), N(2, groups), 4, N(4, &g), N(5, &kept));
}
CALL(mmrec_eval_full_auc) {
    double mean, weighted;
    int64_t users;
    return mmrec_eval_full_auc(N(0, f->buf), N(1, f->buf2), U, I, D, N(5, f->train),
                               N(6, f->test), N(7, &mean), N(8, &weighted), N(9, &users));
}
CALL(mmrec_eval_zero_shot) {
    mmrec_rank_metrics out[2];
    fx_out_size(out);
    return mmrec_eval_zero_shot(N(0, mt_feat), I, D, N(3, f->train), N(4, mt_ks), 2, N(6, out));
}
CALL(mmrec_eval_item_cf) {
    mmrec_rank_metrics out[2];
    fx_out_size(out);
    return mmrec_eval_item_cf(N(0, mt_feat), I, D, N(3, f->train), N(4, mt_ks), 2, N(6, out));
}
CALL(mmrec_eval_mask_modality) {
    return mmrec_eval_mask_modality(N(0, f->buf), I, D, 0, 2, 0.5, 11);
}

/* model.h */
CALL(mmrec_model_create) { return mmrec_model_create(N(0, &f->made_model)); }
CALL(mmrec_model_seed) { return mmrec_model_seed(N(0, f->model), 5); }
CALL(mmrec_model_add_param) {
    return mmrec_model_add_param(N(0, f->model), N(1, "p"), 2, N(3, f->shape), N(4, &f->t_out));
}
CALL(mmrec_model_param) {
    return mmrec_model_param(N(0, f->model), N(1, "lin.weight"), N(2, &f->t_out));
}
CALL(mmrec_model_num_params) {
    size_t n;
    return mmrec_model_num_params(N(0, f->model), N(1, &n));
}
CALL(mmrec_model_param_at) {
    const char *name;
    return mmrec_model_param_at(N(0, f->model), 0, N(2, &name), N(3, &f->t_out));
}
CALL(mmrec_model_freeze) {
    size_t n;
    return mmrec_model_freeze(N(0, f->model), N(1, "lin."), N(2, &n));
}
CALL(mmrec_model_unfreeze) {
    size_t n;
    return mmrec_model_unfreeze(N(0, f->model), N(1, "lin."), N(2, &n));
}
CALL(mmrec_model_param_count) {
    size_t tr, tot;
    return mmrec_model_param_count(N(0, f->model), N(1, &tr), N(2, &tot));
}
CALL(mmrec_model_zero_grad) { return mmrec_model_zero_grad(N(0, f->model)); }
/* The flat buffer calls: a buffer of the trainable element count. */
#define FLAT_CALL(fn)                                                                   \
    CALL(fn) {                                                                          \
        int64_t n = fx_trainable(f);                                                    \
        float *v = calloc((size_t)n, sizeof *v);                                        \
        mmrec_status s = fn(N(0, f->model), N(1, v), (size_t)n);                        \
        free(v);                                                                        \
        return s;                                                                       \
    }
FLAT_CALL(mmrec_model_export_params)
FLAT_CALL(mmrec_model_import_params)
FLAT_CALL(mmrec_model_export_grads)
FLAT_CALL(mmrec_model_import_grads)
/* The row-sparse calls act on the table of f->emb. */
static size_t fx_emb_index(fx *f) {
    size_t n;
    MT_OK(mmrec_model_num_params(f->model, &n));
    for (size_t i = 0; i < n; i++) {
        const char *name;
        mmrec_tensor *t;
        MT_OK(mmrec_model_param_at(f->model, i, &name, &t));
        if (strcmp(name, "emb.weight") == 0) return i;
    }
    ck_abort_msg("no emb.weight");
    return 0;
}
CALL(mmrec_model_param_row_sparse) {
    int flag;
    return mmrec_model_param_row_sparse(N(0, f->model), fx_emb_index(f), N(2, &flag));
}
CALL(mmrec_model_grad_rows) {
    int64_t rows[10];
    size_t count;
    return mmrec_model_grad_rows(N(0, f->model), fx_emb_index(f), N(2, rows), 10, N(4, &count));
}
CALL(mmrec_model_set_grad_rows) {
    static const int64_t rows[2] = {3, 1};
    float src[2 * D] = {0};
    return mmrec_model_set_grad_rows(N(0, f->model), fx_emb_index(f), N(2, rows), 2, N(4, src));
}
/* The dense flat buffer: the trainable elements without the tables'. */
static int64_t fx_dense(fx *f) {
    size_t n, tables = 0;
    MT_OK(mmrec_model_num_params(f->model, &n));
    for (size_t i = 0; i < n; i++) {
        int row_sparse;
        mmrec_tensor *t;
        size_t numel;
        MT_OK(mmrec_model_param_row_sparse(f->model, i, &row_sparse));
        MT_OK(mmrec_model_param_at(f->model, i, NULL, &t));
        MT_OK(mmrec_tensor_numel(t, &numel));
        if (row_sparse) tables += numel;
    }
    return fx_trainable(f) - (int64_t)tables;
}
#define DENSE_CALL(fn)                                                                  \
    CALL(fn) {                                                                          \
        int64_t n = fx_dense(f);                                                        \
        float *v = calloc((size_t)n, sizeof *v);                                        \
        mmrec_status s = fn(N(0, f->model), N(1, v), (size_t)n);                        \
        free(v);                                                                        \
        return s;                                                                       \
    }
DENSE_CALL(mmrec_model_export_dense_grads)
DENSE_CALL(mmrec_model_import_dense_grads)
CALL(mmrec_model_save) { return mmrec_model_save(N(0, f->model), N(1, mt_file(3, "m.mmrc"))); }
CALL(mmrec_model_load) {
    MT_OK(mmrec_model_save(f->model, mt_file(3, "m.mmrc")));
    return mmrec_model_load(N(0, f->model), N(1, mt_file(3, "m.mmrc")));
}

/* iisan.h: the encoder reads f->seq [2, 3, D] as 3 layers of width D */
static mmrec_module *fx_iisan(fx *f) {
    mmrec_iisan_item_encoder_config c;
    MT_OK(mmrec_iisan_item_encoder_config_init(&c));
    c.hidden_dim = D;
    c.dim = 2;
    c.adapter_dim = 2;
    c.num_layers = 3;
    mmrec_module *m;
    MT_OK(mmrec_iisan_item_encoder_create(f->model, "iisan", &c, &m));
    return m;
}
CALL(mmrec_iisan_item_encoder_config_init_sized) {
    mmrec_iisan_item_encoder_config c;
    return mmrec_iisan_item_encoder_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_iisan_item_encoder_create) {
    mmrec_iisan_item_encoder_config c;
    MT_OK(mmrec_iisan_item_encoder_config_init(&c));
    c.hidden_dim = D;
    c.dim = c.adapter_dim = 2;
    return mmrec_iisan_item_encoder_create(N(0, f->model), N(1, "new"), N(2, &c),
                                           N(3, &f->made_module));
}
CALL(mmrec_iisan_item_encoder_forward) {
    mmrec_module *m = fx_iisan(f);
    return mmrec_iisan_item_encoder_forward(N(0, m), N(1, f->tape), N(2, f->seq), N(3, f->seq),
                                            N(4, &f->t_out));
}

/* data.h: the corpus sampler */
static const float fx_sampler_w[3] = {1, 0, 2};
CALL(mmrec_item_sampler_config_init_sized) {
    mmrec_item_sampler_config c;
    return mmrec_item_sampler_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_item_sampler_create) {
    mmrec_item_sampler_config c;
    MT_OK(mmrec_item_sampler_config_init(&c));
    c.num_items = 3;
    c.weights = fx_sampler_w;
    return mmrec_item_sampler_create(N(0, &c), N(1, &f->made_sampler));
}
static mmrec_item_sampler *fx_sampler(fx *f) {
    mmrec_item_sampler_config c;
    MT_OK(mmrec_item_sampler_config_init(&c));
    c.num_items = 3;
    MT_OK(mmrec_item_sampler_create(&c, &f->made_sampler));
    return f->made_sampler;
}
CALL(mmrec_item_sampler_draw) {
    int64_t ids[2];
    return mmrec_item_sampler_draw(N(0, fx_sampler(f)), N(1, ids), 2);
}
CALL(mmrec_item_sampler_probability) {
    float p[2];
    return mmrec_item_sampler_probability(N(0, fx_sampler(f)), N(1, mt_ids2), 2, N(3, p));
}

/* twotower.h */
CALL(mmrec_twotower_config_init_sized) {
    mmrec_twotower_config c;
    return mmrec_twotower_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_twotower_score) {
    return mmrec_twotower_score(N(0, f->tape), N(1, f->a), N(2, f->b), NULL, N(4, &f->t_out));
}
CALL(mmrec_twotower_score_paired) {
    return mmrec_twotower_score_paired(N(0, f->tape), N(1, f->a), N(2, f->b), NULL,
                                       N(4, &f->t_out));
}
CALL(mmrec_twotower_serving_vectors) {
    return mmrec_twotower_serving_vectors(NULL, MMREC_TOWER_ITEM, N(2, mt_feat), 2, D,
                                          N(5, f->buf));
}
static mmrec_module *fx_freq(fx *f) {
    mmrec_freq_estimator_config c;
    MT_OK(mmrec_freq_estimator_config_init(&c));
    c.num_buckets = 16;
    mmrec_module *m;
    MT_OK(mmrec_freq_estimator_create(f->model, "freq", &c, &m));
    return m;
}
static const int64_t fx_freq_ids[2] = {3, 5};
CALL(mmrec_freq_estimator_config_init_sized) {
    mmrec_freq_estimator_config c;
    return mmrec_freq_estimator_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_freq_estimator_create) {
    mmrec_freq_estimator_config c;
    MT_OK(mmrec_freq_estimator_config_init(&c));
    c.num_buckets = 16;
    return mmrec_freq_estimator_create(N(0, f->model), N(1, "new"), N(2, &c),
                                       N(3, &f->made_module));
}
CALL(mmrec_freq_estimator_update) {
    mmrec_module *m = fx_freq(f);
    return mmrec_freq_estimator_update(N(0, m), N(1, fx_freq_ids), 2, 1);
}
CALL(mmrec_freq_estimator_set_counts) {
    mmrec_freq_estimator_config c;
    MT_OK(mmrec_freq_estimator_config_init(&c));
    c.num_buckets = 16;
    c.num_items = 2;
    mmrec_module *m;
    MT_OK(mmrec_freq_estimator_create(f->model, "freq_static", &c, &m));
    static const float counts[2] = {1, 3};
    return mmrec_freq_estimator_set_counts(N(0, m), N(1, counts), 2);
}
CALL(mmrec_freq_estimator_probability) {
    mmrec_module *m = fx_freq(f);
    float p[2];
    return mmrec_freq_estimator_probability(N(0, m), N(1, fx_freq_ids), 2, N(3, p));
}

/* mvke.h: dim D over the 3 fields of f->seq */
static mmrec_module *fx_mvke(fx *f) {
    mmrec_mvke_config c;
    MT_OK(mmrec_mvke_config_init(&c));
    c.dim = D;
    c.num_fields = 3;
    mmrec_module *m;
    MT_OK(mmrec_mvke_create(f->model, "mvke", &c, &m));
    return m;
}
static mmrec_tensor *fx_mvke_experts(fx *f, mmrec_module *m) {
    mmrec_tensor *e;
    MT_OK(mmrec_mvke_forward(m, f->tape, f->seq, &e));
    return e;
}
CALL(mmrec_mvke_config_init_sized) {
    mmrec_mvke_config c;
    return mmrec_mvke_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_mvke_create) {
    mmrec_mvke_config c;
    MT_OK(mmrec_mvke_config_init(&c));
    c.dim = D;
    c.num_fields = 3;
    return mmrec_mvke_create(N(0, f->model), N(1, "new"), N(2, &c), N(3, &f->made_module));
}
CALL(mmrec_mvke_forward) {
    mmrec_module *m = fx_mvke(f);
    return mmrec_mvke_forward(N(0, m), N(1, f->tape), N(2, f->seq), N(3, &f->t_out));
}
CALL(mmrec_mvke_gate) {
    mmrec_module *m = fx_mvke(f);
    mmrec_tensor *e = fx_mvke_experts(f, m);
    return mmrec_mvke_gate(N(0, m), N(1, f->tape), N(2, e), N(3, f->b), 1, N(5, &f->t_out));
}
CALL(mmrec_mvke_score) {
    mmrec_module *m = fx_mvke(f);
    mmrec_tensor *e = fx_mvke_experts(f, m);
    return mmrec_mvke_score(N(0, m), N(1, f->tape), N(2, e), N(3, f->b), 0, N(5, &f->t_out));
}
CALL(mmrec_mvke_loss) {
    mmrec_module *m = fx_mvke(f);
    mmrec_tensor *e = fx_mvke_experts(f, m), *y;
    int64_t shape[1] = {2};
    MT_OK(mmrec_tape_tensor(f->tape, 1, shape, 0, &y));
    mmrec_tensor *tags[2] = {f->a, f->b}, *labels[2] = {y, y};
    static const float weights[2] = {1.0f, 0.5f};
    return mmrec_mvke_loss(N(0, m), N(1, f->tape), N(2, e), N(3, tags), N(4, labels),
                           N(5, weights), 2, N(7, &f->t_out));
}
CALL(mmrec_mvke_serving_dim) {
    mmrec_module *m = fx_mvke(f);
    size_t width;
    return mmrec_mvke_serving_dim(N(0, m), 1, N(2, &width));
}
CALL(mmrec_mvke_export_user) {
    mmrec_module *m = fx_mvke(f);
    mmrec_tensor *e = fx_mvke_experts(f, m);
    float out[2 * 4 * D];
    return mmrec_mvke_export_user(N(0, m), N(1, e), 1, N(3, out), 2 * 4 * D);
}
CALL(mmrec_mvke_export_tag) {
    mmrec_module *m = fx_mvke(f);
    float out[2 * 3 * D];
    return mmrec_mvke_export_tag(N(0, m), N(1, f->b), 0, N(3, out), 2 * 3 * D);
}
/* inttower.h */
static mmrec_module *fx_inttower(fx *f) {
    mmrec_inttower_config c;
    MT_OK(mmrec_inttower_config_init(&c));
    static const int64_t hidden[2] = {5, 3};
    c.user_fields = 2;
    c.item_fields = 1;
    c.embedding_dim = D;
    c.hidden_sizes = hidden;
    c.num_hidden = 2;
    c.user_heads = 2;
    c.item_heads = 3;
    c.field_dim = 2;
    mmrec_module *m;
    MT_OK(mmrec_inttower_create(f->model, "it", &c, &m));
    return m;
}
/* user_fe [2, 4, 2] and item_fe [2, 3, 2] of fx_inttower's towers */
static void fx_inttower_fe(fx *f, mmrec_module *m, mmrec_tensor **user_fe, mmrec_tensor **item_fe) {
    int64_t su[3] = {2, 2, D}, si[3] = {2, 1, D};
    mmrec_tensor *ue = fx_tape_tensor(f, 3, su, 0), *ie = fx_tape_tensor(f, 3, si, 0);
    MT_OK(mmrec_inttower_user_forward(m, f->tape, ue, NULL, user_fe, NULL));
    MT_OK(mmrec_inttower_item_forward(m, f->tape, ie, NULL, item_fe, NULL));
}
CALL(mmrec_inttower_config_init_sized) {
    mmrec_inttower_config c;
    return mmrec_inttower_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_inttower_create) {
    mmrec_inttower_config c;
    MT_OK(mmrec_inttower_config_init(&c));
    c.user_fields = 2;
    c.item_fields = 1;
    c.embedding_dim = D;
    return mmrec_inttower_create(N(0, f->model), N(1, "new"), N(2, &c), N(3, &f->made_module));
}
CALL(mmrec_inttower_user_forward) {
    mmrec_module *m = fx_inttower(f);
    int64_t su[3] = {2, 2, D};
    mmrec_tensor *ue = fx_tape_tensor(f, 3, su, 0);
    return mmrec_inttower_user_forward(N(0, m), N(1, f->tape), N(2, ue), N(3, NULL),
                                       N(4, &f->t_out), N(5, &f->t_out2));
}
CALL(mmrec_inttower_item_forward) {
    mmrec_module *m = fx_inttower(f);
    int64_t si[3] = {2, 1, D};
    mmrec_tensor *ie = fx_tape_tensor(f, 3, si, 0);
    return mmrec_inttower_item_forward(N(0, m), N(1, f->tape), N(2, ie), N(3, NULL),
                                       N(4, &f->t_out), N(5, &f->t_out2));
}
CALL(mmrec_inttower_score) {
    mmrec_module *m = fx_inttower(f);
    mmrec_tensor *u, *i;
    fx_inttower_fe(f, m, &u, &i);
    return mmrec_inttower_score(N(0, m), N(1, f->tape), N(2, u), N(3, i), N(4, &f->t_out));
}
CALL(mmrec_inttower_score_paired) {
    mmrec_module *m = fx_inttower(f);
    mmrec_tensor *u, *i;
    fx_inttower_fe(f, m, &u, &i);
    return mmrec_inttower_score_paired(N(0, m), N(1, f->tape), N(2, u), N(3, i),
                                       N(4, &f->t_out));
}
CALL(mmrec_distill_logits_config_init_sized) {
    mmrec_distill_logits_config c;
    return mmrec_distill_logits_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_distill_logits) {
    return mmrec_distill_logits(N(0, f->tape), N(1, f->a), N(2, f->b), NULL, N(4, &f->t_out));
}
CALL(mmrec_distill_kl_config_init_sized) {
    mmrec_distill_kl_config c;
    return mmrec_distill_kl_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_distill_kl) {
    return mmrec_distill_kl(N(0, f->tape), N(1, f->a), N(2, f->b), NULL, N(4, &f->t_out));
}
CALL(mmrec_distill_gam_config_init_sized) {
    mmrec_distill_gam_config c;
    return mmrec_distill_gam_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_distill_gam) {
    return mmrec_distill_gam(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, f->a), N(4, f->b), NULL,
                             N(6, &f->t_out));
}
CALL(mmrec_distill_attn_config_init_sized) {
    mmrec_distill_attn_config c;
    return mmrec_distill_attn_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_distill_attn) {
    return mmrec_distill_attn(N(0, f->tape), N(1, f->ones22), N(2, f->ones22), NULL,
                              N(4, &f->t_out));
}
CALL(mmrec_inttower_cir_config_init_sized) {
    mmrec_inttower_cir_config c;
    return mmrec_inttower_cir_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_loss_inttower_cir) {
    static const float labels[2] = {1, 0};
    mmrec_inttower_cir_config c;
    MT_OK(mmrec_inttower_cir_config_init(&c));
    return mmrec_loss_inttower_cir(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, labels), 2,
                                   N(5, &c), N(6, &f->t_out));
}

/* index.h */
CALL(mmrec_index_config_init_sized) {
    mmrec_index_config c;
    return mmrec_index_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_index_filter_init_sized) {
    mmrec_index_filter c;
    return mmrec_index_filter_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_index_create) {
    mmrec_index_config c;
    MT_OK(mmrec_index_config_init(&c));
    c.storage = MMREC_INDEX_F16;
    return mmrec_index_create(N(0, mt_feat), N(1, mt_index_ids), I, D, N(4, &c),
                              N(5, &f->made_index));
}
CALL(mmrec_index_create_from_cache) {
    mmrec_index_config c;
    MT_OK(mmrec_index_config_init(&c));
    c.vectors_per_item = 2;
    return mmrec_index_create_from_cache(N(0, f->cache), N(1, "a"), N(2, &c),
                                         N(3, &f->made_index));
}
CALL(mmrec_index_save) { return mmrec_index_save(N(0, f->index), N(1, mt_file(3, "s.mmix"))); }
CALL(mmrec_index_open) { return mmrec_index_open(N(0, mt_index_path), N(1, &f->made_index)); }
CALL(mmrec_index_refresh) {
    MT_OK(mmrec_index_open(mt_index_path, &f->made_index));
    return mmrec_index_refresh(N(0, f->index), N(1, f->made_index));
}
CALL(mmrec_index_info) {
    int64_t n, d, v;
    mmrec_index_metric m;
    mmrec_index_storage s;
    return mmrec_index_info(N(0, f->index), N(1, &n), N(2, &d), N(3, &v), N(4, &m), N(5, &s));
}
CALL(mmrec_index_search) {
    mmrec_index_filter flt;
    MT_OK(mmrec_index_filter_init(&flt));
    flt.exclude = mt_index_ids;
    flt.num_exclude = 1;
    int64_t ids[2];
    float scores[2];
    size_t counts[1];
    return mmrec_index_search(N(0, f->index), N(1, f->buf), 1, D, 2, N(5, &flt), N(6, ids),
                              N(7, scores), N(8, counts));
}
CALL(mmrec_index_search_multi) {
    int64_t ids[4];
    float scores[4];
    size_t counts[2];
    return mmrec_index_search_multi(N(0, f->index), N(1, f->buf), 2, 2, D, 2, N(6, NULL),
                                    N(7, ids), N(8, scores), N(9, counts));
}

/* modules.h */
CALL(mmrec_linear_config_init_sized) {
    mmrec_linear_config c;
    return mmrec_linear_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_linear_create) {
    mmrec_linear_config c;
    MT_OK(mmrec_linear_config_init(&c));
    c.in_dim = c.out_dim = 2;
    return mmrec_linear_create(N(0, f->model), N(1, "new"), N(2, &c), N(3, &f->made_module));
}
CALL(mmrec_linear_forward) {
    return mmrec_linear_forward(N(0, f->lin), N(1, f->tape), N(2, f->a), N(3, &f->t_out));
}
CALL(mmrec_adapter_config_init_sized) {
    mmrec_adapter_config c;
    return mmrec_adapter_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_adapter_create) {
    mmrec_adapter_config c;
    MT_OK(mmrec_adapter_config_init(&c));
    c.dim = D;
    c.bottleneck_dim = 2;
    return mmrec_adapter_create(N(0, f->model), N(1, "new"), N(2, &c), N(3, &f->made_module));
}
CALL(mmrec_adapter_forward) {
    mmrec_adapter_config c;
    MT_OK(mmrec_adapter_config_init(&c));
    c.dim = D;
    mmrec_module *m;
    MT_OK(mmrec_adapter_create(f->model, "adapter", &c, &m));
    return mmrec_adapter_forward(N(0, m), N(1, f->tape), N(2, f->a), N(3, &f->t_out));
}
CALL(mmrec_lora_config_init_sized) {
    mmrec_lora_config c;
    return mmrec_lora_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_lora_attach) {
    mmrec_lora_config c;
    MT_OK(mmrec_lora_config_init(&c));
    c.rank = 1;
    return mmrec_lora_attach(N(0, f->lin_plain), N(1, &c));
}
CALL(mmrec_lora_merge) { return mmrec_lora_merge(N(0, f->lin_lora)); }
CALL(mmrec_lora_unmerge) {
    MT_OK(mmrec_lora_merge(f->lin_lora));
    return mmrec_lora_unmerge(N(0, f->lin_lora));
}
CALL(mmrec_mlp_config_init_sized) {
    mmrec_mlp_config c;
    return mmrec_mlp_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_mlp_create) {
    static const int64_t sizes[2] = {2, 2};
    mmrec_mlp_config c;
    MT_OK(mmrec_mlp_config_init(&c));
    c.sizes = sizes;
    c.num_sizes = 2;
    return mmrec_mlp_create(N(0, f->model), N(1, "new"), N(2, &c), N(3, &f->made_module));
}
CALL(mmrec_mlp_forward) {
    return mmrec_mlp_forward(N(0, f->mlp), N(1, f->tape), N(2, f->a), N(3, &f->t_out));
}
CALL(mmrec_embedding_config_init_sized) {
    mmrec_embedding_config c;
    return mmrec_embedding_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_embedding_create) {
    mmrec_embedding_config c;
    MT_OK(mmrec_embedding_config_init(&c));
    c.num_rows = c.dim = 2;
    return mmrec_embedding_create(N(0, f->model), N(1, "new"), N(2, &c), N(3, &f->made_module));
}
CALL(mmrec_embedding_forward) {
    return mmrec_embedding_forward(N(0, f->emb), N(1, f->tape), N(2, mt_ids2), 2,
                                   N(4, &f->t_out));
}
CALL(mmrec_layernorm_config_init_sized) {
    mmrec_layernorm_config c;
    return mmrec_layernorm_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_layernorm_create) {
    mmrec_layernorm_config c;
    MT_OK(mmrec_layernorm_config_init(&c));
    c.dim = 2;
    return mmrec_layernorm_create(N(0, f->model), N(1, "new"), N(2, &c), N(3, &f->made_module));
}
CALL(mmrec_layernorm_forward) {
    return mmrec_layernorm_forward(N(0, f->ln), N(1, f->tape), N(2, f->a), N(3, &f->t_out));
}
CALL(mmrec_mha_config_init_sized) {
    mmrec_mha_config c;
    return mmrec_mha_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_mha_create) {
    mmrec_mha_config c;
    MT_OK(mmrec_mha_config_init(&c));
    c.dim = 2;
    c.num_heads = 1;
    return mmrec_mha_create(N(0, f->model), N(1, "new"), N(2, &c), N(3, &f->made_module));
}
CALL(mmrec_mha_forward) {
    return mmrec_mha_forward(N(0, f->mha), N(1, f->tape), N(2, f->seq), N(3, f->ones23),
                             N(4, &f->t_out));
}
CALL(mmrec_mha_forward_probs) {
    return mmrec_mha_forward_probs(N(0, f->mha), N(1, f->tape), N(2, f->seq), N(3, f->ones23),
                                   MMREC_ATTN_PROBS_AVERAGE, N(5, &f->t_out), N(6, &f->t_out2));
}
CALL(mmrec_transformer_config_init_sized) {
    mmrec_transformer_config c;
    return mmrec_transformer_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_transformer_create) {
    mmrec_transformer_config c;
    MT_OK(mmrec_transformer_config_init(&c));
    c.dim = 2;
    c.num_heads = 1;
    return mmrec_transformer_create(N(0, f->model), N(1, "new"), N(2, &c),
                                    N(3, &f->made_module));
}
CALL(mmrec_transformer_forward) {
    return mmrec_transformer_forward(N(0, f->trm), N(1, f->tape), N(2, f->seq), N(3, f->ones23),
                                     N(4, &f->t_out));
}
CALL(mmrec_transformer_forward_probs) {
    return mmrec_transformer_forward_probs(N(0, f->trm), N(1, f->tape), N(2, f->seq),
                                           N(3, f->ones23), 0, N(5, &f->t_out),
                                           N(6, &f->t_out2));
}
CALL(mmrec_transformer_forward_rows) {
    return mmrec_transformer_forward_rows(N(0, f->trm), N(1, f->tape), N(2, f->seq),
                                          N(3, f->ones23), 1, N(5, &f->t_out));
}

/* the sequence encoder reads f->seq [2, 3, D] with the mask f->ones23 */
static mmrec_module *fx_seqenc(fx *f) {
    mmrec_sequence_encoder_config c;
    MT_OK(mmrec_sequence_encoder_config_init(&c));
    c.dim = D;
    c.max_length = 3;
    c.num_layers = 1;
    mmrec_module *m;
    MT_OK(mmrec_sequence_encoder_create(f->model, "seqenc", &c, &m));
    return m;
}
CALL(mmrec_sequence_encoder_config_init_sized) {
    mmrec_sequence_encoder_config c;
    return mmrec_sequence_encoder_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_sequence_encoder_create) {
    mmrec_sequence_encoder_config c;
    MT_OK(mmrec_sequence_encoder_config_init(&c));
    c.dim = 2;
    c.max_length = 4;
    return mmrec_sequence_encoder_create(N(0, f->model), N(1, "new"), N(2, &c),
                                         N(3, &f->made_module));
}
CALL(mmrec_sequence_encoder_forward) {
    mmrec_module *m = fx_seqenc(f);
    return mmrec_sequence_encoder_forward(N(0, m), N(1, f->tape), N(2, f->seq), N(3, f->ones23),
                                          N(4, &f->t_out), N(5, &f->t_out2));
}

/* ops.h */
CALL(mmrec_matmul) {
    return mmrec_matmul(N(0, f->tape), N(1, f->a), N(2, f->w), 0, N(4, &f->t_out));
}
CALL(mmrec_add) { return mmrec_add(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, &f->t_out)); }
CALL(mmrec_sub) { return mmrec_sub(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, &f->t_out)); }
CALL(mmrec_mul) { return mmrec_mul(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, &f->t_out)); }
CALL(mmrec_scale) { return mmrec_scale(N(0, f->tape), N(1, f->a), 2.0f, N(3, &f->t_out)); }
CALL(mmrec_bias_add) {
    mmrec_tensor *bias;
    MT_OK(mmrec_model_param(f->model, "ln.bias", &bias));
    return mmrec_bias_add(N(0, f->tape), N(1, f->a), N(2, bias), N(3, &f->t_out));
}
CALL(mmrec_relu) { return mmrec_relu(N(0, f->tape), N(1, f->a), N(2, &f->t_out)); }
CALL(mmrec_gelu) {
    return mmrec_gelu(N(0, f->tape), N(1, f->a), MMREC_GELU_TANH, N(3, &f->t_out));
}
CALL(mmrec_sigmoid) { return mmrec_sigmoid(N(0, f->tape), N(1, f->a), N(2, &f->t_out)); }
CALL(mmrec_tanh) { return mmrec_tanh(N(0, f->tape), N(1, f->a), N(2, &f->t_out)); }
CALL(mmrec_softmax) {
    return mmrec_softmax(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, &f->t_out));
}
CALL(mmrec_log_softmax) {
    return mmrec_log_softmax(N(0, f->tape), N(1, f->a), N(2, f->b), N(3, &f->t_out));
}
CALL(mmrec_layer_norm) {
    mmrec_tensor *w, *b;
    MT_OK(mmrec_model_param(f->model, "ln.weight", &w));
    MT_OK(mmrec_model_param(f->model, "ln.bias", &b));
    return mmrec_layer_norm(N(0, f->tape), N(1, f->a), N(2, w), N(3, b), 1e-5f,
                            N(5, &f->t_out));
}
CALL(mmrec_dropout) { return mmrec_dropout(N(0, f->tape), N(1, f->a), 0.5f, N(3, &f->t_out)); }
CALL(mmrec_concat) {
    mmrec_tensor *xs[2] = {f->a, f->b};
    return mmrec_concat(N(0, f->tape), N(1, xs), 2, 0, N(4, &f->t_out));
}
CALL(mmrec_slice) { return mmrec_slice(N(0, f->tape), N(1, f->a), 1, 1, 2, N(5, &f->t_out)); }
CALL(mmrec_reshape) {
    static const int64_t shape[2] = {D, 2};
    return mmrec_reshape(N(0, f->tape), N(1, f->a), 2, N(3, shape), N(4, &f->t_out));
}
CALL(mmrec_transpose) { return mmrec_transpose(N(0, f->tape), N(1, f->a), N(2, &f->t_out)); }
CALL(mmrec_sum) { return mmrec_sum(N(0, f->tape), N(1, f->a), 1, N(3, &f->t_out)); }
CALL(mmrec_mean) { return mmrec_mean(N(0, f->tape), N(1, f->a), 0, N(3, &f->t_out)); }
CALL(mmrec_l2_normalize) {
    return mmrec_l2_normalize(N(0, f->tape), N(1, f->a), 1e-12f, N(3, &f->t_out));
}
CALL(mmrec_cosine_similarity) {
    return mmrec_cosine_similarity(N(0, f->tape), N(1, f->a), N(2, f->b), 1e-8f,
                                   N(4, &f->t_out));
}
CALL(mmrec_maxsim) {
    return mmrec_maxsim(N(0, f->tape), N(1, f->seq), N(2, f->ones23), N(3, f->seq),
                        N(4, f->ones23), N(5, &f->t_out));
}
CALL(mmrec_maxsim_paired) {
    return mmrec_maxsim_paired(N(0, f->tape), N(1, f->seq), N(2, f->ones23), N(3, f->seq),
                               N(4, f->ones23), N(5, &f->t_out));
}
CALL(mmrec_gather_rows) {
    return mmrec_gather_rows(N(0, f->tape), N(1, f->table), N(2, mt_ids2), 2, N(4, &f->t_out));
}

/* optim.h */
CALL(mmrec_optimizer_config_init_sized) {
    mmrec_optimizer_config c;
    return mmrec_optimizer_config_init_sized(N(0, &c), sizeof c);
}
CALL(mmrec_optimizer_create) {
    mmrec_optimizer_config c;
    MT_OK(mmrec_optimizer_config_init(&c));
    return mmrec_optimizer_create(N(0, f->model), N(1, &c), N(2, &f->made_opt));
}
CALL(mmrec_optimizer_step) { return mmrec_optimizer_step(N(0, f->opt)); }
CALL(mmrec_optimizer_add_group) {
    int g;
    return mmrec_optimizer_add_group(N(0, f->opt), N(1, "lin."), 0.1f, 0.0f, N(4, &g));
}
CALL(mmrec_optimizer_set_lr) { return mmrec_optimizer_set_lr(N(0, f->opt), 0, 0.1f); }
CALL(mmrec_optimizer_get_lr) {
    float lr;
    return mmrec_optimizer_get_lr(N(0, f->opt), 0, N(2, &lr));
}
CALL(mmrec_optimizer_step_count) {
    uint64_t n;
    return mmrec_optimizer_step_count(N(0, f->opt), N(1, &n));
}
CALL(mmrec_optimizer_skipped_steps) {
    uint64_t n;
    return mmrec_optimizer_skipped_steps(N(0, f->opt), N(1, &n));
}
CALL(mmrec_optimizer_last_grad_norm) {
    float g;
    return mmrec_optimizer_last_grad_norm(N(0, f->opt), N(1, &g));
}
CALL(mmrec_checkpoint_save) {
    return mmrec_checkpoint_save(N(0, f->model), N(1, f->opt), N(2, mt_file(3, "c.mmrc")));
}
CALL(mmrec_checkpoint_load) {
    MT_OK(mmrec_checkpoint_save(f->model, f->opt, mt_file(3, "c.mmrc")));
    return mmrec_checkpoint_load(N(0, f->model), N(1, f->opt), N(2, mt_file(3, "c.mmrc")));
}

/* tape.h */
CALL(mmrec_tape_create) { return mmrec_tape_create(N(0, &f->made_tape)); }
CALL(mmrec_tape_set_mode) {
    MT_OK(mmrec_tape_create(&f->made_tape));
    return mmrec_tape_set_mode(N(0, f->made_tape), MMREC_TAPE_INFERENCE);
}
CALL(mmrec_tape_get_mode) {
    mmrec_tape_mode m;
    return mmrec_tape_get_mode(N(0, f->tape), N(1, &m));
}
CALL(mmrec_tape_seed) { return mmrec_tape_seed(N(0, f->tape), 9); }
CALL(mmrec_tape_backward) {
    mmrec_tensor *loss = fx_loss(f);
    return mmrec_tape_backward(N(0, f->tape), N(1, loss));
}
CALL(mmrec_tape_backward_from) {
    static const float one[1] = {1.0f};
    mmrec_tensor *loss = fx_loss(f);
    return mmrec_tape_backward_from(N(0, f->tape), N(1, loss), N(2, one));
}
CALL(mmrec_tape_memory) {
    size_t cap, hw;
    return mmrec_tape_memory(N(0, f->tape), N(1, &cap), N(2, &hw));
}
CALL(mmrec_tape_generation) {
    uint64_t g;
    return mmrec_tape_generation(N(0, f->tape), N(1, &g));
}
CALL(mmrec_tape_tensor) {
    return mmrec_tape_tensor(N(0, f->tape), 2, N(2, f->shape), 0, N(4, &f->t_out));
}
CALL(mmrec_tape_wrap) {
    return mmrec_tape_wrap(N(0, f->tape), N(1, f->buf), 2, N(3, f->shape), 0, N(5, &f->t_out));
}

/* tensor.h */
CALL(mmrec_tensor_create) {
    return mmrec_tensor_create(2, N(1, f->shape), N(2, &f->made_tensor));
}
CALL(mmrec_tensor_wrap) {
    return mmrec_tensor_wrap(N(0, f->buf2), 2, N(2, f->shape), 0, N(4, &f->made_tensor));
}
CALL(mmrec_tensor_wrap_ex) {
    return mmrec_tensor_wrap_ex(N(0, f->buf2), 2, N(2, f->shape), 0, N(4, mt_release_noop),
                                N(5, f), N(6, &f->made_tensor));
}
CALL(mmrec_tensor_set_data) { return mmrec_tensor_set_data(N(0, f->wrap), N(1, f->buf2)); }
CALL(mmrec_tensor_shape) {
    int ndim;
    int64_t shape[MMREC_MAX_DIMS];
    return mmrec_tensor_shape(N(0, f->a), N(1, &ndim), N(2, shape));
}
CALL(mmrec_tensor_numel) {
    size_t n;
    return mmrec_tensor_numel(N(0, f->a), N(1, &n));
}
CALL(mmrec_tensor_generation) {
    uint64_t g;
    return mmrec_tensor_generation(N(0, f->a), N(1, &g));
}
CALL(mmrec_tensor_data) {
    float *d;
    return mmrec_tensor_data(N(0, f->a), N(1, &d));
}
CALL(mmrec_tensor_data_const) {
    const float *d;
    return mmrec_tensor_data_const(N(0, f->a), N(1, &d));
}
CALL(mmrec_tensor_grad) {
    const float *g;
    return mmrec_tensor_grad(N(0, f->a), N(1, &g));
}
CALL(mmrec_tensor_copy_to) { return mmrec_tensor_copy_to(N(0, f->a), N(1, f->buf), 2 * D); }
CALL(mmrec_tensor_copy_from) {
    return mmrec_tensor_copy_from(N(0, f->a), N(1, f->buf), 2 * D);
}

/* ---- the entries ---- */

typedef struct mt_entry {
    const char *name;
    mmrec_status (*call)(fx *f, int k);
    const char *nullable; /* space-separated parameters the header lets be NULL */
    const char *exempt;   /* why the function has no NULL to check */
} mt_entry;

#define E(fn) {#fn, c_##fn, "", NULL}
#define E_NULLABLE(fn, params) {#fn, c_##fn, params, NULL}
#define EXEMPT(fn, why) {#fn, NULL, NULL, why}
#define DESTROYER "returns void; NULL is a no-op"
#define NO_POINTER "takes no pointer"

static const mt_entry mt_entries[] = {
    /* alignrec.h */
    E(mmrec_loss_infonce),
    E(mmrec_loss_anti_collapse),
    E(mmrec_loss_ui_alignment),
    E(mmrec_alignrec_aggregate_users),
    E(mmrec_alignrec_config_init_sized),
    E_NULLABLE(mmrec_alignrec_create, "out"),
    E(mmrec_alignrec_views_init_sized),
    E(mmrec_alignrec_forward), /* item_graph may be NULL only with mm_layers 0 */
    /* cache.h */
    E(mmrec_cache_writer_create),
    E(mmrec_cache_writer_add),
    E(mmrec_cache_writer_add_npy),
    E(mmrec_cache_writer_commit),
    EXEMPT(mmrec_cache_writer_destroy, DESTROYER),
    E(mmrec_cache_open),
    EXEMPT(mmrec_cache_close, DESTROYER),
    E(mmrec_cache_num_items),
    E(mmrec_cache_num_fields),
    E_NULLABLE(mmrec_cache_field_info, "name_out dim_out dtype_out"),
    E(mmrec_cache_field_dim),
    E(mmrec_cache_gather),
    E_NULLABLE(mmrec_cache_gather_ex, "presence_out"),
    E_NULLABLE(mmrec_cache_gather_into, "presence"),
    E_NULLABLE(mmrec_cache_refresh, "path"),
    E(mmrec_cache_writer_add_layers),
    E(mmrec_cache_field_shape),
    E(mmrec_cache_gather_config_init_sized),
    E_NULLABLE(mmrec_cache_gather_layers, "cfg presence_out"),
    E_NULLABLE(mmrec_cache_gather_layers_into, "cfg presence"),
    /* core.h */
    EXEMPT(mmrec_status_str, NO_POINTER "; never fails"),
    EXEMPT(mmrec_status_name, NO_POINTER "; never fails"),
    EXEMPT(mmrec_last_error, NO_POINTER "; never fails"),
    EXEMPT(mmrec_version_number, NO_POINTER "; never fails"),
    EXEMPT(mmrec_version_string, NO_POINTER "; never fails"),
    EXEMPT(mmrec_max_dims, NO_POINTER "; never fails"),
    EXEMPT(mmrec_set_num_threads, NO_POINTER),
    EXEMPT(mmrec_get_num_threads, NO_POINTER "; never fails"),
    EXEMPT(mmrec_set_check_finite, NO_POINTER),
    EXEMPT(mmrec_get_check_finite, NO_POINTER "; never fails"),
    E_NULLABLE(mmrec_set_allocator, "allocator"),
    E(mmrec_rng_create),
    EXEMPT(mmrec_rng_destroy, DESTROYER),
    E(mmrec_rng_seed),
    E(mmrec_rng_next_u64),
    E(mmrec_rng_uniform),
    E(mmrec_rng_normal),
    E(mmrec_rng_below),
    /* data.h */
    E(mmrec_interactions_create), /* users and items may be NULL only with n 0 */
    E(mmrec_interactions_read_lightgcn),
    E(mmrec_interactions_read_inter),
    E_NULLABLE(mmrec_interactions_info, "num_users num_items count"),
    E(mmrec_interactions_pairs),
    EXEMPT(mmrec_interactions_destroy, DESTROYER),
    E(mmrec_sequences_config_init_sized),
    E_NULLABLE(mmrec_sequences_read_tsv, "cfg"),
    E_NULLABLE(mmrec_sequences_info, "num_users num_items count"),
    E(mmrec_sequences_user),
    E(mmrec_sequences_user_name),
    E_NULLABLE(mmrec_sequences_item, "asin_out title_out"),
    E(mmrec_sequences_train_counts),
    E(mmrec_sequences_interactions),
    EXEMPT(mmrec_sequences_destroy, DESTROYER),
    E(mmrec_item_sampler_config_init_sized),
    E(mmrec_item_sampler_create),
    E(mmrec_item_sampler_draw),
    E(mmrec_item_sampler_probability),
    EXEMPT(mmrec_item_sampler_destroy, DESTROYER),
    /* em3.h */
    E(mmrec_fqformer_config_init_sized),
    E_NULLABLE(mmrec_fqformer_create, "out"),
    E_NULLABLE(mmrec_fqformer_forward, "presence"),
    E(mmrec_target_attention_config_init_sized),
    E_NULLABLE(mmrec_target_attention_create, "out"),
    E_NULLABLE(mmrec_target_attention_forward, "mask"),
    E(mmrec_cic_config_init_sized),
    E(mmrec_loss_cic),
    /* graph.h */
    E(mmrec_graph_create_bipartite), /* users and items may be NULL only with n 0 */
    E(mmrec_knn_config_init_sized),
    E_NULLABLE(mmrec_graph_create_knn, "cfg"),
    EXEMPT(mmrec_graph_destroy, DESTROYER),
    E_NULLABLE(mmrec_graph_info, "num_nodes num_users nnz"),
    E(mmrec_graph_propagate),
    E_NULLABLE(mmrec_lightgcn, "weights"),
    E_NULLABLE(mmrec_lightgcn_rows, "weights"),
    E(mmrec_graph_aggregate_users),
    /* iisan.h */
    E(mmrec_iisan_item_encoder_config_init_sized),
    E_NULLABLE(mmrec_iisan_item_encoder_create, "out"),
    E(mmrec_iisan_item_encoder_forward), /* a states argument may be NULL in a mode
                                            that does not read it */
    /* losses.h */
    E(mmrec_loss_bce_logits),
    E(mmrec_loss_softmax_ce),
    E(mmrec_loss_bpr),
    E(mmrec_loss_mse),
    E(mmrec_batch_softmax_config_init_sized),
    E_NULLABLE(mmrec_loss_batch_softmax, "cfg"),
    E_NULLABLE(mmrec_loss_batch_softmax_logits, "cfg"),
    E(mmrec_sequence_softmax_config_init_sized),
    E(mmrec_loss_sequence_softmax),
    /* metrics.h */
    E_NULLABLE(mmrec_eval_full_ranking, "train"),
    E(mmrec_metric_auc),
    E_NULLABLE(mmrec_metric_gauc, "groups_out"),
    E_NULLABLE(mmrec_eval_full_auc, "train weighted_out users_out"),
    E(mmrec_eval_zero_shot),
    E(mmrec_eval_item_cf),
    E(mmrec_eval_mask_modality),
    /* model.h */
    E(mmrec_model_create),
    EXEMPT(mmrec_model_destroy, DESTROYER),
    E(mmrec_model_seed),
    E_NULLABLE(mmrec_model_add_param, "out"),
    E(mmrec_model_param),
    E(mmrec_model_num_params),
    E_NULLABLE(mmrec_model_param_at, "name_out"),
    E_NULLABLE(mmrec_model_freeze, "count_out"),
    E_NULLABLE(mmrec_model_unfreeze, "count_out"),
    E_NULLABLE(mmrec_model_param_count, "trainable_out total_out"),
    E(mmrec_model_zero_grad),
    E(mmrec_model_export_params),
    E(mmrec_model_import_params),
    E(mmrec_model_export_grads),
    E(mmrec_model_import_grads),
    E(mmrec_model_param_row_sparse),
    E(mmrec_model_grad_rows),
    E(mmrec_model_set_grad_rows),
    E(mmrec_model_export_dense_grads),
    E(mmrec_model_import_dense_grads),
    E(mmrec_model_save),
    E(mmrec_model_load),
    /* index.h */
    E(mmrec_index_config_init_sized),
    E(mmrec_index_filter_init_sized),
    E_NULLABLE(mmrec_index_create, "ids cfg"),
    E_NULLABLE(mmrec_index_create_from_cache, "cfg"),
    E(mmrec_index_save),
    E(mmrec_index_open),
    EXEMPT(mmrec_index_destroy, DESTROYER),
    E(mmrec_index_refresh),
    E_NULLABLE(mmrec_index_info, "num_items_out dim_out vectors_out metric_out storage_out"),
    E_NULLABLE(mmrec_index_search, "filters counts_out"),
    E_NULLABLE(mmrec_index_search_multi, "filters counts_out"),
    /* modules.h */
    E(mmrec_linear_config_init_sized),
    E_NULLABLE(mmrec_linear_create, "out"),
    E(mmrec_linear_forward),
    E(mmrec_adapter_config_init_sized),
    E_NULLABLE(mmrec_adapter_create, "out"),
    E(mmrec_adapter_forward),
    E(mmrec_lora_config_init_sized),
    E(mmrec_lora_attach),
    E(mmrec_lora_merge),
    E(mmrec_lora_unmerge),
    E(mmrec_mlp_config_init_sized),
    E_NULLABLE(mmrec_mlp_create, "out"),
    E(mmrec_mlp_forward),
    E(mmrec_embedding_config_init_sized),
    E_NULLABLE(mmrec_embedding_create, "out"),
    E(mmrec_embedding_forward),
    E(mmrec_layernorm_config_init_sized),
    E_NULLABLE(mmrec_layernorm_create, "out"),
    E(mmrec_layernorm_forward),
    E(mmrec_mha_config_init_sized),
    E_NULLABLE(mmrec_mha_create, "out"),
    E_NULLABLE(mmrec_mha_forward, "key_mask"),
    E_NULLABLE(mmrec_mha_forward_probs, "key_mask out"),
    E(mmrec_transformer_config_init_sized),
    E_NULLABLE(mmrec_transformer_create, "out"),
    E_NULLABLE(mmrec_transformer_forward, "key_mask"),
    E_NULLABLE(mmrec_transformer_forward_probs, "key_mask out"),
    E_NULLABLE(mmrec_transformer_forward_rows, "key_mask"),
    E(mmrec_sequence_encoder_config_init_sized),
    E_NULLABLE(mmrec_sequence_encoder_create, "out"),
    E_NULLABLE(mmrec_sequence_encoder_forward, "mask states last"),
    /* ops.h */
    E(mmrec_matmul),
    E(mmrec_add),
    E(mmrec_sub),
    E(mmrec_mul),
    E(mmrec_scale),
    E(mmrec_bias_add),
    E(mmrec_relu),
    E(mmrec_gelu),
    E(mmrec_sigmoid),
    E(mmrec_tanh),
    E_NULLABLE(mmrec_softmax, "mask"),
    E_NULLABLE(mmrec_log_softmax, "mask"),
    E_NULLABLE(mmrec_layer_norm, "weight bias"),
    E(mmrec_dropout),
    E(mmrec_concat),
    E(mmrec_slice),
    E(mmrec_reshape),
    E(mmrec_transpose),
    E(mmrec_sum),
    E(mmrec_mean),
    E(mmrec_l2_normalize),
    E(mmrec_cosine_similarity),
    E(mmrec_gather_rows),
    E_NULLABLE(mmrec_maxsim, "query_mask item_mask"),
    E_NULLABLE(mmrec_maxsim_paired, "query_mask item_mask"),
    /* optim.h */
    E(mmrec_optimizer_config_init_sized),
    E(mmrec_optimizer_create),
    EXEMPT(mmrec_optimizer_destroy, DESTROYER),
    E(mmrec_optimizer_step),
    E_NULLABLE(mmrec_optimizer_add_group, "group_out"),
    E(mmrec_optimizer_set_lr),
    E(mmrec_optimizer_get_lr),
    E(mmrec_optimizer_step_count),
    E(mmrec_optimizer_skipped_steps),
    E(mmrec_optimizer_last_grad_norm),
    E_NULLABLE(mmrec_checkpoint_save, "opt"),
    E_NULLABLE(mmrec_checkpoint_load, "opt"),
    /* tape.h */
    E(mmrec_tape_create),
    EXEMPT(mmrec_tape_destroy, DESTROYER),
    E(mmrec_tape_set_mode),
    E(mmrec_tape_get_mode),
    E(mmrec_tape_seed),
    E(mmrec_tape_backward),
    E(mmrec_tape_backward_from),
    EXEMPT(mmrec_tape_reset, DESTROYER),
    E(mmrec_tape_memory),
    E(mmrec_tape_generation),
    E(mmrec_tape_tensor),
    E(mmrec_tape_wrap),
    /* distill.h */
    E(mmrec_distill_logits_config_init_sized),
    E_NULLABLE(mmrec_distill_logits, "cfg"),
    EXEMPT(mmrec_distill_warmup_weight, NO_POINTER "; never fails"),
    E(mmrec_distill_kl_config_init_sized),
    E_NULLABLE(mmrec_distill_kl, "cfg"),
    E(mmrec_distill_gam_config_init_sized),
    E(mmrec_distill_attn_config_init_sized),
    E_NULLABLE(mmrec_distill_attn, "cfg"),
    E_NULLABLE(mmrec_distill_gam, "cfg"),
    /* inttower.h */
    E(mmrec_inttower_config_init_sized),
    E_NULLABLE(mmrec_inttower_create, "out"),
    E_NULLABLE(mmrec_inttower_user_forward, "dense user_vec"),
    E_NULLABLE(mmrec_inttower_item_forward, "dense item_vec"),
    E(mmrec_inttower_score),
    E(mmrec_inttower_score_paired),
    E(mmrec_inttower_cir_config_init_sized),
    E_NULLABLE(mmrec_loss_inttower_cir, "cfg"),
    /* twotower.h */
    E(mmrec_twotower_config_init_sized),
    E_NULLABLE(mmrec_twotower_score, "cfg"),
    E_NULLABLE(mmrec_twotower_score_paired, "cfg"),
    E_NULLABLE(mmrec_twotower_serving_vectors, "cfg"),
    E(mmrec_freq_estimator_config_init_sized),
    E_NULLABLE(mmrec_freq_estimator_create, "out"),
    E(mmrec_freq_estimator_update),
    E(mmrec_freq_estimator_probability),
    E_NULLABLE(mmrec_freq_estimator_set_counts, "counts"), /* NULL: back to streaming */
    /* mvke.h */
    E(mmrec_mvke_config_init_sized),
    E_NULLABLE(mmrec_mvke_create, "out"),
    E(mmrec_mvke_forward),
    E(mmrec_mvke_gate),
    E(mmrec_mvke_score),
    E_NULLABLE(mmrec_mvke_loss, "weights"),
    E(mmrec_mvke_serving_dim),
    E(mmrec_mvke_export_user),
    E(mmrec_mvke_export_tag),
    /* tensor.h */
    E(mmrec_tensor_create),
    E(mmrec_tensor_wrap),
    E_NULLABLE(mmrec_tensor_wrap_ex, "release user"),
    EXEMPT(mmrec_tensor_destroy, DESTROYER),
    E(mmrec_tensor_set_data),
    E(mmrec_tensor_shape),
    E(mmrec_tensor_numel),
    E(mmrec_tensor_generation),
    E(mmrec_tensor_data),
    E(mmrec_tensor_data_const),
    E(mmrec_tensor_grad),
    E(mmrec_tensor_copy_to),
    E(mmrec_tensor_copy_from),
};
#define MT_ENTRIES_N (sizeof mt_entries / sizeof mt_entries[0])

static const mt_entry *mt_entry_of(const char *name) {
    for (size_t i = 0; i < MT_ENTRIES_N; i++)
        if (strcmp(mt_entries[i].name, name) == 0) return &mt_entries[i];
    return NULL;
}

static bool mt_word_in(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return true;
    return false;
}

/* ---- files every call may read ---- */

static void mt_write_text(const char *path, const char *text) {
    mt_write_file(path, text, strlen(text));
}

/* A [2, 2] '<f4' .npy file (format 1.0). */
static void mt_write_npy(const char *path) {
    static const char dict[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
    unsigned char file[128 + 16];
    size_t header = 128 - 10;
    memset(file, ' ', sizeof file);
    memcpy(file, "\x93NUMPY\x01\x00", 8);
    file[8] = (unsigned char)header;
    file[9] = 0;
    memcpy(file + 10, dict, sizeof dict - 1);
    file[127] = '\n';
    const float v[4] = {1, 2, 3, 4};
    memcpy(file + 128, v, sizeof v);
    mt_write_file(path, file, sizeof file);
}

static void mt_files(void) {
    mt_tmp_dir();
    snprintf(mt_paths[0], sizeof mt_paths[0], "%s/c.mmfc", mt_dir);
    snprintf(mt_paths[1], sizeof mt_paths[1], "%s/x.npy", mt_dir);
    snprintf(mt_paths[2], sizeof mt_paths[2], "%s/train.txt", mt_dir);
    snprintf(mt_paths[3], sizeof mt_paths[3], "%s/x.inter", mt_dir);
    mt_cache_path = mt_paths[0];
    mt_npy_path = mt_paths[1];
    mt_lightgcn_path = mt_paths[2];
    mt_inter_path = mt_paths[3];
    snprintf(mt_paths[4], sizeof mt_paths[4], "%s/items.tsv", mt_dir);
    snprintf(mt_paths[5], sizeof mt_paths[5], "%s/users.tsv", mt_dir);
    mt_items_path = mt_paths[4];
    mt_users_path = mt_paths[5];
    snprintf(mt_paths[6], sizeof mt_paths[6], "%s/i.mmix", mt_dir);
    mt_index_path = mt_paths[6];
    mt_write_text(mt_items_path, "A\tTitle a\nB\tTitle b\nC\tTitle c\n");
    mt_write_text(mt_users_path, "u\tA B C\nv\tC B A B\n");
    mmrec_cache_writer *w;
    const float data[6] = {1, 2, 3, 4, 5, 6};
    MT_OK(mmrec_cache_writer_create(mt_cache_path, mt_cache_ids, 3, &w));
    MT_OK(mmrec_cache_writer_add(w, "a", MMREC_CACHE_F32, data, 2));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    mt_write_npy(mt_npy_path);
    mmrec_index *x;
    MT_OK(mmrec_index_create(mt_feat, mt_index_ids, I, D, NULL, &x));
    MT_OK(mmrec_index_save(x, mt_index_path));
    mmrec_index_destroy(x);
    mt_write_text(mt_lightgcn_path, "0 1 2\n1 0\n");
    mt_write_text(mt_inter_path, "userID\titemID\tx_label\n0\t1\t0\n1\t2\t0\n");
}

/* ---- the test ---- */

static int mt_failures;

/* Reports a failure and goes on, so one run lists every function that
 * needs fixing. */
MT_PRINTF(1, 2) static void mt_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "api_names: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    mt_failures++;
}

/* Calls `e` on a fresh fixture with argument k NULL (-1: none); returns
 * the status and copies the message into msg. */
static mmrec_status mt_call(const mt_entry *e, int k, char *msg, size_t size) {
    fx f;
    fx_setup(&f);
    mmrec_status s = e->call(&f, k);
    snprintf(msg, size, "%s", s == MMREC_OK ? "" : mmrec_last_error());
    fx_teardown(&f);
    return s;
}

static int mt_check_function(const mt_api_fn *fn, const mt_entry *e) {
    int checked = 0, n_ptr = 0;
    char msg[512];
    for (int p = 0; p < fn->n_params; p++) n_ptr += fn->params[p].pointer;
    if (e->call == NULL) {
        if (strcmp(fn->ret, "mmrec_status") == 0 && n_ptr > 0)
            mt_fail("%s is exempt (%s) but returns a status and takes a pointer", fn->name,
                    e->exempt);
        return 0;
    }
    if (strcmp(fn->ret, "mmrec_status") != 0) {
        mt_fail("%s returns %s, not a status: make it exempt", fn->name, fn->ret);
        return 0;
    }
    /* every parameter listed as nullable is a pointer parameter */
    char list[200];
    snprintf(list, sizeof list, "%s", e->nullable);
    for (char *save, *w = strtok_r(list, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        bool found = false;
        for (int p = 0; p < fn->n_params; p++)
            if (fn->params[p].pointer && strcmp(fn->params[p].name, w) == 0) found = true;
        if (!found) mt_fail("%s: '%s', listed as nullable, is no pointer parameter", fn->name, w);
    }
    for (int p = 0; p < fn->n_params; p++) {
        const mt_api_param *par = &fn->params[p];
        if (!par->pointer) continue;
        mmrec_status s = mt_call(e, p, msg, sizeof msg);
        if (mt_word_in(e->nullable, par->name)) {
            if (s != MMREC_OK)
                mt_fail("%s with %s NULL (allowed) returned %s: %s", fn->name, par->name,
                        mmrec_status_name(s), msg);
            continue;
        }
        char needle[96];
        snprintf(needle, sizeof needle, "argument '%s' is NULL", par->name);
        size_t len = strlen(fn->name);
        if (s != MMREC_EINVAL)
            mt_fail("%s with %s NULL returned %s, expected MMREC_EINVAL (%s)", fn->name,
                    par->name, mmrec_status_name(s), msg);
        else if (strncmp(msg, fn->name, len) != 0 || msg[len] != ':' || !strstr(msg, needle))
            mt_fail("%s with %s NULL: message '%s' is not '%s: ...%s...'", fn->name, par->name,
                    msg, fn->name, needle);
        checked++;
    }
    mmrec_status s = mt_call(e, -1, msg, sizeof msg);
    if (s != MMREC_OK)
        mt_fail("%s with every argument valid returned %s: %s", fn->name, mmrec_status_name(s),
                msg);
    return checked;
}

START_TEST(test_every_null_argument_is_named_as_in_the_header) {
    mt_files();
    mt_failures = 0;
    int checked = 0;
    for (size_t i = 0; i < MT_API_N; i++) {
        const mt_entry *e = mt_entry_of(mt_api[i].name);
        if (e == NULL)
            mt_fail("%s (%s) has no entry in tests/test_api_names.c", mt_api[i].name,
                    mt_api[i].header);
        else
            checked += mt_check_function(&mt_api[i], e);
    }
    for (size_t j = 0; j < MT_ENTRIES_N; j++) {
        bool found = false;
        for (size_t i = 0; i < MT_API_N; i++)
            if (strcmp(mt_api[i].name, mt_entries[j].name) == 0) found = true;
        if (!found) mt_fail("entry %s names no function of tests/api_params.h", mt_entries[j].name);
    }
    mt_tmp_clean();
    ck_assert_msg(mt_failures == 0, "%d failures (listed above)", mt_failures);
    ck_assert_int_gt(checked, 300);
}
END_TEST

static Suite *api_names_suite(void) {
    Suite *s = suite_create("api_names");
    TCase *tc = tcase_create("api");
    tcase_add_test(tc, test_every_null_argument_is_named_as_in_the_header);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}
