"""What may leave through errors: payloads and free text with no raw identifier, card number or email.

Dead letters (the consumer's and the ETL's rejects) keep why an input was refused and enough to find
it (event id, field names, its size), never the raw values: identifiers are replaced by their keyed
hash (:class:`fraudgraph.identity.IdentifierHasher`), digit runs that pass the Luhn check and email
addresses anywhere else are masked, and the payload is capped below the sink's message limit with the
original size noted. Free text that the product stores (block reasons, outcomes, channels, review
notes) is screened with :func:`mask_free_text` the same way.
"""

from __future__ import annotations

import json
import re
from typing import Any

# identifier fields of an event and their kinds: their one home (fraudgraph.schema derives EVENT_FIELD_BY_KIND)
IDENTIFIER_FIELDS = {"device_id": "device", "ip": "ip", "email": "email", "card_fingerprint": "card"}
MAX_DEAD_LETTER_BYTES = 8 * 1024

_EMAIL = re.compile(r"[^\s@\"'<>(),;:\[\]]+@[^\s@\"'<>(),;:\[\]]+\.[A-Za-z]{2,}")
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){11,18}")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (payment card numbers pass it)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def mask_free_text(text: str) -> str:
    """``text`` with email addresses replaced by ``[email]`` and 12-19 digit runs (spaces or dashes
    allowed) that pass the Luhn check by ``[card]``."""
    text = _EMAIL.sub("[email]", text)

    def card(m: re.Match) -> str:
        digits = re.sub(r"[ -]", "", m.group(0))
        return "[card]" if luhn_valid(digits) else m.group(0)

    return _DIGIT_RUN.sub(card, text)


def redact_record(record: dict[str, Any], hasher) -> dict[str, Any]:
    """A JSON object with identifier fields replaced by ``hash:<keyed hash>`` (``[redacted]`` when the
    value cannot be hashed) and every other string screened; nested values are screened as text."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        key = mask_free_text(str(key))[:100]
        if key in IDENTIFIER_FIELDS and value is not None:
            try:
                out[key] = "hash:" + hasher.hash(IDENTIFIER_FIELDS[key], str(value))
            except (ValueError, TypeError):
                out[key] = "[redacted]"
        elif isinstance(value, str):
            out[key] = mask_free_text(value)
        elif isinstance(value, (dict, list)):
            out[key] = mask_free_text(json.dumps(value, default=str))
        else:
            out[key] = value
    return out


def redact_payload(payload: str | bytes, hasher, max_bytes: int = MAX_DEAD_LETTER_BYTES) -> dict[str, Any]:
    """``{"payload": redacted text, "payload_bytes": original size, "truncated": bool, "fields": [...]}``
    for a dead letter. A JSON object keeps its shape with :func:`redact_record`; anything else (bytes
    that are not UTF-8, hostile or broken JSON) is screened as text. Never raises."""
    size = len(payload) if isinstance(payload, bytes) else len(payload.encode("utf-8", errors="replace"))
    text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload
    fields: list[str] = []
    head = text[: 4 * max_bytes]  # never parse or scan more than a bounded prefix
    redacted = None
    if size <= 4 * max_bytes:
        try:
            record = json.loads(head)
            if isinstance(record, dict):
                fields = [mask_free_text(str(k))[:100] for k in record][:50]
                redacted = json.dumps(redact_record(record, hasher), sort_keys=True, default=str)
        except (ValueError, RecursionError):
            redacted = None
    if redacted is None:
        redacted = mask_free_text(head)
    encoded = redacted.encode("utf-8")
    truncated = len(encoded) > max_bytes
    if truncated:
        redacted = encoded[:max_bytes].decode("utf-8", errors="ignore")
        redacted = mask_free_text(redacted)  # a cut may not split what the mask has to see
    return {
        "payload": redacted,
        "payload_bytes": size,
        "truncated": truncated or size > 4 * max_bytes,
        "fields": fields,
    }
