"""Graphs: the normalized user-item adjacency and the item kNN graph
(graph.h).  Propagation ops (lightgcn, lightgcn_rows, graph_propagate,
graph_aggregate_users) are in mmrec.ops and take the Graph."""
import numpy as np

from ._handle import Handle
from ._call import call

__all__ = ["Graph"]


class Graph(Handle):
    """mmrec_graph: a CSR graph the GCN ops propagate over."""

    _destroy_fn = "mmrec_graph_destroy"
    _kind = "Graph"

    @classmethod
    def bipartite(cls, users, items, num_users, num_items):
        """LightGCN's D^-1/2 A D^-1/2 over the user-item pairs (ids copied)."""
        users = np.ascontiguousarray(users, dtype=np.int64).reshape(-1)
        items = np.ascontiguousarray(items, dtype=np.int64).reshape(-1)
        return cls._adopt(call("mmrec_graph_create_bipartite", users, items, users.size,
                               num_users, num_items))

    @classmethod
    def from_interactions(cls, inter, num_users=None, num_items=None):
        """The bipartite graph of an Interactions object."""
        users, items = inter.pairs()
        return cls.bipartite(users, items, num_users or inter.num_users,
                             num_items or inter.num_items)

    @classmethod
    def knn(cls, features, cfg=None, **fields):
        """The item-item top-k cosine graph of a float32 [num_items, dim]
        feature matrix (mmrec_knn_config fields as keywords)."""
        from .config import make_config
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.ndim != 2:
            raise ValueError("features: expected [num_items, dim], got %d dims" % features.ndim)
        config = make_config("mmrec_knn_config", cfg)
        for k, v in fields.items():
            setattr(config, k, v)
        return cls._adopt(call("mmrec_graph_create_knn", features, features.shape[0],
                               features.shape[1], config))

    def info(self):
        """(num_nodes, num_users, nnz)."""
        return call("mmrec_graph_info", self)
