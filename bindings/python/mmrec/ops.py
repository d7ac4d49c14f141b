"""Ops and losses: every library function that takes the tape first.

Each mmrec_<name>(tape, inputs..., &out) of ops.h, losses.h, graph.h and the
system headers is a function ops.<name>(tape, inputs...) returning the
output Tensor(s), generated from the declarations with three conveniences:

- a count parameter right after an array parameter (n, n_rows, num_ids,
  ndim, ...) is filled with that array's length (pass it by keyword to
  override): ops.gather_rows(tape, table, ids);
- a config parameter may be left out (the defaults) and its fields given as
  keywords: ops.loss_batch_softmax(tape, q, c, temperature=0.05);
- Tensors, numpy arrays and sequences convert as described in mmrec._call
  (float32 arrays for tensor parameters are wrapped on the tape without a
  copy; id arrays are copied only when not already int64 and contiguous).

Each is also a method of the Tape: tape.relu(x) is ops.relu(tape, x).
A few ops get a friendlier signature here (matmul's transposes as flags,
sum / mean over all elements by default, reshape by a shape tuple).
"""
import sys

from ._ffi import lib
from ._call import bind, call, _PARAMS

__all__ = ["AXIS_ALL", "reshape"]

AXIS_ALL = lib.MMREC_AXIS_ALL

def _make(fname):
    pyname = fname[len("mmrec_"):]
    op = bind(fname)
    op.__name__ = op.__qualname__ = pyname
    op.__doc__ = ("%s(tape, %s): calls %s and returns its output Tensor(s), owned by "
                  "the tape." % (pyname, ", ".join(op.arg_names[1:]), fname))
    return op


def _install():
    mod = sys.modules[__name__]
    for fname, params in _PARAMS.items():
        if (params and params[0][0] == "mmrec_tape *tape" and not fname.startswith("mmrec_tape_")
                and not hasattr(mod, fname[len("mmrec_"):])):
            setattr(mod, fname[len("mmrec_"):], _make(fname))
            __all__.append(fname[len("mmrec_"):])


_install()

_matmul = matmul  # noqa: F821 (generated above)
_sum = sum  # noqa: F821
_mean = mean  # noqa: F821


def matmul(tape, a, b, trans_a=False, trans_b=False):
    """a @ b (op(a) @ op(b) with the transposes asked for): mmrec_matmul.
    Returns a Tensor owned by the tape."""
    flags = (lib.MMREC_TRANS_A if trans_a else 0) | (lib.MMREC_TRANS_B if trans_b else 0)
    return _matmul(tape, a, b, flags)


def sum(tape, x, axis=None):  # noqa: A001 (the library's name)
    """Sum over `axis`, or over every element when axis is None (mmrec_sum)."""
    return _sum(tape, x, AXIS_ALL if axis is None else axis)


def mean(tape, x, axis=None):
    """Mean over `axis`, or over every element when axis is None (mmrec_mean)."""
    return _mean(tape, x, AXIS_ALL if axis is None else axis)


def reshape(tape, x, shape):
    """x viewed with another shape of the same size (mmrec_reshape)."""
    shape = [int(s) for s in shape]
    return call("mmrec_reshape", tape, x, len(shape), shape)
