"""The live side and the whole: the consumer, the query API, world-check, evaluate and the main job."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from fraudgraph.cli.context import AppContext, cli, common_options, fail, needs_pii_key, pass_app

log = logging.getLogger("fraudgraph.cli")


# ------------------------------------------------------------------- consume
@cli.command()
@click.option(
    "--source",
    required=True,
    help="file:///PATH (JSONL; a file or a FIFO), - for standard input, kafka://HOST:PORT/TOPIC?group=NAME, "
    "or an SQS queue URL (http[s]://...).",
)
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default graph.uri).")
@click.option("--model", "model_dir", default=None, type=click.Path(file_okay=False, exists=True))
@click.option(
    "--from-registry",
    is_flag=True,
    default=False,
    help="Score with the registry's production model and follow it (a promotion or rollback takes effect "
    "within registry.poll_s, between micro-batches), instead of --model.",
)
@click.option(
    "--decisions", default="-", help="Decision sink: a JSONL path, - (standard output) or kafka://HOST:PORT/TOPIC."
)
@click.option(
    "--shadow-decisions",
    default=None,
    help="With --from-registry: the model in the registry's shadow stage (followed too) scores the same "
    "micro-batches, its decisions to this JSONL path or kafka://... (never acted on).",
)
@click.option("--dead-letter", default=None, help="Rejected events (default consumer.dead_letter).")
@click.option("--ledger", default=None, help="Ledger file (default consumer.ledger).")
@click.option("--follow", is_flag=True, default=False, help="Keep tailing a file source.")
@click.option(
    "--create",
    is_flag=True,
    default=False,
    help="Make the SQLite graph when its file does not exist (without it a missing graph is refused).",
)
@click.option(
    "--until-idle",
    type=float,
    default=None,
    help="Stop after this many seconds without a message (Kafka; draining a topic).",
)
@common_options
@needs_pii_key
@pass_app
def consume(
    app: AppContext,
    source: str,
    graph_uri: str | None,
    model_dir: str | None,
    from_registry: bool,
    decisions: str,
    shadow_decisions: str | None,
    dead_letter: str | None,
    ledger: str | None,
    follow: bool,
    create: bool,
    until_idle: float | None,
) -> None:
    """Live consumer: events into the graph, scored and decided as they arrive."""
    from fraudgraph.graph import open_graph
    from fraudgraph.scoring.online import settle_for_serving
    from serving.consumer import LedgerMismatch, build_consumer, open_consumer_source, open_ledger

    cfg = app.settings.consumer
    artifact, follower = _model_or_follower(app, model_dir, from_registry)
    if shadow_decisions and follower is None:
        fail("--shadow-decisions: needs --from-registry (the shadow model is the registry's)")
    with open_graph(graph_uri, app.settings, create=create) as store:
        try:
            led = open_ledger(store, ledger or cfg.ledger)
        except LedgerMismatch as exc:
            fail(str(exc))
        src = open_consumer_source(source, led, app.settings, follow=follow, idle_stop_s=until_idle)
        consumer = build_consumer(
            store, app.settings, led, model=artifact, decisions=decisions, dead_letter=dead_letter,
            source_uri=source, follower=follower, shadow_decisions=shadow_decisions,
        )  # fmt: skip
        if cfg.metrics_port:
            port = consumer.metrics.serve(cfg.metrics_port)
            click.echo(f"metrics on http://127.0.0.1:{port}/metrics", err=True)
        settle_for_serving()
        stats = consumer.run(src)
        consumer.metrics.close()
        src.close()
    led.close()
    if follower is not None:
        follower.stop()
    if app.json_output or decisions != "-":
        click.echo(json.dumps(stats, indent=2), err=decisions == "-")


def _model_or_follower(app: AppContext, model_dir: str | None, from_registry: bool) -> tuple[Any, Any]:
    """``(artifact, None)`` from ``--model``, or ``(None, follower)`` of the registry's production model."""
    from fraudgraph.lifecycle import RegistryError
    from fraudgraph.lifecycle.follow import StageFollower
    from fraudgraph.ml.artifact import ModelArtifact

    if (model_dir is None) == (not from_registry):
        fail("give --model MODEL_DIR or --from-registry (one of them)")
    if model_dir is not None:
        return ModelArtifact.load(model_dir), None
    try:
        follower = StageFollower(app.settings.registry, ModelArtifact.load, app.settings.registry.poll_s)
    except RegistryError as exc:
        fail(f"--from-registry: {exc}")
    return None, follower.start()


# ----------------------------------------------------------------------- api
@cli.command()
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default: graph.uri from config).")
@click.option(
    "--model", "model_dir", default=None, type=click.Path(exists=True, file_okay=False), help="Model artifact folder."
)
@click.option(
    "--from-registry",
    is_flag=True,
    default=False,
    help="Score with the registry's production model and follow it (between requests), instead of --model.",
)
@click.option("--host", default=None, help="Bind address (default api.host, loopback).")
@click.option("--port", type=int, default=None, help="Port (default api.port).")
@common_options
@needs_pii_key
@pass_app
def api(
    app: AppContext,
    graph_uri: str | None,
    model_dir: str | None,
    from_registry: bool,
    host: str | None,
    port: int | None,
) -> None:
    """Internal query API and review console (FastAPI on uvicorn)."""
    import uvicorn

    from fraudgraph.graph import open_graph
    from fraudgraph.scoring.online import OnlineScorer, settle_for_serving
    from serving.api import create_app

    cfg = app.settings.api
    artifact, follower = _model_or_follower(app, model_dir, from_registry)
    if follower is not None:
        artifact = follower.model
    with open_graph(graph_uri, app.settings, create=False) as store:
        web = create_app(store, OnlineScorer(store, artifact, app.settings), app.settings, follower=follower)
        settle_for_serving()
        # uvicorn's access log would print query strings (a lookup's raw identifier): ours logs paths only
        uvicorn.run(
            web,
            host=host or cfg.host,
            port=cfg.port if port is None else port,
            access_log=False,
            log_level=app.settings.logging.level.lower(),
        )


