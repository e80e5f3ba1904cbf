"""Per node and edge type standardisation of the graph tensors' features (mean 0, unit variance), fitted on the
training graph and saved with the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from fraudgraph.ml.features import IdentityGraphTensors


class FeatureScaler:
    """Per node/edge type standardisation (mean 0, unit variance), saved with the model."""

    def __init__(self, stats: dict[str, dict[str, list[float]]] | None = None):
        self.stats = stats or {}

    def fit(self, tensors: IdentityGraphTensors) -> FeatureScaler:
        for group, feats in (("node", tensors.node_features), ("edge", tensors.edge_features)):
            for name, x in feats.items():
                mean = x.mean(0) if len(x) else np.zeros(x.shape[1])
                std = x.std(0) if len(x) else np.ones(x.shape[1])
                self.stats[f"{group}:{name}"] = {"mean": mean.tolist(), "std": np.where(std > 1e-6, std, 1).tolist()}
        return self

    def transform(self, group: str, name: str, x: np.ndarray) -> np.ndarray:
        s = self.stats[f"{group}:{name}"]
        return ((x - np.asarray(s["mean"], np.float32)) / np.asarray(s["std"], np.float32)).astype(np.float32)

    def scaled(self, tensors: IdentityGraphTensors) -> tuple[dict[str, Any], dict[str, Any]]:
        """Torch tensors of scaled node and edge features."""
        import torch

        nodes = {k: torch.from_numpy(self.transform("node", k, v)) for k, v in tensors.node_features.items()}
        edges = {k: torch.from_numpy(self.transform("edge", k, v)) for k, v in tensors.edge_features.items()}
        return nodes, edges

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.stats))

    @classmethod
    def load(cls, path: str | Path) -> FeatureScaler:
        return cls(json.loads(Path(path).read_text()))
