"""numpy in and out without copies where the library wraps memory."""
import gc

import numpy as np
import pytest

import mmrec


def test_in_place_change_of_a_wrapped_array_changes_the_forward():
    """tape.wrap does not copy: a write into the array between two ops is
    seen by the library."""
    with mmrec.Model(seed=3) as m, mmrec.Tape(mode="inference") as tape:
        fc = m.linear("fc", in_dim=4, out_dim=2, bias=False)
        x = np.zeros((3, 4), np.float32)
        wx = tape.wrap(x)
        assert wx.numpy() is x
        y0 = fc.forward(tape, wx).numpy().copy()
        assert not y0.any()
        x[1, 2] = 1.0                       # in place, after the wrap
        y1 = fc.forward(tape, wx).numpy()
        w = m.param("fc.weight").numpy()
        np.testing.assert_allclose(y1[1], w[:, 2], rtol=1e-6)
        assert not y1[0].any() and not y1[2].any()


def test_long_lived_wrap_sees_writes_and_is_written():
    x = np.arange(4, dtype=np.float32)
    t = mmrec.Tensor.wrap(x)
    t.copy_from([5, 6, 7, 8])               # the library writes the caller's array
    np.testing.assert_array_equal(x, [5, 6, 7, 8])
    x[0] = -1                               # and reads it
    assert t.numpy()[0] == -1
    with mmrec.Tape() as tape:
        s = mmrec.ops.sum(tape, t)
        assert s.item() == -1 + 6 + 7 + 8
        x2 = np.ones(4, np.float32)
        t.set_data(x2)                      # re-pointed, no copy
        assert mmrec.ops.sum(tape, t).item() == 4
    t.close()


def test_parameter_view_sees_the_optimizer_step():
    """Tensor.numpy() of a parameter is a view of the library's memory."""
    with mmrec.Model(seed=1) as m:
        fc = m.linear("fc", in_dim=3, out_dim=1)
        w = m.param("fc.weight")
        view = w.numpy()
        before = view.copy()
        opt = mmrec.Optimizer(m, "sgd", lr=0.5)
        with mmrec.Tape() as tape:
            y = fc.forward(tape, np.ones((2, 3), np.float32))
            tape.backward(mmrec.ops.sum(tape, y))
            grad = w.grad().copy()
            np.testing.assert_allclose(grad, [[2, 2, 2]])
            opt.step()
        np.testing.assert_allclose(view, before - 0.5 * grad, rtol=1e-6)
        assert not w.grad().any()           # the step cleared the gradient
        view[0, 0] = 42.0                   # and the library sees our writes
        assert m.export_params()[0] == 42.0
        opt.close()


def test_views_keep_memory_alive_after_close():
    m = mmrec.Model()
    p = m.add_param("w", (1000,))
    view = p.numpy()
    view[:] = 7
    m.close()                               # freed once the view goes
    assert m.closed and view.sum() == 7000
    with pytest.raises(mmrec.StateError):
        p.numpy()
    del view, p
    gc.collect()
    assert m._ptr == mmrec.ffi.NULL


def test_tape_tensor_view_and_rng_fill_in_place():
    with mmrec.Tape() as tape:
        t = tape.tensor((2, 5))
        v = t.numpy()
        mmrec.Rng(5).normal(out=v)          # written in place, no copy
        assert mmrec.ops.sum(tape, t).item() == pytest.approx(float(v.sum()), rel=1e-5)


def test_interactions_pairs_are_views():
    inter = mmrec.Interactions([0, 0, 1, 2], [3, 1, 2, 0])
    assert inter.info() == (3, 4, 4) and len(inter) == 4
    u, i = inter.pairs()
    assert not u.flags.writeable
    assert sorted(zip(u.tolist(), i.tolist())) == [(0, 1), (0, 3), (1, 2), (2, 0)]
    inter.close()
    assert u.sum() == 3                     # still readable: the view pins it


def test_wrap_closed_mid_step_lives_until_reset():  # backward reads x for d_weight
    """A caller-owned wrap used in a step is kept (header and array) until
    the tape's reset, even when closed and dropped meanwhile."""
    with mmrec.Model(seed=1) as m, mmrec.Tape() as tape:
        fc = m.linear("fc", in_dim=3, out_dim=1, bias=False)
        arr = np.ones((2, 3), np.float32)
        x = mmrec.Tensor.wrap(arr)
        y = fc.forward(tape, x)
        x.close()
        assert x.closed and x._ptr != mmrec.ffi.NULL
        del arr
        gc.collect()
        tape.backward(mmrec.ops.sum(tape, y))
        np.testing.assert_allclose(m.param("fc.weight").grad(), [[2, 2, 2]])
        tape.reset()
        assert x._ptr == mmrec.ffi.NULL
