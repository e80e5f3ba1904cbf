"""The consumer's durable ledger: exactly-once effects over at-least-once delivery.

One SQLite file, written in one transaction per micro-batch, before the graph:

- ``seen``: every accepted event id; a redelivered event has no second effect.
- ``link_state``: per identity link touched live, the graph's value before the
  first live event (``base``) and the live aggregate since; the graph always
  receives the absolute value base ⊕ live, so writing it twice is harmless.
- ``pending_customer`` / ``dirty`` links / ``pending_score``: work recorded
  but not yet applied to the graph or decided. A consumer killed at any point
  finishes it on restart (:meth:`fraudgraph` consumer ``recover``).
- ``offsets``: the position of a file source, committed after the graph
  write and the decision emit.

Several consumers of one group (Kafka partitions keyed by customer) share one ledger: every journaled row
carries its **owner**, the source partition its event came from (``''`` for a source without partitions),
and ``partition_owner`` holds, per partition, the consumer that owns it and an epoch raised at each
hand-over. A consumer assigned a partition claims it (:meth:`Ledger.claim`) and finishes the work the
previous owner journaled but did not apply (recovery, per partition); a consumer that lost a partition
without knowing (a pause past the group's session timeout) is fenced: its next journal write or graph
write for that partition raises :class:`PartitionRevoked`, and the batch is left to the new owner, who
drops the events already seen. docs/scaling.md lists the failure cases.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .ledger_schema import create_or_upgrade
from .partitions import UNPARTITIONED, PartitionClaims, PartitionRevoked

if TYPE_CHECKING:
    from fraudgraph.graph import IdentityGraph

__all__ = ["UNPARTITIONED", "JournalEntry", "Ledger", "LedgerMismatch", "PartitionRevoked", "merge_customer_props"]


def ledger_path_for(store: IdentityGraph, configured: str | None) -> Path:
    """Where a consumer's ledger lives: ``configured`` when set, else beside a SQLite graph's file; a
    Gremlin graph has no file to sit beside, so it needs ``consumer.ledger`` (never the working
    directory by default)."""
    if configured:
        return Path(configured)
    path = getattr(store, "path", None)
    if path is None:
        raise LedgerMismatch(
            f"graph {store.uri} (id {store.graph_id}) keeps no file to put the consumer's ledger "
            "beside: set consumer.ledger or pass --ledger"
        )
    return Path(f"{path}.consumer-ledger.db")


class LedgerMismatch(ValueError):
    """The ledger journals another graph: using it would take that graph's events as already seen."""


def merge_customer_props(old: dict, new: dict) -> dict:
    """Later values win, except signup_ts (earliest) and blocked_at/unblocked_at/appealed_at (latest)."""
    out = dict(old)
    for k, v in new.items():
        if k == "signup_ts" and k in out:
            out[k] = min(out[k], v)
        elif k in ("blocked_at", "unblocked_at", "appealed_at") and k in out:
            out[k] = max(out[k], v)
        else:
            out[k] = v
    return out


# one journaled link: customer_id, kind, value_hash, base (JSON), live_first, live_last, live_count,
# live_counts (JSON) -- the row :func:`serving.consumer.steps.link_from_state` makes the absolute link of
LinkRow = tuple


@dataclass
class JournalEntry:
    """The work a step journaled and the consumer has still to apply and decide: what :meth:`Ledger.record`
    hands straight on, and what :meth:`Ledger.pending` reads back after a crash.

    - ``links``: the journaled links (:data:`LinkRow`), sorted by customer, kind and value hash;
    - ``customers``: customer id -> the properties to merge on its vertex;
    - ``scores``: ``(customer_id, event_id, event_type, ts)`` of the customers to score, by time;
    - ``as_of_ms``: the moment they are scored as of (the step's latest event), None when not known;
    - ``owners``: the partitions the work belongs to (:data:`UNPARTITIONED` for a source without them).
    """

    links: list[LinkRow] = field(default_factory=list)
    customers: dict[str, dict] = field(default_factory=dict)
    scores: list[tuple[str, str, str, int]] = field(default_factory=list)
    as_of_ms: int | None = None
    owners: frozenset[str] = frozenset({UNPARTITIONED})

    def __bool__(self) -> bool:
        return bool(self.links or self.customers or self.scores)


