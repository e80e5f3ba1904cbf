"""The batch stages: generate a world, ETL, profile, labels, train, score."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from fraudgraph.cli.context import AppContext, cli, common_options, fail, needs_pii_key, pass_app, truth_option

log = logging.getLogger("fraudgraph.cli")


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
@needs_pii_key
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
@truth_option
@click.option("--no-write-back", is_flag=True, default=False, help="Do not write labels to the graph.")
@common_options
@needs_pii_key
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
@truth_option
@common_options
@needs_pii_key
@pass_app
def train(
    app: AppContext, snapshot: str | None, graph_uri: str | None, labels_dir: str, out_dir: str, truth: str | None
) -> None:
    """Train the edge-feature-aware RGCN and its baselines; write a model artifact."""
    from training.decision_graph import TrainingRefused
    from training.train import run_training

    if graph_uri:
        fail(
            "--graph: a graph holds each link's lifetime totals, not the link events that decision-time "
            "training rebuilds the past from; pass --snapshot DIR written by `fraudgraph etl --snapshot DIR`"
        )
    if not snapshot:
        raise click.UsageError("give --snapshot DIR or --graph URI")
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
@needs_pii_key
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
