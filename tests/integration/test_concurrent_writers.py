"""Every kind of writer on one JanusGraph at once: the Spark ETL's write partitions, two live consumers on
disjoint customers (what a Kafka consumer group keyed by customer gives) and the API's review writes.

The final graph must equal a single-writer reference on the embedded store (links, counts, link summaries,
vertex and edge counts): nothing lost, nothing duplicated. Conflicts the writers retried are counted and
recorded (``conflicts_retried`` in the JUnit report and the log).
"""

from __future__ import annotations

import json
import logging
import threading
import zlib

import httpx
import pandas as pd
import pytest

from etl.load_identity_graph import run_etl
from etl.reference import reference_etl
from fraudgraph.event_tags import EventTagger
from fraudgraph.graph import customer_properties, identifier_id, open_graph
from fraudgraph.graph.gremlin import GremlinIdentityGraph
from fraudgraph.graph.snapshot import normalise_links
from fraudgraph.identity import IdentifierHasher
from fraudgraph.scoring.rules import decision_properties

from api_helpers import start_uvicorn
from testing_support import frames_to_elements, seeded_world_model

pytestmark = [pytest.mark.slow, pytest.mark.gremlin]

LIVE_EVENTS = 400  # the first events of the small world's live stream
REVIEWS = 24
TOKENS = {"lead": {"name": "lead", "scopes": ["read", "review", "override"]}}
# written by decisions (their values depend on when a micro-batch was scored) and by reviews (checked apart)
TIMING_PROPERTIES = {*decision_properties(0.0, "allow", (), "", 0), "review_outcome", "review_outcome_at",
                     "review_note", "review_actor"}


@pytest.fixture(scope="module")
def model_dir(small_world, settings, tmp_path_factory):
    """A seeded (untrained) model: which writes happen does not depend on its quality."""
    return seeded_world_model(small_world, settings, tmp_path_factory.mktemp("cw-model"), seed=5)


def consumer_group(customer_id: str) -> int:
    """The consumer that owns a customer (stable across runs, like a Kafka partitioner)."""
    return zlib.crc32(customer_id.encode()) % 2


def run_consumer(url, settings, model_dir, lines, folder):
    """One live consumer over ``lines`` until the end of its file; returns (stats, its store's retries)."""
    from fraudgraph.ml.artifact import ModelArtifact
    from fraudgraph.scoring.online import OnlineScorer
    from serving.consumer import LiveConsumer
    from serving.consumer.ledger import Ledger
    from serving.consumer.sources import FileSource, JsonlSink

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "live.jsonl").write_text("\n".join(lines) + "\n")
    ledger = Ledger(folder / "ledger.db")
    decisions, dead = JsonlSink(folder / "decisions.jsonl"), JsonlSink(folder / "dead.jsonl")
    with open_graph(url, settings) as store:
        consumer = LiveConsumer(store, OnlineScorer(store, ModelArtifact.load(model_dir), settings), settings,
                                ledger, decisions, dead)
        source = FileSource(folder / "live.jsonl")
        stats = consumer.run(source, install_signals=False)
        source.close()
        retries = store.client.retries if isinstance(store, GremlinIdentityGraph) else 0  # none embedded
    decisions.close()
    dead.close()
    ledger.close()
    return stats, retries


def write_etl_input(small_world, folder, owned: set[str]) -> None:
    """The world's historical tables of the customers the ETL owns."""
    out = folder / "historical"
    out.mkdir(parents=True)
    for name in ("events", "customers", "blocks", "appeals"):
        frame = pd.read_parquet(small_world / "historical" / f"{name}.parquet")
        frame.loc[frame["customer_id"].isin(owned)].to_parquet(out / f"{name}.parquet", index=False)


def graph_state(store, customer_ids, identifiers):
    """What must not depend on who wrote: links, link summaries, identifier statistics, counts, and the
    customer properties that come from the data (not the scores, which depend on timing)."""
    customers = store.customers_frame().set_index("customer_id").sort_index()
    kept = sorted(c for c in customers.columns if c not in TIMING_PROPERTIES)
    return {
        "links": normalise_links(store.links_frame()),
        "link_summary": store._link_summary(customer_ids).astype("int64", errors="ignore"),
        "identifier_stats": store._identifier_stats(identifiers).astype(
            {c: "int64" for c in ("degree", "first_seen_min", "first_seen_max", "events")}),
        "stats": store.stats(),
        "customers": customers[kept].astype("string"),
    }


