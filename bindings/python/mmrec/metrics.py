"""Evaluation: full ranking with training items excluded (metrics.h)."""
import numpy as np

from ._ffi import ffi, lib
from .errors import check
from .tensor import as_float_array

__all__ = ["eval_full_ranking"]

_FIELDS = ("recall", "ndcg", "precision", "hit_rate", "mrr")


def eval_full_ranking(user_emb, item_emb, train, test, ks=(20,)):
    """Recall, NDCG, Precision, HR and MRR at each cutoff in `ks` of every
    test user over all items, training items excluded.

    user_emb [num_users, dim] and item_emb [num_items, dim]: float32,
    C-contiguous (read in place, no copy; TypeError / ValueError naming the
    argument otherwise); train and test: Interactions.  Returns one dict per
    cutoff: {"k", "users", "recall", "ndcg", "precision", "hit_rate", "mrr"}."""
    as_float_array(user_emb, "user_emb")
    as_float_array(item_emb, "item_emb")
    if user_emb.ndim != 2 or item_emb.ndim != 2:
        raise ValueError("user_emb, item_emb: expected 2 dims")
    if user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError("item_emb: dim %d, user_emb has %d"
                         % (item_emb.shape[1], user_emb.shape[1]))
    ks = [int(k) for k in ks]
    cks = ffi.new("int[]", ks)
    out = ffi.new("mmrec_rank_metrics[]", len(ks))
    out[0].struct_size = ffi.sizeof("mmrec_rank_metrics")
    check(lib.mmrec_eval_full_ranking(
        ffi.cast("float *", ffi.from_buffer(user_emb)),
        ffi.cast("float *", ffi.from_buffer(item_emb)),
        user_emb.shape[0], item_emb.shape[0], user_emb.shape[1],
        train._handle(), test._handle(), cks, len(ks), out))
    res = []
    for i in range(len(ks)):
        d = {"k": out[i].k, "users": out[i].users}
        for f in _FIELDS:
            d[f] = getattr(out[i], f)
        res.append(d)
    return res
