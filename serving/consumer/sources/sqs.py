"""SQS (or ElasticMQ) as the consumer's source and sink: long polling, messages deleted only after a
batch's effects, broker outages retried for ``consumer.broker_retry_s``."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlparse

from .base import IdleStop, Message

log = logging.getLogger("fraudgraph.consumer.sources")


@dataclass
class SqsMessage(Message):
    receipt: str = ""


def sqs_client(queue_url: str) -> Any:
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


class SqsSource(IdleStop):
    """An SQS queue; messages are deleted (acknowledged) only after processing.

    An unreachable endpoint (a restart) is retried for ``retry_s``. A delete whose
    receipt handle went stale meanwhile is left: the message comes back and the
    ledger drops it as a duplicate. Consumers compete for the queue's messages
    (``competing``): each journals its work under a lease of its own.
    """

    competing = True

    def __init__(
        self, queue_url: str, *, idle_stop_s: float | None = None, visibility_timeout_s: int = 120, retry_s: float = 120
    ):
        self.name = queue_url
        self.queue_url = queue_url
        self.idle_stop_s = idle_stop_s
        self.visibility_timeout_s = visibility_timeout_s
        self.retry_s = retry_s
        self._sqs = sqs_client(queue_url)
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

    def commit(self, batch: list[Message], ledger: Any = None) -> None:
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
    """Sends one JSON object per message to an SQS queue (decisions, dead letters). To a FIFO queue
    (``NAME.fifo``) in one message group, in the order written, each record deduplicated by its content."""

    def __init__(self, queue_url: str, *, retry_s: float = 120):
        self.queue_url = queue_url
        self.retry_s = retry_s
        self._sqs = sqs_client(queue_url)
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
                Entries=[{"Id": str(i), "MessageBody": body, **self._fifo(body)} for i, body in enumerate(chunk)],
            )
            if resp.get("Failed"):
                raise RuntimeError(f"SQS send failed for {len(resp['Failed'])} messages: {resp['Failed'][:1]}")

    def _fifo(self, body: str) -> dict[str, str]:
        if not self.queue_url.endswith(".fifo"):
            return {}
        return {"MessageGroupId": "fraudgraph", "MessageDeduplicationId": hashlib.sha256(body.encode()).hexdigest()}

    def close(self) -> None:
        self.flush()
