"""The report's sections after the headline: the world and the ETL, labels, the model, batch decisions and the
live stream's detail."""

from __future__ import annotations

from typing import Any

from fraudgraph.timeutil import DAY_MS


def world_and_etl_lines(g: dict[str, Any], e: dict[str, Any]) -> list[str]:
    r = g["rates"]
    stats = e["graph_stats"]
    return [
        "## Synthetic world",
        "",
        f"- customers: {r['customers']:,}; events: {r['events']['historical']:,} historical, "
        f"{r['events']['live']:,} live (cut-off {g['cutoff']})",
        f"- fraud prevalence {r['prevalence']:.2%} (ring {r['prevalence_by_type']['ring']:.2%}, "
        f"takeover {r['prevalence_by_type']['account_takeover']:.2%}, "
        f"synthetic {r['prevalence_by_type']['synthetic_identity']:.2%})",
        f"- fraud ever blocked {r['fraud_ever_blocked']:.1%}; median block delay {r['block_delay_days']['p50']} days; "
        f"false-block rate {r['false_block_rate']:.2%}",
        "- legitimate customers sharing an identifier with a fraudster (hubs of over 50 excluded): "
        + ", ".join(f"{k} {v:,}" for k, v in r.get("legit_collisions", {}).items()),
        "",
        "## Spark ETL",
        "",
        "- rows read: " + ", ".join(f"{k} {v:,}" for k, v in e["rows_read"].items()),
        f"- events rejected: {e['rejected']['total']:,}; wall time {e['wall_s']} s",
        "",
        "| label | count |",
        "| --- | ---: |",
        *[f"| {k} | {v:,} |" for k, v in {**stats["vertices"], **stats["edges"]}.items()],
    ]


def label_lines(lab: dict[str, Any]) -> list[str]:
    ev = lab["evaluation"]
    return [
        "",
        "## Labels",
        "",
        f"As of {lab['as_of']}: " + ", ".join(f"{k} {v:,}" for k, v in lab["labels"].items()) + ".",
        f"Raw label error rate {ev['raw_label_error_rate']:.3%}; cleaned (known labels) "
        f"{ev['clean_label_error_rate']:.3%}; missed fraud recovered by heuristics "
        f"{ev['missed_fraud_recovered']:,} of {ev['raw_missed_fraud']:,}.",
        "",
        "| heuristic | corrections | precision |",
        "| --- | ---: | ---: |",
        *[f"| {k} | {v['corrections']:,} | {v['precision']:.1%} |" for k, v in ev["heuristics"].items()],
    ]


def model_lines(tr: dict[str, Any]) -> list[str]:
    from training.report import fraud_type_table, metrics_table

    m = tr["metrics"]
    sp = m["split"]
    lines = [
        "",
        "## Models at decision time (offline, test split)",
        "",
        f"Examples are the moments the consumer scores (signup and risk events), with the graph exactly "
        f"as it was then; the last {settings_test_days(m)} days before as-of are the test split "
        f"({sp['examples']['test']:,} decision points; labelled fraud customers "
        f"{sp['labels']['test']['fraud_customers']}). Each model is judged per customer on its highest "
        "score over the customer's test decision points; 90 % intervals resample fraud rings whole.",
        "",
        *metrics_table(m["models"]),
        "",
        "PR-AUC against ground truth per fraud type (fraudsters):",
        "",
        *fraud_type_table(m["models"]),
    ]
    lines += [
        "",
        *threshold_lines(m),
        "PR curves: `model/pr_curves.png`.",
        "",
        "![precision-recall curves](model/pr_curves.png)",
    ]
    return lines


def decision_lines(sc: dict[str, Any]) -> list[str]:
    o = sc["outcomes"]
    return [
        "",
        "## Decisions",
        "",
        f"Model `{sc['model_version']}` over {sc['customers']:,} customers.",
        "",
        "| decision | customers | true fraudsters |",
        "| --- | ---: | ---: |",
        *[f"| {d} | {o[d]['customers']:,} | {o[d]['true_fraud']:,} |" for d in ("block", "review", "allow")],
        "",
        f"{o['block']['true_fraud'] + o['review']['true_fraud']:,} of {o['true_fraudsters']:,} true "
        f"fraudsters were blocked or sent to review (precision of flags "
        f"{(o['precision_of_flags'] or 0):.1%}). These decisions cover every customer, including "
        "those whose labels trained the model; the test split above measures new accounts.",
    ]


