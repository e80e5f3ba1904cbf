"""The live consumer on every graph engine: the same events give the same graph and the same decisions on
SQLite, TinkerGraph and JanusGraph, and the Gremlin engines' link summaries (advanced by each write, not
aggregated) end exactly as aggregating the links gives."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from etl.reference import reference_etl
from fraudgraph.event_tags import EventTagger
from fraudgraph.graph import open_graph
from fraudgraph.graph.elements import customer_vertex_id, identifier_id
from fraudgraph.graph.gremlin import GremlinIdentityGraph
from fraudgraph.graph.snapshot import normalise_links
from fraudgraph.identity import IdentifierHasher
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.scoring.online import OnlineScorer
from serving.consumer import LiveConsumer
from serving.consumer.ledger import Ledger
from serving.consumer.sources import FileSource, JsonlSink

from testing_support import frames_to_elements, untrained_artifact

pytestmark = [pytest.mark.slow, pytest.mark.gremlin]


@pytest.fixture(scope="module")
def world(small_world, settings, tmp_path_factory):
    """The small world's reference aggregates and a seeded model (the plumbing does not need a trained one)."""
    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    as_of = pd.Timestamp(json.loads((small_world / "manifest.json").read_text())["cutoff"]).value // 10**6
    model = untrained_artifact(ref["customers"], ref["links"], as_of, settings,
                               tmp_path_factory.mktemp("engines-model"), fanout_cap=20, seed=2, hidden=16,
                               edge_hidden=8)
    return ref, model


def replay(engine, uri, settings, world, small_world, tmp_path, events=500):
    """Load the history, replay the first ``events`` live events; the decisions and the final links."""
    ref, model = world
    out = tmp_path / engine
    out.mkdir()
    lines = (small_world / "live" / "events.jsonl").read_text().splitlines()[:events]
    (out / "live.jsonl").write_text("\n".join(lines) + "\n")
    with open_graph(uri, settings) as store:
        if engine != "sqlite":
            store.clear()
        customers, links = frames_to_elements(ref["customers"], ref["links"])
        with store.summaries.deferred():
            store.upsert_customers(customers)
            store.upsert_links(links)
        store.summaries.rebuild()
        loaded = dict(store.summary_cache.refreshes) if isinstance(store, GremlinIdentityGraph) else {}
        decisions, dead = JsonlSink(out / "decisions.jsonl"), JsonlSink(out / "dead.jsonl")
        ledger = Ledger(out / "ledger.db")
        consumer = LiveConsumer(store, OnlineScorer(store, ModelArtifact.load(model), settings), settings, ledger,
                                decisions, dead)
        consumer.run(FileSource(out / "live.jsonl"), install_signals=False)
        decisions.close()
        dead.close()
        ledger.close()
        frame = normalise_links(store.links_frame())
        summaries = None
        if engine != "sqlite":
            vids = [customer_vertex_id(c) for c in sorted(set(frame["customer_id"]))]
            vids += [identifier_id(k, h) for k, h in sorted(set(zip(frame["kind"], frame["value_hash"])))]
            stored = store.summary_cache.read(vids)
            refreshes = {k: v - loaded[k] for k, v in store.summary_cache.refreshes.items()}  # the consumer's own
            store.summaries.rebuild()
            summaries = (vids, stored, store.summary_cache.read(vids), refreshes)
    rows = [json.loads(x) for x in (out / "decisions.jsonl").read_text().splitlines()]
    return pd.DataFrame(rows).sort_values("decision_id").reset_index(drop=True), frame, summaries


@pytest.fixture(scope="module")
def on_sqlite(small_world, settings, world, tmp_path_factory):
    """The reference: the same replay on the embedded SQLite graph."""
    tmp = tmp_path_factory.mktemp("engines-sqlite")
    decisions, links, _ = replay("sqlite", f"sqlite:///{tmp / 'reference.db'}", settings, world, small_world, tmp)
    return decisions, links


@pytest.mark.parametrize("engine", ["tinkergraph", "janusgraph"])
def test_the_consumer_gives_the_same_graph_and_decisions_on_every_engine(
        engine, small_world, settings, world, on_sqlite, tmp_path, request):
    from conftest import janusgraph_settings

    if engine == "janusgraph":
        uri, engine_settings = request.getfixturevalue("janusgraph_server").url, janusgraph_settings(settings)
    else:
        uri, engine_settings = request.getfixturevalue("gremlin_server").url, settings
    want_decisions, want_links = on_sqlite
    decisions, links, (vids, stored, aggregated, refreshes) = replay(
        engine, uri, engine_settings, world, small_world, tmp_path)

    pd.testing.assert_frame_equal(links, want_links)
    assert len(decisions) == len(want_decisions) > 0
    same = ["decision_id", "customer_id", "event_type", "decision", "reason_codes", "scored_as_of"]
    pd.testing.assert_frame_equal(decisions[same], want_decisions[same])
    assert (decisions["score"] - want_decisions["score"]).abs().max() < 1e-5
    # every summary the writes left is current and equals what aggregating the links gives; most of the
    # consumer's refreshes advanced the dropped summary rather than aggregating
    assert set(stored) == set(vids)
    assert stored == aggregated
    assert refreshes["advanced"] > refreshes["aggregated"]
