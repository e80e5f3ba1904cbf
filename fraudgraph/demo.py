"""The main job: every stage that exists, end to end, on the embedded default.

Stages: generate a synthetic world -> Spark ETL into an embedded SQLite
identity graph (plus snapshot and rejects) -> labels as of the historical
cut-off -> train the edge-feature-aware RGCN and its baselines -> score every
customer and decide block / review / allow. Labels, models and decisions are
evaluated against the world's ground truth, which no stage reads otherwise. Writes ``report.json`` and
``report.md`` under the output folder.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from .config import Settings

log = logging.getLogger(__name__)


def run_demo(settings: Settings, out_dir: Path) -> dict[str, Any]:
    from etl.load_identity_graph import run_etl

    from training.train import run_training

    from .batch_scoring import score_graph
    from .graph import open_graph
    from .label_stage import run_labels
    from .scoring import ModelArtifact
    from .schema import to_epoch_ms
    from .spark_session import build_spark_session
    from .world import WorldGenerator
    from .world_stats import describe_world

    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report: dict[str, Any] = {"generated_at": dt.datetime.now(dt.timezone.utc).isoformat(), "stages": {}}

    world_dir = out_dir / "world"
    shutil.rmtree(world_dir, ignore_errors=True)
    log.info("stage 1/5: generating a synthetic world of %d customers", settings.world.customers)
    t = time.monotonic()
    world = WorldGenerator(settings.world).generate(world_dir)
    rates = describe_world(world_dir)
    report["stages"]["generate"] = {**world, "rates": rates, "wall_s": round(time.monotonic() - t, 2)}

    graph_path = (out_dir / "graph.db").resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{graph_path}{suffix}").unlink(missing_ok=True)
    uri = f"sqlite:///{graph_path}"
    log.info("stage 2/5: Spark ETL into %s", uri)
    spark = build_spark_session(settings.spark)
    etl = run_etl(spark, settings, str(world_dir), uri, snapshot=str(out_dir / "snapshot"),
                  rejects=str(out_dir / "rejects"))
    with open_graph(uri, settings) as store:
        stats = store.stats()
    report["stages"]["etl"] = {**etl, "graph_stats": stats}

    log.info("stage 3/5: labels as of the cut-off %s", world["cutoff"])
    with open_graph(uri, settings) as store:
        labels = run_labels(store, to_epoch_ms(world["cutoff"]), out_dir / "labels", settings,
                            world_dir / "truth" / "ground_truth.parquet")
    report["stages"]["labels"] = labels

    log.info("stage 4/5: training rgcn_edge, rgcn and gbdt")
    model_dir = out_dir / "model"
    truth_path = world_dir / "truth" / "ground_truth.parquet"
    metrics = run_training(settings, out_dir / "snapshot", out_dir / "labels", model_dir, truth_path)
    report["stages"]["train"] = {"model_dir": str(model_dir), "metrics": metrics}

    log.info("stage 5/5: batch scoring and decisions")
    with open_graph(uri, settings) as store:
        scored = score_graph(store, ModelArtifact.load(model_dir), settings, out_dir / "scores")
    report["stages"]["score"] = {**scored, "outcomes": decision_outcomes(out_dir / "scores" / "decisions.parquet",
                                                                        truth_path, scored["as_of_ms"])}
    report["graph"] = uri
    report["wall_s"] = round(time.monotonic() - started, 2)

    report_md = out_dir / "report.md"
    report["report_md"] = str(report_md)
    report_md.write_text(render_report(report))
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    log.info("demo report written to %s", report_md)
    return report


def decision_outcomes(decisions_path: Path, truth_path: Path, as_of_ms: int) -> dict[str, Any]:
    """Decisions against ground truth: true fraudsters blocked / sent to review / allowed."""
    import pandas as pd

    from .label_stage import truth_as_of

    decisions = pd.read_parquet(decisions_path)
    truth = truth_as_of(pd.read_parquet(truth_path), as_of_ms)
    is_fraud = decisions["customer_id"].map(truth).fillna(False).astype(bool)
    out = {"true_fraudsters": int(is_fraud.sum())}
    for d in ("block", "review", "allow"):
        mask = decisions["decision"] == d
        out[d] = {"customers": int(mask.sum()), "true_fraud": int((mask & is_fraud).sum())}
    flagged = decisions["decision"].isin(["block", "review"])
    out["precision_of_flags"] = round(float(is_fraud[flagged].mean()), 4) if flagged.any() else None
    out["recall_of_flags"] = round(float(flagged[is_fraud].mean()), 4) if is_fraud.any() else None
    return out


def settings_test_days(metrics: dict[str, Any]) -> int:
    return round((metrics["split"]["as_of_ms"] - metrics["split"]["t2_ms"]) / 86_400_000)


def render_report(report: dict[str, Any]) -> str:
    from training.train import metrics_table

    g = report["stages"]["generate"]
    r = g["rates"]
    e = report["stages"]["etl"]
    stats = e["graph_stats"]
    lines = [
        "# fraudgraph demo report", "",
        f"Generated {report['generated_at']} in {report['wall_s']} s. Graph: `{report['graph']}`.", "",
        "## Synthetic world", "",
        f"- customers: {r['customers']:,}; events: {r['events']['historical']:,} historical, "
        f"{r['events']['live']:,} live (cut-off {g['cutoff']})",
        f"- fraud prevalence {r['prevalence']:.2%} (ring {r['prevalence_by_type']['ring']:.2%}, "
        f"takeover {r['prevalence_by_type']['account_takeover']:.2%}, "
        f"synthetic {r['prevalence_by_type']['synthetic_identity']:.2%})",
        f"- fraud ever blocked {r['fraud_ever_blocked']:.1%}; median block delay {r['block_delay_days']['p50']} days; "
        f"false-block rate {r['false_block_rate']:.2%}", "",
        "## Spark ETL", "",
        f"- rows read: " + ", ".join(f"{k} {v:,}" for k, v in e["rows_read"].items()),
        f"- events rejected: {e['rejected']['total']:,}; wall time {e['wall_s']} s", "",
        "| label | count |", "| --- | ---: |",
        *[f"| {k} | {v:,} |" for k, v in {**stats["vertices"], **stats["edges"]}.items()],
    ]
    lab = report["stages"].get("labels")
    if lab:
        ev = lab["evaluation"]
        lines += ["", "## Labels", "",
                  f"As of {lab['as_of']}: " + ", ".join(f"{k} {v:,}" for k, v in lab["labels"].items()) + ".",
                  f"Raw label error rate {ev['raw_label_error_rate']:.3%}; cleaned (known labels) "
                  f"{ev['clean_label_error_rate']:.3%}; missed fraud recovered by heuristics "
                  f"{ev['missed_fraud_recovered']:,} of {ev['raw_missed_fraud']:,}.", "",
                  "| heuristic | corrections | precision |", "| --- | ---: | ---: |",
                  *[f"| {k} | {v['corrections']:,} | {v['precision']:.1%} |" for k, v in ev["heuristics"].items()]]
    tr = report["stages"].get("train")
    if tr:
        m = tr["metrics"]
        sp = m["split"]
        lines += ["", "## Models", "",
                  f"Test split: customers who signed up in the last {settings_test_days(m)} days before as-of "
                  f"({sp['test']:,} with known labels, {sp['fraud']['test']} of them fraud; {sp['test_all']:,} "
                  "against ground truth).", "", *metrics_table(m["models"])]
        lines += ["", f"Decision threshold {m['threshold']:.4f} (chosen on validation for precision "
                  f"{m['target_precision']:.0%}). PR curves: `model/pr_curves.png`.", "",
                  "![precision-recall curves](model/pr_curves.png)"]
    sc = report["stages"].get("score")
    if sc:
        o = sc["outcomes"]
        lines += ["", "## Decisions", "", f"Model `{sc['model_version']}` over {sc['customers']:,} customers.", "",
                  "| decision | customers | true fraudsters |", "| --- | ---: | ---: |",
                  *[f"| {d} | {o[d]['customers']:,} | {o[d]['true_fraud']:,} |" for d in ("block", "review", "allow")],
                  "", f"{o['block']['true_fraud'] + o['review']['true_fraud']:,} of {o['true_fraudsters']:,} true "
                  f"fraudsters were blocked or sent to review (precision of flags "
                  f"{(o['precision_of_flags'] or 0):.1%}). These decisions cover every customer, including "
                  "those whose labels trained the model; the test split above measures new accounts."]
    return "\n".join(lines) + "\n"
