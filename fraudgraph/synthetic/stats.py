"""Rates read back from a generated world (what docs/synthetic-world.md tabulates).

Everything here is computed from the output files, never copied from the
configuration, so it checks the generator as much as it describes the world.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from fraudgraph.schema import EVENT_FIELD_BY_KIND


def _quantiles(series: pd.Series, qs=(0.1, 0.5, 0.9)) -> dict[str, float]:
    if series.empty:
        return {f"p{int(q * 100)}": float("nan") for q in qs}
    return {f"p{int(q * 100)}": round(float(series.quantile(q)), 2) for q in qs}


def read_live_events(world_dir: str | Path) -> pd.DataFrame:
    path = Path(world_dir) / "live" / "events.jsonl"
    if path.stat().st_size == 0:
        return pd.DataFrame(columns=["event_id", "event_type", "ts", "customer_id"])
    live = pd.read_json(path, lines=True, dtype={"customer_id": str, "event_id": str})
    live["ts"] = pd.to_datetime(live["ts"], utc=True)
    return live


# Over 60 lines for a reason: one figure after another in the order of the rates table of
# docs/synthetic-world.md, which it fills.
def describe_world(world_dir: str | Path) -> dict[str, Any]:
    """Prevalence by fraud type, block coverage and delay, false blocks and appeals, degrees."""
    d = Path(world_dir)
    truth = pd.read_parquet(d / "truth" / "ground_truth.parquet")
    events = pd.read_parquet(d / "historical" / "events.parquet")
    blocks = pd.read_parquet(d / "historical" / "blocks.parquet")
    appeals = pd.read_parquet(d / "historical" / "appeals.parquet")
    live = read_live_events(d)
    live_blocks = live[live["event_type"] == "block"][["customer_id", "ts"]].rename(columns={"ts": "blocked_at"})
    all_blocks = pd.concat([blocks[["customer_id", "blocked_at"]], live_blocks], ignore_index=True)
    all_blocks["blocked_at"] = pd.to_datetime(all_blocks["blocked_at"], utc=True)
    n = len(truth)
    fraud = truth[truth["is_fraud_true"]]
    merged = fraud.merge(all_blocks, on="customer_id", how="left")
    blocked_fraud = merged.dropna(subset=["blocked_at"]).copy()
    blocked_fraud["fraud_start_ts"] = pd.to_datetime(blocked_fraud["fraud_start_ts"], utc=True)
    delay_days = (blocked_fraud["blocked_at"] - blocked_fraud["fraud_start_ts"]).dt.total_seconds() / 86400
    legit_ids = set(truth.loc[~truth["is_fraud_true"], "customer_id"])
    false_blocks = all_blocks[all_blocks["customer_id"].isin(legit_ids)]
    live_appeals = live[live["event_type"] == "appeal"]["customer_id"]
    appealed = set(appeals["customer_id"]) | set(live_appeals)
    all_events = pd.concat([events, live[[c for c in events.columns if c in live.columns]]], ignore_index=True)
    degrees = {}
    for kind, col in EVENT_FIELD_BY_KIND.items():
        pairs = all_events[["customer_id", col]].dropna().drop_duplicates()
        deg = pairs.groupby(col)["customer_id"].nunique()
        degrees[kind] = {
            "identifiers": int(len(deg)),
            "mean": round(float(deg.mean()), 2) if len(deg) else 0.0,
            **_quantiles(deg, (0.5, 0.99)),
            "max": int(deg.max()) if len(deg) else 0,
        }
    by_type = truth["fraud_type"].value_counts()
    fraud_ids = set(fraud["customer_id"])
    collisions = {}
    for kind in ("device", "card", "ip"):
        col = EVENT_FIELD_BY_KIND[kind]
        pairs = all_events[["customer_id", col]].dropna().drop_duplicates()
        deg = pairs.groupby(col)["customer_id"].transform("size")
        pairs = pairs.loc[deg <= 50]  # carrier and Wi-Fi hubs excluded: sharing them says nothing
        fraud_values = set(pairs.loc[pairs["customer_id"].isin(fraud_ids), col])
        collisions[kind] = int(
            pairs.loc[pairs[col].isin(fraud_values) & pairs["customer_id"].isin(legit_ids), "customer_id"].nunique()
        )
    return {
        "customers": n,
        "events": {"historical": int(len(events)), "live": int(len(live))},
        "prevalence": round(len(fraud) / n, 4) if n else 0.0,
        "prevalence_by_type": {
            t: round(int(by_type.get(t, 0)) / n, 4) for t in ("ring", "account_takeover", "synthetic_identity")
        },
        "fraud_ever_blocked": round(blocked_fraud["customer_id"].nunique() / max(1, len(fraud)), 4),
        "fraud_ever_blocked_by_type": {
            t: round(
                blocked_fraud[blocked_fraud["fraud_type"] == t]["customer_id"].nunique()
                / max(1, int(by_type.get(t, 0))),
                4,
            )
            for t in ("ring", "account_takeover", "synthetic_identity")
        },
        "block_delay_days": _quantiles(delay_days),
        "false_block_rate": round(false_blocks["customer_id"].nunique() / max(1, len(legit_ids)), 5),
        "false_blocks_appealed": round(
            len(set(false_blocks["customer_id"]) & appealed) / max(1, false_blocks["customer_id"].nunique()), 4
        ),
        "blocked_fraud_appealed": round(
            len(set(blocked_fraud["customer_id"]) & appealed) / max(1, blocked_fraud["customer_id"].nunique()), 4
        ),
        "identifier_degree": degrees,
        # legitimate customers sharing a device, card or (non-hub) IP with a fraudster
        "legit_collisions": collisions,
    }


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - tiny wrapper
    import sys

    print(json.dumps(describe_world((argv or sys.argv[1:])[0]), indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
