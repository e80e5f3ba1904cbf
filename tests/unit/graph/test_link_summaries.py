"""The Gremlin graph's stored link summaries: one codec, typed both ways."""

from __future__ import annotations

import json
import random

from fraudgraph.graph.elements import LINK_SUMMARY_COLUMNS
from fraudgraph.graph.link_summaries import (
    LINK_ROW,
    CustomerLinkSummary,
    IdentifierLinkSummary,
    LinkChange,
    customer_order,
    decode_link_summary,
)
from fraudgraph.schema import IDENTIFIER_KINDS


def test_a_customer_summary_survives_the_round_trip_and_keeps_the_stored_layout():
    s = CustomerLinkSummary("customer:C1", 3, 1_700_000_000_000, (1, 2, 0, 1, 0, 9), {"signup_ts": 5, "country": "AE"},
                            ("country", "signup_ts", "blocked_at"))
    assert decode_link_summary(s.to_json()) == s
    assert set(json.loads(s.to_json())) == {"id", "n", "fmax", "row", "p", "pk"}
    # it answers for a name it was written for, set on the vertex or not, and for no other
    assert s.answers_for(["signup_ts", "blocked_at"]) and not s.answers_for(["signup_ts", "unblocked_at"])
    # a summary stored before the names were recorded answers for none
    old = json.loads(s.to_json())
    del old["pk"]
    assert not decode_link_summary(json.dumps(old)).answers_for(["signup_ts"])
    assert s.visible(None) and s.visible(1_700_000_000_000) and not s.visible(1_699_999_999_999)


def test_an_identifier_summary_survives_the_round_trip_and_knows_what_it_covers():
    lowest = (("C1", 10, 20, 3), ("C2", 11, 30, 1))
    s = IdentifierLinkSummary("device:abc", 2, 10, 11, 4, lowest)
    assert decode_link_summary(s.to_json()) == s
    assert set(json.loads(s.to_json())) == {"id", "n", "fmin", "fmax", "events", "first"}
    assert s.covers(5)  # holds every customer it has
    hub = IdentifierLinkSummary("ip:hub", 300, 10, 99, 900, lowest)
    assert hub.covers(2) and not hub.covers(3)
    assert not hub.visible(98) and hub.visible(99)


def summary_of(links: dict[str, tuple[int, ...]], cap: int) -> IdentifierLinkSummary:
    """What aggregating an identifier's links gives (the reference an advanced summary must equal)."""
    fs = [row[_FS] for row in links.values()]
    lowest = sorted(links, key=customer_order)[:cap]
    return IdentifierLinkSummary("ip:hub", len(links), min(fs, default=-1), max(fs, default=-1),
                                 sum(row[_EV] for row in links.values()), tuple((c, *links[c]) for c in lowest))


def _row(first_seen: int, events: int) -> tuple[int, ...]:
    values = dict.fromkeys(LINK_ROW, 0)
    values.update(first_seen=first_seen, last_seen=first_seen + 5, event_count=events, count_login=events)
    return tuple(values[k] for k in LINK_ROW)


_FS, _EV = LINK_ROW.index("first_seen"), LINK_ROW.index("event_count")


def random_write(rng, links, keys, change):
    """One write of 1-3 links among ``keys``: new ones, or more events and now and then an earlier
    first-seen. Updates ``links`` and returns the write's changes (``change(key, before, after)``)."""
    changes = []
    for key in rng.sample(keys, rng.randrange(1, 4)):
        before = links.get(key)
        if before is None:
            after = _row(rng.randrange(100, 200), rng.randrange(1, 4))
        else:
            first_seen = rng.randrange(50, before[_FS] + 1) if rng.random() < 0.2 else before[_FS]
            after = _row(first_seen, before[_EV] + rng.randrange(1, 3))
        changes.append(change(key, before, after))
        links[key] = after
    return changes


def advanced_as_aggregated(summary, changes, got, want) -> bool:
    """``got`` (the advanced summary) equals ``want`` (aggregated); None only where the summary alone
    cannot know: a first-seen moved off a link that may have been the latest. True when advanced."""
    if got is None:
        assert any(c.before is not None and c.after[_FS] != c.before[_FS] and c.before[_FS] >= summary.latest_first_seen
                   for c in changes)
        return False
    assert got == want
    return True


