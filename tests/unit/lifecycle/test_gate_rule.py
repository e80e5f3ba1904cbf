"""The promotion gate's rule, figure by figure."""

from __future__ import annotations

from fraudgraph.config import GateTolerance
from fraudgraph.lifecycle import regressions

TOLERANCE = GateTolerance(pr_auc=0.02, precision=0.05, recall=0.05)
PRODUCTION = {"pr_auc": 0.50, "precision": 0.70, "recall": 0.40}


def test_without_a_production_model_nothing_is_a_regression():
    assert regressions({"pr_auc": 0.0, "precision": None, "recall": 0.0}, None, TOLERANCE) == []


def test_within_the_tolerance_passes_and_beyond_it_is_named_per_figure():
    assert regressions({"pr_auc": 0.485, "precision": 0.66, "recall": 0.36}, PRODUCTION, TOLERANCE) == []
    found = regressions({"pr_auc": 0.47, "precision": 0.70, "recall": 0.30}, PRODUCTION, TOLERANCE)
    assert [line.split(":")[0] for line in found] == ["pr_auc", "recall"]
    assert "registry.tolerance.recall=0.05" in found[1] and "0.3000" in found[1]


def test_a_candidate_that_flags_no_one_has_no_precision_and_that_is_a_regression():
    found = regressions({"pr_auc": 0.6, "precision": None, "recall": 0.0}, PRODUCTION, TOLERANCE)
    assert [line.split(":")[0] for line in found] == ["precision", "recall"]


def test_a_figure_production_cannot_give_is_not_compared():
    assert regressions({"pr_auc": 0.6, "precision": 0.1, "recall": 0.5}, {**PRODUCTION, "precision": None},
                       TOLERANCE) == []
