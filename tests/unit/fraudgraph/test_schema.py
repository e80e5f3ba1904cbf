import datetime as dt

import pytest

from fraudgraph.schema import InvalidEvent, validate_event

BASE = {"event_id": "e1", "event_type": "login", "ts": "2026-03-01T12:00:00Z", "customer_id": "c1"}


def test_valid_event_normalises_time_to_utc():
    ev = validate_event({**BASE, "ts": "2026-03-01T16:00:00+04:00", "ip": "203.0.113.9"})
    assert ev.ts == dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    assert ev.ts_ms == 1772366400000
    assert validate_event({**BASE, "ts": 1772366400000}).ts == ev.ts
    assert ev.identifiers() == {"ip": "203.0.113.9", "subnet": "203.0.113.9"}  # the subnet is read off the IP


@pytest.mark.parametrize("patch,field,reason", [
    ({"customer_id": None}, "customer_id", "string"),
    ({"ts": "yesterday-ish"}, "ts", "not a parseable timestamp"),
    ({"event_type": "teleport"}, "event_type", "unknown event type"),
    ({"ip": "999.1.1.1"}, "ip", "not a valid IPv4 or IPv6 address"),
    ({"email": "not-an-email"}, "email", "not a valid email address"),
    ({"card_fingerprint": "4111111111111111"}, "card_fingerprint", "raw card number"),
    ({"amount": -5}, "amount", "greater than or equal to 0"),
    ({"favourite_colour": "red"}, "event", "unknown field ('favourite_colour')"),
    ({"customer_id": "4111 1111 1111 1111"}, "customer_id", "looks like a card number"),
    ({"customer_id": "alice@example.com"}, "customer_id", "looks like a card number or an email address"),
    ({"event_id": "e 1"}, "event_id", "does not match the id pattern"),
])
def test_invalid_event_names_field_and_reason(patch, field, reason):
    with pytest.raises(InvalidEvent) as err:
        validate_event({**BASE, **patch})
    fields = [f for f, _ in err.value.reasons]
    assert field in fields
    assert reason in dict(err.value.reasons)[field]
    assert ("e1" in str(err.value)) == (field != "event_id")


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


@pytest.mark.parametrize("name", ["4111111111111111", "4111-1111-1111-1111", "bob@example.com"])
def test_an_unknown_field_named_by_a_card_number_or_email_is_named_masked_with_a_fixed_code(name):
    with pytest.raises(InvalidEvent) as err:
        validate_event({**BASE, name: "x"})
    assert err.value.reason_code == "event:unknown_field"  # a metric label: no value of the input in it
    assert name not in str(err.value) and ("[card]" in str(err.value) or "[email]" in str(err.value))


@pytest.mark.parametrize("bad_id", ["4111111111111111", "5500.0000.0000.0004", "C-4242-4242-4242-4242"])
def test_a_card_number_as_event_id_is_refused_and_never_echoed(bad_id):
    with pytest.raises(InvalidEvent) as err:
        validate_event({**BASE, "event_id": bad_id})
    assert err.value.reason_code == "event_id:not_an_id"
    assert "4242-4242" not in str(err.value) and "4111111111111111" not in str(err.value)
    assert "5500.0000" not in str(err.value) and err.value.event_id is not None and "[card]" in err.value.event_id


def test_a_bad_timestamp_is_not_echoed():
    with pytest.raises(InvalidEvent) as err:
        validate_event({**BASE, "ts": "4111.1111.1111.1111"})
    assert "4111" not in str(err.value) and err.value.reasons == [
        ("ts", "not a parseable timestamp (ISO 8601 or epoch seconds or milliseconds)")
    ]


def test_the_id_pattern_is_the_callers():
    assert validate_event({**BASE, "customer_id": "cust/42"}, id_pattern=r"cust/[0-9]+|e[0-9]+").customer_id == "cust/42"
    with pytest.raises(InvalidEvent):
        validate_event({**BASE, "customer_id": "c1"}, id_pattern=r"cust/[0-9]+|e[0-9]+")
