"""The model lifecycle where models serve: hot reload (the consumer on a real Kafka broker and the API
follow the registry's production version: a promotion takes effect between micro-batches or requests, no
event is lost or applied twice, every decision names the one model that made it), shadow scoring and
drift."""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest

from etl.reference import reference_etl
from fraudgraph.event_tags import EventTagger
from fraudgraph.graph import open_graph
from fraudgraph.identity import IdentifierHasher
from fraudgraph.lifecycle import ModelRegistry, RunTracker
from fraudgraph.lifecycle.follow import StageFollower
from fraudgraph.ml.artifact import ModelArtifact
from serving.consumer import build_consumer
from serving.consumer.ledger import Ledger
from serving.consumer.sources import JsonlSink
from serving.consumer.sources.kafka import KafkaSource

from testing_support import untrained_artifact

pytestmark = pytest.mark.slow


def test_a_promotion_during_a_running_consumer_takes_effect_between_micro_batches(
        small_world, small_world_graph, settings, kafka_server, tmp_path):
    from confluent_kafka import Producer

    registry_settings = settings.registry.model_copy(update={"dir": str(tmp_path / "registry"), "poll_s": 0.2})
    tuned = settings.model_copy(update={"registry": registry_settings}, deep=True)
    tuned.consumer.max_batch = 20
    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    as_of = pd.Timestamp(json.loads((small_world / "manifest.json").read_text())["cutoff"]).value // 10**6
    # two versions: models of one shape with other seeds (other weights, other scores)
    tracker, registry = RunTracker(registry_settings), ModelRegistry(registry_settings)
    model_ids = []
    for seed in (2, 3):
        folder = untrained_artifact(ref["customers"], ref["links"], as_of, settings, tmp_path / f"model-{seed}",
                                    fanout_cap=20, seed=seed, hidden=16, edge_hidden=8)
        model_ids.append(ModelArtifact.load(folder).version)
        registry.register(tracker.log_training(folder, params={}, metrics={}, lineage={"model_id": model_ids[-1]}))
    registry.move(1, "production", reason="test: first")

    uri, _ = small_world_graph
    lines = (small_world / "live" / "events.jsonl").read_text().splitlines()[:400]
    producer = Producer({"bootstrap.servers": kafka_server.bootstrap})
    for line in lines:
        producer.produce("reload-events", line.encode())
    producer.flush(30)

    decisions_path = tmp_path / "decisions.jsonl"

    def promote_once_deciding():  # the second version, while the consumer is under way
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if decisions_path.exists() and len(decisions_path.read_text().splitlines()) >= 20:
                registry.move(2, "production", reason="test: promoted mid-stream")
                return
            time.sleep(0.05)

    promoter = threading.Thread(target=promote_once_deciding)
    follower = StageFollower(registry_settings, ModelArtifact.load, registry_settings.poll_s).start()
    ledger = Ledger(tmp_path / "ledger.db")
    source = KafkaSource(kafka_server.bootstrap, "reload-events", "reload-test", idle_stop_s=8)
    with open_graph(uri, settings) as store:
        consumer = build_consumer(store, tuned, ledger, model=None, decisions=JsonlSink(decisions_path),
                                  dead_letter=JsonlSink(tmp_path / "dead.jsonl"), follower=follower)
        promoter.start()
        stats = consumer.run(source, install_signals=False)
    promoter.join()
    follower.stop()
    source.close()
    ledger.close()

    assert stats["events_in"] == stats["applied"] == 400 and stats["duplicates"] == 0 and stats["rejected"] == 0
    made_by = [json.loads(line)["model_version"] for line in decisions_path.read_text().splitlines()]
    assert len(made_by) == sum(stats["decisions"].values()) > 20
    switch = made_by.index(model_ids[1])  # the first decision of the promoted version
    assert switch >= 20 and set(made_by[:switch]) == {model_ids[0]} and set(made_by[switch:]) == {model_ids[1]}
    assert follower.reloads == 1 and follower.version == 2


