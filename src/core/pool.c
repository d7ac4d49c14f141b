/* The library's worker pool: mmrec__parallel_for splits a range into one
 * chunk per thread; the calling thread runs chunk 0 and the workers the
 * rest. BLAS itself runs single-threaded inside the chunks, so the library
 * and BLAS never have two thread pools fighting over the cores.
 *
 * Workers are created at the first parallel region and live until the
 * process ends. Between regions a worker spins briefly (a training step is a
 * quick succession of regions), then sleeps on a condition variable. One
 * region runs at a time: a second thread that asks for one while the pool is
 * busy, or a chunk that asks for a nested one, runs the same chunks itself,
 * one after the other, so results never depend on who ran them. */
#include "core_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#define MMREC__POOL_MAX 64    /* threads of one region, caller included */
#define MMREC__POOL_SPIN 20000 /* pause iterations before a worker sleeps */
#define MMREC__WAIT_SPIN 2000  /* pause iterations before a caller yields */

#if defined(__x86_64__) || defined(__i386__)
#define MMREC__PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define MMREC__PAUSE() __asm__ __volatile__("yield")
#else
#define MMREC__PAUSE() ((void)0)
#endif

/* One worker's mailbox: a region's caller writes the task, then bumps
 * `gen`; the worker runs it and decrements the region's `pending`. A worker
 * is only written to while idle (the caller waits for every chunk before it
 * returns), so the task needs no lock. */
typedef struct mmrec__worker_box {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_uint gen;
    unsigned start_gen;
    mmrec__chunk_fn fn;
    void *ctx;
    size_t n;
    int parts, part;
} mmrec__worker_box;

typedef struct mmrec__pool {
    atomic_flag busy;   /* a region is running */
    atomic_int pending; /* worker chunks of the current region not yet done */
    int n_workers;      /* started */
    mmrec__worker_box box[MMREC__POOL_MAX];
} mmrec__pool;

static mmrec__pool mmrec__the_pool = {.busy = ATOMIC_FLAG_INIT};
static _Thread_local bool mmrec__in_region;
static pthread_once_t mmrec__pool_once = PTHREAD_ONCE_INIT;

static void mmrec__run_chunk(mmrec__chunk_fn fn, void *ctx, size_t n, int parts, int part) {
    size_t begin = n * (size_t)part / (size_t)parts, end = n * (size_t)(part + 1) / (size_t)parts;
    if (begin < end) fn(ctx, begin, end, part);
}

static void *mmrec__worker(void *arg) {
    mmrec__pool *p = &mmrec__the_pool;
    mmrec__worker_box *b = arg;
    unsigned seen = b->start_gen;
    mmrec__in_region = true; /* a chunk's own regions run inline */
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&b->gen, memory_order_acquire) == seen) {
            if (++spins < MMREC__POOL_SPIN) {
                MMREC__PAUSE();
                continue;
            }
            pthread_mutex_lock(&b->lock);
            while (atomic_load_explicit(&b->gen, memory_order_acquire) == seen)
                pthread_cond_wait(&b->wake, &b->lock);
            pthread_mutex_unlock(&b->lock);
        }
        seen++;
        mmrec__run_chunk(b->fn, b->ctx, b->n, b->parts, b->part);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
    return NULL;
}

/* In a child after fork() the workers do not exist: start afresh. */
static void mmrec__pool_after_fork(void) {
    mmrec__pool *p = &mmrec__the_pool;
    p->n_workers = 0;
    atomic_flag_clear(&p->busy);
}

static void mmrec__pool_init_once(void) { pthread_atfork(NULL, NULL, mmrec__pool_after_fork); }

/* Starts workers until `want` run (the pool is busy: no region is running).
 * Returns how many run: fewer when the system refuses a thread. */
static int mmrec__pool_grow(mmrec__pool *p, int want) {
    while (p->n_workers < want) {
        mmrec__worker_box *b = &p->box[p->n_workers];
        if (pthread_mutex_init(&b->lock, NULL) != 0) break;
        if (pthread_cond_init(&b->wake, NULL) != 0) {
            pthread_mutex_destroy(&b->lock);
            break;
        }
        b->start_gen = atomic_load_explicit(&b->gen, memory_order_relaxed);
        pthread_attr_t attr;
        pthread_t t;
        int rc = pthread_attr_init(&attr);
        if (rc == 0) {
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            rc = pthread_create(&t, &attr, mmrec__worker, b);
            pthread_attr_destroy(&attr);
        }
        if (rc != 0) {
            pthread_cond_destroy(&b->wake);
            pthread_mutex_destroy(&b->lock);
            break;
        }
        p->n_workers++;
    }
    return p->n_workers;
}

int mmrec__parallel_parts(size_t n, size_t grain) {
    size_t max_parts = grain > 1 ? n / grain : n;
    int threads = mmrec__num_threads();
    if (threads > MMREC__POOL_MAX) threads = MMREC__POOL_MAX;
    int parts = max_parts < (size_t)threads ? (int)max_parts : threads;
    return parts < 1 ? 1 : parts;
}

void mmrec__parallel_for(size_t n, int parts, mmrec__chunk_fn fn, void *ctx) {
    assert(parts >= 1 && parts <= MMREC__POOL_MAX);
    if (n == 0) return;
    if (parts <= 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    mmrec__pool *p = &mmrec__the_pool;
    /* Busy, nested, or short of threads: the caller runs every chunk of the
     * same partition, so results never depend on who ran them. */
    bool alone = mmrec__in_region ||
                 atomic_flag_test_and_set_explicit(&p->busy, memory_order_acquire);
    if (!alone) {
        pthread_once(&mmrec__pool_once, mmrec__pool_init_once);
        if (mmrec__pool_grow(p, parts - 1) < parts - 1) {
            atomic_flag_clear_explicit(&p->busy, memory_order_release);
            alone = true;
        }
    }
    if (alone) {
        for (int part = 0; part < parts; part++) mmrec__run_chunk(fn, ctx, n, parts, part);
        return;
    }
    atomic_store_explicit(&p->pending, parts - 1, memory_order_relaxed);
    for (int w = 0; w < parts - 1; w++) {
        mmrec__worker_box *b = &p->box[w];
        b->fn = fn;
        b->ctx = ctx;
        b->n = n;
        b->parts = parts;
        b->part = w + 1;
        /* The mutex orders the bump against a worker about to sleep. */
        pthread_mutex_lock(&b->lock);
        atomic_fetch_add_explicit(&b->gen, 1, memory_order_release);
        pthread_cond_signal(&b->wake);
        pthread_mutex_unlock(&b->lock);
    }
    mmrec__in_region = true;
    mmrec__run_chunk(fn, ctx, n, parts, 0);
    mmrec__in_region = false;
    /* A worker that is not running (more threads than cores, a debugger,
     * valgrind's one-thread-at-a-time scheduler) cannot finish while the
     * caller spins on its core: after a short spin, yield it. */
    for (int spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0;) {
        if (++spins < MMREC__WAIT_SPIN)
            MMREC__PAUSE();
        else
            sched_yield();
    }
    atomic_flag_clear_explicit(&p->busy, memory_order_release);
}
