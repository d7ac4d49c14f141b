"""The serving index: exact top-K over item vectors (index.h)."""
import numpy as np

from ._ffi import ffi, lib
from ._handle import Handle
from ._call import call
from .config import Config, make_config
from .tensor import as_float_array

__all__ = ["Index"]


class Index(Handle):
    """mmrec_index: exact top-k by inner product or cosine (MaxSim with
    several vectors per item).

    Index(vectors, ids=None, metric="inner_product", storage="f32",
    vectors_per_item=1): vectors is float32 [num_items * vectors_per_item,
    dim] (or [num_items, vectors_per_item, dim]), read by the library,
    which stores its own copy; ids default to 0..num_items-1."""

    _destroy_fn = "mmrec_index_destroy"
    _kind = "Index"

    def __init__(self, vectors, ids=None, cfg=None, **fields):
        as_float_array(vectors, "vectors")
        config = make_config("mmrec_index_config", cfg)
        for k, v in fields.items():
            setattr(config, k, v)
        per = config.vectors_per_item or 1
        dim = vectors.shape[-1]
        num_items = vectors.size // (dim * per)
        if ids is not None:
            ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        super().__init__(call("mmrec_index_create", vectors, ids, num_items, dim, config))

    @classmethod
    def from_cache(cls, cache, field, cfg=None, **fields):
        """An index over one field of a Cache (ids are the cache's)."""
        config = make_config("mmrec_index_config", cfg)
        for k, v in fields.items():
            setattr(config, k, v)
        return cls._adopt(call("mmrec_index_create_from_cache", cache, field, config))

    @classmethod
    def open(cls, path):
        """Opens an index file written by save()."""
        return cls._adopt(call("mmrec_index_open", str(path)))

    def save(self, path):
        """Writes the index to `path` crash-safely."""
        call("mmrec_index_save", self, str(path))

    def refresh(self, source):
        """Swaps in the contents of another Index while searches go on."""
        call("mmrec_index_refresh", self, source)

    def info(self):
        """{"num_items", "dim", "vectors_per_item", "metric", "storage"}."""
        n, d, v, m, s = call("mmrec_index_info", self)
        return {"num_items": n, "dim": d, "vectors_per_item": v, "metric": m, "storage": s}

    def search(self, queries, k, exclude=None, allow=None):
        """Exact top-k of each query row (float32 [num_queries, dim], or
        [dim] for one query; read in place).  exclude / allow: one id
        sequence per query (or None).  Returns (ids [num_queries, k] int64,
        -1 past the count; scores float32, -inf past the count; counts)."""
        as_float_array(queries, "queries")
        q = queries.reshape(1, -1) if queries.ndim == 1 else queries
        nq, dim = q.shape
        filters = ffi.NULL
        keep = []
        if exclude is not None or allow is not None:
            filters = ffi.new("mmrec_index_filter[]", nq)
            for i in range(nq):
                cfg = Config("mmrec_index_filter")
                if exclude is not None and exclude[i] is not None:
                    cfg.exclude = exclude[i]
                if allow is not None and allow[i] is not None:
                    cfg.allow = allow[i]
                keep.append(cfg)
                filters[i] = cfg.cdata[0]
        ids = np.empty((nq, k), dtype=np.int64)
        scores = np.empty((nq, k), dtype=np.float32)
        counts = np.empty(nq, dtype=np.uintp)
        call("mmrec_index_search", self, q, nq, dim, k, filters, ids, scores, counts)
        return ids, scores, counts
