"""PyTorch counterpart of bench/distill_step.c: one training step of a
two-tower student with KL score distillation from a frozen joint-Transformer
teacher, as a competent user writes it.

Student: encode(ids) = mlp(features[ids]) + id(ids) (mlp nn.Linear(256, 128),
ReLU, nn.Linear(128, 64); id nn.Embedding(20001, 64)), one for the items and
one for the history; u = user_mlp(sum_t w[b, t] encode(hist)[b, t]) (64 ->
128 -> 64). L_s: F.normalize both sides, u @ v.T / 0.05 - log p, the pairs
(i, j != i) whose targets share an id filled with -inf, F.cross_entropy with
the diagonal as targets. S[b, c] = cos(u_b, v_{(b + c) % B}) / 0.05 over
C = 8 candidates. Teacher (eval(), under torch.no_grad()): token e(i) =
mlp(features[i]) + id(i), the history's and the targets' computed once and
indexed into [B * C, 6, 64] (the candidate first, then the history), plus
a position table; one nn.TransformerEncoderLayer(64, 2, 256, 0.1,
activation="gelu", batch_first=True) with src_key_padding_mask; T =
nn.Linear(64, 1) of the candidate token's output. With
MMREC_BENCH_DISTILL_TEACHER=rows the layer's own modules are applied to the
candidate's row alone (self_attn with that one query over every key, then
norm1, the feed-forward and norm2, as the post-LN layer does): the same
values for less work, as the library's mmrec_transformer_forward_rows;
=full (the default) runs the whole layer. Loss = L_s + F.kl_div(log_softmax(S),
log_softmax(T), reduction="batchmean", log_target=True). A step: zero_grad,
the teacher's forward, the student's forward, backward, the optimizer.

Optimizer: torch.optim.Adam (lr 1e-3) over every parameter, the id tables
dense nn.Embedding: the same update as the library's row-sparse tables here,
since with a fixed batch every step touches the same rows (rows never
touched keep zero moments and do not move). MMREC_BENCH_DISTILL_SPARSE=1
makes the tables nn.Embedding(sparse=True) updated by torch.optim.SparseAdam
(bench/em3_step.py's setup for large tables): a faster PyTorch step (it
skips the dense update of 2 x 20001 x 64 table entries), whose eps is added
before the bias correction rather than after as Adam's (and the library's):
the last step's losses then differ by about 12 ppm instead of about 2 (one
thread). With two threads PyTorch's steps are not bitwise reproducible from
run to run, and the last step's difference varies between runs (0.4 to 20
ppm seen with Adam); the first step's stays at about 0.001 ppm.

The features, ids, -log p and the initial weights of the student, then of
the teacher, are the C side's, read from the float32 file named by
MMREC_BENCH_DISTILL_DATA (the C benchmark writes it and sets it; without it,
this script draws its own). Both sides run 5 warm-up steps and then the
timed ones, and report the loss of the first and of the last step; with
MMREC_BENCH_DISTILL_LOSS ("<first> <last>", the C side's) the relative
differences are printed in parts per million. torch.set_num_threads from
MMREC_BENCH_THREADS; the caller runs this with OPENBLAS_NUM_THREADS=1 and
with OpenBLAS's default threads.
Prints one line: ref_ms=<median> runs=<n> threads=<n> peak_rss_mib=<MiB>
ref_teacher_ms= ref_student_ms= ref_loss_first= ref_loss_last=
[loss_first_diff_ppm= loss_last_diff_ppm=]."""

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
NUM_ITEMS, FEAT, DIM, B, HIST, C, TAU = 20000, 256, 64, 256, 5, 8, 0.05
SEQ = HIST + 1
WARMUP = 5
SPARSE = os.environ.get("MMREC_BENCH_DISTILL_SPARSE") == "1"
ROWS = os.environ.get("MMREC_BENCH_DISTILL_TEACHER", "full") == "rows"


def mlp(d_in):
    return nn.Sequential(nn.Linear(d_in, 128), nn.ReLU(), nn.Linear(128, DIM))


def table(sparse):
    return nn.Embedding(NUM_ITEMS + 1, DIM, sparse=sparse)


class Student(nn.Module):
    def __init__(self):
        super().__init__()
        self.item_mlp, self.item_id = mlp(FEAT), table(SPARSE)
        self.hist_mlp, self.hist_id = mlp(FEAT), table(SPARSE)
        self.user_mlp = mlp(DIM)

    def params_in_c_order(self):  # mmrec_model_export_params
        out = []
        for m, e in ((self.item_mlp, self.item_id), (self.hist_mlp, self.hist_id)):
            out += [m[0].weight, m[0].bias, m[2].weight, m[2].bias, e.weight]
        m = self.user_mlp
        return out + [m[0].weight, m[0].bias, m[2].weight, m[2].bias]


