"""The identity-graph schema and the Event contract shared by every stage.

Vertex labels: ``customer`` and one label per identifier kind. Edges run
``customer -has_<kind>-> <kind>`` and carry ``first_seen``/``last_seen``
(epoch milliseconds, UTC), ``event_count``, one ``count_<event_type>``
per event type seen on that link and one ``count_<tag>`` per event tag
(:mod:`fraudgraph.event_tags`: what a fraud team reads off an event's raw
fields before they are hashed, such as a hosting IP, a disposable e-mail
domain, the channel, or the payment amount in whole currency units).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .redaction import (
    DEFAULT_ID_PATTERN,
    IDENTIFIER_FIELDS,
    id_problem,
    looks_like_card_number,
    mask_free_text,
    screened_id,
)
from .timeutil import from_epoch_ms, to_epoch_ms

# 2: label events are no longer link counts or features; 3: event tags on links; 4: the IP's subnet, a fifth
# identifier kind
SCHEMA_VERSION = 4

CUSTOMER = "customer"
# ``subnet``: the network an IP address is in (its /24, an IPv6 address's /48), read off the event's ``ip`` field
# (fraudgraph.identity.normalise_identifier): accounts behind one ISP block or one ring's proxy range share it
# where each has its own address.
IDENTIFIER_KINDS: tuple[str, ...] = ("device", "ip", "email", "card", "subnet")
VERTEX_LABELS: tuple[str, ...] = (CUSTOMER, *IDENTIFIER_KINDS)
EDGE_LABEL_BY_KIND: dict[str, str] = {kind: f"has_{kind}" for kind in IDENTIFIER_KINDS}
EDGE_LABELS: tuple[str, ...] = tuple(EDGE_LABEL_BY_KIND.values())
KIND_BY_EDGE_LABEL: dict[str, str] = {v: k for k, v in EDGE_LABEL_BY_KIND.items()}
# Event field that carries each identifier kind (declared once, in the lowest module that needs them).
EVENT_FIELD_BY_KIND: dict[str, str] = {**{kind: field for field, kind in IDENTIFIER_FIELDS.items()}, "subnet": "ip"}

EVENT_TYPES: tuple[str, ...] = (
    "signup",
    "login",
    "payment",
    "add_card",
    "change_email",
    "block",
    "unblock",
    "appeal",
)
EventType = Literal["signup", "login", "payment", "add_card", "change_email", "block", "unblock", "appeal"]
# Block, unblock and appeal events are label history: they update the customer's block and appeal
# properties and never create a link, count in a link's aggregates or reach a feature, whatever
# identifiers they carry.
LABEL_EVENT_TYPES: tuple[str, ...] = ("block", "unblock", "appeal")
LINK_EVENT_TYPES: tuple[str, ...] = tuple(t for t in EVENT_TYPES if t not in LABEL_EVENT_TYPES)
# What an identity event says beyond its identifiers, read off its raw fields before hashing
# (fraudgraph.event_tags): flags count the events that carry them, a quantity sums its value.
EVENT_TAG_FLAGS: tuple[str, ...] = (
    "ip_hosting",
    "ip_carrier_nat",
    "email_disposable",
    "email_free_provider",
    "email_many_digits",
    "channel_web",
    "channel_app_ios",
    "channel_app_android",
)
EVENT_TAG_QUANTITIES: tuple[str, ...] = ("amount_units",)
EVENT_TAGS: tuple[str, ...] = (*EVENT_TAG_FLAGS, *EVENT_TAG_QUANTITIES)
# every count a link carries: per event type, then per event tag
LINK_COUNT_KEYS: tuple[str, ...] = (*LINK_EVENT_TYPES, *EVENT_TAGS)
LINK_COUNT_PROPERTIES: dict[str, str] = {key: f"count_{key}" for key in LINK_COUNT_KEYS}

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def ip_problem(value: str) -> str | None:
    """Why ``value`` is not an IP address, or None."""
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return "not a valid IPv4 or IPv6 address"
    return None


def email_problem(value: str) -> str | None:
    """Why ``value`` is not an email address, or None."""
    return None if _EMAIL_RE.match(value.strip()) else "not a valid email address"


def card_problem(value: str) -> str | None:
    """Why ``value`` cannot be a card fingerprint (it is a raw card number), or None."""
    if looks_like_card_number(value.strip()):
        return "looks like a raw card number (13-19 digits passing Luhn); only card fingerprints are accepted"
    return None


# One checker per identifier field, shared by the Event model and the vectorised ETL validation.
IDENTIFIER_PROBLEMS = {"ip": ip_problem, "email": email_problem, "card_fingerprint": card_problem}


def block_stands(blocked_at: Any, unblocked_at: Any, as_of_ms: Any) -> Any:
    """Does a customer's block stand at ``as_of_ms``: blocked at or before it, and not unblocked between the
    block and then? Epoch-ms values or arrays of them (missing: NaN or None); the one rule of the features
    (blocked neighbours), the decision rules (a standing block is not scored) and training (such a moment
    is no example)."""
    import numpy as np

    b = np.asarray(blocked_at, dtype=np.float64)
    u = np.asarray(unblocked_at, dtype=np.float64)
    lifted = (u >= b) & (u <= as_of_ms)  # NaN compares False
    return (b <= as_of_ms) & ~lifted


def numeric_property(value: Any) -> float | None:
    """A vertex property read as a number: a finite float, or None when missing or not a number."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


