"""Scoring with a trained model artifact: the code path batch scoring, the consumer and the API share.

A model artifact (``MODEL_DIR``) is self-contained: ``model.pt`` (weights),
``model_config.json`` (architecture), ``feature_stats.json`` (standardisation),
``manifest.json`` (schema version, model version, threshold, as-of, feature
names), ``settings.json`` (the training configuration) and ``metrics.json``.
:meth:`ModelArtifact.load` needs nothing from the training job.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudgraph.ml import ModelArtifactError
from fraudgraph.ml.features import (
    CUSTOMER_FEATURES,
    EDGE_FEATURES,
    IdentityGraphTensors,
)
from fraudgraph.ml.identifier_features import IDENTIFIER_FEATURES
from fraudgraph.ml.scaling import FeatureScaler
from fraudgraph.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    pass


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, PyTorch and DGL (every random step of training)."""
    import torch

    from fraudgraph.ml._dgl_compat import import_dgl

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    import_dgl().seed(seed)


EDGE_LIST_MAX_EDGES = 60_000
"""Full graphs of at most this many edges are scored on their index tensors
(:class:`fraudgraph.ml.edge_lists.EdgeLists`), larger ones on a DGL graph (docs/decisions.md)."""


def gnn_scores(
    model: Any,
    tensors: IdentityGraphTensors,
    scaler: FeatureScaler,
    idx: np.ndarray,
    cfg: Any,
    *,
    nodes: dict[str, Any] | None = None,
    edges: dict[str, Any] | None = None,
    full_graph_max_edges: int | None = None,
) -> np.ndarray:
    """Fraud probabilities of customer nodes ``idx`` (full neighbourhoods, eval mode)."""
    import torch

    from fraudgraph.ml._dgl_compat import import_dgl

    dgl = import_dgl()
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) == 0:
        return np.zeros(0, dtype=np.float64)
    if nodes is None or edges is None:
        nodes, edges = scaler.scaled(tensors)
    layers = model.config["layers"]
    limit = cfg.full_graph_max_edges if full_graph_max_edges is None else full_graph_max_edges
    n_edges = tensors.edge_lists.num_edges()
    was_training = model.training
    if was_training:  # eval() walks every module: not on each online call
        model.eval()
    with torch.inference_mode():  # lighter than no_grad: no autograd bookkeeping at all
        if n_edges <= min(limit, EDGE_LIST_MAX_EDGES):
            # a small graph (an online subgraph) as index tensors, only the edges the targets' scores
            # need: no DGL graph is built at all
            target = torch.as_tensor(idx)
            target_type = model.config.get("target_ntype", "customer")
            blocks, edge_ids = tensors.edge_lists.blocks_for(target_type, target, layers)
            ef = [{et: edges[et][ids] for et, ids in per_layer.items()} for per_layer in edge_ids]
            out = torch.sigmoid(model(blocks, nodes, ef)[target]).numpy()
        elif n_edges <= limit:
            g = tensors.graph
            logits = model([g] * layers, nodes, [edges] * layers)
            out = torch.sigmoid(logits).numpy()[idx]
        else:
            g = tensors.graph
            sampler = dgl.dataloading.MultiLayerFullNeighborSampler(layers)
            loader = dgl.dataloading.DataLoader(
                g, {"customer": torch.as_tensor(idx)}, sampler, batch_size=cfg.batch_size, shuffle=False
            )
            parts = []
            for input_nodes, _, blocks in loader:
                nf = {nt: nodes[nt][ids] for nt, ids in input_nodes.items()}
                ef = [{et: edges[et][b.edges[et].data[dgl.EID]] for et in b.etypes} for b in blocks]
                parts.append(torch.sigmoid(model(blocks, nf, ef)).numpy())
            out = np.concatenate(parts)
    if was_training:
        model.train()
    return out.astype(np.float64)


