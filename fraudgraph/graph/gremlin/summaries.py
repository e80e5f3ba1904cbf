"""Link summaries on the Gremlin store: invalidated before a write, refreshed after it with a
version compare-and-set (the protocol is in :mod:`fraudgraph.graph.gremlin`)."""

from __future__ import annotations

from collections.abc import Sequence

from ...schema import CUSTOMER, EDGE_LABEL_BY_KIND
from ..elements import chunked, customer_vertex_id, identifier_id
from ..link_summaries import CustomerLinkSummary, IdentifierLinkSummary
from .session import (
    _CUSTOMER_PREFIX,
    _LINK_PROPS,
    SUMMARY,
    SUMMARY_VERSION,
    GremlinSession,
    _max_or,
    _min_or,
    _sum_or,
    _typed,
)


class GremlinSummaries(GremlinSession):
    """Keeps every vertex's ``link_summary`` current."""

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

    # Over 60 lines for a reason: the two requests of the summary protocol (bump and aggregate, then
    # compare-and-set) for customers and identifiers, written out as traversals beside each other so the
    # compare-and-set reads as one.
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
            for prop in _LINK_PROPS[2:]:
                aggregates = aggregates.by(_sum_or(__.out_e().values(prop)))
            rows = (
                g.V(*chunk)
                .property(Cardinality.single, SUMMARY_VERSION, bump())
                .project("id", "v", "p", "a")
                .by(__.id_())
                .by(__.values(SUMMARY_VERSION))
                .by(__.value_map(*kept))
                .by(aggregates.format_(",".join(f"%{{{k}}}" for k in ("n", "fmax", *keys))))
                .to_list()
            )
            summaries = []
            for r in rows:
                n, fmax, *values = map(int, r["a"].split(","))
                summary = CustomerLinkSummary(r["id"], n, fmax, tuple(values), self._flatten(r["p"]), tuple(kept))
                summaries.append((r["id"], r["v"], summary.to_json()))
            store(g, summaries)

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
                                (customer[len(_CUSTOMER_PREFIX) :], *(props.get(k, 0) for k in _LINK_PROPS))
                                for customer, _, props in map(self._link_parts, r["first"])
                            ),
                        ).to_json(),
                    )
                    for r in rows
                ],
            )

        customers = [customer_vertex_id(c) for c in dict.fromkeys(customer_ids)]
        idents = [identifier_id(k, h) for k, h in dict.fromkeys(identifiers)]
        # every chunk on its own: up to pool_size in flight, so one chunk's decoding and summary
        # encoding here overlaps the next one's aggregation on the server
        tasks = [
            (f"refresh_summaries.{what}", lambda g, chunk=chunk, fn=fn: fn(g, chunk))
            for what, fn, ids, size in (
                ("customers", refresh_customers, customers, self.batch_size),
                ("identifiers", refresh_identifiers, idents, max(1, self.batch_size // 5)),
            )
            for chunk in chunked(ids, size)
        ]
        self._run_concurrently(tasks)

    def rebuild_summaries(self, progress: bool = False) -> dict[str, int]:
        from tqdm import tqdm

        from ...schema import IDENTIFIER_KINDS

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
