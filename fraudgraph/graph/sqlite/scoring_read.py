"""The SQLite store's one scoring read: a scoring subgraph in one read transaction and few queries
(and the identifier summary and statistics reads it shares with the store's other reads).

It returns what :meth:`fraudgraph.graph.IdentityGraph.scoring_inputs` returns on any store (a test
compares the two), read the way the online path needs it: every scoring request of the API and every
micro-batch of the consumer makes this read, so its number of queries is its cost.

- An identifier's links to its ``cap + 1`` lowest-id customers are read once and serve both its
  neighbourhood (who is on it) and its shared links (the ``cap`` lowest of those first seen by
  as-of); only an identifier where a link among them was first seen after as-of is read again.
- Each identifier's kept summary is read once for its statistics.
- Every member's properties and link summary come from one join.
- All of it is read in one transaction: one state of the graph, even while a consumer writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import pandas as pd

from ...timeutil import as_of_or_end
from ..elements import IDENTIFIER_STATS_COLUMNS, LINK_FRAME_COLUMNS, LINK_SUMMARY_COLUMNS, chunked
from ..scoring_inputs import CUSTOMER_PROPERTIES, ScoringInputs
from .schema import COUNT_COLUMNS, SUMMARY_VALUES, by_kind, frame

_LINK_COLUMNS = f"customer_id, kind, value_hash, first_seen, last_seen, event_count, {COUNT_COLUMNS}"
_FIRST_SEEN = LINK_FRAME_COLUMNS.index("first_seen")


def read_scoring_inputs(
    db: sqlite3.Connection, customer_ids: Sequence[str], as_of_ms: int, cap: int
) -> tuple[ScoringInputs, list[str]]:
    """``(inputs, customers to recompute)``: the scoring subgraph of ``customer_ids`` as of ``as_of_ms``
    at fan-out cap ``cap``, read on ``db`` (the caller holds the store's lock). The link summaries of the
    customers in the second list were written after as-of: the caller aggregates their links."""
    ids = list(dict.fromkeys(customer_ids))
    limit = as_of_or_end(as_of_ms)
    own_transaction = not db.in_transaction
    if own_transaction:
        db.execute("BEGIN")
    try:
        own = _links_of_customers(db, ids)
        idents = sorted({(r[1], r[2]) for r in own})
        lowest = {
            (kind, h): db.execute(
                f"SELECT {_LINK_COLUMNS} FROM link WHERE kind = ? AND value_hash = ? ORDER BY customer_id LIMIT ?",
                (kind, h, cap + 1),
            ).fetchall()
            for kind, h in idents
        }
        shared = [row for ident in idents for row in _shared_links(db, ident, lowest[ident], limit, cap)]
        stats = identifier_stats(db, idents, limit)
        seen = {r[:3] for r in shared}
        links = frame([r for r in own if r[:3] not in seen] + shared, LINK_FRAME_COLUMNS, 3)
        # who is in each scored customer's neighbourhood: the cap lowest others on each of its identifiers
        near = {c for cid, kind, h, *_ in own for c in [r[0] for r in lowest[(kind, h)] if r[0] != cid][:cap]}
        members = sorted(set(ids) | set(links["customer_id"]) | near)
        customers, summary, recompute = _customers_and_summaries(db, members, set(links["customer_id"]), limit)
    finally:
        if own_transaction:
            db.execute("COMMIT")
    return ScoringInputs(customers, links, as_of_ms, stats, summary), recompute


def _links_of_customers(db: sqlite3.Connection, ids: Sequence[str]) -> list[tuple]:
    """Every link of the customers, in their given order, each customer's by kind and value hash."""
    rows: list[tuple] = []
    for chunk in chunked(ids, 500):
        rows += db.execute(
            f"SELECT {_LINK_COLUMNS} FROM link WHERE customer_id IN ({','.join('?' * len(chunk))})", tuple(chunk)
        ).fetchall()
    order = {c: i for i, c in enumerate(ids)}
    return sorted(rows, key=lambda r: (order[r[0]], r[1], r[2]))


def _shared_links(
    db: sqlite3.Connection, ident: tuple[str, str], lowest: list[tuple], limit: int, cap: int
) -> list[tuple]:
    """The links of the ``cap`` lowest-id customers first seen on ``ident`` by ``limit``, from its
    ``cap + 1`` lowest-id links when they hold them (all the identifier's links, or at least ``cap``
    first seen by then); read again otherwise."""
    visible = [r for r in lowest if r[_FIRST_SEEN] <= limit]
    if len(lowest) <= cap or len(visible) >= cap:
        return visible[:cap]
    return db.execute(
        f"SELECT {_LINK_COLUMNS} FROM link WHERE kind = ? AND value_hash = ? AND first_seen <= ? "
        "ORDER BY customer_id LIMIT ?",
        (*ident, limit, cap),
    ).fetchall()


def identifier_summaries(
    db: sqlite3.Connection, identifiers: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    """``{(kind, value_hash): (degree, first_seen_min, first_seen_max, events)}`` over all links, from
    the kept summaries (one query per kind)."""
    kept = {}
    for kind, hashes in by_kind(sorted(set(identifiers))).items():
        for part in chunked(hashes, 500):
            for h, *values in db.execute(
                "SELECT value_hash, degree, first_seen_min, first_seen_max, events FROM identifier_link_summary "
                f"WHERE kind = ? AND value_hash IN ({','.join('?' * len(part))})",
                (kind, *part),
            ):
                kept[(kind, h)] = tuple(values)
    return kept


def identifier_stats(db: sqlite3.Connection, identifiers: Sequence[tuple[str, str]], limit: int) -> pd.DataFrame:
    """Degree, first-seen range and events of each identifier over its links first seen by ``limit``
    (``IDENTIFIER_STATS_COLUMNS``, in identifier order): its kept summary when every link of it is that
    old (the live case), aggregated otherwise."""
    kept = identifier_summaries(db, identifiers)
    rows = []
    for kind, h in sorted(set(identifiers)):
        summary = kept.get((kind, h))
        if summary is not None and summary[2] <= limit:
            rows.append((kind, h, *summary))
            continue
        n, fmin, fmax, ev = db.execute(
            "SELECT count(*), min(first_seen), max(first_seen), coalesce(sum(event_count), 0) FROM link "
            "WHERE kind = ? AND value_hash = ? AND first_seen <= ?",
            (kind, h, limit),
        ).fetchone()
        if n:
            rows.append((kind, h, n, fmin, fmax, ev))
    return frame(rows, IDENTIFIER_STATS_COLUMNS, 2)


def _customers_and_summaries(
    db: sqlite3.Connection, members: list[str], linked: set[str], limit: int
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """``(properties of members, link summaries of the linked ones, linked ones whose summary is newer
    than as-of)`` in one join (every link write ensures its customer's row)."""
    picked = ", ".join(f"json_extract(c.props, '$.{n}')" for n in CUSTOMER_PROPERTIES)
    rows: list[tuple] = []
    for chunk in chunked(members, 500):
        rows += db.execute(
            f"SELECT c.id, {picked}, s.latest_link, s.first_link, {', '.join('s.' + v for v in SUMMARY_VALUES)} "
            "FROM customer c LEFT JOIN customer_link_summary s ON s.customer_id = c.id "
            f"WHERE c.id IN ({','.join('?' * len(chunk))}) ORDER BY c.id",
            chunk,
        ).fetchall()
    width = 1 + len(CUSTOMER_PROPERTIES)
    customers = pd.DataFrame([r[:width] for r in rows], columns=["customer_id", *CUSTOMER_PROPERTIES])
    summaries, recompute = [], []
    for r in rows:
        if r[0] not in linked or r[width] is None:
            continue
        if r[width] <= limit:
            summaries.append((r[0], *r[width + 1 :]))
        else:
            recompute.append(r[0])
    return customers, frame(summaries, LINK_SUMMARY_COLUMNS, 1), recompute
