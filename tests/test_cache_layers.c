/* Feature cache, [L, H] records: writing them from memory and from 3-D
 * .npy files in the three storage types, their shape, full and kept-layer
 * gathers (kept rows equal to the full gather's bit for bit, for any thread
 * count), missing ids, bad arguments, the stored layer count in the file
 * (0.1 files read as one layer), the 16-bit widening against its closed
 * form for every bit pattern and against torch's roundings
 * (tests/golden/cache_layers.bin), allocation failures and malloc-free steady
 * state. */
#include "mt.h"
#include "cache/cache_internal.h"
#include "io/io_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

MT_SUITE(cache_layers_suite)

/* ---- helpers ---- */

static const mmrec_cache_dtype mt_dtypes[3] = {MMREC_CACHE_F32, MMREC_CACHE_F16,
                                               MMREC_CACHE_BF16};
static const char *const mt_dtype_names[3] = {"f32", "f16", "bf16"};

/* What a value becomes once stored as `dtype` and gathered. */
static float mt_stored(mmrec_cache_dtype dtype, float x) {
    if (dtype == MMREC_CACHE_F16) return mmrec__cache_f16_to_f32(mmrec__cache_f32_to_f16(x));
    if (dtype == MMREC_CACHE_BF16) return mmrec__cache_bf16_to_f32(mmrec__cache_f32_to_bf16(x));
    return x;
}

static bool mt_same_bits(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* A tape tensor's shape as "[a, b, c]" checks and its data. */
static const float *mt_tensor_3d(const mmrec_tensor *t, int64_t d0, int64_t d1, int64_t d2) {
    int ndim;
    int64_t shape[MMREC_MAX_DIMS];
    MT_OK(mmrec_tensor_shape(t, &ndim, shape));
    ck_assert_int_eq(ndim, 3);
    ck_assert_int_eq(shape[0], d0);
    ck_assert_int_eq(shape[1], d1);
    ck_assert_int_eq(shape[2], d2);
    const float *d;
    MT_OK(mmrec_tensor_data_const(t, &d));
    return d;
}

/* Writes an .npy file (format 1.0) with header dict `dict` and `size`
 * bytes of data. */
static void mt_npy_write(const char *path, const char *dict, const void *data, size_t size) {
    size_t len = strlen(dict), header = (10 + len + 1 + 63) / 64 * 64 - 10;
    unsigned char *buf = calloc(10 + header + size, 1);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(header & 0xff);
    buf[9] = (unsigned char)(header >> 8);
    memset(buf + 10, ' ', header);
    memcpy(buf + 10, dict, len);
    buf[10 + header - 1] = '\n';
    if (size) memcpy(buf + 10 + header, data, size);
    mt_write_file(path, buf, 10 + header + size);
    free(buf);
}

/* A [rows, layers, width] .npy file of `values` as '<f4', '<f2' or '>f8'. */
static void mt_npy_3d(const char *path, const char *descr, const float *values, size_t rows,
                      size_t layers, size_t width) {
    char dict[160];
    snprintf(dict, sizeof dict,
             "{'descr': '%s', 'fortran_order': False, 'shape': (%zu, %zu, %zu), }", descr, rows,
             layers, width);
    size_t n = rows * layers * width, elem = (size_t)(descr[2] - '0');
    unsigned char *bytes = malloc(n * elem);
    ck_assert_ptr_nonnull(bytes);
    for (size_t i = 0; i < n; i++) {
        if (elem == 4) {
            memcpy(bytes + 4 * i, &values[i], 4);
        } else if (elem == 2) {
            uint16_t h = mmrec__cache_f32_to_f16(values[i]);
            bytes[2 * i] = (unsigned char)(h & 0xff);
            bytes[2 * i + 1] = (unsigned char)(h >> 8);
        } else {
            double d = values[i];
            uint64_t u;
            memcpy(&u, &d, 8);
            for (int b = 0; b < 8; b++)
                bytes[8 * i + (size_t)b] = (unsigned char)(u >> (56 - 8 * b));
        }
    }
    mt_npy_write(path, dict, bytes, n * elem);
    free(bytes);
}

/* ---- round trips ---- */

enum { MT_N = 9, MT_L = 5, MT_H = 7 };
static const int64_t mt_ids[MT_N] = {70, 3, 1000, 41, 8, 555, 12, 90, 6}; /* sparse, unordered */

/* Checks every item's record of `field` against `want` ([MT_N, MT_L, MT_H]
 * in the order of mt_ids) through the full layered gather, the flat gather
 * and both gathers into memory. */
static void mt_expect_field(const mmrec_cache *c, const char *field, const float *want) {
    int64_t layers = 0, width = 0, dim = 0;
    MT_OK(mmrec_cache_field_shape(c, field, &layers, &width));
    ck_assert_int_eq(layers, MT_L);
    ck_assert_int_eq(width, MT_H);
    MT_OK(mmrec_cache_field_dim(c, field, &dim));
    ck_assert_int_eq(dim, MT_L * MT_H);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *full, *flat;
    MT_OK(mmrec_cache_gather_layers(c, tape, field, mt_ids, MT_N, NULL, &full, NULL));
    const float *d = mt_tensor_3d(full, MT_N, MT_L, MT_H);
    for (size_t i = 0; i < (size_t)MT_N * MT_L * MT_H; i++)
        ck_assert_msg(memcmp(&d[i], &want[i], sizeof *d) == 0, "%s[%zu] is %a, want %a", field,
                      i, (double)d[i], (double)want[i]);
    MT_OK(mmrec_cache_gather(c, tape, field, mt_ids, MT_N, &flat));
    const float *f;
    MT_OK(mmrec_tensor_data_const(flat, &f));
    ck_assert(mt_same_bits(f, d, (size_t)MT_N * MT_L * MT_H));
    static float mem[MT_N * MT_L * MT_H], mem2[MT_N * MT_L * MT_H];
    MT_OK(mmrec_cache_gather_layers_into(c, field, mt_ids, MT_N, NULL, mem, NULL));
    ck_assert(mt_same_bits(mem, d, (size_t)MT_N * MT_L * MT_H));
    MT_OK(mmrec_cache_gather_into(c, field, mt_ids, MT_N, 0, mem2, NULL));
    ck_assert(mt_same_bits(mem2, d, (size_t)MT_N * MT_L * MT_H));
    mmrec_tape_destroy(tape);
}

START_TEST(test_cache_layers_round_trip_from_memory_in_every_dtype) {
    mt_tmp_dir();
    const char *path = mt_file(0, "l.mmfc");
    static float data[MT_N * MT_L * MT_H], want[3][MT_N * MT_L * MT_H];
    mt_fill_uniform(data, MT_N * MT_L * MT_H, -3, 3, 5);
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, mt_ids, MT_N, &w));
    for (int k = 0; k < 3; k++) {
        MT_OK(mmrec_cache_writer_add_layers(w, mt_dtype_names[k], mt_dtypes[k], data, MT_L, MT_H));
        for (size_t i = 0; i < (size_t)MT_N * MT_L * MT_H; i++)
            want[k][i] = mt_stored(mt_dtypes[k], data[i]);
    }
    /* a vector field beside them, and [1, H] written as layers */
    MT_OK(mmrec_cache_writer_add(w, "vec", MMREC_CACHE_F16, data, 4));
    MT_OK(mmrec_cache_writer_add_layers(w, "one", MMREC_CACHE_F32, data, 1, 6));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);

    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    for (int k = 0; k < 3; k++) {
        mt_expect_field(c, mt_dtype_names[k], want[k]);
        const char *name;
        int64_t dim;
        mmrec_cache_dtype dtype;
        MT_OK(mmrec_cache_field_info(c, k, &name, &dim, &dtype));
        ck_assert_str_eq(name, mt_dtype_names[k]);
        ck_assert_int_eq(dim, MT_L * MT_H);
        ck_assert_int_eq(dtype, mt_dtypes[k]);
    }
    /* f32 comes back exactly; 16-bit within half a unit in the last place */
    for (size_t i = 0; i < (size_t)MT_N * MT_L * MT_H; i++) {
        ck_assert(want[0][i] == data[i]);
        ck_assert(fabsf(want[1][i] - data[i]) <= ldexpf(fabsf(data[i]), -11));
        ck_assert(fabsf(want[2][i] - data[i]) <= ldexpf(fabsf(data[i]), -8));
    }
    /* vector fields are [1, dim] and gather as such */
    const char *vec_fields[2] = {"vec", "one"};
    const int64_t vec_dims[2] = {4, 6};
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (int k = 0; k < 2; k++) {
        int64_t layers = 0, width = 0;
        MT_OK(mmrec_cache_field_shape(c, vec_fields[k], &layers, &width));
        ck_assert_int_eq(layers, 1);
        ck_assert_int_eq(width, vec_dims[k]);
        mmrec_tensor *t, *flat;
        int64_t keep0 = 0;
        mmrec_cache_gather_config cfg;
        MT_OK(mmrec_cache_gather_config_init(&cfg));
        cfg.keep = &keep0;
        cfg.n_keep = 1;
        MT_OK(mmrec_cache_gather_layers(c, tape, vec_fields[k], mt_ids, MT_N, &cfg, &t, NULL));
        const float *d = mt_tensor_3d(t, MT_N, 1, vec_dims[k]);
        MT_OK(mmrec_cache_gather(c, tape, vec_fields[k], mt_ids, MT_N, &flat));
        const float *f;
        MT_OK(mmrec_tensor_data_const(flat, &f));
        ck_assert(mt_same_bits(d, f, (size_t)(MT_N * vec_dims[k])));
        for (int64_t j = 0; j < vec_dims[k]; j++)
            ck_assert(d[j] == mt_stored(k ? MMREC_CACHE_F32 : MMREC_CACHE_F16, data[j]));
    }
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