def live_detail_lines(live: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Live stream through the real-time consumer",
        "",
        f"{live['events']:,} live events replayed in {live['wall_s']} s ({live['events_per_s']:,} events/s); "
        f"{live['rejected']:,} rejected, "
        f"{live['duplicates']:,} duplicates. Decisions: "
        + ", ".join(f"{d} {n:,}" for d, n in live["decisions"].items())
        + ".",
        *replay_parts_lines(live),
        "",
        "| fraud starting in the stream | accounts | blocked | review | missed | events to decision "
        "p50 / p90 | caught on first event |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, name in (("new_ring_accounts", "new ring accounts"), ("takeovers", "account takeovers")):
        o = live[label]
        q = o["events_to_decision"]
        lines.append(
            f"| {name} | {o['in_stream']:,} | {o['blocked']:,} | {o['reviewed']:,} | {o['missed']:,} | "
            f"{q['p50'] if q['p50'] is not None else '-'} / {q['p90'] if q['p90'] is not None else '-'}"
            f" | {q['first_event']:,} |"
        )
    lines += [
        "",
        "| day | block | review | allow | blocked (block stands, not scored) |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[
            f"| {day} | {c['block']:,} | {c['review']:,} | {c['allow']:,} | {c.get('blocked', 0):,} |"
            for day, c in live["decisions_per_day"].items()
        ],
    ]
    return lines


def threshold_lines(m: dict[str, Any]) -> list[str]:
    """What the consumer deploys: the validated model, or its refit on every label known at as-of."""
    from training.judging import policy_words

    validated = m.get("validated_threshold", m["threshold"])
    line = (
        f"Decision threshold of the validated `rgcn_edge` {validated:.4f} (chosen on validation customers "
        f"{policy_words(m.get('threshold_policy'), m.get('target_precision'))})."
    )
    d = m.get("deployed")
    if not d:
        return [line + " The consumer deploys this model."]
    at = d["validation"].get("at_threshold") or {}
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    return [
        line + f" The consumer deploys `rgcn_edge` refit on every decision point up to as-of with the "
        f"labels known then, validation customers left out ({d['fraud_customers']} fraud customers, "
        f"{d['epochs']} epochs as validation chose), at threshold {d['threshold']:.4f}, chosen the same way on "
        f"the {d['validation_customers']:,} validation customers it never trained on (there, against the "
        f"labels: precision {pct(at.get('precision'))}, recall {pct(at.get('recall'))}, false flags per "
        f"10,000 labelled legitimate {at.get('false_flags_per_10k', '-')}, PR-AUC "
        f"{d['validation']['pr_auc'] or 0:.3f})."
    ]


def settings_test_days(metrics: dict[str, Any]) -> int:
    return round((metrics["split"]["as_of_ms"] - metrics["split"]["t2_ms"]) / DAY_MS)


def replay_parts_lines(live: dict[str, Any]) -> list[str]:
    """Which part of the stream the real consumer decided, and how the bulk replay agreed with it."""
    parts, parity = live.get("parts"), live.get("parity")
    if not parts:
        return []
    c, b = parts["consumer"], parts["bulk"]
    lines = [
        "",
        f"Lines 1-{c['last_line']:,} of the stream ({c['events']:,} events, {c['polls']} polls) went through the "
        f"real consumer, step by step: {c['steps']:,} steps of at most {live['max_batch_span_s']} s of event time, "
        f"{c['ms_per_step']} ms a step, {c['events_per_s']:,} events/s, {c['decisions']:,} decisions.",
    ]
    if b.get("first_line"):
        lines.append(
            f"Lines {b['first_line']:,} on ({b['events']:,} events) were decided in bulk from the point-in-time "
            f"link history ({b['decisions']:,} decisions; scoring {b['scoring_s']} s for the whole stream) and "
            f"written to the graph by the consumer, one step per poll ({b['graph_write_s']} s)."
        )
    if parity:
        verdict = "the same" if parity["equal"] else "**not the same**"
        lines.append(
            f"On the consumer's part the bulk replay made {parity['bulk_decisions']:,} decisions and the consumer "
            f"{parity['consumer_decisions']:,}: {verdict} (decisions that differ {parity['other_decision']}, reason "
            f"codes that differ {parity['other_reason_codes']}, missing on either side "
            f"{parity['only_consumer'] + parity['only_bulk']}, largest score difference "
            f"{parity['max_abs_score_diff']:.2g})."
        )
    return lines
