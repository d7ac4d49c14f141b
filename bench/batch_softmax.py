"""PyTorch counterpart of bench/batch_softmax.c: forward and backward of the
in-batch softmax with logQ correction, composed of PyTorch's ops:
B = N = 4096 queries and candidates of d = 64, both L2-normalized,
logits / 0.05, minus log p_j (Zipf-like p), cross-entropy with the diagonal
as targets. torch.set_num_threads(2); the caller runs it with
OPENBLAS_NUM_THREADS=1 and with OpenBLAS's default threads and compares with
the faster.
Prints one line: ref_ms=<median> runs=<n> peak_rss_mib=<MiB>."""

import torch
import torch.nn.functional as F

import bench_util

threads = bench_util.threads()
torch.manual_seed(0)
B, N, D, TAU = 4096, 4096, 64, 0.05

q = torch.randn(B, D, requires_grad=True)
c = torch.randn(N, D, requires_grad=True)
rank = torch.arange(1, N + 1, dtype=torch.float32)
p = (1.0 / rank) / (1.0 / rank).sum()
bias = -torch.log(p)
labels = torch.arange(B)


def step():
    q.grad = None
    c.grad = None
    logits = F.normalize(q, dim=-1) @ F.normalize(c, dim=-1).T / TAU + bias
    F.cross_entropy(logits, labels).backward()


bench_util.time_step(step, 3, 20, threads)
