"""Validation and identifier hashing of event tables, vectorised for batch jobs.

The Spark ETL applies :func:`validate_and_hash` to each partition (as a
pandas function), and the pandas reference applies it to the whole table:
one implementation of the Event contract's checks (the same per-field
checkers as :class:`fraudgraph.schema.Event`) and of normalisation and keyed
hashing (:class:`fraudgraph.identity.IdentifierHasher`).
"""

from __future__ import annotations

import pandas as pd

from .event_tags import EventTagger
from .identity import IdentifierHasher
from .redaction import DEFAULT_ID_PATTERN, id_problem, mask_free_text, redact_payload, screened_id
from .schema import EVENT_FIELD_BY_KIND, EVENT_TAGS, EVENT_TYPES, IDENTIFIER_PROBLEMS
from .timeutil import DAY_MS, now_ms, to_epoch_ms

EVENT_COLUMNS = [
    "event_id",
    "event_type",
    "ts",
    "customer_id",
    "device_id",
    "ip",
    "email",
    "card_fingerprint",
    "amount",
    "channel",
]
HASH_COLUMN_BY_KIND = {kind: f"{kind}_hash" for kind in EVENT_FIELD_BY_KIND}
# Columns of the validated, hashed event table (no raw identifier survives; the tags read off them do).
HASHED_EVENT_COLUMNS = [
    "event_id", "event_type", "ts_ms", "customer_id", *HASH_COLUMN_BY_KIND.values(), "amount", *EVENT_TAGS
]  # fmt: skip
FUTURE_SLACK_MS = DAY_MS  # a historical table's event stamped later than this after the wall clock is a reject
BEFORE_1970 = "before 1970-01-01, not an event time"
AFTER_WALL_CLOCK = "more than a day after the wall clock"
REJECT_COLUMNS = ["event_id", "customer_id", "event_type", "field", "reason", "record"]


def _blank_to_none(s: pd.Series) -> pd.Series:
    s = s.astype(object).where(s.notna(), None)
    return s.map(
        lambda v: (
            None
            if v is None or (isinstance(v, str) and not v.strip())
            else (v.strip() if isinstance(v, str) else str(v))
        )
    )


def _timestamps_ms(s: pd.Series) -> pd.Series:
    """Epoch ms (Int64, NA where unparseable) from datetimes, ISO strings or epoch-ms numbers."""
    if pd.api.types.is_datetime64_any_dtype(s):
        ts = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
        return ts.dt.as_unit("ms").astype("int64").astype("Int64").where(ts.notna(), pd.NA)

    def one(v):
        if v is None or (isinstance(v, float) and v != v):
            return pd.NA
        try:
            return to_epoch_ms(v)
        except (ValueError, TypeError, OverflowError, OSError):
            return pd.NA

    return s.map(one).astype("Int64")


