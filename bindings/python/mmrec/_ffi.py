"""Loads libmmrec through cffi in ABI mode (no compiled extension).

The library is looked up in this order:

1. the environment variable MMREC_LIBRARY (a path to the shared library);
2. the package's own folder (a libmmrec.so installed next to this file);
3. the build tree: ../../../lib when the package is run from
   bindings/python/mmrec of a source checkout;
4. the system loader: libmmrec.so.0 (LD_LIBRARY_PATH, ld.so.cache, ...).

The declarations come from _cdef.py, generated from the public headers by
bindings/python/gen_cdef.py.  The loaded library's major.minor version must
equal that of the headers the declarations came from.
"""
import os

import cffi

from ._cdef import CDEF, CONSTANTS, HEADER_VERSION

__all__ = ["ffi", "lib", "LIBRARY_PATH", "LibraryVersionError", "CONSTANTS", "HEADER_VERSION"]


class LibraryVersionError(ImportError):
    """The loaded libmmrec has another major.minor version than the headers
    the package's declarations were generated from."""


ffi = cffi.FFI()
ffi.cdef(CDEF)

_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    """(path, how it was found) pairs in lookup order; paths may not exist."""
    env = os.environ.get("MMREC_LIBRARY")
    if env:
        return [(env, "MMREC_LIBRARY")]
    out = []
    for name in ("libmmrec.so", "libmmrec.so.0"):
        out.append((os.path.join(_HERE, name), "package folder"))
    if os.path.exists(os.path.join(_HERE, "..", "gen_cdef.py")):  # a source checkout
        build = os.path.normpath(os.path.join(_HERE, "..", "..", "..", "lib", "libmmrec.so"))
        out.append((build, "build tree"))
    return out


def _load():
    """Opens the first library found; returns (lib, path)."""
    for path, how in _candidates():
        if how == "MMREC_LIBRARY" or os.path.exists(path):
            try:
                return ffi.dlopen(path), path
            except OSError as e:
                raise ImportError("mmrec: cannot load %s (from %s): %s" % (path, how, e)) from e
    try:
        return ffi.dlopen("libmmrec.so.0"), "libmmrec.so.0"
    except OSError as e:
        raise ImportError(
            "mmrec: libmmrec.so.0 not found: set MMREC_LIBRARY to its path, install it "
            "next to the package or where the system loader finds it (%s)" % e) from e


lib, LIBRARY_PATH = _load()


def _check_version():
    loaded = lib.mmrec_version_number()
    have = (loaded // 10000, loaded // 100 % 100)
    want = HEADER_VERSION[:2]
    if have != want:
        raise LibraryVersionError(
            "mmrec: %s is libmmrec %d.%d (%s) but the package was generated from the "
            "%d.%d headers: install matching versions or regenerate the declarations "
            "(bindings/python/gen_cdef.py)" % (
                LIBRARY_PATH, have[0], have[1],
                ffi.string(lib.mmrec_version_string()).decode(), want[0], want[1]))


_check_version()
