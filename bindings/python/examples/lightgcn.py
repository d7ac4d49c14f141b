#!/usr/bin/env python3
"""lightgcn: LightGCN (He et al., SIGIR 2020) trained with BPR on the
LightGCN-format Gowalla split, evaluated by full ranking: the Python port of
examples/lightgcn.c (same readers, seed, sampling through the library's
generator, schedule and RESULT line).

  E = mean_k A_hat^k E0 over K = 3 layers, read at the batch's rows
  (ops.lightgcn_rows, one op),
  BPR over (user, positive, uniform negative) triples, plus
  L2 = lambda / 2 (|E0_u|^2 + |E0_i|^2 + |E0_j|^2) / batch on the ego rows,
  Adam; Recall@20 and NDCG@20 over all items with training items masked.

Usage: lightgcn.py <data dir> [--epochs N] [--batch B] [--lr LR] [--constant-lr]
                   [--eval-every N] [--valid] [--seed S] [--threads T]
Defaults as the C example: 350 epochs, batch 8192, Adam lr 2e-2 decayed by a
half cosine, seed 2020, 2 threads.  The learning rate of each epoch is
computed in float32 with the C math library's cosf, as the C program does,
so both programs train the same model and print the same figures.
"""
import argparse
import os
import sys
import time

import cffi
import numpy as np

import mmrec

DIM = 64
LAYERS = 3
L2 = np.float32(1e-4)
F32 = np.float32

_m = cffi.FFI()
_m.cdef("float cosf(float);")
_libm = _m.dlopen("libm.so.6")


