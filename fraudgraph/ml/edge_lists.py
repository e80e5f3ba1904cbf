"""A heterograph as plain index tensors (:class:`EdgeLists`), and the part of it that scoring a few
nodes needs (:meth:`EdgeLists.blocks_for`). Online scoring runs the model on it without building a DGL
graph (docs/consumer.md, "Online scoring")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EdgeLists:
    """A heterograph as plain index tensors: what a small scoring subgraph's message passing needs.

    ``edges[(src type, relation, dst type)]`` is ``(src, dst)``, two int64 tensors of node indices;
    ``num_nodes[ntype]`` the node count of each type. :class:`fraudgraph.ml.model.EdgeAwareRGCN`
    runs on it without building a DGL graph, whose construction alone costs more than the forward
    pass on a subgraph of a few hundred edges.
    """

    edges: dict[tuple[str, str, str], tuple[Any, Any]]
    num_nodes: dict[str, int]
    # the nodes of each type a layer computes on it (int64 tensors; None: all of them)
    dst_nodes: dict[str, Any] | None = None

    def num_edges(self) -> int:
        return sum(int(src.shape[0]) for src, _ in self.edges.values())

    def blocks_for(self, target_type: str, targets: Any, layers: int) -> tuple[list[EdgeLists], list[dict[str, Any]]]:
        """What ``layers`` message-passing layers need to compute the nodes ``targets`` (an int64
        tensor) of ``target_type``, as DGL's full-neighbour sampler gives it but on the same node
        numbering: per layer, the edges whose destination the next layer reads (the targets at the last
        layer; at each one before, also the sources of the next layer's edges and, for the self weight,
        its destinations), and the ids of those edges per relation (to pick their features).

        A layer computes only the nodes in its ``dst_nodes`` (the others are left 0), so only the
        targets' final representations are the full graph's; the rest are not to be read.
        """
        import torch

        need = {ntype: torch.zeros(n, dtype=torch.bool) for ntype, n in self.num_nodes.items()}
        need[target_type][targets] = True
        blocks: list[EdgeLists] = []
        edge_ids: list[dict[str, Any]] = []
        for _ in range(layers):
            before = {ntype: mask.clone() for ntype, mask in need.items()}  # self weight: its own last state
            kept, ids = {}, {}
            for (src, etype, dst), (u, v) in self.edges.items():
                picked = need[dst][v].nonzero().squeeze(1)
                kept[(src, etype, dst)] = (u[picked], v[picked])
                ids[etype] = picked
                before[src][u[picked]] = True
            computed = {ntype: mask.nonzero().squeeze(1) for ntype, mask in need.items()}
            blocks.insert(0, EdgeLists(kept, self.num_nodes, computed))
            edge_ids.insert(0, ids)
            need = before
        return blocks, edge_ids


__all__ = ["EdgeLists"]
