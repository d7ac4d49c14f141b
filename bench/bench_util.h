/* Shared by the benchmarks: wall clock, median, peak RSS, and running the
 * PyTorch counterpart (bench/<name>.py) in the same run. */
#ifndef MMREC_BENCH_UTIL_H
#define MMREC_BENCH_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <mmrec/mmrec.h>

#define BENCH_CHECK(call)                                                             \
    do {                                                                              \
        mmrec_status s_ = (call);                                                     \
        if (s_ != MMREC_OK) {                                                         \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call, \
                    mmrec_status_name(s_), mmrec_last_error());                       \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static inline double bench_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of the process (every thread), in ms: on a shared machine it
 * shows the work a step does when the wall clock also counts waiting. */
static inline double bench_cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Writes n floats to f (the data a counterpart reads); exits on failure. */
static inline void bench_write_floats(FILE *f, const float *v, size_t n) {
    if (fwrite(v, sizeof *v, n, f) != n) {
        perror("benchmark: writing the data file");
        exit(1);
    }
}

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Peak resident set of this process so far, in MiB. */
static inline double bench_peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* Runs `bench/<script> <args>` with the PyTorch interpreter (MMREC_PYTHON,
 * default /usr/bin/python3) under the environment assignments `env`
 * ("NAME=value " each, may be ""), and copies the last line it printed
 * (key=value fields) into `line`. Returns 0 on success. */
static inline int bench_run_reference_env(const char *script, const char *args, const char *env,
                                          char *line, size_t size) {
    const char *py = getenv("MMREC_PYTHON");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s%s %s/%s %s", env, py ? py : "/usr/bin/python3",
             MMREC_BENCH_DIR, script, args ? args : "");
    FILE *p = popen(cmd, "r");
    if (p == NULL) return -1;
    char buf[1024];
    line[0] = '\0';
    while (fgets(buf, sizeof buf, p)) {
        buf[strcspn(buf, "\n")] = '\0';
        if (buf[0]) snprintf(line, size, "%s", buf);
    }
    int rc = pclose(p);
    return rc == 0 && line[0] ? 0 : -1;
}

/* bench_run_reference_env() under OPENBLAS_NUM_THREADS=1 when blas1 is set
 * (else with OpenBLAS's default threads). */
static inline int bench_run_reference(const char *script, const char *args, int blas1,
                                      char *line, size_t size) {
    return bench_run_reference_env(script, args, blas1 ? "OPENBLAS_NUM_THREADS=1 " : "", line,
                                   size);
}

/* Value of `key=` in a line of key=value fields, or -1. */
static inline double bench_field(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "%s=", key);
    const char *at = strstr(line, pat);
    return at ? atof(at + strlen(pat)) : -1.0;
}

/* Runs the PyTorch counterpart bench/<name>.py with `runs` under each of
 * n_envs environment settings (envs[i], "NAME=value " assignments, may be
 * ""; labels[i] names it), each twice: with OPENBLAS_NUM_THREADS=1 and
 * with OpenBLAS's default threads (PyTorch's and OpenBLAS's pools can
 * fight over the cores, or not, depending on the workload). Compares with
 * the fastest of them and prints the workload's BENCH line with both, the
 * best time at each BLAS setting (ref_ms_blas1=, ref_ms_blas_default=),
 * with several settings the best time of each (ref_ms_<label>=), then
 * `extra` (key=value fields of the C side, may be NULL) and the fields
 * named in `ref_keys` (space-separated, may be NULL) from the fastest
 * reference's line. Returns 0, or 1 when a reference failed. */
static inline int bench_report_settings(const char *name, double c_ms, int runs,
                                        const char *extra, const char *ref_keys,
                                        const char *const *envs, const char *const *labels,
                                        int n_envs) {
    double c_rss = bench_peak_rss_mib();
    char line[2][1024], best_line[1024] = "", args[32], script[128], per_env[256] = "";
    snprintf(args, sizeof args, "%d", runs);
    snprintf(script, sizeof script, "%s.py", name);
    double by_blas[2] = {INFINITY, INFINITY}, best = INFINITY;
    int best_blas = 0, best_env = 0;
    for (int e = 0; e < n_envs; e++) {
        double env_best = INFINITY;
        for (int s = 0; s < 2; s++) {
            char env[512];
            snprintf(env, sizeof env, "%s%s", s == 0 ? "OPENBLAS_NUM_THREADS=1 " : "", envs[e]);
            if (bench_run_reference_env(script, args, env, line[s], sizeof line[s]) != 0) {
                fprintf(stderr, "%s: PyTorch reference failed (python3-torch installed?)\n",
                        name);
                printf("BENCH %s c_ms=%.3f ref_ms=nan speedup=nan%s%s\n", name, c_ms,
                       extra ? " " : "", extra ? extra : "");
                return 1;
            }
            double ms = bench_field(line[s], "ref_ms");
            if (ms < by_blas[s]) by_blas[s] = ms;
            if (ms < env_best) env_best = ms;
            if (ms < best) {
                best = ms, best_blas = s, best_env = e;
                memcpy(best_line, line[s], sizeof best_line);
            }
        }
        if (n_envs > 1) {
            size_t len = strlen(per_env);
            snprintf(per_env + len, sizeof per_env - len, " ref_ms_%s=%.3f", labels[e], env_best);
        }
    }
    char fields[512] = "";
    if (ref_keys) {
        char keys[256], *save = NULL;
        snprintf(keys, sizeof keys, "%s", ref_keys);
        for (char *k = strtok_r(keys, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
            size_t len = strlen(fields);
            snprintf(fields + len, sizeof fields - len, " %s=%.3f", k, bench_field(best_line, k));
        }
    }
    printf("BENCH %s c_ms=%.3f ref_ms=%.3f speedup=%.2f threads=%d runs=%d "
           "c_peak_rss_mib=%.1f ref_peak_rss_mib=%.1f ref_ms_blas1=%.3f ref_ms_blas_default=%.3f "
           "ref_setting=%s%s%s%s%s%s%s\n",
           name, c_ms, best, best / c_ms, mmrec_get_num_threads(), runs, c_rss,
           bench_field(best_line, "peak_rss_mib"), by_blas[0], by_blas[1],
           best_blas ? "blas_default" : "blas1", n_envs > 1 ? "_" : "",
           n_envs > 1 ? labels[best_env] : "", per_env, extra ? " " : "", extra ? extra : "",
           fields);
    return 0;
}

/* bench_report_settings() with the environment as it is. */
static inline int bench_report_fields(const char *name, double c_ms, int runs, const char *extra,
                                      const char *ref_keys) {
    static const char *const none[1] = {""};
    return bench_report_settings(name, c_ms, runs, extra, ref_keys, none, none, 1);
}

/* bench_report_fields() without extra fields. */
static inline int bench_report(const char *name, double c_ms, int runs) {
    return bench_report_fields(name, c_ms, runs, NULL, NULL);
}

/* Thread count for a benchmark: MMREC_BENCH_THREADS, default 2. */
static inline int bench_threads(void) {
    const char *th = getenv("MMREC_BENCH_THREADS");
    return th ? atoi(th) : 2;
}

#endif
