"""The main job over several seeds: each seed's live figures, their mean and range, and the live
figures pooled over every seed's decisions (``summary.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LIVE_FIGURES = ("precision", "recall", "caught_before_first_payment", "false_flags_per_10k_legit")


def summarise_seeds(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per seed and pooled live figures; offline test PR-AUC (truth) per model as mean / min / max."""
    live = {seed: r["stages"]["live"] for seed, r in runs.items()}
    models = {seed: r["stages"]["train"]["metrics"]["models"] for seed, r in runs.items()}
    pooled = _pooled(list(live.values()))
    offline = {}
    for name in next(iter(models.values())):
        offline[name] = {
            ref: _spread([models[s][name].get(ref, {}).get("pr_auc") for s in models]) for ref in ("labels", "truth")
        }
    return {
        "seeds": list(runs),
        "live": {
            "per_seed": {
                s: {k: v[k] for k in LIVE_FIGURES}
                | {
                    "recall_by_fraud_type": {t: g["recall"] for t, g in v["recall_by_fraud_type"].items()},
                    "new_ring_accounts_caught": v["new_ring_accounts_caught"],
                }
                for s, v in live.items()
            },
            "spread": {k: _spread([v[k] for v in live.values()]) for k in LIVE_FIGURES},
            "pooled": pooled,
        },
        "offline_pr_auc": offline,
        "per_seed_reports": {s: r["report_md"] for s, r in runs.items()},
    }


def _pooled(live: list[dict[str, Any]]) -> dict[str, Any]:
    """The seeds' live figures pooled: flagged, caught and active fraudsters summed, precision and recall of
    the sums, per fraud type, and the new ring accounts caught by their first payment."""
    pooled_flagged = sum(v["flagged_customers"] for v in live)
    pooled_caught = sum(v["caught"] for v in live)
    pooled_active = sum(v["active_fraudsters"] for v in live)
    ring_new = [v["new_ring_accounts_caught"] for v in live]
    pooled = {
        "flagged_customers": pooled_flagged,
        "caught": pooled_caught,
        "active_fraudsters": pooled_active,
        "precision": round(pooled_caught / pooled_flagged, 4) if pooled_flagged else None,
        "recall": round(pooled_caught / pooled_active, 4) if pooled_active else None,
        "recall_by_fraud_type": {},
    }
    for t in ("ring", "synthetic_identity", "account_takeover"):
        act = sum(v["recall_by_fraud_type"][t]["active"] for v in live)
        cau = sum(v["recall_by_fraud_type"][t]["caught"] for v in live)
        pooled["recall_by_fraud_type"][t] = {
            "active": act,
            "caught": cau,
            "recall": round(cau / act, 4) if act else None,
        }
    act = sum(g["active"] for g in ring_new)
    early = sum(round((g["caught_before_first_payment"] or 0) * g["active"]) for g in ring_new)
    pooled["new_ring_accounts_by_first_payment"] = {
        "active": act,
        "caught": early,
        "share": round(early / act, 4) if act else None,
    }
    return pooled


def _spread(values: list) -> dict[str, float | None]:
    """Mean, min and max of the values given (None ones left out), to 4 decimals."""
    import numpy as np

    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "min": None, "max": None}
    return {"mean": round(float(np.mean(vals)), 4), "min": round(min(vals), 4), "max": round(max(vals), 4)}


def render_seed_summary(summary: dict[str, Any]) -> str:
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    live, pooled = summary["live"], summary["live"]["pooled"]
    lines = [
        "# fraudgraph main job over world seeds " + ", ".join(map(str, summary["seeds"])),
        "",
        "## Headline: the live stream through the real-time consumer",
        "",
        f"Pooled over the seeds: precision of flags **{pct(pooled['precision'])}** ({pooled['caught']:,} of "
        f"{pooled['flagged_customers']:,} flagged customers), recall **{pct(pooled['recall'])}** of "
        f"{pooled['active_fraudsters']:,} active fraudsters; new ring accounts flagged by their first payment: "
        f"{pct(pooled['new_ring_accounts_by_first_payment']['share'])} of "
        f"{pooled['new_ring_accounts_by_first_payment']['active']}.",
        "",
        "| seed | precision | recall | ring | synthetic | takeover | new ring accounts by first payment "
        "| false flags / 10k legit |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for seed, v in live["per_seed"].items():
        r, nr = v["recall_by_fraud_type"], v["new_ring_accounts_caught"]
        lines.append(
            f"| {seed} | {pct(v['precision'])} | {pct(v['recall'])} | {pct(r['ring'])} | "
            f"{pct(r['synthetic_identity'])} | {pct(r['account_takeover'])} | "
            f"{pct(nr['caught_before_first_payment'])} of {nr['active']} | {v['false_flags_per_10k_legit']} |"
        )
    p = pooled["recall_by_fraud_type"]
    lines.append(
        f"| pooled | {pct(pooled['precision'])} | {pct(pooled['recall'])} | {pct(p['ring']['recall'])} | "
        f"{pct(p['synthetic_identity']['recall'])} | {pct(p['account_takeover']['recall'])} | "
        f"{pct(pooled['new_ring_accounts_by_first_payment']['share'])} | - |"
    )
    lines += [
        "",
        "## Offline decision-time test split: PR-AUC mean (min-max) over seeds",
        "",
        "| model | vs cleaned labels | vs ground truth |",
        "| --- | ---: | ---: |",
    ]
    fmt = lambda d: "-" if d["mean"] is None else f"{d['mean']:.3f} ({d['min']:.3f}-{d['max']:.3f})"  # noqa: E731
    for name, refs in summary["offline_pr_auc"].items():
        lines.append(f"| {name} | {fmt(refs['labels'])} | {fmt(refs['truth'])} |")
    lines += [
        "",
        "Per-seed reports: "
        + ", ".join(f"[seed {s}]({Path(p).parent.name}/report.md)" for s, p in summary["per_seed_reports"].items()),
        "",
    ]
    return "\n".join(lines)
