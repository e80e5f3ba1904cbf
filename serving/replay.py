"""The main job's replay of a live stream: the real consumer on its first part, the rest in bulk.

:func:`replay_stream` replays a JSONL stream into a graph the way ``fraudgraph demo`` does:

1. the whole stream is planned and decided in bulk (:mod:`serving.bulk_replay`): the consumer's
   decisions, made from the point-in-time link history in chunks of thousands;
2. the first ``replay.consumer_events`` (whole polls of ``consumer.max_batch``) go through the real
   consumer (:class:`serving.consumer.LiveConsumer`, file source, step by step, scoring online); its
   decisions are what the stream decided there, and each is compared with the bulk one
   (:func:`compare_decisions`);
3. the rest is written into the graph by the same consumer with one step per poll and no scoring, and
   its bulk decisions are emitted and written to the customer vertices.

The graph, the ledger (events seen, offsets) and the decisions file end as a replay through the
consumer alone leaves them. A stream whose steps are not in time order (see
:class:`serving.bulk_replay.StreamPlan`) goes through the consumer alone, step by step.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudgraph.config import Settings
from fraudgraph.graph import CustomerUpsert, IdentityGraph
from fraudgraph.graph.history import LINK_EVENT_COLUMNS
from fraudgraph.identity import IdentifierHasher
from fraudgraph.logs import Progress
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.ml.baselines import BaselineModels
from fraudgraph.scoring.rules import decision_properties

from .bulk_replay import BulkDecider, StreamPlan, plan_stream
from .consumer import build_consumer, open_consumer_source, open_ledger
from .consumer.drift import DriftMonitor
from .consumer.ledger import Ledger
from .consumer.sources import FileSource, JsonlSink, Message
from .consumer.steps import graph_signups

log = logging.getLogger("fraudgraph.replay")

# a score may differ by float rounding between one subgraph and thousands side by side
SCORE_TOLERANCE = 1e-5
# the span of a bulk write step: one step per poll, whatever the poll's event times
_ONE_STEP_PER_POLL_S = 10 * 365 * 86400.0


# Over 60 lines for a reason: the three parts of the replay in order (plan and decide in bulk, the consumer's
# part, the bulk part's writes), each timed for the report.
def replay_stream(
    settings: Settings,
    store: IdentityGraph,
    artifact: ModelArtifact,
    events_path: Path,
    snapshot_dir: Path | None,
    live_dir: Path,
    *,
    progress_bar: bool = True,
    baselines: BaselineModels | None = None,
    ledger_path: Path | None = None,
) -> dict[str, Any]:
    """Replay ``events_path`` into ``store`` (see the module docstring); decisions go to
    ``live_dir/decisions.jsonl``, dead letters to ``live_dir/rejects.jsonl``, the consumer's ledger to
    ``live_dir/consumer-ledger.db``. Without ``snapshot_dir`` (the link events the graph was loaded
    from) the whole stream goes through the consumer. With ``baselines`` (and a bulk part), every decision's
    score by each baseline, the day-one rules and the deployed model goes to ``live_dir/model_scores.parquet``
    (never into a decision). ``ledger_path``: a ledger kept from an earlier replay into the same graph
    (the consumer's watermark goes on from it), instead of a fresh one in ``live_dir``. With
    ``consumer.drift_log``, the bulk part's decisions are counted in it as the consumer counts its own.
    Returns the replay's figures (``parts`` says which part of the stream each path decided, ``parity``
    how the two agreed on the consumer's part)."""
    started = time.monotonic()
    customers = store.customers_frame()  # the graph's customers before the stream
    ledger = open_ledger(store, ledger_path or live_dir / "consumer-ledger.db")
    decisions_path = live_dir / "decisions.jsonl"
    sinks = decisions, dead = JsonlSink(decisions_path), JsonlSink(live_dir / "rejects.jsonl")
    try:
        watermark = max(ledger.newest_applied() or 0, artifact.trained_as_of_ms)
        messages, history, plan = _read_and_plan(settings, events_path, snapshot_dir, customers, watermark)
        polls = len(plan.batch_ends)
        exact = snapshot_dir is not None and not plan.unordered_steps
        per_poll = settings.consumer.max_batch
        consumer_polls = min(polls, -(-settings.replay.consumer_events // per_poll)) if exact else polls
        stop_at = plan.batch_ends[consumer_polls - 1] if polls else 0
        t = time.monotonic()
        bulk: list[dict[str, Any]] = []
        features: dict[str, Any] = {}
        if exact:
            bulk, features = _bulk_decisions(
                settings, customers, artifact, plan, history, live_dir, progress_bar, baselines
            )
        bulk_s = time.monotonic() - t

        t = time.monotonic()
        stats = _consumer_part(settings, store, ledger, artifact, events_path, messages, stop_at, sinks, progress_bar)
        consumer_s = time.monotonic() - t
        t = time.monotonic()
        rest_stats = _write_rest(settings, store, ledger, events_path, stop_at, bulk, decisions, dead)
        if settings.consumer.drift_log:
            _count_drift(settings, artifact, [d for d in bulk if d["position"] > stop_at], features)
        timings = {"consumer_s": consumer_s, "bulk_s": bulk_s, "write_s": time.monotonic() - t}
    finally:
        decisions.close()
        dead.close()
        ledger.close()

    emitted = _read_jsonl(decisions_path)
    on_consumer_part = [d for d in bulk if d["position"] <= stop_at]
    consumer_part = emitted[: len(emitted) - rest_stats["decisions_emitted"]]
    parity = compare_decisions(consumer_part, on_consumer_part) if bulk else None
    counts = {"block": 0, "review": 0, "allow": 0, "blocked": 0}
    for d in emitted:
        counts[d["decision"]] += 1
    wall = time.monotonic() - started
    return {
        "events": plan.events_in,
        "rejected": plan.rejected,
        "duplicates": plan.duplicates,
        "decisions": counts,
        "wall_s": round(wall, 2),
        "events_per_s": round(plan.events_in / wall, 1) if wall else None,
        "decisions_path": str(decisions_path),
        "max_batch_span_s": settings.consumer.max_batch_span_s,
        "parts": _parts(plan, stop_at, consumer_polls, stats, rest_stats["decisions_emitted"], timings),
        "unordered_steps": plan.unordered_steps,
        "parity": parity,
        # the consumer's own figures over its part (the report's per-step latency)
        "latency_ms": stats["latency_ms"],
    }


def _consumer_part(
    settings: Settings,
    store: IdentityGraph,
    ledger: Ledger,
    artifact: ModelArtifact,
    events_path: Path,
    messages: list[Message],
    stop_at: int,
    sinks: tuple[JsonlSink, JsonlSink],
    progress_bar: bool,
) -> dict[str, Any]:
    """The stream up to line ``stop_at`` through the real consumer, step by step, scoring online, into
    ``sinks`` (decisions, dead letters); returns the consumer's figures."""
    decisions, dead = sinks
    part = FileSource(events_path, stop_at=stop_at)
    consumer = build_consumer(store, settings, ledger, model=artifact, decisions=decisions, dead_letter=dead)
    events = sum(1 for m in messages if m.position <= stop_at)
    bar = Progress(events, "replay: the consumer's part, step by step", "event", enabled=progress_bar)
    stats = consumer.run(part, install_signals=False, progress=bar)
    part.close()
    decisions.flush()
    return stats


def _bulk_decisions(
    settings: Settings,
    customers: pd.DataFrame,
    artifact: ModelArtifact,
    plan: StreamPlan,
    history: pd.DataFrame,
    live_dir: Path,
    progress_bar: bool,
    baselines: BaselineModels | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every decision of the planned stream made in bulk (:class:`serving.bulk_replay.BulkDecider`), and
    with ``consumer.drift_log`` each scored decision's customer features by decision id; with
    ``baselines``, every model's score of each decision goes to ``live_dir/model_scores.parquet``."""
    log.info("bulk replay: %d events in %d steps, %d scoring moments", plan.applied, plan.steps, len(plan.scores))
    decider = BulkDecider(
        artifact,
        settings,
        chunk_points=settings.replay.chunk_points,
        baselines=baselines,
        keep_features=bool(settings.consumer.drift_log),
    )
    bulk = decider.decide(plan, history, customers, progress_bar=progress_bar)
    if decider.model_scores:
        pd.concat(decider.model_scores, ignore_index=True).to_parquet(live_dir / "model_scores.parquet", index=False)
    return bulk, decider.features or {}


def _count_drift(
    settings: Settings, artifact: ModelArtifact, decided: list[dict[str, Any]], features: dict[str, Any]
) -> None:
    """The bulk part's decisions counted in the drift log (``consumer.drift_log``) per scoring step, as the
    consumer's :class:`serving.consumer.drift.DriftMonitor` counts its own."""
    from prometheus_client import CollectorRegistry

    from fraudgraph.ml.features import CUSTOMER_FEATURES

    monitor = DriftMonitor(CollectorRegistry(), settings.consumer.drift_log, settings.registry.drift_alert_psi)
    steps: dict[int, list[dict[str, Any]]] = {}
    for d in decided:
        steps.setdefault(int(d["scored_as_of"]), []).append(d)
    for as_of, step in sorted(steps.items()):
        scored = [d for d in step if d["score"] is not None and d["decision_id"] in features]
        rows = np.asarray([features[d["decision_id"]] for d in scored], dtype=float)
        monitor.add(
            artifact,
            as_of,
            rows.reshape(-1, len(CUSTOMER_FEATURES)),
            [float(d["score"]) for d in scored],
            [d["decision"] for d in step],
        )
    monitor.close()


def _parts(
    plan: StreamPlan,
    stop_at: int,
    consumer_polls: int,
    stats: dict[str, Any],
    rest_decisions: int,
    timings: dict[str, float],
) -> dict[str, dict[str, Any]]:
    """Which lines each path decided, with its figures (the report's "which part" paragraph)."""
    consumer_events, consumer_s = stats["events_in"], timings["consumer_s"]
    steps = sum(plan.batch_steps[:consumer_polls])
    return {
        "consumer": {
            "first_line": 1,
            "last_line": stop_at,
            "events": consumer_events,
            "polls": consumer_polls,
            "wall_s": round(consumer_s, 2),
            "events_per_s": round(consumer_events / consumer_s, 1) if consumer_s else None,
            "steps": steps,
            "ms_per_step": round(1000 * consumer_s / max(steps, 1), 2),
            "decisions": sum(stats["decisions"].values()),
        },
        "bulk": {
            "first_line": stop_at + 1 if consumer_polls < len(plan.batch_ends) else None,
            "compared_only": consumer_polls == len(plan.batch_ends),
            "events": plan.events_in - consumer_events,
            "decisions": rest_decisions,
            "scoring_s": round(timings["bulk_s"], 2),
            "graph_write_s": round(timings["write_s"], 2),
        },
    }


def _read_and_plan(
    settings: Settings, events_path: Path, snapshot_dir: Path | None, customers: pd.DataFrame, watermark_ms: int
) -> tuple[list[Message], pd.DataFrame, StreamPlan]:
    """The stream's messages, the snapshot's link events (none without a snapshot) and the stream's plan;
    ``customers``: the graph's customers before the stream; ``watermark_ms``: the consumer's watermark
    before it (the deciding model's training as-of, or a kept ledger's newest applied event)."""
    source = FileSource(events_path)
    messages = source.poll(2**62, 0)
    source.close()
    history = (
        pd.read_parquet(Path(snapshot_dir) / "link_events.parquet", columns=LINK_EVENT_COLUMNS)
        if snapshot_dir is not None
        else pd.DataFrame(columns=LINK_EVENT_COLUMNS)
    )
    history_keys = set(zip(history["customer_id"], history["kind"], history["value_hash"]))
    hasher = IdentifierHasher.from_settings(settings.privacy)
    plan = plan_stream(messages, settings, hasher, history_keys, graph_signups(customers), watermark_ms)
    if plan.unordered_steps:
        log.warning(
            "%d scoring steps of the stream are out of time order: the whole stream goes through the consumer",
            plan.unordered_steps,
        )
    return messages, history, plan


def _write_rest(
    settings: Settings,
    store: IdentityGraph,
    ledger: Ledger,
    events_path: Path,
    stop_at: int,
    bulk: list[dict[str, Any]],
    decisions: JsonlSink,
    dead: JsonlSink,
) -> dict[str, int]:
    """The stream after line ``stop_at`` written by the consumer (one step per poll, no scoring), then its
    bulk decisions emitted and written to the customer vertices (each customer's latest)."""
    rest = [d for d in bulk if d["position"] > stop_at]
    if not rest:
        return {"decisions_emitted": 0}
    cfg = settings.consumer.model_copy(update={"max_batch_span_s": _ONE_STEP_PER_POLL_S})
    writer = build_consumer(
        store, settings.model_copy(update={"consumer": cfg}), ledger, model=None, decisions=decisions, dead_letter=dead
    )
    source = open_consumer_source(str(events_path), ledger, settings)
    writer.run(source, install_signals=False)
    source.close()
    latest: dict[str, dict[str, Any]] = {}
    for d in rest:
        latest[d["customer_id"]] = decision_properties(
            d["score"], d["decision"], d["reason_codes"], d["model_version"], d["scored_as_of"]
        )
        decisions.write({k: v for k, v in d.items() if k != "position"})
    if latest:
        store.upsert_customers([CustomerUpsert(c, p) for c, p in latest.items()])
    decisions.flush()
    return {"decisions_emitted": len(rest)}


def compare_decisions(consumer: list[dict[str, Any]], bulk: list[dict[str, Any]]) -> dict[str, Any]:
    """How the consumer's decisions and the bulk ones agree, matched by decision id: counts, decisions
    and reason codes that differ, the largest score difference, and ``equal`` (every decision of either
    side in the other, the same decision and reason codes, scores within ``SCORE_TOLERANCE``)."""
    mine = {d["decision_id"]: d for d in consumer}
    theirs = {d["decision_id"]: d for d in bulk}
    both = sorted(set(mine) & set(theirs))
    diffs = [_score_diff(mine[i]["score"], theirs[i]["score"]) for i in both]
    other_decision = sum(mine[i]["decision"] != theirs[i]["decision"] for i in both)
    other_reasons = sum(list(mine[i]["reason_codes"]) != list(theirs[i]["reason_codes"]) for i in both)
    only_consumer, only_bulk = len(set(mine) - set(theirs)), len(set(theirs) - set(mine))
    max_diff = max(diffs, default=0.0)
    return {
        "consumer_decisions": len(mine),
        "bulk_decisions": len(theirs),
        "matched": len(both),
        "only_consumer": only_consumer,
        "only_bulk": only_bulk,
        "other_decision": other_decision,
        "other_reason_codes": other_reasons,
        "max_abs_score_diff": max_diff,
        "equal": not (only_consumer or only_bulk or other_decision or other_reasons) and max_diff <= SCORE_TOLERANCE,
    }


def _score_diff(a: float | None, b: float | None) -> float:
    """|a - b|; 0 when neither was scored (a standing block), infinite when only one was."""
    if a is None or b is None:
        return 0.0 if a is None and b is None else float("inf")
    return abs(float(a) - float(b))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["SCORE_TOLERANCE", "compare_decisions", "replay_stream"]
