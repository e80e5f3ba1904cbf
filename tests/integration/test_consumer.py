"""The live consumer on a file source: exactly-once effects, dead letters, replays, recovery after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from etl.reference import reference_links
from fraudgraph.cli.main import cli
from fraudgraph.event_tags import EventTagger
from fraudgraph.graph import customer_properties, open_graph
from fraudgraph.graph.snapshot import normalise_links
from fraudgraph.identity import IdentifierHasher
from fraudgraph.redaction import contains_card_number
from fraudgraph.scoring.online import OnlineScorer
from serving.consumer import LiveConsumer
from serving.consumer.ledger import Ledger
from serving.consumer.sources import FileSource, JsonlSink

from testing_support import frames_to_elements, seeded_world_model


@pytest.fixture(scope="module")
def model_dir(small_world, settings, tmp_path_factory):
    """A seeded (untrained) model: the consumer's plumbing does not depend on its quality."""
    return seeded_world_model(small_world, settings, tmp_path_factory.mktemp("consumer-model"), seed=2)


def expected_links(small_world, settings, extra: pd.DataFrame) -> pd.DataFrame:
    """Reference aggregates of historical events plus the given live events (what exactly-once must give)."""
    hist = pd.read_parquet(small_world / "historical" / "events.parquet")
    events = pd.concat([hist, extra], ignore_index=True)
    links, _ = reference_links(events, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    return normalise_links(links)


def live_events(small_world) -> list[str]:
    return (small_world / "live" / "events.jsonl").read_text().splitlines()


def run_consumer(uri, model_dir, settings, source_path, ledger_path, out_dir, start=None):
    from fraudgraph.ml.artifact import ModelArtifact

    ledger = Ledger(ledger_path)
    decisions, dead = JsonlSink(out_dir / "decisions.jsonl"), JsonlSink(out_dir / "dead.jsonl")
    with open_graph(uri, settings) as store:
        scorer = OnlineScorer(store, ModelArtifact.load(model_dir), settings)
        consumer = LiveConsumer(store, scorer, settings, ledger, decisions, dead)
        port = consumer.metrics.serve(0)
        src = FileSource(source_path, start=ledger.offset(FileSource(source_path).name) if start is None else start)
        stats = consumer.run(src, install_signals=False)
        src.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            stats["_metrics"] = resp.read().decode()  # the Prometheus endpoint, scraped over HTTP
        consumer.metrics.close()
    decisions.close()
    dead.close()
    ledger.close()
    return stats


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_replay_is_exactly_once_with_dead_letters(small_world, small_world_graph, model_dir, settings, tmp_path):
    uri, _ = small_world_graph
    lines = live_events(small_world)[:600]
    poison = ['{"event_id": "bad-1", "event_type": "login", "ts": "2026-01-02T00:00:00Z", '
              '"customer_id": "C1", "ip": "999.0.0.1"}', "this is not json", '{"event_type": "signup"}']
    stream = lines[:300] + poison + lines[300:] + lines[100:250]  # a redelivered run of 150 events
    src = tmp_path / "live.jsonl"
    src.write_text("\n".join(stream) + "\n")

    stats = run_consumer(uri, model_dir, settings, src, tmp_path / "ledger.db", tmp_path)
    assert stats["events_in"] == len(stream)
    metrics = stats.pop("_metrics")
    assert "fraudgraph_consumer_events_total 753.0" in metrics
    assert 'fraudgraph_consumer_rejected_total{reason="ip:invalid"} 1.0' in metrics
    assert "fraudgraph_consumer_duplicates_total 150.0" in metrics
    assert "fraudgraph_consumer_event_latency_seconds_count 753.0" in metrics
    assert stats["rejected"] == 3 and stats["duplicates"] == 150
    assert stats["applied"] == 600
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert [d["reason_code"] for d in dead] == ["ip:invalid", "payload:invalid_json", "event_id:missing"]
    assert "999.0.0.1" not in json.dumps([d["reason"] for d in dead])  # reasons never echo identifiers

    live = pd.DataFrame([json.loads(x) for x in lines])
    live["ts"] = pd.to_datetime(live["ts"], utc=True)
    with open_graph(uri, settings) as store:
        got = normalise_links(store.links_frame())
    pd.testing.assert_frame_equal(got, expected_links(small_world, settings, live))

    decisions = read_jsonl(tmp_path / "decisions.jsonl")
    assert decisions and len({d["decision_id"] for d in decisions}) == len(decisions)
    assert {d["decision"] for d in decisions} <= {"block", "review", "allow", "blocked"}
    last = decisions[-1]
    with open_graph(uri, settings) as store:
        props = customer_properties(store, last["customer_id"])
    assert props["model_version"] == last["model_version"]

    # the whole file redelivered from the start: everything is a duplicate, nothing changes
    again = run_consumer(uri, model_dir, settings, src, tmp_path / "ledger.db", tmp_path / "second", start=0)
    again.pop("_metrics")
    assert again["applied"] == 0 and again["duplicates"] == 750 and again["rejected"] == 3
    assert read_jsonl(tmp_path / "second" / "decisions.jsonl") == []
    with open_graph(uri, settings) as store:
        pd.testing.assert_frame_equal(normalise_links(store.links_frame()), got)


def test_block_appeal_unblock_update_label_history(small_world_graph, model_dir, settings, tmp_path):
    uri, _ = small_world_graph
    events = [
        {"event_id": "b1", "event_type": "block", "ts": "2026-01-05T00:00:00Z", "customer_id": "C000103030",
         "block_source": "manual", "reason": "chargeback", "device_id": "dev-from-the-block-event",
         "ip": "203.0.113.9"},
        {"event_id": "a1", "event_type": "appeal", "ts": "2026-01-06T00:00:00Z", "customer_id": "C000103030",
         "device_id": "dev-from-the-block-event", "email": "appeal@example.com"},
        {"event_id": "u1", "event_type": "unblock", "ts": "2026-01-08T00:00:00Z", "customer_id": "C000103030"},
    ]
    src = tmp_path / "labels.jsonl"
    src.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    with open_graph(uri, settings) as store:
        links_before = normalise_links(store.links_frame())
    run_consumer(uri, model_dir, settings, src, tmp_path / "ledger.db", tmp_path)
    with open_graph(uri, settings) as store:
        props = customer_properties(store, "C000103030")
        # label history never becomes links or link counts, whatever identifiers the events carry
        pd.testing.assert_frame_equal(normalise_links(store.links_frame()), links_before)
    assert props["blocked_at"] == 1767571200000 and props["block_source"] == "manual"
    assert props["appealed_at"] == 1767657600000 and props["unblocked_at"] == 1767830400000


def _consume_cmd(uri, model_dir, src, ledger, out, cfg):
    return [sys.executable, "-m", "fraudgraph.cli.main", "consume", "--source", f"file://{src}", "--graph", uri,
            "--model", str(model_dir), "--decisions", str(out / "decisions.jsonl"), "--dead-letter",
            str(out / "dead.jsonl"), "--ledger", str(ledger), "--config", str(cfg)]


@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_equals_uninterrupted_run(small_world, model_dir, settings, tmp_path):
    """Two identical graphs: one consumer runs through, the other is killed with SIGKILL and restarted."""
    from etl.reference import reference_etl

    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    customers, links = frames_to_elements(ref["customers"], ref["links"])
    src = tmp_path / "live.jsonl"
    src.write_text("\n".join(live_events(small_world)[:500]) + "\n")
    cfg = tmp_path / "small-batches.yaml"
    cfg.write_text("consumer:\n  max_batch: 25\n")
    results = {}
    for name in ("uninterrupted", "killed"):
        out = tmp_path / name
        out.mkdir()
        uri = f"sqlite:///{out / 'graph.db'}"
        with open_graph(uri, settings) as store:
            store.upsert_customers(customers)
            store.upsert_links(links)
        cmd = _consume_cmd(uri, model_dir, src, out / "ledger.db", out, cfg)
        if name == "killed":
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # kill once it is well into the stream
                if len(read_jsonl(out / "decisions.jsonl")) >= 60:
                    break
                time.sleep(0.2)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert proc.returncode == -signal.SIGKILL
            interrupted_at = len(read_jsonl(out / "decisions.jsonl"))
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        with open_graph(uri, settings) as store:
            results[name] = (normalise_links(store.links_frame()),
                             store.customers_frame().sort_values("customer_id").reset_index(drop=True))
        decisions = read_jsonl(out / "decisions.jsonl")
        by_id = {}
        for d in decisions:  # a decision re-emitted after the crash must be the same decision
            assert by_id.setdefault(d["decision_id"], d) == d
        results[name] += ({k: (v["decision"], v["score"]) for k, v in by_id.items()},)
    a, b = results["uninterrupted"], results["killed"]
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert a[2] == b[2] and len(a[2]) > 60
    assert interrupted_at < len(a[2]) - 20  # it really was interrupted, well before the end


@pytest.mark.slow
def test_sigterm_finishes_the_batch_commits_and_exits_zero(small_world_graph, small_world, model_dir, settings,
                                                          tmp_path):
    uri, _ = small_world_graph
    src = tmp_path / "live.jsonl"
    src.write_text("\n".join(live_events(small_world)[:40]) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("consumer:\n  max_batch: 10\n")
    proc = subprocess.Popen(_consume_cmd(uri, model_dir, src, tmp_path / "ledger.db", tmp_path, cfg) + ["--follow"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ledger = Ledger(tmp_path / "ledger.db")
    name = FileSource(src).name
    deadline = time.monotonic() + 120
    while ledger.offset(name) < 40 and time.monotonic() < deadline:  # tailing, everything consumed
        time.sleep(0.2)
    assert ledger.offset(name) == 40
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert ledger.offset(name) == 40
    assert ledger.pending_scores() == [] and ledger.dirty_links() == []
    ledger.close()


def _drain(bootstrap: str, topic: str, expect: int, timeout_s: float = 30) -> list[dict]:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"drain-{topic}-{time.time()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < expect and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append(json.loads(m.value()))
    c.close()
    return out


@pytest.mark.slow
def test_kafka_source_commits_after_effects_and_dead_letters_to_dlq(small_world, small_world_graph, model_dir,
                                                                    settings, kafka_server, tmp_path):
    from confluent_kafka import Consumer, Producer, TopicPartition

    from fraudgraph.ml.artifact import ModelArtifact
    from serving.consumer.sources.kafka import KafkaSink, KafkaSource

    uri, _ = small_world_graph
    lines = live_events(small_world)[:300]
    poison = '{"event_id": "bad-k", "event_type": "login", "ts": "2026-01-02T00:00:00Z", "customer_id": "C1", ' \
             '"email": "not an email"}'
    producer = Producer({"bootstrap.servers": kafka_server.bootstrap})
    for line in lines[:150] + [poison] + lines[150:] + lines[:20]:  # 20 redelivered
        producer.produce("live-events", line.encode())
    producer.flush(30)

    def consume_once():
        ledger = Ledger(tmp_path / "ledger.db")
        decisions = KafkaSink(kafka_server.bootstrap, "decisions")
        dead = KafkaSink(kafka_server.bootstrap, "live-events.dlq")
        source = KafkaSource(kafka_server.bootstrap, "live-events", "fraudgraph-test", idle_stop_s=4)
        with open_graph(uri, settings) as store:
            scorer = OnlineScorer(store, ModelArtifact.load(model_dir), settings)
            stats = LiveConsumer(store, scorer, settings, ledger, decisions, dead).run(source, install_signals=False)
        source.close()
        ledger.close()
        return stats

    stats = consume_once()
    assert stats["events_in"] == 321 and stats["rejected"] == 1 and stats["duplicates"] == 20
    assert stats["applied"] == 300
    live = pd.DataFrame([json.loads(x) for x in lines])
    live["ts"] = pd.to_datetime(live["ts"], utc=True)
    with open_graph(uri, settings) as store:
        got = normalise_links(store.links_frame())
    pd.testing.assert_frame_equal(got, expected_links(small_world, settings, live))
    dlq = _drain(kafka_server.bootstrap, "live-events.dlq", 1)
    assert [d["reason_code"] for d in dlq] == ["email:invalid"]
    decisions = _drain(kafka_server.bootstrap, "decisions", sum(stats["decisions"].values()))
    assert len(decisions) == sum(stats["decisions"].values()) > 0

    probe = Consumer({"bootstrap.servers": kafka_server.bootstrap, "group.id": "fraudgraph-test"})
    (committed,) = probe.committed([TopicPartition("live-events", 0)], timeout=10)
    probe.close()
    assert committed.offset == 321  # committed after the graph write and the decision emit

    again = consume_once()  # the group resumes after its committed offset: nothing to do
    assert again["events_in"] == 0


@pytest.mark.slow
def test_sqs_source_deletes_after_effects_and_dead_letters_to_dlq_queue(small_world, small_world_graph, model_dir,
                                                                       settings, sqs_server, tmp_path):
    from fraudgraph.ml.artifact import ModelArtifact
    from serving.consumer.sources import dead_letter_for
    from serving.consumer.sources.sqs import SqsSink, SqsSource, sqs_client

    uri, _ = small_world_graph
    sqs = sqs_client(sqs_server.endpoint + "/")
    queue = sqs.create_queue(QueueName="live-events")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="live-events-dlq")["QueueUrl"]
    decisions_q = sqs.create_queue(QueueName="decisions")["QueueUrl"]
    assert dead_letter_for(queue, "x") == dlq
    lines = live_events(small_world)[:120]
    poison = "{not json"
    body = lines[:60] + [poison] + lines[60:] + lines[:10]
    for i in range(0, len(body), 10):
        sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(j), "MessageBody": b}
                                                       for j, b in enumerate(body[i:i + 10])])

    def consume_once():
        ledger = Ledger(tmp_path / "ledger.db")
        source = SqsSource(queue, idle_stop_s=3)
        with open_graph(uri, settings) as store:
            scorer = OnlineScorer(store, ModelArtifact.load(model_dir), settings)
            stats = LiveConsumer(store, scorer, settings, ledger, SqsSink(decisions_q), SqsSink(dlq)) \
                .run(source, install_signals=False)
        ledger.close()
        return stats

    stats = consume_once()
    # SQS does not keep order: the 10 repeats are duplicates whichever copy arrives first
    assert stats["events_in"] == 131 and stats["rejected"] == 1 and stats["duplicates"] == 10
    live = pd.DataFrame([json.loads(x) for x in lines])
    live["ts"] = pd.to_datetime(live["ts"], utc=True)
    with open_graph(uri, settings) as store:
        got = normalise_links(store.links_frame())
    pd.testing.assert_frame_equal(got, expected_links(small_world, settings, live))
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages",
                                                                     "ApproximateNumberOfMessagesNotVisible"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"  # all deleted after processing
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert [json.loads(m["Body"])["reason_code"] for m in dead] == ["payload:invalid_json"]
    assert consume_once()["events_in"] == 0


