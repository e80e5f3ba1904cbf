"""The identity graph: one domain-level interface, backends chosen by URI.

``sqlite:///PATH`` opens the embedded store; ``ws://``/``wss://`` a Gremlin
server (Gremlin Server, Neptune, JanusGraph).
"""

from __future__ import annotations

from .base import IdentityGraph
from .elements import (
    CustomerUpsert,
    GraphStoreError,
    IdentityLink,
    InvalidElementError,
    LinkedIdentifier,
    Neighbourhood,
    SharedIdentifier,
    identifier_id,
)


class GraphSetupError(ValueError):
    """A graph that must not be used as configured: missing file, another PII key, a bad URI. One line."""


def open_graph(uri: str | None = None, settings=None, *, create: bool = True) -> IdentityGraph:
    """Open the identity graph at ``uri`` (default: ``graph.uri`` of the settings).

    ``create=False`` refuses a SQLite file that does not exist (commands that only read a graph).
    The graph keeps the fingerprint of the PII key it was built with (recorded by the first process
    that opens it) and refuses a process with another key: its identifiers would hash differently.
    """
    if settings is None:
        from ..config import load_settings

        settings = load_settings()
    gs = settings.graph
    uri = uri or gs.uri
    if uri.startswith("sqlite:"):
        from .sqlite import SqliteIdentityGraph, path_from_uri

        if not create and not path_from_uri(uri).exists():
            raise GraphSetupError(f"graph {uri}: no such file (only fraudgraph etl and consume create a graph)")
        import sqlite3

        try:
            store: IdentityGraph = SqliteIdentityGraph(uri, gs)
        except sqlite3.DatabaseError as exc:  # a corrupt file, or not SQLite at all: one line, not a traceback
            raise GraphSetupError(f"graph {uri}: not a usable SQLite database ({exc})") from None
    elif uri.startswith(("ws://", "wss://")):
        from .gremlin import GremlinIdentityGraph

        store = GremlinIdentityGraph(uri, gs)
    else:
        raise GraphSetupError(f"graph URI {uri!r}: expected sqlite:///PATH, ws://HOST:PORT/gremlin or wss://...")
    _check_key(store, settings)
    return store


def _check_key(store: IdentityGraph, settings) -> None:
    from ..identity import IdentifierHasher

    fingerprint = IdentifierHasher.from_settings(settings.privacy).key_fingerprint
    kept = store.key_fingerprint(fingerprint)
    if kept != fingerprint:
        store.close()
        raise GraphSetupError(
            f"graph {store.uri} was built with another PII key (fingerprint {kept}, this "
            f"process has {fingerprint}): its identifiers would hash differently"
        )


__all__ = [
    "GraphSetupError",
    "CustomerUpsert",
    "GraphStoreError",
    "IdentityGraph",
    "IdentityLink",
    "InvalidElementError",
    "LinkedIdentifier",
    "Neighbourhood",
    "SharedIdentifier",
    "identifier_id",
    "open_graph",
]
