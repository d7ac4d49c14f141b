"""PyTorch counterpart of bench/em3_step.c: one EM3 ranking training step.
B = 256 items with 2 image + 2 text cached features of dim 768, projected to
d = 128; FQ-Former with Q = 4 learned queries, 2 pre-LN layers (4 heads, FFN
512, dropout 0); flatten, Linear 512 -> 128; dot with the item-ID embedding
from a 100k x 128 table; BCE with logits. The fast idiomatic setup: a sparse
embedding updated by SparseAdam, AdamW for the dense parameters,
torch.set_num_threads(2); the caller runs it with OPENBLAS_NUM_THREADS=1 and
with OpenBLAS's default threads and compares with the faster.
Prints one line: ref_ms=<median> runs=<n> peak_rss_mib=<MiB>."""

import torch
import torch.nn.functional as F

import bench_util

threads = bench_util.threads()
torch.manual_seed(0)
B, M, K, FEAT, D, Q, ITEMS = 256, 2, 2, 768, 128, 4, 100_000


class EM3(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.queries = torch.nn.Parameter(torch.randn(Q, D) * 0.02)
        self.f_v = torch.nn.Linear(FEAT, D)
        self.f_t = torch.nn.Linear(FEAT, D)
        self.layers = torch.nn.ModuleList(
            torch.nn.TransformerEncoderLayer(D, 4, 512, dropout=0.0, activation="gelu",
                                             batch_first=True, norm_first=True)
            for _ in range(2))
        self.head = torch.nn.Linear(Q * D, D)
        self.item = torch.nn.Embedding(ITEMS, D, sparse=True)

    def forward(self, image, text, ids):
        tokens = torch.cat([self.queries.expand(len(ids), -1, -1), self.f_v(image),
                            self.f_t(text)], 1)
        for layer in self.layers:
            tokens = layer(tokens)
        content = self.head(tokens[:, :Q].reshape(len(ids), Q * D))
        return (content * self.item(ids)).sum(-1)


model = EM3()
dense = [p for n, p in model.named_parameters() if not n.startswith("item.")]
opt_dense = torch.optim.AdamW(dense, lr=1e-3)
opt_sparse = torch.optim.SparseAdam(list(model.item.parameters()), lr=1e-3)
image = torch.randn(B, M, FEAT)
text = torch.randn(B, K, FEAT)
labels = (torch.rand(B) < 0.5).float()
gen = torch.Generator().manual_seed(1)


def step():
    ids = torch.randint(0, ITEMS, (B,), generator=gen)
    opt_dense.zero_grad(set_to_none=True)
    opt_sparse.zero_grad(set_to_none=True)
    loss = F.binary_cross_entropy_with_logits(model(image, text, ids), labels)
    loss.backward()
    opt_dense.step()
    opt_sparse.step()


bench_util.time_step(step, 5, 20, threads)
