#!/usr/bin/env python3
"""lightgcn: LightGCN (He et al., SIGIR 2020) trained with BPR on a
LightGCN-format data set (Gowalla's split by default), evaluated by full
ranking: the Python port of examples/lightgcn.c (same readers, data
layouts and masks, seed, sampling through the library's generator,
schedule, early stopping and RESULT line).

  E = mean_k A_hat^k E0 over K = 3 layers, read at the batch's rows
  (ops.lightgcn_rows, one op),
  BPR over (user, positive, uniform negative) triples, plus
  L2 = lambda / 2 (|E0_u|^2 + |E0_i|^2 + |E0_j|^2) / batch on the ego rows,
  Adam; Recall@20 and NDCG@20 over all items with known items masked.

Usage: lightgcn.py <data dir> [--epochs N] [--batch B] [--lr LR]
                   [--constant-lr | --cosine] [--eval-every N] [--patience P]
                   [--no-early-stop] [--valid] [--seed S] [--threads T]
Layouts, masks and early stopping as the C example (its header comment):
train.txt + test.txt; train.txt + valid.txt + test.txt, disjoint (select on
valid, test with train and valid items masked); the nested layout with
train_minus_valid.txt (--valid). Defaults as the C example: 350 epochs (the
maximum under early stopping), batch 8192, Adam lr 2e-2 decayed by a half
cosine (constant under early stopping), validation every 10 epochs,
patience 5 evaluations, seed 2020, 2 threads.  The learning rate of each epoch is
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


def evaluate(tape, graph, ego, num_users, mask, test):
    """Recall@20 and NDCG@20 of the propagated embeddings on `test`, the
    items of `mask` left out of each user's ranking."""
    tape.mode = "inference"
    e = mmrec.ops.lightgcn(tape, graph, ego, LAYERS, None).numpy()  # a view, no copy
    m = mmrec.eval_full_ranking(e[:num_users], e[num_users:], mask, test, ks=[20])[0]
    tape.reset()
    tape.mode = "train"
    return m["recall"], m["ndcg"]


