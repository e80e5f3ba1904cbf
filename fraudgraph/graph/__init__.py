"""The identity graph: one domain-level interface, backends chosen by URI.

``sqlite:///PATH`` opens the embedded store; ``ws://``/``wss://`` a Gremlin
server (Gremlin Server, Neptune, JanusGraph).
"""

from __future__ import annotations

from contextlib import closing
from typing import TYPE_CHECKING

from .base import IdentityGraph, LinkSummaries, customer_properties
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

if TYPE_CHECKING:
    from ..config import Settings


class GraphSetupError(ValueError):
    """A graph that must not be used as configured: missing file, another PII key, a bad URI. One line."""


def open_graph(uri: str | None = None, settings: Settings | None = None, *, create: bool = True) -> IdentityGraph:
    """Open the identity graph at ``uri`` (default: ``graph.uri`` of the settings).

    ``create=False`` refuses a SQLite file that does not exist or holds no identity graph (an empty or
    foreign file): every command but the ETL, the main job and ``consume --create`` (a typo in a path
    must not become an empty graph that decides ``allow`` for everyone).
    The graph keeps the fingerprint of the PII key it was built with (recorded by the first process
    that opens it) and refuses a process with another key: its identifiers would hash differently.
    """
    if settings is None:
        from ..config import load_settings

        settings = load_settings()
    gs = settings.graph
    uri = uri or gs.uri
    if uri.startswith("sqlite:"):
        import sqlite3

        from .sqlite import SqliteIdentityGraph, path_from_uri

        if not create and not path_from_uri(uri).exists():
            raise GraphSetupError(f"graph {uri}: no such file (fraudgraph etl, or consume --create, makes a graph)")
        if not create:
            _refuse_unless_a_graph(uri, path_from_uri(uri))

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


def _refuse_unless_a_graph(uri: str, path) -> None:
    """Refuse a SQLite file that does not hold the identity graph's tables (read only: writes nothing)."""
    import sqlite3

    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:  # a corrupt file, or not SQLite at all: one line, not a traceback
        raise GraphSetupError(f"graph {uri}: not a usable SQLite database ({exc})") from None
    if not {"link", "customer", "graph_meta"} <= tables:
        raise GraphSetupError(
            f"graph {uri}: holds no identity graph (an empty or foreign SQLite file; fraudgraph etl, or "
            "consume --create, makes one)"
        )


def _check_key(store: IdentityGraph, settings) -> None:
    from ..identity import IdentifierHasher

    fingerprint = IdentifierHasher.from_settings(settings.privacy).key_fingerprint
    kept = store._bind_key_fingerprint(fingerprint)
    if kept != fingerprint and kept.split("/")[0] == fingerprint.split("/")[0]:
        store.close()
        raise GraphSetupError(
            f"graph {store.uri} was built under identifier normalisation {kept.partition('/')[2] or 'rule1'}, "
            f"this process hashes under {fingerprint.partition('/')[2]} (docs/graph.md, 'Identifier "
            "normalisation'): rebuild it with fraudgraph etl"
        )
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
    "LinkSummaries",
    "LinkedIdentifier",
    "Neighbourhood",
    "SharedIdentifier",
    "customer_properties",
    "identifier_id",
    "open_graph",
]
