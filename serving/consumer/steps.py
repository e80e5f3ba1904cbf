"""The pieces of a consumer step: stream-time steps, the customer properties an event sets, what an
event adds to its links' counts, the absolute value of a live link, which failures are transient, and
the consumer's counters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fraudgraph.identity import IdentifierHasher

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fraudgraph.config.serving import ConsumerSettings
from fraudgraph.event_tags import EventTagger
from fraudgraph.graph import IdentityLink
from fraudgraph.redaction import mask_free_text
from fraudgraph.schema import (
    EVENT_TAGS,
    LABEL_EVENT_TYPES,
    LINK_COUNT_PROPERTIES,
    Event,
    InvalidEvent,
    validate_event,
)
from fraudgraph.timeutil import now_ms

from .ledger import merge_customer_props


@dataclass
class ConsumerStats:
    events_in: int = 0
    rejected: int = 0
    duplicates: int = 0
    applied: int = 0
    fenced: int = 0  # batches left to the consumer that claimed their partition (a consumer group)
    leases_taken_over: int = 0  # competing consumers: expired leases whose journaled work this one finished
    decisions: dict[str, int] = field(default_factory=lambda: {"block": 0, "review": 0, "allow": 0, "blocked": 0})
    latencies_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * (len(lat) - 1)))], 3) if lat else None

        return {
            "events_in": self.events_in,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "applied": self.applied,
            "fenced_batches": self.fenced,
            "leases_taken_over": self.leases_taken_over,
            "decisions": dict(self.decisions),
            "latency_ms": {"p50": pct(0.5), "p99": pct(0.99)},
        }


@dataclass(frozen=True)
class Rejection:
    """Why an input is a dead letter: a reason code (``field:reason``), a sentence naming the field
    (never its raw value) and the event id when one could be read."""

    code: str
    reason: str
    event_id: str | None = None


def parse_message(payload: str | bytes, cfg: ConsumerSettings, id_pattern: str | None = None) -> Event | Rejection:
    """The event in ``payload``, or why it is a dead letter: too large, not UTF-8, not a JSON object
    (broken, hostile or too deep), against the event contract (ids against ``id_pattern``,
    ``privacy.id_pattern``), or stamped in the future. The one parse of the live consumer and of its
    bulk replay (:mod:`serving.replay`)."""
    size = len(payload) if isinstance(payload, bytes) else len(payload.encode("utf-8", errors="replace"))
    if size > cfg.max_event_bytes:
        return Rejection(
            "payload:too_large", f"payload: {size:,} bytes, more than consumer.max_event_bytes={cfg.max_event_bytes:,}"
        )
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    except UnicodeDecodeError as exc:
        return Rejection("payload:not_utf8", f"payload: not UTF-8 (byte {exc.start})")
    try:
        record = json.loads(text)
    except RecursionError:
        return Rejection("payload:too_deep", "payload: JSON nested too deeply")
    except ValueError as exc:
        return Rejection("payload:invalid_json", f"payload: not a JSON event object ({exc.__class__.__name__})")
    if not isinstance(record, dict):
        return Rejection("payload:invalid_json", "payload: not a JSON event object (not an object)")
    try:
        event = validate_event(record, id_pattern)
    except InvalidEvent as exc:
        return Rejection(exc.reason_code, mask_free_text(str(exc)), exc.event_id)
    if cfg.max_clock_skew_s is not None and event.ts_ms > now_ms() + cfg.max_clock_skew_s * 1000:
        return Rejection(
            "ts:future",
            f"ts: more than consumer.max_clock_skew_s={cfg.max_clock_skew_s:g} s ahead of the wall clock",
            event.event_id,
        )
    return event


def watermark(newest_applied_ms: int | None, batch_times_ms: Iterable[int]) -> int | None:
    """The newest event time applied before a batch (the ledger's) or in it: what ``too_old`` counts back from."""
    return max([*([] if newest_applied_ms is None else [newest_applied_ms]), *batch_times_ms], default=None)


def too_old(event: Event, newest_ms: int | None, cfg: ConsumerSettings) -> Rejection | None:
    """The dead letter of an event stamped more than ``consumer.max_event_age_s`` before the watermark
    ``newest_ms`` (the newest event time applied before its batch or in it), else None."""
    if cfg.max_event_age_s is None or newest_ms is None:
        return None
    if event.ts_ms >= newest_ms - cfg.max_event_age_s * 1000:
        return None
    return Rejection(
        "ts:too_old",
        f"ts: more than consumer.max_event_age_s={cfg.max_event_age_s:g} s before the newest event",
        event.event_id,
    )


def graph_signups(customers: pd.DataFrame) -> dict[str, int]:
    """``{customer id: signup_ts}`` of a ``customers`` frame (customers without one left out)."""
    if "signup_ts" not in customers:
        return {}
    held = customers.loc[customers["signup_ts"].notna(), ["customer_id", "signup_ts"]]
    return {str(c): int(t) for c, t in zip(held["customer_id"], held["signup_ts"])}


def before_signup(events: Iterable[Event], known: Mapping[str, int], cfg: ConsumerSettings) -> dict[str, Rejection]:
    """``{event id: dead letter}`` of the batch's events stamped more than ``consumer.max_clock_skew_s``
    before their customer's signup: the one the graph held before the batch (``known``), else the earliest
    signup event of the batch. A signup event is never refused here (the earliest stands:
    :func:`serving.consumer.ledger.merge_customer_props`). The one rule of the consumer and its bulk replay."""
    events = list(events)
    if cfg.max_clock_skew_s is None:
        return {}
    signups = dict(known)
    for ev in events:
        if ev.event_type == "signup" and ev.customer_id not in known:
            signups[ev.customer_id] = min(signups.get(ev.customer_id, ev.ts_ms), ev.ts_ms)
    skew_ms = cfg.max_clock_skew_s * 1000
    reason = f"ts: more than consumer.max_clock_skew_s={cfg.max_clock_skew_s:g} s before the customer's signup"
    return {
        ev.event_id: Rejection("ts:before_signup", reason, ev.event_id)
        for ev in events
        if ev.event_type != "signup" and ev.customer_id in signups and ev.ts_ms < signups[ev.customer_id] - skew_ms
    }


def event_digest(event: Event, hasher: IdentifierHasher) -> str:
    """A keyed digest of an event's content (every field, as validated): a redelivery has the same one, a
    conflicting event reusing its id another. Keyed with the PII key, so it says nothing of raw values."""
    return hasher.hash_normalised("event", json.dumps(event.model_dump(mode="json"), sort_keys=True))


def conflict_rejection(event: Event, first: str, this: str) -> Rejection:
    """The dead letter of an event whose id was already applied with other content."""
    return Rejection(
        "event_id:conflict",
        f"event_id: already applied with other content (content digest {first[:16]}, this one {this[:16]})",
        event.event_id,
    )


def customer_updates(ev: Event) -> dict[str, Any]:
    """Customer vertex properties an event sets."""
    ts = ev.ts_ms
    props: dict[str, Any] = {}
    if ev.event_type == "signup":
        props["signup_ts"] = ts
        if ev.country:
            props["country"] = ev.country
    if ev.lifetime_value is not None:
        props["lifetime_value"] = ev.lifetime_value
    if ev.event_type == "block":
        props.update(blocked_at=ts, is_fraud=1)
        if ev.block_source:
            props["block_source"] = ev.block_source
        if ev.reason:
            props["block_reason"] = ev.reason
    elif ev.event_type == "appeal":
        props["appealed_at"] = ts
        if ev.outcome:
            props["appeal_outcome"] = ev.outcome
    elif ev.event_type == "unblock":
        props["unblocked_at"] = ts
    return props


def link_keys(ev: Event, hasher: IdentifierHasher, tagger: EventTagger) -> list[tuple[str, str, str]]:
    """The links an event touches, as ``(customer_id, kind, value_hash)`` keys
    (:meth:`fraudgraph.event_tags.EventTagger.identifiers_of`, hashed); none for a label event."""
    if ev.event_type in LABEL_EVENT_TYPES:
        return []
    return [(ev.customer_id, kind, hasher.hash(kind, raw)) for kind, raw in tagger.identifiers_of(ev).items()]


def link_counts(ev: Event, tagger: EventTagger) -> dict[str, int]:
    """What an identity event adds to each link it touches, by ``LINK_COUNT_KEYS``: 1 to its type and its
    tags read off the raw fields (:class:`fraudgraph.event_tags.EventTagger`). Label events add nothing."""
    if ev.event_type in LABEL_EVENT_TYPES:
        return {}
    return {ev.event_type: 1, **tagger.tags(ip=ev.ip, email=ev.email, channel=ev.channel, amount=ev.amount)}


def event_time_steps(events: list[Event], span_ms: int) -> list[list[Event]]:
    """Time-ordered events cut into steps that each span at most ``span_ms`` of event time.

    A poll under backlog (a replay, a consumer catching up) can hold hours of stream; written and
    scored in one step, a signup, its card and its first payment would be decided together, after
    the fact. Each step is written and scored before the next, so every decision sees the graph as
    it was within ``consumer.max_batch_span_s`` of its event, as it would in production.
    """
    steps: list[list[Event]] = []
    for ev in events:
        if steps and ev.ts_ms - steps[-1][0].ts_ms <= span_ms:
            steps[-1].append(ev)
        else:
            steps.append([ev])
    return steps


def is_transient(exc: BaseException) -> bool:
    """Failures that say nothing about the input (a store or broker unreachable, a timeout, a locked
    database): retried by a restart, never dead-lettered. A store error raised from such a failure (the
    Gremlin store's ``GraphStoreError`` once its own retries are spent) is one too."""
    import sqlite3

    # OSError: ConnectionError, TimeoutError and aiohttp's connector errors; the two by name: aiohttp's own
    unreachable = ("ServerDisconnectedError", "WSServerHandshakeError")
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, sqlite3.OperationalError):
            if any(w in str(cause) for w in ("locked", "busy", "unable to open", "disk I/O")):
                return True
        elif isinstance(cause, OSError) or type(cause).__name__ in unreachable:
            return True
        cause = cause.__cause__
    return False


