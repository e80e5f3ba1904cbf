"""The main job: every stage that exists, end to end, on the embedded default.

Stages: generate a synthetic world -> Spark ETL into an embedded SQLite
identity graph (plus snapshot and rejects) -> labels as of the historical
cut-off -> train the edge-feature-aware RGCN and its baselines -> score every
customer and decide block / review / allow -> replay the live event stream
through the real-time consumer (file source), which writes every event into
the graph and scores new and changed accounts as they arrive. Labels, models
and decisions are evaluated against the world's ground truth, which no stage
reads otherwise. Writes ``report.json`` and ``report.md`` under the output folder.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudgraph.cli.demo_report import render_report
from fraudgraph.cli.seed_summary import render_seed_summary, summarise_seeds
from fraudgraph.config import Settings
from fraudgraph.evaluation.blocked_neighbours import blocked_neighbour_outcomes
from fraudgraph.evaluation.live import decision_outcomes, live_outcomes, models_on_stream

log = logging.getLogger(__name__)


def run_demo(settings: Settings, out_dir: Path) -> dict[str, Any]:
    from fraudgraph.graph import open_graph
    from fraudgraph.ml.artifact import ModelArtifact
    from fraudgraph.scoring.batch import score_graph

    started = time.monotonic()
    report: dict[str, Any] = {"generated_at": dt.datetime.now(dt.UTC).isoformat(), "stages": {}}
    clock = StageClock()
    prepared = prepare_world_and_model(settings, out_dir, report, clock)
    uri, model_dir, truth_path, world_dir = prepared.uri, prepared.model_dir, prepared.truth_path, prepared.world_dir

    log.info("stage 5/6: batch scoring and decisions")
    with open_graph(uri, settings) as store:
        scored = score_graph(store, ModelArtifact.load(model_dir), settings, out_dir / "scores")
    report["stages"]["score"] = {
        **scored,
        "outcomes": decision_outcomes(out_dir / "scores" / "decisions.parquet", truth_path, scored["as_of_ms"]),
    }

    clock.done("score")
    log.info("stage 6/6: replaying the live stream (the first part through the real-time consumer)")
    report["stages"]["live"] = replay_live(
        settings,
        uri,
        model_dir,
        world_dir / "live" / "events.jsonl",
        out_dir / "live",
        out_dir / "snapshot",
        truth_path,
    )
    clock.done("live")
    report["stages"]["registry"] = register_and_promote(settings, prepared.run_id, report["stages"]["live"])
    clock.done("registry")
    report["graph"] = uri
    report["figures"] = _figures(settings, uri, out_dir, world_dir, model_dir)
    clock.done("report")
    report["stage_wall_s"] = clock.stages
    report["wall_s"] = round(time.monotonic() - started, 2)
    report_md = out_dir / "report.md"
    report["report_md"] = str(report_md)
    report_md.write_text(render_report(report))
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    log.info("demo report written to %s", report_md)
    return report


@dataclass(frozen=True)
class Prepared:
    """What the main job's first four stages leave: the world's folder, the graph's URI (the history
    loaded, no live event yet), ground truth, the trained model's folder and its tracked run."""

    world_dir: Path
    uri: str
    truth_path: Path
    model_dir: Path
    run_id: str
    cutoff: str


