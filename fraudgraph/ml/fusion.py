"""Inference form of an averaged model: the members of an :class:`~fraudgraph.ml.model.AveragedRGCN`
side by side in one :class:`~fraudgraph.ml.model.EdgeAwareRGCN`, so one message passing scores them all."""

from __future__ import annotations

from typing import Any, cast

import torch

from fraudgraph.ml.model import AveragedRGCN, EdgeAwareRGCN


def fused(model: AveragedRGCN) -> EdgeAwareRGCN:
    """One :class:`EdgeAwareRGCN`, in eval mode, whose logit is exactly ``model``'s mean member logit.

    The members sit side by side in its hidden dimensions (``members x hidden``, ``members x
    edge_hidden``): input projections and edge encoders stacked, relational and self weights
    block-diagonal, the classifier's weights divided by the number of members. Every step of a layer is
    linear per member or elementwise, so member ``k`` only ever sees its own slice, and one message
    passing does the work of one per member. For inference only (dropout is off in eval mode).
    """
    members: list[Any] = list(model.members)  # Any: torch types submodules as Tensor | Module
    k, cfg = len(members), cast(dict[str, Any], members[0].config)
    out: Any = EdgeAwareRGCN(**{**cfg, "hidden": k * cfg["hidden"], "edge_hidden": k * cfg["edge_hidden"]}).eval()

    def stack(linears, dim=0):
        return torch.cat([lin.weight for lin in linears], dim)

    def diagonal(linears):
        return torch.block_diag(*[lin.weight for lin in linears])

    def biases(linears):
        return torch.cat([lin.bias for lin in linears])

    with torch.no_grad():
        for ntype, lin in out.input_projection.items():
            parts = [m.input_projection[ntype] for m in members]
            lin.weight.copy_(stack(parts))
            lin.bias.copy_(biases(parts))
        for i, layer in enumerate(out.layers):
            mine = [m.layers[i] for m in members]
            for etype, lin in layer.source_weight.items():
                lin.weight.copy_(diagonal([m.source_weight[etype] for m in mine]))
            for ntype, lin in layer.self_weight.items():
                lin.weight.copy_(diagonal([m.self_weight[ntype] for m in mine]))
                lin.bias.copy_(biases([m.self_weight[ntype] for m in mine]))
            if layer.use_edge_features:
                for etype, enc in layer.edge_encoder.items():
                    encoders = [m.edge_encoder[etype].net[0] for m in mine]
                    enc.net[0].weight.copy_(stack(encoders))
                    enc.net[0].bias.copy_(biases(encoders))
                for etype, lin in layer.edge_weight.items():
                    lin.weight.copy_(diagonal([m.edge_weight[etype] for m in mine]))
            if layer.max_pool:  # the maximum is element-wise, so each member's slice pools its own
                for etype, lin in layer.edge_max_weight.items():
                    lin.weight.copy_(diagonal([m.edge_max_weight[etype] for m in mine]))
        out.classifier.weight.copy_(stack([m.classifier for m in members], 1) / k)
        out.classifier.bias.copy_(torch.stack([m.classifier.bias for m in members]).mean(0))
    return out
