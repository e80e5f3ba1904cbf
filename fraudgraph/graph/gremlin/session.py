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
from ..base import IdentityGraph
from ..elements import GraphStoreError, InvalidElementError, chunked
from ..link_summaries import decode_link_summary
from .traversals import SUMMARY, is_transient, link_parts

log = logging.getLogger(__name__)
T_ = TypeVar("T_")


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
                if not is_transient(exc) or attempt == self.max_retries:
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
        ``read(vids)`` gives :func:`projected_links` rows of the given customers' links. Inside
        :meth:`sole_writer`, a customer whose links were read or written in the block is not asked again,
        and the ones read are kept (a customer with two edges to one identifier, which concurrent
        creators can leave on JanusGraph, is not: its writes read it afresh and merge the duplicates)."""
        known = self._known_links()
        vids = list(dict.fromkeys(customer_vids))
        asked = vids if known is None else [v for v in vids if v not in known]
        rows = [link_parts(r) for r in read(asked)] if asked else []
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
