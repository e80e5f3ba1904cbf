"""The simulated month (``fraudgraph simulate-month``): the live stream decided period by period by the model
in production, a retrain on the graph the consumer wrote at each period's end, and the gate's decision
taking effect for the next period."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from fraudgraph.timeutil import to_epoch_ms

pytestmark = pytest.mark.slow

DAY_MS = 86_400_000


@pytest.mark.timeout(900)
def test_a_simulated_month_retrains_on_what_the_consumer_wrote_and_the_gate_decides_the_next_period(tmp_path):
    out = tmp_path / "month"
    # a pipeline check, not a quality one: a small world, a small model trained a few epochs
    env = {**os.environ, "FRAUDGRAPH_WORLD__CUSTOMERS": "2000", "FRAUDGRAPH_WORLD__FRAUD__PREVALENCE": "0.08",
           "FRAUDGRAPH_WORLD__LIVE_DAYS": "8", "FRAUDGRAPH_RETRAIN__EVERY_DAYS": "4",
           "FRAUDGRAPH_RETRAIN__CONSUMER_EVENTS": "200", "FRAUDGRAPH_CONSUMER__MAX_BATCH": "200",
           "FRAUDGRAPH_TRAINING__MAX_EPOCHS": "3", "FRAUDGRAPH_TRAINING__HIDDEN_DIM": "16",
           "FRAUDGRAPH_TRAINING__DEPLOYED_REFITS": "1", "FRAUDGRAPH_TRAINING__MIN_POSITIVES": "1",
           "FRAUDGRAPH_TRAINING__BOOTSTRAP_ROUNDS": "20", "FRAUDGRAPH_TRAINING__BASELINES": "false",
           "FRAUDGRAPH_REGISTRY__DIR": str(tmp_path / "deployment-registry")}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "fraudgraph.cli.main", "simulate-month", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=850, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)

    # two periods of four days; the first model went straight to production and decided the first
    first, second = report["periods"]
    assert [first["days"], second["days"]] == [[1, 4], [5, 8]]
    assert report["first_model"]["promoted"] and first["model_version"] == 1
    for period in (first, second):
        replay = period["replay"]
        assert replay["parts"]["consumer"]["events"] > 0 and replay["parity"]["equal"]
        assert period["live"]["active_fraudsters"] > 0
        # every decision of the period counted in the drift log, against the deciding model's reference
        assert period["drift"]["decisions"] == sum(replay["decisions"].values()) > 0

    # at the end of the first period a retrain ran on the graph the consumer wrote: its snapshot holds the
    # link events the consumer logged in the period, and nothing after the period's end
    retrain = first["retrain"]
    assert retrain["trained"] and retrain["version"] == 2
    cutoff = json.loads((out / "world" / "manifest.json").read_text())["cutoff"]
    start = to_epoch_ms(cutoff)
    snapshot = out / "retrain" / f"as-of-{start + 4 * DAY_MS}" / "snapshot"
    ts = pd.read_parquet(snapshot / "link_events.parquet", columns=["ts"])["ts"]
    assert ts.max() <= start + 4 * DAY_MS and (ts >= start).sum() > 0
    logged = sorted(p.name for p in (out / "link-events").glob("*.jsonl"))
    assert logged[0] == f"{pd.Timestamp(cutoff).date().isoformat()}.jsonl" and len(logged) == 8
    assert first["labels"]["fraud"] > 0

    # the gate's decision took effect for the next period: the candidate decides it only if promoted
    promotion = retrain["promotion"]
    assert promotion["production_before"] == 1 and promotion["figures"]["candidate"]["customers"] > 0
    assert second["model_version"] == (2 if promotion["promoted"] else 1)
    assert promotion["promoted"] or promotion["regressions"]
    assert "retrain" not in second  # the month ends
    stages = {v["version"]: v["stage"] for v in report["registry"]}
    assert stages == ({1: "archived", 2: "production"} if promotion["promoted"] else {1: "production", 2: "candidate"})

    # the simulation has its own registry: the deployment's is untouched
    assert not (tmp_path / "deployment-registry").exists()
    text = (out / "report.md").read_text()
    assert "| 1 (days 1-4) | v1 |" in text and "| 2 (days 5-8) | v" in text
    assert ("v2 promoted" if promotion["promoted"] else "v2 refused") in text and "no retrain (the month ends)" in text
