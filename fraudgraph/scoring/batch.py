"""Batch scoring: every customer of the graph scored, decided and written back.

``fraudgraph score --graph URI --model MODEL_DIR --out DIR [--as-of TS]``
writes ``DIR/decisions.parquet`` (customer_id, score, decision, reason_codes,
reasons, model_version, lifetime_value, scored_as_of) and sets ``score``,
``decision``, ``decision_reasons`` (JSON list of codes), ``model_version`` and
``scored_as_of`` on each customer vertex. As-of defaults to the graph's latest
activity (the newest ``last_seen`` of any link), so a replayed history is
scored as it was then. An earlier as-of is refused: the graph's link totals are lifetime totals.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from fraudgraph.config import Settings
from fraudgraph.graph import CustomerUpsert, IdentityGraph
from fraudgraph.graph.scoring_inputs import ScoringInputs
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.ml.features import blocked_as_of, build_graph_tensors
from fraudgraph.scoring.evidence import decision_evidence
from fraudgraph.scoring.rules import DECISIONS, DecisionRules, decision_properties
from fraudgraph.timeutil import iso_utc

log = logging.getLogger(__name__)


# Over 60 lines for a reason: it is the batch scoring job, its steps in order (read, score, decide with
# evidence, write decisions, write back), each a call or one loop.
def score_graph(
    store: IdentityGraph,
    artifact: ModelArtifact,
    settings: Settings,
    out_dir: str | Path,
    as_of_ms: int | None = None,
    *,
    write_back: bool = True,
) -> dict[str, Any]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    customers, links = store.customers_frame(), store.links_frame()
    latest = int(pd.to_numeric(links["last_seen"]).max()) if len(links) else 0
    if as_of_ms is None:
        as_of_ms = latest
    elif as_of_ms < latest:
        raise ValueError(
            f"as-of {iso_utc(as_of_ms)} is before the graph's latest link activity {iso_utc(latest)}: "
            "a live graph keeps lifetime link totals, so scoring it as of an earlier time would see "
            "the future; score a snapshot rebuilt as of that time instead (fraudgraph.graph.history)"
        )
    cap = artifact.fanout_cap or settings.graph.neighbourhood_fanout_cap
    inputs = ScoringInputs(customers, links, as_of_ms)
    tensors = build_graph_tensors(inputs, fanout_cap=cap)
    scores = artifact.score_tensors(
        tensors, batch_size=settings.training.batch_size, full_graph_max_edges=settings.training.full_graph_max_edges
    )
    rules = DecisionRules(settings.rules, artifact.threshold)
    flagged = [c for c, s in zip(tensors.customer_ids, scores) if s >= rules.threshold]
    evidence = decision_evidence(inputs, flagged)
    value = (
        pd.to_numeric(customers.set_index("customer_id").get("lifetime_value"), errors="coerce")
        if "lifetime_value" in customers
        else pd.Series(dtype=float)
    )
    standing = blocked_as_of(customers, tensors.customer_ids, as_of_ms)
    rows = []
    for cid, score, stands in zip(tensors.customer_ids, scores, standing):
        ltv = value.get(cid)
        ltv = None if ltv is None or pd.isna(ltv) else float(ltv)
        # a customer whose block stands is not scored as new evidence (:meth:`DecisionRules.blocked`)
        d = rules.blocked() if stands else rules.decide(float(score), ltv, evidence.get(cid))
        rows.append(
            {
                "customer_id": cid,
                "score": float("nan") if stands else float(score),
                "decision": d.decision,
                "reason_codes": list(d.reason_codes),
                "reasons": list(d.reasons),
                "model_version": artifact.version,
                "lifetime_value": ltv,
                "scored_as_of": as_of_ms,
            }
        )
    decisions = pd.DataFrame(rows)
    decisions.assign(scored_as_of=pd.to_datetime(decisions["scored_as_of"], unit="ms", utc=True)).to_parquet(
        out / "decisions.parquet", index=False
    )
    if write_back:
        store.upsert_customers(
            CustomerUpsert.many(
                {
                    r["customer_id"]: decision_properties(
                        r["score"], r["decision"], r["reason_codes"], r["model_version"], as_of_ms
                    )
                    for r in rows
                }
            )
        )
    counts = decisions["decision"].value_counts()
    summary = {
        "customers": len(decisions),
        "as_of_ms": as_of_ms,
        "threshold": rules.threshold,
        "model_version": artifact.version,
        "decisions": {k: int(counts.get(k, 0)) for k in DECISIONS},
        "out": str(out / "decisions.parquet"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