def test_consume_from_the_registry_decides_with_the_production_version(small_world, small_world_graph, settings,
                                                                      tmp_path, monkeypatch):
    import yaml
    from click.testing import CliRunner

    from fraudgraph.cli.main import cli

    registry_settings = settings.registry.model_copy(update={"dir": str(tmp_path / "registry")})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"consumer": {"metrics_port": 0}}))
    monkeypatch.setenv("FRAUDGRAPH_REGISTRY__DIR", registry_settings.dir)  # the environment wins over a file
    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    as_of = pd.Timestamp(json.loads((small_world / "manifest.json").read_text())["cutoff"]).value // 10**6
    folder = untrained_artifact(ref["customers"], ref["links"], as_of, settings, tmp_path / "model", fanout_cap=20,
                                seed=4, hidden=16, edge_hidden=8)
    uri, _ = small_world_graph
    source = tmp_path / "live.jsonl"
    source.write_text("\n".join((small_world / "live" / "events.jsonl").read_text().splitlines()[:50]) + "\n")
    args = ["consume", "--source", str(source), "--graph", uri, "--decisions", str(tmp_path / "decisions.jsonl"),
            "--ledger", str(tmp_path / "ledger.db"), "--dead-letter", str(tmp_path / "dead.jsonl"), "--config",
            str(config)]

    nothing_in_production = CliRunner().invoke(cli, [*args, "--from-registry"])
    assert nothing_in_production.exit_code == 2 and "promote one first" in nothing_in_production.output
    both = CliRunner().invoke(cli, [*args, "--from-registry", "--model", str(folder)])
    assert both.exit_code == 2 and "give --model MODEL_DIR or --from-registry" in both.output

    registry = ModelRegistry(registry_settings)
    model_id = ModelArtifact.load(folder).version
    registry.register(RunTracker(registry_settings).log_training(folder, params={}, metrics={},
                                                                 lineage={"model_id": model_id}))
    registry.move(1, "production", reason="test: first")
    result = CliRunner().invoke(cli, [*args, "--from-registry"])
    assert result.exit_code == 0, result.output
    made_by = {json.loads(line)["model_version"] for line in (tmp_path / "decisions.jsonl").read_text().splitlines()}
    assert made_by == {model_id}


def test_the_api_follows_a_promotion_between_requests(small_world, small_world_graph, settings, tmp_path):
    import httpx

    from fraudgraph.scoring.online import OnlineScorer
    from localservers import free_port
    from serving.api import create_app

    from api_helpers import start_uvicorn

    registry_settings = settings.registry.model_copy(update={"dir": str(tmp_path / "registry"), "poll_s": 0.1})
    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    as_of = pd.Timestamp(json.loads((small_world / "manifest.json").read_text())["cutoff"]).value // 10**6
    tracker, registry = RunTracker(registry_settings), ModelRegistry(registry_settings)
    model_ids = []
    for seed in (5, 6):
        folder = untrained_artifact(ref["customers"], ref["links"], as_of, settings, tmp_path / f"model-{seed}",
                                    fanout_cap=20, seed=seed, hidden=16, edge_hidden=8)
        model_ids.append(ModelArtifact.load(folder).version)
        registry.register(tracker.log_training(folder, params={}, metrics={}, lineage={"model_id": model_ids[-1]}))
    registry.move(1, "production", reason="test: first")
    api_settings = settings.model_copy(update={"api": type(settings.api).model_validate(
        {**settings.api.model_dump(), "tokens": {"scorer": ["score"]}, "review_log": str(tmp_path / "reviews.db")})})
    follower = StageFollower(registry_settings, ModelArtifact.load, registry_settings.poll_s).start()
    uri, _ = small_world_graph
    customer = str(ref["customers"]["customer_id"].iloc[0])

    def scored_by(base: str) -> str:
        r = httpx.post(f"{base}/v1/score", json={"customer_ids": [customer]},
                       headers={"Authorization": "Bearer scorer"}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["results"][0]["model_version"]

    with open_graph(uri, settings) as store:
        app = create_app(store, OnlineScorer(store, follower.model, api_settings), api_settings, follower=follower)
        port = free_port()
        server, thread = start_uvicorn(app, port)
        base = f"http://127.0.0.1:{port}"
        try:
            assert scored_by(base) == model_ids[0]
            registry.move(2, "production", reason="test: promoted while serving")
            seen, deadline = [], time.monotonic() + 15
            while (not seen or seen[-1] != model_ids[1]) and time.monotonic() < deadline:
                seen.append(scored_by(base))
            assert seen[-1] == model_ids[1]  # without a restart
            assert all(scored_by(base) == model_ids[1] for _ in range(5))
        finally:
            server.should_exit = True
            thread.join(10)
            follower.stop()


def test_a_shadow_model_scores_the_same_steps_into_its_own_sink_and_is_never_acted_on(
        small_world, small_world_graph, settings, tmp_path, monkeypatch):
    import yaml
    from click.testing import CliRunner

    from fraudgraph.cli.main import cli
    from fraudgraph.labels.stage import run_labels

    registry_settings = settings.registry.model_copy(update={"dir": str(tmp_path / "registry")})
    monkeypatch.setenv("FRAUDGRAPH_REGISTRY__DIR", registry_settings.dir)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"consumer": {"metrics_port": 0}}))
    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    as_of = pd.Timestamp(json.loads((small_world / "manifest.json").read_text())["cutoff"]).value // 10**6
    tracker, registry = RunTracker(registry_settings), ModelRegistry(registry_settings)
    model_ids = []
    for seed, threshold in ((7, 0.5), (8, 0.0)):  # the shadow flags everyone: it cannot agree everywhere
        folder = untrained_artifact(ref["customers"], ref["links"], as_of, settings, tmp_path / f"model-{seed}",
                                    fanout_cap=20, seed=seed, hidden=16, edge_hidden=8, threshold=threshold)
        model_ids.append(ModelArtifact.load(folder).version)
        registry.register(tracker.log_training(folder, params={}, metrics={}, lineage={"model_id": model_ids[-1]}))
    registry.move(1, "production", reason="test: first")
    shadowed = CliRunner().invoke(cli, ["models", "shadow", "2", "--reason", "test: beside production", "--json"])
    assert shadowed.exit_code == 0 and json.loads(shadowed.stdout)["stage"] == "shadow", shadowed.output
    uri, _ = small_world_graph
    source = tmp_path / "live.jsonl"
    source.write_text("\n".join((small_world / "live" / "events.jsonl").read_text().splitlines()[:300]) + "\n")
    result = CliRunner().invoke(cli, [
        "consume", "--source", str(source), "--graph", uri, "--from-registry", "--config", str(config),
        "--decisions", str(tmp_path / "decisions.jsonl"), "--shadow-decisions", str(tmp_path / "shadow.jsonl"),
        "--ledger", str(tmp_path / "ledger.db"), "--dead-letter", str(tmp_path / "dead.jsonl")])
    assert result.exit_code == 0, result.output

    production = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    shadow = [json.loads(x) for x in (tmp_path / "shadow.jsonl").read_text().splitlines()]
    assert {d["decision_id"] for d in shadow} == {d["decision_id"] for d in production} and production
    assert {d["model_version"] for d in production} == {model_ids[0]} and all(d["shadow"] for d in shadow)
    assert {d["model_version"] for d in shadow} == {model_ids[1]}
    with open_graph(uri, settings) as store:  # only production's decisions reach the customers' vertices
        written = set(store.customers_with("model_version", model_ids[1])["customer_id"])
        run_labels(store, as_of, tmp_path / "labels", settings)
    assert not written

    compared = CliRunner().invoke(cli, ["models", "compare", "--decisions", str(tmp_path / "decisions.jsonl"),
                                        "--shadow-decisions", str(tmp_path / "shadow.jsonl"),
                                        "--labels", str(tmp_path / "labels"), "--json"])
    assert compared.exit_code == 0, compared.output
    summary = json.loads(compared.stdout)
    assert summary["decisions"]["both"] == len(production) and 0 <= summary["agreement"] < 1
    assert summary["shadow"]["flagged"] >= summary["production"]["flagged"]
    assert summary["labels"]["customers"] > 0 and "precision" in summary["production"]


