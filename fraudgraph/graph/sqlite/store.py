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

from ...config import GraphSettings
from ...schema import LINK_COUNT_PROPERTIES
from ..elements import (
    CustomerUpsert,
    IdentityLink,
    check_link_customers,
    chunked,
    validate_customers,
    validate_links,
)
from .reads import SqliteReads
from .schema import (
    BUILD_IDENTIFIER_SUMMARY,
    BUILD_SUMMARY,
    COUNTS,
    ENSURE_CUSTOMER,
    ENSURE_IDENTIFIER,
    REFRESH_IDENTIFIER_SUMMARY,
    REFRESH_SUMMARY,
    SCHEMA,
    UPSERT_CUSTOMER,
    UPSERT_LINK,
    by_kind,
    path_from_uri,
)

log = logging.getLogger(__name__)


class SqliteIdentityGraph(SqliteReads):
    """Identity graph in one SQLite file. Safe to share between threads (calls serialise)."""

    def __init__(self, uri: str, settings: GraphSettings):
        """The store at ``uri`` built from its settings (``graph`` and ``graph.sqlite``)."""
        batch_size, fanout_cap = settings.batch_size, settings.neighbourhood_fanout_cap
        busy_timeout_ms, cache_size_mb = settings.sqlite.busy_timeout_ms, settings.sqlite.cache_size_mb
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
                    for stmt in SCHEMA.split(";"):
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
        missing = [c for c in COUNTS if c not in columns]
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
                    for t, c in LINK_COUNT_PROPERTIES.items()
                    if c in missing
                )
            )

    def _build_missing_summary(self) -> None:
        """Files from before the summary tables get them filled once from their links."""
        if self._db.execute("SELECT 1 FROM link LIMIT 1").fetchone() is None:
            return
        if self._db.execute("SELECT 1 FROM customer_link_summary LIMIT 1").fetchone() is None:
            log.warning("%s: building the per-customer link summary (one-off migration)", self.path)
            self._db.execute(BUILD_SUMMARY)
        if self._db.execute("SELECT 1 FROM identifier_link_summary LIMIT 1").fetchone() is None:
            log.warning("%s: building the per-identifier link summary (one-off migration)", self.path)
            self._db.execute(BUILD_IDENTIFIER_SUMMARY)

    def _rebuild_summaries(self, progress: bool = False) -> dict[str, int]:
        with self._write() as db:
            db.execute("DELETE FROM customer_link_summary")
            db.execute("DELETE FROM identifier_link_summary")
            db.execute(BUILD_SUMMARY)
            db.execute(BUILD_IDENTIFIER_SUMMARY)
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
    def upsert_customers(self, customers: Sequence[CustomerUpsert]) -> int:
        customers = list(customers)
        validate_customers(customers)
        for chunk in chunked(customers, self.batch_size):
            rows = [(c.customer_id, json.dumps(dict(c.properties), separators=(",", ":"))) for c in chunk]
            with self._write() as db:
                db.executemany(UPSERT_CUSTOMER, rows)
        return len(customers)

    def upsert_links(self, links: Sequence[IdentityLink], *, customers: Sequence[CustomerUpsert] = ()) -> int:
        # both summary tables are kept in the same transaction (nothing to defer)
        links = list(links)
        validate_links(links)
        check_link_customers(customers, links)
        if customers:
            self.upsert_customers(customers)
        for chunk in chunked(links, self.batch_size):
            linked = sorted({(l.customer_id,) for l in chunk})
            identifiers = sorted({(l.kind, l.value_hash) for l in chunk})
            rows = [
                (
                    l.customer_id,
                    l.kind,
                    l.value_hash,
                    int(l.first_seen),
                    int(l.last_seen),
                    int(l.event_count),
                    *(int(l.counts.get(t, 0)) for t in LINK_COUNT_PROPERTIES),
                )
                for l in chunk
            ]
            with self._write() as db:
                db.executemany(ENSURE_CUSTOMER, linked)
                db.executemany(ENSURE_IDENTIFIER, identifiers)
                db.executemany(UPSERT_LINK, rows)
                for part in chunked([c for (c,) in linked], 500):
                    db.execute(REFRESH_SUMMARY.format(marks=",".join("?" * len(part))), part)
                for kind, hashes in by_kind(identifiers).items():
                    for part in chunked(hashes, 500):
                        db.execute(REFRESH_IDENTIFIER_SUMMARY.format(marks=",".join("?" * len(part))), (kind, *part))
        return len(links)

    def _bind_key_fingerprint(self, fingerprint: str) -> str:
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
