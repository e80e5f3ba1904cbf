"""The day-one rules: what a fraud analyst writes before any model, the baseline every model must beat.

Three rules, each read from the identity graph as it was at the decision (the same scoring inputs
the model reads, so they see nothing the model could not):

- ``shares_with_blocked``: the customer shares a device or card (one of at most
  ``rules.day_one.max_shared_degree`` customers) with a customer blocked before the decision;
- ``device_burst``: one of its devices carries at least ``burst_accounts`` accounts that all
  first used it within ``burst_window_days``;
- ``card_soon_after_signup``: a card first used within ``card_after_signup_hours`` of signup.

The score is the number of rules that fire (0-3): a ranking, evaluated like the models' scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudgraph.config import DayOneRuleSettings
from fraudgraph.graph.scoring_inputs import ScoringInputs
from fraudgraph.timeutil import DAY_MS, HOUR_MS

RULES = ("shares_with_blocked", "device_burst", "card_soon_after_signup")


class DayOneRules:
    """``fired(inputs)``: one boolean column per rule and decision point; ``score(inputs)``: their count."""

    def __init__(self, settings: DayOneRuleSettings):
        self.settings = settings

    def fired(self, inputs: ScoringInputs) -> pd.DataFrame:
        """Which rules fire at each decision point of ``inputs`` (made with ``target_ids`` and
        ``identifier_stats``: :meth:`fraudgraph.graph.history.LinkHistory.scoring_inputs`)."""
        if inputs.target_ids is None or inputs.identifier_stats is None:
            raise ValueError("day-one rules need decision points: inputs with target_ids and identifier_stats")
        s = self.settings
        targets = pd.Series(np.arange(len(inputs.target_ids)), index=inputs.target_ids)
        targets = targets.loc[targets.index >= 0]
        links, cust = inputs.links, inputs.customers.set_index("customer_id")
        own = links.loc[links["customer_id"].isin(targets.index), ["customer_id", "kind", "value_hash", "first_seen"]]
        out = pd.DataFrame(False, index=np.arange(len(inputs.target_ids)), columns=list(RULES))
        # shares a device or card with a customer blocked before the decision
        stats = inputs.identifier_stats.set_index("value_hash")
        shared = own.loc[own["kind"].isin(["device", "card"])]
        shared = shared.loc[shared["value_hash"].map(stats["degree"]).le(s.max_shared_degree).to_numpy()]
        blocked = cust["blocked_at"] <= inputs.as_of_ms if "blocked_at" in cust else pd.Series(False, index=cust.index)
        members = links.loc[links["value_hash"].isin(shared["value_hash"]), ["customer_id", "value_hash"]]
        members = members.loc[members["customer_id"].map(blocked).fillna(False).to_numpy()]
        pairs = shared.merge(members, on="value_hash", suffixes=("", "_blocked"))
        pairs = pairs.loc[pairs["customer_id"] != pairs["customer_id_blocked"]]
        out.loc[targets.loc[pairs["customer_id"].unique()].to_numpy(), "shares_with_blocked"] = True
        # a burst of accounts on one device
        devices = own.loc[own["kind"] == "device"]
        st = stats.loc[devices["value_hash"]]
        burst = (st["degree"].to_numpy() >= s.burst_accounts) & (
            (st["first_seen_max"] - st["first_seen_min"]).to_numpy() <= s.burst_window_days * DAY_MS
        )
        out.loc[targets.loc[devices.loc[burst, "customer_id"].unique()].to_numpy(), "device_burst"] = True
        # a card soon after signup
        cards = own.loc[own["kind"] == "card"]
        signup = cards["customer_id"].map(cust["signup_ts"])
        soon = (cards["first_seen"] - signup).to_numpy() <= s.card_after_signup_hours * HOUR_MS
        out.loc[targets.loc[cards.loc[soon, "customer_id"].unique()].to_numpy(), "card_soon_after_signup"] = True
        return out

    def score(self, inputs: ScoringInputs) -> np.ndarray:
        """Rules fired per decision point, ``(n_points,)`` float."""
        return self.fired(inputs).sum(axis=1).to_numpy(dtype=float)