/* tests/golden/cache_layers.bin (make_golden.py::write_cache_layers):
 * records written from float32 in each storage type gather as torch's
 * x.half().float() and x.bfloat16().float(), bit for bit, every layer and
 * the kept ones, on a tape and into memory. */
START_TEST(test_cache_layers_gathers_match_torch_roundings_bitwise) {
    mt_golden gold;
    mt_golden_load(&gold, "cache_layers.bin");
    const mt_array *x = mt_golden_get(&gold, "cache_layers.x");
    const mt_array *gid = mt_golden_get(&gold, "cache_layers.ids");
    const mt_array *gg = mt_golden_get(&gold, "cache_layers.gather");
    const mt_array *gk = mt_golden_get(&gold, "cache_layers.keep");
    ck_assert_int_eq(x->ndim, 3);
    const size_t n = (size_t)x->shape[0], m = gg->numel, n_keep = gk->numel;
    const int64_t L = x->shape[1], H = x->shape[2];
    int64_t ids[16], gather[16], keep[16];
    ck_assert(n <= 16 && m <= 16 && n_keep <= 16 && gid->numel == n);
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)gid->data[i];
    for (size_t i = 0; i < m; i++) gather[i] = (int64_t)gg->data[i];
    for (size_t i = 0; i < n_keep; i++) keep[i] = (int64_t)gk->data[i];

    mt_tmp_dir();
    const char *path = mt_file(0, "g.mmfc");
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, ids, n, &w));
    for (int k = 0; k < 3; k++)
        MT_OK(mmrec_cache_writer_add_layers(w, mt_dtype_names[k], mt_dtypes[k], x->data, L, H));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);

    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_cache_gather_config cfg;
    MT_OK(mmrec_cache_gather_config_init(&cfg));
    cfg.keep = keep;
    cfg.n_keep = n_keep;
    static float mem[16 * 64 * 64];
    ck_assert((size_t)(m * (size_t)L * (size_t)H) <= sizeof mem / sizeof *mem);
    for (int k = 0; k < 3; k++) {
        char key[64];
        snprintf(key, sizeof key, "cache_layers.%s.all", mt_dtype_names[k]);
        const mt_array *all = mt_golden_get(&gold, key);
        snprintf(key, sizeof key, "cache_layers.%s.kept", mt_dtype_names[k]);
        const mt_array *kept = mt_golden_get(&gold, key);
        ck_assert_uint_eq(all->numel, m * (size_t)L * (size_t)H);
        ck_assert_uint_eq(kept->numel, m * n_keep * (size_t)H);
        mmrec_tensor *t;
        MT_OK(mmrec_cache_gather_layers(c, tape, mt_dtype_names[k], gather, m, NULL, &t, NULL));
        const float *d = mt_tensor_3d(t, (int64_t)m, L, H);
        for (size_t i = 0; i < all->numel; i++)
            ck_assert_msg(memcmp(&d[i], &all->data[i], sizeof *d) == 0,
                          "%s all[%zu] is %a, torch gives %a", mt_dtype_names[k], i,
                          (double)d[i], (double)all->data[i]);
        MT_OK(mmrec_cache_gather_layers(c, tape, mt_dtype_names[k], gather, m, &cfg, &t, NULL));
        d = mt_tensor_3d(t, (int64_t)m, (int64_t)n_keep, H);
        for (size_t i = 0; i < kept->numel; i++)
            ck_assert_msg(memcmp(&d[i], &kept->data[i], sizeof *d) == 0,
                          "%s kept[%zu] is %a, torch gives %a", mt_dtype_names[k], i,
                          (double)d[i], (double)kept->data[i]);
        MT_OK(mmrec_cache_gather_layers_into(c, mt_dtype_names[k], gather, m, &cfg, mem, NULL));
        ck_assert(mt_same_bits(mem, kept->data, kept->numel));
        mmrec_tape_reset(tape);
    }
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
    mt_golden_free(&gold);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_cache_layers_round_trip_from_3d_npy) {
    mt_tmp_dir();
    const char *path = mt_file(0, "n.mmfc"), *npy = mt_file(1, "h.npy");
    static float data[MT_N * MT_L * MT_H], want[MT_N * MT_L * MT_H];
    mt_fill_uniform(data, MT_N * MT_L * MT_H, -2, 2, 6);
    /* exact in float16: the .npy's '<f2' loses nothing */
    for (size_t i = 0; i < (size_t)MT_N * MT_L * MT_H; i++)
        data[i] = mt_stored(MMREC_CACHE_F16, data[i]);
    const char *descr[3] = {"<f4", "<f2", ">f8"};
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, mt_ids, MT_N, &w));
    for (int k = 0; k < 3; k++) {
        mt_npy_3d(npy, descr[k], data, MT_N, MT_L, MT_H);
        MT_OK(mmrec_cache_writer_add_npy(w, mt_dtype_names[k], mt_dtypes[k], npy));
    }
    /* a record longer than the import's 64 KiB chunk: read in parts */
    enum { BL = 3, BH = 3000 };
    float *big = malloc((size_t)MT_N * BL * BH * sizeof *big);
    mt_fill_uniform(big, (size_t)MT_N * BL * BH, -1, 1, 7);
    mt_npy_3d(npy, ">f8", big, MT_N, BL, BH);
    MT_OK(mmrec_cache_writer_add_npy(w, "big", MMREC_CACHE_BF16, npy));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);

    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < (size_t)MT_N * MT_L * MT_H; i++)
            want[i] = mt_stored(mt_dtypes[k], data[i]);
        mt_expect_field(c, mt_dtype_names[k], want);
    }
    int64_t layers, width;
    MT_OK(mmrec_cache_field_shape(c, "big", &layers, &width));
    ck_assert_int_eq(layers, BL);
    ck_assert_int_eq(width, BH);
    int64_t keep[1] = {2};
    mmrec_cache_gather_config cfg;
    MT_OK(mmrec_cache_gather_config_init(&cfg));
    cfg.keep = keep;
    cfg.n_keep = 1;
    float *got = malloc((size_t)MT_N * BH * sizeof *got);
    MT_OK(mmrec_cache_gather_layers_into(c, "big", mt_ids, MT_N, &cfg, got, NULL));
    for (size_t i = 0; i < MT_N; i++)
        for (size_t h = 0; h < BH; h++)
            ck_assert(got[i * BH + h] ==
                      mt_stored(MMREC_CACHE_BF16, (float)(double)big[(i * BL + 2) * BH + h]));
    free(got);
    free(big);
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

