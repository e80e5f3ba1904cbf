"""Logging set-up for the command line and jobs (library code only calls ``logging.getLogger``)."""

from __future__ import annotations

import logging
import sys

_NOISY = ("gremlinpython", "py4j", "aiohttp", "urllib3", "matplotlib", "asyncio")


class EscapingFormatter(logging.Formatter):
    """One line per record, whatever a message holds: control characters (a newline in a customer id,
    an ANSI escape) are written escaped, so input can neither forge log lines nor drive a terminal."""

    _TABLE = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x20), 0x7F)}

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        head, sep, tail = text.partition("\nTraceback")  # keep a traceback's own lines readable
        return head.translate(self._TABLE) + (sep + tail if sep else "")


def configure_logging(level: str = "INFO") -> None:
    """Structured-enough single-line logs on stderr; chatty third-party loggers at WARNING."""
    root = logging.getLogger()
    if not any(getattr(h, "_fraudgraph", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._fraudgraph = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
