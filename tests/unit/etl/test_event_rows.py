"""Per-row checks of historical event tables: a bad row is a reject that names its field and holds no raw
value; the rest of the table goes on."""

import pandas as pd

from fraudgraph.config import load_settings
from fraudgraph.event_frames import validate_and_hash
from fraudgraph.event_tags import EventTagger
from fraudgraph.identity import IdentifierHasher

ROW = {"event_type": "login", "ts": "2026-01-02T00:00:00Z", "device_id": "dev-1", "ip": "203.0.113.9"}


def _split(rows):
    settings = load_settings()
    return validate_and_hash(pd.DataFrame(rows), IdentifierHasher(b"k"), EventTagger(settings.event_tags),
                             settings.privacy.id_pattern)


def test_bad_ids_and_times_are_rejects_that_echo_nothing_raw():
    rows = [
        {**ROW, "event_id": "e1", "customer_id": "C1"},
        {**ROW, "event_id": "4111-1111-1111-1111", "customer_id": "C2"},
        {**ROW, "event_id": "e3", "customer_id": "jane@example.com"},
        {**ROW, "event_id": "e4", "customer_id": "C" * 200},
        {**ROW, "event_id": "e5", "customer_id": "C5", "ts": "0001-01-01T00:00:00Z"},
        {**ROW, "event_id": "e6", "customer_id": "C6", "ts": "9999-12-31T00:00:00Z"},
        {**ROW, "event_id": "e7", "customer_id": "C7", "event_type": "5500 0000 0000 0004"},
    ]
    ok, rejects = _split(rows)
    assert ok["event_id"].tolist() == ["e1"]
    assert rejects["field"].tolist() == ["event_id", "customer_id", "customer_id", "ts", "ts", "event_type"]
    assert rejects["reason"].tolist()[3:5] == ["before 1970-01-01, not an event time",
                                               "more than a day after the wall clock"]
    text = rejects.to_json()
    for raw in ("4111-1111-1111-1111", "jane@example.com", "5500 0000 0000 0004", "dev-1", "203.0.113.9"):
        assert raw not in text, raw
    assert rejects["event_id"].iloc[0] == "[card]" and rejects["customer_id"].iloc[1] == "[email]"
    assert rejects["event_type"].iloc[5] == "[card]"


def test_the_subnet_of_each_event_is_hashed_from_its_ip():
    """Two addresses of one /24 are two ``ip`` identifiers and one ``subnet``; an event without an IP has
    neither, nor has a carrier-NAT address a subnet; and the frame's identifiers are the consumer's
    (``EventTagger.identifiers_of``, hashed by kind)."""
    from fraudgraph.schema import validate_event

    rows = [
        {**ROW, "event_id": "e1", "customer_id": "C1", "ip": "203.0.113.9"},
        {**ROW, "event_id": "e2", "customer_id": "C2", "ip": "203.0.113.200"},
        {**ROW, "event_id": "e3", "customer_id": "C3", "ip": "198.51.100.9"},
        {**ROW, "event_id": "e4", "customer_id": "C4", "ip": None},
        {**ROW, "event_id": "e5", "customer_id": "C5", "ip": "100.64.7.9"},  # carrier-grade NAT (conf/)
    ]
    ok, _ = _split(rows)
    assert ok["ip_hash"].nunique() == 4 and ok["ip_hash"].iloc[3] is None
    assert ok["subnet_hash"].iloc[0] == ok["subnet_hash"].iloc[1] != ok["subnet_hash"].iloc[2]
    assert ok["subnet_hash"].iloc[3] is None and ok["subnet_hash"].iloc[4] is None
    hasher, tagger = IdentifierHasher(b"k"), EventTagger(load_settings().event_tags)
    for i, row in enumerate(rows):
        linked = tagger.identifiers_of(validate_event(row))
        frame = {kind: ok[f"{kind}_hash"].iloc[i] for kind in ("device", "ip", "subnet")}
        assert {kind: hasher.hash(kind, raw) for kind, raw in linked.items()} == {
            kind: h for kind, h in frame.items() if h is not None
        }
