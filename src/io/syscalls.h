/* The system calls the library makes when it writes files, in one place:
 * every open / write / pwrite / fsync / ftruncate / close / rename / unlink
 * of a file writer (src/io/atomic_file.c, file_io.c's positional writes)
 * goes through these wrappers. Each behaves exactly as the call it wraps
 * (same arguments, same return value, errno set on failure) unless the
 * calling thread armed a fault plan, which makes a chosen call fail or a
 * chosen write short. The plan exists for the tests (tests/test_io_faults.c):
 * the mmrec__io_fault_* functions are internal, present in every build,
 * reachable by programs linking the static library and hidden in the shared
 * one. An unarmed wrapper costs one thread-local load.
 *
 * Thread safety: the plan, its counters and its trace are per thread; a plan
 * armed on one thread never affects another. */
#ifndef MMREC_IO_SYSCALLS_H
#define MMREC_IO_SYSCALLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The wrapped calls; a plan's `calls` mask holds (1u << kind) for each
 * kind it counts. */
typedef enum mmrec__io_call {
    MMREC__IO_OPEN = 0,
    MMREC__IO_WRITE = 1,
    MMREC__IO_PWRITE = 2,
    MMREC__IO_FSYNC = 3,
    MMREC__IO_FTRUNCATE = 4,
    MMREC__IO_CLOSE = 5,
    MMREC__IO_RENAME = 6,
    MMREC__IO_UNLINK = 7,
    MMREC__IO_N_CALLS = 8
} mmrec__io_call;

#define MMREC__IO_ALL_CALLS ((1u << MMREC__IO_N_CALLS) - 1u)

/* A fault plan. Calls of the kinds in `calls` are numbered 1, 2, ... from
 * the moment the plan is armed; calls number nth .. nth + times - 1 are
 * faulted:
 *   short_write false: the call fails with errno `err` without doing
 *                      anything, except close, which releases the
 *                      descriptor first (as Linux does on any close error);
 *   short_write true:  a write or pwrite transfers only the first half of
 *                      its bytes (at least one) and returns that count; any
 *                      other call runs normally.
 * nth 0 faults nothing: the plan only counts and traces. */
typedef struct mmrec__io_fault {
    uint32_t calls;   /* mask of (1u << mmrec__io_call); 0: every kind */
    uint64_t nth;     /* 1-based number of the first faulted call; 0: none */
    uint32_t times;   /* consecutive faulted calls; 0 means 1 */
    int err;          /* errno of a failing call */
    bool short_write; /* a short write instead of a failure */
} mmrec__io_fault;

/* Arms `plan` on the calling thread (NULL disarms) and resets the thread's
 * counters and trace. */
void mmrec__io_fault_arm(const mmrec__io_fault *plan);
/* Calls counted on this thread since the plan was armed (counted: of a kind
 * in the plan's mask). */
uint64_t mmrec__io_fault_calls(void);
/* Faults injected on this thread since the plan was armed. */
uint64_t mmrec__io_fault_fired(void);
/* The kinds of the first `cap` counted calls, in order; returns how many
 * were stored (at most the trace's 512 entries). */
size_t mmrec__io_fault_trace(uint8_t *kinds_out, size_t cap);
/* The name of a kind ("open", "write", ...). */
const char *mmrec__io_call_name(mmrec__io_call kind);

/* ---- the wrappers ---- */

int mmrec__sys_open(const char *path, int flags, mode_t mode);
ssize_t mmrec__sys_write(int fd, const void *buf, size_t size);
ssize_t mmrec__sys_pwrite(int fd, const void *buf, size_t size, off_t offset);
int mmrec__sys_fsync(int fd);
int mmrec__sys_ftruncate(int fd, off_t size);
int mmrec__sys_close(int fd);
int mmrec__sys_rename(const char *from, const char *to);
int mmrec__sys_unlink(const char *path);

#endif
