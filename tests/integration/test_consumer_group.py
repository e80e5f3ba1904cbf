"""Consumers scaled out: two live consumers in one Kafka consumer group (events keyed by customer) on one
graph and one shared ledger, one killed with SIGKILL mid-stream. The survivor takes its partitions over
and must leave the graph a single consumer gives on the same stream: nothing lost, nothing applied twice,
every triggering event decided; the killed consumer, restarted, has nothing left to do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from etl.reference import reference_etl
from fraudgraph.event_tags import EventTagger
from fraudgraph.graph import open_graph
from fraudgraph.identity import IdentifierHasher

from testing_support import (
    assert_same_graph_frames,
    frames_to_elements,
    graph_state,
    read_jsonl,
    seeded_world_model,
)

pytestmark = pytest.mark.slow

EVENTS = 400  # the first events of the small world's live stream
PARTITIONS = 4
# a dead member is noticed within the session timeout; steps of one event time each, so which events are
# decided does not depend on how the stream was cut into micro-batches
CONFIG = "consumer:\n  max_batch: 40\n  max_batch_span_s: 0.001\n"


@pytest.fixture(scope="module")
def model_dir(small_world, settings, tmp_path_factory):
    """A seeded (untrained) model: which writes and decisions happen does not depend on its quality."""
    return seeded_world_model(small_world, settings, tmp_path_factory.mktemp("group-model"), seed=3)


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("janusgraph", marks=pytest.mark.gremlin)])
def test_two_consumers_one_killed_the_survivor_finishes_with_one_consumers_graph(engine, small_world, model_dir,
                                                                                settings, kafka_server, tmp_path,
                                                                                request):
    """The group on a SQLite file or on JanusGraph (its own graph server); the single consumer, the
    reference, on SQLite (the engines give the same graph: tests/integration/test_consumer_engines.py)."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from conftest import janusgraph_settings

    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    customers, links = frames_to_elements(ref["customers"], ref["links"])
    topic = f"group-events-{engine}"
    admin = AdminClient({"bootstrap.servers": kafka_server.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)
    lines = (small_world / "live" / "events.jsonl").read_text().splitlines()[:EVENTS]
    producer = Producer({"bootstrap.servers": kafka_server.bootstrap})
    for line in lines:  # keyed by customer: one customer's events stay in one partition, in order
        producer.produce(topic, line.encode(), key=json.loads(line)["customer_id"].encode())
    producer.flush(30)
    configs = {"single": tmp_path / "single.yaml", "group": tmp_path / "group.yaml"}
    configs["single"].write_text(CONFIG)
    # JanusGraph names the edges itself (localservers.JanusGraphServer.store_settings)
    configs["group"].write_text(CONFIG + ("graph:\n  gremlin:\n    edge_ids: engine\n" if engine == "janusgraph" else ""))
    group_settings = janusgraph_settings(settings) if engine == "janusgraph" else settings

    def consume(run: str, group: str, graph: str, idle_s: int = 12) -> subprocess.Popen:
        out = tmp_path / run
        out.mkdir()
        role = "single" if graph == uris["single"] else "group"  # each with its one ledger and settings
        source = f"kafka://{kafka_server.bootstrap}/{topic}?group={group}&session.timeout.ms=6000" \
                 "&heartbeat.interval.ms=500"
        cmd = [sys.executable, "-m", "fraudgraph.cli.main", "consume", "--source", source, "--graph", graph,
               "--model", str(model_dir), "--decisions", str(out / "decisions.jsonl"), "--until-idle", str(idle_s),
               "--ledger", str(tmp_path / f"{role}-ledger.db"), "--config", str(configs[role])]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(out / "log.txt", "w"))

    uris = {"single": f"sqlite:///{tmp_path / 'single.db'}", "group": f"sqlite:///{tmp_path / 'group.db'}"}
    if engine == "janusgraph":
        uris["group"] = request.getfixturevalue("janusgraph_server").url
    for name, store_settings in (("single", settings), ("group", group_settings)):
        with open_graph(uris[name], store_settings) as store:
            if name == "group" and engine == "janusgraph":
                store.clear()
            with store.summaries.deferred():
                store.upsert_customers(customers)
                store.upsert_links(links)
            store.summaries.rebuild()

    single = consume("single", "one-consumer", uris["single"])
    first, second = consume("first", "two-consumers", uris["group"]), consume("second", "two-consumers", uris["group"])

    def assigned(run: str) -> list[int]:
        """How many partitions each assignment of the run's gave it."""
        lines = (tmp_path / run / "log.txt").read_text().splitlines()
        return [line.count(f"{topic}/") for line in lines if "assigned partitions" in line]

    def decisions(run: str) -> int:
        return len(read_jsonl(tmp_path / run / "decisions.jsonl"))

    # once the group has split the partitions between the two, and the first decided on its share
    deadline = time.monotonic() + 180
    while not all(0 < (assigned(run) or [0])[-1] < PARTITIONS for run in ("first", "second")) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    shared_at = decisions("first")
    while decisions("first") < shared_at + 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)  # mid-stream, wherever it is in its micro-batch
    first.wait()
    for proc, run in ((second, "second"), (single, "single")):
        assert proc.wait(timeout=600) == 0, (tmp_path / run / "log.txt").read_text()[-3000:]
    assert first.returncode == -signal.SIGKILL and decisions("first") >= shared_at + 10
    assert decisions("second") > 0

    # the survivor was assigned the killed consumer's partitions (a rebalance) and finished its journaled work
    assert assigned("second")[-1] == PARTITIONS and len(assigned("second")) >= 2
    one, group = graph_state(uris["single"], settings), graph_state(uris["group"], group_settings)
    assert_same_graph_frames(group, one)
    assert group["stats"] == one["stats"]


    # every triggering event decided by one of the two, none lost
    decided = {run: {d["decision_id"] for d in read_jsonl(tmp_path / run / "decisions.jsonl")}
               for run in ("single", "first", "second")}
    assert decided["first"] | decided["second"] == decided["single"] and len(decided["single"]) > 100

    # the killed consumer restarted: the group's offsets and the ledger leave it nothing to apply or decide
    restarted = consume("restarted", "two-consumers", uris["group"], idle_s=6)
    assert restarted.wait(timeout=300) == 0, (tmp_path / "restarted" / "log.txt").read_text()[-3000:]
    assert read_jsonl(tmp_path / "restarted" / "decisions.jsonl") == []
    again = graph_state(uris["group"], group_settings)
    assert_same_graph_frames(again, group)
