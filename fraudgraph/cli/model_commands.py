"""``fraudgraph models ...``: the model registry (list, show, register, promote through the gate, roll
back, shadow, compare), and ``fraudgraph drift``. docs/lifecycle.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from fraudgraph.cli.context import AppContext, cli, common_options, fail, needs_pii_key, pass_app

_GATE_FIGURES = ("pr_auc", "precision", "recall")


@cli.group()
def models() -> None:
    """The model registry: versions, their stages and the promotion gate."""


def _registry(app: AppContext) -> Any:
    from fraudgraph.lifecycle import ModelRegistry

    return ModelRegistry(app.settings.registry)


def _list_text(summary: dict[str, Any]) -> str:
    if not summary["versions"]:
        return f"no versions of {summary['model']} registered yet (fraudgraph models register --model DIR)"
    lines = [f"{'version':>7}  {'stage':<10}  {'model':<22}  {'registered':<25}  test PR-AUC  run"]
    for v in summary["versions"]:
        pr_auc = v["metrics"].get("models.rgcn_edge.labels.pr_auc")
        shown = f"{pr_auc:.4f}" if pr_auc is not None else "-"
        lines.append(
            f"{v['version']:>7}  {v['stage']:<10}  {v['model_id']:<22}  {v['registered_at']:<25}  {shown:>11}  "
            f"{v['run_id']}"
        )
    return "\n".join(lines)


@models.command("list")
@common_options
@pass_app
def models_list(app: AppContext) -> None:
    """Every registered version with its stage and its training run's test PR-AUC."""
    from fraudgraph.lifecycle import RegistryError

    registry = _registry(app)
    rows = []
    for v in registry.versions():
        try:
            metrics = registry.run_metrics(v.version)
        except RegistryError:
            metrics = {}
        rows.append({**v.record(), "metrics": metrics})
    app.emit({"model": registry.name, "versions": rows}, _list_text)


def _show_text(summary: dict[str, Any]) -> str:
    lines = [f"version {summary['version']} ({summary['model_id']}): {summary['stage']}"]
    lines += [f"  {k}: {v}" for k, v in sorted(summary["lineage"].items())]
    for change in summary["history"]:
        forced = " (forced)" if change.get("forced") else ""
        lines.append(f"  {change['at']}  {change['from']} -> {change['to']}{forced}: {change['reason']}")
    return "\n".join(lines)


@models.command("show")
@click.argument("version", type=int)
@common_options
@pass_app
def models_show(app: AppContext, version: int) -> None:
    """One version: its lineage, test figures and every stage change with its reason."""
    from fraudgraph.lifecycle import RegistryError

    registry = _registry(app)
    try:
        v = registry.get(version)
        summary = {**v.record(), "lineage": registry.lineage(version), "metrics": registry.run_metrics(version)}
    except RegistryError as exc:
        fail(str(exc))
    app.emit(summary, _show_text)


@models.command("register")
@click.option(
    "--model", "model_dir", required=True, type=click.Path(file_okay=False, exists=True), help="A trained model folder."
)
@common_options
@pass_app
def models_register(app: AppContext, model_dir: str) -> None:
    """Register the tracked training run of a model folder (its run.json) as a candidate version."""
    run_file = Path(model_dir) / "run.json"
    if not run_file.exists():
        fail(f"--model {model_dir}: no run.json (the folder was not written by a tracked training run)")
    version = _registry(app).register(json.loads(run_file.read_text())["run_id"])
    app.emit(version.record(), lambda v: f"version {v['version']} ({v['model_id']}): {v['stage']}")


def _promotion_text(result: dict[str, Any]) -> str:
    head = f"version {result['version']}: " + ("promoted" if result["promoted"] else "not promoted")
    lines = [f"{head} ({result['reason']})"]
    for name, figures in (result["figures"] or {}).items():
        shown = ", ".join(f"{k} {figures[k]}" for k in _GATE_FIGURES)
        lines.append(f"  {name}: {shown} ({figures['judged']}, {figures['customers']} test customers)")
    lines += [f"  regression: {r}" for r in result["regressions"]]
    return "\n".join(lines)


@models.command("promote")
@click.argument("version", type=int)
@click.option("--force", is_flag=True, default=False, help="Promote even if the gate refuses (needs --reason).")
@click.option("--reason", default=None, help="Why: recorded with the promotion.")
@common_options
@pass_app
def models_promote(app: AppContext, version: int, force: bool, reason: str | None) -> None:
    """Promote a version to production if it does not fall below the production model beyond
    registry.tolerance on the candidate's decision-time test split (exit 1 when refused)."""
    from fraudgraph.lifecycle import RegistryError
    from training.promotion import promote

    try:
        result = promote(app.settings, _registry(app), version, force=force, reason=reason)
    except RegistryError as exc:
        fail(str(exc))
    app.emit(result.record(), _promotion_text)
    if not result.promoted and result.regressions:
        raise SystemExit(1)


@models.command("shadow")
@click.argument("version", type=int)
@click.option("--reason", required=True, help="Why: recorded with the change.")
@common_options
@pass_app
def models_shadow(app: AppContext, version: int, reason: str) -> None:
    """Put a version in shadow: it scores beside production (consume --shadow-decisions), never acted on,
    so no gate (the version in shadow before it is archived)."""
    from fraudgraph.lifecycle import RegistryError

    try:
        moved = _registry(app).move(version, "shadow", reason=reason)
    except RegistryError as exc:
        fail(str(exc))
    app.emit(moved.record(), lambda v: f"version {v['version']} ({v['model_id']}): shadow")


