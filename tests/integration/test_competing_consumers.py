"""Consumers competing for one SQS queue: two live consumers read one FIFO queue (each customer's events in
one message group) on one graph and one shared ledger, and one is killed with SIGKILL mid-stream. The
survivor claims the killed consumer's lease once it expires, finishes its journaled work, and takes its
messages when they come back: the graph a single consumer gives on the same stream, every triggering event
decided; the killed consumer, restarted, has nothing left to do."""

from __future__ import annotations

import hashlib
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
# steps of one event time each (which events are decided does not depend on how the stream was cut into
# micro-batches); a lease expires 2 s after its last renewal, a message comes back 6 s after its receipt
CONFIG = "consumer:\n  max_batch: 40\n  max_batch_span_s: 0.001\n  lease_s: 2\n  sqs_visibility_timeout_s: 6\n"


@pytest.fixture(scope="module")
def model_dir(small_world, settings, tmp_path_factory):
    """A seeded (untrained) model: which writes and decisions happen does not depend on its quality."""
    return seeded_world_model(small_world, settings, tmp_path_factory.mktemp("competing-model"), seed=3)


def test_two_consumers_on_one_queue_one_killed_the_survivor_finishes_with_one_consumers_graph(
    small_world, model_dir, settings, sqs_server, tmp_path
):
    from serving.consumer.sources.sqs import sqs_client

    sqs = sqs_client(sqs_server.endpoint + "/")
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    lines = (small_world / "live" / "events.jsonl").read_text().splitlines()[:EVENTS]
    queues = {}
    for run in ("single", "group"):
        queues[run] = sqs.create_queue(QueueName=f"{run}-events.fifo", Attributes=fifo)["QueueUrl"]
        sqs.create_queue(QueueName=f"{run}-events-dlq.fifo", Attributes=fifo)

    def send(run: str) -> None:
        for i in range(0, len(lines), 10):  # the customer is the message group: its events stay in order
            sqs.send_message_batch(QueueUrl=queues[run], Entries=[
                {"Id": str(j), "MessageBody": line, "MessageGroupId": json.loads(line)["customer_id"],
                 "MessageDeduplicationId": hashlib.sha256(line.encode()).hexdigest()}
                for j, line in enumerate(lines[i:i + 10])])
    config = tmp_path / "consumer.yaml"
    config.write_text(CONFIG)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "local-test", "AWS_SECRET_ACCESS_KEY": "local-test",
           "AWS_REGION": "elasticmq"}

    def consume(run: str, role: str, idle_s: int = 15) -> subprocess.Popen:
        out = tmp_path / run
        out.mkdir()
        cmd = [sys.executable, "-m", "fraudgraph.cli.main", "consume", "--source", queues[role],
               "--graph", uris[role], "--model", str(model_dir), "--decisions", str(out / "decisions.jsonl"),
               "--until-idle", str(idle_s), "--ledger", str(tmp_path / f"{role}-ledger.db"), "--config", str(config)]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(out / "log.txt", "w"), env=env)

    uris = {"single": f"sqlite:///{tmp_path / 'single.db'}", "group": f"sqlite:///{tmp_path / 'group.db'}"}
    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    customers, links = frames_to_elements(ref["customers"], ref["links"])
    for uri in uris.values():
        with open_graph(uri, settings) as store:
            with store.summaries.deferred():
                store.upsert_customers(customers)
                store.upsert_links(links)
            store.summaries.rebuild()

    def decisions(run: str) -> int:
        return len(read_jsonl(tmp_path / run / "decisions.jsonl"))

    def log(run: str) -> str:
        return (tmp_path / run / "log.txt").read_text()

    send("single")
    single = consume("single", "single")
    first, second = consume("first", "group"), consume("second", "group")
    deadline = time.monotonic() + 180  # both polling before the stream starts: both get their share
    while not all("journaling under lease" in log(run) for run in ("first", "second")) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    send("group")
    while not (decisions("first") >= 10 and decisions("second") > 0) and time.monotonic() < deadline:
        time.sleep(0.05)  # both are deciding; then the first is killed mid-stream
    killed_at = decisions("first")
    time.sleep(0.2)  # a batch's decisions are written at its end: now the next batch is likely half done
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    for proc, run in ((second, "second"), (single, "single")):
        assert proc.wait(timeout=600) == 0, log(run)[-3000:]
    assert first.returncode == -signal.SIGKILL and killed_at >= 10 and decisions("second") > 0
    assert decisions("first") < decisions("single")  # killed before the stream's end

    # the survivor claimed the killed consumer's lease and finished its work
    assert "taking over the expired lease lease:" in log("second")
    one, group = graph_state(uris["single"], settings), graph_state(uris["group"], settings)
    assert_same_graph_frames(group, one)
    assert group["stats"] == one["stats"]

    # every triggering event decided by one of the two, none lost
    decided = {run: {d["decision_id"] for d in read_jsonl(tmp_path / run / "decisions.jsonl")}
               for run in ("single", "first", "second")}
    assert decided["first"] | decided["second"] == decided["single"] and len(decided["single"]) > 100

    # nothing is left on the queue, and the killed consumer restarted has nothing to apply or decide
    attrs = sqs.get_queue_attributes(QueueUrl=queues["group"], AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert attrs == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    restarted = consume("restarted", "group", idle_s=5)
    assert restarted.wait(timeout=300) == 0, log("restarted")[-3000:]
    assert read_jsonl(tmp_path / "restarted" / "decisions.jsonl") == []
    again = graph_state(uris["group"], settings)
    assert_same_graph_frames(again, group)
