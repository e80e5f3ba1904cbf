"""The link summaries a Gremlin graph keeps on its vertices, as typed values with one codec.

Every customer and identifier vertex of a Gremlin graph carries ``link_summary``: a JSON string that
answers the online reads without scanning a hub's edges (see :mod:`fraudgraph.graph.gremlin`
for when it is written and the compare-and-set that keeps it exact). This module is the one place
that knows its layout. The stored keys stay short (one string per vertex, read on every score):

- customer: ``{"id", "n", "fmax", "row", "p", "pk"}``
- identifier: ``{"id", "n", "fmin", "fmax", "events", "first"}``

Times are epoch milliseconds; ``-1`` stands for "no link".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..schema import IDENTIFIER_KINDS
from .elements import LINK_FRAME_COLUMNS

# a link's values in an identifier summary's rows, after the customer id (the store's link-property order)
LINK_ROW = tuple(LINK_FRAME_COLUMNS[3:])
_FIRST_SEEN, _EVENTS = LINK_ROW.index("first_seen"), LINK_ROW.index("event_count")
_KIND_INDEX = {kind: i for i, kind in enumerate(IDENTIFIER_KINDS)}  # a customer row's links per kind


@dataclass(frozen=True)
class CustomerLinkSummary:
    """A customer vertex's summary.

    ``links``: its links (edges); ``latest_first_seen``: the latest first-seen time over them;
    ``row``: its link-summary row (the values of ``LINK_SUMMARY_COLUMNS[1:]``, in that order);
    ``properties``: the customer properties the store summarises (``summary_properties``), those the
    vertex has; ``kept``: the names it was written for. A summary written before a name joined
    ``summary_properties`` does not answer for that name (its absence would read as "never set").
    """

    vertex_id: str
    links: int
    latest_first_seen: int
    row: tuple[int, ...]
    properties: dict[str, Any]
    kept: tuple[str, ...] = ()

    @classmethod
    def empty(cls, vertex_id: str, properties: Mapping[str, Any], kept: Sequence[str]) -> CustomerLinkSummary:
        """The summary of a customer with no links: what aggregating its (no) links gives."""
        sums = len(LINK_ROW) - _EVENTS
        return cls(vertex_id, 0, -1, (-1, *(0,) * (len(IDENTIFIER_KINDS) + sums)), dict(properties), tuple(kept))

    def with_properties(self, written: Mapping[str, Any]) -> CustomerLinkSummary:
        """This summary after ``written`` was merged into the customer's properties (None removes one);
        names it was not written for are left out, as aggregating leaves them."""
        properties = dict(self.properties)
        for name, value in written.items():
            if name not in self.kept:
                continue
            if value is None:
                properties.pop(name, None)
            else:
                properties[name] = value
        return replace(self, properties=properties)

    def answers_for(self, names: Iterable[str]) -> bool:
        """Was it written for every one of these property names?"""
        return set(names) <= set(self.kept)

    def visible(self, as_of_ms: int | None) -> bool:
        """Is every link it covers first seen at or before ``as_of_ms`` (None: now)?"""
        return as_of_ms is None or self.latest_first_seen <= as_of_ms

    def advanced(self, changes: Sequence[LinkChange]) -> CustomerLinkSummary | None:
        """This summary after ``changes`` were written to the customer's links (its properties unchanged),
        or None where the summary alone cannot give it: a link changed twice, or an existing link's
        first-seen time moved while it may have been the latest."""
        n, latest = self.links, self.latest_first_seen
        first, *row = self.row  # earliest first-seen, links per kind, then the sums of LINK_ROW[_EVENTS:]
        sums = len(LINK_ROW) - _EVENTS
        kinds = len(row) - sums
        seen: set[tuple[str, str]] = set()
        for change in changes:
            key = (change.kind, change.value_hash)
            span = None if key in seen else _first_seen_range(n, first, latest, change.before, change.after)
            if span is None:
                return None
            seen.add(key)
            first, latest = span
            if change.before is None:  # a new link
                n += 1
                row[_KIND_INDEX[change.kind]] += 1
            was = (0,) * sums if change.before is None else change.before[_EVENTS:]
            for j, (old, new) in enumerate(zip(was, change.after[_EVENTS:])):
                row[kinds + j] += new - old
        return CustomerLinkSummary(self.vertex_id, n, latest, (first, *row), self.properties, self.kept)

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.vertex_id,
                "n": self.links,
                "fmax": self.latest_first_seen,
                "row": list(self.row),
                "p": self.properties,
                "pk": list(self.kept),
            },
            default=str,
        )


@dataclass(frozen=True)
class IdentifierLinkSummary:
    """An identifier vertex's summary.

    ``customers``: its degree; ``earliest_first_seen`` / ``latest_first_seen`` over its links;
    ``events``: the sum of its links' event counts; ``lowest``: its lowest-id customers (up to the
    fan-out cap plus one), each ``(customer_id, *link properties)`` in the store's link-property order.
    """

    vertex_id: str
    customers: int
    earliest_first_seen: int
    latest_first_seen: int
    events: int
    lowest: tuple[tuple[Any, ...], ...]

    @classmethod
    def empty(cls, vertex_id: str) -> IdentifierLinkSummary:
        """The summary of an identifier with no links: what aggregating its (no) links gives."""
        return cls(vertex_id, 0, -1, -1, 0, ())

    def visible(self, as_of_ms: int | None) -> bool:
        """Is every link it covers first seen at or before ``as_of_ms`` (None: now)?"""
        return as_of_ms is None or self.latest_first_seen <= as_of_ms

    def covers(self, limit: int) -> bool:
        """Does it hold the identifier's ``limit`` lowest-id customers?"""
        return len(self.lowest) >= limit or len(self.lowest) == self.customers

    def advanced(self, changes: Sequence[LinkChange], cap: int) -> IdentifierLinkSummary | None:
        """This summary after ``changes`` were written to the identifier's links, or None where the summary
        alone cannot give it (the caller aggregates the links instead).

        ``cap``: how many lowest-id customers the summary holds (the fan-out cap plus one). None when a link
        changes twice, when an existing link's first-seen time moves and it may have been the latest (the
        new latest is not in the summary), or when a change disagrees with the summary (a new link it
        already holds, an existing link that should be among the lowest and is not).
        """
        n, fmin, fmax, events = self.customers, self.earliest_first_seen, self.latest_first_seen, self.events
        lowest = {row[0]: tuple(row[1:]) for row in self.lowest}
        complete = len(self.lowest) == self.customers  # holds every link
        highest_held = max(lowest, key=customer_order) if lowest else None
        seen: set[str] = set()
        for change in changes:
            customer, before, after = change.customer_id, change.before, change.after
            if customer in seen:
                return None
            seen.add(customer)
            held = customer in lowest
            if before is None and held:
                return None
            if (before is not None and not held) and (
                complete or highest_held is None or customer_order(customer) < customer_order(highest_held)
            ):
                return None
            span = _first_seen_range(n, fmin, fmax, before, after)
            if span is None:
                return None
            fmin, fmax = span
            if before is None:  # a new link
                n += 1
            events += after[_EVENTS] - (0 if before is None else before[_EVENTS])
            if before is None or held:
                lowest[customer] = after
        kept = sorted(lowest, key=customer_order)[:cap]
        return IdentifierLinkSummary(self.vertex_id, n, fmin, fmax, events, tuple((c, *lowest[c]) for c in kept))

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.vertex_id,
                "n": self.customers,
                "fmin": self.earliest_first_seen,
                "fmax": self.latest_first_seen,
                "events": self.events,
                "first": [list(row) for row in self.lowest],
            }
        )


