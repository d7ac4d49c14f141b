/* IISAN item encoder: the intra-modal SANs (text, image) and the
 * inter-modal SAN over the cached per-layer states (san.c, one fused node
 * each), their heads Linear(H, H) then Linear(H, d) without an activation
 * (one node through the product of the two weights when a batch has more
 * rows than d: d H (H + rows) multiply-adds per pass instead of
 * rows H (H + d); modules/linear.c, mmrec__lin2_forward), and the fusion Linear(concat(image, text, inter)). Reference:
 * IISANAdaptedMModel and ModelMM (com_dense) of github.com/GAIR-Lab/IISAN,
 * Code_Cached/model/model.py; shared/METHODS.md (IISAN);
 * tests/golden/make_golden.py::write_iisan. */
#include "iisan_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { MMREC__IISAN_TEXT, MMREC__IISAN_IMAGE, MMREC__IISAN_INTER };

typedef struct mmrec__iisan {
    struct mmrec_module base;
    mmrec_iisan_item_encoder_config cfg; /* kept_layers not kept: see kept[] */
    int kept[MMREC__IISAN_MAX_LAYERS];
    int num_kept;
    bool use[3];                         /* text, image, inter SANs */
    mmrec__san san[3];
    mmrec__lin head[3][2];               /* H -> H, H -> d */
    mmrec__lin fusion;                   /* com_dense */
} mmrec__iisan;

static const mmrec_iisan_item_encoder_config mmrec__iisan_defaults = {
    .struct_size = sizeof(mmrec_iisan_item_encoder_config),
    .hidden_dim = 768,
    .dim = 64,
    .adapter_dim = 64,
    .activation = MMREC_ACT_RELU,
    .mode = MMREC_IISAN_INTRA_INTER,
    .gate = MMREC_IISAN_GATE_SIGMOID,
    .gate_temperature = 0.1f,
    .num_layers = 13,
    .layer_stride = 2,
    .adapter_init_std = 0.01f,
};

mmrec_status mmrec_iisan_item_encoder_config_init_sized(mmrec_iisan_item_encoder_config *cfg,
                                                        size_t size) {
    return MMREC__CONFIG_INIT(mmrec_iisan_item_encoder_config, cfg, size,
                              mmrec__iisan_defaults);
}

/* torch.nn.Linear's initialization: weight and bias U(-1/sqrt(in), 1/sqrt(in)). */
static void mmrec__iisan_init_torch(mmrec_model *model, const mmrec__lin *lin) {
    float bound = 1.0f / sqrtf((float)lin->in);
    for (size_t i = 0; i < lin->w->numel; i++)
        lin->w->data[i] = bound * (2.0f * mmrec__rng_uniform(&model->rng) - 1.0f);
    for (size_t i = 0; i < lin->b->numel; i++)
        lin->b->data[i] = bound * (2.0f * mmrec__rng_uniform(&model->rng) - 1.0f);
}

static mmrec_status mmrec__iisan_linear(mmrec_model *model, const char *name, const char *leaf,
                                        int64_t in, int64_t out, bool xavier_normal,
                                        mmrec__lin *lin) {
    char sub[256];
    snprintf(sub, sizeof sub, "%s.%s", name, leaf);
    MMREC_FORWARD_IF(mmrec__lin_create(model, "mmrec_iisan_item_encoder_create", sub, "weight",
                                       "bias", in, out, true, MMREC_INIT_ZEROS, 0.0f, lin));
    if (xavier_normal) /* ViT's classifier replaced by the reference: bias 0 */
        mmrec__init_normal(model, lin->w, 0.0f, sqrtf(2.0f / (float)(in + out)));
    else
        mmrec__iisan_init_torch(model, lin);
    return MMREC_OK;
}

/* The SAN of modality `which` and its "<name>.<list>.<k>" adapters. */
static mmrec_status mmrec__iisan_san(mmrec__iisan *m, mmrec_model *model, const char *name,
                                     int which, const char *list) {
    const mmrec_iisan_item_encoder_config *c = &m->cfg;
    mmrec__san *s = &m->san[which];
    bool skip = c->remove_first != 0;
    s->n = m->num_kept - (skip ? 1 : 0);
    s->inter = which == MMREC__IISAN_INTER;
    s->gated = c->gate == MMREC_IISAN_GATE_SIGMOID;
    s->from_first = skip && !s->inter;
    s->first = 0;
    s->temperature = c->gate_temperature;
    char sub[256];
    for (int k = 0; k < s->n; k++) {
        s->pos[k] = k + (skip ? 1 : 0);
        snprintf(sub, sizeof sub, "%s.%s.%d", name, list, k);
        MMREC_FORWARD_IF(mmrec__adapter_create(model, "mmrec_iisan_item_encoder_create", sub,
                                               c->hidden_dim, c->adapter_dim, c->activation,
                                               c->adapter_init_std, &s->adapter[k]));
    }
    return MMREC_OK;
}

