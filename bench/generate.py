"""Synthetic world generator benchmark: events/s and peak memory.

    python bench/generate.py --customers N --json FILE

Generates a default world of N customers into a temporary folder (the
generator streams chunk by chunk, so memory stays bounded) and reports
events written per second of wall time and the peak resident memory.
With ``world.workers`` > 1 (``--workers``), chunks are generated in worker
processes: ``peak_rss_mb`` is the writing process, ``peak_worker_rss_mb`` the
largest worker, and ``peak_total_rss_mb_bound`` the writer plus every worker
at its largest (an upper bound of what the job held at once: each worker's
resident size also counts the pages it shares with the writer it was forked
from). ``peak_tree_pss_mb`` is the largest sum, sampled every 0.2 s, of the
proportional set size of the writer and its workers: what they held at once,
each shared page counted once (Linux).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

from _common import TreeMemorySampler, peak_rss_mb, table, write_result

from fraudgraph.config import load_settings
from fraudgraph.synthetic.world import WorldGenerator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workers", type=int, default=None, help="chunk-generating processes (default: world.workers)")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()
    world = load_settings().world.model_copy(update={"customers": args.customers, "seed": args.seed})
    if args.workers is not None:
        world = world.model_copy(update={"workers": args.workers})
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        with TreeMemorySampler() as tree:
            summary = WorldGenerator(world).generate(tmp, progress=True)
        wall = time.perf_counter() - t
    events = summary["historical_events"] + summary["live_events"]
    result = {
        "benchmark": "generate",
        "customers": args.customers,
        "chunk_customers": world.chunk_customers,
        "events": events,
        "historical_events": summary["historical_events"],
        "live_events": summary["live_events"],
        "wall_s": round(wall, 2),
        "events_per_s": round(events / wall, 1),
        "workers": world.workers,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        # the writer and every worker together, shared pages counted once (sampled every 0.2 s)
        "peak_tree_pss_mb": None if tree.peak_mb is None else round(tree.peak_mb, 1),
    }
    if world.workers > 1:
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        result["peak_worker_rss_mb"] = round(child, 1)
        result["peak_total_rss_mb_bound"] = round(peak_rss_mb() + world.workers * child, 1)
    print(table(list(result.items())))
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
