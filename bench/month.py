"""The simulated month's wall time and memory, against the main job's (issue: the month in the main job's
time or less).

    python bench/month.py --json FILE [--seed S] [--customers N] [--out DIR]

Runs ``fraudgraph simulate-month`` in a child process, as the docs' command runs it, and reports its wall
time, the peak resident memory of the job (its largest process), each stage's wall time (the main job's
first four stages, then each period: its replay and its retrain with the gate), the weekly gate verdicts
and whether each period's bulk decisions equalled the consumer's. The month keeps its registry inside its
output folder: a run never meets another run's models.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import table, write_result

from fraudgraph.config import load_settings

FIRST_STAGES = ("generate", "etl", "labels", "train", "registry")


def period_figures(period: dict) -> dict:
    """One period's costs and outcome: replay and retrain wall time (s), whether the replay's two parts
    agreed, and what the gate decided at its end (None for the last period, which has no retrain)."""
    retrain = period.get("retrain") or {}
    promotion = retrain.get("promotion") or {}
    return {
        "period": period.get("period"),
        "days": period.get("days"),
        "model_version": period.get("model_version"),
        "replay_s": (period.get("replay") or {}).get("wall_s"),
        "replay_equal": ((period.get("replay") or {}).get("parity") or {}).get("equal"),
        "retrain_s": retrain.get("wall_s"),
        "candidate": retrain.get("version"),
        "promoted": promotion.get("promoted") if retrain else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="world seed (default world.seed)")
    ap.add_argument("--customers", type=int, default=None, help="world size (default world.customers)")
    ap.add_argument("--out", default=None, help="keep the month's output here (default: a temporary folder)")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()
    env = dict(os.environ)
    if args.seed is not None:
        env["FRAUDGRAPH_WORLD__SEED"] = str(args.seed)
    if args.customers is not None:
        env["FRAUDGRAPH_WORLD__CUSTOMERS"] = str(args.customers)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or Path(tmp) / "month")
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "fraudgraph.cli.main", "simulate-month", "--out", str(out), "--json"],
            capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            sys.exit(f"the simulated month failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        report = json.loads(proc.stdout)
    stages = report.get("stage_wall_s") or {}
    settings = load_settings()
    result = {
        "benchmark": "month",
        "seed": args.seed if args.seed is not None else settings.world.seed,
        "customers": args.customers or settings.world.customers,
        "every_days": settings.retrain.every_days,
        "first_model_baselines": settings.retrain.baselines,
        "wall_s": round(wall, 1),
        # the largest process of the job (Linux: kilobytes); the Spark JVM and workers are its children too
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2, 2),
        "first_stages_s": round(sum(stages.get(s, 0.0) for s in FIRST_STAGES), 1),
        "stage_wall_s": stages,
        "periods": [period_figures(p) for p in report.get("periods", [])],
    }
    print(table([(k, v) for k, v in result.items()]))
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
