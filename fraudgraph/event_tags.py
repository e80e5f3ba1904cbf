"""Event tags: what a fraud team reads off an identity event's raw fields before they are hashed.

The identifiers themselves reach the graph only as keyed hashes (:mod:`fraudgraph.identity`), which
say nothing about what they were: that an IP belongs to a hosting provider, that an e-mail address is
on a disposable domain. :class:`EventTagger` reads that off the raw values, once, before hashing, and
every link the event touches counts it (``count_<tag>``, :data:`fraudgraph.schema.LINK_COUNT_PROPERTIES`),
so it is stored with the graph and no raw value is kept. The tags (:data:`fraudgraph.schema.EVENT_TAGS`):

- ``ip_hosting`` / ``ip_carrier_nat``: the event's IP lies in ``event_tags.hosting_ip_ranges`` /
  ``carrier_nat_ranges`` (CIDR lists in ``conf/``);
- ``email_disposable`` / ``email_free_provider``: the event's e-mail domain is on one of the lists;
  ``email_many_digits``: its local part holds at least ``event_tags.many_digits`` digits;
- ``channel_web`` / ``channel_app_ios`` / ``channel_app_android``: the channel (device family);
- ``amount_units``: the payment amount in whole currency units (a quantity: links sum it).

The ETL (per partition, :func:`fraudgraph.event_frames.validate_and_hash`), the live consumer and the
bulk replay all tag with this one class, so training, batch and online scoring read the same counts.

The carrier-NAT list also decides one identifier: an event's IP links its customer to the IP's subnet
(the fifth identifier kind, :data:`fraudgraph.schema.IDENTIFIER_KINDS`) unless the IP is carrier-grade
NAT (:meth:`EventTagger.identifiers_of`). A carrier's NAT pool is shared by its subscribers at large:
the address already groups hundreds of unrelated customers, and its /24 only groups more of them.
"""

from __future__ import annotations

import ipaddress
import math
from functools import lru_cache
from typing import Any

import pandas as pd

from .config import EventTagSettings
from .redaction import canonical_text
from .schema import EVENT_TAG_FLAGS, EVENT_TAGS, Event

CHANNEL_TAGS = {"web": "channel_web", "app_ios": "channel_app_ios", "app_android": "channel_app_android"}


class EventTagger:
    """Tags of one event (:meth:`tags`) or of a whole table (:meth:`frame_tags`), from raw fields."""

    def __init__(self, settings: EventTagSettings):
        self.hosting = [ipaddress.ip_network(r, strict=False) for r in settings.hosting_ip_ranges]
        self.carrier_nat = [ipaddress.ip_network(r, strict=False) for r in settings.carrier_nat_ranges]
        self.disposable = {d.lower() for d in settings.disposable_email_domains}
        self.free = {d.lower() for d in settings.free_email_domains}
        self.many_digits = settings.many_digits
        self.ip_tags = lru_cache(maxsize=200_000)(self._ip_tags)
        self.email_tags = lru_cache(maxsize=200_000)(self._email_tags)

    def _ip_tags(self, ip: str) -> tuple[str, ...]:
        try:
            addr = ipaddress.ip_address(ip.strip())
        except ValueError:
            return ()
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        out = []
        if any(addr in net for net in self.hosting):
            out.append("ip_hosting")
        if any(addr in net for net in self.carrier_nat):
            out.append("ip_carrier_nat")
        return tuple(out)

    def identifiers_of(self, event: Event) -> dict[str, str]:
        """The raw identifiers ``event`` links its customer to, by kind: its identifier fields', and its IP's
        ``subnet`` unless the IP is carrier-grade NAT (the module docstring says why)."""
        out = event.identifiers()
        if "subnet" in out and "ip_carrier_nat" in self.ip_tags(out["subnet"]):
            del out["subnet"]
        return out

    def _email_tags(self, email: str) -> tuple[str, ...]:
        local, _, domain = canonical_text(email).strip().lower().rpartition("@")  # as the hasher reads it
        out = []
        if domain in self.disposable:
            out.append("email_disposable")
        if domain in self.free:
            out.append("email_free_provider")
        if sum(ch.isdigit() for ch in local) >= self.many_digits:
            out.append("email_many_digits")
        return tuple(out)

    def tags(
        self, *, ip: str | None = None, email: str | None = None, channel: str | None = None, amount: Any = None
    ) -> dict[str, int]:
        """``{tag: count}`` of one event (tags it does not carry are left out)."""
        out: dict[str, int] = {}
        for tag in (self.ip_tags(ip) if ip else ()) + (self.email_tags(email) if email else ()):
            out[tag] = 1
        if isinstance(channel, str) and channel.strip() in CHANNEL_TAGS:
            out[CHANNEL_TAGS[channel.strip()]] = 1
        units = whole_units(amount)
        if units:
            out["amount_units"] = units
        return out

    def frame_tags(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``(len(frame), len(EVENT_TAGS))`` int64 tag counts of an event table with raw ``ip``, ``email``,
        ``channel`` and ``amount`` columns (missing columns: no tag), each distinct value tagged once."""
        out = pd.DataFrame(0, index=frame.index, columns=list(EVENT_TAGS), dtype="int64")
        for col, tagger in (("ip", self.ip_tags), ("email", self.email_tags)):
            if col not in frame:
                continue
            mapping = {v: tagger(v) for v in frame[col].dropna().unique() if isinstance(v, str)}
            for tag in EVENT_TAG_FLAGS:
                hits = [v for v, tags in mapping.items() if tag in tags]
                if hits:
                    out.loc[frame[col].isin(hits).to_numpy(bool), tag] = 1
        if "channel" in frame:
            channel = frame["channel"].map(lambda v: v.strip() if isinstance(v, str) else None)
            for value, tag in CHANNEL_TAGS.items():
                out.loc[(channel == value).to_numpy(bool), tag] = 1
        if "amount" in frame:
            out["amount_units"] = pd.to_numeric(frame["amount"], errors="coerce").map(whole_units).astype("int64")
        return out


def whole_units(amount: Any) -> int:
    """A payment amount as whole currency units (rounded; 0 when missing or not a finite number >= 0)."""
    try:
        value = float(amount)
    except (TypeError, ValueError):
        return 0
    if not math.isfinite(value) or value <= 0:
        return 0
    return int(round(min(value, 1e12)))


__all__ = ["CHANNEL_TAGS", "EventTagger", "whole_units"]