# ----------------------------------------------------------- world-check / evaluate
@cli.command("world-check")
@click.option(
    "--world",
    "world_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="A generated world (fraudgraph generate).",
)
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Write readback.json and readback.md here (default: the world folder).",
)
@common_options
@pass_app
def world_check(app: AppContext, world_dir: str, out_dir: str | None) -> None:
    """How easy is a world: PR-AUC against ground truth of every single model input and of the day-one rules."""
    from training.readback import render_readback, world_readback

    result = world_readback(world_dir, app.settings)
    out = Path(out_dir or world_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "readback.json").write_text(json.dumps(result, indent=2))
    (out / "readback.md").write_text(render_readback(result))
    app.emit(result, render_readback)


@cli.command()
@click.option(
    "--events",
    "events_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The live stream (JSONL), e.g. WORLD/live/events.jsonl.",
)
@click.option("--truth", required=True, type=click.Path(dir_okay=False, exists=True), help="Ground truth Parquet.")
@click.option(
    "--graph",
    "graph_uri",
    required=True,
    help="The graph the stream is replayed into (give a copy: the replay writes to it).",
)
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option(
    "--snapshot",
    "snapshot_dir",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="The snapshot the graph was loaded from: the stream after its first replay.consumer_events is "
    "then decided in bulk (checked against the consumer on that first part). Without it the consumer "
    "replays the whole stream, step by step.",
)
@common_options
@needs_pii_key
@pass_app
def evaluate(
    app: AppContext,
    events_path: str,
    truth: str,
    graph_uri: str,
    model_dir: str,
    out_dir: str,
    snapshot_dir: str | None,
) -> None:
    """Replay a live stream through the real consumer and judge its decisions against ground truth.

    Writes OUT/live.json (the model's folder is only read)."""
    from fraudgraph.cli.demo import replay_live

    live = replay_live(
        app.settings,
        graph_uri,
        Path(model_dir),
        Path(events_path),
        Path(out_dir),
        Path(snapshot_dir) if snapshot_dir else None,
        Path(truth),
    )
    (Path(out_dir) / "live.json").write_text(json.dumps(live, indent=2, default=str))
    app.emit(
        live,
        lambda r: (
            f"precision {r['precision']}, recall {r['recall']} of {r['active_fraudsters']} active "
            f"fraudsters; {r['false_flags_per_10k_legit']} false flags per 10k legitimate"
        ),
    )


# ---------------------------------------------------------------------- demo
@cli.command()
@click.option("--out", "out_dir", default="demo-out", type=click.Path(file_okay=False), help="Report folder.")
@click.option(
    "--seeds",
    default=None,
    help="Comma-separated world seeds: one run each under DIR/seed-S and "
    "a summary with mean and range (default: world.seed only).",
)
@common_options
@pass_app
def demo(app: AppContext, out_dir: str, seeds: str | None) -> None:
    """The main job: every stage that exists, end to end, on the embedded default."""
    from training.decision_graph import TrainingRefused

    try:
        report = _run_main_job(app, out_dir, seeds)
    except TrainingRefused as exc:
        fail(str(exc))
    app.emit(report, lambda r: Path(r["report_md"]).read_text())


def _allow_demo_key(app: AppContext, job: str) -> None:
    """A job on synthetic worlds runs with the public demo PII key when no key is set, and says so."""
    from fraudgraph.identity import resolve_pii_key

    if resolve_pii_key(app.settings.privacy.pii_key, app.settings.privacy.pii_key_file)[1]:
        log.warning(
            "%s runs on synthetic worlds with the public demo PII key "
            "(privacy.allow_demo_key: true); never use it for real data",
            job,
        )
        app._settings = app.settings.model_copy(
            update={"privacy": app.settings.privacy.model_copy(update={"allow_demo_key": True})}
        )


def _run_main_job(app: AppContext, out_dir: str, seeds: str | None) -> dict:
    from fraudgraph.cli.demo import run_demo, run_demo_seeds

    _allow_demo_key(app, "the main job")
    if seeds:
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            fail(f"--seeds: {seeds!r} is not a comma-separated list of integers")
        return run_demo_seeds(app.settings, Path(out_dir), seed_list)
    return run_demo(app.settings, Path(out_dir))


# ---------------------------------------------------------------------- simulate-month
@cli.command("simulate-month")
@click.option("--out", "out_dir", default="month-out", type=click.Path(file_okay=False), help="Report folder.")
@common_options
@pass_app
def simulate_month(app: AppContext, out_dir: str) -> None:
    """A month of operation on a synthetic world: the consumer decides each period of the live stream, the
    retraining job runs every retrain.every_days days on the graph it wrote, and the gate decides."""
    from fraudgraph.cli.month import run_month
    from training.decision_graph import TrainingRefused

    _allow_demo_key(app, "the simulated month")
    try:
        report = run_month(app.settings, Path(out_dir))
    except TrainingRefused as exc:
        fail(str(exc))
    app.emit(report, lambda r: (Path(out_dir) / "report.md").read_text())
