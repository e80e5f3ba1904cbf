"""Training and scoring benchmark on a generated world.

    python bench/train.py --customers N --json FILE [--epochs E]

Generates a world of N customers, loads it with the pandas reference
aggregates (the same tables the Spark ETL writes; not timed), cleans the labels
as of the cut-off, then trains rgcn_edge, rgcn and gbdt exactly as
``fraudgraph train`` does and scores every customer with the saved artifact.
Reports seconds per epoch, peak memory, scoring throughput (customers/s) and
the metrics of all three models against cleaned labels and ground truth.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import peak_rss_mb, reference_world, table, write_result

from fraudgraph.config import load_settings
from fraudgraph.ml.features import build_graph_tensors
from fraudgraph.graph.snapshot import read_snapshot, write_snapshot
from fraudgraph.labels.cleaning import clean_labels
from fraudgraph.ml.artifact import ModelArtifact
from training.train import run_training


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=None, help="override training.max_epochs")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()
    settings = load_settings()
    if args.epochs:
        settings.training.max_epochs = args.epochs
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _, as_of, ref = reference_world(settings, args.customers, tmp)
        write_snapshot(ref["customers"], ref["links"], tmp / "snapshot")
        labels = clean_labels(ref["customers"], ref["links"], as_of, settings.labels).labels
        (tmp / "labels").mkdir()
        labels.to_parquet(tmp / "labels" / "labels.parquet", index=False)

        t = time.perf_counter()
        metrics = run_training(settings, tmp / "snapshot", tmp / "labels", tmp / "model",
                               tmp / "world" / "truth" / "ground_truth.parquet")
        train_s = time.perf_counter() - t

        customers, links = read_snapshot(tmp / "snapshot")
        artifact = ModelArtifact.load(tmp / "model")
        t = time.perf_counter()
        tensors = build_graph_tensors(customers, links, as_of, fanout_cap=artifact.fanout_cap)
        scores = artifact.score_tensors(tensors)
        score_s = time.perf_counter() - t
    fits = metrics["training"]
    result = {
        "benchmark": "train",
        "customers": args.customers,
        "graph_customers": metrics["graph"]["customers"],
        "graph_links": metrics["graph"]["edges"],
        "mode": fits["rgcn_edge"]["mode"],
        "rgcn_edge_seconds_per_epoch": fits["rgcn_edge"]["seconds_per_epoch"],
        "rgcn_edge_epochs": fits["rgcn_edge"]["epochs"],
        "rgcn_seconds_per_epoch": fits["rgcn"]["seconds_per_epoch"],
        "gbdt_fit_s": fits["gbdt"]["seconds"],
        "training_job_s": round(train_s, 1),
        "scoring_customers_per_s": round(len(scores) / score_s, 1),
        "scoring_s": round(score_s, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "threshold": metrics["threshold"],
        "split": metrics["split"],
        "metrics": {name: {ref: {k: m[ref][k] for k in ("pr_auc", "roc_auc", "recall_at_precision_85",
                                                           "precision_at_recall_50")}
                           for ref in ("labels", "truth")} for name, m in metrics["models"].items()},
    }
    print(table([(k, v if not isinstance(v, dict) else json.dumps(v)) for k, v in result.items()]))
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
