"""The library's seeded random generator."""
import numpy as np

from ._ffi import ffi, lib
from ._handle import Handle
from .errors import check
from .tensor import as_float_array

__all__ = ["Rng"]


class Rng(Handle):
    """mmrec_rng: the library's seeded generator (the same stream as a C
    program using the same seed and calls)."""

    _destroy_fn = "mmrec_rng_destroy"
    _kind = "Rng"

    def __init__(self, seed=0):
        out = ffi.new("mmrec_rng **")
        check(lib.mmrec_rng_create(int(seed), out))
        super().__init__(out[0])
        self._u64 = ffi.new("uint64_t *")
        self._below = lib.mmrec_rng_below

    def seed(self, seed):
        """Restarts the stream from `seed`."""
        check(lib.mmrec_rng_seed(self._handle(), int(seed)))

    def next_u64(self):
        """The next 64-bit value."""
        check(lib.mmrec_rng_next_u64(self._handle(), self._u64))
        return self._u64[0]

    def below(self, bound):
        """A uniform integer in [0, bound)."""
        if self._closed:
            self._handle()
        s = self._below(self._ptr, bound, self._u64)
        if s:
            check(s)
        return self._u64[0]

    def _fill(self, fname, a, b, size, out):
        if out is None:
            out = np.empty(size, dtype=np.float32)
        else:
            as_float_array(out, "out", writable=True)
        check(getattr(lib, fname)(self._handle(), a, b,
                                  ffi.cast("float *", ffi.from_buffer(out, require_writable=True)),
                                  out.size))
        return out

    def normal(self, mean=0.0, std=1.0, size=1, out=None):
        """Normal values: a new float32 array of `size` (int or shape), or
        written into `out` (float32, C-contiguous, writeable: no copy)."""
        return self._fill("mmrec_rng_normal", mean, std, size, out)

    def uniform(self, low=0.0, high=1.0, size=1, out=None):
        """Uniform values in [low, high): as normal()."""
        return self._fill("mmrec_rng_uniform", low, high, size, out)
