"""Judging a model per customer (its highest score over its decision points in a split, as the
consumer flags a customer at any of them), and choosing the decision threshold on validation
customers by ``training.threshold_policy``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fraudgraph.config import TrainingSettings
from fraudgraph.evaluation.ranking import (
    bootstrap_interval,
    ranking_metrics,
    threshold_for_false_flag_budget,
    threshold_for_flag_rate,
    threshold_for_precision,
)

FRAUD_TYPES = ("ring", "synthetic_identity", "account_takeover")  # one row each in the truth tables


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


def choose_threshold(units: pd.DataFrame, cfg: TrainingSettings) -> tuple[float, dict[str, Any]]:
    """The decision threshold and the rate it was chosen for, on validation customer units (one row per
    customer: ``outcome`` the label known at the validation split's end, ``score`` its highest score,
    ``population_weight``) by ``training.threshold_policy``, from labels only:

    - ``labelled_fraud_rate`` (default): flag as many validation customers as the labels call fraud
      (population-weighted): the lowest threshold that flags at most that share. No number is chosen:
      the rate follows each world's labels, so a world with more (or less) fraud gets a lower (or
      higher) threshold, and flags beyond the labelled fraud land first on the customers the model
      ranks most like it, which the labels may only have missed.
    - ``false_flag_budget``: the lowest threshold that flags at most ``training.false_flags_per_10k`` of
      every 10,000 customers labelled legitimate: a budget a fraud team can staff. Labelled
      legitimate includes the fraud nobody blocked, so it over-counts false flags by as much as the
      labels miss (a 40,000-customer world: 20 estimated where the stream had 3.5).
    - ``target_precision``: the lowest threshold whose precision against the labels reaches
      ``training.target_precision``; strict wherever much fraud is never blocked (0.9996 on a default
      world), because the labels call that fraud legitimate.
    """
    y, s, w = units["outcome"], units["score"], units["population_weight"]
    if cfg.threshold_policy == "false_flag_budget":
        return threshold_for_false_flag_budget(y, s, cfg.false_flags_per_10k, sample_weight=w), {}
    if cfg.threshold_policy == "target_precision":
        return threshold_for_precision(y, s, cfg.target_precision, sample_weight=w), {}
    rate = float(w[y == 1].sum() / w.sum()) if len(w) else 0.0
    return threshold_for_flag_rate(s, rate, sample_weight=w), {"flag_rate": round(rate, 6)}


def threshold_policy(cfg: TrainingSettings, estimates: dict[str, Any] | None = None) -> dict[str, Any]:
    """The policy, its parameter and (``estimates``) what it read off the validation labels, as the
    metrics record it."""
    if cfg.threshold_policy == "false_flag_budget":
        return {"policy": "false_flag_budget", "false_flags_per_10k": cfg.false_flags_per_10k}
    if cfg.threshold_policy == "target_precision":
        return {"policy": "target_precision", "target_precision": cfg.target_precision}
    return {"policy": "labelled_fraud_rate", **(estimates or {})}


def policy_words(policy: dict[str, Any] | None, target_precision: float | None = None) -> str:
    """``chosen ... `` words for the reports; metrics written before the policy existed had a precision target."""
    if policy and policy.get("policy") == "false_flag_budget":
        return f"for at most {policy['false_flags_per_10k']:g} false flags per 10,000 customers labelled legitimate"
    target = policy.get("target_precision") if policy else target_precision
    if policy and policy.get("policy") == "labelled_fraud_rate":
        rate = policy.get("flag_rate")
        share = f" ({rate:.2%})" if rate is not None else ""
        return f"to flag as many validation customers as the labels call fraud{share}"
    return f"for precision {target:.0%}" if target is not None else "for the configured policy"
