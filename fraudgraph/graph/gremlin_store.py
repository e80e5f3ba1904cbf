"""Identity graph on a Gremlin server (Apache TinkerPop Gremlin Server, Amazon Neptune, JanusGraph).

Bytecode traversals through gremlinpython only: no script strings are built.
Writes are batched ``mergeV``/``mergeE`` over an injected list of maps (one
request per ``gremlin.batch_size`` elements), with caller-supplied ids so an
upsert is a direct id lookup, as Neptune recommends:

- customer vertex ``customer:<customer_id>``
- identifier vertex ``<kind>:<value_hash>`` with property ``value_hash``
- edge ``has_<kind>:<customer_id>:<value_hash>``

Online reads do not scan hubs. Every customer and identifier vertex carries a
materialised summary of its links (property ``link_summary``, a compact JSON
string, and the counter ``link_summary_version``): for a customer what its own
features need, its latest first-seen time and the ``summary_properties``; for
an identifier its degree, first-seen range and event total, and the links of
its ``fanout_cap + 1`` lowest-id customers. Before writing, ``upsert_links``
(and ``upsert_customers`` when a kept property changes) drops the summaries of
the vertices it touches and bumps their versions; after writing it refreshes
them (:meth:`GremlinIdentityGraph.refresh_summaries`) in two requests: one
bumps the version again and aggregates on the server, the next stores the
summary only if the version is still the one it read (compare-and-set), so
concurrent writers never leave an older summary behind and a crash between the
write and the refresh leaves no summary rather than a stale one. A bulk load
passes ``summaries=False`` and refreshes once at the end. A reader uses a
summary when there is one and every link it covers is visible at as-of;
otherwise it aggregates the links as before. The one window left: a reader
running while another process writes the same vertex can see the summary from
just before that write, until the writer's refresh a few milliseconds later.

Transient failures (connection reset or refused, server restart, Neptune's
``ConcurrentModificationException``) are retried with exponential backoff on a
fresh connection; because every write is an idempotent upsert, a retried
request takes effect exactly once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pandas as pd

from ..schema import COUNT_PROPERTY_BY_TYPE, CUSTOMER, EDGE_LABEL_BY_KIND, KIND_BY_EDGE_LABEL
from ..timeutil import as_of_or_end
from .base import (
    IDENTIFIER_STATS_COLUMNS,
    LINK_FRAME_COLUMNS,
    LINK_SUMMARY_COLUMNS,
    CustomerUpsert,
    GraphStoreError,
    IdentityGraph,
    IdentityLink,
    InvalidElementError,
    LinkedIdentifier,
    Neighbourhood,
    SharedIdentifier,
    chunked,
    customer_vertex_id,
    empty_stats,
    identifier_id,
    validate_customers,
    validate_links,
)
from .link_summaries import CustomerLinkSummary, IdentifierLinkSummary, decode_link_summary

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
_LINK_PROPS = LINK_FRAME_COLUMNS[3:]  # first_seen, last_seen, event_count, count_<type>...
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


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    text = f"{type(exc).__name__}: {exc}"
    return any(marker.lower() in text.lower() for marker in _TRANSIENT_MARKERS)


def _typed(value: Any) -> Any:
    """Python ints as Gremlin Long: GraphBinary otherwise sends Int32 and overflows on epoch ms."""
    from gremlin_python.statics import long

    if isinstance(value, int) and not isinstance(value, bool):
        return long(value)
    return value


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


def _edge_id(link: IdentityLink) -> str:
    return f"{link.edge_label}:{link.customer_id}:{link.value_hash}"


class GremlinIdentityGraph(IdentityGraph):
    """Identity graph behind a Gremlin endpoint ``ws://HOST:PORT/gremlin`` or ``wss://...``."""

    keeps_summaries = True

    @classmethod
    def from_settings(cls, uri: str, settings) -> GremlinIdentityGraph:
        """The store at ``uri`` built from its settings (``graph`` and ``graph.gremlin``)."""
        gg = settings.gremlin
        return cls(
            uri,
            traversal_source=gg.traversal_source,
            pool_size=gg.pool_size,
            batch_size=gg.batch_size,
            fanout_cap=settings.neighbourhood_fanout_cap,
            max_retries=gg.max_retries,
            backoff_initial_s=gg.backoff_initial_s,
            backoff_max_s=gg.backoff_max_s,
            request_timeout_s=gg.request_timeout_s,
            summary_properties=gg.summary_properties,
            iam=gg.iam,
            iam_region=gg.iam_region,
            edge_ids=gg.edge_ids,
        )

    def __init__(
        self,
        uri: str,
        *,
        traversal_source: str = "g",
        pool_size: int = 4,
        batch_size: int = 500,
        fanout_cap: int = 50,
        max_retries: int = 8,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        request_timeout_s: float = 120,
        summary_properties: Sequence[str] = ("signup_ts", "lifetime_value", "clean_label"),
        iam: bool = False,
        iam_region: str | None = None,
        edge_ids: str = "supplied",
    ):
        if not uri.startswith(("ws://", "wss://")):
            raise ValueError(f"graph URI {uri!r}: expected ws://HOST:PORT/gremlin or wss://...")
        self.uri = uri
        self.traversal_source = traversal_source
        self.pool_size = pool_size
        self.batch_size = batch_size
        self.fanout_cap = fanout_cap
        self.max_retries = max_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.request_timeout_s = request_timeout_s
        self.summary_properties = frozenset(summary_properties)
        self.iam, self.iam_region = iam, iam_region
        self.edge_ids = edge_ids
        self._lock = threading.Lock()
        self._conn = None
        self._g = None
        self.retries = 0  # transient failures retried so far (observability)

    # ------------------------------------------------------------ connection
    def _connect(self):
        from gremlin_python.driver.driver_remote_connection import DriverRemoteConnection
        from gremlin_python.process.anonymous_traversal import traversal

        headers = None
        if self.iam:  # signed afresh for every connection: a signature is only valid for minutes
            from .neptune_iam import handshake_headers

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

    def _source(self):
        with self._lock:
            if self._g is None:
                self._conn, self._g = self._connect()
            return self._g

    def _reset(self, broken=None) -> None:
        """Drop the connection; with ``broken``, only if it is still the current one."""
        with self._lock:
            if broken is not None and broken is not self._g:
                return  # another thread already reconnected
            conn, self._conn, self._g = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass

    def _run(self, what: str, fn: Callable[[Any], T_]) -> T_:
        """Run ``fn(g)`` with retry and backoff on transient failures."""
        delay = self.backoff_initial_s
        for attempt in range(self.max_retries + 1):
            g = None
            try:
                g = self._source()
                return fn(g)
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
                if type(exc).__name__ != "GremlinServerError":  # the server answered: the connection is fine
                    self._reset(g)
                time.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, self.backoff_max_s)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._reset()

    def _check_engine_ids(self, values) -> None:
        """JanusGraph reserves ``-`` inside custom string vertex ids: refuse the batch, naming the element."""
        if self.edge_ids != "engine":
            return
        for index, value in values:
            if "-" in value:
                raise InvalidElementError(index, value[:40], "JanusGraph reserves '-' in vertex ids")

    # ---------------------------------------------------------------- writes
    def _write_chunks(self, what: str, write: Callable[[Any, Sequence[Any]], None], rows: Sequence[Any]) -> None:
        """Send ``rows`` in chunks of ``batch_size``, up to ``pool_size`` requests in flight.

        Chunks of one phase never depend on each other; a chunk that fails
        transiently is retried on its own (idempotent upserts). The first chunk goes alone: on an
        engine that creates its schema on first use (JanusGraph), concurrent first writes of a
        property or label race to create it, and a lost race can leave the type locked or
        half-created for every retry; after one chunk the types exist.
        """
        chunks = list(chunked(rows, self.batch_size))
        if len(chunks) <= 1 or self.pool_size == 1:
            for chunk in chunks:
                self._run(what, lambda g, chunk=chunk: write(g, chunk))
            return
        first, rest = chunks[0], chunks[1:]
        self._run(what, lambda g: write(g, first))
        with ThreadPoolExecutor(max_workers=self.pool_size, thread_name_prefix="gremlin-write") as pool:
            futures = [pool.submit(self._run, what, lambda g, chunk=chunk: write(g, chunk)) for chunk in rest]
            for f in futures:
                f.result()

    def upsert_customers(self, customers: Sequence[CustomerUpsert], *, summaries: bool = True) -> int:
        """Merge customer properties; customers whose ``summary_properties`` change get their summaries
        invalidated first and refreshed after (unless ``summaries=False``)."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Merge, T

        customers = list(customers)
        validate_customers(customers)
        self._check_engine_ids((i, c.customer_id) for i, c in enumerate(customers))
        summarised = sorted({c.customer_id for c in customers if self.summary_properties & c.properties.keys()})
        self._invalidate_summaries([customer_vertex_id(c) for c in summarised])
        rows, drops = [], defaultdict(list)
        for c in customers:
            vid = customer_vertex_id(c.customer_id)
            props = {k: _typed(v) for k, v in c.properties.items() if v is not None}
            removed = tuple(sorted(k for k, v in c.properties.items() if v is None))
            if removed:
                drops[removed].append(vid)
            rows.append({"k": {T.id: vid, T.label: CUSTOMER}, "p": _single(props)})

        def write(g, chunk):
            (
                g.inject(list(chunk))
                .unfold()
                .as_("r")
                .merge_v(__.select("r").select("k"))
                .option(Merge.on_create, __.select("r").select("p"))
                .option(Merge.on_match, __.select("r").select("p"))
                .iterate()
            )

        self._write_chunks("upsert_customers", write, rows)
        for keys, ids in drops.items():  # a None value removes the property
            self._write_chunks(
                "remove_properties", lambda g, chunk, keys=keys: g.V(*chunk).properties(*keys).drop().iterate(), ids
            )
        if summaries and summarised:
            self.refresh_summaries(customer_ids=summarised)
        return len(customers)

    def upsert_links(self, links: Sequence[IdentityLink], *, summaries: bool = True) -> int:
        """Three phases (customer vertices, identifier vertices, edges), each chunked and concurrent,
        then the link summaries of every customer and identifier written (unless ``summaries=False``)."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Direction, Merge, T

        links = list(links)
        validate_links(links)
        self._check_engine_ids((i, v) for i, l in enumerate(links) for v in (l.customer_id, l.value_hash))
        cust_rows = [{T.id: customer_vertex_id(c), T.label: CUSTOMER} for c in sorted({l.customer_id for l in links})]
        ident_rows = [
            {"k": {T.id: identifier_id(k, h), T.label: k}, "p": _single({"value_hash": h})}
            for k, h in sorted({(l.kind, l.value_hash) for l in links})
        ]
        edge_rows = []
        for l in links:
            props = _typed_map(l.properties())
            counts = {k: v for k, v in props.items() if k not in ("first_seen", "last_seen")}
            key = {
                T.label: l.edge_label,
                Direction.OUT: customer_vertex_id(l.customer_id),
                Direction.IN: identifier_id(l.kind, l.value_hash),
            }
            if self.edge_ids == "supplied":  # JanusGraph makes its own edge ids: merge on label and endpoints
                key[T.id] = _edge_id(l)
            edge_rows.append(
                {
                    "k": key,
                    "p": props,
                    "m": counts,
                    "fs": props["first_seen"],
                    "ls": props["last_seen"],
                }
            )

        def write_customers(g, chunk):
            g.inject(list(chunk)).unfold().merge_v().iterate()

        def write_identifiers(g, chunk):
            (
                g.inject(list(chunk))
                .unfold()
                .as_("r")
                .merge_v(__.select("r").select("k"))
                .option(Merge.on_create, __.select("r").select("p"))
                .iterate()
            )

        def write_edges(g, chunk):
            (
                g.inject(list(chunk))
                .unfold()
                .as_("r")
                .merge_e(__.select("r").select("k"))
                .option(Merge.on_create, __.select("r").select("p"))
                .option(Merge.on_match, __.select("r").select("m"))
                .property("first_seen", __.union(__.values("first_seen"), __.select("r").select("fs")).min_())
                .property("last_seen", __.union(__.values("last_seen"), __.select("r").select("ls")).max_())
                .iterate()
            )

        self._write_chunks("upsert_links.customers", write_customers, cust_rows)
        self._write_chunks("upsert_links.identifiers", write_identifiers, ident_rows)
        touched_customers = sorted({l.customer_id for l in links})
        touched_identifiers = sorted({(l.kind, l.value_hash) for l in links})
        self._invalidate_summaries(
            [customer_vertex_id(c) for c in touched_customers] + [identifier_id(k, h) for k, h in touched_identifiers]
        )
        self._write_chunks("upsert_links.edges", write_edges, edge_rows)
        if summaries:
            self.refresh_summaries(touched_customers, touched_identifiers)
        return len(links)

    # ------------------------------------------------------- link summaries
    @staticmethod
    def _bump_version():
        from gremlin_python.process.graph_traversal import __

        return __.union(__.coalesce(__.values(SUMMARY_VERSION), __.constant(_typed(0))), __.constant(_typed(1))).sum_()

    def _invalidate_summaries(self, vertex_ids: Sequence[str]) -> None:
        """Drop the summaries of vertices about to change and bump their versions (before the write, so a
        write that never reaches its refresh leaves no summary behind)."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Cardinality

        self._write_chunks(
            "invalidate_summaries",
            lambda g, chunk: (
                g.V(*chunk)
                .side_effect(__.properties(SUMMARY).drop())
                .property(Cardinality.single, SUMMARY_VERSION, self._bump_version())
                .iterate()
            ),
            list(vertex_ids),
        )

    def refresh_summaries(self, customer_ids: Sequence[str] = (), identifiers: Sequence[tuple[str, str]] = ()) -> None:
        """Recompute the link summaries of these customers and identifiers (see the module docstring)."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Cardinality, P, T

        cap = self.fanout_cap + 1
        bump = self._bump_version
        kept = sorted(self.summary_properties)

        def store(g, rows):
            """Compare-and-set: a summary read at an older version than the vertex's is dropped."""
            (
                g.inject([{"k": {T.id: vid}, "v": _typed(v), "s": text} for vid, v, text in rows])
                .unfold()
                .as_("r")
                .merge_v(__.select("r").select("k"))
                .as_("x")
                .where("x", P.eq("r"))
                .by(SUMMARY_VERSION)
                .by("v")
                .property(Cardinality.single, SUMMARY, __.select("r").select("s"))
                .iterate()
            )

        def refresh_customers(g, chunk):
            keys = ["first", *EDGE_LABEL_BY_KIND.values(), *_LINK_PROPS[2:]]  # LINK_SUMMARY_COLUMNS[1:]
            t = (
                g.V(*chunk)
                .property(Cardinality.single, SUMMARY_VERSION, bump())
                .project("id", "v", "n", "fmax", "p", *keys)
                .by(__.id_())
                .by(__.values(SUMMARY_VERSION))
                .by(__.out_e().count())
                .by(_max_or(__.out_e().values("first_seen"), -1))
                .by(__.value_map(*kept))
                .by(_min_or(__.out_e().values("first_seen"), -1))
            )
            for label in EDGE_LABEL_BY_KIND.values():
                t = t.by(__.out_e().has_label(label).count())
            for prop in _LINK_PROPS[2:]:
                t = t.by(_sum_or(__.out_e().values(prop)))
            store(
                g,
                [
                    (
                        r["id"],
                        r["v"],
                        CustomerLinkSummary(
                            r["id"], int(r["n"]), int(r["fmax"]), tuple(int(r[k]) for k in keys), self._flatten(r["p"])
                        ).to_json(),
                    )
                    for r in t.to_list()
                ],
            )

        def refresh_identifiers(g, chunk):
            rows = (
                g.V(*chunk)
                .property(Cardinality.single, SUMMARY_VERSION, bump())
                .project("id", "v", "n", "fmin", "fmax", "events", "first")
                .by(__.id_())
                .by(__.values(SUMMARY_VERSION))
                .by(__.in_e().count())
                .by(_min_or(__.in_e().values("first_seen"), -1))
                .by(_max_or(__.in_e().values("first_seen"), -1))
                .by(_sum_or(__.in_e().values("event_count")))
                .by(
                    __.in_e()
                    .order()
                    .by(__.out_v().id_())
                    .limit(cap)
                    .project("c", "p")
                    .by(__.out_v().id_())
                    .by(__.value_map())
                    .fold()
                )
                .to_list()
            )
            store(
                g,
                [
                    (
                        r["id"],
                        r["v"],
                        IdentifierLinkSummary(
                            r["id"],
                            int(r["n"]),
                            int(r["fmin"]),
                            int(r["fmax"]),
                            int(r["events"]),
                            tuple(
                                (str(f["c"])[len(_CUSTOMER_PREFIX) :], *(int(f["p"].get(k, 0)) for k in _LINK_PROPS))
                                for f in r["first"]
                            ),
                        ).to_json(),
                    )
                    for r in rows
                ],
            )

        customers = [customer_vertex_id(c) for c in dict.fromkeys(customer_ids)]
        idents = [identifier_id(k, h) for k, h in dict.fromkeys(identifiers)]
        for what, fn, ids, size in (
            ("customers", refresh_customers, customers, self.batch_size),
            ("identifiers", refresh_identifiers, idents, max(1, self.batch_size // 5)),
        ):
            for chunk in chunked(ids, size):
                self._run(f"refresh_summaries.{what}", lambda g, chunk=chunk, fn=fn: fn(g, chunk))

    def rebuild_summaries(self, progress: bool = False) -> dict[str, int]:
        from tqdm import tqdm

        from ..schema import IDENTIFIER_KINDS

        customers = [
            str(v)[len(_CUSTOMER_PREFIX) :]
            for v in self._run("list customers", lambda g: g.V().has_label(CUSTOMER).id_().to_list())
        ]
        identifiers = [
            tuple(str(v).split(":", 1))
            for v in self._run("list identifiers", lambda g: g.V().has_label(*IDENTIFIER_KINDS).id_().to_list())
        ]
        step = self.batch_size
        with tqdm(
            total=len(customers) + len(identifiers), desc="summaries", unit="vertex", disable=not progress
        ) as bar:
            for chunk in chunked(customers, step):
                self.refresh_summaries(customer_ids=chunk)
                bar.update(len(chunk))
            for chunk in chunked(identifiers, step):
                self.refresh_summaries(identifiers=chunk)
                bar.update(len(chunk))
        return {"customers": len(customers), "identifiers": len(identifiers)}

    def _summaries(self, vertex_ids: Sequence[str]) -> dict[str, Any]:
        """``{vertex id: CustomerLinkSummary | IdentifierLinkSummary}`` of the vertices that have a current
        one (only the strings travel)."""
        out: dict[str, Any] = {}
        for chunk in chunked(list(vertex_ids), self.batch_size):
            (texts,) = self._run("summaries", lambda g, chunk=chunk: g.V(*chunk).values(SUMMARY).fold().to_list())
            for text in texts:
                summary = decode_link_summary(text)
                out[summary.vertex_id] = summary
        return out

    # ----------------------------------------------------------------- reads
    @staticmethod
    def _flatten(value_map: Mapping[Any, Any]) -> dict[str, Any]:
        out = {}
        for k, v in value_map.items():
            if not isinstance(k, str) or k in _INTERNAL_PROPERTIES:
                continue
            out[k] = v[0] if isinstance(v, list) and len(v) == 1 else v
        return out

    def customer(self, customer_id: str) -> dict | None:
        rows = self._run("customer", lambda g: g.V(customer_vertex_id(customer_id)).value_map().to_list())
        return self._flatten(rows[0]) if rows else None

    def identity(self, customer_id: str) -> list[LinkedIdentifier]:
        from gremlin_python.process.graph_traversal import __

        rows = self._run(
            "identity",
            lambda g: (
                g.V(customer_vertex_id(customer_id))
                .out_e()
                .project("label", "value_hash", "props", "degree")
                .by(__.label())
                .by(__.in_v().values("value_hash"))
                .by(__.value_map())
                .by(__.in_v().in_e().count())
                .to_list()
            ),
        )
        out = [
            LinkedIdentifier(
                KIND_BY_EDGE_LABEL[r["label"]], r["value_hash"], self._link_props(r["props"]), int(r["degree"])
            )
            for r in rows
        ]
        return sorted(out, key=lambda x: (x.kind, x.value_hash))

    @staticmethod
    def _link_props(props: Mapping[str, Any]) -> dict[str, int]:
        return {k: int(v) for k, v in props.items() if isinstance(k, str)}

    def neighbourhood(self, customer_id: str, fanout_cap: int | None = None) -> Neighbourhood:
        return self.neighbourhoods([customer_id], fanout_cap)[customer_id]

    def neighbourhoods(self, customer_ids: Sequence[str], fanout_cap: int | None = None) -> dict[str, Neighbourhood]:
        """The centres' links in one request, then their identifiers' summaries (degree and lowest-id
        customers; counted and ordered on the server only for identifiers without one, or when the cap
        is above what summaries keep)."""
        from gremlin_python.process.graph_traversal import __

        cap = self.fanout_cap if fanout_cap is None else fanout_cap
        ids = list(dict.fromkeys(customer_ids))
        centres = [customer_vertex_id(c) for c in ids]
        rows = []
        for chunk in chunked(centres, self.batch_size):
            rows += self._run(
                "neighbourhood",
                lambda g, chunk=chunk: (
                    g.V(*chunk)
                    .out_e()
                    .project("centre", "label", "ident", "value_hash", "props")
                    .by(__.out_v().id_())
                    .by(__.label())
                    .by(__.in_v().id_())
                    .by(__.in_v().values("value_hash"))
                    .by(__.value_map())
                    .to_list()
                ),
            )
        first = self._lowest_customers(sorted({str(r["ident"]) for r in rows}), cap + 1)
        found: dict[str, list[SharedIdentifier]] = {cid: [] for cid in ids}
        for r in rows:
            centre = str(r["centre"])[len(_CUSTOMER_PREFIX) :]
            degree, customers = first[str(r["ident"])]
            others = tuple([c for c in customers if c != centre][:cap])
            found[centre].append(
                SharedIdentifier(
                    KIND_BY_EDGE_LABEL[r["label"]], r["value_hash"], degree, others, self._link_props(r["props"])
                )
            )
        return {cid: Neighbourhood(cid, tuple(sorted(found[cid], key=lambda x: (x.kind, x.value_hash)))) for cid in ids}

    def _lowest_customers(self, ident_vids: Sequence[str], limit: int) -> dict[str, tuple[int, list[str]]]:
        """``{identifier vertex id: (degree, its ``limit`` lowest customer ids)}``."""
        from gremlin_python.process.graph_traversal import __

        out = {}
        missing = []
        summaries = self._summaries(ident_vids)
        for vid in ident_vids:
            summary = summaries.get(vid)
            if summary is not None and summary.covers(limit):
                out[vid] = (summary.customers, [f[0] for f in summary.lowest[:limit]])
            else:
                missing.append(vid)
        for chunk in chunked(missing, self.batch_size):
            rows = self._run(
                "lowest_customers",
                lambda g, chunk=chunk: (
                    g.V(*chunk)
                    .project("id", "degree", "customers")
                    .by(__.id_())
                    .by(__.in_e().count())
                    .by(__.in_().id_().order().limit(limit).fold())
                    .to_list()
                ),
            )
            for r in rows:
                out[str(r["id"])] = (int(r["degree"]), [str(c)[len(_CUSTOMER_PREFIX) :] for c in r["customers"]])
        return out

    def _meta(self, key: str, default: str) -> str:
        """A property of the one ``graph_meta`` vertex, set to ``default`` by the first process that asks."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Cardinality, T

        def read(g):
            return g.V(GRAPH_META_ID).values(key).to_list()

        found = self._run("graph meta", read)
        if not found:
            try:
                self._run(
                    "graph meta",
                    lambda g: (
                        g.V(GRAPH_META_ID)
                        .fold()
                        .coalesce(__.unfold(), __.add_v(GRAPH_META_LABEL).property(T.id, GRAPH_META_ID))
                        .not_(__.has(key))
                        .property(Cardinality.single, key, default)
                        .iterate()
                    ),
                )
            except Exception:  # noqa: BLE001 - another process wrote it first: read theirs
                pass
            found = self._run("graph meta", read)
        return str(found[0])

    def key_fingerprint(self, fingerprint: str) -> str:
        return self._meta("pii_key_fingerprint", fingerprint)

    @property
    def graph_id(self) -> str:
        """This graph's identity, kept on one ``graph_meta`` vertex (made by the first process that asks)."""
        import uuid

        return self._meta("graph_id", uuid.uuid4().hex)

    def stats(self) -> dict[str, dict[str, int]]:
        from gremlin_python.process.graph_traversal import __

        def count(g):
            return (g.V().group_count().by(__.label()).next(), g.E().group_count().by(__.label()).next())

        vertices, edges = self._run("stats", count)
        stats = empty_stats()
        for label, n in vertices.items():
            if label != GRAPH_META_LABEL:
                stats["vertices"][label] = int(n)
        for label, n in edges.items():
            stats["edges"][label] = int(n)
        return stats

    def scoring_customers(
        self,
        customer_ids: Sequence[str],
        properties: Sequence[str],
        summary_ids: Sequence[str],
        as_of_ms: int | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Both frames from one read of the customers' summaries."""
        summaries = self._summaries([customer_vertex_id(c) for c in sorted(set(customer_ids) | set(summary_ids))])
        return (
            self.customers_of(customer_ids, properties, _summaries=summaries),
            self.link_summary(summary_ids, as_of_ms, _summaries=summaries),
        )

    def customers_of(
        self, customer_ids: Sequence[str], properties: Sequence[str] | None = None, *, _summaries: dict | None = None
    ) -> pd.DataFrame:
        """Chosen properties that summaries keep come from the summaries (one string per customer)."""
        from gremlin_python.process.traversal import T

        ids = [customer_vertex_id(c) for c in sorted(set(customer_ids))]
        names = list(dict.fromkeys(properties)) if properties is not None else []
        records = []
        if properties is not None and set(names) <= self.summary_properties:
            summaries = self._summaries(ids) if _summaries is None else _summaries
            records = [
                {"customer_id": vid[len(_CUSTOMER_PREFIX) :], **summaries[vid].properties}
                for vid in ids
                if vid in summaries
            ]
            ids = [vid for vid in ids if vid not in summaries]
        rows = self._run("customers_of", lambda g: g.V(*ids).value_map(True, *names).to_list()) if ids else []
        records += [{"customer_id": str(r[T.id])[len(_CUSTOMER_PREFIX) :], **self._flatten(r)} for r in rows]
        columns = ["customer_id", *names] if properties is not None else (None if records else ["customer_id"])
        frame = pd.DataFrame.from_records(records, columns=columns)
        return frame.sort_values("customer_id").reset_index(drop=True) if records else frame

    def links_of(self, customer_ids: Sequence[str]) -> pd.DataFrame:
        from gremlin_python.process.graph_traversal import __

        ids = [customer_vertex_id(c) for c in sorted(set(customer_ids))]
        rows = (
            self._run(
                "links_of",
                lambda g: (
                    g.V(*ids)
                    .out_e()
                    .project("label", "customer", "value_hash", "props")
                    .by(__.label())
                    .by(__.out_v().id_())
                    .by(__.in_v().values("value_hash"))
                    .by(__.value_map())
                    .to_list()
                ),
            )
            if ids
            else []
        )
        records = [
            {
                "customer_id": str(r["customer"])[len(_CUSTOMER_PREFIX) :],
                "kind": KIND_BY_EDGE_LABEL[r["label"]],
                "value_hash": r["value_hash"],
                **self._link_props(r["props"]),
            }
            for r in rows
        ]
        frame = pd.DataFrame.from_records(records, columns=LINK_FRAME_COLUMNS)
        return frame.sort_values(["customer_id", "kind", "value_hash"]).reset_index(drop=True)

    def identifier_inputs(
        self, identifiers: Sequence[tuple[str, str]], limit: int, as_of_ms: int | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Both frames from one read of the identifiers' summaries."""
        summaries = self._summaries([identifier_id(k, h) for k, h in sorted(set(identifiers))])
        return (
            self.identifier_links(identifiers, limit, as_of_ms, _summaries=summaries),
            self.identifier_stats(identifiers, as_of_ms, _summaries=summaries),
        )

    def identifier_links(
        self,
        identifiers: Sequence[tuple[str, str]],
        limit: int,
        as_of_ms: int | None = None,
        *,
        _summaries: dict | None = None,
    ) -> pd.DataFrame:
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import P

        wanted = {identifier_id(k, h): (k, h) for k, h in sorted(set(identifiers))}
        records, missing = [], []
        summaries = self._summaries(list(wanted)) if _summaries is None else _summaries
        for vid in wanted:
            summary = summaries.get(vid)
            if summary is not None and summary.visible(as_of_ms) and summary.covers(limit):
                kind, value_hash = wanted[vid]
                records += [(f[0], kind, value_hash, *f[1:]) for f in summary.lowest[:limit]]
            else:
                missing.append(vid)
        as_of = _typed(as_of_or_end(as_of_ms))
        for chunk in chunked(missing, self.batch_size):
            rows = self._run(
                "identifier_links",
                lambda g, chunk=chunk: (
                    g.V(*chunk)
                    .local(__.in_e().has("first_seen", P.lte(as_of)).order().by(__.out_v().id_()).limit(int(limit)))
                    .project("label", "customer", "value_hash", "props")
                    .by(__.label())
                    .by(__.out_v().id_())
                    .by(__.in_v().values("value_hash"))
                    .by(__.value_map())
                    .to_list()
                ),
            )
            props = self._link_props
            records += [
                (
                    str(r["customer"])[len(_CUSTOMER_PREFIX) :],
                    KIND_BY_EDGE_LABEL[r["label"]],
                    r["value_hash"],
                    *(props(r["props"]).get(k, 0) for k in _LINK_PROPS),
                )
                for r in rows
            ]
        return pd.DataFrame.from_records(records, columns=LINK_FRAME_COLUMNS)

    def identifier_stats(
        self, identifiers: Sequence[tuple[str, str]], as_of_ms: int | None = None, *, _summaries: dict | None = None
    ) -> pd.DataFrame:
        """From the identifiers' summaries; aggregated on the server for the others (a hub's hundreds of
        edges never cross the wire)."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import P

        wanted = {identifier_id(k, h): (k, h) for k, h in sorted(set(identifiers))}
        out, missing = [], []
        summaries = self._summaries(list(wanted)) if _summaries is None else _summaries
        for vid in wanted:
            summary = summaries.get(vid)
            if summary is not None and summary.visible(as_of_ms):
                out.append(
                    (
                        *wanted[vid],
                        summary.customers,
                        summary.earliest_first_seen,
                        summary.latest_first_seen,
                        summary.events,
                    )
                )
            else:
                missing.append(vid)
        limit = _typed(as_of_or_end(as_of_ms))

        def visible():
            return __.in_e().has("first_seen", P.lte(limit))

        for chunk in chunked(missing, self.batch_size):
            rows = self._run(
                "identifier_stats",
                lambda g, chunk=chunk: (
                    g.V(*chunk)
                    .project("label", "value_hash", "n", "fmin", "fmax", "events")
                    .by(__.label())
                    .by(__.values("value_hash"))
                    .by(visible().count())
                    .by(_min_or(visible().values("first_seen"), -1))
                    .by(_max_or(visible().values("first_seen"), -1))
                    .by(_sum_or(visible().values("event_count")))
                    .to_list()
                ),
            )
            out += [
                (r["label"], r["value_hash"], int(r["n"]), int(r["fmin"]), int(r["fmax"]), int(r["events"]))
                for r in rows
            ]
        out = sorted(row for row in out if row[2])
        return pd.DataFrame(out, columns=IDENTIFIER_STATS_COLUMNS)

    def link_summary(
        self, customer_ids: Sequence[str], as_of_ms: int | None = None, *, _summaries: dict | None = None
    ) -> pd.DataFrame:
        """From the customers' summaries; aggregated on the server (one row per customer, not its edges)
        for the others."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import P

        ids = [customer_vertex_id(c) for c in sorted(set(customer_ids))]
        out, missing = [], []
        summaries = self._summaries(ids) if _summaries is None else _summaries
        for vid in ids:
            summary = summaries.get(vid)
            if summary is not None and summary.visible(as_of_ms):
                if summary.links:  # customers without links are left out
                    out.append((vid[len(_CUSTOMER_PREFIX) :], *summary.row))
            else:
                missing.append(vid)
        limit = _typed(as_of_or_end(as_of_ms))

        def visible():
            return __.out_e().has("first_seen", P.lte(limit))

        keys = [
            "id",
            "n",
            "first_link",
            *(f"identifiers_{k}" for k in EDGE_LABEL_BY_KIND),
            "events",
            *COUNT_PROPERTY_BY_TYPE.values(),
        ]
        for chunk in chunked(missing, self.batch_size):

            def query(g, chunk=chunk):
                t = (
                    g.V(*chunk)
                    .project(*keys)
                    .by(__.id_())
                    .by(visible().count())
                    .by(_min_or(visible().values("first_seen"), -1))
                )
                for label in EDGE_LABEL_BY_KIND.values():
                    t = t.by(visible().has_label(label).count())
                t = t.by(_sum_or(visible().values("event_count")))
                for prop in COUNT_PROPERTY_BY_TYPE.values():
                    t = t.by(_sum_or(visible().values(prop)))
                return t.to_list()

            out += [
                (str(r["id"])[len(_CUSTOMER_PREFIX) :], *(int(r[k]) for k in keys[2:]))
                for r in self._run("link_summary", query)
                if int(r["n"])
            ]
        out.sort()
        return pd.DataFrame(out, columns=LINK_SUMMARY_COLUMNS)

    def customers_with(self, prop: str, value) -> pd.DataFrame:
        from gremlin_python.process.traversal import T

        rows = self._run("customers_with", lambda g: g.V().has(CUSTOMER, prop, _typed(value)).value_map(True).to_list())
        records = [{"customer_id": str(r[T.id])[len(_CUSTOMER_PREFIX) :], **self._flatten(r)} for r in rows]
        frame = pd.DataFrame.from_records(records, columns=None if records else ["customer_id"])
        return frame.sort_values("customer_id").reset_index(drop=True) if records else frame

    def customers_frame(self) -> pd.DataFrame:
        from gremlin_python.process.traversal import T

        rows = self._run("export customers", lambda g: g.V().has_label(CUSTOMER).value_map(True).to_list())
        records = []
        for r in rows:
            rec = {"customer_id": str(r[T.id])[len(_CUSTOMER_PREFIX) :]}
            rec.update(self._flatten(r))
            records.append(rec)
        return pd.DataFrame.from_records(records, columns=None if records else ["customer_id"])

    def links_frame(self) -> pd.DataFrame:
        from gremlin_python.process.graph_traversal import __

        rows = self._run(
            "export links",
            lambda g: (
                g.E()
                .has_label(*EDGE_LABEL_BY_KIND.values())
                .project("label", "customer", "value_hash", "props")
                .by(__.label())
                .by(__.out_v().id_())
                .by(__.in_v().values("value_hash"))
                .by(__.value_map())
                .to_list()
            ),
        )
        records = []
        for r in rows:
            rec = {
                "customer_id": str(r["customer"])[len(_CUSTOMER_PREFIX) :],
                "kind": KIND_BY_EDGE_LABEL[r["label"]],
                "value_hash": r["value_hash"],
            }
            rec.update(self._link_props(r["props"]))
            records.append(rec)
        cols = ["customer_id", "kind", "value_hash", "first_seen", "last_seen", "event_count"]
        frame = pd.DataFrame.from_records(records, columns=None if records else cols)
        for col in COUNT_PROPERTY_BY_TYPE.values():
            if col in frame:
                frame[col] = frame[col].fillna(0).astype("int64")
        return frame

    def clear(self) -> None:
        """Drop every vertex and edge (tests and benchmarks only)."""
        self._run("clear", lambda g: g.V().drop().iterate())
