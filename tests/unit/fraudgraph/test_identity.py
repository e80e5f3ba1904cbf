import logging

import pytest

from fraudgraph.identity import DEMO_PII_KEY, IdentifierError, IdentifierHasher, normalise_identifier, resolve_pii_key
from fraudgraph.schema import looks_like_card_number


def test_normalisation():
    assert normalise_identifier("email", "  Alice.Smith@Example.COM ") == "alice.smith@example.com"
    assert normalise_identifier("ip", " 2001:0db8:0000:0000:0000:0000:0000:0001 ") == "2001:db8::1"
    assert normalise_identifier("ip", "::ffff:203.0.113.7") == "203.0.113.7"
    assert normalise_identifier("ip", "203.0.113.7") == "203.0.113.7"
    assert normalise_identifier("device", "  dev-1  ") == "dev-1"


def test_an_ip_subnet_is_its_network():
    """The fifth identifier kind is read off the IP field: every address of one /24 (IPv6: /48) is one
    subnet, a neighbouring /24 another, and its hash is that of the network, not of any address."""
    assert normalise_identifier("subnet", " 203.0.113.77 ") == "203.0.113.0/24"
    assert normalise_identifier("subnet", "::ffff:203.0.113.7") == "203.0.113.0/24"
    assert normalise_identifier("subnet", "2001:db8:1:2::5") == "2001:db8:1::/48"
    h = IdentifierHasher(b"k")
    assert h.hash("subnet", "203.0.113.1") == h.hash("subnet", "203.0.113.254")
    assert h.hash("subnet", "203.0.113.1") != h.hash("subnet", "203.0.114.1")
    assert h.hash("ip", "203.0.113.1") != h.hash("ip", "203.0.113.254")
    with pytest.raises(IdentifierError, match="subnet: not a valid"):
        normalise_identifier("subnet", "300.1.1.1")


@pytest.mark.parametrize("kind,value,reason", [
    ("ip", "300.1.1.1", "ip: not a valid"),
    ("email", "no-at-sign", "email: not a valid"),
    ("card", "4111 1111 1111 1111", "raw card number"),
    ("device", "   ", "empty"),
    ("phone", "1", "unknown identifier kind"),
])
def test_bad_identifiers_are_rejected_with_reason(kind, value, reason):
    with pytest.raises(IdentifierError, match=reason):
        normalise_identifier(kind, value)


def test_card_number_detection():
    assert looks_like_card_number("4111111111111111")
    assert looks_like_card_number("5500-0000-0000-0004")
    assert not looks_like_card_number("4111111111111112")  # fails Luhn
    assert not looks_like_card_number("fp_8c1e0b5d")
    assert not looks_like_card_number("123456789012")  # too short


def test_hash_is_keyed_normalised_and_not_reversible():
    a, b = IdentifierHasher(b"key-a"), IdentifierHasher(b"key-b")
    h = a.hash("email", "Bob@Example.com")
    assert h == a.hash("email", " bob@example.com")
    assert h != b.hash("email", "bob@example.com")
    assert h != a.hash("device", "bob@example.com")  # kind is part of the message
    assert len(h) == 32 and "bob" not in h


def test_demo_key_warns(caplog, monkeypatch):
    monkeypatch.delenv("FRAUDGRAPH_PII_KEY", raising=False)
    key, demo = resolve_pii_key(None, None)
    assert demo and key == DEMO_PII_KEY.encode()
    with caplog.at_level(logging.WARNING):
        IdentifierHasher(key, demo_key=demo)
    assert "DEMO PII key" in caplog.text


def test_key_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUDGRAPH_PII_KEY", "from-env")
    assert resolve_pii_key(None, None) == (b"from-env", False)
    f = tmp_path / "key"
    f.write_text("from-file\n")
    assert resolve_pii_key(None, str(f)) == (b"from-file", False)
    assert resolve_pii_key("from-config", str(f)) == (b"from-config", False)
    monkeypatch.delenv("FRAUDGRAPH_PII_KEY")
    assert resolve_pii_key(None, None) == (DEMO_PII_KEY.encode(), True)


@pytest.mark.parametrize("kind,plain,confusable", [
    ("email", "alice@example.com", "ali\u200bce@example.com"),  # zero-width space
    ("email", "alice@example.com", "\uff41\uff4c\uff49\uff43\uff45@example.com"),  # fullwidth letters
    ("email", "alice@example.com", "\ufeffAlice@Example.com\u200d"),  # byte-order mark, zero-width joiner
    ("device", "dev-1", "dev\u2060-1"),  # word joiner
    ("device", "dev-1", "\uff44\uff45\uff56-1"),
    ("ip", "203.0.113.7", "\uff12\uff10\uff13.0.113.7"),  # fullwidth digits
    ("card", "fp_8c1e", "fp_8c1e\u200b"),
])
def test_confusable_forms_of_an_identifier_are_one_identity(kind, plain, confusable):
    hasher = IdentifierHasher(b"k")
    assert normalise_identifier(kind, confusable) == normalise_identifier(kind, plain)
    assert hasher.hash(kind, confusable) == hasher.hash(kind, plain)


def test_the_key_fingerprint_names_the_normalisation_rule():
    assert IdentifierHasher(b"k").key_fingerprint.endswith("/rule2")
