"""Event sources and sinks of the live consumer.

``file:///path/events.jsonl`` (or a plain path) reads a JSONL file and ends
at its end (``follow=True`` keeps tailing); ``-`` reads standard input. A
file source resumes after the last committed line: its position is kept in
the consumer's ledger and committed only after the graph write and the
decision emit. ``kafka://HOST:PORT/TOPIC?group=NAME`` consumes a Kafka
topic with a consumer group; offsets are committed only after the batch's
graph write and decision emit, bad events go to ``TOPIC.dlq`` (or
``&dlq=TOPIC``). An SQS queue URL (``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``
or ``http://127.0.0.1:9324/000000000000/NAME`` for ElasticMQ) is read with
long polling; messages are deleted only after the batch's effects, and bad
events go to the queue ``NAME-dlq`` beside it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import urlparse

log = logging.getLogger("fraudgraph.consumer.sources")


@dataclass
class Message:
    payload: str | bytes  # bytes as received where the source has them; the consumer decodes (UTF-8 only)
    position: int  # source-specific: line number for files


class FileSource:
    """A JSONL file, one event per line; positions are line numbers."""

    def __init__(self, path: str | Path, *, start: int = 0, follow: bool = False):
        self.path = Path(path)
        self.name = source_name(str(self.path))
        self.follow = follow
        self._fh: IO[bytes] = open(self.path, "rb")  # bytes: a line that is not UTF-8 is a dead letter, not a crash
        self._line = 0
        while self._line < start and self._fh.readline():
            self._line += 1
        self.exhausted = False

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        out: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < max_records:
            pos = self._fh.tell()
            line = self._fh.readline()
            if not line or not line.endswith(b"\n"):
                if line:  # a partial line being written: read it again later
                    self._fh.seek(pos)
                if not self.follow:
                    self.exhausted = not line
                    break
                if out or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
                continue
            self._line += 1
            if line.strip():
                out.append(Message(line.rstrip(b"\r\n"), self._line))
        return out

    def close(self) -> None:
        self._fh.close()

    def commit(self, batch: list[Message], ledger) -> None:
        ledger.commit_offset(self.name, batch[-1].position)


class StdinSource(FileSource):
    def close(self) -> None:  # never close the process's standard input
        pass

    def __init__(self, stream: IO[bytes] | None = None):
        self.name = "stdin"
        self.follow = False
        self._fh = stream or sys.stdin.buffer
        self._line = 0
        self.exhausted = False


class _IdleStop:
    """A broker source is ``exhausted`` after ``idle_stop_s`` without a message (None: never)."""

    idle_stop_s: float | None = None
    exhausted = False
    _last_message = 0.0

    def _note_poll(self, got_messages: bool) -> None:
        now = time.monotonic()
        if got_messages or not self._last_message:
            self._last_message = now
        elif self.idle_stop_s is not None and now - self._last_message >= self.idle_stop_s:
            self.exhausted = True


@dataclass
class KafkaMessage(Message):
    partition: int = 0
    topic: str = ""


class KafkaSource(_IdleStop):
    """A Kafka topic read by a consumer group; manual offset commits after processing.

    ``idle_stop_s``: report ``exhausted`` after this long without a message (tests,
    benchmarks, draining a topic); None keeps polling until stopped.
    """

    def __init__(
        self, bootstrap: str, topic: str, group: str, *, idle_stop_s: float | None = None, commit_retry_s: float = 300.0
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
            }
        )
        self._consumer.subscribe([topic])
        self._last_message = time.monotonic()

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        out: list[Message] = []
        for m in self._consumer.consume(num_messages=max_records, timeout=timeout_s):
            if m.error():
                continue
            out.append(KafkaMessage(m.value() or b"", m.offset(), m.partition(), m.topic()))
        self._note_poll(bool(out))
        return out

    def commit(self, batch: list[Message], ledger=None) -> None:
        from confluent_kafka import TopicPartition

        last: dict[tuple[str, int], int] = {}
        for m in batch:
            assert isinstance(m, KafkaMessage)
            key = (m.topic, m.partition)
            last[key] = max(last.get(key, -1), m.position)
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        delay, deadline = 0.2, time.monotonic() + self.commit_retry_s
        while True:  # the broker may be restarting: retry until it answers
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
                return
            except Exception as exc:  # noqa: BLE001 - KafkaException for coordinator/transport errors
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


@dataclass
class SqsMessage(Message):
    receipt: str = ""


def _sqs_client(queue_url: str):
    import os

    import boto3

    parsed = urlparse(queue_url)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region is None and parsed.hostname and parsed.hostname.startswith("sqs."):
        region = parsed.hostname.split(".")[1]
    return boto3.client("sqs", endpoint_url=f"{parsed.scheme}://{parsed.netloc}", region_name=region or "us-east-1")


def _sqs_retrying(call, what: str, retry_s: float, **kwargs):
    """``call(**kwargs)``, retried with backoff while the endpoint is unreachable (a restart), up to ``retry_s``."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    deadline = time.monotonic() + retry_s
    delay = 0.2
    while True:
        try:
            return call(**kwargs)
        except (BotoConnectionError, HTTPClientError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("SQS %s: %s; retrying in %.1fs", what, type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class SqsSource(_IdleStop):
    """An SQS queue; messages are deleted (acknowledged) only after processing.

    An unreachable endpoint (a restart) is retried for ``retry_s``. A delete whose
    receipt handle went stale meanwhile is left: the message comes back and the
    ledger drops it as a duplicate.
    """

    def __init__(
        self, queue_url: str, *, idle_stop_s: float | None = None, visibility_timeout_s: int = 120, retry_s: float = 120
    ):
        self.name = queue_url
        self.queue_url = queue_url
        self.idle_stop_s = idle_stop_s
        self.visibility_timeout_s = visibility_timeout_s
        self.retry_s = retry_s
        self._sqs = _sqs_client(queue_url)
        self._last_message = time.monotonic()
        self._seq = 0

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        out: list[Message] = []
        wait = max(0, min(20, int(round(timeout_s))))
        while len(out) < max_records:
            resp = _sqs_retrying(
                self._sqs.receive_message,
                "receive",
                self.retry_s,
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, max_records - len(out)),
                WaitTimeSeconds=wait if not out else 0,
                VisibilityTimeout=self.visibility_timeout_s,
            )
            msgs = resp.get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                self._seq += 1
                out.append(SqsMessage(m["Body"], self._seq, m["ReceiptHandle"]))
        self._note_poll(bool(out))
        return out

    def commit(self, batch: list[Message], ledger=None) -> None:
        for i in range(0, len(batch), 10):
            entries = [
                {"Id": str(j), "ReceiptHandle": cast(SqsMessage, m).receipt} for j, m in enumerate(batch[i : i + 10])
            ]
            resp = _sqs_retrying(
                self._sqs.delete_message_batch, "delete", self.retry_s, QueueUrl=self.queue_url, Entries=entries
            )
            failed = resp.get("Failed", [])
            stale = [f for f in failed if f.get("Code") == "ReceiptHandleIsInvalid"]
            if stale:
                log.warning(
                    "SQS delete: %d stale receipt handles (the broker restarted); the ledger will drop "
                    "the redelivered messages",
                    len(stale),
                )
            if len(stale) < len(failed):
                raise RuntimeError(f"SQS delete failed for {len(failed)} messages: {failed[:1]}")

    def close(self) -> None:
        pass


class SqsSink:
    """Sends one JSON object per message to an SQS queue (decisions, dead letters)."""

    def __init__(self, queue_url: str, *, retry_s: float = 120):
        self.queue_url = queue_url
        self.retry_s = retry_s
        self._sqs = _sqs_client(queue_url)
        self._buffer: list[str] = []

    def write(self, record: dict[str, Any]) -> None:
        self._buffer.append(json.dumps(record, sort_keys=True, default=str))

    def flush(self) -> None:
        while self._buffer:
            chunk, self._buffer = self._buffer[:10], self._buffer[10:]
            resp = _sqs_retrying(
                self._sqs.send_message_batch,
                "send",
                self.retry_s,
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)],
            )
            if resp.get("Failed"):
                raise RuntimeError(f"SQS send failed for {len(resp['Failed'])} messages: {resp['Failed'][:1]}")

    def close(self) -> None:
        self.flush()


