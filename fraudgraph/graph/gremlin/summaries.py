"""Link summaries on the Gremlin store: invalidated before a write, refreshed after it with a
version compare-and-set (the protocol is in :mod:`fraudgraph.graph.gremlin`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...config import GraphSettings
from ...schema import CUSTOMER, EDGE_LABEL_BY_KIND, IDENTIFIER_KINDS
from ..elements import chunked, customer_vertex_id, identifier_id
from ..link_summaries import (
    LINK_ROW,
    CustomerLinkSummary,
    IdentifierLinkSummary,
    LinkChange,
    LinkSummary,
    decode_link_summary,
    link_row,
)
from .session import (
    _CUSTOMER_PREFIX,
    SUMMARY,
    SUMMARY_VERSION,
    GremlinSession,
    _max_or,
    _min_or,
    _sum_or,
    _typed,
    format_template,
)


@dataclass(frozen=True)
class _Advance:
    """What a refresh needs to advance a vertex's summary rather than aggregate its links: the version
    this writer's invalidation left, the summary it dropped, and the links its write changed."""

    version: int
    summary: str
    changes: tuple[LinkChange, ...]


class GremlinSummaries(GremlinSession):
    """Keeps every vertex's ``link_summary`` current."""

    def __init__(self, uri: str, settings: GraphSettings):
        super().__init__(uri, settings)
        self._advances: dict[str, _Advance] = {}  # vertex id -> what its next refresh can advance
        # summaries (customers and identifiers) refreshed by advancing the dropped one / by aggregating the
        # links; of the aggregated, those the summary alone could not advance, and advances whose
        # compare-and-set found the version moved by another writer (observability)
        self.summary_refreshes = {"advanced": 0, "aggregated": 0, "not_advanceable": 0, "version_moved": 0}

    @staticmethod
    def _bump_version():
        from gremlin_python.process.graph_traversal import __

        return __.union(__.coalesce(__.values(SUMMARY_VERSION), __.constant(_typed(0))), __.constant(_typed(1))).sum_()

    def _invalidate_summaries(
        self, vertex_ids: Sequence[str], keep_dropped: bool = False
    ) -> dict[str, tuple[int, str]]:
        """Drop the summaries of vertices about to change and bump their versions (before the write, so a
        write that never reaches its refresh leaves no summary behind).

        With ``keep_dropped``, returns ``{vertex id: (version after the bump, the summary dropped)}`` for the
        vertices that had one: what :meth:`_note_advances` needs to advance them after the write. Any
        pending advance of these vertices is forgotten (their summary is gone now)."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Cardinality, Scope

        vertex_ids = list(vertex_ids)
        with self._lock:
            for vid in vertex_ids:
                self._advances.pop(vid, None)
        self._note_summaries(dict.fromkeys(vertex_ids))  # this thread's memo no longer knows them
        dropped = (
            __.has(SUMMARY)
            .project("id", "v", "s")
            .by(__.id_())
            .by(__.values(SUMMARY_VERSION))
            .by(__.values(SUMMARY))
            .aggregate(Scope.local, "dropped")
        )

        def invalidate(g, chunk):
            bumped = g.V(*chunk).property(Cardinality.single, SUMMARY_VERSION, self._bump_version())
            if not keep_dropped:
                bumped.side_effect(__.properties(SUMMARY).drop()).iterate()
                return []
            return bumped.side_effect(dropped).side_effect(__.properties(SUMMARY).drop()).cap("dropped").next()

        chunks = self._write_chunks("invalidate_summaries", invalidate, vertex_ids, types=(SUMMARY_VERSION,))
        return {str(r["id"]): (int(r["v"]), r["s"]) for rows in chunks for r in rows}

    def _note_advances(
        self, dropped: dict[str, tuple[int, str]], changes: Sequence[LinkChange], exact: bool = True
    ) -> None:
        """After a link write: for each customer and identifier whose summary the invalidation dropped, the
        links the write changed, so its refresh can advance that summary instead of aggregating its links.
        Not ``exact`` (a link was read twice: duplicate edges): nothing is noted, every summary aggregates."""
        if not exact:
            return
        by_vertex: dict[str, list[LinkChange]] = {}
        for change in changes:
            for vid in (identifier_id(change.kind, change.value_hash), customer_vertex_id(change.customer_id)):
                if vid in dropped:
                    by_vertex.setdefault(vid, []).append(change)
        with self._lock:
            for vid, link_changes in by_vertex.items():
                version, summary = dropped[vid]
                self._advances[vid] = _Advance(version, summary, tuple(link_changes))

    # Over 60 lines for a reason: the bump-and-aggregate traversals for customers and identifiers, written
    # out beside each other, then the order of the refresh (advance what can be, aggregate the rest).
    def refresh_summaries(self, customer_ids: Sequence[str] = (), identifiers: Sequence[tuple[str, str]] = ()) -> None:
        """Recompute the link summaries of these customers and identifiers (see the module docstring)."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Cardinality

        cap = self.fanout_cap + 1
        bump = self._bump_version
        kept = sorted(self.summary_properties)

        def refresh_customers(g, chunk):
            keys = ["first", *EDGE_LABEL_BY_KIND.values(), *LINK_ROW[2:]]  # LINK_SUMMARY_COLUMNS[1:]
            # the aggregates come as one string, formatted on the server (a map of them costs gremlinpython
            # far more to decode); every one has a default, so format() never drops a customer
            aggregates = (
                __.project("n", "fmax", *keys)
                .by(__.out_e().count())
                .by(_max_or(__.out_e().values("first_seen"), -1))
                .by(_min_or(__.out_e().values("first_seen"), -1))
            )
            for label in EDGE_LABEL_BY_KIND.values():
                aggregates = aggregates.by(__.out_e().has_label(label).count())
            for prop in LINK_ROW[2:]:
                aggregates = aggregates.by(_sum_or(__.out_e().values(prop)))
            rows = (
                g.V(*chunk)
                .property(Cardinality.single, SUMMARY_VERSION, bump())
                .project("id", "v", "p", "a")
                .by(__.id_())
                .by(__.values(SUMMARY_VERSION))
                .by(__.value_map(*kept))
                .by(aggregates.format_(format_template(("n", "fmax", *keys))))
                .to_list()
            )
            summaries = []
            for r in rows:
                n, fmax, *values = map(int, r["a"].split(","))
                summary = CustomerLinkSummary(r["id"], n, fmax, tuple(values), self._flatten(r["p"]), tuple(kept))
                summaries.append((r["id"], r["v"], summary.to_json()))
            return self._stored(g, summaries)

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
                .by(self._projected_links(__.in_e().order().by(__.out_v().id_()).limit(cap)).fold())
                .to_list()
            )
            return self._stored(
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
                                (customer[len(_CUSTOMER_PREFIX) :], *link_row(props))
                                for customer, _, props in map(self._link_parts, r["first"])
                            ),
                        ).to_json(),
                    )
                    for r in rows
                ],
            )

        def aggregations(vids):
            # every chunk on its own: up to pool_size in flight, so one chunk's decoding and summary
            # encoding here overlaps the next one's aggregation on the server
            customers = [v for v in vids if v.startswith(_CUSTOMER_PREFIX)]
            idents = [v for v in vids if not v.startswith(_CUSTOMER_PREFIX)]
            with self._lock:
                self.summary_refreshes["aggregated"] += len(vids)
            return [
                (f"refresh_summaries.{what}", lambda g, chunk=chunk, fn=fn: fn(g, chunk))
                for what, fn, ids, size in (
                    ("customers", refresh_customers, customers, self.batch_size),
                    ("identifiers", refresh_identifiers, idents, max(1, self.batch_size // 5)),
                )
                for chunk in chunked(ids, size)
            ]

        vids = [customer_vertex_id(c) for c in dict.fromkeys(customer_ids)]
        vids += [identifier_id(k, h) for k, h in dict.fromkeys(identifiers)]
        # vertices whose dropped summary this writer can advance by its own changes: stored only if no
        # other writer bumped the version since (compare-and-set), side by side with aggregating the links
        # of the rest; an advance the compare-and-set refused is aggregated after
        advances = self._advanced_summaries(vids)
        advancing = {vid for vid, _, _ in advances}
        stores = [
            ("refresh_summaries.advance", lambda g, chunk=chunk: self._stored(g, chunk))
            for chunk in chunked(advances, self.batch_size)
        ]
        results = self._run_concurrently(stores + aggregations([v for v in vids if v not in advancing]))
        advanced = {vid for texts in results[: len(stores)] for vid in texts}
        with self._lock:
            self.summary_refreshes["advanced"] += len(advanced)
            self.summary_refreshes["version_moved"] += len(advancing - advanced)
        results += self._run_concurrently(aggregations([v for v in vids if v in advancing and v not in advanced]))
        # what this thread stored is what its later reads in a read-once block see
        self._note_summaries({vid: text for texts in results for vid, text in texts.items()})

    @classmethod
    def _stored(cls, g, rows: Sequence[tuple[str, int, str]]) -> dict[str, str]:
        """:meth:`_compare_and_set` of ``(vertex id, version, summary)`` rows: ``{vertex id: summary}`` of
        those stored."""
        stored = {str(vid) for vid in cls._compare_and_set(g, rows)}
        return {str(vid): text for vid, _, text in rows if str(vid) in stored}

    @staticmethod
    def _compare_and_set(g, rows: Sequence[tuple[str, int, str]]) -> list[str]:
        """Store each ``(vertex id, version, summary)`` only if the vertex's version is still that one: a
        summary read or advanced at an older version than the vertex's is dropped. The ids stored."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Cardinality, P, T

        return (
            g.inject([{"k": {T.id: vid}, "v": _typed(v), "s": text} for vid, v, text in rows])
            .unfold()
            .as_("r")
            .merge_v(__.select("r").select("k"))
            .as_("x")
            .where("x", P.eq("r"))
            .by(SUMMARY_VERSION)
            .by("v")
            .property(Cardinality.single, SUMMARY, __.select("r").select("s"))
            .id_()
            .to_list()
        )

    def _advanced_summaries(self, vertex_ids: Sequence[str]) -> list[tuple[str, int, str]]:
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
            if new is not None:
                rows.append((vid, advance.version, new.to_json()))
        with self._lock:
            self.summary_refreshes["not_advanceable"] += len(pending) - len(rows)
        return rows

    def rebuild_summaries(self, progress: bool = False) -> dict[str, int]:
        from tqdm import tqdm

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