/* ---- kept layers ---- */

/* Every kept-layer gather equals the kept rows of the full gather bit for
 * bit, on a tape and into memory, with 1 and 2 threads; the gathers are
 * large enough to be split over the pool. */
START_TEST(test_cache_layers_kept_rows_equal_the_full_gather_bitwise) {
    mt_tmp_dir();
    const char *path = mt_file(0, "k.mmfc");
    enum { N = 40, L = 13, H = 96, B = 300 };
    int64_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (int64_t)((i * 17) % N) * 5 + 2;
    float *data = malloc((size_t)N * L * H * sizeof *data);
    mt_fill_uniform(data, (size_t)N * L * H, -4, 4, 11);
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, ids, N, &w));
    for (int k = 0; k < 3; k++)
        MT_OK(mmrec_cache_writer_add_layers(w, mt_dtype_names[k], mt_dtypes[k], data, L, H));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    free(data);

    int64_t batch[B];
    uint64_t seed = 3;
    for (int i = 0; i < B; i++) batch[i] = ids[mt_lcg(&seed) % N]; /* repeats */
    static const int64_t drop[7] = {0, 2, 4, 6, 8, 10, 12}, odd[3] = {1, 7, 11}, last[1] = {12};
    const struct {
        const int64_t *keep;
        size_t n_keep;
    } plans[4] = {{drop, 7}, {odd, 3}, {last, 1}, {NULL, 0}};
    int threads = mmrec_get_num_threads();
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    float *mem = malloc((size_t)B * L * H * sizeof *mem);
    float *one_thread = malloc((size_t)B * L * H * sizeof *one_thread);
    for (int k = 0; k < 3; k++) {
        mmrec_tensor *full;
        MT_OK(mmrec_cache_gather_layers(c, tape, mt_dtype_names[k], batch, B, NULL, &full, NULL));
        const float *f = mt_tensor_3d(full, B, L, H);
        for (int p = 0; p < 4; p++) {
            size_t kept = plans[p].keep ? plans[p].n_keep : L;
            mmrec_cache_gather_config cfg;
            MT_OK(mmrec_cache_gather_config_init(&cfg));
            cfg.keep = plans[p].keep;
            cfg.n_keep = plans[p].n_keep;
            for (int t = 1; t <= 2; t++) {
                MT_OK(mmrec_set_num_threads(t));
                mmrec_tensor *y;
                MT_OK(mmrec_cache_gather_layers(c, tape, mt_dtype_names[k], batch, B, &cfg, &y,
                                                NULL));
                const float *d = mt_tensor_3d(y, B, (int64_t)kept, H);
                for (size_t i = 0; i < B; i++)
                    for (size_t j = 0; j < kept; j++) {
                        size_t l = plans[p].keep ? (size_t)plans[p].keep[j] : j;
                        ck_assert_msg(mt_same_bits(d + (i * kept + j) * H, f + (i * L + l) * H, H),
                                      "%s: row %zu, kept layer %zu (layer %zu) differs",
                                      mt_dtype_names[k], i, j, l);
                    }
                MT_OK(mmrec_cache_gather_layers_into(c, mt_dtype_names[k], batch, B, &cfg, mem,
                                                     NULL));
                ck_assert(mt_same_bits(mem, d, (size_t)B * kept * H));
                if (t == 1) memcpy(one_thread, mem, (size_t)B * kept * H * sizeof *mem);
                else ck_assert(mt_same_bits(mem, one_thread, (size_t)B * kept * H));
            }
        }
        mmrec_tape_reset(tape);
    }
    MT_OK(mmrec_set_num_threads(threads));
    free(one_thread);
    free(mem);
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

