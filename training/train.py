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
   (HistGradientBoosting on the same point-in-time customer features, per-kind min/mean/max of every
   identifier and edge feature, and two-hop aggregates of the customers sharing an identifier:
   :mod:`fraudgraph.ml.baselines`); score ``guilt_by_association`` (propagation from standing blocks,
   nothing fitted) and the day-one ``rules``. The baselines are saved in ``baselines/`` so that the live
   replay judges each of them too. Weighted loss: every
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

This module wires the job; its parts live beside it: :mod:`training.examples` (decision points),
:mod:`training.fitting` (the models), :mod:`training.judging` (per-customer figures and the
threshold) and :mod:`training.report` (``summary.md`` and the PR curves).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudgraph.config import Settings, TrainingSettings
from fraudgraph.lifecycle.drift import REFERENCE_FILE, DriftReference
from fraudgraph.ml.artifact import ModelArtifact, gnn_scores
from fraudgraph.ml.baselines import BaselineModels, guilt_by_association, tabular_features
from fraudgraph.ml.features import CUSTOMER_FEATURES, IdentityGraphTensors
from fraudgraph.ml.scaling import FeatureScaler
from fraudgraph.schema import CUSTOMER
from fraudgraph.scoring.day_one import DayOneRules
from training.decision_graph import DecisionTimeGraph, DecisionTimeGraphs
from training.examples import SPLITS, DecisionExamples, truth_at_points
from training.fitting import Split, fit_gbdt, fit_gnn
from training.judging import choose_threshold, customer_units, judge, threshold_policy
from training.lineage import track_training
from training.refit import refit_for_deployment
from training.report import plot_pr_curves, render_summary

log = logging.getLogger("fraudgraph.training")
MODELS = ("rgcn_edge", "rgcn", "gbdt", "gbdt_own", "guilt_by_association", "rules")
FITTED_BASELINES = ("rgcn", "gbdt", "gbdt_own")  # left out without training.baselines


# Over 60 lines for a reason: it is the job itself, its steps in order (read, build examples and tensors, fit,
# judge, refit, write), each a call.
def run_training(
    settings: Settings,
    snapshot_dir: str | Path,
    labels_dir: str | Path,
    out_dir: str | Path,
    truth_path: str | Path | None = None,
    graphs: DecisionTimeGraphs | None = None,  # the job's decision-time graphs (the retraining job's gate reads it)
    init_state: dict[str, Any] | None = None,  # rgcn_edge's starting weights: a retrain's warm start
) -> dict[str, Any]:
    import torch

    cfg = settings.training
    torch.set_num_threads(cfg.threads)
    out = Path(out_dir)
    started = time.monotonic()
    cap = settings.graph.neighbourhood_fanout_cap
    built = (graphs or DecisionTimeGraphs()).get(settings, snapshot_dir, labels_dir, cap)
    examples, as_of_ms, frame, inputs, has, tensors, target = (
        built.examples, built.as_of_ms, built.frame, built.inputs, built.has, built.tensors, built.target)  # fmt: skip
    if truth_path:  # per decision point, for the report only
        frame = pd.concat([frame, truth_at_points(frame, pd.read_parquet(truth_path))], axis=1)
    scaler = FeatureScaler().fit(tensors)
    scaled = scaler.scaled(tensors)  # once: every fit and scoring below reads the same scaled features
    y = frame["y"].to_numpy()
    masks = {s: (frame["split"] == s).to_numpy() for s in SPLITS}
    tr = masks["train"] & (y >= 0)
    y_nodes, split = _node_split(frame, target, len(tensors.customer_ids), masks)
    models, fits, scores, table = fit_models(
        tensors, scaler, y_nodes, split, target, y, tr, frame.loc[tr, "weight"], cfg, init_state=init_state,
        scaled=scaled)  # fmt: skip
    log.info("scoring guilt_by_association and the day-one rules")
    scores["guilt_by_association"] = guilt_by_association(tensors, target)
    scores["rules"] = DayOneRules(settings.rules.day_one).score(inputs)[has]
    scores = {m: scores[m] for m in MODELS if m in scores}  # the report's order

    val_units = {m: customer_units(frame.loc[masks["val"]], scores[m][masks["val"]], y[masks["val"]]) for m in scores}
    threshold, estimates = choose_threshold(val_units["rgcn_edge"], cfg)
    metrics: dict[str, Any] = {
        "models": {},
        "threshold": round(threshold, 6),
        "main_model": "rgcn_edge",
        "threshold_policy": threshold_policy(cfg, estimates),
        "target_precision": cfg.target_precision,
        "unit": "customer",
    }
    metrics["models"], curves = judge_on_test(
        frame.loc[masks["test"]], scores, masks["test"], y, val_units, threshold, cfg, with_truth=bool(truth_path)
    )
    metrics["split"] = _split_record(examples, as_of_ms, masks)
    metrics["training"] = {k: {kk: vv for kk, vv in v.items() if kk != "history"} for k, v in fits.items()}
    metrics["graph"] = _graph_record(built, cap)
    deployed, deployed_threshold, deployed_units = models["rgcn_edge"], threshold, val_units["rgcn_edge"]
    if cfg.refit_on_all_labels:
        deployed, deployed_threshold, metrics["deployed"], deployed_units = refit_for_deployment(
            tensors, scaler, frame, target, cfg, fits["rgcn_edge"]["best_epoch"] + 1,
            init_state if fits["rgcn_edge"]["warm_started"] else None, scaled=scaled,
        )  # fmt: skip
        metrics["threshold"] = round(deployed_threshold, 6)
        metrics["threshold_policy"] = threshold_policy(cfg, metrics["deployed"]["threshold_estimates"])
    metrics["validated_threshold"] = round(threshold, 6)
    baselines = _baselines(models, frame, table, cfg)
    metrics["wall_s"] = round(time.monotonic() - started, 2)

    artifact = ModelArtifact.create(deployed, scaler, settings, deployed_threshold, metrics, as_of_ms, fanout_cap=cap)
    artifact.save(out)
    # what the deployed threshold was chosen on: another budget can be read off without retraining
    deployed_units[["customer_id", "outcome", "score", "population_weight"]].to_parquet(
        out / "validation_scores.parquet", index=False
    )
    baselines.save(out)
    # what live drift is measured against: the training examples' customer features, the validation scores
    features = tensors.node_features[CUSTOMER][target[tr]]
    DriftReference.fit(CUSTOMER_FEATURES, features, deployed_units["score"].to_numpy()).save(out / REFERENCE_FILE)
    _write_reports(out, fits, curves, metrics)
    # every run tracked (registry.tracking_uri): what a registered version and its gate go back to
    run_id = track_training(settings, out, metrics, snapshot_dir, labels_dir, as_of_ms, artifact.version)
    return {**metrics, "tracking": {"run_id": run_id}}


