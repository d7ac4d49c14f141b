/* Size-first config structs (STYLE.md 5): every struct accepts callers
 * built against the release that introduced it (its first-release size),
 * rejects smaller sizes, and rejects a larger struct whose unknown tail is
 * set; a caller compiled against the 0.1 Embedding config, which grew in
 * 0.2, still creates and trains its table. */
#include "mt.h"
#include "core/config_sizes.h"
#include "alignrec/alignrec_internal.h" /* the systems' rows */
#include "distill/distill_internal.h"
#include "em3/em3_internal.h"
#include "index/index_internal.h"
#include "iisan/iisan_internal.h"
#include "twotower/twotower_internal.h"

MT_SUITE(config_suite)

/* One init_sized per struct, called through a uniform signature. */
typedef mmrec_status (*mt_init_fn)(void *cfg, size_t size);
#define MT_INIT(type, init)                                                                   \
    static mmrec_status mt_init_##type(void *cfg, size_t size) { return init(cfg, size); }
MT_INIT(mmrec_linear_config, mmrec_linear_config_init_sized)
MT_INIT(mmrec_lora_config, mmrec_lora_config_init_sized)
MT_INIT(mmrec_mlp_config, mmrec_mlp_config_init_sized)
MT_INIT(mmrec_embedding_config, mmrec_embedding_config_init_sized)
MT_INIT(mmrec_layernorm_config, mmrec_layernorm_config_init_sized)
MT_INIT(mmrec_mha_config, mmrec_mha_config_init_sized)
MT_INIT(mmrec_transformer_config, mmrec_transformer_config_init_sized)
MT_INIT(mmrec_optimizer_config, mmrec_optimizer_config_init_sized)
MT_INIT(mmrec_fqformer_config, mmrec_fqformer_config_init_sized)
MT_INIT(mmrec_target_attention_config, mmrec_target_attention_config_init_sized)
MT_INIT(mmrec_cic_config, mmrec_cic_config_init_sized)
MT_INIT(mmrec_knn_config, mmrec_knn_config_init_sized)
MT_INIT(mmrec_alignrec_config, mmrec_alignrec_config_init_sized)
MT_INIT(mmrec_alignrec_views, mmrec_alignrec_views_init_sized)
MT_INIT(mmrec_batch_softmax_config, mmrec_batch_softmax_config_init_sized)
MT_INIT(mmrec_cache_gather_config, mmrec_cache_gather_config_init_sized)
MT_INIT(mmrec_sequences_config, mmrec_sequences_config_init_sized)
MT_INIT(mmrec_adapter_config, mmrec_adapter_config_init_sized)
MT_INIT(mmrec_sequence_softmax_config, mmrec_sequence_softmax_config_init_sized)
MT_INIT(mmrec_sequence_encoder_config, mmrec_sequence_encoder_config_init_sized)
MT_INIT(mmrec_iisan_item_encoder_config, mmrec_iisan_item_encoder_config_init_sized)
MT_INIT(mmrec_freq_estimator_config, mmrec_freq_estimator_config_init_sized)
MT_INIT(mmrec_twotower_config, mmrec_twotower_config_init_sized)
MT_INIT(mmrec_item_sampler_config, mmrec_item_sampler_config_init_sized)
MT_INIT(mmrec_mvke_config, mmrec_mvke_config_init_sized)
MT_INIT(mmrec_inttower_config, mmrec_inttower_config_init_sized)
MT_INIT(mmrec_inttower_cir_config, mmrec_inttower_cir_config_init_sized)
MT_INIT(mmrec_distill_logits_config, mmrec_distill_logits_config_init_sized)
MT_INIT(mmrec_distill_kl_config, mmrec_distill_kl_config_init_sized)
MT_INIT(mmrec_distill_gam_config, mmrec_distill_gam_config_init_sized)
MT_INIT(mmrec_distill_attn_config, mmrec_distill_attn_config_init_sized)
MT_INIT(mmrec_index_config, mmrec_index_config_init_sized)
MT_INIT(mmrec_index_filter, mmrec_index_filter_init_sized)

