"""The tables of the consumer's ledger (:mod:`serving.consumer.ledger`), and the columns added to them
since the first ledgers, so that a ledger written by an earlier version opens."""

from __future__ import annotations

import sqlite3
import time

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, digest TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS link_state (
    customer_id TEXT NOT NULL, kind TEXT NOT NULL, value_hash TEXT NOT NULL,
    base TEXT NOT NULL, live_first INTEGER, live_last INTEGER, live_count INTEGER NOT NULL DEFAULT 0,
    live_counts TEXT NOT NULL DEFAULT '{}', dirty INTEGER NOT NULL DEFAULT 1, owner TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (customer_id, kind, value_hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_customer (
    customer_id TEXT PRIMARY KEY, props TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_score (
    customer_id TEXT PRIMARY KEY, event_id TEXT NOT NULL, event_type TEXT NOT NULL, ts INTEGER NOT NULL,
    owner TEXT NOT NULL DEFAULT '', as_of INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partition_owner (
    owner TEXT PRIMARY KEY, consumer TEXT NOT NULL, epoch INTEGER NOT NULL,
    renewed_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (source TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS link_state_dirty ON link_state (dirty);
"""
# columns added since the first ledgers: table -> (column, declaration)
_ADDED_COLUMNS = {
    "seen": [("digest", "TEXT")],
    "link_state": [("owner", "TEXT NOT NULL DEFAULT ''")],
    "pending_customer": [("owner", "TEXT NOT NULL DEFAULT ''")],
    "pending_score": [("owner", "TEXT NOT NULL DEFAULT ''"), ("as_of", "INTEGER")],
    "partition_owner": [("renewed_ms", "INTEGER NOT NULL DEFAULT 0")],
}


def create_or_upgrade(db: sqlite3.Connection) -> None:
    """Put a ledger in WAL mode, and create its tables or add the columns a ledger from before lacks, in
    one write transaction: the consumers of a group may open one new ledger at the same moment (``db``
    in autocommit mode, with a busy timeout)."""
    _switch_to_wal(db)
    db.execute("BEGIN IMMEDIATE")  # waits for another process's creation (the busy timeout)
    try:
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                db.execute(stmt)
        for table, columns in _ADDED_COLUMNS.items():
            have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
            for name, declaration in columns:
                if name not in have:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _switch_to_wal(db: sqlite3.Connection, wait_s: float = 60.0) -> None:
    """WAL mode, tried again while another connection holds the lock: SQLite answers a change of journal
    mode with "database is locked" at once, without waiting out the busy timeout."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
