"""The ETL's DataFrame steps: link events, identity links (absolute aggregates per customer and
identifier), customer properties with their label history, and the Neptune bulk-load CSV."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from etl.reading import epoch_ms_column

if TYPE_CHECKING:
    from pyspark.sql import Column
    from pyspark.sql import DataFrame as SparkDataFrame

log = logging.getLogger("fraudgraph.etl")


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


def screened_text(name: str) -> Column:
    """Column ``name`` as text screened by the one rule (:func:`fraudgraph.redaction.mask_free_text`: no
    card number or email address is stored in the graph, the snapshot or the Neptune CSV)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    from fraudgraph.redaction import mask_free_text

    screen = F.udf(lambda v: None if v is None else mask_free_text(v), StringType())
    return screen(F.col(name).cast("string"))


def link_events(valid: SparkDataFrame) -> SparkDataFrame:
    """One row per identifier an identity event carried: event_id, customer_id, kind, value_hash (keyed
    hash), ts (epoch ms), event_type and the event's tags (one column each). Label events (block,
    unblock, appeal) are left out: they are label history, never links. The snapshot keeps this table
    so any stage can rebuild the graph as of any time (:class:`fraudgraph.graph.history.LinkHistory`)."""
    from pyspark.sql import functions as F

    from fraudgraph.event_frames import HASH_COLUMN_BY_KIND
    from fraudgraph.schema import EVENT_TAGS, LINK_EVENT_TYPES

    identity = valid.where(F.col("event_type").isin(*LINK_EVENT_TYPES))
    parts = [
        identity.where(F.col(col).isNotNull()).select(
            "event_id",
            "customer_id",
            F.lit(kind).alias("kind"),
            F.col(col).alias("value_hash"),
            F.col("ts_ms").alias("ts"),
            "event_type",
            *[F.coalesce(F.col(tag), F.lit(0)).cast("long").alias(tag) for tag in EVENT_TAGS],
        )
        for kind, col in HASH_COLUMN_BY_KIND.items()
    ]
    exploded = parts[0]
    for p in parts[1:]:
        exploded = exploded.unionByName(p)
    return exploded


def identity_links(events: SparkDataFrame) -> SparkDataFrame:
    """(customer, kind, value_hash) aggregates of :func:`link_events`: first/last seen, event count,
    counts per type and per tag."""
    from pyspark.sql import functions as F

    from fraudgraph.schema import EDGE_LABEL_BY_KIND, EVENT_TAGS, LINK_COUNT_PROPERTIES, LINK_EVENT_TYPES

    exploded = events.withColumnRenamed("ts", "ts_ms")
    aggs = [
        F.min("ts_ms").alias("first_seen"),
        F.max("ts_ms").alias("last_seen"),
        F.count(F.lit(1)).alias("event_count"),
    ]
    aggs += [
        F.sum(F.when(F.col("event_type") == t, 1).otherwise(0)).cast("long").alias(LINK_COUNT_PROPERTIES[t])
        for t in LINK_EVENT_TYPES
    ]
    aggs += [F.sum(F.col(tag)).cast("long").alias(LINK_COUNT_PROPERTIES[tag]) for tag in EVENT_TAGS]
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
        *LINK_COUNT_PROPERTIES.values(),
    )