def event_json(ev: Event) -> str:
    """An event as JSON, for a dead letter (redacted like any other payload)."""
    return ev.model_dump_json(exclude_none=True)


def link_from_state(
    key: tuple[str, str, str], base_json: str | None, first: int, last: int, count: int, counts_json: str
) -> IdentityLink:
    """A link's absolute value: its live aggregates in the ledger over the graph's value before the
    first live event (``base_json``; none for a link the stream created)."""
    base = json.loads(base_json) if base_json else None
    live_counts = json.loads(counts_json)
    if base:
        first, last = min(first, base["first_seen"]), max(last, base["last_seen"])
        count += base["event_count"]
        for t, prop in LINK_COUNT_PROPERTIES.items():
            live_counts[t] = live_counts.get(t, 0) + int(base.get(prop, 0))
    return IdentityLink(
        key[0], key[1], key[2], int(first), int(last), int(count), {t: int(n) for t, n in live_counts.items() if n}
    )


def step_increments(
    events: list[Event], hasher: IdentifierHasher, tagger: EventTagger
) -> tuple[dict[tuple[str, str, str], list], dict[str, dict], list[list[tuple[str, str, str]]], list[tuple]]:
    """What one step of events adds, before the ledger is read: ``(increments, customers, keys_by_event,
    logged)``: per link key ``(customer_id, kind, value_hash)`` its ``[first_ms, last_ms, events, counts by
    tag]``; per customer its merged property updates; each event's link keys (none for label events);
    and the link-event log's rows (event id, key, time, type, tag counts)."""
    increments: dict[tuple[str, str, str], list] = {}
    customers: dict[str, dict] = defaultdict(dict)
    keys_by_event: list[list[tuple[str, str, str]]] = []
    logged: list[tuple] = []
    for ev in events:
        keys = link_keys(ev, hasher, tagger)
        keys_by_event.append(keys)
        counts = link_counts(ev, tagger) if keys else {}
        logged += [
            (ev.event_id, *key, ev.ts_ms, ev.event_type, *(counts.get(t, 0) for t in EVENT_TAGS)) for key in keys
        ]
        for key in keys:
            inc = increments.setdefault(key, [ev.ts_ms, ev.ts_ms, 0, defaultdict(int)])
            inc[0], inc[1] = min(inc[0], ev.ts_ms), max(inc[1], ev.ts_ms)
            inc[2] += 1
            for name, n in counts.items():
                inc[3][name] += n
        customers[ev.customer_id] = merge_customer_props(customers[ev.customer_id], customer_updates(ev))
    return increments, dict(customers), keys_by_event, logged
