"""Validated events -> identity links and customer properties (in-process, small batches).

The Spark ETL computes the same aggregates at scale; this module is the
single-process version used by the demo, tests and the live consumer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from .graph.base import CustomerUpsert, IdentityLink
from .identity import IdentifierHasher
from .schema import Event


@dataclass
class _LinkAgg:
    first_seen: int
    last_seen: int
    event_count: int = 0
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def aggregate_events(events: Iterable[Event], hasher: IdentifierHasher) -> tuple[list[CustomerUpsert], list[IdentityLink]]:
    """Aggregate events into customer upserts and identity links.

    Links: one per (customer, kind, hashed value) with first_seen/last_seen
    (epoch ms), event_count and per-event-type counts. Customers: signup_ts
    from the earliest signup event, lifetime_value and country when given.
    """
    links: dict[tuple[str, str, str], _LinkAgg] = {}
    customers: dict[str, dict] = {}
    for ev in events:
        ts = ev.ts_ms
        props = customers.setdefault(ev.customer_id, {})
        if ev.event_type == "signup":
            props["signup_ts"] = min(ts, props.get("signup_ts", ts))
            if ev.country:
                props["country"] = ev.country
        if ev.lifetime_value is not None:
            props["lifetime_value"] = ev.lifetime_value
        for kind, raw in ev.identifiers().items():
            key = (ev.customer_id, kind, hasher.hash(kind, raw))
            agg = links.get(key)
            if agg is None:
                agg = links[key] = _LinkAgg(ts, ts)
            agg.first_seen = min(agg.first_seen, ts)
            agg.last_seen = max(agg.last_seen, ts)
            agg.event_count += 1
            agg.counts[ev.event_type] += 1
    return (
        [CustomerUpsert(cid, p) for cid, p in sorted(customers.items())],
        [IdentityLink(c, k, h, a.first_seen, a.last_seen, a.event_count, dict(a.counts))
         for (c, k, h), a in sorted(links.items())],
    )
