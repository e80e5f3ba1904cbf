"""Online scoring of one customer from its identity neighbourhood in the store.

The live consumer and the query API call :class:`OnlineScorer`. It reads the
customer's 2-hop neighbourhood with the model's fan-out cap (the lowest-id
customers of each identifier, as in training and batch scoring), the links of
every customer in it and the full statistics of the customer's identifiers,
then runs the same feature code and model as ``fraudgraph score``: the score
equals the batch score over the same graph state.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .config import Settings
from .features import build_graph_tensors
from .graph import IdentityGraph
from .rules import CustomerEvidence, Decision, DecisionRules, SharedIdentifierEvidence
from .scoring import ModelArtifact

DAY_MS = 86_400_000


@dataclass(frozen=True)
class OnlineResult:
    customer_id: str
    score: float
    decision: Decision
    model_version: str
    as_of_ms: int


class OnlineScorer:
    """Scores customers one at a time (or a few) straight from the graph store."""

    def __init__(self, store: IdentityGraph, artifact: ModelArtifact, settings: Settings):
        self.store = store
        self.artifact = artifact
        self.settings = settings
        self.cap = artifact.fanout_cap or settings.graph.neighbourhood_fanout_cap
        self.rules = DecisionRules(settings.rules, artifact.threshold)

    def neighbourhood_frames(self, customer_id: str, as_of_ms: int):
        """``(customers, links, identifier_stats, neighbourhood)`` of the customer's scoring subgraph."""
        nb = self.store.neighbourhood(customer_id, fanout_cap=self.cap)
        members = sorted({customer_id} | set(nb.customers))
        customers = self.store.customers_of(members)
        links = self.store.links_of(members)
        stats = self.store.identifier_stats([(i.kind, i.value_hash) for i in nb.identifiers], as_of_ms)
        return customers, links, stats, nb

    def score(self, customer_id: str, as_of_ms: int) -> OnlineResult | None:
        """Score and decide one customer as of ``as_of_ms``; None when it is not in the graph."""
        customers, links, stats, nb = self.neighbourhood_frames(customer_id, as_of_ms)
        if customer_id not in set(customers["customer_id"]) and customer_id not in set(links["customer_id"]):
            return None
        tensors = build_graph_tensors(customers, links, as_of_ms, fanout_cap=self.cap, identifier_stats=stats)
        if customer_id not in set(tensors.customer_ids):
            return None
        score = float(self.artifact.score_tensors(tensors, tensors.index_of([customer_id]))[0])
        row = customers.set_index("customer_id").loc[customer_id] if customer_id in set(customers["customer_id"]) \
            else pd.Series(dtype=object)
        value = pd.to_numeric(pd.Series([row.get("lifetime_value")]), errors="coerce").iloc[0]
        decision = self.rules.decide(score, None if pd.isna(value) else float(value),
                                     self._evidence(customer_id, customers, nb, row, as_of_ms))
        return OnlineResult(customer_id, score, decision, self.artifact.version, as_of_ms)

    @staticmethod
    def _evidence(customer_id, customers: pd.DataFrame, nb, row, as_of_ms: int) -> CustomerEvidence:
        fraud = set(customers.loc[customers.get("clean_label", pd.Series(index=customers.index, dtype=object))
                                  == "fraud", "customer_id"]) if "clean_label" in customers else set()
        signup = pd.to_numeric(pd.Series([row.get("signup_ts")]), errors="coerce").iloc[0]
        age = None if pd.isna(signup) else (as_of_ms - float(signup)) / DAY_MS
        idents = tuple(SharedIdentifierEvidence(i.kind, i.degree, len(set(i.customers) & fraud))
                       for i in nb.identifiers)
        return CustomerEvidence(age, idents)

    def scores(self, customer_ids, as_of_ms: int) -> dict[str, OnlineResult]:
        out = {}
        for cid in dict.fromkeys(customer_ids):
            result = self.score(cid, as_of_ms)
            if result is not None:
                out[cid] = result
        return out


__all__ = ["OnlineResult", "OnlineScorer"]
