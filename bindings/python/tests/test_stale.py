"""Stale tape tensors: any use after the tape's reset or close raises
StaleTensorError, also after several resets, when the arena has reused the
tensor's memory for a live tensor."""
import numpy as np
import pytest

import mmrec


def _uses(t):
    return [lambda: t.numpy(), lambda: t.shape, lambda: t.item(), lambda: t.grad(),
            lambda: mmrec.ops.relu(t._owner, t)]


@pytest.mark.parametrize("resets", [1, 2, 3])
def test_tensor_kept_across_resets(resets):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    with mmrec.Tape() as tape:
        old = mmrec.ops.scale(tape, tape.wrap(x), 2.0)
        assert old.generation == tape.generation == 1
        for _ in range(resets):
            tape.reset()
            # the new step makes tensors of the same size: the arena hands
            # out the same memory the stale handle points into
            new = mmrec.ops.scale(tape, tape.wrap(x), 3.0)
        assert tape.generation == 1 + resets and new.generation == tape.generation
        for use in _uses(old):
            with pytest.raises(mmrec.StaleTensorError) as e:
                use()
            assert e.value.status == mmrec.lib.MMREC_ESTALE
            assert e.value.status_name == "MMREC_ESTALE"
        assert not old.is_live and new.is_live
        np.testing.assert_array_equal(new.numpy(), 3 * x)
        with pytest.raises(mmrec.StaleTensorError):
            mmrec.ops.add(tape, new, old)  # a live operand does not help


def test_stale_handle_may_alias_a_live_tensor():
    """What the library alone cannot see: after two resets the old pointer
    is the new tensor's; the Python Tensor still refuses it."""
    x = np.ones((4, 4), np.float32)
    with mmrec.Tape() as tape:
        a = mmrec.ops.scale(tape, tape.wrap(x), 1.0)
        tape.reset()
        tape.reset()
        b = mmrec.ops.scale(tape, tape.wrap(x), 5.0)
        if a._ptr == b._ptr:  # the arena reuses memory in order
            assert mmrec.lib.mmrec_tensor_shape(a._ptr, mmrec.ffi.new("int *"),
                                                mmrec.ffi.new("int64_t[4]")) == 0
        with pytest.raises(mmrec.StaleTensorError):
            a.numpy()


def test_tensor_after_tape_close():
    tape = mmrec.Tape()
    t = tape.tensor((2, 2))
    tape.close()
    with pytest.raises(mmrec.StaleTensorError, match="closed"):
        t.numpy()


def test_generation_counters():
    """The counters are the library's (mmrec_tape_generation and
    mmrec_tensor_generation), not a Python-side count."""
    assert mmrec.tape._tape_generation is not None
    assert mmrec.tape._tensor_generation is not None
    with mmrec.Tape() as tape:
        assert tape.generation == 1
        for g in range(2, 6):
            tape.reset()
            assert tape.generation == g
            assert tape.tensor((1,)).generation == g
    with mmrec.Model() as m:
        assert m.add_param("w", (3,)).generation == 0