/* ---- missing ids ---- */

START_TEST(test_cache_layers_missing_ids_error_or_zero_rows) {
    mt_tmp_dir();
    const char *path = mt_file(0, "m.mmfc");
    static float data[MT_N * MT_L * MT_H];
    mt_fill_uniform(data, MT_N * MT_L * MT_H, -1, 1, 12);
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, mt_ids, MT_N, &w));
    MT_OK(mmrec_cache_writer_add_layers(w, "h", MMREC_CACHE_BF16, data, MT_L, MT_H));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    int64_t batch[4] = {41, 42, 3, -1}, keep[2] = {1, 4};
    mmrec_cache_gather_config cfg;
    MT_OK(mmrec_cache_gather_config_init(&cfg));
    cfg.keep = keep;
    cfg.n_keep = 2;
    mmrec_tensor *y = NULL, *p = NULL;
    size_t cap, hw0, hw1;
    MT_OK(mmrec_tape_memory(tape, &cap, &hw0));
    MT_EXPECT(mmrec_cache_gather_layers(c, tape, "h", batch, 4, &cfg, &y, &p), MMREC_ERANGE,
              "ids[1] is 42");
    MT_EXPECT(mmrec_cache_gather_layers(c, tape, "h", batch, 4, NULL, &y, &p), MMREC_ERANGE,
              "MMREC_CACHE_MISSING_ZERO");
    ck_assert_ptr_null(y);
    ck_assert_ptr_null(p);
    MT_OK(mmrec_tape_memory(tape, &cap, &hw1));
    ck_assert_uint_eq(hw1, hw0); /* nothing taken from the arena */
    float mem[4 * 2 * MT_H], presence[4];
    for (size_t i = 0; i < sizeof mem / sizeof *mem; i++) mem[i] = -9.0f;
    for (int i = 0; i < 4; i++) presence[i] = -9.0f;
    MT_EXPECT(mmrec_cache_gather_layers_into(c, "h", batch, 4, &cfg, mem, presence),
              MMREC_ERANGE, "ids[1] is 42");
    for (size_t i = 0; i < sizeof mem / sizeof *mem; i++) ck_assert(mem[i] == -9.0f);
    for (int i = 0; i < 4; i++) ck_assert(presence[i] == -9.0f);

    cfg.flags = MMREC_CACHE_MISSING_ZERO;
    MT_OK(mmrec_cache_gather_layers(c, tape, "h", batch, 4, &cfg, &y, &p));
    const float *d = mt_tensor_3d(y, 4, 2, MT_H), *pd;
    MT_OK(mmrec_tensor_data_const(p, &pd));
    const float want_presence[4] = {1, 0, 1, 0};
    ck_assert(memcmp(pd, want_presence, sizeof want_presence) == 0);
    /* rows of 41 (caller's row 3) and 3 (row 1); zeros for 42 and -1 */
    const size_t rows[4] = {3, 0, 1, 0};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++)
            for (int h = 0; h < MT_H; h++) {
                float v = d[((size_t)i * 2 + (size_t)j) * MT_H + (size_t)h];
                float want = want_presence[i] == 0.0f
                                 ? 0.0f
                                 : mt_stored(MMREC_CACHE_BF16,
                                             data[(rows[i] * MT_L + (size_t)keep[j]) * MT_H +
                                                  (size_t)h]);
                ck_assert_msg(memcmp(&v, &want, sizeof v) == 0, "[%d][%d][%d] is %g, want %g", i,
                              j, h, (double)v, (double)want);
            }
    MT_OK(mmrec_cache_gather_layers(c, tape, "h", batch, 4, &cfg, &y, NULL));
    MT_OK(mmrec_cache_gather_layers_into(c, "h", batch, 4, &cfg, mem, presence));
    ck_assert(mt_same_bits(mem, d, 4 * 2 * MT_H));
    ck_assert(memcmp(presence, want_presence, sizeof want_presence) == 0);
    MT_OK(mmrec_cache_gather_layers_into(c, "h", batch, 4, &cfg, mem, NULL));
    /* n 0 into memory: nothing written, still checked */
    MT_OK(mmrec_cache_gather_layers_into(c, "h", batch, 0, &cfg, mem, NULL));
    MT_EXPECT(mmrec_cache_gather_layers_into(c, "nope", batch, 0, &cfg, mem, NULL),
              MMREC_ENOTFOUND, "nope");
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

