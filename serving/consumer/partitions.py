"""Partitions in a ledger shared by the consumers of a group: which consumer owns a partition's journaled
work, and the fence that keeps a consumer that lost a partition from writing for it.

``partition_owner`` holds, per partition, the consumer that claimed it last and an epoch raised at each
claim. A consumer remembers the epochs it claimed (``fence``); a journal or graph write for a partition
whose row no longer matches raises :class:`PartitionRevoked`.

Competing consumers on one queue (SQS) have no partitions: each consumer journals its work under a
**lease** of its own (an owner named ``lease:<consumer>``), renewed between batches. A lease not renewed
for ``consumer.lease_s`` belongs to a consumer that died or stalled: another one claims it (which fences
the stalled one off), finishes its journaled work and retires it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable

from fraudgraph.timeutil import now_ms

UNPARTITIONED = ""  # the owner of work from a source without partitions read by one consumer (a file)
LEASE_PREFIX = "lease:"  # the owners of competing consumers' work (an SQS queue)


class PartitionRevoked(RuntimeError):
    """Another consumer claimed a partition this one still had work of: the work is left to it."""


class PartitionClaims:
    """The partition half of :class:`serving.consumer.ledger.Ledger` (its ``_db`` and ``_lock``)."""

    _db: sqlite3.Connection
    _lock: threading.RLock
    fence: dict[str, tuple[str, int]]  # partition -> (this consumer, epoch) it claimed

    def claim(self, owners: Iterable[str], consumer_id: str) -> dict[str, int]:
        """Take ``owners`` (partitions) for ``consumer_id``: each one's epoch is raised, which fences off the
        consumer that had it. Returns the epochs; :meth:`pending` of these partitions is this consumer's to
        finish from now on."""
        claimed = {}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            for owner in sorted(set(owners)):
                self._db.execute(
                    "INSERT INTO partition_owner (owner, consumer, epoch, renewed_ms) VALUES (?, ?, 1, ?) "
                    "ON CONFLICT(owner) DO UPDATE SET consumer = excluded.consumer, epoch = epoch + 1, "
                    "renewed_ms = excluded.renewed_ms",
                    (owner, consumer_id, now_ms()),
                )
                (epoch,) = self._db.execute("SELECT epoch FROM partition_owner WHERE owner = ?", (owner,)).fetchone()
                claimed[owner] = int(epoch)
                self.fence[owner] = (consumer_id, int(epoch))
            self._db.execute("COMMIT")
        return claimed

    def renew(self, owner: str) -> bool:
        """Renew this consumer's lease ``owner`` (now); False when another consumer claimed it meanwhile
        (this one was fenced off and must take a new lease)."""
        if owner not in self.fence:
            return False
        consumer, epoch = self.fence[owner]
        with self._lock:
            renewed = self._db.execute(
                "UPDATE partition_owner SET renewed_ms = ? WHERE owner = ? AND consumer = ? AND epoch = ?",
                (now_ms(), owner, consumer, epoch),
            ).rowcount
        return renewed == 1

    def expired_leases(self, lease_s: float) -> list[str]:
        """Other consumers' leases not renewed for ``lease_s`` seconds."""
        cutoff = now_ms() - int(lease_s * 1000)
        with self._lock:
            rows = self._db.execute(
                "SELECT owner FROM partition_owner WHERE owner LIKE ? AND renewed_ms < ? ORDER BY owner",
                (LEASE_PREFIX + "%", cutoff),
            ).fetchall()
        return [owner for (owner,) in rows if owner not in self.fence]

    def retire(self, owner: str) -> None:
        """Drop a lease this consumer claimed and finished the work of: nobody claims it again, and the
        consumer it came from, should it come back, finds it gone (fenced off)."""
        consumer, epoch = self.fence.pop(owner)
        with self._lock:
            self._db.execute(
                "DELETE FROM partition_owner WHERE owner = ? AND consumer = ? AND epoch = ?", (owner, consumer, epoch)
            )

    def release(self, owners: Iterable[str]) -> None:
        """Forget partitions handed over in a rebalance (nothing of theirs is in flight then)."""
        for owner in owners:
            self.fence.pop(owner, None)

    def check_fence(self, owners: Iterable[str]) -> None:
        """Raise :class:`PartitionRevoked` when another consumer claimed one of ``owners`` since this one
        did (or this one never claimed it); work without partitions passes."""
        with self._lock:
            self._check_fence(self._db, owners)

    def _check_fence(self, db: sqlite3.Connection, owners: Iterable[str]) -> None:
        for owner in set(owners) - {UNPARTITIONED}:
            row = db.execute("SELECT consumer, epoch FROM partition_owner WHERE owner = ?", (owner,)).fetchone()
            if owner not in self.fence or row is None or (row[0], int(row[1])) != self.fence[owner]:
                raise PartitionRevoked(f"partition {owner} is claimed by another consumer: its work is left to it")

    @staticmethod
    def _owned(owners: Iterable[str] | None) -> tuple[str, list[str]]:
        """A WHERE clause (and its parameters) keeping the rows of ``owners`` (None: every row)."""
        if owners is None:
            return "1", []
        kept = sorted(set(owners))
        return f"owner IN ({','.join('?' * len(kept))})", kept
