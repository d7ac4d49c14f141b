/* Test helpers for files and allocations (see mt.h). */
#include "mt.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

char mt_dir[64];

const char *mt_tmp_dir(void) {
    snprintf(mt_dir, sizeof mt_dir, "/tmp/mmrec-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(mt_dir));
    return mt_dir;
}

const char *mt_file(int slot, const char *name) {
    static char paths[4][160];
    ck_assert(slot >= 0 && slot < 4);
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", mt_dir, name);
    return paths[slot];
}

int mt_count_tmp_files(void) {
    DIR *d = opendir(mt_dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

void mt_tmp_clean(void) {
    DIR *d = opendir(mt_dir);
    if (d == NULL) return;
    char path[400];
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", mt_dir, e->d_name);
        if (remove(path) != 0) rmdir(path);
    }
    closedir(d);
    rmdir(mt_dir);
}

unsigned char *mt_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *size = (size_t)len;
    return buf;
}

void mt_write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, size, f), size);
    fclose(f);
}

size_t mt_allocs;

void *mt_count_alloc(void *user, size_t size) {
    (void)user;
    mt_allocs++;
    void *p = NULL;
    return posix_memalign(&p, 64, size ? size : 64) == 0 ? p : NULL;
}

void mt_count_release(void *user, void *p) {
    (void)user;
    free(p);
}

void mt_assert_steady_state(mmrec_status (*step)(void *ctx), void *ctx) {
    size_t counts[4];
    for (int k = 0; k < 4; k++) {
        mt_allocs = 0;
        MT_OK(step(ctx));
        counts[k] = mt_allocs;
    }
    ck_assert_uint_gt(counts[0], 0);
    ck_assert_uint_eq(counts[2], 0);
    ck_assert_uint_eq(counts[3], 0);
}

static long mt_fail_at = -1, mt_alloc_index, mt_live;

static void *mt_failing_alloc(void *user, size_t size) {
    (void)user;
    if (mt_alloc_index++ == mt_fail_at) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, size ? size : 64) != 0) return NULL;
    mt_live++;
    return p;
}

static void mt_failing_release(void *user, void *p) {
    (void)user;
    if (p) mt_live--;
    free(p);
}

int mt_oom_loop(const char *name, mt_scenario run, void *ctx) {
    mmrec_allocator a = {sizeof a, mt_failing_alloc, mt_failing_release, NULL};
    MT_OK(mmrec_set_allocator(&a));
    /* MMREC_TEST_OOM_STRIDE=k fails only every k-th allocation (slow
     * runners such as valgrind; the sanitizer runs try every one). The
     * count returned stays the number of allocations the scenario makes,
     * rounded up to the stride. */
    const char *env = getenv("MMREC_TEST_OOM_STRIDE");
    long stride = env ? atol(env) : 1;
    if (stride < 1) stride = 1;
    int failures = 0;
    for (long n = 0;; n += stride) {
        mt_fail_at = n;
        mt_alloc_index = 0;
        mt_live = 0;
        mmrec_status s = run(ctx);
        ck_assert_msg(mt_live == 0, "%s: %ld allocations leaked when allocation %ld failed",
                      name, mt_live, n);
        if (s == MMREC_OK) break;
        ck_assert_msg(s == MMREC_ENOMEM, "%s: allocation %ld failed gave %s (%s)", name, n,
                      mmrec_status_name(s), mmrec_last_error());
        failures += (int)stride;
        ck_assert_msg(n < 10000, "%s: never succeeds", name);
    }
    mt_fail_at = -1;
    MT_OK(mmrec_set_allocator(NULL));
    return failures;
}
