"""What the identity graph holds and hands out, whatever the store: customer upserts, identity links
(one customer, one identifier, with first/last seen and per-type counts), the neighbourhood records,
their validation, vertex ids, frame columns and the link summary of a frame."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..schema import (
    CUSTOMER,
    EDGE_LABEL_BY_KIND,
    EDGE_LABELS,
    IDENTIFIER_KINDS,
    LINK_COUNT_PROPERTIES,
    VERTEX_LABELS,
)
from ..timeutil import as_of_or_end

PropertyValue = str | int | float | bool
RESERVED_CUSTOMER_KEYS = frozenset({"customer_id", "id", "label"})


class GraphStoreError(RuntimeError):
    """The graph store failed (after retries, where the backend retries)."""


class InvalidElementError(ValueError):
    """An element of a write batch is invalid; nothing of the batch was written."""

    def __init__(self, index: int, element: str, reason: str):
        self.index = index
        self.element = element
        self.reason = reason
        super().__init__(f"batch element {index} ({element}): {reason}; nothing of this batch was written")


@dataclass(frozen=True)
class CustomerUpsert:
    """A customer vertex and properties to merge into it (a ``None`` value removes the key)."""

    customer_id: str
    properties: Mapping[str, PropertyValue | None] = field(default_factory=dict)

    @classmethod
    def many(cls, updates: Mapping[str, Mapping[str, PropertyValue | None]]) -> list[CustomerUpsert]:
        """One upsert per ``customer_id -> properties`` (labels, scores, decisions written back)."""
        return [cls(cid, dict(props)) for cid, props in updates.items()]


@dataclass(frozen=True)
class IdentityLink:
    """``customer -has_<kind>-> identifier`` with its aggregate properties.

    Times are UTC epoch milliseconds. ``event_count`` and ``counts`` (per event
    type) are absolute aggregates as computed by the caller, so re-applying the
    same link is idempotent. On merge: first_seen = min, last_seen = max,
    counts replaced by the given values.
    """

    customer_id: str
    kind: str
    value_hash: str
    first_seen: int
    last_seen: int
    event_count: int
    counts: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> IdentityLink:
        """A link from one row of a ``links`` frame (``LINK_FRAME_COLUMNS``; a missing, null or zero
        ``count_<type>`` counts as no event of that type)."""
        counts = {}
        for etype, prop in LINK_COUNT_PROPERTIES.items():
            value = rec.get(prop)
            if value is not None and not pd.isna(value) and value:
                counts[etype] = int(value)
        return cls(
            str(rec["customer_id"]),
            rec["kind"],
            rec["value_hash"],
            int(rec["first_seen"]),
            int(rec["last_seen"]),
            int(rec["event_count"]),
            counts,
        )

    @property
    def edge_label(self) -> str:
        return EDGE_LABEL_BY_KIND[self.kind]

    def properties(self) -> dict[str, int]:
        """Edge properties; every ``count_<event_type>`` is present (0 where none)."""
        props = {
            "first_seen": int(self.first_seen),
            "last_seen": int(self.last_seen),
            "event_count": int(self.event_count),
        }
        for etype, prop in LINK_COUNT_PROPERTIES.items():
            props[prop] = int(self.counts.get(etype, 0))
        return props


@dataclass(frozen=True)
class LinkedIdentifier:
    """One identifier of a customer, with the link's properties and the identifier's degree."""

    kind: str
    value_hash: str
    properties: dict[str, int]
    degree: int  # number of customers linked to this identifier (true, uncapped)


@dataclass(frozen=True)
class SharedIdentifier:
    """An identifier of the centre customer and the other customers linked to it.

    ``customers`` holds at most the fan-out cap of other customers (lowest ids
    first); ``degree`` is the true number of customers on the identifier
    (centre included), so ``truncated`` tells whether the cap cut the list.
    """

    kind: str
    value_hash: str
    degree: int
    customers: tuple[str, ...]
    link: dict[str, int]

    @property
    def truncated(self) -> bool:
        return self.degree - 1 > len(self.customers)


@dataclass(frozen=True)
class Neighbourhood:
    """2-hop identity neighbourhood: centre -> identifiers -> other customers."""

    customer_id: str
    identifiers: tuple[SharedIdentifier, ...]

    @property
    def customers(self) -> frozenset[str]:
        return frozenset(c for ident in self.identifiers for c in ident.customers)


def _check_property(key: Any, value: Any) -> str | None:
    if not isinstance(key, str) or not key:
        return f"property name {key!r} is not a non-empty string"
    if key in RESERVED_CUSTOMER_KEYS:
        return f"property name {key!r} is reserved"
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"property {key!r}: {value!r} is not a finite number"
    if not isinstance(value, (str, int, float, bool)):
        return f"property {key!r}: type {type(value).__name__} is not a string, number or boolean"
    return None


def validate_customers(batch: Sequence[CustomerUpsert]) -> None:
    for i, c in enumerate(batch):
        if not isinstance(c, CustomerUpsert):
            raise InvalidElementError(i, repr(type(c).__name__), "not a CustomerUpsert")
        if not isinstance(c.customer_id, str) or not c.customer_id:
            raise InvalidElementError(i, "customer", "customer_id must be a non-empty string")
        for key, value in c.properties.items():
            problem = _check_property(key, value)
            if problem:
                raise InvalidElementError(i, f"customer {c.customer_id}", problem)


def check_link_customers(customers: Sequence[CustomerUpsert], links: Sequence[IdentityLink]) -> None:
    """``upsert_links(customers=...)``: valid customers, each one of the links' customers."""
    validate_customers(customers)
    linked = {link.customer_id for link in links}
    for i, c in enumerate(customers):
        if c.customer_id not in linked:
            raise InvalidElementError(i, f"customer {c.customer_id}", "not a customer of the links written with it")