/* ---- bad arguments ---- */

START_TEST(test_cache_layers_bad_arguments) {
    mt_tmp_dir();
    const char *path = mt_file(0, "b.mmfc"), *npy = mt_file(1, "b.npy");
    static float data[MT_N * MT_L * MT_H];
    mt_fill_uniform(data, MT_N * MT_L * MT_H, -1, 1, 13);
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, mt_ids, MT_N, &w));
    MT_EXPECT(mmrec_cache_writer_add_layers(w, "x", MMREC_CACHE_F32, data, 0, MT_H),
              MMREC_EINVAL, "layers is 0");
    MT_EXPECT(mmrec_cache_writer_add_layers(w, "x", MMREC_CACHE_F32, data, -2, MT_H),
              MMREC_EINVAL, "layers is -2");
    MT_EXPECT(mmrec_cache_writer_add_layers(w, "x", MMREC_CACHE_F32, data, (int64_t)1 << 32, 1),
              MMREC_EINVAL, "layers is 4294967296");
    MT_EXPECT(mmrec_cache_writer_add_layers(w, "x", MMREC_CACHE_F32, data, MT_L, 0),
              MMREC_EINVAL, "width is 0");
    MT_EXPECT(mmrec_cache_writer_add_layers(w, "x", MMREC_CACHE_F32, data, 1 << 30,
                                            INT64_MAX / 4),
              MMREC_EINVAL, "layers");
    MT_EXPECT(mmrec_cache_writer_add_layers(w, "x", (mmrec_cache_dtype)7, data, MT_L, MT_H),
              MMREC_EINVAL, "dtype is 7");
    MT_EXPECT(mmrec_cache_writer_add_layers(w, "", MMREC_CACHE_F32, data, MT_L, MT_H),
              MMREC_EINVAL, "field name is 0 bytes");
    float bad[MT_N * MT_L * MT_H];
    memcpy(bad, data, sizeof bad);
    bad[(3 * MT_L + 2) * MT_H + 5] = 1e6f; /* caller's row 3, layer 2, column 5 */
    MT_EXPECT(mmrec_cache_writer_add_layers(w, "x", MMREC_CACHE_F16, bad, MT_L, MT_H),
              MMREC_ERANGE, "row 3 column 19");
    /* .npy of 4 dimensions, and 3-D with empty records */
    float v[MT_N * 2] = {0};
    char dict[160];
    snprintf(dict, sizeof dict,
             "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 1, 2, 1), }", MT_N);
    mt_npy_write(npy, dict, v, sizeof v);
    MT_EXPECT(mmrec_cache_writer_add_npy(w, "x", MMREC_CACHE_F32, npy), MMREC_EFORMAT,
              "4-D array, expected 1-D, 2-D or 3-D");
    snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 0, 2), }",
             MT_N);
    mt_npy_write(npy, dict, v, 0);
    MT_EXPECT(mmrec_cache_writer_add_npy(w, "x", MMREC_CACHE_F32, npy), MMREC_EFORMAT,
              "records of 0 elements");
    snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 5, 2), }",
             MT_N + 1);
    mt_npy_write(npy, dict, v, 0);
    MT_EXPECT(mmrec_cache_writer_add_npy(w, "x", MMREC_CACHE_F32, npy), MMREC_ESHAPE,
              "has 10 rows, the writer has 9 items");
    /* the writer went on unharmed */
    MT_OK(mmrec_cache_writer_add_layers(w, "x", MMREC_CACHE_F16, data, MT_L, MT_H));
    MT_OK(mmrec_cache_writer_add(w, "v", MMREC_CACHE_F32, data, 3));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);

    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    int64_t layers = -1, width = -1;
    MT_EXPECT(mmrec_cache_field_shape(c, "audio", &layers, &width), MMREC_ENOTFOUND, "audio");
    ck_assert(layers == -1 && width == -1);
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    mmrec_tensor *y = NULL;
    float mem[MT_N * MT_L * MT_H];
    int64_t ids[2] = {3, 70};
    mmrec_cache_gather_config cfg;
    MT_OK(mmrec_cache_gather_config_init(&cfg));
    ck_assert_uint_eq(cfg.struct_size, sizeof cfg);
    ck_assert(cfg.flags == 0 && cfg.keep == NULL && cfg.n_keep == 0);
    const struct {
        int64_t keep[3];
        size_t n_keep;
        bool null_keep;
        mmrec_status status;
        const char *needle;
    } cases[] = {
        {{0, 2, 5}, 3, false, MMREC_ERANGE, "cfg->keep[2] is 5, outside [0, 5)"},
        {{-1, 2, 4}, 3, false, MMREC_ERANGE, "cfg->keep[0] is -1, outside [0, 5)"},
        {{0, 2, 2}, 3, false, MMREC_EINVAL, "cfg->keep[2] is 2, not above cfg->keep[1] = 2"},
        {{3, 1, 4}, 3, false, MMREC_EINVAL, "cfg->keep[1] is 1, not above cfg->keep[0] = 3"},
        {{0}, 0, false, MMREC_EINVAL, "cfg->n_keep is 0 with cfg->keep set"},
        {{0}, 2, true, MMREC_EINVAL, "cfg->n_keep is 2 with cfg->keep NULL"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        cfg.keep = cases[k].null_keep ? NULL : cases[k].keep;
        cfg.n_keep = cases[k].n_keep;
        MT_EXPECT(mmrec_cache_gather_layers(c, tape, "x", ids, 2, &cfg, &y, NULL),
                  cases[k].status, cases[k].needle);
        MT_EXPECT(mmrec_cache_gather_layers_into(c, "x", ids, 2, &cfg, mem, NULL),
                  cases[k].status, cases[k].needle);
    }
    ck_assert_ptr_null(y);
    int64_t nine = 9;
    float presence[2] = {-1, -1};
    cfg.keep = &nine;
    cfg.n_keep = 1;
    MT_EXPECT(mmrec_cache_gather_layers_into(c, "x", ids, 2, &cfg, mem, presence), MMREC_ERANGE,
              "cfg->keep[0] is 9, outside [0, 5) (field 'x' has 5 layers of width 7)");
    ck_assert(presence[0] == -1 && presence[1] == -1);
    /* a vector field has one layer */
    int64_t one = 1;
    cfg.keep = &one;
    cfg.n_keep = 1;
    MT_EXPECT(mmrec_cache_gather_layers(c, tape, "v", ids, 2, &cfg, &y, NULL), MMREC_ERANGE,
              "cfg->keep[0] is 1, outside [0, 1) (field 'v' has 1 layers of width 3)");
    cfg.keep = NULL;
    cfg.n_keep = 0;
    cfg.flags = 4;
    MT_EXPECT(mmrec_cache_gather_layers(c, tape, "x", ids, 2, &cfg, &y, NULL), MMREC_EINVAL,
              "cfg->flags 0x4 has unknown bits");
    cfg.flags = 0;
    MT_EXPECT(mmrec_cache_gather_layers(c, tape, "x", ids, 0, &cfg, &y, NULL), MMREC_EINVAL,
              "n is 0");
    MT_EXPECT(mmrec_cache_gather_layers(c, tape, "audio", ids, 2, &cfg, &y, NULL),
              MMREC_ENOTFOUND, "audio");
    MT_EXPECT(mmrec_cache_gather_layers_into(c, "audio", ids, 2, NULL, mem, NULL),
              MMREC_ENOTFOUND, "audio");
    /* config sizes: too small, and a newer caller's set tail */
    MT_EXPECT(mmrec_cache_gather_config_init_sized(&cfg, sizeof(size_t)), MMREC_EINVAL,
              "size is 8");
    struct {
        mmrec_cache_gather_config cfg;
        uint64_t newer;
    } big;
    memset(&big, 0, sizeof big);
    MT_OK(mmrec_cache_gather_config_init_sized(&big.cfg, sizeof big));
    ck_assert_uint_eq(big.cfg.struct_size, sizeof big);
    MT_OK(mmrec_cache_gather_layers(c, tape, "x", ids, 2, &big.cfg, &y, NULL));
    big.newer = 1;
    MT_EXPECT(mmrec_cache_gather_layers(c, tape, "x", ids, 2, &big.cfg, &y, NULL), MMREC_EINVAL,
              "config from a newer libmmrec");
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
    mt_tmp_clean();
}
END_TEST

