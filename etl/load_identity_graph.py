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
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from etl.contract import TABLES, InputContractError, check_input

log = logging.getLogger("fraudgraph.etl")

HASHED_SCHEMA = (
    "event_id string, event_type string, ts_ms long, customer_id string, device_hash string, ip_hash string, "
    "email_hash string, card_hash string, amount double, reject_field string, reject_reason string, "
    "record string"
)
CUSTOMER_PROPERTY_TYPES = {  # snapshot column -> Neptune CSV type
    "signup_ts": "Long",
    "country": "String",
    "lifetime_value": "Double",
    "blocked_at": "Long",
    "block_source": "String",
    "block_reason": "String",
    "appealed_at": "Long",
    "appeal_outcome": "String",
    "appeal_resolved_at": "Long",
    "unblocked_at": "Long",
    "is_fraud": "Int",
}
DECIDED_APPEAL_OUTCOMES = ("unblocked", "upheld")


# ----------------------------------------------------------------------- input
def resolve_table(spark, source: str, name: str, columns=None):
    """A DataFrame for table ``name`` from a folder (Parquet or CSV) or ``hive:DB``, in the contract's
    column names (``etl.columns`` renames), with absent optional columns as nulls. Raises
    :class:`etl.contract.InputContractError` when the table breaks the contract."""
    from pyspark.sql import functions as F

    from etl.contract import CONTRACT, InputContractError, check_columns, renames, table_file

    if source.startswith("hive:"):
        df = spark.table(f"{source[len('hive:') :]}.{name}")
    else:
        path = table_file(source, name)
        if path is None:
            raise InputContractError([f"{name}: no {name}.parquet or {name}.csv under {source} (or its historical/)"])
        df = (
            spark.read.parquet(str(path))
            if path.suffix == ".parquet"
            else spark.read.option("header", True).option("escape", '"').csv(str(path))
        )
    problems = check_columns(name, {f.name: _spark_family(f.dataType) for f in df.schema.fields}, columns)
    if problems:
        raise InputContractError(problems)
    for theirs, ours in renames(columns, name).items():
        df = df.withColumnRenamed(theirs, ours)
    for col in CONTRACT[name]:
        if col.name not in df.columns:
            df = df.withColumn(col.name, F.lit(None).cast("double" if col.kind == "number" else "string"))
    return df


def _spark_family(dtype) -> str:
    """The contract's type family of a Spark type (as :func:`etl.contract.file_schema` names Arrow's)."""
    name = dtype.typeName()
    return {"integer": "int", "long": "int", "short": "int", "byte": "int", "timestamp_ntz": "timestamp"}.get(
        name, name
    )