def test_the_consumer_measures_drift_per_day_and_the_report_flags_what_moved(small_world, small_world_graph,
                                                                            settings, tmp_path):
    import urllib.request

    import numpy as np
    from click.testing import CliRunner

    from fraudgraph.cli.main import cli
    from fraudgraph.lifecycle.drift import REFERENCE_FILE, DriftReference
    from fraudgraph.ml.features import CUSTOMER_FEATURES
    from fraudgraph.scoring.online import OnlineScorer

    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    as_of = pd.Timestamp(json.loads((small_world / "manifest.json").read_text())["cutoff"]).value // 10**6
    folder = untrained_artifact(ref["customers"], ref["links"], as_of, settings, tmp_path / "model", fanout_cap=20,
                                seed=9, hidden=16, edge_hidden=8)
    uri, _ = small_world_graph
    # the reference: the model's own inputs and scores of 600 customers as of the cut-off (the "training" data)
    with open_graph(uri, settings) as store:
        results = OnlineScorer(store, ModelArtifact.load(folder), settings).score_many(
            list(ref["customers"]["customer_id"][:600]), as_of)
    scored = [r for r in results.values() if r.score is not None]
    DriftReference.fit(CUSTOMER_FEATURES, np.array([r.features for r in scored]),
                       np.array([r.score for r in scored])).save(folder / REFERENCE_FILE)
    tuned = settings.model_copy(deep=True)
    tuned.consumer.drift_log = str(tmp_path / "drift.jsonl")
    lines = (small_world / "live" / "events.jsonl").read_text().splitlines()[:800]
    (tmp_path / "live.jsonl").write_text("\n".join(lines) + "\n")
    from serving.consumer.sources import FileSource

    ledger = Ledger(tmp_path / "ledger.db")
    with open_graph(uri, settings) as store:
        consumer = build_consumer(store, tuned, ledger, model=ModelArtifact.load(folder),
                                  decisions=JsonlSink(tmp_path / "decisions.jsonl"),
                                  dead_letter=JsonlSink(tmp_path / "dead.jsonl"))
        port = consumer.metrics.serve(0)
        stats = consumer.run(FileSource(tmp_path / "live.jsonl"), install_signals=False)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        consumer.metrics.close()
    ledger.close()
    assert 'fraudgraph_drift_psi{name="score"}' in metrics and 'name="account_age_days"' in metrics
    logged = [json.loads(x) for x in (tmp_path / "drift.jsonl").read_text().splitlines()]
    days = sorted({r["day"] for r in logged})
    assert len(days) >= 2 and sum(sum(r["decisions"].values()) for r in logged) == sum(stats["decisions"].values())

    def report(model_dir, out):
        result = CliRunner().invoke(cli, ["drift", "--log", str(tmp_path / "drift.jsonl"), "--model", str(model_dir),
                                          "--since", "30", "--out", str(out), "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    summary = report(folder, tmp_path / "report")
    assert [d["day"] for d in summary["days"]] == days
    assert all(d["score_psi"] is not None and d["feature_psi"] for d in summary["days"])
    assert (tmp_path / "report" / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| day | decisions |" in (tmp_path / "report" / "drift.md").read_text()
    assert summary["model_version"] == ModelArtifact.load(folder).version


def test_the_link_event_log_holds_the_live_link_events_as_the_consumer_applied_them(small_world, small_world_graph,
                                                                                    settings, tmp_path):
    from fraudgraph.graph.event_log import LinkEventLog, read_link_event_log
    from fraudgraph.graph.history import LINK_EVENT_COLUMNS
    from serving.bulk_replay import plan_stream
    from serving.consumer.sources import FileSource
    from serving.consumer.steps import graph_signups

    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    as_of = pd.Timestamp(json.loads((small_world / "manifest.json").read_text())["cutoff"]).value // 10**6
    folder = untrained_artifact(ref["customers"], ref["links"], as_of, settings, tmp_path / "model", fanout_cap=20,
                                seed=10, hidden=16, edge_hidden=8)
    tuned = settings.model_copy(deep=True)
    tuned.consumer.link_event_log = str(tmp_path / "link-events")
    stream = tmp_path / "live.jsonl"
    stream.write_text("\n".join((small_world / "live" / "events.jsonl").read_text().splitlines()[:400]) + "\n")
    uri, _ = small_world_graph
    with open_graph(uri, settings) as store:
        signups = graph_signups(store.customers_frame())
    ledger = Ledger(tmp_path / "ledger.db")
    for _ in range(2):  # the second pass: every event a redelivery, nothing applied or logged again
        with open_graph(uri, settings) as store:
            consumer = build_consumer(store, tuned, ledger, model=ModelArtifact.load(folder),
                                      decisions=JsonlSink(tmp_path / "decisions.jsonl"),
                                      dead_letter=JsonlSink(tmp_path / "dead.jsonl"))
            consumer.run(FileSource(stream), install_signals=False)
    ledger.close()
    lines_logged = sum(len(p.read_text().splitlines()) for p in (tmp_path / "link-events").glob("*.jsonl"))
    logged = read_link_event_log(tmp_path / "link-events")
    assert len(logged) == lines_logged > 0 and len(list((tmp_path / "link-events").glob("*.jsonl"))) >= 2

    # the same link events the bulk replay plans for the stream (keyed hashes, tags, times)
    source = FileSource(stream)
    plan = plan_stream(source.poll(10**9, 0), tuned, IdentifierHasher.from_settings(settings.privacy), set(),
                       signups, ModelArtifact.load(folder).trained_as_of_ms)
    source.close()
    planned = plan.link_events.sort_values(["ts", "event_id", "kind", "value_hash"], kind="stable")
    pd.testing.assert_frame_equal(logged[LINK_EVENT_COLUMNS].reset_index(drop=True).astype(str),
                                  planned[LINK_EVENT_COLUMNS].reset_index(drop=True).astype(str))
    # a crash between the log and the journal logs a step twice: read back once
    LinkEventLog(tmp_path / "link-events").append(list(logged.head(5).itertuples(index=False)))
    assert len(read_link_event_log(tmp_path / "link-events")) == len(logged)
    until = int(logged["ts"].iloc[len(logged) // 2])
    assert (read_link_event_log(tmp_path / "link-events", until_ms=until)["ts"] <= until).all()
