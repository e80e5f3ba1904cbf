"""Embedded identity graph on plain SQLite (the default backend).

WAL mode: one writer and many reader processes at once; concurrent writers
queue on the database lock (``busy_timeout``). Each write batch is one
``BEGIN IMMEDIATE`` transaction with ``executemany``: all of it or none of it.
Customer properties are a JSON object merged with ``json_patch`` (a ``null``
value removes a key).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..schema import COUNT_PROPERTY_BY_TYPE, EDGE_LABEL_BY_KIND, IDENTIFIER_KINDS
from ..timeutil import as_of_or_end
from .base import (
    IDENTIFIER_STATS_COLUMNS,
    LINK_FRAME_COLUMNS,
    LINK_SUMMARY_COLUMNS,
    CustomerUpsert,
    IdentityGraph,
    IdentityLink,
    LinkedIdentifier,
    Neighbourhood,
    SharedIdentifier,
    chunked,
    empty_stats,
    validate_customers,
    validate_links,
)

log = logging.getLogger(__name__)

_SCHEMA = """
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

_UPSERT_CUSTOMER = (
    "INSERT INTO customer (id, props) VALUES (?, ?) "
    "ON CONFLICT(id) DO UPDATE SET props = json_patch(customer.props, excluded.props)"
)
_ENSURE_CUSTOMER = "INSERT OR IGNORE INTO customer (id, props) VALUES (?, '{}')"
_ENSURE_IDENTIFIER = "INSERT OR IGNORE INTO identifier (kind, value_hash) VALUES (?, ?)"
_COUNTS = list(COUNT_PROPERTY_BY_TYPE.values())  # one INTEGER column per event type: count_signup, ...
_SCHEMA = _SCHEMA.replace("{count_columns}", ",\n    ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _COUNTS))
_SUMMARY_VALUES = [f"identifiers_{k}" for k in IDENTIFIER_KINDS] + ["events", *_COUNTS]
_SCHEMA = _SCHEMA.replace("{summary_columns}", ",\n    ".join(f"{c} INTEGER NOT NULL" for c in _SUMMARY_VALUES))
_UPSERT_LINK = (
    f"INSERT INTO link (customer_id, kind, value_hash, first_seen, last_seen, event_count, {', '.join(_COUNTS)}) "
    f"VALUES (?, ?, ?, ?, ?, ?, {', '.join('?' * len(_COUNTS))}) "
    "ON CONFLICT(customer_id, kind, value_hash) DO UPDATE SET "
    "first_seen = min(link.first_seen, excluded.first_seen), "
    "last_seen = max(link.last_seen, excluded.last_seen), "
    "event_count = excluded.event_count, " + ", ".join(f"{c} = excluded.{c}" for c in _COUNTS)
)

_REFRESH_IDENTIFIER_SUMMARY = (
    "INSERT OR REPLACE INTO identifier_link_summary "
    "SELECT kind, value_hash, count(*), min(first_seen), max(first_seen), sum(event_count) "
    "FROM link WHERE kind = ? AND value_hash IN ({marks}) GROUP BY kind, value_hash"
)

_COUNT_COLUMNS = ", ".join(_COUNTS)
_COUNT_SUMS = ", ".join(f"sum({c})" for c in _COUNTS)
_KIND_SUMS = ", ".join(f"sum(kind = '{k}')" for k in IDENTIFIER_KINDS)
_REFRESH_SUMMARY = (
    f"INSERT OR REPLACE INTO customer_link_summary (customer_id, first_link, latest_link, "
    f"{', '.join(_SUMMARY_VALUES)}) "
    f"SELECT customer_id, min(first_seen), max(first_seen), {_KIND_SUMS}, sum(event_count), {_COUNT_SUMS} "
    "FROM link WHERE customer_id IN ({marks}) GROUP BY customer_id"
)
# the same over every customer and identifier (migrations and rebuild_summaries)
_BUILD_SUMMARY = _REFRESH_SUMMARY.replace("WHERE customer_id IN ({marks}) ", "")
_BUILD_IDENTIFIER_SUMMARY = _REFRESH_IDENTIFIER_SUMMARY.replace("WHERE kind = ? AND value_hash IN ({marks}) ", "")


def path_from_uri(uri: str) -> Path:
    """``sqlite:///rel/path.db`` -> ``rel/path.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or len(uri) == len(prefix):
        raise ValueError(f"graph URI {uri!r}: expected sqlite:///PATH")
    return Path(uri[len(prefix) :])


def _link_props(first_seen: int, last_seen: int, event_count: int, *counts: int) -> dict[str, int]:
    props = {"first_seen": first_seen, "last_seen": last_seen, "event_count": event_count}
    props.update(zip(_COUNTS, counts))
    return props


def _by_kind(identifiers) -> dict[str, list[str]]:
    """(kind, value_hash) pairs grouped by kind (one indexed ``kind = ? AND value_hash IN (...)`` each)."""
    out: dict[str, list[str]] = {}
    for kind, h in identifiers:
        out.setdefault(kind, []).append(h)
    return out


def _frame(rows: list[tuple], columns: list[str], n_text: int) -> pd.DataFrame:
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


class SqliteIdentityGraph(IdentityGraph):
    """Identity graph in one SQLite file. Safe to share between threads (calls serialise)."""

    @classmethod
    def from_settings(cls, uri: str, settings) -> SqliteIdentityGraph:
        """The store at ``uri`` built from its settings (``graph`` and ``graph.sqlite``)."""
        return cls(
            uri,
            batch_size=settings.batch_size,
            fanout_cap=settings.neighbourhood_fanout_cap,
            busy_timeout_ms=settings.sqlite.busy_timeout_ms,
            cache_size_mb=settings.sqlite.cache_size_mb,
        )

    def __init__(
        self,
        uri: str,
        *,
        batch_size: int = 5000,
        fanout_cap: int = 50,
        busy_timeout_ms: int = 60000,
        cache_size_mb: int = 64,
    ):
        self.uri = uri
        self.path = path_from_uri(uri)
        self.batch_size = batch_size
        self.fanout_cap = fanout_cap
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            str(self.path), timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
        )
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(f"PRAGMA cache_size = {-1024 * int(cache_size_mb)}")
        self._create_schema(busy_timeout_ms / 1000)

    def _create_schema(self, timeout_s: float) -> None:
        """WAL mode and tables; retried because switching a new file to WAL ignores busy_timeout
        when several processes open it at the same moment."""
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                with self._write():
                    for stmt in _SCHEMA.split(";"):
                        if stmt.strip():
                            self._db.execute(stmt)
                    self._migrate_counts()
                    self._build_missing_summary()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _migrate_counts(self) -> None:
        """Files from before the per-type count columns kept the counts as JSON: move them over once."""
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(link)")}
        missing = [c for c in _COUNTS if c not in columns]
        if not missing:
            return
        log.warning("%s: moving link counts from JSON to %d columns (one-off migration)", self.path, len(missing))
        for col in missing:
            self._db.execute(f"ALTER TABLE link ADD COLUMN {col} INTEGER NOT NULL DEFAULT 0")
        if "counts" in columns:
            self._db.execute(
                "UPDATE link SET "
                + ", ".join(
                    f"{c} = coalesce(json_extract(counts, '$.{t}'), 0)"
                    for t, c in COUNT_PROPERTY_BY_TYPE.items()
                    if c in missing
                )
            )

    def _build_missing_summary(self) -> None:
        """Files from before the summary tables get them filled once from their links."""
        if self._db.execute("SELECT 1 FROM link LIMIT 1").fetchone() is None:
            return
        if self._db.execute("SELECT 1 FROM customer_link_summary LIMIT 1").fetchone() is None:
            log.warning("%s: building the per-customer link summary (one-off migration)", self.path)
            self._db.execute(_BUILD_SUMMARY)
        if self._db.execute("SELECT 1 FROM identifier_link_summary LIMIT 1").fetchone() is None:
            log.warning("%s: building the per-identifier link summary (one-off migration)", self.path)
            self._db.execute(_BUILD_IDENTIFIER_SUMMARY)

    def rebuild_summaries(self, progress: bool = False) -> dict[str, int]:
        with self._write() as db:
            db.execute("DELETE FROM customer_link_summary")
            db.execute("DELETE FROM identifier_link_summary")
            db.execute(_BUILD_SUMMARY)
            db.execute(_BUILD_IDENTIFIER_SUMMARY)
            customers = db.execute("SELECT count(*) FROM customer_link_summary").fetchone()[0]
            identifiers = db.execute("SELECT count(*) FROM identifier_link_summary").fetchone()[0]
        return {"customers": customers, "identifiers": identifiers}

    # ------------------------------------------------------------------ utils
    class _Txn:
        def __init__(self, store: SqliteIdentityGraph):
            self.store = store

        def __enter__(self):
            self.store._lock.acquire()
            self.store._db.execute("BEGIN IMMEDIATE")
            return self.store._db

        def __exit__(self, exc_type, exc, tb):
            try:
                self.store._db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.store._lock.release()
            return False

    def _write(self) -> _Txn:
        return SqliteIdentityGraph._Txn(self)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ----------------------------------------------------------------- writes
    def upsert_customers(self, customers: Sequence[CustomerUpsert], *, summaries: bool = True) -> int:
        customers = list(customers)
        validate_customers(customers)
        for chunk in chunked(customers, self.batch_size):
            rows = [(c.customer_id, json.dumps(dict(c.properties), separators=(",", ":"))) for c in chunk]
            with self._write() as db:
                db.executemany(_UPSERT_CUSTOMER, rows)
        return len(customers)

    def upsert_links(self, links: Sequence[IdentityLink], *, summaries: bool = True) -> int:
        # both summary tables are kept in the same transaction, whatever ``summaries`` says
        links = list(links)
        validate_links(links)
        for chunk in chunked(links, self.batch_size):
            customers = sorted({(l.customer_id,) for l in chunk})
            identifiers = sorted({(l.kind, l.value_hash) for l in chunk})
            rows = [
                (
                    l.customer_id,
                    l.kind,
                    l.value_hash,
                    int(l.first_seen),
                    int(l.last_seen),
                    int(l.event_count),
                    *(int(l.counts.get(t, 0)) for t in COUNT_PROPERTY_BY_TYPE),
                )
                for l in chunk
            ]
            with self._write() as db:
                db.executemany(_ENSURE_CUSTOMER, customers)
                db.executemany(_ENSURE_IDENTIFIER, identifiers)
                db.executemany(_UPSERT_LINK, rows)
                for part in chunked([c for (c,) in customers], 500):
                    db.execute(_REFRESH_SUMMARY.format(marks=",".join("?" * len(part))), part)
                for kind, hashes in _by_kind(identifiers).items():
                    for part in chunked(hashes, 500):
                        db.execute(_REFRESH_IDENTIFIER_SUMMARY.format(marks=",".join("?" * len(part))), (kind, *part))
        return len(links)

    # ------------------------------------------------------------------ reads
    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def customer(self, customer_id: str) -> dict | None:
        rows = self._query("SELECT props FROM customer WHERE id = ?", (customer_id,))
        return json.loads(rows[0][0]) if rows else None

    def identity(self, customer_id: str) -> list[LinkedIdentifier]:
        rows = self._query(
            "SELECT l.kind, l.value_hash, l.first_seen, l.last_seen, l.event_count, "
            + ", ".join(f"l.{c}" for c in _COUNTS)
            + ", "
            "(SELECT count(*) FROM link d WHERE d.kind = l.kind AND d.value_hash = l.value_hash) "
            "FROM link l WHERE l.customer_id = ? ORDER BY l.kind, l.value_hash",
            (customer_id,),
        )
        return [LinkedIdentifier(r[0], r[1], _link_props(*r[2:-1]), r[-1]) for r in rows]

    def neighbourhood(self, customer_id: str, fanout_cap: int | None = None) -> Neighbourhood:
        return self.neighbourhoods([customer_id], fanout_cap)[customer_id]

    def neighbourhoods(self, customer_ids: Sequence[str], fanout_cap: int | None = None) -> dict[str, Neighbourhood]:
        cap = self.fanout_cap if fanout_cap is None else fanout_cap
        ids = list(dict.fromkeys(customer_ids))
        # one indexed query per customer and per identifier: measured faster here than one join or window
        # query over all of them; degrees come from the identifier summary table in one lookup
        with self._lock:
            db = self._db
            own = {
                cid: db.execute(
                    f"SELECT kind, value_hash, first_seen, last_seen, event_count, {_COUNT_COLUMNS} FROM link "
                    "WHERE customer_id = ? ORDER BY kind, value_hash",
                    (cid,),
                ).fetchall()
                for cid in ids
            }
            idents = sorted({(kind, h) for links in own.values() for kind, h, *_ in links})
            kept = self._identifier_summaries(idents)
            # one more than the cap, so the centre itself can be dropped
            first = {
                (kind, h): [
                    r[0]
                    for r in db.execute(
                        "SELECT customer_id FROM link WHERE kind = ? AND value_hash = ? ORDER BY customer_id LIMIT ?",
                        (kind, h, cap + 1),
                    )
                ]
                for kind, h in idents
            }
        out = {}
        for cid, links in own.items():
            out[cid] = Neighbourhood(
                cid,
                tuple(
                    SharedIdentifier(
                        kind,
                        h,
                        kept[(kind, h)][0],
                        tuple([c for c in first[(kind, h)] if c != cid][:cap]),
                        _link_props(*props),
                    )
                    for kind, h, *props in links
                ),
            )
        return out

    def key_fingerprint(self, fingerprint: str) -> str:
        with self._lock:
            with self._write():
                self._db.execute(
                    "INSERT OR IGNORE INTO graph_meta (key, value) VALUES ('pii_key_fingerprint', ?)", (fingerprint,)
                )
            return self._db.execute("SELECT value FROM graph_meta WHERE key = 'pii_key_fingerprint'").fetchone()[0]

    @property
    def graph_id(self) -> str:
        """This graph's identity: made once, when the file is first opened, and kept in it."""
        import uuid

        with self._lock:
            with self._write():
                self._db.execute(
                    "INSERT OR IGNORE INTO graph_meta (key, value) VALUES ('graph_id', ?)", (uuid.uuid4().hex,)
                )
            return self._db.execute("SELECT value FROM graph_meta WHERE key = 'graph_id'").fetchone()[0]

    def stats(self) -> dict[str, dict[str, int]]:
        stats = empty_stats()
        with self._lock:
            stats["vertices"]["customer"] = self._db.execute("SELECT count(*) FROM customer").fetchone()[0]
            for kind, n in self._db.execute("SELECT kind, count(*) FROM identifier GROUP BY kind"):
                stats["vertices"][kind] = n
            for kind, n in self._db.execute("SELECT kind, count(*) FROM link GROUP BY kind"):
                stats["edges"][EDGE_LABEL_BY_KIND[kind]] = n
        return stats

    def customers_of(self, customer_ids: Sequence[str], properties: Sequence[str] | None = None) -> pd.DataFrame:
        ids = sorted(set(customer_ids))
        if properties is not None:
            names = list(dict.fromkeys(properties))
            for name in names:
                if not name.replace("_", "").isalnum():
                    raise ValueError(f"property name {name!r}: letters, digits and _ only")
            picked = ", ".join(f"json_extract(props, '$.{n}')" for n in names)
            rows: list[tuple] = []
            with self._lock:
                for chunk in chunked(ids, 500):
                    marks = ",".join("?" * len(chunk))
                    rows += self._db.execute(
                        f"SELECT id, {picked} FROM customer WHERE id IN ({marks}) ORDER BY id", chunk
                    ).fetchall()
            return pd.DataFrame(rows, columns=["customer_id", *names])
        records = []
        for chunk in chunked(ids, 500):
            marks = ",".join("?" * len(chunk))
            rows = self._query(f"SELECT id, props FROM customer WHERE id IN ({marks}) ORDER BY id", tuple(chunk))
            records += [{"customer_id": cid, **json.loads(props)} for cid, props in rows]
        return pd.DataFrame.from_records(records, columns=None if records else ["customer_id"])

    def links_of(self, customer_ids: Sequence[str]) -> pd.DataFrame:
        ids = sorted(set(customer_ids))
        rows: list[tuple] = []
        with self._lock:
            for chunk in chunked(ids, 500):
                marks = ",".join("?" * len(chunk))
                rows += self._db.execute(
                    f"SELECT customer_id, kind, value_hash, first_seen, last_seen, event_count, {_COUNT_COLUMNS} "
                    f"FROM link WHERE customer_id IN ({marks}) ORDER BY customer_id, kind, value_hash",
                    tuple(chunk),
                ).fetchall()
        return _frame(rows, LINK_FRAME_COLUMNS, 3)

    def _identifier_summaries(self, identifiers) -> dict[tuple[str, str], tuple[int, int, int, int]]:
        """``{(kind, value_hash): (degree, first_seen_min, first_seen_max, events)}`` over all links;
        call with the lock held."""
        out = {}
        for kind, hashes in _by_kind(sorted(set(identifiers))).items():
            for part in chunked(hashes, 500):
                for h, *values in self._db.execute(
                    "SELECT value_hash, degree, first_seen_min, first_seen_max, events "
                    f"FROM identifier_link_summary WHERE kind = ? AND value_hash IN ({','.join('?' * len(part))})",
                    (kind, *part),
                ):
                    out[(kind, h)] = tuple(values)
        return out

    def identifier_stats(self, identifiers: Sequence[tuple[str, str]], as_of_ms: int | None = None) -> pd.DataFrame:
        """From the kept summary when every link of the identifier is visible at as-of (the live case);
        computed from its links otherwise."""
        limit = as_of_or_end(as_of_ms)
        rows = []
        with self._lock:
            kept = self._identifier_summaries(identifiers)
            for kind, h in sorted(set(identifiers)):
                summary = kept.get((kind, h))
                if summary is not None and summary[2] <= limit:
                    rows.append((kind, h, *summary))
                    continue
                n, fmin, fmax, ev = self._db.execute(
                    "SELECT count(*), min(first_seen), max(first_seen), coalesce(sum(event_count), 0) FROM link "
                    "WHERE kind = ? AND value_hash = ? AND first_seen <= ?",
                    (kind, h, limit),
                ).fetchone()
                if n:
                    rows.append((kind, h, n, fmin, fmax, ev))
        return _frame(rows, IDENTIFIER_STATS_COLUMNS, 2)

    def link_summary(self, customer_ids: Sequence[str], as_of_ms: int | None = None) -> pd.DataFrame:
        """From the kept summary when every link of the customer is visible at as-of (the live case);
        computed from its links otherwise."""
        limit = as_of_or_end(as_of_ms)
        ids = sorted(set(customer_ids))
        rows: list[tuple] = []
        recompute: list[str] = []
        with self._lock:
            for chunk in chunked(ids, 500):
                marks = ",".join("?" * len(chunk))
                for cid, latest, *values in self._db.execute(
                    f"SELECT customer_id, latest_link, first_link, {', '.join(_SUMMARY_VALUES)} "
                    f"FROM customer_link_summary WHERE customer_id IN ({marks})",
                    chunk,
                ):
                    if latest <= limit:
                        rows.append((cid, *values))
                    else:
                        recompute.append(cid)
            for chunk in chunked(recompute, 500):
                marks = ",".join("?" * len(chunk))
                rows += self._db.execute(
                    f"SELECT customer_id, min(first_seen), {_KIND_SUMS}, sum(event_count), {_COUNT_SUMS} "
                    f"FROM link WHERE customer_id IN ({marks}) AND first_seen <= ? "
                    "GROUP BY customer_id",
                    (*chunk, limit),
                ).fetchall()
        rows.sort(key=lambda r: r[0])
        return _frame(rows, LINK_SUMMARY_COLUMNS, 1)

    def identifier_links(
        self, identifiers: Sequence[tuple[str, str]], limit: int, as_of_ms: int | None = None
    ) -> pd.DataFrame:
        as_of = as_of_or_end(as_of_ms)
        rows: list[tuple] = []
        with self._lock:
            for kind, h in sorted(set(identifiers)):
                rows += self._db.execute(
                    f"SELECT customer_id, kind, value_hash, first_seen, last_seen, event_count, {_COUNT_COLUMNS} "
                    "FROM link WHERE kind = ? AND value_hash = ? AND first_seen <= ? ORDER BY customer_id LIMIT ?",
                    (kind, h, as_of, int(limit)),
                ).fetchall()
        return _frame(rows, LINK_FRAME_COLUMNS, 3)

    def customers_with(self, prop: str, value) -> pd.DataFrame:
        if not prop.replace("_", "").isalnum():
            raise ValueError(f"property name {prop!r}: letters, digits and _ only")
        rows = self._query(
            f"SELECT id, props FROM customer WHERE json_extract(props, '$.{prop}') = ? ORDER BY id", (value,)
        )
        records = [{"customer_id": cid, **json.loads(props)} for cid, props in rows]
        return pd.DataFrame.from_records(records, columns=None if records else ["customer_id"])

    def customers_frame(self) -> pd.DataFrame:
        rows = self._query("SELECT id, props FROM customer ORDER BY id")
        records = [{"customer_id": cid, **json.loads(props)} for cid, props in rows]
        return pd.DataFrame.from_records(records, columns=None if records else ["customer_id"])

    def links_frame(self) -> pd.DataFrame:
        rows = self._query(
            f"SELECT customer_id, kind, value_hash, first_seen, last_seen, event_count, {_COUNT_COLUMNS} FROM link "
            "ORDER BY customer_id, kind, value_hash"
        )
        return _frame(rows, LINK_FRAME_COLUMNS, 3)
