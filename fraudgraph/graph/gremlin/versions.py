"""The versions of the Gremlin store's link summaries and their compare-and-set: a summary is stored only
at the version its writer's own invalidation left, so concurrent writers never leave an older one behind
(the protocol is in :mod:`fraudgraph.graph.gremlin`)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..link_summaries import LinkChange
from .traversals import SUMMARY, SUMMARY_VERSION, typed


def new_version(aggregation: bool = False) -> int:
    """A vertex's next summary version: a random token, not a counter. Two writers that change one vertex
    at once on an engine that does not serialise them (JanusGraph makes a vertex created by two writers at
    once without locking it) still leave versions that differ, so at most one compare-and-set succeeds.
    An aggregation's tokens are odd, every other one even: a writer refused by an aggregation knows that
    aggregation reads its links (see :meth:`fraudgraph.graph.gremlin.summaries.SummaryCache.refresh`)."""
    return secrets.randbits(61) * 2 + (1 if aggregation else 2)


@dataclass(frozen=True)
class Advance:
    """What a refresh needs to advance a vertex's summary rather than aggregate its links: the version
    this writer's invalidation left, the summary it dropped (or the empty one of a new vertex), and the
    links and customer properties its write changed."""

    version: int
    summary: str
    changes: tuple[LinkChange, ...]
    properties: tuple[tuple[str, Any], ...] = ()  # a customer's properties written (None: removed)


def stored_summaries(g: Any, rows: Sequence[tuple[str, int, str]]) -> dict[str, str | None]:
    """:func:`compare_and_set` of ``(vertex id, version, summary)`` rows: ``{vertex id: summary}`` of
    those stored, None for those refused because another writer invalidated the vertex since (it may
    advance a summary that lacks this writer's links: this writer aggregates again). One refused
    because another writer aggregated since is left out: that aggregation read this writer's links,
    and its writer keeps at it until it stores or is refused by yet another aggregation."""
    now = compare_and_set(g, rows)
    out: dict[str, str | None] = {}
    for vid, v, text in rows:
        version = now.get(str(vid))
        if version == v:
            out[str(vid)] = text
        elif version is not None and version % 2 == 0:
            out[str(vid)] = None
    return out


def compare_and_set(g: Any, rows: Sequence[tuple[str, int, str]]) -> dict[str, int]:
    """Store each ``(vertex id, version, summary)`` only if the vertex's version is still that one: a
    summary read or advanced at an older version than the vertex's is dropped. ``{vertex id: its
    version after}``: the row's version where the summary was stored, another where it was refused."""
    from gremlin_python.process.graph_traversal import __
    from gremlin_python.process.traversal import Cardinality, P, T

    rows_in = [{"k": {T.id: vid}, "v": typed(v), "s": text} for vid, v, text in rows]
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
        .by(__.coalesce(__.values(SUMMARY_VERSION).limit(1), __.constant(typed(0))))
        .to_list()
    )
    return {str(r["id"]): int(r["v"]) for r in now}


def invalidate_chunk(
    g: Any, chunk: Sequence[Mapping[str, Any]], keep_dropped: bool
) -> tuple[int, list[dict[str, Any]]]:
    """One request: merge the chunk's vertex rows (created if absent), give each a new version and drop its
    summary. Returns the version and, with ``keep_dropped``, each vertex's ``{"id", "v", "s"}`` before the
    new version (``v`` the new one for a vertex this merge made)."""
    from gremlin_python.process.graph_traversal import __
    from gremlin_python.process.traversal import Cardinality, CardinalityValue, Merge, Scope

    # before the new version: the version it had (the new one: made by this merge) and its summary
    state = (
        __.project("id", "v", "s")
        .by(__.id_())
        .by(__.coalesce(__.values(SUMMARY_VERSION), __.constant(typed(0))))
        .by(__.coalesce(__.values(SUMMARY), __.constant("")))
        .aggregate(Scope.local, "dropped")
    )
    version = typed(new_version())
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
            __.select("r").merge_v(__.select("k")).option(Merge.on_match, __.coalesce(__.select("a"), __.constant({})))
        )
    if not keep_dropped:
        bumped.iterate()
        return version, []
    return version, bumped.cap("dropped").next()