def _split_record(examples: DecisionExamples, as_of_ms: int, masks: dict[str, np.ndarray]) -> dict[str, Any]:
    """The decision-time split as the metrics record it."""
    return {
        "as_of_ms": as_of_ms,
        "t1_ms": examples.t1_ms,
        "t2_ms": examples.t2_ms,
        "by_decision_time": True,
        "labels": examples.label_counts,
        "examples": {s: int(masks[s].sum()) for s in SPLITS},
    }


def _graph_record(built: DecisionTimeGraph, cap: int) -> dict[str, Any]:
    """The decision-time graph as the metrics record it: examples, links, message edges, cap, build time."""
    return {
        "examples": len(built.frame),
        "subgraph_links": int(len(built.inputs.links)),
        "message_edges": int(built.tensors.graph.num_edges()),
        "fanout_cap": cap,
        "build_s": round(built.build_s, 2),
    }


def _node_split(
    frame: pd.DataFrame, target: np.ndarray, n_customers: int, masks: dict[str, np.ndarray]
) -> tuple[np.ndarray, Split]:
    """Each customer node's label (-1 unlabelled) and the labelled training and validation nodes with their
    weights (validation's scaled by the legitimate customers each one stands for)."""
    y = frame["y"].to_numpy()
    tr, va = masks["train"] & (y >= 0), masks["val"] & (y >= 0)
    y_nodes = np.full(n_customers, -1)
    y_nodes[target] = y
    val_weight = (frame.loc[va, "weight"] * frame.loc[va, "population_weight"]).to_numpy()
    return y_nodes, Split(target[tr], target[va], frame.loc[tr, "weight"].to_numpy(np.float32), val_weight)


def _baselines(
    models: dict[str, Any], frame: pd.DataFrame, table: np.ndarray | None, cfg: TrainingSettings
) -> BaselineModels:
    """The models judged beside the deployed one live: the validated ``rgcn_edge`` (what the promotion gate
    judges) and, with ``training.baselines``, ``rgcn`` and the GBDTs, and with
    ``training.refit_on_all_labels`` a GBDT refit on the labels the deployed model was refit on."""
    baselines = BaselineModels(gnns={"rgcn_edge_validated": models["rgcn_edge"]})
    if table is None:
        return baselines
    baselines.gnns["rgcn"] = models["rgcn"]
    baselines.gbdts.update(gbdt=models["gbdt"], gbdt_own=models["gbdt_own"])
    if cfg.refit_on_all_labels:
        log.info("refitting gbdt on the deployment labels (judged beside the deployed model live)")
        deploy = frame["y_deploy"].to_numpy() >= 0
        baselines.gbdts["gbdt_deployed"] = fit_gbdt(
            table[deploy], frame.loc[deploy, "y_deploy"].to_numpy(), frame.loc[deploy, "deploy_weight"].to_numpy(), cfg
        )
    return baselines


