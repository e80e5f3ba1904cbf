"""The decision threshold policies: the labelled fraud rate, a false-flag budget on customers labelled legitimate,
and a precision target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudgraph.config import load_settings
from fraudgraph.evaluation.ranking import (
    threshold_for_false_flag_budget,
    threshold_for_flag_rate,
    threshold_for_precision,
)
from training.judging import choose_threshold


def _false_flags_per_10k(y, s, w, t):
    legit = y == 0
    return 1e4 * w[legit & (s >= t)].sum() / w[legit].sum()


def test_the_budget_threshold_is_the_lowest_that_keeps_the_budget():
    y = np.array([1, 0, 1, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.8, 0.5, 0.4, 0.1])
    assert threshold_for_false_flag_budget(y, s, 2500) == 0.8   # one of four legitimate customers
    assert threshold_for_false_flag_budget(y, s, 2499) == 0.9   # not even one: only the top fraudster
    assert threshold_for_false_flag_budget(y, s, 5000) == 0.5
    assert threshold_for_false_flag_budget(y, s, 10_000) == 0.1


def test_ties_are_flagged_together_and_weights_count_sampled_customers():
    y = np.array([1, 0, 0, 0])
    s = np.array([0.9, 0.7, 0.7, 0.2])
    # the two tied legitimate customers are one threshold: a budget for one of them flags neither
    assert threshold_for_false_flag_budget(y, s, 4000) == 0.9
    # a sampled legitimate customer standing for 8 spends 8 of the budget: 8 of 10 weighted is over 1,000
    w = np.array([1.0, 8.0, 1.0, 1.0])
    s2 = np.array([0.9, 0.7, 0.6, 0.2])
    assert threshold_for_false_flag_budget(y, s2, 1000, sample_weight=w) == 0.9
    assert threshold_for_false_flag_budget(y, s2, 8000, sample_weight=w) == 0.7
    assert threshold_for_false_flag_budget(y, s2, 8000) == 0.6  # unweighted: two of the three
    assert _false_flags_per_10k(y, s2, w, 0.7) == 8000


def test_when_the_top_score_overspends_nothing_is_flagged():
    y, s = np.array([0, 1, 0]), np.array([0.99, 0.5, 0.1])
    t = threshold_for_false_flag_budget(y, s, 0)
    assert t > 0.99 and not (s >= t).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_random_scores_the_budget_holds_and_is_tight(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(3000) < 0.03).astype(int)
    s = np.clip(rng.normal(0.2 + 0.5 * y, 0.2), 0, 1).round(3)  # rounded: many ties
    w = np.where(y == 1, 1.0, rng.integers(1, 4, len(y)))
    for budget in (0, 10, 50, 300):
        t = threshold_for_false_flag_budget(y, s, budget, sample_weight=w)
        assert _false_flags_per_10k(y, s, w, t) <= budget
        lower = s[s < t]
        if len(lower):  # the next lower score would overspend
            assert _false_flags_per_10k(y, s, w, lower.max()) > budget


def test_labels_that_miss_fraud_make_a_precision_target_strict_but_not_a_budget():
    # ten fraudsters, five of them never blocked (labelled legitimate); 990 true legitimate customers
    truth = np.r_[np.ones(10), np.zeros(990)].astype(int)
    labels = truth.copy()
    labels[5:10] = 0
    s = np.r_[np.linspace(0.99, 0.95, 10), np.linspace(0.9, 0.0, 990)]
    # against the labels only the top five are 85 % precise: the precision target stops there, while a
    # budget of 6 per 1,000 labelled legitimate customers also flags the five fraudsters nobody blocked
    t_precision = threshold_for_precision(labels, s, 0.85)
    t_budget = threshold_for_false_flag_budget(labels, s, 60)
    assert (s >= t_precision).sum() == 5
    assert (s >= t_budget).sum() == 10 and truth[s >= t_budget].all()


def test_the_flag_rate_threshold_flags_at_most_the_rate_with_ties_together_and_weights():
    s = np.array([0.9, 0.8, 0.8, 0.5, 0.1])
    assert threshold_for_flag_rate(s, 0.2) == 0.9
    assert threshold_for_flag_rate(s, 0.5) == 0.9  # the tie at 0.8 would make three of five
    assert threshold_for_flag_rate(s, 0.6) == 0.8
    assert threshold_for_flag_rate(s, 1.0) == 0.1
    t = threshold_for_flag_rate(s, 0.1)
    assert t > 0.9 and not (s >= t).any()
    w = np.array([1.0, 1.0, 1.0, 6.0, 1.0])  # a sampled customer standing for six
    assert threshold_for_flag_rate(s, 0.3, sample_weight=w) == 0.8
    assert threshold_for_flag_rate(s, 0.8, sample_weight=w) == 0.8


def test_the_default_policy_flags_as_many_as_the_labels_call_fraud_whatever_the_world():
    """Two worlds ranked alike, one with three times the labelled fraud: the threshold follows the labels
    down, where a fixed false-flag budget stays put."""
    cfg = load_settings().training
    assert cfg.threshold_policy == "labelled_fraud_rate"
    rng = np.random.default_rng(0)
    thresholds = []
    for fraud in (30, 90):
        y = np.r_[np.ones(fraud), np.zeros(3000)].astype(int)
        s = np.r_[rng.uniform(0.6, 1.0, fraud), rng.uniform(0.0, 0.9, 3000)]
        units = pd.DataFrame({"outcome": y, "score": s, "population_weight": 1.0})
        t, estimates = choose_threshold(units, cfg)
        assert estimates == {"flag_rate": round(fraud / (3000 + fraud), 6)}
        assert (s >= t).sum() <= fraud and (s >= s[s < t].max()).sum() > fraud
        thresholds.append(t)
    assert thresholds[1] < thresholds[0]
