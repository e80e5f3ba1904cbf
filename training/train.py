"""Batch training job: edge-feature-aware RGCN plus baselines, evaluated on a time split.

``fraudgraph train --snapshot DIR --labels DIR --out MODEL_DIR [--truth FILE]``

1. Read the snapshot (vertex and edge tables) and the cleaned labels; as-of is
   the labels' as-of time.
2. Build the heterograph and features with :mod:`fraudgraph.ml.features` (the
   code serving uses), standardise them (statistics saved with the model).
3. Split labelled customers by signup time: train before T1, validate
   T1..T2, test after T2 (``training.split``), so the test measures new accounts.
4. Train ``rgcn_edge`` (main), ``rgcn`` (same without edge features) and
   ``gbdt`` (HistGradientBoosting on customer features plus 1-hop aggregates)
   on the same split; weighted loss for the rare fraud class; early stopping on
   validation PR-AUC; everything seeded.
5. Evaluate every model on the test split against the cleaned labels and,
   with ``--truth``, against ground truth; choose the decision threshold on
   validation for ``training.target_precision``; write the artifact.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudgraph.config import Settings, TrainingSettings
from fraudgraph.ml.features import (REVERSE_PREFIX, FeatureScaler, IdentityGraphTensors, build_graph_tensors,
                                 one_hop_aggregates)
from fraudgraph.graph.snapshot import read_snapshot
from fraudgraph.evaluation.ranking import ranking_metrics, threshold_for_precision
from fraudgraph.ml.artifact import ModelArtifact, gnn_scores, seed_everything
from fraudgraph.timeutil import DAY_MS

log = logging.getLogger("fraudgraph.training")
MODELS = ("rgcn_edge", "rgcn", "gbdt")


@dataclass
class Split:
    train: np.ndarray  # customer node indices with known labels
    val: np.ndarray
    test: np.ndarray
    test_all: np.ndarray  # every customer who signed up in the test period (for ground truth)
    t1_ms: int
    t2_ms: int


def read_labels(labels_dir: str | Path) -> tuple[pd.DataFrame, int]:
    labels = pd.read_parquet(Path(labels_dir) / "labels.parquet")
    as_of = labels["as_of"].iloc[0]
    as_of_ms = int(pd.Timestamp(as_of).value // 10**6) if not isinstance(as_of, (int, np.integer)) else int(as_of)
    return labels, as_of_ms


def time_split(tensors: IdentityGraphTensors, customers: pd.DataFrame, labels: pd.DataFrame,
               cfg: TrainingSettings) -> tuple[Split, np.ndarray]:
    """Known-label customers split by signup time; returns the split and y (1 fraud, 0 legit, -1 unknown)."""
    t2 = tensors.as_of_ms - int(cfg.split.test_days * DAY_MS)
    t1 = t2 - int(cfg.split.val_days * DAY_MS)
    signup = pd.Series(pd.to_numeric(customers["signup_ts"], errors="coerce").to_numpy(),
                       index=customers["customer_id"].astype(str)).reindex(tensors.customer_ids).to_numpy()
    lab = labels.set_index("customer_id")["label"].reindex(tensors.customer_ids)
    y = np.where(lab == "fraud", 1, np.where(lab == "legit", 0, -1))
    known = y >= 0
    has_signup = ~np.isnan(signup)
    train = np.where(known & has_signup & (signup < t1))[0]
    val = np.where(known & (signup >= t1) & (signup < t2))[0]
    test = np.where(known & (signup >= t2))[0]
    test_all = np.where(has_signup & (signup >= t2) & (signup <= tensors.as_of_ms))[0]
    return Split(train, val, test, test_all, t1, t2), y


def fit_gnn(tensors: IdentityGraphTensors, scaler: FeatureScaler, y: np.ndarray, split: Split,
            cfg: TrainingSettings, use_edge_features: bool) -> tuple[Any, dict]:
    """Train one RGCN variant with early stopping on validation PR-AUC."""
    import torch

    from fraudgraph.ml._dgl_compat import import_dgl
    from fraudgraph.ml.model import EdgeAwareRGCN

    dgl = import_dgl()
    seed_everything(cfg.seed)
    g = tensors.graph
    nodes, edges = scaler.scaled(tensors)
    model = EdgeAwareRGCN({n: x.shape[1] for n, x in nodes.items()}, next(iter(edges.values())).shape[1],
                          list(g.canonical_etypes), cfg.hidden_dim, cfg.edge_hidden_dim, cfg.layers, cfg.dropout,
                          use_edge_features)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    y_t = torch.as_tensor(y, dtype=torch.float32)
    n_pos = max(1, int((y[split.train] == 1).sum()))
    pos_weight = min(cfg.pos_weight_max, (len(split.train) - n_pos) / n_pos)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))
    full = cfg.mode == "full" or (cfg.mode == "auto" and g.num_edges() <= cfg.full_graph_max_edges)
    train_idx = torch.as_tensor(split.train, dtype=torch.int64)
    if not full:
        sampler = dgl.dataloading.MultiLayerNeighborSampler(
            [{et: f for et in g.etypes} for f in (cfg.fanouts + cfg.fanouts[-1:] * cfg.layers)[:cfg.layers]])
    best = {"pr_auc": -1.0, "epoch": -1, "state": None}
    history = []
    for epoch in range(cfg.max_epochs):
        model.train()
        t = time.perf_counter()
        losses = []
        if full:
            opt.zero_grad()
            logits = model([g] * cfg.layers, nodes, [edges] * cfg.layers)
            loss = loss_fn(logits[train_idx], y_t[train_idx])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        else:
            loader = dgl.dataloading.DataLoader(g, {"customer": train_idx}, sampler, batch_size=cfg.batch_size,
                                                shuffle=True, drop_last=False)
            for input_nodes, output_nodes, blocks in loader:
                nf = {nt: nodes[nt][ids] for nt, ids in input_nodes.items()}
                ef = [{et: edges[et][b.edges[et].data[dgl.EID]] for et in b.etypes} for b in blocks]
                opt.zero_grad()
                logits = model(blocks, nf, ef)
                loss = loss_fn(logits, y_t[output_nodes["customer"]])
                loss.backward()
                opt.step()
                losses.append(loss.item())
        epoch_s = time.perf_counter() - t
        val_scores = gnn_scores(model, tensors, scaler, split.val, cfg, nodes=nodes, edges=edges)
        val = ranking_metrics(y[split.val], val_scores)
        history.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 5), "val_pr_auc": val["pr_auc"],
                        "epoch_s": round(epoch_s, 3)})
        score = val["pr_auc"] if val["pr_auc"] is not None else -float(np.mean(losses))
        if score > best["pr_auc"]:
            best = {"pr_auc": score, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        elif epoch - best["epoch"] >= cfg.patience and epoch + 1 >= cfg.min_epochs:
            break
    model.load_state_dict(best["state"])
    model.eval()
    return model, {"epochs": len(history), "best_epoch": best["epoch"], "best_val_pr_auc": best["pr_auc"],
                   "mode": "full" if full else "minibatch", "pos_weight": round(pos_weight, 3),
                   "seconds_per_epoch": round(float(np.mean([h["epoch_s"] for h in history])), 3),
                   "history": history}


def fit_gbdt(features: np.ndarray, y: np.ndarray, split: Split, cfg: TrainingSettings):
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = HistGradientBoostingClassifier(max_iter=cfg.gbdt.max_iter, learning_rate=cfg.gbdt.learning_rate,
                                         max_leaf_nodes=cfg.gbdt.max_leaf_nodes, class_weight="balanced",
                                         early_stopping=False, random_state=cfg.seed)
    clf.fit(features[split.train], y[split.train])
    return clf


def plot_pr_curves(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], path: Path) -> None:
    """One panel per reference (labels, truth), one curve per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    refs = [r for r in ("labels", "truth") if any(r in c for c in curves.values())]
    fig, axes = plt.subplots(1, len(refs), figsize=(6 * len(refs), 4.5), squeeze=False)
    for ax, ref in zip(axes[0], refs):
        for name, c in curves.items():
            if ref not in c:
                continue
            y, s = c[ref]
            if len(y) and y.min() != y.max():
                p, r, _ = precision_recall_curve(y, s)
                ax.plot(r, p, label=name)
        ax.axhline(0.85, color="grey", linestyle=":", linewidth=1)
        ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set(title=f"test split vs {'cleaned labels' if ref == 'labels' else 'ground truth'}",
               xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_training(settings: Settings, snapshot_dir: str | Path, labels_dir: str | Path, out_dir: str | Path,
                 truth_path: str | Path | None = None) -> dict[str, Any]:
    import torch

    cfg = settings.training
    torch.set_num_threads(cfg.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    customers, links = read_snapshot(snapshot_dir)
    labels, as_of_ms = read_labels(labels_dir)
    cap = settings.graph.neighbourhood_fanout_cap
    tensors = build_graph_tensors(customers, links, as_of_ms, fanout_cap=cap)
    scaler = FeatureScaler().fit(tensors)
    split, y = time_split(tensors, customers, labels, cfg)
    log.info("split: train %d, val %d, test %d labelled customers (fraud %d/%d/%d)", len(split.train),
             len(split.val), len(split.test), (y[split.train] == 1).sum(), (y[split.val] == 1).sum(),
             (y[split.test] == 1).sum())
    truth = None
    if truth_path:
        from fraudgraph.labels.stage import truth_as_of

        truth = truth_as_of(pd.read_parquet(truth_path), as_of_ms).reindex(tensors.customer_ids).fillna(False) \
            .to_numpy().astype(int)

    scores_val, scores_test, scores_test_all, fits = {}, {}, {}, {}
    artifacts = {}
    for name, use_edges in (("rgcn_edge", True), ("rgcn", False)):
        log.info("training %s", name)
        model, fit = fit_gnn(tensors, scaler, y, split, cfg, use_edges)
        fits[name] = fit
        artifacts[name] = model
        nodes, edges = scaler.scaled(tensors)
        all_scores = gnn_scores(model, tensors, scaler, np.arange(len(tensors.customer_ids)), cfg,
                                nodes=nodes, edges=edges)
        scores_val[name], scores_test[name] = all_scores[split.val], all_scores[split.test]
        scores_test_all[name] = all_scores[split.test_all]
    log.info("training gbdt")
    tab, _ = one_hop_aggregates(tensors)
    t = time.perf_counter()
    gbdt = fit_gbdt(tab, y, split, cfg)
    fits["gbdt"] = {"seconds": round(time.perf_counter() - t, 2)}
    gb_scores = gbdt.predict_proba(tab)[:, 1]
    scores_val["gbdt"], scores_test["gbdt"] = gb_scores[split.val], gb_scores[split.test]
    scores_test_all["gbdt"] = gb_scores[split.test_all]

    threshold = threshold_for_precision(y[split.val], scores_val["rgcn_edge"], cfg.target_precision)
    metrics: dict[str, Any] = {"models": {}, "threshold": round(threshold, 6), "main_model": "rgcn_edge",
                               "target_precision": cfg.target_precision}
    curves: dict[str, dict] = {}
    for name in MODELS:
        m = {"labels": ranking_metrics(y[split.test], scores_test[name])}
        curves[name] = {"labels": (y[split.test], scores_test[name])}
        if truth is not None:
            m["truth"] = ranking_metrics(truth[split.test_all], scores_test_all[name])
            curves[name]["truth"] = (truth[split.test_all], scores_test_all[name])
        m["validation"] = ranking_metrics(y[split.val], scores_val[name])
        metrics["models"][name] = m
    main_test = scores_test["rgcn_edge"]
    flagged = main_test >= threshold
    metrics["at_threshold"] = {
        "test_flagged": int(flagged.sum()),
        "test_precision": round(float(y[split.test][flagged].mean()), 4) if flagged.any() else None,
        "test_recall": round(float(flagged[y[split.test] == 1].mean()), 4) if (y[split.test] == 1).any() else None,
    }
    metrics["split"] = {"as_of_ms": as_of_ms, "t1_ms": split.t1_ms, "t2_ms": split.t2_ms,
                        "train": len(split.train), "val": len(split.val), "test": len(split.test),
                        "test_all": len(split.test_all),
                        "fraud": {"train": int((y[split.train] == 1).sum()), "val": int((y[split.val] == 1).sum()),
                                  "test": int((y[split.test] == 1).sum())}}
    metrics["training"] = {k: {kk: vv for kk, vv in v.items() if kk != "history"} for k, v in fits.items()}
    n_links = sum(tensors.graph.num_edges(et) for et in tensors.graph.etypes if et.startswith(REVERSE_PREFIX))
    metrics["graph"] = {"customers": len(tensors.customer_ids), "edges": int(n_links),
                        "message_edges": int(tensors.graph.num_edges()), "fanout_cap": cap}
    metrics["wall_s"] = round(time.monotonic() - started, 2)

    ModelArtifact.create(artifacts["rgcn_edge"], scaler, settings, threshold, metrics, as_of_ms,
                         fanout_cap=cap).save(out)
    (out / "baselines").mkdir(exist_ok=True)
    torch.save(artifacts["rgcn"].state_dict(), out / "baselines" / "rgcn.pt")
    (out / "history.json").write_text(json.dumps({k: v.get("history") for k, v in fits.items()}, indent=1))
    plot_pr_curves(curves, out / "pr_curves.png")
    (out / "summary.md").write_text(render_summary(metrics))
    return metrics


def metrics_table(models: dict[str, Any]) -> list[str]:
    """Markdown rows: every model against cleaned labels and (when present) ground truth."""
    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    lines = ["| model | vs | PR-AUC | ROC-AUC | recall @ 85 % precision | precision @ 50 % recall |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for name, m in models.items():
        for ref in ("labels", "truth"):
            if ref in m:
                s = m[ref]
                lines.append(f"| {name} | {ref} | {f(s['pr_auc'])} | {f(s['roc_auc'])} | "
                             f"{f(s['recall_at_precision_85'])} | {f(s['precision_at_recall_50'])} |")
    return lines


def render_summary(metrics: dict[str, Any]) -> str:
    lines = ["# Model summary", "",
             f"Main model `{metrics['main_model']}`; threshold {metrics['threshold']:.4f} chosen on validation "
             f"for precision {metrics['target_precision']:.0%}.", "",
             f"Split: train {metrics['split']['train']:,}, validation {metrics['split']['val']:,}, "
             f"test {metrics['split']['test']:,} labelled customers "
             f"(fraud {metrics['split']['fraud']['train']}/{metrics['split']['fraud']['val']}/"
             f"{metrics['split']['fraud']['test']}); ground truth over {metrics['split']['test_all']:,} "
             "test-period customers.", "",
             *metrics_table(metrics["models"])]
    lines += ["", "![precision-recall curves](pr_curves.png)"]
    return "\n".join(lines) + "\n"
