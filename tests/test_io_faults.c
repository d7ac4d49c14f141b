/* I/O faults: every save the library makes (mmrec_model_save,
 * mmrec_checkpoint_save with optimizer state, the cache writer from create
 * to commit, mmrec_index_save) is run once to count the system calls it
 * makes (K, through src/io/syscalls.h), then again with call k = 1..K
 * failing with ENOSPC, with EIO, interrupted (EINTR) and, for writes,
 * short. Each time: the status is the one the call deserves (MMREC_EIO
 * naming the file and the system error; MMREC_OK when a retry or the rest
 * of a short write is the right answer), the file at the path holds the old
 * version or, only for a failure after the rename, the new one, no
 * temporary file is left, and the same handles save again afterwards.
 * Also: stale temporaries of dead writers are swept, live ones are not,
 * and two saves of one path in one process do not mix. */
#define _DEFAULT_SOURCE
#include "mt_savers.h"
#include "io/syscalls.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

MT_SUITE(io_faults_suite)

/* Number of entries in the test directory. */
static int mt_count_files(void) {
    DIR *d = opendir(mt_dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

static void mt_fill(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

/* ---- the fault matrix ---- */

typedef struct mt_fault {
    const char *name;
    int err;
    bool short_write;
} mt_fault;

static const mt_fault mt_faults[] = {
    {"ENOSPC", ENOSPC, false},
    {"EIO", EIO, false},
    {"EINTR", EINTR, false},
    {"short write", 0, true},
};

/* After a save under a fault: the directory holds the target alone. */
static void mt_assert_clean(const mt_saver *sv, uint64_t k, const char *fault) {
    ck_assert_msg(mt_count_tmp_files() == 0 && mt_count_files() == 1,
                  "%s: %s at call %llu left %d temporary file(s) (%d files)", sv->name, fault,
                  (unsigned long long)k, mt_count_tmp_files(), mt_count_files());
}

/* Runs the save with call k faulted as `f` and checks the outcome; returns
 * with version 1 at the path again. */
static void mt_fault_one(mt_saver *sv, const char *path, const uint8_t *trace, uint64_t n_calls,
                         uint64_t rename_at, uint64_t k, const mt_fault *f) {
    mmrec__io_call kind = (mmrec__io_call)trace[k - 1];
    bool is_write = kind == MMREC__IO_WRITE || kind == MMREC__IO_PWRITE;
    if (f->short_write && !is_write) return; /* only writes can be short */
    char what[160];
    snprintf(what, sizeof what, "%s: %s at call %llu of %llu (%s)", sv->name, f->name,
             (unsigned long long)k, (unsigned long long)n_calls, mmrec__io_call_name(kind));

    mmrec__io_fault plan = {.nth = k, .err = f->err, .short_write = f->short_write};
    mmrec__io_fault_arm(&plan);
    mmrec_status s = sv->save(sv, path, 2.0f);
    uint64_t calls = mmrec__io_fault_calls(), fired = mmrec__io_fault_fired();
    mmrec__io_fault_arm(NULL);
    ck_assert_msg(fired == 1, "%s: the fault did not fire", what);

    float now = 1.0f; /* the version the path must hold */
    if (f->err == EINTR || f->short_write) {
        /* A retry (or the rest of the write) is the right answer; close is
         * not retried: the descriptor is gone whatever close reports. */
        ck_assert_msg(s == MMREC_OK, "%s: %s (%s)", what, mmrec_status_name(s),
                      mmrec_last_error());
        uint64_t want = n_calls + (kind == MMREC__IO_CLOSE ? 0 : 1);
        ck_assert_msg(calls == want, "%s: %llu calls, expected %llu", what,
                      (unsigned long long)calls, (unsigned long long)want);
        now = 2.0f;
    } else if (kind == MMREC__IO_CLOSE) {
        /* Every close of a save comes after the rename: the temporary's
         * data were synced before, and the directory's descriptor is
         * read-only, so nothing is lost and the save succeeds. */
        ck_assert_msg(k > rename_at, "%s: a close before the rename", what);
        ck_assert_msg(s == MMREC_OK, "%s: %s (%s)", what, mmrec_status_name(s),
                      mmrec_last_error());
        now = 2.0f;
    } else {
        ck_assert_msg(s == MMREC_EIO, "%s: %s, expected MMREC_EIO (%s)", what,
                      mmrec_status_name(s), mmrec_last_error());
        const char *msg = mmrec_last_error();
        ck_assert_msg(strstr(msg, sv->file) != NULL, "%s: message '%s' does not name '%s'",
                      what, msg, sv->file);
        ck_assert_msg(strstr(msg, strerror(f->err)) != NULL,
                      "%s: message '%s' does not name the system error '%s'", what, msg,
                      strerror(f->err));
        if (k > rename_at) {
            /* Syncing the directory failed after the rename: the new file is
             * in place, and the message says it may not be durable. */
            ck_assert_msg(strstr(msg, "replaced") != NULL, "%s: message '%s'", what, msg);
            now = 2.0f;
        }
    }
    mt_saver_expect(sv, path, now);
    mt_assert_clean(sv, k, f->name);
    if (s != MMREC_OK && f->err == ENOSPC) {
        /* The same handles save again once the fault is gone. */
        MT_OK(sv->save(sv, path, 2.0f));
        mt_saver_expect(sv, path, 2.0f);
        now = 2.0f;
    }
    if (now != 1.0f) MT_OK(sv->save(sv, path, 1.0f));
}

/* Counts the calls of a successful save, then faults each in turn. Returns
 * the number of calls K. */
static uint64_t mt_fault_matrix(const char *kind) {
    mt_saver sv;
    mt_saver_init(&sv, kind, 1);
    mt_saver_tmp_dir();
    const char *path = mt_file(0, sv.file);
    MT_OK(sv.save(&sv, path, 1.0f));

    mmrec__io_fault count = {0};
    mmrec__io_fault_arm(&count);
    MT_OK(sv.save(&sv, path, 2.0f));
    uint64_t n_calls = mmrec__io_fault_calls();
    uint8_t trace[512];
    size_t n_trace = mmrec__io_fault_trace(trace, sizeof trace);
    mmrec__io_fault_arm(NULL);
    ck_assert_msg(n_calls == n_trace, "%s: %llu calls, more than the trace holds", kind,
                  (unsigned long long)n_calls);
    mt_saver_expect(&sv, path, 2.0f);

    /* The protocol: the temporary is created, written and synced, renamed
     * over the path, then the directory is synced. */
    uint64_t rename_at = 0, fsyncs = 0, opens = 0;
    for (size_t i = 0; i < n_trace; i++) {
        if (trace[i] == MMREC__IO_RENAME) {
            ck_assert_uint_eq(rename_at, 0);
            rename_at = i + 1;
        }
        fsyncs += trace[i] == MMREC__IO_FSYNC;
        opens += trace[i] == MMREC__IO_OPEN;
    }
    ck_assert_msg(rename_at > 0 && fsyncs == 2 && opens == 2, "%s: %llu fsyncs, %llu opens",
                  kind, (unsigned long long)fsyncs, (unsigned long long)opens);
    ck_assert_uint_eq(trace[0], MMREC__IO_OPEN);
    ck_assert_uint_eq(trace[rename_at - 2], MMREC__IO_FSYNC);
    ck_assert_uint_eq(trace[n_trace - 2], MMREC__IO_FSYNC);

    MT_OK(sv.save(&sv, path, 1.0f));
    for (uint64_t k = 1; k <= n_calls; k++)
        for (size_t f = 0; f < sizeof mt_faults / sizeof mt_faults[0]; f++)
            mt_fault_one(&sv, path, trace, n_calls, rename_at, k, &mt_faults[f]);
    mt_saver_expect(&sv, path, 1.0f);
    mt_saver_free(&sv);
    mt_tmp_clean();
    return n_calls;
}

START_TEST(test_model_save_survives_every_io_fault) {
    ck_assert_uint_ge(mt_fault_matrix("model"), 10);
}
END_TEST

START_TEST(test_checkpoint_save_survives_every_io_fault) {
    ck_assert_uint_ge(mt_fault_matrix("checkpoint"), 20);
}
END_TEST

START_TEST(test_cache_writer_survives_every_io_fault) {
    ck_assert_uint_ge(mt_fault_matrix("cache"), 10);
}
END_TEST

START_TEST(test_index_save_survives_every_io_fault) {
    ck_assert_uint_ge(mt_fault_matrix("index"), 10);
}
END_TEST

/* A fault that repeats: EINTR three times in a row is retried through. */
START_TEST(test_repeated_eintr_is_retried) {
    mt_saver sv;
    mt_saver_init(&sv, "checkpoint", 1);
    mt_saver_tmp_dir();
    const char *path = mt_file(0, sv.file);
    mmrec__io_fault plan = {.calls = 1u << MMREC__IO_WRITE, .nth = 2, .times = 3, .err = EINTR};
    mmrec__io_fault_arm(&plan);
    MT_OK(sv.save(&sv, path, 2.0f));
    ck_assert_uint_eq(mmrec__io_fault_fired(), 3);
    mmrec__io_fault_arm(NULL);
    mt_saver_expect(&sv, path, 2.0f);
    ck_assert_int_eq(mt_count_files(), 1);
    mt_saver_free(&sv);
    mt_tmp_clean();
}
END_TEST

/* ---- stale temporaries ---- */

START_TEST(test_stale_temporaries_are_swept_live_ones_kept) {
    mt_saver sv;
    mt_saver_init(&sv, "model", 1);
    mt_saver_tmp_dir();
    const char *path = mt_file(0, sv.file);
    char stale[200], live[200], other[200], foreign[200];
    snprintf(stale, sizeof stale, "%s.tmp.999999999", path);
    snprintf(live, sizeof live, "%s.tmp.999999998", path);
    snprintf(other, sizeof other, "%s/x.mmrc.tmp.999999997", mt_dir);
    snprintf(foreign, sizeof foreign, "%s.tmp.backup", path);
    mt_write_file(stale, "torn", 4);
    mt_write_file(live, "busy", 4);
    mt_write_file(other, "else", 4);
    mt_write_file(foreign, "mine", 4);
    /* A live writer holds its temporary locked. */
    int held = open(live, O_RDONLY);
    ck_assert_int_ge(held, 0);
    ck_assert_int_eq(flock(held, LOCK_EX | LOCK_NB), 0);

    /* A sweep that cannot remove the stale file does not fail the save. */
    mmrec__io_fault plan = {.calls = 1u << MMREC__IO_UNLINK, .nth = 1, .err = EACCES};
    mmrec__io_fault_arm(&plan);
    MT_OK(sv.save(&sv, path, 1.0f));
    ck_assert_uint_eq(mmrec__io_fault_fired(), 1);
    mmrec__io_fault_arm(NULL);
    ck_assert_int_eq(access(stale, F_OK), 0);

    MT_OK(sv.save(&sv, path, 2.0f));
    mt_saver_expect(&sv, path, 2.0f);
    ck_assert_msg(access(stale, F_OK) != 0, "the dead writer's temporary is still there");
    ck_assert_int_eq(access(live, F_OK), 0);    /* locked: a live writer's */
    ck_assert_int_eq(access(other, F_OK), 0);   /* another path's */
    ck_assert_int_eq(access(foreign, F_OK), 0); /* not the library's naming */
    close(held);
    MT_OK(sv.save(&sv, path, 1.0f)); /* released: now it is stale */
    ck_assert_int_ne(access(live, F_OK), 0);
    ck_assert_int_eq(mt_count_files(), 3);
    mt_saver_free(&sv);
    mt_tmp_clean();
}
END_TEST

/* A cache writer holds the temporary of its path until it commits: a save
 * of the same path meanwhile fails and disturbs nothing. */
START_TEST(test_same_path_saves_do_not_mix) {
    mt_saver model, cache;
    mt_saver_init(&model, "model", 1);
    mt_saver_init(&cache, "cache", 1);
    mt_saver_tmp_dir();
    const char *path = mt_file(0, "same.bin");
    const int64_t ids[4] = {5, 1, 9, 3};
    float x[4 * 16], y[4 * 8];
    mt_fill(x, 4 * 16, 2.0f);
    mt_fill(y, 4 * 8, 2.0f);
    mmrec_cache_writer *w;
    MT_OK(mmrec_cache_writer_create(path, ids, 4, &w));
    MT_OK(mmrec_cache_writer_add(w, "x", MMREC_CACHE_F32, x, 16));
    MT_EXPECT(model.save(&model, path, 1.0f), MMREC_EIO, "another save");
    MT_OK(mmrec_cache_writer_add(w, "y", MMREC_CACHE_F16, y, 8));
    MT_OK(mmrec_cache_writer_commit(w));
    mmrec_cache_writer_destroy(w);
    mt_saver_expect(&cache, path, 2.0f);
    ck_assert_int_eq(mt_count_files(), 1);
    mt_saver_free(&model);
    mt_saver_free(&cache);
    mt_tmp_clean();
}
END_TEST

/* Two threads save two versions of an index to one path at once: each save
 * succeeds or fails with MMREC_EIO naming the other save; the file always
 * holds one whole version. */
typedef struct mt_racer {
    mt_saver *sv;
    const char *path;
    float v;
    int ok, busy, other;
} mt_racer;

static void *mt_race(void *arg) {
    mt_racer *r = arg;
    for (int i = 0; i < 200; i++) {
        mmrec_status s = mmrec_index_save(r->sv->idx[(int)r->v], r->path);
        if (s == MMREC_OK)
            r->ok++;
        else if (s == MMREC_EIO && strstr(mmrec_last_error(), "another save"))
            r->busy++;
        else
            r->other++;
    }
    return NULL;
}

START_TEST(test_concurrent_saves_of_one_path_never_mix) {
    mt_saver sv;
    mt_saver_init(&sv, "index", 64);
    mt_saver_tmp_dir();
    const char *path = mt_file(0, sv.file);
    mt_racer r[2] = {{&sv, path, 1.0f, 0, 0, 0}, {&sv, path, 2.0f, 0, 0, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, mt_race, &r[i]), 0);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    /* (which thread wins how often is up to the scheduler) */
    for (int i = 0; i < 2; i++) ck_assert_int_eq(r[i].other, 0);
    ck_assert_int_gt(r[0].ok + r[1].ok, 0);
    float v = mt_saver_version(&sv, path);
    ck_assert(v == 1.0f || v == 2.0f);
    ck_assert_int_eq(mt_count_files(), 1);
    mt_saver_free(&sv);
    mt_tmp_clean();
}
END_TEST

static Suite *io_faults_suite(void) {
    Suite *s = suite_create("io_faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_model_save_survives_every_io_fault);
    tcase_add_test(tc, test_checkpoint_save_survives_every_io_fault);
    tcase_add_test(tc, test_cache_writer_survives_every_io_fault);
    tcase_add_test(tc, test_index_save_survives_every_io_fault);
    tcase_add_test(tc, test_repeated_eintr_is_retried);
    suite_add_tcase(s, tc);
    TCase *tmp = tcase_create("temporaries");
    tcase_add_test(tmp, test_stale_temporaries_are_swept_live_ones_kept);
    tcase_add_test(tmp, test_same_path_saves_do_not_mix);
    tcase_add_test(tmp, test_concurrent_saves_of_one_path_never_mix);
    suite_add_tcase(s, tmp);
    return s;
}