def assert_graph_is_history_plus(uri, small_world, settings, lines: list[str]) -> None:
    """The graph's links equal the world's history plus exactly these live events (each once)."""
    live = pd.DataFrame([json.loads(x) for x in lines])
    live["ts"] = pd.to_datetime(live["ts"], utc=True)
    with open_graph(uri, settings) as store:
        got = normalise_links(store.links_frame())
    pd.testing.assert_frame_equal(got, expected_links(small_world, settings, live))


def run_through_restart(consumer, source, server, *, total: int) -> dict:
    """Run ``consumer`` on ``source`` in a thread; once 30 events took effect, stop ``server`` for 3 s
    and start it again (with its data). Returns the run's stats."""
    import threading

    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(consumer.run(source, install_signals=False)))
    worker.start()
    deadline = time.monotonic() + 120
    while consumer.stats.applied < 30 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert 0 < consumer.stats.applied < total  # mid-stream
    server.stop()
    time.sleep(3)
    server.start()
    worker.join(300)
    assert not worker.is_alive()
    return result


@pytest.mark.slow
def test_kafka_broker_restart_mid_stream_consumer_recovers(small_world, small_world_graph, model_dir, settings,
                                                           kafka_server, tmp_path):
    from confluent_kafka import Producer

    from fraudgraph.ml.artifact import ModelArtifact
    from serving.consumer.sources.kafka import KafkaSink, KafkaSource

    uri, _ = small_world_graph
    lines = live_events(small_world)[300:500]
    producer = Producer({"bootstrap.servers": kafka_server.bootstrap})
    for line in lines:
        producer.produce("restart-events", line.encode())
    producer.flush(30)
    tuned = settings.model_copy(deep=True)
    tuned.consumer.max_batch = 10
    ledger = Ledger(tmp_path / "ledger.db")
    source = KafkaSource(kafka_server.bootstrap, "restart-events", "restart-test", idle_stop_s=20)
    with open_graph(uri, settings) as store:
        scorer = OnlineScorer(store, ModelArtifact.load(model_dir), settings)
        consumer = LiveConsumer(store, scorer, tuned, ledger, JsonlSink(tmp_path / "d.jsonl"),
                                KafkaSink(kafka_server.bootstrap, "restart-events.dlq"))
        result = run_through_restart(consumer, source, kafka_server, total=200)
    source.close()
    ledger.close()
    assert result["applied"] == 200 and result["rejected"] == 0
    # the small_world_graph holds history only; this test applied live events 300..500
    assert_graph_is_history_plus(uri, small_world, settings, live_events(small_world)[300:500])