@dataclass
class ModelArtifact:
    model: Any
    scaler: FeatureScaler
    manifest: dict[str, Any]
    settings: dict[str, Any]
    metrics: dict[str, Any]
    folder: Path | None = None  # where it was loaded from (None: made in this process)

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    @property
    def version(self) -> str:
        return self.manifest["model_version"]

    @property
    def fanout_cap(self) -> int | None:
        return self.manifest.get("fanout_cap")

    @property
    def trained_as_of_ms(self) -> int:
        """The moment (epoch ms) the training data ran up to: every event before it was in the graph."""
        return int(self.manifest["trained_as_of_ms"])

    @classmethod
    def create(
        cls,
        model: Any,
        scaler: FeatureScaler,
        settings: Any,
        threshold: float,
        metrics: dict[str, Any],
        as_of_ms: int,
        fanout_cap: int | None = None,
    ) -> ModelArtifact:
        import torch

        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        digest = hashlib.sha256(buf.getvalue()).hexdigest()[:12]
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "model_version": f"rgcn_edge-{digest}",
            "model": "rgcn_edge",
            "threshold": float(threshold),
            "trained_as_of_ms": int(as_of_ms),
            # customers an identifier aggregates from (lowest ids); scoring must use the same
            "fanout_cap": fanout_cap,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "features": {"customer": CUSTOMER_FEATURES, "identifier": IDENTIFIER_FEATURES, "edge": EDGE_FEATURES},
        }
        return cls(model, scaler, manifest, json.loads(settings.model_dump_json()), metrics)

    def save(self, out_dir: str | Path) -> None:
        import torch

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), out / "model.pt")
        cfg = dict(self.model.config)
        cfg["canonical_etypes"] = [list(e) for e in cfg["canonical_etypes"]]
        (out / "model_config.json").write_text(json.dumps(cfg, indent=2))
        self.scaler.save(out / "feature_stats.json")
        (out / "manifest.json").write_text(json.dumps(self.manifest, indent=2))
        (out / "settings.json").write_text(json.dumps(self.settings, indent=2))
        (out / "metrics.json").write_text(json.dumps(self.metrics, indent=2))

    @staticmethod
    def incompatibility(manifest: dict[str, Any]) -> str | None:
        """Why a model with this ``manifest`` cannot run on this fraudgraph (another schema version, other
        features), or None when it can."""
        if manifest.get("schema_version") != SCHEMA_VERSION:
            return f"schema version {manifest.get('schema_version')} does not match this fraudgraph ({SCHEMA_VERSION})"
        features = {"customer": CUSTOMER_FEATURES, "identifier": IDENTIFIER_FEATURES, "edge": EDGE_FEATURES}
        if manifest.get("features", features) != features:
            changed = sorted(k for k in features if manifest["features"].get(k) != features[k])
            return (
                f"trained on other {' and '.join(changed)} features than this fraudgraph computes; "
                "retrain it (fraudgraph train)"
            )
        return None

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelArtifact:
        import torch

        from fraudgraph.ml.model import rgcn_from_config

        d = Path(model_dir)
        for name in ("model.pt", "model_config.json", "feature_stats.json", "manifest.json"):
            if not (d / name).exists():
                raise FileNotFoundError(f"model artifact {d}: missing {name}")
        manifest = json.loads((d / "manifest.json").read_text())
        problem = cls.incompatibility(manifest)
        if problem is not None:
            raise ModelArtifactError(f"model artifact {d}: {problem}")
        cfg = json.loads((d / "model_config.json").read_text())
        cfg["canonical_etypes"] = [tuple(e) for e in cfg["canonical_etypes"]]
        model = rgcn_from_config(cfg)
        model.load_state_dict(torch.load(d / "model.pt", weights_only=True))
        model.eval()
        metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
        settings = json.loads((d / "settings.json").read_text()) if (d / "settings.json").exists() else {}
        return cls(model, FeatureScaler.load(d / "feature_stats.json"), manifest, settings, metrics, d)

    def score_tensors(
        self,
        tensors: IdentityGraphTensors,
        idx: np.ndarray | None = None,
        *,
        batch_size: int = 1024,
        full_graph_max_edges: int = 4_000_000,
    ) -> np.ndarray:
        """Fraud probabilities for customer nodes ``idx`` (all when None)."""
        cfg = SimpleNamespace(batch_size=batch_size, full_graph_max_edges=full_graph_max_edges)
        idx = np.arange(len(tensors.customer_ids)) if idx is None else idx
        return gnn_scores(self.inference_model, tensors, self.scaler, idx, cfg)

    @functools.cached_property
    def inference_model(self) -> Any:
        """The model scoring runs: an averaged model as one fused model of the same logits
        (:func:`fraudgraph.ml.fusion.fused`: one message passing instead of one per member), its layers
        keeping their relation weights joined for the index tensor path."""
        from fraudgraph.ml.fusion import fused
        from fraudgraph.ml.model import AveragedRGCN

        model = fused(self.model) if isinstance(self.model, AveragedRGCN) else self.model
        layers: Any = model.layers  # Any: torch types submodules as Tensor | Module
        for layer in layers:
            layer.keep_relation_weights()
        return model
