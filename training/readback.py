"""How easy is a world? Every input the GBDT baseline reads, one at a time, against ground truth.

``fraudgraph world-check --world DIR [--out DIR]``

A synthetic world is a fair measuring stick only while no single planted signal gives fraud away.
This job loads the world's historical tables (the pandas reference of the ETL, no Spark), takes
the decision points of the test window (the last ``training.split.test_days`` before the cut-off,
at most ``training.examples.max_per_customer`` per customer, seeded), builds their point-in-time
features exactly as training does and reports, per customer (its highest or lowest value over its
decision points, whichever ranks fraud higher), the PR-AUC against ground truth of:

- every customer-level input of the GBDT baseline (:func:`fraudgraph.ml.baselines.tabular_features`);
- each day-one rule and the day-one rules' score (rules fired);
- every raw field of the world's tables, the per-customer statistics a fraud team would compute from
  them, pairs of those, and the order of rows and ids (:mod:`fraudgraph.evaluation.field_check`).

The world is too easy while any single input exceeds 0.35 or the rules exceed 0.5 (issue
thresholds; ``docs/synthetic-world.md`` keeps the table of the default world).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from etl.reference import reference_etl
from fraudgraph.config import Settings
from fraudgraph.evaluation.field_check import field_check
from fraudgraph.evaluation.ranking import ranking_metrics
from fraudgraph.event_tags import EventTagger
from fraudgraph.graph.history import LinkHistory
from fraudgraph.identity import IdentifierHasher
from fraudgraph.ml.baselines import tabular_features
from fraudgraph.ml.features import build_graph_tensors
from fraudgraph.scoring.day_one import DayOneRules
from fraudgraph.scoring.triggers import decision_points
from fraudgraph.timeutil import DAY_MS, to_epoch_ms
from training.examples import sample_points, truth_at_points

SINGLE_INPUT_LIMIT = 0.35
RULES_LIMIT = 0.5


def world_readback(world_dir: str | Path, settings: Settings) -> dict[str, Any]:
    """PR-AUC against ground truth of every single input and of the day-one rules (see the module docstring)."""
    world = Path(world_dir)
    manifest = json.loads((world / "manifest.json").read_text())
    as_of = to_epoch_ms(manifest["cutoff"])
    ref = reference_etl(world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    history = LinkHistory(ref["link_events"], ref["customers"])
    cfg = settings.training
    points = decision_points(ref["link_events"], settings.consumer.score_on)
    start = as_of - int(cfg.split.test_days * DAY_MS)
    points = points.loc[(points["ts"] >= start) & (points["ts"] <= as_of)]
    points = sample_points(points, cfg.examples.max_per_customer, cfg.seed).reset_index(drop=True)
    truth = truth_at_points(points, pd.read_parquet(world / "truth" / "ground_truth.parquet"))
    cap = settings.graph.neighbourhood_fanout_cap
    inputs = history.scoring_inputs(points["customer_id"], points["ts"], cap)
    assert inputs.target_ids is not None  # decision points side by side always carry them
    tensors = build_graph_tensors(inputs, fanout_cap=cap)
    has = inputs.target_ids >= 0
    table, names = tabular_features(tensors, tensors.index_of(inputs.target_ids[has]))
    frame = pd.DataFrame(table, columns=names)
    rules = DayOneRules(settings.rules.day_one)
    fired = rules.fired(inputs).loc[has].reset_index(drop=True)
    frame = pd.concat([frame, fired.astype(float).add_prefix("rule_")], axis=1)
    frame["rules_fired"] = fired.sum(axis=1).to_numpy(float)
    unit = pd.DataFrame(
        {"customer_id": points.loc[has, "customer_id"].to_numpy(), "is_fraud": truth.loc[has, "is_fraud"].to_numpy()}
    )
    grouped = pd.concat([unit, frame], axis=1).groupby(["customer_id", "is_fraud"])
    highest, lowest = grouped.max(), grouped.min()
    y = highest.index.get_level_values("is_fraud").to_numpy()
    rows = []
    for col in frame.columns:
        up = ranking_metrics(y, highest[col].to_numpy())["pr_auc"] or 0.0
        down = ranking_metrics(y, -lowest[col].to_numpy())["pr_auc"] or 0.0
        rows.append({"input": col, "pr_auc": max(up, down), "direction": "high" if up >= down else "low"})
    inputs_table = sorted((r for r in rows if not r["input"].startswith("rule")), key=lambda r: -r["pr_auc"])
    rule_rows = [r for r in rows if r["input"].startswith("rule")]
    top: dict[str, Any] = inputs_table[0] if inputs_table else {"input": None, "pr_auc": 0.0}
    rules_pr = next(r["pr_auc"] for r in rule_rows if r["input"] == "rules_fired")
    population = pd.DataFrame({"customer_id": points["customer_id"].astype(str), "is_fraud": truth["is_fraud"]})
    population = population.groupby("customer_id", as_index=False)["is_fraud"].max()
    fields = field_check(world, population, as_of)
    return {
        "world": str(world),
        "seed": manifest.get("seed"),
        "as_of": manifest["cutoff"],
        "test_days": cfg.split.test_days,
        "customers": int(len(y)),
        "fraudsters": int(y.sum()),
        "prevalence": round(float(y.mean()), 4) if len(y) else None,
        "inputs": inputs_table,
        "rules": rule_rows,
        "max_single_input": top,
        "rules_pr_auc": rules_pr,
        "too_easy": bool(top["pr_auc"] > SINGLE_INPUT_LIMIT or rules_pr > RULES_LIMIT or fields["gives_fraud_away"]),
        "raw_fields": fields,
    }


def render_readback(r: dict[str, Any], top: int = 15) -> str:
    lines = [
        f"# World read-back: seed {r['seed']}",
        "",
        f"Test window: the last {r['test_days']:g} days before {r['as_of']}; {r['customers']:,} customers, "
        f"{r['fraudsters']:,} fraudsters (prevalence {r['prevalence']:.2%}). PR-AUC against ground truth, one "
        "input at a time, per customer (highest or lowest value over its decision points).",
        "",
        f"Highest single input: `{r['max_single_input']['input']}` {r['max_single_input']['pr_auc']:.3f} "
        f"(limit {SINGLE_INPUT_LIMIT}); day-one rules {r['rules_pr_auc']:.3f} (limit {RULES_LIMIT}): "
        f"**{'too easy' if r['too_easy'] else 'within the limits'}**.",
        "",
        "| day-one rule | PR-AUC |",
        "| --- | ---: |",
        *[f"| {x['input']} | {x['pr_auc']:.3f} |" for x in r["rules"]],
        "",
        f"| input (top {top} of {len(r['inputs'])}) | PR-AUC | fraud ranks |",
        "| --- | ---: | --- |",
        *[f"| {x['input']} | {x['pr_auc']:.3f} | {x['direction']} |" for x in r["inputs"][:top]],
        *(render_field_check(r["raw_fields"]) if r.get("raw_fields") else []),
    ]
    return "\n".join(lines) + "\n"


def render_field_check(r: dict[str, Any], top: int = 12) -> list[str]:
    verdict = "**gives fraud away**" if r["gives_fraud_away"] else "**no give-away found**"
    lines = [
        "",
        "## Every field, statistic, pair and order",
        "",
        f"{r['population']:,} customers of the test population, {r['fraudsters']:,} fraudsters (base rate "
        f"{r['base_rate']:.2%}). Highest field `{r['max_field']['field']}` {r['max_field']['pr_auc']:.3f}, highest "
        f"pair {r['max_pair']['fields']} {r['max_pair']['pr_auc']:.3f} (limit {r['field_limit']}): {verdict}.",
        "",
        f"| field (top {top} of {len(r['fields'])}) | kind | PR-AUC |",
        "| --- | --- | ---: |",
        *[f"| {x['field']} | {x['kind']} | {x['pr_auc']:.3f} |" for x in r["fields"][:top]],
        "",
        "| pair (top 5) | PR-AUC |",
        "| --- | ---: |",
        *[f"| {' + '.join(x['fields'])} | {x['pr_auc']:.3f} |" for x in r["pairs"][:5]],
        "",
        "| order | PR-AUC | limit (99th percentile of shuffled) |",
        "| --- | ---: | ---: |",
        *[f"| {x['field']} | {x['pr_auc']:.3f} | {x['limit']:.3f} |" for x in r["orders"]],
    ]
    if r["label_fields"]:
        lines += [
            "",
            "| label column, among blocked customers | PR-AUC of finding the false blocks | base rate | gain |",
            "| --- | ---: | ---: | ---: |",
            *[
                f"| {x['field']} | {x['pr_auc']:.3f} | {x['base_rate']:.3f} | {x['gain']:.3f} |"
                for x in r["label_fields"]
            ],
        ]
    return lines
