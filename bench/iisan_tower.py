"""PyTorch counterpart of bench/iisan_tower.c: forward + backward of IISAN's
text tower as the reference's modules compute it (github.com/GAIR-Lab/IISAN,
Code_Cached: AdapterBlock x 7 over layers 0, 2, .., 12 of the cached
[704, 13, 768] states with the sigmoid(p / 0.1) gates, fc_bert, the text
encoder's fc (bert_pre_fc), com_dense), ReLU, 704 items; loss = sum(r * y).
The head (fc_bert then bert_pre_fc, no activation between) runs through the
product of its two weights, as the C side does (iisan.h): the same maths.
torch.set_num_threads from MMREC_BENCH_THREADS, run by the caller with
OPENBLAS_NUM_THREADS=1 and with OpenBLAS's default threads.
Prints one line: ref_ms=<median> runs=<n>."""

import torch
import torch.nn.functional as F
from torch import nn

import bench_util

threads = bench_util.threads()
torch.manual_seed(0)
ITEMS, LAYERS, H, R, D = 704, 13, 768, 64, 64
KEPT = list(range(0, LAYERS, 2))


class AdapterBlock(nn.Module):
    def __init__(self, input_size, down_size):
        super().__init__()
        self.fc_down = nn.Linear(input_size, down_size)
        nn.init.normal_(self.fc_down.weight, std=1e-2)
        nn.init.zeros_(self.fc_down.bias)
        self.activate = nn.ReLU()
        self.fc_up = nn.Linear(down_size, input_size)
        nn.init.normal_(self.fc_up.weight, std=1e-2)
        nn.init.zeros_(self.fc_up.bias)
        self.dropout = nn.Dropout(0.1)

    def forward(self, input_embs):
        x = self.fc_down(input_embs)
        x = self.activate(x)
        return self.fc_up(x) + input_embs


class TextTower(nn.Module):
    def __init__(self):
        super().__init__()
        self.bert_pre_fc = nn.Linear(H, D)
        self.bert_adapter_list = nn.ModuleList([AdapterBlock(H, R) for _ in KEPT])
        self.fc_bert = nn.Linear(H, H)
        self.side_gate_params_text = nn.ParameterList(
            [nn.Parameter(torch.ones(1) * 0) for _ in KEPT])
        self.com_dense = nn.Linear(D, D)

    def forward(self, sample_items_text):
        hidden_states_text = [sample_items_text[:, i, :].view(-1, H) for i in range(LAYERS)]
        last = torch.zeros(hidden_states_text[0].size())
        for index, layer in enumerate(KEPT):
            gate = torch.sigmoid(self.side_gate_params_text[index] / 0.1)
            fusion = gate * hidden_states_text[layer] + (1 - gate) * last
            last = self.bert_adapter_list[index](fusion)
        w = self.bert_pre_fc.weight @ self.fc_bert.weight
        b = self.bert_pre_fc.weight @ self.fc_bert.bias + self.bert_pre_fc.bias
        return self.com_dense(F.linear(last, w, b))


tower = TextTower()
states = torch.randn(ITEMS, LAYERS, H)
r = torch.randn(ITEMS, D)


def step():
    tower.zero_grad(set_to_none=True)
    y = tower(states)
    (y * r).sum().backward()


bench_util.time_step(step, 5, 30, threads)
