/* distill: distilling a joint teacher into a two-tower student on real
 * data, one student per distillation method of distill.h.
 *
 * The student is the logq two-tower model of twotower.c (the same towers,
 * widths and loss): item(i) = MLP(content(i)) + id(i), the user
 * MLP''(mean of hist(j) over its last HIST items), scored by cosine over a
 * temperature of 0.05 and trained with the in-batch softmax with the logQ
 * correction (streaming frequency estimator) and accidental hits removed.
 *
 * The teacher sees both sides: a joint Transformer over the sequence
 * [candidate, hist_1 .. hist_HIST] of its own item tokens
 * (MLP_t(content) + id_t, plus a learned position), one post-LN layer
 * (2 heads, feed-forward 256, GELU), padding keys masked, and the score a
 * linear map of the candidate token's output; as only that output is
 * read, the layer computes the candidate's row alone
 * (mmrec_transformer_forward_rows: the other tokens cost only their keys
 * and values). The candidate attends to each history item, which no pair
 * of towers can do: the teacher cannot serve a corpus by vector search,
 * but it can re-rank a short list.
 * It scores CANDS = 8 candidates per training row, the row's target and
 * the targets of the next 7 rows of the batch (popularity-distributed
 * negatives), and trains first, alone, on the softmax over them (logQ
 * corrected with the same estimator, accidental hits masked).
 *
 * Students, each from the same initial weights and on the same batches:
 *   alone  the student's own loss L_s only (the baseline)
 *   kl     L_s + lambda KL(softmax(teacher) || softmax(student)) over the
 *          row's CANDS candidates (mmrec_distill_kl, ColBERTv2's form:
 *          both temperatures 1, the teacher detached); the student's
 *          scores are its cosines over 0.05
 *   pfd    PFD's on-the-fly scheme: a fresh teacher trains beside the
 *          student on its own loss L_t, and the student adds the soft-label
 *          BCE of its scores against the teacher's probabilities
 *          sigmoid(t) (mmrec_distill_logits), weight lambda 0.5 after half
 *          an epoch of warm-up (mmrec_distill_warmup_weight):
 *          (1 - lambda) L_s + lambda L_d + L_t, the teacher detached in L_d
 *   gam    ENDX's geometry alignment (mmrec_distill_gam): the in-batch
 *          similarity distributions of the student's user and item vectors
 *          (q-a, a-a, a-q, q-q) pulled towards those of the teacher's
 *          (its mean history token, its candidate token), cosine over 0.05
 *   trmd   feature regression (TRMD): the mean squared error of the
 *          student's L2-normalized user and item vectors to the teacher's
 *          (mmrec_loss_mse, the target not differentiated); one teacher
 *          here, so no summed scores
 *   virt   VIRT's attention-map L2: the teacher's attention of the
 *          candidate token over the history tokens (its map, head-averaged,
 *          mmrec_transformer_forward_probs, renormalized over the history)
 *          against the student's virtual attention, the softmax over the
 *          history of <item(candidate), hist(j)> / sqrt(d)
 *          (mmrec_distill_attn, MMREC_DISTILL_ATTN_L2)
 *   dide   the same maps with the Distilled Dual-Encoder's KL
 *          (MMREC_DISTILL_ATTN_KL)
 * kl, gam, trmd, virt and dide use the pretrained teacher, frozen (its
 * outputs come from an inference tape), with lambda = 1 (--lambda).
 *
 * Data, protocol and evaluation as twotower.c (seq_data.h): leave-one-out,
 * full ranking of every item, the user's earlier items excluded,
 * Recall@20 / NDCG@20 on a fixed sample of --valid-users validation users
 * after each epoch, test on every user at the best validation epoch. The
 * teacher is measured by re-ranking: the student-alone model's top
 * RERANK = 100 items of each user, re-scored by the teacher; a target
 * outside that list is a miss (its validation picks the teacher's epoch).
 *
 * Results (Amazon Scientific, default options, seed 2024; test at the
 * best validation epoch; the teacher's figures are re-ranking):
 *   model    best epoch  valid R@20  test R@10   R@20    N@10    N@20
 *   alone         5        0.0970     0.0493   0.0681  0.0291  0.0339
 *   kl            8        0.1247     0.0535   0.0790  0.0326  0.0389
 *   pfd           6        0.1120     0.0507   0.0720  0.0306  0.0360
 *   gam           7        0.0900     0.0484   0.0658  0.0290  0.0334
 *   trmd          7        0.0963     0.0481   0.0643  0.0294  0.0334
 *   virt          5        0.0983     0.0492   0.0667  0.0295  0.0339
 *   dide          7        0.0997     0.0504   0.0654  0.0312  0.0350
 *   teacher       8        0.1137     0.0558   0.0783  0.0327  0.0384
 * The teacher re-ranking the student's top 100 is 15% above the student
 * (Recall@20 0.0783 against 0.0681; the noise of 12,076 test users is
 * about 0.0023), so it has something to teach. Score distillation is what
 * carries it over: KL over the teacher's 8 candidates lifts the student
 * by 16% (0.0790, level with the teacher's re-ranking, with no teacher at
 * serving time) and PFD's on-the-fly BCE by 6% (its teacher starts from
 * scratch beside the student). The methods that match representations or
 * attention rather than scores do not help: geometry alignment, VIRT's L2
 * and the DiDE attention KL are within about one noise unit below the
 * student alone, the feature regression 0.0038 below. Their teacher
 * signals (the teacher's input token embeddings, its attention of the
 * candidate over five history items) say little about the ranking that
 * the student's own loss does not; lambda was not tuned for any method.
 * The same teacher with the candidate last and every row computed (the
 * same model, other random draws) gives the same picture: kl 0.0788, pfd 0.0730, the others 0.0632 to
 * 0.0682, teacher 0.0808. The run takes about 10 minutes on 2 cores.

 * Usage: distill [data dir] [--epochs N] [--teacher-epochs N] [--batch B]
 *                [--lr LR] [--lambda L] [--valid-users N] [--methods LIST]
 *                [--cache PATH] [--threads T] [--seed S] [--synthetic]
 * Defaults: 10 epochs (teacher: the same), batch 256, lr 1e-3, 3,000
 * validation users, methods kl,pfd,gam,trmd,virt,dide. The table and the
 * last line go to stdout:
 *   RESULT distill student=<alone's test R@20> student_kd_best=<the best
 *     method's> method=<its name> teacher_rerank=<the teacher's R@20
 *     re-ranking alone's top 100> ... seconds=...
 * Progress (a bar per epoch, then each epoch's figures) goes to stderr. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mmrec/mmrec.h>

#include "example_util.h"
#include "seq_data.h"
#include "text_encoder.h"

#define DIM 64         /* the towers' and the teacher's width */
#define HIDDEN 128     /* the hidden width of every MLP */
#define HIST 5         /* history items a user is made of (its last ones) */
#define SEQ (HIST + 1) /* the teacher's sequence: history, candidate */
#define CANDS 8        /* candidates per row the teacher scores */
#define HEADS 2
#define FFN 256
#define TEMPERATURE 0.05f
#define RERANK 100

