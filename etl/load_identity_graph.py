"""Spark ETL: historical tables -> identity graph, Neptune bulk-load CSV and a training snapshot.

Run it with the CLI::

    fraudgraph etl --input WORLD_DIR --graph sqlite:///graph.db --snapshot SNAP --neptune-csv CSV --rejects REJ

or on any cluster::

    spark-submit etl/load_identity_graph.py --input s3://bucket/historical --graph wss://neptune:8182/gremlin ...

Input: a folder holding ``events``, ``customers``, ``blocks`` and ``appeals``
as Parquet (``<name>.parquet``) or CSV (``<name>.csv``) — either directly or
under ``historical/`` — or ``hive:DATABASE`` to read ``DATABASE.<name>``
tables from the metastore (set ``spark.conf.spark.sql.catalogImplementation:
hive``). Every table is checked against the input contract (:mod:`etl.contract`,
docs/input-contract.md; your own column names through ``etl.columns``) before
any Spark work.

Every event row is validated against the Event contract and its identifiers
normalised and hashed with the project's one implementation
(:func:`fraudgraph.event_frames.validate_and_hash`, applied per partition).
Bad rows go to ``REJECTS/events`` with field and reason: counted, never
dropped silently, never fatal. Writes to the graph happen on the executors
(one connection per partition, batched upserts of absolute aggregates), so a
failed job is simply run again.

This module wires the job; its parts live beside it: :mod:`etl.reading` (input tables),
:mod:`etl.partitions` (what runs on the executors) and :mod:`etl.transforms` (the DataFrame steps).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl.contract import TABLES, InputContractError, check_input
from etl.partitions import check_rows_partition, hashed_schema, validate_partition, write_partition
from etl.reading import epoch_ms_column, resolve_table
from etl.table_rows import CHECKED_TABLES, REJECT_COLUMNS
from etl.transforms import (
    customer_properties,
    identity_links,
    label_history,
    link_events,
    write_neptune_csv,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

    from fraudgraph.config import Settings

log = logging.getLogger("fraudgraph.etl")


# Over 60 lines for a reason: it is the job itself, its steps in order (read, validate and hash, link,
# write each output, count), each a call or a DataFrame expression that reads best where it is used.
def run_etl(
    spark: SparkSession,
    settings: Settings,
    input_source: str,
    graph_uri: str | None,
    *,
    snapshot: str | None = None,
    neptune_csv: str | None = None,
    rejects: str | None = None,
) -> dict[str, Any]:
    """Run the whole job on an existing Spark session; returns the summary."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    from fraudgraph.schema import EDGE_LABELS, SCHEMA_VERSION
    from fraudgraph.timeutil import now_ms

    started = time.monotonic()
    check_input(input_source, settings.etl.columns)  # before any Spark work: one line per problem
    settings_json = settings.model_dump_json()
    if graph_uri and graph_uri.startswith("sqlite:///") and not graph_uri.startswith("sqlite:////"):
        graph_uri = f"sqlite:///{Path(graph_uri[len('sqlite:///') :]).resolve()}"  # executors may chdir
    tables = {name: resolve_table(spark, input_source, name, settings.etl.columns) for name in TABLES}
    events = tables["events"]
    if "ts" in events.columns and not isinstance(events.schema["ts"].dataType, StringType):
        events = events.withColumn("ts", epoch_ms_column(events, "ts"))  # text is parsed by the validator
    processed = events.mapInPandas(validate_partition(settings_json), hashed_schema()).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    valid = processed.where(F.col("reject_reason").isNull())
    bad = processed.where(F.col("reject_reason").isNotNull())
    row_rejects = _check_table_rows(tables, settings_json)
    identity_events = link_events(valid).persist(StorageLevel.MEMORY_AND_DISK)
    links = identity_links(identity_events).persist(StorageLevel.MEMORY_AND_DISK)
    customers = customer_properties(tables["customers"], tables["blocks"], tables["appeals"]).persist(
        StorageLevel.MEMORY_AND_DISK
    )

    log.info("validating and hashing every event (counting the rows read and the rejects)")
    rows_read = {"events": processed.count()}
    log.info("checking every customer, block and appeal row against the contract")
    rows_read |= {name: checked.count() for name, (checked, _) in row_rejects.items()}
    log.info("counting the rejects by reason")
    rejected_rows = {name: _by_reason(bad_rows) for name, (_, bad_rows) in row_rejects.items()}
    rejected = _by_reason(bad)
    if rejects:
        _write_rejects(bad, rejects)
        for name, (_, bad_rows) in row_rejects.items():
            bad_rows.select(
                F.col("reject_field").alias("field"), F.col("reject_reason").alias("reason"), "record"
            ).write.mode("overwrite").json(f"{rejects}/{name}")
    if snapshot:
        _write_snapshot(snapshot, customers, links, identity_events, label_history(tables["blocks"], tables["appeals"]))
    if neptune_csv:
        log.info("writing Neptune bulk-load CSV to %s", neptune_csv)
        write_neptune_csv(customers, links, neptune_csv)
    if graph_uri:
        _write_graph(graph_uri, settings, customers, links)

    vertices, link_counts = _written_counts(customers, links)
    summary = {
        "input": input_source,
        "graph": graph_uri,
        "rows_read": rows_read,
        "events_valid": rows_read["events"] - sum(rejected.values()),
        "rejected": {"total": sum(rejected.values()), "by_reason": dict(sorted(rejected.items()))},
        "rejected_rows": {name: dict(sorted(r.items())) for name, r in rejected_rows.items()},
        "written": {"vertices": vertices, "edges": {e: link_counts.get(e, 0) for e in EDGE_LABELS}},
        "outputs": {"snapshot": snapshot, "neptune_csv": neptune_csv, "rejects": rejects},
        "wall_s": round(time.monotonic() - started, 2),
    }
    if snapshot:
        rows = {"customers": customers.count(), "links": sum(link_counts.values())}
        rows["identifiers"] = sum(vertices.values()) - vertices["customer"]
        manifest = {"schema_version": SCHEMA_VERSION, "created_at_ms": now_ms(), "source": "etl", "rows": rows}
        (Path(snapshot) / "manifest.json").write_text(json.dumps(manifest, indent=2))
    for df in (processed, identity_events, links, customers, *(checked for checked, _ in row_rejects.values())):
        df.unpersist()
    return summary


