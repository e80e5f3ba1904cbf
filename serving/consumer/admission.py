"""Which events of a polled micro-batch the consumer applies: parsed and validated, not stamped too long
before the watermark or before their customer's signup, and not seen before (a redelivery is dropped
silently; the same id with other content is refused). The rules themselves are in
:mod:`serving.consumer.steps`, shared with the bulk replay."""

from __future__ import annotations

from dataclasses import dataclass, field

from fraudgraph.config import Settings
from fraudgraph.graph import IdentityGraph
from fraudgraph.identity import IdentifierHasher
from fraudgraph.schema import Event

from .ledger import Ledger
from .sources import Message
from .steps import (
    Rejection,
    before_signup,
    conflict_rejection,
    event_digest,
    graph_signups,
    parse_message,
    too_old,
    watermark,
)


@dataclass
class Admitted:
    """A batch sorted out: its new ``events`` in time order with their content ``digests``, the messages
    ``refused`` with why (in the batch's order, then the refusals by signup), and how many were
    ``duplicates`` of events applied before or earlier in the batch; ``owners``: each new event's source
    partition (:attr:`serving.consumer.sources.Message.owner`)."""

    events: list[Event] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    refused: list[tuple[Message, Rejection]] = field(default_factory=list)
    duplicates: int = 0


def admit(
    batch: list[Message], ledger: Ledger, store: IdentityGraph, settings: Settings, hasher: IdentifierHasher
) -> Admitted:
    """Sort one polled batch out (:class:`Admitted`). Reads the ledger (events applied before, the
    watermark) and, for the signup rule, the graph's ``signup_ts`` of the batch's customers (one read)."""
    cfg = settings.consumer
    out = Admitted()
    parsed: list[tuple[Message, Event]] = []
    for msg in batch:
        event = parse_message(msg.payload, cfg, settings.privacy.id_pattern)
        if isinstance(event, Rejection):
            out.refused.append((msg, event))
        else:
            parsed.append((msg, event))
    known = ledger.seen_digests(ev.event_id for _, ev in parsed)
    # the watermark: the newest event time applied before the batch or in it (the bulk replay's rule too)
    newest = watermark(ledger.newest_applied(), [ev.ts_ms for _, ev in parsed])
    unique: dict[str, tuple[Message, Event]] = {}
    for msg, ev in parsed:
        late = too_old(ev, newest, cfg)
        if late is not None and ev.event_id not in known:
            out.refused.append((msg, late))
            continue
        digest = event_digest(ev, hasher)
        first = out.digests.get(ev.event_id) if ev.event_id in unique else known.get(ev.event_id)
        if ev.event_id not in unique and ev.event_id not in known:
            unique[ev.event_id], out.digests[ev.event_id] = (msg, ev), digest
        elif first is not None and first != digest:  # same id, other content: on record, never applied
            out.refused.append((msg, conflict_rejection(ev, first, digest)))
        else:  # a redelivery: silent
            out.duplicates += 1
    events = [ev for _, ev in unique.values()]
    ids = sorted({ev.customer_id for ev in events})
    signups = graph_signups(store.customers_of(ids, ["signup_ts"])) if ids and cfg.max_clock_skew_s else {}
    for event_id, rejection in before_signup(events, signups, cfg).items():
        out.refused.append((unique.pop(event_id)[0], rejection))
        del out.digests[event_id]
    out.events = sorted((ev for _, ev in unique.values()), key=lambda e: (e.ts_ms, e.event_id))
    out.owners = {event_id: msg.owner for event_id, (msg, _) in unique.items()}
    return out
