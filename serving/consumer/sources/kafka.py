"""Kafka as the consumer's source and sink: a consumer group whose offsets are committed only after a
batch's graph write and decision emit, and a producer for decisions and dead letters.

Several consumers in one group share the topic's partitions (events keyed by customer, so one customer's
events stay in one partition). The source tells the consumer when partitions are assigned or revoked
(:meth:`KafkaSource.listen_rebalance`); the consumer claims them in its shared ledger."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from .base import IdleStop, Message

log = logging.getLogger("fraudgraph.consumer.sources")


@dataclass
class KafkaMessage(Message):
    partition: int = 0
    topic: str = ""

    @property
    def owner(self) -> str:
        return partition_name(self.topic, self.partition)


def partition_name(topic: str, partition: int) -> str:
    """How a partition is named in the consumer's ledger: ``TOPIC/N``."""
    return f"{topic}/{partition}"


# commit errors that mean the group moved on without this consumer: its partitions belong to another now
_LOST_GENERATION = ("ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "REBALANCE_IN_PROGRESS", "FENCED_INSTANCE_ID")


class KafkaSource(IdleStop):
    """A Kafka topic read by a consumer group; manual offset commits after processing.

    ``idle_stop_s``: report ``exhausted`` after this long without a message (tests,
    benchmarks, draining a topic); None keeps polling until stopped. ``options``: further librdkafka
    settings (``session.timeout.ms``, ``partition.assignment.strategy``, ...), given as the source URI's
    query parameters that contain a dot.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        *,
        idle_stop_s: float | None = None,
        commit_retry_s: float = 300.0,
        options: dict[str, str] | None = None,
    ):
        from confluent_kafka import Consumer

        self.commit_retry_s = commit_retry_s
        self.name = f"kafka://{bootstrap}/{topic}?group={group}"
        self.topic = topic
        self.idle_stop_s = idle_stop_s
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                **(options or {}),
            }
        )
        self._assigned: set[tuple[str, int]] = set()
        self._on_assign: Callable[[list[str]], None] | None = None
        self._on_revoke: Callable[[list[str]], None] | None = None
        self._subscribed = False
        self._last_message = time.monotonic()

    def listen_rebalance(self, on_assign: Callable[[list[str]], None], on_revoke: Callable[[list[str]], None]) -> None:
        """Call ``on_assign(partitions)`` / ``on_revoke(partitions)`` (named :func:`partition_name`) as the
        group assigns or revokes them; both run inside :meth:`poll`, between two batches."""
        self._on_assign, self._on_revoke = on_assign, on_revoke

    def _assign(self, _consumer: Any, partitions: list) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        if self._on_assign is not None:
            self._on_assign(sorted(partition_name(tp.topic, tp.partition) for tp in partitions))

    def _revoke(self, _consumer: Any, partitions: list) -> None:
        self._assigned -= {(tp.topic, tp.partition) for tp in partitions}
        if self._on_revoke is not None:
            self._on_revoke(sorted(partition_name(tp.topic, tp.partition) for tp in partitions))

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        if not self._subscribed:  # at the first poll, so that a listener set after construction hears the first
            self._consumer.subscribe([self.topic], on_assign=self._assign, on_revoke=self._revoke, on_lost=self._revoke)
            self._subscribed = True
        out: list[Message] = []
        for m in self._consumer.consume(num_messages=max_records, timeout=timeout_s):
            if m.error():
                continue
            # a message without an error has its offset, partition and topic
            out.append(KafkaMessage(m.value() or b"", m.offset() or 0, m.partition() or 0, m.topic() or ""))
        self._note_poll(bool(out))
        return out

    def commit(self, batch: list[Message], ledger: Any = None) -> None:
        from confluent_kafka import TopicPartition

        last: dict[tuple[str, int], int] = {}
        for m in batch:
            assert isinstance(m, KafkaMessage)
            key = (m.topic, m.partition)
            last[key] = max(last.get(key, -1), m.position)
        # a partition revoked since the batch was polled is another consumer's: it resumes from its own
        # committed offset and drops what this batch applied as already seen
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items() if (t, p) in self._assigned]
        if not offsets:
            return
        delay, deadline = 0.2, time.monotonic() + self.commit_retry_s
        while True:  # the broker may be restarting: retry until it answers
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
                return
            except Exception as exc:  # noqa: BLE001 - KafkaException for coordinator/transport errors
                if any(code in str(exc) for code in _LOST_GENERATION):
                    log.warning("kafka commit refused (%s): the group rebalanced; the new owner goes on", exc)
                    return
                if time.monotonic() > deadline:
                    raise
                log.warning("kafka commit failed (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        self._consumer.close()


class KafkaSink:
    """Produces one JSON object per message to a Kafka topic (decisions, dead letters)."""

    def __init__(self, bootstrap: str, topic: str):
        from confluent_kafka import Producer

        self.topic = topic
        self._producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})

    def write(self, record: dict[str, Any]) -> None:
        key = record.get("decision_id") or record.get("event_id")
        self._producer.produce(
            self.topic,
            json.dumps(record, sort_keys=True, default=str).encode(),
            key=key.encode() if isinstance(key, str) else None,
        )

    def flush(self) -> None:
        remaining = self._producer.flush(30)
        if remaining:
            raise RuntimeError(f"kafka sink {self.topic}: {remaining} messages not delivered")

    def close(self) -> None:
        self.flush()


def kafka_parts(uri: str) -> tuple[str, str, dict[str, str]]:
    from urllib.parse import parse_qs

    parsed = urlparse(uri)
    topic = parsed.path.lstrip("/")
    if not parsed.netloc or not topic:
        raise ValueError(f"{uri!r}: expected kafka://HOST:PORT/TOPIC")
    return parsed.netloc, topic, {k: v[-1] for k, v in parse_qs(parsed.query).items()}
