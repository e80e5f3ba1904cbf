"""Small numpy building blocks shared by the point-in-time graph and the feature code.

numpy 2.3's hash-based ``np.unique`` degrades badly on integer keys built as
``block * size + offset`` (many times slower than sorting them), which is exactly how
decision-point subgraphs number their nodes, so integer uniques go through a sort here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` without the hash path for integers)."""
    values = np.asarray(values)
    if values.dtype.kind not in "iu":
        return np.unique(values)
    ordered = np.sort(values, kind="stable")
    if len(ordered) == 0:
        return ordered
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for every (s, n)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.asarray(starts, dtype=np.int64) - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    return np.arange(total, dtype=np.int64) + offsets


def segment_searchsorted(values: np.ndarray, starts: np.ndarray, ends: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For each query ``q`` the position ``p`` in ``[start, end)`` such that ``values[start:p] <= q < values[p:end]``.

    ``values`` is sorted inside every segment. A vectorised binary search: about log2 of the
    longest segment numpy passes over the queries. Returns int64 positions into ``values``.
    """
    lo = np.asarray(starts, dtype=np.int64).copy()
    hi = np.asarray(ends, dtype=np.int64).copy()
    q = np.asarray(queries)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        safe = np.where(active, mid, 0)
        go_right = active & (values[safe] <= q)
        lo = np.where(go_right, mid + 1, lo)
        hi = np.where(active & ~go_right, mid, hi)


def log1p_nonneg(x: ArrayLike) -> np.ndarray:
    """log(1 + x) of ``x`` clipped at 0 (counts and durations as features)."""
    return np.log1p(np.clip(np.asarray(x, dtype=np.float64), 0, None))


def node_ids(column: pd.Series) -> np.ndarray:
    """Node ids as given: integer codes stay int64 (the point-in-time path), anything else is text."""
    values = column.to_numpy()
    return values.astype(np.int64) if values.dtype.kind in "iu" else values.astype(str)


def numeric_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A numeric column as float64 (missing column: zeros for counts, NaN for times; unparsable: NaN/0)."""
    if name not in frame:
        return np.full(len(frame), np.nan if name == "signup_ts" else 0.0)
    raw = frame[name].to_numpy()
    if raw.dtype.kind in "iub":  # plain integers: nothing missing (the online hot path)
        return raw.astype(np.float64)
    if raw.dtype.kind == "f":
        values = raw.astype(np.float64)
    else:
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.nan_to_num(values, nan=0.0) if name.startswith("count_") else values


_BINARY_SEARCH_MAX_QUERIES = 20_000  # more look-ups than this: pandas' hash index


def positions_in(sorted_values: np.ndarray, queries: ArrayLike) -> np.ndarray:
    """Position of each query in ``sorted_values`` (sorted and distinct), -1 where absent: what
    ``pd.Index(sorted_values).get_indexer(queries)`` returns. Few queries are looked up by binary search,
    without the hash table an index builds over every value (the online path); many by the index."""
    queries = np.asarray(queries)
    if len(queries) > _BINARY_SEARCH_MAX_QUERIES or len(sorted_values) == 0:
        return pd.Index(sorted_values).get_indexer(queries)
    pos = np.searchsorted(sorted_values, queries)
    clipped = np.minimum(pos, len(sorted_values) - 1)
    return np.where(sorted_values[clipped] == queries, clipped, -1).astype(np.int64)


def rank_within(group: np.ndarray, key: np.ndarray) -> np.ndarray:
    """0-based rank of each element by ``key`` inside its ``group`` (ties by position)."""
    order = np.lexsort((np.arange(len(key)), key, group))
    sorted_group = group[order]
    starts = np.r_[0, np.flatnonzero(sorted_group[1:] != sorted_group[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    rank_sorted = np.arange(len(order)) - np.repeat(starts, sizes)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = rank_sorted
    return rank
