"""A month of operation, simulated (``fraudgraph simulate-month``): the product run as a fraud team runs it.

1. The main job's first four stages (:func:`fraudgraph.cli.demo.prepare_world_and_model`): a world, its
   history loaded by the Spark ETL, labels as of the cut-off, a trained model, registered and promoted
   as the first model in production.
2. The live stream is cut into periods of ``retrain.every_days`` days (a week by default). Each period is
   replayed into the graph as the main job replays its stream (:func:`serving.replay.replay_stream`: the
   first ``retrain.consumer_events`` through the real consumer, the rest decided in bulk from the
   point-in-time link history and compared with it), by the model in production when the period starts,
   with one consumer ledger across the month. The fraud team's blocks, appeals and unblocks of the
   period are events of the stream: they reach the graph the day they happen. The consumer appends the
   link events it applies to the link-event log and its decisions' drift to the drift log.
3. At the end of every period but the last, the retraining job (:func:`training.retrain.retrain`) runs
   on the graph the consumer has been writing, as of that moment: labels, snapshot (the ETL's link events
   and the consumer's log), train, register a candidate, and promote it if the gate lets it.

Everything lives under the output folder, the model registry included (``registry.dir`` is set to
``OUT/models``): a simulation never moves a deployment's production pointer. Ground truth is read only to
report (each period's live precision and recall); no setting, threshold or promotion reads it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudgraph.config import Settings

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Period:
    """One retrain period of the live stream: events with ``start_ms <= ts < end_ms`` (epoch ms), in
    ``events_path``; ``days``: its first and last day (1 = the stream's first day)."""

    index: int
    start_ms: int
    end_ms: int
    events_path: Path
    days: tuple[int, int]


# Over 60 lines for a reason: it is the simulation's loop, period by period: replay with the production
# model, judge the period, retrain and gate, each a call with its part of the report.
def run_month(settings: Settings, out_dir: Path) -> dict[str, Any]:
    """Simulate the world's live month into ``out_dir`` (see the module docstring); writes ``report.md``
    (the per-period table) and ``report.json``, and returns the report."""
    from fraudgraph.cli.demo import StageClock, prepare_world_and_model
    from fraudgraph.cli.month_report import render_month
    from fraudgraph.evaluation.live import live_outcomes
    from fraudgraph.graph import open_graph
    from fraudgraph.lifecycle import ModelRegistry
    from fraudgraph.ml.artifact import ModelArtifact
    from fraudgraph.timeutil import to_epoch_ms
    from serving.replay import replay_stream
    from training.promotion import promote

    out_dir = out_dir.resolve()
    settings = month_settings(settings, out_dir)
    started = time.monotonic()
    report: dict[str, Any] = {"generated_at": dt.datetime.now(dt.UTC).isoformat(), "stages": {}}
    clock = StageClock()
    prepared = prepare_world_and_model(settings, out_dir, report, clock)
    registry = ModelRegistry(settings.registry)
    first = registry.register(prepared.run_id)
    report["first_model"] = promote(settings, registry, first.version).record()
    clock.done("registry")

    start_ms = to_epoch_ms(prepared.cutoff)
    periods = split_stream(
        prepared.world_dir / "live" / "events.jsonl",
        start_ms,
        settings.retrain.every_days,
        out_dir / "periods",
        last_day=math.ceil(settings.world.live_days),
    )
    replay_settings = settings.model_copy(
        update={"replay": settings.replay.model_copy(update={"consumer_events": settings.retrain.consumer_events})}
    )
    rows = []
    for period in periods:
        production = registry.in_stage("production")
        assert production is not None  # the first model was promoted above
        artifact = ModelArtifact.load(registry.model_dir(production.version))
        live_dir = out_dir / "periods" / f"period-{period.index}"
        history_dir = _history_before(settings, out_dir, period.start_ms, live_dir / "history")
        log.info(
            "period %d (days %d-%d): replaying %s with version %d",
            period.index, *period.days, period.events_path.name, production.version,
        )  # fmt: skip
        with open_graph(prepared.uri, settings) as store:
            replayed = replay_stream(
                replay_settings,
                store,
                artifact,
                period.events_path,
                history_dir,
                live_dir,
                ledger_path=out_dir / "consumer-ledger.db",
            )
        row: dict[str, Any] = {
            "period": period.index,
            "days": list(period.days),
            "model_version": production.version,
            "replay": _replay_figures(replayed),
            "live": live_outcomes(period.events_path, live_dir / "decisions.jsonl", prepared.truth_path),
            "drift": period_drift(settings, artifact, period),
        }
        if period.index < len(periods):
            row.update(_retrain_and_gate(settings, prepared.uri, period.end_ms, out_dir))
        rows.append(row)
        clock.done(f"period {period.index}")
    report["periods"] = rows
    report["registry"] = [v.record() for v in registry.versions()]
    report["stage_wall_s"] = clock.stages
    report["wall_s"] = round(time.monotonic() - started, 2)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    render_month(report, out_dir / "report.md")
    log.info("month report written to %s", out_dir / "report.md")
    return report


def _retrain_and_gate(settings: Settings, uri: str, as_of_ms: int, out_dir: Path) -> dict[str, Any]:
    """The retraining job as of the end of a period, on the graph the consumer wrote, promoting its
    candidate if the gate lets it: ``{retrain, labels}`` for the period's row."""
    from training.retrain import retrain

    t = time.monotonic()
    outcome = retrain(
        settings,
        uri,
        as_of_ms,
        out_dir / "retrain",
        etl_snapshot=out_dir / "snapshot",
        event_log=settings.consumer.link_event_log,
        promote_if_passed=True,
    )
    labels = _label_counts(Path(outcome["model_dir"]).parent / "labels")
    return {"retrain": {**outcome, "wall_s": round(time.monotonic() - t, 2)}, "labels": labels}


def month_settings(settings: Settings, out_dir: Path) -> Settings:
    """``settings`` with the simulation's own registry (``OUT/models``), link-event log and drift log, and
    the first model trained as the retrains are (``retrain.baselines``: the gate and the consumer read
    ``rgcn_edge`` alone)."""
    from training.retrain import retrain_settings

    registry = settings.registry.model_copy(update={"dir": str(out_dir / "models"), "tracking_uri": None})
    consumer = settings.consumer.model_copy(
        update={
            "link_event_log": str(out_dir / "link-events"),
            "drift_log": str(out_dir / "drift.jsonl"),
            "max_clock_skew_s": None,  # a replayed month is stamped before the wall clock: nothing is ahead
        }
    )
    return retrain_settings(settings).model_copy(update={"registry": registry, "consumer": consumer})


def split_stream(
    events_path: Path, start_ms: int, every_days: int, out_dir: Path, *, last_day: int | None = None
) -> list[Period]:
    """Cut a JSONL stream (in time order) into periods of ``every_days`` days from ``start_ms``: one file
    per period under ``out_dir``, each line as it was. A line without a readable ``ts`` stays in the period
    of the line before it (the consumer dead-letters it there). ``last_day``: the stream's last day (the
    last period's days end there)."""
    from fraudgraph.timeutil import to_epoch_ms

    out_dir.mkdir(parents=True, exist_ok=True)
    span = every_days * DAY_MS
    files: dict[int, list[str]] = {}
    index = 0
    for line in events_path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            ts = to_epoch_ms(json.loads(line)["ts"])
            index = max(index, (ts - start_ms) // span)
        except (ValueError, KeyError, TypeError):
            pass
        files.setdefault(int(index), []).append(line)
    periods = []
    for i in sorted(files):
        path = out_dir / f"events-{i + 1}.jsonl"
        path.write_text("\n".join(files[i]) + "\n")
        days = (i * every_days + 1, min((i + 1) * every_days, last_day or (i + 1) * every_days))
        periods.append(Period(i + 1, start_ms + i * span, start_ms + (i + 1) * span, path, days))
    return periods


def period_drift(settings: Settings, artifact: Any, period: Period) -> dict[str, Any] | None:
    """The period's drift against ``artifact``'s training reference, from the drift log: the decisions'
    mix, the score's PSI and the features' (the highest and how many at or above the alert)."""
    from fraudgraph.lifecycle.drift import REFERENCE_FILE, DailyDrift, DriftReference

    path = Path(settings.consumer.drift_log or "")
    reference_path = artifact.folder / REFERENCE_FILE if artifact.folder is not None else None
    if not path.is_file() or reference_path is None or not reference_path.exists():
        return None
    reference = DriftReference.load(reference_path)
    first = dt.datetime.fromtimestamp(period.start_ms / 1000, dt.UTC).date().isoformat()
    last = dt.datetime.fromtimestamp((period.end_ms - 1) / 1000, dt.UTC).date().isoformat()
    daily = DailyDrift()
    for line in path.read_text().splitlines():
        record = json.loads(line) if line.strip() else None
        if record and record.get("model_version") == artifact.version and first <= record["day"] <= last:
            daily.merge({**record, "day": "period"})
    if "period" not in daily.days():
        return None
    summary = daily.summary("period", reference)
    alert = settings.registry.drift_alert_psi
    ranked = sorted(((v, k) for k, v in summary["feature_psi"].items() if v is not None), reverse=True)
    return {
        "decisions": summary["decisions"],
        "decision_mix": summary["decision_mix"],
        "score_psi": summary["score_psi"],
        "top_feature": {"feature": ranked[0][1], "psi": ranked[0][0]} if ranked else None,
        "features_at_alert": sum(1 for v, _ in ranked if v >= alert),
        "alert_psi": alert,
    }


def _history_before(settings: Settings, out_dir: Path, start_ms: int, folder: Path) -> Path:
    """A folder holding ``link_events.parquet``: the graph's link history before ``start_ms`` (the ETL
    snapshot's and the consumer's logged events), what the period's bulk replay reads the past from."""
    from fraudgraph.graph.event_log import link_events_until

    folder.mkdir(parents=True, exist_ok=True)
    events = link_events_until(out_dir / "snapshot", settings.consumer.link_event_log, start_ms - 1)
    events.to_parquet(folder / "link_events.parquet", index=False)
    return folder


def _replay_figures(replayed: dict[str, Any]) -> dict[str, Any]:
    keep = ("events", "rejected", "duplicates", "decisions", "wall_s", "events_per_s", "parts", "parity")
    return {k: replayed.get(k) for k in keep}


def _label_counts(labels_dir: Path) -> dict[str, Any]:
    """The fraud and legitimate labels of a retrain's labels (its ``report.json``)."""
    report = json.loads((labels_dir / "report.json").read_text())
    return {"as_of": report["as_of"], **report["labels"]}