/* ---- the models ---- */

typedef struct student {
    mmrec_module *item_mlp, *item_id, *hist_mlp, *hist_id, *user_mlp;
} student;

typedef struct teacher {
    mmrec_module *mlp, *id, *pos, *layer, *out;
} teacher;

static void mlp_create(mmrec_model *m, const char *name, int64_t in, int64_t out,
                       mmrec_module **mod) {
    int64_t sizes[3] = {in, HIDDEN, out};
    mmrec_mlp_config mc;
    CHECK(mmrec_mlp_config_init(&mc));
    mc.num_sizes = 3;
    mc.sizes = sizes;
    CHECK(mmrec_mlp_create(m, name, &mc, mod));
}

static void embedding_create(mmrec_model *m, const char *name, int64_t rows, float std,
                             mmrec_module **mod) {
    mmrec_embedding_config ec;
    CHECK(mmrec_embedding_config_init(&ec));
    ec.num_rows = rows;
    ec.dim = DIM;
    ec.init_std = std;
    CHECK(mmrec_embedding_create(m, name, &ec, mod));
}

static void student_create(mmrec_model *m, const data *d, student *s) {
    mlp_create(m, "item.mlp", d->dim_features, DIM, &s->item_mlp);
    mlp_create(m, "hist.mlp", d->dim_features, DIM, &s->hist_mlp);
    mlp_create(m, "user.mlp", DIM, DIM, &s->user_mlp);
    embedding_create(m, "item.id", d->num_items + 1, 0.01f, &s->item_id);
    embedding_create(m, "hist.id", d->num_items + 1, 0.01f, &s->hist_id);
}

static void teacher_create(mmrec_model *m, const data *d, teacher *t) {
    mlp_create(m, "teacher.mlp", d->dim_features, DIM, &t->mlp);
    embedding_create(m, "teacher.id", d->num_items + 1, 0.01f, &t->id);
    embedding_create(m, "teacher.pos", SEQ, 0.02f, &t->pos);
    mmrec_transformer_config tc;
    CHECK(mmrec_transformer_config_init(&tc));
    tc.dim = DIM;
    tc.num_heads = HEADS;
    tc.ffn_dim = FFN;
    CHECK(mmrec_transformer_create(m, "teacher.layer", &tc, &t->layer));
    mmrec_linear_config lc;
    CHECK(mmrec_linear_config_init(&lc));
    lc.in_dim = DIM;
    lc.out_dim = 1;
    CHECK(mmrec_linear_create(m, "teacher.out", &lc, &t->out));
}

/* A batch of B rows: their histories, targets and the buffers the
 * losses need, allocated once. */
typedef struct batch {
    size_t size;          /* B */
    int64_t *hist;        /* [B, HIST] history ids, 0 = padding on the left */
    float *weight;        /* [B, HIST] the mean's weights (0 at padding) */
    float *hist_mask;     /* [B, HIST] 1 at real history items */
    int64_t *targets;     /* [B] */
    float *p;             /* [B] P(target in a batch), the estimator's */
    float *logq;          /* [B] -log p */
    int64_t *cand;        /* [B, CANDS] candidate ids of each row */
    int64_t *cand_col;    /* [B, CANDS] their columns (b + c) % B */
    int64_t *cand_row;    /* [B, CANDS] b */
    int64_t *zeros;       /* [B] the positive's column, 0 */
    uint8_t *cand_keep;   /* [B, CANDS] 0: an accidental hit */
    float *cand_bias;     /* [B, CANDS] -log p of the candidate */
    int64_t *seq_index;   /* [B CANDS SEQ] token rows for the teacher */
    float *seq_mask;      /* [B CANDS, SEQ] its key mask */
    int64_t *pos_ids;     /* [SEQ] 0 .. SEQ - 1 */
    int64_t *pair_index;  /* [B CANDS] rows of the [B B, HIST] attention logits */
    float *pair_mask;     /* [B CANDS, HIST] row r's history mask, per candidate */
    float *teacher_out;   /* [B, CANDS] the frozen teacher's scores */
    float *teacher_q, *teacher_a; /* [B, DIM] its user and item embeddings */
    float *teacher_attn;  /* [B CANDS, HIST] its candidate-to-history attention */
} batch;

static void batch_alloc(batch *b, size_t B, size_t cands) {
    memset(b, 0, sizeof *b);
    b->size = B;
    size_t BC = B * cands;
    b->hist = xmalloc(B * HIST * sizeof *b->hist);
    b->weight = xmalloc(B * HIST * sizeof *b->weight);
    b->hist_mask = xmalloc(B * HIST * sizeof *b->hist_mask);
    b->targets = xmalloc(BC * sizeof *b->targets); /* re-ranking puts BC ids here */
    b->p = xmalloc(B * sizeof *b->p);
    b->logq = xmalloc(B * sizeof *b->logq);
    b->cand = xmalloc(BC * sizeof *b->cand);
    b->cand_col = xmalloc(BC * sizeof *b->cand_col);
    b->cand_row = xmalloc(BC * sizeof *b->cand_row);
    b->zeros = xcalloc(B, sizeof *b->zeros);
    b->cand_keep = xmalloc(BC);
    b->cand_bias = xmalloc(BC * sizeof *b->cand_bias);
    b->seq_index = xmalloc(BC * SEQ * sizeof *b->seq_index);
    b->seq_mask = xmalloc(BC * SEQ * sizeof *b->seq_mask);
    b->pos_ids = xmalloc(SEQ * sizeof *b->pos_ids);
    for (int t = 0; t < SEQ; t++) b->pos_ids[t] = t;
    b->pair_index = xmalloc(BC * sizeof *b->pair_index);
    b->pair_mask = xmalloc(BC * HIST * sizeof *b->pair_mask);
    b->teacher_out = xmalloc(BC * sizeof *b->teacher_out);
    b->teacher_q = xmalloc(B * DIM * sizeof *b->teacher_q);
    b->teacher_a = xmalloc(B * DIM * sizeof *b->teacher_a);
    b->teacher_attn = xmalloc(BC * HIST * sizeof *b->teacher_attn);
}

