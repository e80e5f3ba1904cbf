"""Fitting the models on decision-time examples: the GNNs (``rgcn_edge``, ``rgcn``) with early
stopping on validation PR-AUC, and the GBDT baseline on the same point-in-time features plus one- and
two-hop aggregates (:func:`fraudgraph.ml.baselines.tabular_features`)."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fraudgraph.config import TrainingSettings
from fraudgraph.evaluation.ranking import (
    ranking_metrics,
)
from fraudgraph.logs import Progress
from fraudgraph.ml.artifact import gnn_scores, seed_everything
from fraudgraph.ml.features import IdentityGraphTensors
from fraudgraph.ml.scaling import FeatureScaler
from fraudgraph.schema import CUSTOMER

log = logging.getLogger("fraudgraph.training")


@dataclass
class Split:
    """Node indices of the training and validation examples, with their loss / metric weights."""

    train: np.ndarray
    val: np.ndarray
    train_weight: np.ndarray | None = None
    val_weight: np.ndarray | None = None


# Over 60 lines for a reason: one training loop read top to bottom (full graph or sampled mini-batches, weighted
# loss, early stopping on validation PR-AUC); split up, its state (best epoch, patience, history) would travel
# between functions.
def fit_gnn(
    tensors: IdentityGraphTensors,
    scaler: FeatureScaler,
    y: np.ndarray,
    split: Split,
    cfg: TrainingSettings,
    use_edge_features: bool,
    epochs: int | None = None,
    seed: int | None = None,
    desc: str = "training",
    init_state: dict[str, Any] | None = None,
    scaled: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> tuple[Any, dict]:
    """Train one RGCN variant with early stopping on validation PR-AUC.

    ``y``: per customer node, 1 fraud / 0 legitimate (other nodes are ignored); ``split`` names the
    nodes that train and validate, and their weights. With ``epochs``, train exactly that many epochs
    and keep the last state (a refit whose epoch count validation chose; ``split.val`` is not used).
    ``seed`` (default ``cfg.seed``) seeds the weights and the sampling. ``desc`` names the fit in its
    progress (each epoch with its loss and the validation PR-AUC early stopping reads). ``init_state``: the
    weights to start from (a warm start: :func:`warm_start`) instead of random ones. ``scaled``: the
    tensors' scaled ``(nodes, edges)`` when the caller has them (``scaler.scaled(tensors)`` otherwise).
    """
    import torch

    from fraudgraph.ml._dgl_compat import import_dgl

    dgl = import_dgl()
    seed_everything(cfg.seed if seed is None else seed)
    g = tensors.graph
    nodes, edges = scaled if scaled is not None else scaler.scaled(tensors)
    model = _new_model(g, nodes, edges, cfg, use_edge_features)
    warm = init_state is not None and warm_start(model, init_state)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    weighted_loss, pos_weight = _weighted_loss(y, split, cfg)
    full = cfg.mode == "full" or (cfg.mode == "auto" and g.num_edges() <= cfg.full_graph_max_edges)
    train_idx = torch.as_tensor(split.train, dtype=torch.int64)
    sampler = None  # full-graph steps
    if not full:
        sampler = dgl.dataloading.MultiLayerNeighborSampler(
            [{et: f for et in g.etypes} for f in (cfg.fanouts + cfg.fanouts[-1:] * cfg.layers)[: cfg.layers]]
        )
    best: dict[str, Any] = {"pr_auc": -1.0, "epoch": -1, "state": None}
    history = []
    bar = Progress(epochs or cfg.max_epochs, desc, "epoch", logger=log)
    for epoch in range(epochs or cfg.max_epochs):
        t = time.perf_counter()
        losses = _train_epoch(model, opt, weighted_loss, g, nodes, edges, train_idx, cfg, sampler)
        epoch_s = time.perf_counter() - t
        if epochs:
            history.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 5), "epoch_s": round(epoch_s, 3)})
            best = {"pr_auc": None, "epoch": epoch, "state": None}
            bar.update(loss=float(np.mean(losses)))
            continue
        val_scores = gnn_scores(model, tensors, scaler, split.val, cfg, nodes=nodes, edges=edges)
        val = ranking_metrics(y[split.val], val_scores, sample_weight=split.val_weight)
        mean_loss, val_pr_auc = round(float(np.mean(losses)), 5), val["pr_auc"]
        history.append({"epoch": epoch, "loss": mean_loss, "val_pr_auc": val_pr_auc, "epoch_s": round(epoch_s, 3)})
        score = val["pr_auc"] if val["pr_auc"] is not None else -float(np.mean(losses))
        if score > best["pr_auc"]:
            best = {"pr_auc": score, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        bar.update(loss=float(np.mean(losses)), val_pr_auc=float(score), best_epoch=best["epoch"])
        if epoch - best["epoch"] >= cfg.patience and epoch + 1 >= cfg.min_epochs:
            log.info("%s: early stop at epoch %d (best validation PR-AUC at epoch %d)", desc, epoch, best["epoch"])
            break
    bar.close()
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    return model, {
        "epochs": len(history),
        "best_epoch": best["epoch"],
        "best_val_pr_auc": best["pr_auc"],
        "mode": "full" if full else "minibatch",
        "warm_started": warm,
        "pos_weight": round(pos_weight, 3),
        "seconds_per_epoch": round(float(np.mean([h["epoch_s"] for h in history])), 3),
        "history": history,
    }


def warm_start(model: Any, state: dict[str, Any]) -> bool:
    """Load ``state`` (an earlier fit's weights) into ``model`` when every weight has the same name and shape;
    True when loaded. False (logged; ``model`` keeps its random weights) when the model's shape or the
    feature layout changed since that fit."""
    own = model.state_dict()
    mismatched = sorted(
        set(own) ^ set(state) | {k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape)}
    )
    if mismatched:
        log.warning("warm start: %d weights differ in name or shape (%s, ...): starting from scratch",
                    len(mismatched), mismatched[0])  # fmt: skip
        return False
    model.load_state_dict(state)
    return True


def _new_model(
    g: Any, nodes: dict[str, Any], edges: dict[str, Any], cfg: TrainingSettings, use_edge_features: bool
) -> Any:
    """An untrained RGCN of the configured shape for this graph's node and edge features."""
    from fraudgraph.ml.model import EdgeAwareRGCN

    return EdgeAwareRGCN(
        {n: x.shape[1] for n, x in nodes.items()},
        next(iter(edges.values())).shape[1],
        list(g.canonical_etypes),
        cfg.hidden_dim,
        cfg.edge_hidden_dim,
        cfg.layers,
        cfg.dropout,
        use_edge_features,
        edge_pooling=cfg.edge_pooling,
    )


def _weighted_loss(y: np.ndarray, split: Split, cfg: TrainingSettings) -> tuple[Callable[[Any, Any], Any], float]:
    """The training loss (binary cross-entropy, each training node weighted by ``split.train_weight``, the
    positive class by negatives / positives up to ``training.pos_weight_max``) and that positive weight."""
    import torch

    y_t = torch.as_tensor(np.clip(y, 0, 1), dtype=torch.float32)
    w_node = np.zeros(len(y), dtype=np.float32)
    w_node[split.train] = 1.0 if split.train_weight is None else split.train_weight
    w_t = torch.as_tensor(w_node)
    pos = w_node[split.train][y[split.train] == 1].sum()
    neg = w_node[split.train][y[split.train] == 0].sum()
    pos_weight = float(min(cfg.pos_weight_max, neg / max(pos, 1e-9)))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight), reduction="none")

    def weighted_loss(logits: Any, idx: Any) -> Any:
        w = w_t[idx]
        return (loss_fn(logits, y_t[idx]) * w).sum() / w.sum().clamp_min(1e-9)

    return weighted_loss, pos_weight


