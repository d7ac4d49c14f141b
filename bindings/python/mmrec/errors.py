"""Exceptions: one mmrec.Error subclass per mmrec_status.

Every call that returns a status other than MMREC_OK raises the class of
that status, carrying .status (the int), .status_name ("MMREC_ESHAPE") and
.message, the text of mmrec_last_error() read right after the failed call
on the same thread.
"""
from ._ffi import ffi, lib

__all__ = ["Error", "InvalidArgument", "ShapeError", "RangeError", "NotFound", "StateError",
           "StaleTensorError", "Unsupported", "OutOfMemory", "FileError", "FormatError",
           "NumericError", "check", "error_for"]


class Error(Exception):
    """Base class of every libmmrec error.

    Attributes: status (int, an mmrec_status value), status_name (its name,
    e.g. "MMREC_EINVAL") and message (the library's sentence naming the
    function, the argument and expected vs actual)."""

    status = None

    def __init__(self, message, status=None):
        if status is None:
            status = type(self).status
        self.status = int(status)
        self.status_name = ffi.string(lib.mmrec_status_name(self.status)).decode()
        self.message = message
        super().__init__("%s: %s" % (self.status_name, message))


class InvalidArgument(Error, ValueError):
    """MMREC_EINVAL: a NULL, a bad flag, a value out of its documented range."""
    status = lib.MMREC_EINVAL


class ShapeError(Error, ValueError):
    """MMREC_ESHAPE: tensor shapes that do not fit together."""
    status = lib.MMREC_ESHAPE


class RangeError(Error, IndexError):
    """MMREC_ERANGE: an index or id out of range."""
    status = lib.MMREC_ERANGE


class NotFound(Error, LookupError):
    """MMREC_ENOTFOUND: no parameter, field or name of that name."""
    status = lib.MMREC_ENOTFOUND


class StateError(Error, RuntimeError):
    """MMREC_ESTATE: a call not valid in the object's current state (also a
    closed handle used from Python)."""
    status = lib.MMREC_ESTATE


class StaleTensorError(Error, RuntimeError):
    """MMREC_ESTALE: a tape tensor used after its tape was reset or closed."""
    status = lib.MMREC_ESTALE


class Unsupported(Error, NotImplementedError):
    """MMREC_EUNSUPPORTED: an operation this build or object does not support."""
    status = lib.MMREC_EUNSUPPORTED


class OutOfMemory(Error, MemoryError):
    """MMREC_ENOMEM: an allocation failed."""
    status = lib.MMREC_ENOMEM


class FileError(Error, OSError):
    """MMREC_EIO: a file could not be opened, read or written."""
    status = lib.MMREC_EIO

    def __str__(self):
        return Exception.__str__(self)


class FormatError(Error, ValueError):
    """MMREC_EFORMAT: a malformed, truncated, corrupt or foreign file."""
    status = lib.MMREC_EFORMAT


class NumericError(Error, ArithmeticError):
    """MMREC_ENUMERIC: a NaN or infinity where finite values are required."""
    status = lib.MMREC_ENUMERIC


_BY_STATUS = {cls.status: cls for cls in (
    InvalidArgument, ShapeError, RangeError, NotFound, StateError, StaleTensorError,
    Unsupported, OutOfMemory, FileError, FormatError, NumericError)}


def error_for(status, message):
    """The exception instance for `status` (Error itself for an unknown one)."""
    return _BY_STATUS.get(int(status), Error)(message, status)


def check(status):
    """Raises the Error subclass of `status` with mmrec_last_error()'s message
    when status is not MMREC_OK; returns None otherwise."""
    if status != 0:
        raise error_for(status, ffi.string(lib.mmrec_last_error()).decode("utf-8", "replace"))
