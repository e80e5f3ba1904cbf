"""The bulk replay decides every event as the real consumer does, and the main job's replay leaves the
graph, the ledger and the decisions as a replay through the consumer alone does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudgraph.event_tags import EventTagger
from fraudgraph.graph import open_graph
from fraudgraph.graph.history import LINK_EVENT_COLUMNS
from fraudgraph.graph.snapshot import normalise_links
from fraudgraph.identity import IdentifierHasher
from fraudgraph.lifecycle.drift import REFERENCE_FILE, DriftReference
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.ml.features import CUSTOMER_FEATURES
from fraudgraph.scoring.online import OnlineScorer
from serving.bulk_replay import BulkDecider, plan_stream
from serving.consumer import LiveConsumer
from serving.consumer.ledger import Ledger
from serving.consumer.sources import FileSource, JsonlSink
from serving.consumer.steps import graph_signups
from serving.replay import SCORE_TOLERANCE, compare_decisions, replay_stream

pytestmark = pytest.mark.slow

STREAM_EVENTS = 2400


@pytest.fixture(scope="module")
def labelled_graph(small_world, tmp_path_factory, settings):
    """The small world loaded into a graph with its cleaned labels (so reasons name fraud neighbours)."""
    from etl.reference import reference_etl
    from fraudgraph.labels.stage import run_labels

    from testing_support import frames_to_elements

    out = tmp_path_factory.mktemp("bulk-replay")
    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    path = out / "graph.db"
    with open_graph(f"sqlite:///{path}", settings) as store:
        customers, links = frames_to_elements(ref["customers"], ref["links"])
        store.upsert_customers(customers)
        store.upsert_links(links)
        cutoff = pd.Timestamp(json.loads((small_world / "manifest.json").read_text())["cutoff"]).value // 10**6
        run_labels(store, cutoff, out / "labels", settings)
    return path


@pytest.fixture(scope="module")
def model(small_world, labelled_graph, settings, tmp_path_factory):
    """A seeded model of the deployed shape (three averaged members), with its threshold at the 90th
    percentile of its own scores on the graph (so the stream gets blocks, reviews and allows)."""
    from fraudgraph.scoring.batch import score_graph

    from testing_support import untrained_artifact

    with open_graph(f"sqlite:///{labelled_graph}", settings) as store:
        customers, links = store.customers_frame(), store.links_frame()
    as_of = int(pd.to_numeric(links["last_seen"]).max())
    out = tmp_path_factory.mktemp("bulk-model")
    model_dir = untrained_artifact(
        customers, links, as_of, settings, out / "model", fanout_cap=20, seed=3, hidden=16, edge_hidden=8, members=3
    )
    scratch = tmp_path_factory.mktemp("bulk-score") / "graph.db"
    shutil.copy(labelled_graph, scratch)
    with open_graph(f"sqlite:///{scratch}", settings) as store:
        score_graph(store, ModelArtifact.load(model_dir), settings, out / "scores")
    scores = pd.read_parquet(out / "scores" / "decisions.parquet")["score"]
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["threshold"] = float(scores.quantile(0.9))
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    # a drift reference to count the stream's decisions against (what the consumer's drift log bins on)
    features = np.random.default_rng(5).lognormal(size=(500, len(CUSTOMER_FEATURES)))
    DriftReference.fit(CUSTOMER_FEATURES, features, scores.to_numpy()).save(model_dir / REFERENCE_FILE)
    return model_dir


def with_drift_log(settings, path: Path):
    """``settings`` with the consumer's drift log at ``path``."""
    return settings.model_copy(update={"consumer": settings.consumer.model_copy(update={"drift_log": str(path)})})


def drift_by_day(path: Path) -> dict:
    """The drift log's counts and decisions summed per (day, model version): what its report reads."""
    out: dict = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        key = (record["day"], record["model_version"])
        counts, decisions = out.setdefault(key, ({}, {}))
        for name, bins in record["counts"].items():
            counts[name] = [a + b for a, b in zip(counts.get(name, [0] * len(bins)), bins)]
        for decision, n in record["decisions"].items():
            decisions[decision] = decisions.get(decision, 0) + n
    return out


@pytest.fixture(scope="module")
def stream(small_world, tmp_path_factory):
    """The first events of the live stream with a redelivered run and a bad line: every kind of event
    (blocks, appeals and unblocks included)."""
    lines = (small_world / "live" / "events.jsonl").read_text().splitlines()[:STREAM_EVENTS]
    types = {json.loads(x)["event_type"] for x in lines}
    assert {"signup", "login", "payment", "block", "appeal"} <= types
    path = tmp_path_factory.mktemp("bulk-stream") / "events.jsonl"
    path.write_text("\n".join([*lines[:1500], "not json", *lines[1500:], *lines[200:260]]) + "\n")
    return path


