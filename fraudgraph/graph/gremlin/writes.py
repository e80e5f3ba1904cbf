"""Batched, idempotent upserts of customers and links on the Gremlin store."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from ...schema import CUSTOMER
from ..elements import (
    CustomerUpsert,
    IdentityLink,
    check_link_customers,
    customer_vertex_id,
    identifier_id,
    validate_customers,
    validate_links,
)
from ..link_summaries import LINK_ROW, LinkChange, link_row, merged_link
from .session import GremlinClient
from .summaries import SummaryCache
from .traversals import CUSTOMER_PREFIX, link_edge_id, single_valued, typed, typed_map


class GremlinWriter:
    """``mergeV``/``mergeE`` over injected lists of maps through ``client``, with the summaries of every
    touched vertex invalidated before and refreshed after by ``summaries``. ``read_links(keys)``: the
    store's read of these links' current values (a ``links`` frame)."""

    def __init__(
        self,
        client: GremlinClient,
        summaries: SummaryCache,
        read_links: Callable[[Sequence[tuple[str, str, str]]], pd.DataFrame],
    ):
        self.client, self.summaries, self.memo = client, summaries, summaries.memo
        self.read_links = read_links

    def upsert_customers(self, customers: Sequence[CustomerUpsert], *, refresh: bool = True) -> int:
        """Merge customer properties; customers whose ``summary_properties`` change get their summaries
        invalidated first and refreshed after (unless not ``refresh``: a bulk load refreshes at its end)."""
        summaries = refresh
        customers = list(customers)
        validate_customers(customers)
        self.client.check_engine_ids((i, c.customer_id) for i, c in enumerate(customers))
        # customers whose summary properties change: merged, their summaries dropped and their values set in
        # one request each (a customer written twice: its values in the order given); removals after
        written = self._summary_writes(customers)
        rows = [
            self.summaries.vertex_row(vid, CUSTOMER, after=self._set_values(props)) for vid, props in written.items()
        ]
        types = {CUSTOMER, *(k for props in written.values() for k in props)}
        dropped = self.summaries.invalidate(rows, keep_dropped=summaries, types=types)
        self._merge_customers(
            "upsert_customers",
            [c for c in customers if customer_vertex_id(c.customer_id) not in written] + self._removals(written),
        )
        if summaries and written:
            self.summaries.note_advances(dropped, (), properties=written)
            self.summaries.refresh(customer_ids=[vid[len(CUSTOMER_PREFIX) :] for vid in written])
        return len(customers)

    def _summary_writes(self, customers: Sequence[CustomerUpsert]) -> dict[str, dict[str, Any]]:
        """``{customer vertex id: every property written}`` of the customers whose ``summary_properties``
        (or any property's removal) these writes change, the values of one customer's writes merged in
        the order given."""
        out: dict[str, dict[str, Any]] = {}
        for c in customers:
            if self.summaries.summary_properties & c.properties.keys() or None in c.properties.values():
                out.setdefault(customer_vertex_id(c.customer_id), {})
        for c in customers:
            vid = customer_vertex_id(c.customer_id)
            if vid in out:
                out[vid].update(c.properties)
        return out

    @staticmethod
    def _set_values(props: Mapping[str, Any]) -> dict[str, Any]:
        """The values these properties are set to (None removes one: left out)."""
        return {k: v for k, v in props.items() if v is not None}

    @staticmethod
    def _removals(written: Mapping[str, Mapping[str, Any]]) -> list[CustomerUpsert]:
        """The property removals (None values) of :meth:`_summary_writes`, as customer upserts."""
        return [
            CustomerUpsert(vid[len(CUSTOMER_PREFIX) :], {k: None for k, v in props.items() if v is None})
            for vid, props in written.items()
            if None in props.values()
        ]

    def _merge_customers(self, what: str, customers: Sequence[CustomerUpsert]) -> None:
        """Merge the customers' vertices with their properties; a None value removes the property."""
        from gremlin_python.process.traversal import T

        rows, drops = [], defaultdict(list)
        for c in customers:
            vid = customer_vertex_id(c.customer_id)
            props = {k: typed(v) for k, v in c.properties.items() if v is not None}
            removed = tuple(sorted(k for k, v in c.properties.items() if v is None))
            if removed:
                drops[removed].append(vid)
            rows.append({"k": {T.id: vid, T.label: CUSTOMER}, "p": single_valued(props)})
        types = {CUSTOMER, *(k for r in rows for k in r["p"])}
        self.client.write_chunks(what, self._merge_rows, rows, types=types)
        for keys, ids in drops.items():
            self.client.write_chunks(
                "remove_properties",
                lambda g, chunk, keys=keys: g.V(*chunk).properties(*keys).drop().iterate(),
                ids,
                types=(),  # a drop makes no type
            )

    @staticmethod
    def _merge_rows(g, rows: Sequence[dict]) -> None:
        """Rows ``{k: merge key, p: properties}``: each vertex merged, ``p`` set on create and on match."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Merge

        (
            g.inject(list(rows))
            .unfold()
            .as_("r")
            .merge_v(__.select("r").select("k"))
            .option(Merge.on_create, __.select("r").select("p"))
            .option(Merge.on_match, __.select("r").select("p"))
            .iterate()
        )

    def upsert_links(
        self, links: Sequence[IdentityLink], *, customers: Sequence[CustomerUpsert] = (), refresh: bool = True
    ) -> int:
        """Two phases (the endpoint vertices merged as their summaries are invalidated, then the edges),
        each chunked and concurrent, then the link summaries of every customer and identifier written
        (unless not ``refresh``: a bulk load refreshes at its end).

        ``customers``' properties are merged with their vertices; those of customers whose
        ``summary_properties`` change are set in the invalidation's request once the summary is dropped
        (so a write that stops half-way leaves no summary with their old values; removals go beside the
        edges), and their summaries are advanced by them and the links."""
        links = list(links)
        validate_links(links)
        check_link_customers(customers, links)
        self.client.check_engine_ids((i, v) for i, l in enumerate(links) for v in (l.customer_id, l.value_hash))
        written = self._summary_writes(customers)
        removals = self._removals(written)
        touched_customers = sorted({l.customer_id for l in links})
        touched_identifiers = sorted({(l.kind, l.value_hash) for l in links})
        vertex_rows, vertex_types = self._endpoint_rows(touched_customers, touched_identifiers, customers, written)
        labels = {l.edge_label for l in links}  # with the edges' property keys, the types an edge write makes
        keys = [(l.customer_id, l.kind, l.value_hash) for l in links]
        # inside sole_writer no other writer changes these links, so they can be read before the
        # invalidation, from what the block knows
        summaries = refresh
        before = self.read_links(keys) if summaries and self.memo.links is not None else None
        dropped = self.summaries.invalidate(vertex_rows, keep_dropped=summaries, types=vertex_types)
        if not summaries:  # a bulk load: every summary is aggregated afresh at its end
            self.memo.forget_links([customer_vertex_id(c) for c in touched_customers])  # merged on the server
            rows = [self._bulk_edge_row(l) for l in links]
            edge_types = {*labels, "first_seen", "last_seen", *(k for r in rows for k in r["m"])}
            self.client.phases_concurrently(
                lambda: self.client.write_chunks("upsert_links.edges", merge_edges_on_server, rows, types=edge_types),
                lambda: self._merge_customers("upsert_links.customer_properties", removals),
            )
            return len(links)
        # the links' values just before the write (after the invalidation, so they are the values the
        # dropped summaries were made of; inside sole_writer, what this thread read or wrote, which no
        # other writer changes): what the merge leaves, and what the refresh advances them by
        if before is None:
            before = self.read_links(keys)
        # out of sole_writer's known links until the write is done: a failed write leaves them unknown
        known = self.memo.forget_links([customer_vertex_id(c) for c in touched_customers])
        changes, exact = link_changes(links, before)
        rows = [self._edge_row(l, c, exact) for l, c in zip(links, changes)]
        self.client.phases_concurrently(
            lambda: self.client.write_chunks(
                "upsert_links.edges", merge_edges_as_given, rows, types={*labels, *LINK_ROW}
            ),
            lambda: self._merge_customers("upsert_links.customer_properties", removals),
        )
        for c in changes:
            customer = known.get(customer_vertex_id(c.customer_id))
            if customer is not None:
                customer[identifier_id(c.kind, c.value_hash)] = dict(zip(LINK_ROW, c.after))
        self.memo.note_links(known)
        self.summaries.note_advances(dropped, changes, exact=exact, properties=written)
        self.summaries.refresh(touched_customers, touched_identifiers)
        return len(links)

    def _endpoint_rows(
        self,
        customer_ids: Sequence[str],
        identifiers: Sequence[tuple[str, str]],
        customers: Sequence[CustomerUpsert],
        written: Mapping[str, Mapping[str, Any]],
    ) -> tuple[list[dict[str, Any]], set[str]]:
        """The links' endpoint vertices as :meth:`SummaryCache.vertex_row` rows for the invalidation that merges them (a
        vertex it creates has no summary to drop), and the labels and property keys they write. Properties
        no summary keeps go with the merge; ``written`` (kept ones) once the summary is dropped."""
        early = {
            c.customer_id: typed_map(c.properties)
            for c in customers
            if customer_vertex_id(c.customer_id) not in written and c.properties
        }
        rows = []
        for cid in customer_ids:
            vid = customer_vertex_id(cid)
            props = early.get(cid)
            rows.append(self.summaries.vertex_row(vid, CUSTOMER, props, props, self._set_values(written.get(vid, {}))))
        rows += [self.summaries.vertex_row(identifier_id(k, h), k, {"value_hash": h}) for k, h in identifiers]
        types = {CUSTOMER, "value_hash", *(k for k, _ in identifiers)}
        types |= {k for p in [*early.values(), *written.values()] for k in p}
        return rows, types

    def _merge_key(self, l: IdentityLink) -> dict[Any, Any]:
        """What ``mergeE`` finds a link's edge by: label and endpoints, and its id where the writer names
        edges (JanusGraph makes its own edge ids: merged on label and endpoints)."""
        from gremlin_python.process.traversal import Direction, T

        key: dict[Any, Any] = {
            T.label: l.edge_label,
            Direction.OUT: customer_vertex_id(l.customer_id),
            Direction.IN: identifier_id(l.kind, l.value_hash),
        }
        if self.client.edge_ids == "supplied":
            key[T.id] = link_edge_id(l.customer_id, l.kind, l.value_hash)
        return key

    def _bulk_edge_row(self, l: IdentityLink) -> dict[str, Any]:
        """A :func:`merge_edges_on_server` row: the counts, and first and last seen to merge on the server."""
        props = typed_map(l.properties())
        counts = {k: v for k, v in props.items() if k not in ("first_seen", "last_seen")}
        return {"k": self._merge_key(l), "m": counts, "fs": props["first_seen"], "ls": props["last_seen"]}

    def _edge_row(self, l: IdentityLink, change: LinkChange, exact: bool) -> dict[str, Any]:
        """A :func:`merge_edges_as_given` row: every value the merge leaves on create, the ones that change on
        match (none for a new link; all of them where duplicate edges must end alike)."""
        after = typed_map(dict(zip(LINK_ROW, change.after)))
        if change.before is None:  # a new link (a retry that finds it made sets nothing more)
            changed = {}
        elif exact:
            changed = {k: v for k, v, was in zip(LINK_ROW, after.values(), change.before) if v != was}
        else:  # duplicate edges: each gets every value, so they end alike
            changed = after
        return {"k": self._merge_key(l), "p": after, "m": changed}

    def clear(self) -> None:
        """Drop every vertex and edge (tests and benchmarks only)."""
        self.client.run("clear", lambda g: g.V().drop().iterate())
        self.memo.clear()


def link_changes(links: Sequence[IdentityLink], before: pd.DataFrame) -> tuple[list[LinkChange], bool]:
    """Each link's change from its value ``before`` the write (a ``links`` frame of the same keys) to what
    the merge leaves, and whether every existing link is one edge (no duplicates, which concurrent creators
    can leave on JanusGraph: those are merged as one here)."""
    prior: dict[tuple[str, str, str], tuple[int, ...]] = {}
    for r in before[["customer_id", "kind", "value_hash", *LINK_ROW]].itertuples(index=False):
        values = tuple(int(v) for v in r[3:])
        seen = prior.get((r[0], r[1], r[2]))
        if seen is not None:
            values = link_row(merged_link(dict(zip(LINK_ROW, values)), seen))
        prior[(r[0], r[1], r[2])] = values
    changes = []
    for l in links:
        key = (l.customer_id, l.kind, l.value_hash)
        changes.append(LinkChange(*key, prior.get(key), link_row(merged_link(l.properties(), prior.get(key)))))
    return changes, len(prior) == len(before)


def merge_edges_on_server(g: Any, chunk: Sequence[dict[str, Any]]) -> None:
    """Rows ``{k, m: counts, fs, ls}`` (a bulk load): the counts set on create and on match, first and last
    seen merged on the server (on a new edge there is nothing to merge with: they take the written values)."""
    from gremlin_python.process.graph_traversal import __
    from gremlin_python.process.traversal import Merge

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


def merge_edges_as_given(g: Any, chunk: Sequence[dict[str, Any]]) -> None:
    """Rows ``{k, p, m}``: the values the merge leaves, worked out from the links' values read just before,
    all of them set on create and only the ones that change on match (JanusGraph rewrites an edge for each
    property it sets). A retried chunk whose first try was applied matches and sets the same values."""
    from gremlin_python.process.graph_traversal import __
    from gremlin_python.process.traversal import Merge

    (
        g.inject(list(chunk))
        .unfold()
        .as_("r")
        .merge_e(__.select("r").select("k"))
        .option(Merge.on_create, __.select("r").select("p"))
        .option(Merge.on_match, __.select("r").select("m"))
        .iterate()
    )
