"""Online scoring from the store equals batch scoring over the same graph state."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from etl.reference import reference_etl
from fraudgraph.event_tags import EventTagger
from fraudgraph.identity import IdentifierHasher
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.scoring.batch import score_graph
from fraudgraph.scoring.online import OnlineScorer

from testing_support import frames_to_elements, untrained_artifact

CAP = 5  # small, so carrier and Wi-Fi hubs exceed it


@pytest.fixture(scope="module")
def world_frames(small_world, settings):
    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    as_of = pd.Timestamp(json.loads((small_world / "manifest.json").read_text())["cutoff"]).value // 10**6
    return ref["customers"], ref["links"], int(as_of)


@pytest.fixture(scope="module")
def artifact(world_frames, settings, tmp_path_factory):
    """An untrained but seeded model: parity must hold for any weights."""
    customers, links, as_of = world_frames
    out = untrained_artifact(customers, links, as_of, settings, tmp_path_factory.mktemp("model"), fanout_cap=CAP,
                             seed=11, hidden=16, edge_hidden=8, dropout=0.0)
    return ModelArtifact.load(out)


def test_online_score_equals_batch_score(store, world_frames, artifact, settings, tmp_path):
    customers, links, as_of = world_frames
    c, l = frames_to_elements(customers, links)
    store.upsert_customers(c)
    store.upsert_links(l)
    score_graph(store, artifact, settings, tmp_path, as_of, write_back=False)
    batch = pd.read_parquet(tmp_path / "decisions.parquet").set_index("customer_id")["score"]

    hub_ids = set(links.groupby(["kind", "value_hash"]).filter(lambda g: len(g) > CAP)["customer_id"])
    rng = np.random.default_rng(5)
    # and customers who share an identifier with a blocked customer (the blocked-customers feature
    # reads blocked_at / unblocked_at of the neighbours from the store)
    blocked = set(customers.loc[customers["blocked_at"].notna(), "customer_id"])
    near = set(links.loc[links["value_hash"].isin(links.loc[links["customer_id"].isin(blocked), "value_hash"]),
                         "customer_id"]) - blocked
    sample = list(rng.choice(sorted(hub_ids), 12, replace=False)) + \
        list(rng.choice(sorted(set(customers["customer_id"]) - hub_ids), 8, replace=False)) + \
        list(rng.choice(sorted(near), 6, replace=False))
    sample = list(dict.fromkeys(sample))
    scorer = OnlineScorer(store, artifact, settings)
    for cid in sample:
        result = scorer.score(cid, as_of)
        assert result is not None
        assert abs(result.score - batch[cid]) <= 1e-5, cid
        assert result.decision.decision in ("block", "review", "allow")
    assert scorer.score("no-such-customer", as_of) is None
    # several customers in one union subgraph score exactly as each on its own
    many = scorer.score_many(sample + ["no-such-customer"], as_of)
    assert set(many) == set(sample)
    for cid, result in many.items():
        assert abs(result.score - batch[cid]) <= 1e-5, cid
