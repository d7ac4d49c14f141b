"""The feature cache: a writer and a read-only mapped reader (cache.h)."""
import numpy as np

from ._ffi import ffi, lib
from ._handle import Handle
from ._call import call
from .config import enum_value
from .errors import check
from .tensor import as_float_array

__all__ = ["Cache", "CacheWriter"]

_DTYPE = ffi.typeof("mmrec_cache_dtype")
_DTYPE_NAMES = {lib.MMREC_CACHE_F32: "f32", lib.MMREC_CACHE_F16: "f16",
                lib.MMREC_CACHE_BF16: "bf16"}


class CacheWriter(Handle):
    """Writes a cache file of records keyed by item id; commit() replaces
    `path` crash-safely.  Closing an uncommitted writer removes its
    temporary file and leaves `path` unchanged."""

    _destroy_fn = "mmrec_cache_writer_destroy"
    _kind = "CacheWriter"

    def __init__(self, path, ids):
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        super().__init__(call("mmrec_cache_writer_create", str(path), ids, ids.size))
        self.num_items = ids.size

    def add(self, field, data, dtype="f32"):
        """Adds a field of [num_items, dim] float32 records (read in place;
        converted to `dtype` "f32", "f16" or "bf16" by the library)."""
        as_float_array(data, "data")
        if data.ndim != 2:
            raise ValueError("data: expected [num_items, dim], got %d dims" % data.ndim)
        check(lib.mmrec_cache_writer_add(self._handle(), field.encode(),
                                         enum_value(_DTYPE, dtype, "dtype"),
                                         ffi.cast("float *", ffi.from_buffer(data)),
                                         data.shape[1]))

    def add_layers(self, field, data, dtype="f32"):
        """Adds a field of [num_items, layers, width] float32 records."""
        as_float_array(data, "data")
        if data.ndim != 3:
            raise ValueError("data: expected [num_items, layers, width], got %d dims" % data.ndim)
        check(lib.mmrec_cache_writer_add_layers(self._handle(), field.encode(),
                                                enum_value(_DTYPE, dtype, "dtype"),
                                                ffi.cast("float *", ffi.from_buffer(data)),
                                                data.shape[1], data.shape[2]))

    def add_npy(self, field, npy_path, dtype="f32"):
        """Adds a field from a .npy file of [num_items, dim] float32."""
        call("mmrec_cache_writer_add_npy", self, field, dtype, str(npy_path))

    def commit(self):
        """Writes the file and renames it over `path`."""
        check(lib.mmrec_cache_writer_commit(self._handle()))


class Cache(Handle):
    """A cache file opened read-only (mmap, shared between processes)."""

    _destroy_fn = "mmrec_cache_close"
    _kind = "Cache"

    def __init__(self, path):
        super().__init__(call("mmrec_cache_open", str(path)))

    @property
    def num_items(self):
        """Number of item ids."""
        return call("mmrec_cache_num_items", self)

    def fields(self):
        """[(name, dim, dtype name)] in the order the writer added them."""
        res = []
        for i in range(call("mmrec_cache_num_fields", self)):
            name, dim, dtype = call("mmrec_cache_field_info", self, i)
            res.append((name, dim, _DTYPE_NAMES.get(dtype, dtype)))
        return res

    def field_shape(self, field):
        """(layers, width) of a field's records."""
        return call("mmrec_cache_field_shape", self, field)

    def gather(self, tape, field, ids, missing_zero=False, presence=False):
        """A [n, dim] tape Tensor of the records of `ids` (copied from the
        mapping into the tape's arena).  missing_zero: ids not in the cache
        give zero rows instead of an error; presence: also return the
        presence mask Tensor."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        flags = lib.MMREC_CACHE_MISSING_ZERO if missing_zero else 0
        out, pres = call("mmrec_cache_gather_ex", self, tape, field, ids, ids.size, flags)
        return (out, pres) if presence else out

    def gather_into(self, field, ids, out=None, missing_zero=False):
        """The records of `ids` as a float32 [n, dim] numpy array (copied from
        the mapping into `out` when given: float32, C-contiguous)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        layers, width = self.field_shape(field)
        if out is None:
            out = np.empty((ids.size, layers * width), dtype=np.float32)
        flags = lib.MMREC_CACHE_MISSING_ZERO if missing_zero else 0
        call("mmrec_cache_gather_into", self, field, ids, ids.size, flags, out, None)
        return out

    def refresh(self, path):
        """Swaps in another cache file while other threads keep reading."""
        call("mmrec_cache_refresh", self, str(path))
