/* The file writers' system calls and the per-thread fault plan (see
 * syscalls.h). */
#define _XOPEN_SOURCE 700
#include "syscalls.h"
#include "../core/core_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#define MMREC__IO_TRACE 512

typedef struct mmrec__io_fault_state {
    bool armed;
    mmrec__io_fault plan;
    uint64_t calls, fired;
    uint8_t trace[MMREC__IO_TRACE];
} mmrec__io_fault_state;

static _Thread_local mmrec__io_fault_state mmrec__io_state;

void mmrec__io_fault_arm(const mmrec__io_fault *plan) {
    mmrec__io_fault_state *st = &mmrec__io_state;
    st->armed = plan != NULL;
    st->calls = 0;
    st->fired = 0;
    if (plan) {
        st->plan = *plan;
        if (st->plan.calls == 0) st->plan.calls = MMREC__IO_ALL_CALLS;
        if (st->plan.times == 0) st->plan.times = 1;
    }
}

uint64_t mmrec__io_fault_calls(void) { return mmrec__io_state.calls; }

uint64_t mmrec__io_fault_fired(void) { return mmrec__io_state.fired; }

size_t mmrec__io_fault_trace(uint8_t *kinds_out, size_t cap) {
    const mmrec__io_fault_state *st = &mmrec__io_state;
    size_t n = st->calls < MMREC__IO_TRACE ? (size_t)st->calls : MMREC__IO_TRACE;
    if (n > cap) n = cap;
    for (size_t i = 0; i < n; i++) kinds_out[i] = st->trace[i];
    return n;
}

const char *mmrec__io_call_name(mmrec__io_call kind) {
    static const char *const names[MMREC__IO_N_CALLS] = {
        "open", "write", "pwrite", "fsync", "ftruncate", "close", "rename", "unlink"};
    return (unsigned)kind < MMREC__IO_N_CALLS ? names[kind] : "?";
}

/* Counts a call of `kind`; true when the plan faults it. */
static bool mmrec__io_fault_hit(mmrec__io_call kind) {
    mmrec__io_fault_state *st = &mmrec__io_state;
    if (!st->armed || !(st->plan.calls & (1u << kind))) return false;
    uint64_t k = ++st->calls;
    if (k <= MMREC__IO_TRACE) st->trace[k - 1] = (uint8_t)kind;
    if (st->plan.nth == 0 || k < st->plan.nth || k - st->plan.nth >= st->plan.times) return false;
    if (st->plan.short_write && kind != MMREC__IO_WRITE && kind != MMREC__IO_PWRITE)
        return false;
    st->fired++;
    return true;
}

/* The fault of a failing call: -1 with the plan's errno. */
static int mmrec__io_fail(void) {
    errno = mmrec__io_state.plan.err;
    return -1;
}

/* The byte count a faulted write transfers. */
static size_t mmrec__io_short(size_t size) { return size > 1 ? size / 2 : size; }

int mmrec__sys_open(const char *path, int flags, mode_t mode) {
    if (MMREC__UNLIKELY(mmrec__io_fault_hit(MMREC__IO_OPEN))) return mmrec__io_fail();
    return open(path, flags, mode);
}

ssize_t mmrec__sys_write(int fd, const void *buf, size_t size) {
    if (MMREC__UNLIKELY(mmrec__io_fault_hit(MMREC__IO_WRITE))) {
        if (!mmrec__io_state.plan.short_write) return mmrec__io_fail();
        size = mmrec__io_short(size);
    }
    return write(fd, buf, size);
}

ssize_t mmrec__sys_pwrite(int fd, const void *buf, size_t size, off_t offset) {
    if (MMREC__UNLIKELY(mmrec__io_fault_hit(MMREC__IO_PWRITE))) {
        if (!mmrec__io_state.plan.short_write) return mmrec__io_fail();
        size = mmrec__io_short(size);
    }
    return pwrite(fd, buf, size, offset);
}

int mmrec__sys_fsync(int fd) {
    if (MMREC__UNLIKELY(mmrec__io_fault_hit(MMREC__IO_FSYNC))) return mmrec__io_fail();
    return fsync(fd);
}

int mmrec__sys_ftruncate(int fd, off_t size) {
    if (MMREC__UNLIKELY(mmrec__io_fault_hit(MMREC__IO_FTRUNCATE))) return mmrec__io_fail();
    return ftruncate(fd, size);
}

int mmrec__sys_close(int fd) {
    if (MMREC__UNLIKELY(mmrec__io_fault_hit(MMREC__IO_CLOSE))) {
        close(fd); /* the descriptor is released whatever close reports */
        return mmrec__io_fail();
    }
    return close(fd);
}

int mmrec__sys_rename(const char *from, const char *to) {
    if (MMREC__UNLIKELY(mmrec__io_fault_hit(MMREC__IO_RENAME))) return mmrec__io_fail();
    return rename(from, to);
}

int mmrec__sys_unlink(const char *path) {
    if (MMREC__UNLIKELY(mmrec__io_fault_hit(MMREC__IO_UNLINK))) return mmrec__io_fail();
    return unlink(path);
}
