/* Writes the files of tests/compat/0.1/, which every later libmmrec must
 * still read (tests/test_compat.c). This program was run against libmmrec
 * 0.1.0 and its output committed; it is not built by `make test`, and it
 * refuses to run against any other version. What the files hold is in
 * recipe_0.1.h.
 *
 *   checkpoint_adamw.mmrc      mmrec_checkpoint_save after steps 0..4: the
 *                              parameters and the AdamW state (step count,
 *                              moments, both groups' lr and weight decay)
 *   checkpoint_adamw.expected  "saved/<param>": the parameters in that
 *                              checkpoint; "resumed/<param>": the parameters
 *                              after step 5 taken from it; "last_grad_norm";
 *                              records of u32 name length, name, u32 ndim,
 *                              i64 shape[ndim], f32 data (the golden format)
 *   model.mmrc                 mmrec_model_save after step 5
 *   features.mmfc              the feature cache (mmrec_cache_writer_*)
 *
 * Built and run from the top of the tree at release 0.1.0:
 *   make lib/libmmrec.a
 *   cc -std=c11 -O2 -Iinclude -o build/make_files_0.1 tests/compat/make_files_0.1.c \
 *       lib/libmmrec.a $(pkg-config --libs openblas) -lm -lpthread
 *   build/make_files_0.1 tests/compat/0.1 */