class Data:
    """The data directory by its layout (examples/lightgcn_data.h,
    lgcn_data_open): which file trains, selects and is reported, and which
    items the report masks."""

    def __init__(self, folder, nested_valid):
        has = lambda name: os.path.exists(os.path.join(folder, name))  # noqa: E731
        if not has("train.txt") or not has("test.txt"):
            sys.exit('%s: expected train.txt and test.txt ("user item item ..." lines), '
                     "optionally valid.txt" % folder)
        if has("train_minus_valid.txt") and has("valid.txt"):
            self.layout = "nested"
        else:
            self.layout = "held-out" if has("valid.txt") else "train-test"
        if nested_valid and self.layout != "nested":
            print("%s: --valid trains on train_minus_valid.txt and selects on valid.txt, which "
                  "this directory does not have both of%s" % (folder, "; its valid.txt is held "
                  "out and selects without --valid" if self.layout == "held-out" else ""),
                  file=sys.stderr)
            sys.exit(2)
        read = lambda name: mmrec.Interactions.read_lightgcn(os.path.join(folder, name))  # noqa
        self.train_file, self.valid_file, self.report_file = "train.txt", None, "test.txt"
        if self.layout == "held-out":
            self.valid_file = "valid.txt"
        if self.layout == "nested" and nested_valid:
            self.train_file = "train_minus_valid.txt"
            self.valid_file = self.report_file = "valid.txt"
        self.train = read(self.train_file)
        self.valid = read(self.valid_file) if self.valid_file else None
        self.report = self.valid if self.report_file == self.valid_file else read("test.txt")
        files = [x for x in (self.train, self.valid, self.report) if x is not None]
        self.num_users = max(x.info()[0] for x in files)
        self.num_items = max(x.info()[1] for x in files)
        self.mask, self.union = self.train, None
        if self.valid is not None:
            shared = self._shared(self.valid, self.train)
            if shared.size:
                vu, vi = self.valid.pairs()
                sys.exit("%s: %s shares %d of its %d pairs with %s (the first: user %d, item "
                         "%d), so it is not a held-out split: selecting on it would leak "
                         "training pairs. Held-out layout: train.txt, valid.txt, test.txt, "
                         "disjoint; nested layout (valid.txt inside train.txt): add "
                         "train_minus_valid.txt = train.txt without valid.txt."
                         % (folder, self.valid_file, shared.size, len(self.valid),
                            self.train_file, vu[shared[0]], vi[shared[0]]))
        if self.layout == "held-out":  # test ranks without train and valid items
            (tu, ti), (vu, vi) = self.train.pairs(), self.valid.pairs()
            self.union = mmrec.Interactions(np.concatenate([tu, vu]), np.concatenate([ti, vi]))
            self.mask = self.union
        shared = self._shared(self.report, self.mask)
        if shared.size:
            ru, ri = self.report.pairs()
            print("note: %d pairs of %s are also in %s%s (the first: user %d, item %d); they "
                  "are masked and never count as hits" % (shared.size, self.report_file,
                  self.train_file, " or valid.txt" if self.union else "", ru[shared[0]],
                  ri[shared[0]]), file=sys.stderr)

    def _shared(self, x, of):
        """Indices of the pairs of x that are also pairs of `of`."""
        (xu, xi), (ou, oi) = x.pairs(), of.pairs()
        n = self.num_items
        return np.nonzero(np.isin(xu * n + xi, ou * n + oi))[0]

    def describe(self):
        if self.layout == "held-out":
            return ("layout: held-out validation (train.txt, valid.txt, test.txt, disjoint): "
                    "train on train.txt, select on valid.txt, test with train and valid items "
                    "masked")
        if self.layout == "nested" and self.valid is not None:
            return ("layout: nested validation (valid.txt inside train.txt): train on "
                    "train_minus_valid.txt, select and report on valid.txt with "
                    "train_minus_valid items masked")
        return "layout: %s: train on train.txt, test with train items masked" % (
            "nested validation, unused without --valid" if self.layout == "nested"
            else "train.txt and test.txt")

    def close(self):
        for x in {id(h): h for h in (self.train, self.valid, self.report, self.union)
                  if h is not None}.values():
            x.close()


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
    ap.add_argument("--constant-lr", dest="cosine", action="store_false", default=None)
    ap.add_argument("--cosine", dest="cosine", action="store_true")
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--no-early-stop", action="store_true")
    ap.add_argument("--valid", action="store_true")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv[1:])
    lr = F32(a.lr)
    if (a.epochs < 1 or a.batch < 1 or not lr > 0 or a.eval_every < 1 or a.patience < 1
            or a.threads < 1):
        sys.exit("epochs, batch, lr, eval-every, patience and threads must be positive")
    mmrec.set_num_threads(a.threads)
    d = Data(a.dir, a.valid)
    # early stopping whenever a held-out file selects; then a constant rate
    early = d.valid is not None and not a.no_early_stop
    cosine = (not early) if a.cosine is None else a.cosine
    split = "valid" if d.report is d.valid else "test"
    U, I = d.num_users, d.num_items
    train, n_train = d.train, len(d.train)
    if d.layout == "held-out":
        print("lightgcn: %s, %d users, %d items, %d train / %d valid / %d test interactions"
              % (a.dir, U, I, n_train, len(d.valid), len(d.report)))
    else:
        print("lightgcn: %s, %d users, %d items, %d train / %d %s interactions"
              % (a.dir, U, I, n_train, len(d.report), split))
    print(d.describe())
    print("d=%d layers=%d batch=%d lr=%g (%s) l2=%g epochs=%d seed=%d threads=%d"
          % (DIM, LAYERS, a.batch, lr, "cosine decay" if cosine else "constant",
             L2, a.epochs, a.seed, mmrec.get_num_threads()), flush=True)
    if early:
        print("early stopping on %s Recall@20: every %d epochs, patience %d evaluations, at "
              "most %d epochs" % (d.valid_file, a.eval_every, a.patience, a.epochs))

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
    best_recall, best_ndcg, best_epoch, since_best, best = -1.0, 0.0, 0, 0, None
    epoch = 0
    while epoch < a.epochs:
        epoch += 1
        t0, loss_sum = time.monotonic(), 0.0
        if cosine:  # lr * (1 + cos(pi t / T)) / 2 over the epochs, in float32
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
            # the validation file when there is one, else the reported one
            te0 = time.monotonic()
            if d.valid is not None:
                recall, ndcg = evaluate(tape, graph, ego, U, d.train, d.valid)
            else:
                recall, ndcg = evaluate(tape, graph, ego, U, d.mask, d.report)
            improved = early and recall > best_recall  # ties keep the earlier epoch
            if improved:
                best_recall, best_ndcg, best_epoch, since_best = recall, ndcg, epoch, 0
                best = model.export_params(best)
            elif early:
                since_best += 1
            now = time.monotonic()
            print("epoch %d  loss %.5f  %srecall@20 %.4f  ndcg@20 %.4f  (eval %.1f s, %.0f s "
                  "total)%s" % (epoch, loss_sum / steps, "valid " if d.valid is not None else "",
                                recall, ndcg, now - te0, now - t_start,
                                "  best" if improved else ""), flush=True)
            if early and since_best >= a.patience:
                print("early stop at epoch %d: no better validation Recall@20 in %d evaluations"
                      % (epoch, a.patience))
                break
    if early:
        model.import_params(best)
        print("best epoch %d: valid recall@20 %.4f  ndcg@20 %.4f"
              % (best_epoch, best_recall, best_ndcg))
    else:
        best_epoch = epoch
    if early or (d.valid is not None and d.report is not d.valid):
        # the restored model on the reported file
        recall, ndcg = evaluate(tape, graph, ego, U, d.mask, d.report)
        print("epoch %d  %s recall@20 %.4f  ndcg@20 %.4f  (%s items masked)"
              % (best_epoch, split, recall, ndcg,
                 "train and valid" if d.union is not None else d.train_file))
    seconds = time.monotonic() - t_start
    print("RESULT lightgcn recall@20=%.4f ndcg@20=%.4f epochs=%d seconds=%.0f best_epoch=%d "
          "split=%s" % (recall, ndcg, epoch, seconds, best_epoch, split))
    for h in (tape, opt, model, rng, graph):
        h.close()
    d.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