static void batch_free(batch *b) {
    free(b->hist), free(b->weight), free(b->hist_mask), free(b->targets), free(b->p);
    free(b->logq), free(b->cand), free(b->cand_col), free(b->cand_row), free(b->zeros);
    free(b->cand_keep), free(b->cand_bias), free(b->seq_index), free(b->seq_mask);
    free(b->pos_ids), free(b->pair_index), free(b->pair_mask), free(b->teacher_out);
    free(b->teacher_q), free(b->teacher_a), free(b->teacher_attn);
}

/* The teacher's token layout for `cands` candidates per row, candidate
 * (r, c) being row cand_src[r cands + c] of the candidate table: token
 * rows into concat(history tokens [B HIST], candidate tokens [n_src]),
 * the candidate first (position 0), then the history. */
static void batch_sequences(batch *b, size_t cands, const int64_t *cand_src) {
    size_t B = b->size;
    for (size_t r = 0; r < B; r++)
        for (size_t c = 0; c < cands; c++) {
            size_t s = r * cands + c;
            b->seq_index[s * SEQ] = (int64_t)(B * HIST) + cand_src[s];
            b->seq_mask[s * SEQ] = 1.0f;
            for (size_t t = 0; t < HIST; t++) {
                b->seq_index[s * SEQ + 1 + t] = (int64_t)(r * HIST + t);
                b->seq_mask[s * SEQ + 1 + t] = b->hist_mask[r * HIST + t];
            }
        }
}

/* The training candidates: row r's c-th is the target of row (r + c) % B
 * (c = 0: its own), their -log p, and the accidental hits masked. */
static void batch_candidates(batch *b) {
    size_t B = b->size;
    for (size_t r = 0; r < B; r++)
        for (size_t c = 0; c < CANDS; c++) {
            size_t s = r * CANDS + c, col = (r + c) % B;
            b->cand_col[s] = (int64_t)col;
            b->cand_row[s] = (int64_t)r;
            b->cand[s] = b->targets[col];
            b->cand_bias[s] = b->logq[col];
            b->cand_keep[s] = c == 0 || b->targets[col] != b->targets[r];
            b->pair_index[s] = (int64_t)(col * B + r);
            for (size_t t = 0; t < HIST; t++)
                b->pair_mask[s * HIST + t] = b->hist_mask[r * HIST + t];
        }
    batch_sequences(b, CANDS, b->cand_col);
}

/* The teacher's outputs on `tape` for the batch's histories and
 * cands candidates per row (batch_sequences): scores [B, cands]; with
 * probs, the head-averaged attention of each candidate token over the
 * history tokens [B cands, HIST] (not renormalized); with q and a, its
 * user embedding (the weighted mean of its history tokens) [B, DIM] and
 * its candidate tokens [n_src, DIM]. */
static mmrec_tensor *teacher_forward(teacher *t, mmrec_tensor *features, mmrec_tape *tape,
                                     batch *b, size_t cands, const int64_t *cand_ids,
                                     size_t n_src, mmrec_tensor **probs, mmrec_tensor **q,
                                     mmrec_tensor **a) {
    size_t B = b->size, BC = B * cands;
    mmrec_tensor *eh = tower_encode(features, tape, t->mlp, t->id, b->hist, B * HIST);
    mmrec_tensor *ec = tower_encode(features, tape, t->mlp, t->id, cand_ids, n_src);
    mmrec_tensor *parts[2] = {eh, ec}, *all, *x, *x3, *pos, *xp, *mask, *y, *p, *last, *s;
    CHECK(mmrec_concat(tape, parts, 2, 0, &all));
    CHECK(mmrec_gather_rows(tape, all, b->seq_index, BC * SEQ, &x));
    int64_t xs[3] = {(int64_t)BC, SEQ, DIM}, ms[2] = {(int64_t)BC, SEQ};
    CHECK(mmrec_reshape(tape, x, 3, xs, &x3));
    CHECK(mmrec_embedding_forward(t->pos, tape, b->pos_ids, SEQ, &pos));
    CHECK(mmrec_add(tape, x3, pos, &xp));
    CHECK(mmrec_tape_wrap(tape, b->seq_mask, 2, ms, MMREC_TENSOR_READONLY, &mask));
    if (probs) {
        mmrec_tensor *rows, *all_rows;
        CHECK(mmrec_transformer_forward_probs(t->layer, tape, xp, mask, MMREC_ATTN_PROBS_AVERAGE,
                                              &all_rows, &p));
        CHECK(mmrec_slice(tape, p, 1, 0, 1, &rows));       /* the candidate's row */
        CHECK(mmrec_slice(tape, rows, 2, 1, HIST, probs)); /* over the history */
        CHECK(mmrec_slice(tape, all_rows, 1, 0, 1, &y));
    } else { /* only the candidate's output is read: its row alone */
        CHECK(mmrec_transformer_forward_rows(t->layer, tape, xp, mask, 1, &y));
    }
    last = y;
    int64_t ls[2] = {(int64_t)BC, DIM}, ss[2] = {(int64_t)B, (int64_t)cands};
    mmrec_tensor *l2, *o;
    CHECK(mmrec_reshape(tape, last, 2, ls, &l2));
    CHECK(mmrec_linear_forward(t->out, tape, l2, &o));
    CHECK(mmrec_reshape(tape, o, 2, ss, &s));
    if (q) {
        mmrec_tensor *h3, *w, *hw;
        int64_t hs[3] = {(int64_t)B, HIST, DIM}, ws[3] = {(int64_t)B, HIST, 1};
        CHECK(mmrec_reshape(tape, eh, 3, hs, &h3));
        CHECK(mmrec_tape_wrap(tape, b->weight, 3, ws, MMREC_TENSOR_READONLY, &w));
        CHECK(mmrec_mul(tape, h3, w, &hw));
        CHECK(mmrec_sum(tape, hw, 1, q));
        *a = ec;
    }
    return s;
}

