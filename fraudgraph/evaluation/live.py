"""Decisions judged against ground truth: batch decisions of every customer, and the decisions the
live consumer emitted while a stream was replayed (which fraud it caught, and how early).

Pure functions over files (decisions, events, ground truth); the replay itself composes the consumer
and lives in :mod:`fraudgraph.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraudgraph.evaluation.sweep import (
    best_recall_at_precision,
    customer_best_scores,
    operating_points,
    recall_at_false_flag_budget,
    score_sweep,
)
from fraudgraph.schema import LABEL_EVENT_TYPES

if TYPE_CHECKING:
    import pandas as pd


def live_outcomes(events_path: Path, decisions_path: Path, truth_path: Path) -> dict[str, Any]:
    """The live stream's headline figures: the consumer's decisions judged against ground truth.

    A customer counts as a fraudster *active in the stream* when it has an identity event (any type
    but the label events block, unblock and appeal) at or after the start of its fraud (a takeover
    victim's events before the takeover are legitimate). A fraudster whose only events in the stream
    are label events did nothing the consumer could score: it is counted apart, as
    ``label_events_only_fraudsters``, and legitimate customers count as active the same way. It is
    *caught* when the consumer flagged it (block or review) at one of those events; a flag of any
    other customer, or of a victim before its takeover, is a *false flag*. Returns:

    - ``precision``: caught fraudsters / flagged customers; ``recall``: caught / active fraudsters;
    - ``recall_by_fraud_type`` (ring, synthetic_identity, account_takeover) and ``new_ring_accounts``
      (ring members who signed up in the stream) with their counts;
    - ``caught_before_first_payment``: share of active fraudsters flagged no later than their first
      payment in the stream (or at all, when they made none), overall and per type;
    - ``events_to_first_flag`` / ``hours_to_first_flag``: from a caught fraudster's first fraud
      event (1 = flagged at it) to the first flag, p50 / p90 / max;
    - ``false_flags_per_10k_legit``: false flags per 10,000 legitimate customers active in the stream;
    - ``decisions_per_day``, and ``new_ring_accounts`` / ``takeovers`` blocked / reviewed / missed.
    """

    events, decisions = _read_stream(events_path, decisions_path)
    ev = _with_fraud_phase(events, truth_path)
    identity = ~ev["event_type"].isin(LABEL_EVENT_TYPES)
    flags = decisions.loc[decisions["decision"].isin(["block", "review"]), ["event_id", "customer_id", "decision"]]
    flags = flags.merge(ev[["event_id", "ts", "fraud_phase"]], on="event_id", how="left")
    active, first_flag = _fraudsters(ev.loc[ev["fraud_phase"] & identity], flags)

    flagged_customers = set(flags["customer_id"])
    false_flagged = flagged_customers - set(first_flag.index)
    # customers with an identity event in the stream and no fraud identity event
    legit_active = set(ev.loc[identity, "customer_id"]) - set(active.index)
    # what any other threshold would give on the same decisions' scores
    scored = len(decisions) and "score" in decisions
    sweep = score_sweep(customer_best_scores(decisions, ev), len(active), len(legit_active)) if scored else None
    label_only = set(ev.loc[ev["fraud_phase"], "customer_id"]) - set(active.index)

    return {
        "flagged_customers": len(flagged_customers),
        "caught": int(active["caught"].sum()),
        "active_fraudsters": int(len(active)),
        "label_events_only_fraudsters": len(label_only),
        "precision": round(len(first_flag) / len(flagged_customers), 4) if flagged_customers else None,
        "recall": _share(active["caught"]),
        "recall_by_fraud_type": {
            t: _caught_in(active.loc[active["type"] == t]) for t in ("ring", "synthetic_identity", "account_takeover")
        },
        "new_ring_accounts_caught": _caught_in(active.loc[active["new_ring_account"]]),
        "caught_before_first_payment": _share(active["before_first_payment"]),
        "events_to_first_flag": _quantiles(active["events_to_flag"].dropna().astype(int).tolist()),
        "hours_to_first_flag": _quantiles(active["hours_to_flag"].dropna().tolist()),
        "false_flags": len(false_flagged),
        "legit_active_customers": len(legit_active),
        "false_flags_per_10k_legit": round(1e4 * len(false_flagged) / len(legit_active), 2) if legit_active else None,
        "decisions_per_day": _decisions_per_day(events, decisions),
        "operating_points": operating_points(sweep, len(active), len(legit_active)),
        "best_at_precision_85": best_recall_at_precision(sweep, 0.85) if sweep is not None else None,
        **_flag_tables(active),
    }


def _share(mask: pd.Series) -> float | None:
    """The share of True in ``mask`` to 4 decimals; None when it is empty."""
    return round(float(mask.mean()), 4) if len(mask) else None


def _caught_in(rows: pd.DataFrame) -> dict[str, Any]:
    """Active, caught, recall and the share caught by the first payment of these fraudsters."""
    return {
        "active": int(len(rows)),
        "caught": int(rows["caught"].sum()),
        "recall": _share(rows["caught"]),
        "caught_before_first_payment": _share(rows["before_first_payment"]),
    }


def models_on_stream(
    events_path: Path, model_scores_path: Path, truth_path: Path, budgets: dict[str, float]
) -> dict[str, Any]:
    """Every model's scores on the stream's decisions (``model_scores.parquet`` of the replay: one column
    per model, ``deployed`` the consumer's own) judged alike, as :func:`live_outcomes` judges the
    consumer: per model, the recall at each false-flag budget of ``budgets`` (false flags per 10,000
    legitimate active customers, e.g. the deployed model's and the plain blocked-neighbour rule's) and the
    best recall any threshold reaches at 85 % precision. Thresholds here are read off truth to compare
    models at one budget; no model's deployed threshold is."""
    import pandas as pd

    events = pd.read_json(events_path, lines=True, convert_dates=False, dtype={"customer_id": str})
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    ev = _with_fraud_phase(events[["event_id", "customer_id", "ts", "event_type"]], truth_path)
    identity = ~ev["event_type"].isin(LABEL_EVENT_TYPES)
    active = set(ev.loc[ev["fraud_phase"] & identity, "customer_id"])
    legit_active = len(set(ev.loc[identity, "customer_id"]) - active)
    scores = pd.read_parquet(model_scores_path)
    scores["customer_id"] = scores["customer_id"].astype(str)
    out: dict[str, Any] = {"active_fraudsters": len(active), "legit_active_customers": legit_active, "models": {}}
    for name in [c for c in scores.columns if c not in ("event_id", "customer_id")]:
        frame = scores[["event_id", "customer_id", name]].rename(columns={name: "score"})
        sweep = score_sweep(customer_best_scores(frame, ev), len(active), legit_active)
        out["models"][name] = {
            "best_at_precision_85": best_recall_at_precision(sweep, 0.85),
            "at_budget": {k: recall_at_false_flag_budget(sweep, v) for k, v in budgets.items() if v is not None},
        }
    return out


def _read_stream(events_path: Path, decisions_path: Path):
    """The stream's events (event_id, customer_id, ts as UTC datetimes, event_type) and the decisions."""
    import pandas as pd

    events = pd.read_json(events_path, lines=True, convert_dates=False, dtype={"customer_id": str})
    events = events[[c for c in ("event_id", "customer_id", "ts", "event_type") if c in events]]
    if "event_type" not in events:
        events["event_type"] = None
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    decisions = (
        pd.read_json(decisions_path, lines=True, convert_dates=False, dtype={"customer_id": str})
        if decisions_path.stat().st_size
        else pd.DataFrame(columns=["event_id", "customer_id", "decision"])
    )
    return events, decisions


def _decisions_per_day(events, decisions) -> dict[str, dict[str, int]]:
    import pandas as pd

    if not len(decisions):
        return {}
    ts_of = events.set_index("event_id")["ts"]
    by_day = pd.crosstab(
        ts_of.loc[decisions["event_id"]].dt.strftime("%Y-%m-%d").to_numpy(), decisions["decision"].to_numpy()
    )
    return {
        day: {d: int(row.get(d, 0)) for d in ("block", "review", "allow", "blocked")} for day, row in by_day.iterrows()
    }


def _with_fraud_phase(events, truth_path: Path):
    """The events sorted by (ts, event_id), each with its customer's fraud type, fraud start, whether
    it falls in the fraud (``fraud_phase``) and whether the customer is a ring member who signed up in
    the stream (``new_ring_account``)."""
    import pandas as pd

    truth = pd.read_parquet(truth_path)
    truth["customer_id"] = truth["customer_id"].astype(str)
    start = pd.to_datetime(truth["fraud_start_ts"], utc=True)
    fraud_start = pd.Series(start.where(truth["is_fraud_true"].astype(bool)).to_numpy(), index=truth["customer_id"])
    ev = events.assign(
        fraud_start=events["customer_id"].map(fraud_start),
        fraud_type=events["customer_id"].map(truth.set_index("customer_id")["fraud_type"]),
    )
    ev["fraud_phase"] = ev["fraud_start"].notna() & (ev["ts"] >= ev["fraud_start"])
    ev["new_ring_account"] = (ev["fraud_type"] == "ring") & (ev["fraud_start"] >= events["ts"].min())
    return ev.sort_values(["ts", "event_id"], kind="stable")


def _fraudsters(fraud_ev, flags):
    """One row per active fraudster (from its fraud-phase identity events ``fraud_ev``): type, whether
    caught, the first flag's decision, events and hours to it, caught by the first payment; and the
    first true flag of each caught fraudster."""
    import numpy as np
    import pandas as pd

    active = fraud_ev.groupby("customer_id").agg(
        first_ts=("ts", "min"), n=("ts", "size"), type=("fraud_type", "first"),
        new_ring_account=("new_ring_account", "first"),
    )  # fmt: skip
    true_flags = flags.loc[flags["fraud_phase"].fillna(False).astype(bool)].sort_values("ts", kind="stable")
    first_flag = true_flags.drop_duplicates("customer_id").set_index("customer_id")
    active["caught"] = active.index.isin(first_flag.index)
    active["decision"] = active.index.map(first_flag["decision"]) if len(first_flag) else None
    # position of the first flag among the customer's fraud events (1 = the first)
    position = {}
    for cid, grp in fraud_ev.loc[fraud_ev["customer_id"].isin(first_flag.index)].groupby("customer_id"):
        position[cid] = int(np.flatnonzero(grp["event_id"].to_numpy() == first_flag.at[cid, "event_id"])[0]) + 1
    active["events_to_flag"] = active.index.map(position)
    active["hours_to_flag"] = (
        (active.index.map(first_flag["ts"]) - active["first_ts"]).dt.total_seconds() / 3600
        if len(first_flag)
        else np.nan
    )
    first_payment = fraud_ev.loc[fraud_ev["event_type"] == "payment"].groupby("customer_id")["ts"].min()
    flag_ts = pd.to_datetime(
        pd.Series(active.index.map(first_flag["ts"]) if len(first_flag) else pd.NaT, index=active.index), utc=True
    )
    pay_ts = pd.to_datetime(
        pd.Series(active.index.map(first_payment) if len(first_payment) else pd.NaT, index=active.index), utc=True
    )
    active["before_first_payment"] = active["caught"] & (pay_ts.isna() | (flag_ts <= pay_ts))
    return active, first_flag


def _flag_tables(active) -> dict[str, Any]:
    """The older report table: new ring accounts and takeovers blocked, reviewed and missed."""
    out: dict[str, Any] = {}
    for kind, label in (("ring", "new_ring_accounts"), ("account_takeover", "takeovers")):
        rows = active.loc[active["new_ring_account"]] if kind == "ring" else active.loc[active["type"] == kind]
        blocked = int((rows["decision"] == "block").sum())
        reviewed = int((rows["decision"] == "review").sum())
        out[label] = {
            "in_stream": int(len(rows)),
            "blocked": blocked,
            "reviewed": reviewed,
            "missed": int(len(rows)) - blocked - reviewed,
            "events_to_decision": _quantiles(rows["events_to_flag"].dropna().astype(int).tolist()),
        }
    return out


def _quantiles(values: list) -> dict[str, Any]:
    import numpy as np

    if not values:
        return {"p50": None, "p90": None, "max": None, "first_event": 0}
    arr = np.asarray(values, dtype=float)
    return {
        "p50": round(float(np.percentile(arr, 50)), 2),
        "p90": round(float(np.percentile(arr, 90)), 2),
        "max": round(float(arr.max()), 2),
        "first_event": int((arr == 1).sum()),
    }


def decision_outcomes(decisions_path: Path, truth_path: Path, as_of_ms: int) -> dict[str, Any]:
    """Decisions against ground truth: true fraudsters blocked / sent to review / allowed."""
    import pandas as pd

    from fraudgraph.labels.stage import truth_as_of

    decisions = pd.read_parquet(decisions_path)
    truth = truth_as_of(pd.read_parquet(truth_path), as_of_ms)
    is_fraud = decisions["customer_id"].map(truth).fillna(False).astype(bool)
    out: dict[str, Any] = {"true_fraudsters": int(is_fraud.sum())}
    for d in ("block", "review", "allow"):
        mask = decisions["decision"] == d
        out[d] = {"customers": int(mask.sum()), "true_fraud": int((mask & is_fraud).sum())}
    flagged = decisions["decision"].isin(["block", "review"])
    out["precision_of_flags"] = round(float(is_fraud[flagged].mean()), 4) if flagged.any() else None
    out["recall_of_flags"] = round(float(flagged[is_fraud].mean()), 4) if is_fraud.any() else None
    return out
