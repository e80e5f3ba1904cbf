"""The ``fraudgraph`` command line: one subcommand per stage.

Every subcommand takes ``--config FILE`` and ``--json`` (machine-readable
summary on stdout; logs go to stderr).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from fraudgraph.config import ConfigError, Settings, load_settings
from fraudgraph.logs import configure_logging

log = logging.getLogger("fraudgraph.cli")


class AppContext:
    """Settings and output mode shared by the subcommands of one invocation."""

    def __init__(self) -> None:
        self.config_file: str | None = None
        self.json_output = False
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
            configure_logging(self._settings.logging.level)
        return self._settings

    def emit(self, summary: dict[str, Any], human: Callable[[dict[str, Any]], str] | None = None) -> None:
        if self.json_output:
            click.echo(json.dumps(summary, indent=2, sort_keys=True, default=str))
        else:
            click.echo(human(summary) if human else json.dumps(summary, indent=2, default=str))


pass_app = click.make_pass_decorator(AppContext, ensure=True)


def fail(message: str) -> None:
    """One line on stderr naming the problem, exit status 2, no traceback."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _setup_errors() -> tuple[type[BaseException], ...]:
    from fraudgraph.graph import GraphSetupError
    from fraudgraph.identity import IdentifierError

    return (GraphSetupError, IdentifierError, FileNotFoundError)


SETUP_ERRORS = _setup_errors()


def common_options(fn: Callable) -> Callable:
    """Add ``--config`` and ``--json`` to a subcommand (they also work before the subcommand)."""

    @click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        default=None,
        help="YAML file merged over conf/default.yaml.",
    )
    @click.option(
        "--json", "json_output", is_flag=True, default=False, help="Print a machine-readable summary on stdout."
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, config_file: str | None, json_output: bool, **kwargs: Any) -> Any:
        app = click.get_current_context().ensure_object(AppContext)
        if config_file:
            app.config_file = config_file
        app.json_output = app.json_output or json_output
        try:
            _ = app.settings  # validate configuration at start
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            return fn(*args, **kwargs)
        except SETUP_ERRORS as exc:  # a wrong set-up: one line naming the problem, exit 2, no traceback
            fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    return wrapper


@click.group()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file merged over conf/default.yaml.",
)
@click.option("--json", "json_output", is_flag=True, default=False, help="Machine-readable output.")
@click.version_option(package_name="identity-fraudgraph")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, json_output: bool) -> None:
    """fraudgraph: identity-graph fraud detection."""
    app = ctx.ensure_object(AppContext)
    app.config_file = config_file
    app.json_output = json_output


# --------------------------------------------------------------------- graph
@cli.group()
def graph() -> None:
    """Inspect the identity graph."""


def _stats_text(stats: dict[str, Any]) -> str:
    lines = ["vertices:"]
    lines += [f"  {k:<10} {v:>12,}" for k, v in stats["vertices"].items()]
    lines.append("edges:")
    lines += [f"  {k:<10} {v:>12,}" for k, v in stats["edges"].items()]
    return "\n".join(lines)


@graph.command("stats")
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default graph.uri).")
@common_options
@pass_app
def graph_stats(app: AppContext, graph_uri: str | None) -> None:
    """Vertex and edge counts per label."""
    from fraudgraph.graph import open_graph

    with open_graph(graph_uri, app.settings, create=False) as store:
        app.emit(store.stats(), _stats_text)


@graph.command("export")
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default graph.uri).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@common_options
@pass_app
def graph_export(app: AppContext, graph_uri: str | None, out_dir: str) -> None:
    """Export vertices and edges as a Parquet snapshot."""
    from fraudgraph.graph import open_graph

    with open_graph(graph_uri, app.settings, create=False) as store:
        paths = store.export(out_dir)
    app.emit({k: str(v) for k, v in paths.items()})


@graph.command("refresh-summaries")
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default graph.uri).")
@common_options
@pass_app
def graph_refresh_summaries(app: AppContext, graph_uri: str | None) -> None:
    """Recompute every customer's and identifier's kept link summary (after a bulk load that bypassed
    fraudgraph, such as Neptune's loader)."""
    from fraudgraph.graph import open_graph

    with open_graph(graph_uri, app.settings, create=False) as store:
        app.emit(store.rebuild_summaries(progress=True))


