import datetime as dt

import pytest

from fraudgraph.schema import InvalidEvent, validate_event

BASE = {"event_id": "e1", "event_type": "login", "ts": "2026-03-01T12:00:00Z", "customer_id": "c1"}


def test_valid_event_normalises_time_to_utc():
    ev = validate_event({**BASE, "ts": "2026-03-01T16:00:00+04:00", "ip": "203.0.113.9"})
    assert ev.ts == dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)
    assert ev.ts_ms == 1772366400000
    assert validate_event({**BASE, "ts": 1772366400000}).ts == ev.ts
    assert ev.identifiers() == {"ip": "203.0.113.9"}


@pytest.mark.parametrize("patch,field,reason", [
    ({"customer_id": None}, "customer_id", "string"),
    ({"ts": "yesterday-ish"}, "ts", "not a parseable timestamp"),
    ({"event_type": "teleport"}, "event_type", "unknown event type"),
    ({"ip": "999.1.1.1"}, "ip", "not a valid IPv4 or IPv6 address"),
    ({"email": "not-an-email"}, "email", "not a valid email address"),
    ({"card_fingerprint": "4111111111111111"}, "card_fingerprint", "raw card number"),
    ({"amount": -5}, "amount", "greater than or equal to 0"),
    ({"favourite_colour": "red"}, "favourite_colour", "Extra inputs"),
])
def test_invalid_event_names_field_and_reason(patch, field, reason):
    with pytest.raises(InvalidEvent) as err:
        validate_event({**BASE, **patch})
    fields = [f for f, _ in err.value.reasons]
    assert field in fields
    assert reason in dict(err.value.reasons)[field]
    assert "e1" in str(err.value)


def test_error_never_echoes_raw_identifier():
    with pytest.raises(InvalidEvent) as err:
        validate_event({**BASE, "card_fingerprint": "4111111111111111", "email": "x@@bad"})
    assert "4111111111111111" not in str(err.value)
    assert "x@@bad" not in str(err.value)


def test_missing_customer_id_reason_code():
    rec = dict(BASE)
    del rec["customer_id"]
    with pytest.raises(InvalidEvent) as err:
        validate_event(rec)
    assert err.value.reason_code == "customer_id:missing"