static mmrec_status mmrec__iisan_gates(mmrec__iisan *m, mmrec_model *model, const char *name,
                                       int which, const char *list) {
    mmrec__san *s = &m->san[which];
    if (!s->gated) return MMREC_OK;
    char sub[256], leaf[16];
    snprintf(sub, sizeof sub, "%s.%s", name, list);
    int64_t one[1] = {1};
    for (int k = 0; k < s->n; k++) {
        snprintf(leaf, sizeof leaf, "%d", k);
        MMREC_FORWARD_IF(mmrec__model_add_param(model, "mmrec_iisan_item_encoder_create", sub,
                                                leaf, 1, one, false, &s->gate[k]));
    }
    return MMREC_OK;
}

/* Every parameter, in the order of the reference's named_parameters(). */
static mmrec_status mmrec__iisan_parts(mmrec__iisan *m, mmrec_model *model, const char *name) {
    enum { T = MMREC__IISAN_TEXT, I = MMREC__IISAN_IMAGE, M = MMREC__IISAN_INTER };
    int64_t H = m->cfg.hidden_dim, d = m->cfg.dim;
    const bool *use = m->use;
    mmrec__lin(*head)[2] = m->head;
    mmrec_status s = MMREC_OK;
#define MMREC__PART(part, call) \
    if (s == MMREC_OK && use[part]) s = (call)
    MMREC__PART(I, mmrec__iisan_linear(model, name, "cv_pre_fc", H, d, true, &head[I][1]));
    MMREC__PART(T, mmrec__iisan_linear(model, name, "bert_pre_fc", H, d, false, &head[T][1]));
    MMREC__PART(I, mmrec__iisan_san(m, model, name, I, "cv_adapter_list"));
    MMREC__PART(T, mmrec__iisan_san(m, model, name, T, "bert_adapter_list"));
    MMREC__PART(M, mmrec__iisan_san(m, model, name, M, "mm_adapter_list"));
    MMREC__PART(T, mmrec__iisan_linear(model, name, "fc_bert", H, H, false, &head[T][0]));
    MMREC__PART(I, mmrec__iisan_linear(model, name, "fc_cv", H, H, false, &head[I][0]));
    MMREC__PART(M, mmrec__iisan_linear(model, name, "fc_mm", H, H, false, &head[M][0]));
    MMREC__PART(M, mmrec__iisan_linear(model, name, "fc_mm_down", H, d, false, &head[M][1]));
    MMREC__PART(T, mmrec__iisan_gates(m, model, name, T, "side_gate_params_text"));
    MMREC__PART(I, mmrec__iisan_gates(m, model, name, I, "side_gate_params_cv"));
    MMREC__PART(M, mmrec__iisan_gates(m, model, name, M, "side_gate_params_mm"));
#undef MMREC__PART
    if (s != MMREC_OK) return s;
    int towers = (int)use[T] + (int)use[I] + (int)use[M];
    return mmrec__iisan_linear(model, name, "com_dense", towers * d, d, false, &m->fusion);
}