# ------------------------------------------------------------ gremlin-server
@cli.command("gremlin-server")
@click.argument("action", type=click.Choice(["start", "stop", "status"]))
@click.option("--port", type=int, default=None, help="Port (default gremlin_server.port).")
@click.option("--state-dir", default=None, help="State folder (default gremlin_server.state_dir).")
@click.option(
    "--engine",
    type=click.Choice(["tinkergraph", "janusgraph"]),
    default="tinkergraph",
    help="TinkerGraph (Apache TinkerPop Gremlin Server) or JanusGraph Server (janusgraph_server.*).",
)
@common_options
@pass_app
def gremlin_server(app: AppContext, action: str, port: int | None, state_dir: str | None, engine: str) -> None:
    """Start, stop or report a local Gremlin Server on loopback (TinkerGraph or JanusGraph)."""
    from localservers.servers import GremlinServer, JanusGraphServer, ServerError

    server = (
        JanusGraphServer(app.settings.janusgraph_server, state_dir=state_dir, port=port)
        if engine == "janusgraph"
        else GremlinServer(app.settings.gremlin_server, state_dir=state_dir, port=port)
    )
    try:
        status = getattr(server, action)()
    except ServerError as exc:
        raise click.ClickException(str(exc)) from None
    status["url"] = server.url
    app.emit(
        status,
        lambda s: (
            f"{engine}: {'running' if s['running'] else 'stopped'}"
            f"{' and answering' if s['answering'] else ''} at {s['url']}" + (f" (pid {s['pid']})" if s["pid"] else "")
        ),
    )
    if action == "status" and not status["running"]:
        sys.exit(3)


# ------------------------------------------------------------------ generate
@cli.command()
@click.option("--customers", type=int, default=None, help="Number of customers (default world.customers).")
@click.option("--seed", type=int, default=None, help="Random seed (default world.seed).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--describe/--no-describe", default=True, help="Read rates back from the output.")
@common_options
@pass_app
def generate(app: AppContext, customers: int | None, seed: int | None, out_dir: str, describe: bool) -> None:
    """Synthetic identity-fraud world: historical tables, live stream, ground truth."""
    from fraudgraph.synthetic.stats import describe_world
    from fraudgraph.synthetic.world import WorldGenerator

    world = app.settings.world
    update = {k: v for k, v in {"customers": customers, "seed": seed}.items() if v is not None}
    world = world.model_copy(update=update)
    summary = WorldGenerator(world).generate(out_dir, progress=not app.json_output)
    if describe:
        summary["rates"] = describe_world(out_dir)
        Path(out_dir, "world_stats.json").write_text(json.dumps(summary["rates"], indent=2))
    app.emit(summary)


# ----------------------------------------------------------------------- etl
@cli.command()
@click.option(
    "--input",
    "input_source",
    required=True,
    help="Folder with events/customers/blocks/appeals (Parquet or CSV), or hive:DATABASE.",
)
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default graph.uri).")
@click.option("--snapshot", default=None, type=click.Path(file_okay=False), help="Write a Parquet snapshot here.")
@click.option(
    "--neptune-csv",
    default=None,
    type=click.Path(file_okay=False),
    help="Write Neptune bulk-load CSV (Gremlin load-data format) here.",
)
@click.option("--rejects", default=None, type=click.Path(file_okay=False), help="Write rejected rows here.")
@click.option("--master", default=None, help="Spark master (default spark.master).")
@common_options
@pass_app
def etl(
    app: AppContext,
    input_source: str,
    graph_uri: str | None,
    snapshot: str | None,
    neptune_csv: str | None,
    rejects: str | None,
    master: str | None,
) -> None:
    """Spark ETL of the historical tables into the identity graph."""
    from etl.contract import InputContractError, check_input
    from etl.load_identity_graph import format_summary, run_etl
    from etl.spark_session import build_spark_session

    try:
        check_input(input_source, app.settings.etl.columns)  # seconds, before the Spark session starts
        spark = build_spark_session(app.settings.spark, master)
        summary = run_etl(
            spark,
            app.settings,
            input_source,
            graph_uri or app.settings.graph.uri,
            snapshot=snapshot,
            neptune_csv=neptune_csv,
            rejects=rejects,
        )
    except InputContractError as exc:
        fail("\n".join(exc.problems))
    app.emit(summary, format_summary)


# ------------------------------------------------------------------- profile
@cli.command()
@click.option(
    "--input",
    "input_source",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="Folder with events/customers/blocks/appeals (Parquet or CSV), as the ETL reads it.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Write profile.md, profile.json and suggested-config.yaml here.",
)
@common_options
@pass_app
def profile(app: AppContext, input_source: str, out_dir: str) -> None:
    """Profile a team's tables before training: spans, delays, degrees, and the settings that fit them."""
    from etl.contract import InputContractError
    from etl.profile import profile_tables, write_profile

    try:
        report = profile_tables(
            input_source, app.settings.etl.columns, min_positives=app.settings.training.min_positives
        )
    except InputContractError as exc:
        fail("\n".join(exc.problems))
    write_profile(report, out_dir, app.settings.etl.columns)
    app.emit(report, lambda r: Path(out_dir, "profile.md").read_text())