/* ---- the file ---- */

static uint64_t mt_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint32_t mt_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void mt_put_le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* The layer count sits in the index entry's formerly reserved word: 0 for
 * vector fields (as 0.1 wrote), L for [L, H] ones; the format version
 * stays 1. A count that does not divide dim is a corrupt file. */
START_TEST(test_cache_layers_stored_in_the_index_entry) {
    mt_tmp_dir();
    char path[200];
    snprintf(path, sizeof path, "%s", mt_file(0, "f.mmfc"));
    const char *bad = mt_file(1, "bad.mmfc");
    static float data[MT_N * MT_L * MT_H];
    mt_fill_uniform(data, MT_N * MT_L * MT_H, -1, 1, 14);
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, mt_ids, MT_N, &w));
    MT_OK(mmrec_cache_writer_add(w, "a", MMREC_CACHE_F32, data, 6));
    MT_OK(mmrec_cache_writer_add_layers(w, "b", MMREC_CACHE_F16, data, MT_L, MT_H));
    MT_OK(mmrec_cache_writer_add_layers(w, "c", MMREC_CACHE_F16, data, 1, 8));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    size_t size;
    unsigned char *file = mt_read_file(path, &size);
    ck_assert_uint_eq(mt_le32(file + 8), 1); /* format version */
    uint64_t index = mt_le64(file + 24);
    size_t entry = mmrec__cache_entry_size(1); /* one-byte names */
    ck_assert_uint_eq(mt_le32(file + index + 36), 0);
    ck_assert_uint_eq(mt_le32(file + index + entry + 36), MT_L);
    ck_assert_uint_eq(mt_le64(file + index + entry + 8), MT_L * MT_H);
    ck_assert_uint_eq(mt_le32(file + index + 2 * entry + 36), 0);
    /* 4 layers do not divide 35, with every checksum valid */
    mt_put_le32(file + index + entry + 36, 4);
    mt_put_le32(file + 52, mmrec__crc32c(0, file + index, size - index));
    mt_put_le32(file + 60, mmrec__crc32c(0, file, 60));
    mt_write_file(bad, file, size);
    mmrec_cache *c;
    MT_EXPECT(mmrec_cache_open(bad, &c), MMREC_EFORMAT,
              "field 'b' has 4 layers, which do not divide its dim 35");
    /* 7 layers of 5 is a valid reading of the same bytes */
    mt_put_le32(file + index + entry + 36, 7);
    mt_put_le32(file + 52, mmrec__crc32c(0, file + index, size - index));
    mt_put_le32(file + 60, mmrec__crc32c(0, file, 60));
    mt_write_file(bad, file, size);
    MT_OK(mmrec_cache_open(bad, &c));
    int64_t layers, width;
    MT_OK(mmrec_cache_field_shape(c, "b", &layers, &width));
    ck_assert(layers == 7 && width == 5);
    mmrec_cache_close(c);
    free(file);
    mt_tmp_clean();
}
END_TEST

