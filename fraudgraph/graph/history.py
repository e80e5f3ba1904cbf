"""The identity graph as of any moment, rebuilt exactly from the hashed link-event table.

The graph store serves the present: a link keeps its lifetime first/last seen and counts. What
learns or judges must see the graph as the consumer saw it when it decided, so the snapshot also
holds ``link_events.parquet`` (written by the Spark ETL, see :mod:`fraudgraph.graph.snapshot`):
one row per identifier an event carried, with ``event_id``, ``customer_id``, ``kind``,
``value_hash`` (keyed hash, never the raw value), ``ts`` (epoch ms UTC) and ``event_type``.
Label events (block, unblock, appeal) are never in it.

:class:`LinkHistory` answers, for any time ``t``, exactly what the store would have answered had
it received only the events up to ``t``:

- a link is visible when first seen at or before ``t``; its ``last_seen``, ``event_count`` and
  ``count_<type>`` count only events up to ``t``;
- an identifier's degree, first-seen range and event total count only links and events up to ``t``;
- a customer's link summary (its own features) likewise.

:meth:`LinkHistory.scoring_inputs` builds, for many ``(customer, t)`` decision points at once, the
same inputs online scoring reads from the store (:meth:`fraudgraph.scoring.online.OnlineScorer.
scoring_inputs`): the customer's links, the capped lowest-id customers of each of its
identifiers with their links to it, the identifiers' statistics and every member's link summary.
Every decision point becomes its own small subgraph; all of them are put side by side in one frame
set whose times are shifted so that each decision point sits at one common as-of (every feature is
a difference of two times, so the shift changes nothing) and whose ids are integers that keep the
lowest-id order inside each decision point. One call of
:func:`fraudgraph.ml.features.build_graph_tensors` then builds every decision point's features
with the code online scoring uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..arrays import ranges, segment_searchsorted, sorted_unique
from ..schema import EVENT_TAGS, IDENTIFIER_KINDS, LINK_COUNT_PROPERTIES, LINK_EVENT_TYPES
from .elements import IDENTIFIER_STATS_COLUMNS, LINK_FRAME_COLUMNS, LINK_SUMMARY_COLUMNS
from .scoring_inputs import ScoringInputs

# one row per identifier an identity event carried, with the event's tags (fraudgraph.event_tags)
LINK_EVENT_COLUMNS = ["event_id", "customer_id", "kind", "value_hash", "ts", "event_type", *EVENT_TAGS]
TYPE_CODE = {t: i for i, t in enumerate(LINK_EVENT_TYPES)}
KIND_CODE = {k: i for i, k in enumerate(IDENTIFIER_KINDS)}
# identifiers with more links than this are walked one decision point at a time (hubs)
_VECTOR_SEGMENT_MAX = 256


class LinkHistory:
    """Every link event of the snapshot, indexed to answer "the graph as of t" for many t at once.

    Args:
        link_events: ``LINK_EVENT_COLUMNS`` (label events are dropped if present).
        customers: ``customer_id`` and ``signup_ts`` (epoch ms; other columns ignored).
    """

    # Over 60 lines for a reason: it builds, in one pass, the columnar arrays every point-in-time query reads
    # (codes, time-sorted events, per-link prefix counts); each array is indexed by the ones before it.
    def __init__(self, link_events: pd.DataFrame, customers: pd.DataFrame):
        ev = link_events.loc[link_events["event_type"].isin(LINK_EVENT_TYPES)]
        cust_ids = np.union1d(customers["customer_id"].astype(str).to_numpy(), ev["customer_id"].astype(str).to_numpy())
        self.customer_ids = cust_ids.astype(object)  # code -> id, in id order (lowest id = lowest code)
        self.customer_code = pd.Index(self.customer_ids)
        rows = self.customer_code.get_indexer(customers["customer_id"].astype(str))
        # signup, and the latest block and unblock known to the snapshot (the day-one rules and the
        # blocked-customers feature compare them with each decision point's time)
        self.signup_ts, self.blocked_at, self.unblocked_at = (
            _per_customer(customers, name, rows, len(cust_ids)) for name in ("signup_ts", "blocked_at", "unblocked_at")
        )

        c = self.customer_code.get_indexer(ev["customer_id"].astype(str).to_numpy())
        kind = ev["kind"].map(KIND_CODE).to_numpy(np.int64)
        ident_key = pd.MultiIndex.from_arrays([kind, ev["value_hash"].astype(str).to_numpy()])
        i, ident_uniques = pd.factorize(ident_key, sort=True)
        self.ident_kind = np.asarray([IDENTIFIER_KINDS[k] for k in ident_uniques.get_level_values(0)], dtype=object)
        self.ident_hash = np.asarray(ident_uniques.get_level_values(1), dtype=object)
        self.n_customers, self.n_idents = len(cust_ids), len(ident_uniques)
        ts = ev["ts"].to_numpy(np.int64)
        etype = ev["event_type"].map(TYPE_CODE).to_numpy(np.int64)
        counts = _event_counts(ev, etype)

        # links: one per (customer, identifier); events sorted by (link, ts)
        link_key = c.astype(np.int64) * self.n_idents + i
        self.link_key, link_of_event = np.unique(link_key, return_inverse=True)
        self.link_customer = (self.link_key // self.n_idents).astype(np.int64)
        self.link_ident = (self.link_key % self.n_idents).astype(np.int64)
        order = np.lexsort((ts, link_of_event))
        self.ev_ts = ts[order]
        self.ev_cum = np.cumsum(np.vstack([np.zeros((1, counts.shape[1]), np.int64), counts[order]]), axis=0)
        # row p: the counts of the first p events (by link)
        self.link_start = np.searchsorted(link_of_event[order], np.arange(len(self.link_key)), "left")
        self.link_end = np.searchsorted(link_of_event[order], np.arange(len(self.link_key)), "right")
        self.link_first = self.ev_ts[self.link_start]

        # identifiers: links sorted by first seen (degree at t) and by customer (the capped members)
        by_first = np.lexsort((self.link_first, self.link_ident))
        self.ident_link_first = self.link_first[by_first]
        self.ident_first_start = np.searchsorted(self.link_ident[by_first], np.arange(self.n_idents), "left")
        self.ident_first_end = np.searchsorted(self.link_ident[by_first], np.arange(self.n_idents), "right")
        by_customer = np.lexsort((self.link_customer, self.link_ident))  # link keys are (customer, ident)
        self.ident_members = by_customer  # link indices, per identifier in customer (id) order
        self.ident_member_start = self.ident_first_start  # same segment bounds: grouped by identifier
        self.ident_member_end = self.ident_first_end
        ident_ev_order = np.lexsort((ts, i))
        self.ident_ev_ts = ts[ident_ev_order]
        self.ident_ev_start = np.searchsorted(i[ident_ev_order], np.arange(self.n_idents), "left")
        self.ident_ev_end = np.searchsorted(i[ident_ev_order], np.arange(self.n_idents), "right")

        # customers: events by time (events and per-type counts), link first-seen per kind
        cust_order = np.lexsort((ts, c))
        self.cust_ev_ts = ts[cust_order]
        self.cust_ev_cum = np.cumsum(np.vstack([np.zeros((1, counts.shape[1]), np.int64), counts[cust_order]]), axis=0)
        self.cust_ev_start = np.searchsorted(c[cust_order], np.arange(self.n_customers), "left")
        self.cust_ev_end = np.searchsorted(c[cust_order], np.arange(self.n_customers), "right")
        link_kind = (
            np.array([KIND_CODE[k] for k in self.ident_kind], dtype=np.int64)[self.link_ident]
            if len(self.link_ident)
            else np.zeros(0, np.int64)
        )
        ck = self.link_customer * len(IDENTIFIER_KINDS) + link_kind
        ck_order = np.lexsort((self.link_first, ck))
        self.ck_first = self.link_first[ck_order]
        keys = np.arange(self.n_customers * len(IDENTIFIER_KINDS))
        self.ck_start = np.searchsorted(ck[ck_order], keys, "left")
        self.ck_end = np.searchsorted(ck[ck_order], keys, "right")
        # a customer's links, by customer (own links of a decision point)
        self.cust_link_start = np.searchsorted(self.link_customer, np.arange(self.n_customers), "left")
        self.cust_link_end = np.searchsorted(self.link_customer, np.arange(self.n_customers), "right")

    # ------------------------------------------------------------ construction
    @classmethod
    def read(cls, snapshot_dir: str | Path) -> LinkHistory:
        d = Path(snapshot_dir)
        path = d / "link_events.parquet"
        if not path.exists():
            raise FileNotFoundError(
                f"snapshot {d}: missing link_events.parquet (written by fraudgraph etl "
                "--snapshot); point-in-time training needs it"
            )
        return cls(pd.read_parquet(path, columns=LINK_EVENT_COLUMNS), pd.read_parquet(d / "customers.parquet"))

    # ------------------------------------------------------------ point lookups
    def _link_state(self, links: np.ndarray, t: np.ndarray):
        """(visible, first, last, count, per-type counts) of links at times t (elementwise)."""
        start, end = self.link_start[links], self.link_end[links]
        p = segment_searchsorted(self.ev_ts, start, end, t)
        count = p - start
        visible = count > 0
        last = np.where(visible, self.ev_ts[np.maximum(p - 1, 0)], 0)
        per_type = self.ev_cum[p] - self.ev_cum[start]
        return visible, self.link_first[links], last, count, per_type

    def _identifier_stats(self, idents: np.ndarray, t: np.ndarray):
        """(degree, first_seen_min, first_seen_max, events) of identifiers at times t."""
        start, end = self.ident_first_start[idents], self.ident_first_end[idents]
        p = segment_searchsorted(self.ident_link_first, start, end, t)
        degree = p - start
        first_min = self.ident_link_first[start]
        first_max = self.ident_link_first[np.maximum(p - 1, start)]
        q = segment_searchsorted(self.ident_ev_ts, self.ident_ev_start[idents], self.ident_ev_end[idents], t)
        return degree, first_min, first_max, q - self.ident_ev_start[idents]

    def _customer_summary(self, cust: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """``LINK_SUMMARY_COLUMNS`` (without customer_id) of customers at times t."""
        start = self.cust_ev_start[cust]
        p = segment_searchsorted(self.cust_ev_ts, start, self.cust_ev_end[cust], t)
        has = p > start
        out = {
            "first_link": np.where(
                has, self.cust_ev_ts[np.minimum(start, len(self.cust_ev_ts) - 1)] if len(self.cust_ev_ts) else 0, np.nan
            )
        }
        for k, kind in enumerate(IDENTIFIER_KINDS):
            key = cust * len(IDENTIFIER_KINDS) + k
            out[f"identifiers_{kind}"] = (
                segment_searchsorted(self.ck_first, self.ck_start[key], self.ck_end[key], t) - self.ck_start[key]
            )
        out["events"] = p - start
        per_type = self.cust_ev_cum[p] - self.cust_ev_cum[start]
        for j, col in enumerate(LINK_COUNT_PROPERTIES.values()):
            out[col] = per_type[:, j]
        return out

    # ------------------------------------------------------------ whole graph
    def links_as_of(self, as_of_ms: int) -> pd.DataFrame:
        """Every link visible at ``as_of_ms`` with its properties up to then (``LINK_FRAME_COLUMNS``)."""
        links = np.arange(len(self.link_key))
        visible, first, last, count, per_type = self._link_state(links, np.full(len(links), as_of_ms, np.int64))
        frame = pd.DataFrame(
            {
                "customer_id": self.customer_ids[self.link_customer[visible]],
                "kind": self.ident_kind[self.link_ident[visible]],
                "value_hash": self.ident_hash[self.link_ident[visible]],
                "first_seen": first[visible],
                "last_seen": last[visible],
                "event_count": count[visible],
            }
        )
        for j, col in enumerate(LINK_COUNT_PROPERTIES.values()):
            frame[col] = per_type[visible, j]
        return frame[LINK_FRAME_COLUMNS]

    # ------------------------------------------------------------ decision points
    # Over 60 lines for a reason: one vectorised pass over every decision point at once (shifted times, visible
    # links, capped fan-out); its intermediate arrays are large and kept local on purpose.
    def scoring_inputs(self, customer_ids: ArrayLike, times_ms: ArrayLike, fanout_cap: int) -> ScoringInputs:
        """The scoring subgraph of every decision point ``(customer_ids[e], times_ms[e])``, side by side."""
        times = np.asarray(times_ms, dtype=np.int64)
        n_ex = len(times)
        target = self.customer_code.get_indexer(pd.Index(np.asarray(customer_ids, dtype=object).astype(str)))
        as_of = int(times.max()) if n_ex else 0
        shift = as_of - times  # added to every time of decision point e

        # own links of each decision point's customer, visible at t
        known = target >= 0
        lens = np.where(
            known, self.cust_link_end[np.maximum(target, 0)] - self.cust_link_start[np.maximum(target, 0)], 0
        )
        own_ex = np.repeat(np.arange(n_ex), lens)
        own_link = ranges(self.cust_link_start[np.maximum(target, 0)][known], lens[known])
        own_visible = self.link_first[own_link] <= times[own_ex]
        own_ex, own_link = own_ex[own_visible], own_link[own_visible]

        # identifiers of each decision point and their capped visible members (lowest ids first)
        pair_ex, pair_ident = own_ex, self.link_ident[own_link]
        member_ex, member_link = self._capped_members(pair_ex, pair_ident, times, fanout_cap)

        # links of the subgraph: own links plus members' links (a customer in both is kept once)
        all_ex = np.concatenate([own_ex, member_ex])
        all_link = np.concatenate([own_link, member_link])
        uniq = (
            sorted_unique(all_ex.astype(np.int64) * len(self.link_key) + all_link)
            if len(all_link)
            else np.zeros(0, np.int64)
        )
        all_ex, all_link = uniq // max(len(self.link_key), 1), uniq % max(len(self.link_key), 1)
        t = times[all_ex]
        _, first, last, count, per_type = self._link_state(all_link, t)
        node_c = all_ex * self.n_customers + self.link_customer[all_link]
        node_i = all_ex * self.n_idents + self.link_ident[all_link]
        links = pd.DataFrame(
            {
                "customer_id": node_c,
                "kind": self.ident_kind[self.link_ident[all_link]],
                "value_hash": node_i,
                "first_seen": first + shift[all_ex],
                "last_seen": last + shift[all_ex],
                "event_count": count,
            }
        )
        for j, col in enumerate(LINK_COUNT_PROPERTIES.values()):
            links[col] = per_type[:, j]

        stats = self._identifier_stats_frame(node_i, all_ex, all_link, times, shift)

        # member customers (the targets too): signup and link summary at t
        target_nodes = np.where(known, np.arange(n_ex) * self.n_customers + np.maximum(target, 0), -1)
        cust_nodes = sorted_unique(np.concatenate([node_c, target_nodes[known]]))
        ex_c, cust = cust_nodes // self.n_customers, cust_nodes % self.n_customers
        signup = self.signup_ts[cust] + shift[ex_c]
        customers = pd.DataFrame(
            {
                "customer_id": cust_nodes,
                "signup_ts": signup,
                "blocked_at": self.blocked_at[cust] + shift[ex_c],
                "unblocked_at": self.unblocked_at[cust] + shift[ex_c],
            }
        )
        summary_cols = self._customer_summary(cust, times[ex_c])
        summary_cols["first_link"] = summary_cols["first_link"] + shift[ex_c]
        summary = pd.DataFrame({"customer_id": cust_nodes, **summary_cols})[LINK_SUMMARY_COLUMNS]
        linked = sorted_unique(node_c)
        has_links = (target_nodes >= 0) & np.isin(target_nodes, linked, kind="sort")
        return ScoringInputs(customers, links, as_of, stats, summary, np.where(has_links, target_nodes, -1))

    def _identifier_stats_frame(
        self, node_i: np.ndarray, all_ex: np.ndarray, all_link: np.ndarray, times: np.ndarray, shift: np.ndarray
    ) -> pd.DataFrame:
        """``IDENTIFIER_STATS_COLUMNS`` of the subgraph's identifier nodes at their decision point's time: the
        full, uncapped view (degree, first-seen range and events), times shifted as the links' are."""
        ident_nodes, first_row = np.unique(node_i, return_index=True)
        ex_i, ident = all_ex[first_row], self.link_ident[all_link][first_row]
        degree, fmin, fmax, ievents = self._identifier_stats(ident, times[ex_i])
        return pd.DataFrame(
            {
                "kind": self.ident_kind[ident],
                "value_hash": ident_nodes,
                "degree": degree,
                "first_seen_min": fmin + shift[ex_i],
                "first_seen_max": fmax + shift[ex_i],
                "events": ievents,
            }
        )[IDENTIFIER_STATS_COLUMNS]

    def _capped_members(
        self, pair_ex: np.ndarray, pair_ident: np.ndarray, times: np.ndarray, cap: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(decision point, link) of the ``cap`` lowest-id customers visible on each identifier at t."""
        seg_start, seg_end = self.ident_member_start[pair_ident], self.ident_member_end[pair_ident]
        seg_len = seg_end - seg_start
        small = seg_len <= _VECTOR_SEGMENT_MAX
        ex_s = np.repeat(pair_ex[small], seg_len[small])
        links_s = self.ident_members[ranges(seg_start[small], seg_len[small])]
        pair_s = np.repeat(np.arange(small.sum()), seg_len[small])
        keep = self.link_first[links_s] <= times[ex_s]
        ex_s, links_s, pair_s = ex_s[keep], links_s[keep], pair_s[keep]
        # rank inside each (decision point, identifier): segments are already in customer order
        if len(pair_s):
            starts = np.r_[0, np.flatnonzero(pair_s[1:] != pair_s[:-1]) + 1]
            rank = np.arange(len(pair_s)) - np.repeat(starts, np.diff(np.r_[starts, len(pair_s)]))
            ex_s, links_s = ex_s[rank < cap], links_s[rank < cap]
        parts_ex, parts_link = [ex_s], [links_s]
        for e, s, n in zip(pair_ex[~small], seg_start[~small], seg_len[~small]):  # hubs
            members = self.ident_members[s : s + n]
            chosen = members[np.flatnonzero(self.link_first[members] <= times[e])[:cap]]
            parts_ex.append(np.full(len(chosen), e, dtype=np.int64))
            parts_link.append(chosen)
        return np.concatenate(parts_ex).astype(np.int64), np.concatenate(parts_link).astype(np.int64)


def _per_customer(customers: pd.DataFrame, name: str, rows: np.ndarray, n: int) -> np.ndarray:
    """Column ``name`` of ``customers`` (epoch ms) placed at their customer codes ``rows``; NaN elsewhere
    and where the column is missing."""
    out = np.full(n, np.nan)
    if name in customers:
        out[rows] = pd.to_numeric(customers[name], errors="coerce").to_numpy(float)
    return out


def _event_counts(ev: pd.DataFrame, etype: np.ndarray) -> np.ndarray:
    """``(len(ev), len(LINK_COUNT_PROPERTIES))``: what each link event adds to each count, 1 for its type
    (``etype``, the type codes), then its tags."""
    counts = np.zeros((len(ev), len(LINK_COUNT_PROPERTIES)), dtype=np.int64)
    counts[np.arange(len(ev)), etype] = 1
    for j, tag in enumerate(EVENT_TAGS):
        if tag in ev:
            counts[:, len(LINK_EVENT_TYPES) + j] = pd.to_numeric(ev[tag], errors="coerce").fillna(0).to_numpy(np.int64)
    return counts