/* The teacher's own loss on the training candidates: softmax over each
 * row's CANDS scores plus -log p of the candidate, the positive at column
 * 0, accidental hits masked. */
static mmrec_tensor *teacher_loss(mmrec_tape *tape, mmrec_tensor *scores, batch *b) {
    mmrec_tensor *bias, *biased, *loss;
    int64_t shape[2] = {(int64_t)b->size, CANDS};
    CHECK(mmrec_tape_wrap(tape, b->cand_bias, 2, shape, MMREC_TENSOR_READONLY, &bias));
    CHECK(mmrec_add(tape, scores, bias, &biased));
    mmrec_batch_softmax_config c;
    CHECK(mmrec_batch_softmax_config_init(&c));
    c.positives = b->zeros;
    c.mask = b->cand_keep;
    CHECK(mmrec_loss_batch_softmax_logits(tape, biased, &c, &loss));
    return loss;
}

/* The student's vectors: items [count, DIM]; users [B, DIM] from the
 * batch's histories, and (hist3) the history items' vectors [B, HIST,
 * DIM] they pool. */
static mmrec_tensor *student_items(student *s, mmrec_tensor *features, mmrec_tape *tape,
                                   const int64_t *ids, size_t count) {
    return tower_encode(features, tape, s->item_mlp, s->item_id, ids, count);
}

static mmrec_tensor *student_users(student *s, mmrec_tensor *features, mmrec_tape *tape,
                                   const int64_t *hist, float *weight, size_t B,
                                   mmrec_tensor **hist3) {
    mmrec_tensor *u, *pooled = history_mean(features, tape, s->hist_mlp, s->hist_id, hist,
                                            weight, B, HIST, DIM, hist3);
    CHECK(mmrec_mlp_forward(s->user_mlp, tape, pooled, &u));
    return u;
}

/* The student's loss L_s: logQ-corrected in-batch softmax of cosines over
 * the temperature, accidental hits removed. */
static mmrec_tensor *student_loss(mmrec_tape *tape, mmrec_tensor *u, mmrec_tensor *v, batch *b) {
    mmrec_batch_softmax_config c;
    CHECK(mmrec_batch_softmax_config_init(&c));
    c.temperature = TEMPERATURE;
    c.normalize = 1;
    c.candidate_ids = b->targets;
    c.column_bias = b->logq;
    mmrec_tensor *loss;
    CHECK(mmrec_loss_batch_softmax(tape, u, v, &c, &loss));
    return loss;
}

/* The student's scores of the training candidates, [B, CANDS]: the cosine
 * of user r and the item of column (r + c) % B, over the temperature. */
static mmrec_tensor *student_cand_scores(mmrec_tape *tape, mmrec_tensor *u, mmrec_tensor *v,
                                         batch *b) {
    size_t BC = b->size * CANDS;
    mmrec_tensor *ur, *vc, *s, *out;
    CHECK(mmrec_gather_rows(tape, u, b->cand_row, BC, &ur));
    CHECK(mmrec_gather_rows(tape, v, b->cand_col, BC, &vc));
    mmrec_twotower_config tc;
    CHECK(mmrec_twotower_config_init(&tc));
    tc.score = MMREC_SCORE_COSINE;
    tc.temperature = TEMPERATURE;
    CHECK(mmrec_twotower_score_paired(tape, ur, vc, &tc, &s));
    int64_t shape[2] = {(int64_t)b->size, CANDS};
    CHECK(mmrec_reshape(tape, s, 2, shape, &out));
    return out;
}

/* The student's virtual attention of each candidate over the row's
 * history: softmax_j(<v_cand, h_j> / sqrt(DIM)) over the real history
 * items, [B CANDS, 1, HIST]. */
static mmrec_tensor *student_virtual_attention(mmrec_tape *tape, mmrec_tensor *v,
                                               mmrec_tensor *h3, batch *b) {
    size_t B = b->size, BC = B * CANDS;
    mmrec_tensor *h2, *logits, *l2, *pairs, *scaled, *mask, *p, *out;
    int64_t hs[2] = {(int64_t)(B * HIST), DIM}, ls[2] = {(int64_t)(B * B), HIST};
    int64_t ms[2] = {(int64_t)BC, HIST}, os[3] = {(int64_t)BC, 1, HIST};
    CHECK(mmrec_reshape(tape, h3, 2, hs, &h2));
    CHECK(mmrec_matmul(tape, v, h2, MMREC_TRANS_B, &logits)); /* [B, B HIST] */
    CHECK(mmrec_reshape(tape, logits, 2, ls, &l2));            /* row j B + r */
    CHECK(mmrec_gather_rows(tape, l2, b->pair_index, BC, &pairs));
    CHECK(mmrec_scale(tape, pairs, 1.0f / sqrtf((float)DIM), &scaled));
    CHECK(mmrec_tape_wrap(tape, b->pair_mask, 2, ms, MMREC_TENSOR_READONLY, &mask));
    CHECK(mmrec_softmax(tape, scaled, mask, &p));
    CHECK(mmrec_reshape(tape, p, 3, os, &out));
    return out;
}

/* ---- the runs: one model trained one way ---- */

enum method { M_ALONE, M_KL, M_PFD, M_GAM, M_TRMD, M_VIRT, M_DIDE, M_TEACHER, NUM_METHODS };
static const char *const method_names[NUM_METHODS] = {"alone", "kl",   "pfd",  "gam",
                                                      "trmd",  "virt", "dide", "teacher"};

typedef struct run {
    int method;
    const data *d;
    mmrec_model *model;   /* the student, the teacher, or both (pfd) */
    student s;
    teacher t;
    mmrec_module *freq;   /* streaming frequency estimator (logQ) */
    mmrec_optimizer *opt;
    mmrec_tensor *features;
    int64_t step;
} run;