def consumer_replay(graph: Path, model_dir: Path, events: Path, out: Path, settings, ledger_name="ledger.db"):
    """The stream through the real consumer (resuming after the ledger's offset); every decision in
    ``out/decisions.jsonl``."""
    ledger = Ledger(out / ledger_name)
    decisions, dead = JsonlSink(out / "decisions.jsonl"), JsonlSink(out / "dead.jsonl")
    with open_graph(f"sqlite:///{graph}", settings) as store:
        scorer = OnlineScorer(store, ModelArtifact.load(model_dir), settings)
        source = FileSource(events, start=ledger.offset(FileSource(events).name))
        LiveConsumer(store, scorer, settings, ledger, decisions, dead).run(source, install_signals=False)
        source.close()
    decisions.close()
    dead.close()
    ledger.close()
    return [json.loads(x) for x in (out / "decisions.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def consumer_alone(labelled_graph, model, stream, settings, tmp_path_factory):
    """The whole stream through the real consumer, step by step: the graph and its decisions."""
    out = tmp_path_factory.mktemp("consumer-alone")
    graph = out / "graph.db"
    shutil.copy(labelled_graph, graph)
    return graph, consumer_replay(graph, model, stream, out, with_drift_log(settings, out / "drift.jsonl"))


def test_bulk_decisions_equal_the_consumers_on_every_decided_event(
    labelled_graph, model, stream, consumer_alone, small_world_snapshot, settings
):
    _, by_consumer = consumer_alone
    history = pd.read_parquet(small_world_snapshot / "link_events.parquet", columns=LINK_EVENT_COLUMNS)
    with open_graph(f"sqlite:///{labelled_graph}", settings) as store:
        customers = store.customers_frame()
    source = FileSource(stream)
    plan = plan_stream(
        source.poll(10**9, 0),
        settings,
        IdentifierHasher.from_settings(settings.privacy),
        set(zip(history["customer_id"], history["kind"], history["value_hash"])),
        graph_signups(customers),
        ModelArtifact.load(model).trained_as_of_ms,
    )
    source.close()
    assert plan.unordered_steps == 0 and plan.rejected == 1 and plan.duplicates == 60
    bulk = BulkDecider(ModelArtifact.load(model), settings, chunk_points=700).decide(
        plan, history, customers, progress_bar=False
    )

    parity = compare_decisions(by_consumer, bulk)
    assert len(by_consumer) >= 1000
    assert parity["only_consumer"] == 0 and parity["only_bulk"] == 0
    assert parity["other_decision"] == 0 and parity["other_reason_codes"] == 0
    assert parity["max_abs_score_diff"] <= SCORE_TOLERANCE
    assert parity["equal"]
    # the comparison is not empty-handed: every decision, blocked customers' tries among them (not scored),
    # fraud neighbours in the reasons
    assert {d["decision"] for d in by_consumer} == {"block", "review", "allow", "blocked"}
    assert all(d["score"] is None and d["reason_codes"] == ["BLOCK_STANDS"] for d in by_consumer
               if d["decision"] == "blocked")
    assert any(c.endswith("_WITH_FRAUD") for d in by_consumer for c in d["reason_codes"])
    bulk_of = {d["decision_id"]: d for d in bulk}
    assert all(bulk_of[d["decision_id"]]["scored_as_of"] == d["scored_as_of"] for d in by_consumer)


def test_the_main_jobs_replay_leaves_what_the_consumer_alone_leaves(
    labelled_graph, model, stream, consumer_alone, small_world_snapshot, settings, tmp_path
):
    graph = tmp_path / "graph.db"
    shutil.copy(labelled_graph, graph)
    part = settings.model_copy(update={"replay": settings.replay.model_copy(update={"consumer_events": 800})})
    part = with_drift_log(part, tmp_path / "drift.jsonl")
    with open_graph(f"sqlite:///{graph}", part) as store:
        out = replay_stream(
            part, store, ModelArtifact.load(model), stream, small_world_snapshot, tmp_path / "live", progress_bar=False
        )
    consumer = out["parts"]["consumer"]
    assert consumer["events"] == 1000 and consumer["last_line"] == 1000  # one whole poll
    assert out["parts"]["bulk"]["first_line"] == 1001 and out["parts"]["bulk"]["decisions"] > 0
    assert out["parity"]["equal"] and out["parity"]["matched"] == consumer["decisions"] > 0
    assert out["rejected"] == 1 and out["duplicates"] == 60

    alone_graph, by_consumer = consumer_alone
    emitted = [json.loads(x) for x in (tmp_path / "live" / "decisions.jsonl").read_text().splitlines()]
    assert compare_decisions(by_consumer, emitted)["equal"]
    with open_graph(f"sqlite:///{graph}", settings) as got, open_graph(f"sqlite:///{alone_graph}", settings) as want:
        pd.testing.assert_frame_equal(normalise_links(got.links_frame()), normalise_links(want.links_frame()))
        keep = [
            "customer_id",
            "signup_ts",
            "lifetime_value",
            "blocked_at",
            "unblocked_at",
            "appealed_at",
            "score",
            "decision",
            "scored_as_of",
        ]
        a = got.customers_frame().reindex(columns=keep).sort_values("customer_id").reset_index(drop=True)
        b = want.customers_frame().reindex(columns=keep).sort_values("customer_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False, atol=SCORE_TOLERANCE)

    # the drift log counts the bulk part's decisions as the consumer counts its own: per day, the same bins
    alone = drift_by_day(alone_graph.parent / "drift.jsonl")
    assert len(alone) >= 2 and sum(sum(d.values()) for _, d in alone.values()) == len(by_consumer)
    assert drift_by_day(tmp_path / "drift.jsonl") == alone

    # the ledger saw the whole stream: replaying it again applies nothing
    again = consumer_replay(graph, model, stream, tmp_path / "live", settings, "consumer-ledger.db")
    assert len(again) == len(emitted)
