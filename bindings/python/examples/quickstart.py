#!/usr/bin/env python3
"""quickstart: a two-tower retrieval model trained end to end (the Python
port of examples/quickstart.c: same data, same model, same RESULT line).

Generated data with a planted structure: users and items have hidden 8-d
tastes; their 32-d features are noisy linear views of the tastes; a user
clicks the items that match their taste best. Two MLP towers map features
to 32-d embeddings; in-batch softmax over user x item dot products
(temperature 0.1) with AdamW. Each epoch prints the loss and the Recall@10
of held-out clicks over all items; then the model is saved, reloaded into a
fresh model and the scores compared.

Every random number comes from the library's generator in the C program's
order, and the float32 arithmetic of the data is done in the same order, so
the figures equal the C example's for the same arguments.

Usage: quickstart.py [epochs] [checkpoint path]   (defaults: 8, quickstart.mmrc)
"""
import math
import sys

import numpy as np

import mmrec

N_USERS, N_ITEMS, FEAT, TASTE, EMB = 2000, 1000, 32, 8, 32
CLICKS_PER_USER = 6  # 5 for training, 1 held out
BATCH = 256
TEMPERATURE = np.float32(0.1)
F32 = np.float32


def features(rng, taste, proj, n):
    """Noisy linear views of the tastes, in the C loop's float32 order."""
    out = np.empty((n, FEAT), F32)
    noise = np.empty(FEAT, F32)
    scale = np.sqrt(F32(TASTE))
    for r in range(n):
        rng.normal(0.0, 0.3, out=noise)
        v = noise.copy()
        for t in range(TASTE):
            v = v + taste[r, t] * proj[t]
        out[r] = v / scale
    return out


def make_data(rng):
    """The data set, drawn from the library's seeded generator."""
    user_taste = rng.normal(0, 1, N_USERS * TASTE).reshape(N_USERS, TASTE)
    item_taste = rng.normal(0, 1, N_ITEMS * TASTE).reshape(N_ITEMS, TASTE)
    proj = rng.normal(0, 1, TASTE * FEAT).reshape(TASTE, FEAT)
    user_feat = features(rng, user_taste, proj, N_USERS)
    item_feat = features(rng, item_taste, proj, N_ITEMS)
    # Clicks: the best of 40 random candidates by taste match, repeated.
    below = rng.below
    cand = np.array([below(N_ITEMS) for _ in range(N_USERS * CLICKS_PER_USER * 40)],
                    dtype=np.int64).reshape(N_USERS, CLICKS_PER_USER, 40)
    s = np.zeros(cand.shape, F32)
    for t in range(TASTE):
        s = s + user_taste[:, None, None, t] * item_taste[cand, t]
    best = np.take_along_axis(cand, s.argmax(axis=2)[..., None], axis=2)[..., 0]
    train_user = np.repeat(np.arange(N_USERS, dtype=np.int64), CLICKS_PER_USER - 1)
    train_item = best[:, :CLICKS_PER_USER - 1].reshape(-1).copy()
    test_item = best[:, CLICKS_PER_USER - 1].copy()
    return user_feat, item_feat, train_user, train_item, test_item


def embed(tower, tape, feat, ids):
    """Embeds rows of a feature table through a tower (the rows are copied
    into a staging array that the tape wraps without a further copy)."""
    x = tape.wrap(feat[ids], readonly=True)
    return tower.forward(tape, x)


def score_all(user_tower, item_tower, user_feat, item_feat):
    """Scores of every item for every user, [N_USERS, N_ITEMS] (a copy)."""
    with mmrec.Tape(mode="inference") as tape:
        u = embed(user_tower, tape, user_feat, np.arange(N_USERS))
        v = embed(item_tower, tape, item_feat, np.arange(N_ITEMS))
        return mmrec.ops.matmul(tape, u, v, trans_b=True).numpy().copy()


def recall_at_10(scores, train_user, train_item, test_item):
    """Recall@10 of the held-out click, training clicks excluded."""
    scores[train_user, train_item] = -np.inf
    target = scores[np.arange(N_USERS), test_item]
    better = (scores > target[:, None]).sum(axis=1)
    return float(((target > -np.inf) & (better < 10)).sum()) / N_USERS


def main(argv):
    epochs = int(argv[1]) if len(argv) > 1 else 8
    path = argv[2] if len(argv) > 2 else "quickstart.mmrc"
    epochs = max(epochs, 1)

    rng = mmrec.Rng(7)
    user_feat, item_feat, train_user, train_item, test_item = make_data(rng)
    n_train = train_user.size

    model = mmrec.Model(seed=1)
    sizes = [FEAT, 64, EMB]
    user_tower = model.mlp("user_tower", sizes=sizes)
    item_tower = model.mlp("item_tower", sizes=sizes)
    trainable, _ = model.param_count()
    opt = mmrec.Optimizer(model, "adamw", lr=3e-3)
    tape = mmrec.Tape()

    print("quickstart: %d users, %d items, %d training clicks, %d parameters"
          % (N_USERS, N_ITEMS, n_train, trainable), flush=True)
    labels = np.arange(BATCH, dtype=np.int64)
    order = np.arange(n_train, dtype=np.int64)
    first_loss = last_loss = recall = 0.0
    steps = n_train // BATCH
    for epoch in range(1, epochs + 1):
        for k in range(n_train - 1, 0, -1):  # shuffle, as the C program does
            j = rng.below(k + 1)
            order[k], order[j] = order[j], order[k]
        epoch_loss = 0.0
        for s in range(steps):
            batch = order[s * BATCH:(s + 1) * BATCH]
            u = embed(user_tower, tape, user_feat, train_user[batch])
            v = embed(item_tower, tape, item_feat, train_item[batch])
            logits = mmrec.ops.matmul(tape, u, v, trans_b=True)
            scaled = mmrec.ops.scale(tape, logits, F32(1.0) / TEMPERATURE)
            loss = mmrec.ops.loss_softmax_ce(tape, scaled, labels)
            epoch_loss += loss.item()
            tape.backward(loss)
            opt.step()
            tape.reset()
        epoch_loss /= steps
        scores = score_all(user_tower, item_tower, user_feat, item_feat)
        recall = recall_at_10(scores, train_user, train_item, test_item)
        if epoch == 1:
            first_loss = epoch_loss
        last_loss = epoch_loss
        print("epoch %2d/%d  loss %.4f  recall@10 %.4f" % (epoch, epochs, epoch_loss, recall),
              flush=True)

    # Save, reload into a fresh model, compare every score.
    model.save(path, opt)
    with mmrec.Model() as model2:
        user2 = model2.mlp("user_tower", sizes=sizes)
        item2 = model2.mlp("item_tower", sizes=sizes)
        model2.load(path)
        scores = score_all(user_tower, item_tower, user_feat, item_feat)
        scores2 = score_all(user2, item2, user_feat, item_feat)
    match = int(np.array_equal(scores, scores2))
    print("saved %s; reloaded model scores %s" % (path, "match" if match else "DIFFER"))
    tape.close()
    opt.close()
    model.close()
    rng.close()
    print("RESULT quickstart loss_first=%.4f loss_last=%.4f recall@10=%.4f reload_match=%d"
          % (first_loss, last_loss, recall, match))
    return 0 if match and last_loss < first_loss else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