def _epoch_ms(df, column: str):
    """Epoch ms (long) of a timestamp, ISO string or number column (numbers in epoch seconds or ms, as
    :func:`fraudgraph.timeutil.epoch_number_ms` reads them)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType, StringType, TimestampNTZType, TimestampType

    from fraudgraph.timeutil import EPOCH_SECONDS_BELOW

    dtype = df.schema[column].dataType
    col = F.col(column)

    def from_number(n):
        return F.when(F.abs(n) < EPOCH_SECONDS_BELOW, n * 1000).otherwise(n).cast("long")

    if isinstance(dtype, (TimestampType, TimestampNTZType)):
        return F.unix_millis(col.cast("timestamp"))
    if isinstance(dtype, NumericType):
        return from_number(col.cast("double"))
    if isinstance(dtype, StringType):
        return F.coalesce(
            F.when(col.rlike(r"^-?\d+$"), from_number(col.cast("long"))), F.unix_millis(F.try_to_timestamp(col))
        )
    return F.unix_millis(col.cast("timestamp"))


# ------------------------------------------------------------- per partition
def _validate_partition(settings_json: str):
    def run(batches: Iterator) -> Iterator:
        import pandas as pd

        from fraudgraph.config import Settings
        from fraudgraph.event_frames import validate_and_hash
        from fraudgraph.identity import IdentifierHasher

        hasher = IdentifierHasher.from_settings(Settings.model_validate_json(settings_json).privacy)
        for pdf in batches:
            ok, rejects = validate_and_hash(pdf, hasher)
            ok = ok.assign(reject_field=None, reject_reason=None, record=None)
            rej = pd.DataFrame(
                {
                    "event_id": rejects["event_id"],
                    "event_type": rejects["event_type"],
                    "ts_ms": None,
                    "customer_id": rejects["customer_id"],
                    "device_hash": None,
                    "ip_hash": None,
                    "email_hash": None,
                    "card_hash": None,
                    "amount": None,
                    "reject_field": rejects["field"],
                    "reject_reason": rejects["reason"],
                    "record": rejects["record"],
                }
            )
            out = pd.concat([ok, rej], ignore_index=True) if len(rej) else ok
            yield out.astype({"ts_ms": "Int64", "amount": "float64"})

    return run


def _write_partition(uri: str, settings_json: str, what: str, batch_size: int):
    """Write a partition to the graph in batches: ``customers`` or ``links`` rows, or, once every link is
    in, the link summaries of ``customer_summaries`` (customer_id) or ``identifier_summaries``
    (kind, value_hash) rows."""

    def run(rows: Iterator) -> None:
        from fraudgraph.config import Settings
        from fraudgraph.graph import CustomerUpsert, IdentityLink, open_graph

        def customer(rec):
            return CustomerUpsert(
                rec["customer_id"], {k: v for k, v in rec.items() if k != "customer_id" and v is not None}
            )

        settings = Settings.model_validate_json(settings_json)
        with open_graph(uri, settings) as store:
            element, apply = {  # summaries are refreshed once at the end of the load, not per batch
                "customers": (customer, lambda b: store.upsert_customers(b, summaries=False)),
                "links": (IdentityLink.from_record, lambda b: store.upsert_links(b, summaries=False)),
                "customer_summaries": (
                    lambda rec: rec["customer_id"],
                    lambda b: store.refresh_summaries(customer_ids=b),
                ),
                "identifier_summaries": (
                    lambda rec: (rec["kind"], rec["value_hash"]),
                    lambda b: store.refresh_summaries(identifiers=b),
                ),
            }[what]
            batch: list = []
            for row in rows:
                batch.append(element(row.asDict()))
                if len(batch) >= batch_size:
                    apply(batch)
                    batch = []
            if batch:
                apply(batch)

    return run


# ------------------------------------------------------------------ the job
def link_events(valid):
    """One row per identifier an identity event carried: event_id, customer_id, kind, value_hash (keyed
    hash), ts (epoch ms), event_type. Label events (block, unblock, appeal) are left out: they are
    label history, never links. The snapshot keeps this table so any stage can rebuild the graph as
    of any time (:class:`fraudgraph.graph.history.LinkHistory`)."""
    from pyspark.sql import functions as F

    from fraudgraph.event_frames import HASH_COLUMN_BY_KIND
    from fraudgraph.schema import LINK_EVENT_TYPES

    identity = valid.where(F.col("event_type").isin(*LINK_EVENT_TYPES))
    parts = [
        identity.where(F.col(col).isNotNull()).select(
            "event_id",
            "customer_id",
            F.lit(kind).alias("kind"),
            F.col(col).alias("value_hash"),
            F.col("ts_ms").alias("ts"),
            "event_type",
        )
        for kind, col in HASH_COLUMN_BY_KIND.items()
    ]
    exploded = parts[0]
    for p in parts[1:]:
        exploded = exploded.unionByName(p)
    return exploded


def identity_links(events):
    """(customer, kind, value_hash) aggregates of :func:`link_events`: first/last seen, event count,
    counts per type."""
    from pyspark.sql import functions as F

    from fraudgraph.schema import COUNT_PROPERTY_BY_TYPE, EDGE_LABEL_BY_KIND

    exploded = events.withColumnRenamed("ts", "ts_ms")
    aggs = [
        F.min("ts_ms").alias("first_seen"),
        F.max("ts_ms").alias("last_seen"),
        F.count(F.lit(1)).alias("event_count"),
    ]
    aggs += [
        F.sum(F.when(F.col("event_type") == t, 1).otherwise(0)).cast("long").alias(p)
        for t, p in COUNT_PROPERTY_BY_TYPE.items()
    ]
    links = exploded.groupBy("customer_id", "kind", "value_hash").agg(*aggs)
    label = F.create_map(*[x for k, v in EDGE_LABEL_BY_KIND.items() for x in (F.lit(k), F.lit(v))])
    return links.select(
        label[F.col("kind")].alias("edge_label"),
        "customer_id",
        F.concat_ws(":", "kind", "value_hash").alias("identifier_id"),
        "kind",
        "value_hash",
        "first_seen",
        "last_seen",
        "event_count",
        *COUNT_PROPERTY_BY_TYPE.values(),
    )


def customer_properties(customers, blocks, appeals):
    """Customer vertex properties: profile, latest block, latest appeal (with when it was decided), raw
    is_fraud. The whole history is kept by :func:`label_history`."""
    from pyspark.sql import functions as F

    profile = (
        customers.select(
            F.col("customer_id").cast("string").alias("customer_id"),
            _epoch_ms(customers, "signup_ts").alias("signup_ts"),
            F.col("country").cast("string").alias("country"),
            F.col("lifetime_value").cast("double").alias("lifetime_value"),
        )
        .where(F.col("customer_id").isNotNull())
        .dropDuplicates(["customer_id"])
    )
    b = blocks.select(
        F.col("customer_id").cast("string").alias("customer_id"),
        _epoch_ms(blocks, "blocked_at").alias("blocked_at"),
        F.col("source").cast("string").alias("source"),
        F.col("reason").cast("string").alias("reason"),
    )
    b = b.groupBy("customer_id").agg(
        F.max("blocked_at").alias("blocked_at"),
        F.max_by("source", "blocked_at").alias("block_source"),
        F.max_by("reason", "blocked_at").alias("block_reason"),
    )
    a = appeals.select(
        F.col("customer_id").cast("string").alias("customer_id"),
        _epoch_ms(appeals, "contacted_at").alias("contacted_at"),
        F.col("outcome").cast("string").alias("outcome"),
        _epoch_ms(appeals, "resolved_at").alias("resolved_at"),
    )
    # a decided appeal without a resolution time counts from its contact (docs/input-contract.md)
    resolved = F.when(
        F.col("outcome").isin(*DECIDED_APPEAL_OUTCOMES), F.coalesce(F.col("resolved_at"), F.col("contacted_at"))
    )
    a = (
        a.withColumn("resolved", resolved)
        .groupBy("customer_id")
        .agg(
            F.max("contacted_at").alias("appealed_at"),
            F.max_by("outcome", "contacted_at").alias("appeal_outcome"),
            F.max_by("resolved", "contacted_at").alias("appeal_resolved_at"),
            F.max(F.when(F.col("outcome") == "unblocked", F.col("resolved"))).alias("unblocked_at"),
        )
    )
    props = profile.join(b, "customer_id", "left").join(a, "customer_id", "left")
    return props.withColumn("is_fraud", F.when(F.col("blocked_at").isNotNull(), 1).otherwise(0)).select(
        "customer_id", *CUSTOMER_PROPERTY_TYPES
    )


def label_history(blocks, appeals):
    """Every block and appeal, one row each: customer_id, kind (block | appeal), at (epoch ms), source,
    reason, outcome, resolved_at (epoch ms, null while pending). Label history only, never features."""
    from pyspark.sql import functions as F

    b = blocks.select(
        F.col("customer_id").cast("string").alias("customer_id"),
        F.lit("block").alias("kind"),
        _epoch_ms(blocks, "blocked_at").alias("at"),
        F.col("source").cast("string").alias("source"),
        F.col("reason").cast("string").alias("reason"),
        F.lit(None).cast("string").alias("outcome"),
        F.lit(None).cast("long").alias("resolved_at"),
    )
    a = appeals.select(
        F.col("customer_id").cast("string").alias("customer_id"),
        F.lit("appeal").alias("kind"),
        _epoch_ms(appeals, "contacted_at").alias("at"),
        F.lit(None).cast("string").alias("source"),
        F.lit(None).cast("string").alias("reason"),
        F.col("outcome").cast("string").alias("outcome"),
        _epoch_ms(appeals, "resolved_at").alias("resolved_at"),
    )
    return b.unionByName(a).where(F.col("customer_id").isNotNull())


def write_neptune_csv(customers, links, out: str) -> None:
    """Gremlin load-data format: ``~id``, ``~label``, ``~from``, ``~to`` and typed property headers."""
    from pyspark.sql import functions as F

    from fraudgraph.schema import COUNT_PROPERTY_BY_TYPE

    opts = {"header": True, "escape": '"', "quoteAll": False}
    cust = customers.select(
        F.concat(F.lit("customer:"), "customer_id").alias("~id"),
        F.lit("customer").alias("~label"),
        *[F.col(c).alias(f"{c}:{t}") for c, t in CUSTOMER_PROPERTY_TYPES.items()],
    )
    cust.write.mode("overwrite").options(**opts).csv(f"{out}/vertices_customer")
    idents = links.select(
        F.col("identifier_id").alias("~id"),
        F.col("kind").alias("~label"),
        F.col("value_hash").alias("value_hash:String"),
    ).dropDuplicates(["~id"])
    idents.write.mode("overwrite").options(**opts).csv(f"{out}/vertices_identifier")
    props = ["first_seen", "last_seen", "event_count", *COUNT_PROPERTY_BY_TYPE.values()]
    edges = links.select(
        F.concat_ws(":", "edge_label", "customer_id", "value_hash").alias("~id"),
        F.concat(F.lit("customer:"), "customer_id").alias("~from"),
        F.col("identifier_id").alias("~to"),
        F.col("edge_label").alias("~label"),
        *[F.col(p).alias(f"{p}:Long") for p in props],
    )
    edges.write.mode("overwrite").options(**opts).csv(f"{out}/edges")


def run_etl(
    spark,
    settings,
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

    from fraudgraph.schema import EDGE_LABELS, SCHEMA_VERSION, VERTEX_LABELS
    from fraudgraph.timeutil import now_ms

    started = time.monotonic()
    check_input(input_source, settings.etl.columns)  # before any Spark work: one line per problem
    settings_json = settings.model_dump_json()
    if graph_uri and graph_uri.startswith("sqlite:///") and not graph_uri.startswith("sqlite:////"):
        graph_uri = f"sqlite:///{Path(graph_uri[len('sqlite:///') :]).resolve()}"  # executors may chdir
    tables = {name: resolve_table(spark, input_source, name, settings.etl.columns) for name in TABLES}
    events = tables["events"]
    if "ts" in events.columns and not isinstance(events.schema["ts"].dataType, StringType):
        events = events.withColumn("ts", _epoch_ms(events, "ts"))  # text is parsed by the validator
    log.info("validating and hashing events")
    processed = events.mapInPandas(_validate_partition(settings_json), HASHED_SCHEMA).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    valid = processed.where(F.col("reject_reason").isNull())
    bad = processed.where(F.col("reject_reason").isNotNull())
    identity_events = link_events(valid).persist(StorageLevel.MEMORY_AND_DISK)
    links = identity_links(identity_events).persist(StorageLevel.MEMORY_AND_DISK)
    customers = customer_properties(tables["customers"], tables["blocks"], tables["appeals"]).persist(
        StorageLevel.MEMORY_AND_DISK
    )

    rows_read = {name: (processed if name == "events" else df).count() for name, df in tables.items()}
    rejected = {
        f"{r['reject_field']}: {r['reject_reason']}": r["count"]
        for r in bad.groupBy("reject_field", "reject_reason").count().collect()
    }
    if rejects:
        log.info("writing rejects to %s", rejects)
        bad.select(
            "event_id",
            "customer_id",
            "event_type",
            F.col("reject_field").alias("field"),
            F.col("reject_reason").alias("reason"),
            "record",
        ).write.mode("overwrite").json(f"{rejects}/events")
    if snapshot:
        log.info("writing snapshot to %s", snapshot)
        Path(snapshot).mkdir(parents=True, exist_ok=True)
        customers.write.mode("overwrite").parquet(f"{snapshot}/customers.parquet")
        links.write.mode("overwrite").parquet(f"{snapshot}/links.parquet")
        identity_events.write.mode("overwrite").parquet(f"{snapshot}/link_events.parquet")
        label_history(tables["blocks"], tables["appeals"]).write.mode("overwrite").parquet(
            f"{snapshot}/label_history.parquet"
        )
        links.select("identifier_id", "kind", "value_hash").dropDuplicates(["identifier_id"]).write.mode(
            "overwrite"
        ).parquet(f"{snapshot}/identifiers.parquet")
    if neptune_csv:
        log.info("writing Neptune bulk-load CSV to %s", neptune_csv)
        write_neptune_csv(customers, links, neptune_csv)
    if graph_uri:
        log.info("writing to graph %s", graph_uri)
        from fraudgraph.graph import open_graph

        with open_graph(graph_uri, settings) as store:  # create the store once before the executors connect
            keeps_summaries = store.keeps_summaries
        n = settings.etl.write_partitions
        batch = settings.etl.write_batch_size
        customers.repartition(n).foreachPartition(_write_partition(graph_uri, settings_json, "customers", batch))
        links.repartition(n, "value_hash").foreachPartition(_write_partition(graph_uri, settings_json, "links", batch))
        if keeps_summaries:  # once per vertex after every link is in, not once per batch that touched it
            log.info("refreshing link summaries")
            links.select("customer_id").distinct().repartition(n).foreachPartition(
                _write_partition(graph_uri, settings_json, "customer_summaries", batch)
            )
            links.select("kind", "value_hash").distinct().repartition(n).foreachPartition(
                _write_partition(graph_uri, settings_json, "identifier_summaries", batch)
            )

    per_kind = (
        links.groupBy("kind", "edge_label")
        .agg(F.count(F.lit(1)).alias("edges"), F.countDistinct("value_hash").alias("identifiers"))
        .collect()
    )
    link_counts = {r["edge_label"]: r["edges"] for r in per_kind}
    vertices = {label: 0 for label in VERTEX_LABELS}
    vertices.update({r["kind"]: r["identifiers"] for r in per_kind})
    n_customers = customers.count()
    link_only = (
        links.select("customer_id").distinct().join(customers.select("customer_id"), "customer_id", "left_anti").count()
    )
    vertices["customer"] = n_customers + link_only
    summary = {
        "input": input_source,
        "graph": graph_uri,
        "rows_read": rows_read,
        "events_valid": rows_read["events"] - sum(rejected.values()),
        "rejected": {"total": sum(rejected.values()), "by_reason": dict(sorted(rejected.items()))},
        "written": {"vertices": vertices, "edges": {e: link_counts.get(e, 0) for e in EDGE_LABELS}},
        "outputs": {"snapshot": snapshot, "neptune_csv": neptune_csv, "rejects": rejects},
        "wall_s": round(time.monotonic() - started, 2),
    }
    if snapshot:
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "created_at_ms": now_ms(),
            "source": "etl",
            "rows": {
                "customers": n_customers,
                "links": sum(link_counts.values()),
                "identifiers": sum(vertices.values()) - vertices["customer"],
            },
        }
        (Path(snapshot) / "manifest.json").write_text(json.dumps(manifest, indent=2))
    for df in (processed, identity_events, links, customers):
        df.unpersist()
    return summary


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
    lines.append("vertices: " + ", ".join(f"{k} {v:,}" for k, v in s["written"]["vertices"].items()))
    lines.append("edges: " + ", ".join(f"{k} {v:,}" for k, v in s["written"]["edges"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
