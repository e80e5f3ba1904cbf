"""Identity features: the one place training and serving compute them (no train/serve skew).

Input is plain data: a customer table and an identity-link table in the
snapshot layout (:mod:`fraudgraph.graph.snapshot`), and the as-of time. Output
is an :class:`IdentityGraphTensors`: a heterograph with both edge
directions (index tensors, a DGL graph on demand) and float32 feature matrices for every node and edge type.

Features (all ``log1p`` of non-negative quantities, standardised later by
:class:`fraudgraph.ml.scaling.FeatureScaler`):

- customer (``CUSTOMER_FEATURES``): account age in days at as-of, identifiers per kind, events, events per
  type, and from the event tags (:mod:`fraudgraph.event_tags`) the share of its link events with each tag
  flag, spend per payment and payments per day of account age. Never the customer's own label, block or
  score, nor its lifetime value (the model uses identity data alone; value is for the decision rules).
- identifier (``IDENTIFIER_FEATURES``): degree (customers linked), age in days
  since first seen, events, and the span in days between the first and the last
  customer to appear on it (a burst of new accounts has a short span).
- edge (``EDGE_FEATURES``, same on both directions but the last): events, age
  = as-of - first_seen, recency = as-of - last_seen, days between the customer's
  signup and the link's first use, the event-type mix, the share of the link's
  events with each tag flag, the spend per payment on the link, and, on the identifier ->
  customer direction only, ``other_customers_blocked``: how many of the *other*
  customers the identifier aggregates (the fan-out cap's lowest ids) stand
  blocked at as-of (blocked at or before it, not unblocked since: the
  ``blocked_at`` / ``unblocked_at`` properties). That is fraud the team already
  knew when it decided, the signal of a hijacked account logging in on a device
  a blocked ring member used. A customer's own block never reaches its own
  score: it is left out of the count on its own incoming edges, the customer ->
  identifier direction carries 0, and no customer feature reads a block, a label
  or an appeal (a customer whose block stands is not scored at all:
  :func:`fraudgraph.scoring.rules.block_stands`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraudgraph.arrays import log1p_nonneg, node_ids, numeric_column, positions_in, rank_within, sorted_unique
from fraudgraph.graph.scoring_inputs import ScoringInputs
from fraudgraph.ml._dgl_compat import import_dgl
from fraudgraph.ml.edge_lists import EdgeLists
from fraudgraph.ml.identifier_features import identifier_features, split_by_kind
from fraudgraph.schema import (
    CUSTOMER,
    EDGE_LABEL_BY_KIND,
    EVENT_TAG_FLAGS,
    IDENTIFIER_KINDS,
    LINK_COUNT_KEYS,
    LINK_COUNT_PROPERTIES,
    LINK_EVENT_TYPES,
    block_stands,
)
from fraudgraph.timeutil import DAY_MS

CUSTOMER_FEATURES = [
    "account_age_days",
    *(f"identifiers_{k}" for k in IDENTIFIER_KINDS),
    "events",
    *(f"events_{t}" for t in LINK_EVENT_TYPES),
    *(f"share_{tag}" for tag in EVENT_TAG_FLAGS),
    "amount_per_payment",
    "payments_per_day",
]
EDGE_FEATURES = [
    "events",
    "age_days",
    "recency_days",
    "days_after_signup",
    *(f"mix_{t}" for t in LINK_EVENT_TYPES),
    *(f"share_{tag}" for tag in EVENT_TAG_FLAGS),
    "amount_per_payment",
    "other_customers_blocked",
]
_AMOUNT = LINK_COUNT_KEYS.index("amount_units")
_PAYMENT = LINK_COUNT_KEYS.index("payment")
REVERSE_PREFIX = "rev_"


def relations() -> list[tuple[str, str, str]]:
    """Canonical edge types: customer -has_<kind>-> kind and kind -rev_has_<kind>-> customer."""
    out = []
    for kind in IDENTIFIER_KINDS:
        label = EDGE_LABEL_BY_KIND[kind]
        out += [(CUSTOMER, label, kind), (kind, REVERSE_PREFIX + label, CUSTOMER)]
    return out


@dataclass
class IdentityGraphTensors:
    """A heterograph over customers and identifiers with raw (unscaled) features.

    ``customer_ids[i]`` is the id of customer node ``i``; ``identifier_ids[kind][j]``
    the value hash of identifier node ``j`` of that kind. ``node_features[ntype]``
    is ``(num_nodes, n_features)``; ``edge_features[etype]`` ``(num_edges, n_edge_features)``;
    ``blocked[i]`` 1 where customer ``i``'s block stands at as-of (never a model input of its own: the
    RGCN reads it only through ``other_customers_blocked``, the baselines through their neighbours).
    ``edge_lists`` holds the structure; :attr:`graph`, the same structure as a DGL heterograph, is
    built on first use.
    """

    edge_lists: EdgeLists
    customer_ids: np.ndarray
    identifier_ids: dict[str, np.ndarray]
    node_features: dict[str, np.ndarray]
    edge_features: dict[str, np.ndarray]
    as_of_ms: int
    blocked: np.ndarray  # (num_customers,) 1 where the customer's block stands at as-of
    customer_index: dict[str, int] = field(default_factory=dict)
    _graph: Any = field(default=None, repr=False)

    @property
    def graph(self) -> Any:
        """The DGL heterograph of :attr:`edge_lists` (training, sampled scoring, the baselines)."""
        if self._graph is None:
            dgl = import_dgl()
            self._graph = dgl.heterograph(self.edge_lists.edges, num_nodes_dict=self.edge_lists.num_nodes)
        return self._graph

    def index_of(self, customer_ids: Iterable[str]) -> np.ndarray:
        if not self.customer_index:
            self.customer_index = {c: i for i, c in enumerate(self.customer_ids)}
        return np.array([self.customer_index[c] for c in customer_ids], dtype=np.int64)


def build_graph_tensors(inputs: ScoringInputs, *, fanout_cap: int | None = None) -> IdentityGraphTensors:
    """Build the heterograph and raw features of everything in ``inputs`` visible at its as-of.

    Links first seen after as-of and customers who signed up after it are left out (missing
    ``count_<type>`` columns count as 0). ``inputs.identifier_stats`` and ``inputs.customer_summary``,
    when given, override the identifier and customer features computed from ``inputs.links`` (see
    :class:`fraudgraph.graph.scoring_inputs.ScoringInputs`).

    ``fanout_cap``: an identifier aggregates messages from at most this many
    customers, those with the lowest ids (a public IP links thousands); the
    messages from identifiers to customers are all kept. The same rule in
    training, batch and online scoring keeps their scores equal.

    Plain numpy over the columns (no group-bys): the online scorer calls this
    for every micro-batch, so its fixed cost matters as much as its speed on a
    whole graph.
    """
    customers, links, as_of_ms = inputs.customers, inputs.links, inputs.as_of_ms
    identifier_stats, customer_summary = inputs.identifier_stats, inputs.customer_summary
    import torch

    lk = _VisibleLinks.of(links, as_of_ms)
    ids, c, start, customer_features = _customer_nodes(customers, lk, as_of_ms, customer_summary)
    blocked = blocked_as_of(customers, ids, as_of_ms)
    node_features = {CUSTOMER: customer_features}
    edge_all = _edge_features(lk, start[c], as_of_ms)
    graph_data, identifier_ids, edge_features = {}, {}, {}
    stats_by_kind = split_by_kind(identifier_stats)
    for kind in IDENTIFIER_KINDS:
        mask = lk.kind == kind
        uniq, inverse = np.unique(lk.value_hash[mask], return_inverse=True)
        inverse = inverse.reshape(-1)
        identifier_ids[kind] = uniq if uniq.dtype.kind in "iu" else uniq.astype(object)
        c_idx = c[mask]
        src = torch.as_tensor(c_idx, dtype=torch.int64)
        dst = torch.as_tensor(inverse, dtype=torch.int64)
        label = EDGE_LABEL_BY_KIND[kind]
        keep = np.ones(len(c_idx), dtype=bool)
        if fanout_cap is not None and len(c_idx):
            # customer indices follow customer_id order, so rank by index = rank by id
            keep = rank_within(inverse, c_idx) < fanout_cap
        keep_t = torch.as_tensor(keep)
        graph_data[(CUSTOMER, label, kind)] = (src[keep_t], dst[keep_t])
        graph_data[(kind, REVERSE_PREFIX + label, CUSTOMER)] = (dst, src)
        # blocked customers among those the identifier aggregates (the same capped set online), less the
        # receiving customer itself: on the identifier -> customer direction only
        blocked_on = np.bincount(inverse[keep], weights=blocked[c_idx[keep]], minlength=len(uniq))
        others = log1p_nonneg(blocked_on[inverse] - blocked[c_idx] * keep)[:, None].astype(np.float32)
        edges_of_kind = edge_all[mask]
        edge_features[label] = np.concatenate([edges_of_kind[keep], np.zeros((int(keep.sum()), 1), np.float32)], 1)
        edge_features[REVERSE_PREFIX + label] = np.concatenate([edges_of_kind, others], 1)
        node_features[kind] = identifier_features(
            uniq, inverse, lk.first[mask], lk.events[mask], as_of_ms, stats_by_kind.get(kind)
        )
    num_nodes = {CUSTOMER: len(ids), **{k: len(v) for k, v in identifier_ids.items()}}
    structure = EdgeLists(graph_data, num_nodes)
    return IdentityGraphTensors(structure, ids, identifier_ids, node_features, edge_features, int(as_of_ms), blocked)


@dataclass
class _VisibleLinks:
    """The links first seen by as-of, one entry per link: customer and identifier ids, first and last
    seen (epoch ms), event count and ``mix`` ``(n_links, len(LINK_COUNT_PROPERTIES))`` per-type counts."""

    customer: np.ndarray
    kind: np.ndarray
    value_hash: np.ndarray
    first: np.ndarray
    last: np.ndarray
    events: np.ndarray
    mix: np.ndarray

    @classmethod
    def of(cls, links: pd.DataFrame, as_of_ms: int) -> _VisibleLinks:
        first = numeric_column(links, "first_seen")
        visible = first <= as_of_ms
        first = first[visible]
        mix = (
            np.stack([numeric_column(links, col)[visible] for col in LINK_COUNT_PROPERTIES.values()], 1)
            if len(first)
            else np.zeros((0, len(LINK_COUNT_PROPERTIES)))
        )
        return cls(
            node_ids(links["customer_id"])[visible],
            links["kind"].to_numpy().astype(str)[visible],
            node_ids(links["value_hash"])[visible],
            first,
            numeric_column(links, "last_seen")[visible],
            numeric_column(links, "event_count")[visible],
            mix,
        )


def _customer_nodes(
    customers: pd.DataFrame, lk: _VisibleLinks, as_of_ms: int, customer_summary: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, link_node, start, features)``: the customer node ids (sorted; customers signed up by as-of
    and every linked one), each link's customer node, each customer's start (epoch ms: signup, else its
    first link, else as-of) and its ``(n_customers, len(CUSTOMER_FEATURES))`` features, where
    ``customer_summary`` overrides those of the customers it lists."""
    signup_all = numeric_column(customers, "signup_ts")
    visible_customer = np.isnan(signup_all) | (signup_all <= as_of_ms)
    customer_id = node_ids(customers["customer_id"])[visible_customer]
    ids = sorted_unique(np.concatenate([customer_id, lk.customer]))
    ids = ids if ids.dtype.kind in "iu" else ids.astype(object)
    n_cust = len(ids)
    c = positions_in(ids, lk.customer)
    signup_ms = np.full(n_cust, np.nan)
    signup_ms[positions_in(ids, customer_id)] = signup_all[visible_customer]
    first_link = np.full(n_cust, np.inf)
    np.minimum.at(first_link, c, lk.first)
    first_link[np.isinf(first_link)] = np.nan
    start = np.where(np.isnan(signup_ms), first_link, signup_ms)
    start = np.where(np.isnan(start), as_of_ms, start)
    cust: dict[str, np.ndarray] = {"account_age_days": (as_of_ms - start) / DAY_MS}
    for kind in IDENTIFIER_KINDS:
        cust[f"identifiers_{kind}"] = np.bincount(c[lk.kind == kind], minlength=n_cust)
    cust["events"] = np.bincount(c, weights=lk.events, minlength=n_cust)
    for j, t in enumerate(LINK_COUNT_KEYS):
        cust[f"events_{t}"] = np.bincount(c, weights=lk.mix[:, j], minlength=n_cust)
    if customer_summary is not None and len(customer_summary):
        pos = positions_in(ids, node_ids(customer_summary["customer_id"]))
        found = pos >= 0
        pos = pos[found]
        first_link[pos] = numeric_column(customer_summary, "first_link")[found]
        start = np.where(np.isnan(signup_ms), first_link, signup_ms)
        start = np.where(np.isnan(start), as_of_ms, start)
        cust["account_age_days"] = (as_of_ms - start) / DAY_MS
        for kind in IDENTIFIER_KINDS:
            cust[f"identifiers_{kind}"] = cust[f"identifiers_{kind}"].astype(np.float64)
            cust[f"identifiers_{kind}"][pos] = numeric_column(customer_summary, f"identifiers_{kind}")[found]
        cust["events"][pos] = numeric_column(customer_summary, "events")[found]
        for t, col in LINK_COUNT_PROPERTIES.items():
            cust[f"events_{t}"][pos] = numeric_column(customer_summary, col)[found]
    # what the event tags say of the customer: shares of its link events, spend per payment, velocity
    for tag in EVENT_TAG_FLAGS:
        cust[f"share_{tag}"] = cust[f"events_{tag}"] / np.maximum(cust["events"], 1)
    cust["amount_per_payment"] = cust["events_amount_units"] / np.maximum(cust["events_payment"], 1)
    cust["payments_per_day"] = cust["events_payment"] / np.maximum(cust["account_age_days"], 1)
    features = np.stack([log1p_nonneg(cust[f]) for f in CUSTOMER_FEATURES], 1).astype(np.float32)
    return ids, c, start, features


