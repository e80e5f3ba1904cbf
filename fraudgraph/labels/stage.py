"""The labels stage: read the graph, clean the labels as of a time, write them out and back.

``fraudgraph labels --graph URI --as-of TS --out DIR [--truth FILE]`` writes
``labels.parquet``, ``audit.parquet``, ``report.json`` and ``report.md`` and
sets ``clean_label``, ``label_source``, ``label_as_of`` on every visible customer
vertex (idempotently: the same as-of gives the same properties; ``label`` itself is a
reserved Gremlin key).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from fraudgraph.config import LabelSettings, Settings
from fraudgraph.graph import CustomerUpsert, IdentityGraph
from fraudgraph.labels.cleaning import LabelResult, clean_labels
from fraudgraph.labels.maturity import FRAUD, LEGIT, UNKNOWN
from fraudgraph.timeutil import DAY_MS

log = logging.getLogger(__name__)


def truth_as_of(truth: pd.DataFrame, as_of_ms: int) -> pd.Series:
    """Ground truth at as-of per customer: fraud only once the fraud had started."""
    start = pd.to_datetime(truth["fraud_start_ts"], utc=True)
    start_ms = start.dt.as_unit("ms").astype("int64").where(start.notna())
    is_fraud = truth["is_fraud_true"].astype(bool) & start_ms.notna() & (start_ms <= as_of_ms)
    return pd.Series(is_fraud.to_numpy(), index=truth["customer_id"].astype(str))


def evaluate_labels(result: LabelResult, truth: pd.DataFrame) -> dict[str, Any]:
    """Raw vs cleaned label quality against ground truth; precision of each heuristic."""
    t = truth_as_of(truth, result.as_of_ms)
    lab = result.labels.set_index("customer_id")
    t = t.reindex(lab.index).fillna(False).astype(bool)
    raw = lab["raw_is_fraud"].astype(bool)
    known = lab["label"].isin([FRAUD, LEGIT])
    clean = lab["label"] == FRAUD
    raw_wrong = raw != t
    heur = {}
    for rule in sorted({c.rule for c in result.corrections}):
        ids = sorted({c.customer_id for c in result.corrections if c.rule == rule})
        tp = int(t.reindex(ids).sum())
        heur[rule] = {"corrections": len(ids), "true_fraud": tp, "precision": round(tp / len(ids), 4) if ids else None}
    missed = (~raw) & t  # fraud the blocks never caught (as of)
    corrected = set(c.customer_id for c in result.corrections)
    recovered = int(missed[missed].index.isin(list(corrected)).sum())
    fixed_by = lab.loc[raw_wrong & ((lab["label"] == UNKNOWN) | ((lab["label"] == FRAUD) == t)), "source"]
    return {
        "customers": int(len(lab)),
        "truth_fraud": int(t.sum()),
        "raw_label_errors": int(raw_wrong.sum()),
        "raw_label_error_rate": round(float(raw_wrong.mean()), 5),
        "raw_false_fraud": int((raw & ~t).sum()),
        "raw_missed_fraud": int(missed.sum()),
        "clean_label_error_rate": round(float((clean[known] != t[known]).mean()), 5) if known.any() else None,
        "clean_known_labels": int(known.sum()),
        "clean_false_fraud": int((clean & known & ~t).sum()),
        "clean_missed_fraud_among_known": int((~clean & known & t).sum()),
        "raw_errors_fixed_by_source": {k: int(v) for k, v in fixed_by.value_counts().sort_index().items()},
        "missed_fraud_recovered": recovered,
        "missed_fraud_recovered_share": round(recovered / int(missed.sum()), 4) if missed.any() else None,
        "heuristics": heur,
    }


def why_no_fraud_label(
    customers: pd.DataFrame, labels: pd.DataFrame, as_of_ms: int, settings: LabelSettings
) -> str | None:
    """When no customer is labelled fraud: why (maturity window vs the span of block history, appeals),
    and which setting or input would change it; None when some fraud label exists."""
    if (labels["label"] == FRAUD).any():
        return None
    blocked = pd.to_numeric(customers.get("blocked_at", pd.Series(dtype=float)), errors="coerce")
    blocked = blocked[blocked <= as_of_ms]
    if blocked.empty:
        return (
            "no fraud label: no block at or before as-of. Load the blocks table (the ETL's blocks input) "
            "or label as of a later time"
        )
    ages = (as_of_ms - blocked) / DAY_MS
    appealed = int((labels["source"] == "appealed").sum())
    maturity = settings.maturity_days
    if ages.max() < maturity:
        return (
            f"no fraud label matured: all {len(blocked):,} blocks are younger than labels.maturity_days="
            f"{maturity:g} (oldest {ages.max():.1f} days, newest {ages.min():.1f} days at as-of). Set "
            f"labels.maturity_days below {ages.max():.1f} (fraudgraph profile suggests a value for this data), "
            "or label as of a later time"
        )
    return (
        f"no fraud label: {len(blocked):,} blocks, {int((ages >= maturity).sum()):,} older than "
        f"labels.maturity_days={maturity:g}, but {appealed:,} blocked customers appealed within "
        f"labels.appeal_window_days={settings.appeal_window_days:g} and wait for the appeal's outcome"
    )


def run_labels(
    store: IdentityGraph,
    as_of_ms: int,
    out_dir: str | Path,
    settings: Settings,
    truth_path: str | Path | None = None,
    *,
    write_back: bool = True,
) -> dict[str, Any]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    customers, links = store.customers_frame(), store.links_frame()
    result = clean_labels(customers, links, as_of_ms, settings.labels)
    labels = result.labels.assign(as_of=pd.to_datetime(result.labels["as_of"], unit="ms", utc=True))
    labels.to_parquet(out / "labels.parquet", index=False)
    result.audit.assign(as_of=pd.to_datetime(result.audit["as_of"], unit="ms", utc=True)).to_parquet(
        out / "audit.parquet", index=False
    )
    if write_back:
        updates = {
            r.customer_id: {"clean_label": r.label, "label_source": r.source, "label_as_of": int(as_of_ms)}
            for r in result.labels.itertuples(index=False)
        }
        store.upsert_customers(CustomerUpsert.many(updates))
    counts = result.labels.groupby(["label", "source"]).size()
    report: dict[str, Any] = {
        "as_of": labels["as_of"].iloc[0].isoformat() if len(labels) else None,
        "as_of_ms": as_of_ms,
        "customers": int(len(result.labels)),
        "labels": {k: int(v) for k, v in result.labels["label"].value_counts().sort_index().items()},
        "by_source": {f"{lbl}/{src}": int(n) for (lbl, src), n in counts.items()},
        "audit_rows": int(len(result.audit)),
        "heuristics": {
            rule: {"corrections": len({c.customer_id for c in result.corrections if c.rule == rule})}
            for rule in sorted({c.rule for c in result.corrections})
        },
    }
    why = why_no_fraud_label(customers, result.labels, as_of_ms, settings.labels)
    if why:
        log.warning("%s", why)
        report["no_fraud_label"] = why
    if truth_path:
        evaluation = evaluate_labels(result, pd.read_parquet(truth_path))
        report["evaluation"] = evaluation
        report["raw_label_error_rate"] = evaluation["raw_label_error_rate"]
        report["clean_label_error_rate"] = evaluation["clean_label_error_rate"]
        report["heuristics"] = evaluation["heuristics"]
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(render_label_report(report))
    return report


def render_label_report(r: dict[str, Any]) -> str:
    lines = [
        "# Label report",
        "",
        f"As of {r['as_of']}: {r['customers']:,} customers visible.",
        "",
        "| label / source | customers |",
        "| --- | ---: |",
    ]
    lines += [f"| {k} | {v:,} |" for k, v in r["by_source"].items()]
    if r.get("no_fraud_label"):
        lines += ["", f"**{r['no_fraud_label']}.**"]
    ev = r.get("evaluation")
    if ev:
        lines += [
            "",
            "## Against ground truth",
            "",
            f"- raw label error rate {ev['raw_label_error_rate']:.3%} ({ev['raw_label_errors']:,} wrong: "
            f"{ev['raw_false_fraud']:,} blocked legitimate customers, {ev['raw_missed_fraud']:,} fraudsters "
            f"never blocked)",
            f"- clean label error rate (known labels only) {ev['clean_label_error_rate']:.3%} over "
            f"{ev['clean_known_labels']:,} labels",
            f"- missed fraud recovered by heuristics: {ev['missed_fraud_recovered']:,} "
            f"({(ev['missed_fraud_recovered_share'] or 0):.1%})",
            "",
            "| heuristic | corrections | truly fraud | precision |",
            "| --- | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {k} | {v['corrections']:,} | {v['true_fraud']:,} | {v['precision']:.1%} |"
            for k, v in ev["heuristics"].items()
        ]
        lines += ["", "Raw errors fixed (made correct or set aside as unknown), by the rule that decided:", ""]
        lines += [f"- {k}: {v:,}" for k, v in ev["raw_errors_fixed_by_source"].items()]
    return "\n".join(lines) + "\n"