# Over 60 lines for a reason: one vectorised check per Event field, in the contract's order: the first check a
# row fails is its reject reason, so the order is the logic.
def validate_and_hash(
    frame: pd.DataFrame, hasher: IdentifierHasher, tagger: EventTagger, id_pattern: str = DEFAULT_ID_PATTERN
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split an event table into ``(valid hashed events, rejects)``.

    ``frame`` has the Event columns (missing optional ones are treated as empty).
    The first failing check of a row is its reason: ``"<field>: <reason>"``.
    Valid rows come back with ``ts_ms`` (UTC epoch ms) and ``<kind>_hash``
    columns instead of raw identifiers, and one column per event tag read off the raw values first
    (:class:`fraudgraph.event_tags.EventTagger`). Rejects keep the record as redacted JSON
    (:func:`fraudgraph.redaction.redact_payload`: no raw identifier), with ``field`` and ``reason``;
    their id and type columns are screened (:func:`fraudgraph.redaction.screened_id`). Ids are checked
    against ``id_pattern`` (``privacy.id_pattern``) as the consumer checks them.
    """
    df = frame.copy()
    for col in EVENT_COLUMNS:
        if col not in df:
            df[col] = None
    n = len(df)
    field = pd.Series([None] * n, index=df.index, dtype=object)
    reason = pd.Series([None] * n, index=df.index, dtype=object)

    def flag(mask: pd.Series, fld: str, why) -> None:
        mask = mask & field.isna()
        if mask.any():
            field[mask] = fld
            reason[mask] = why if isinstance(why, str) else why[mask]

    for col in ("event_id", "customer_id", "event_type", "device_id", "ip", "email", "card_fingerprint"):
        df[col] = _blank_to_none(df[col])
    flag(df["event_id"].isna(), "event_id", "missing")
    flag(df["customer_id"].isna(), "customer_id", "missing")
    for col in ("event_id", "customer_id"):
        problems = {v: id_problem(v, id_pattern) for v in df[col].dropna().unique()}
        why = df[col].map(lambda v, problems=problems: problems.get(v) if v is not None else None)
        flag(why.notna(), col, why)
    flag(df["event_type"].isna(), "event_type", "missing")
    flag(~df["event_type"].isin(EVENT_TYPES) & df["event_type"].notna(), "event_type", "unknown event type")
    ts_ms = _timestamps_ms(df["ts"])
    flag(df["ts"].isna(), "ts", "missing")
    flag(ts_ms.isna(), "ts", "not a parseable timestamp")
    flag(ts_ms.fillna(0) < 0, "ts", BEFORE_1970)
    flag(ts_ms.fillna(0) > now_ms() + FUTURE_SLACK_MS, "ts", AFTER_WALL_CLOCK)
    for col, check in IDENTIFIER_PROBLEMS.items():
        values = df[col].dropna().unique()
        problems = {v: check(v) for v in values}
        why = df[col].map(lambda v, problems=problems: problems.get(v) if v is not None else None)
        flag(why.notna(), col, why)
    amount = pd.to_numeric(df["amount"], errors="coerce")
    flag(df["amount"].notna() & amount.isna(), "amount", "not a number")
    flag(amount < 0, "amount", "must be greater than or equal to 0")

    bad = field.notna()
    rejects = _rejects(frame, df, bad, field, reason, hasher, id_pattern)
    ok = df.loc[~bad]
    out = pd.DataFrame(
        {
            "event_id": ok["event_id"],
            "event_type": ok["event_type"],
            "ts_ms": ts_ms[~bad].astype("int64"),
            "customer_id": ok["customer_id"],
        }
    )
    for kind, col in EVENT_FIELD_BY_KIND.items():
        values = ok[col].dropna().unique()
        hashes = {v: hasher.hash(kind, v) for v in values}
        out[HASH_COLUMN_BY_KIND[kind]] = ok[col].map(lambda v, hashes=hashes: hashes.get(v) if v is not None else None)
    out["amount"] = amount[~bad].astype("float64")
    tags = tagger.frame_tags(ok.assign(amount=amount[~bad]))
    for tag in EVENT_TAGS:
        out[tag] = tags[tag].to_numpy()
    out.loc[out["ip_carrier_nat"] > 0, HASH_COLUMN_BY_KIND["subnet"]] = None  # EventTagger.identifiers_of's rule
    return out.reset_index(drop=True), rejects.reset_index(drop=True)


def _rejects(
    frame: pd.DataFrame,
    df: pd.DataFrame,
    bad: pd.Series,
    field: pd.Series,
    reason: pd.Series,
    hasher: IdentifierHasher,
    id_pattern: str,
) -> pd.DataFrame:
    """The rejected rows (``bad``) with their field and reason, id and type columns screened, and the record
    as a redacted dead letter: identifiers as keyed hashes, card numbers and emails masked."""
    lines = (
        frame.loc[bad].to_json(orient="records", lines=True, date_format="iso", date_unit="ms").splitlines()
        if bad.any()
        else []
    )
    return pd.DataFrame(
        {
            "event_id": df.loc[bad, "event_id"].map(lambda v: screened_id(v, id_pattern)),
            "customer_id": df.loc[bad, "customer_id"].map(lambda v: screened_id(v, id_pattern)),
            "event_type": df.loc[bad, "event_type"].map(lambda v: None if v is None else mask_free_text(v)[:64]),
            "field": field[bad],
            "reason": reason[bad],
            "record": [redact_payload(line, hasher)["payload"] for line in lines],
        },
        columns=REJECT_COLUMNS,
    )
