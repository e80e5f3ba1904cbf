"""Live consumer benchmark: sustained events/s with online scoring, end-to-end and scoring latency.

    python bench/consume.py --backend sqlite|gremlin|janusgraph --customers N --json FILE [--events M]
                            [--span-s S] [--promote-every S] [--consumers N]

Generates a world of N customers, loads its history into the chosen graph
(pandas reference aggregates; not timed), builds a seeded model artifact
(untrained, of the deployed shape: `training.deployed_refits` members averaged; latency does not
depend on the weights), then replays the first
M live events through the consumer from a JSONL file and reports events/s,
per-event end-to-end latency (receive to decision, per micro-batch) and the
latency of the online scoring calls (one per micro-batch, all its customers in
one subgraph). Finally it scores ``--single`` random customers one at a time,
as the API and a consumer under light load do, and reports that latency
(the "online scoring p99" of the targets).

``--span-s`` is the event-time bound of one consumer step (``consumer.max_batch_span_s``, default 5 s).
A synthetic world's live stream is sparse (at 100,000 customers, about one event every 20 s of stream
time), so at the default bound nearly every event is its own step and events/s is the per-step floor
(one ledger write, one graph write and one scoring call per event). A production stream at hundreds
of events per second fills a 5-second step up to ``consumer.max_batch``: ``--span-s 86400`` measures
that regime on the same events.

``--consumers N`` measures N consumer processes on one graph, as a Kafka consumer group with events keyed
by customer runs them: the stream is split by customer (a stable hash, as a partitioner does), each
process consumes its share with its own connection, all on the group's one shared ledger (as the
consumers of a Kafka group share it, docs/scaling.md), all at once; events/s is every event over
the wall time of the slowest. On SQLite one process writes at a time (the others wait on its lock); a
Gremlin server takes several.

``--promote-every S`` measures hot reload under load: the consumer follows a registry holding the model
twice, and a thread promotes the other version every S seconds while the stream runs (the target: at
least 90 % of the events/s without it, on the same machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

from _common import loaded_world, peak_rss_mb, percentile_ms, request_stats, table, write_result

from fraudgraph.config import load_settings
from fraudgraph.graph import open_graph
from fraudgraph.graph.gremlin import GremlinIdentityGraph
from fraudgraph.lifecycle import ModelRegistry, RunTracker
from fraudgraph.lifecycle.follow import StageFollower
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.scoring.online import OnlineScorer
from serving.consumer import LiveConsumer
from serving.consumer.ledger import Ledger
from serving.consumer.sources import FileSource, JsonlSink


class TimedScorer(OnlineScorer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.samples: list[float] = []

    def score_many(self, customer_ids, as_of_ms):
        t = time.perf_counter()
        try:
            return super().score_many(customer_ids, as_of_ms)
        finally:
            self.samples.append((time.perf_counter() - t, len(customer_ids)))


def alternating_promotions(settings, tmp: Path, every_s: float):
    """A registry in ``tmp`` with the benchmark's model registered twice (version 1 in production), a
    follower of it, and a thread that promotes the other version every ``every_s`` seconds until the
    returned event is set."""
    reg = settings.registry.model_copy(update={"dir": str(tmp / "registry"), "poll_s": min(1.0, every_s / 2)})
    shutil.copytree(tmp / "model", tmp / "model-b")
    tracker, registry = RunTracker(reg), ModelRegistry(reg)
    for folder in (tmp / "model", tmp / "model-b"):
        registry.register(tracker.log_training(folder, params={}, metrics={}, lineage={"model_id": folder.name}))
    registry.move(1, "production", reason="bench: first")
    stop = threading.Event()

    def promote() -> None:
        version = 1
        while not stop.wait(every_s):
            version = 3 - version
            registry.move(version, "production", reason="bench: hot reload under load")

    threading.Thread(target=promote, name="bench-promoter", daemon=True).start()
    return StageFollower(reg, ModelArtifact.load, reg.poll_s).start(), stop


def partition_of(customer_id: str, partitions: int) -> int:
    """The partition a customer's events go to (a stable hash, as a keyed producer's partitioner)."""
    return int(hashlib.sha256(customer_id.encode()).hexdigest()[:8], 16) % partitions


def run_one_consumer(uri: str, settings, model_dir: str, events: str, work: str, ledger: str) -> dict:
    """One consumer process: its share of the stream through a LiveConsumer on the group's shared ledger."""
    work_dir = Path(work)
    with open_graph(uri, settings) as store:
        scorer = OnlineScorer(store, ModelArtifact.load(model_dir), settings)
        consumer = LiveConsumer(store, scorer, settings, Ledger(ledger),
                                JsonlSink(work_dir / "decisions.jsonl"), JsonlSink(work_dir / "dead.jsonl"))
        start = time.time()
        stats = consumer.run(FileSource(events), install_signals=False)
        end = time.time()
    return {"events": stats["events_in"], "wall_s": round(end - start, 2), "start": start, "end": end,
            "decisions": stats["decisions"]}


