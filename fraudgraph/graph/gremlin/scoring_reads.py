"""The scoring inputs read from the Gremlin store as of a time: customers, links, identifier links and
statistics, link summaries. Each comes from the vertices' summaries where they are visible at as-of, and
is aggregated on the server for the rest (a hub's edges never cross the wire)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ...schema import EDGE_LABEL_BY_KIND, LINK_COUNT_PROPERTIES
from ...timeutil import as_of_or_end
from ..elements import (
    IDENTIFIER_STATS_COLUMNS,
    LINK_FRAME_COLUMNS,
    LINK_SUMMARY_COLUMNS,
    customer_vertex_id,
    identifier_id,
)
from ..link_summaries import link_row
from .session import GremlinClient
from .summaries import SummaryCache
from .traversals import (
    CUSTOMER_PREFIX,
    flatten_value_map,
    link_edge_id,
    link_parts,
    link_record,
    max_or,
    min_or,
    projected_links,
    sum_or,
    typed,
)


class GremlinScoringReader:
    """The frames batch and online scoring build their inputs from, read through ``client`` from the
    vertices' summaries where they are visible at as-of."""

    def __init__(self, client: GremlinClient, summaries: SummaryCache):
        self.client, self.summaries, self.memo = client, summaries, summaries.memo

    def scoring_customers(
        self,
        customer_ids: Sequence[str],
        properties: Sequence[str],
        summary_ids: Sequence[str],
        as_of_ms: int | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Both frames from one read of the customers' summaries."""
        summaries = self.summaries.read([customer_vertex_id(c) for c in sorted(set(customer_ids) | set(summary_ids))])
        return (
            self.customers_of(customer_ids, properties, _summaries=summaries),
            self.link_summary(summary_ids, as_of_ms, _summaries=summaries),
        )

    def customers_of(
        self, customer_ids: Sequence[str], properties: Sequence[str] | None = None, *, _summaries: dict | None = None
    ) -> pd.DataFrame:
        """Chosen properties that summaries keep come from the summaries (one string per customer); a
        summary written before one of them joined ``summary_properties`` is passed over for the vertex."""
        from gremlin_python.process.traversal import T

        ids = [customer_vertex_id(c) for c in sorted(set(customer_ids))]
        names = list(dict.fromkeys(properties)) if properties is not None else []
        records = []
        if properties is not None and set(names) <= self.summaries.summary_properties:
            summaries = self.summaries.read(ids) if _summaries is None else _summaries
            answered = {vid for vid in ids if vid in summaries and summaries[vid].answers_for(names)}
            records = [
                {"customer_id": vid[len(CUSTOMER_PREFIX) :], **summaries[vid].properties}
                for vid in ids
                if vid in answered
            ]
            ids = [vid for vid in ids if vid not in answered]
        rows = self.client.run("customers_of", lambda g: g.V(*ids).value_map(True, *names).to_list()) if ids else []
        records += [{"customer_id": str(r[T.id])[len(CUSTOMER_PREFIX) :], **flatten_value_map(r)} for r in rows]
        columns = ["customer_id", *names] if properties is not None else (None if records else ["customer_id"])
        frame = pd.DataFrame.from_records(records, columns=columns)
        return frame.sort_values("customer_id").reset_index(drop=True) if records else frame

    def customer_links(self, customer_ids: Sequence[str]) -> pd.DataFrame:
        """Every link of these customers (inside a sole writer's block, those it knows are not asked)."""

        ids = [customer_vertex_id(c) for c in sorted(set(customer_ids))]
        parts = self.memo.customers_links(
            ids, lambda vids: self.client.run("links_of", lambda g: projected_links(g.V(*vids).out_e()).to_list())
        )
        return self._links_frame(parts)

    def links_by_edge_id(self, keys: Sequence[tuple[str, str, str]]) -> pd.DataFrame:
        """The ``(customer_id, kind, value_hash)`` links asked, read by edge id (only where the store names
        edges itself, ``edge_ids: supplied``): a customer's other links stay on the server."""
        ids = sorted({link_edge_id(c, k, h) for c, k, h in keys})
        rows = self.client.read_chunks("links_of", lambda g, chunk: projected_links(g.E(*chunk)).to_list(), ids)
        return self._links_frame([link_parts(r) for r in rows])

    def _links_frame(self, parts: Sequence[tuple[str, str, dict[str, int]]]) -> pd.DataFrame:
        """``(customer vertex id, identifier vertex id, properties)`` links as a ``links`` frame, sorted by
        customer, kind and value hash."""
        frame = pd.DataFrame.from_records([link_record(p) for p in parts], columns=LINK_FRAME_COLUMNS)
        return frame.sort_values(["customer_id", "kind", "value_hash"]).reset_index(drop=True)

    def identifier_inputs(
        self, identifiers: Sequence[tuple[str, str]], limit: int, as_of_ms: int | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Both frames from one read of the identifiers' summaries."""
        summaries = self.summaries.read([identifier_id(k, h) for k, h in sorted(set(identifiers))])
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
        summaries = self.summaries.read(list(wanted)) if _summaries is None else _summaries
        for vid in wanted:
            summary = summaries.get(vid)
            if summary is not None and summary.visible(as_of_ms) and summary.covers(limit):
                kind, value_hash = wanted[vid]
                records += [(f[0], kind, value_hash, *f[1:]) for f in summary.lowest[:limit]]
            else:
                missing.append(vid)
        as_of = typed(as_of_or_end(as_of_ms))
        rows = self.client.read_chunks(
            "identifier_links",
            lambda g, chunk: projected_links(
                g.V(*chunk).local(
                    __.in_e().has("first_seen", P.lte(as_of)).order().by(__.out_v().id_()).limit(int(limit))
                )
            ).to_list(),
            missing,
        )
        for r in rows:
            link = link_record(r)
            records.append((*(link[k] for k in LINK_FRAME_COLUMNS[:3]), *link_row(link)))
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
        summaries = self.summaries.read(list(wanted)) if _summaries is None else _summaries
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
        limit = typed(as_of_or_end(as_of_ms))

        def visible():
            return __.in_e().has("first_seen", P.lte(limit))

        rows = self.client.read_chunks(
            "identifier_stats",
            lambda g, chunk: (
                g.V(*chunk)
                .project("label", "value_hash", "n", "fmin", "fmax", "events")
                .by(__.label())
                .by(__.values("value_hash"))
                .by(visible().count())
                .by(min_or(visible().values("first_seen"), -1))
                .by(max_or(visible().values("first_seen"), -1))
                .by(sum_or(visible().values("event_count")))
                .to_list()
            ),
            missing,
        )
        out += [
            (r["label"], r["value_hash"], int(r["n"]), int(r["fmin"]), int(r["fmax"]), int(r["events"])) for r in rows
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
        summaries = self.summaries.read(ids) if _summaries is None else _summaries
        for vid in ids:
            summary = summaries.get(vid)
            if summary is not None and summary.visible(as_of_ms):
                if summary.links:  # customers without links are left out
                    out.append((vid[len(CUSTOMER_PREFIX) :], *summary.row))
            else:
                missing.append(vid)
        limit = typed(as_of_or_end(as_of_ms))

        def visible():
            return __.out_e().has("first_seen", P.lte(limit))

        keys = [
            "id",
            "n",
            "first_link",
            *(f"identifiers_{k}" for k in EDGE_LABEL_BY_KIND),
            "events",
            *LINK_COUNT_PROPERTIES.values(),
        ]

        def query(g, chunk):
            t = (
                g.V(*chunk)
                .project(*keys)
                .by(__.id_())
                .by(visible().count())
                .by(min_or(visible().values("first_seen"), -1))
            )
            for label in EDGE_LABEL_BY_KIND.values():
                t = t.by(visible().has_label(label).count())
            t = t.by(sum_or(visible().values("event_count")))
            for prop in LINK_COUNT_PROPERTIES.values():
                t = t.by(sum_or(visible().values(prop)))
            return t.to_list()

        out += [
            (str(r["id"])[len(CUSTOMER_PREFIX) :], *(int(r[k]) for k in keys[2:]))
            for r in self.client.read_chunks("link_summary", query, missing)
            if int(r["n"])
        ]
        out.sort()
        return pd.DataFrame(out, columns=LINK_SUMMARY_COLUMNS)
