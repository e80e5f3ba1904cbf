"""Batched, idempotent upserts of customers and links on the Gremlin store."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ...schema import CUSTOMER
from ..elements import (
    CustomerUpsert,
    IdentityLink,
    customer_vertex_id,
    identifier_id,
    validate_customers,
    validate_links,
)
from ..link_summaries import LINK_ROW, LinkChange, link_row, merged_link
from .session import _single, _typed, _typed_map, link_edge_id
from .summaries import GremlinSummaries


class GremlinWrites(GremlinSummaries):
    """``mergeV``/``mergeE`` over injected lists of maps, with the summaries of every touched vertex
    invalidated before and refreshed after."""

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

    # Over 60 lines for a reason: three write phases (customer vertices, identifier vertices, edges), each with
    # its own traversal, then the summaries: the order the module docstring describes.
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

        def merge_key(l: IdentityLink) -> dict:
            key = {
                T.label: l.edge_label,
                Direction.OUT: customer_vertex_id(l.customer_id),
                Direction.IN: identifier_id(l.kind, l.value_hash),
            }
            if self.edge_ids == "supplied":  # JanusGraph makes its own edge ids: merge on label and endpoints
                key[T.id] = link_edge_id(l.customer_id, l.kind, l.value_hash)
            return key

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

        def write_merging(g, chunk):
            # rows {k, m: counts, fs, ls}: the counts set on create and on match, first and last seen merged
            # on the server (on a new edge there is nothing to merge with: they take the written values)
            (
                g.inject(list(chunk))
                .unfold()
                .as_("r")
                .merge_e(__.select("r").select("k"))
                .option(Merge.on_create, __.select("r").select("m"))
                .option(Merge.on_match, __.select("r").select("m"))
                .property("first_seen", __.union(__.values("first_seen"), __.select("r").select("fs")).min_())
                .property("last_seen", __.union(__.values("last_seen"), __.select("r").select("ls")).max_())
                .iterate()
            )

        def write_merged(g, chunk):
            # rows {k, p}: the values the merge leaves, worked out from the links' values read just before;
            # one map, set on create and on match alike (a retried chunk whose first try was applied
            # matches and sets the same values). JanusGraph copies an edge for each property step, so this
            # is about half the server time of write_merging there
            (
                g.inject(list(chunk))
                .unfold()
                .as_("r")
                .merge_e(__.select("r").select("k"))
                .option(Merge.on_create, __.select("r").select("p"))
                .option(Merge.on_match, __.select("r").select("p"))
                .iterate()
            )

        touched_customers = sorted({l.customer_id for l in links})
        touched_identifiers = sorted({(l.kind, l.value_hash) for l in links})
        # the endpoint vertices and the invalidation at once: a merge of an existing vertex changes nothing
        # the invalidation reads, and a vertex the merge creates has no summary to drop
        _, _, dropped = self._phases_concurrently(
            lambda: self._write_chunks("upsert_links.customers", write_customers, cust_rows),
            lambda: self._write_chunks("upsert_links.identifiers", write_identifiers, ident_rows),
            lambda: self._invalidate_summaries(
                [customer_vertex_id(c) for c in touched_customers]
                + [identifier_id(k, h) for k, h in touched_identifiers],
                keep_dropped=summaries,
            ),
        )
        if not summaries:  # a bulk load: every summary is aggregated afresh at its end
            rows = []
            for l in links:
                props = _typed_map(l.properties())
                counts = {k: v for k, v in props.items() if k not in ("first_seen", "last_seen")}
                rows.append({"k": merge_key(l), "m": counts, "fs": props["first_seen"], "ls": props["last_seen"]})
            self._write_chunks("upsert_links.edges", write_merging, rows)
            return len(links)
        # the links' values just before the write (after the invalidation, so they are the values the
        # dropped summaries were made of): what the merge leaves, and what the refresh advances them by
        before = self.existing_links([(l.customer_id, l.kind, l.value_hash) for l in links])
        prior: dict[tuple[str, str, str], tuple[int, ...]] = {}
        for r in before[["customer_id", "kind", "value_hash", *LINK_ROW]].itertuples(index=False):
            values = tuple(int(v) for v in r[3:])
            seen = prior.get((r[0], r[1], r[2]))
            if seen is not None:  # duplicate edges (concurrent creators on JanusGraph): merge them as one
                values = link_row(merged_link(dict(zip(LINK_ROW, values)), seen))
            prior[(r[0], r[1], r[2])] = values
        changes = []
        for l in links:
            key = (l.customer_id, l.kind, l.value_hash)
            changes.append(LinkChange(*key, prior.get(key), link_row(merged_link(l.properties(), prior.get(key)))))
        rows = [{"k": merge_key(l), "p": _typed_map(dict(zip(LINK_ROW, c.after)))} for l, c in zip(links, changes)]
        self._write_chunks("upsert_links.edges", write_merged, rows)
        self._note_advances(dropped, changes, exact=len(prior) == len(before))
        self.refresh_summaries(touched_customers, touched_identifiers)
        return len(links)

    def clear(self) -> None:
        """Drop every vertex and edge (tests and benchmarks only)."""
        self._run("clear", lambda g: g.V().drop().iterate())
