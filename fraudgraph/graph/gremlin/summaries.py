"""Link summaries on the Gremlin store: invalidated before a write, refreshed after it with a
version compare-and-set (the protocol is in :mod:`fraudgraph.graph.gremlin`)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
    _single,
    _sum_or,
    _typed,
    _typed_map,
    format_template,
)

log = logging.getLogger(__name__)


def _new_version(aggregation: bool = False) -> int:
    """A vertex's next summary version: a random token, not a counter. Two writers that change one vertex
    at once on an engine that does not serialise them (JanusGraph makes a vertex created by two writers at
    once without locking it) still leave versions that differ, so at most one compare-and-set succeeds.
    An aggregation's tokens are odd, every other one even: a writer refused by an aggregation knows that
    aggregation reads its links (see :meth:`GremlinSummaries._refresh_summaries`)."""
    return secrets.randbits(61) * 2 + (1 if aggregation else 2)


@dataclass(frozen=True)
class _Advance:
    """What a refresh needs to advance a vertex's summary rather than aggregate its links: the version
    this writer's invalidation left, the summary it dropped (or the empty one of a new vertex), and the
    links and customer properties its write changed."""

    version: int
    summary: str
    changes: tuple[LinkChange, ...]
    properties: tuple[tuple[str, Any], ...] = ()  # a customer's properties written (None: removed)


class GremlinSummaries(GremlinSession):
    """Keeps every vertex's ``link_summary`` current."""

    def __init__(self, uri: str, settings: GraphSettings):
        super().__init__(uri, settings)
        self._advances: dict[str, _Advance] = {}  # vertex id -> what its next refresh can advance
        # summaries (customers and identifiers) refreshed by advancing the dropped one / by aggregating the
        # links; of the aggregated, those the summary alone could not advance, and advances whose
        # compare-and-set found the version moved by another writer (observability)
        self.summary_refreshes = {"advanced": 0, "aggregated": 0, "not_advanceable": 0, "version_moved": 0}

    def _invalidate_summaries(
        self, vertices: Sequence[Mapping[str, Any]], keep_dropped: bool = False, types: Iterable[str] = ()
    ) -> dict[str, tuple[int, str]]:
        """Merge these vertices (rows from :meth:`_vertex_row`: created if absent), drop their summaries and
        give them new versions, in one request per chunk (before the write, so a write that never reaches
        its refresh leaves no summary behind). ``types``: the labels and property keys the rows write.

        With ``keep_dropped``, returns ``{vertex id: (its new version, summary)}``, what
        :meth:`_note_advances` needs to advance them after the write: the summary dropped, or for a vertex
        this merge created, the empty summary (it had no links). Two writers can both create one vertex at
        once (JanusGraph does not lock a vertex it takes for new); both start from the empty summary, and
        only one compare-and-set can succeed, so the other aggregates after its write. Any pending advance
        of these vertices is forgotten (their summary is gone now)."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Cardinality, CardinalityValue, Merge, Scope, T

        vertex_ids = [str(r["k"][T.id]) for r in vertices]
        with self._lock:
            for vid in vertex_ids:
                self._advances.pop(vid, None)
        self._note_summaries(dict.fromkeys(vertex_ids))  # this thread's memo no longer knows them
        # before the new version: the version it had (the new one: made by this merge) and its summary
        state = (
            __.project("id", "v", "s")
            .by(__.id_())
            .by(__.coalesce(__.values(SUMMARY_VERSION), __.constant(_typed(0))))
            .by(__.coalesce(__.values(SUMMARY), __.constant("")))
            .aggregate(Scope.local, "dropped")
        )

        def invalidate(g, chunk):
            version = _typed(_new_version())
            # a vertex the merge makes gets the new version as it is made (one write, not two); every other
            # one gets it after its state is read
            made = CardinalityValue.single(version)
            merged = (
                g.inject([{**r, "c": {**r["c"], SUMMARY_VERSION: made}} for r in chunk])
                .unfold()
                .as_("r")
                .merge_v(__.select("r").select("k"))
                .option(Merge.on_create, __.select("r").select("c"))
                .option(Merge.on_match, __.select("r").select("m"))
            )
            if keep_dropped:
                merged = merged.side_effect(state)
            bumped = merged.coalesce(
                __.has(SUMMARY_VERSION, version), __.property(Cardinality.single, SUMMARY_VERSION, version)
            ).side_effect(__.properties(SUMMARY).drop())
            if any("a" in r for r in chunk):  # properties written once the summary is gone
                bumped = bumped.side_effect(
                    __.select("r")
                    .merge_v(__.select("k"))
                    .option(Merge.on_match, __.coalesce(__.select("a"), __.constant({})))
                )
            if not keep_dropped:
                bumped.iterate()
                return version, []
            return version, bumped.cap("dropped").next()

        chunks = self._write_chunks("invalidate_summaries", invalidate, list(vertices), types={SUMMARY_VERSION, *types})
        dropped = {}
        kept = sorted(self.summary_properties)
        for version, rows in chunks:
            for r in rows:
                vid, text = str(r["id"]), r["s"]
                if r["v"] == version:  # made by this merge: no links, and no writer of them under way
                    empty: LinkSummary = (
                        CustomerLinkSummary.empty(vid, {}, kept)  # made without summary properties (_vertex_row)
                        if vid.startswith(_CUSTOMER_PREFIX)
                        else IdentifierLinkSummary.empty(vid)
                    )
                    text = empty.to_json()
                if text:
                    dropped[vid] = (version, text)
        return dropped

    def _vertex_row(
        self,
        vertex_id: str,
        label: str,
        create: Mapping[str, Any] | None = None,
        match: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A vertex for :meth:`_invalidate_summaries`: merged on its id and label, ``create`` set when it is
        made, ``match`` when it is there, ``after`` once its summary is dropped, in the same request
        (cardinality stated). Summary properties go in ``after`` only (the empty summary of a vertex the
        merge makes holds none: :meth:`_note_advances` adds them)."""
        from gremlin_python.process.traversal import T

        match = match or {}
        for props in (create or {}, match):
            if self.summary_properties & props.keys():
                raise ValueError(f"{vertex_id}: summary properties are written after the invalidation, not with it")
        row = {"k": {T.id: vertex_id, T.label: label}, "c": _single(_typed_map(create or {})), "m": _single(match)}
        if after:
            row["a"] = _single(_typed_map(after))
        return row

    def _note_advances(
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
                self._advances[vid] = _Advance(
                    version, summary, tuple(by_vertex.get(vid, ())), tuple(properties.get(vid, {}).items())
                )

    # Over 60 lines for a reason: the bump-and-aggregate traversals for customers and identifiers, written
    # out beside each other, then the order of the refresh (advance what can be, aggregate the rest).
    def _refresh_summaries(self, customer_ids: Sequence[str] = (), identifiers: Sequence[tuple[str, str]] = ()) -> None:
        """Recompute the link summaries of these customers and identifiers (see the module docstring)."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Cardinality

        cap = self.fanout_cap + 1
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
                .property(Cardinality.single, SUMMARY_VERSION, _typed(_new_version(aggregation=True)))
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
                .property(Cardinality.single, SUMMARY_VERSION, _typed(_new_version(aggregation=True)))
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
        stored = {vid: text for texts in results for vid, text in texts.items() if text is not None}
        advanced = {vid for texts in results[: len(stores)] for vid, text in texts.items() if text is not None}
        with self._lock:
            self.summary_refreshes["advanced"] += len(advanced)
            self.summary_refreshes["version_moved"] += len(advancing - advanced)
        # a refused compare-and-set (another writer gave the vertex a new version meanwhile) is aggregated
        # again unless that writer's own aggregation has read this writer's links: an advance refused, or an
        # aggregation refused by an invalidation (that writer may advance a summary stored while this
        # writer's links were still being written, which lacks them). Left to the other writer, such a
        # vertex could keep that summary (seen with four writers on one hub)
        refused = [v for v in vids if v in advancing and v not in advanced]
        refused += [v for texts in results[len(stores) :] for v, text in texts.items() if text is None]
        for _ in range(self.max_retries):
            if not refused:
                break
            results = self._run_concurrently(aggregations(refused))
            stored.update({vid: text for texts in results for vid, text in texts.items() if text is not None})
            refused = [v for texts in results for v, text in texts.items() if text is None]
        if refused:  # still refused: dropped, so readers aggregate the links rather than trust a summary
            log.warning(
                "link summaries of %d vertices still contended after %d tries: dropped", len(refused), self.max_retries
            )
            self._drop_summaries(refused)
        # what this thread stored is what its later reads in a read-once block see
        self._note_summaries(stored)

    def _drop_summaries(self, vertex_ids: Sequence[str]) -> None:
        """Drop the summaries of these vertices and give them new versions (no merge: a vertex not there
        stays absent)."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Cardinality

        def drop(g, chunk):
            version = _typed(_new_version())
            g.V(*chunk).property(Cardinality.single, SUMMARY_VERSION, version).side_effect(
                __.properties(SUMMARY).drop()
            ).iterate()

        self._write_chunks("drop_summaries", drop, list(vertex_ids), types=(SUMMARY_VERSION,))
        self._note_summaries(dict.fromkeys(vertex_ids))

    @classmethod
    def _stored(cls, g, rows: Sequence[tuple[str, int, str]]) -> dict[str, str | None]:
        """:meth:`_compare_and_set` of ``(vertex id, version, summary)`` rows: ``{vertex id: summary}`` of
        those stored, None for those refused because another writer invalidated the vertex since (it may
        advance a summary that lacks this writer's links: this writer aggregates again). One refused
        because another writer aggregated since is left out: that aggregation read this writer's links,
        and its writer keeps at it until it stores or is refused by yet another aggregation."""
        now = cls._compare_and_set(g, rows)
        out: dict[str, str | None] = {}
        for vid, v, text in rows:
            version = now.get(str(vid))
            if version == v:
                out[str(vid)] = text
            elif version is not None and version % 2 == 0:
                out[str(vid)] = None
        return out

    @staticmethod
    def _compare_and_set(g, rows: Sequence[tuple[str, int, str]]) -> dict[str, int]:
        """Store each ``(vertex id, version, summary)`` only if the vertex's version is still that one: a
        summary read or advanced at an older version than the vertex's is dropped. ``{vertex id: its
        version after}``: the row's version where the summary was stored, another where it was refused."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Cardinality, P, T

        rows_in = [{"k": {T.id: vid}, "v": _typed(v), "s": text} for vid, v, text in rows]
        now = (
            g.inject(rows_in)
            .unfold()
            .as_("r")
            .merge_v(__.select("r").select("k"))
            .as_("x")
            .side_effect(
                __.where("x", P.eq("r"))
                .by(__.values(SUMMARY_VERSION).limit(1))  # two creators at once on JanusGraph can leave two
                .by("v")
                # the version written again, unchanged: on an engine that locks it (JanusGraph, declared
                # LOCK), a new version from another writer between this read and the commit then conflicts
                # and one retries
                .property(Cardinality.single, SUMMARY_VERSION, __.select("r").select("v"))
                .property(Cardinality.single, SUMMARY, __.select("r").select("s"))
            )
            .project("id", "v")
            .by(__.id_())
            .by(__.coalesce(__.values(SUMMARY_VERSION).limit(1), __.constant(_typed(0))))
            .to_list()
        )
        return {str(r["id"]): int(r["v"]) for r in now}

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
                if new is not None and advance.properties:
                    new = new.with_properties(dict(advance.properties))
            if new is not None:
                rows.append((vid, advance.version, new.to_json()))
        with self._lock:
            self.summary_refreshes["not_advanceable"] += len(pending) - len(rows)
        return rows

    def _rebuild_summaries(self, progress: bool = False) -> dict[str, int]:
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
                self._refresh_summaries(customer_ids=chunk)
                bar.update(len(chunk))
            for chunk in chunked(identifiers, step):
                self._refresh_summaries(identifiers=chunk)
                bar.update(len(chunk))
        return {"customers": len(customers), "identifiers": len(identifiers)}
