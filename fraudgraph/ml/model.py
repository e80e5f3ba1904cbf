"""Edge-feature-aware relational graph convolution (RGCN) for customer classification.

Read top to bottom: an input projection per node type, ``layers`` relational
layers, a linear classifier on customer nodes.

One relational layer computes, for every destination node ``v``::

    h_v' = act( W_self[type(v)] h_v + sum_r mean_{u -r-> v} ( W_r h_u + U_r enc_r(e_uv) ) )

``W_r h_u + U_r enc_r(e)`` is a per-relation weight applied to the
concatenation of the source representation and an encoding of the edge's
features (event counts, age, recency, event-type mix), so edge properties
shape the message, not only node properties. ``W_r`` and ``U_r`` are linear
without bias, so on a DGL graph (training, batch scoring) the mean is taken
first and the weights applied once per receiving destination:
``W_r mean(h_u) + U_r mean(enc_r(e))``, the same messages with no weight
applied per edge (an identifier shared by thousands of customers costs one
matrix product, not thousands). A small online subgraph, on index tensors,
applies them per edge: fewer tensor operations, where there are few edges.
``W_self`` is a separate self weight: fraud graphs are heterophilous, so a node
must not be dragged towards its neighbours' average.

With ``edge_pooling="mean_max"`` each relation's message also carries
``V_r max_{u -r-> v} enc_r(e_uv)``, the element-wise maximum of the edge
encodings (0 where none): a mean over a long-lived customer's many links
dilutes the one that is new, or the one device a blocked customer also used;
a maximum keeps it (a hijacked account's fresh device beside years of its
owner's own). With ``use_edge_features=False`` the message is
``W_r h_u`` alone: the stock RGCN, kept as a baseline.

No per-node embedding is learned, so the model is inductive: a customer that
did not exist at training time is scored from its features and neighbourhood.
Works on a full heterograph or on the message-flow blocks of a neighbour
sampler.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fraudgraph.ml._dgl_compat import import_dgl
from fraudgraph.ml.edge_lists import EdgeLists
from fraudgraph.ml.relation_pooling import pooled_messages, relation_weights

dgl = import_dgl()
import dgl.function as fn  # noqa: E402

EDGE_POOLINGS = ("mean", "mean_max")


class EdgeFeatureEncoder(nn.Module):
    """enc_r(e): a small per-relation MLP over the raw edge features."""

    def __init__(self, edge_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(edge_dim, hidden), nn.ReLU())

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net(e)


class RelationalMessagePassing(nn.Module):
    """One layer: per-relation messages (optionally with edge features), mean per relation, sum, self weight."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        canonical_etypes: list[tuple[str, str, str]],
        edge_dim: int,
        edge_hidden: int,
        use_edge_features: bool,
        dropout: float,
        activation: bool,
        edge_pooling: str = "mean",
    ):
        super().__init__()
        if edge_pooling not in EDGE_POOLINGS:
            raise ValueError(f"edge_pooling must be one of {EDGE_POOLINGS}, got {edge_pooling!r}")
        self.max_pool = use_edge_features and edge_pooling == "mean_max"
        self.etypes = [e for _, e, _ in canonical_etypes]
        ntypes = sorted({s for s, _, _ in canonical_etypes} | {d for _, _, d in canonical_etypes})
        self.use_edge_features = use_edge_features
        self.source_weight = nn.ModuleDict({e: nn.Linear(in_dim, out_dim, bias=False) for e in self.etypes})
        self.self_weight = nn.ModuleDict({n: nn.Linear(in_dim, out_dim) for n in ntypes})
        if use_edge_features:
            self.edge_encoder = nn.ModuleDict({e: EdgeFeatureEncoder(edge_dim, edge_hidden) for e in self.etypes})
            self.edge_weight = nn.ModuleDict({e: nn.Linear(edge_hidden, out_dim, bias=False) for e in self.etypes})
        if self.max_pool:
            self.edge_max_weight = nn.ModuleDict({e: nn.Linear(edge_hidden, out_dim, bias=False) for e in self.etypes})
        self.activation = activation
        self.dropout = nn.Dropout(dropout)
        # each relation's weights side by side, kept by a model that only scores (keep_relation_weights)
        self.kept_relation_weights: dict[str, torch.Tensor] | None = None

    def keep_relation_weights(self) -> None:
        """For a model that scores and no longer trains: keep each relation's weights joined as the index
        tensor path uses them (:func:`fraudgraph.ml.relation_pooling.relation_weights`), instead of
        joining them on every call. Switching back to training drops them."""
        with torch.no_grad():  # weights that no longer train: no autograd graph kept with them
            self.kept_relation_weights = relation_weights(self)

    def train(self, mode: bool = True) -> RelationalMessagePassing:
        if mode:
            self.kept_relation_weights = None
        return super().train(mode)

    def forward(
        self,
        graph: Any,
        h_src: dict[str, torch.Tensor],
        edge_feats: dict[str, torch.Tensor],
        dst_types: set[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """New representations of the destination nodes; only of ``dst_types`` when given (the last layer
        needs only the target type: the other relations' messages would be thrown away). ``graph`` is a
        DGL graph or block, or the :class:`~fraudgraph.ml.edge_lists.EdgeLists` of a small full graph."""
        if isinstance(graph, EdgeLists):
            return self._forward_edge_lists(graph, h_src, edge_feats, dst_types)
        agg: dict[str, torch.Tensor] = {}
        with graph.local_scope():
            for src, etype, dst in graph.canonical_etypes:
                if graph.num_edges(etype) == 0 or (dst_types is not None and dst not in dst_types):
                    continue
                graph.srcnodes[src].data["h"] = h_src[src]
                graph.update_all(fn.copy_u("h", "m"), fn.mean("m", "mean_h"), etype=etype)
                mean_enc = max_enc = None
                if self.use_edge_features:
                    graph.edges[etype].data["enc"] = self.edge_encoder[etype](edge_feats[etype])
                    graph.update_all(fn.copy_e("enc", "m"), fn.mean("m", "mean_enc"), etype=etype)
                    mean_enc = graph.dstnodes[dst].data["mean_enc"]
                    if self.max_pool:
                        graph.update_all(fn.copy_e("enc", "m"), fn.max("m", "max_enc"), etype=etype)
                        max_enc = graph.dstnodes[dst].data["max_enc"]
                receiving = torch.nonzero(graph.in_degrees(etype=etype)).squeeze(1)
                agg[dst] = self._add_messages(
                    agg.get(dst), etype, graph.dstnodes[dst].data["mean_h"], mean_enc, receiving, max_enc
                )
            out = {}
            for ntype in graph.dsttypes if dst_types is None else [t for t in graph.dsttypes if t in dst_types]:
                n_dst = graph.num_dst_nodes(ntype)
                h = self.self_weight[ntype](h_src[ntype][:n_dst])
                if ntype in agg:
                    h = h + agg[ntype]
                if self.activation:
                    h = torch.relu(h)
                out[ntype] = self.dropout(h)
            return out

    def _add_messages(
        self,
        agg: torch.Tensor | None,
        etype: str,
        mean_h: torch.Tensor,
        mean_enc: torch.Tensor | None,
        receiving: torch.Tensor,
        max_enc: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``agg`` (the destinations' sum over relations so far, None before the first) plus relation
        ``etype``'s mean message ``W_r mean(h_u) + U_r mean(enc_r(e))``, ``(n_dst, out_dim)``. The weights
        are applied only to the ``receiving`` rows (destinations with at least one such edge; the others'
        means are 0 and so are their messages): a sparse relation costs its edges, not every node. With
        max pooling, ``V_r max(enc_r(e))`` is added too."""
        message = self.source_weight[etype](mean_h[receiving])
        if mean_enc is not None:
            message = message + self.edge_weight[etype](mean_enc[receiving])
        if max_enc is not None:
            message = message + self.edge_max_weight[etype](max_enc[receiving])
        if agg is None:
            agg = message.new_zeros((mean_h.shape[0], message.shape[1]))
        return agg.index_add(0, receiving, message)

    def _forward_edge_lists(
        self,
        graph: EdgeLists,
        h_src: dict[str, torch.Tensor],
        edge_feats: dict[str, torch.Tensor],
        dst_types: set[str] | None,
    ) -> dict[str, torch.Tensor]:
        """:meth:`forward` on a full graph given as index tensors, with plain tensor ops: the same
        messages, pooled per relation and destination for all relations at once
        (:func:`fraudgraph.ml.relation_pooling.pooled_messages`; 0 where a node has none), their sum, then
        the self weight; only for ``graph.dst_nodes`` when it names them (the rest stay 0). Equal to the
        DGL path up to float summation order (test)."""
        weights = self.kept_relation_weights if self.kept_relation_weights is not None else relation_weights(self)
        agg = pooled_messages(self, weights, graph, h_src, edge_feats, dst_types)
        out = {}
        for ntype in graph.num_nodes if dst_types is None else [t for t in graph.num_nodes if t in dst_types]:
            rows = None if graph.dst_nodes is None else graph.dst_nodes[ntype]
            h = self.self_weight[ntype](h_src[ntype] if rows is None else h_src[ntype][rows])
            if ntype in agg:
                h = h + (agg[ntype] if rows is None else agg[ntype][rows])
            if self.activation:
                h = torch.relu(h)
            h = self.dropout(h)
            if rows is not None:  # the full node range, 0 where not computed
                h = h.new_zeros((graph.num_nodes[ntype], h.shape[1])).index_copy_(0, rows, h)
            out[ntype] = h
        return out


class EdgeAwareRGCN(nn.Module):
    """Input projections -> relational layers -> fraud logit per customer.

    Args:
        node_dims: input feature size per node type.
        edge_dim: edge feature size (same for every relation).
        canonical_etypes: the graph's relations (both directions).
        hidden: representation size; edge_hidden: edge encoding size.
        layers: message-passing layers (= hops of neighbourhood seen).
        use_edge_features: False gives the stock-RGCN baseline.
    """

    def __init__(
        self,
        node_dims: dict[str, int],
        edge_dim: int,
        canonical_etypes: list[tuple[str, str, str]],
        hidden: int = 64,
        edge_hidden: int = 16,
        layers: int = 2,
        dropout: float = 0.2,
        use_edge_features: bool = True,
        target_ntype: str = "customer",
        edge_pooling: str = "mean",
    ):
        super().__init__()
        self.config = {
            "node_dims": node_dims,
            "edge_dim": edge_dim,
            "canonical_etypes": canonical_etypes,
            "hidden": hidden,
            "edge_hidden": edge_hidden,
            "layers": layers,
            "dropout": dropout,
            "use_edge_features": use_edge_features,
            "target_ntype": target_ntype,
            "edge_pooling": edge_pooling,
        }
        self.target_ntype = target_ntype
        self.input_projection = nn.ModuleDict({n: nn.Linear(d, hidden) for n, d in node_dims.items()})
        self.layers = nn.ModuleList(
            [
                RelationalMessagePassing(
                    hidden,
                    hidden,
                    canonical_etypes,
                    edge_dim,
                    edge_hidden,
                    use_edge_features,
                    dropout,
                    activation=True,
                    edge_pooling=edge_pooling,
                )
                for _ in range(layers)
            ]
        )
        self.classifier = nn.Linear(hidden, 1)

    def forward(
        self, blocks: list[Any], node_feats: dict[str, torch.Tensor], edge_feats: list[dict[str, torch.Tensor]]
    ) -> torch.Tensor:
        """Fraud logits of the target nodes of the last block, shape ``(n_target,)``.

        ``blocks``: one graph per layer (the same full graph repeated, as a DGL graph or as
        :class:`~fraudgraph.ml.edge_lists.EdgeLists`, or sampler blocks);
        ``node_feats``: features of the first block's source nodes;
        ``edge_feats[i]``: features of block ``i``'s edges per relation.
        """
        h = {n: torch.relu(self.input_projection[n](x)) for n, x in node_feats.items() if n in self.input_projection}
        last = len(self.layers) - 1
        for i, (layer, block, efeats) in enumerate(zip(self.layers, blocks, edge_feats)):
            h = layer(block, h, efeats, {self.target_ntype} if i == last else None)
        return self.classifier(h[self.target_ntype]).squeeze(-1)


class AveragedRGCN(nn.Module):
    """Several RGCNs of one architecture, fitted from different seeds: the fraud logit is their mean.

    One fit's highest scores move with its seed (on world seed 1234 the deployed threshold moved between
    0.648 and 0.944 over three training seeds), and the threshold is chosen exactly there, on the few
    validation customers at the top. The mean of a few fits is steadier. Same inputs and output shape as
    :class:`EdgeAwareRGCN`.
    """

    def __init__(self, members: list[EdgeAwareRGCN]):
        super().__init__()
        if not members:
            raise ValueError("AveragedRGCN needs at least one member")
        self.members = nn.ModuleList(members)
        self.config = {**members[0].config, "members": len(members)}

    def forward(
        self, blocks: list[Any], node_feats: dict[str, torch.Tensor], edge_feats: list[dict[str, torch.Tensor]]
    ) -> torch.Tensor:
        """Mean fraud logit of the members, shape ``(n_target,)``."""
        return torch.stack([m(blocks, node_feats, edge_feats) for m in self.members]).mean(0)


def averaged(models: list[EdgeAwareRGCN]) -> EdgeAwareRGCN | AveragedRGCN:
    """The model to deploy from one or more fits, in eval mode: the fit itself when there is one (its
    artifact stays the single-model format), else their :class:`AveragedRGCN`."""
    model = models[0] if len(models) == 1 else AveragedRGCN(models)
    return model.eval()


def rgcn_from_config(config: dict[str, Any]) -> EdgeAwareRGCN | AveragedRGCN:
    """The (untrained) model a saved ``config`` describes: an :class:`AveragedRGCN` when it names
    ``members``, else one :class:`EdgeAwareRGCN`."""
    config = dict(config)
    members = config.pop("members", None)
    if members is None:
        return EdgeAwareRGCN(**config)
    return AveragedRGCN([EdgeAwareRGCN(**config) for _ in range(int(members))])
