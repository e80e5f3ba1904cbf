"""The connection to a Gremlin server: retry with backoff on transient failures, chunked concurrent
writes, and the helpers and decoding every traversal of the store shares."""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from ...config import GraphSettings
from ...schema import CUSTOMER, EDGE_LABEL_BY_KIND
from ..base import IdentityGraph
from ..elements import GraphStoreError, InvalidElementError, chunked
from ..link_summaries import LINK_ROW, decode_link_summary

GRAPH_META_LABEL, GRAPH_META_ID = "graph_meta", "fraudgraph:graph_meta"


def _single(props: Mapping[str, Any]) -> dict[str, Any]:
    """Vertex properties for mergeV with their cardinality stated: Neptune's default is ``set``, where a
    plain write would add a value instead of replacing it."""
    from gremlin_python.process.traversal import CardinalityValue

    return {k: CardinalityValue.single(v) for k, v in props.items()}


log = logging.getLogger(__name__)
T_ = TypeVar("T_")

_CUSTOMER_PREFIX = f"{CUSTOMER}:"
SUMMARY = "link_summary"
SUMMARY_VERSION = "link_summary_version"
_INTERNAL_PROPERTIES = (SUMMARY, SUMMARY_VERSION)


# a link edge's properties as one string (see GremlinSession._projected_links)
def format_template(keys: Sequence[str]) -> str:
    """A ``format()`` pattern giving these keys' values comma-separated (``%{key},%{key},...``)."""
    return ",".join(f"%{{{k}}}" for k in keys)


_LINK_TEXT = format_template(LINK_ROW)
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


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    text = f"{type(exc).__name__}: {exc}"
    return any(marker.lower() in text.lower() for marker in _TRANSIENT_MARKERS)