def test_etl_partitions_two_consumers_and_reviews_at_once_equal_one_writer(
        spark, small_world, settings, model_dir, janusgraph_server, tmp_path, record_property):
    from fraudgraph.ml.artifact import ModelArtifact
    from fraudgraph.scoring.online import OnlineScorer
    from localservers import free_port
    from serving.api import create_app

    from conftest import janusgraph_settings

    url, jsettings = janusgraph_server.url, janusgraph_settings(settings)
    jsettings = jsettings.model_copy(update={
        "consumer": jsettings.consumer.model_copy(update={"max_batch_span_s": 3600.0}),
        "etl": jsettings.etl.model_copy(update={"write_partitions": 2}),
        "api": type(jsettings.api).model_validate({**jsettings.api.model_dump(), "tokens": TOKENS,
                                                   "review_log": str(tmp_path / "reviews.db")})})
    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    lines = (small_world / "live" / "events.jsonl").read_text().splitlines()[:LIVE_EVENTS]
    live_customers = {json.loads(x)["customer_id"] for x in lines}
    groups = [[x for x in lines if consumer_group(json.loads(x)["customer_id"]) == g] for g in (0, 1)]
    assert all(groups), "both consumers must have events"
    # the ETL owns a third of the other customers (they share the world's hub IPs with the live customers,
    # so identifier vertices and their summaries are written by every writer)
    others = set(ref["customers"]["customer_id"]) - live_customers
    etl_customers = {c for c in others if zlib.crc32(c.encode()) % 3 == 0}
    in_graph = live_customers | etl_customers
    ref = {name: ref[name].loc[ref[name]["customer_id"].isin(in_graph)] for name in ("customers", "links")}

    # before: the live consumers' customers' history, by one writer (the ETL owns every other customer)
    known = ref["customers"].loc[ref["customers"]["customer_id"].isin(live_customers)]
    mine = ref["links"].loc[ref["links"]["customer_id"].isin(live_customers)]
    with open_graph(url, jsettings) as store:
        store.clear()
        customers, links = frames_to_elements(known, mine)
        store.upsert_customers(customers)
        store.upsert_links(links)
    reviewed = sorted(known["customer_id"])[:REVIEWS]
    assert len(reviewed) == REVIEWS
    write_etl_input(small_world, tmp_path / "etl-input", etl_customers)

    # at once: the ETL's two write partitions, two consumers, and the API's review writes
    api_store = open_graph(url, jsettings)
    app = create_app(api_store, OnlineScorer(api_store, ModelArtifact.load(model_dir), jsettings), jsettings)
    port = free_port()
    server, server_thread = start_uvicorn(app, port)
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def guarded(name, fn):
        def run():
            try:
                results[name] = fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
                errors.append(exc)
        return threading.Thread(target=run, name=name)

    writers_done = threading.Event()

    def reviews():
        """Rounds of review outcomes for the same customers until the other writers are done (at least
        one round); returns each customer's last outcome."""
        last: dict[str, str] = {}
        rounds = 0
        while rounds == 0 or not writers_done.is_set():
            for i, cid in enumerate(reviewed):
                outcome = "fraud" if (i + rounds) % 3 == 0 else "legit"
                r = httpx.post(f"http://127.0.0.1:{port}/v1/reviews/{cid}", json={"outcome": outcome},
                               headers={"Authorization": "Bearer lead"}, timeout=120)
                assert r.status_code == 200, r.text
                last[cid] = outcome
            rounds += 1
        results["review_rounds"] = rounds
        return sorted(last.items())

    threads = [
        guarded("etl", lambda: run_etl(spark, jsettings, str(tmp_path / "etl-input"), url)),
        *(guarded(f"consumer{g}", lambda g=g: run_consumer(url, jsettings, model_dir, groups[g],
                                                           tmp_path / f"consumer{g}")) for g in (0, 1)),
        guarded("reviews", reviews),
    ]
    for t in threads:
        t.start()
    for t in threads[:-1]:
        t.join(900)
    writers_done.set()
    threads[-1].join(300)
    server.should_exit = True
    server_thread.join(10)
    api_retries = api_store.client.retries
    api_store.close()
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads)
    consumed = [results[f"consumer{g}"] for g in (0, 1)]
    assert sum(stats["applied"] + stats["rejected"] for stats, _ in consumed) == len(lines)
    retried = sum(r for _, r in consumed) + api_retries
    record_property("conflicts_retried", retried)
    record_property("review_rounds", results["review_rounds"])
    logging.getLogger("fraudgraph.tests").info(
        "ETL partitions + two consumers + API reviews on one JanusGraph: %d conflicts retried by the consumers "
        "and the API (the ETL's executors log theirs)", retried)

    # the reference: the same history and the same live events, one writer, the embedded store
    reference_uri = f"sqlite:///{tmp_path / 'reference.db'}"
    with open_graph(reference_uri, settings) as store:
        customers, links = frames_to_elements(ref["customers"], ref["links"])
        store.upsert_customers(customers)
        store.upsert_links(links)
    run_consumer(reference_uri, settings.model_copy(update={"consumer": jsettings.consumer}), model_dir, lines,
                 tmp_path / "reference-consumer")

    with open_graph(reference_uri, settings) as reference, open_graph(url, jsettings) as store:
        ids = sorted(reference.links_frame()["customer_id"].unique())
        idents = sorted(set(zip(reference.links_frame()["kind"], reference.links_frame()["value_hash"])))
        # every vertex ends with a current summary (so the reads below are served from the summaries)
        vids = [f"customer:{c}" for c in ids] + [identifier_id(k, h) for k, h in idents]
        assert len(store.summary_cache.read(vids)) == len(vids)
        got, want = graph_state(store, ids, idents), graph_state(reference, ids, idents)
        assert got["stats"] == want["stats"]
        for key in ("links", "link_summary", "identifier_stats"):
            pd.testing.assert_frame_equal(got[key].reset_index(drop=True), want[key].reset_index(drop=True),
                                          check_dtype=False, obj=key)
        shared = got["customers"].columns.intersection(want["customers"].columns)
        pd.testing.assert_frame_equal(got["customers"][shared], want["customers"][shared], obj="customers")
        for cid, outcome in results["reviews"]:
            props = customer_properties(store, cid)
            assert (props["review_outcome"], props["review_actor"]) == (outcome, "lead")
