"""What is visible as of a time, and label maturity: which blocks have matured into fraud labels,
which accounts are old enough to be called legitimate, and what appeals change (step 2 of
:mod:`fraudgraph.labels.cleaning`)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from fraudgraph.config import LabelSettings
from fraudgraph.timeutil import DAY_MS

log = logging.getLogger(__name__)

FRAUD, LEGIT, UNKNOWN = "fraud", "legit", "unknown"


LABEL_COLUMNS = ["customer_id", "label", "source", "confidence", "raw_is_fraud", "as_of"]


def _visible_ms(frame: pd.DataFrame, column: str, as_of_ms: int) -> pd.Series:
    """The column (epoch ms) where it is at or before as-of, else NaN (not yet happened)."""
    if column not in frame:
        return pd.Series(np.nan, index=frame.index)
    values = pd.to_numeric(frame[column], errors="coerce")
    return values.where(values <= as_of_ms)


def visible_customers(customers: pd.DataFrame, as_of_ms: int) -> pd.DataFrame:
    """Customers who had signed up by as-of (those without a signup time are kept)."""
    signup = pd.to_numeric(customers.get("signup_ts"), errors="coerce") if "signup_ts" in customers else None
    if signup is None:
        return customers.copy()
    return customers.loc[signup.isna() | (signup <= as_of_ms)].copy()


def visible_links(links: pd.DataFrame, as_of_ms: int) -> pd.DataFrame:
    """Links first seen by as-of, their last use capped at as-of. Training reads point-in-time links
    (exact at as-of); a store newer than as-of still shows that a link was used after as-of."""
    out = links.loc[pd.to_numeric(links["first_seen"]) <= as_of_ms].copy()
    if "last_seen" in out:
        out["last_seen"] = np.minimum(pd.to_numeric(out["last_seen"]), as_of_ms)
    return out


def mature_labels(customers: pd.DataFrame, as_of_ms: int, settings: LabelSettings) -> pd.DataFrame:
    """Analyst outcomes and maturity rules, as of ``as_of_ms``; no heuristics.

    Input: a customer frame with ``customer_id``, ``signup_ts``, ``blocked_at``,
    ``appealed_at``, ``unblocked_at`` (epoch ms) and optionally
    ``review_outcome``/``review_outcome_at``. Output: LABEL_COLUMNS.
    """
    c = visible_customers(customers, as_of_ms).reset_index(drop=True)
    maturity = settings.maturity_days * DAY_MS
    window = settings.appeal_window_days * DAY_MS
    conf = settings.confidence
    signup = pd.to_numeric(c.get("signup_ts", pd.Series(np.nan, index=c.index)), errors="coerce")
    blocked = _visible_ms(c, "blocked_at", as_of_ms)
    appealed = _visible_ms(c, "appealed_at", as_of_ms)
    unblocked = _visible_ms(c, "unblocked_at", as_of_ms)
    decided = _visible_ms(c, "appeal_resolved_at", as_of_ms)
    outcome = c["appeal_outcome"] if "appeal_outcome" in c else pd.Series(None, index=c.index)
    review_at = _visible_ms(c, "review_outcome_at", as_of_ms)
    review = c["review_outcome"].where(review_at.notna()) if "review_outcome" in c else pd.Series(None, index=c.index)

    is_blocked = blocked.notna()
    lifted = is_blocked & unblocked.notna() & (unblocked >= blocked)
    upheld = is_blocked & appealed.notna() & (appealed >= blocked) & (outcome == "upheld") & decided.notna()
    appealed_in_window = is_blocked & appealed.notna() & (appealed >= blocked) & (appealed <= blocked + window)
    block_mature = is_blocked & (as_of_ms - blocked >= maturity)
    account_mature = signup.notna() & (as_of_ms - signup >= maturity)

    rules = [  # (condition, label, source, confidence): the first that holds decides
        (review == FRAUD, FRAUD, "analyst", conf.analyst),
        (review == LEGIT, LEGIT, "analyst", conf.analyst),
        (lifted, LEGIT, "unblocked_after_appeal", conf.unblocked_after_appeal),
        (upheld, FRAUD, "appeal_upheld", conf.appeal_upheld),
        (appealed_in_window, UNKNOWN, "appealed", 0.0),
        (block_mature, FRAUD, "block_matured", conf.block_matured),
        (is_blocked, UNKNOWN, "block_immature", 0.0),
        (account_mature, LEGIT, "matured_no_block", conf.matured_no_block),
    ]
    conditions = [r[0] for r in rules]
    out = pd.DataFrame({"customer_id": c["customer_id"].astype(str)})
    out["label"] = np.select(conditions, [r[1] for r in rules], default=UNKNOWN)
    out["source"] = np.select(conditions, [r[2] for r in rules], default="account_immature")
    out["confidence"] = np.select(conditions, [r[3] for r in rules], default=0.0).astype("float64")
    out["raw_is_fraud"] = is_blocked.astype("int64")
    out["as_of"] = as_of_ms
    return out[LABEL_COLUMNS]
