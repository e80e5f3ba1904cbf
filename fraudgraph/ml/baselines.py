"""The models a fraud team would build instead of the RGCN, on the same point-in-time tensors.

- :func:`tabular_features`: the GBDT's view of a customer: its own features, one-hop aggregates of its
  identifiers and links, and two-hop aggregates of the customers it shares an identifier with
  (:func:`neighbour_features`: how many, the share whose block stands, their ages and activity).
- :func:`guilt_by_association`: label propagation from the team's standing blocks, with nothing
  fitted: the chance that at least one of a customer's identifiers leads to a blocked customer.
- :class:`BaselineModels`: the fitted baselines saved beside the deployed model, so the live replay
  scores every decision with each of them as well (the live stream judges every model alike).

Every input is what the RGCN reads at the same decision time (:class:`IdentityGraphTensors`), so a
difference in the figures is the model's, not the data's.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudgraph.ml.features import (
    CUSTOMER_FEATURES,
    EDGE_FEATURES,
    REVERSE_PREFIX,
    IdentityGraphTensors,
)
from fraudgraph.ml.identifier_features import IDENTIFIER_FEATURES
from fraudgraph.ml.scaling import FeatureScaler
from fraudgraph.schema import CUSTOMER, EDGE_LABEL_BY_KIND, IDENTIFIER_KINDS

GNN_BASELINES = ("rgcn_edge_validated", "rgcn")
GBDT_BASELINES = ("gbdt", "gbdt_deployed", "gbdt_own")
OWN_ONLY = ("gbdt_own",)  # read the customer's own features only: the properties without the graph


def tabular_features(tensors: IdentityGraphTensors, idx: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The GBDT's view of customer nodes ``idx``: the customer's own features; per identifier kind the
    number of identifiers and the min/mean/max of every identifier and edge feature (one hop); and the
    two-hop aggregates of :func:`neighbour_features`.

    Returns ``(matrix (len(idx), n_features), feature names)``.
    """
    idx = np.asarray(idx, dtype=np.int64)
    position = pd.Series(np.arange(len(idx)), index=idx)
    cols, names = [tensors.node_features[CUSTOMER][idx]], list(CUSTOMER_FEATURES)
    for kind in IDENTIFIER_KINDS:
        label = REVERSE_PREFIX + EDGE_LABEL_BY_KIND[kind]  # identifier -> customer: every link, uncapped
        ident, cust = (t.numpy() for t in tensors.graph.edges(etype=label))
        keep = np.isin(cust, idx)
        feats = np.concatenate([tensors.node_features[kind][ident[keep]], tensors.edge_features[label][keep]], 1)
        fnames = [f"identifier_{f}" for f in IDENTIFIER_FEATURES] + [f"edge_{f}" for f in EDGE_FEATURES]
        frame = pd.DataFrame(feats, columns=fnames)
        frame["_row"] = position.loc[cust[keep]].to_numpy()
        grouped = frame.groupby("_row")
        agg = pd.concat({"min": grouped.min(), "mean": grouped.mean(), "max": grouped.max()}, axis=1)
        agg.columns = [f"{kind}_{f}_{stat}" for stat, f in agg.columns]
        agg[f"{kind}_count"] = grouped.size()
        agg = agg.reindex(range(len(idx))).fillna(0.0)
        cols.append(agg.to_numpy(np.float32))
        names += list(agg.columns)
    two_hop, two_hop_names = neighbour_features(tensors, idx)
    return np.concatenate([*cols, two_hop], 1), names + two_hop_names


def _paths_by_kind(tensors: IdentityGraphTensors, idx: np.ndarray) -> dict[str, Any]:
    """Sparse ``(len(idx), n_customers)`` per identifier kind: how many identifiers of that kind each target
    shares with each customer (the capped members an identifier aggregates, as the RGCN's second hop)."""
    import scipy.sparse as sp

    n_c = len(tensors.customer_ids)
    row_of = np.full(n_c, -1, dtype=np.int64)
    row_of[idx] = np.arange(len(idx))
    out = {}
    for kind in IDENTIFIER_KINDS:
        label = EDGE_LABEL_BY_KIND[kind]
        n_i = tensors.graph.num_nodes(kind)
        ident, cust = (t.numpy() for t in tensors.graph.edges(etype=REVERSE_PREFIX + label))
        mine = row_of[cust] >= 0
        a = sp.csr_matrix((np.ones(int(mine.sum()), np.float32), (row_of[cust[mine]], ident[mine])), (len(idx), n_i))
        member, ident_h = (t.numpy() for t in tensors.graph.edges(etype=label))  # capped
        b = sp.csr_matrix((np.ones(len(member), np.float32), (ident_h, member)), (n_i, n_c))
        out[kind] = a @ b
    return out


