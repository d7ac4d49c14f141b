"""PyTorch counterpart of bench/transformer_layer.c: one TransformerEncoderLayer
training step (256 sequences x 8 tokens, d=128, 4 heads, FFN 512, pre-LN, GELU,
dropout 0, AdamW), timed the way a competent user would run it here:
torch.set_num_threads(2), run by the caller with OPENBLAS_NUM_THREADS=1 and
with OpenBLAS's default threads (compared with the faster).
Prints one line: ref_ms=<median> runs=<n>."""

import torch

import bench_util

threads = bench_util.threads()
torch.manual_seed(0)
B, T, D, H, F = 256, 8, 128, 4, 512
layer = torch.nn.TransformerEncoderLayer(D, H, F, dropout=0.0, activation="gelu",
                                         batch_first=True, norm_first=True)
opt = torch.optim.AdamW(layer.parameters(), lr=1e-3)
x = torch.randn(B, T, D)
r = torch.randn(B, T, D)


def step():
    opt.zero_grad(set_to_none=True)
    y = layer(x)
    loss = (y * r).sum()
    loss.backward()
    opt.step()


bench_util.time_step(step, 10, 50, threads)
