"""Production against shadow: agreement on the same decisions, and each model judged by matured labels."""

from __future__ import annotations

import pandas as pd

from fraudgraph.lifecycle.compare import compare_decisions


def decisions(model, rows):
    return pd.DataFrame([(f"e{i}", c, d, model) for i, (c, d) in enumerate(rows)],
                        columns=["decision_id", "customer_id", "decision", "model_version"])


def test_agreement_and_each_models_precision_and_recall_on_the_customers_both_decided():
    production = decisions("p", [("a", "block"), ("b", "allow"), ("c", "review"), ("d", "allow"), ("e", "allow")])
    shadow = decisions("s", [("a", "block"), ("b", "block"), ("c", "allow"), ("d", "allow")])  # e: not scored
    labels = pd.DataFrame({"customer_id": ["a", "b", "c", "d", "e"],
                           "label": ["fraud", "fraud", "legit", "unknown", "fraud"]})
    out = compare_decisions(production, shadow, labels)
    assert out["decisions"] == {"production": 5, "shadow": 4, "both": 4}
    assert out["agreement"] == 0.5 and out["models"] == {"production": ["p"], "shadow": ["s"]}
    assert out["by_production_decision"]["allow"] == {"decisions": 2, "same": 1}
    assert out["labels"] == {"customers": 4, "labelled": 3, "fraud": 2}
    # production flagged a (fraud) and c (legit); shadow flagged a and b (both fraud); e was not in both
    assert out["production"] == {"flagged": 2, "precision": 0.5, "recall": 0.5}
    assert out["shadow"] == {"flagged": 2, "precision": 1.0, "recall": 1.0}


def test_without_labels_only_agreement_and_without_common_decisions_none():
    production = decisions("p", [("a", "block")])
    assert "production" not in compare_decisions(production, decisions("s", [("a", "allow")]))
    empty = compare_decisions(production, decisions("s", [])[:0].assign(decision_id="zz"))
    assert empty["agreement"] is None and empty["decisions"]["both"] == 0
