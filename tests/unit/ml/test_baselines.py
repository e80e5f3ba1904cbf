"""The baselines a fraud team would build instead: two-hop aggregates for the GBDT and guilt by association
from standing blocks, on a hand-built graph whose answers can be counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudgraph.graph.scoring_inputs import ScoringInputs
from fraudgraph.ml.baselines import BaselineModels, guilt_by_association, neighbour_features, tabular_features
from fraudgraph.ml.features import CUSTOMER_FEATURES, build_graph_tensors

DAY = 86_400_000


@pytest.fixture()
def graph():
    """Device d1: a, b, c, d (a blocked; b unblocked since); device d2: d, e (e blocked); card k1: d, f.
    g shares nothing."""
    customers = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e", "f", "g"],
        "signup_ts": [0, 0, 0, 0, 5 * DAY, 8 * DAY, 0],
        "blocked_at": [10 * DAY, 10 * DAY, np.nan, np.nan, 12 * DAY, np.nan, np.nan],
        "unblocked_at": [np.nan, 20 * DAY, np.nan, np.nan, np.nan, np.nan, np.nan],
    })
    links = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "d", "e", "d", "f", "g"],
        "kind": ["device"] * 6 + ["card"] * 2 + ["device"],
        "value_hash": ["d1", "d1", "d1", "d1", "d2", "d2", "k1", "k1", "d3"],
        "first_seen": [DAY] * 9, "last_seen": [DAY] * 9, "event_count": [1] * 9,
    })  # fmt: skip
    return customers, links


def test_guilt_by_association_propagates_standing_blocks_and_never_a_customers_own(graph):
    customers, links = graph
    t = build_graph_tensors(ScoringInputs(customers, links, 30 * DAY))
    ids = ["a", "b", "c", "d", "e", "f", "g"]
    score = dict(zip(ids, guilt_by_association(t, t.index_of(ids))))
    # c: 1 of its 3 others on d1 stands blocked (a; b's block was lifted)
    assert score["c"] == pytest.approx(1 / 3)
    # d: d1 gives 1/3, d2 gives e (1 of 1), k1 gives f (0): 1 - (2/3 * 0 * 1)
    assert score["d"] == pytest.approx(1.0)
    # a's own block never counts: its others on d1 are b, c, d, none standing blocked
    assert score["a"] == 0.0 and score["g"] == 0.0 and score["f"] == 0.0
    # e's own block is not e's evidence; d, its only neighbour, is not blocked
    assert score["e"] == 0.0
    # before any block, nothing propagates
    early = build_graph_tensors(ScoringInputs(customers, links, 9 * DAY))
    assert (guilt_by_association(early, early.index_of(ids)) == 0).all()


def test_guilt_by_association_counts_only_the_capped_members_as_the_rgcn_does(graph):
    customers, links = graph
    t = build_graph_tensors(ScoringInputs(customers, links, 30 * DAY), fanout_cap=2)  # d1 aggregates a and b only
    ids = ["c", "d"]
    score = dict(zip(ids, guilt_by_association(t, t.index_of(ids))))
    assert score["c"] == pytest.approx(1 / 2)  # of a and b, a's block stands
    # d: d1 again 1/2; d2 (members d, e): e blocked; k1 (d, f): none
    assert score["d"] == pytest.approx(1.0)


def test_two_hop_aggregates_count_the_customers_sharing_an_identifier(graph):
    customers, links = graph
    t = build_graph_tensors(ScoringInputs(customers, links, 30 * DAY))
    ids = ["d", "g", "c"]
    table, names = neighbour_features(t, t.index_of(ids))
    row = {cid: dict(zip(names, table[i])) for i, cid in enumerate(ids)}
    # d shares d1 with a, b, c; d2 with e; k1 with f: 5 others, 2 standing blocked (a and e)
    assert np.expm1(row["d"]["neighbours"]) == pytest.approx(5)
    assert np.expm1(row["d"]["neighbours_device"]) == pytest.approx(4)
    assert np.expm1(row["d"]["neighbours_card"]) == pytest.approx(1)
    assert row["d"]["neighbours_blocked_share"] == pytest.approx(2 / 5)
    # the youngest of d's neighbours is f (signed up day 8), the oldest a, b or c (day 0)
    age = {c: (30 * DAY - s) / DAY for c, s in zip(customers["customer_id"], customers["signup_ts"])}
    assert np.expm1(row["d"]["neighbours_account_age_days_min"]) == pytest.approx(age["f"], rel=1e-5)
    assert np.expm1(row["d"]["neighbours_account_age_days_max"]) == pytest.approx(age["a"], rel=1e-5)
    assert all(v == 0 for v in row["g"].values())  # g shares nothing
    assert row["c"]["neighbours_blocked_share"] == pytest.approx(1 / 3)  # a of a, b, d
    full, full_names = tabular_features(t, t.index_of(ids))
    assert full_names[: len(CUSTOMER_FEATURES)] == CUSTOMER_FEATURES and full_names[-len(names):] == names
    np.testing.assert_allclose(full[:, -len(names):], table)


def test_a_customers_own_block_never_moves_its_baseline_inputs(graph):
    customers, links = graph
    unblocked_d = customers.copy()
    blocked_d = customers.assign(blocked_at=customers["blocked_at"].where(customers["customer_id"] != "d", 2 * DAY))

    def seen(frame):
        t = build_graph_tensors(ScoringInputs(frame, links, 30 * DAY))
        idx = t.index_of(["d"])
        return np.r_[tabular_features(t, idx)[0].ravel(), guilt_by_association(t, idx)]

    np.testing.assert_array_equal(seen(unblocked_d), seen(blocked_d))


def test_saved_baselines_score_as_before_saving(graph, tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    customers, links = graph
    t = build_graph_tensors(ScoringInputs(customers, links, 30 * DAY))
    idx = t.index_of(["a", "b", "c", "d", "e", "f", "g"])
    table, _ = tabular_features(t, idx)
    gbdt = HistGradientBoostingClassifier(max_iter=5, min_samples_leaf=1).fit(table, [1, 0, 0, 1, 1, 0, 0])
    from fraudgraph.ml.scaling import FeatureScaler

    scaler = FeatureScaler().fit(t)
    BaselineModels(gbdts={"gbdt": gbdt}).save(tmp_path)
    loaded = BaselineModels.load(tmp_path)
    scores = loaded.score(t, scaler, idx)
    np.testing.assert_allclose(scores["gbdt"], gbdt.predict_proba(table)[:, 1])
    np.testing.assert_allclose(scores["guilt_by_association"], guilt_by_association(t, idx))
    assert BaselineModels.load(tmp_path / "nothing").gnns == {}
