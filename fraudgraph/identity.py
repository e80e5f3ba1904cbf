"""Identifier normalisation and keyed hashing: the one implementation every stage uses.

Raw emails, IPs, device ids and card fingerprints never reach the graph or the
logs. Each value is normalised (:func:`normalise_identifier`, rule
:data:`NORMALISATION_RULE`) and replaced by
``HMAC-SHA256(key, "<kind>:<normalised>")`` truncated to ``hash_hex_chars``
hex characters. The same key gives the same hash in the ETL, the consumer and
the API; a different key gives unlinkable hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .redaction import canonical_text
from .schema import IDENTIFIER_KINDS, looks_like_card_number

if TYPE_CHECKING:
    from .config.infrastructure import PrivacySettings

log = logging.getLogger(__name__)

PII_KEY_ENV = "FRAUDGRAPH_PII_KEY"
# Public, so anything hashed with it is only pseudonymised for demos and tests.
DEMO_PII_KEY = "fraudgraph-demo-key-do-not-use-in-production"
# The normalisation rule's version, part of the key fingerprint a graph records: a graph whose identifiers
# were hashed under another rule refuses this process (1: trim, then per kind; 2: Unicode NFKC and format
# characters removed first, so a zero-width space or fullwidth letters no longer make a second identity).
NORMALISATION_RULE = 2
# The prefix length of a ``subnet`` identifier, per IP version: an ISP hands a home or a small office one
# IPv4 /24 or one IPv6 /48.
SUBNET_PREFIX = {4: 24, 6: 48}


class IdentifierError(ValueError):
    """An identifier value cannot be normalised; names the kind and the reason."""


def normalise_identifier(kind: str, value: str) -> str:
    """Canonical form of a raw identifier.

    First, every kind: Unicode NFKC, zero-width and other format characters (category ``Cf``)
    removed (:func:`fraudgraph.redaction.canonical_text`; ASCII text is unchanged), trimmed. Then:

    - email: lower-cased
    - ip: canonical IPv4/IPv6 text (``ipaddress``), IPv4-mapped IPv6 folded to IPv4
    - subnet (the value is an IP address): the network it is in, ``/24`` for IPv4 and ``/48`` for IPv6
      (:data:`SUBNET_PREFIX`), as canonical text such as ``203.0.113.0/24``
    - device: trimmed
    - card: trimmed fingerprint; a raw card number (13-19 digits passing Luhn) is rejected
    """
    if kind not in IDENTIFIER_KINDS:
        raise IdentifierError(f"unknown identifier kind {kind!r}")
    if not isinstance(value, str):
        raise IdentifierError(f"{kind}: expected a string, got {type(value).__name__}")
    text = canonical_text(value).strip()
    if not text:
        raise IdentifierError(f"{kind}: empty value")
    if kind == "email":
        if "@" not in text:
            raise IdentifierError("email: not a valid email address")
        return text.lower()
    if kind in ("ip", "subnet"):
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            raise IdentifierError(f"{kind}: not a valid IPv4 or IPv6 address") from None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if kind == "subnet":
            return ipaddress.ip_network((addr, SUBNET_PREFIX[addr.version]), strict=False).compressed
        return addr.compressed
    if kind == "card" and looks_like_card_number(text):
        raise IdentifierError("card: looks like a raw card number; only fingerprints are accepted")
    return text


def resolve_pii_key(configured: str | None = None, key_file: str | None = None) -> tuple[bytes, bool]:
    """The HMAC key and whether it is the built-in demo key.

    Order: ``configured`` (privacy.pii_key), ``key_file`` (privacy.pii_key_file),
    the ``FRAUDGRAPH_PII_KEY`` environment variable, then the demo key with a warning.
    """
    if configured:
        return configured.encode(), configured == DEMO_PII_KEY
    if key_file:
        text = Path(key_file).read_text().strip()
        if not text:
            raise IdentifierError(f"privacy.pii_key_file {key_file}: file is empty")
        return text.encode(), False
    env = os.environ.get(PII_KEY_ENV)
    if env:
        return env.encode(), env == DEMO_PII_KEY
    return DEMO_PII_KEY.encode(), True


class IdentifierHasher:
    """Normalises and hashes identifiers with one HMAC key.

    >>> h = IdentifierHasher(b"k")
    >>> h.hash("email", " A@B.com ") == h.hash("email", "a@b.com")
    True
    """

    def __init__(self, key: bytes, hex_chars: int = 32, *, demo_key: bool = False):
        if not key:
            raise IdentifierError("empty PII key")
        self._key = key
        self.hex_chars = hex_chars
        self.demo_key = demo_key
        if demo_key:
            log.warning(
                "Using the built-in DEMO PII key: identifier hashes are NOT private. "
                "Set %s or privacy.pii_key_file for real data.",
                PII_KEY_ENV,
            )

    @classmethod
    def from_settings(cls, privacy: PrivacySettings) -> IdentifierHasher:
        key, demo = resolve_pii_key(privacy.pii_key, privacy.pii_key_file)
        if demo and not getattr(privacy, "allow_demo_key", False):
            raise IdentifierError(
                f"no PII key: set {PII_KEY_ENV} or privacy.pii_key_file (privacy.allow_demo_key: "
                "true runs with the public demo key, for synthetic data only)"
            )
        return cls(key, privacy.hash_hex_chars, demo_key=demo)

    @property
    def key_fingerprint(self) -> str:
        """A fingerprint of the key (not the key) and of the normalisation rule, ``<16 hex>/rule<N>``: what a
        graph records to refuse a process that would hash its identifiers differently."""
        digest = hmac.new(self._key, b"fraudgraph:pii-key-fingerprint", hashlib.sha256).hexdigest()[:16]
        return f"{digest}/rule{NORMALISATION_RULE}"

    def hash_normalised(self, kind: str, normalised: str) -> str:
        digest = hmac.new(self._key, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()
        return digest[: self.hex_chars]

    def hash(self, kind: str, value: str) -> str:
        """Keyed hash of a raw identifier value (normalised first)."""
        return self.hash_normalised(kind, normalise_identifier(kind, value))
