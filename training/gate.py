"""The promotion gate's figures: the candidate and the production model scored on the same decision-time
test split, the candidate's (rebuilt from the snapshot and labels it was trained on, with its training
settings).

Each model is judged as validated: the ``rgcn_edge`` fitted on its training split only (kept beside the
deployed refit as the ``rgcn_edge_validated`` baseline), at the threshold chosen for it on validation. The
deployed refit has trained on the test split's points, so its figures there would flatter the candidate.
A model folder without the validated model (written before it was kept) is judged with its deployed model,
and the figures say so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from fraudgraph.config import LabelSettings, Settings, TrainingSettings
from fraudgraph.ml.artifact import ModelArtifact, gnn_scores
from fraudgraph.ml.baselines import BaselineModels
from training.decision_graph import DecisionTimeGraphs
from training.judging import customer_units, judge

log = logging.getLogger("fraudgraph.training")


def split_settings(settings: Settings, candidate: ModelArtifact) -> tuple[Settings, str]:
    """``settings`` with the candidate's own ``training`` and ``labels`` sections (its split, sampling and
    label rules), and which were used: ``"candidate"``, or ``"current"`` when the candidate's no longer
    validate (written by an older fraudgraph)."""
    try:
        return settings.model_copy(
            update={
                "training": TrainingSettings.model_validate(candidate.settings["training"]),
                "labels": LabelSettings.model_validate(candidate.settings["labels"]),
            }
        ), "candidate"
    except (KeyError, ValidationError):
        log.warning("gate: the candidate's training settings no longer validate; the current ones define the split")
        return settings, "current"


def gate_figures(
    settings: Settings,
    model_dirs: Mapping[str, Path],
    snapshot_dir: str | Path,
    labels_dir: str | Path,
    graphs: DecisionTimeGraphs | None = None,
) -> dict[str, dict[str, Any]]:
    """``{name: {pr_auc, precision, recall, threshold, judged, customers}}`` for each model folder, every
    one scored on the decision-time test split of ``snapshot_dir`` and ``labels_dir`` as the first model
    (the candidate) defines it (:func:`split_settings`). PR-AUC is over the test customers' highest scores;
    precision and recall at each model's own operating point. Labels only: ground truth is never read.
    ``graphs``: the job's decision-time graphs (the retraining job's training built the candidate's)."""
    artifacts = {name: ModelArtifact.load(d) for name, d in model_dirs.items()}
    candidate = next(iter(artifacts.values()))
    split_cfg, source = split_settings(settings, candidate)
    graphs = graphs or DecisionTimeGraphs()  # the graph as of every decision point, once per fan-out cap
    out: dict[str, dict[str, Any]] = {}
    for name, artifact in artifacts.items():
        cap = artifact.fanout_cap or settings.graph.neighbourhood_fanout_cap
        built = graphs.get(split_cfg, snapshot_dir, labels_dir, cap)
        kept, tensors, target = built.frame, built.tensors, built.target
        test = (kept["split"] == "test").to_numpy()
        y = kept["y"].to_numpy()
        model, threshold, judged = _validated(artifact, model_dirs[name])
        scores = gnn_scores(model, tensors, artifact.scaler, target[test], split_cfg.training)
        units = customer_units(kept.loc[test], scores, y[test])
        figures = judge(units, threshold)
        at = figures.get("at_threshold", {})
        out[name] = {
            "pr_auc": _rounded(figures.get("pr_auc")),
            "precision": at.get("precision"),
            "recall": at.get("recall"),
            "threshold": round(threshold, 6),
            "judged": judged,
            "customers": int(len(units)),
            "fraud_customers": int((units["outcome"] == 1).sum()),
            "split_settings": source,
        }
    return out


def _validated(artifact: ModelArtifact, model_dir: Path) -> tuple[Any, float, str]:
    """``(model, threshold, which)``: the validated ``rgcn_edge`` at its validated threshold where the
    folder keeps it, else the deployed model at the deployed threshold."""
    gnns = BaselineModels.load(model_dir).gnns
    validated = gnns.get("rgcn_edge_validated")
    threshold = artifact.metrics.get("validated_threshold")
    if validated is not None and threshold is not None:
        return validated, float(threshold), "validated"
    return artifact.model, artifact.threshold, "deployed"


def _rounded(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else round(float(value), 4)
