"""The append-only review log: every analyst outcome, who recorded it, when, and what it overturned.

One SQLite file (``api.review_log``; by default beside a SQLite graph). Rows are only ever inserted:
triggers in the file itself refuse UPDATE and DELETE, so the log stays append-only whatever opens it.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraudgraph.graph import IdentityGraph

_SCHEMA = """
CREATE TABLE IF NOT EXISTS review (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, customer_id TEXT NOT NULL, outcome TEXT NOT NULL,
    actor TEXT NOT NULL, at INTEGER NOT NULL, previous_decision TEXT, previous_outcome TEXT,
    override INTEGER NOT NULL, note TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS review_customer ON review (customer_id, seq);
CREATE TRIGGER IF NOT EXISTS review_no_update BEFORE UPDATE ON review
    BEGIN SELECT RAISE(ABORT, 'the review log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS review_no_delete BEFORE DELETE ON review
    BEGIN SELECT RAISE(ABORT, 'the review log is append-only'); END
"""
COLUMNS = ("seq", "customer_id", "outcome", "actor", "at", "previous_decision", "previous_outcome", "override", "note")


def review_log_path(store: IdentityGraph, configured: str | None) -> Path:
    """``configured``, else beside a SQLite graph's file; a Gremlin graph needs ``api.review_log``."""
    if configured:
        return Path(configured)
    path = getattr(store, "path", None)
    if path is None:
        raise ValueError(f"graph {store.uri} keeps no file to put the review log beside: set api.review_log")
    return Path(f"{path}.reviews.db")


class ReviewLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        for stmt in _SCHEMA.split(";\n"):
            if stmt.strip():
                self._db.execute(stmt)

    def append(
        self,
        customer_id: str,
        outcome: str,
        actor: str,
        at: int,
        previous_decision: str | None,
        previous_outcome: str | None,
        override: bool,
        note: str,
    ) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO review (customer_id, outcome, actor, at, previous_decision, previous_outcome, "
                "override, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (customer_id, outcome, actor, at, previous_decision, previous_outcome, int(override), note),
            )
            assert cur.lastrowid is not None  # an INSERT always sets it
            return int(cur.lastrowid)

    def history(self, customer_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM review WHERE customer_id = ? ORDER BY seq", (customer_id,)
            ).fetchall()
        return [dict(zip(COLUMNS, r)) | {"override": bool(r[7])} for r in rows]

    def ping(self) -> None:
        with self._lock:
            self._db.execute("SELECT count(*) FROM review").fetchone()

    def close(self) -> None:
        self._db.close()
