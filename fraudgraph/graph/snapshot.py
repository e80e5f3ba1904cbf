"""The Parquet snapshot of the identity graph: what training reads without a graph server.

A snapshot folder holds:

- ``customers.parquet``: ``customer_id`` plus one column per customer property
- ``identifiers.parquet``: ``identifier_id`` (``<kind>:<value_hash>``), ``kind``, ``value_hash``
- ``links.parquet``: ``edge_label``, ``customer_id``, ``identifier_id``, ``kind``,
  ``value_hash``, ``first_seen``, ``last_seen`` (epoch ms UTC), ``event_count`` and
  ``count_<event_type>`` for every event type (0 where none)
- ``link_events.parquet`` (from the ETL): one row per identifier an identity event carried
  (event_id, customer_id, kind, value_hash, ts, event_type), from which
  :class:`fraudgraph.graph.history.LinkHistory` rebuilds the graph as of any time; label events
  are never in it
- ``manifest.json``: schema version and row counts

The graph export and the Spark ETL write the same layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..schema import EDGE_LABEL_BY_KIND, LINK_COUNT_PROPERTIES, SCHEMA_VERSION
from ..timeutil import now_ms

if TYPE_CHECKING:
    from .base import IdentityGraph

LINK_COLUMNS = [
    "edge_label",
    "customer_id",
    "identifier_id",
    "kind",
    "value_hash",
    "first_seen",
    "last_seen",
    "event_count",
    *LINK_COUNT_PROPERTIES.values(),
]


def normalise_links(links: pd.DataFrame) -> pd.DataFrame:
    """Links with every snapshot column, integer counts, sorted by (customer, identifier)."""
    df = links.copy()
    if "identifier_id" not in df:
        df["identifier_id"] = df["kind"] + ":" + df["value_hash"]
    if "edge_label" not in df:
        df["edge_label"] = df["kind"].map(EDGE_LABEL_BY_KIND)
    for col in LINK_COUNT_PROPERTIES.values():
        df[col] = df[col].fillna(0).astype("int64") if col in df else 0
    for col in ("first_seen", "last_seen", "event_count"):
        df[col] = df[col].astype("int64")
    df = df[LINK_COLUMNS]
    return df.sort_values(["customer_id", "identifier_id"], kind="stable").reset_index(drop=True)


def normalise_customers(customers: pd.DataFrame) -> pd.DataFrame:
    df = customers.sort_values("customer_id", kind="stable").reset_index(drop=True)
    cols = ["customer_id", *sorted(c for c in df.columns if c != "customer_id")]
    return df[cols]


def identifiers_from_links(links: pd.DataFrame) -> pd.DataFrame:
    ids = links[["identifier_id", "kind", "value_hash"]].drop_duplicates("identifier_id")
    return ids.sort_values("identifier_id", kind="stable").reset_index(drop=True)


def write_snapshot(
    customers: pd.DataFrame, links: pd.DataFrame, out_dir: str | Path, link_events: pd.DataFrame | None = None
) -> dict[str, Path]:
    """Write the layout above; ``link_events`` (``LINK_EVENT_COLUMNS`` of :mod:`.history`) when known:
    an export of a live graph has only lifetime link totals, so it cannot carry them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    customers = normalise_customers(customers)
    links = normalise_links(links)
    identifiers = identifiers_from_links(links)
    paths = {
        "customers": out / "customers.parquet",
        "identifiers": out / "identifiers.parquet",
        "links": out / "links.parquet",
        "manifest": out / "manifest.json",
    }
    customers.to_parquet(paths["customers"], index=False)
    identifiers.to_parquet(paths["identifiers"], index=False)
    links.to_parquet(paths["links"], index=False)
    if link_events is not None:
        paths["link_events"] = out / "link_events.parquet"
        link_events.to_parquet(paths["link_events"], index=False)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created_at_ms": now_ms(),
        "rows": {"customers": len(customers), "identifiers": len(identifiers), "links": len(links)},
    }
    paths["manifest"].write_text(json.dumps(manifest, indent=2))
    return paths


def export_graph(graph: IdentityGraph, out_dir: str | Path) -> dict[str, Path]:
    """Write a graph's customers and links as a Parquet snapshot (:func:`write_snapshot`)."""
    return write_snapshot(graph.customers_frame(), graph.links_frame(), out_dir)
