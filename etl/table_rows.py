"""Per-row checks of the customer, block and appeal tables, driven by the input contract: one pandas
implementation that the Spark job applies to each partition and the pandas reference to whole tables.

A row that fails a check is a reject (``field``, ``reason``, the row redacted) and never reaches the
graph, the snapshot or the Neptune CSV; the job goes on with the rest. Nothing is written before every
row is checked, so one bad value cannot abort a job half-way. Per column kind
(:data:`etl.contract.CONTRACT`):

- ``id``: present, matching ``privacy.id_pattern``, not a card number or an email address
  (:func:`fraudgraph.redaction.id_problem`);
- ``timestamp``: present when required, parseable, not before 1970 and not more than a day after the
  wall clock;
- ``number``: when present, a finite number of at least 0 (``1e999`` is not a lifetime value).

Events are checked by :func:`fraudgraph.event_frames.validate_and_hash`, with the same rules for ids
and times.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import pandas as pd

from etl.contract import CONTRACT
from fraudgraph.event_frames import AFTER_WALL_CLOCK, BEFORE_1970, FUTURE_SLACK_MS
from fraudgraph.redaction import id_problem, redact_payload
from fraudgraph.timeutil import now_ms, to_epoch_ms

if TYPE_CHECKING:
    from fraudgraph.identity import IdentifierHasher

CHECKED_TABLES = ("customers", "blocks", "appeals")
REJECT_COLUMNS = ("reject_field", "reject_reason", "record")


def _time_problem(value, required: bool, latest_ms: int) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return "missing" if required else None
    try:
        ms = to_epoch_ms(value)
    except (ValueError, TypeError, OverflowError, OSError):
        return "not a parseable timestamp"
    if ms < 0:
        return BEFORE_1970
    if ms > latest_ms:
        return AFTER_WALL_CLOCK
    return None


def _number_problem(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "not a number"
    if not math.isfinite(number):
        return "not a finite number"
    return "must be greater than or equal to 0" if number < 0 else None


def check_table_rows(frame: pd.DataFrame, table: str, hasher: IdentifierHasher, id_pattern: str) -> pd.DataFrame:
    """``frame`` with ``reject_field``, ``reject_reason`` and ``record`` (the row redacted) set on the rows that
    fail a check of ``table``'s contract (the first failing column names the reason), None elsewhere."""
    latest = now_ms() + FUTURE_SLACK_MS
    field = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    reason = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for column in CONTRACT[table]:
        if column.name not in frame:
            continue
        values = frame[column.name].astype(object).where(frame[column.name].notna(), None)
        if column.kind == "id":
            why = values.map(lambda v: "missing" if v is None or not str(v).strip() else id_problem(str(v), id_pattern))
        elif column.kind == "timestamp":
            why = values.map(lambda v, required=column.required: _time_problem(v, required, latest))
        elif column.kind == "number":
            why = values.map(_number_problem)
        else:
            continue
        new = why.notna() & field.isna()
        field[new], reason[new] = column.name, why[new]
    out = frame.copy()
    out["reject_field"], out["reject_reason"] = field, reason
    bad = field.notna()
    records = [
        redact_payload(json.dumps(row, default=str), hasher)["payload"]
        for row in frame.loc[bad].astype(object).where(frame.loc[bad].notna(), None).to_dict("records")
    ]
    out["record"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    out.loc[bad, "record"] = pd.Series(records, index=frame.index[bad], dtype=object)
    return out


def valid_rows(
    frame: pd.DataFrame, table: str, hasher: IdentifierHasher, id_pattern: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(the rows that pass, the rejects with field, reason and redacted record)`` of a pandas table."""
    checked = check_table_rows(frame, table, hasher, id_pattern)
    bad = checked["reject_reason"].notna()
    return frame.loc[~bad], checked.loc[bad, list(REJECT_COLUMNS)]