static void run_create(run *r, const data *d, int method, float lr, uint64_t seed) {
    memset(r, 0, sizeof *r);
    r->method = method;
    r->d = d;
    CHECK(mmrec_model_create(&r->model));
    CHECK(mmrec_model_seed(r->model, seed));
    int64_t fs[2] = {d->num_items + 1, d->dim_features};
    CHECK(mmrec_tensor_wrap(d->features, 2, fs, MMREC_TENSOR_READONLY, &r->features));
    if (method != M_TEACHER) student_create(r->model, d, &r->s);
    if (method == M_TEACHER || method == M_PFD) teacher_create(r->model, d, &r->t);
    logq_training_create(r->model, lr, &r->freq, &r->opt);
}

static void run_free(run *r) {
    mmrec_optimizer_destroy(r->opt);
    mmrec_tensor_destroy(r->features);
    mmrec_model_destroy(r->model);
}

/* Fills the batch from B samples: histories, targets, the estimator's
 * probabilities (updated first with the batch's targets), candidates. */
static void batch_fill(batch *b, run *r, const sample *samples, const size_t *order) {
    const data *d = r->d;
    for (size_t i = 0; i < b->size; i++) {
        const sample *sm = &samples[order[i]];
        const int64_t *seq = d->items + d->off[sm->user];
        history(seq, sm->t, HIST, b->hist + i * HIST, b->weight + i * HIST);
        b->targets[i] = seq[sm->t];
    }
    for (size_t k = 0; k < b->size * HIST; k++) b->hist_mask[k] = b->hist[k] != 0;
    CHECK(mmrec_freq_estimator_update(r->freq, b->targets, b->size, ++r->step));
    CHECK(mmrec_freq_estimator_probability(r->freq, b->targets, b->size, b->p));
    for (size_t j = 0; j < b->size; j++) b->logq[j] = -logf(b->p[j]);
    batch_candidates(b);
}

/* The frozen teacher's outputs for the batch, into its buffers: scores,
 * and what `method` needs (embeddings L2-normalized for trmd; attention
 * rows renormalized over the history). */
static void frozen_teacher(run *t, mmrec_tape *ttape, batch *b, int method) {
    size_t B = b->size, BC = B * CANDS;
    int attn = method == M_VIRT || method == M_DIDE, emb = method == M_GAM || method == M_TRMD;
    mmrec_tensor *probs = NULL, *q = NULL, *a = NULL;
    mmrec_tensor *s = teacher_forward(&t->t, t->features, ttape, b, CANDS, b->targets, B,
                                      attn ? &probs : NULL, emb ? &q : NULL, emb ? &a : NULL);
    CHECK(mmrec_tensor_copy_to(s, b->teacher_out, BC));
    if (attn) {
        CHECK(mmrec_tensor_copy_to(probs, b->teacher_attn, BC * HIST));
        for (size_t k = 0; k < BC; k++) {
            float *row = b->teacher_attn + k * HIST, sum = 0;
            for (size_t j = 0; j < HIST; j++) sum += row[j];
            for (size_t j = 0; j < HIST; j++) row[j] = sum > 0 ? row[j] / sum : 0.0f;
        }
    }
    if (emb) {
        CHECK(mmrec_tensor_copy_to(q, b->teacher_q, B * DIM));
        CHECK(mmrec_tensor_copy_to(a, b->teacher_a, B * DIM));
        for (size_t k = 0; method == M_TRMD && k < 2 * B; k++) {
            float *row = (k < B ? b->teacher_q : b->teacher_a) + (k % B) * DIM;
            double n2 = 0;
            for (size_t j = 0; j < DIM; j++) n2 += (double)row[j] * row[j];
            float inv = 1.0f / fmaxf((float)sqrt(n2), 1e-12f);
            for (size_t j = 0; j < DIM; j++) row[j] *= inv;
        }
    }
    mmrec_tape_reset(ttape);
}

static mmrec_tensor *wrap(mmrec_tape *tape, float *values, int ndim, const int64_t *shape) {
    mmrec_tensor *t;
    CHECK(mmrec_tape_wrap(tape, values, ndim, shape, MMREC_TENSOR_READONLY, &t));
    return t;
}

static mmrec_tensor *add(mmrec_tape *tape, mmrec_tensor *a, mmrec_tensor *b, float wb) {
    mmrec_tensor *sb, *out;
    CHECK(mmrec_scale(tape, b, wb, &sb));
    CHECK(mmrec_add(tape, a, sb, &out));
    return out;
}

/* One training step's loss (the file's first comment: the methods);
 * pfd's warm-up is half of steps_per_epoch. */