# -------------------------------------------------------------------- labels
@cli.command()
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default graph.uri).")
@click.option("--as-of", "as_of", required=True, help="ISO-8601 time (UTC) or epoch ms: nothing later is visible.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option(
    "--truth",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="Ground truth Parquet, for evaluation only.",
)
@click.option("--no-write-back", is_flag=True, default=False, help="Do not write labels to the graph.")
@common_options
@pass_app
def labels(
    app: AppContext, graph_uri: str | None, as_of: str, out_dir: str, truth: str | None, no_write_back: bool
) -> None:
    """Mature and heuristically corrected labels as of a time, audited."""
    from fraudgraph.graph import open_graph
    from fraudgraph.labels.stage import run_labels
    from fraudgraph.timeutil import to_epoch_ms

    try:
        as_of_ms = to_epoch_ms(as_of)
    except ValueError as exc:
        raise click.BadParameter(f"not a timestamp: {exc}", param_hint="--as-of") from None
    with open_graph(graph_uri, app.settings, create=False) as store:
        report = run_labels(store, as_of_ms, out_dir, app.settings, truth, write_back=not no_write_back)
    app.emit(report, lambda r: Path(out_dir, "report.md").read_text())


# --------------------------------------------------------------------- train
@cli.command()
@click.option("--snapshot", default=None, type=click.Path(file_okay=False), help="ETL snapshot folder.")
@click.option("--graph", "graph_uri", default=None, help="Export this graph first instead of --snapshot.")
@click.option("--labels", "labels_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option(
    "--truth",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="Ground truth Parquet, for evaluation only.",
)
@common_options
@pass_app
def train(
    app: AppContext, snapshot: str | None, graph_uri: str | None, labels_dir: str, out_dir: str, truth: str | None
) -> None:
    """Train the edge-feature-aware RGCN and its baselines; write a model artifact."""
    from training.train import TrainingRefused, run_training

    if not snapshot and not graph_uri:
        raise click.UsageError("give --snapshot DIR or --graph URI")
    if graph_uri:
        fail(
            "--graph: a graph holds each link's lifetime totals, not the link events that decision-time "
            "training rebuilds the past from; pass --snapshot DIR written by `fraudgraph etl --snapshot DIR`"
        )
    try:
        metrics = run_training(app.settings, snapshot, labels_dir, out_dir, truth)
    except (TrainingRefused, FileNotFoundError) as exc:
        fail(str(exc))
    app.emit(metrics, lambda m: Path(out_dir, "summary.md").read_text())


# --------------------------------------------------------------------- score
@cli.command()
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default graph.uri).")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--as-of", "as_of", default=None, help="Score as of this time (default: the graph's latest activity).")
@click.option("--no-write-back", is_flag=True, default=False, help="Do not write scores to the graph.")
@common_options
@pass_app
def score(
    app: AppContext, graph_uri: str | None, model_dir: str, out_dir: str, as_of: str | None, no_write_back: bool
) -> None:
    """Score every customer, apply the decision rules, write decisions.parquet and the vertices."""
    from fraudgraph.graph import open_graph
    from fraudgraph.ml.artifact import ModelArtifact
    from fraudgraph.scoring.batch import score_graph
    from fraudgraph.timeutil import to_epoch_ms

    artifact = ModelArtifact.load(model_dir)
    with open_graph(graph_uri, app.settings, create=False) as store:
        try:
            summary = score_graph(
                store,
                artifact,
                app.settings,
                out_dir,
                to_epoch_ms(as_of) if as_of else None,
                write_back=not no_write_back,
            )
        except ValueError as exc:
            fail(str(exc))
    app.emit(
        summary,
        lambda s: (
            f"scored {s['customers']:,} customers with {s['model_version']}: "
            + ", ".join(f"{k} {v:,}" for k, v in s["decisions"].items())
        ),
    )


