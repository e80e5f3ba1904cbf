"""The link summaries the Gremlin server aggregates from a vertex's links: what a refresh stores when it cannot
advance the summary a write dropped, stored with the compare-and-set of :mod:`fraudgraph.graph.gremlin.versions`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...schema import EDGE_LABEL_BY_KIND
from ..link_summaries import LINK_ROW, CustomerLinkSummary, IdentifierLinkSummary, link_row
from .traversals import (
    CUSTOMER_PREFIX,
    SUMMARY_VERSION,
    flatten_value_map,
    format_template,
    link_parts,
    max_or,
    min_or,
    projected_links,
    sum_or,
    typed,
)
from .versions import new_version


def customer_summary_rows(g: Any, chunk: Sequence[str], kept: Sequence[str]) -> list[tuple[str, int, str]]:
    """``(vertex id, version, summary)`` of these customers, their links aggregated on the server under a new
    (aggregation's) version; the properties in ``kept`` go into the summary."""
    from gremlin_python.process.graph_traversal import __
    from gremlin_python.process.traversal import Cardinality

    keys = ["first", *EDGE_LABEL_BY_KIND.values(), *LINK_ROW[2:]]  # LINK_SUMMARY_COLUMNS[1:]
    # the aggregates come as one string, formatted on the server (a map of them costs gremlinpython
    # far more to decode); every one has a default, so format() never drops a customer
    aggregates = (
        __.project("n", "fmax", *keys)
        .by(__.out_e().count())
        .by(max_or(__.out_e().values("first_seen"), -1))
        .by(min_or(__.out_e().values("first_seen"), -1))
    )
    for label in EDGE_LABEL_BY_KIND.values():
        aggregates = aggregates.by(__.out_e().has_label(label).count())
    for prop in LINK_ROW[2:]:
        aggregates = aggregates.by(sum_or(__.out_e().values(prop)))
    rows = (
        g.V(*chunk)
        .property(Cardinality.single, SUMMARY_VERSION, typed(new_version(aggregation=True)))
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
        summary = CustomerLinkSummary(r["id"], n, fmax, tuple(values), flatten_value_map(r["p"]), tuple(kept))
        summaries.append((r["id"], r["v"], summary.to_json()))
    return summaries


def identifier_summary_rows(g: Any, chunk: Sequence[str], cap: int) -> list[tuple[str, int, str]]:
    """``(vertex id, version, summary)`` of these identifiers, their links aggregated on the server under a
    new (aggregation's) version, with the ``cap`` lowest-id customers' links."""
    from gremlin_python.process.graph_traversal import __
    from gremlin_python.process.traversal import Cardinality

    rows = (
        g.V(*chunk)
        .property(Cardinality.single, SUMMARY_VERSION, typed(new_version(aggregation=True)))
        .project("id", "v", "n", "fmin", "fmax", "events", "first")
        .by(__.id_())
        .by(__.values(SUMMARY_VERSION))
        .by(__.in_e().count())
        .by(min_or(__.in_e().values("first_seen"), -1))
        .by(max_or(__.in_e().values("first_seen"), -1))
        .by(sum_or(__.in_e().values("event_count")))
        .by(projected_links(__.in_e().order().by(__.out_v().id_()).limit(cap)).fold())
        .to_list()
    )
    return [
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
                    (customer[len(CUSTOMER_PREFIX) :], *link_row(props))
                    for customer, _, props in map(link_parts, r["first"])
                ),
            ).to_json(),
        )
        for r in rows
    ]
