"""Tensors: dense float32, row-major, 1 to MMREC_MAX_DIMS dims.

A Tensor is one of three kinds, as in the library:

- a tape tensor (made by an op, a forward, Tape.tensor or Tape.wrap): owned
  by its Tape and valid for that tape's current step only.  The Tensor
  records the step (generation) it was made in; any use after the tape's
  reset or close raises StaleTensorError, and no stale pointer ever
  reaches the library.
- a parameter (Model.param, Model.add_param, Model.params): owned by its
  Model, valid while the Model is open.
- a caller-owned tensor (Tensor.zeros, Tensor.wrap): owned by this object;
  close() destroys the header (never the wrapped array).

Every Tensor keeps its owner (Tape or Model) alive, and a wrap keeps its
numpy array alive.
"""
import numpy as np

from ._ffi import ffi, lib
from ._handle import Handle
from .errors import StaleTensorError, StateError, check

__all__ = ["Tensor", "as_float_array"]

_MAX_DIMS = lib.mmrec_max_dims()


def as_float_array(array, what, writable=False):
    """Checks that `array` can be wrapped without a copy: a numpy float32,
    C-contiguous array of 1..MMREC_MAX_DIMS dims.  Raises TypeError (not an
    ndarray, wrong dtype) or ValueError (layout, rank) naming `what`."""
    if not isinstance(array, np.ndarray):
        raise TypeError("%s: expected a numpy.ndarray of float32, got %s"
                        % (what, type(array).__name__))
    if array.dtype != np.float32:
        raise TypeError("%s: expected dtype float32, got %s (convert with "
                        "array.astype(numpy.float32), which copies)" % (what, array.dtype))
    if not array.flags.c_contiguous:
        raise ValueError("%s: the array must be C-contiguous (numpy.ascontiguousarray "
                         "copies)" % what)
    if not 1 <= array.ndim <= _MAX_DIMS:
        raise ValueError("%s: expected 1 to %d dims, got %d" % (what, _MAX_DIMS, array.ndim))
    if writable and not array.flags.writeable:
        raise ValueError("%s: the array is read-only" % what)
    return array


def _shape_arg(shape):
    shape = tuple(int(s) for s in shape)
    return shape, ffi.new("int64_t[]", list(shape) or [0])


def _wrap_flags(array, readonly, requires_grad):
    if readonly is None:
        readonly = not array.flags.writeable
    if not readonly and not array.flags.writeable:
        raise ValueError("array: a read-only array needs readonly=True")
    flags = lib.MMREC_TENSOR_READONLY if readonly else 0
    if requires_grad:
        flags |= lib.MMREC_TENSOR_REQUIRES_GRAD
    return flags


