"""Concurrent writers on one hub, over and over: how often a hub's link summary ends wrong.

    python bench/summary_race.py --backend gremlin|janusgraph --runs N --json FILE

Each run clears the graph; four writers (threads, one store each) then write 4 rounds of 15 links
each to the same new identifier at once, as `test_concurrent_writers_to_one_hub_leave_it_exact`
does once. After each run the hub's stored summary is compared with its links: a run fails when
the summary is missing or disagrees (degree, event total). Prints and writes the failures, the
conflicts retried and the summaries dropped after `max_retries` refused compare-and-sets.
A probe for rare interleavings, not a speed benchmark: the suite plays the known one
deterministically (`test_a_writer_refused_by_an_invalidation_aggregates_until_its_links_are_in`).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
from pathlib import Path

from _common import table, temporary_graph_server, write_result

from fraudgraph.config import load_settings
from fraudgraph.graph import IdentityLink, identifier_id, open_graph

WRITERS, ROUNDS, PER_ROUND = 4, 4, 15


class _Count(logging.Handler):
    """Counts the store's 'still contended ... dropped' warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "still contended" in record.getMessage():
            self.dropped += 1


def one_run(url: str, settings) -> tuple[bool, int]:
    """``(the hub's summary agrees with its links, conflicts retried)``."""
    with open_graph(url, settings) as store:
        store.clear()
    retried = [0] * WRITERS

    def write(worker: int) -> None:
        with open_graph(url, settings) as store:
            for r in range(ROUNDS):
                store.upsert_links(
                    [
                        IdentityLink(
                            f"w{worker}_{i:02d}",
                            "ip",
                            "shared",
                            1_000 + i,
                            2_000 + i,
                            worker + 1,
                            {"login": worker + 1},
                        )
                        for i in range(r * PER_ROUND, (r + 1) * PER_ROUND)
                    ]
                )
            retried[worker] = store.client.retries

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    hub = identifier_id("ip", "shared")
    with open_graph(url, settings) as store:
        summary = store.summary_cache.read([hub]).get(hub)
    links = WRITERS * ROUNDS * PER_ROUND
    events = ROUNDS * PER_ROUND * sum(range(1, WRITERS + 1))
    ok = summary is not None and (summary.customers, summary.events) == (links, events)
    return ok, sum(retried)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["gremlin", "janusgraph"], default="janusgraph")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()

    settings = load_settings()
    counter = _Count()
    logging.getLogger("fraudgraph").addHandler(counter)
    with tempfile.TemporaryDirectory() as tmp:
        server, store_settings = temporary_graph_server(settings, Path(tmp) / args.backend, args.backend)
        try:
            outcomes = [one_run(server.url, store_settings) for _ in range(args.runs)]
        finally:
            server.stop()
    result = {
        "benchmark": "summary_race",
        "backend": args.backend,
        "runs": args.runs,
        "writers": WRITERS,
        "links_per_run": WRITERS * ROUNDS * PER_ROUND,
        "failed_runs": sum(not ok for ok, _ in outcomes),
        "conflicts_retried": sum(n for _, n in outcomes),
        "summaries_dropped_contended": counter.dropped,
    }
    print(table(list(result.items())))
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
