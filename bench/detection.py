"""Detection over several main-job runs: live figures per seed and pooled with 90 % intervals.

    python bench/detection.py RUN_DIR [RUN_DIR ...] [--json FILE]

Each ``RUN_DIR`` is the ``--out`` folder of ``fraudgraph demo`` for one world seed (its
``model/metrics.json`` holds the offline figures, ``report.json`` the live ones). Reports, per seed and
pooled over every seed's fraudsters and flags:

- the deployed model's live precision and recall (Wilson 90 % intervals on the pooled counts), per
  fraud type, new ring accounts by their first payment, and beyond the team's own blocks (active
  fraudsters with no standing-blocked neighbour when first flaggable);
- threshold transfer: the deployed recall beside the best recall any threshold reaches at 85 %
  precision on the same stream;
- every model on the same live decisions at the deployed model's and the blocked-neighbour rule's
  false-flag budgets, and the rule itself;
- offline test PR-AUC against truth per model with its bootstrap interval.

Ground truth is read here for reporting only.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from _common import table, write_result

Z90 = 1.6449


def wilson(k: int, n: int) -> list[float] | None:
    """90 % Wilson interval of k successes in n."""
    if not n:
        return None
    p = k / n
    centre = (p + Z90**2 / (2 * n)) / (1 + Z90**2 / n)
    half = Z90 * math.sqrt(p * (1 - p) / n + Z90**2 / (4 * n * n)) / (1 + Z90**2 / n)
    return [round(centre - half, 4), round(centre + half, 4)]


def one_run(run: Path) -> dict:
    m = json.loads((run / "model" / "metrics.json").read_text())
    stages = json.loads((run / "report.json").read_text())["stages"]  # the main job's report, not the model's
    live, world = stages["live"], stages["generate"]
    bn = live.get("blocked_neighbours") or {}
    without = (bn.get("by_blocked_neighbour") or {}).get("without_blocked_neighbour") or {}
    out = {
        "seed": world["seed"],
        "customers": world["rates"]["customers"],
        "threshold": m["threshold"],
        "labels_validation_pr_auc": m["models"]["rgcn_edge"]["validation"]["pr_auc"],
        "threshold_policy": m.get("threshold_policy"),
        "flagged": live["flagged_customers"],
        "caught": live["caught"],
        "active": live["active_fraudsters"],
        "precision": live["precision"],
        "recall": live["recall"],
        "false_flags_per_10k_legit": live["false_flags_per_10k_legit"],
        "best_recall_at_precision_85": (live.get("best_at_precision_85") or {}).get("recall"),
        "by_type": {t: [g["caught"], g["active"]] for t, g in live["recall_by_fraud_type"].items()},
        "new_ring_by_first_payment": [
            round(
                (live["new_ring_accounts_caught"]["caught_before_first_payment"] or 0)
                * live["new_ring_accounts_caught"]["active"]
            ),
            live["new_ring_accounts_caught"]["active"],
        ],  # fmt: skip
        "without_blocked_neighbour": [without.get("caught", 0), without.get("active", 0)],
        "rule": bn.get("blocked_neighbour_rule"),
        "models_live": {
            name: {
                **{f"recall_at_{b}": x["recall"] for b, x in v["at_budget"].items()},
                "best_recall_at_precision_85": v["best_at_precision_85"]["recall"],
            }
            for name, v in ((live.get("models") or {}).get("models") or {}).items()
        },
        "offline_truth_pr_auc": {
            name: [v["truth"]["pr_auc"], v["truth"].get("pr_auc_ci90")]
            for name, v in m["models"].items()
            if "truth" in v
        },
    }
    return out


def pooled(runs: dict[str, dict]) -> dict:
    def total(key):
        return [sum(r[key][0] for r in runs.values()), sum(r[key][1] for r in runs.values())]

    flagged = sum(r["flagged"] for r in runs.values())
    caught = sum(r["caught"] for r in runs.values())
    active = sum(r["active"] for r in runs.values())
    types = {t: [sum(r["by_type"][t][0] for r in runs.values()), sum(r["by_type"][t][1] for r in runs.values())]
             for t in next(iter(runs.values()))["by_type"]}  # fmt: skip
    models = sorted({n for r in runs.values() for n in r["models_live"]})
    return {
        "precision": round(caught / flagged, 4) if flagged else None,
        "precision_ci90": wilson(caught, flagged),
        "recall": round(caught / active, 4) if active else None,
        "recall_ci90": wilson(caught, active),
        "caught_flagged_active": [caught, flagged, active],
        "by_type": {
            t: {"caught": k, "active": n, "recall": round(k / n, 4) if n else None} for t, (k, n) in types.items()
        },
        "new_ring_by_first_payment": total("new_ring_by_first_payment"),
        "without_blocked_neighbour": total("without_blocked_neighbour"),
        "mean_recall_gap_to_best_at_85": round(
            sum((r["best_recall_at_precision_85"] or 0) - (r["recall"] or 0) for r in runs.values()) / len(runs), 4
        ),
        "models_live_mean": {
            n: {
                k: round(sum(r["models_live"][n][k] for r in runs.values() if n in r["models_live"]) / len(runs), 4)
                for k in next(iter(runs.values()))["models_live"].get(n, {})
            }
            for n in models
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()
    measured = [one_run(Path(r)) for r in args.runs]
    runs = {f"seed {r['seed']}, {r['customers']:,} customers": r for r in measured}
    result = {"benchmark": "detection", "runs": runs, "pooled": pooled(runs)}
    rows = [(name, f"{r['precision']} / {r['recall']} (best at 85 %: {r['best_recall_at_precision_85']})")
            for name, r in runs.items()]  # fmt: skip
    p = result["pooled"]
    rows.append(
        ("pooled precision / recall", f"{p['precision']} {p['precision_ci90']} / {p['recall']} {p['recall_ci90']}")
    )
    print(table(rows))
    print(json.dumps(result["pooled"], indent=1))
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
