"""The main job's report: ``report.md`` for one seed (the live stream first, then the offline table and
every stage); the summary over several seeds is :mod:`fraudgraph.cli.seed_summary`."""

from __future__ import annotations

from typing import Any

from fraudgraph.cli.demo_report_sections import (
    decision_lines,
    label_lines,
    live_detail_lines,
    model_lines,
    world_and_etl_lines,
)
from fraudgraph.evaluation.blocked_neighbours import render_blocked_neighbour_lines


def _parts_words(live: dict[str, Any]) -> str:
    parts = live.get("parts")
    if not parts or not parts["bulk"].get("first_line"):
        return "every event through the real consumer"
    verdict = "equal" if (live.get("parity") or {}).get("equal") else "NOT equal"
    return (
        f"lines 1-{parts['consumer']['last_line']:,} through the real consumer, the rest in bulk from the "
        f"point-in-time history, {verdict} to the consumer's on its part"
    )


def live_headline(live: dict[str, Any] | None) -> list[str]:
    """The headline: the live stream replayed through the real consumer, judged against ground truth."""
    if not live or "precision" not in live:
        return []
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    rows = [
        ("all fraud", live["active_fraudsters"], live["caught"], live["recall"], live["caught_before_first_payment"])
    ]
    for t, name in (
        ("ring", "ring members"),
        ("synthetic_identity", "synthetic identities"),
        ("account_takeover", "account takeovers"),
    ):
        g = live["recall_by_fraud_type"][t]
        rows.append((name, g["active"], g["caught"], g["recall"], g["caught_before_first_payment"]))
    g = live["new_ring_accounts_caught"]
    rows.append(
        (
            "new ring accounts (signed up in the stream)",
            g["active"],
            g["caught"],
            g["recall"],
            g["caught_before_first_payment"],
        )
    )
    ev, hours = live["events_to_first_flag"], live["hours_to_first_flag"]
    return [
        "## Headline: the live stream, decided as the real-time consumer decides it",
        "",
        f"{live['events']:,} live events decided as the consumer decides them (steps of at most "
        f"{live.get('max_batch_span_s', '-')} s of event time; {_parts_words(live)}), decisions judged against "
        "ground truth. "
        f"**Precision of flags {pct(live['precision'])}** ({live['caught']:,} of {live['flagged_customers']:,} "
        f"flagged customers were fraudsters); **recall {pct(live['recall'])}** of {live['active_fraudsters']:,} "
        f"fraudsters active in the stream (an identity event after their fraud began; "
        f"{live.get('label_events_only_fraudsters', 0):,} more had only block, unblock or appeal events, which the "
        f"consumer never scores); {live['false_flags_per_10k_legit']} false flags per 10,000 legitimate "
        f"active customers ({live['false_flags']:,} of {live['legit_active_customers']:,}).",
        "",
        "| fraudsters active in the stream | active | caught | recall | caught by their first payment |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[f"| {n} | {a:,} | {c:,} | {pct(r)} | {pct(b)} |" for n, a, c, r, b in rows],
        "",
        f"From a caught fraudster's first fraud event to its first flag: events p50 {ev['p50']} / p90 {ev['p90']}, "
        f"hours p50 {hours['p50']} / p90 {hours['p90']}.",
        "",
        *threshold_transfer_lines(live),
        *models_on_stream_lines(
            live.get("models"), (live.get("blocked_neighbours") or {}).get("blocked_neighbour_rule")
        ),
        *operating_point_lines(live.get("operating_points") or []),
    ]


MODEL_WORDS = {
    "deployed": "`rgcn_edge` deployed (refit on every label)",
    "gbdt_deployed": "`gbdt` refit on the same labels",
    "rgcn_edge_validated": "`rgcn_edge` (training split only)",
    "rgcn": "`rgcn` (training split only)",
    "gbdt": "`gbdt` (training split only)",
    "gbdt_own": "`gbdt` on the customer's own features only (training split only)",
    "guilt_by_association": "guilt by association (nothing fitted)",
    "rules": "day-one rules",
}


def models_on_stream_lines(models: dict[str, Any] | None, rule: dict[str, Any] | None = None) -> list[str]:
    """Every model scored on the same live decisions, compared at the same false-flag budgets, and the
    plain blocked-neighbour ``rule`` (one operating point: its recall at its own budget)."""
    if not models or not models.get("models"):
        return []
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    rows = models["models"]
    budgets = list(next(iter(rows.values()))["at_budget"])
    head = " | ".join(f"recall at {rows[next(iter(rows))]['at_budget'][b]['false_flags_per_10k']:g} / 10k ({b})"
                      for b in budgets)  # fmt: skip
    return [
        "Every model on the same live decisions (scored in the bulk replay from the same point-in-time "
        "inputs; each at the threshold that keeps the false flags per 10,000 legitimate active customers of the "
        "deployed model, and of the plain blocked-neighbour rule, read off truth to compare, never deployed):",
        "",
        f"| model | {head} | best recall at precision 85 % |",
        "| --- | " + " | ".join("---:" for _ in budgets) + " | ---: |",
        *[
            f"| {MODEL_WORDS.get(name, name)} | "
            + " | ".join(pct(m["at_budget"][b]["recall"]) for b in budgets)
            + f" | {pct(m['best_at_precision_85']['recall'])} |"
            for name, m in rows.items()
        ],
        *(
            [
                "| plain rule: shares a device or card with a customer whose block stands | "
                + " | ".join(pct(rule["recall"]) if b == "blocked_neighbour_rule" else "-" for b in budgets)
                + f" | {'-' if (rule.get('precision') or 0) < 0.85 else pct(rule['recall'])} |"
            ]
            if rule
            else []
        ),
        "",
    ]


