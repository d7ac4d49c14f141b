/* Crash during write: a child process saves a checkpoint (with optimizer
 * state), a feature cache or an index in a loop, alternating version 1 and
 * version 2 (every stored value equal to the version), and is killed with
 * SIGKILL after a random delay from a seeded generator. After each kill the
 * file on disk must load and hold exactly version 1 or version 2, never a
 * mix or a torn file. The temporaries a kill leaves are swept by the next
 * save of the same path (at most one is ever on disk), and a last save
 * leaves none. MT_CRASH_STATS=1 prints where the kills landed. */
#define _DEFAULT_SOURCE
#include "mt_savers.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

MT_SUITE(crash_suite)

/* The child: saves version `first`, then the other, alternating, until it
 * is killed; exits 1 if a save fails. */
static void mt_child(mt_saver *sv, const char *path, float first) {
    for (float v = first;; v = 3.0f - v)
        if (sv->save(sv, path, v) != MMREC_OK) _exit(1);
}

static void mt_sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

typedef struct mt_crash_stats {
    int kills, with_temporary, flips;
} mt_crash_stats;

static double mt_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Kills a saving child `kills` times, after delays uniform in [0, 3 T + 1 ms)
 * where T is the time one save takes here (measured first, so a slow build
 * such as the sanitizers' still sees kills after completed saves). */
static mt_crash_stats mt_crash_loop(const char *kind, size_t scale, int kills, uint64_t seed) {
    mt_crash_stats st = {0, 0, 0};
    mt_saver sv;
    mt_saver_init(&sv, kind, scale);
    mt_tmp_dir(); /* a real file system: kills also land in fsync */
    const char *path = mt_file(0, sv.file);
    double t0 = mt_now_us();
    MT_OK(sv.save(&sv, path, 2.0f));
    MT_OK(sv.save(&sv, path, 1.0f));
    long max_delay_us = (long)(3 * (mt_now_us() - t0) / 2) + 1000;
    float on_disk = 1.0f;
    for (int i = 0; i < kills; i++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) mt_child(&sv, path, 3.0f - on_disk); /* never returns */
        mt_sleep_us((long)(mt_lcg(&seed) % (uint64_t)max_delay_us));
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "%s: kill %d: the child stopped by itself (a save failed)", kind, i);
        st.kills++;
        int temps = mt_count_tmp_files();
        ck_assert_msg(temps <= 1, "%s: kill %d: %d temporaries on disk (not swept)", kind, i,
                      temps);
        st.with_temporary += temps;
        float v = mt_saver_version(&sv, path);
        st.flips += v != on_disk;
        on_disk = v;
    }
    /* The next save sweeps the last leftover and leaves nothing behind. */
    MT_OK(sv.save(&sv, path, 3.0f - on_disk));
    mt_saver_expect(&sv, path, 3.0f - on_disk);
    ck_assert_int_eq(mt_count_tmp_files(), 0);
    mt_saver_free(&sv);
    mt_tmp_clean();
    if (getenv("MT_CRASH_STATS"))
        fprintf(stderr, "%s: %d kills, %d left a temporary, %d flips, delays < %ld us\n",
                kind, st.kills, st.with_temporary, st.flips, max_delay_us);
    return st;
}

/* Each kill lands somewhere: before the first save began, mid-write, after
 * a rename; over all kills some must have left a temporary (a kill during
 * a write) and some must have found the other version (a kill after a
 * completed save), or the test proved nothing. */
static void mt_assert_spread(const char *kind, mt_crash_stats st) {
    ck_assert_msg(st.with_temporary > 0 && st.flips > 0,
                  "%s: of %d kills, %d left a temporary and %d followed a completed save",
                  kind, st.kills, st.with_temporary, st.flips);
}

START_TEST(test_killed_checkpoint_save_leaves_old_or_new) {
    /* 3 x 2048 x 5 floats of parameters, twice as much Adam state: 370 kB */
    mt_assert_spread("checkpoint", mt_crash_loop("checkpoint", 2048, 100, 11));
}
END_TEST

START_TEST(test_killed_cache_commit_leaves_old_or_new) {
    /* 8192 items, 16 float32 + 8 float16 values each: 640 kB */
    mt_assert_spread("cache", mt_crash_loop("cache", 2048, 50, 12));
}
END_TEST

START_TEST(test_killed_index_save_leaves_old_or_new) {
    /* 16384 items of 4 float32 and their ids: 384 kB */
    mt_assert_spread("index", mt_crash_loop("index", 2048, 50, 13));
}
END_TEST

static Suite *crash_suite(void) {
    Suite *s = suite_create("crash");
    TCase *tc = tcase_create("kill");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_killed_checkpoint_save_leaves_old_or_new);
    tcase_add_test(tc, test_killed_cache_commit_leaves_old_or_new);
    tcase_add_test(tc, test_killed_index_save_leaves_old_or_new);
    suite_add_tcase(s, tc);
    return s;
}
