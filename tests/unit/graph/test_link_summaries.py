"""The Gremlin graph's stored link summaries: one codec, typed both ways."""

from __future__ import annotations

import json

from fraudgraph.graph.link_summaries import CustomerLinkSummary, IdentifierLinkSummary, decode_link_summary


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