def threshold_transfer_lines(live: dict[str, Any]) -> list[str]:
    """The deployed threshold's recall beside the best recall any threshold reaches at 85 % precision on
    the same stream: how well a threshold chosen on labels transfers (read off truth, never used)."""
    best = live.get("best_at_precision_85")
    if not best:
        return []
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    at = f" (at threshold {best['threshold']:.4f})" if best.get("threshold") is not None else ""
    return [
        f"Threshold transfer: the deployed threshold's recall {pct(live['recall'])} at precision "
        f"{pct(live['precision'])}; the best recall any threshold reaches on this stream at precision 85 % or "
        f"more is {pct(best['recall'])}{at}.",
        "",
    ]


def operating_point_lines(points: list[dict[str, Any]]) -> list[str]:
    """The same replay's scores read at other thresholds: the ranking, for whoever sets ``rules.threshold``."""
    if not points:
        return []
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    return [
        "The same decisions' scores read at other thresholds (what the ranking would give; the deployed "
        "threshold is chosen on validation, never on this table):",
        "",
        "| threshold | flagged | precision | recall | false flags / 10k legit |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {p['threshold']:.2f} | {p['flagged']:,} | {pct(p['precision'])} | {pct(p['recall'])} | "
            f"{p['false_flags_per_10k_legit']} |"
            for p in points
        ],
        "",
    ]


def render_report(report: dict[str, Any]) -> str:
    """``report.md`` of one seed: the live stream first, then one section per stage that ran."""
    stages = report["stages"]
    lines = [
        "# fraudgraph demo report",
        "",
        f"Generated {report['generated_at']} in {report['wall_s']} s. Graph: `{report['graph']}`.",
        "",
        *live_headline(stages.get("live")),
        *render_blocked_neighbour_lines((stages.get("live") or {}).get("blocked_neighbours")),
        *figure_lines(report.get("figures"), stages.get("live")),
        *world_and_etl_lines(stages["generate"], stages["etl"]),
    ]
    for stage, section in (
        ("labels", label_lines),
        ("train", model_lines),
        ("score", decision_lines),
        ("live", live_detail_lines),
        ("registry", registry_lines),
    ):
        if stages.get(stage):
            lines += section(stages[stage])
    return "\n".join(lines) + "\n"


def figure_lines(files: dict[str, str] | None, live: dict[str, Any] | None) -> list[str]:
    """The pictures beside the headline (PNG files next to report.md)."""
    if not files:
        return []
    lines = ["", "## Pictures", ""]
    captions = {
        "live_pr": "The live stream: the deployed model's precision and recall over the customers it decided, "
        "and the deployed threshold's point.",
        "offline_pr": "The decision-time test split: every model against the cleaned labels and against ground truth.",
        "per_day": "Per day of the live stream: customers flagged against fraudsters active that day.",
        "scores": "Scores of the decided customers by fraud type and for legitimate customers, against the threshold.",
        "neighbourhoods": "The identity neighbourhood of one caught ring member and one missed fraudster "
        "(grey: identifiers; customers coloured by ground truth).",
    }
    for name, caption in captions.items():
        if name in files:
            lines += [f"![{name}]({files[name]})", "", caption, ""]
    return lines


def registry_lines(registry: dict[str, Any]) -> list[str]:
    """The model's registered version and what the promotion gate decided."""
    decided = "promoted to production" if registry["promoted"] else f"kept as {registry['stage']}"
    lines = [
        "",
        "## Model registry",
        "",
        f"Version {registry['version']} (training run `{registry['run_id']}`): {decided}, {registry['reason']}.",
    ]
    if registry.get("figures"):
        lines += ["", "| model | version | PR-AUC | precision | recall | judged |", "|---|---|---|---|---|---|"]
        versions = {"candidate": registry["version"], "production": registry["production_before"]}
        for name, f in registry["figures"].items():
            cells = (name, versions[name], f["pr_auc"], f["precision"], f["recall"], f["judged"])
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [f"- {r}" for r in registry.get("regressions", [])]
    return [*lines, "", f"Runs and versions: `mlflow ui --backend-store-uri {registry['tracking_uri']}`.", ""]
