"""The array helpers the feature code runs on, in training and on the online path alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudgraph import arrays
from fraudgraph.arrays import numeric_column, positions_in


@pytest.mark.parametrize("binary_search_max", [0, 10**9])  # the index's path, then binary search
def test_positions_in_answers_as_a_pandas_index_does(monkeypatch, binary_search_max):
    monkeypatch.setattr(arrays, "_BINARY_SEARCH_MAX_QUERIES", binary_search_max)
    rng = np.random.default_rng(3)
    ints = np.unique(rng.integers(0, 1_000, 300))
    int_queries = rng.integers(-5, 1_005, 500)
    texts = np.unique([f"c{i:05d}" for i in rng.integers(0, 2_000, 300)])
    text_queries = np.array([f"c{i:05d}" for i in rng.integers(0, 2_000, 500)] + ["", "zzz", "c"])
    for values, queries in [
        (ints, int_queries),
        (texts, text_queries),
        (texts.astype(object), text_queries),
        (texts, text_queries[:0]),
        (texts[:0], text_queries),
    ]:
        got = positions_in(values, queries)
        assert got.tolist() == pd.Index(values).get_indexer(queries).tolist()
        assert (got >= 0).any() == bool(len(values) and len(queries))


def test_numeric_column_reads_numbers_as_floats_and_fills_what_is_missing():
    frame = pd.DataFrame(
        {
            "count_login": np.array([1, 2], np.int64),
            "first_seen": [1.5, np.nan],
            "count_payment": [np.nan, 3.0],
            "signup_ts": ["17", "x"],
        }
    )
    assert numeric_column(frame, "count_login").tolist() == [1.0, 2.0]
    assert numeric_column(frame, "count_login").dtype == np.float64
    assert np.isnan(numeric_column(frame, "first_seen")[1])  # a time may be missing
    assert numeric_column(frame, "count_payment").tolist() == [0.0, 3.0]  # a count is 0 where missing
    assert numeric_column(frame, "signup_ts")[0] == 17.0 and np.isnan(numeric_column(frame, "signup_ts")[1])
    assert np.isnan(numeric_column(frame.drop(columns="signup_ts"), "signup_ts")).all()  # no column: unknown
    assert numeric_column(frame, "count_signup").tolist() == [0.0, 0.0]  # no column: no such events