def _train_epoch(
    model: Any,
    opt: Any,
    weighted_loss: Callable[[Any, Any], Any],
    g: Any,
    nodes: dict[str, Any],
    edges: dict[str, Any],
    train_idx: Any,
    cfg: TrainingSettings,
    sampler: Any,
) -> list[float]:
    """One epoch: a full-graph step (``sampler`` None) or a minibatch per sampled block of the training
    nodes. Returns the losses of its steps."""
    from fraudgraph.ml._dgl_compat import import_dgl

    model.train()
    if sampler is None:
        opt.zero_grad()
        logits = model([g] * cfg.layers, nodes, [edges] * cfg.layers)
        loss = weighted_loss(logits[train_idx], train_idx)
        loss.backward()
        opt.step()
        return [loss.item()]
    dgl = import_dgl()
    losses = []
    loader = dgl.dataloading.DataLoader(
        g, {CUSTOMER: train_idx}, sampler, batch_size=cfg.batch_size, shuffle=True, drop_last=False
    )
    for input_nodes, output_nodes, blocks in loader:
        nf = {nt: nodes[nt][ids] for nt, ids in input_nodes.items()}
        ef = [{et: edges[et][b.edges[et].data[dgl.EID]] for et in b.etypes} for b in blocks]
        opt.zero_grad()
        loss = weighted_loss(model(blocks, nf, ef), output_nodes[CUSTOMER])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def fit_gbdt(features: np.ndarray, y: np.ndarray, weight: np.ndarray, cfg: TrainingSettings) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = HistGradientBoostingClassifier(
        max_iter=cfg.gbdt.max_iter,
        learning_rate=cfg.gbdt.learning_rate,
        max_leaf_nodes=cfg.gbdt.max_leaf_nodes,
        class_weight="balanced",
        early_stopping=False,
        random_state=cfg.seed,
    )
    clf.fit(features, y, sample_weight=weight)
    return clf