/* The 0.1 cache's [4, 6] field was written flat: it reads as one layer of
 * 24, and gathers as [n, 1, 24] equal to the flat gather. */
START_TEST(test_cache_layers_0_1_fields_read_as_one_layer) {
    char path[512];
    snprintf(path, sizeof path, "%s/compat/0.1/features.mmfc", MMREC_TEST_DIR);
    mmrec_cache *c;
    MT_OK(mmrec_cache_open(path, &c));
    const char *fields[3] = {"image", "text", "hidden"};
    const int64_t dims[3] = {16, 12, 24};
    int64_t ids[3] = {5 + 17 * 7, 5, 5 + 17 * 39};
    mmrec_tape *tape;
    MT_OK(mmrec_tape_create(&tape));
    for (int k = 0; k < 3; k++) {
        int64_t layers, width;
        MT_OK(mmrec_cache_field_shape(c, fields[k], &layers, &width));
        ck_assert_int_eq(layers, 1);
        ck_assert_int_eq(width, dims[k]);
        mmrec_tensor *y, *flat;
        MT_OK(mmrec_cache_gather_layers(c, tape, fields[k], ids, 3, NULL, &y, NULL));
        const float *d = mt_tensor_3d(y, 3, 1, dims[k]), *f;
        MT_OK(mmrec_cache_gather(c, tape, fields[k], ids, 3, &flat));
        MT_OK(mmrec_tensor_data_const(flat, &f));
        ck_assert(mt_same_bits(d, f, (size_t)(3 * dims[k])));
    }
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
}
END_TEST

/* ---- 16-bit widening: every bit pattern against the closed form ---- */

/* The value of a float16 bit pattern: (-1)^s 2^(e-15) (1 + m/1024), the
 * subnormals 2^-14 m/1024, e = 31 infinity or NaN. */
static double mt_f16_value(uint32_t h) {
    uint32_t s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0    ? ldexp((double)m, -24)
               : e == 31 ? (m ? NAN : INFINITY)
                         : ldexp(1024.0 + m, (int)e - 25);
    return s ? -v : v;
}
/* bfloat16: (-1)^s 2^(e-127) (1 + m/128), subnormals 2^-126 m/128. */
static double mt_bf16_value(uint32_t b) {
    uint32_t s = b >> 15, e = (b >> 7) & 255, m = b & 127;
    double v = e == 0     ? ldexp((double)m, -133)
               : e == 255 ? (m ? NAN : INFINITY)
                          : ldexp(128.0 + m, (int)e - 134);
    return s ? -v : v;
}

START_TEST(test_cache_layers_widening_matches_the_closed_form) {
    uint16_t *bits = malloc(65536 * sizeof *bits);
    float *got = malloc(65536 * sizeof *got);
    for (uint32_t i = 0; i < 65536; i++) bits[i] = (uint16_t)i;
    /* pass 0, 1: float16 (the CPU's path, the portable one); 2, 3: bfloat16 */
    for (int pass = 0; pass < 4; pass++) {
        bool bf = pass >= 2, generic = pass % 2 == 1;
        mmrec_cache_dtype dtype = bf ? MMREC_CACHE_BF16 : MMREC_CACHE_F16;
        void (*widen)(mmrec_cache_dtype, const void *, float *, size_t) =
            generic ? mmrec__cache_widen_generic : mmrec__cache_widen;
        const char *what = bf ? "bf16" : "f16";
        /* one call over every pattern, and calls at odd offsets and lengths
         * (vector bodies and scalar tails) */
        memset(got, 0xff, 65536 * sizeof *got);
        widen(dtype, bits, got, 65536);
        for (uint32_t start = 1; start < 65536; start += 4099)
            widen(dtype, bits + start, got + start, 13);
        for (uint32_t i = 0; i < 65536; i++) {
            double want = bf ? mt_bf16_value(i) : mt_f16_value(i);
            if (isnan(want)) {
                ck_assert_msg(isnan(got[i]), "%s 0x%04x gave %g, want NaN (generic %d)", what, i,
                              (double)got[i], generic);
                continue;
            }
            float w = (float)want; /* exact: every such value is a float */
            ck_assert_msg(memcmp(&got[i], &w, sizeof w) == 0,
                          "%s 0x%04x gave %a, want %a (generic %d)", what, i, (double)got[i],
                          want, generic);
        }
    }
    /* a few values by hand */
    const uint16_t h[6] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555, 0x8000};
    const float hv[6] = {1.0f, -2.0f, 65504.0f, 0x1p-24f, 0x1.554p-2f, -0.0f};
    const uint16_t b[4] = {0x3f80, 0xc2f7, 0x0001, 0x7f7f};
    const float bv[4] = {1.0f, -123.5f, 0x1p-133f, 0x1.fep127f};
    mmrec__cache_widen(MMREC_CACHE_F16, h, got, 6);
    ck_assert(memcmp(got, hv, sizeof hv) == 0);
    mmrec__cache_widen(MMREC_CACHE_BF16, b, got, 4);
    ck_assert(memcmp(got, bv, sizeof bv) == 0);
    free(got);
    free(bits);
}
END_TEST

/* ---- allocation failures and steady state ---- */

typedef struct mt_layers_paths {
    char path[200], npy[200];
} mt_layers_paths;

