"""Graph ops and full-ranking evaluation against numpy."""
import numpy as np
import pytest

import mmrec


def _norm_adj(users, items, nu, ni):
    a = np.zeros((nu + ni, nu + ni), np.float64)
    a[users, nu + items] = 1
    a[nu + items, users] = 1
    d = a.sum(1)
    dinv = np.where(d > 0, d ** -0.5, 0)
    return dinv[:, None] * a * dinv[None, :]


def test_lightgcn_matches_numpy_and_keeps_the_graph_alive():
    users = np.array([0, 0, 1, 2, 2, 2])
    items = np.array([0, 1, 1, 0, 2, 3])
    nu, ni, dim = 3, 4, 5
    ego_np = np.random.default_rng(0).standard_normal((nu + ni, dim)).astype(np.float32)
    a = _norm_adj(users, items, nu, ni)
    want = np.mean([np.linalg.matrix_power(a, k) @ ego_np for k in range(4)], axis=0)
    inter = mmrec.Interactions(users, items)
    graph = mmrec.Graph.from_interactions(inter)
    assert graph.info() == (nu + ni, nu, 2 * len(users))
    with mmrec.Model() as m, mmrec.Tape() as tape:
        ego = m.add_param("ego", (nu + ni, dim))
        ego.copy_from(ego_np)
        e = mmrec.ops.lightgcn(tape, graph, ego, 3, None)
        np.testing.assert_allclose(e.numpy(), want, rtol=1e-5, atol=1e-6)
        rows = mmrec.ops.lightgcn_rows(tape, graph, ego, 3, None, [4, 0])
        np.testing.assert_allclose(rows.numpy(), want[[4, 0]], rtol=1e-5, atol=1e-6)
        graph.close()          # the step still holds it: freed at reset
        assert graph.closed and graph._ptr != mmrec.ffi.NULL
        tape.backward(mmrec.ops.sum(tape, rows))
        g = ego.grad()
        np.testing.assert_allclose(
            g, np.mean([np.linalg.matrix_power(a, k) for k in range(4)], axis=0)[[4, 0]]
            .sum(0)[:, None] * np.ones((1, dim)), rtol=1e-5, atol=1e-6)
        tape.reset()
        assert graph._ptr == mmrec.ffi.NULL


def test_eval_full_ranking_matches_numpy():
    rng = np.random.default_rng(2)
    nu, ni, dim = 6, 9, 4
    ue = rng.standard_normal((nu, dim)).astype(np.float32)
    ie = rng.standard_normal((ni, dim)).astype(np.float32)
    train = mmrec.Interactions([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5])
    tu = np.array([0, 0, 1, 2, 3, 4, 5])
    ti = np.array([3, 7, 8, 1, 0, 2, 6])
    test = mmrec.Interactions(tu, ti)
    res = mmrec.eval_full_ranking(ue, ie, train, test, ks=[2, 5])
    s = ue @ ie.T
    s[np.arange(6), np.arange(6)] = -np.inf
    for r in res:
        top = np.argsort(-s, axis=1)[:, :r["k"]]
        rec = [len(set(top[u]) & set(ti[tu == u])) / len(ti[tu == u]) for u in range(nu)]
        assert r["users"] == nu
        assert r["recall"] == pytest.approx(np.mean(rec), rel=1e-6)
    with pytest.raises(TypeError, match="user_emb: expected dtype float32"):
        mmrec.eval_full_ranking(ue.astype(np.float64), ie, train, test)