#define MT_ROW(type) {#type, mt_init_##type, MMREC__MIN_SIZE(type), sizeof(type)}
static const struct {
    const char *name;
    mt_init_fn init;
    size_t first, now;
} mt_configs[] = {
    MT_ROW(mmrec_linear_config),       MT_ROW(mmrec_lora_config),
    MT_ROW(mmrec_mlp_config),          MT_ROW(mmrec_embedding_config),
    MT_ROW(mmrec_layernorm_config),    MT_ROW(mmrec_mha_config),
    MT_ROW(mmrec_transformer_config),  MT_ROW(mmrec_optimizer_config),
    MT_ROW(mmrec_fqformer_config),     MT_ROW(mmrec_target_attention_config),
    MT_ROW(mmrec_cic_config),          MT_ROW(mmrec_knn_config),
    MT_ROW(mmrec_alignrec_config),     MT_ROW(mmrec_alignrec_views),
    MT_ROW(mmrec_batch_softmax_config), MT_ROW(mmrec_cache_gather_config),
    MT_ROW(mmrec_sequences_config),
    MT_ROW(mmrec_adapter_config),
    MT_ROW(mmrec_sequence_softmax_config),
    MT_ROW(mmrec_sequence_encoder_config),
    MT_ROW(mmrec_iisan_item_encoder_config),
    MT_ROW(mmrec_freq_estimator_config),
    MT_ROW(mmrec_twotower_config),
    MT_ROW(mmrec_item_sampler_config),
    MT_ROW(mmrec_mvke_config),
    MT_ROW(mmrec_inttower_config),
    MT_ROW(mmrec_inttower_cir_config),
    MT_ROW(mmrec_distill_logits_config),
    MT_ROW(mmrec_distill_kl_config),
    MT_ROW(mmrec_distill_gam_config),
    MT_ROW(mmrec_distill_attn_config),
    MT_ROW(mmrec_index_config),
    MT_ROW(mmrec_index_filter),
};

/* _init_sized at the first-release size fills that many bytes and says so;
 * one byte less is refused; a larger buffer gets a zero tail. */
START_TEST(test_every_config_accepts_its_first_release_size) {
    for (size_t k = 0; k < sizeof mt_configs / sizeof mt_configs[0]; k++) {
        unsigned char buf[256];
        size_t first = mt_configs[k].first, now = mt_configs[k].now;
        ck_assert_msg(first <= now && now + 16 <= sizeof buf, "%s", mt_configs[k].name);
        memset(buf, 0xab, sizeof buf);
        MT_OK(mt_configs[k].init(buf, first));
        size_t got;
        memcpy(&got, buf, sizeof got);
        ck_assert_uint_eq(got, first);
        ck_assert_msg(buf[first] == 0xab, "%s wrote past its caller's size", mt_configs[k].name);
        MT_EXPECT(mt_configs[k].init(buf, first - 1), MMREC_EINVAL, "size is");
        MT_OK(mt_configs[k].init(buf, now + 16));
        for (size_t i = now; i < now + 16; i++)
            ck_assert_msg(buf[i] == 0, "%s: tail byte %zu", mt_configs[k].name, i);
    }
}
END_TEST

/* Each _init_sized, called directly, refuses one byte less than its
 * struct's first release and names the `size` argument. */