class Event(BaseModel):
    """One identity event: a historical row or a live message.

    ``ts`` is normalised to a timezone-aware UTC datetime. Identifier fields hold
    the raw values as received; they are normalised and hashed before they reach
    the graph (:mod:`fraudgraph.identity`) and are never logged.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    event_id: str = Field(min_length=1, max_length=200)
    event_type: EventType
    ts: dt.datetime
    customer_id: str = Field(min_length=1, max_length=200)
    device_id: str | None = Field(None, max_length=500)
    ip: str | None = None
    email: str | None = Field(None, max_length=320)
    card_fingerprint: str | None = Field(None, max_length=200)
    amount: float | None = Field(None, ge=0, allow_inf_nan=False)
    currency: str | None = Field(None, max_length=8)
    channel: str | None = Field(None, max_length=50)
    country: str | None = Field(None, max_length=8)
    block_source: Literal["manual", "rule"] | None = None
    reason: str | None = Field(None, max_length=200)
    outcome: str | None = Field(None, max_length=50)
    lifetime_value: float | None = Field(None, ge=0, allow_inf_nan=False)

    @field_validator("event_id", "customer_id")
    @classmethod
    def _check_id(cls, value: str, info) -> str:
        """An id matches the declared pattern (``privacy.id_pattern``, passed as the validation context)
        and holds no card number or email address: ids are stored, served and logged as they are."""
        problem = id_problem(value, (info.context or {}).get("id_pattern") or DEFAULT_ID_PATTERN)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("reason", "outcome", "channel", "currency", "country")
    @classmethod
    def _screen_free_text(cls, value: str | None) -> str | None:
        """Free text is stored: card-like numbers and email addresses never are."""
        return mask_free_text(value) if value is not None else None

    @field_validator("ts", mode="before")
    @classmethod
    def _parse_ts(cls, value: Any) -> dt.datetime:
        if value is None:
            raise ValueError("timestamp is required")
        try:
            ms = to_epoch_ms(value)
            parsed = from_epoch_ms(ms)
        except (ValueError, OverflowError, OSError):  # the parser's message would echo the value
            raise ValueError("not a parseable timestamp (ISO 8601 or epoch seconds or milliseconds)") from None
        if ms < 0:  # a year-1 sign-up would make every later event of the account look years old
            raise ValueError("before 1970-01-01, not an event time")
        return parsed

    @field_validator("device_id", "email", "card_fingerprint", "ip", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, float) and value != value:  # NaN from a table
            return None
        return value

    @field_validator("ip", "email", "card_fingerprint")
    @classmethod
    def _check_identifier(cls, value: str | None, info) -> str | None:
        if value is not None:
            problem = IDENTIFIER_PROBLEMS[info.field_name](value)
            if problem:
                raise ValueError(problem)
        return value

    @property
    def ts_ms(self) -> int:
        return to_epoch_ms(self.ts)

    def identifiers(self) -> dict[str, str]:
        """Raw identifier values present on this event, by kind."""
        out = {}
        for kind, field in EVENT_FIELD_BY_KIND.items():
            value = getattr(self, field)
            if value is not None:
                out[kind] = value
        return out


class InvalidEvent(ValueError):
    """An event failed validation. ``reasons`` is ``[(field, reason), ...]``."""

    def __init__(self, event_id: str | None, reasons: list[tuple[str, str]]):
        self.event_id = event_id
        self.reasons = reasons
        text = "; ".join(f"{f}: {r}" for f, r in reasons)
        super().__init__(f"event {event_id or '<no event_id>'} rejected: {text}")

    @property
    def reason_code(self) -> str:
        """Short machine-readable reason, e.g. ``ip:invalid`` (first failing field)."""
        field, reason = self.reasons[0]
        return f"{field}:{_REASON_CODES.get(reason.split(' (')[0], 'invalid')}"


_REASON_CODES = {
    "Field required": "missing",
    "timestamp is required": "missing",
    "unknown field": "unknown_field",
    "looks like a card number or an email address, not an id": "not_an_id",
    "does not match the id pattern": "pattern",
    "before 1970-01-01, not an event time": "before_1970",
}


def validate_event(record: dict[str, Any], id_pattern: str | None = None) -> Event:
    """Validate one raw record into an :class:`Event` or raise :class:`InvalidEvent`.

    The error names each failing field and the reason; it never echoes a raw value, and a field
    the contract does not know is named in its screened form (``event: unknown field (...)``, reason
    code ``event:unknown_field``), so the error is safe to log and its code safe as a metric label.
    ``id_pattern``: what event and customer ids must match (default :data:`DEFAULT_ID_PATTERN`).
    """
    try:
        return Event.model_validate(record, context={"id_pattern": id_pattern or DEFAULT_ID_PATTERN})
    except ValidationError as exc:
        reasons = []
        for err in exc.errors(include_input=False, include_url=False):
            field = ".".join(str(p) for p in err["loc"]) or "<event>"
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            if err["type"] == "literal_error" and field == "event_type":
                msg = "unknown event type"
            if err["type"] == "extra_forbidden":
                field, msg = "event", f"unknown field ({mask_free_text(field)[:64]!r})"
            reasons.append((field, msg))
        event_id = record.get("event_id") if isinstance(record, dict) else None
        raise InvalidEvent(screened_id(event_id, id_pattern or DEFAULT_ID_PATTERN), reasons) from None
