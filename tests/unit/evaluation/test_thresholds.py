"""The decision threshold policies: a false-flag budget on customers labelled legitimate, and a precision target."""

from __future__ import annotations

import numpy as np
import pytest

from fraudgraph.evaluation.ranking import threshold_for_false_flag_budget, threshold_for_precision


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
