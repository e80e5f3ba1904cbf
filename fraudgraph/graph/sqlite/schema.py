"""The SQLite store's tables and statements: customers, identifiers, links with one count column
per event type, and the two link-summary tables every write keeps in its own transaction."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ...schema import IDENTIFIER_KINDS, LINK_COUNT_PROPERTIES

SCHEMA = """
CREATE TABLE IF NOT EXISTS graph_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS customer (
    id    TEXT PRIMARY KEY,
    props TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS identifier (
    kind       TEXT NOT NULL,
    value_hash TEXT NOT NULL,
    PRIMARY KEY (kind, value_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS link (
    customer_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    value_hash  TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    event_count INTEGER NOT NULL,
    {count_columns},
    PRIMARY KEY (customer_id, kind, value_hash)
) WITHOUT ROWID;
DROP INDEX IF EXISTS link_by_identifier;
-- covers an identifier's customers in id order, degree and statistics without touching the table
-- per customer, over all its links: what its own features need (kept with every link write)
CREATE TABLE IF NOT EXISTS customer_link_summary (
    customer_id TEXT PRIMARY KEY,
    first_link  INTEGER NOT NULL,
    latest_link INTEGER NOT NULL,
    {summary_columns}
) WITHOUT ROWID;
-- per identifier, over all its links: degree and statistics (kept with every link write)
CREATE TABLE IF NOT EXISTS identifier_link_summary (
    kind           TEXT NOT NULL,
    value_hash     TEXT NOT NULL,
    degree         INTEGER NOT NULL,
    first_seen_min INTEGER NOT NULL,
    first_seen_max INTEGER NOT NULL,
    events         INTEGER NOT NULL,
    PRIMARY KEY (kind, value_hash)
) WITHOUT ROWID;
-- the review queue reads customers by decision
CREATE INDEX IF NOT EXISTS customer_by_decision ON customer (json_extract(props, '$.decision'));
CREATE INDEX IF NOT EXISTS link_by_identifier_stats ON link (kind, value_hash, customer_id, first_seen, event_count);
"""

UPSERT_CUSTOMER = (
    "INSERT INTO customer (id, props) VALUES (?, ?) "
    "ON CONFLICT(id) DO UPDATE SET props = json_patch(customer.props, excluded.props)"
)
ENSURE_CUSTOMER = "INSERT OR IGNORE INTO customer (id, props) VALUES (?, '{}')"
ENSURE_IDENTIFIER = "INSERT OR IGNORE INTO identifier (kind, value_hash) VALUES (?, ?)"
COUNTS = list(LINK_COUNT_PROPERTIES.values())  # one INTEGER column per event type: count_signup, ...
SCHEMA = SCHEMA.replace("{count_columns}", ",\n    ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in COUNTS))
SUMMARY_VALUES = [f"identifiers_{k}" for k in IDENTIFIER_KINDS] + ["events", *COUNTS]
SCHEMA = SCHEMA.replace("{summary_columns}", ",\n    ".join(f"{c} INTEGER NOT NULL" for c in SUMMARY_VALUES))
UPSERT_LINK = (
    f"INSERT INTO link (customer_id, kind, value_hash, first_seen, last_seen, event_count, {', '.join(COUNTS)}) "
    f"VALUES (?, ?, ?, ?, ?, ?, {', '.join('?' * len(COUNTS))}) "
    "ON CONFLICT(customer_id, kind, value_hash) DO UPDATE SET "
    "first_seen = min(link.first_seen, excluded.first_seen), "
    "last_seen = max(link.last_seen, excluded.last_seen), "
    "event_count = excluded.event_count, " + ", ".join(f"{c} = excluded.{c}" for c in COUNTS)
)

REFRESH_IDENTIFIER_SUMMARY = (
    "INSERT OR REPLACE INTO identifier_link_summary "
    "SELECT kind, value_hash, count(*), min(first_seen), max(first_seen), sum(event_count) "
    "FROM link WHERE kind = ? AND value_hash IN ({marks}) GROUP BY kind, value_hash"
)

COUNT_COLUMNS = ", ".join(COUNTS)
COUNT_SUMS = ", ".join(f"sum({c})" for c in COUNTS)
KIND_SUMS = ", ".join(f"sum(kind = '{k}')" for k in IDENTIFIER_KINDS)
REFRESH_SUMMARY = (
    f"INSERT OR REPLACE INTO customer_link_summary (customer_id, first_link, latest_link, "
    f"{', '.join(SUMMARY_VALUES)}) "
    f"SELECT customer_id, min(first_seen), max(first_seen), {KIND_SUMS}, sum(event_count), {COUNT_SUMS} "
    "FROM link WHERE customer_id IN ({marks}) GROUP BY customer_id"
)
# the same over every customer and identifier (migrations and the summaries rebuild)
BUILD_SUMMARY = REFRESH_SUMMARY.replace("WHERE customer_id IN ({marks}) ", "")
BUILD_IDENTIFIER_SUMMARY = REFRESH_IDENTIFIER_SUMMARY.replace("WHERE kind = ? AND value_hash IN ({marks}) ", "")


def path_from_uri(uri: str) -> Path:
    """``sqlite:///rel/path.db`` -> ``rel/path.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or len(uri) == len(prefix):
        raise ValueError(f"graph URI {uri!r}: expected sqlite:///PATH")
    return Path(uri[len(prefix) :])


def link_props(first_seen: int, last_seen: int, event_count: int, *counts: int) -> dict[str, int]:
    props = {"first_seen": first_seen, "last_seen": last_seen, "event_count": event_count}
    props.update(zip(COUNTS, counts))
    return props


def by_kind(identifiers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """(kind, value_hash) pairs grouped by kind (one indexed ``kind = ? AND value_hash IN (...)`` each)."""
    out: dict[str, list[str]] = {}
    for kind, h in identifiers:
        out.setdefault(kind, []).append(h)
    return out


def frame(rows: list[tuple], columns: list[str], n_text: int) -> pd.DataFrame:
    """Rows whose first ``n_text`` columns are text and the rest integers, column by column
    (pandas' row-wise constructor infers every column's type: slow on the online path)."""
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object if i < n_text else "int64") for i, c in enumerate(columns)})
    values = list(zip(*rows))
    data = {
        c: np.array(v, dtype=object) if i < n_text else np.array(v, dtype=np.int64)
        for i, (c, v) in enumerate(zip(columns, values))
    }
    return pd.DataFrame(data, copy=False)
