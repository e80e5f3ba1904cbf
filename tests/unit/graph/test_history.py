"""The graph as of any moment: what LinkHistory rebuilds equals a world truncated at that moment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from etl.reference import _ms, _read, reference_customers, reference_link_events
from fraudgraph.event_tags import EventTagger
from fraudgraph.graph.history import LinkHistory
from fraudgraph.graph.scoring_inputs import ScoringInputs
from fraudgraph.identity import IdentifierHasher
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.ml.features import build_graph_tensors
from fraudgraph.schema import LABEL_EVENT_TYPES
from fraudgraph.scoring.triggers import decision_points

from testing_support import untrained_artifact

KEY = ["customer_id", "kind", "value_hash"]


@pytest.fixture(scope="module")
def world(small_world, settings):
    hasher = IdentifierHasher.from_settings(settings.privacy)
    tagger = EventTagger(settings.event_tags)
    events = _read(small_world, "events")
    events_ms = pd.to_datetime(events["ts"], utc=True).dt.as_unit("ms").astype("int64")
    links, _, link_events = reference_link_events(events, hasher, tagger)
    raw = {name: _read(small_world, name) for name in ("customers", "blocks", "appeals")}
    # the snapshot's customers: profile plus the latest block and unblock known at the cut-off
    customers = reference_customers(raw["customers"], raw["blocks"], raw["appeals"])
    return {"events": events, "events_ms": events_ms, "hasher": hasher, "tagger": tagger, "link_events": link_events,
            "raw": raw, "customers": customers, "history": LinkHistory(link_events, customers)}


def truncated_customers(world, t: int) -> pd.DataFrame:
    """The customers as the graph knew them at t: only blocks made and appeals decided by then."""
    raw = world["raw"]
    blocks = raw["blocks"].loc[_ms(raw["blocks"]["blocked_at"]) <= t]
    appeals = raw["appeals"]
    resolved = _ms(appeals["resolved_at"]).fillna(_ms(appeals["contacted_at"]))
    return reference_customers(raw["customers"], blocks, appeals.loc[resolved <= t])


def truncated_links(world, t: int) -> pd.DataFrame:
    """What the ETL would have produced from the events up to t."""
    links, _ = reference_link_events(world["events"].loc[world["events_ms"] <= t], world["hasher"], world["tagger"])[:2]
    return links


@hsettings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.floats(0.05, 1.0))
def test_links_as_of_equal_a_world_truncated_there(world, q):
    t = int(world["events_ms"].quantile(q))
    got = world["history"].links_as_of(t).sort_values(KEY).reset_index(drop=True)
    want = truncated_links(world, t)[got.columns].sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


@hsettings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000))
def test_decision_point_scores_equal_scores_on_the_truncated_world(world, settings, tmp_path_factory, seed):
    """Every (customer, t) scored from its point-in-time subgraph, all side by side, scores exactly as the
    customer scores in the whole graph rebuilt from the events up to t."""
    rng = np.random.default_rng(seed)
    history, customers, cap = world["history"], world["customers"], 5
    every = decision_points(world["link_events"], settings.consumer.score_on)
    # half of them of customers who share an identifier with a customer blocked at some time, where the
    # blocked-customers feature depends on whether t is before or after the block (or its unblock)
    ev = world["link_events"]
    blocked_ids = set(customers.loc[customers["blocked_at"].notna(), "customer_id"])
    near = ev.loc[ev["value_hash"].isin(ev.loc[ev["customer_id"].isin(blocked_ids), "value_hash"]), "customer_id"]
    near_points = every.loc[every["customer_id"].isin(set(near)) & ~every["customer_id"].isin(blocked_ids)]
    assert len(near_points) >= 6
    points = pd.concat([near_points.sample(6, random_state=seed), every.sample(6, random_state=seed)])
    points = points.assign(ts=points["ts"] + rng.integers(0, 60 * 86_400_000, len(points)))
    out = tmp_path_factory.mktemp("model")
    t_max = int(points["ts"].max())
    untrained_artifact(truncated_customers(world, t_max), truncated_links(world, t_max), t_max, settings, out,
                       fanout_cap=cap)
    artifact = ModelArtifact.load(out)

    inputs = history.scoring_inputs(points["customer_id"], points["ts"], cap)
    assert (inputs.target_ids >= 0).all()  # a decision point's own event makes a link
    tensors = build_graph_tensors(inputs, fanout_cap=cap)
    together = artifact.score_tensors(tensors, tensors.index_of(inputs.target_ids))
    blocked_seen = 0.0
    for (cid, t), score in zip(zip(points["customer_id"], points["ts"]), together):
        truncated = ScoringInputs(truncated_customers(world, int(t)), truncated_links(world, int(t)), int(t))
        whole = build_graph_tensors(truncated, fanout_cap=cap)
        assert artifact.score_tensors(whole, whole.index_of([cid]))[0] == pytest.approx(score, abs=1e-6)
        blocked_seen += sum(whole.node_features[k][:, -1].sum() for k in whole.identifier_ids)
    assert blocked_seen > 0  # some identifier carried a standing block at its decision point


def test_label_events_are_never_links(world, settings):
    """A block or appeal that carries a device and an IP adds no link and no count."""
    events = world["events"].iloc[:50].copy()
    blocks = events.head(5).assign(event_type="block", event_id=lambda f: f["event_id"] + "-block")
    appeals = events.head(5).assign(event_type="appeal", event_id=lambda f: f["event_id"] + "-appeal")
    with_labels = pd.concat([events, blocks, appeals], ignore_index=True)
    links_a, _, ev_a = reference_link_events(events, world["hasher"], world["tagger"])
    links_b, _, ev_b = reference_link_events(with_labels, world["hasher"], world["tagger"])
    assert not ev_b["event_type"].isin(LABEL_EVENT_TYPES).any()
    pd.testing.assert_frame_equal(links_a.sort_values(KEY).reset_index(drop=True),
                                  links_b.sort_values(KEY).reset_index(drop=True))


def test_decision_points_follow_the_consumer_triggers():
    ev = pd.DataFrame([
        ("e1", "c1", "device", "d1", 1, "signup"), ("e1", "c1", "ip", "i1", 1, "signup"),
        ("e2", "c1", "device", "d1", 2, "login"), ("e2", "c1", "ip", "i1", 2, "login"),   # nothing new: no decision
        ("e3", "c1", "device", "d2", 3, "login"), ("e3", "c1", "ip", "i1", 3, "login"),   # a new device: decides
        ("e4", "c1", "card", "k1", 4, "add_card"), ("e5", "c2", "ip", "i1", 5, "login"),  # c2's first IP link
    ], columns=["event_id", "customer_id", "kind", "value_hash", "ts", "event_type"])
    got = decision_points(ev, ["signup", "login_new_identifier", "add_card"])
    assert got["event_id"].tolist() == ["e1", "e3", "e4", "e5"]
    assert decision_points(ev, ["signup"])["event_id"].tolist() == ["e1"]