@pytest.mark.slow
def test_sqs_server_restart_mid_stream_consumer_recovers(small_world, small_world_graph, model_dir, settings,
                                                         sqs_server, tmp_path):
    """ElasticMQ keeps its queues and messages on disk; the consumer retries while it is away."""
    from fraudgraph.ml.artifact import ModelArtifact
    from serving.consumer.sources.sqs import SqsSink, SqsSource, sqs_client

    uri, _ = small_world_graph
    sqs = sqs_client(sqs_server.endpoint + "/")
    queue = sqs.create_queue(QueueName="restart-events")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="restart-events-dlq")["QueueUrl"]
    lines = live_events(small_world)[300:500]
    for i in range(0, len(lines), 10):
        sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(j), "MessageBody": b}
                                                       for j, b in enumerate(lines[i:i + 10])])
    tuned = settings.model_copy(deep=True)
    tuned.consumer.max_batch = 10
    ledger = Ledger(tmp_path / "ledger.db")
    # a short visibility timeout, so messages in flight when the server went away come back soon
    source = SqsSource(queue, idle_stop_s=15, visibility_timeout_s=5, retry_s=120)
    with open_graph(uri, settings) as store:
        scorer = OnlineScorer(store, ModelArtifact.load(model_dir), settings)
        consumer = LiveConsumer(store, scorer, tuned, ledger, JsonlSink(tmp_path / "d.jsonl"), SqsSink(dlq))
        result = run_through_restart(consumer, source, sqs_server, total=200)
    ledger.close()
    # every event took effect once; redeliveries after the restart were dropped by the ledger
    assert result["applied"] == 200 and result["rejected"] == 0
    # the small_world_graph holds history only; this test applied live events 300..500
    assert_graph_is_history_plus(uri, small_world, settings, live_events(small_world)[300:500])
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"


