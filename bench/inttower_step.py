"""PyTorch counterpart of bench/inttower_step.c: one CTR training step of
IntTower as the authors' code runs it (model/IntTower.py with
dnn_use_bn=False; the field embeddings given): batch 2048, 4 user and 2
item fields of width 32 plus one dense feature a side, towers
(300, 300, 128), 32 heads of width 64 a side, dropout 0.3. A step: LightSE
per side, the User_Fe_DNN / Item_Fe_DNN towers, fe_score plus the bias,
binary_cross_entropy_with_logits, backward into every parameter and the
field embeddings, zero_grad.
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
B, FU, FI, E, HID, H, FD, P = 2048, 4, 2, 32, (300, 300, 128), 32, 64, 0.3


class LightSE(torch.nn.Module):
    def __init__(self, fields):
        super().__init__()
        self.excitation = torch.nn.Linear(fields, fields, bias=False)

    def forward(self, x):
        a = torch.softmax(self.excitation(x.mean(-1)), dim=1)
        return x + x * a.unsqueeze(2)


def mlp(sizes):
    return torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))


class IntTower(torch.nn.Module):
    def __init__(self):
        super().__init__()
        us, its = [FU * E + 1] + list(HID), [FI * E + 1] + list(HID)
        self.user_se, self.item_se = LightSE(FU), LightSE(FI)
        self.user_lin, self.item_lin = mlp(us), mlp(its)
        self.user_fe = torch.nn.ModuleList(torch.nn.Linear(a, H * FD) for a in us[:-1])
        self.item_fe = torch.nn.Linear(its[-1], H * FD)
        self.bias = torch.nn.Parameter(torch.zeros(1))
        for m in list(self.user_lin) + list(self.item_lin):
            torch.nn.init.normal_(m.weight, 0, 1e-4)

    def forward(self, ue, ud, ie, idn):
        h = torch.cat([self.user_se(ue).flatten(1), ud], -1)
        reps = []
        for lin, fe in zip(self.user_lin, self.user_fe):
            reps.append(fe(h))
            h = F.dropout(torch.relu(lin(h)), P, True)
        h = torch.cat([self.item_se(ie).flatten(1), idn], -1)
        for lin in self.item_lin:
            h = F.dropout(torch.relu(lin(h)), P, True)
        v = self.item_fe(h).reshape(-1, H, FD).permute(0, 2, 1)
        score = sum((u.reshape(-1, H, FD) @ v).max(2).values.sum(1) for u in reps)
        return score + self.bias


model = IntTower()
ue = torch.randn(B, FU, E, requires_grad=True)
ie = torch.randn(B, FI, E, requires_grad=True)
ud, idn = torch.randn(B, 1), torch.randn(B, 1)
y = (torch.arange(B) % 3 == 0).float()
fwd_times = []


def step():
    model.zero_grad(set_to_none=False)
    ue.grad = ie.grad = None
    t0 = time.perf_counter()
    loss = F.binary_cross_entropy_with_logits(model(ue, ud, ie, idn), y)
    fwd_times.append((time.perf_counter() - t0) * 1e3)
    loss.backward()


def extra():
    timed = fwd_times[3:]
    return f"ref_fwd_ms={statistics.median(timed):.3f}"


bench_util.time_step(step, 3, 20, threads, extra)
