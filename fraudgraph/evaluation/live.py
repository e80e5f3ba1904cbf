"""Decisions judged against ground truth: batch decisions of every customer, and the decisions the
live consumer emitted while a stream was replayed (which fraud it caught, and how early).

Pure functions over files (decisions, events, ground truth); the replay itself composes the consumer
and lives in :mod:`fraudgraph.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def live_outcomes(events_path: Path, decisions_path: Path, truth_path: Path) -> dict[str, Any]:
    """Decisions per day, and for fraud that starts in the live stream (new ring accounts, takeovers):
    how many were blocked or sent to review, and after how many of their events (1 = the first)."""
    import pandas as pd

    events = pd.read_json(events_path, lines=True, convert_dates=False)[["event_id", "customer_id", "ts"]]
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    decisions = pd.read_json(decisions_path, lines=True, convert_dates=False) if decisions_path.stat().st_size \
        else pd.DataFrame(columns=["event_id", "customer_id", "decision"])
    by_day = pd.crosstab(events.set_index("event_id").loc[decisions["event_id"], "ts"].dt.strftime("%Y-%m-%d")
                         .to_numpy(), decisions["decision"].to_numpy()) if len(decisions) else pd.DataFrame()
    per_day = {day: {d: int(row.get(d, 0)) for d in ("block", "review", "allow")} for day, row in by_day.iterrows()}

    truth = pd.read_parquet(truth_path)
    start = events["ts"].min()
    live_fraud = truth.loc[truth["is_fraud_true"] & (truth["fraud_start_ts"] >= start)
                           & truth["fraud_type"].isin(["ring", "account_takeover"])]
    flagged = decisions.loc[decisions["decision"].isin(["block", "review"])]
    out: dict[str, Any] = {"decisions_per_day": per_day}
    for kind, label in (("ring", "new_ring_accounts"), ("account_takeover", "takeovers")):
        group = live_fraud.loc[live_fraud["fraud_type"] == kind]
        caught, events_to_catch = {"block": 0, "review": 0}, []
        for cid, fraud_start in zip(group["customer_id"], group["fraud_start_ts"]):
            mine = events.loc[(events["customer_id"] == cid) & (events["ts"] >= fraud_start)]
            if mine.empty:
                continue
            hit = flagged.loc[flagged["event_id"].isin(set(mine["event_id"]))]
            if hit.empty:
                continue
            first = mine.reset_index(drop=True)
            position = first.index[first["event_id"].isin(set(hit["event_id"]))][0] + 1
            caught[hit.iloc[0]["decision"]] += 1
            events_to_catch.append(int(position))
        active = int(sum(((events["customer_id"] == cid) & (events["ts"] >= fs)).any()
                         for cid, fs in zip(group["customer_id"], group["fraud_start_ts"])))
        out[label] = {"in_stream": active, "blocked": caught["block"], "reviewed": caught["review"],
                      "missed": active - caught["block"] - caught["review"],
                      "events_to_decision": _quantiles(events_to_catch)}
    return out


def _quantiles(values: list[int]) -> dict[str, float | None]:
    import numpy as np

    if not values:
        return {"p50": None, "p90": None, "max": None, "first_event": 0}
    arr = np.asarray(values)
    return {"p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)), "max": int(arr.max()),
            "first_event": int((arr == 1).sum())}


def decision_outcomes(decisions_path: Path, truth_path: Path, as_of_ms: int) -> dict[str, Any]:
    """Decisions against ground truth: true fraudsters blocked / sent to review / allowed."""
    import pandas as pd

    from fraudgraph.labels.stage import truth_as_of

    decisions = pd.read_parquet(decisions_path)
    truth = truth_as_of(pd.read_parquet(truth_path), as_of_ms)
    is_fraud = decisions["customer_id"].map(truth).fillna(False).astype(bool)
    out = {"true_fraudsters": int(is_fraud.sum())}
    for d in ("block", "review", "allow"):
        mask = decisions["decision"] == d
        out[d] = {"customers": int(mask.sum()), "true_fraud": int((mask & is_fraud).sum())}
    flagged = decisions["decision"].isin(["block", "review"])
    out["precision_of_flags"] = round(float(is_fraud[flagged].mean()), 4) if flagged.any() else None
    out["recall_of_flags"] = round(float(flagged[is_fraud].mean()), 4) if is_fraud.any() else None
    return out
