"""The deployed model: the chosen model refitted on every matured label up to the cut-off, as the average of
training.deployed_refits seeds, within the refit budget."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from fraudgraph.config import TrainingSettings
from fraudgraph.ml.artifact import gnn_scores
from fraudgraph.ml.features import IdentityGraphTensors
from fraudgraph.ml.scaling import FeatureScaler
from training.examples import refit_plan, refit_points
from training.fitting import Split, fit_gnn
from training.judging import choose_threshold, customer_units, judge

log = logging.getLogger("fraudgraph.training")


def refit_for_deployment(
    tensors: IdentityGraphTensors,
    scaler: FeatureScaler,
    frame: pd.DataFrame,
    target: np.ndarray,
    cfg: TrainingSettings,
    epochs: int,
    init_state: dict[str, Any] | None = None,
    *,
    scaled: tuple[dict[str, Any], dict[str, Any]],
) -> tuple[Any, float, dict[str, Any], pd.DataFrame]:
    """The model the consumer deploys: ``rgcn_edge`` refit on every decision point up to as-of, labelled with
    what is known at as-of (``y_deploy``), for the ``epochs`` early stopping chose, leaving out every
    validation customer; ``training.deployed_refits`` seeds averaged (:class:`fraudgraph.ml.model.AveragedRGCN`)
    within ``training.deployed_refit_budget`` (:func:`training.examples.refit_plan`). Its threshold is chosen
    by the validated model's policy, on the validation customers the refit never trained on, labelled as
    its own points are (``y_now``). With ``init_state`` (a warm start) every refit starts from those weights,
    as the validated fit did; ``scaled``: the tensors' scaled ``(nodes, edges)``. Returns
    ``(model, threshold, figures, units)``, ``units`` their scores.
    """
    from fraudgraph.ml.model import averaged

    y_rows = frame["y_deploy"].to_numpy()
    members, labelled, eligible, fraud_customers, legit_customers = _deploy_points(frame, cfg, epochs)
    y_nodes = np.full(len(tensors.customer_ids), -1)
    y_nodes[target[labelled]] = y_rows[labelled]
    holdout = frame["deploy_holdout"].to_numpy()
    split = Split(target[labelled], target[holdout], frame.loc[labelled, "deploy_weight"].to_numpy(np.float32))
    t = time.perf_counter()
    refits = [
        fit_gnn(tensors, scaler, y_nodes, split, cfg, True, epochs=epochs, seed=cfg.seed + i,
                desc=f"refitting rgcn_edge {i + 1}/{members} for deployment", init_state=init_state,
                scaled=scaled)
        for i in range(members)
    ]  # fmt: skip
    refit_s = time.perf_counter() - t
    model = averaged([m for m, _ in refits])
    held = frame.loc[holdout]
    scores = gnn_scores(model, tensors, scaler, target[holdout], cfg, nodes=scaled[0], edges=scaled[1])
    units = customer_units(held, scores, held["y_now"].to_numpy())
    threshold, estimates = choose_threshold(units, cfg)
    figures = {
        "epochs": epochs,
        "refits": len(refits),
        "warm_started": refits[0][1]["warm_started"],
        "refits_configured": cfg.deployed_refits,
        "budget_decision_point_epochs": cfg.deployed_refit_budget,
        "seconds_per_epoch": refits[0][1]["seconds_per_epoch"],
        "seconds": round(refit_s, 1),
        "fraud_customers": fraud_customers,
        "legit_customers": legit_customers,
        "decision_points": int(labelled.sum()),
        "decision_points_eligible": eligible,
        "validation_customers": int(len(units)),
        "validation": judge(units, threshold),
        "threshold": round(threshold, 6),
        "threshold_estimates": estimates,
    }
    return model, threshold, figures, units


def _deploy_points(frame: pd.DataFrame, cfg: TrainingSettings, epochs: int) -> tuple[int, np.ndarray, int, int, int]:
    """``(members, labelled, eligible, fraud_customers, legit_customers)`` of the deployed refit: how many
    refits the budget allows, the decision points they train on (a mask over ``frame``), how many were
    eligible, and the customers of each class among them; logged."""
    y_rows = frame["y_deploy"].to_numpy()
    eligible = int((y_rows >= 0).sum())
    members, max_points = refit_plan(cfg.deployed_refits, epochs, eligible, cfg.deployed_refit_budget)
    labelled = refit_points(frame, max_points, cfg.seed)
    fraud_customers = int(frame.loc[y_rows == 1, "customer_id"].nunique())
    legit_customers = int(frame.loc[labelled & (y_rows == 0), "customer_id"].nunique())
    log.info(
        "refitting rgcn_edge for deployment on %d of %d decision points (%d fraud, %d legitimate customers), "
        "%d epochs, %d seeds (budget %d decision-point epochs)",
        int(labelled.sum()),
        eligible,
        fraud_customers,
        legit_customers,
        epochs,
        members,
        cfg.deployed_refit_budget,
    )
    return members, labelled, eligible, fraud_customers, legit_customers