static mmrec_status mmrec__iisan_check_config(const mmrec_iisan_item_encoder_config *c,
                                              int *kept, int *num_kept) {
    const char *func = "mmrec_iisan_item_encoder_create";
    MMREC_FAIL_IF_FOR(func, c->hidden_dim < 1, MMREC_EINVAL,
                      "cfg->hidden_dim is %lld, must be >= 1", (long long)c->hidden_dim);
    MMREC_FAIL_IF_FOR(func, c->dim < 1, MMREC_EINVAL, "cfg->dim is %lld, must be >= 1",
                      (long long)c->dim);
    MMREC_FAIL_IF_FOR(func, c->adapter_dim < 1, MMREC_EINVAL,
                      "cfg->adapter_dim is %lld, must be >= 1", (long long)c->adapter_dim);
    /* the fusion's input, 3 d, and the adapters' sizes stay far from overflow */
    const int64_t big = INT64_C(1) << 40;
    MMREC_FAIL_IF_FOR(func, c->hidden_dim > big || c->dim > big || c->adapter_dim > big,
                      MMREC_EINVAL,
                      "cfg->hidden_dim %lld, dim %lld or adapter_dim %lld is too large",
                      (long long)c->hidden_dim, (long long)c->dim, (long long)c->adapter_dim);
    MMREC_FAIL_IF_FOR(func, !mmrec__activation_ok(c->activation), MMREC_EINVAL,
                      "cfg->activation is %d, not an mmrec_activation", (int)c->activation);
    MMREC_FAIL_IF_FOR(func, c->mode < MMREC_IISAN_INTRA_INTER || c->mode > MMREC_IISAN_IMAGE,
                      MMREC_EINVAL, "cfg->mode is %d, not an mmrec_iisan_mode", (int)c->mode);
    MMREC_FAIL_IF_FOR(func, c->gate != MMREC_IISAN_GATE_SIGMOID && c->gate != MMREC_IISAN_GATE_NONE,
                      MMREC_EINVAL, "cfg->gate is %d, not an mmrec_iisan_gate", (int)c->gate);
    MMREC_FAIL_IF_FOR(func, !(c->gate_temperature > 0.0f && isfinite(c->gate_temperature)),
                      MMREC_EINVAL, "cfg->gate_temperature is %g, must be > 0 and finite",
                      (double)c->gate_temperature);
    MMREC_FAIL_IF_FOR(func, !(c->adapter_init_std > 0.0f && isfinite(c->adapter_init_std)),
                      MMREC_EINVAL, "cfg->adapter_init_std is %g, must be > 0 and finite",
                      (double)c->adapter_init_std);
    MMREC_FAIL_IF_FOR(func, c->num_layers < 1 || c->num_layers > MMREC__IISAN_MAX_LAYERS,
                      MMREC_EINVAL, "cfg->num_layers is %d, must be in [1, %d]", c->num_layers,
                      MMREC__IISAN_MAX_LAYERS);
    int n = 0;
    if (c->kept_layers == NULL) {
        MMREC_FAIL_IF_FOR(func, c->layer_stride < 1, MMREC_EINVAL,
                          "cfg->layer_stride is %d, must be >= 1 (cfg->kept_layers is NULL)",
                          c->layer_stride);
        for (int l = 0; l < c->num_layers; l += c->layer_stride) kept[n++] = l;
    } else {
        MMREC_FAIL_IF_FOR(func, c->num_kept < 1 || c->num_kept > c->num_layers, MMREC_EINVAL,
                          "cfg->num_kept is %d, must be in [1, cfg->num_layers = %d]",
                          c->num_kept, c->num_layers);
        for (int i = 0; i < c->num_kept; i++) {
            int l = c->kept_layers[i];
            MMREC_FAIL_IF_FOR(func, l < 0 || l >= c->num_layers, MMREC_EINVAL,
                              "cfg->kept_layers[%d] is %d, must be in [0, %d) (cfg->num_layers)",
                              i, l, c->num_layers);
            MMREC_FAIL_IF_FOR(func, i > 0 && l <= kept[i - 1], MMREC_EINVAL,
                              "cfg->kept_layers[%d] is %d, must be above kept_layers[%d] = %d",
                              i, l, i - 1, kept[i - 1]);
            kept[n++] = l;
        }
    }
    MMREC_FAIL_IF_FOR(func, c->remove_first != 0 && n < 2, MMREC_EINVAL,
                      "cfg->remove_first is set with %d kept layer: the adapters need another",
                      n);
    *num_kept = n;
    return MMREC_OK;
}

mmrec_status mmrec_iisan_item_encoder_create(mmrec_model *model, const char *name,
                                             const mmrec_iisan_item_encoder_config *cfg,
                                             mmrec_module **out) {
    mmrec__create cr;
    MMREC_FORWARD_IF(mmrec__create_begin(&cr, model, name, cfg, __func__));
    mmrec_iisan_item_encoder_config c = mmrec__iisan_defaults;
    MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_iisan_item_encoder_config, &c, cfg));
    int kept[MMREC__IISAN_MAX_LAYERS], num_kept = 0;
    MMREC_FORWARD_IF(mmrec__iisan_check_config(&c, kept, &num_kept));
    mmrec__iisan *m = mmrec__calloc(1, sizeof *m);
    mmrec_status s = MMREC_OK;
    if (m) {
        c.kept_layers = NULL; /* borrowed: the copy is kept[] */
        c.num_kept = num_kept;
        m->cfg = c;
        memcpy(m->kept, kept, sizeof kept);
        m->num_kept = num_kept;
        mmrec_iisan_mode mode = c.mode;
        m->use[MMREC__IISAN_TEXT] = mode == MMREC_IISAN_INTRA_INTER || mode == MMREC_IISAN_INTRA ||
                                    mode == MMREC_IISAN_TEXT;
        m->use[MMREC__IISAN_IMAGE] = mode == MMREC_IISAN_INTRA_INTER ||
                                     mode == MMREC_IISAN_INTRA || mode == MMREC_IISAN_IMAGE;
        m->use[MMREC__IISAN_INTER] = mode == MMREC_IISAN_INTRA_INTER || mode == MMREC_IISAN_INTER;
        s = mmrec__iisan_parts(m, model, name);
    }
    return mmrec__create_end(&cr, s, m ? &m->base : NULL, "iisan_item_encoder", name, NULL, out);
}