static mmrec_tensor *step_loss(run *r, mmrec_tape *tape, batch *b, float lambda,
                               size_t steps_per_epoch) {
    size_t B = b->size, BC = B * CANDS;
    if (r->method == M_TEACHER)
        return teacher_loss(tape,
                            teacher_forward(&r->t, r->features, tape, b, CANDS, b->targets, B,
                                            NULL, NULL, NULL),
                            b);
    mmrec_tensor *h3, *u = student_users(&r->s, r->features, tape, b->hist, b->weight, B, &h3);
    mmrec_tensor *v = student_items(&r->s, r->features, tape, b->targets, B);
    mmrec_tensor *ls = student_loss(tape, u, v, b), *dl;
    int64_t sc[2] = {(int64_t)B, CANDS}, ss[2] = {(int64_t)B, DIM};
    int64_t as[3] = {(int64_t)BC, 1, HIST};
    switch (r->method) {
    case M_KL:
        CHECK(mmrec_distill_kl(tape, student_cand_scores(tape, u, v, b),
                               wrap(tape, b->teacher_out, 2, sc), NULL, &dl));
        return add(tape, ls, dl, lambda);
    case M_PFD: {
        mmrec_tensor *t = teacher_forward(&r->t, r->features, tape, b, CANDS, b->targets, B, NULL,
                                          NULL, NULL);
        mmrec_tensor *lt = teacher_loss(tape, t, b), *ls_w;
        float w = mmrec_distill_warmup_weight(r->step - 1, (int64_t)steps_per_epoch / 2, 0.5f);
        CHECK(mmrec_distill_logits(tape, student_cand_scores(tape, u, v, b), t, NULL, &dl));
        CHECK(mmrec_scale(tape, ls, 1.0f - w, &ls_w));
        return add(tape, add(tape, ls_w, dl, w), lt, 1.0f);
    }
    case M_GAM: {
        mmrec_distill_gam_config gc;
        CHECK(mmrec_distill_gam_config_init(&gc));
        gc.similarity = MMREC_DISTILL_COSINE;
        gc.temperature = TEMPERATURE;
        CHECK(mmrec_distill_gam(tape, u, v, wrap(tape, b->teacher_q, 2, ss),
                                wrap(tape, b->teacher_a, 2, ss), &gc, &dl));
        return add(tape, ls, dl, lambda);
    }
    case M_TRMD: {
        mmrec_tensor *nu, *nv, *lu, *lv;
        CHECK(mmrec_l2_normalize(tape, u, 1e-12f, &nu));
        CHECK(mmrec_l2_normalize(tape, v, 1e-12f, &nv));
        CHECK(mmrec_loss_mse(tape, nu, wrap(tape, b->teacher_q, 2, ss), &lu));
        CHECK(mmrec_loss_mse(tape, nv, wrap(tape, b->teacher_a, 2, ss), &lv));
        return add(tape, add(tape, ls, lu, lambda), lv, lambda);
    }
    case M_VIRT:
    case M_DIDE: {
        mmrec_distill_attn_config ac;
        CHECK(mmrec_distill_attn_config_init(&ac));
        ac.kind = r->method == M_VIRT ? MMREC_DISTILL_ATTN_L2 : MMREC_DISTILL_ATTN_KL;
        CHECK(mmrec_distill_attn(tape, student_virtual_attention(tape, v, h3, b),
                                 wrap(tape, b->teacher_attn, 3, as), &ac, &dl));
        return add(tape, ls, dl, lambda);
    }
    default:
        return ls;
    }
}

/* ---- evaluation ---- */

/* The RERANK best of N scores (item i at index i - 1), best first, equal
 * scores ranking the lower id first; the user's history items (seq[0 ..
 * len)) are excluded: their scores are overwritten with -inf. */
static void top_items(float *scores, size_t N, const int64_t *seq, size_t len, int64_t *top) {
    for (size_t j = 0; j < len; j++) scores[seq[j] - 1] = -INFINITY;
    float best[RERANK];
    size_t n = 0;
    for (size_t i = 0; i < N; i++) {
        float s = scores[i];
        if (n == RERANK && !(s > best[n - 1])) continue; /* ties keep the lower id */
        size_t k = n < RERANK ? n++ : n - 1;
        while (k > 0 && s > best[k - 1]) {
            best[k] = best[k - 1];
            top[k] = top[k - 1];
            k--;
        }
        best[k] = s;
        top[k] = (int64_t)i + 1;
    }
    for (size_t k = n; k < RERANK; k++) top[k] = top[0]; /* fewer items than RERANK */
}

/* The student's full-ranking metrics on e; with top, also each user's
 * RERANK best items (ids, history excluded, best first) [U, RERANK]. */
static metrics student_eval(run *r, mmrec_tape *tape, const eval_set *e, int64_t *top) {
    const data *d = r->d;
    const size_t chunk = 2048, users = 256, U = e->num_users, N = (size_t)d->num_items;
    float *item_table = xmalloc(N * DIM * sizeof *item_table);
    float *user_table = xmalloc(U * DIM * sizeof *user_table);
    int64_t *ids = xmalloc(chunk * sizeof *ids);
    float *weight = xmalloc(users * HIST * sizeof *weight);
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    for (size_t first = 0; first < N; first += chunk) {
        size_t c = N - first < chunk ? N - first : chunk;
        for (size_t i = 0; i < c; i++) ids[i] = (int64_t)(first + i + 1);
        mmrec_tensor *v = student_items(&r->s, r->features, tape, ids, c);
        CHECK(mmrec_tensor_copy_to(v, item_table + first * DIM, c * DIM));
        mmrec_tape_reset(tape);
    }
    for (size_t first = 0; first < U; first += users) {
        size_t c = U - first < users ? U - first : users;
        for (size_t b = 0; b < c; b++) {
            int64_t u = e->users[first + b];
            history(d->items + d->off[u], user_len(d, u) - e->back, HIST, ids + b * HIST,
                    weight + b * HIST);
        }
        mmrec_tensor *q = student_users(&r->s, r->features, tape, ids, weight, c, NULL);
        CHECK(mmrec_tensor_copy_to(q, user_table + first * DIM, c * DIM));
        mmrec_tape_reset(tape);
    }
    metrics m = rank_vectors(user_table, item_table, e, d->num_items, DIM, TEMPERATURE);
    if (top) { /* the serving vectors' inner products, users at a time */
        float *scores = xmalloc(users * N * sizeof *scores);
        int64_t is[2] = {(int64_t)N, DIM};
        for (size_t first = 0; first < U; first += users) {
            size_t c = U - first < users ? U - first : users;
            int64_t qs[2] = {(int64_t)c, DIM};
            mmrec_tensor *s;
            CHECK(mmrec_matmul(tape, wrap(tape, user_table + first * DIM, 2, qs),
                               wrap(tape, item_table, 2, is), MMREC_TRANS_B, &s));
            CHECK(mmrec_tensor_copy_to(s, scores, c * N));
            mmrec_tape_reset(tape);
            for (size_t b = 0; b < c; b++) {
                int64_t u = e->users[first + b];
                const int64_t *seq = d->items + d->off[u];
                top_items(scores + b * N, N, seq, user_len(d, u) - e->back,
                          top + (first + b) * RERANK);
            }
        }
        free(scores);
    }
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_TRAIN));
    free(item_table);
    free(user_table);
    free(ids);
    free(weight);
    return m;
}

/* The teacher's metrics re-ranking the lists top [U, RERANK] of e's users:
 * the target's rank among the list by the teacher's scores (equal scores:
 * the lower id first); a target not in the list is a miss. */
