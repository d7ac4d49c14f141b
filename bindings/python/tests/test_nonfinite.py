"""The NaN and Inf policy through Python: a loss refuses a NaN naming the
index, the check-finite mode names the op, the optimizer skips a step."""
import numpy as np
import pytest

import mmrec


def test_loss_refuses_nan_naming_the_index():
    with mmrec.Tape() as tape:
        pos = np.array([1, 2, 3], np.float32)
        neg = np.array([0, np.nan, 0], np.float32)
        with pytest.raises(mmrec.NumericError, match=r"neg\[1\] is nan"):
            mmrec.ops.loss_bpr(tape, pos, neg)


def test_check_finite_mode_names_the_op():
    x = np.array([[3e38, 3e38]], np.float32)
    assert not mmrec.get_check_finite()
    with mmrec.Tape() as tape:
        mmrec.ops.add(tape, x, x)  # inf, not checked
        mmrec.set_check_finite(True)
        try:
            assert mmrec.get_check_finite()
            with pytest.raises(mmrec.NumericError, match="output of 'add' has inf at index 0"):
                mmrec.ops.add(tape, x, x)
        finally:
            mmrec.set_check_finite(False)


def test_optimizer_skips_a_nonfinite_step():
    with mmrec.Model(seed=1) as m, mmrec.Tape() as tape:
        fc = m.linear("fc", in_dim=2, out_dim=1, bias=False)
        opt = mmrec.Optimizer(m, "sgd", lr=0.1, nonfinite_grads=mmrec.lib.MMREC_NONFINITE_SKIP)
        before = m.param("fc.weight").numpy().copy()
        y = fc.forward(tape, np.array([[1, 2]], np.float32))
        tape.backward(y, d_out=[[1e30]])
        assert np.isfinite(m.param("fc.weight").grad()).all()
        y2 = fc.forward(tape, np.array([[1e30, 1e30]], np.float32))
        tape.backward(y2, d_out=[[1e30]])  # the gradient overflows to inf
        opt.step()
        assert opt.skipped_steps == 1
        assert opt.step_count == 0
        np.testing.assert_array_equal(m.param("fc.weight").numpy(), before)
