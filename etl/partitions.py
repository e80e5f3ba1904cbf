"""What runs on the executors, one partition at a time: event rows validated and their identifiers
hashed (rejects kept with field and reason), and batched upserts into the graph (one connection per
partition, absolute aggregates, so a failed job is simply run again)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("fraudgraph.etl")


def hashed_schema() -> str:
    """The Spark schema of :func:`validate_partition`'s rows: the hashed event columns, one long per event
    tag, and the reject's field, reason and redacted record."""
    from fraudgraph.event_frames import HASH_COLUMN_BY_KIND
    from fraudgraph.schema import EVENT_TAGS

    return (
        "event_id string, event_type string, ts_ms long, customer_id string, "
        + "".join(f"{col} string, " for col in HASH_COLUMN_BY_KIND.values())
        + "amount double, "
        + "".join(f"{tag} long, " for tag in EVENT_TAGS)
        + "reject_field string, reject_reason string, record string"
    )


def validate_partition(settings_json: str) -> Callable[[Iterator[Any]], Iterator[Any]]:
    def run(batches: Iterator) -> Iterator:
        import pandas as pd

        from fraudgraph.config import Settings
        from fraudgraph.event_frames import HASH_COLUMN_BY_KIND, validate_and_hash
        from fraudgraph.event_tags import EventTagger
        from fraudgraph.identity import IdentifierHasher
        from fraudgraph.schema import EVENT_TAGS

        settings = Settings.model_validate_json(settings_json)
        hasher = IdentifierHasher.from_settings(settings.privacy)
        tagger = EventTagger(settings.event_tags)
        for pdf in batches:
            ok, rejects = validate_and_hash(pdf, hasher, tagger, settings.privacy.id_pattern)
            ok = ok.assign(reject_field=None, reject_reason=None, record=None)
            rej = pd.DataFrame(
                {
                    "event_id": rejects["event_id"],
                    "event_type": rejects["event_type"],
                    "ts_ms": None,
                    "customer_id": rejects["customer_id"],
                    **{col: None for col in HASH_COLUMN_BY_KIND.values()},
                    "amount": None,
                    **{tag: None for tag in EVENT_TAGS},
                    "reject_field": rejects["field"],
                    "reject_reason": rejects["reason"],
                    "record": rejects["record"],
                }
            )
            out = pd.concat([ok, rej], ignore_index=True) if len(rej) else ok
            yield out.astype({"ts_ms": "Int64", "amount": "float64", **{tag: "Int64" for tag in EVENT_TAGS}})

    return run


def check_rows_partition(settings_json: str, table: str) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """``mapInPandas`` function: each row of a customer, block or appeal table checked against the contract
    (:func:`etl.table_rows.check_table_rows`: the input columns plus ``reject_field``, ``reject_reason``,
    ``record``)."""

    def run(batches: Iterator) -> Iterator:
        from etl.table_rows import check_table_rows
        from fraudgraph.config import Settings
        from fraudgraph.identity import IdentifierHasher

        settings = Settings.model_validate_json(settings_json)
        hasher = IdentifierHasher.from_settings(settings.privacy)
        for pdf in batches:
            yield check_table_rows(pdf, table, hasher, settings.privacy.id_pattern)

    return run


def write_partition(uri: str, settings_json: str, what: str, batch_size: int) -> Callable[[Iterator[Any]], None]:
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
        with open_graph(uri, settings) as store, store.summaries.deferred():
            writers: dict[str, tuple[Callable[[dict], Any], Callable[[list], Any]]] = {
                # summaries are refreshed once at the end of the load, not per batch
                "customers": (customer, store.upsert_customers),
                "links": (IdentityLink.from_record, store.upsert_links),
                "customer_summaries": (
                    lambda rec: rec["customer_id"],
                    lambda b: store.summaries.refresh(customer_ids=b),
                ),
                "identifier_summaries": (
                    lambda rec: (rec["kind"], rec["value_hash"]),
                    lambda b: store.summaries.refresh(identifiers=b),
                ),
            }
            element, apply = writers[what]
            batch: list = []
            for row in rows:
                batch.append(element(row.asDict()))
                if len(batch) >= batch_size:
                    apply(batch)
                    batch = []
            if batch:
                apply(batch)

    return run
