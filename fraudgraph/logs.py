"""Logging set-up for the command line and jobs (library code only calls ``logging.getLogger``)."""

from __future__ import annotations

import logging
import sys

_NOISY = ("gremlinpython", "py4j", "aiohttp", "urllib3", "matplotlib", "asyncio")


def configure_logging(level: str = "INFO") -> None:
    """Structured-enough single-line logs on stderr; chatty third-party loggers at WARNING."""
    root = logging.getLogger()
    if not any(getattr(h, "_fraudgraph", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._fraudgraph = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