def customer_properties(customers: SparkDataFrame, blocks: SparkDataFrame, appeals: SparkDataFrame) -> SparkDataFrame:
    """Customer vertex properties: profile, latest block, latest appeal (with when it was decided), raw
    is_fraud. The whole history is kept by :func:`label_history`."""
    from pyspark.sql import functions as F

    profile = (
        customers.select(
            F.col("customer_id").cast("string").alias("customer_id"),
            epoch_ms_column(customers, "signup_ts").alias("signup_ts"),
            screened_text("country").alias("country"),
            F.col("lifetime_value").cast("double").alias("lifetime_value"),
        )
        .where(F.col("customer_id").isNotNull())
        .dropDuplicates(["customer_id"])
    )
    b = blocks.select(
        F.col("customer_id").cast("string").alias("customer_id"),
        epoch_ms_column(blocks, "blocked_at").alias("blocked_at"),
        F.col("source").cast("string").alias("source"),
        screened_text("reason").alias("reason"),
    )
    b = b.groupBy("customer_id").agg(
        F.max("blocked_at").alias("blocked_at"),
        F.max_by("source", "blocked_at").alias("block_source"),
        F.max_by("reason", "blocked_at").alias("block_reason"),
    )
    a = appeals.select(
        F.col("customer_id").cast("string").alias("customer_id"),
        epoch_ms_column(appeals, "contacted_at").alias("contacted_at"),
        screened_text("outcome").alias("outcome"),
        epoch_ms_column(appeals, "resolved_at").alias("resolved_at"),
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


def label_history(blocks: SparkDataFrame, appeals: SparkDataFrame) -> SparkDataFrame:
    """Every block and appeal, one row each: customer_id, kind (block | appeal), at (epoch ms), source,
    reason, outcome, resolved_at (epoch ms, null while pending). Label history only, never features."""
    from pyspark.sql import functions as F

    b = blocks.select(
        F.col("customer_id").cast("string").alias("customer_id"),
        F.lit("block").alias("kind"),
        epoch_ms_column(blocks, "blocked_at").alias("at"),
        F.col("source").cast("string").alias("source"),
        screened_text("reason").alias("reason"),
        F.lit(None).cast("string").alias("outcome"),
        F.lit(None).cast("long").alias("resolved_at"),
    )
    a = appeals.select(
        F.col("customer_id").cast("string").alias("customer_id"),
        F.lit("appeal").alias("kind"),
        epoch_ms_column(appeals, "contacted_at").alias("at"),
        F.lit(None).cast("string").alias("source"),
        F.lit(None).cast("string").alias("reason"),
        screened_text("outcome").alias("outcome"),
        epoch_ms_column(appeals, "resolved_at").alias("resolved_at"),
    )
    return b.unionByName(a).where(F.col("customer_id").isNotNull())


def _formula_safe(name: str):
    """A text column whose cells cannot run as spreadsheet formulas when the CSV is opened in one: a cell that
    starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'`` (OWASP's rule)."""
    from pyspark.sql import functions as F

    col = F.col(name)
    return F.when(col.rlike("^[=+\\-@\t\r]"), F.concat(F.lit("'"), col)).otherwise(col)


def write_neptune_csv(customers: SparkDataFrame, links: SparkDataFrame, out: str) -> None:
    """Gremlin load-data format: ``~id``, ``~label``, ``~from``, ``~to`` and typed property headers."""
    from pyspark.sql import functions as F

    from fraudgraph.schema import LINK_COUNT_PROPERTIES

    opts: dict[str, bool | str] = {"header": True, "escape": '"', "quoteAll": False}
    cust = customers.select(
        F.concat(F.lit("customer:"), "customer_id").alias("~id"),
        F.lit("customer").alias("~label"),
        *[
            (_formula_safe(c) if t == "String" else F.col(c)).alias(f"{c}:{t}")
            for c, t in CUSTOMER_PROPERTY_TYPES.items()
        ],
    )
    cust.write.mode("overwrite").options(**opts).csv(f"{out}/vertices_customer")
    idents = links.select(
        F.col("identifier_id").alias("~id"),
        F.col("kind").alias("~label"),
        F.col("value_hash").alias("value_hash:String"),
    ).dropDuplicates(["~id"])
    idents.write.mode("overwrite").options(**opts).csv(f"{out}/vertices_identifier")
    props = ["first_seen", "last_seen", "event_count", *LINK_COUNT_PROPERTIES.values()]
    edges = links.select(
        F.concat_ws(":", "edge_label", "customer_id", "value_hash").alias("~id"),
        F.concat(F.lit("customer:"), "customer_id").alias("~from"),
        F.col("identifier_id").alias("~to"),
        F.col("edge_label").alias("~label"),
        *[F.col(p).alias(f"{p}:Long") for p in props],
    )
    edges.write.mode("overwrite").options(**opts).csv(f"{out}/edges")
