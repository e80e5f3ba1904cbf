"""The main job: every stage that exists, end to end, on the embedded default.

Stages: generate a synthetic world -> Spark ETL into an embedded SQLite
identity graph (plus snapshot and rejects) -> labels as of the historical
cut-off -> train the edge-feature-aware RGCN and its baselines -> score every
customer and decide block / review / allow -> replay the live event stream
through the real-time consumer (file source), which writes every event into
the graph and scores new and changed accounts as they arrive. Labels, models
and decisions are evaluated against the world's ground truth, which no stage
reads otherwise. Writes ``report.json`` and ``report.md`` under the output folder.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from fraudgraph.config import Settings
from fraudgraph.evaluation.live import decision_outcomes, live_outcomes
from fraudgraph.timeutil import DAY_MS

log = logging.getLogger(__name__)


def run_demo(settings: Settings, out_dir: Path) -> dict[str, Any]:
    from etl.load_identity_graph import run_etl

    from training.train import run_training

    from fraudgraph.scoring.batch import score_graph
    from fraudgraph.graph import open_graph
    from fraudgraph.labels.stage import run_labels
    from fraudgraph.ml.artifact import ModelArtifact
    from fraudgraph.timeutil import to_epoch_ms
    from etl.spark_session import build_spark_session
    from fraudgraph.synthetic.world import WorldGenerator
    from fraudgraph.synthetic.stats import describe_world

    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report: dict[str, Any] = {"generated_at": dt.datetime.now(dt.timezone.utc).isoformat(), "stages": {}}

    world_dir = out_dir / "world"
    shutil.rmtree(world_dir, ignore_errors=True)
    log.info("stage 1/6: generating a synthetic world of %d customers", settings.world.customers)
    t = time.monotonic()
    world = WorldGenerator(settings.world).generate(world_dir)
    rates = describe_world(world_dir)
    report["stages"]["generate"] = {**world, "rates": rates, "wall_s": round(time.monotonic() - t, 2)}

    graph_path = (out_dir / "graph.db").resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{graph_path}{suffix}").unlink(missing_ok=True)
    uri = f"sqlite:///{graph_path}"
    log.info("stage 2/6: Spark ETL into %s", uri)
    spark = build_spark_session(settings.spark)
    etl = run_etl(spark, settings, str(world_dir), uri, snapshot=str(out_dir / "snapshot"),
                  rejects=str(out_dir / "rejects"))
    with open_graph(uri, settings) as store:
        stats = store.stats()
    report["stages"]["etl"] = {**etl, "graph_stats": stats}

    log.info("stage 3/6: labels as of the cut-off %s", world["cutoff"])
    with open_graph(uri, settings) as store:
        labels = run_labels(store, to_epoch_ms(world["cutoff"]), out_dir / "labels", settings,
                            world_dir / "truth" / "ground_truth.parquet")
    report["stages"]["labels"] = labels

    log.info("stage 4/6: training rgcn_edge, rgcn and gbdt")
    model_dir = out_dir / "model"
    truth_path = world_dir / "truth" / "ground_truth.parquet"
    metrics = run_training(settings, out_dir / "snapshot", out_dir / "labels", model_dir, truth_path)
    report["stages"]["train"] = {"model_dir": str(model_dir), "metrics": metrics}

    log.info("stage 5/6: batch scoring and decisions")
    with open_graph(uri, settings) as store:
        scored = score_graph(store, ModelArtifact.load(model_dir), settings, out_dir / "scores")
    report["stages"]["score"] = {**scored, "outcomes": decision_outcomes(out_dir / "scores" / "decisions.parquet",
                                                                        truth_path, scored["as_of_ms"])}

    log.info("stage 6/6: replaying the live stream through the real-time consumer")
    report["stages"]["live"] = replay_live(settings, uri, model_dir, world_dir, out_dir / "live")
    report["graph"] = uri
    report["wall_s"] = round(time.monotonic() - started, 2)

    report_md = out_dir / "report.md"
    report["report_md"] = str(report_md)
    report_md.write_text(render_report(report))
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    log.info("demo report written to %s", report_md)
    return report


def replay_live(settings: Settings, uri: str, model_dir: Path, world_dir: Path, live_dir: Path) -> dict[str, Any]:
    """Run ``fraudgraph consume`` over ``world/live/events.jsonl`` and measure what it caught."""
    from serving.consumer import LiveConsumer
    from serving.ledger import Ledger
    from serving.sources import FileSource, JsonlSink

    from fraudgraph.graph import open_graph
    from fraudgraph.scoring.online import OnlineScorer
    from fraudgraph.ml.artifact import ModelArtifact

    shutil.rmtree(live_dir, ignore_errors=True)
    live_dir.mkdir(parents=True)
    events_path = world_dir / "live" / "events.jsonl"
    t = time.monotonic()
    ledger = Ledger(live_dir / "consumer-ledger.db")
    with open_graph(uri, settings) as store:
        scorer = OnlineScorer(store, ModelArtifact.load(model_dir), settings)
        consumer = LiveConsumer(store, scorer, settings, ledger, JsonlSink(live_dir / "decisions.jsonl"),
                                JsonlSink(live_dir / "rejects.jsonl"))
        source = FileSource(events_path)
        stats = consumer.run(source, install_signals=False)
        source.close()
        consumer.metrics.close()
    ledger.close()
    wall = time.monotonic() - t
    out = {"events": stats["events_in"], "rejected": stats["rejected"], "duplicates": stats["duplicates"],
           "decisions": stats["decisions"], "wall_s": round(wall, 2),
           "events_per_s": round(stats["events_in"] / wall, 1) if wall else None,
           "latency_ms": stats["latency_ms"], "decisions_path": str(live_dir / "decisions.jsonl")}
    out.update(live_outcomes(events_path, live_dir / "decisions.jsonl", world_dir / "truth" / "ground_truth.parquet"))
    return out


def settings_test_days(metrics: dict[str, Any]) -> int:
    return round((metrics["split"]["as_of_ms"] - metrics["split"]["t2_ms"]) / DAY_MS)


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
        "- rows read: " + ", ".join(f"{k} {v:,}" for k, v in e["rows_read"].items()),
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
    live = report["stages"].get("live")
    if live:
        lines += ["", "## Live stream through the real-time consumer", "",
                  f"{live['events']:,} live events replayed through `fraudgraph consume` in {live['wall_s']} s "
                  f"({live['events_per_s']:,} events/s; end-to-end p50 {live['latency_ms']['p50']} ms, "
                  f"p99 {live['latency_ms']['p99']} ms per micro-batch); {live['rejected']:,} rejected, "
                  f"{live['duplicates']:,} duplicates. Decisions: "
                  + ", ".join(f"{d} {n:,}" for d, n in live["decisions"].items()) + ".", "",
                  "| fraud starting in the stream | accounts | blocked | review | missed | events to decision "
                  "p50 / p90 | caught on first event |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for label, name in (("new_ring_accounts", "new ring accounts"), ("takeovers", "account takeovers")):
            o = live[label]
            q = o["events_to_decision"]
            lines.append(f"| {name} | {o['in_stream']:,} | {o['blocked']:,} | {o['reviewed']:,} | {o['missed']:,} | "
                         f"{q['p50'] if q['p50'] is not None else '-'} / {q['p90'] if q['p90'] is not None else '-'}"
                         f" | {q['first_event']:,} |")
        lines += ["", "| day | block | review | allow |", "| --- | ---: | ---: | ---: |",
                  *[f"| {day} | {c['block']:,} | {c['review']:,} | {c['allow']:,} |"
                    for day, c in live["decisions_per_day"].items()]]
    return "\n".join(lines) + "\n"
