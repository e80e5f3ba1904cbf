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

    from .graph import open_graph
    from .online import OnlineScorer
    from .scoring import ModelArtifact

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


def live_outcomes(events_path: Path, decisions_path: Path, truth_path: Path) -> dict[str, Any]:
    """Decisions per day, and for fraud that starts in the live stream (new ring accounts, takeovers):
    how many were blocked or sent to review, and after how many of their events (1 = the first)."""
    import pandas as pd

    events = pd.read_json(events_path, lines=True, convert_dates=False)[["event_id", "customer_id", "ts"]]
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    decisions = pd.read_json(decisions_path, lines=True, convert_dates=False) if decisions_path.stat().st_size \
        else pd.DataFrame(columns=["event_id", "customer_id", "decision"])
    by_day = pd.crosstab(events.set_index("event_id").loc[decisions["event_id"], "ts"].dt.strftime("%Y-%m-%d")
                         .to_numpy(), decisions["decision"].to_numpy()) if len(decisions) else pd.DataFrame()
    per_day = {day: {d: int(row.get(d, 0)) for d in ("block", "review", "allow")} for day, row in by_day.iterrows()}

    truth = pd.read_parquet(truth_path)
    start = events["ts"].min()
    live_fraud = truth.loc[truth["is_fraud_true"] & (truth["fraud_start_ts"] >= start)
                           & truth["fraud_type"].isin(["ring", "account_takeover"])]
    flagged = decisions.loc[decisions["decision"].isin(["block", "review"])]
    out: dict[str, Any] = {"decisions_per_day": per_day}
    for kind, label in (("ring", "new_ring_accounts"), ("account_takeover", "takeovers")):
        group = live_fraud.loc[live_fraud["fraud_type"] == kind]
        caught, events_to_catch = {"block": 0, "review": 0}, []
        for cid, fraud_start in zip(group["customer_id"], group["fraud_start_ts"]):
            mine = events.loc[(events["customer_id"] == cid) & (events["ts"] >= fraud_start)]
            if mine.empty:
                continue
            hit = flagged.loc[flagged["event_id"].isin(set(mine["event_id"]))]
            if hit.empty:
                continue
            first = mine.reset_index(drop=True)
            position = first.index[first["event_id"].isin(set(hit["event_id"]))][0] + 1
            caught[hit.iloc[0]["decision"]] += 1
            events_to_catch.append(int(position))
        active = int(sum(((events["customer_id"] == cid) & (events["ts"] >= fs)).any()
                         for cid, fs in zip(group["customer_id"], group["fraud_start_ts"])))
        out[label] = {"in_stream": active, "blocked": caught["block"], "reviewed": caught["review"],
                      "missed": active - caught["block"] - caught["review"],
                      "events_to_decision": _quantiles(events_to_catch)}
    return out


def _quantiles(values: list[int]) -> dict[str, float | None]:
    import numpy as np

    if not values:
        return {"p50": None, "p90": None, "max": None, "first_event": 0}
    arr = np.asarray(values)
    return {"p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)), "max": int(arr.max()),
            "first_event": int((arr == 1).sum())}


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