/* ---- forward ---- */

/* States [rows.., L, H]: 3 or 4 dims, L = K or num_layers, H = hidden_dim;
 * `other` (may be NULL) the other modality's, whose leading dims must
 * match. */
static mmrec_status mmrec__iisan_check_states(const mmrec__iisan *m, const char *what,
                                              const mmrec_tensor *t, const mmrec_tensor *other,
                                              const char *other_what) {
    const char *func = "mmrec_iisan_item_encoder_forward";
    char s[64], so[64];
    int nd = t->ndim;
    if (nd != 3 && nd != 4)
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "%s is %s, expected [n, layers, %lld] or "
                                "[batch, seq, layers, %lld]",
                                what, mmrec__shape_str(t, s, sizeof s),
                                (long long)m->cfg.hidden_dim, (long long)m->cfg.hidden_dim);
    if (t->shape[nd - 1] != m->cfg.hidden_dim)
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "%s is %s, its last dim must be %lld (cfg->hidden_dim)", what,
                                mmrec__shape_str(t, s, sizeof s), (long long)m->cfg.hidden_dim);
    int64_t L = t->shape[nd - 2];
    if (L != m->num_kept && L != m->cfg.num_layers)
        return mmrec__set_error(MMREC_ESHAPE, func,
                                "%s is %s: %lld layers, expected %d (the kept layers) or %d "
                                "(cfg->num_layers)",
                                what, mmrec__shape_str(t, s, sizeof s), (long long)L, m->num_kept,
                                m->cfg.num_layers);
    if (other) {
        bool same = other->ndim == nd;
        for (int i = 0; same && i < nd - 2; i++) same = other->shape[i] == t->shape[i];
        if (!same)
            return mmrec__set_error(MMREC_ESHAPE, func,
                                    "%s is %s and %s is %s: their leading dims differ",
                                    other_what, mmrec__shape_str(other, so, sizeof so), what,
                                    mmrec__shape_str(t, s, sizeof s));
    }
    return MMREC_OK;
}

static mmrec_status mmrec__iisan_run(const mmrec__iisan *m, mmrec_tape *tape, const char *func,
                                     mmrec_tensor *text, mmrec_tensor *image,
                                     mmrec_tensor **out) {
    static const int order[3] = {MMREC__IISAN_IMAGE, MMREC__IISAN_TEXT, MMREC__IISAN_INTER};
    mmrec_tensor *emb[3];
    int n = 0;
    for (int i = 0; i < 3; i++) {
        int w = order[i];
        if (!m->use[w]) continue;
        mmrec_tensor *a = w == MMREC__IISAN_TEXT ? text : image;
        mmrec_tensor *b = w == MMREC__IISAN_INTER ? text : NULL, *h;
        MMREC_FORWARD_IF(
            mmrec__san_forward(&m->san[w], tape, func, m->kept, m->num_kept, a, b, &h));
        MMREC_FORWARD_IF(
            mmrec__lin2_forward(&m->head[w][0], &m->head[w][1], tape, func, h, &emb[n]));
        n++;
    }
    mmrec_tensor *x = emb[0];
    if (n > 1) MMREC_FORWARD_IF(mmrec_concat(tape, emb, n, -1, &x));
    return mmrec__lin_forward(&m->fusion, tape, func, x, out);
}

mmrec_status mmrec_iisan_item_encoder_forward(mmrec_module *encoder, mmrec_tape *tape,
                                              mmrec_tensor *text_states,
                                              mmrec_tensor *image_states, mmrec_tensor **out) {
    MMREC_CHECK_MODULE(encoder, "iisan_item_encoder");
    MMREC_CHECK_TAPE(tape);
    const mmrec__iisan *m = (const mmrec__iisan *)encoder;
    bool text = m->use[MMREC__IISAN_TEXT] || m->use[MMREC__IISAN_INTER];
    bool image = m->use[MMREC__IISAN_IMAGE] || m->use[MMREC__IISAN_INTER];
    if (text) MMREC_CHECK_TENSOR_ON(text_states, tape);
    if (image) MMREC_CHECK_TENSOR_ON(image_states, tape);
    MMREC_CHECK_NULL(out);
    if (text)
        MMREC_FORWARD_IF(mmrec__iisan_check_states(m, "text_states", text_states, NULL, NULL));
    if (image)
        MMREC_FORWARD_IF(mmrec__iisan_check_states(m, "image_states", image_states,
                                                   text ? text_states : NULL, "text_states"));
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__iisan_run(m, tape, __func__, text ? text_states : NULL,
                                      image ? image_states : NULL, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}
