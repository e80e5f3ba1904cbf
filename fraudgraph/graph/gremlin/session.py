"""The client of a Gremlin server: one shared connection, retry with backoff on transient failures, and
chunked requests sent side by side. It knows nothing of identities or summaries."""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ...config import GraphSettings
from ..elements import GraphStoreError, InvalidElementError, chunked
from .traversals import is_transient

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


class GremlinClient:
    """Requests to a Gremlin endpoint ``ws://HOST:PORT/gremlin`` or ``wss://...``: :meth:`run` one
    traversal with retry and backoff, or many rows in chunks of ``batch_size`` with up to ``pool_size``
    requests in flight (:meth:`write_chunks`, :meth:`read_chunks`)."""

    def __init__(self, uri: str, settings: GraphSettings):
        """The client of ``uri`` built from its settings (``graph`` and ``graph.gremlin``)."""
        gg = settings.gremlin
        if not uri.startswith(("ws://", "wss://")):
            raise ValueError(f"graph URI {uri!r}: expected ws://HOST:PORT/gremlin or wss://...")
        self.uri = uri
        self.traversal_source = gg.traversal_source
        self.pool_size = gg.pool_size
        self.batch_size = gg.batch_size
        self.max_retries = gg.max_retries
        self.backoff_initial_s = gg.backoff_initial_s
        self.backoff_max_s = gg.backoff_max_s
        self.request_timeout_s = gg.request_timeout_s
        self.iam, self.iam_region = gg.iam, gg.iam_region
        self.edge_ids = gg.edge_ids
        self._lock = threading.Lock()
        self._current: _Connection | None = None
        self.retries = 0  # transient failures retried so far (observability)
        # per request name: [requests, seconds] (observability: where a consumer's store time goes)
        self.request_stats: dict[str, list[float]] = {}
        self._types_written: set[str] = set()  # labels and property keys a whole write call has written

    # ------------------------------------------------------------ connection
    def _connect(self) -> tuple[Any, Any]:
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

    def run(self, what: str, fn: Callable[[Any], T_]) -> T_:
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

    def check_engine_ids(self, values: Iterable[tuple[int, str]]) -> None:
        """JanusGraph reserves ``-`` inside custom string vertex ids: refuse the batch, naming the element."""
        if self.edge_ids != "engine":
            return
        for index, value in values:
            if "-" in value:
                raise InvalidElementError(index, value[:40], "JanusGraph reserves '-' in vertex ids")

    # ---------------------------------------------------------------- writes
    def write_chunks(
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
            return self.run_concurrently([(what, lambda g, chunk=chunk: write(g, chunk)) for chunk in chunks])
        first = self.run(what, lambda g: write(g, chunks[0]))
        out = [
            first,
            *self.run_concurrently([(what, lambda g, chunk=chunk: write(g, chunk)) for chunk in chunks[1:]]),
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

    def run_concurrently(self, tasks: Sequence[tuple[str, Callable[[Any], Any]]]) -> list[Any]:
        """``[(what, fn)]`` run with :meth:`run`, up to ``pool_size`` at once; their results in order."""
        calls = [functools.partial(self.run, what, fn) for what, fn in tasks]
        return self._side_by_side(calls, self.pool_size, "gremlin-request")

    def read_chunks(self, what: str, read: Callable[[Any, Sequence[Any]], list[T_]], keys: Sequence[Any]) -> list[T_]:
        """``read(g, chunk)`` for chunks of ``batch_size`` keys, up to ``pool_size`` at once; the rows of
        every chunk, in order."""
        tasks = [(what, lambda g, chunk=chunk: read(g, chunk)) for chunk in chunked(list(keys), self.batch_size)]
        return [row for rows in self.run_concurrently(tasks) for row in rows]

    def phases_concurrently(self, *phases: Callable[[], Any]) -> list[Any]:
        """Independent write phases (each its own chunked requests) run side by side; their results in
        order. The server's cores and the client's encoding overlap instead of waiting on each other."""
        return self._side_by_side(phases, len(phases), "gremlin-phase")
