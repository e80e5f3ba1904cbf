"""The main job's wall time, as a person trying the project runs it.

    python bench/main_job.py --json FILE [--seed S] [--customers N] [--out DIR]

Runs ``fraudgraph demo`` (README command 1 without the environment set-up) in a child process, not on
a terminal (progress comes as log lines), and reports its wall time, each stage's, the longest gap
between two lines of its log (how long a person waits with nothing new shown), the replay's parts
(the events the real consumer decided, the bulk part, and whether the two agreed on the consumer's
part) and the live headline figures. The job registers its model in a registry of its own inside the
output folder (``FRAUDGRAPH_REGISTRY__DIR`` overrides it), as on a fresh clone: runs of other worlds or
seeds never meet at the promotion gate, and every run costs what a person's first run costs. Target (issue: the main job in minutes): under 8 minutes for one
seed at 20,000 customers on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import tempfile
from pathlib import Path

from _common import run_job, table, world_job_arguments, world_job_env, write_result

from fraudgraph.config import load_settings

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def longest_silence_s(log_text: str) -> float:
    """The longest gap between two consecutive time-stamped log lines (seconds)."""
    stamps = [
        dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
        for m in (_STAMP.match(line) for line in log_text.splitlines())
        if m
    ]
    return max(((b - a).total_seconds() for a, b in zip(stamps, stamps[1:])), default=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    world_job_arguments(ap, "main job")
    args = ap.parse_args()
    env = world_job_env(args)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or Path(tmp) / "demo")
        env.setdefault("FRAUDGRAPH_REGISTRY__DIR", str(out / "models"))
        report, log_text, wall = run_job(["demo", "--out", str(out)], env, "main job")
    live = report["stages"]["live"]
    result = {
        "benchmark": "main_job",
        "seed": report["stages"]["generate"].get("seed", args.seed),
        "customers": args.customers or load_settings().world.customers,
        "wall_s": round(wall, 1),
        "target_s": 480,
        "stage_wall_s": report.get("stage_wall_s"),
        "longest_log_silence_s": round(longest_silence_s(log_text), 1),
        "live_events": live["events"],
        "replay_parts": live.get("parts"),
        "replay_parity": live.get("parity"),
        "live_precision": live.get("precision"),
        "live_recall": live.get("recall"),
        "live_decisions": live.get("decisions"),
        # the registered version and what the promotion gate decided (with a production model: both
        # models' figures on the candidate's decision-time test split)
        "registry": {k: report["stages"].get("registry", {}).get(k)
                     for k in ("version", "promoted", "reason", "regressions", "figures")},
    }
    print(table([(k, v) for k, v in result.items()]))
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