static mmrec_status mt_layers_scenario(void *ctx) {
    const mt_layers_paths *p = ctx;
    static float data[MT_N * MT_L * MT_H];
    for (int i = 0; i < MT_N * MT_L * MT_H; i++) data[i] = (float)(i % 29) / 8.0f;
    mmrec_cache_writer *w = NULL;
    mmrec_cache *c = NULL;
    mmrec_tape *tape = NULL;
    mmrec_tensor *y, *pr;
    int64_t keep[2] = {0, 3}, ids[3] = {6, 1000, 7};
    mmrec_cache_gather_config cfg;
    mmrec_status s;
    float mem[3 * 2 * MT_H], presence[3];
    if ((s = mmrec_cache_gather_config_init(&cfg)) != MMREC_OK) goto done;
    cfg.keep = keep;
    cfg.n_keep = 2;
    cfg.flags = MMREC_CACHE_MISSING_ZERO;
    if ((s = mmrec_cache_writer_create(p->path, mt_ids, MT_N, &w)) != MMREC_OK) goto done;
    if ((s = mmrec_cache_writer_add_layers(w, "a", MMREC_CACHE_F16, data, MT_L, MT_H)) != MMREC_OK)
        goto done;
    if ((s = mmrec_cache_writer_add_npy(w, "b", MMREC_CACHE_BF16, p->npy)) != MMREC_OK) goto done;
    if ((s = mmrec_cache_writer_commit(w)) != MMREC_OK) goto done;
    if ((s = mmrec_cache_open(p->path, &c)) != MMREC_OK) goto done;
    if ((s = mmrec_tape_create(&tape)) != MMREC_OK) goto done;
    if ((s = mmrec_cache_gather_layers(c, tape, "a", ids, 3, &cfg, &y, &pr)) != MMREC_OK)
        goto done;
    if ((s = mmrec_cache_gather_layers(c, tape, "b", ids, 3, &cfg, &y, NULL)) != MMREC_OK)
        goto done;
    if ((s = mmrec_cache_gather_layers_into(c, "b", ids, 3, &cfg, mem, presence)) != MMREC_OK)
        goto done;
done:
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
    mmrec_cache_writer_destroy(w);
    ck_assert_int_eq(mt_count_tmp_files(), 0);
    return s;
}

START_TEST(test_cache_layers_oom_every_allocation_reports_enomem_without_leaks) {
    mt_tmp_dir();
    mt_layers_paths p;
    snprintf(p.path, sizeof p.path, "%s", mt_file(0, "o.mmfc"));
    snprintf(p.npy, sizeof p.npy, "%s", mt_file(1, "o.npy"));
    static float data[MT_N * MT_L * MT_H];
    mt_fill_uniform(data, MT_N * MT_L * MT_H, -1, 1, 15);
    mt_npy_3d(p.npy, "<f4", data, MT_N, MT_L, MT_H);
    ck_assert_int_gt(mt_oom_loop("cache_layers", mt_layers_scenario, &p), 5);
    mt_tmp_clean();
}
END_TEST

START_TEST(test_cache_layers_steady_state_gather_allocates_nothing) {
    mt_tmp_dir();
    const char *path = mt_file(0, "s.mmfc");
    enum { N = 64, L = 13, H = 64 };
    int64_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = i;
    float *data = malloc((size_t)N * L * H * sizeof *data);
    mt_fill_uniform(data, (size_t)N * L * H, -1, 1, 16);
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, ids, N, &w));
    MT_OK(mmrec_cache_writer_add_layers(w, "h", MMREC_CACHE_F16, data, L, H));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    free(data);
    mmrec_allocator a = {sizeof a, mt_count_alloc, mt_count_release, NULL};
    MT_OK(mmrec_set_allocator(&a));
    mmrec_cache *c;
    mmrec_tape *tape;
    MT_OK(mmrec_cache_open(path, &c));
    MT_OK(mmrec_tape_create(&tape));
    static const int64_t keep[7] = {0, 2, 4, 6, 8, 10, 12};
    mmrec_cache_gather_config cfg;
    MT_OK(mmrec_cache_gather_config_init(&cfg));
    cfg.keep = keep;
    cfg.n_keep = 7;
    int64_t batch[N * 2];
    for (int i = 0; i < 2 * N; i++) batch[i] = (i * 7) % N;
    static float mem[2 * N * 7 * H];
    for (int step = 0; step < 3; step++) {
        if (step == 2) mt_allocs = 0;
        mmrec_tensor *y, *p;
        MT_OK(mmrec_cache_gather_layers(c, tape, "h", batch, 2 * N, &cfg, &y, &p));
        MT_OK(mmrec_cache_gather_layers(c, tape, "h", batch, 2 * N, NULL, &y, NULL));
        MT_OK(mmrec_cache_gather_layers_into(c, "h", batch, 2 * N, &cfg, mem, NULL));
        mmrec_tape_reset(tape);
    }
    ck_assert_int_eq(mt_allocs, 0);
    mmrec_tape_destroy(tape);
    mmrec_cache_close(c);
    MT_OK(mmrec_set_allocator(NULL));
    mt_tmp_clean();
}
END_TEST

static Suite *cache_layers_suite(void) {
    Suite *s = suite_create("cache_layers");
    TCase *rt = tcase_create("round_trip");
    tcase_add_test(rt, test_cache_layers_round_trip_from_memory_in_every_dtype);
    tcase_add_test(rt, test_cache_layers_round_trip_from_3d_npy);
    tcase_add_test(rt, test_cache_layers_widening_matches_the_closed_form);
    tcase_add_test(rt, test_cache_layers_gathers_match_torch_roundings_bitwise);
    suite_add_tcase(s, rt);
    TCase *gather = tcase_create("gather");
    tcase_set_timeout(gather, 60);
    tcase_add_test(gather, test_cache_layers_kept_rows_equal_the_full_gather_bitwise);
    tcase_add_test(gather, test_cache_layers_missing_ids_error_or_zero_rows);
    suite_add_tcase(s, gather);
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_cache_layers_bad_arguments);
    suite_add_tcase(s, api);
    TCase *files = tcase_create("files");
    tcase_add_test(files, test_cache_layers_stored_in_the_index_entry);
    tcase_add_test(files, test_cache_layers_0_1_fields_read_as_one_layer);
    suite_add_tcase(s, files);
    TCase *lc = tcase_create("lifecycle");
    tcase_set_timeout(lc, 60);
    tcase_add_test(lc, test_cache_layers_oom_every_allocation_reports_enomem_without_leaks);
    tcase_add_test(lc, test_cache_layers_steady_state_gather_allocates_nothing);
    suite_add_tcase(s, lc);
    return s;
}