# ------------------------------------------------------------------- consume
@cli.command()
@click.option(
    "--source", required=True, help="file:///PATH (JSONL), - for standard input, or kafka://HOST:PORT/TOPIC?group=NAME."
)
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default graph.uri).")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option(
    "--decisions", default="-", help="Decision sink: a JSONL path, - (standard output) or kafka://HOST:PORT/TOPIC."
)
@click.option("--dead-letter", default=None, help="Rejected events (default consumer.dead_letter).")
@click.option("--ledger", default=None, help="Ledger file (default consumer.ledger).")
@click.option("--follow", is_flag=True, default=False, help="Keep tailing a file source.")
@click.option(
    "--until-idle",
    type=float,
    default=None,
    help="Stop after this many seconds without a message (Kafka; draining a topic).",
)
@common_options
@pass_app
def consume(
    app: AppContext,
    source: str,
    graph_uri: str | None,
    model_dir: str,
    decisions: str,
    dead_letter: str | None,
    ledger: str | None,
    follow: bool,
    until_idle: float | None,
) -> None:
    """Live consumer: events into the graph, scored and decided as they arrive."""
    from fraudgraph.graph import open_graph
    from fraudgraph.ml.artifact import ModelArtifact
    from fraudgraph.scoring.online import OnlineScorer
    from serving.consumer import LiveConsumer
    from serving.ledger import Ledger, LedgerMismatch, ledger_path_for
    from serving.sources import dead_letter_for, open_sink, open_source, source_name

    cfg = app.settings.consumer
    artifact = ModelArtifact.load(model_dir)
    with open_graph(graph_uri, app.settings) as store:
        try:
            led = Ledger(ledger_path_for(store, ledger or cfg.ledger))
            led.bind(store.graph_id, store.uri)
        except LedgerMismatch as exc:
            fail(str(exc))
        start = 0 if source.startswith(("kafka://", "http://", "https://")) else led.offset(source_name(source))
        src = open_source(source, start=start, follow=follow, idle_stop_s=until_idle, retry_s=cfg.broker_retry_s)
        consumer = LiveConsumer(
            store,
            OnlineScorer(store, artifact, app.settings),
            app.settings,
            led,
            open_sink(decisions, retry_s=cfg.broker_retry_s),
            open_sink(dead_letter or dead_letter_for(source, cfg.dead_letter), retry_s=cfg.broker_retry_s),
        )
        if cfg.metrics_port:
            port = consumer.metrics.serve(cfg.metrics_port)
            click.echo(f"metrics on http://127.0.0.1:{port}/metrics", err=True)
        stats = consumer.run(src)
        consumer.metrics.close()
        src.close()
    led.close()
    if app.json_output or decisions != "-":
        click.echo(json.dumps(stats, indent=2), err=decisions == "-")


# ----------------------------------------------------------------------- api
@cli.command()
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default: graph.uri from config).")
@click.option(
    "--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Model artifact folder."
)
@click.option("--host", default=None, help="Bind address (default api.host, loopback).")
@click.option("--port", type=int, default=None, help="Port (default api.port).")
@common_options
@pass_app
def api(app: AppContext, graph_uri: str | None, model_dir: str, host: str | None, port: int | None) -> None:
    """Internal query API and review console (FastAPI on uvicorn)."""
    import uvicorn

    from fraudgraph.graph import open_graph
    from fraudgraph.ml.artifact import ModelArtifact
    from fraudgraph.scoring.online import OnlineScorer
    from serving.api import create_app

    cfg = app.settings.api
    artifact = ModelArtifact.load(model_dir)
    with open_graph(graph_uri, app.settings, create=False) as store:
        web = create_app(store, OnlineScorer(store, artifact, app.settings), app.settings)
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
@common_options
@pass_app
def evaluate(app: AppContext, events_path: str, truth: str, graph_uri: str, model_dir: str, out_dir: str) -> None:
    """Replay a live stream through the real consumer and judge its decisions against ground truth.

    Writes OUT/live.json and the model's metrics.json under "live"."""
    from fraudgraph.cli.demo import replay_live

    live = replay_live(app.settings, graph_uri, Path(model_dir), Path(events_path), Path(out_dir), Path(truth))
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
    from training.train import TrainingRefused

    try:
        report = _run_main_job(app, out_dir, seeds)
    except TrainingRefused as exc:
        fail(str(exc))
    app.emit(report, lambda r: Path(r["report_md"]).read_text())


def _run_main_job(app: AppContext, out_dir: str, seeds: str | None) -> dict:
    from fraudgraph.cli.demo import run_demo, run_demo_seeds
    from fraudgraph.identity import resolve_pii_key

    if resolve_pii_key(app.settings.privacy.pii_key, app.settings.privacy.pii_key_file)[1]:
        log.warning(
            "the main job runs on synthetic worlds with the public demo PII key "
            "(privacy.allow_demo_key: true); never use it for real data"
        )
        app._settings = app.settings.model_copy(
            update={"privacy": app.settings.privacy.model_copy(update={"allow_demo_key": True})}
        )

    if seeds:
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            fail(f"--seeds: {seeds!r} is not a comma-separated list of integers")
        return run_demo_seeds(app.settings, Path(out_dir), seed_list)
    return run_demo(app.settings, Path(out_dir))


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="fraudgraph", standalone_mode=True)
    except ConfigError as exc:  # raised before a subcommand could wrap it
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
