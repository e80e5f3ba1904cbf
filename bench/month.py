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
import resource
import tempfile
from pathlib import Path

from _common import run_job, table, world_job_arguments, world_job_env, write_result

from fraudgraph.config import load_settings

FIRST_STAGES = ("generate", "etl", "labels", "train", "registry")


def period_figures(period: dict) -> dict:
    """One period's costs and outcome: replay and retrain wall time (s), whether the replay's two parts
    agreed, what the gate decided at its end (None for the last period, which has no retrain), the version
    a warm-started retrain started from, the gate's PR-AUC of candidate and production, and where the
    retrain's time went (:func:`retrain_parts`)."""
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
        "retrain_parts": retrain_parts(retrain),
    }


def retrain_parts(retrain: dict) -> dict | None:
    """Where a retrain's wall time went (s), from its training run's metrics: the decision-time graph, the
    validated fit's training epochs (its validation passes not included), the deployment refits, the rest
    of the training job (examples, scoring and judging, the artifact, tracking) and what ran outside it
    (labels, snapshot, retrain key, registration, gate). None without a retrain or its metrics."""
    if not retrain:
        return None
    path = Path(retrain["model_dir"]) / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    fit = metrics["training"]["rgcn_edge"]
    fit_s = fit["epochs"] * fit["seconds_per_epoch"]
    refits_s = (metrics.get("deployed") or {}).get("seconds", 0.0)
    graph_s = metrics["graph"]["build_s"]
    return {
        "decision_graph_s": graph_s,
        "fit_epochs_s": round(fit_s, 1),
        "refits_s": refits_s,
        "rest_of_training_s": round(metrics["wall_s"] - graph_s - fit_s - refits_s, 1),
        "outside_training_s": round(retrain["wall_s"] - metrics["wall_s"], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    world_job_arguments(ap, "month")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or Path(tmp) / "month")
        report, _, wall = run_job(["simulate-month", "--out", str(out)], world_job_env(args), "simulated month")
        periods = [period_figures(p) for p in report.get("periods", [])]  # reads each retrain's metrics in out
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
        "periods": periods,
    }
    print(table([(k, v) for k, v in result.items()]))
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
