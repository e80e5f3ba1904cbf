"""One layer's relational messages on index tensors, the relations pooled together.

An online scoring subgraph holds a few hundred edges over ten relations, and the layer's work per
relation (its source weight, its edge encoder, its mean, its maximum, each a few tensor operations on a
few dozen rows) cost more in fixed per-operation overhead than in arithmetic. Here every relation's edges
are pooled in one pass instead: each edge's ``(relation, destination)`` pair is found once, the means and
maxima of all pairs are taken together, and each relation's weights act once on its pairs' pooled rows
(the mean of a linear map is the map of the mean), about four operations a relation and twenty a layer.

The messages are those of :meth:`fraudgraph.ml.model.RelationalMessagePassing.forward` up to float
summation order (``tests/unit/ml/test_model.py`` compares them with DGL's).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fraudgraph.ml.edge_lists import EdgeLists


def relation_weights(layer: Any) -> dict[str, torch.Tensor]:
    """Per relation of ``layer`` (a :class:`~fraudgraph.ml.model.RelationalMessagePassing`), its weights
    side by side, ``(out, in [+ edge_hidden [+ edge_hidden]])``, acting on a pair's
    ``[mean h | mean enc | max enc]``. A copy: inference models keep theirs
    (:meth:`~fraudgraph.ml.model.RelationalMessagePassing.keep_relation_weights`); in training, gradients
    flow through it to the layer's weights."""
    out = {}
    for e in layer.etypes:
        parts = [layer.source_weight[e].weight]
        if layer.use_edge_features:
            parts.append(layer.edge_weight[e].weight)
        if layer.max_pool:
            parts.append(layer.edge_max_weight[e].weight)
        out[e] = torch.cat(parts, 1)
    return out


def pooled_messages(
    layer: Any,
    weights: dict[str, torch.Tensor],
    graph: EdgeLists,
    h_src: dict[str, torch.Tensor],
    edge_feats: dict[str, torch.Tensor],
    dst_types: set[str] | None,
) -> dict[str, torch.Tensor]:
    """``{dst type: (graph.num_nodes[dst], out_dim)}``: per destination node, the sum over the relations
    into it of ``W_r mean(h_u) + U_r mean(enc_r(e))`` (plus ``V_r max(enc_r(e))`` with max pooling),
    0 for nodes with no edge; only for ``dst_types`` when given. ``weights``: :func:`relation_weights`
    of ``layer``."""
    rels = [
        (src, etype, dst, u, v)
        for (src, etype, dst), (u, v) in graph.edges.items()
        if u.shape[0] and (dst_types is None or dst in dst_types)
    ]
    if not rels:
        return {}
    # destinations of every type in one index space, and each edge's (relation, destination) pair
    dst_order = list(dict.fromkeys(r[2] for r in rels))
    dst_at = dict(zip(dst_order, _starts([graph.num_nodes[t] for t in dst_order])))
    n_dst = sum(graph.num_nodes[t] for t in dst_order)
    key = torch.cat([v + (i * n_dst + dst_at[d]) for i, (_, _, d, _, v) in enumerate(rels)])
    pairs, pair_of_edge = torch.unique(key, return_inverse=True)  # sorted: by relation, then destination
    edges_in = torch.bincount(pair_of_edge, minlength=pairs.shape[0]).unsqueeze(1)

    def pair_mean(rows: torch.Tensor) -> torch.Tensor:
        return rows.new_zeros((pairs.shape[0], rows.shape[1])).index_add_(0, pair_of_edge, rows) / edges_in

    pooled = [pair_mean(torch.cat([h_src[s][u] for s, _, _, u, _ in rels]))]
    if layer.use_edge_features:
        encoders = [layer.edge_encoder[e].net[0] for _, e, _, _, _ in rels]
        encoded = torch.relu(
            torch.cat([F.linear(edge_feats[r[1]], enc.weight, enc.bias) for r, enc in zip(rels, encoders)])
        )
        pooled.append(pair_mean(encoded))
        if layer.max_pool:  # encodings are >= 0 (ReLU), so a 0 start is the max of none
            index = pair_of_edge.unsqueeze(1).expand(-1, encoded.shape[1])
            pooled.append(
                encoded.new_zeros((pairs.shape[0], encoded.shape[1])).scatter_reduce_(0, index, encoded, "amax")
            )
    # each relation's weights on its own pairs (a contiguous run of the sorted pairs)
    per_relation = torch.bincount(pairs // n_dst, minlength=len(rels)).tolist()
    runs = torch.cat(pooled, 1).split(per_relation)
    messages = torch.cat([F.linear(rows, weights[r[1]]) for r, rows in zip(rels, runs)])
    agg = messages.new_zeros((n_dst, messages.shape[1])).index_add_(0, pairs % n_dst, messages)
    return {t: agg[dst_at[t] : dst_at[t] + graph.num_nodes[t]] for t in dst_order}


def _starts(sizes: list[int]) -> list[int]:
    out, at = [], 0
    for size in sizes:
        out.append(at)
        at += size
    return out


__all__ = ["pooled_messages", "relation_weights"]
