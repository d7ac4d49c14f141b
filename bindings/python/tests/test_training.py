"""Training: the loss falls; gradients agree with PyTorch."""
import numpy as np
import pytest

import mmrec


def test_loss_falls():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 10)).astype(np.float32)
    w_true = rng.standard_normal((10, 1)).astype(np.float32)
    y = (x @ w_true > 0).astype(np.float32)
    with mmrec.Model(seed=2) as m, mmrec.Tape() as tape:
        tower = m.mlp("tower", sizes=[10, 16, 1], activation="relu")
        opt = mmrec.Optimizer(m, "adam", lr=1e-2)
        losses = []
        for _ in range(150):
            logits = tower.forward(tape, tape.wrap(x))
            loss = mmrec.ops.loss_bce_logits(tape, logits, y)
            losses.append(loss.item())
            tape.backward(loss)
            opt.step()
            tape.reset()
        assert opt.step_count == 150
        assert losses[-1] < 0.5 * losses[0]
        assert losses[-1] < 0.2


def test_gradients_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    labels = np.array([0, 2, 1, 2, 0], np.int64)
    with mmrec.Model(seed=4) as m, mmrec.Tape() as tape:
        fc = m.linear("fc", in_dim=4, out_dim=3, bias=True)
        xt = tape.wrap(x.copy(), requires_grad=True)
        h = mmrec.ops.gelu(tape, fc.forward(tape, xt), "erf")
        loss = mmrec.ops.loss_softmax_ce(tape, mmrec.ops.scale(tape, h, 2.0), labels)
        tape.backward(loss)
        w, b = m.param("fc.weight"), m.param("fc.bias")

        tw = torch.tensor(w.numpy(), requires_grad=True)
        tb = torch.tensor(b.numpy(), requires_grad=True)
        tx = torch.tensor(x, requires_grad=True)
        th = torch.nn.functional.gelu(tx @ tw.T + tb)
        tl = torch.nn.functional.cross_entropy(2.0 * th, torch.tensor(labels))
        tl.backward()
        assert loss.item() == pytest.approx(tl.item(), rel=1e-5)
        np.testing.assert_allclose(w.grad(), tw.grad.numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(b.grad(), tb.grad.numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(xt.grad(), tx.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_backward_from_an_upstream_gradient():
    with mmrec.Model(seed=1) as m, mmrec.Tape() as tape:
        fc = m.linear("fc", in_dim=2, out_dim=2, bias=False)
        y = fc.forward(tape, np.array([[1, 2]], np.float32))
        tape.backward(y, d_out=[[1.0, -1.0]])
        np.testing.assert_allclose(m.param("fc.weight").grad(), [[1, 2], [-1, -2]])


def test_ops_cover_concat_reshape_and_arithmetic():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    with mmrec.Tape() as tape:
        ta, tb = tape.wrap(a), tape.wrap(a + 1)
        c = mmrec.ops.concat(tape, [ta, tb], 0)
        np.testing.assert_array_equal(c.numpy(), np.concatenate([a, a + 1]))
        r = mmrec.ops.reshape(tape, c, (3, 4))
        assert r.shape == (3, 4)
        np.testing.assert_array_equal((ta + tb).numpy(), 2 * a + 1)
        np.testing.assert_array_equal((ta * 2).numpy(), 2 * a)
        np.testing.assert_array_equal((ta - tb).numpy(), -np.ones_like(a))
        np.testing.assert_allclose((ta @ mmrec.ops.transpose(tape, tb)).numpy(), a @ (a + 1).T)
        np.testing.assert_allclose(mmrec.ops.sum(tape, ta).item(), 15)
        loss = mmrec.ops.loss_batch_softmax(tape, ta, tb, temperature=0.5)
        assert loss.shape in ((), (1,))
        with pytest.raises(TypeError, match="unexpected keyword 'temp'"):
            mmrec.ops.loss_batch_softmax(tape, ta, tb, temp=0.5)


def test_ops_as_tape_methods():
    with mmrec.Tape() as tape:
        x = tape.wrap(np.array([[-1.0, 2.0]], np.float32))
        np.testing.assert_array_equal(tape.relu(x).numpy(), [[0, 2]])
        assert tape.matmul(x, x, trans_b=True).item() == 5
        assert tape.reshape(x, (2,)).shape == (2,)
        with pytest.raises(AttributeError, match="'nope'"):
            tape.nope
