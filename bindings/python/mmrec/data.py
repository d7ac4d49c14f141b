"""User-item interactions (data.h)."""
import numpy as np

from ._ffi import ffi, lib
from ._handle import Handle
from ._call import call
from .errors import check

__all__ = ["Interactions"]


class Interactions(Handle):
    """mmrec_interactions: user-item pairs, from memory or the readers."""

    _destroy_fn = "mmrec_interactions_destroy"
    _kind = "Interactions"

    def __init__(self, users, items):
        """Pairs from two int64 id sequences of equal length (copied by the
        library)."""
        users = np.ascontiguousarray(users, dtype=np.int64).reshape(-1)
        items = np.ascontiguousarray(items, dtype=np.int64).reshape(-1)
        if users.size != items.size:
            raise ValueError("items: %d ids, users has %d" % (items.size, users.size))
        super().__init__(call("mmrec_interactions_create", users, items, users.size))

    @classmethod
    def read_lightgcn(cls, path):
        """Reads a LightGCN text file ("user item item ..." lines)."""
        return cls._adopt(call("mmrec_interactions_read_lightgcn", str(path)))

    @classmethod
    def read_inter(cls, path, split):
        """Reads an MMRec .inter TSV file, the rows of one split."""
        return cls._adopt(call("mmrec_interactions_read_inter", str(path), split))

    def info(self):
        """(num_users, num_items, count)."""
        return call("mmrec_interactions_info", self)

    @property
    def num_users(self):
        """One more than the largest user id."""
        return self.info()[0]

    @property
    def num_items(self):
        """One more than the largest item id."""
        return self.info()[1]

    def __len__(self):
        return self.info()[2]

    def pairs(self):
        """(users, items): read-only int64 numpy views of the library's
        arrays (no copy), valid while this object lives (they keep it)."""
        us, its = ffi.new("const int64_t **"), ffi.new("const int64_t **")
        check(lib.mmrec_interactions_pairs(self._handle(), us, its))
        n = len(self)
        out = []
        for p in (us[0], its[0]):
            self._pin()
            keep = ffi.gc(ffi.cast("int64_t *", p), lambda _p, h=self: h._unpin())
            a = np.frombuffer(ffi.buffer(keep, 8 * n), dtype=np.int64)
            a.flags.writeable = False
            out.append(a)
        return tuple(out)
