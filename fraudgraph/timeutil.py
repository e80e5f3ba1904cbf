"""The one time codec: every instant inside fraudgraph is an ``int`` of UTC epoch milliseconds.

Tables and messages may carry ISO-8601 strings, datetimes or epoch numbers; they
are converted here, once, at the edge (:func:`to_epoch_ms`). As-of times, link
times, signup and block times are all plain ints from then on. Durations are
written as multiples of the constants below, never as literal millisecond counts.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
# "No as-of given": later than any event (fits SQLite's and Gremlin's 64-bit integers).
END_OF_TIME_MS = 2**62


# A number below this is epoch seconds (until the year 5138), at or above it epoch milliseconds (from
# 1973-03-03): tables exported with either unit load the same.
EPOCH_SECONDS_BELOW = 10**11


def epoch_number_ms(value: int | float) -> int:
    """Epoch ms of an epoch number in seconds or milliseconds (:data:`EPOCH_SECONDS_BELOW`)."""
    return int(value * 1000) if abs(value) < EPOCH_SECONDS_BELOW else int(value)


def to_epoch_ms(value: Any) -> int:
    """UTC epoch milliseconds from a datetime (naive means UTC), ISO-8601 string or number.

    Numbers (and strings of digits) are epoch seconds below :data:`EPOCH_SECONDS_BELOW`, epoch
    milliseconds above. Raises ``ValueError`` otherwise.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("not a finite timestamp")
        return epoch_number_ms(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty timestamp")
        if text.lstrip("-").isdigit():
            return epoch_number_ms(int(text))
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        value = dt.datetime.fromisoformat(text)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp() * 1000)
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        return to_epoch_ms(value.to_pydatetime())
    raise ValueError(f"unsupported timestamp type {type(value).__name__}")


def from_epoch_ms(ms: int) -> dt.datetime:
    """A timezone-aware UTC datetime."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def iso_utc(ms: int) -> str:
    """``2025-01-01T00:00:00Z`` (milliseconds kept when not zero)."""
    return from_epoch_ms(ms).isoformat().replace("+00:00", "Z")


def as_of_or_end(as_of_ms: int | None) -> int:
    """``as_of_ms``, or :data:`END_OF_TIME_MS` when None (everything visible)."""
    return END_OF_TIME_MS if as_of_ms is None else int(as_of_ms)


def now_ms() -> int:
    """The wall clock, in UTC epoch milliseconds."""
    return int(time.time() * 1000)


def series_epoch_ms(values: pd.Series) -> pd.Series:
    """Epoch ms (int64) of a pandas Series of datetimes or ISO-8601 strings (the tables' and the JSONL
    stream's times)."""
    import pandas as pd

    if not pd.api.types.is_datetime64_any_dtype(values):
        values = pd.to_datetime(values, utc=True, format="ISO8601")
    return pd.to_datetime(values, utc=True).dt.as_unit("ms").astype("int64")


def days(ms: float) -> float:
    """A duration in milliseconds, in days."""
    return ms / DAY_MS
