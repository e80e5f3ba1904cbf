"""Reads of the Gremlin store: one customer, neighbourhoods, graph metadata and whole-graph exports."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from ...schema import CUSTOMER, EDGE_LABEL_BY_KIND, KIND_BY_EDGE_LABEL, LINK_COUNT_PROPERTIES
from ..elements import LinkedIdentifier, Neighbourhood, SharedIdentifier, customer_vertex_id, empty_stats
from .session import GremlinClient
from .summaries import SummaryCache
from .traversals import (
    CUSTOMER_PREFIX,
    GRAPH_META_ID,
    GRAPH_META_LABEL,
    flatten_value_map,
    link_props,
    link_record,
    projected_links,
    typed,
)

if TYPE_CHECKING:
    from ..elements import PropertyValue


class GremlinReader:
    """What the API and the exports read through ``client``; neighbourhoods use identifier summaries where
    they cover the cap, and inside a sole writer's block the customers' links it already knows."""

    def __init__(self, client: GremlinClient, summaries: SummaryCache, fanout_cap: int):
        self.client, self.summaries, self.memo = client, summaries, summaries.memo
        self.fanout_cap = fanout_cap

    def identity(self, customer_id: str) -> list[LinkedIdentifier]:
        from gremlin_python.process.graph_traversal import __

        rows = self.client.run(
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
            LinkedIdentifier(KIND_BY_EDGE_LABEL[r["label"]], r["value_hash"], link_props(r["props"]), int(r["degree"]))
            for r in rows
        ]
        return sorted(out, key=lambda x: (x.kind, x.value_hash))

    def neighbourhoods(self, customer_ids: Sequence[str], fanout_cap: int | None = None) -> dict[str, Neighbourhood]:
        """The centres' links in one request (inside a sole writer's block, those not already known), then
        their identifiers' summaries (degree and lowest-id customers; counted and ordered on the server
        only for identifiers without one, or when the cap is above what summaries keep)."""
        cap = self.fanout_cap if fanout_cap is None else fanout_cap
        ids = list(dict.fromkeys(customer_ids))
        centres = [customer_vertex_id(c) for c in ids]
        rows = self.memo.customers_links(
            centres,
            lambda vids: self.client.read_chunks(
                "neighbourhood", lambda g, chunk: projected_links(g.V(*chunk).out_e()).to_list(), vids
            ),
        )
        first = self._lowest_customers(sorted({ident for _, ident, _ in rows}), cap + 1)
        found: dict[str, list[SharedIdentifier]] = {cid: [] for cid in ids}
        for customer, ident, props in rows:
            centre = customer[len(CUSTOMER_PREFIX) :]
            degree, customers = first[ident]
            others = tuple([c for c in customers if c != centre][:cap])
            kind, value_hash = ident.split(":", 1)
            found[centre].append(SharedIdentifier(kind, value_hash, degree, others, props))
        return {cid: Neighbourhood(cid, tuple(sorted(found[cid], key=lambda x: (x.kind, x.value_hash)))) for cid in ids}

    def _lowest_customers(self, ident_vids: Sequence[str], limit: int) -> dict[str, tuple[int, list[str]]]:
        """``{identifier vertex id: (degree, its ``limit`` lowest customer ids)}``."""
        from gremlin_python.process.graph_traversal import __

        out = {}
        missing = []
        summaries = self.summaries.read(ident_vids)
        for vid in ident_vids:
            summary = summaries.get(vid)
            if summary is not None and summary.covers(limit):
                out[vid] = (summary.customers, [f[0] for f in summary.lowest[:limit]])
            else:
                missing.append(vid)
        rows = self.client.read_chunks(
            "lowest_customers",
            lambda g, chunk: (
                g.V(*chunk)
                .project("id", "degree", "customers")
                .by(__.id_())
                .by(__.in_e().count())
                .by(__.in_().id_().order().limit(limit).fold())
                .to_list()
            ),
            missing,
        )
        for r in rows:
            out[str(r["id"])] = (int(r["degree"]), [str(c)[len(CUSTOMER_PREFIX) :] for c in r["customers"]])
        return out

    def _meta(self, key: str, default: str) -> str:
        """A property of the one ``graph_meta`` vertex, set to ``default`` by the first process that asks."""
        from gremlin_python.process.graph_traversal import __
        from gremlin_python.process.traversal import Cardinality, T

        def read(g):
            return g.V(GRAPH_META_ID).values(key).to_list()

        found = self.client.run("graph meta", read)
        if not found:
            with contextlib.suppress(Exception):  # another process wrote it first: read theirs
                self.client.run(
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
            found = self.client.run("graph meta", read)
        return str(found[0])

    def bind_key_fingerprint(self, fingerprint: str) -> str:
        """The PII key fingerprint the graph is bound to (``fingerprint`` if it was bound to none)."""
        return self._meta("pii_key_fingerprint", fingerprint)

    def graph_id(self) -> str:
        """This graph's identity, kept on one ``graph_meta`` vertex (made by the first process that asks)."""
        import uuid

        return self._meta("graph_id", uuid.uuid4().hex)

    def stats(self) -> dict[str, dict[str, int]]:
        from gremlin_python.process.graph_traversal import __

        def count(g):
            return (g.V().group_count().by(__.label()).next(), g.E().group_count().by(__.label()).next())

        vertices, edges = self.client.run("stats", count)
        stats = empty_stats()
        for label, n in vertices.items():
            if label != GRAPH_META_LABEL:
                stats["vertices"][label] = int(n)
        for label, n in edges.items():
            stats["edges"][label] = int(n)
        return stats

    def customers_with(self, prop: str, value: PropertyValue) -> pd.DataFrame:
        from gremlin_python.process.traversal import T

        rows = self.client.run(
            "customers_with", lambda g: g.V().has(CUSTOMER, prop, typed(value)).value_map(True).to_list()
        )
        records = [{"customer_id": str(r[T.id])[len(CUSTOMER_PREFIX) :], **flatten_value_map(r)} for r in rows]
        frame = pd.DataFrame.from_records(records, columns=None if records else ["customer_id"])
        return frame.sort_values("customer_id").reset_index(drop=True) if records else frame

    def customers_frame(self) -> pd.DataFrame:
        from gremlin_python.process.traversal import T

        rows = self.client.run("export customers", lambda g: g.V().has_label(CUSTOMER).value_map(True).to_list())
        records = []
        for r in rows:
            rec = {"customer_id": str(r[T.id])[len(CUSTOMER_PREFIX) :]}
            rec.update(flatten_value_map(r))
            records.append(rec)
        return pd.DataFrame.from_records(records, columns=None if records else ["customer_id"])

    def links_frame(self) -> pd.DataFrame:

        rows = self.client.run(
            "export links",
            lambda g: projected_links(g.E().has_label(*EDGE_LABEL_BY_KIND.values())).to_list(),
        )
        records = [link_record(r) for r in rows]
        cols = ["customer_id", "kind", "value_hash", "first_seen", "last_seen", "event_count"]
        frame = pd.DataFrame.from_records(records, columns=None if records else cols)
        for col in LINK_COUNT_PROPERTIES.values():
            if col in frame:
                frame[col] = frame[col].fillna(0).astype("int64")
        return frame
