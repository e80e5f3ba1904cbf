"""Logging set-up for the command line and jobs (library code only calls ``logging.getLogger``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sized
from typing import TypeVar

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


class Progress:
    """Progress of one long piece of batch work: a tqdm bar with a time estimate on a terminal, and
    otherwise (a log file, CI) a log line every ``log_every_s`` seconds and one at the end, each with the
    count done, the rate, the time left and the latest figures (``postfix``).

    Args:
        total: units of work in all (None: unknown, no time estimate).
        desc: what is being done, as the log line starts ("training rgcn_edge").
        unit: the unit counted ("epoch", "event").
        enabled: False shows and logs nothing (tests, nested work).
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        *,
        enabled: bool = True,
        log_every_s: float = 10.0,
        logger: logging.Logger | None = None,
    ):
        import time

        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.log_every_s = log_every_s
        self.log = logger or logging.getLogger("fraudgraph.progress")
        self.done = 0
        self.postfix: dict[str, object] = {}
        self._clock = time.monotonic
        self._start = self._last_log = self._clock()
        self._bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, mininterval=0.5, leave=True)

    def update(self, n: int = 1, **postfix: object) -> None:
        """``n`` more units done; ``postfix``: figures to show beside the count (rounded floats)."""
        self.done += n
        self.postfix.update({k: round(v, 4) if isinstance(v, float) else v for k, v in postfix.items()})
        if not self.enabled:
            return
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(self.postfix, refresh=False)
            self._bar.update(n)
        elif self._clock() - self._last_log >= self.log_every_s:
            self._log_line()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            self._log_line(final=True)

    def _log_line(self, final: bool = False) -> None:
        now = self._clock()
        self._last_log = now
        elapsed = now - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        of = f"/{self.total}" if self.total is not None else ""
        left = ""
        if not final and self.total is not None and rate > 0:
            left = f", about {max(self.total - self.done, 0) / rate:.0f} s left"
        figures = "".join(f", {k} {v}" for k, v in self.postfix.items())
        self.log.info(
            "%s: %d%s %s%s in %.0f s (%.1f %s/s%s)%s",
            self.desc,
            self.done,
            of,
            self.unit + ("s" if self.done != 1 and not self.unit.endswith("s") else ""),
            " done" if final else "",
            elapsed,
            rate,
            self.unit,
            left,
            figures,
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


T = TypeVar("T")


def progress(
    iterable: Iterable[T], desc: str, unit: str = "it", *, total: int | None = None, enabled: bool = True
) -> Iterable[T]:
    """Iterate ``iterable`` under a :class:`Progress` (its ``len`` is the total when it has one)."""
    if total is None and isinstance(iterable, Sized):
        total = len(iterable)
    with Progress(total, desc, unit, enabled=enabled) as bar:
        for item in iterable:
            yield item
            bar.update()
