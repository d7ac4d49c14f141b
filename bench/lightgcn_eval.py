"""PyTorch counterpart of bench/lightgcn_eval.c: LightGCN full-ranking
evaluation on Gowalla as LightGCN-PyTorch (gusye1234) does it. Final
embeddings: a 3-layer propagation (layer mean) of N(0, 0.1) ego embeddings,
seeded, d = 64 (or, with --emb path.npy, a float32 [users + items, 64]
final-embedding matrix, so the C side can feed identical embeddings). For
all test users, in batches of `user_batch` users: scores = users @ items^T,
the user's train items set to -inf, torch.topk(k = 20), Recall@20 and
NDCG@20 (binary relevance, IDCG over min(20, |test|) items), averaged over
users with at least one test item. Timed: the whole evaluation (scoring,
masking, top-k, metrics); the propagation is not timed. With runs > 1 the
first run is a warm-up and not counted. (The port scores sigmoid(u.i), masks
with -1024 and defaults to 100 users per batch; the ranking is the same.)
Usage: lightgcn_eval.py [runs=3] [user_batch=2048] [--emb path.npy] [--no-reuse]
(default: one preallocated scores buffer, the faster setup here; --no-reuse:
a fresh one per batch, as the port does);
threads from $MMREC_BENCH_THREADS (default 2).
Prints one line: ref_ms=<median> recall= ndcg= runs= user_batch= reuse= threads=
peak_rss_mib=."""
import argparse
import os
import resource
import statistics
import time

import numpy as np
import torch

from lightgcn_epoch import D, load, norm_adj, propagate

K = 20


def csr(u, i, n_users):
    """Per-user item lists as (indptr, indices) torch tensors."""
    order = np.argsort(u, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(u, minlength=n_users))])
    return torch.from_numpy(indptr), torch.from_numpy(i[order])


def rows_of(indptr, indices, bu):
    """(row in batch, item) pairs of the lists of users bu."""
    cnt = indptr[bu + 1] - indptr[bu]
    rows = torch.repeat_interleave(torch.arange(len(bu)), cnt)
    first = torch.repeat_interleave(indptr[bu] - (cnt.cumsum(0) - cnt), cnt)
    return rows, indices[torch.arange(int(cnt.sum())) + first]


def evaluate(emb, n_users, train, test, user_batch, out=None):
    users_emb, items_emb = emb[:n_users], emb[n_users:]
    n_items = len(items_emb)
    n_test = test[0][1:] - test[0][:-1]
    test_users = torch.nonzero(n_test > 0).flatten()
    discount = 1.0 / torch.log2(torch.arange(2, K + 2, dtype=torch.float64))
    idcg_at = discount.cumsum(0)
    recall = ndcg = 0.0
    for b in range(0, len(test_users), user_batch):
        bu = test_users[b:b + user_batch]
        if out is None:  # a fresh scores matrix per batch, as the port does
            scores = users_emb[bu] @ items_emb.T
        else:
            scores = torch.mm(users_emb[bu], items_emb.T, out=out[:len(bu)])
        scores[rows_of(*train, bu)] = -float("inf")
        top = torch.topk(scores, K).indices
        r, c = rows_of(*test, bu)
        test_keys = bu[r] * n_items + c
        hits = torch.isin(bu[:, None] * n_items + top, test_keys).double()
        cnt = n_test[bu]
        recall += (hits.sum(1) / cnt).sum().item()
        ndcg += ((hits * discount).sum(1) / idcg_at[cnt.clamp(max=K) - 1]).sum().item()
    return recall / len(test_users), ndcg / len(test_users)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="?", type=int, default=3)
    ap.add_argument("user_batch", nargs="?", type=int, default=2048)
    ap.add_argument("--emb", help="float32 [users + items, 64] final embeddings (.npy)")
    ap.add_argument("--no-reuse", dest="reuse", action="store_false",
                    help="a fresh scores tensor per batch, as the port does (slower here)")
    args = ap.parse_args()
    threads = int(os.environ.get("MMREC_BENCH_THREADS", "2"))
    torch.set_num_threads(threads)
    u, i = load("train.txt")
    tu, ti = load("test.txt")
    n_users, n_items = int(max(u.max(), tu.max())) + 1, int(max(i.max(), ti.max())) + 1
    if args.emb:
        emb = torch.from_numpy(np.load(args.emb).astype(np.float32, copy=False))
        assert emb.shape == (n_users + n_items, D), emb.shape
    else:
        torch.manual_seed(2020)
        with torch.no_grad():
            emb = propagate(norm_adj(u, i, n_users, n_items),
                            torch.randn(n_users + n_items, D) * 0.1)
    train, test = csr(u, i, n_users), csr(tu, ti, n_users)
    out = torch.empty(args.user_batch, n_items) if args.reuse else None
    times = []
    with torch.no_grad():
        for _ in range(args.runs):
            t0 = time.perf_counter()
            recall, ndcg = evaluate(emb, n_users, train, test, args.user_batch, out)
            times.append((time.perf_counter() - t0) * 1e3)
    if len(times) > 1:
        times = times[1:]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"ref_ms={statistics.median(times):.3f} recall={recall:.6f} ndcg={ndcg:.6f} "
          f"runs={len(times)} user_batch={args.user_batch} reuse={int(args.reuse)} threads={threads} "
          f"peak_rss_mib={peak:.1f}")


if __name__ == "__main__":
    main()