static metrics teacher_rerank(run *t, mmrec_tape *tape, batch *b, const eval_set *e,
                              const int64_t *top) {
    const data *d = t->d;
    const size_t B = b->size, per = B * CANDS / RERANK, U = e->num_users;
    float *scores = xmalloc(per * RERANK * sizeof *scores);
    metrics m = {0};
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_INFERENCE));
    for (size_t s = 0; s < per * RERANK; s++) b->cand_col[s] = (int64_t)s;
    for (size_t first = 0; first < U; first += per) {
        size_t c = U - first < per ? U - first : per;
        b->size = c;
        for (size_t k = 0; k < c; k++) {
            int64_t u = e->users[first + k];
            history(d->items + d->off[u], user_len(d, u) - e->back, HIST, b->hist + k * HIST,
                    b->weight + k * HIST);
        }
        for (size_t k = 0; k < c * HIST; k++) b->hist_mask[k] = b->hist[k] != 0;
        batch_sequences(b, RERANK, b->cand_col);
        const int64_t *list = top + first * RERANK;
        mmrec_tensor *sc = teacher_forward(&t->t, t->features, tape, b, RERANK, list, c * RERANK,
                                           NULL, NULL, NULL);
        CHECK(mmrec_tensor_copy_to(sc, scores, c * RERANK));
        mmrec_tape_reset(tape);
        for (size_t k = 0; k < c; k++) {
            int64_t u = e->users[first + k];
            int64_t target = d->items[d->off[u] + user_len(d, u) - e->back];
            const int64_t *l = list + k * RERANK;
            const float *sk = scores + k * RERANK;
            size_t at = RERANK;
            for (size_t j = 0; j < RERANK && at == RERANK; j++)
                if (l[j] == target) at = j;
            if (at == RERANK) continue;
            size_t above = 0;
            for (size_t j = 0; j < RERANK; j++) {
                int dup = 0; /* a short list repeats its first item */
                for (size_t i = 0; i < j && !dup; i++) dup = l[i] == l[j];
                if (!dup && (sk[j] > sk[at] || (sk[j] == sk[at] && l[j] < target))) above++;
            }
            double gain = 1.0 / log2((double)above + 2.0);
            if (above < 10) m.recall10 += 1, m.ndcg10 += gain;
            if (above < 20) m.recall20 += 1, m.ndcg20 += gain;
        }
    }
    b->size = B;
    CHECK(mmrec_tape_set_mode(tape, MMREC_TAPE_TRAIN));
    m.recall10 /= (double)U, m.recall20 /= (double)U, m.ndcg10 /= (double)U, m.ndcg20 /= (double)U;
    free(scores);
    return m;
}

/* ---- training ---- */

typedef struct result {
    int ran, best_epoch;
    double valid_recall20, train_seconds;
    metrics test; /* at the best validation epoch */
} result;

/* What a run is measured against: the evaluation sets, and for the
 * teacher the student-alone lists it re-ranks. */
typedef struct setting {
    const data *d;
    const sample *samples;
    size_t n_samples, batch;
    const eval_set *valid, *test;
    int64_t *top_valid, *top_test; /* filled by the alone run */
    run *teacher;                  /* the pretrained teacher, frozen */
    float lr, lambda;
    uint64_t seed;
} setting;

static metrics measure(run *r, mmrec_tape *tape, batch *b, const setting *st, const eval_set *e,
                       int64_t *top) {
    if (r->method == M_TEACHER)
        return teacher_rerank(r, tape, b, e, e == st->valid ? st->top_valid : st->top_test);
    return student_eval(r, tape, e, top);
}

/* Trains r for `epochs` epochs, each followed by validation; ends with
 * the best epoch's parameters in the model and its test metrics. */
