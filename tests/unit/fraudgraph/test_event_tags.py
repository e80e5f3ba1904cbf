"""Event tags: read off raw fields before hashing, the same for one live event and for a whole table."""

from __future__ import annotations

import pandas as pd
import pytest

from fraudgraph.config import load_settings
from fraudgraph.event_tags import EventTagger, whole_units
from fraudgraph.schema import EVENT_TAGS


@pytest.fixture(scope="module")
def tagger():
    return EventTagger(load_settings(environ={}).event_tags)


def test_one_event_is_tagged_from_its_raw_fields(tagger):
    assert tagger.tags(ip="45.12.3.4", email="X.Y123456@Mailinator.com ", channel="web", amount=19.6) == {
        "ip_hosting": 1, "email_disposable": 1, "email_many_digits": 1, "channel_web": 1, "amount_units": 20,
    }  # fmt: skip
    assert tagger.tags(ip="100.70.1.2", email="sara.rahman@gmail.com", channel=" app_ios ") == {
        "ip_carrier_nat": 1, "email_free_provider": 1, "channel_app_ios": 1,
    }  # fmt: skip
    assert tagger.tags(ip="::ffff:45.1.1.1") == {"ip_hosting": 1}  # IPv4-mapped IPv6 is the IPv4 address
    assert tagger.tags(ip="8.8.8.8", email="a@corp.example", channel="kiosk", amount=0) == {}
    assert tagger.tags(ip="not an ip") == {} and tagger.tags() == {}


def test_a_table_is_tagged_exactly_as_its_events_one_by_one(tagger):
    frame = pd.DataFrame({
        "ip": ["45.12.3.4", None, "100.70.1.2", "8.8.8.8", "45.12.3.4"],
        "email": [None, "a1234567@yopmail.com", "b@gmail.com", None, "c@live.com"],
        "channel": ["web", "app_android", None, "app_ios ", "tv"],
        "amount": [12.4, None, float("nan"), 1e30, 3.5],
    })  # fmt: skip
    tagged = tagger.frame_tags(frame)
    assert list(tagged.columns) == list(EVENT_TAGS)
    for i, row in frame.iterrows():
        one = tagger.tags(
            ip=row["ip"], email=row["email"], channel=row["channel"], amount=None if pd.isna(row["amount"]) else row["amount"]
        )
        assert {k: int(v) for k, v in tagged.loc[i].items() if v} == one


def test_amounts_are_whole_units_and_never_negative_or_infinite():
    assert whole_units(12.5) == 12 and whole_units(13.5) == 14 and whole_units("7.6") == 8
    assert whole_units(None) == 0 and whole_units(-5) == 0 and whole_units(float("inf")) == 0
    assert whole_units("abc") == 0 and whole_units(1e30) == 10**12