#define _POSIX_C_SOURCE 200809L
#include "recipe_0.1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHECK(call)                                                                      \
    do {                                                                                 \
        mmrec_status s_ = (call);                                                        \
        if (s_ != MMREC_OK) {                                                            \
            fprintf(stderr, "%s:%d: %s: %s (%s)\n", __FILE__, __LINE__, #call,           \
                    mmrec_status_name(s_), mmrec_last_error());                          \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

static void die(const char *what) {
    fprintf(stderr, "make_files_0.1: %s\n", what);
    exit(1);
}

/* The model's parameters, concatenated in creation order. */
static float *params_of(const compat01_run *r, size_t *n_out) {
    size_t count, total = 0;
    CHECK(mmrec_model_param_count(r->model, NULL, &total));
    CHECK(mmrec_model_num_params(r->model, &count));
    float *all = malloc(total * sizeof *all), *p = all;
    if (all == NULL) die("out of memory");
    for (size_t i = 0; i < count; i++) {
        mmrec_tensor *t;
        size_t n;
        CHECK(mmrec_model_param_at(r->model, i, NULL, &t));
        CHECK(mmrec_tensor_numel(t, &n));
        CHECK(mmrec_tensor_copy_to(t, p, n));
        p += n;
    }
    *n_out = total;
    return all;
}

static void put_record(FILE *f, const char *name, int ndim, const int64_t *shape,
                       const float *data) {
    uint32_t len = (uint32_t)strlen(name), nd = (uint32_t)ndim;
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    if (fwrite(&len, 4, 1, f) != 1 || fwrite(name, 1, len, f) != len ||
        fwrite(&nd, 4, 1, f) != 1 || fwrite(shape, 8, (size_t)ndim, f) != (size_t)ndim ||
        fwrite(data, 4, n, f) != n)
        die("cannot write the expected file");
}

/* One record "<prefix>/<name>" per parameter. */
static void put_params(FILE *f, const compat01_run *r, const char *prefix) {
    size_t count;
    CHECK(mmrec_model_num_params(r->model, &count));
    for (size_t i = 0; i < count; i++) {
        const char *name;
        mmrec_tensor *t;
        int ndim;
        int64_t shape[MMREC_MAX_DIMS];
        const float *data;
        CHECK(mmrec_model_param_at(r->model, i, &name, &t));
        CHECK(mmrec_tensor_shape(t, &ndim, shape));
        CHECK(mmrec_tensor_data_const(t, &data));
        char rec[128];
        snprintf(rec, sizeof rec, "%s/%s", prefix, name);
        put_record(f, rec, ndim, shape, data);
    }
}

static void write_checkpoints(const char *dir) {
    char ckpt[512], expected[512], model[512];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint_adamw.mmrc", dir);
    snprintf(expected, sizeof expected, "%s/checkpoint_adamw.expected", dir);
    snprintf(model, sizeof model, "%s/model.mmrc", dir);

    compat01_run a, c;
    CHECK(compat01_build(&a, COMPAT01_SEED, COMPAT01_LR, COMPAT01_ITEM_LR));
    for (int t = 0; t < COMPAT01_SAVED_STEPS; t++) CHECK(compat01_step(&a, t));
    CHECK(mmrec_checkpoint_save(a.model, a.opt, ckpt));

    FILE *f = fopen(expected, "wb");
    if (f == NULL) die("cannot create the expected file");
    put_params(f, &a, "saved");
    float norm;
    CHECK(mmrec_optimizer_last_grad_norm(a.opt, &norm));
    int64_t one = 1;
    put_record(f, "last_grad_norm", 1, &one, &norm);
    size_t n;
    float *saved = params_of(&a, &n);

    CHECK(compat01_step(&a, COMPAT01_SAVED_STEPS));
    put_params(f, &a, "resumed");
    if (fclose(f) != 0) die("cannot write the expected file");
    CHECK(mmrec_model_save(a.model, model));
    float *resumed = params_of(&a, &n);

    /* The same step from the checkpoint, in a model built from another seed,
     * gives the same bits; and it would not without the optimizer state. */
    CHECK(compat01_build(&c, COMPAT01_SEED + 1, 0.5f, 0.5f));
    CHECK(mmrec_checkpoint_load(c.model, c.opt, ckpt));
    CHECK(compat01_step(&c, COMPAT01_SAVED_STEPS));
    float *again = params_of(&c, &n);
    if (memcmp(again, resumed, n * sizeof *again) != 0) die("the resumed step differs");
    compat01_free(&c);
    CHECK(compat01_build(&c, COMPAT01_SEED + 1, COMPAT01_LR, COMPAT01_ITEM_LR));
    CHECK(mmrec_checkpoint_load(c.model, NULL, ckpt));
    CHECK(compat01_step(&c, COMPAT01_SAVED_STEPS));
    free(again);
    again = params_of(&c, &n);
    if (memcmp(again, resumed, n * sizeof *again) == 0)
        die("a step without the optimizer state gives the same parameters");
    if (memcmp(saved, resumed, n * sizeof *saved) == 0) die("step 5 changed nothing");
    printf("checkpoint: %zu parameter values, last grad norm %.9g\n", n, (double)norm);
    free(saved);
    free(resumed);
    free(again);
    compat01_free(&c);
    compat01_free(&a);
}

static void write_cache(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/features.mmfc", dir);
    int64_t ids[COMPAT01_ITEMS];
    for (int r = 0; r < COMPAT01_ITEMS; r++) ids[r] = compat01_item_id((13 * r) % COMPAT01_ITEMS);
    static const struct {
        const char *name;
        mmrec_cache_dtype dtype;
        int dim;
    } fields[3] = {{"image", MMREC_CACHE_F32, COMPAT01_IMAGE_DIM},
                   {"text", MMREC_CACHE_F16, COMPAT01_TEXT_DIM},
                   {"hidden", MMREC_CACHE_BF16, COMPAT01_HIDDEN_DIM}};
    mmrec_cache_writer *w;
    CHECK(mmrec_cache_writer_create(path, ids, COMPAT01_ITEMS, &w));
    float data[COMPAT01_ITEMS * COMPAT01_HIDDEN_DIM];
    for (int k = 0; k < 3; k++) {
        for (int r = 0; r < COMPAT01_ITEMS; r++)
            for (int j = 0; j < fields[k].dim; j++)
                data[r * fields[k].dim + j] = compat01_value(k, ids[r], j);
        CHECK(mmrec_cache_writer_add(w, fields[k].name, fields[k].dtype, data, fields[k].dim));
    }
    CHECK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    printf("cache: %d items, fields image f32 [16], text f16 [12], hidden bf16 [4, 6]\n",
           COMPAT01_ITEMS);
}

int main(int argc, char **argv) {
    if (argc != 2) die("usage: make_files_0.1 <output directory>");
    if (strncmp(mmrec_version_string(), "0.1.", 4) != 0 || MMREC_VERSION_MINOR != 1)
        die("this program writes the files of release 0.1: build it against libmmrec 0.1.x");
    mkdir(argv[1], 0755);
    CHECK(mmrec_set_num_threads(1));
    write_checkpoints(argv[1]);
    write_cache(argv[1]);
    printf("wrote %s with libmmrec %s\n", argv[1], mmrec_version_string());
    return 0;
}
