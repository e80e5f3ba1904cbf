"""The one screening rule for every string that is stored or leaves: no raw identifier, card number or email.

- :func:`canonical_text`: Unicode NFKC with zero-width and other format characters removed, the first
  step of identifier normalisation (:func:`fraudgraph.identity.normalise_identifier`) and of screening
  (a card number split by a zero-width space or written in fullwidth digits is still one).
- :func:`mask_free_text`: card numbers in any common layout (13-19 digits in groups split by spaces,
  dots, dashes or slashes, passing the Luhn check, wherever they start inside a run of groups) become
  ``[card]``, a run of more than 19 bare digits ``[digits]``, email addresses ``[email]``. Free text the
  product stores (block reasons, outcomes, channels, review notes), error reasons, field names and
  log lines go through it.
- :func:`id_problem`: an event or customer id must match the declared pattern (``privacy.id_pattern``)
  and must not hold a card number; :func:`screened_id` is what an error may say of an id.
- Dead letters (the consumer's and the ETL's rejects) keep why an input was refused and enough to find
  it (event id, field names, its size), never the raw values: identifiers are replaced by their keyed
  hash (:class:`fraudgraph.identity.IdentifierHasher`), and a payload that cannot be read as an object
  has its identifier fields' values and every IP address masked as well. The payload is capped below
  the sink's message limit with the original size noted.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .identity import IdentifierHasher

# identifier fields of an event and their kinds: their one home (fraudgraph.schema derives EVENT_FIELD_BY_KIND)
IDENTIFIER_FIELDS = {"device_id": "device", "ip": "ip", "email": "email", "card_fingerprint": "card"}
MAX_DEAD_LETTER_BYTES = 8 * 1024
# what an event or customer id may look like unless privacy.id_pattern says otherwise
DEFAULT_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"

_EMAIL = re.compile(r"[^\s@\"'<>(),;:\[\]]+@[^\s@\"'<>(),;:\[\]]+\.[A-Za-z]{2,}")
_NUMBER_GROUPS = re.compile(r"[0-9]+(?:[ .\-/][0-9]+)*")  # digit groups split by one separator each
_GROUP = re.compile(r"[0-9]+")
_CARD_DIGITS = (13, 19)
_LABEL = re.compile(r"^[A-Za-z]+[ .\-/:_]")  # a label before a number: "C-", "cust:"
_FIELD_NAMES = "|".join(IDENTIFIER_FIELDS)
_FIELD_VALUE = re.compile(r'("(?:' + _FIELD_NAMES + r')"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^,}\s]*)', re.IGNORECASE)
_IPV4 = re.compile(r"(?<![0-9])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9])")
_IPV6 = re.compile(r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Za-z:])")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (payment card numbers pass it)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def canonical_text(text: str) -> str:
    """``text`` in Unicode NFKC with format characters (zero-width spaces and joiners, direction marks,
    the byte-order mark: category ``Cf``) removed. ASCII text without them is returned unchanged."""
    if text.isascii():
        return text
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf")


def _card_spans(run: str) -> list[tuple[int, int, str]]:
    """``(start, end, mask)`` of the card numbers in one run of digit groups, in order:

    1. from each group on, the longest span of whole groups holding 13-19 digits that passes the Luhn
       check (``4111 1111 1111 1111``, ``ticket 12 4111111111111111``);
    2. in what is left, a card glued to other digits at one end: 13-19 digits passing Luhn that start
       at a group's first digit or end at its last (``4111111111111111123``); the groups it touches
       are masked whole, so no part of it is left;
    3. a group of more than 19 digits still unmasked is masked whole (``[digits]``: too long to tell).
    """
    groups = [(m.start(), m.end()) for m in _GROUP.finditer(run)]
    masked = [False] * len(groups)
    spans: list[tuple[int, int, str]] = []
    low, high = _CARD_DIGITS

    def mark(first: int, last: int, label: str = "[card]") -> None:
        spans.append((groups[first][0], groups[last][1], label))
        masked[first : last + 1] = [True] * (last - first + 1)

    i = 0
    while i < len(groups):
        digits, best = "", None
        for j in range(i, len(groups)):
            digits += run[groups[j][0] : groups[j][1]]
            if len(digits) > high:
                break
            if len(digits) >= low and luhn_valid(digits):
                best = j
        if best is not None:
            mark(i, best)
            i = best + 1
        else:
            i += 1
    for i in range(len(groups)):
        if masked[i]:
            continue
        ends, digits, j = [], "", i  # forwards from group i's first digit
        while j < len(groups) and not masked[j] and len(digits) < high:
            digits += run[groups[j][0] : groups[j][1]]
            ends.append(len(digits))
            j += 1
        hit = next((n for n in range(min(high, len(digits)), low - 1, -1) if luhn_valid(digits[:n])), None)
        if hit is not None:
            mark(i, i + next(k for k, e in enumerate(ends) if e >= hit))
            continue
        starts, digits, k = [], "", i  # backwards from group i's last digit
        while k >= 0 and not masked[k] and len(digits) < high:
            digits = run[groups[k][0] : groups[k][1]] + digits
            starts.append(len(digits))
            k -= 1
        hit = next((n for n in range(min(high, len(digits)), low - 1, -1) if luhn_valid(digits[-n:])), None)
        if hit is not None:
            mark(i - next(m for m, e in enumerate(starts) if e >= hit), i)
    for i, (a, b) in enumerate(groups):
        if not masked[i] and b - a > high:
            mark(i, i, "[digits]")
    return sorted(spans)


def _mask_cards(text: str) -> str:
    def run(m: re.Match) -> str:
        out, at = [], 0
        for start, end, mask in _card_spans(m.group(0)):
            out += [m.group(0)[at:start], mask]
            at = end
        return "".join(out) + m.group(0)[at:]

    return _NUMBER_GROUPS.sub(run, text)


def mask_free_text(text: str) -> str:
    """``text`` (in :func:`canonical_text` form) with email addresses replaced by ``[email]``, card
    numbers in any common layout by ``[card]`` and bare runs of more than 19 digits by ``[digits]``."""
    return _mask_cards(_EMAIL.sub("[email]", canonical_text(text)))


def contains_card_number(text: str) -> bool:
    """Does ``text`` hold a card number (or a bare run of digits too long to tell) in any layout?"""
    return _mask_cards(canonical_text(text)) != canonical_text(text)


def looks_like_card_number(value: str, *, labelled: bool = False) -> bool:
    """Is ``value`` a card number: 13-19 digits passing Luhn, in any layout?

    ``labelled=False`` (card fingerprints): the whole value. ``labelled=True`` (ids): a value made of
    digits and separators only, after an optional label (``C-``, ``cust:``), holding a card number
    anywhere, glued to other digits included (``4111111111111111123``, ``C-5500-0000-0000-0004``).
    A value that mixes letters and digits is not searched: a random hex id holds a Luhn-valid run of
    13 digits now and then (free text is searched everywhere instead, :func:`mask_free_text`)."""
    text = canonical_text(value).strip()
    for candidate in (text, _LABEL.sub("", text, count=1)) if labelled else (text,):
        digits = re.sub(r"[ .\-/]", "", candidate)
        if not (digits.isascii() and digits.isdigit()):
            continue
        if labelled and "[card]" in _mask_cards(candidate):
            return True
        if _CARD_DIGITS[0] <= len(digits) <= _CARD_DIGITS[1] and luhn_valid(digits):
            return True
    return False


def id_problem(value: str, pattern: str = DEFAULT_ID_PATTERN) -> str | None:
    """Why ``value`` is not an acceptable event or customer id (never echoing it), or None: a card number
    or an email address is refused whatever the pattern, then the id must match ``pattern``."""
    if looks_like_card_number(value, labelled=True) or _EMAIL.search(canonical_text(value)):
        return "looks like a card number or an email address, not an id"
    if not re.fullmatch(pattern, value):
        return "does not match the id pattern (privacy.id_pattern)"
    return None


def screened_id(value: Any, pattern: str = DEFAULT_ID_PATTERN) -> str | None:
    """What an error, a log line or a dead letter may say of an id: the id when it is acceptable, its
    screened form (capped) when not, None when there is none."""
    if value is None:
        return None
    text = str(value)
    return text if id_problem(text, pattern) is None else mask_free_text(text)[:64]


def mask_unreadable_payload(text: str) -> str:
    """Text that could not be read as an event object, screened for a dead letter: the values of the
    identifier fields (``"ip": ...``) and every IPv4 or IPv6 address masked, then :func:`mask_free_text`."""
    text = _FIELD_VALUE.sub(lambda m: m.group(1) + '"[redacted]"', text)
    text = _IPV6.sub(lambda m: "[ip]" if m.group(0).count(":") >= 2 and len(m.group(0)) > 2 else m.group(0), text)
    return mask_free_text(_IPV4.sub("[ip]", text))


def redact_record(record: dict[str, Any], hasher: IdentifierHasher) -> dict[str, Any]:
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


def redact_payload(
    payload: str | bytes, hasher: IdentifierHasher, max_bytes: int = MAX_DEAD_LETTER_BYTES
) -> dict[str, Any]:
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
        redacted = mask_unreadable_payload(head)
    encoded = redacted.encode("utf-8")
    truncated = len(encoded) > max_bytes
    if truncated:
        redacted = encoded[:max_bytes].decode("utf-8", errors="ignore")
        redacted = mask_unreadable_payload(redacted)  # a cut may not split what the mask has to see
    return {
        "payload": redacted,
        "payload_bytes": size,
        "truncated": truncated or size > 4 * max_bytes,
        "fields": fields,
    }
