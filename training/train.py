"""Batch training job: the edge-feature-aware RGCN and its baselines, trained and judged at decision time.

``fraudgraph train --snapshot DIR --labels DIR --out MODEL_DIR [--truth FILE]``

1. Read the snapshot's link events (:class:`fraudgraph.graph.history.LinkHistory`) and the cleaned
   labels; as-of is the labels' as-of time.
2. Build decision-time examples (:mod:`training.examples`): the moments the live consumer scores a
   customer, split by decision time, labelled with what was known at the end of each split.
3. Build every example's scoring subgraph exactly as of its decision time and its features with
   :mod:`fraudgraph.ml.features` (the code online scoring uses); standardise them (statistics saved
   with the model).
4. Train ``rgcn_edge`` (main), ``rgcn`` (same without edge features) and ``gbdt``
   (HistGradientBoosting on the same point-in-time customer features plus per-kind min/mean/max of
   every identifier and edge feature); score the day-one ``rules`` baseline. Weighted loss: every
   customer weighs the same, the fraud class up to ``pos_weight_max``; early stopping on validation
   PR-AUC; everything seeded.
5. Judge every model per customer (its highest score over its decision points in the split, as the
   consumer flags a customer at any of them) against the cleaned labels and, with ``--truth``,
   against ground truth (with bootstrap 90 % intervals that resample fraud rings whole, and one row
   per fraud type); choose the decision threshold on validation customers by
   ``training.threshold_policy`` (:func:`choose_threshold`); write the artifact, with the validation
   scores the deployed threshold was chosen on (``validation_scores.parquet``).

Refuses (:class:`TrainingRefused`) to train when the training or validation split holds fewer than
``training.min_positives`` fraud customers: no artifact is ever written with empty metrics.
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
from fraudgraph.evaluation.ranking import (
    bootstrap_interval,
    ranking_metrics,
    threshold_for_false_flag_budget,
    threshold_for_precision,
)
from fraudgraph.graph.history import LinkHistory, decision_points
from fraudgraph.ml.artifact import ModelArtifact, gnn_scores, seed_everything
from fraudgraph.ml.features import (
    CUSTOMER_FEATURES,
    EDGE_FEATURES,
    IDENTIFIER_FEATURES,
    REVERSE_PREFIX,
    FeatureScaler,
    IdentityGraphTensors,
    build_graph_tensors,
)
from fraudgraph.schema import CUSTOMER, EDGE_LABEL_BY_KIND, IDENTIFIER_KINDS
from fraudgraph.scoring.day_one import DayOneRules
from training.examples import SPLITS, DecisionExamples, build_examples, truth_at_points

log = logging.getLogger("fraudgraph.training")
MODELS = ("rgcn_edge", "rgcn", "gbdt", "rules")
FRAUD_TYPES = ("ring", "synthetic_identity", "account_takeover")


class TrainingRefused(ValueError):
    """Too few positive labels to learn from; the message names the counts and the settings."""


@dataclass
class Split:
    """Node indices of the training and validation examples, with their loss / metric weights."""

    train: np.ndarray
    val: np.ndarray
    train_weight: np.ndarray | None = None
    val_weight: np.ndarray | None = None


def read_labels(labels_dir: str | Path) -> tuple[pd.DataFrame, int]:
    labels = pd.read_parquet(Path(labels_dir) / "labels.parquet")
    as_of = labels["as_of"].iloc[0]
    as_of_ms = int(pd.Timestamp(as_of).value // 10**6) if not isinstance(as_of, (int, np.integer)) else int(as_of)
    return labels, as_of_ms


def fit_gnn(
    tensors: IdentityGraphTensors,
    scaler: FeatureScaler,
    y: np.ndarray,
    split: Split,
    cfg: TrainingSettings,
    use_edge_features: bool,
    epochs: int | None = None,
) -> tuple[Any, dict]:
    """Train one RGCN variant with early stopping on validation PR-AUC.

    ``y``: per customer node, 1 fraud / 0 legitimate (other nodes are ignored); ``split`` names the
    nodes that train and validate, and their weights. With ``epochs``, train exactly that many epochs
    and keep the last state (a refit whose epoch count validation chose; ``split.val`` is not used).
    """
    import torch

    from fraudgraph.ml._dgl_compat import import_dgl
    from fraudgraph.ml.model import EdgeAwareRGCN

    dgl = import_dgl()
    seed_everything(cfg.seed)
    g = tensors.graph
    nodes, edges = scaler.scaled(tensors)
    model = EdgeAwareRGCN(
        {n: x.shape[1] for n, x in nodes.items()},
        next(iter(edges.values())).shape[1],
        list(g.canonical_etypes),
        cfg.hidden_dim,
        cfg.edge_hidden_dim,
        cfg.layers,
        cfg.dropout,
        use_edge_features,
    )
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    y_t = torch.as_tensor(np.clip(y, 0, 1), dtype=torch.float32)
    w_node = np.zeros(len(y), dtype=np.float32)
    w_node[split.train] = 1.0 if split.train_weight is None else split.train_weight
    w_t = torch.as_tensor(w_node)
    pos = w_node[split.train][y[split.train] == 1].sum()
    neg = w_node[split.train][y[split.train] == 0].sum()
    pos_weight = float(min(cfg.pos_weight_max, neg / max(pos, 1e-9)))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight), reduction="none")

    def weighted_loss(logits, idx):
        w = w_t[idx]
        return (loss_fn(logits, y_t[idx]) * w).sum() / w.sum().clamp_min(1e-9)

    full = cfg.mode == "full" or (cfg.mode == "auto" and g.num_edges() <= cfg.full_graph_max_edges)
    train_idx = torch.as_tensor(split.train, dtype=torch.int64)
    if not full:
        sampler = dgl.dataloading.MultiLayerNeighborSampler(
            [{et: f for et in g.etypes} for f in (cfg.fanouts + cfg.fanouts[-1:] * cfg.layers)[: cfg.layers]]
        )
    best: dict[str, Any] = {"pr_auc": -1.0, "epoch": -1, "state": None}
    history = []
    for epoch in range(epochs or cfg.max_epochs):
        model.train()
        t = time.perf_counter()
        losses = []
        if full:
            opt.zero_grad()
            logits = model([g] * cfg.layers, nodes, [edges] * cfg.layers)
            loss = weighted_loss(logits[train_idx], train_idx)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        else:
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
        epoch_s = time.perf_counter() - t
        if epochs:
            history.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 5), "epoch_s": round(epoch_s, 3)})
            best = {"pr_auc": None, "epoch": epoch, "state": None}
            continue
        val_scores = gnn_scores(model, tensors, scaler, split.val, cfg, nodes=nodes, edges=edges)
        val = ranking_metrics(y[split.val], val_scores, sample_weight=split.val_weight)
        history.append(
            {
                "epoch": epoch,
                "loss": round(float(np.mean(losses)), 5),
                "val_pr_auc": val["pr_auc"],
                "epoch_s": round(epoch_s, 3),
            }
        )
        score = val["pr_auc"] if val["pr_auc"] is not None else -float(np.mean(losses))
        if score > best["pr_auc"]:
            best = {"pr_auc": score, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        elif epoch - best["epoch"] >= cfg.patience and epoch + 1 >= cfg.min_epochs:
            break
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    return model, {
        "epochs": len(history),
        "best_epoch": best["epoch"],
        "best_val_pr_auc": best["pr_auc"],
        "mode": "full" if full else "minibatch",
        "pos_weight": round(pos_weight, 3),
        "seconds_per_epoch": round(float(np.mean([h["epoch_s"] for h in history])), 3),
        "history": history,
    }


def tabular_features(tensors: IdentityGraphTensors, idx: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The GBDT's view of customer nodes ``idx``: the customer's own features plus, per identifier kind,
    the number of identifiers and the min/mean/max of every identifier and edge feature.

    Returns ``(matrix (len(idx), n_features), feature names)``: the same point-in-time inputs the
    RGCN reads, flattened one hop.
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
    return np.concatenate(cols, 1), names


def fit_gbdt(features: np.ndarray, y: np.ndarray, weight: np.ndarray, cfg: TrainingSettings):
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


# ------------------------------------------------------------------ per-customer judging
def customer_units(frame: pd.DataFrame, scores: np.ndarray, outcome: np.ndarray) -> pd.DataFrame:
    """One row per (customer, outcome): the highest score over its decision points, the population
    weight and the bootstrap cluster. ``outcome`` per row (label or truth); rows with -1 are left out."""
    f = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy(),
            "outcome": outcome,
            "score": scores,
            "population_weight": frame["population_weight"].to_numpy(),
            "cluster": frame["cluster"].to_numpy() if "cluster" in frame else frame["customer_id"].to_numpy(),
            "fraud_type": frame["fraud_type"].to_numpy() if "fraud_type" in frame else "none",
        }
    )
    f = f.loc[f["outcome"] >= 0]
    return f.groupby(["customer_id", "outcome"], as_index=False).agg(
        score=("score", "max"),
        population_weight=("population_weight", "first"),
        cluster=("cluster", "first"),
        fraud_type=("fraud_type", "first"),
    )


def judge(
    units: pd.DataFrame, threshold: float | None, *, rounds: int = 0, seed: int = 0, by_type: bool = False
) -> dict[str, Any]:
    """Ranking metrics of customer units, their bootstrap interval, figures at the threshold, per fraud type."""
    y, s, w = units["outcome"].to_numpy(), units["score"].to_numpy(), units["population_weight"].to_numpy()
    out = ranking_metrics(y, s, sample_weight=w)
    out["customers"] = round(float(w.sum()))
    if rounds:
        out["pr_auc_ci90"] = bootstrap_interval(y, s, units["cluster"], rounds=rounds, seed=seed, sample_weight=w)
    if threshold is not None:
        flagged = s >= threshold
        tp, fp = float(w[flagged & (y == 1)].sum()), float(w[flagged & (y == 0)].sum())
        out["at_threshold"] = {
            "flagged": round(tp + fp),
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(float(flagged[y == 1].mean()), 4) if (y == 1).any() else None,
            "false_flags_per_10k": round(1e4 * fp / float(w[y == 0].sum()), 2) if (y == 0).any() else None,
        }
    if by_type:
        legit = units["outcome"] == 0
        out["by_fraud_type"] = {}
        for ftype in FRAUD_TYPES:
            part = units.loc[legit | ((units["outcome"] == 1) & (units["fraud_type"] == ftype))]
            m = ranking_metrics(part["outcome"], part["score"], sample_weight=part["population_weight"])
            m["fraudsters"] = int((part["outcome"] == 1).sum())
            if threshold is not None and m["fraudsters"]:
                m["recall_at_threshold"] = round(
                    float((part.loc[part["outcome"] == 1, "score"] >= threshold).mean()), 4
                )
            out["by_fraud_type"][ftype] = m
    return out


def run_training(
    settings: Settings,
    snapshot_dir: str | Path,
    labels_dir: str | Path,
    out_dir: str | Path,
    truth_path: str | Path | None = None,
) -> dict[str, Any]:
    import torch

    cfg = settings.training
    torch.set_num_threads(cfg.threads)
    out = Path(out_dir)
    started = time.monotonic()
    labels, as_of_ms = read_labels(labels_dir)
    history = LinkHistory.read(snapshot_dir)
    customers = pd.read_parquet(Path(snapshot_dir) / "customers.parquet")
    link_events = pd.read_parquet(Path(snapshot_dir) / "link_events.parquet")
    points = decision_points(link_events, settings.consumer.score_on)
    examples = build_examples(points, customers, history.links_as_of, labels, as_of_ms, cfg, settings.labels)
    refuse_when_too_few(examples, cfg)
    frame = examples.frame
    if truth_path:
        frame = pd.concat([frame, truth_at_points(frame, pd.read_parquet(truth_path))], axis=1)
    cap = settings.graph.neighbourhood_fanout_cap
    t = time.perf_counter()
    inputs = history.scoring_inputs(frame["customer_id"], frame["ts"], cap)
    has = inputs.target_ids >= 0
    frame, target_ids = frame.loc[has].reset_index(drop=True), inputs.target_ids[has]
    tensors = build_graph_tensors(inputs, fanout_cap=cap)
    target = tensors.index_of(target_ids)
    build_s = time.perf_counter() - t
    log.info("decision-time examples: %d (%d subgraph links) built in %.1f s", len(frame), len(inputs.links), build_s)
    scaler = FeatureScaler().fit(tensors)
    y = frame["y"].to_numpy()
    masks = {s: (frame["split"] == s).to_numpy() for s in SPLITS}
    tr, va = masks["train"] & (y >= 0), masks["val"] & (y >= 0)
    y_nodes = np.full(len(tensors.customer_ids), -1)
    y_nodes[target] = y
    split = Split(
        target[tr],
        target[va],
        frame.loc[tr, "weight"].to_numpy(np.float32),
        (frame.loc[va, "weight"] * frame.loc[va, "population_weight"]).to_numpy(),
    )

    scores: dict[str, np.ndarray] = {}
    fits: dict[str, dict] = {}
    models = {}
    for name, use_edges in (("rgcn_edge", True), ("rgcn", False)):
        log.info("training %s", name)
        models[name], fits[name] = fit_gnn(tensors, scaler, y_nodes, split, cfg, use_edges)
        scores[name] = gnn_scores(models[name], tensors, scaler, target, cfg)
    log.info("training gbdt")
    t = time.perf_counter()
    tab, _ = tabular_features(tensors, target)
    gbdt = fit_gbdt(tab[tr], y[tr], frame.loc[tr, "weight"].to_numpy(), cfg)
    scores["gbdt"] = gbdt.predict_proba(tab)[:, 1]
    fits["gbdt"] = {"seconds": round(time.perf_counter() - t, 2)}
    scores["rules"] = DayOneRules(settings.rules.day_one).score(inputs)[has]

    val_units = {m: customer_units(frame.loc[masks["val"]], scores[m][masks["val"]], y[masks["val"]]) for m in MODELS}
    threshold = choose_threshold(val_units["rgcn_edge"], cfg)
    metrics: dict[str, Any] = {
        "models": {},
        "threshold": round(threshold, 6),
        "main_model": "rgcn_edge",
        "threshold_policy": threshold_policy(cfg),
        "target_precision": cfg.target_precision,
        "unit": "customer",
    }
    test = frame.loc[masks["test"]]
    curves: dict[str, dict] = {}
    for name in MODELS:
        th = threshold if name == "rgcn_edge" else None
        lab_units = customer_units(test, scores[name][masks["test"]], y[masks["test"]])
        m = {"labels": judge(lab_units, th), "validation": judge(val_units[name], None)}
        curves[name] = {"labels": lab_units}
        if truth_path:
            truth_units = customer_units(test, scores[name][masks["test"]], test["is_fraud"].to_numpy())
            m["truth"] = judge(truth_units, th, rounds=cfg.bootstrap_rounds, seed=cfg.seed, by_type=True)
            curves[name]["truth"] = truth_units
        metrics["models"][name] = m
    metrics["split"] = {
        "as_of_ms": as_of_ms,
        "t1_ms": examples.t1_ms,
        "t2_ms": examples.t2_ms,
        "by_decision_time": True,
        "labels": examples.label_counts,
        "examples": {s: int(masks[s].sum()) for s in SPLITS},
    }
    metrics["training"] = {k: {kk: vv for kk, vv in v.items() if kk != "history"} for k, v in fits.items()}
    metrics["graph"] = {
        "examples": len(frame),
        "subgraph_links": int(len(inputs.links)),
        "message_edges": int(tensors.graph.num_edges()),
        "fanout_cap": cap,
        "build_s": round(build_s, 2),
    }
    deployed, deployed_threshold, deployed_units = models["rgcn_edge"], threshold, val_units["rgcn_edge"]
    if cfg.refit_on_all_labels:
        deployed, deployed_threshold, metrics["deployed"], deployed_units = refit_for_deployment(
            tensors, scaler, frame, target, cfg, fits["rgcn_edge"]["best_epoch"] + 1
        )
        metrics["threshold"] = round(deployed_threshold, 6)
    metrics["validated_threshold"] = round(threshold, 6)
    metrics["wall_s"] = round(time.monotonic() - started, 2)

    ModelArtifact.create(deployed, scaler, settings, deployed_threshold, metrics, as_of_ms, fanout_cap=cap).save(out)
    # what the deployed threshold was chosen on: another budget can be read off without retraining
    deployed_units[["customer_id", "outcome", "score", "population_weight"]].to_parquet(
        out / "validation_scores.parquet", index=False
    )
    (out / "baselines").mkdir(exist_ok=True)
    torch.save(models["rgcn"].state_dict(), out / "baselines" / "rgcn.pt")
    (out / "history.json").write_text(json.dumps({k: v.get("history") for k, v in fits.items()}, indent=1))
    plot_pr_curves(curves, out / "pr_curves.png")
    (out / "summary.md").write_text(render_summary(metrics))
    return metrics


def refit_for_deployment(
    tensors: IdentityGraphTensors,
    scaler: FeatureScaler,
    frame: pd.DataFrame,
    target: np.ndarray,
    cfg: TrainingSettings,
    epochs: int,
) -> tuple[Any, float, dict[str, Any], pd.DataFrame]:
    """The model the consumer deploys: ``rgcn_edge`` refit on every decision point up to as-of, labelled
    with what is known at as-of (``y_deploy`` of :func:`training.examples.deployment_labels`), for the
    ``epochs`` early stopping chose on validation, leaving out every validation customer.

    Its threshold is chosen exactly as the validated model's (:func:`choose_threshold`): on the
    validation customers (labels known at the validation split's end), which the refit never trained on.
    Returns ``(model, threshold, figures, units)``, ``units`` the validation customers' scores.
    """
    y_rows = frame["y_deploy"].to_numpy()
    y_nodes = np.full(len(tensors.customer_ids), -1)
    y_nodes[target] = y_rows
    labelled = y_rows >= 0
    holdout = frame["deploy_holdout"].to_numpy()
    fraud_customers = int(frame.loc[y_rows == 1, "customer_id"].nunique())
    log.info(
        "refitting rgcn_edge for deployment on %d decision points (%d fraud customers), %d epochs",
        int(labelled.sum()),
        fraud_customers,
        epochs,
    )
    model, fit = fit_gnn(
        tensors,
        scaler,
        y_nodes,
        Split(target[labelled], target[holdout], frame.loc[labelled, "deploy_weight"].to_numpy(np.float32)),
        cfg,
        True,
        epochs=epochs,
    )
    held = frame.loc[holdout]
    units = customer_units(held, gnn_scores(model, tensors, scaler, target[holdout], cfg), held["y"].to_numpy())
    threshold = choose_threshold(units, cfg)
    figures = {
        "epochs": epochs,
        "seconds_per_epoch": fit["seconds_per_epoch"],
        "fraud_customers": fraud_customers,
        "decision_points": int(labelled.sum()),
        "validation_customers": int(len(units)),
        "validation": judge(units, threshold),
        "threshold": round(threshold, 6),
    }
    return model, threshold, figures, units


def choose_threshold(units: pd.DataFrame, cfg: TrainingSettings) -> float:
    """The decision threshold, chosen on validation customer units (one row per customer: ``outcome``
    the label known at the validation split's end, ``score`` its highest score, ``population_weight``)
    by ``training.threshold_policy``:

    - ``false_flag_budget``: the lowest threshold that flags at most ``training.false_flags_per_10k``
      of every 10,000 customers labelled legitimate. Why it is the default: about half the fraud in a
      world is never blocked and so is labelled legitimate; a precision target measured against those
      labels undercounts the fraud it flags and pushes the threshold towards flagging nothing (0.9996
      on world seed 42), while a budget of false flags is what a fraud team can staff and stays
      meaningful when labels miss fraud (a missed fraudster flagged only spends budget).
    - ``target_precision``: the lowest threshold whose precision against the labels reaches
      ``training.target_precision`` (best F1 when none does).
    """
    y, s, w = units["outcome"], units["score"], units["population_weight"]
    if cfg.threshold_policy == "false_flag_budget":
        return threshold_for_false_flag_budget(y, s, cfg.false_flags_per_10k, sample_weight=w)
    return threshold_for_precision(y, s, cfg.target_precision, sample_weight=w)


def threshold_policy(cfg: TrainingSettings) -> dict[str, Any]:
    """The policy and its one parameter, as the metrics record it."""
    if cfg.threshold_policy == "false_flag_budget":
        return {"policy": "false_flag_budget", "false_flags_per_10k": cfg.false_flags_per_10k}
    return {"policy": "target_precision", "target_precision": cfg.target_precision}


def policy_words(policy: dict[str, Any] | None, target_precision: float | None = None) -> str:
    """``chosen ... `` words for the reports; metrics written before the policy existed had a precision target."""
    if policy and policy.get("policy") == "false_flag_budget":
        return f"for at most {policy['false_flags_per_10k']:g} false flags per 10,000 customers labelled legitimate"
    target = policy.get("target_precision") if policy else target_precision
    return f"for precision {target:.0%}" if target is not None else "for the configured policy"


def refuse_when_too_few(examples: DecisionExamples, cfg: TrainingSettings) -> None:
    """Raise :class:`TrainingRefused` when training or validation has fewer than ``min_positives`` fraudsters."""
    counts = examples.label_counts
    short = [s for s in ("train", "val") if counts[s]["fraud_customers"] < cfg.min_positives]
    if short:
        per_split = "; ".join(
            f"{s}: {c['fraud_customers']} fraud / {c['legit_customers']} legitimate customers"
            for s, c in counts.items()
        )
        raise TrainingRefused(
            f"too few fraud labels to train ({', '.join(short)} below training.min_positives="
            f"{cfg.min_positives}): {per_split}. Longer block history, a shorter labels.maturity_days, or "
            f"other training.split.val_days / test_days (now {cfg.split.val_days} / {cfg.split.test_days}) "
            "would change them"
        )


def plot_pr_curves(curves: dict[str, dict[str, pd.DataFrame]], path: Path) -> None:
    """One panel per reference (labels, truth), one curve per model, over test customers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    refs = [r for r in ("labels", "truth") if any(r in c for c in curves.values())]
    fig, axes = plt.subplots(1, len(refs), figsize=(6 * len(refs), 4.5), squeeze=False)
    for ax, ref in zip(axes[0], refs):
        for name, c in curves.items():
            units = c.get(ref)
            if units is not None and units["outcome"].nunique() == 2:
                p, r, _ = precision_recall_curve(
                    units["outcome"], units["score"], sample_weight=units["population_weight"]
                )
                ax.plot(r, p, label=name)
        ax.axhline(0.85, color="grey", linestyle=":", linewidth=1)
        ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set(
            title=f"test customers vs {'cleaned labels' if ref == 'labels' else 'ground truth'}",
            xlabel="recall",
            ylabel="precision",
            xlim=(0, 1),
            ylim=(0, 1.02),
        )
        ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def metrics_table(models: dict[str, Any]) -> list[str]:
    """Markdown rows: every model against cleaned labels and (when present) ground truth."""
    lines = [
        "| model | vs | PR-AUC | 90 % interval | ROC-AUC | recall @ 85 % precision | precision @ 50 % recall |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in models.items():
        for ref in ("labels", "truth"):
            if ref in m:
                s = m[ref]
                ci = s.get("pr_auc_ci90")
                lines.append(
                    f"| {name} | {ref} | {_f(s['pr_auc'])} | "
                    f"{f'{ci[0]:.3f}-{ci[1]:.3f}' if ci else '-'} | {_f(s['roc_auc'])} | "
                    f"{_f(s['recall_at_precision_85'])} | {_f(s['precision_at_recall_50'])} |"
                )
    return lines


def fraud_type_table(models: dict[str, Any]) -> list[str]:
    """Markdown rows: PR-AUC against ground truth per fraud type (each type against legitimate customers)."""
    if not any("truth" in m for m in models.values()):
        return []
    lines = ["| model | " + " | ".join(FRAUD_TYPES) + " |", "| --- |" + " ---: |" * len(FRAUD_TYPES)]
    for name, m in models.items():
        bt = m.get("truth", {}).get("by_fraud_type", {})
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{_f(bt.get(t, {}).get('pr_auc'))} ({bt.get(t, {}).get('fraudsters', 0)})" for t in FRAUD_TYPES
            )
            + " |"
        )
    return lines


def render_summary(metrics: dict[str, Any]) -> str:
    sp = metrics["split"]
    lines = [
        "# Model summary",
        "",
        f"Main model `{metrics['main_model']}`; threshold "
        f"{metrics.get('validated_threshold', metrics['threshold']):.4f} "
        "chosen on validation customers "
        + policy_words(metrics.get("threshold_policy"), metrics.get("target_precision"))
        + (
            f"; deployed: refit on every label known at as-of ({metrics['deployed']['fraud_customers']} fraud "
            f"customers), threshold {metrics['deployed']['threshold']:.4f}"
            if metrics.get("deployed")
            else ""
        )
        + ".",
        "",
        "Examples are decision points (the moments the consumer scores), split by decision time; each model "
        "is judged per customer on its highest score over the customer's test decision points. Examples: "
        + ", ".join(f"{s} {n:,}" for s, n in sp["examples"].items())
        + "; fraud customers labelled: "
        + ", ".join(f"{s} {c['fraud_customers']}" for s, c in sp["labels"].items())
        + ".",
        "",
        *metrics_table(metrics["models"]),
        "",
        "PR-AUC against ground truth per fraud type (fraudsters):",
        "",
        *fraud_type_table(metrics["models"]),
    ]
    lines += ["", "![precision-recall curves](pr_curves.png)"]
    return "\n".join(lines) + "\n"
