"""The profile's split suggestion reads where the labels are, not only how long the events run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from etl.profile import labelled_fraud_per_split, suggest_settings
from fraudgraph.timeutil import DAY_MS

END = 4_000 * DAY_MS


def _ten_years_with_nine_days_of_blocks(customers=1500, blocked=400, seed=0):
    """Sign-ups over ten years, everyone active daily in the last 60 days, every block in the last 9."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:05d}" for i in range(customers)]
    signup = END - rng.uniform(0, 3650, customers) * DAY_MS
    days = np.arange(60)
    events = pd.DataFrame({
        "customer_id": np.r_[ids, np.repeat(ids, len(days))],
        "ts": np.r_[signup, np.tile(END - days * DAY_MS - rng.uniform(0, DAY_MS), customers)],
    })  # fmt: skip
    first_block = pd.Series(END - rng.uniform(0, 9, blocked) * DAY_MS, index=ids[:blocked])
    profile = {
        "span": {"events": {"days": round((END - signup.min()) / DAY_MS, 1)}},
        "appeals": {"block_to_contact_days": {"p90": 0.4}, "contact_to_decision_days": {"p90": 0.5}},
    }
    return profile, events, first_block


def test_ten_years_of_signups_and_nine_days_of_blocks_get_a_split_that_trains():
    profile, events, first_block = _ten_years_with_nine_days_of_blocks()
    s = suggest_settings(profile, events, first_block, min_positives=20)
    split, maturity = s["training"]["split"], s["labels"]["maturity_days"]
    assert split["test_days"] + split["val_days"] < 9 and maturity == 1
    t2 = END - split["test_days"] * DAY_MS
    counts = labelled_fraud_per_split(events, first_block, t2 - split["val_days"] * DAY_MS, t2, maturity)
    assert min(counts.values()) >= 20, counts
    assert "the labels (first block to last event)" in s["training"]["reason"]
    assert "training will refuse" not in s["training"]["reason"]


def test_where_blocks_spread_over_the_events_the_events_span_still_decides():
    profile, events, _ = _ten_years_with_nine_days_of_blocks()
    rng = np.random.default_rng(1)
    ids = events["customer_id"].unique()[:400]
    spread = pd.Series(END - rng.uniform(0, 3650, len(ids)) * DAY_MS, index=ids)
    s = suggest_settings(profile, events, spread, min_positives=1)
    assert "the labels (first block to last event)" not in s["training"]["reason"]