def prepare_world_and_model(settings: Settings, out_dir: Path, report: dict[str, Any], clock: StageClock) -> Prepared:
    """The main job's stages 1-4 into ``out_dir``: generate a world, load its history with the Spark ETL,
    clean the labels as of the cut-off and train (the simulated month starts from the same four). Each
    stage's figures go to ``report["stages"]`` and its time to ``clock``."""
    from fraudgraph.graph import open_graph
    from fraudgraph.labels.stage import run_labels
    from fraudgraph.synthetic.stats import describe_world
    from fraudgraph.synthetic.world import WorldGenerator
    from fraudgraph.timeutil import to_epoch_ms
    from training.train import run_training

    out_dir.mkdir(parents=True, exist_ok=True)
    world_dir = out_dir / "world"
    shutil.rmtree(world_dir, ignore_errors=True)
    log.info("stage 1/6: generating a synthetic world of %d customers", settings.world.customers)
    t = time.monotonic()
    world = WorldGenerator(settings.world).generate(world_dir)
    rates = describe_world(world_dir)
    report["stages"]["generate"] = {**world, "rates": rates, "wall_s": round(time.monotonic() - t, 2)}
    clock.done("generate")

    uri, report["stages"]["etl"] = _load_graph(settings, world_dir, out_dir)
    clock.done("etl")

    log.info("stage 3/6: labels as of the cut-off %s", world["cutoff"])
    truth_path = world_dir / "truth" / "ground_truth.parquet"
    with open_graph(uri, settings) as store:
        labels = run_labels(store, to_epoch_ms(world["cutoff"]), out_dir / "labels", settings, truth_path)
    report["stages"]["labels"] = labels
    clock.done("labels")

    log.info("stage 4/6: training rgcn_edge%s", " and its baselines" if settings.training.baselines else "")
    model_dir = out_dir / "model"
    metrics = run_training(settings, out_dir / "snapshot", out_dir / "labels", model_dir, truth_path)
    report["stages"]["train"] = {"model_dir": str(model_dir), "metrics": metrics}
    clock.done("train")
    return Prepared(world_dir, uri, truth_path, model_dir, metrics["tracking"]["run_id"], world["cutoff"])


class StageClock:
    """Each stage's wall time (s), from the end of the one before."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._mark = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.stages[name] = round(now - self._mark, 2)
        self._mark = now


def _load_graph(settings: Settings, world_dir: Path, out_dir: Path) -> tuple[str, dict[str, Any]]:
    """Stage 2: the Spark ETL of the world into a fresh ``out_dir/graph.db`` (snapshot and rejects beside);
    returns the graph's URI and the stage's report."""
    from etl.load_identity_graph import run_etl
    from etl.spark_session import build_spark_session
    from fraudgraph.graph import open_graph

    graph_path = (out_dir / "graph.db").resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{graph_path}{suffix}").unlink(missing_ok=True)
    uri = f"sqlite:///{graph_path}"
    log.info("stage 2/6: Spark ETL into %s", uri)
    spark = build_spark_session(settings.spark)
    etl = run_etl(
        spark, settings, str(world_dir), uri, snapshot=str(out_dir / "snapshot"), rejects=str(out_dir / "rejects")
    )
    with open_graph(uri, settings) as store:
        stats = store.stats()
    return uri, {**etl, "graph_stats": stats}


def _figures(settings: Settings, uri: str, out_dir: Path, world_dir: Path, model_dir: Path) -> dict[str, str]:
    """The report's pictures (:mod:`fraudgraph.cli.demo_figures`), the training job's PR curves among them."""
    from fraudgraph.cli.demo_figures import write_figures
    from fraudgraph.graph import open_graph
    from fraudgraph.ml.artifact import ModelArtifact

    threshold = settings.rules.threshold
    if threshold is None:
        threshold = ModelArtifact.load(model_dir).threshold
    with open_graph(uri, settings) as store:
        files = write_figures(
            out_dir,
            store,
            world_dir / "live" / "events.jsonl",
            out_dir / "live" / "decisions.jsonl",
            world_dir / "truth" / "ground_truth.parquet",
            threshold,
        )
    if (model_dir / "pr_curves.png").exists():
        shutil.copy(model_dir / "pr_curves.png", out_dir / "offline_pr.png")
        files["offline_pr"] = "offline_pr.png"
    return files


def run_demo_seeds(settings: Settings, out_dir: Path, seeds: list[int]) -> dict[str, Any]:
    """The main job once per world seed (``DIR/seed-<S>/``), then every model's offline test figures and
    the live-stream figures as mean and range over the seeds (``DIR/report.md``, ``DIR/report.json``).

    Only the world changes between runs; the training seed and every other setting stay, so the spread
    shows how much a figure moves with the data it was measured on."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = {}
    for seed in seeds:
        log.info("main job for world seed %d", seed)
        per_seed = settings.model_copy(update={"world": settings.world.model_copy(update={"seed": seed})})
        runs[seed] = run_demo(per_seed, out_dir / f"seed-{seed}")
    summary = summarise_seeds(runs)
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    report_md = out_dir / "report.md"
    report_md.write_text(render_seed_summary(summary))
    summary["report_md"] = str(report_md)
    return summary