class Ledger(PartitionClaims):
    """The consumer's journal (one SQLite file); see the module's docstring."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA synchronous = FULL")  # the ledger is the source of exactly-once
        self.fence: dict[str, tuple[str, int]] = {}  # partition -> (this consumer, epoch) it claimed
        create_or_upgrade(self._db)

    def close(self) -> None:
        self._db.close()

    def bind(self, graph_id: str, graph_uri: str) -> None:
        """Bind a new ledger to the graph it journals for; refuse (:class:`LedgerMismatch`) a ledger bound
        to another graph. A ledger from before binding existed is bound to the first graph it meets."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO ledger_meta (key, value) VALUES ('graph_id', ?)", (graph_id,))
            self._db.execute("INSERT OR IGNORE INTO ledger_meta (key, value) VALUES ('graph_uri', ?)", (graph_uri,))
            bound = dict(self._db.execute("SELECT key, value FROM ledger_meta").fetchall())
        if bound["graph_id"] != graph_id:
            raise LedgerMismatch(
                f"ledger {self.path} journals graph {bound['graph_id']} ({bound['graph_uri']}), "
                f"not graph {graph_id} ({graph_uri}): give this graph its own ledger (--ledger)"
            )

    # ----------------------------------------------------------------- reads
    def seen_digests(self, event_ids: Iterable[str]) -> dict[str, str | None]:
        """The events of ``event_ids`` already applied, each with the digest of its content
        (:func:`serving.consumer.steps.event_digest`; None where a ledger from before digests recorded it)."""
        ids = list(dict.fromkeys(event_ids))
        seen: dict[str, str | None] = {}
        with self._lock:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                seen.update(self._db.execute(f"SELECT event_id, digest FROM seen WHERE event_id IN ({marks})", chunk))
        return seen

    def link_states(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], tuple]:
        """State ``(live_first, live_last, live_count, live_counts, base)`` of the links already in the ledger."""
        out = {}
        with self._lock:
            for key in set(keys):
                row = self._db.execute(
                    "SELECT live_first, live_last, live_count, live_counts, base FROM link_state "
                    "WHERE customer_id=? AND kind=? AND value_hash=?",
                    key,
                ).fetchone()
                if row is not None:
                    out[key] = row
        return out

    def offset(self, source: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT position FROM offsets WHERE source = ?", (source,)).fetchone()
        return int(row[0]) if row else 0

    def dirty_links(self, owners: Iterable[str] | None = None) -> list[tuple]:
        """Journaled links not yet written to the graph (of ``owners``' partitions; None: all)."""
        where, args = self._owned(owners)
        with self._lock:
            return self._db.execute(
                "SELECT customer_id, kind, value_hash, base, live_first, live_last, live_count, live_counts "
                f"FROM link_state WHERE dirty = 1 AND {where} ORDER BY customer_id, kind, value_hash",
                args,
            ).fetchall()

    def pending_customers(self, owners: Iterable[str] | None = None) -> dict[str, dict]:
        where, args = self._owned(owners)
        with self._lock:
            rows = self._db.execute(f"SELECT customer_id, props FROM pending_customer WHERE {where}", args)
            return {c: json.loads(p) for c, p in rows}

    def pending_scores(self, owners: Iterable[str] | None = None) -> list[tuple[str, str, str, int]]:
        where, args = self._owned(owners)
        with self._lock:
            return self._db.execute(
                "SELECT customer_id, event_id, event_type, ts FROM pending_score "
                f"WHERE {where} ORDER BY ts, customer_id",
                args,
            ).fetchall()

    # ---------------------------------------------------------------- writes
    def record(
        self,
        event_ids: dict[str, str],
        link_updates: dict,
        bases: dict,
        customer_props: dict[str, dict],
        scores: dict[str, tuple[str, str, int]],
        states: dict | None = None,
        as_of_ms: int | None = None,
        owner_of: dict[str, str] | None = None,
    ) -> JournalEntry:
        """One transaction: events seen (``event_ids``: id -> content digest), live link aggregates, pending
        customer writes and scores.

        ``owner_of``: customer id -> the partition its events came from (absent: :data:`UNPARTITIONED`);
        the transaction is refused (:class:`PartitionRevoked`) when one of them is no longer this
        consumer's.

        ``states``: :meth:`link_states` of the updated links, read by the caller just before (one
        consumer writes a ledger); read here when not given. ``as_of_ms``: the moment the pending
        scores are made as of (the step's latest event), kept so that recovery scores as of it too.

        Returns the :class:`JournalEntry` written, for the consumer to apply without reading it back (the
        ledger had no pending work before: the consumer finishes each step's work before the next)."""
        if states is None:
            states = self.link_states(link_updates)
        owner_of = owner_of or {}
        owners = frozenset(owner_of.values()) | {UNPARTITIONED}
        inserts, updates, rows = _link_writes(link_updates, bases, states)
        inserts = [(*row, owner_of.get(row[0], UNPARTITIONED)) for row in inserts]
        entry = JournalEntry(rows, {}, [], as_of_ms if scores else None, owners)
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                self._check_fence(db, owners)
                db.executemany("INSERT OR IGNORE INTO seen (event_id, digest) VALUES (?, ?)", list(event_ids.items()))
                db.executemany(
                    "INSERT INTO link_state (customer_id, kind, value_hash, base, live_first, live_last, live_count, "
                    "live_counts, dirty, owner) VALUES (?,?,?,?,?,?,?,?,1,?)",
                    inserts,
                )
                db.executemany(
                    "UPDATE link_state SET live_first=?, live_last=?, live_count=?, live_counts=?, "
                    "dirty=1, owner=? WHERE customer_id=? AND kind=? AND value_hash=?",
                    [(*u[:4], owner_of.get(u[4], UNPARTITIONED), *u[4:]) for u in updates],
                )
                entry.customers.update(_journal_customers(db, customer_props, owner_of))
                db.executemany(
                    "INSERT OR REPLACE INTO pending_score VALUES (?, ?, ?, ?, ?, ?)",
                    [(cid, *v, owner_of.get(cid, UNPARTITIONED), as_of_ms) for cid, v in scores.items()],
                )
                if as_of_ms is not None:  # the step's latest event: the watermark moves with it
                    _raise_meta(db, "newest_applied", as_of_ms)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        entry.scores = sorted(((cid, *v) for cid, v in scores.items()), key=lambda p: (p[3], p[0]))
        return entry

    def pending(self, owners: Iterable[str] | None = None) -> JournalEntry:
        """The journaled work not yet applied or decided (after a crash) of ``owners``' partitions (None:
        all): what recovery finishes."""
        return JournalEntry(
            self.dirty_links(owners),
            self.pending_customers(owners),
            self.pending_scores(owners),
            self.pending_as_of(owners),
            frozenset(owners) if owners is not None else frozenset({UNPARTITIONED}),
        )

    def applied(self, links: list[tuple[str, str, str]], customers: list[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("UPDATE link_state SET dirty=0 WHERE customer_id=? AND kind=? AND value_hash=?", links)
            self._db.executemany("DELETE FROM pending_customer WHERE customer_id=?", [(c,) for c in customers])
            self._db.execute("COMMIT")

    def newest_applied(self) -> int | None:
        """The newest event time (epoch ms) of the events recorded so far: the watermark
        ``consumer.max_event_age_s`` counts back from."""
        with self._lock:
            row = self._db.execute("SELECT value FROM ledger_meta WHERE key = 'newest_applied'").fetchone()
        return int(row[0]) if row else None

    def raise_watermark(self, ms: int) -> None:
        """Count the watermark from ``ms`` (epoch ms) at least: the graph held every event before it (the
        deployed model's training data ran up to it), though this ledger recorded none of them."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            _raise_meta(self._db, "newest_applied", ms)
            self._db.execute("COMMIT")

    def pending_as_of(self, owners: Iterable[str] | None = None) -> int | None:
        """The moment the pending scores (of ``owners``' partitions) are made as of (epoch ms), when their
        step recorded one (a ledger from before kept it once, for all)."""
        where, args = self._owned(owners)
        with self._lock:
            row = self._db.execute(f"SELECT max(as_of), count(*) FROM pending_score WHERE {where}", args).fetchone()
            if row[0] is None and row[1]:
                row = self._db.execute("SELECT value FROM ledger_meta WHERE key = 'pending_score_as_of'").fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def scored(self, customer_ids: list[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM pending_score WHERE customer_id=?", [(c,) for c in customer_ids])
            self._db.execute("COMMIT")

    def commit_offset(self, source: str, position: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO offsets VALUES (?, ?)", (source, int(position)))


def _link_writes(link_updates: dict, bases: dict, states: dict) -> tuple[list[tuple], list[tuple], list[LinkRow]]:
    """``(inserts, updates, rows)`` for :meth:`Ledger.record`: new ``link_state`` rows (the graph's value
    as base), updates merging the step's live aggregates into rows already there, and every journaled
    link as a :data:`LinkRow` sorted by customer, kind and value hash."""
    inserts, updates = [], []
    rows: list[LinkRow] = []
    for key, (first, last, count, counts) in link_updates.items():
        row = states.get(key)
        if row is None:
            inserts.append((*key, json.dumps(bases.get(key)), first, last, count, json.dumps(counts)))
            rows.append(inserts[-1])
        else:
            merged = json.loads(row[3])
            for t, n in counts.items():
                merged[t] = merged.get(t, 0) + n
            updates.append((min(row[0], first), max(row[1], last), row[2] + count, json.dumps(merged), *key))
            rows.append((*key, row[4], *updates[-1][:4]))
    return inserts, updates, sorted(rows, key=lambda r: r[:3])


def _journal_customers(db: sqlite3.Connection, props: dict[str, dict], owner_of: dict[str, str]) -> dict[str, dict]:
    """Merge each customer's property updates into its pending write (in :meth:`Ledger.record`'s
    transaction); returns the merged properties."""
    merged = {}
    for cid, update in props.items():
        row = db.execute("SELECT props FROM pending_customer WHERE customer_id=?", (cid,)).fetchone()
        merged[cid] = merge_customer_props(json.loads(row[0]) if row else {}, update)
        db.execute(
            "INSERT OR REPLACE INTO pending_customer VALUES (?, ?, ?)",
            (cid, json.dumps(merged[cid]), owner_of.get(cid, UNPARTITIONED)),
        )
    return merged


def _raise_meta(db: sqlite3.Connection, key: str, value_ms: int) -> None:
    """Set the ledger's ``key`` to ``value_ms`` unless it already holds a later time."""
    db.execute(
        "INSERT INTO ledger_meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
        "DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
        (key, str(int(value_ms))),
    )
