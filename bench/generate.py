"""Synthetic world generator benchmark: events/s and peak memory.

    python bench/generate.py --customers N --json FILE

Generates a default world of N customers into a temporary folder (the
generator streams chunk by chunk, so memory stays bounded) and reports
events written per second of wall time and the peak resident memory.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import peak_rss_mb, table, write_result

from fraudgraph.config import load_settings
from fraudgraph.synthetic.world import WorldGenerator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()
    world = load_settings().world.model_copy(update={"customers": args.customers, "seed": args.seed})
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
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
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(table(list(result.items())))
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