#define MT_BELOW(type) ((size_t)MMREC__MIN_SIZE(type) - 1)
START_TEST(test_config_init_names_a_too_small_size) {
    union {
        mmrec_linear_config linear;
        mmrec_lora_config lora;
        mmrec_mlp_config mlp;
        mmrec_embedding_config embedding;
        mmrec_layernorm_config layernorm;
        mmrec_mha_config mha;
        mmrec_transformer_config transformer;
        mmrec_optimizer_config optimizer;
        mmrec_fqformer_config fqformer;
        mmrec_target_attention_config ta;
        mmrec_cic_config cic;
        mmrec_knn_config knn;
        mmrec_alignrec_config alignrec;
        mmrec_alignrec_views views;
        mmrec_batch_softmax_config batch_softmax;
        mmrec_cache_gather_config cache_gather;
        mmrec_sequences_config sequences;
    } u;
    MT_EXPECT(mmrec_linear_config_init_sized(&u.linear, MT_BELOW(mmrec_linear_config)),
              MMREC_EINVAL, "size is");
    MT_EXPECT(mmrec_lora_config_init_sized(&u.lora, MT_BELOW(mmrec_lora_config)), MMREC_EINVAL,
              "size is");
    MT_EXPECT(mmrec_mlp_config_init_sized(&u.mlp, MT_BELOW(mmrec_mlp_config)), MMREC_EINVAL,
              "size is");
    MT_EXPECT(mmrec_embedding_config_init_sized(&u.embedding, MT_BELOW(mmrec_embedding_config)),
              MMREC_EINVAL, "size is");
    MT_EXPECT(mmrec_layernorm_config_init_sized(&u.layernorm, MT_BELOW(mmrec_layernorm_config)),
              MMREC_EINVAL, "size is");
    MT_EXPECT(mmrec_mha_config_init_sized(&u.mha, MT_BELOW(mmrec_mha_config)), MMREC_EINVAL,
              "size is");
    MT_EXPECT(mmrec_transformer_config_init_sized(&u.transformer,
                                                  MT_BELOW(mmrec_transformer_config)),
              MMREC_EINVAL, "size is");
    MT_EXPECT(mmrec_optimizer_config_init_sized(&u.optimizer, MT_BELOW(mmrec_optimizer_config)),
              MMREC_EINVAL, "size is");
    MT_EXPECT(mmrec_fqformer_config_init_sized(&u.fqformer, MT_BELOW(mmrec_fqformer_config)),
              MMREC_EINVAL, "size is");
    MT_EXPECT(mmrec_target_attention_config_init_sized(&u.ta,
                                                       MT_BELOW(mmrec_target_attention_config)),
              MMREC_EINVAL, "size is");
    MT_EXPECT(mmrec_cic_config_init_sized(&u.cic, MT_BELOW(mmrec_cic_config)), MMREC_EINVAL,
              "size is");
    MT_EXPECT(mmrec_knn_config_init_sized(&u.knn, MT_BELOW(mmrec_knn_config)), MMREC_EINVAL,
              "size is");
    MT_EXPECT(mmrec_alignrec_config_init_sized(&u.alignrec, MT_BELOW(mmrec_alignrec_config)),
              MMREC_EINVAL, "size is");
    MT_EXPECT(mmrec_alignrec_views_init_sized(&u.views, MT_BELOW(mmrec_alignrec_views)),
              MMREC_EINVAL, "size is");
    MT_EXPECT(mmrec_batch_softmax_config_init_sized(&u.batch_softmax,
                                                    MT_BELOW(mmrec_batch_softmax_config)),
              MMREC_EINVAL, "size is");
    MT_EXPECT(mmrec_cache_gather_config_init_sized(&u.cache_gather,
                                                   MT_BELOW(mmrec_cache_gather_config)),
              MMREC_EINVAL, "size is");
    MT_EXPECT(mmrec_sequences_config_init_sized(&u.sequences, MT_BELOW(mmrec_sequences_config)),
              MMREC_EINVAL, "size is");
    /* zero: the struct_size field itself does not fit */
    MT_EXPECT(mmrec_linear_config_init_sized(&u.linear, 0), MMREC_EINVAL, "size is 0");
}
END_TEST

/* mmrec_embedding_config as libmmrec 0.1 declared it, before `dense`. */
typedef struct mt_embedding_config_0_1 {
    size_t struct_size;
    int64_t num_rows, dim;
    mmrec_init init;
    float init_std;
} mt_embedding_config_0_1;

/* One AdamW step (weight decay 0.1) after gathering rows 2 and 5 of the
 * table; returns how many of its 8 rows changed. */
