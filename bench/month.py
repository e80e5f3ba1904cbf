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
import resource
import tempfile
from pathlib import Path

from _common import run_job, table, world_job_arguments, world_job_env, write_result

from fraudgraph.config import load_settings

FIRST_STAGES = ("generate", "etl", "labels", "train", "registry")


def period_figures(period: dict) -> dict:
    """One period's costs and outcome: replay and retrain wall time (s), whether the replay's two parts
    agreed, what the gate decided at its end (None for the last period, which has no retrain), the version
    a warm-started retrain started from and the gate's PR-AUC of candidate and production."""
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
        "warm_start_from": retrain.get("warm_start_from"),
        # the gate's test-split PR-AUC (labels) of the candidate and of production
        "gate_pr_auc": {k: (v or {}).get("pr_auc") for k, v in (promotion.get("figures") or {}).items()} or None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    world_job_arguments(ap, "month")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or Path(tmp) / "month")
        report, _, wall = run_job(["simulate-month", "--out", str(out)], world_job_env(args), "simulated month")
    stages = report.get("stage_wall_s") or {}
    settings = load_settings()
    result = {
        "benchmark": "month",
        "seed": args.seed if args.seed is not None else settings.world.seed,
        "customers": args.customers or settings.world.customers,
        "every_days": settings.retrain.every_days,
        "first_model_baselines": settings.retrain.baselines,
        "warm_start": settings.retrain.warm_start.enabled,
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