def _typed(value: Any) -> Any:
    """Python ints as Gremlin Long: GraphBinary otherwise sends Int32 and overflows on epoch ms."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _long()(value)
    return value


@functools.cache
def _long() -> type:
    # imported once, on first use (gremlinpython is only needed by Gremlin stores); an import statement
    # in _typed itself cost 4 % of a consumer's time
    from gremlin_python.statics import long

    return long


def _typed_map(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _typed(v) for k, v in props.items()}


def _min_or(values, default: int):
    """min of a value stream, ``default`` when it is empty (min of nothing produces no row)."""
    from gremlin_python.process.graph_traversal import __

    return __.coalesce(values.min_(), __.constant(_typed(default)))


def _max_or(values, default: int):
    from gremlin_python.process.graph_traversal import __

    return __.coalesce(values.max_(), __.constant(_typed(default)))


def _sum_or(values, default: int = 0):
    from gremlin_python.process.graph_traversal import __

    return __.coalesce(values.sum_(), __.constant(_typed(default)))


class _Connection:
    """One gremlinpython connection and its traversal source, with the number of requests using it."""

    def __init__(self, remote: Any, g: Any):
        self.remote, self.g = remote, g
        self.users = 0
        self.retired = False  # broken or closed: no new request gets it; closed when its users reach 0

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection may fail to close; it is dropped anyway
            self.remote.close()


class GremlinSession(IdentityGraph):
    """A connection to a Gremlin endpoint ``ws://HOST:PORT/gremlin`` or ``wss://...`` with retry and
    backoff, chunked concurrent writes and the decoding every read shares (the store's writes, summaries
    and reads are mixins over it)."""

    def __init__(self, uri: str, settings: GraphSettings):
        """The store at ``uri`` built from its settings (``graph`` and ``graph.gremlin``)."""
        gg = settings.gremlin
        if not uri.startswith(("ws://", "wss://")):
            raise ValueError(f"graph URI {uri!r}: expected ws://HOST:PORT/gremlin or wss://...")
        self.uri = uri
        self.traversal_source = gg.traversal_source
        self.pool_size = gg.pool_size
        self.batch_size = gg.batch_size
        self.fanout_cap = settings.neighbourhood_fanout_cap
        self.max_retries = gg.max_retries
        self.backoff_initial_s = gg.backoff_initial_s
        self.backoff_max_s = gg.backoff_max_s
        self.request_timeout_s = gg.request_timeout_s
        self.summary_properties = frozenset(gg.summary_properties)
        self.iam, self.iam_region = gg.iam, gg.iam_region
        self.edge_ids = gg.edge_ids
        self._lock = threading.Lock()
        self._current: _Connection | None = None
        self.retries = 0  # transient failures retried so far (observability)
        # per request name: [requests, seconds] (observability: where a consumer's store time goes)
        self.request_stats: dict[str, list[float]] = {}
        # .summaries: this thread's _summaries_read_once memo, or None; .links: its sole_writer known links, or None
        self._read_once = threading.local()
        self._types_written: set[str] = set()  # labels and property keys a whole write call has written

    # ------------------------------------------------------------ connection
    def _connect(self):
        from gremlin_python.driver.driver_remote_connection import DriverRemoteConnection
        from gremlin_python.process.anonymous_traversal import traversal

        from ._gremlinpython_compat import format_bytecode_only_when_logged

        format_bytecode_only_when_logged()

        headers = None
        if self.iam:  # signed afresh for every connection: a signature is only valid for minutes
            from ..neptune_iam import handshake_headers

            headers = handshake_headers(self.uri, self.iam_region)
        conn = DriverRemoteConnection(
            self.uri,
            self.traversal_source,
            pool_size=self.pool_size,
            max_workers=self.pool_size,
            read_timeout=self.request_timeout_s,
            write_timeout=self.request_timeout_s,
            headers=headers,
        )
        return conn, traversal().with_remote(conn)

    def _acquire(self) -> _Connection:
        """The current connection (opened on first use), counted as in use until :meth:`_release`."""
        with self._lock:
            if self._current is None:
                self._current = _Connection(*self._connect())
            self._current.users += 1
            return self._current

    def _release(self, connection: _Connection, broken: bool = False) -> None:
        """One request is done with ``connection``; ``broken``: later requests open a new one.

        A broken connection is closed only when no other request still uses it. gremlinpython's client
        close shuts down the executor that completes every in-flight request, so closing it under a
        concurrent request leaves that request's result unset and its thread waiting forever.
        """
        with self._lock:
            connection.users -= 1
            if broken and connection is self._current:
                self._current = None
                connection.retired = True
            # retired only once (while current), and never acquired again: its users reach 0 once
            close = connection.retired and connection.users == 0
        if close:
            connection.close()

    def _run(self, what: str, fn: Callable[[Any], T_]) -> T_:
        """Run ``fn(g)`` with retry and backoff on transient failures."""
        delay = self.backoff_initial_s
        for attempt in range(self.max_retries + 1):
            connection = None
            broken = False
            try:
                connection = self._acquire()
                started = time.perf_counter()
                out = fn(connection.g)
                self._count_request(what, time.perf_counter() - started)
                return out
            except Exception as exc:  # noqa: BLE001 - classified below
                if not _is_transient(exc) or attempt == self.max_retries:
                    raise GraphStoreError(f"gremlin {what} failed: {type(exc).__name__}: {exc}") from exc
                self.retries += 1
                log.warning(
                    "gremlin %s: transient failure (%s), retry %d/%d in %.1fs",
                    what,
                    type(exc).__name__,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                # the server answered: the connection is fine; otherwise the next attempt opens a new one
                broken = type(exc).__name__ != "GremlinServerError"
            finally:
                if connection is not None:
                    self._release(connection, broken)
            time.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self.backoff_max_s)
        raise AssertionError("unreachable")

    def _count_request(self, what: str, seconds: float) -> None:
        with self._lock:
            entry = self.request_stats.setdefault(what, [0, 0.0])
            entry[0] += 1
            entry[1] += seconds

    def close(self) -> None:
        """Close the connection (at once if idle, else when its last request is done)."""
        with self._lock:
            connection, self._current = self._current, None
            if connection is not None:
                connection.users += 1
                connection.retired = True
        if connection is not None:
            self._release(connection)

    def _check_engine_ids(self, values) -> None:
        """JanusGraph reserves ``-`` inside custom string vertex ids: refuse the batch, naming the element."""
        if self.edge_ids != "engine":
            return
        for index, value in values:
            if "-" in value:
                raise InvalidElementError(index, value[:40], "JanusGraph reserves '-' in vertex ids")

    # ---------------------------------------------------------------- writes
    def _write_chunks(
        self,
        what: str,
        write: Callable[[Any, Sequence[Any]], T_],
        rows: Sequence[Any],
        types: Iterable[str] | None = None,
    ) -> list[T_]:
        """Send ``rows`` in chunks of ``batch_size``, up to ``pool_size`` requests in flight; each chunk's
        result, in order.

        Chunks of one phase never depend on each other; a chunk that fails
        transiently is retried on its own (idempotent upserts). The first chunk goes alone: on an
        engine that creates its schema on first use (JanusGraph), concurrent first writes of a
        property or label race to create it, and a lost race can leave the type locked or
        half-created for every retry; after one chunk the types exist. ``types``: every label and
        property key the rows write; once a call has written them all, a later call writing none
        but those sends its first chunk with the others (None: always alone).
        """
        chunks = list(chunked(rows, self.batch_size))
        if not chunks:
            return []
        types = None if types is None else set(types)
        with self._lock:
            made = types is not None and types <= self._types_written
        if made:
            return self._run_concurrently([(what, lambda g, chunk=chunk: write(g, chunk)) for chunk in chunks])
        first = self._run(what, lambda g: write(g, chunks[0]))
        out = [
            first,
            *self._run_concurrently([(what, lambda g, chunk=chunk: write(g, chunk)) for chunk in chunks[1:]]),
        ]
        if types is not None:
            with self._lock:
                self._types_written |= types
        return out

    def _side_by_side(self, calls: Sequence[Callable[[], T_]], workers: int, name: str) -> list[T_]:
        """Each call, up to ``workers`` at once (one after another with a pool of one connection); their
        results in order."""
        if len(calls) <= 1 or self.pool_size == 1:
            return [call() for call in calls]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
            futures = [pool.submit(call) for call in calls]
            return [f.result() for f in futures]

    def _run_concurrently(self, tasks: Sequence[tuple[str, Callable[[Any], Any]]]) -> list[Any]:
        """``[(what, fn)]`` run with :meth:`_run`, up to ``pool_size`` at once; their results in order."""
        calls = [functools.partial(self._run, what, fn) for what, fn in tasks]
        return self._side_by_side(calls, self.pool_size, "gremlin-request")

    def _read_chunks(self, what: str, read: Callable[[Any, Sequence[Any]], list[T_]], keys: Sequence[Any]) -> list[T_]:
        """``read(g, chunk)`` for chunks of ``batch_size`` keys, up to ``pool_size`` at once; the rows of
        every chunk, in order."""
        tasks = [(what, lambda g, chunk=chunk: read(g, chunk)) for chunk in chunked(list(keys), self.batch_size)]
        return [row for rows in self._run_concurrently(tasks) for row in rows]

    def _phases_concurrently(self, *phases: Callable[[], Any]) -> list[Any]:
        """Independent write phases (each its own chunked requests) run side by side; their results in
        order. The server's cores and the client's encoding overlap instead of waiting on each other."""
        return self._side_by_side(phases, len(phases), "gremlin-phase")

    @contextmanager
    def _summaries_read_once(self) -> Iterator[None]:
        outer = getattr(self._read_once, "summaries", None)
        if outer is None:
            self._read_once.summaries = {}
        try:
            yield
        finally:
            if outer is None:
                self._read_once.summaries = None

    @contextmanager
    def sole_writer(self) -> Iterator[None]:
        # the summaries memo of _summaries_read_once, kept for the whole block (stored summaries go in it,
        # invalidated ones come out), and every link of the customers whose links were read in the block
        if self._known_links() is not None:
            yield
            return
        outer = getattr(self._read_once, "summaries", None)
        self._read_once.links = {}
        if outer is None:
            self._read_once.summaries = {}
        try:
            yield
        finally:
            self._read_once.links = None
            if outer is None:
                self._read_once.summaries = None

    def _known_links(self) -> dict[str, dict[str, dict[str, int]]] | None:
        """Inside :meth:`sole_writer`, ``{customer vertex id: {identifier vertex id: properties}}``: every
        link of the customers this thread read or wrote in the block; None outside one."""
        return getattr(self._read_once, "links", None)

    def _customers_links(
        self, customer_vids: Sequence[str], read: Callable[[Sequence[str]], list[Any]]
    ) -> list[tuple[str, str, dict[str, int]]]:
        """Every link of these customers as ``(customer vertex id, identifier vertex id, properties)``;
        ``read(vids)`` gives :meth:`_projected_links` rows of the given customers' links. Inside
        :meth:`sole_writer`, a customer whose links were read or written in the block is not asked again,
        and the ones read are kept (a customer with two edges to one identifier, which concurrent
        creators can leave on JanusGraph, is not: its writes read it afresh and merge the duplicates)."""
        known = self._known_links()
        vids = list(dict.fromkeys(customer_vids))
        asked = vids if known is None else [v for v in vids if v not in known]
        rows = [self._link_parts(r) for r in read(asked)] if asked else []
        if known is None:
            return rows
        fresh: dict[str, dict[str, dict[str, int]]] = {v: {} for v in asked}
        doubled = set()
        for customer, ident, props in rows:
            if ident in fresh[customer]:
                doubled.add(customer)
            fresh[customer][ident] = props
        out = [row for row in rows if row[0] in doubled]
        for vid in vids:
            if vid in doubled:
                continue
            links = known.get(vid)
            if links is None:
                links = known[vid] = fresh.get(vid, {})
            out += [(vid, ident, dict(props)) for ident, props in links.items()]
        return out

    def _forget_links(self, customer_vids: Sequence[str]) -> dict[str, dict[str, dict[str, int]]]:
        """Take these customers out of :meth:`sole_writer`'s known links; what was known of them."""
        known = self._known_links()
        if known is None:
            return {}
        return {vid: known.pop(vid) for vid in customer_vids if vid in known}

    def _note_links(self, links: Mapping[str, dict[str, dict[str, int]]]) -> None:
        """Inside :meth:`sole_writer`: ``{customer vertex id: {identifier vertex id: properties}}``, every
        link of each customer as this thread wrote it."""
        known = self._known_links()
        if known is not None:
            known.update(links)

    def _note_summaries(self, stored: Mapping[str, str | None]) -> None:
        """Inside a read-once block: ``{vertex id: summary text this thread stored, or None: dropped}``."""
        read = getattr(self._read_once, "summaries", None)
        if read is None:
            return
        for vid, text in stored.items():
            if text is None:
                read.pop(vid, None)
            else:
                read[vid] = decode_link_summary(text)

    def _summaries(self, vertex_ids: Sequence[str]) -> dict[str, Any]:
        """``{vertex id: CustomerLinkSummary | IdentifierLinkSummary}`` of the vertices that have a current
        one (only the strings travel); chunks up to ``pool_size`` at once. Inside
        :meth:`_summaries_read_once`, a vertex already read is not asked again."""
        read: dict[str, Any] | None = getattr(self._read_once, "summaries", None)
        ids = list(dict.fromkeys(vertex_ids))
        asked = ids if read is None else [vid for vid in ids if vid not in read]
        texts = self._read_chunks("summaries", lambda g, chunk: g.V(*chunk).values(SUMMARY).fold().next(), asked)
        found = {}
        for text in texts:
            summary = decode_link_summary(text)
            found[summary.vertex_id] = summary
        if read is None:
            return found
        read.update({vid: found.get(vid) for vid in asked})  # None: read, and had no summary
        return {vid: read[vid] for vid in ids if read[vid] is not None}

    @staticmethod
    def _flatten(value_map: Mapping[Any, Any]) -> dict[str, Any]:
        out = {}
        for k, v in value_map.items():
            if not isinstance(k, str) or k in _INTERNAL_PROPERTIES:
                continue
            out[k] = v[0] if isinstance(v, list) and len(v) == 1 else v
        return out

    @staticmethod
    def _projected_links(edges):
        """``edges`` (a traversal at link edges) as ``{"c": customer vertex id, "i": identifier vertex id,
        "p": properties}``, the properties as one string of the ``LINK_ROW`` values, comma-separated,
        formatted on the server.

        A property map costs gremlinpython about 30 us per property to decode, a string about 10 us:
        on a consumer's reads that was most of the time. An edge that lacks one of the properties
        (``format()`` drops it) comes with its value map instead; :meth:`_link_parts` reads both. (The
        endpoints come as map entries rather than inside the string: formatting path variables made
        JanusGraph track paths, four times slower on the server.)
        """
        from gremlin_python.process.graph_traversal import __

        return (
            edges.project("c", "i", "p")
            .by(__.out_v().id_())
            .by(__.in_v().id_())
            .by(__.coalesce(__.format_(_LINK_TEXT), __.value_map()))
        )

    @staticmethod
    def _link_parts(row: Mapping[str, Any]) -> tuple[str, str, dict[str, int]]:
        """One :meth:`_projected_links` row as ``(customer vertex id, identifier vertex id, properties)``."""
        props = row["p"]
        if isinstance(props, str):
            values = dict(zip(LINK_ROW, map(int, props.split(","))))
        else:
            values = GremlinSession._link_props(props)
        return str(row["c"]), str(row["i"]), values

    def _link_record(self, row: Any) -> dict[str, Any]:
        """One :meth:`_projected_links` row, or its :meth:`_link_parts`, as a ``links`` frame row (count
        columns it lacks are absent)."""
        customer, ident, props = row if isinstance(row, tuple) else self._link_parts(row)
        kind, value_hash = ident.split(":", 1)
        return {"customer_id": customer[len(_CUSTOMER_PREFIX) :], "kind": kind, "value_hash": value_hash, **props}

    @staticmethod
    def _link_props(props: Mapping[str, Any]) -> dict[str, int]:
        return {k: int(v) for k, v in props.items() if isinstance(k, str)}
