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

    def neighbourhood_frames(self, customer_ids, as_of_ms: int):
        """``(customers, links, identifier_stats, neighbourhoods)`` of the customers' scoring subgraph.

        The union of several customers' subgraphs scores each of them exactly as
        its own would: every identifier of a scored customer keeps its lowest-id
        customers and full statistics.
        """
        ids = [customer_ids] if isinstance(customer_ids, str) else list(dict.fromkeys(customer_ids))
        hoods = {cid: self.store.neighbourhood(cid, fanout_cap=self.cap) for cid in ids}
        members = sorted(set(ids) | {c for nb in hoods.values() for c in nb.customers})
        customers = self.store.customers_of(members)
        links = self.store.links_of(members)
        idents = sorted({(i.kind, i.value_hash) for nb in hoods.values() for i in nb.identifiers})
        stats = self.store.identifier_stats(idents, as_of_ms)
        return customers, links, stats, hoods

    def score(self, customer_id: str, as_of_ms: int) -> OnlineResult | None:
        """Score and decide one customer as of ``as_of_ms``; None when it is not in the graph."""
        return self.score_many([customer_id], as_of_ms).get(customer_id)

    def score_many(self, customer_ids, as_of_ms: int) -> dict[str, OnlineResult]:
        """Score and decide several customers with one subgraph and one forward pass."""
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return {}
        customers, links, stats, hoods = self.neighbourhood_frames(ids, as_of_ms)
        tensors = build_graph_tensors(customers, links, as_of_ms, fanout_cap=self.cap, identifier_stats=stats)
        present = [c for c in ids if c in set(tensors.customer_ids)]
        if not present:
            return {}
        scores = self.artifact.score_tensors(tensors, tensors.index_of(present))
        by_id = customers.set_index("customer_id") if len(customers) else pd.DataFrame()
        out = {}
        for cid, score in zip(present, scores):
            row = by_id.loc[cid] if cid in by_id.index else pd.Series(dtype=object)
            value = pd.to_numeric(pd.Series([row.get("lifetime_value")]), errors="coerce").iloc[0]
            decision = self.rules.decide(float(score), None if pd.isna(value) else float(value),
                                         self._evidence(cid, customers, hoods[cid], row, as_of_ms))
            out[cid] = OnlineResult(cid, float(score), decision, self.artifact.version, as_of_ms)
        return out

    @staticmethod
    def _evidence(customer_id, customers: pd.DataFrame, nb, row, as_of_ms: int) -> CustomerEvidence:
        fraud = set(customers.loc[customers.get("clean_label", pd.Series(index=customers.index, dtype=object))
                                  == "fraud", "customer_id"]) if "clean_label" in customers else set()
        signup = pd.to_numeric(pd.Series([row.get("signup_ts")]), errors="coerce").iloc[0]
        age = None if pd.isna(signup) else (as_of_ms - float(signup)) / DAY_MS
        idents = tuple(SharedIdentifierEvidence(i.kind, i.degree, len(set(i.customers) & fraud))
                       for i in nb.identifiers)
        return CustomerEvidence(age, idents)



__all__ = ["OnlineResult", "OnlineScorer"]
