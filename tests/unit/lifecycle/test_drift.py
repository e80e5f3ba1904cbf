"""PSI against a training reference, per day."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fraudgraph.lifecycle.drift import DailyDrift, DriftReference, population_stability


def test_the_same_distribution_is_stable_and_a_shifted_one_is_not():
    rng = np.random.default_rng(3)
    train = rng.normal(size=(20_000, 2))
    reference = DriftReference.fit(["a", "b"], train, rng.uniform(size=5_000))
    assert len(reference.edges["a"]) == 9 and abs(sum(reference.shares["a"]) - 1) < 1e-6
    same = population_stability(reference.shares["a"], reference.counts("a", rng.normal(size=5_000)))
    shifted = population_stability(reference.shares["a"], reference.counts("a", rng.normal(1.0, size=5_000)))
    assert same < 0.02 and shifted > 0.25
    assert population_stability(reference.shares["a"], np.zeros(10)) is None


def test_days_add_up_and_survive_the_log_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    reference = DriftReference.fit(["a", "b"], rng.normal(size=(5_000, 2)), rng.uniform(size=1_000))
    reference.save(tmp_path / "ref.json")
    reference = DriftReference.load(tmp_path / "ref.json")
    daily = DailyDrift()
    for _ in range(2):
        daily.add("2026-01-02", reference, ["a", "b"], rng.normal(2.0, size=(500, 2)), rng.uniform(size=500),
                  ["allow"] * 450 + ["block"] * 50)
    daily.add("2026-01-03", reference, ["a", "b"], np.empty((0, 2)), [], ["blocked"])
    summary = daily.summary("2026-01-02", reference)
    assert summary["decisions"] == 1000 and summary["decision_mix"] == {"allow": 0.9, "block": 0.1}
    assert summary["feature_psi"]["a"] > 1 and summary["score_psi"] < 0.05
    assert daily.summary("2026-01-03", reference)["score_psi"] is None  # a day with no customer scored
    again = DailyDrift()
    for day in daily.days():
        again.merge(daily.record(day))
    assert again.summary("2026-01-02", reference) == summary


def test_the_report_keeps_one_models_days_and_flags_those_at_or_above_the_alert(tmp_path):
    from fraudgraph.evaluation.drift_report import drift_summary, render_drift

    rng = np.random.default_rng(5)
    reference = DriftReference.fit(["a", "b"], rng.normal(size=(5_000, 2)), rng.uniform(size=1_000))
    daily, lines = DailyDrift(), []
    for day, shift in (("2026-01-01", 0.0), ("2026-01-02", 0.0), ("2026-01-05", 1.5)):
        daily.add(day, reference, ["a", "b"], rng.normal(shift, size=(2_000, 2)) * [1, 0] + [0, 0.01],
                  rng.uniform(size=2_000), ["allow"] * 2_000)
        lines.append({**daily.record(day), "model_version": "m1"})
    lines.append({**daily.record("2026-01-05"), "day": "2026-01-06", "model_version": "other"})
    (tmp_path / "drift.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    summary = drift_summary(tmp_path / "drift.jsonl", reference, "m1", 4, 0.25)
    assert [d["day"] for d in summary["days"]] == ["2026-01-02", "2026-01-05"]  # 4 days back from the newest
    quiet, moved = summary["days"]
    assert quiet["alerts"] == ["b"] and set(moved["alerts"]) == {"a", "b"}  # b: a constant, far from training
    assert moved["top_features"][0]["feature"] in {"a", "b"} and quiet["score_psi"] < 0.25
    files = render_drift(summary, tmp_path / "out")
    assert "2026-01-05" in Path(files["markdown"]).read_text()
