"""The identity graph: one domain-level interface, backends chosen by URI.

``sqlite:///PATH`` opens the embedded store; ``ws://``/``wss://`` a Gremlin
server (Gremlin Server, Neptune, JanusGraph).
"""

from __future__ import annotations

from .base import (
    CustomerUpsert,
    GraphStoreError,
    IdentityGraph,
    IdentityLink,
    InvalidElementError,
    LinkedIdentifier,
    Neighbourhood,
    SharedIdentifier,
    identifier_id,
)


def open_graph(uri: str | None = None, settings=None) -> IdentityGraph:
    """Open the identity graph at ``uri`` (default: ``graph.uri`` of the settings)."""
    if settings is None:
        from ..config import load_settings

        settings = load_settings()
    gs = settings.graph
    uri = uri or gs.uri
    if uri.startswith("sqlite:"):
        from .sqlite_store import SqliteIdentityGraph

        return SqliteIdentityGraph(uri, batch_size=gs.batch_size, fanout_cap=gs.neighbourhood_fanout_cap,
                                   busy_timeout_ms=gs.sqlite.busy_timeout_ms,
                                   cache_size_mb=gs.sqlite.cache_size_mb)
    if uri.startswith(("ws://", "wss://")):
        from .gremlin_store import GremlinIdentityGraph

        gg = gs.gremlin
        return GremlinIdentityGraph(uri, traversal_source=gg.traversal_source, pool_size=gg.pool_size,
                                    batch_size=gg.batch_size, fanout_cap=gs.neighbourhood_fanout_cap,
                                    max_retries=gg.max_retries, backoff_initial_s=gg.backoff_initial_s,
                                    backoff_max_s=gg.backoff_max_s, request_timeout_s=gg.request_timeout_s,
                                    summary_properties=gg.summary_properties)
    raise ValueError(f"graph URI {uri!r}: expected sqlite:///PATH, ws://HOST:PORT/gremlin or wss://...")


__all__ = [
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