class Tensor(Handle):
    """A library tensor (see the module docstring for the three kinds)."""

    _kind = "Tensor"

    def __init__(self, ptr, kind, owner=None, array=None, generation=0):
        super().__init__(ptr)
        self._tkind = kind          # "tape", "param" or "owned"
        self._owner = owner         # Tape, Model or None
        self._array = array         # the wrapped numpy array, if any
        self._gen = generation
        self._destroy_fn = "mmrec_tensor_destroy" if kind == "owned" else None

    # ---- construction ----
    @classmethod
    def _of_tape(cls, ptr, tape, array=None):
        return cls(ptr, "tape", tape, array, tape._generation_of(ptr))

    @classmethod
    def _borrowed(cls, ptr, owner):
        return cls(ptr, "param", owner)

    @classmethod
    def zeros(cls, shape):
        """A zero-filled caller-owned tensor with library-allocated data."""
        shape, cshape = _shape_arg(shape)
        out = ffi.new("mmrec_tensor **")
        check(lib.mmrec_tensor_create(len(shape), cshape, out))
        return cls(out[0], "owned")

    @classmethod
    def wrap(cls, array, readonly=None):
        """A long-lived tensor over `array` without a copy (mmrec_tensor_wrap).

        `array` must be float32, C-contiguous, 1..4 dims (TypeError /
        ValueError naming it otherwise; convert with numpy.ascontiguousarray
        / astype, which copy).  The library reads and, unless readonly,
        writes the array's memory directly: changes on either side are seen
        by the other.  readonly defaults to "the array is not writeable".
        The Tensor keeps the array alive; close() frees only the header.
        (A gradient with respect to wrapped data needs a tape wrap:
        Tape.wrap(array, requires_grad=True).)"""
        as_float_array(array, "array")
        flags = _wrap_flags(array, readonly, False)
        shape, cshape = _shape_arg(array.shape)
        out = ffi.new("mmrec_tensor **")
        data = ffi.cast("float *", ffi.from_buffer(array))
        check(lib.mmrec_tensor_wrap(data, len(shape), cshape, flags, out))
        return cls(out[0], "owned", array=array)

    # ---- validity ----
    def _cptr(self, tape=None):
        """The library pointer after checking the tensor is live; when used
        on `tape` (another tape's step), a caller-owned tensor is pinned to
        that step."""
        if self._closed:
            raise StateError("Tensor is closed")
        kind = self._tkind
        if kind == "tape":
            owner = self._owner
            if owner._closed:
                raise StaleTensorError("tensor used after its tape was closed")
            gen = owner.generation
            if gen != self._gen:
                raise StaleTensorError(
                    "tensor used after its tape was reset (made in step %d, the tape is at "
                    "step %d)" % (self._gen, gen))
        elif kind == "param":
            if self._owner is not None and self._owner._closed:
                raise StateError("parameter used after its model was closed")
        elif tape is not None:
            tape._step_pin(self)
        return self._ptr

    _handle = _cptr

    @property
    def is_live(self):
        """False once the tensor can no longer be used (stale or closed)."""
        try:
            self._cptr()
            return True
        except (StaleTensorError, StateError):
            return False

    @property
    def generation(self):
        """The tape step this tensor was made in (0 for non-tape tensors)."""
        return self._gen

    # ---- shape and data ----
    @property
    def shape(self):
        """The shape, outermost first, as a tuple."""
        nd = ffi.new("int *")
        shape = ffi.new("int64_t[%d]" % _MAX_DIMS)
        check(lib.mmrec_tensor_shape(self._cptr(), nd, shape))
        return tuple(shape[i] for i in range(nd[0]))

    @property
    def ndim(self):
        """Number of dims."""
        return len(self.shape)

    @property
    def size(self):
        """Number of elements."""
        n = ffi.new("size_t *")
        check(lib.mmrec_tensor_numel(self._cptr(), n))
        return n[0]

    def _pinner(self):
        if self._tkind == "owned":
            return self
        return self._owner

    def _view(self, fptr, shape, writable):
        pinner = self._pinner()
        n = 1
        for s in shape:
            n *= s
        pinner._pin()
        keep = ffi.gc(ffi.cast("float *", fptr), lambda _p, h=pinner: h._unpin())
        arr = np.frombuffer(ffi.buffer(keep, 4 * n), dtype=np.float32).reshape(shape)
        if not writable:
            arr.flags.writeable = False
        return arr

    def numpy(self):
        """The tensor's data as a numpy array, without a copy.

        For a wrap this is the wrapped array itself.  Otherwise a float32
        view of the library's memory: writes through it are seen by the
        library and the library's updates (an optimizer step on a parameter)
        are seen in it.  The view keeps the owner's memory alive even if the
        owner is closed meanwhile.  A tape tensor's view shows the tape's
        arena, which the next step reuses after reset: copy it
        (tensor.numpy().copy()) to keep values past the step."""
        ptr = self._cptr()
        if self._array is not None:
            return self._array
        out = ffi.new("float **")
        check(lib.mmrec_tensor_data(ptr, out))
        return self._view(out[0], self.shape, True)

    def tolist(self):
        """The values as nested Python lists (a copy)."""
        return self.numpy().tolist()

    def item(self):
        """The value of a one-element tensor as a Python float (a copy)."""
        ptr = self._cptr()
        v = ffi.new("float[1]")
        check(lib.mmrec_tensor_copy_to(ptr, v, 1))
        return float(v[0])

    def copy_from(self, values):
        """Overwrites the elements from `values` (any array-like of numel
        elements, converted to float32 with a copy when needed)."""
        ptr = self._cptr()
        arr = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        check(lib.mmrec_tensor_copy_from(ptr, ffi.cast("float *", ffi.from_buffer(arr)),
                                         arr.size))

    def grad(self):
        """The accumulated gradient as a read-only numpy view (no copy), or
        None when none was computed (frozen, or not reached by backward).
        A parameter's gradient is cleared by the next optimizer step."""
        ptr = self._cptr()
        out = ffi.new("const float **")
        check(lib.mmrec_tensor_grad(ptr, out))
        if out[0] == ffi.NULL:
            return None
        return self._view(out[0], self.shape, False)

    def set_data(self, array):
        """Re-points a caller-owned wrap at another float32 array of the same
        shape (mmrec_tensor_set_data; no copy)."""
        as_float_array(array, "array")
        if self._tkind != "owned" or self._array is None:
            raise StateError("set_data: not a caller-owned wrap")
        if array.shape != self._array.shape:
            raise ValueError("array: shape %s, expected %s" % (array.shape, self._array.shape))
        check(lib.mmrec_tensor_set_data(self._cptr(), ffi.cast("float *",
                                                               ffi.from_buffer(array))))
        self._array = array

    # ---- arithmetic on tape tensors ----
    def _tape_with(self, other):
        for t in (self, other):
            if isinstance(t, Tensor) and t._tkind == "tape":
                return t._owner
        raise StateError("arithmetic needs a tape tensor operand (use the ops with a tape)")

    def __add__(self, other):
        from . import ops
        return ops.add(self._tape_with(other), self, other)

    def __sub__(self, other):
        from . import ops
        return ops.sub(self._tape_with(other), self, other)

    def __mul__(self, other):
        from . import ops
        if isinstance(other, (int, float)):
            return ops.scale(self._tape_with(None), self, other)
        return ops.mul(self._tape_with(other), self, other)

    __rmul__ = __mul__

    def __truediv__(self, other):
        from . import ops
        return ops.scale(self._tape_with(None), self, 1.0 / other)

    def __matmul__(self, other):
        from . import ops
        return ops.matmul(self._tape_with(other), self, other)

    def __repr__(self):
        if not self.is_live:
            return "<mmrec.Tensor %s (not live)>" % self._tkind
        return "<mmrec.Tensor %s shape=%s>" % (self._tkind, self.shape)
