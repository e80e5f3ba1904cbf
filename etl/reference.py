"""Single-process pandas computation of the ETL's aggregates.

The test suite compares the Spark job's snapshot with this, and
``bench/etl.py`` times both on the same world. Same validation and hashing
(:func:`fraudgraph.event_frames.validate_and_hash`), independent aggregation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from etl.table_rows import CHECKED_TABLES, valid_rows
from fraudgraph.event_frames import HASH_COLUMN_BY_KIND, validate_and_hash
from fraudgraph.event_tags import EventTagger
from fraudgraph.graph.history import LINK_EVENT_COLUMNS
from fraudgraph.identity import IdentifierHasher
from fraudgraph.redaction import DEFAULT_ID_PATTERN, mask_free_text
from fraudgraph.schema import EDGE_LABEL_BY_KIND, EVENT_TAGS, LINK_COUNT_PROPERTIES, LINK_EVENT_TYPES
from fraudgraph.timeutil import to_epoch_ms


def _read(world: Path, name: str) -> pd.DataFrame:
    for folder in (world / "historical", world):
        if (folder / f"{name}.parquet").exists():
            return pd.read_parquet(folder / f"{name}.parquet")
        if (folder / f"{name}.csv").exists():
            return pd.read_csv(folder / f"{name}.csv", dtype=str)
    raise FileNotFoundError(f"{world}: no {name} table")


def _ms(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.as_unit("ms").astype("int64").astype("Int64").where(s.notna(), pd.NA)
    return s.map(lambda v: pd.NA if v is None or v != v else to_epoch_ms(v)).astype("Int64")


def reference_links(
    events: pd.DataFrame, hasher: IdentifierHasher, tagger: EventTagger
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(links, rejects)`` from a raw events table."""
    links, rejects, _ = reference_link_events(events, hasher, tagger)
    return links, rejects


def reference_link_events(
    events: pd.DataFrame, hasher: IdentifierHasher, tagger: EventTagger
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(links, rejects, link_events)`` from a raw events table (what the Spark job writes)."""
    valid, rejects = validate_and_hash(events, hasher, tagger)
    valid = valid.loc[valid["event_type"].isin(LINK_EVENT_TYPES)]  # label events are never links
    parts = []
    for kind, col in HASH_COLUMN_BY_KIND.items():
        p = valid.loc[valid[col].notna(), ["event_id", "customer_id", col, "ts_ms", "event_type", *EVENT_TAGS]].rename(
            columns={col: "value_hash"}
        )
        p.insert(2, "kind", kind)
        parts.append(p)
    x = pd.concat(parts, ignore_index=True)
    for t in LINK_EVENT_TYPES:
        x[LINK_COUNT_PROPERTIES[t]] = (x["event_type"] == t).astype("int64")
    for tag in EVENT_TAGS:
        x[LINK_COUNT_PROPERTIES[tag]] = x[tag].astype("int64")
    agg = {
        "first_seen": ("ts_ms", "min"),
        "last_seen": ("ts_ms", "max"),
        "event_count": ("ts_ms", "size"),
        **{p: (p, "sum") for p in LINK_COUNT_PROPERTIES.values()},
    }
    links = x.groupby(["customer_id", "kind", "value_hash"], sort=False).agg(**agg).reset_index()
    links["edge_label"] = links["kind"].map(EDGE_LABEL_BY_KIND)
    links["identifier_id"] = links["kind"] + ":" + links["value_hash"]
    link_events = x.rename(columns={"ts_ms": "ts"})[LINK_EVENT_COLUMNS]
    return links, rejects, link_events.reset_index(drop=True)


def _screened(s: pd.Series) -> pd.Series:
    """Free text as the Spark job stores it (:func:`etl.transforms.screened_text`)."""
    return s.map(lambda v: None if v is None or v != v else mask_free_text(str(v)))


def reference_customers(customers: pd.DataFrame, blocks: pd.DataFrame, appeals: pd.DataFrame) -> pd.DataFrame:
    prof = pd.DataFrame(
        {
            "customer_id": customers["customer_id"].astype(str),
            "signup_ts": _ms(customers["signup_ts"]),
            "country": _screened(customers["country"]),
            "lifetime_value": pd.to_numeric(customers["lifetime_value"]).astype("float64"),
        }
    )
    prof = prof.drop_duplicates("customer_id")
    blocks = blocks.assign(reason=_screened(blocks["reason"]))
    appeals = appeals.assign(outcome=_screened(appeals["outcome"]))
    b = blocks.assign(blocked_at=_ms(blocks["blocked_at"])).sort_values("blocked_at")
    b = (
        b.groupby("customer_id")
        .agg(blocked_at=("blocked_at", "last"), block_source=("source", "last"), block_reason=("reason", "last"))
        .reset_index()
    )
    a = appeals.assign(contacted_at=_ms(appeals["contacted_at"]), resolved_at=_ms(appeals["resolved_at"]))
    a = a.sort_values("contacted_at")
    decided = a["outcome"].isin(["unblocked", "upheld"])
    a["resolved"] = a["resolved_at"].fillna(a["contacted_at"]).where(decided)
    a["unblock"] = a["resolved"].where(a["outcome"] == "unblocked")
    a = (
        a.groupby("customer_id")
        .agg(
            appealed_at=("contacted_at", "last"),
            appeal_outcome=("outcome", "last"),
            appeal_resolved_at=("resolved", lambda v: v.iloc[-1]),
            unblocked_at=("unblock", "max"),
        )
        .reset_index()
    )
    out = prof.merge(b, on="customer_id", how="left").merge(a, on="customer_id", how="left")
    out["is_fraud"] = np.where(out["blocked_at"].notna(), 1, 0).astype("int32")
    return out


def reference_etl(world_dir: str | Path, hasher: IdentifierHasher, tagger: EventTagger) -> dict[str, pd.DataFrame]:
    world = Path(world_dir)
    links, rejects, link_events = reference_link_events(_read(world, "events"), hasher, tagger)
    # rows that break the contract are rejects, as the Spark job's (etl.table_rows)
    tables = {name: valid_rows(_read(world, name), name, hasher, DEFAULT_ID_PATTERN)[0] for name in CHECKED_TABLES}
    customers = reference_customers(tables["customers"], tables["blocks"], tables["appeals"])
    return {"links": links, "customers": customers, "rejects": rejects, "link_events": link_events}