# ------------------------------------------------------------------ hostile input
RAW_CARD, RAW_EMAIL, RAW_IP = "4111111111111111", "jane.doe@example.com", "203.0.113.77"
RAW_DEVICE = "raw-device-7f3a9"
# one card number in the layouts people type, each after or before other digits
FUZZ_CARDS = ["4111111111111111", "5500000000000004", "378282246310005", "6011111111111117", "4242424242424242"]
CARD_LAYOUTS = ["ticket 12 4111111111111111", "5500000000000004 2024", "4242 4242 4242 4242 123",
                "4111.1111.1111.1111", "4111/1111/1111/1111"]


def hostile_inputs() -> list[bytes]:
    """Inputs that used to stop the consumer for good or leak raw identifiers, one per line."""
    ev = {"event_type": "login", "ts": "2026-01-02T00:00:00Z", "customer_id": "C000000001"}
    return [
        json.dumps({**ev, "event_id": "H-inf", "event_type": "signup", "lifetime_value": 1e999}).encode()
        .replace(b"Infinity", b"1e999"),                                          # inf after parsing
        b'{"event_id": "H-utf8", "customer_id": "\xff\xfe"}',                      # not UTF-8
        b"[" * 100_000,                                                           # too large
        b"[" * 30_000,                                                            # too deep
        json.dumps({**ev, "event_id": "H-future", "ts": "9999-12-31T23:59:59Z"}).encode(),
        json.dumps({**ev, "event_id": "H-card", "card_fingerprint": RAW_CARD, "ip": "999.1.1.1",
                    "email": RAW_EMAIL}).encode(),                                 # rejected, carries PII
        json.dumps({"event_id": "H-text", "event_type": "block", "ts": "2026-01-02T00:00:01Z",
                    "customer_id": "C000000001", "ip": RAW_IP,
                    "reason": f"card {RAW_CARD} mail {RAW_EMAIL}"}).encode(),       # valid: free text screened
        json.dumps({**ev, "event_id": "H-field", RAW_CARD: 1}).encode(),          # a card number as a field name
        json.dumps({**ev, "event_id": "4111-1111-1111-1111"}).encode(),           # a card number as an id
        json.dumps({**ev, "event_id": "H-ts", "ts": "4111.1111.1111.1111"}).encode(),  # a card number as a time
        json.dumps({**ev, "event_id": "H-big", "device_id": RAW_DEVICE, "ip": RAW_IP,
                    "reason": "x" * 40_000}).encode(),                  # over 32 KiB, its dead letter read as text
        json.dumps({"event_id": "H-text", "event_type": "block", "ts": "2026-01-02T00:00:01Z",
                    "customer_id": "C000000001", "reason": "another"}).encode(),   # its id, other content
        json.dumps({"event_id": "H-layouts", "event_type": "block", "ts": "2026-01-02T00:00:02Z",
                    "customer_id": "C000000002", "reason": " / ".join(CARD_LAYOUTS)}).encode(),
        json.dumps({**ev, "event_id": "H-epoch0", "event_type": "payment", "ts": 0, "amount": 1.0,
                    "customer_id": "C000000001"}).encode(),                        # time travel: re-decide a block
        json.dumps({**ev, "event_id": "H-year1", "event_type": "signup", "ts": "0001-01-01T00:00:00Z"}).encode(),
    ]


