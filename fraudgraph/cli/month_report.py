"""The simulated month's ``report.md`` (:mod:`fraudgraph.cli.month`): one row per retrain period with the
model in production, its live figures on that period, the labels matured by its end, drift, and what
the gate decided at its end and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fraudgraph.lifecycle.gate import GATE_FIGURES


def render_month(report: dict[str, Any], path: Path) -> None:
    """Write the month's Markdown report to ``path``."""
    periods = report["periods"]
    first = report["first_model"]
    lines = [
        "# A month of operation, simulated",
        "",
        f"The live stream in {len(periods)} periods; the model in production decides each period, then the "
        "retraining job runs on the graph the consumer wrote and the gate decides whether its candidate "
        f"replaces production. Wall time {report['wall_s']:.0f} s on this machine "
        f"({_stage_times(report['stage_wall_s'])}). The first model: version {first['version']}, "
        f"{first['reason']}.",
        "",
        "Live precision and recall are judged against the world's ground truth (reporting only): precision "
        "= flagged customers who were active fraudsters / flagged customers; recall = active fraudsters of "
        "the period flagged in it. Labels: the cleaned labels as of the period's end (what the retrain "
        "learned from). Drift: PSI of the period's decisions against the deciding model's training "
        "reference, alert at the stated threshold.",
        "",
        "| period | model | events | block / review / allow / blocked | live precision | live recall "
        "| false flags per 10k | fraud labels (matured) | score PSI | highest feature PSI | gate at the end |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in periods:
        live, replay, drift = row["live"], row["replay"], row.get("drift")
        d = replay["decisions"]
        lines.append(
            f"| {row['period']} (days {row['days'][0]}-{row['days'][1]}) | v{row['model_version']} "
            f"| {replay['events']:,} | {d['block']} / {d['review']} / {d['allow']:,} / {d['blocked']} "
            f"| {_pct(live['precision'])} | {_pct(live['recall'])} ({live['caught']}/{live['active_fraudsters']}) "
            f"| {_num(live['false_flags_per_10k_legit'])} | {_labels(row.get('labels'))} "
            f"| {_drift_score(drift)} | {_drift_feature(drift)} | {_gate(row.get('retrain'))} |"
        )
    lines += ["", "## The consumer's part of each period", ""]
    lines += [
        "Each period's first events go through the real consumer step by step; the rest are decided in bulk "
        "from the point-in-time link history, and the two are compared on the consumer's part.",
        "",
        "| period | consumer events | bulk events | decisions compared | equal | replay wall s |",
        "|---|---|---|---|---|---|",
    ]
    for row in periods:
        replay = row["replay"]
        parts, parity = replay["parts"], replay["parity"] or {}
        lines.append(
            f"| {row['period']} | {parts['consumer']['events']:,} | {parts['bulk']['events']:,} "
            f"| {parity.get('matched', 0):,} | {'yes' if parity.get('equal') else 'no'} | {replay['wall_s']:.1f} |"
        )
    lines += ["", "## Registry at the end", "", "| version | stage | changes |", "|---|---|---|"]
    for v in report["registry"]:
        changes = "; ".join(f"{h['from'] or 'new'} -> {h['to']} ({h['reason']})" for h in v["history"]) or "-"
        lines.append(f"| {v['version']} | {v['stage']} | {changes} |")
    path.write_text("\n".join(lines) + "\n")


def _stage_times(stages: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.0f} s" for name, seconds in stages.items())


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _labels(labels: dict[str, Any] | None) -> str:
    return "-" if not labels else f"{labels.get('fraud', 0)} fraud / {labels.get('legit', 0):,} legitimate"


def _drift_score(drift: dict[str, Any] | None) -> str:
    if not drift or drift["score_psi"] is None:
        return "-"
    return f"{drift['score_psi']:.3f}" + (" (alert)" if drift["score_psi"] >= drift["alert_psi"] else "")


def _drift_feature(drift: dict[str, Any] | None) -> str:
    if not drift or not drift["top_feature"]:
        return "-"
    top = drift["top_feature"]
    return f"{top['feature']} {top['psi']:.3f} ({drift['features_at_alert']} at or above {drift['alert_psi']:g})"


def _gate(retrain: dict[str, Any] | None) -> str:
    """What the retrain at the period's end registered and what the gate decided, with its reasons."""
    if retrain is None:
        return "no retrain (the month ends)"
    promotion = retrain.get("promotion") or {}
    version = f"v{retrain['version']}" + ("" if retrain["trained"] else " (already trained on these data)")
    if retrain.get("warm_start_from") is not None:
        version += f" (warm start from v{retrain['warm_start_from']})"
    figures = promotion.get("figures") or {}
    mine, theirs = figures.get("candidate") or {}, figures.get("production") or {}
    shown = ", ".join(
        f"{k} {mine[k]:.3f} vs {theirs[k]:.3f}"
        for k in GATE_FIGURES
        if mine.get(k) is not None and theirs.get(k) is not None
    )
    against = f" (candidate vs production on {mine.get('fraud_customers', 0)} labelled fraud: {shown})" if shown else ""
    if promotion.get("promoted"):
        return f"{version} promoted: {promotion.get('reason')}{against}"
    reasons = "; ".join(promotion.get("regressions") or []) or promotion.get("reason", "")
    return f"{version} refused: {reasons}{against}"