def _check_table_rows(
    tables: dict[str, SparkDataFrame], settings_json: str
) -> dict[str, tuple[SparkDataFrame, SparkDataFrame]]:
    """Every customer, block and appeal row checked against the contract before anything reads them:
    ``tables`` keep the rows that pass; returns per table ``(checked, rejects)``, both persisted frames."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    row_rejects = {}
    for name in CHECKED_TABLES:
        # a new schema: StructType.add would change the table's own (cached) schema in place
        schema = StructType([*tables[name].schema.fields, *(StructField(c, StringType()) for c in REJECT_COLUMNS)])
        checked = (
            tables[name]
            .mapInPandas(check_rows_partition(settings_json, name), schema)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        tables[name] = checked.where(F.col("reject_reason").isNull()).drop(*REJECT_COLUMNS)
        row_rejects[name] = (checked, checked.where(F.col("reject_reason").isNotNull()))
    return row_rejects


def _by_reason(rejects: SparkDataFrame) -> dict[str, int]:
    """``{"<field>: <reason>": count}`` of a rejects frame."""
    return {
        f"{r['reject_field']}: {r['reject_reason']}": r["count"]
        for r in rejects.groupBy("reject_field", "reject_reason").count().collect()
    }


def _write_rejects(bad, rejects: str) -> None:
    """Rejected rows with field and reason (the record redacted by the validator) as JSON."""
    from pyspark.sql import functions as F

    log.info("writing rejects to %s", rejects)
    bad.select(
        "event_id",
        "customer_id",
        "event_type",
        F.col("reject_field").alias("field"),
        F.col("reject_reason").alias("reason"),
        "record",
    ).write.mode("overwrite").json(f"{rejects}/events")


def _write_snapshot(snapshot: str, customers, links, identity_events, labels) -> None:
    """The training snapshot: customers, links, the hashed link events (point-in-time history), the
    label history and the identifiers, as Parquet (the manifest is written once the counts are known)."""
    log.info("writing snapshot to %s", snapshot)
    Path(snapshot).mkdir(parents=True, exist_ok=True)
    customers.write.mode("overwrite").parquet(f"{snapshot}/customers.parquet")
    links.write.mode("overwrite").parquet(f"{snapshot}/links.parquet")
    identity_events.write.mode("overwrite").parquet(f"{snapshot}/link_events.parquet")
    labels.write.mode("overwrite").parquet(f"{snapshot}/label_history.parquet")
    links.select("identifier_id", "kind", "value_hash").dropDuplicates(["identifier_id"]).write.mode(
        "overwrite"
    ).parquet(f"{snapshot}/identifiers.parquet")


def _write_graph(graph_uri: str, settings, customers, links) -> None:
    """Customers, then links, from ``etl.write_partitions`` executor partitions (links partitioned by
    identifier, so no two partitions write one identifier), then the link summaries once per vertex."""
    from fraudgraph.graph import open_graph

    log.info("writing to graph %s", graph_uri)
    settings_json = settings.model_dump_json()
    with open_graph(graph_uri, settings) as store:  # create the store once before the executors connect
        refreshed_apart = store.summaries.refreshed_apart
    n = settings.etl.write_partitions
    batch = settings.etl.write_batch_size
    customers.repartition(n).foreachPartition(write_partition(graph_uri, settings_json, "customers", batch))
    links.repartition(n, "value_hash").foreachPartition(write_partition(graph_uri, settings_json, "links", batch))
    if refreshed_apart:  # once per vertex after every link is in, not once per batch that touched it
        log.info("refreshing link summaries")
        links.select("customer_id").distinct().repartition(n).foreachPartition(
            write_partition(graph_uri, settings_json, "customer_summaries", batch)
        )
        links.select("kind", "value_hash").distinct().repartition(n).foreachPartition(
            write_partition(graph_uri, settings_json, "identifier_summaries", batch)
        )


def _written_counts(customers, links) -> tuple[dict[str, int], dict[str, int]]:
    """Vertices per label (customers with only links count too) and edges per label."""
    from pyspark.sql import functions as F

    from fraudgraph.schema import VERTEX_LABELS

    per_kind = (
        links.groupBy("kind", "edge_label")
        .agg(F.count(F.lit(1)).alias("edges"), F.countDistinct("value_hash").alias("identifiers"))
        .collect()
    )
    link_counts = {r["edge_label"]: r["edges"] for r in per_kind}
    vertices = {label: 0 for label in VERTEX_LABELS}
    vertices.update({r["kind"]: r["identifiers"] for r in per_kind})
    link_only = (
        links.select("customer_id").distinct().join(customers.select("customer_id"), "customer_id", "left_anti").count()
    )
    vertices["customer"] = customers.count() + link_only
    return vertices, link_counts


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point."""
    ap = argparse.ArgumentParser(description="fraudgraph Spark ETL: historical tables into the identity graph")
    ap.add_argument("--input", required=True)
    ap.add_argument("--graph", default=None)
    ap.add_argument("--snapshot", default=None)
    ap.add_argument("--neptune-csv", default=None)
    ap.add_argument("--rejects", default=None)
    ap.add_argument("--master", default=None)
    ap.add_argument("--config", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from etl.spark_session import build_spark_session
    from fraudgraph.config import load_settings
    from fraudgraph.logs import configure_logging

    settings = load_settings(args.config)
    configure_logging(settings.logging.level)
    try:
        check_input(args.input, settings.etl.columns)
    except InputContractError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    spark = build_spark_session(settings.spark, args.master)
    summary = run_etl(
        spark,
        settings,
        args.input,
        args.graph or settings.graph.uri,
        snapshot=args.snapshot,
        neptune_csv=args.neptune_csv,
        rejects=args.rejects,
    )
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"ETL of {s['input']} -> {s['graph']} in {s['wall_s']} s",
        "rows read: " + ", ".join(f"{k} {v:,}" for k, v in s["rows_read"].items()),
        f"events valid: {s['events_valid']:,}; rejected: {s['rejected']['total']:,}",
    ]
    lines += [f"  {reason}: {n:,}" for reason, n in s["rejected"]["by_reason"].items()]
    for table, reasons in s.get("rejected_rows", {}).items():
        if reasons:
            lines.append(f"{table} rows rejected: {sum(reasons.values()):,}")
            lines += [f"  {reason}: {n:,}" for reason, n in reasons.items()]
    lines.append("vertices: " + ", ".join(f"{k} {v:,}" for k, v in s["written"]["vertices"].items()))
    lines.append("edges: " + ", ".join(f"{k} {v:,}" for k, v in s["written"]["edges"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