static result train(run *r, const setting *st, int epochs) {
    const char *name = method_names[r->method];
    size_t trainable, B = st->batch, steps = st->n_samples / B;
    CHECK(mmrec_model_param_count(r->model, &trainable, NULL));
    fprintf(stderr, "%s: %zu trainable parameters\n", name, trainable);
    float *best = xmalloc(trainable * sizeof *best);
    mmrec_tape *tape, *ttape;
    CHECK(mmrec_tape_create(&tape));
    CHECK(mmrec_tape_seed(tape, st->seed + 1));
    CHECK(mmrec_tape_create(&ttape));
    CHECK(mmrec_tape_set_mode(ttape, MMREC_TAPE_INFERENCE));
    batch b;
    batch_alloc(&b, B, CANDS);
    size_t *order = xmalloc(st->n_samples * sizeof *order);
    for (size_t k = 0; k < st->n_samples; k++) order[k] = k;
    uint64_t rs = st->seed ^ 0xD1B54A32D192ED03ull;
    int tty = isatty(2), frozen = r->method != M_ALONE && r->method != M_PFD &&
                                  r->method != M_TEACHER;
    result res = {0};
    res.ran = 1;
    res.valid_recall20 = -1;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        for (size_t k = st->n_samples - 1; k > 0; k--) { /* shuffle */
            size_t j = (size_t)(rng_next(&rs) % (uint64_t)(k + 1));
            size_t t = order[k];
            order[k] = order[j];
            order[j] = t;
        }
        double loss_sum = 0, t0 = now();
        for (size_t s = 0; s < steps; s++) {
            batch_fill(&b, r, st->samples, order + s * B);
            if (frozen) frozen_teacher(st->teacher, ttape, &b, r->method);
            mmrec_tensor *loss = step_loss(r, tape, &b, st->lambda, steps);
            const float *lv;
            CHECK(mmrec_tensor_data_const(loss, &lv));
            loss_sum += lv[0];
            CHECK(mmrec_tape_backward(tape, loss));
            CHECK(mmrec_optimizer_step(r->opt));
            mmrec_tape_reset(tape);
            progress(name, epoch, s + 1, steps, loss_sum / (double)(s + 1), tty, 8);
        }
        double train_s = now() - t0;
        res.train_seconds += train_s;
        if (tty) fprintf(stderr, "\r%78s\r", "");
        double t1 = now();
        metrics mv = measure(r, tape, &b, st, st->valid, NULL);
        const char *mark = "";
        if (mv.recall20 > res.valid_recall20) {
            res.valid_recall20 = mv.recall20;
            res.best_epoch = epoch;
            CHECK(mmrec_model_export_params(r->model, best, trainable));
            mark = " *";
        }
        fprintf(stderr,
                "  %-8s epoch %3d loss %.4f valid recall@20 %.4f ndcg@20 %.4f "
                "(train %.1f s, eval %.1f s)%s\n",
                name, epoch, loss_sum / (double)steps, mv.recall20, mv.ndcg20, train_s,
                now() - t1, mark);
    }
    CHECK(mmrec_model_import_params(r->model, best, trainable));
    res.test = measure(r, tape, &b, st, st->test, r->method == M_ALONE ? st->top_test : NULL);
    if (r->method == M_ALONE) /* the lists the teacher re-ranks */
        (void)student_eval(r, tape, st->valid, st->top_valid);
    fprintf(stderr, "%s: best epoch %d, test recall@20 %.4f ndcg@20 %.4f\n", name,
            res.best_epoch, res.test.recall20, res.test.ndcg20);
    free(best);
    free(order);
    batch_free(&b);
    mmrec_tape_destroy(ttape);
    mmrec_tape_destroy(tape);
    return res;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *dir = "../shared/data/iisan-scientific", *cache_path = "twotower_text.mmfc";
    const char *list = "kl,pfd,gam,trmd,virt,dide";
    int epochs = 10, teacher_epochs = 0, threads = 0, synthetic = 0;
    size_t batch_size = 256, valid_users = 3000;
    float lr = 1e-3f, lambda = 1.0f;
    uint64_t seed = 2024;
    const opt_spec specs[] = {
        {"--epochs", OPT_INT, &epochs},
        {"--teacher-epochs", OPT_INT, &teacher_epochs},
        {"--batch", OPT_SIZE, &batch_size},
        {"--valid-users", OPT_SIZE, &valid_users},
        {"--lr", OPT_FLOAT, &lr},
        {"--lambda", OPT_FLOAT, &lambda},
        {"--methods", OPT_STR, &list},
        {"--cache", OPT_STR, &cache_path},
        {"--threads", OPT_INT, &threads},
        {"--seed", OPT_U64, &seed},
        {"--synthetic", OPT_FLAG, &synthetic},
    };
    if (!parse_options(argc, argv, specs, sizeof specs / sizeof *specs, &dir,
                       "[data dir] [--epochs N] [--teacher-epochs N] [--batch B] [--lr LR] "
                       "[--lambda L] [--valid-users N] [--methods LIST] [--cache PATH] "
                       "[--threads T] [--seed S] [--synthetic]"))
        return 2;
    if (teacher_epochs == 0) teacher_epochs = epochs;
    if (epochs < 1 || teacher_epochs < 1 || batch_size < 16 || !(lr > 0) || !(lambda >= 0)) {
        fprintf(stderr, "--epochs >= 1, --teacher-epochs >= 1, --batch >= 16, --lr > 0, "
                        "--lambda >= 0\n");
        return 2;
    }
    if (threads > 0) CHECK(mmrec_set_num_threads(threads));
    double t0 = now();
    data d;
    memset(&d, 0, sizeof d);
    if (synthetic) data_synthetic(&d, seed);
    else data_read(&d, dir, cache_path);
    size_t n_samples;
    sample *samples = make_samples(&d, &n_samples);
    if (n_samples < batch_size) {
        fprintf(stderr, "%zu training samples, fewer than a batch of %zu\n", n_samples,
                batch_size);
        return 1;
    }
    eval_set valid, test;
    eval_sets_make(&d, valid_users, seed, &valid, &test);
    fprintf(stderr,
            "training: %zu samples, batch %zu, %d epochs (teacher %d), %d candidates a row "
            "for the teacher, lambda %.2f\n",
            n_samples, batch_size, epochs, teacher_epochs, CANDS, (double)lambda);
    setting st = {&d, samples, n_samples, batch_size, &valid, &test,
                  xmalloc(valid.num_users * RERANK * sizeof(int64_t)),
                  xmalloc(test.num_users * RERANK * sizeof(int64_t)), NULL, lr, lambda, seed};

    result res[NUM_METHODS] = {{0}};
    run r;
    run_create(&r, &d, M_ALONE, lr, seed);
    res[M_ALONE] = train(&r, &st, epochs);
    run_free(&r);
    run tr;
    run_create(&tr, &d, M_TEACHER, lr, seed + 7);
    res[M_TEACHER] = train(&tr, &st, teacher_epochs);
    st.teacher = &tr;
    for (int m = M_KL; m < M_TEACHER; m++) {
        if (!listed(list, method_names[m])) continue;
        run_create(&r, &d, m, lr, seed);
        res[m] = train(&r, &st, epochs);
        run_free(&r);
    }

    printf("\n%-8s %5s %11s %10s %10s %10s %10s %9s\n", "model", "best", "valid R@20",
           "test R@10", "R@20", "N@10", "N@20", "train s");
    int best = M_ALONE;
    for (int m = 0; m < NUM_METHODS; m++) {
        if (!res[m].ran) continue;
        printf("%-8s %5d %11.4f %10.4f %10.4f %10.4f %10.4f %9.1f\n", method_names[m],
               res[m].best_epoch, res[m].valid_recall20, res[m].test.recall10,
               res[m].test.recall20, res[m].test.ndcg10, res[m].test.ndcg20,
               res[m].train_seconds);
        if (m != M_ALONE && m != M_TEACHER &&
            (best == M_ALONE || res[m].test.recall20 > res[best].test.recall20))
            best = m;
    }
    printf("(teacher: re-ranking alone's top %d; the students: full ranking)\n", RERANK);
    printf("RESULT distill%s student=%.4f student_kd_best=%.4f method=%s teacher_rerank=%.4f",
           synthetic ? "_synthetic" : "", res[M_ALONE].test.recall20, res[best].test.recall20,
           method_names[best], res[M_TEACHER].test.recall20);
    for (int m = M_KL; m < M_TEACHER; m++)
        if (res[m].ran) printf(" %s=%.4f", method_names[m], res[m].test.recall20);
    printf(" seconds=%.1f\n", now() - t0);

    run_free(&tr);
    free(st.top_valid);
    free(st.top_test);
    eval_set_free(&valid);
    eval_set_free(&test);
    free(samples);
    data_free(&d);
    return 0;
}
