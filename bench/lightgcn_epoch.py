"""PyTorch counterpart of the future bench/lightgcn_epoch.c: LightGCN training
batches on Gowalla (29,858 users, 40,981 items, 810,128 train pairs), written
the way LightGCN-PyTorch (gusye1234) does it. Graph: A = [[0, R], [R^T, 0]],
D^-1/2 A D^-1/2 as a coalesced float32 sparse tensor (COO, or CSR with the
third argument "csr"). Model: user and item nn.Embedding tables, d = 64,
init N(0, 0.1). Timed per batch of 2048 (u, i+, j-) triples: the full 3-layer
propagation (torch.sparse.mm per layer) with layer mean, gather of the batch
rows, BPR + 1e-4 * 0.5 * (|e_u|^2 + |e_i|^2 + |e_j|^2) / batch on the ego
embeddings, backward, Adam (lr 1e-3). Triples are pre-sampled as the port's
sampler draws them (uniform user, one of its positives, one uniform negative
not in its train set), outside the timed region.
Usage: lightgcn_epoch.py [batches=10] [threads=$MMREC_BENCH_THREADS or 2]
[coo|csr, default $MMREC_LIGHTGCN_LAYOUT or coo]; 2 warm-up batches.
Prints one line: ref_ms=<median ms per batch> epoch_s=<median * 396 / 1000>
batches= threads= layout= peak_rss_mib=."""
import math
import os
import resource
import statistics
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

DATA = "/work/shared/data/gowalla"
D, LAYERS, BATCH, LAMBDA, LR = 64, 3, 2048, 1e-4, 1e-3


def load(name):
    """Reads "user item item ..." lines; returns (users, items) int64 arrays."""
    users, items = [], []
    with open(os.path.join(DATA, name)) as f:
        for line in f:
            ids = [int(x) for x in line.split()]
            users += [ids[0]] * (len(ids) - 1)
            items += ids[1:]
    return np.array(users, dtype=np.int64), np.array(items, dtype=np.int64)


def norm_adj(u, i, n_users, n_items, layout="coo"):
    """D^-1/2 A D^-1/2 over users then items, as a coalesced float32 tensor."""
    rows = np.concatenate([u, i + n_users])
    cols = np.concatenate([i + n_users, u])
    deg = np.bincount(rows, minlength=n_users + n_items).astype(np.float64)
    inv = np.where(deg > 0, deg ** -0.5, 0.0)
    adj = torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows, cols])),
                                  torch.from_numpy((inv[rows] * inv[cols]).astype(np.float32)),
                                  (n_users + n_items,) * 2).coalesce()
    if layout == "csr":
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        adj = adj.to_sparse_csr()
    return adj


def propagate(adj, ego):
    """LightGCN: mean of E^0 .. E^LAYERS with E^(k+1) = adj @ E^k."""
    embs = [ego]
    for _ in range(LAYERS):
        embs.append(torch.sparse.mm(adj, embs[-1]))
    return torch.stack(embs, 1).mean(1)


def sample(u, i, n_users, n_items, n, rng):
    """n triples: uniform user, one of its positives, uniform negative not in its train set."""
    order = np.argsort(u, kind="stable")
    items = i[order]
    deg = np.bincount(u, minlength=n_users)
    start = np.cumsum(deg) - deg
    users = rng.integers(0, n_users, n)
    users = users[deg[users] > 0]
    pos = items[start[users] + rng.integers(0, deg[users])]
    train_keys = np.unique(u * n_items + i)
    neg = rng.integers(0, n_items, len(users))
    bad = np.isin(users * n_items + neg, train_keys)
    while bad.any():
        neg[bad] = rng.integers(0, n_items, bad.sum())
        bad[bad] = np.isin(users[bad] * n_items + neg[bad], train_keys)
    return [torch.from_numpy(a) for a in (users, pos, neg)]


def main():
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else int(os.environ.get("MMREC_BENCH_THREADS", "2"))
    layout = sys.argv[3] if len(sys.argv) > 3 else os.environ.get("MMREC_LIGHTGCN_LAYOUT", "coo")
    torch.set_num_threads(threads)
    torch.manual_seed(2020)
    u, i = load("train.txt")
    n_users, n_items = int(u.max()) + 1, int(i.max()) + 1
    adj = norm_adj(u, i, n_users, n_items, layout)
    user_emb = torch.nn.Embedding(n_users, D)
    item_emb = torch.nn.Embedding(n_items, D)
    torch.nn.init.normal_(user_emb.weight, std=0.1)
    torch.nn.init.normal_(item_emb.weight, std=0.1)
    opt = torch.optim.Adam([user_emb.weight, item_emb.weight], lr=LR)
    warm = 2
    users, pos, neg = sample(u, i, n_users, n_items, (warm + batches) * BATCH,
                             np.random.default_rng(2020))

    def step(b):
        bu, bp, bn = (t[b * BATCH:(b + 1) * BATCH] for t in (users, pos, neg))
        out = propagate(adj, torch.cat([user_emb.weight, item_emb.weight]))
        eu, ei, ej = out[bu], out[n_users + bp], out[n_users + bn]
        bpr = F.softplus((eu * ej).sum(1) - (eu * ei).sum(1)).mean()
        reg = 0.5 * (user_emb(bu).norm(2).pow(2) + item_emb(bp).norm(2).pow(2)
                     + item_emb(bn).norm(2).pow(2)) / len(bu)
        opt.zero_grad()
        (bpr + LAMBDA * reg).backward()
        opt.step()

    times = []
    for b in range(warm + batches):
        t0 = time.perf_counter()
        step(b)
        if b >= warm:
            times.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(times)
    epoch_s = med * math.ceil(len(u) / BATCH) / 1e3
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"ref_ms={med:.3f} epoch_s={epoch_s:.1f} batches={batches} runs={batches} "
          f"threads={threads} layout={layout} peak_rss_mib={peak:.1f}")


if __name__ == "__main__":
    main()
