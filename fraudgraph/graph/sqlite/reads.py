"""Reads of the SQLite identity graph: one customer, neighbourhoods, scoring inputs as of a time, exports."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from ...schema import EDGE_LABEL_BY_KIND
from ...timeutil import as_of_or_end
from ..base import IdentityGraph
from ..elements import (
    LINK_FRAME_COLUMNS,
    LINK_SUMMARY_COLUMNS,
    LinkedIdentifier,
    Neighbourhood,
    SharedIdentifier,
    chunked,
    empty_stats,
)
from ..scoring_inputs import ScoringInputs
from .schema import (
    COUNT_COLUMNS,
    COUNT_SUMS,
    COUNTS,
    KIND_SUMS,
    SUMMARY_VALUES,
    frame,
    link_props,
)
from .scoring_read import identifier_stats, identifier_summaries, read_scoring_inputs

if TYPE_CHECKING:
    from ..elements import PropertyValue


class SqliteReads(IdentityGraph):
    """The read half of :class:`~fraudgraph.graph.sqlite.SqliteIdentityGraph` (calls serialise on its lock)."""

    _db: sqlite3.Connection
    _lock: threading.RLock
    fanout_cap: int
    uri: str

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def identity(self, customer_id: str) -> list[LinkedIdentifier]:
        rows = self._query(
            "SELECT l.kind, l.value_hash, l.first_seen, l.last_seen, l.event_count, "
            + ", ".join(f"l.{c}" for c in COUNTS)
            + ", "
            "(SELECT count(*) FROM link d WHERE d.kind = l.kind AND d.value_hash = l.value_hash) "
            "FROM link l WHERE l.customer_id = ? ORDER BY l.kind, l.value_hash",
            (customer_id,),
        )
        return [LinkedIdentifier(r[0], r[1], link_props(*r[2:-1]), r[-1]) for r in rows]

    def scoring_inputs(self, customer_ids: Sequence[str], as_of_ms: int, fanout_cap: int) -> ScoringInputs:
        """The base class's scoring subgraph in one read transaction and fewer queries
        (:mod:`fraudgraph.graph.sqlite.scoring_read`)."""
        with self._lock:
            inputs, recompute = read_scoring_inputs(self._db, customer_ids, as_of_ms, fanout_cap)
        if recompute:  # customers with links first seen after as-of: their summaries say too much
            extra = self._link_summary(recompute, as_of_ms)
            summary = pd.concat([inputs.customer_summary, extra], ignore_index=True)
            inputs.customer_summary = summary.sort_values("customer_id", kind="stable", ignore_index=True)
        return inputs

    def neighbourhoods(self, customer_ids: Sequence[str], fanout_cap: int | None = None) -> dict[str, Neighbourhood]:
        cap = self.fanout_cap if fanout_cap is None else fanout_cap
        ids = list(dict.fromkeys(customer_ids))
        # one indexed query per customer and per identifier: measured faster here than one join or window
        # query over all of them; degrees come from the identifier summary table in one lookup
        with self._lock:
            db = self._db
            own = {
                cid: db.execute(
                    f"SELECT kind, value_hash, first_seen, last_seen, event_count, {COUNT_COLUMNS} FROM link "
                    "WHERE customer_id = ? ORDER BY kind, value_hash",
                    (cid,),
                ).fetchall()
                for cid in ids
            }
            idents = sorted({(kind, h) for links in own.values() for kind, h, *_ in links})
            kept = self._identifier_summaries(idents)
            # one more than the cap, so the centre itself can be dropped
            first = {
                (kind, h): [
                    r[0]
                    for r in db.execute(
                        "SELECT customer_id FROM link WHERE kind = ? AND value_hash = ? ORDER BY customer_id LIMIT ?",
                        (kind, h, cap + 1),
                    )
                ]
                for kind, h in idents
            }
        out = {}
        for cid, links in own.items():
            out[cid] = Neighbourhood(
                cid,
                tuple(
                    SharedIdentifier(
                        kind,
                        h,
                        kept[(kind, h)][0],
                        tuple([c for c in first[(kind, h)] if c != cid][:cap]),
                        link_props(*props),
                    )
                    for kind, h, *props in links
                ),
            )
        return out

    def stats(self) -> dict[str, dict[str, int]]:
        stats = empty_stats()
        with self._lock:
            stats["vertices"]["customer"] = self._db.execute("SELECT count(*) FROM customer").fetchone()[0]
            for kind, n in self._db.execute("SELECT kind, count(*) FROM identifier GROUP BY kind"):
                stats["vertices"][kind] = n
            for kind, n in self._db.execute("SELECT kind, count(*) FROM link GROUP BY kind"):
                stats["edges"][EDGE_LABEL_BY_KIND[kind]] = n
        return stats

    def customers_of(self, customer_ids: Sequence[str], properties: Sequence[str] | None = None) -> pd.DataFrame:
        ids = sorted(set(customer_ids))
        if properties is not None:
            names = list(dict.fromkeys(properties))
            for name in names:
                if not name.replace("_", "").isalnum():
                    raise ValueError(f"property name {name!r}: letters, digits and _ only")
            picked = ", ".join(f"json_extract(props, '$.{n}')" for n in names)
            rows: list[tuple] = []
            with self._lock:
                for chunk in chunked(ids, 500):
                    marks = ",".join("?" * len(chunk))
                    rows += self._db.execute(
                        f"SELECT id, {picked} FROM customer WHERE id IN ({marks}) ORDER BY id", chunk
                    ).fetchall()
            return pd.DataFrame(rows, columns=["customer_id", *names])
        records = []
        for chunk in chunked(ids, 500):
            marks = ",".join("?" * len(chunk))
            rows = self._query(f"SELECT id, props FROM customer WHERE id IN ({marks}) ORDER BY id", tuple(chunk))
            records += [{"customer_id": cid, **json.loads(props)} for cid, props in rows]
        return pd.DataFrame.from_records(records, columns=None if records else ["customer_id"])

    def _customer_links(self, customer_ids: Sequence[str]) -> pd.DataFrame:
        ids = sorted(set(customer_ids))
        rows: list[tuple] = []
        with self._lock:
            for chunk in chunked(ids, 500):
                marks = ",".join("?" * len(chunk))
                rows += self._db.execute(
                    f"SELECT customer_id, kind, value_hash, first_seen, last_seen, event_count, {COUNT_COLUMNS} "
                    f"FROM link WHERE customer_id IN ({marks}) ORDER BY customer_id, kind, value_hash",
                    tuple(chunk),
                ).fetchall()
        return frame(rows, LINK_FRAME_COLUMNS, 3)

    def _identifier_summaries(self, identifiers) -> dict[tuple[str, str], tuple[int, int, int, int]]:
        """``{(kind, value_hash): (degree, first_seen_min, first_seen_max, events)}`` over all links;
        call with the lock held."""
        return identifier_summaries(self._db, identifiers)

    def _identifier_stats(self, identifiers: Sequence[tuple[str, str]], as_of_ms: int | None = None) -> pd.DataFrame:
        """From the kept summary when every link of the identifier is visible at as-of (the live case);
        computed from its links otherwise."""
        with self._lock:
            return identifier_stats(self._db, identifiers, as_of_or_end(as_of_ms))

    def _link_summary(self, customer_ids: Sequence[str], as_of_ms: int | None = None) -> pd.DataFrame:
        """From the kept summary when every link of the customer is visible at as-of (the live case);
        computed from its links otherwise."""
        limit = as_of_or_end(as_of_ms)
        ids = sorted(set(customer_ids))
        rows: list[tuple] = []
        recompute: list[str] = []
        with self._lock:
            for chunk in chunked(ids, 500):
                marks = ",".join("?" * len(chunk))
                for cid, latest, *values in self._db.execute(
                    f"SELECT customer_id, latest_link, first_link, {', '.join(SUMMARY_VALUES)} "
                    f"FROM customer_link_summary WHERE customer_id IN ({marks})",
                    chunk,
                ):
                    if latest <= limit:
                        rows.append((cid, *values))
                    else:
                        recompute.append(cid)
            for chunk in chunked(recompute, 500):
                marks = ",".join("?" * len(chunk))
                rows += self._db.execute(
                    f"SELECT customer_id, min(first_seen), {KIND_SUMS}, sum(event_count), {COUNT_SUMS} "
                    f"FROM link WHERE customer_id IN ({marks}) AND first_seen <= ? "
                    "GROUP BY customer_id",
                    (*chunk, limit),
                ).fetchall()
        rows.sort(key=lambda r: r[0])
        return frame(rows, LINK_SUMMARY_COLUMNS, 1)

    def _identifier_links(
        self, identifiers: Sequence[tuple[str, str]], limit: int, as_of_ms: int | None = None
    ) -> pd.DataFrame:
        as_of = as_of_or_end(as_of_ms)
        rows: list[tuple] = []
        with self._lock:
            for kind, h in sorted(set(identifiers)):
                rows += self._db.execute(
                    f"SELECT customer_id, kind, value_hash, first_seen, last_seen, event_count, {COUNT_COLUMNS} "
                    "FROM link WHERE kind = ? AND value_hash = ? AND first_seen <= ? ORDER BY customer_id LIMIT ?",
                    (kind, h, as_of, int(limit)),
                ).fetchall()
        return frame(rows, LINK_FRAME_COLUMNS, 3)

    def customers_with(self, prop: str, value: PropertyValue) -> pd.DataFrame:
        if not prop.replace("_", "").isalnum():
            raise ValueError(f"property name {prop!r}: letters, digits and _ only")
        rows = self._query(
            f"SELECT id, props FROM customer WHERE json_extract(props, '$.{prop}') = ? ORDER BY id", (value,)
        )
        records = [{"customer_id": cid, **json.loads(props)} for cid, props in rows]
        return pd.DataFrame.from_records(records, columns=None if records else ["customer_id"])

    def customers_frame(self) -> pd.DataFrame:
        rows = self._query("SELECT id, props FROM customer ORDER BY id")
        records = [{"customer_id": cid, **json.loads(props)} for cid, props in rows]
        return pd.DataFrame.from_records(records, columns=None if records else ["customer_id"])

    def links_frame(self) -> pd.DataFrame:
        rows = self._query(
            f"SELECT customer_id, kind, value_hash, first_seen, last_seen, event_count, {COUNT_COLUMNS} FROM link "
            "ORDER BY customer_id, kind, value_hash"
        )
        return frame(rows, LINK_FRAME_COLUMNS, 3)