def _neighbours(paths: dict[str, Any], idx: np.ndarray, kinds=IDENTIFIER_KINDS):
    """Sparse 0/1 ``(len(idx), n_customers)``: the customers each target shares an identifier of ``kinds``
    with (:func:`_paths_by_kind`), itself left out."""
    import scipy.sparse as sp

    coo = sum(paths[k] for k in kinds).tocoo()
    keep = coo.col != idx[coo.row]
    return sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (coo.row[keep], coo.col[keep])), coo.shape)


def neighbour_features(tensors: IdentityGraphTensors, idx: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Two-hop aggregates of customer nodes ``idx`` over the customers they share an identifier with
    (:func:`_neighbours`): their number (all kinds, and through devices and cards), the share whose
    block stands at the decision time (the target's own never counts), and the mean, min and max of each
    of their customer features (``log1p`` values: account age, identifiers, events).

    Returns ``(matrix (len(idx), n_features), names)``.
    """
    idx = np.asarray(idx, dtype=np.int64)
    x = tensors.node_features[CUSTOMER].astype(np.float64)
    blocked = tensors.blocked
    paths = _paths_by_kind(tensors, idx)
    nb = _neighbours(paths, idx)
    count = np.asarray(nb.sum(1)).ravel()
    safe = np.maximum(count, 1)
    cols = {
        "neighbours": np.log1p(count),
        "neighbours_device": np.log1p(np.asarray(_neighbours(paths, idx, ("device",)).sum(1)).ravel()),
        "neighbours_card": np.log1p(np.asarray(_neighbours(paths, idx, ("card",)).sum(1)).ravel()),
        "neighbours_blocked_share": (nb @ blocked) / safe,
    }
    top = x.max(0) if len(x) else np.zeros(x.shape[1])
    for j, name in enumerate(CUSTOMER_FEATURES):
        cols[f"neighbours_{name}_mean"] = (nb @ x[:, j]) / safe
        cols[f"neighbours_{name}_max"] = np.asarray(nb.multiply(x[:, j][None, :]).max(1).todense()).ravel()
        low = np.asarray(nb.multiply((top[j] - x[:, j])[None, :]).max(1).todense()).ravel()
        cols[f"neighbours_{name}_min"] = np.where(count > 0, top[j] - low, 0.0)
    return np.stack(list(cols.values()), 1).astype(np.float32), list(cols)


def guilt_by_association(tensors: IdentityGraphTensors, idx: np.ndarray) -> np.ndarray:
    """``(len(idx),)`` in [0, 1]: label propagation from standing blocks, fitted on nothing.

    Each identifier of a customer passes on the share of the *other* customers it aggregates (the
    capped members, as the RGCN's) whose block stands at the decision time; the score is the chance that
    at least one identifier leads to a blocked customer, ``1 - prod(1 - share)``. The customer's own
    block never counts. It is the "linked to a blocked account" rule made graded.
    """
    idx = np.asarray(idx, dtype=np.int64)
    blocked = tensors.blocked
    n_c = len(tensors.customer_ids)
    row_of = np.full(n_c, -1, dtype=np.int64)
    row_of[idx] = np.arange(len(idx))
    log_clear = np.zeros(len(idx))
    for kind in IDENTIFIER_KINDS:
        label = EDGE_LABEL_BY_KIND[kind]
        n_i = tensors.graph.num_nodes(kind)
        member, ident_h = (t.numpy() for t in tensors.graph.edges(etype=label))  # capped members
        members = np.bincount(ident_h, minlength=n_i).astype(float)
        blocked_members = np.bincount(ident_h, weights=blocked[member], minlength=n_i)
        ident, cust = (t.numpy() for t in tensors.graph.edges(etype=REVERSE_PREFIX + label))
        mine = row_of[cust] >= 0
        ident, cust = ident[mine], cust[mine]
        is_member = np.isin(cust * n_i + ident, member * n_i + ident_h)
        others = members[ident] - is_member
        others_blocked = blocked_members[ident] - blocked[cust] * is_member
        share = np.where(others > 0, others_blocked / np.maximum(others, 1), 0.0)
        np.add.at(log_clear, row_of[cust], np.log1p(-np.clip(share, 0, 1 - 1e-12)))
    return 1.0 - np.exp(log_clear)


@dataclass
class BaselineModels:
    """The fitted baselines beside a deployed model (its ``baselines/`` folder), scored on the same
    tensors and scaled features as the deployed model: ``gnns`` by name (``rgcn_edge_validated``, the
    deployed architecture fitted on the training split only; ``rgcn``, without edge features), ``gbdts``
    by name (``gbdt`` on the training split, ``gbdt_deployed`` on the labels the deployed model was refit
    on, ``gbdt_own`` on the customer's own features only: the properties without the graph). Pickled
    models are trusted artifacts of this project's own training job, as the model is."""

    gnns: dict[str, Any] = field(default_factory=dict)
    gbdts: dict[str, Any] = field(default_factory=dict)

    def save(self, model_dir: str | Path) -> None:
        import torch

        out = Path(model_dir) / "baselines"
        out.mkdir(parents=True, exist_ok=True)
        for name, model in self.gnns.items():
            torch.save(model.state_dict(), out / f"{name}.pt")
            cfg = dict(model.config)
            cfg["canonical_etypes"] = [list(e) for e in cfg["canonical_etypes"]]
            (out / f"{name}_config.json").write_text(json.dumps(cfg, indent=2))
        for name, model in self.gbdts.items():
            (out / f"{name}.pkl").write_bytes(pickle.dumps(model))

    @classmethod
    def load(cls, model_dir: str | Path) -> BaselineModels:
        """The baselines saved in ``model_dir/baselines`` (none when the folder is missing)."""
        import torch

        from fraudgraph.ml.model import rgcn_from_config

        d = Path(model_dir) / "baselines"
        out = cls()
        for name in GNN_BASELINES:
            if (d / f"{name}.pt").exists() and (d / f"{name}_config.json").exists():
                cfg = json.loads((d / f"{name}_config.json").read_text())
                cfg["canonical_etypes"] = [tuple(e) for e in cfg["canonical_etypes"]]
                model = rgcn_from_config(cfg)
                model.load_state_dict(torch.load(d / f"{name}.pt", weights_only=True))
                out.gnns[name] = model.eval()
        for name in GBDT_BASELINES:
            if (d / f"{name}.pkl").exists():
                out.gbdts[name] = pickle.loads((d / f"{name}.pkl").read_bytes())
        return out

    def score(self, tensors: IdentityGraphTensors, scaler: FeatureScaler, idx: np.ndarray) -> dict[str, np.ndarray]:
        """``{name: (len(idx),) fraud scores}`` of every baseline, ``guilt_by_association`` included."""
        from types import SimpleNamespace

        from fraudgraph.ml.artifact import gnn_scores

        idx = np.asarray(idx, dtype=np.int64)
        out = {"guilt_by_association": guilt_by_association(tensors, idx)}
        if not len(idx):
            return {**out, **{n: np.zeros(0) for n in [*self.gnns, *self.gbdts]}}
        if self.gnns:
            nodes, edges = scaler.scaled(tensors)
            cfg = SimpleNamespace(batch_size=1024, full_graph_max_edges=4_000_000)
            for name, model in self.gnns.items():
                out[name] = gnn_scores(model, tensors, scaler, idx, cfg, nodes=nodes, edges=edges)
        if self.gbdts:
            table = tabular_features(tensors, idx)[0] if set(self.gbdts) - set(OWN_ONLY) else None
            own = tensors.node_features[CUSTOMER][idx]
            for name, model in self.gbdts.items():
                out[name] = model.predict_proba(own if name in OWN_ONLY else table)[:, 1]
        return out


__all__ = [
    "BaselineModels",
    "guilt_by_association",
    "neighbour_features",
    "tabular_features",
]
