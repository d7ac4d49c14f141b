/* Shared by the benchmarks: wall clock, median, peak RSS, and running the
 * PyTorch counterpart (bench/<name>.py) in the same run. */
#ifndef MMREC_BENCH_UTIL_H
#define MMREC_BENCH_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

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

/* Thread count for a benchmark: MMREC_BENCH_THREADS, default 2. */
static inline int bench_threads(void) {
    const char *th = getenv("MMREC_BENCH_THREADS");
    return th ? atoi(th) : 2;
}

/* Whether this run times the C side only (MMREC_BENCH_C_ONLY set): the
 * benchmark runs itself that way on one thread to fill c_ms_1t=. A
 * benchmark skips its references and side measurements then. */
static inline int bench_c_only(void) { return getenv("MMREC_BENCH_C_ONLY") != NULL; }

/* The CPU's model name from /proc/cpuinfo without spaces ("unknown" when
 * there is none), and the widest vector instructions it has. */
static inline const char *bench_cpu(void) {
    static char name[128];
    if (name[0]) return name;
    snprintf(name, sizeof name, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (v == NULL) continue;
        size_t n = 0;
        for (v++; *v && *v != '\n' && n + 1 < sizeof name; v++)
            if (*v != ' ' && *v != '\t') name[n++] = *v;
        if (n) name[n] = '\0';
        break;
    }
    if (f) fclose(f);
    return name;
}

static inline const char *bench_isa(void) {
#if defined(__GNUC__) && defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "avx512";
    if (__builtin_cpu_supports("avx2")) return "avx2";
    return "x86-64";
#else
    return "other";
#endif
}

/* OpenBLAS picks its kernels by CPU model, once, when it loads; a release
 * older than the CPU falls back to its generic SSE3 ("Prescott") kernels
 * (OpenBLAS 0.3.21 on Emerald Rapids, for one) and every product of both
 * sides runs several times slower than the CPU allows. Both sides are
 * compared at their best: when the environment names no core type and
 * OpenBLAS chose Prescott on a CPU with AVX2, the benchmark runs itself
 * again under OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2),
 * which its references inherit; the BENCH line names the kernels
 * (blas_core=). A strong reference, so that OpenBLAS is loaded even by a
 * benchmark whose C side makes no product (its reference still does). */
#if defined(MMREC_BLAS_OPENBLAS)
extern char *openblas_get_corename(void);
static inline const char *bench_blas_core(void) { return openblas_get_corename(); }
#else
static inline const char *bench_blas_core(void) { return "blis"; }
#endif

__attribute__((constructor)) static void bench_blas_best_core(void) {
#if defined(__GNUC__) && defined(__x86_64__) && defined(MMREC_BLAS_OPENBLAS)
    if (getenv("OPENBLAS_CORETYPE") || strcasecmp(bench_blas_core(), "prescott") != 0) return;
    __builtin_cpu_init();
    const char *core = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                       : __builtin_cpu_supports("avx2") ? "Haswell"
                                                        : NULL;
    if (core == NULL) return;
    static char buf[4096];
    char *args[64];
    int n = 0;
    FILE *f = fopen("/proc/self/cmdline", "r");
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    for (size_t i = 0; i < len && n < 63; i += strlen(buf + i) + 1) args[n++] = buf + i;
    args[n] = NULL;
    if (n == 0 || setenv("OPENBLAS_CORETYPE", core, 1) != 0) return;
    execv("/proc/self/exe", args);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: go on as we are */
#endif
}

/* The C time of workload `name` on one thread, in ms, or NAN: the first
 * call runs this program again (its own command line, read from
 * /proc/self/cmdline) with MMREC_BENCH_C_ONLY=1 MMREC_BENCH_THREADS=1 and
 * keeps the c_ms of every workload it reports. */
static inline double bench_c_ms_1t(const char *name) {
    static struct {
        char name[64];
        double ms;
    } seen[16];
    static int n_seen = -1;
    if (n_seen < 0) {
        n_seen = 0;
        char cmd[2048] = "MMREC_BENCH_C_ONLY=1 MMREC_BENCH_THREADS=1", arg[1024];
        size_t len = strlen(cmd), n = 0;
        FILE *f = fopen("/proc/self/cmdline", "r");
        int c;
        while (f && (c = fgetc(f)) != EOF) {
            if (c != 0 && n + 1 < sizeof arg) {
                arg[n++] = (char)c;
                continue;
            }
            arg[n] = '\0';
            len += (size_t)snprintf(cmd + len, len < sizeof cmd ? sizeof cmd - len : 0, " '%s'",
                                    arg);
            n = 0;
        }
        if (f) fclose(f);
        FILE *p = len < sizeof cmd ? popen(cmd, "r") : NULL;
        char line[1024];
        while (p && fgets(line, sizeof line, p)) {
            char w[64];
            double ms;
            if (sscanf(line, "BENCH1T %63s c_ms=%lf", w, &ms) == 2 && n_seen < 16) {
                snprintf(seen[n_seen].name, sizeof seen[n_seen].name, "%s", w);
                seen[n_seen++].ms = ms;
            }
        }
        if (p && pclose(p) != 0) n_seen = 0;
    }
    for (int i = 0; i < n_seen; i++)
        if (strcmp(seen[i].name, name) == 0) return seen[i].ms;
    return NAN;
}

/* The fields every BENCH line carries after its speedup: the C time on one
 * thread, c_ms_1t / c_ms (scaling=), the CPU and its vector width. In a
 * C-only run, prints the workload's one-thread line instead and returns
 * 1 (the caller then reports nothing else). */
static inline int bench_c_fields(const char *name, double c_ms, char *out, size_t size) {
    if (bench_c_only()) {
        printf("BENCH1T %s c_ms=%.4f\n", name, c_ms);
        fflush(stdout);
        return 1;
    }
    double one = bench_c_ms_1t(name);
    snprintf(out, size, "c_ms_1t=%.3f scaling=%.2f cpu=%s isa=%s blas_core=%s", one, one / c_ms,
             bench_cpu(), bench_isa(), bench_blas_core());
    return 0;
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
    char cfields[256];
    if (bench_c_fields(name, c_ms, cfields, sizeof cfields)) return 0;
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
                printf("BENCH %s c_ms=%.3f ref_ms=nan speedup=nan %s%s%s\n", name, c_ms,
                       cfields, extra ? " " : "", extra ? extra : "");
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
    printf("BENCH %s c_ms=%.3f ref_ms=%.3f speedup=%.2f %s threads=%d runs=%d "
           "c_peak_rss_mib=%.1f ref_peak_rss_mib=%.1f ref_ms_blas1=%.3f ref_ms_blas_default=%.3f "
           "ref_setting=%s%s%s%s%s%s%s\n",
           name, c_ms, best, best / c_ms, cfields, mmrec_get_num_threads(), runs, c_rss,
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

#endif
