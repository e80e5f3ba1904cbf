"""Compatibility shim: gremlinpython's request debug strings, built only when they are logged.

gremlinpython 3.7 formats every request's bytecode for a debug log line three
times (``DriverRemoteConnection.submit``, then twice in ``Client.submit_async``),
with ``str()`` called eagerly, whether or not the ``gremlinpython`` logger logs
debug. A request carries its rows as bytecode arguments, so formatting them was a
large share of a link write's time on the client (docs/decisions.md).

:func:`format_bytecode_only_when_logged` makes ``Bytecode.__repr__`` give a short
placeholder unless that logger is enabled for debug, in which case it formats in
full as before. Nothing else in gremlinpython reads the repr.
"""

from __future__ import annotations

import logging

_GREMLINPYTHON_LOG = logging.getLogger("gremlinpython")


def format_bytecode_only_when_logged() -> None:
    """Install the lazy ``Bytecode.__repr__`` (idempotent)."""
    from gremlin_python.process.traversal import Bytecode

    full = Bytecode.__repr__
    if getattr(full, "formats_only_when_logged", False):
        return

    def __repr__(self) -> str:
        if _GREMLINPYTHON_LOG.isEnabledFor(logging.DEBUG):
            return full(self)
        return f"<bytecode: {len(self.step_instructions)} steps; debug-log 'gremlinpython' for the text>"

    __repr__.formats_only_when_logged = True  # type: ignore[attr-defined]
    Bytecode.__repr__ = __repr__  # type: ignore[method-assign]
