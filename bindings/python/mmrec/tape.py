"""The tape: one per training step and per thread."""
import numpy as np

from ._ffi import ffi, lib
from ._handle import Handle
from ._call import call
from .config import enum_value
from .errors import check
from .tensor import Tensor, as_float_array, _shape_arg, _wrap_flags

__all__ = ["Tape"]

try:
    _tape_generation = lib.mmrec_tape_generation
    _tensor_generation = lib.mmrec_tensor_generation
except AttributeError:  # a library without the generation counters
    _tape_generation = _tensor_generation = None


class Tape(Handle):
    """A tape: the arena and record of one training step.

    Forward calls (ops, losses, module forwards) take the tape and return
    Tensors it owns; backward(loss) accumulates gradients into the model;
    reset() ends the step: every Tensor of the step becomes stale (using it
    raises StaleTensorError) and the arena is reused.  mode is "train"
    (records, applies dropout) or "inference" (records nothing).

    Arrays and caller-owned tensors used in a step are kept alive until the
    step's reset.  Use as a context manager to close it at the end."""

    _destroy_fn = "mmrec_tape_destroy"
    _kind = "Tape"

    def __init__(self, mode="train", seed=None):
        out = ffi.new("mmrec_tape **")
        check(lib.mmrec_tape_create(out))
        super().__init__(out[0])
        self._py_gen = 1
        self._step_keep = []      # arrays and configs the step may read
        self._step_pinned = []    # caller-owned tensors the step recorded
        self._gen_out = ffi.new("uint64_t *")
        self._tensor_gen_out = ffi.new("uint64_t *")
        if mode != "train":
            self.mode = mode
        if seed is not None:
            self.seed(seed)

    # ---- generation ----
    @property
    def generation(self):
        """The step number: 1 at creation, +1 at each reset."""
        ptr = self._handle()
        if _tape_generation is None:
            return self._py_gen
        check(_tape_generation(ptr, self._gen_out))
        return self._gen_out[0]

    def _generation_of(self, tensor_ptr):
        if _tensor_generation is None:
            return self._py_gen
        out = self._tensor_gen_out
        check(_tensor_generation(tensor_ptr, out))
        return out[0]

    # ---- step lifetime ----
    def _step_pin(self, tensor):
        tensor._pin()
        self._step_pinned.append(tensor)

    def _end_step(self):
        pinned, self._step_pinned = self._step_pinned, []
        self._step_keep = []
        for t in pinned:
            t._unpin()

    def reset(self):
        """Ends the step: forgets every tensor and record in O(1) (the arena
        keeps its memory).  Tensors of the step become stale."""
        ptr = self._handle()
        lib.mmrec_tape_reset(ptr)
        self._py_gen += 1
        self._end_step()

    def _on_close(self):
        self._end_step()

    # ---- settings ----
    @property
    def mode(self):
        """"train" or "inference"; set it only on an empty tape (after reset)."""
        out = ffi.new("mmrec_tape_mode *")
        check(lib.mmrec_tape_get_mode(self._handle(), out))
        return "inference" if out[0] == lib.MMREC_TAPE_INFERENCE else "train"

    @mode.setter
    def mode(self, value):
        v = enum_value(ffi.typeof("mmrec_tape_mode"), value, "mode")
        check(lib.mmrec_tape_set_mode(self._handle(), v))

    def seed(self, seed):
        """Reseeds the tape's generator (dropout masks)."""
        check(lib.mmrec_tape_seed(self._handle(), int(seed)))

    def memory(self):
        """(capacity, high_water) of the arena in bytes."""
        cap, hw = ffi.new("size_t *"), ffi.new("size_t *")
        check(lib.mmrec_tape_memory(self._handle(), cap, hw))
        return cap[0], hw[0]

    # ---- tensors ----
    def tensor(self, shape, requires_grad=False):
        """A zero-filled tensor owned by the tape (this step)."""
        shape, cshape = _shape_arg(shape)
        out = ffi.new("mmrec_tensor **")
        flags = lib.MMREC_TENSOR_REQUIRES_GRAD if requires_grad else 0
        check(lib.mmrec_tape_tensor(self._handle(), len(shape), cshape, flags, out))
        return Tensor._of_tape(out[0], self)

    def wrap(self, array, readonly=None, requires_grad=False):
        """Wraps `array` for this step without a copy (mmrec_tape_wrap).

        `array`: float32, C-contiguous, 1..4 dims (TypeError / ValueError
        naming it otherwise).  The library reads the array's memory when ops
        run and in backward, so changing the array in place changes what the
        step computes; the tape keeps the array alive until reset.
        readonly defaults to "the array is not writeable"; requires_grad asks
        backward for d(loss)/d(array) (Tensor.grad())."""
        as_float_array(array, "array")
        flags = _wrap_flags(array, readonly, requires_grad)
        shape, cshape = _shape_arg(array.shape)
        out = ffi.new("mmrec_tensor **")
        data = ffi.cast("float *", ffi.from_buffer(array))
        check(lib.mmrec_tape_wrap(self._handle(), data, len(shape), cshape, flags, out))
        self._step_keep.append(array)
        return Tensor._of_tape(out[0], self, array=array)

    # ---- autograd ----
    def backward(self, loss, d_out=None):
        """Accumulates d(loss)/d(x) into every parameter and tape tensor that
        needs it.  With d_out (an array of loss's shape, copied to float32 if
        needed) the walk is seeded with that upstream gradient
        (mmrec_tape_backward_from), for hosts with their own autograd."""
        ptr = self._handle()
        if d_out is None:
            check(lib.mmrec_tape_backward(ptr, loss._cptr(self)))
        else:
            d = np.ascontiguousarray(d_out, dtype=np.float32)
            check(lib.mmrec_tape_backward_from(ptr, loss._cptr(self),
                                               ffi.cast("float *", ffi.from_buffer(d))))

    def call(self, fname, *args):
        """Calls any library function taking this tape (mmrec_<name>) with
        the other arguments in order, the tape inserted at its parameter;
        see mmrec._call for the conversions.  Returns the outputs."""
        from ._call import _plan
        if not fname.startswith("mmrec_"):
            fname = "mmrec_" + fname
        ti = _plan(fname).tape_index
        if ti is None:
            raise TypeError("%s takes no tape" % fname)
        args = list(args)
        args.insert(ti, self)
        return call(fname, *args)

    def __getattr__(self, name):
        """tape.<op>(...) is mmrec.ops.<op>(tape, ...): tape.relu(x)."""
        if name.startswith("_"):
            raise AttributeError(name)
        from . import ops
        fn = getattr(ops, name, None)
        if fn is None or not callable(fn) or name not in ops.__all__:
            raise AttributeError("Tape has no attribute or op %r" % name)

        def method(*args, **kw):
            return fn(self, *args, **kw)
        method.__name__ = name
        method.__doc__ = fn.__doc__
        return method

    def __repr__(self):
        if self._closed:
            return "<mmrec.Tape closed>"
        return "<mmrec.Tape step %d %s>" % (self.generation, self.mode)
