"""Shared by the PyTorch counterparts of the benchmarks: the thread setting
and the timing of one step, printed as the line bench_util.h reads."""
import os
import resource
import statistics
import sys
import time

import torch


def threads():
    """torch's intra-op threads, from MMREC_BENCH_THREADS (default 2), set."""
    n = int(os.environ.get("MMREC_BENCH_THREADS", "2"))
    torch.set_num_threads(n)
    return n


def time_step(step, warmup, default_runs, n_threads, extra=None):
    """Runs step() `warmup` times, then argv[1] (or default_runs) timed
    times, and prints ref_ms=<median> runs= threads= peak_rss_mib=, then
    the key=value fields extra() returns (a string), if given."""
    for _ in range(warmup):
        step()
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else default_runs
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"ref_ms={statistics.median(times):.3f} runs={runs} threads={n_threads} "
          f"peak_rss_mib={peak:.1f}" + (" " + extra() if extra else ""))