class Teacher(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp, self.id = mlp(FEAT), table(False)
        self.pos = nn.Parameter(torch.zeros(SEQ, DIM))
        self.layer = nn.TransformerEncoderLayer(DIM, 2, 256, 0.1, activation="gelu",
                                                batch_first=True)
        self.head = nn.Linear(DIM, 1)

    def params_in_c_order(self):
        a, m = self.layer, self.mlp
        return [m[0].weight, m[0].bias, m[2].weight, m[2].bias, self.id.weight, self.pos,
                a.self_attn.in_proj_weight, a.self_attn.in_proj_bias,
                a.self_attn.out_proj.weight, a.self_attn.out_proj.bias,
                a.linear1.weight, a.linear1.bias, a.linear2.weight, a.linear2.bias,
                a.norm1.weight, a.norm1.bias, a.norm2.weight, a.norm2.bias,
                self.head.weight, self.head.bias]


student, teacher = Student(), Teacher()
path = os.environ.get("MMREC_BENCH_DISTILL_DATA")
if path:
    data = torch.from_numpy(np.fromfile(path, dtype=np.float32))
    at = 0

    def take(*shape):
        global at
        n = int(np.prod(shape))
        out = data[at:at + n].view(*shape).clone()
        at += n
        return out

    features = take(NUM_ITEMS + 1, FEAT)
    hist = take(B, HIST).long()
    targets = take(B).long()
    logq = -take(B)  # the file holds -log p
    with torch.no_grad():
        for p in student.params_in_c_order() + teacher.params_in_c_order():
            p.copy_(take(*p.shape))
    assert at == data.numel(), "distill_step.py: data file of another size"
else:
    features = torch.randn(NUM_ITEMS + 1, FEAT)
    features[0] = 0
    hist = torch.randint(1, NUM_ITEMS + 1, (B, HIST))
    hist[::4, :2] = 0
    targets = torch.randint(1, NUM_ITEMS + 1, (B,))
    logq = torch.empty(B).uniform_(-5.0, -2.0) * np.log(10.0)
teacher.eval()
for p in teacher.parameters():
    p.requires_grad_(False)

# the batch's fixed index arrays
real = (hist != 0).float()
weights = (real / real.sum(1, keepdim=True)).unsqueeze(-1)  # [B, HIST, 1]
hist_flat = hist.reshape(-1)
tokens = torch.cat([hist_flat, targets])  # the teacher's: history, then targets
rows = torch.arange(B)
cand_col = (rows.unsqueeze(1) + torch.arange(C)) % B  # [B, C]
seq_rows = torch.cat([torch.zeros(B, 1, dtype=torch.long),
                      (rows * HIST).unsqueeze(1) + torch.arange(HIST)], 1)  # [B, SEQ]
seq_rows = seq_rows.unsqueeze(1).repeat(1, C, 1)
seq_rows[:, :, 0] = B * HIST + cand_col  # the candidate first
seq_rows = seq_rows.reshape(-1)  # [B * C * SEQ]
pad = (hist == 0).unsqueeze(1).expand(B, C, HIST)
pad = torch.cat([torch.zeros(B, C, 1, dtype=torch.bool), pad], 2).reshape(B * C, SEQ)
hits = (targets.unsqueeze(1) == targets.unsqueeze(0)) & ~torch.eye(B, dtype=torch.bool)
labels = rows

if not SPARSE:
    opts = [torch.optim.Adam(student.parameters(), lr=1e-3)]
else:
    tables = [student.item_id.weight, student.hist_id.weight]
    dense = [p for p in student.parameters() if all(p is not t for t in tables)]
    opts = [torch.optim.Adam(dense, lr=1e-3), torch.optim.SparseAdam(tables, lr=1e-3)]
teacher_times, student_times, losses = [], [], []


def encode(m, e, ids):
    return m(features[ids]) + e(ids)


def candidate_row(layer, x):
    """The post-LN layer's output at position 0 alone, [N, DIM]."""
    q = x[:, :1]
    a = layer.self_attn(q, x, x, key_padding_mask=pad, need_weights=False)[0]
    h = layer.norm1(q + a)
    h = layer.norm2(h + layer.linear2(F.gelu(layer.linear1(h))))
    return h[:, 0]


def step():
    for o in opts:
        o.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    with torch.no_grad():
        tok = encode(teacher.mlp, teacher.id, tokens)
        x = tok[seq_rows].view(B * C, SEQ, DIM) + teacher.pos
        if ROWS:
            y = candidate_row(teacher.layer, x)
        else:
            y = teacher.layer(x, src_key_padding_mask=pad)[:, 0]
        t = teacher.head(y).view(B, C)
    t1 = time.perf_counter()
    v = encode(student.item_mlp, student.item_id, targets)
    h = encode(student.hist_mlp, student.hist_id, hist_flat).view(B, HIST, DIM)
    u = student.user_mlp((h * weights).sum(1))
    un, vn = F.normalize(u, dim=-1), F.normalize(v, dim=-1)
    logits = (un @ vn.t() / TAU - logq).masked_fill(hits, float("-inf"))
    loss_s = F.cross_entropy(logits, labels)
    s = (un.unsqueeze(1) * vn[cand_col]).sum(-1) / TAU  # [B, C]
    kl = F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), reduction="batchmean",
                  log_target=True)
    loss = loss_s + kl
    t2 = time.perf_counter()
    teacher_times.append((t1 - t0) * 1e3)
    student_times.append((t2 - t1) * 1e3)
    loss.backward()
    for o in opts:
        o.step()
    losses.append(loss.detach())


def extra():
    first, last = float(losses[0]), float(losses[-1])
    out = (f"ref_teacher_ms={statistics.median(teacher_times[WARMUP:]):.3f} "
           f"ref_student_ms={statistics.median(student_times[WARMUP:]):.3f} "
           f"ref_loss_first={first:.6f} ref_loss_last={last:.6f}")
    c = os.environ.get("MMREC_BENCH_DISTILL_LOSS")
    if c:
        c_first, c_last = (float(x) for x in c.split())
        out += (f" loss_first_diff_ppm={abs(first - c_first) / abs(c_first) * 1e6:.3f}"
                f" loss_last_diff_ppm={abs(last - c_last) / abs(c_last) * 1e6:.3f}")
    return out


bench_util.time_step(step, WARMUP, 20, threads, extra)
