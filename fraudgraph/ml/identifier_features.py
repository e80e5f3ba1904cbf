"""Identifier node features (``IDENTIFIER_FEATURES``), for :func:`fraudgraph.ml.features.build_graph_tensors`:
degree (customers linked), age in days since first seen, events, and the span in days between the first
and the last customer to appear on it (a burst of new accounts has a short span)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudgraph.arrays import log1p_nonneg, node_ids, positions_in
from fraudgraph.timeutil import DAY_MS

IDENTIFIER_FEATURES = ["degree", "age_days", "events", "first_seen_span_days"]


def split_by_kind(identifier_stats: pd.DataFrame | None) -> dict[str, dict[str, np.ndarray]]:
    """``identifier_stats`` as plain arrays per kind (``value_hash`` and the statistics), read once."""
    if identifier_stats is None or not len(identifier_stats):
        return {}
    kinds = identifier_stats["kind"].to_numpy()
    columns = {
        "value_hash": node_ids(identifier_stats["value_hash"]),
        **{
            c: identifier_stats[c].to_numpy(dtype=np.float64)
            for c in ("degree", "first_seen_min", "first_seen_max", "events")
        },
    }
    return {kind: {c: v[kinds == kind] for c, v in columns.items()} for kind in np.unique(kinds)}


def identifier_features(
    uniq: np.ndarray,
    inverse: np.ndarray,
    first: np.ndarray,
    events: np.ndarray,
    as_of_ms: int,
    stats: dict[str, np.ndarray] | None,
) -> np.ndarray:
    """``(n_identifiers, len(IDENTIFIER_FEATURES))`` for the identifiers ``uniq`` of one kind, from their
    links (``inverse[i]`` is link ``i``'s identifier), where ``stats`` (this kind's identifier statistics,
    :func:`split_by_kind`) overrides them."""
    n_ident = len(uniq)
    if not n_ident:
        return np.zeros((0, len(IDENTIFIER_FEATURES)), np.float32)
    degree = np.bincount(inverse, minlength=n_ident).astype(np.float64)
    ident_first = np.full(n_ident, np.inf)
    np.minimum.at(ident_first, inverse, first)
    ident_last_join = np.full(n_ident, -np.inf)
    np.maximum.at(ident_last_join, inverse, first)
    ident_events = np.bincount(inverse, weights=events, minlength=n_ident)
    if stats is not None:
        pos = positions_in(uniq, stats["value_hash"])
        found = pos >= 0
        pos = pos[found]
        degree[pos] = stats["degree"][found]
        ident_first[pos] = stats["first_seen_min"][found]
        ident_last_join[pos] = stats["first_seen_max"][found]
        ident_events[pos] = stats["events"][found]
    return np.stack(
        [
            log1p_nonneg(degree),
            log1p_nonneg((as_of_ms - ident_first) / DAY_MS),
            log1p_nonneg(ident_events),
            log1p_nonneg((ident_last_join - ident_first) / DAY_MS),
        ],
        1,
    ).astype(np.float32)


__all__ = ["IDENTIFIER_FEATURES", "identifier_features", "split_by_kind"]
