"""File sources and sinks: a JSONL file (or a pipe, a FIFO, standard input) read line by line, and a JSONL
file (or standard output) appended to. A file source's position is its line number, kept in the
consumer's ledger and committed only after the batch's effects."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from .base import Message


def source_name(uri: str) -> str:
    """Stable name of a source, the key of its committed position in the ledger."""
    if uri == "-":
        return "stdin"
    parsed = urlparse(uri)
    return f"file://{Path(parsed.path if parsed.scheme else uri).resolve()}"


class FileSource:
    """A JSONL file, one event per line; positions are line numbers. ``stop_at``: the source ends after
    that line (a part of a file; None: at the end of the file). Reads without seeking, so a pipe, a FIFO
    and a file read alike: a line still being written is kept until its newline comes (``follow``), and
    at the end of a source that is not followed a last line without a newline is a line."""

    def __init__(self, path: str | Path, *, start: int = 0, follow: bool = False, stop_at: int | None = None):
        self.path = Path(path)
        self.name = source_name(str(self.path))
        self.follow = follow
        self.stop_at = stop_at
        # bytes: a line that is not UTF-8 is a dead letter, not a crash; kept open until close()
        self._fh: IO[bytes] = open(self.path, "rb")  # noqa: SIM115
        self._partial = b""  # the start of a line whose newline has not come yet
        self._line = 0
        while self._line < start and self._fh.readline():
            self._line += 1
        self.exhausted = False

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        out: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < max_records:
            if self.stop_at is not None and self._line >= self.stop_at:
                self.exhausted = True
                break
            line = self._partial + self._fh.readline()
            self._partial = b""
            if not line.endswith(b"\n") and (self.follow or not line):
                self._partial = line  # a line being written (or nothing yet): its rest comes later
                if not self.follow:
                    self.exhausted = True
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

    def commit(self, batch: list[Message], ledger: Any) -> None:
        ledger.commit_offset(self.name, batch[-1].position)


class StdinSource(FileSource):
    def close(self) -> None:  # never close the process's standard input
        pass

    def __init__(self, stream: IO[bytes] | None = None):
        self.name = "stdin"
        self.follow = False
        self.stop_at = None
        self._fh = stream or sys.stdin.buffer
        self._partial = b""
        self._line = 0
        self.exhausted = False


class JsonlSink:
    """Appends one JSON object per line and flushes (decisions, dead letters)."""

    def __init__(self, uri: str | Path):
        text = str(uri)
        if text == "-":
            self._fh = sys.stdout
        else:
            path = Path(urlparse(text).path if text.startswith("file:") else text)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open until close()

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not sys.stdout:
            self._fh.close()