def validate_links(batch: Sequence[IdentityLink]) -> None:
    for i, link in enumerate(batch):
        if not isinstance(link, IdentityLink):
            raise InvalidElementError(i, repr(type(link).__name__), "not an IdentityLink")
        name = f"link {link.customer_id}-{link.kind}"
        if not isinstance(link.customer_id, str) or not link.customer_id:
            raise InvalidElementError(i, name, "customer_id must be a non-empty string")
        if link.kind not in IDENTIFIER_KINDS:
            raise InvalidElementError(i, name, f"unknown identifier kind {link.kind!r}")
        if not isinstance(link.value_hash, str) or not link.value_hash:
            raise InvalidElementError(i, name, "value_hash must be a non-empty string")
        for attr in ("first_seen", "last_seen", "event_count"):
            v = getattr(link, attr)
            if isinstance(v, bool) or not isinstance(v, int):
                raise InvalidElementError(i, name, f"{attr} must be an integer, got {type(v).__name__}")
        if link.first_seen > link.last_seen:
            raise InvalidElementError(i, name, "first_seen is after last_seen")
        if link.event_count < 0:
            raise InvalidElementError(i, name, "event_count is negative")
        for etype, n in link.counts.items():
            if etype not in LINK_COUNT_PROPERTIES:
                raise InvalidElementError(i, name, f"unknown event type {etype!r} in counts")
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise InvalidElementError(i, name, f"count for {etype!r} must be a non-negative integer")


def identifier_id(kind: str, value_hash: str) -> str:
    """Stable vertex id of an identifier, also used in exports and Neptune CSV."""
    return f"{kind}:{value_hash}"


def customer_vertex_id(customer_id: str) -> str:
    return f"{CUSTOMER}:{customer_id}"


IDENTIFIER_STATS_COLUMNS = ["kind", "value_hash", "degree", "first_seen_min", "first_seen_max", "events"]
LINK_FRAME_COLUMNS = [
    "customer_id",
    "kind",
    "value_hash",
    "first_seen",
    "last_seen",
    "event_count",
    *LINK_COUNT_PROPERTIES.values(),
]
# per customer, over its links first seen at or before as-of: what its own features need
LINK_SUMMARY_COLUMNS = [
    "customer_id",
    "first_link",
    *(f"identifiers_{k}" for k in IDENTIFIER_KINDS),
    "events",
    *LINK_COUNT_PROPERTIES.values(),
]


def summarise_links(links: pd.DataFrame, as_of_ms: int | None = None) -> pd.DataFrame:
    """:meth:`IdentityGraph._link_summary` computed from a links frame (the reference for the stores)."""
    limit = as_of_or_end(as_of_ms)
    links = links.loc[pd.to_numeric(links["first_seen"]) <= limit]
    if links.empty:
        return pd.DataFrame(columns=LINK_SUMMARY_COLUMNS)
    grouped = links.groupby("customer_id", sort=True)
    out = pd.DataFrame({"first_link": grouped["first_seen"].min()})
    for kind in IDENTIFIER_KINDS:
        out[f"identifiers_{kind}"] = (links["kind"] == kind).groupby(links["customer_id"]).sum()
    out["events"] = grouped["event_count"].sum()
    for col in LINK_COUNT_PROPERTIES.values():
        out[col] = (
            pd.to_numeric(links[col], errors="coerce").fillna(0).groupby(links["customer_id"]).sum()
            if col in links
            else 0
        )
    return out.reset_index()[LINK_SUMMARY_COLUMNS]


def empty_stats() -> dict[str, dict[str, int]]:
    return {"vertices": {v: 0 for v in VERTEX_LABELS}, "edges": {e: 0 for e in EDGE_LABELS}}


def chunked(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
