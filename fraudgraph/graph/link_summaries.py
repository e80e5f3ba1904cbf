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
from dataclasses import dataclass
from typing import Any


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

    def answers_for(self, names) -> bool:
        """Was it written for every one of these property names?"""
        return set(names) <= set(self.kept)

    def visible(self, as_of_ms: int | None) -> bool:
        """Is every link it covers first seen at or before ``as_of_ms`` (None: now)?"""
        return as_of_ms is None or self.latest_first_seen <= as_of_ms

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

    def visible(self, as_of_ms: int | None) -> bool:
        """Is every link it covers first seen at or before ``as_of_ms`` (None: now)?"""
        return as_of_ms is None or self.latest_first_seen <= as_of_ms

    def covers(self, limit: int) -> bool:
        """Does it hold the identifier's ``limit`` lowest-id customers?"""
        return len(self.lowest) >= limit or len(self.lowest) == self.customers

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
