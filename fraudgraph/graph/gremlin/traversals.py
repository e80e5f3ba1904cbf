"""What every traversal of the Gremlin store shares: the store's constants, ids of its vertices and edges,
typed values (Gremlin Long for Python ints), the aggregate steps with a default for an empty stream, and
which failures are transient (retried on a fresh connection)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from ...schema import CUSTOMER, EDGE_LABEL_BY_KIND
from ..link_summaries import LINK_ROW

GRAPH_META_LABEL, GRAPH_META_ID = "graph_meta", "fraudgraph:graph_meta"


def single_valued(props: Mapping[str, Any]) -> dict[str, Any]:
    """Vertex properties for mergeV with their cardinality stated: Neptune's default is ``set``, where a
    plain write would add a value instead of replacing it."""
    from gremlin_python.process.traversal import CardinalityValue

    return {k: CardinalityValue.single(v) for k, v in props.items()}


CUSTOMER_PREFIX = f"{CUSTOMER}:"
SUMMARY = "link_summary"
SUMMARY_VERSION = "link_summary_version"
INTERNAL_PROPERTIES = (SUMMARY, SUMMARY_VERSION)


# a link edge's properties as one string (see projected_links)
def format_template(keys: Sequence[str]) -> str:
    """A ``format()`` pattern giving these keys' values comma-separated (``%{key},%{key},...``)."""
    return ",".join(f"%{{{k}}}" for k in keys)


LINK_TEXT = format_template(LINK_ROW)
_TRANSIENT_MARKERS = (
    "ConcurrentModificationException",
    "Connection was closed",
    "Connection was already closed",
    "Connection refused",
    "is not configured on the server",  # server still binding `g` during start-up
    "already exists",  # two concurrent requests created the same id (TinkerGraph); the retry merges
    # JanusGraph: two writers created the same property key or label at once (automatic schema), or a
    # lock on the same element; the retry finds it made and merges
    "violates a uniqueness constraint",
    "LockingException",
    "Could not commit transaction",
    # another thread's retry reset the shared connection under this request
    "Client is closed",
    "cannot schedule new futures after shutdown",
    "Connection reset",
    "Cannot connect",
    "Connect call failed",
    "ServerDisconnected",
    "Server disconnected",
    "timed out",
    "TimeoutError",
    "Broken pipe",
    "Session is closed",
    "closed transport",
    "Cannot write to closing transport",
    # TinkerGraph's edge sets are unsynchronised: a read iterating a hub's edges while another
    # request's write grows them fails this way; reads and upserts are both safe to repeat
    "ArrayIndexOutOfBoundsException",
)


def link_edge_id(customer_id: str, kind: str, value_hash: str) -> str:
    """The id a link edge gets on engines that take ids from the writer (``graph.gremlin.edge_ids:
    supplied``): one edge per customer and identifier, found again by id."""
    return f"{EDGE_LABEL_BY_KIND[kind]}:{customer_id}:{value_hash}"


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    text = f"{type(exc).__name__}: {exc}"
    return any(marker.lower() in text.lower() for marker in _TRANSIENT_MARKERS)


def typed(value: Any) -> Any:
    """Python ints as Gremlin Long: GraphBinary otherwise sends Int32 and overflows on epoch ms."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _long()(value)
    return value


@functools.cache
def _long() -> type:
    # imported once, on first use (gremlinpython is only needed by Gremlin stores); an import statement
    # in typed itself cost 4 % of a consumer's time
    from gremlin_python.statics import long

    return long


def typed_map(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: typed(v) for k, v in props.items()}


def min_or(values: Any, default: int) -> Any:
    """min of a value stream, ``default`` when it is empty (min of nothing produces no row)."""
    from gremlin_python.process.graph_traversal import __

    return __.coalesce(values.min_(), __.constant(typed(default)))


def max_or(values: Any, default: int) -> Any:
    from gremlin_python.process.graph_traversal import __

    return __.coalesce(values.max_(), __.constant(typed(default)))


def sum_or(values: Any, default: int = 0) -> Any:
    from gremlin_python.process.graph_traversal import __

    return __.coalesce(values.sum_(), __.constant(typed(default)))


# link edges read as one string of their values (see projected_links)
def flatten_value_map(value_map: Mapping[Any, Any]) -> dict[str, Any]:
    out = {}
    for k, v in value_map.items():
        if not isinstance(k, str) or k in INTERNAL_PROPERTIES:
            continue
        out[k] = v[0] if isinstance(v, list) and len(v) == 1 else v
    return out


def projected_links(edges: Any) -> Any:
    """``edges`` (a traversal at link edges) as ``{"c": customer vertex id, "i": identifier vertex id,
    "p": properties}``, the properties as one string of the ``LINK_ROW`` values, comma-separated,
    formatted on the server.

    A property map costs gremlinpython about 30 us per property to decode, a string about 10 us:
    on a consumer's reads that was most of the time. An edge that lacks one of the properties
    (``format()`` drops it) comes with its value map instead; :func:`link_parts` reads both. (The
    endpoints come as map entries rather than inside the string: formatting path variables made
    JanusGraph track paths, four times slower on the server.)
    """
    from gremlin_python.process.graph_traversal import __

    return (
        edges.project("c", "i", "p")
        .by(__.out_v().id_())
        .by(__.in_v().id_())
        .by(__.coalesce(__.format_(LINK_TEXT), __.value_map()))
    )


def link_parts(row: Mapping[str, Any]) -> tuple[str, str, dict[str, int]]:
    """One :func:`projected_links` row as ``(customer vertex id, identifier vertex id, properties)``."""
    props = row["p"]
    values = dict(zip(LINK_ROW, map(int, props.split(",")))) if isinstance(props, str) else link_props(props)
    return str(row["c"]), str(row["i"]), values


def link_record(row: Any) -> dict[str, Any]:
    """One :func:`projected_links` row, or its :func:`link_parts`, as a ``links`` frame row (count
    columns it lacks are absent)."""
    customer, ident, props = row if isinstance(row, tuple) else link_parts(row)
    kind, value_hash = ident.split(":", 1)
    return {"customer_id": customer[len(CUSTOMER_PREFIX) :], "kind": kind, "value_hash": value_hash, **props}


def link_props(props: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in props.items() if isinstance(k, str)}
