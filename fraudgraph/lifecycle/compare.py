"""Production against shadow: how often the two models' decisions on the same micro-batches agree, and,
once labels have matured, each one's precision and recall over the customers both decided."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

FLAGS = ("block", "review")  # a decision that acts on the customer


def read_decisions(path: str | Path) -> pd.DataFrame:
    """A decisions JSONL (the consumer's or the shadow's) as ``decision_id, customer_id, decision,
    model_version``, the last record of each decision id kept (a re-emit after a crash repeats one)."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    frame = pd.DataFrame.from_records(rows, columns=["decision_id", "customer_id", "decision", "model_version"])
    return frame.drop_duplicates("decision_id", keep="last").reset_index(drop=True)


def compare_decisions(
    production: pd.DataFrame, shadow: pd.DataFrame, labels: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Agreement on the decisions both made (same ``decision_id``), overall and per production decision,
    and with ``labels`` (``customer_id, label`` of ``fraudgraph labels``: fraud, legit or unknown) each
    model's precision (labelled fraud among the labelled customers it flagged) and recall (labelled
    fraudsters it flagged) over the customers both decided, a customer flagged if any decision flagged it."""
    both = production.merge(shadow, on="decision_id", suffixes=("_production", "_shadow"))
    same = both["decision_production"] == both["decision_shadow"]
    out: dict[str, Any] = {
        "decisions": {"production": len(production), "shadow": len(shadow), "both": len(both)},
        "models": {
            "production": sorted(set(production["model_version"])),
            "shadow": sorted(set(shadow["model_version"])),
        },
        "agreement": round(float(same.mean()), 4) if len(both) else None,
        "by_production_decision": {
            d: {"decisions": int(len(part)), "same": int((part["decision_shadow"] == d).sum())}
            for d, part in both.groupby("decision_production")
        },
    }
    if labels is None or not len(both):
        return out
    flagged = (
        both.assign(production=both["decision_production"].isin(FLAGS), shadow=both["decision_shadow"].isin(FLAGS))
        .groupby("customer_id_production")[["production", "shadow"]]
        .any()
    )
    known = labels.set_index("customer_id")["label"].reindex(flagged.index)
    labelled = known.isin(["fraud", "legit"])
    fraud = known == "fraud"
    out["labels"] = {"customers": int(len(flagged)), "labelled": int(labelled.sum()), "fraud": int(fraud.sum())}
    for model in ("production", "shadow"):
        flags = flagged[model]
        judged = flags & labelled
        out[model] = {
            "flagged": int(flags.sum()),
            "precision": round(float((flags & fraud).sum() / judged.sum()), 4) if judged.any() else None,
            "recall": round(float((flags & fraud).sum() / fraud.sum()), 4) if fraud.any() else None,
        }
    return out