@models.command("rollback")
@click.option("--reason", required=True, help="Why: recorded with the rollback.")
@common_options
@pass_app
def models_rollback(app: AppContext, reason: str) -> None:
    """Put back the version that was in production before the current one (the current one is archived)."""
    from fraudgraph.lifecycle import RegistryError

    try:
        back = _registry(app).rollback(reason=reason)
    except RegistryError as exc:
        fail(str(exc))
    app.emit(back.record(), lambda v: f"version {v['version']} ({v['model_id']}) is in production again")


def _compare_text(summary: dict[str, Any]) -> str:
    counts = summary["decisions"]
    agreement = summary["agreement"]
    lines = [
        f"decisions: production {counts['production']}, shadow {counts['shadow']}, both {counts['both']}",
        "agreement: " + ("-" if agreement is None else f"{agreement:.1%}"),
    ]
    for model in ("production", "shadow"):
        if model in summary:
            m = summary[model]
            lines.append(f"{model}: {m['flagged']} flagged, precision {m['precision']}, recall {m['recall']}")
    return "\n".join(lines)


@models.command("compare")
@click.option("--decisions", "decisions_path", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--shadow-decisions", "shadow_path", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--labels",
    "labels_dir",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="Matured labels (fraudgraph labels --as-of a later time): each model's precision and recall.",
)
@common_options
@pass_app
def models_compare(app: AppContext, decisions_path: str, shadow_path: str, labels_dir: str | None) -> None:
    """Production against shadow on the same micro-batches: agreement, and with matured labels each one's
    precision and recall."""
    import pandas as pd

    from fraudgraph.lifecycle.compare import compare_decisions, read_decisions

    labels = pd.read_parquet(Path(labels_dir) / "labels.parquet") if labels_dir else None
    summary = compare_decisions(read_decisions(decisions_path), read_decisions(shadow_path), labels)
    app.emit(summary, _compare_text)


@cli.command("drift")
@click.option(
    "--log",
    "log_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The consumer's drift log (consumer.drift_log).",
)
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="The model folder whose drift_reference.json the days are measured against.",
)
@click.option(
    "--since", "since_days", type=int, default=30, show_default=True, help="Days back from the newest day in the log."
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@common_options
@pass_app
def drift(app: AppContext, log_path: str, model_dir: str, since_days: int, out_dir: str) -> None:
    """Per day: decisions, their mix, the score's and each feature's PSI against the training reference
    (drift.md and drift.png); days at or above registry.drift_alert_psi flagged."""
    from fraudgraph.evaluation.drift_report import drift_summary, render_drift
    from fraudgraph.lifecycle.drift import REFERENCE_FILE, DriftReference
    from fraudgraph.ml.artifact import ModelArtifact

    reference_path = Path(model_dir) / REFERENCE_FILE
    if not reference_path.exists():
        fail(f"--model {model_dir}: no {REFERENCE_FILE} (trained before drift references were kept: retrain)")
    version = ModelArtifact.load(model_dir).version  # the log's lines of the days this model decided
    alert = app.settings.registry.drift_alert_psi
    summary = drift_summary(log_path, DriftReference.load(reference_path), version, since_days, alert)
    summary["files"] = render_drift(summary, out_dir)
    app.emit(summary, lambda s: Path(s["files"]["markdown"]).read_text())


@cli.command("retrain")
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default graph.uri).")
@click.option(
    "--snapshot",
    "etl_snapshot",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="The ETL snapshot: its link events are the history before the live stream.",
)
@click.option(
    "--event-log",
    default=None,
    type=click.Path(file_okay=False),
    help="The consumer's link-event log (default consumer.link_event_log).",
)
@click.option("--as-of", "as_of", required=True, help="ISO-8601 time (UTC) or epoch ms: labels and events up to it.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--promote", "promote_if_passed", is_flag=True, default=False, help="Promote if the gate passes.")
@common_options
@needs_pii_key
@pass_app
def retrain_command(
    app: AppContext,
    graph_uri: str | None,
    etl_snapshot: str,
    event_log: str | None,
    as_of: str,
    out_dir: str,
    promote_if_passed: bool,
) -> None:
    """The retraining job: labels -> snapshot -> train -> register as candidate (-> promote through the gate
    with --promote). Idempotent: the same data, labels and settings give the registered version back."""
    from fraudgraph.lifecycle import RegistryError
    from fraudgraph.timeutil import to_epoch_ms
    from training.decision_graph import TrainingRefused
    from training.retrain import retrain

    log_dir = event_log or app.settings.consumer.link_event_log
    try:
        summary = retrain(app.settings, graph_uri, to_epoch_ms(as_of), out_dir, etl_snapshot=etl_snapshot,
                          event_log=log_dir, promote_if_passed=promote_if_passed)  # fmt: skip
    except (TrainingRefused, RegistryError) as exc:
        fail(str(exc))
    app.emit(summary, _retrain_text)


def _retrain_text(summary: dict[str, Any]) -> str:
    head = f"version {summary['version']}: " + ("trained and registered" if summary["trained"] else "already trained")
    if summary.get("warm_start_from") is not None:
        head += f" (warm start from version {summary['warm_start_from']})"
    promotion = summary["promotion"]
    if promotion is None:
        return head
    return head + "; " + ("promoted" if promotion["promoted"] else "not promoted") + f" ({promotion['reason']})"
