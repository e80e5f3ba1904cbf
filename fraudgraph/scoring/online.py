"""Online scoring of one customer from its identity neighbourhood in the store.

The live consumer and the query API call :class:`OnlineScorer`. It reads the
customer's 2-hop neighbourhood with the model's fan-out cap (the lowest-id
customers of each identifier, as in training and batch scoring), the links of
every customer in it and the full statistics of the customer's identifiers,
then runs the same feature code and model as ``fraudgraph score``: the score
equals the batch score over the same graph state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from fraudgraph.config import Settings
from fraudgraph.graph import IdentityGraph
from fraudgraph.graph.scoring_inputs import ScoringInputs
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.ml.features import build_graph_tensors
from fraudgraph.schema import CUSTOMER, numeric_property
from fraudgraph.scoring.evidence import decision_evidence
from fraudgraph.scoring.rules import Decision, DecisionRules


@dataclass(frozen=True)
class OnlineResult:
    customer_id: str
    score: float | None  # None: the customer's block stands, it is not scored
    decision: Decision
    model_version: str
    as_of_ms: int
    features: np.ndarray | None = None  # the raw customer features it was scored from (CUSTOMER_FEATURES)


class OnlineScorer:
    """Scores customers one at a time (or a few) straight from the graph store."""

    def __init__(self, store: IdentityGraph, artifact: ModelArtifact, settings: Settings):
        """Also sets this process's torch intra-op threads and its OpenMP and BLAS pools (DGL's message
        passing, numpy) to ``online.torch_threads``: a scoring subgraph is a few hundred edges, and more
        threads only add their start-up and sync (docs/decisions.md)."""
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(settings.online.torch_threads)
        threadpool_limits(settings.online.torch_threads)
        self.store = store
        self.artifact = artifact
        self.settings = settings
        self.cap = artifact.fanout_cap or settings.graph.neighbourhood_fanout_cap
        self.rules = DecisionRules(settings.rules, artifact.threshold)

    def scoring_inputs(self, customer_ids: str | Sequence[str], as_of_ms: int) -> ScoringInputs:
        """The customers' scoring subgraph as of ``as_of_ms`` at the model's fan-out cap
        (:meth:`fraudgraph.graph.IdentityGraph.scoring_inputs`): what their scores and their decisions'
        evidence (:func:`fraudgraph.scoring.evidence.decision_evidence`) are both made from."""
        ids = [customer_ids] if isinstance(customer_ids, str) else list(dict.fromkeys(customer_ids))
        return self.store.scoring_inputs(ids, as_of_ms, self.cap)

    def score(self, customer_id: str, as_of_ms: int) -> OnlineResult | None:
        """Score and decide one customer as of ``as_of_ms``; None when it is not in the graph."""
        return self.score_many([customer_id], as_of_ms).get(customer_id)

    def score_many(self, customer_ids: Iterable[str], as_of_ms: int) -> dict[str, OnlineResult]:
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
        rows = tensors.node_features[CUSTOMER][tensors.index_of(present)]
        for cid, score, row in zip(present, scores, rows):
            value = numeric_property(value_of.get(cid))
            decision = self.rules.decide(float(score), value, evidence.get(cid))
            out[cid] = OnlineResult(cid, float(score), decision, self.artifact.version, as_of_ms, row)
        return out


def settle_for_serving() -> None:
    """Call once a serving process (the consumer, the API) has loaded what it serves with: moves every
    object allocated so far (the imported libraries, the model, the settings) out of the garbage
    collector's sweeps (``gc.freeze``) and makes its sweeps of new objects rarer. A full sweep through
    those objects paused scoring requests by tens of milliseconds (docs/decisions.md)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 1_000)


__all__ = ["OnlineResult", "OnlineScorer", "settle_for_serving"]