def scale_out(args, settings) -> None:
    """--consumers N: N consumer processes at once on one graph, the stream split by customer."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with loaded_world(settings, args.customers, args.backend, tmp) as (uri, as_of, ref, settings):
            lines = (tmp / "world" / "live" / "events.jsonl").read_text().splitlines()[:args.events]
            shares: list[list[str]] = [[] for _ in range(args.consumers)]
            for line in lines:
                shares[partition_of(json.loads(line)["customer_id"], args.consumers)].append(line)
            jobs = []
            for i, share in enumerate(shares):
                (tmp / f"consumer-{i}").mkdir()
                (tmp / f"consumer-{i}" / "events.jsonl").write_text("\n".join(share) + "\n")
                jobs.append((uri, settings, str(tmp / "model"), str(tmp / f"consumer-{i}" / "events.jsonl"),
                             str(tmp / f"consumer-{i}"), str(tmp / "group-ledger.db")))
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.consumers, mp_context=context) as pool:
                t = time.perf_counter()
                per = list(pool.map(run_one_consumer, *zip(*jobs)))
                wall = time.perf_counter() - t
    events = sum(p["events"] for p in per)
    result = {
        "benchmark": "consume_scaleout",
        "backend": args.backend,
        "customers": args.customers,
        "consumers": args.consumers,
        "events": events,
        "max_batch_span_s": settings.consumer.max_batch_span_s,
        # from the first consumer's first event to the last one's end (process start-up not counted)
        "wall_s": round(max(p["end"] for p in per) - min(p["start"] for p in per), 2),
        "events_per_s": round(events / (max(p["end"] for p in per) - min(p["start"] for p in per)), 1),
        "wall_with_start_s": round(wall, 2),
        "per_consumer": [{k: v for k, v in p.items() if k not in ("start", "end")} for p in per],
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(table([(k, v) for k, v in result.items()]))
    write_result(args.json_path, result)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "gremlin", "janusgraph"], default="sqlite")
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--single", type=int, default=300, help="customers scored one at a time for latency")
    ap.add_argument("--span-s", type=float, default=None, help="event-time bound of a step (default: the setting)")
    ap.add_argument("--promote-every", type=float, default=None, metavar="S",
                    help="hot reload under load: the consumer follows the registry, and another version is "
                         "promoted every S seconds while it runs")
    ap.add_argument("--consumers", type=int, default=None,
                    help="consumer processes on the graph at once, the stream split between them by customer")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()
    settings = load_settings()
    if args.span_s is not None:
        settings.consumer.max_batch_span_s = args.span_s
    if args.consumers is not None:  # the scale-out measurement (1 consumer too: its own baseline)
        return scale_out(args, settings)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with loaded_world(settings, args.customers, args.backend, tmp) as (uri, as_of, ref, settings):
            lines = (tmp / "world" / "live" / "events.jsonl").read_text().splitlines()[:args.events]
            (tmp / "live.jsonl").write_text("\n".join(lines) + "\n")
            follower, stop = alternating_promotions(settings, tmp, args.promote_every) if args.promote_every else (None, None)
            with open_graph(uri, settings) as store:
                scorer = TimedScorer(store, ModelArtifact.load(tmp / "model"), settings)
                consumer = LiveConsumer(store, scorer, settings, Ledger(tmp / "ledger.db"),
                                        JsonlSink(tmp / "decisions.jsonl"), JsonlSink(tmp / "dead.jsonl"), follower)
                t = time.perf_counter()
                stats = consumer.run(FileSource(tmp / "live.jsonl"), install_signals=False)
                wall = time.perf_counter() - t
                reloads = 0
                if follower is not None:
                    stop.set()
                    follower.stop()
                    reloads = follower.reloads
                # Gremlin stores: requests and seconds per request name during the replay
                requests = {k: {"requests": int(n), "seconds": round(sec, 2)}
                            for k, (n, sec) in sorted(request_stats(store).items())}
                # Gremlin stores: summaries advanced by a write's changes vs aggregated afresh
                refreshes = dict(store.summary_cache.refreshes) if isinstance(store, GremlinIdentityGraph) else {}
                lat = consumer.stats.latencies_ms
                calls = list(scorer.samples)  # with --promote-every: the calls before the first reload
                if follower is not None:
                    scorer = TimedScorer(store, follower.model, settings)  # the single scores below: timed
                rng = random.Random(7)
                ids = sorted(ref["customers"]["customer_id"])
                sample = rng.sample(ids, min(args.single, len(ids)))
                single = []
                # as of the stream's "now" (the last decision's as-of), as the consumer and the API score
                now = max([json.loads(line)["scored_as_of"] for line in
                           (tmp / "decisions.jsonl").read_text().splitlines()] or [as_of])
                for cid in sample[:20]:  # warm-up
                    scorer.score(cid, now)
                for cid in sample:
                    t = time.perf_counter()
                    scorer.score(cid, now)
                    single.append(time.perf_counter() - t)
    result = {
        "benchmark": "consume",
        "backend": args.backend,
        "customers": args.customers,
        "events": stats["events_in"],
        "max_batch": settings.consumer.max_batch,
        "max_batch_span_s": settings.consumer.max_batch_span_s,
        "wall_s": round(wall, 2),
        "events_per_s": round(stats["events_in"] / wall, 1),
        "end_to_end_p50_ms": round(percentile_ms([x / 1000 for x in lat], 50), 1),
        "end_to_end_p99_ms": round(percentile_ms([x / 1000 for x in lat], 99), 1),
        "scoring_calls": len(calls),
        "customers_scored": sum(n for _, n in calls),
        "scoring_call_p50_ms": round(percentile_ms([t for t, _ in calls], 50), 1),
        "scoring_call_p99_ms": round(percentile_ms([t for t, _ in calls], 99), 1),
        "scoring_ms_per_customer": round(1000 * sum(t for t, _ in calls)
                                         / max(1, sum(n for _, n in calls)), 2),
        "single_customer_scores": len(single),
        "online_score_p50_ms": round(percentile_ms(single, 50), 1),
        "online_score_p99_ms": round(percentile_ms(single, 99), 1),
        "decisions": stats["decisions"],
        "store_requests": requests,
        "summary_refreshes": refreshes,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        # hot reload under load (--promote-every): the consumer switched models this many times
        "promote_every_s": args.promote_every,
        "reloads": reloads,
    }
    print(table([(k, v) for k, v in result.items()]))
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
