import json

import pytest

from fraudgraph.identity import IdentifierHasher
from fraudgraph.redaction import canonical_text, contains_card_number, id_problem, mask_free_text, redact_payload

# the layouts a probe stored raw before: a card after other digits, before a year, with a CVV, dotted, slashed
CARD_LAYOUTS = [
    ("ticket 12 4111111111111111", "ticket 12 [card]"),
    ("5500000000000004 2024", "[card] 2024"),
    ("4242 4242 4242 4242 123", "[card] 123"),
    ("card 4111.1111.1111.1111 ok", "card [card] ok"),
    ("4111/1111/1111/1111", "[card]"),
    ("4111-1111-1111-1111", "[card]"),
    ("378282246310005", "[card]"),  # 15 digits
    ("4111\u200b1111 1111 1111", "[card]"),  # split by a zero-width space
    ("\uff14\uff11\uff11\uff11" * 1 + "111111111111", "[card]"),  # fullwidth digits
    ("ref 123456789012345678901234", "ref [digits]"),  # too long a run to tell
    ("4111111111111111123", "[card]"),  # glued to other digits at its end
    ("4111/1111/1111/1111123 ok", "[card] ok"),
    ("3782 8224 6310 005123", "[card]"),
    ("99 4111111111111111", "99 [card]"),
    ("994111111111111111", "[card]"),  # glued at its start
]


@pytest.mark.parametrize("text,masked", CARD_LAYOUTS)
def test_card_numbers_in_every_common_layout_are_masked(text, masked):
    assert mask_free_text(text) == masked
    assert contains_card_number(text)


@pytest.mark.parametrize("text", ["call back 2024-01-15 at 10:20", "order 12345 of 411111111111", "ip 10.0.0.1",
                                  "phone +44 20 7946 0958"])
def test_dates_times_short_numbers_and_non_luhn_runs_stay(text):
    assert mask_free_text(text) == text and not contains_card_number(text)


def test_emails_are_masked_in_any_form():
    assert mask_free_text("write to alice@example.com now") == "write to [email] now"
    assert mask_free_text("\uff41\uff4c\uff49\uff43\uff45@example.com") == "[email]"


def test_canonical_text_folds_confusables_and_drops_format_characters():
    assert canonical_text("al\u200bice@exa\u2060mple.com\ufeff") == "alice@example.com"
    assert canonical_text("\uff41\uff4c\uff49\uff43\uff45") == "alice"
    assert canonical_text("plain ascii") == "plain ascii"


@pytest.mark.parametrize("value,ok", [
    ("C000089605", True), ("E7014f322f03d1858", True), ("cust-1.a:b_c", True),
    ("4111111111111111", False), ("C-5500-0000-0000-0004", False), ("bob@example.com", False),
    ("4242424242424242123", False), ("5500-0000-0000-0004123", False), ("E7ba4111111111111111f", True),
    ("has space", False), ("x" * 129, False), ("", False),
])
def test_the_id_rule(value, ok):
    assert (id_problem(value) is None) == ok


def test_an_unreadable_payload_keeps_no_identifier_value_or_ip():
    hasher = IdentifierHasher(b"k")
    oversize = json.dumps({"event_id": "e1", "device_id": "RAW-DEVICE-1", "ip": "203.0.113.7", "pad": "x" * 40_000})
    broken = '{"device_id": "RAW-DEVICE-2", "email": "bob@example.com", "note": "from 2001:db8::1 and 198.51.100.2'
    for payload in (oversize, broken):
        out = redact_payload(payload, hasher)["payload"]
        for raw in ("RAW-DEVICE", "203.0.113.7", "bob@example.com", "2001:db8::1", "198.51.100.2"):
            assert raw not in out
    assert redact_payload(oversize, hasher)["payload"].startswith('{"event_id": "e1", "device_id": "[redacted]"')
