"""PyTorch counterpart of bench/maxsim_step.c: one in-batch training step of
ColBERT-style late interaction, as a competent user writes it.
B = 256 queries of 8 vectors against N = 256 items of 16 vectors, d = 64,
both sides L2-normalized once at setup (not timed); item n has 10 + n % 7
real vectors. A step: einsum('bqd,nkd->bnqk'), masked fill of the padded
item vectors with -inf, max over k, sum over q, cross_entropy with the
diagonal as targets, backward to the query and item vectors.
torch.set_num_threads(2); the caller runs it with OPENBLAS_NUM_THREADS=1 and
with OpenBLAS's default threads and compares with the faster.
Prints one line: ref_ms=<median> runs=<n> peak_rss_mib=<MiB> ref_fwd_ms=<median>."""

import statistics
import time

import torch
import torch.nn.functional as F

import bench_util

threads = bench_util.threads()
torch.manual_seed(0)
B, LQ, N, LD, D = 256, 8, 256, 16, 64

q = F.normalize(torch.randn(B, LQ, D), dim=-1).requires_grad_()
items = F.normalize(torch.randn(N, LD, D), dim=-1).requires_grad_()
real = torch.arange(LD)[None, :] < (10 + torch.arange(N) % 7)[:, None]  # [N, LD]
pad = ~real[None, :, None, :]  # broadcast over [B, N, LQ, LD]
labels = torch.arange(B)
fwd_times = []


def step():
    q.grad = None
    items.grad = None
    t0 = time.perf_counter()
    s = torch.einsum("bqd,nkd->bnqk", q, items)
    scores = s.masked_fill(pad, float("-inf")).max(dim=-1).values.sum(dim=-1)
    fwd_times.append((time.perf_counter() - t0) * 1e3)
    F.cross_entropy(scores, labels).backward()


def extra():
    timed = fwd_times[3:]
    return f"ref_fwd_ms={statistics.median(timed):.3f}"


bench_util.time_step(step, 3, 30, threads, extra)
