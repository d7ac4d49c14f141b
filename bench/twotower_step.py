"""PyTorch counterpart of bench/twotower_step.c: one training step of a
two-tower retrieval model with the in-batch softmax and the logQ correction
(Yi et al., RecSys 2019), as a competent user writes it.
B = 1024 (user, item) pairs; user and item tower each nn.Linear(256, 256),
ReLU, nn.Linear(256, 64); inputs [B, 256], fixed; scores
F.normalize(u) @ F.normalize(v).T / 0.05 - log p; F.cross_entropy with the
diagonal as targets; torch.optim.Adam(lr=1e-3). A step: zero_grad, both
towers forward, the loss, backward, Adam.

The inputs, -log p and the initial weights are the C side's, read from the
float32 file named by MMREC_BENCH_TWOTOWER_DATA (the C benchmark writes it
and sets it; without it, this script draws its own). Both sides run 5
warm-up steps and then the timed ones, and report the loss of the first
and of the last step; with MMREC_BENCH_TWOTOWER_LOSS ("<first> <last>", the
C side's) the relative differences are printed in parts per million.
torch.set_num_threads from MMREC_BENCH_THREADS; the caller runs this with
OPENBLAS_NUM_THREADS=1 and with OpenBLAS's default threads.
Prints one line: ref_ms=<median> runs=<n> threads=<n> peak_rss_mib=<MiB>
ref_fwd_ms= ref_loss_first= ref_loss_last= [loss_first_diff_ppm=
loss_last_diff_ppm=]."""

import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import bench_util

threads = bench_util.threads()
torch.manual_seed(0)
B, DIN, DH, DOUT, TAU = 1024, 256, 256, 64, 0.05
WARMUP = 5


def tower():
    return nn.Sequential(nn.Linear(DIN, DH), nn.ReLU(), nn.Linear(DH, DOUT))


user, item = tower(), tower()
path = os.environ.get("MMREC_BENCH_TWOTOWER_DATA")
if path:
    data = torch.from_numpy(np.fromfile(path, dtype=np.float32))
    at = 0

    def take(*shape):
        global at
        n = int(np.prod(shape))
        out = data[at:at + n].view(*shape).clone()
        at += n
        return out

    xu, xi = take(B, DIN), take(B, DIN)
    logq = -take(B)  # the file holds -log p
    with torch.no_grad():
        for t in (user, item):  # mmrec_model_export_params order
            for layer in (t[0], t[2]):
                layer.weight.copy_(take(*layer.weight.shape))
                layer.bias.copy_(take(*layer.bias.shape))
    assert at == data.numel(), "twotower_step.py: data file of another size"
else:
    xu, xi = torch.randn(B, DIN), torch.randn(B, DIN)
    logq = torch.empty(B).uniform_(-6.0, -2.0) * np.log(10.0)

opt = torch.optim.Adam(list(user.parameters()) + list(item.parameters()), lr=1e-3)
labels = torch.arange(B)
fwd_times, losses = [], []


def step():
    opt.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    u = F.normalize(user(xu), dim=-1)
    v = F.normalize(item(xi), dim=-1)
    logits = u @ v.t() / TAU - logq
    loss = F.cross_entropy(logits, labels)
    fwd_times.append((time.perf_counter() - t0) * 1e3)
    loss.backward()
    opt.step()
    losses.append(loss.detach())


def extra():
    first, last = float(losses[0]), float(losses[-1])
    out = (f"ref_fwd_ms={statistics.median(fwd_times[WARMUP:]):.3f} "
           f"ref_loss_first={first:.6f} ref_loss_last={last:.6f}")
    c = os.environ.get("MMREC_BENCH_TWOTOWER_LOSS")
    if c:
        c_first, c_last = (float(x) for x in c.split())
        out += (f" loss_first_diff_ppm={abs(first - c_first) / abs(c_first) * 1e6:.3f}"
                f" loss_last_diff_ppm={abs(last - c_last) / abs(c_last) * 1e6:.3f}")
    return out


bench_util.time_step(step, WARMUP, 30, threads, extra)