def test_an_event_before_its_customers_signup_by_more_than_the_skew_is_dead_lettered(
        small_world_graph, model_dir, settings, tmp_path):
    """Time bounds back to the signup: the graph's signup_ts for a known customer, the batch's signup for a
    new one; within consumer.max_clock_skew_s of it an event applies, before that it is dead-lettered."""
    uri, _ = small_world_graph
    with open_graph(uri, settings) as store:
        # the latest signup: its events are well within consumer.max_event_age_s of the model's data
        known = store.customers_frame().dropna(subset=["signup_ts"]).sort_values("signup_ts").iloc[-1]
    cid, signup = str(known["customer_id"]), int(known["signup_ts"])
    skew_ms = int(settings.consumer.max_clock_skew_s * 1000)

    def event(event_id, customer, ts_ms, event_type="login", **fields):
        ts = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat()
        return json.dumps({"event_id": event_id, "event_type": event_type, "ts": ts, "customer_id": customer,
                           "device_id": f"dev-{event_id}", **fields})

    new_signup = signup + 86_400_000
    lines = [
        event("S-early", cid, signup - 2 * skew_ms),                 # before the graph's signup: refused
        event("S-skew", cid, signup - skew_ms // 2),                 # within the skew: applied
        event("S-new-early", "C-NEW-1", new_signup - 86_400_000, "payment", amount=5.0),  # before its batch signup
        event("S-new", "C-NEW-1", new_signup, "signup", email="new1@example.com"),
        event("S-none", "C-NEW-2", signup),                          # no signup known: applied
    ]
    src = tmp_path / "live.jsonl"
    src.write_text("\n".join(lines) + "\n")
    stats = run_consumer(uri, model_dir, settings, src, tmp_path / "ledger.db", tmp_path)
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert sorted((d["event_id"], d["reason_code"]) for d in dead) == [
        ("S-early", "ts:before_signup"), ("S-new-early", "ts:before_signup")]
    assert "before the customer's signup" in dead[0]["reason"]
    assert stats["applied"] == 3 and stats["rejected"] == 2
    with open_graph(uri, settings) as store:
        assert customer_properties(store, "C-NEW-1")["signup_ts"] == new_signup
        devices = set(store.links_of([cid, "C-NEW-2"])["customer_id"])
    assert devices == {cid, "C-NEW-2"}


def test_a_fresh_ledgers_first_event_is_too_old_when_it_predates_the_models_data_by_more_than_the_age(
        small_world_graph, model_dir, settings, tmp_path):
    """A fresh ledger has applied nothing, but the graph holds every event up to the deployed model's
    training as-of: one event alone, older than that by more than consumer.max_event_age_s, is refused."""
    from fraudgraph.ml.artifact import ModelArtifact

    uri, _ = small_world_graph
    as_of = ModelArtifact.load(model_dir).trained_as_of_ms
    age_ms = int(settings.consumer.max_event_age_s * 1000)

    def login(event_id, ts_ms):
        ts = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat()
        return json.dumps({"event_id": event_id, "event_type": "login", "ts": ts, "customer_id": "C-OLD",
                           "device_id": "dev-old"})

    src = tmp_path / "live.jsonl"
    src.write_text(login("W-old", as_of - age_ms - 86_400_000) + "\n")
    stats = run_consumer(uri, model_dir, settings, src, tmp_path / "ledger.db", tmp_path)
    assert [d["reason_code"] for d in read_jsonl(tmp_path / "dead.jsonl")] == ["ts:too_old"]
    assert stats["applied"] == 0
    src.write_text(login("W-old", as_of - age_ms - 86_400_000) + "\n" + login("W-ok", as_of - age_ms + 86_400_000)
                   + "\n")
    stats = run_consumer(uri, model_dir, settings, src, tmp_path / "ledger.db", tmp_path, start=1)
    assert stats["applied"] == 1


def test_hostile_inputs_never_stop_the_consumer_and_no_raw_pii_leaves(small_world, small_world_graph, model_dir,
                                                                       settings, tmp_path, caplog):
    uri, _ = small_world_graph
    valid = [line.encode() for line in live_events(small_world)[:200]]
    stream = valid[:100] + hostile_inputs() + valid[100:]
    src = tmp_path / "live.jsonl"
    src.write_bytes(b"\n".join(stream) + b"\n")
    with caplog.at_level("DEBUG"):
        stats = run_consumer(uri, model_dir, settings, src, tmp_path / "ledger.db", tmp_path)
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert [d["reason_code"] for d in dead] == ["lifetime_value:invalid", "payload:not_utf8", "payload:too_large",
                                                "payload:too_deep", "ts:future", "ip:invalid", "event:unknown_field",
                                                "event_id:not_an_id", "ts:invalid", "reason:invalid",
                                                "ts:before_1970", "event_id:conflict", "ts:too_old"]
    # the blocks with screened reasons apply; a redelivery would be silent, the conflict is on record
    assert stats["rejected"] == 13 and stats["applied"] == 202 and stats["duplicates"] == 0
    assert dead[11]["event_id"] == "H-text" and "content digest" in dead[11]["reason"]
    assert dead[2]["payload_bytes"] == 100_000 and dead[2]["truncated"] and len(dead[2]["payload"]) <= 8192
    card = dead[5]
    assert card["event_id"] == "H-card" and card["fields"][:2] == ["event_type", "ts"]
    payload = json.loads(card["payload"])  # identifiers as keyed hashes, or redacted where they cannot be hashed
    assert payload["email"].startswith("hash:") and payload["ip"] == payload["card_fingerprint"] == "[redacted]"
    with open_graph(uri, settings) as store:
        props = customer_properties(store, "C000000001")
        layouts = customer_properties(store, "C000000002")
    assert props["block_reason"] == "card [card] mail [email]"
    assert layouts["block_reason"] == "ticket 12 [card] / [card] 2024 / [card] 123 / [card] / [card]"

    # a restart over the same source changes nothing
    again = run_consumer(uri, model_dir, settings, src, tmp_path / "ledger.db", tmp_path)
    assert again["events_in"] == 0 and len(read_jsonl(tmp_path / "dead.jsonl")) == 13

    # no raw value it sent is anywhere: graph, ledger, dead letters, decisions, logs
    outputs = [tmp_path / "dead.jsonl", tmp_path / "decisions.jsonl", tmp_path / "ledger.db",
               tmp_path / "small-world.db"]
    blobs = b"".join(p.read_bytes() for p in outputs if p.exists()) + caplog.text.encode()
    card_forms = ["4111111111111111", "4111-1111-1111-1111", "4111.1111.1111.1111", "4111/1111/1111/1111",
                  "5500000000000004", "4242 4242 4242 4242"]
    for raw in (*card_forms, RAW_EMAIL, RAW_IP, RAW_DEVICE):
        assert raw.encode() not in blobs, raw
    metric_labels = {d["reason_code"] for d in dead}  # what the Prometheus counter is labelled with
    assert not any(contains_card_number(label) for label in metric_labels)


def test_consume_refuses_a_graph_path_with_a_typo_unless_told_to_create_it(tmp_path, model_dir):
    """A typo in --graph used to make an empty graph that decided allow for everyone, exit 0."""
    (tmp_path / "events.jsonl").write_text("")
    args = ["consume", "--source", f"file://{tmp_path / 'events.jsonl'}", "--graph",
            f"sqlite:///{tmp_path / 'grpah.db'}", "--model", str(model_dir), "--decisions",
            str(tmp_path / "decisions.jsonl"), "--ledger", str(tmp_path / "ledger.db"), "--dead-letter",
            str(tmp_path / "dead.jsonl")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "no such file" in result.output and "--create" in result.output
    assert not (tmp_path / "grpah.db").exists()
    result = CliRunner().invoke(cli, [*args, "--create"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "grpah.db").exists()


def test_a_pipe_and_a_fifo_are_read_like_a_file(small_world, small_world_graph, model_dir, settings, tmp_path):
    """--source - fed by a pipe used to crash on its first poll (a seek on a pipe); a FIFO too."""
    import threading

    uri, _ = small_world_graph
    lines = live_events(small_world)[:120]
    body = ("\n".join(lines) + "\n").encode()
    results = {}
    for name in ("pipe", "fifo"):
        out = tmp_path / name
        out.mkdir()
        db = out / "graph.db"
        db.write_bytes(Path(uri[len("sqlite:///"):]).read_bytes())
        if name == "pipe":
            source, stdin = "-", subprocess.PIPE
        else:
            fifo = out / "events.fifo"
            os.mkfifo(fifo)
            source, stdin = f"file://{fifo}", subprocess.DEVNULL
        cmd = [sys.executable, "-m", "fraudgraph.cli.main", "consume", "--source", source, "--graph",
               f"sqlite:///{db}", "--model", str(model_dir), "--decisions", str(out / "decisions.jsonl"),
               "--dead-letter", str(out / "dead.jsonl"), "--ledger", str(out / "ledger.db")]
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if name == "pipe":  # the pipe carries the stream: the consumer reads it while it is written
            _, err = proc.communicate(input=body, timeout=300)
        else:
            writer = threading.Thread(target=fifo.write_bytes, args=(body,))  # blocks until the consumer opens it
            writer.start()
            _, err = proc.communicate(timeout=300)
            writer.join()
        assert proc.returncode == 0, err.decode()[-3000:]
        results[name] = {d["decision_id"]: (d["decision"], d["score"]) for d in read_jsonl(out / "decisions.jsonl")}
    assert results["pipe"] == results["fifo"] and len(results["pipe"]) > 20


@pytest.mark.slow
def test_fuzzed_streams_are_applied_or_dead_lettered_exactly_once(small_world, small_world_graph, model_dir,
                                                                  settings, tmp_path_factory, caplog):
    """Hypothesis mixes valid events with arbitrary bytes, hostile JSON and contract-breaking values, and
    puts card numbers in every common layout into every string position (field names and values, ids, free
    text, times); no raw card number reaches any output."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    uri, _ = small_world_graph
    valid = [line.encode() for line in live_events(small_world)[:260]]
    json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
                               lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                           max_size=4), max_leaves=20)
    contract_breaking = st.fixed_dictionaries({
        "event_id": st.text(max_size=300), "event_type": st.sampled_from(["login", "signup", "payment", "nope"]),
        "ts": st.one_of(st.text(max_size=30), st.integers(), st.floats()), "customer_id": st.text(max_size=250),
    }, optional={"ip": st.text(max_size=50), "amount": st.floats(), "lifetime_value": st.floats(),
                 "email": st.text(max_size=400), "reason": st.text(max_size=300)})
    cards = st.sampled_from(FUZZ_CARDS)
    layouts = st.sampled_from(["{}", "{} ", "x {} y", "12 {}", "{} 2024", "{}123"])
    card_text = st.builds(lambda c, sep, layout: layout.format(sep.join(c[i:i + 4] for i in range(0, len(c), 4))),
                          cards, st.sampled_from(["", " ", ".", "-", "/", "\u200b"]), layouts)
    positions = ["event_id", "customer_id", "ts", "event_type", "device_id", "ip", "email", "card_fingerprint",
                 "reason", "outcome", "channel", "country", "currency", "<field name>"]
    base = json.loads(live_events(small_world)[0])

    def with_card(position, text):
        ev = {**base, "event_id": f"F-{abs(hash(text)) % 10**9}", "event_type": "block"}
        if position == "<field name>":
            ev[text] = "x"
        elif position == "email":
            ev["email"] = text.replace(" ", "") + "@example.com"
        else:
            ev[position] = text
        return json.dumps(ev).encode()

    carded = st.builds(with_card, st.sampled_from(positions), card_text)
    hostile = st.one_of(st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b and b.strip()),
                        json_values.map(lambda v: json.dumps(v).encode()),
                        contract_breaking.map(lambda v: json.dumps(v).encode()), carded, carded)
    totals = {"runs": 0, "inputs": 0, "applied": 0, "dead": 0, "outputs_searched": 0, "raw_found": 0}

    # ten drawn streams with up to 260 valid events around the hostile ones (each run scores every valid one)
    @hsettings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.lists(hostile, min_size=15, max_size=60), st.integers(0, 200))
    def run(bad, at):
        out = tmp_path_factory.mktemp("fuzz")
        db = out / "graph.db"
        db.write_bytes(Path(uri[len("sqlite:///"):]).read_bytes())
        stream = valid[:at] + bad + valid[at:at + 60]
        src = out / "live.jsonl"
        src.write_bytes(b"\n".join(stream) + b"\n")
        stats = run_consumer(f"sqlite:///{db}", model_dir, settings, src, out / "ledger.db", out)
        dead = read_jsonl(out / "dead.jsonl")
        lines = [line for line in src.read_bytes().split(b"\n") if line.strip()]
        assert stats["events_in"] == len(lines)
        assert stats["applied"] + stats["rejected"] + stats["duplicates"] == len(lines)
        assert len(dead) == stats["rejected"]
        assert len({d["position"] for d in dead}) == len(dead)  # each input dead-lettered at most once
        again = run_consumer(f"sqlite:///{db}", model_dir, settings, src, out / "ledger.db", out)
        assert again["events_in"] == 0 and len(read_jsonl(out / "dead.jsonl")) == len(dead)
        outputs = [out / "dead.jsonl", out / "decisions.jsonl", out / "ledger.db", db]
        blobs = [p.read_bytes() for p in outputs if p.exists()] + [caplog.text.encode()]
        for blob in blobs:
            for card in FUZZ_CARDS:  # bare, and in the four-digit groups of each layout
                for sep in (b"", b" ", b".", b"-", b"/"):
                    form = sep.join(card[i:i + 4].encode() for i in range(0, len(card), 4))
                    totals["raw_found"] += blob.count(form)
        totals["outputs_searched"] += len(blobs)
        totals["runs"] += 1
        totals["inputs"] += len(lines)
        totals["applied"] += stats["applied"]
        totals["dead"] += stats["rejected"]

    with caplog.at_level("DEBUG"):
        run()
    print(f"fuzz: {totals}")
    assert totals["dead"] > 0 and totals["applied"] > 0
    assert totals["raw_found"] == 0 and totals["outputs_searched"] > 0


def test_a_ledger_belongs_to_one_graph(small_world, model_dir, settings, tmp_path):
    """A ledger journaled for one graph refuses another (it would swallow the stream as already seen);
    by default the ledger lives beside its SQLite graph, never in the working directory."""
    from click.testing import CliRunner

    from fraudgraph.cli.main import cli

    src = tmp_path / "live.jsonl"
    src.write_text("\n".join(live_events(small_world)[:50]) + "\n")
    graph_a, graph_b = tmp_path / "a" / "graph.db", tmp_path / "b" / "graph.db"
    run = CliRunner()
    args = ["consume", "--source", f"file://{src}", "--model", str(model_dir), "--decisions",
            str(tmp_path / "decisions.jsonl"), "--dead-letter", str(tmp_path / "dead.jsonl")]
    first = run.invoke(cli, [*args, "--graph", f"sqlite:///{graph_a}", "--create"])
    assert first.exit_code == 0, first.output
    assert (tmp_path / "a" / "graph.db.consumer-ledger.db").exists()
    assert not (tmp_path / "consumer-ledger.db").exists() and not os.path.exists("consumer-ledger.db")

    shared = ["--ledger", str(graph_a) + ".consumer-ledger.db"]
    refused = run.invoke(cli, [*args, "--graph", f"sqlite:///{graph_b}", "--create", *shared])
    assert refused.exit_code == 2
    assert "journals graph" in refused.output and str(graph_b) in refused.output

    # the other graph with its own (default) ledger takes every event
    second = run.invoke(cli, [*args, "--graph", f"sqlite:///{graph_b}", "--create", "--json"])
    assert second.exit_code == 0, second.output
    with open_graph(f"sqlite:///{graph_b}", settings) as store:
        assert store.stats()["vertices"]["customer"] > 0


@pytest.mark.slow
def test_hostile_kafka_stream_is_applied_or_dead_lettered_exactly_once(small_world, small_world_graph, model_dir,
                                                                      settings, kafka_server, tmp_path):
    """The hostile inputs and a hypothesis-drawn batch of arbitrary bytes and JSON, on the real broker: every
    message is applied or dead-lettered once (to the DLQ topic, redacted), nothing is lost, a restart
    changes nothing."""
    from confluent_kafka import Producer
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    from fraudgraph.ml.artifact import ModelArtifact
    from serving.consumer.sources.kafka import KafkaSink, KafkaSource

    drawn: list[bytes] = []

    @hsettings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.lists(st.one_of(st.binary(min_size=1, max_size=300),
                              st.recursive(st.none() | st.floats() | st.text(max_size=20),
                                           lambda inner: st.lists(inner, max_size=3)
                                           | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                                           max_leaves=12).map(lambda v: json.dumps(v).encode())),
                    min_size=30, max_size=30))
    def draw(values):
        drawn.extend(values)

    draw()
    uri, _ = small_world_graph
    valid = [line.encode() for line in live_events(small_world)[:200]]
    # the hostile inputs that are dead letters (the valid blocks, and the event reusing one's id, left out)
    hostile = [m for m in hostile_inputs() if b'"H-text"' not in m and b'"H-layouts"' not in m]
    messages = valid[:100] + hostile + drawn + valid[100:]
    producer = Producer({"bootstrap.servers": kafka_server.bootstrap, "message.max.bytes": 2_000_000})
    for m in messages:
        producer.produce("hostile-events", m)
    producer.flush(30)

    def consume_once():
        ledger = Ledger(tmp_path / "ledger.db")
        dead = KafkaSink(kafka_server.bootstrap, "hostile-events.dlq")
        source = KafkaSource(kafka_server.bootstrap, "hostile-events", "fraudgraph-hostile", idle_stop_s=4)
        with open_graph(uri, settings) as store:
            scorer = OnlineScorer(store, ModelArtifact.load(model_dir), settings)
            stats = LiveConsumer(store, scorer, settings, ledger, KafkaSink(kafka_server.bootstrap, "hostile-dec"),
                                 dead).run(source, install_signals=False)
        source.close()
        ledger.close()
        return stats

    stats = consume_once()
    assert stats["events_in"] == len(messages)
    assert stats["applied"] + stats["rejected"] + stats["duplicates"] == len(messages)  # nothing lost
    assert stats["applied"] == 200 and stats["rejected"] == len(messages) - 200
    dlq = _drain(kafka_server.bootstrap, "hostile-events.dlq", stats["rejected"])
    assert len(dlq) == stats["rejected"] and len({d["position"] for d in dlq}) == len(dlq)
    blob = json.dumps(dlq)
    assert RAW_CARD not in blob and RAW_EMAIL not in blob
    print(f"kafka hostile stream: {len(messages)} messages, {stats['applied']} applied, {stats['rejected']} "
          f"dead-lettered, 0 lost")
    assert consume_once()["events_in"] == 0
