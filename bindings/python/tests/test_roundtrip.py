"""Round trips: flat parameters, checkpoints, the feature cache, the index."""
import numpy as np
import pytest

import mmrec


def _model(seed=1):
    m = mmrec.Model(seed=seed)
    tower = m.mlp("tower", sizes=[6, 8, 2], activation="relu")
    return m, tower


def _train(m, tower, opt, steps, rng):
    x = np.empty((16, 6), np.float32)
    with mmrec.Tape() as tape:
        for _ in range(steps):
            rng.normal(out=x)
            y = tower.forward(tape, x)
            loss = mmrec.ops.mean(tape, mmrec.ops.mul(tape, y, y))
            tape.backward(loss)
            opt.step()
            tape.reset()


def test_export_import_params_and_grads():
    m1, _ = _model(1)
    m2, _ = _model(2)
    p1 = m1.export_params()
    assert p1.dtype == np.float32 and p1.size == m1.param_count()[0] == 6 * 8 + 8 + 8 * 2 + 2
    assert not np.array_equal(p1, m2.export_params())
    m2.import_params(p1)
    np.testing.assert_array_equal(m2.export_params(), p1)
    g = np.linspace(-1, 1, p1.size).astype(np.float32)
    m2.import_grads(g)
    np.testing.assert_array_equal(m2.export_grads(), g)
    with pytest.raises(mmrec.InvalidArgument):
        m2.import_params(p1[:-1])
    bad = p1.copy()
    bad[3] = np.nan
    with pytest.raises(mmrec.NumericError) as e:
        m2.import_params(bad)
    assert "3" in e.value.message


def test_checkpoint_resumes_bit_for_bit(tmp_path):
    path = str(tmp_path / "ckpt.mmrc")
    m, tower = _model()
    opt = mmrec.Optimizer(m, "adamw", lr=1e-2)
    _train(m, tower, opt, 5, mmrec.Rng(1))
    opt.save(path)
    _train(m, tower, opt, 5, mmrec.Rng(2))
    want = m.export_params()

    m2, tower2 = _model(seed=99)
    opt2 = mmrec.Optimizer(m2, "adamw", lr=1e-2)
    opt2.load(path)
    assert opt2.step_count == 5
    _train(m2, tower2, opt2, 5, mmrec.Rng(2))
    np.testing.assert_array_equal(m2.export_params(), want)

    m3, _ = _model(seed=5)
    m3.load(path)                                     # parameters only
    m4, _ = _model(seed=5)
    m4.add_param("extra", (1,))
    with pytest.raises(mmrec.FormatError, match="extra"):
        m4.load(path)


def test_cache_write_read(tmp_path):
    path = str(tmp_path / "items.mmfc")
    ids = np.array([10, 3, 7, 42], np.int64)
    image = np.arange(4 * 5, dtype=np.float32).reshape(4, 5)
    text = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    with mmrec.CacheWriter(path, ids) as w:
        w.add("image", image)
        w.add_layers("text", text, dtype="f16")
        w.commit()
    with mmrec.Cache(path) as c:
        assert c.num_items == 4
        assert c.fields() == [("image", 5, "f32"), ("text", 6, "f16")]
        assert c.field_shape("text") == (2, 3)
        np.testing.assert_array_equal(c.gather_into("image", [7, 10]), image[[2, 0]])
        np.testing.assert_allclose(c.gather_into("text", [42]), text[3].reshape(1, 6),
                                   rtol=1e-3, atol=1e-3)
        with mmrec.Tape() as tape:
            g = c.gather(tape, "image", [3, 3, 42])
            np.testing.assert_array_equal(g.numpy(), image[[1, 1, 3]])
            with pytest.raises(mmrec.Error) as e:
                c.gather(tape, "image", [5])
            assert "5" in e.value.message
            z, pres = c.gather(tape, "image", [5, 3], missing_zero=True, presence=True)
            np.testing.assert_array_equal(z.numpy()[0], 0)
            np.testing.assert_array_equal(pres.numpy().reshape(-1), [0, 1])
        with pytest.raises(mmrec.NotFound):
            c.field_shape("audio")


def test_index_search_matches_numpy(tmp_path):
    rng = np.random.default_rng(1)
    vec = rng.standard_normal((50, 8)).astype(np.float32)
    ids = np.arange(100, 150, dtype=np.int64)
    q = rng.standard_normal((3, 8)).astype(np.float32)
    with mmrec.Index(vec, ids) as index:
        found, scores, counts = index.search(q, 5, exclude=[[int(ids[0])], None, None])
        full = q @ vec.T
        full[0, 0] = -np.inf
        want = np.argsort(-full, axis=1, kind="stable")[:, :5] + 100
        np.testing.assert_array_equal(found, want)
        np.testing.assert_allclose(scores, np.take_along_axis(full, want - 100, 1), rtol=1e-5)
        assert counts.tolist() == [5, 5, 5]
        index.save(str(tmp_path / "i.mmix"))
    with mmrec.Index.open(str(tmp_path / "i.mmix")) as index:
        assert index.info()["num_items"] == 50
        np.testing.assert_array_equal(index.search(q, 5)[0][1:], want[1:])
