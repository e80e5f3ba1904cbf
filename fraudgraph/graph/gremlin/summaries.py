"""Link summaries on the Gremlin store: read, invalidated before a write, refreshed after it with a
version compare-and-set (the protocol is in :mod:`fraudgraph.graph.gremlin`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...config import GraphSettings
from ...schema import CUSTOMER, IDENTIFIER_KINDS
from ..elements import chunked, customer_vertex_id, identifier_id
from ..link_summaries import (
    CustomerLinkSummary,
    IdentifierLinkSummary,
    LinkChange,
    LinkSummary,
    decode_link_summary,
)
from .aggregates import customer_summary_rows, identifier_summary_rows
from .memo import ThreadMemo
from .session import GremlinClient
from .traversals import (
    CUSTOMER_PREFIX,
    SUMMARY,
    SUMMARY_VERSION,
    single_valued,
    typed,
    typed_map,
)
from .versions import Advance, invalidate_chunk, new_version, stored_summaries

log = logging.getLogger(__name__)


class SummaryCache:
    """Every vertex's ``link_summary``, kept current through ``client``: :meth:`read` them,
    :meth:`invalidate` before a write, :meth:`note_advances` and :meth:`refresh` after it. ``memo`` holds
    what this thread already read or stored inside a block."""

    def __init__(self, client: GremlinClient, memo: ThreadMemo, settings: GraphSettings):
        """``settings``: ``graph`` (the fan-out cap) and ``graph.gremlin`` (the kept customer properties)."""
        self.client, self.memo = client, memo
        self.summary_properties = frozenset(settings.gremlin.summary_properties)
        self.fanout_cap = settings.neighbourhood_fanout_cap
        self._lock = threading.Lock()
        self._advances: dict[str, Advance] = {}  # vertex id -> what its next refresh can advance
        # summaries (customers and identifiers) refreshed by advancing the dropped one / by aggregating the
        # links; of the aggregated, those the summary alone could not advance, and advances whose
        # compare-and-set found the version moved by another writer (observability)
        self.refreshes = {"advanced": 0, "aggregated": 0, "not_advanceable": 0, "version_moved": 0}

    def invalidate(
        self, vertices: Sequence[Mapping[str, Any]], keep_dropped: bool = False, types: Iterable[str] = ()
    ) -> dict[str, tuple[int, str]]:
        """Merge these vertices (rows from :meth:`vertex_row`: created if absent), drop their summaries and
        give them new versions, in one request per chunk (before the write, so a write that never reaches
        its refresh leaves no summary behind). ``types``: the labels and property keys the rows write.

        With ``keep_dropped``, returns ``{vertex id: (its new version, summary)}``, what
        :meth:`note_advances` needs to advance them after the write: the summary dropped, or for a vertex
        this merge created, the empty summary (it had no links). Two writers can both create one vertex at
        once (JanusGraph does not lock a vertex it takes for new); both start from the empty summary, and
        only one compare-and-set can succeed, so the other aggregates after its write. Any pending advance
        of these vertices is forgotten (their summary is gone now)."""
        from gremlin_python.process.traversal import T

        vertex_ids = [str(r["k"][T.id]) for r in vertices]
        with self._lock:
            for vid in vertex_ids:
                self._advances.pop(vid, None)
        self.memo.note_summaries(dict.fromkeys(vertex_ids))  # this thread's memo no longer knows them

        def invalidate(g: Any, chunk: Sequence[Mapping[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
            return invalidate_chunk(g, chunk, keep_dropped)

        chunks = self.client.write_chunks(
            "invalidate_summaries", invalidate, list(vertices), types={SUMMARY_VERSION, *types}
        )
        dropped = {}
        kept = sorted(self.summary_properties)
        for version, rows in chunks:
            for r in rows:
                vid, text = str(r["id"]), r["s"]
                if r["v"] == version:  # made by this merge: no links, and no writer of them under way
                    empty: LinkSummary = (
                        CustomerLinkSummary.empty(vid, {}, kept)  # made without summary properties (_vertex_row)
                        if vid.startswith(CUSTOMER_PREFIX)
                        else IdentifierLinkSummary.empty(vid)
                    )
                    text = empty.to_json()
                if text:
                    dropped[vid] = (version, text)
        return dropped

    def vertex_row(
        self,
        vertex_id: str,
        label: str,
        create: Mapping[str, Any] | None = None,
        match: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A vertex for :meth:`invalidate`: merged on its id and label, ``create`` set when it is
        made, ``match`` when it is there, ``after`` once its summary is dropped, in the same request
        (cardinality stated). Summary properties go in ``after`` only (the empty summary of a vertex the
        merge makes holds none: :meth:`note_advances` adds them)."""
        from gremlin_python.process.traversal import T

        match = match or {}
        for props in (create or {}, match):
            if self.summary_properties & props.keys():
                raise ValueError(f"{vertex_id}: summary properties are written after the invalidation, not with it")
        row = {
            "k": {T.id: vertex_id, T.label: label},
            "c": single_valued(typed_map(create or {})),
            "m": single_valued(match),
        }
        if after:
            row["a"] = single_valued(typed_map(after))
        return row

    def note_advances(
        self,
        dropped: dict[str, tuple[int, str]],
        changes: Sequence[LinkChange],
        exact: bool = True,
        properties: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """After a write: for each customer and identifier whose summary the invalidation dropped, the
        links the write changed and (customers) the ``properties`` it wrote (``{vertex id: {name: value or
        None}}``), so its refresh can advance that summary instead of aggregating its links.
        Not ``exact`` (a link was read twice: duplicate edges): nothing is noted, every summary aggregates."""
        if not exact:
            return
        by_vertex: dict[str, list[LinkChange]] = {}
        for change in changes:
            for vid in (identifier_id(change.kind, change.value_hash), customer_vertex_id(change.customer_id)):
                if vid in dropped:
                    by_vertex.setdefault(vid, []).append(change)
        properties = {vid: dict(p) for vid, p in (properties or {}).items() if vid in dropped}
        with self._lock:
            for vid in by_vertex.keys() | properties.keys():
                version, summary = dropped[vid]
                self._advances[vid] = Advance(
                    version, summary, tuple(by_vertex.get(vid, ())), tuple(properties.get(vid, {}).items())
                )

    # Over 60 lines for a reason: the bump-and-aggregate traversals for customers and identifiers, written
    # out beside each other, then the order of the refresh (advance what can be, aggregate the rest).
    def refresh(self, customer_ids: Sequence[str] = (), identifiers: Sequence[tuple[str, str]] = ()) -> None:
        """Recompute the link summaries of these customers and identifiers (see the module docstring)."""
        cap = self.fanout_cap + 1
        kept = sorted(self.summary_properties)

        def refresh_customers(g: Any, chunk: Sequence[str]) -> dict[str, str | None]:
            return self.compare_and_set(g, customer_summary_rows(g, chunk, kept))

        def refresh_identifiers(g: Any, chunk: Sequence[str]) -> dict[str, str | None]:
            return self.compare_and_set(g, identifier_summary_rows(g, chunk, cap))

        def aggregations(vids):
            # every chunk on its own: up to pool_size in flight, so one chunk's decoding and summary
            # encoding here overlaps the next one's aggregation on the server
            customers = [v for v in vids if v.startswith(CUSTOMER_PREFIX)]
            idents = [v for v in vids if not v.startswith(CUSTOMER_PREFIX)]
            with self._lock:
                self.refreshes["aggregated"] += len(vids)
            return [
                (f"refresh_summaries.{what}", lambda g, chunk=chunk, fn=fn: fn(g, chunk))
                for what, fn, ids, size in (
                    ("customers", refresh_customers, customers, self.client.batch_size),
                    ("identifiers", refresh_identifiers, idents, max(1, self.client.batch_size // 5)),
                )
                for chunk in chunked(ids, size)
            ]

        vids = [customer_vertex_id(c) for c in dict.fromkeys(customer_ids)]
        vids += [identifier_id(k, h) for k, h in dict.fromkeys(identifiers)]
        # vertices whose dropped summary this writer can advance by its own changes: stored only if no
        # other writer bumped the version since (compare-and-set), side by side with aggregating the links
        # of the rest; an advance the compare-and-set refused is aggregated after
        advances = self._advanced(vids)
        advancing = {vid for vid, _, _ in advances}
        stores = [
            ("refresh_summaries.advance", lambda g, chunk=chunk: self.compare_and_set(g, chunk))
            for chunk in chunked(advances, self.client.batch_size)
        ]
        results = self.client.run_concurrently(stores + aggregations([v for v in vids if v not in advancing]))
        stored = {vid: text for texts in results for vid, text in texts.items() if text is not None}
        advanced = {vid for texts in results[: len(stores)] for vid, text in texts.items() if text is not None}
        with self._lock:
            self.refreshes["advanced"] += len(advanced)
            self.refreshes["version_moved"] += len(advancing - advanced)
        # a refused compare-and-set (another writer gave the vertex a new version meanwhile) is aggregated
        # again unless that writer's own aggregation has read this writer's links: an advance refused, or an
        # aggregation refused by an invalidation (that writer may advance a summary stored while this
        # writer's links were still being written, which lacks them). Left to the other writer, such a
        # vertex could keep that summary (seen with four writers on one hub)
        refused = [v for v in vids if v in advancing and v not in advanced]
        refused += [v for texts in results[len(stores) :] for v, text in texts.items() if text is None]
        for _ in range(self.client.max_retries):
            if not refused:
                break
            results = self.client.run_concurrently(aggregations(refused))
            stored.update({vid: text for texts in results for vid, text in texts.items() if text is not None})
            refused = [v for texts in results for v, text in texts.items() if text is None]
        if refused:  # still refused: dropped, so readers aggregate the links rather than trust a summary
            log.warning(
                "link summaries of %d vertices still contended after %d tries: dropped",
                len(refused),
                self.client.max_retries,
            )
            self.drop(refused)
        # what this thread stored is what its later reads in a read-once block see
        self.memo.note_summaries(stored)

    def drop(self, vertex_ids: Sequence[str]) -> None:
        """Drop the summaries of these vertices and give them new versions (no merge: a vertex not there
        stays absent)."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Cardinality

        def drop(g, chunk):
            version = typed(new_version())
            g.V(*chunk).property(Cardinality.single, SUMMARY_VERSION, version).side_effect(
                __.properties(SUMMARY).drop()
            ).iterate()

        self.client.write_chunks("drop_summaries", drop, list(vertex_ids), types=(SUMMARY_VERSION,))
        self.memo.note_summaries(dict.fromkeys(vertex_ids))

    def compare_and_set(self, g: Any, rows: Sequence[tuple[str, int, str]]) -> dict[str, str | None]:
        """Store each ``(vertex id, version, summary)`` if the vertex's version is still the one given:
        :func:`fraudgraph.graph.gremlin.versions.stored_summaries` (a method: the tests interleave a second
        writer here)."""
        return stored_summaries(g, rows)

    def _advanced(self, vertex_ids: Sequence[str]) -> list[tuple[str, int, str]]:
        """``(vertex id, version, summary)`` for the pending summaries of these vertices that their write's
        changes advance, at the version the invalidation left; a summary the changes cannot advance is not
        tried, nor a customer's written for other ``summary_properties`` than the store's (aggregating
        rewrites it). Their pending advances are used up."""
        with self._lock:
            pending = {vid: self._advances.pop(vid) for vid in vertex_ids if vid in self._advances}
        rows = []
        for vid, advance in pending.items():
            summary = decode_link_summary(advance.summary)
            new: LinkSummary | None
            if isinstance(summary, IdentifierLinkSummary):
                new = summary.advanced(advance.changes, self.fanout_cap + 1)
            else:
                new = summary.advanced(advance.changes) if set(summary.kept) == self.summary_properties else None
                if new is not None and advance.properties:
                    new = new.with_properties(dict(advance.properties))
            if new is not None:
                rows.append((vid, advance.version, new.to_json()))
        with self._lock:
            self.refreshes["not_advanceable"] += len(pending) - len(rows)
        return rows

    def rebuild(self, progress: bool = False) -> dict[str, int]:
        """Refresh every customer's and identifier's summary; how many of each."""
        from tqdm import tqdm

        customers = [
            str(v)[len(CUSTOMER_PREFIX) :]
            for v in self.client.run("list customers", lambda g: g.V().has_label(CUSTOMER).id_().to_list())
        ]
        identifiers = [
            tuple(str(v).split(":", 1))
            for v in self.client.run("list identifiers", lambda g: g.V().has_label(*IDENTIFIER_KINDS).id_().to_list())
        ]
        step = self.client.batch_size
        with tqdm(
            total=len(customers) + len(identifiers), desc="summaries", unit="vertex", disable=not progress
        ) as bar:
            for chunk in chunked(customers, step):
                self.refresh(customer_ids=chunk)
                bar.update(len(chunk))
            for chunk in chunked(identifiers, step):
                self.refresh(identifiers=chunk)
                bar.update(len(chunk))
        return {"customers": len(customers), "identifiers": len(identifiers)}

    def read(self, vertex_ids: Sequence[str]) -> dict[str, Any]:
        """``{vertex id: CustomerLinkSummary | IdentifierLinkSummary}`` of the vertices that have a current
        one (only the strings travel; a customer's vertex id says which kind it is); chunks up to
        ``pool_size`` at once. Inside a memo block, a vertex already read is not asked again."""
        read = self.memo.summaries
        ids = list(dict.fromkeys(vertex_ids))
        asked = ids if read is None else [vid for vid in ids if vid not in read]
        texts = self.client.read_chunks("summaries", lambda g, chunk: g.V(*chunk).values(SUMMARY).fold().next(), asked)
        found: dict[str, LinkSummary] = {}
        for text in texts:
            summary = decode_link_summary(text)
            found[summary.vertex_id] = summary
        if read is None:
            return found
        read.update({vid: found.get(vid) for vid in asked})  # None: read, and had no summary
        return {vid: read[vid] for vid in ids if read[vid] is not None}
