"""The drift report (``fraudgraph drift``): per day of a consumer's drift log, the decisions, their mix,
the score's PSI and each customer feature's PSI against the deciding model's training reference, with
the days and features at or above ``registry.drift_alert_psi`` flagged; Markdown and a PNG."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from fraudgraph.lifecycle.drift import DailyDrift, DriftReference

TOP_FEATURES = 5  # features named per day in the table, highest PSI first


def drift_summary(
    log_path: str | Path, reference: DriftReference, model_version: str, since_days: int, alert_psi: float
) -> dict[str, Any]:
    """The last ``since_days`` days of the log (counted back from its newest day: a replay's days are in
    the past) decided by ``model_version``, whose drift ``reference`` the log's counts were binned on."""
    daily = DailyDrift()
    for line in Path(log_path).read_text().splitlines():
        record = json.loads(line) if line.strip() else None
        if record is not None and record.get("model_version") == model_version:
            daily.merge(record)
    days = daily.days()
    if days:
        newest = dt.date.fromisoformat(days[-1])
        days = [d for d in days if (newest - dt.date.fromisoformat(d)).days < since_days]
    out = []
    for day in days:
        s = daily.summary(day, reference)
        ranked = sorted(((v, k) for k, v in s["feature_psi"].items() if v is not None), reverse=True)
        s["top_features"] = [{"feature": k, "psi": v} for v, k in ranked[:TOP_FEATURES]]
        s["alerts"] = [k for v, k in ranked if v >= alert_psi] + (
            ["score"] if s["score_psi"] is not None and s["score_psi"] >= alert_psi else []
        )
        out.append(s)
    return {"model_version": model_version, "alert_psi": alert_psi, "since_days": since_days, "days": out}


def render_drift(summary: dict[str, Any], out_dir: str | Path) -> dict[str, str]:
    """``drift.md`` and ``drift.png`` (the score's PSI and the top features' per day) in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    days = summary["days"]
    lines = [
        "# Drift against the training reference",
        "",
        f"PSI per day; alert at {summary['alert_psi']:g} (registry.drift_alert_psi). "
        "Under 0.1 is stable, 0.1-0.25 a moderate shift, over 0.25 a major one.",
        "",
        "| day | decisions | block / review / allow / blocked | score PSI | highest feature PSIs | alerts |",
        "|---|---|---|---|---|---|",
    ]
    for d in days:
        mix = " / ".join(f"{d['decision_mix'].get(k, 0):.1%}" for k in ("block", "review", "allow", "blocked"))
        top = ", ".join(f"{t['feature']} {t['psi']:.3f}" for t in d["top_features"][:3])
        lines.append(
            f"| {d['day']} | {d['decisions']} | {mix} | {d['score_psi']} | {top} | {', '.join(d['alerts']) or '-'} |"
        )
    lines += ["", "![drift](drift.png)", ""]
    (out / "drift.md").write_text("\n".join(lines))
    fig, ax = plt.subplots(figsize=(9, 4))
    names = ["score"] + sorted({t["feature"] for d in days for t in d["top_features"][:2]})
    for name in names:
        values = [d["score_psi"] if name == "score" else d["feature_psi"].get(name) for d in days]
        ax.plot(
            [d["day"] for d in days], [v if v is not None else float("nan") for v in values], marker="o", label=name
        )
    ax.axhline(summary["alert_psi"], color="red", linestyle="--", label="alert")
    ax.set_ylabel("PSI against training")
    ax.tick_params(axis="x", rotation=45)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "drift.png", dpi=100)
    plt.close(fig)
    return {"markdown": str(out / "drift.md"), "png": str(out / "drift.png")}
