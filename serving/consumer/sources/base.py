"""What every source and sink of the consumer is: a message with its position, a source protocol and a sink
protocol. The one module the file, Kafka and SQS implementations share (none imports another)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Message:
    payload: str | bytes  # bytes as received where the source has them; the consumer decodes (UTF-8 only)
    position: int  # source-specific: line number for files

    @property
    def owner(self) -> str:
        """The source partition the message came from, which owns its effects in a shared ledger ('': a
        source without partitions)."""
        return ""


class Source(Protocol):
    """Where events come from: ``poll`` a batch, ``commit`` it once its effects are journaled (a file source
    records its position in the ledger, a broker acknowledges), ``exhausted`` once there is nothing more
    to read (a file's end, or a broker's idle time)."""

    name: str
    exhausted: bool

    def poll(self, max_records: int, timeout_s: float) -> list[Message]: ...

    def commit(self, batch: list[Message], ledger: Any) -> None: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """Where decisions and dead letters go: one JSON object per record."""

    def write(self, record: dict[str, Any]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class IdleStop:
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
