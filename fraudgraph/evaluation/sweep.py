"""What a threshold at each score would give on a replay's decisions: the sweep over thresholds, the best recall
at a precision, recall at a false-flag budget and the operating points the report reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

OPERATING_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def customer_best_scores(scores: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Per customer with a scored decision: its highest score at a fraud-phase event (``fraud_best``,
    NaN when none) and at any other event (``other_best``). ``scores``: ``event_id``, ``customer_id``,
    ``score`` per decided event (a model's or the consumer's); ``events`` carry ``fraud_phase``."""
    d = scores[["event_id", "customer_id", "score"]].dropna(subset=["score"])
    d = d.merge(events[["event_id", "fraud_phase"]], on="event_id", how="left")
    phase = d["fraud_phase"].fillna(False).astype(bool).to_numpy()
    fraud_best = d.loc[phase].groupby("customer_id")["score"].max()
    other_best = d.loc[~phase].groupby("customer_id")["score"].max()
    return fraud_best.to_frame("fraud_best").join(other_best.rename("other_best"), how="outer")


def score_sweep(best: pd.DataFrame, active_fraudsters: int, legit_active: int) -> pd.DataFrame:
    """What a threshold at each distinct score would give (``best`` from :func:`customer_best_scores`):
    one row per threshold, highest first, with ``flagged``, ``caught`` (fraudsters flagged at a
    fraud-phase event), ``false_flags`` (every other flagged customer), ``precision``, ``recall`` and
    ``false_flags_per_10k_legit``."""
    import numpy as np
    import pandas as pd

    caught_at = best["fraud_best"].to_numpy(dtype=float)
    flagged_at = np.fmax(caught_at, best["other_best"].to_numpy(dtype=float))
    every = np.concatenate([caught_at, flagged_at])
    thresholds = np.unique(every[~np.isnan(every)])[::-1]
    caught_sorted = np.sort(caught_at[~np.isnan(caught_at)])
    flagged_sorted = np.sort(flagged_at[~np.isnan(flagged_at)])
    caught = len(caught_sorted) - np.searchsorted(caught_sorted, thresholds, "left")
    flagged = len(flagged_sorted) - np.searchsorted(flagged_sorted, thresholds, "left")
    false = flagged - caught
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "flagged": flagged,
            "caught": caught,
            "false_flags": false,
            "precision": caught / np.maximum(flagged, 1),
            "recall": caught / max(active_fraudsters, 1),
            "false_flags_per_10k_legit": 1e4 * false / max(legit_active, 1),
        }
    )


def best_recall_at_precision(sweep: pd.DataFrame, target: float) -> dict[str, Any]:
    """The best recall any threshold reaches at precision ``target`` or more, and that threshold."""
    ok = sweep.loc[sweep["precision"] >= target]
    if not len(ok):
        return {"precision_target": target, "recall": 0.0, "threshold": None}
    row = ok.loc[ok["recall"].idxmax()]
    return {
        "precision_target": target,
        "recall": round(float(row["recall"]), 4),
        "threshold": round(float(row["threshold"]), 6),
    }


def recall_at_false_flag_budget(sweep: pd.DataFrame, per_10k: float) -> dict[str, Any]:
    """Recall and precision at the lowest threshold whose false flags per 10,000 legitimate customers stay
    within ``per_10k`` (how models are compared at one budget)."""
    ok = sweep.loc[sweep["false_flags_per_10k_legit"] <= per_10k + 1e-9]
    if not len(ok):
        return {"false_flags_per_10k": per_10k, "recall": 0.0, "precision": None, "threshold": None}
    row = ok.iloc[-1]
    return {
        "false_flags_per_10k": per_10k,
        "recall": round(float(row["recall"]), 4),
        "precision": round(float(row["precision"]), 4) if row["flagged"] else None,
        "threshold": round(float(row["threshold"]), 6),
    }


def operating_points(sweep: pd.DataFrame | None, active: int, legit_active: int) -> list[dict[str, Any]]:
    """What the same replay's scores would give at other thresholds (``sweep`` of :func:`score_sweep`;
    None when the decisions carry no score): precision, recall and false flags per 10,000 legitimate
    customers at each of ``OPERATING_THRESHOLDS``. A reading of the ranking for whoever sets
    ``rules.threshold``, never used to set it."""
    if sweep is None:
        return []
    out = []
    for t in OPERATING_THRESHOLDS:
        at = sweep.loc[sweep["threshold"] >= t]
        flagged, caught = (int(at.iloc[-1]["flagged"]), int(at.iloc[-1]["caught"])) if len(at) else (0, 0)
        out.append(
            {
                "threshold": t,
                "flagged": flagged,
                "caught": caught,
                "precision": round(caught / flagged, 4) if flagged else None,
                "recall": round(caught / active, 4) if active else None,
                "false_flags_per_10k_legit": round(1e4 * (flagged - caught) / legit_active, 2)
                if legit_active
                else None,
            }
        )
    return out
