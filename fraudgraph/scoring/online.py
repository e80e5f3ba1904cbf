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

from fraudgraph.config import Settings
from fraudgraph.graph import IdentityGraph
from fraudgraph.graph.elements import LINK_FRAME_COLUMNS
from fraudgraph.graph.scoring_inputs import ScoringInputs
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.ml.features import build_graph_tensors
from fraudgraph.schema import numeric_property
from fraudgraph.scoring.evidence import decision_evidence
from fraudgraph.scoring.rules import Decision, DecisionRules

# what scoring and the rules read from a customer vertex
CUSTOMER_PROPERTIES = ("signup_ts", "lifetime_value", "clean_label", "blocked_at", "unblocked_at")


@dataclass(frozen=True)
class OnlineResult:
    customer_id: str
    score: float | None  # None: the customer's block stands, it is not scored
    decision: Decision
    model_version: str
    as_of_ms: int


class OnlineScorer:
    """Scores customers one at a time (or a few) straight from the graph store."""

    def __init__(self, store: IdentityGraph, artifact: ModelArtifact, settings: Settings):
        """Also sets this process's torch intra-op threads and its OpenMP and BLAS pools (DGL's message
        passing, numpy) to ``online.torch_threads``: a scoring subgraph is a few hundred edges, and more
        threads only add their start-up and sync (measured: single-score p99 about 25 against 21 ms)."""
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(settings.online.torch_threads)
        threadpool_limits(settings.online.torch_threads)
        self.store = store
        self.artifact = artifact
        self.settings = settings
        self.cap = artifact.fanout_cap or settings.graph.neighbourhood_fanout_cap
        self.rules = DecisionRules(settings.rules, artifact.threshold)

    def scoring_inputs(self, customer_ids, as_of_ms: int) -> ScoringInputs:
        """The customers' scoring subgraph as of ``as_of_ms``: what their scores and their decisions'
        evidence (:func:`fraudgraph.scoring.evidence.decision_evidence`) are both made from.

        A two-layer model scores a customer from its identifiers, which aggregate
        their ``cap`` lowest-id customers. So the subgraph holds the scored
        customers' links, those capped customers' links to the same identifiers,
        the identifiers' full statistics and every member's link summary (its
        own features) -- not the members' other links, which cannot reach the
        score. The union of several customers' subgraphs scores each of them
        exactly as its own would.
        """
        ids = [customer_ids] if isinstance(customer_ids, str) else list(dict.fromkeys(customer_ids))
        with self.store.summaries_read_once():  # an identifier's summary serves its neighbourhood and stats
            return self._scoring_inputs(ids, as_of_ms)

    def _scoring_inputs(self, ids: list[str], as_of_ms: int) -> ScoringInputs:
        hoods = self.store.neighbourhoods(ids, fanout_cap=self.cap)
        idents = sorted({(i.kind, i.value_hash) for nb in hoods.values() for i in nb.identifiers})
        # the neighbourhoods carry the scored customers' own links
        own = pd.DataFrame.from_records(
            [
                (cid, i.kind, i.value_hash, *(i.link.get(k, 0) for k in LINK_FRAME_COLUMNS[3:]))
                for cid in ids
                for i in hoods[cid].identifiers
            ],
            columns=LINK_FRAME_COLUMNS,
        )
        shared, stats = self.store.identifier_inputs(idents, self.cap, as_of_ms)
        if len(shared):  # a scored customer among its identifiers' lowest ids is in both: keep one
            seen = set(zip(shared["customer_id"], shared["kind"], shared["value_hash"]))
            mine = [key not in seen for key in zip(own["customer_id"], own["kind"], own["value_hash"])]
            links = pd.concat([own.loc[mine], shared], ignore_index=True)
        else:
            links = own
        members = sorted(set(ids) | set(links["customer_id"]) | {c for nb in hoods.values() for c in nb.customers})
        customers, summary = self.store.scoring_customers(
            members, CUSTOMER_PROPERTIES, sorted(set(links["customer_id"])), as_of_ms
        )
        return ScoringInputs(customers, links, as_of_ms, stats, summary)

    def score(self, customer_id: str, as_of_ms: int) -> OnlineResult | None:
        """Score and decide one customer as of ``as_of_ms``; None when it is not in the graph."""
        return self.score_many([customer_id], as_of_ms).get(customer_id)

    def score_many(self, customer_ids, as_of_ms: int) -> dict[str, OnlineResult]:
        """Score and decide several customers with one subgraph and one forward pass. A customer whose
        block stands at as-of is not scored: it is decided ``blocked`` (:meth:`DecisionRules.blocked`)."""
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return {}
        inputs = self.scoring_inputs(ids, as_of_ms)
        tensors = build_graph_tensors(inputs, fanout_cap=self.cap)
        customers = inputs.customers
        in_graph = set(tensors.customer_ids)
        present = [c for c in ids if c in in_graph]
        if not present:
            return {}
        out = {}
        standing = {c for c, b in zip(present, tensors.blocked[tensors.index_of(present)]) if b}
        for cid in standing:
            out[cid] = OnlineResult(cid, None, self.rules.blocked(), self.artifact.version, as_of_ms)
        present = [c for c in present if c not in standing]
        if not present:
            return out
        scores = self.artifact.score_tensors(tensors, tensors.index_of(present))
        value_of = {}
        if "lifetime_value" in customers:
            value_of = dict(zip(customers["customer_id"], customers["lifetime_value"]))
        evidence = decision_evidence(inputs, present)
        for cid, score in zip(present, scores):
            value = numeric_property(value_of.get(cid))
            decision = self.rules.decide(float(score), value, evidence.get(cid))
            out[cid] = OnlineResult(cid, float(score), decision, self.artifact.version, as_of_ms)
        return out


__all__ = ["OnlineResult", "OnlineScorer"]