@dataclass(frozen=True)
class LinkChange:
    """One link as a write changed it: ``before`` and ``after`` are its values in :data:`LINK_ROW` order,
    ``before`` None for a link the write created."""

    customer_id: str
    kind: str
    value_hash: str
    before: tuple[int, ...] | None
    after: tuple[int, ...]


def merged_link(written: Mapping[str, int], before: tuple[int, ...] | None) -> dict[str, int]:
    """What writing a link leaves, given its values ``before`` (:data:`LINK_ROW` order; None: a new link):
    the written counts, the earlier first-seen and the later last-seen (the merge rule of
    :meth:`fraudgraph.graph.IdentityGraph.upsert_links`)."""
    after = dict(written)
    if before is not None:
        was = dict(zip(LINK_ROW, before))
        after["first_seen"] = min(was["first_seen"], after["first_seen"])
        after["last_seen"] = max(was["last_seen"], after["last_seen"])
    return after


def link_row(values: Mapping[str, Any]) -> tuple[int, ...]:
    """A link's values in :data:`LINK_ROW` order, 0 for one it lacks."""
    return tuple(int(values.get(k, 0)) for k in LINK_ROW)


def _first_seen_range(
    links: int, earliest: int, latest: int, before: tuple[int, ...] | None, after: tuple[int, ...]
) -> tuple[int, int] | None:
    """The earliest and latest first-seen over a vertex's links after one of them went from ``before`` (None:
    new) to ``after``, ``links`` being how many it had; None where that needs the links themselves: an
    existing link's first-seen moved while it may have been the latest (an edge merge only lowers it)."""
    first_seen = after[_FIRST_SEEN]
    if before is None:
        return (first_seen, first_seen) if links == 0 else (min(earliest, first_seen), max(latest, first_seen))
    if first_seen == before[_FIRST_SEEN]:
        return earliest, latest
    if first_seen > before[_FIRST_SEEN] or before[_FIRST_SEEN] >= latest:
        return None
    return min(earliest, first_seen), latest


def customer_order(customer_id: str) -> bytes:
    """The order of a summary's lowest-id customers: Gremlin servers compare ids as Java strings (UTF-16
    code units), which UTF-16 big-endian bytes reproduce (Python's own order differs above U+FFFF)."""
    return customer_id.encode("utf-16-be")


LinkSummary = CustomerLinkSummary | IdentifierLinkSummary


def decode_link_summary(text: str) -> LinkSummary:
    """A stored ``link_summary`` string as its typed value (a customer's holds ``row``)."""
    d = json.loads(text)
    if "row" in d:
        return CustomerLinkSummary(
            d["id"], int(d["n"]), int(d["fmax"]), tuple(d["row"]), dict(d["p"]), tuple(d.get("pk", ()))
        )
    return IdentifierLinkSummary(
        d["id"], int(d["n"]), int(d["fmin"]), int(d["fmax"]), int(d["events"]), tuple(tuple(f) for f in d["first"])
    )