def replay_live(
    settings: Settings,
    uri: str,
    model_dir: Path,
    events_path: Path,
    live_dir: Path,
    snapshot_dir: Path | None,
    truth_path: Path | None = None,
) -> dict[str, Any]:
    """Replay a JSONL stream into the graph at ``uri``: its first part through the real consumer, step
    by step, and every decision also made in bulk from the point-in-time link history, compared with
    the consumer's on its part (:func:`serving.replay.replay_stream`).

    With ``truth_path``, the decisions are judged against ground truth
    (:func:`fraudgraph.evaluation.live.live_outcomes`). The model's folder is only read: a replay is an
    evaluation of the model, not part of it.
    """
    from fraudgraph.graph import open_graph
    from fraudgraph.ml.artifact import ModelArtifact
    from fraudgraph.ml.baselines import BaselineModels
    from serving.replay import replay_stream

    shutil.rmtree(live_dir, ignore_errors=True)
    live_dir.mkdir(parents=True)
    baselines = BaselineModels.load(model_dir) if truth_path is not None else None
    with open_graph(uri, settings) as store:
        out = replay_stream(
            settings, store, ModelArtifact.load(model_dir), events_path, snapshot_dir, live_dir, baselines=baselines
        )
    parity = out["parity"]
    if parity is not None and not parity["equal"]:
        log.error("the bulk replay differs from the consumer on the consumer's part: %s", parity)
    if truth_path is not None:
        out.update(live_outcomes(events_path, live_dir / "decisions.jsonl", truth_path))
        if (events_path.parent.parent / "historical").is_dir():  # a generated world: its history is beside
            out["blocked_neighbours"] = blocked_neighbour_outcomes(
                events_path.parent.parent,
                events_path,
                live_dir / "decisions.jsonl",
                truth_path,
                settings.rules.day_one.max_shared_degree,
            )
        if (live_dir / "model_scores.parquet").exists():
            budgets = {"deployed": out["false_flags_per_10k_legit"]}
            if out.get("blocked_neighbours"):
                budgets["blocked_neighbour_rule"] = out["blocked_neighbours"]["blocked_neighbour_rule"][
                    "false_flags_per_10k_legit"
                ]
            out["models"] = models_on_stream(events_path, live_dir / "model_scores.parquet", truth_path, budgets)
    return out


# the live-stream figures a training run is tracked with (judged against ground truth: reporting only)
LIVE_TRACKED = ("precision", "recall", "false_flags_per_10k_legit", "flagged_customers", "events")


def register_and_promote(settings: Settings, run_id: str, live: dict[str, Any]) -> dict[str, Any]:
    """The main job's model registered as a candidate version (its run gets the live figures) and promoted
    through the gate (:func:`training.promotion.promote`): the first model goes straight to production; a
    later one only if it does not fall below production on its test split. A refusal is reported, not an
    error."""
    from fraudgraph.lifecycle import ModelRegistry, RunTracker
    from fraudgraph.lifecycle.tracking import tracking_uri
    from training.promotion import promote

    log.info("registering the model and promoting it through the gate")
    tracked = {k: live[k] for k in LIVE_TRACKED if isinstance(live.get(k), int | float)}
    RunTracker(settings.registry).log_metrics(run_id, tracked, prefix="live.")
    registry = ModelRegistry(settings.registry)
    version = registry.register(run_id)
    result = promote(settings, registry, version.version)
    stage = registry.get(version.version).stage
    return {"tracking_uri": tracking_uri(settings.registry), "run_id": run_id, "stage": stage, **result.record()}
