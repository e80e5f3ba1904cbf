"""Decision-time training benchmark on generated worlds.

    python bench/train.py --customers N --json FILE [--epochs E] [--seeds 42,7,1234] [--training-seed S]

For each world seed: generates a world of N customers, loads it with the pandas reference of the
ETL (the same tables and link events the Spark job writes; not timed), cleans the labels as of the
cut-off, then runs the whole training job exactly as ``fraudgraph train`` does (decision-time
examples, their point-in-time subgraphs, rgcn_edge, rgcn, gbdt and the day-one rules, the deployed
refit). Reports the examples built per second, seconds per epoch, the deployed refit's plan and time,
the whole job's wall time, peak memory, and every model's test PR-AUC against ground truth, per seed
and as mean and range over the seeds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import peak_rss_mb, reference_world, table, write_result

from fraudgraph.config import load_settings
from fraudgraph.graph.snapshot import write_snapshot
from fraudgraph.labels.cleaning import clean_labels
from training.train import run_training


def one_seed(settings, customers: int, seed: int) -> dict:
    settings = settings.model_copy(update={"world": settings.world.model_copy(update={"seed": seed})})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # the run is tracked in a registry of its own, gone with the folder
        settings = settings.model_copy(update={"registry": settings.registry.model_copy(update={"dir": str(tmp / "registry")})})
        _, as_of, ref = reference_world(settings, customers, tmp)
        write_snapshot(ref["customers"], ref["links"], tmp / "snapshot", link_events=ref["link_events"])
        labels = clean_labels(ref["customers"], ref["links"], as_of, settings.labels).labels
        (tmp / "labels").mkdir()
        labels.to_parquet(tmp / "labels" / "labels.parquet", index=False)
        t = time.perf_counter()
        metrics = run_training(settings, tmp / "snapshot", tmp / "labels", tmp / "model",
                               tmp / "world" / "truth" / "ground_truth.parquet")
        train_s = time.perf_counter() - t
    fits, graph = metrics["training"], metrics["graph"]
    return {
        "seed": seed,
        "examples": graph["examples"],
        "subgraph_links": graph["subgraph_links"],
        "examples_built_per_s": round(graph["examples"] / graph["build_s"], 1),
        "mode": fits["rgcn_edge"]["mode"],
        "rgcn_edge_seconds_per_epoch": fits["rgcn_edge"]["seconds_per_epoch"],
        "rgcn_edge_epochs": fits["rgcn_edge"]["epochs"],
        "rgcn_seconds_per_epoch": fits["rgcn"]["seconds_per_epoch"],
        "gbdt_fit_s": fits["gbdt"]["seconds"],
        # the deployed refit within training.deployed_refit_budget: how many refits on how many points
        "deployed": {k: metrics.get("deployed", {}).get(k) for k in
                     ("refits", "refits_configured", "epochs", "decision_points", "decision_points_eligible",
                      "seconds_per_epoch", "seconds")},
        "training_job_s": round(train_s, 1),
        "threshold": metrics["threshold"],
        "test_pr_auc_truth": {name: m["truth"]["pr_auc"] for name, m in metrics["models"].items()},
        "test_pr_auc_truth_ci90": {name: m["truth"].get("pr_auc_ci90") for name, m in metrics["models"].items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=None, help="override training.max_epochs")
    ap.add_argument("--training-seed", type=int, default=None, help="override training.seed (run-to-run spread)")
    ap.add_argument("--seeds", default=None, help="comma-separated world seeds (default world.seed)")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()
    settings = load_settings()
    if args.epochs:
        settings.training.max_epochs = args.epochs
    if args.training_seed is not None:
        settings.training.seed = args.training_seed
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [settings.world.seed]
    runs = [one_seed(settings, args.customers, s) for s in seeds]
    models = list(runs[0]["test_pr_auc_truth"])
    spread = {}
    for name in models:
        vals = [r["test_pr_auc_truth"][name] for r in runs if r["test_pr_auc_truth"][name] is not None]
        spread[name] = {"mean": round(sum(vals) / len(vals), 4), "min": min(vals), "max": max(vals)} if vals else None
    result = {"benchmark": "train", "customers": args.customers, "seeds": seeds, "runs": runs,
              "training_seed": settings.training.seed,
              "test_pr_auc_truth_over_seeds": spread, "peak_rss_mb": round(peak_rss_mb(), 1),
              "training_job_s_max": max(r["training_job_s"] for r in runs)}
    print(table([(k, v if not isinstance(v, (dict, list)) else json.dumps(v)) for k, v in result.items()]))
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
