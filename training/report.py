"""The training job's report: the PR curves plot and ``summary.md`` (the decision-time table, one row per
model and per fraud type)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from training.judging import FRAUD_TYPES, policy_words


def plot_pr_curves(curves: dict[str, dict[str, pd.DataFrame]], path: Path) -> None:
    """One panel per reference (labels, truth), one curve per model, over test customers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    refs = [r for r in ("labels", "truth") if any(r in c for c in curves.values())]
    fig, axes = plt.subplots(1, len(refs), figsize=(6 * len(refs), 4.5), squeeze=False)
    for ax, ref in zip(axes[0], refs):
        for name, c in curves.items():
            units = c.get(ref)
            if units is not None and units["outcome"].nunique() == 2:
                p, r, _ = precision_recall_curve(
                    units["outcome"], units["score"], sample_weight=units["population_weight"]
                )
                ax.plot(r, p, label=name)
        ax.axhline(0.85, color="grey", linestyle=":", linewidth=1)
        ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set(
            title=f"test customers vs {'cleaned labels' if ref == 'labels' else 'ground truth'}",
            xlabel="recall",
            ylabel="precision",
            xlim=(0, 1),
            ylim=(0, 1.02),
        )
        ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def metrics_table(models: dict[str, Any]) -> list[str]:
    """Markdown rows: every model against cleaned labels and (when present) ground truth."""
    lines = [
        "| model | vs | PR-AUC | 90 % interval | ROC-AUC | recall @ 85 % precision | precision @ 50 % recall |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in models.items():
        for ref in ("labels", "truth"):
            if ref in m:
                s = m[ref]
                ci = s.get("pr_auc_ci90")
                lines.append(
                    f"| {name} | {ref} | {_f(s['pr_auc'])} | "
                    f"{f'{ci[0]:.3f}-{ci[1]:.3f}' if ci else '-'} | {_f(s['roc_auc'])} | "
                    f"{_f(s['recall_at_precision_85'])} | {_f(s['precision_at_recall_50'])} |"
                )
    return lines


def fraud_type_table(models: dict[str, Any]) -> list[str]:
    """Markdown rows: PR-AUC against ground truth per fraud type (each type against legitimate customers)."""
    if not any("truth" in m for m in models.values()):
        return []
    lines = ["| model | " + " | ".join(FRAUD_TYPES) + " |", "| --- |" + " ---: |" * len(FRAUD_TYPES)]
    for name, m in models.items():
        bt = m.get("truth", {}).get("by_fraud_type", {})
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{_f(bt.get(t, {}).get('pr_auc'))} ({bt.get(t, {}).get('fraudsters', 0)})" for t in FRAUD_TYPES
            )
            + " |"
        )
    return lines


def render_summary(metrics: dict[str, Any]) -> str:
    sp = metrics["split"]
    lines = [
        "# Model summary",
        "",
        f"Main model `{metrics['main_model']}`; threshold "
        f"{metrics.get('validated_threshold', metrics['threshold']):.4f} "
        "chosen on validation customers "
        + policy_words(metrics.get("threshold_policy"), metrics.get("target_precision"))
        + (
            f"; deployed: refit on every label known at as-of ({metrics['deployed']['fraud_customers']} fraud "
            f"customers), threshold {metrics['deployed']['threshold']:.4f}"
            if metrics.get("deployed")
            else ""
        )
        + ".",
        "",
        "Examples are decision points (the moments the consumer scores), split by decision time; each model "
        "is judged per customer on its highest score over the customer's test decision points. Examples: "
        + ", ".join(f"{s} {n:,}" for s, n in sp["examples"].items())
        + "; fraud customers labelled: "
        + ", ".join(f"{s} {c['fraud_customers']}" for s, c in sp["labels"].items())
        + ".",
        "",
        *metrics_table(metrics["models"]),
        "",
        "PR-AUC against ground truth per fraud type (fraudsters):",
        "",
        *fraud_type_table(metrics["models"]),
    ]
    lines += ["", "![precision-recall curves](pr_curves.png)"]
    return "\n".join(lines) + "\n"