class UserLists:
    """Each user's training items, sorted (for the negative sampler)."""

    def __init__(self, train, num_users, num_items):
        us, its = train.pairs()
        order = np.lexsort((its, us))
        self.items = its[order].tolist()
        counts = np.bincount(us, minlength=num_users)
        ptr = np.zeros(num_users + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        self.ptr = ptr.tolist()
        self.active = np.nonzero(counts)[0].tolist()
        self.keys = set((us * num_items + its).tolist())
        self.num_items = num_items


def sample(lists, num_users, rng, batch, ids):
    """One batch of triples into ids: users, U + positive, U + negative
    (the C sampler's draws, in its order)."""
    below = rng.below
    active, ptr, items, keys = lists.active, lists.ptr, lists.items, lists.keys
    n_active, num_items = len(active), lists.num_items
    us, ps, ns = [0] * batch, [0] * batch, [0] * batch
    for k in range(batch):
        u = active[below(n_active)]
        lo = ptr[u]
        pos = items[lo + below(ptr[u + 1] - lo)]
        base = u * num_items
        neg = below(num_items)
        while base + neg in keys:
            neg = below(num_items)
        us[k], ps[k], ns[k] = u, pos, neg
    ids[:batch] = us
    ids[batch:2 * batch] = ps
    ids[2 * batch:] = ns
    ids[batch:] += num_users


def evaluate(tape, graph, ego, num_users, train, test):
    """Recall@20 and NDCG@20 of the propagated embeddings."""
    tape.mode = "inference"
    e = mmrec.ops.lightgcn(tape, graph, ego, LAYERS, None).numpy()  # a view, no copy
    m = mmrec.eval_full_ranking(e[:num_users], e[num_users:], train, test, ks=[20])[0]
    tape.reset()
    tape.mode = "train"
    return m["recall"], m["ndcg"]


def progress(epoch, step, steps, loss, t0, tty):
    if not tty:
        if step == steps:
            print("  epoch %d: %d batches, loss %.5f, %.1f s"
                  % (epoch, steps, loss, time.monotonic() - t0), file=sys.stderr)
        return
    done = 30 * step // steps
    bar = "".join("=" if k < done else ">" if k == done else " " for k in range(30))
    sys.stderr.write("\r  epoch %d [%s] %d/%d loss %.5f %.1f s"
                     % (epoch, bar, step, steps, loss, time.monotonic() - t0))
    if step == steps:
        sys.stderr.write("\n")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--epochs", type=int, default=350)
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--lr", type=float, default=2e-2)
    ap.add_argument("--constant-lr", action="store_true")
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--valid", action="store_true")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv[1:])
    lr = F32(a.lr)
    if a.epochs < 1 or a.batch < 1 or not lr > 0 or a.eval_every < 1 or a.threads < 1:
        sys.exit("epochs, batch, lr, eval-every and threads must be positive")
    mmrec.set_num_threads(a.threads)
    train_path = os.path.join(a.dir, "train_minus_valid.txt" if a.valid else "train.txt")
    test_path = os.path.join(a.dir, "valid.txt" if a.valid else "test.txt")
    train = mmrec.Interactions.read_lightgcn(train_path)
    test = mmrec.Interactions.read_lightgcn(test_path)
    U, I, n_train = train.info()
    tu, ti, n_test = test.info()
    U, I = max(U, tu), max(I, ti)
    print("lightgcn: %s, %d users, %d items, %d train / %d %s interactions"
          % (a.dir, U, I, n_train, n_test, "valid" if a.valid else "test"))
    print("d=%d layers=%d batch=%d lr=%g (%s) l2=%g epochs=%d seed=%d threads=%d"
          % (DIM, LAYERS, a.batch, lr, "constant" if a.constant_lr else "cosine decay",
             L2, a.epochs, a.seed, mmrec.get_num_threads()), flush=True)

    pu, pi = train.pairs()
    graph = mmrec.Graph.bipartite(pu, pi, U, I)
    lists = UserLists(train, U, I)

    model = mmrec.Model()
    ego = model.add_param("embedding", (U + I, DIM))
    rng = mmrec.Rng(a.seed)
    rng.normal(0.0, 0.1, out=ego.numpy())  # written in place, no copy
    opt = mmrec.Optimizer(model, "adam", lr=lr)
    tape = mmrec.Tape()
    ops = mmrec.ops

    batch = a.batch
    ids = np.empty(3 * batch, dtype=np.int64)
    steps = (n_train + batch - 1) // batch
    tty = sys.stderr.isatty()
    reg_scale = F32(0.5) * L2 / F32(batch)
    t_start = time.monotonic()
    recall = ndcg = 0.0
    for epoch in range(1, a.epochs + 1):
        t0, loss_sum = time.monotonic(), 0.0
        if not a.constant_lr:  # lr * (1 + cos(pi t / T)) / 2 over the epochs, in float32
            c = _libm.cosf(F32(F32(3.14159265) * F32(epoch - 1)) / F32(a.epochs))
            opt.set_lr(lr * F32(0.5) * (F32(1.0) + F32(c)))
        for s in range(steps):
            sample(lists, U, rng, batch, ids)
            rows = ops.lightgcn_rows(tape, graph, ego, LAYERS, None, ids)
            ur = ops.slice(tape, rows, 0, 0, batch)
            pr = ops.slice(tape, rows, 0, batch, batch)
            nr = ops.slice(tape, rows, 0, 2 * batch, batch)
            ps = ops.sum(tape, ops.mul(tape, ur, pr), 1)
            ns = ops.sum(tape, ops.mul(tape, ur, nr), 1)
            bpr = ops.loss_bpr(tape, ps, ns)
            # L2 on the ego rows of the batch: lambda / 2 * sum of squares / batch
            ego_rows = ops.gather_rows(tape, ego, ids)
            reg = ops.scale(tape, ops.sum(tape, ops.mul(tape, ego_rows, ego_rows)), reg_scale)
            loss = ops.add(tape, bpr, reg)
            loss_sum += bpr.item()
            tape.backward(loss)
            opt.step()
            tape.reset()
            if tty or s + 1 == steps:
                progress(epoch, s + 1, steps, loss_sum / (s + 1), t0, tty)
        if epoch % a.eval_every == 0 or epoch == a.epochs:
            te0 = time.monotonic()
            recall, ndcg = evaluate(tape, graph, ego, U, train, test)
            now = time.monotonic()
            print("epoch %d  loss %.5f  recall@20 %.4f  ndcg@20 %.4f  (eval %.1f s, %.0f s total)"
                  % (epoch, loss_sum / steps, recall, ndcg, now - te0, now - t_start), flush=True)
    seconds = time.monotonic() - t_start
    print("RESULT lightgcn recall@20=%.4f ndcg@20=%.4f epochs=%d seconds=%.0f"
          % (recall, ndcg, a.epochs, seconds))
    for h in (tape, opt, model, rng, graph, train, test):
        h.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
