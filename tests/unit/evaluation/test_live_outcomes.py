"""The main job's live-stream report: what the consumer caught, and after how many events."""

from __future__ import annotations

import json

import pandas as pd

from fraudgraph.evaluation.live import live_outcomes


def _write(tmp_path, events, decisions, truth):
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (tmp_path / "decisions.jsonl").write_text("".join(json.dumps(d) + "\n" for d in decisions))
    pd.DataFrame(truth).assign(fraud_start_ts=lambda f: pd.to_datetime(f["fraud_start_ts"], utc=True)) \
        .to_parquet(tmp_path / "truth.parquet")


def test_counts_catches_and_events_to_decision(tmp_path):
    ev = lambda i, c, day: {"event_id": f"E{i}", "customer_id": c, "ts": f"2026-01-0{day}T10:00:00Z"}  # noqa: E731
    events = [ev(1, "ring1", 1), ev(2, "ring1", 1), ev(3, "ring1", 2), ev(4, "ring2", 2), ev(5, "ato1", 1),
              ev(6, "ato1", 2), ev(7, "ato1", 3), ev(8, "legit", 3), ev(9, "ring3", 3)]
    decisions = [{"event_id": "E2", "customer_id": "ring1", "decision": "block"},   # 2nd event of ring1
                 {"event_id": "E3", "customer_id": "ring1", "decision": "block"},
                 {"event_id": "E4", "customer_id": "ring2", "decision": "allow"},
                 {"event_id": "E5", "customer_id": "ato1", "decision": "allow"},     # before the takeover
                 {"event_id": "E7", "customer_id": "ato1", "decision": "review"},    # 2nd event after it
                 {"event_id": "E8", "customer_id": "legit", "decision": "allow"},
                 {"event_id": "E9", "customer_id": "ring3", "decision": "review"}]   # first event
    truth = {"customer_id": ["ring1", "ring2", "ato1", "legit", "ring3", "old_ring"],
             "is_fraud_true": [True, True, True, False, True, True],
             "fraud_type": ["ring", "ring", "account_takeover", None, "ring", "ring"],
             "fraud_start_ts": ["2026-01-01T10:00:00Z", "2026-01-02T00:00:00Z", "2026-01-01T12:00:00Z", None,
                                "2026-01-03T00:00:00Z", "2025-06-01T00:00:00Z"]}
    _write(tmp_path, events, decisions, truth)
    out = live_outcomes(tmp_path / "events.jsonl", tmp_path / "decisions.jsonl", tmp_path / "truth.parquet")

    ring = out["new_ring_accounts"]
    assert (ring["in_stream"], ring["blocked"], ring["reviewed"], ring["missed"]) == (3, 1, 1, 1)
    assert ring["events_to_decision"]["first_event"] == 1 and ring["events_to_decision"]["max"] == 2
    ato = out["takeovers"]
    assert (ato["in_stream"], ato["blocked"], ato["reviewed"], ato["missed"]) == (1, 0, 1, 0)
    assert ato["events_to_decision"]["p50"] == 2.0
    assert out["decisions_per_day"]["2026-01-01"] == {"block": 1, "review": 0, "allow": 1}
    assert out["decisions_per_day"]["2026-01-03"] == {"block": 0, "review": 2, "allow": 1}