def _kafka_parts(uri: str) -> tuple[str, str, dict[str, str]]:
    from urllib.parse import parse_qs

    parsed = urlparse(uri)
    topic = parsed.path.lstrip("/")
    if not parsed.netloc or not topic:
        raise ValueError(f"{uri!r}: expected kafka://HOST:PORT/TOPIC")
    return parsed.netloc, topic, {k: v[-1] for k, v in parse_qs(parsed.query).items()}


def open_sink(uri: str, *, retry_s: float = 120):
    """A JSONL file or ``-`` (standard output), or ``kafka://HOST:PORT/TOPIC``."""
    if uri.startswith("kafka://"):
        bootstrap, topic, _ = _kafka_parts(uri)
        return KafkaSink(bootstrap, topic)
    if uri.startswith(("http://", "https://")):
        return SqsSink(uri, retry_s=retry_s)
    return JsonlSink(uri)


def dead_letter_for(source_uri: str, default: str) -> str:
    """A Kafka source's dead letters go to its DLQ topic; others to the configured file."""
    if source_uri.startswith("kafka://"):
        bootstrap, topic, params = _kafka_parts(source_uri)
        return f"kafka://{bootstrap}/{params.get('dlq', topic + '.dlq')}"
    if source_uri.startswith(("http://", "https://")):
        return source_uri.rstrip("/") + "-dlq"
    return default


def source_name(uri: str) -> str:
    """Stable name of a source, the key of its committed position in the ledger."""
    if uri == "-":
        return "stdin"
    parsed = urlparse(uri)
    return f"file://{Path(parsed.path if parsed.scheme else uri).resolve()}"


def open_source(
    uri: str, *, start: int = 0, follow: bool = False, idle_stop_s: float | None = None, retry_s: float = 120
):
    if uri == "-":
        return StdinSource()
    if uri.startswith("kafka://"):
        bootstrap, topic, params = _kafka_parts(uri)
        return KafkaSource(bootstrap, topic, params.get("group", "fraudgraph-consumer"), idle_stop_s=idle_stop_s)
    if uri.startswith(("http://", "https://")):
        return SqsSource(uri, idle_stop_s=idle_stop_s, retry_s=retry_s)
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return FileSource(parsed.path if parsed.scheme else uri, start=start, follow=follow)
    raise ValueError(
        f"source {uri!r}: expected file:///PATH, -, kafka://HOST:PORT/TOPIC?group=NAME or an SQS queue URL"
    )


class JsonlSink:
    """Appends one JSON object per line and flushes (decisions, dead letters)."""

    def __init__(self, uri: str | Path):
        text = str(uri)
        if text == "-":
            self._fh = sys.stdout
        else:
            path = Path(urlparse(text).path if text.startswith("file:") else text)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not sys.stdout:
            self._fh.close()
