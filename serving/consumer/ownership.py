"""Whose journaled work a consumer finishes, as a mixin of :class:`serving.consumer.pipeline.LiveConsumer`:
partitions handed over in a Kafka group's rebalance, and leases among consumers competing for one SQS
queue (:mod:`serving.consumer.partitions` keeps both in the shared ledger; docs/scaling.md)."""

from __future__ import annotations

import logging

from fraudgraph.config import Settings

from .ledger import Ledger, PartitionRevoked
from .partitions import LEASE_PREFIX
from .steps import ConsumerStats

log = logging.getLogger("fraudgraph.consumer")


class WorkOwnership:
    """Claiming partitions and leases, and finishing their journaled work (``recover``)."""

    ledger: Ledger
    consumer_id: str
    stats: ConsumerStats
    settings: Settings
    lease: str | None  # competing consumers: the owner of this consumer's journaled work
    _leases_taken: int

    def recover(self, owners: list[str] | None = None) -> None:
        """Finish the journaled work of ``owners`` (the consumer's)."""
        raise NotImplementedError

    def take_over(self, owners: list[str]) -> None:
        """Partitions assigned to this consumer (a rebalance; no batch is in flight): claim them in the
        ledger, which fences off their previous owner, and finish the work it journaled."""
        self.ledger.claim(owners, self.consumer_id)
        log.info("assigned partitions %s", ", ".join(owners) or "none")
        self.recover(owners)

    def keep_lease(self) -> None:
        """Between batches, for consumers competing for one queue: renew this consumer's lease (a new
        one if another consumer claimed it while this one stalled), then claim every other consumer's
        lease that expired, finish its journaled work and retire it."""
        if self.lease is None or not self.ledger.renew(self.lease):
            if self.lease is not None:
                log.warning("lease %s was claimed by another consumer while this one stalled", self.lease)
            self._leases_taken += 1
            self.lease = f"{LEASE_PREFIX}{self.consumer_id}:{self._leases_taken}"
            self.ledger.claim([self.lease], self.consumer_id)
            log.info("journaling under lease %s", self.lease)
        for owner in self.ledger.expired_leases(self.settings.consumer.lease_s):
            log.warning("taking over the expired lease %s", owner)
            self.ledger.claim([owner], self.consumer_id)
            try:
                self.recover([owner])
            except PartitionRevoked as exc:  # a third consumer claimed it too: its work is left to it
                log.warning("%s", exc)
                self.ledger.release([owner])
                continue
            self.ledger.retire(owner)
            self.stats.leases_taken_over += 1

    def hand_over(self, owners: list[str]) -> None:
        """Partitions revoked from this consumer (a rebalance, after its last batch committed)."""
        self.ledger.release(owners)
        log.info("revoked partitions %s", ", ".join(owners) or "none")