def fit_models(
    tensors: IdentityGraphTensors,
    scaler: FeatureScaler,
    y_nodes: np.ndarray,
    split: Split,
    target: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    train_weight: pd.Series,
    cfg: TrainingSettings,
    *,
    init_state: dict[str, Any] | None = None,
    scaled: tuple[dict[str, Any], dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, dict], dict[str, np.ndarray], np.ndarray | None]:
    """Fit ``rgcn_edge`` and, with ``training.baselines``, ``rgcn`` and the GBDTs on the training examples
    (``train``, a mask over the examples; ``target`` their customer nodes, ``y`` their labels); return the
    models, their fit records, every example's score by each and the GBDT's feature table of every example
    (None without the baselines). ``rgcn_edge`` starts from ``init_state`` when given (a warm start);
    ``scaled``: the tensors' scaled ``(nodes, edges)``, computed once by the caller."""
    scores: dict[str, np.ndarray] = {}
    fits: dict[str, dict] = {}
    models: dict[str, Any] = {}
    gnns = (("rgcn_edge", True), ("rgcn", False)) if cfg.baselines else (("rgcn_edge", True),)
    for name, use_edges in gnns:
        log.info("training %s", name)
        models[name], fits[name] = fit_gnn(tensors, scaler, y_nodes, split, cfg, use_edges, desc=f"training {name}",
                                           init_state=init_state if name == "rgcn_edge" else None,
                                           scaled=scaled)  # fmt: skip
        scores[name] = gnn_scores(models[name], tensors, scaler, target, cfg, nodes=scaled[0], edges=scaled[1])
    if not cfg.baselines:
        log.info("baselines left out (training.baselines: false)")
        return models, fits, scores, None
    log.info("training gbdt: one- and two-hop features of %d examples", len(target))
    t = time.perf_counter()
    tab, _ = tabular_features(tensors, target)
    log.info("training gbdt on %d features", tab.shape[1])
    models["gbdt"] = fit_gbdt(tab[train], y[train], train_weight.to_numpy(), cfg)
    log.info("training gbdt_own (the customer's own features only)")
    scores["gbdt"] = models["gbdt"].predict_proba(tab)[:, 1]
    own = tensors.node_features[CUSTOMER][target]  # the properties without the graph: the ablation
    models["gbdt_own"] = fit_gbdt(own[train], y[train], train_weight.to_numpy(), cfg)
    scores["gbdt_own"] = models["gbdt_own"].predict_proba(own)[:, 1]
    fits["gbdt"] = {"seconds": round(time.perf_counter() - t, 2)}
    return models, fits, scores, tab


def judge_on_test(
    test: pd.DataFrame,
    scores: dict[str, np.ndarray],
    in_test: np.ndarray,
    y: np.ndarray,
    val_units: dict[str, pd.DataFrame],
    threshold: float,
    cfg: TrainingSettings,
    *,
    with_truth: bool,
) -> tuple[dict[str, Any], dict[str, dict]]:
    """Every model per test customer against the cleaned labels and, ``with_truth`` (the frame then
    carries ground truth as ``is_fraud``), against it too with bootstrap intervals and one row per fraud
    type; the main model also at its validation threshold. Returns (metrics per model, PR-curve units)."""
    out: dict[str, Any] = {}
    curves: dict[str, dict] = {}
    for name in scores:
        log.info("judging %s on the test split%s", name, " (with bootstrap intervals)" if with_truth else "")
        th = threshold if name == "rgcn_edge" else None
        lab_units = customer_units(test, scores[name][in_test], y[in_test])
        m = {"labels": judge(lab_units, th), "validation": judge(val_units[name], None)}
        curves[name] = {"labels": lab_units}
        if with_truth:
            truth_units = customer_units(test, scores[name][in_test], test["is_fraud"].to_numpy())
            m["truth"] = judge(truth_units, th, rounds=cfg.bootstrap_rounds, seed=cfg.seed, by_type=True)
            curves[name]["truth"] = truth_units
        out[name] = m
    return out, curves


def _write_reports(out: Path, fits: dict[str, dict], curves: dict[str, dict], metrics: dict[str, Any]) -> None:
    """The training histories, the PR curves and ``summary.md``."""
    (out / "history.json").write_text(json.dumps({k: v.get("history") for k, v in fits.items()}, indent=1))
    plot_pr_curves(curves, out / "pr_curves.png")
    (out / "summary.md").write_text(render_summary(metrics))