def test_an_advanced_identifier_summary_equals_aggregating_its_links():
    """Random writes to one identifier (new links below and above the held ids, more events, a first-seen
    moved earlier, several links per write): the summary advanced by each write's changes is exactly the
    one aggregated from all links, or None, and None only where the summary alone cannot know."""
    rng = random.Random(7)
    cap = 5
    customers = [f"c{i:02d}" for i in range(60)]
    outcomes = []
    for _ in range(300):
        links = {c: _row(rng.randrange(100, 200), rng.randrange(1, 4))
                 for c in rng.sample(customers, rng.randrange(0, 12))}
        summary = summary_of(links, cap)
        for _ in range(6):
            changes = random_write(rng, links, customers, lambda c, b, a: LinkChange(c, "ip", "hub", b, a))
            want = summary_of(links, cap)
            outcomes.append(advanced_as_aggregated(summary, changes, summary.advanced(changes, cap), want))
            summary = want
    assert sum(outcomes) > 10 * outcomes.count(False) > 0


def test_a_summary_that_disagrees_with_the_changes_is_not_advanced():
    links = {f"c{i}": _row(100 + i, 1) for i in range(8)}
    summary = summary_of(links, 3)
    # an existing link that should be held (c1 < the highest held id) but is not: the summary is not this graph's
    stale = IdentifierLinkSummary("ip:hub", 8, 100, 107, 8, (("c0", *links["c0"]), ("c2", *links["c2"]),
                                                             ("c3", *links["c3"])))
    assert stale.advanced([LinkChange("c1", "ip", "hub", links["c1"], _row(101, 2))], 3) is None
    # a "new" link the summary already holds, and one link changed twice in one write
    assert summary.advanced([LinkChange("c0", "ip", "hub", None, _row(100, 1))], 3) is None
    twice = [LinkChange("c9", "ip", "hub", None, _row(150, 1)), LinkChange("c9", "ip", "hub", _row(150, 1), _row(150, 2))]
    assert summary.advanced(twice, 3) is None
    # an existing link beyond the held ids changes the totals only
    beyond = summary.advanced([LinkChange("c7", "ip", "hub", links["c7"], _row(107, 4))], 3)
    assert (beyond.customers, beyond.events, beyond.lowest) == (8, 11, summary.lowest)


def test_the_lowest_ids_follow_the_servers_string_order():
    """Gremlin servers compare ids as UTF-16 code units; above U+FFFF that is not Python's order."""
    ids = ["\uffff", "\U0001f600", "a"]
    assert sorted(ids, key=customer_order) == ["a", "\U0001f600", "\uffff"]
    assert sorted(ids) == ["a", "\uffff", "\U0001f600"]


def customer_summary_of(links: dict[tuple[str, str], tuple[int, ...]]) -> CustomerLinkSummary:
    """What aggregating a customer's links gives: the row of ``LINK_SUMMARY_COLUMNS[1:]``."""
    rows = list(links.values())
    fs = [r[_FS] for r in rows]
    per_kind = tuple(sum(1 for kind, _ in links if kind == k) for k in IDENTIFIER_KINDS)
    sums = tuple(sum(r[j] for r in rows) for j in range(_EV, len(LINK_ROW)))
    return CustomerLinkSummary("customer:c1", len(rows), max(fs, default=-1), (min(fs, default=-1), *per_kind, *sums),
                               {"signup_ts": 5}, ("signup_ts",))


def test_an_advanced_customer_summary_equals_aggregating_its_links():
    """The customer side of the same: new links of every kind, more events, a first-seen moved earlier."""
    assert len(customer_summary_of({}).row) == len(LINK_SUMMARY_COLUMNS) - 1
    rng = random.Random(11)
    pool = [(k, f"{k[0]}{i}") for k in IDENTIFIER_KINDS for i in range(4)]
    outcomes = []
    for _ in range(300):
        links = {key: _row(rng.randrange(100, 200), rng.randrange(1, 4)) for key in rng.sample(pool, rng.randrange(0, 6))}
        summary = customer_summary_of(links)
        for _ in range(4):
            changes = random_write(rng, links, pool, lambda key, b, a: LinkChange("c1", *key, b, a))
            want = customer_summary_of(links)
            outcomes.append(advanced_as_aggregated(summary, changes, summary.advanced(changes), want))
            summary = want
    assert sum(outcomes) > 10 * outcomes.count(False) > 0
    twice = [LinkChange("c1", "ip", "x", None, _row(150, 1)), LinkChange("c1", "ip", "x", _row(150, 1), _row(150, 2))]
    assert customer_summary_of({}).advanced(twice) is None
