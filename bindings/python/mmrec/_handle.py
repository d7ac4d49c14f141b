"""The base of every Python object that owns a library handle."""
from ._ffi import ffi, lib
from .errors import StateError

__all__ = ["Handle"]


class Handle:
    """Owns one library handle and destroys it once.

    close() releases the handle (later use raises StateError); the context
    manager closes on exit; __del__ closes as a fallback.  While something
    may still read the handle's memory (a numpy view of its data, a tape step
    that recorded it) the object is "pinned": close() then only marks it
    closed and the library handle is destroyed when the last pin goes.
    """

    _destroy_fn = None  # name of the library's destroy function
    _kind = "handle"

    def __init__(self, ptr):
        self._ptr = ptr
        self._closed = False
        self._pins = 0
        self._free_pending = False

    @classmethod
    def _adopt(cls, ptr):
        """An object of this class owning `ptr`, made by a library call
        other than the class's constructor (a reader, an alternative
        create), without running __init__."""
        obj = cls.__new__(cls)
        Handle.__init__(obj, ptr)
        return obj

    @property
    def closed(self):
        """True once close() was called."""
        return self._closed

    def _handle(self):
        """The live cdata pointer; raises StateError when closed."""
        if self._closed:
            raise StateError("%s is closed" % self._kind)
        return self._ptr

    def _pin(self):
        self._pins += 1

    def _unpin(self):
        self._pins -= 1
        if self._pins == 0 and self._free_pending:
            self._free_pending = False
            self._free()

    def _on_close(self):
        """Hook run once by close(), before the handle is freed."""

    def _free(self):
        ptr, self._ptr = self._ptr, ffi.NULL
        if ptr is not None and ptr != ffi.NULL and self._destroy_fn is not None:
            getattr(lib, self._destroy_fn)(ptr)

    def close(self):
        """Releases the library handle (deferred while pinned); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._on_close()
        if self._pins == 0:
            self._free()
        else:
            self._free_pending = True

    def __enter__(self):
        self._handle()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            if not getattr(self, "_closed", True):
                self.close()
        except Exception:  # interpreter shutdown: the library may be gone
            pass
