"""Event sources and sinks of the live consumer.

``file:///path/events.jsonl`` (or a plain path) reads a JSONL file and ends
at its end (``follow=True`` keeps tailing); ``-`` reads standard input. A
file source resumes after the last committed line: its position is kept in
the consumer's ledger and committed only after the graph write and the
decision emit. Kafka and SQS sources come with the brokers (not yet here).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse


@dataclass
class Message:
    payload: str
    position: int  # source-specific: line number for files


class FileSource:
    """A JSONL file, one event per line; positions are line numbers."""

    def __init__(self, path: str | Path, *, start: int = 0, follow: bool = False):
        self.path = Path(path)
        self.name = source_name(str(self.path))
        self.follow = follow
        self._fh: IO[str] = open(self.path, encoding="utf-8")
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
            if not line or not line.endswith("\n"):
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
                out.append(Message(line.rstrip("\n"), self._line))
        return out

    def close(self) -> None:
        self._fh.close()


class StdinSource(FileSource):
    def close(self) -> None:  # never close the process's standard input
        pass

    def __init__(self, stream: IO[str] | None = None):
        self.name = "stdin"
        self.follow = False
        self._fh = stream or sys.stdin
        self._line = 0
        self.exhausted = False


def source_name(uri: str) -> str:
    """Stable name of a source, the key of its committed position in the ledger."""
    if uri == "-":
        return "stdin"
    parsed = urlparse(uri)
    return f"file://{Path(parsed.path if parsed.scheme else uri).resolve()}"


def open_source(uri: str, *, start: int = 0, follow: bool = False):
    if uri == "-":
        return StdinSource()
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return FileSource(parsed.path if parsed.scheme else uri, start=start, follow=follow)
    raise ValueError(f"source {uri!r}: only file:///PATH and - are supported in this version")


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