def _edge_features(lk: _VisibleLinks, link_start: np.ndarray, as_of_ms: int) -> np.ndarray:
    """``(n_links, len(EDGE_FEATURES) - 1)``: events, days since first and last use, days from the customer's
    start to its first use, the event-type mix and the share of events with each tag flag (shares of the
    link's events), and the spend per payment on the link (the blocked count is added per direction)."""
    shares = lk.mix / np.maximum(lk.events, 1)[:, None]
    return np.concatenate(
        [
            log1p_nonneg(lk.events)[:, None],
            log1p_nonneg((as_of_ms - lk.first) / DAY_MS)[:, None],
            log1p_nonneg((as_of_ms - lk.last) / DAY_MS)[:, None],
            log1p_nonneg((lk.first - link_start) / DAY_MS)[:, None],
            shares[:, : len(LINK_EVENT_TYPES) + len(EVENT_TAG_FLAGS)],
            log1p_nonneg(lk.mix[:, _AMOUNT] / np.maximum(lk.mix[:, _PAYMENT], 1))[:, None],
        ],
        1,
    ).astype(np.float32)


def blocked_as_of(customers: pd.DataFrame, ids: Sequence[str] | np.ndarray, as_of_ms: int) -> np.ndarray:
    """``(len(ids),)`` float: 1 where customer ``ids[i]``'s block stands at as-of
    (:func:`fraudgraph.schema.block_stands`), else 0 (unknown customers: 0); ``ids`` sorted and distinct,
    as node ids are. Features, online and batch scoring read standing blocks through it."""
    out = np.zeros(len(ids))
    if "blocked_at" not in customers or not len(customers):
        return out
    unblocked_at = (
        numeric_column(customers, "unblocked_at") if "unblocked_at" in customers else np.full(len(customers), np.nan)
    )
    stands = block_stands(numeric_column(customers, "blocked_at"), unblocked_at, as_of_ms)
    pos = positions_in(np.asarray(ids), node_ids(customers["customer_id"]))
    found = pos >= 0
    out[pos[found]] = stands[found].astype(float)
    return out
