"""The consumer's link-event log: every link event it applies, keyed hashes only, in the layout of a
snapshot's ``link_events.parquet`` (``LINK_EVENT_COLUMNS``), one JSONL file per day of event time
(``DIR/YYYY-MM-DD.jsonl``, UTC). Point-in-time training rebuilds the past from link events, not from the
graph's lifetime totals: with this log beside the ETL snapshot's, a retrain sees the live weeks exactly
as the consumer applied them.

A step's rows are appended before its journal is committed: a crash in between re-delivers those events
and they are logged again, so :func:`read_link_event_log` keeps one row per ``(event_id, kind,
value_hash)``. Raw identifiers never reach it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .history import LINK_EVENT_COLUMNS


class LinkEventLog:
    """Appends link-event rows (``LINK_EVENT_COLUMNS`` tuples) to ``folder``, one file per day."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def append(self, rows: Sequence[tuple]) -> None:
        by_day: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            day = dt.datetime.fromtimestamp(int(row[4]) / 1000, dt.UTC).date().isoformat()
            by_day[day].append(json.dumps(dict(zip(LINK_EVENT_COLUMNS, row))))
        for day, lines in by_day.items():
            with (self.folder / f"{day}.jsonl").open("a") as f:
                f.write("\n".join(lines) + "\n")


def read_link_event_log(folder: str | Path, until_ms: int | None = None) -> pd.DataFrame:
    """Every logged link event (up to ``until_ms``, epoch ms, when given), one row per ``(event_id, kind,
    value_hash)``, in ``LINK_EVENT_COLUMNS`` order, sorted by time."""
    rows = [
        json.loads(line)
        for path in sorted(Path(folder).glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    frame = pd.DataFrame.from_records(rows, columns=LINK_EVENT_COLUMNS)
    if until_ms is not None:
        frame = frame.loc[frame["ts"] <= until_ms]
    frame = frame.drop_duplicates(["event_id", "kind", "value_hash"], keep="first")
    return frame.sort_values(["ts", "event_id", "kind", "value_hash"], kind="stable").reset_index(drop=True)


def link_events_until(etl_snapshot: str | Path, event_log: str | Path | None, until_ms: int) -> pd.DataFrame:
    """The ETL snapshot's link events and the consumer's logged ones (``event_log``, when it exists) up to
    ``until_ms`` (epoch ms, inclusive), once each, sorted by time: the graph's link history as of then."""
    frames = [pd.read_parquet(Path(etl_snapshot) / "link_events.parquet", columns=LINK_EVENT_COLUMNS)]
    if event_log is not None and Path(event_log).is_dir():
        frames.append(read_link_event_log(event_log, until_ms=until_ms))
    events = pd.concat(frames, ignore_index=True)
    events = events.loc[events["ts"] <= until_ms].drop_duplicates(["event_id", "kind", "value_hash"])
    return events.sort_values(["ts", "event_id", "kind", "value_hash"], kind="stable").reset_index(drop=True)
