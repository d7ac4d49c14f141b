"""Config structs filled from keywords.

Every mmrec_<thing>_config (and the other size-first structs such as
mmrec_index_filter) is made the same way: the library's
mmrec_<thing>_config_init_sized() fills the defaults, then each keyword sets
the field of that name.  Unknown keywords raise TypeError naming them; enum
fields accept the enumerator's name without its prefix ("relu" for
MMREC_ACT_RELU) or the int; pointer fields accept a sequence or numpy array,
converted to a library-typed array that the Config keeps alive, and an
unset field num_<name> is filled with its length.
"""
import numpy as np

from ._ffi import ffi, lib
from .errors import check

__all__ = ["Config", "make_config", "enum_value"]

_NP_OF_C = {
    "float": np.float32, "double": np.float64, "int64_t": np.int64, "uint64_t": np.uint64,
    "int32_t": np.int32, "int": np.intc, "uint32_t": np.uint32, "uint8_t": np.uint8,
    "int8_t": np.int8, "size_t": np.uintp, "unsigned int": np.uintc, "_Bool": np.bool_,
}


def enum_value(ctype, value, what):
    """The int of an enum value given by name ("relu", "MMREC_ACT_RELU") or int."""
    if isinstance(value, str):
        key = value.upper().replace("-", "_")
        for name, v in ctype.relements.items():
            if name == key or name.endswith("_" + key):
                return v
        names = sorted(n.split("_", 2)[-1].lower() for n in ctype.relements
                       if not n.startswith("MMREC__"))
        raise ValueError("%s: unknown value %r (one of %s)" % (what, value, ", ".join(names)))
    if isinstance(value, (bool, int, np.integer)):
        return int(value)
    raise TypeError("%s: expected a name or an int, got %s" % (what, type(value).__name__))


def c_array(ctype_item, value, what, keep):
    """A cdata array of `ctype_item` holding `value` (a sequence or array),
    appended to `keep` so it outlives the call; a copy of the values."""
    cname = ctype_item.cname
    dtype = _NP_OF_C.get(cname)
    if dtype is None:
        raise TypeError("%s: cannot convert to %s *" % (what, cname))
    arr = np.ascontiguousarray(value, dtype=dtype).reshape(-1)
    keep.append(arr)
    return ffi.cast(cname + " *", ffi.from_buffer(arr)), arr.size


class Config:
    """A library config struct filled by its init function, then keywords.

    cfg.cdata is the struct pointer passed to the library; fields read and
    write as attributes (cfg.lr = 1e-3).  Arrays given for pointer fields are
    copied into arrays the Config keeps alive."""

    def __init__(self, typename, **fields):
        object.__setattr__(self, "_type", typename)
        object.__setattr__(self, "_keep", [])
        cdata = ffi.new(typename + " *")
        object.__setattr__(self, "cdata", cdata)
        ctype = ffi.typeof(typename)
        object.__setattr__(self, "_fields", dict(ctype.fields))
        init = None
        base = typename[:-len("_config")] if typename.endswith("_config") else typename
        for name in (typename + "_init_sized", base + "_config_init_sized", base + "_init_sized"):
            init = getattr(lib, name, None) if name in _FUNCS else None
            if init is not None:
                break
        if init is not None:
            check(init(cdata, ffi.sizeof(typename)))
        elif "struct_size" in self._fields:
            cdata.struct_size = ffi.sizeof(typename)
        given = set(fields)
        for key, value in fields.items():
            self._set(key, value, given)

    def _set(self, key, value, given=()):
        if key not in self._fields or key == "struct_size":
            raise TypeError("%s: unexpected keyword %r" % (self._type, key))
        ftype = self._fields[key].type
        what = "%s.%s" % (self._type, key)
        if ftype.kind == "enum":
            value = enum_value(ftype, value, what)
        elif ftype.kind == "pointer":
            if value is None:
                value = ffi.NULL
            elif hasattr(value, "_handle"):
                value = value._handle()
                self._keep.append(value)
            elif isinstance(value, ffi.CData):
                pass
            else:
                value, n = c_array(ftype.item, value, what, self._keep)
                count = "num_" + key
                if count in self._fields and count not in given:
                    setattr(self.cdata, count, n)
        elif ftype.kind == "array":
            arr = np.asarray(value).reshape(-1)
            if arr.size > ftype.length:
                raise ValueError("%s: at most %d values, got %d" % (what, ftype.length, arr.size))
            for i, v in enumerate(arr.tolist()):
                getattr(self.cdata, key)[i] = v
            return
        elif isinstance(value, (bool, np.bool_)):
            value = int(value)
        try:
            setattr(self.cdata, key, value)
        except (TypeError, OverflowError) as e:
            raise type(e)("%s: %s" % (what, e)) from None

    def __setattr__(self, key, value):
        self._set(key, value)

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        if key not in self._fields:
            raise AttributeError("%s has no field %r" % (self._type, key))
        return getattr(self.cdata, key)

    def __repr__(self):
        parts = []
        for key, f in self._fields.items():
            if key == "struct_size":
                continue
            v = getattr(self.cdata, key)
            parts.append("%s=%s" % (key, v if not isinstance(v, ffi.CData) else "<ptr>"))
        return "%s(%s)" % (self._type, ", ".join(parts))


def make_config(typename, value, what="cfg"):
    """A Config of `typename` from a Config, a dict of fields or None
    (None: the defaults)."""
    if isinstance(value, Config):
        if value._type != typename:
            raise TypeError("%s: expected a %s, got a %s" % (what, typename, value._type))
        return value
    if value is None:
        return Config(typename)
    if isinstance(value, dict):
        return Config(typename, **value)
    raise TypeError("%s: expected a %s Config or a dict, got %s"
                    % (what, typename, type(value).__name__))


def _function_names():
    import re
    from ._cdef import CDEF
    return set(re.findall(r"\b(mmrec_[a-z0-9_]+)\s*\(", CDEF))


_FUNCS = _function_names()