static int mt_rows_changed(mmrec_model *m, mmrec_module *emb) {
    mmrec_tensor *w;
    MT_OK(mmrec_model_param(m, "emb.weight", &w));
    float before[8 * 4], after[8 * 4];
    MT_OK(mmrec_tensor_copy_to(w, before, 32));
    mmrec_optimizer_config oc;
    MT_OK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAMW;
    oc.weight_decay = 0.1f;
    mmrec_optimizer *o;
    MT_OK(mmrec_optimizer_create(m, &oc, &o));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t ids[2] = {2, 5};
    mmrec_tensor *e, *s, *loss;
    MT_OK(mmrec_embedding_forward(emb, tape, ids, 2, &e));
    MT_OK(mmrec_sum(tape, e, -1, &s));
    MT_OK(mmrec_sum(tape, s, 0, &loss));
    MT_OK(mmrec_tape_backward(tape, loss));
    MT_OK(mmrec_optimizer_step(o));
    MT_OK(mmrec_tensor_copy_to(w, after, 32));
    int changed = 0;
    for (int r = 0; r < 8; r++) changed += memcmp(before + r * 4, after + r * 4, 16) != 0;
    mmrec_tape_destroy(tape);
    mmrec_optimizer_destroy(o);
    return changed;
}

/* A caller compiled against the 0.1 header passes the 0.1 struct: the
 * library reads what it covers and takes the default (row-sparse) for the
 * field 0.2 added. */
START_TEST(test_embedding_0_1_caller_with_the_shorter_struct) {
    ck_assert_uint_lt(sizeof(mt_embedding_config_0_1), sizeof(mmrec_embedding_config));
    ck_assert_uint_eq(sizeof(mt_embedding_config_0_1),
                      (size_t)MMREC__MIN_SIZE(mmrec_embedding_config));
    mt_embedding_config_0_1 old;
    MT_OK(mmrec_embedding_config_init_sized((mmrec_embedding_config *)&old, sizeof old));
    ck_assert_uint_eq(old.struct_size, sizeof old);
    ck_assert(old.init == MMREC_INIT_NORMAL && old.init_std == 1.0f);
    old.num_rows = 8;
    old.dim = 4;
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    mmrec_module *emb;
    MT_OK(mmrec_embedding_create(m, "emb", (const mmrec_embedding_config *)&old, &emb));
    ck_assert_int_eq(mt_rows_changed(m, emb), 2); /* lazy: the gathered rows only */
    mmrec_model_destroy(m);
}
END_TEST

/* The 0.2 caller asks for a dense table: AdamW's weight decay reaches every
 * row, as torch.nn.Embedding(sparse=False) with torch.optim.AdamW. */
START_TEST(test_embedding_dense_updates_every_row) {
    mmrec_embedding_config c;
    MT_OK(mmrec_embedding_config_init(&c));
    ck_assert_int_eq(c.dense, 0);
    c.num_rows = 8;
    c.dim = 4;
    c.dense = 1;
    mmrec_model *m;
    MT_OK(mmrec_model_create(&m));
    mmrec_module *emb;
    MT_OK(mmrec_embedding_create(m, "emb", &c, &emb));
    ck_assert_int_eq(mt_rows_changed(m, emb), 8);
    c.dense = 2;
    MT_EXPECT(mmrec_embedding_create(m, "bad", &c, &emb), MMREC_EINVAL, "cfg->dense is 2");
    /* a struct from a newer library: accepted while its unknown tail is zero */
    unsigned char big[sizeof c + 8] = {0};
    c.dense = 0;
    memcpy(big, &c, sizeof c);
    size_t size = sizeof big;
    memcpy(big, &size, sizeof size);
    MT_OK(mmrec_embedding_create(m, "newer", (const mmrec_embedding_config *)big, &emb));
    big[sizeof big - 1] = 1;
    MT_EXPECT(mmrec_embedding_create(m, "newer2", (const mmrec_embedding_config *)big, &emb),
              MMREC_EINVAL, "newer libmmrec");
    mmrec_model_destroy(m);
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("api");
    tcase_add_test(tc, test_every_config_accepts_its_first_release_size);
    tcase_add_test(tc, test_config_init_names_a_too_small_size);
    tcase_add_test(tc, test_embedding_0_1_caller_with_the_shorter_struct);
    tcase_add_test(tc, test_embedding_dense_updates_every_row);
    suite_add_tcase(s, tc);
    return s;
}
