"""The decision records a step emits and the properties its customers' vertices get: one home for their
layout, shared by the consumer and the main job's bulk replay."""

from __future__ import annotations

from typing import Any

from fraudgraph.scoring.online import OnlineResult
from fraudgraph.scoring.rules import Decision, decision_properties


def decision_record(
    event_id: str,
    customer_id: str,
    event_type: str,
    ts: int,
    scored_as_of: int,
    score: float | None,
    decision: Decision,
    model_version: str,
) -> dict[str, Any]:
    """One emitted decision: ``decision_id`` is the triggering event's id, so a re-emit after a crash
    repeats it; ``score`` to 6 decimals, None for a customer whose block stands (not scored)."""
    return {
        "decision_id": event_id,
        "customer_id": customer_id,
        "event_id": event_id,
        "event_type": event_type,
        "ts": int(ts),
        "scored_as_of": int(scored_as_of),
        "score": None if score is None else round(float(score), 6),
        "decision": decision.decision,
        "reason_codes": list(decision.reason_codes),
        "reasons": list(decision.reasons),
        "model_version": model_version,
    }


def decision_records(
    scores: list[tuple[str, str, str, int]], results: dict[str, OnlineResult]
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """For the scored customers (``(customer_id, event_id, event_type, ts)``, one per customer) and their
    results: the properties each customer's vertex gets (:func:`decision_properties`) and the decision
    records emitted, one per result, ``decision_id`` the triggering event's id (a re-emit after a crash
    repeats it). A customer without a result (not in the graph) gets neither."""
    vertex_updates: dict[str, dict[str, Any]] = {}
    emitted: list[dict[str, Any]] = []
    for customer_id, event_id, event_type, ts in scores:
        result = results.get(customer_id)
        if result is None:
            continue
        d = result.decision
        vertex_updates[customer_id] = decision_properties(
            result.score, d.decision, d.reason_codes, result.model_version, result.as_of_ms
        )
        emitted.append(
            decision_record(
                event_id, customer_id, event_type, ts, result.as_of_ms, result.score, d, result.model_version
            )
        )
    return vertex_updates, emitted
