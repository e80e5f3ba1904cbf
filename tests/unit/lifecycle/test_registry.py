"""The model registry on a real MLflow store (SQLite, as by default): tracked runs, versions, stages,
aliases and the recorded history of every change."""

from __future__ import annotations

import json

import pytest

from fraudgraph.lifecycle import ModelRegistry, RegistryError, RunTracker


@pytest.fixture
def registry_settings(settings, tmp_path):
    return settings.registry.model_copy(update={"dir": str(tmp_path / "models")})


def tracked_run(tracker, tmp_path, name, pr_auc):
    model = tmp_path / name
    model.mkdir()
    (model / "manifest.json").write_text(json.dumps({"model_version": name}))
    return tracker.log_training(model, params={"training.epochs": 3}, metrics={"models": {"rgcn_edge": {
        "labels": {"pr_auc": pr_auc}}}, "curve": [1, 2]}, lineage={"model_id": name, "fraudgraph.labels_dir": "L"})


def test_a_tracked_run_keeps_its_parameters_metrics_lineage_and_model_folder(registry_settings, tmp_path):
    tracker = RunTracker(registry_settings)
    run_id = tracked_run(tracker, tmp_path, "m-one", 0.41)
    run = tracker.client.get_run(run_id)
    assert run.data.params == {"training.epochs": "3"}
    assert run.data.metrics == {"models.rgcn_edge.labels.pr_auc": 0.41}  # lists are not metrics
    assert run.data.tags["model_id"] == "m-one" and run.info.status == "FINISHED"
    tracker.log_metrics(run_id, {"precision": 0.5, "recall": None}, prefix="live.")
    assert tracker.run_metrics(run_id)["live.precision"] == 0.5
    registry = ModelRegistry(registry_settings)
    version = registry.register(run_id)
    assert json.loads((registry.model_dir(version.version) / "manifest.json").read_text()) == {"model_version": "m-one"}
    assert registry.lineage(version.version) == {"model_id": "m-one", "fraudgraph.labels_dir": "L"}


def test_stages_one_production_at_a_time_and_rollback_puts_the_previous_one_back(registry_settings, tmp_path):
    tracker, registry = RunTracker(registry_settings), ModelRegistry(registry_settings)
    assert registry.versions() == [] and registry.in_stage("production") is None
    runs = [tracked_run(tracker, tmp_path, f"m{i}", 0.4) for i in range(3)]
    first, second, third = (registry.register(r) for r in runs)
    assert registry.register(runs[0]).version == first.version == 1  # registering a run twice: one version
    assert [v.stage for v in registry.versions()] == ["candidate"] * 3
    with pytest.raises(RegistryError, match="no version is in production"):
        registry.rollback(reason="nothing yet")
    registry.move(1, "production", reason="first")
    with pytest.raises(RegistryError, match="first in production"):
        registry.rollback(reason="nothing before it")
    registry.move(2, "production", reason="better", evaluation={"figures": {"candidate": {"pr_auc": 0.5}}})
    registry.move(3, "shadow", reason="try beside")
    assert [v.stage for v in registry.versions()] == ["archived", "production", "shadow"]
    assert registry.in_stage("production").version == 2 and registry.in_stage("shadow").version == 3
    back = registry.rollback(reason="live precision fell")
    assert back.version == 1 and registry.in_stage("production").version == 1
    assert [v.stage for v in registry.versions()] == ["production", "archived", "shadow"]
    history = registry.get(2).history
    assert [(c["from"], c["to"]) for c in history] == [("candidate", "production"), ("production", "archived")]
    assert history[0]["evaluation"] == {"figures": {"candidate": {"pr_auc": 0.5}}}
    assert back.history[-1]["reason"] == "rollback: live precision fell" and back.history[-1]["forced"]
    with pytest.raises(RegistryError, match="stage 'staging'"):
        registry.move(3, "staging", reason="no such stage")
    with pytest.raises(RegistryError, match="version 9"):
        registry.get(9)


def test_two_promotions_at_once_one_moves_and_the_other_is_told_production_moved(registry_settings, tmp_path):
    """Two gates judged candidates against version 1 at the same time: the first to move wins; the other
    must not replace it unjudged (before the stage lock, both moved and the second archived the first)."""
    import threading

    from fraudgraph.lifecycle import ProductionMoved

    tracker, registry = RunTracker(registry_settings), ModelRegistry(registry_settings)
    for i in range(3):
        registry.register(tracked_run(tracker, tmp_path, f"m{i}", 0.4))
    registry.move(1, "production", reason="first")
    start, outcome = threading.Barrier(2), {}

    def promote(version: int) -> None:
        own = ModelRegistry(registry_settings)  # as another process would: its own client
        start.wait()
        try:
            own.move(version, "production", reason="gate passed", expect_production=1)
            outcome[version] = "moved"
        except ProductionMoved:
            outcome[version] = "refused"

    threads = [threading.Thread(target=promote, args=(v,)) for v in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcome.values()) == ["moved", "refused"]
    winner = next(v for v, o in outcome.items() if o == "moved")
    loser = 5 - winner
    stages = {v.version: v.stage for v in registry.versions()}
    assert stages == {1: "archived", winner: "production", loser: "candidate"}
    with pytest.raises(ProductionMoved, match=f"production is version {winner}, not 1"):
        registry.move(loser, "production", reason="judged against 1", expect_production=1)
    registry.move(loser, "production", reason="judged against the winner", expect_production=winner)
    assert registry.in_stage("production").version == loser


def test_a_production_model_of_an_older_schema_is_replaced_without_a_gate_it_cannot_run(
    settings, registry_settings, tmp_path
):
    """After an upgrade that changes the schema, the production model can score nothing (the consumer and
    the API refuse it): the gate has nothing to measure against, and the candidate is promoted with that
    reason recorded. A production model of this schema still goes through the gate."""
    from fraudgraph.schema import SCHEMA_VERSION
    from training.promotion import promote

    tracker, registry = RunTracker(registry_settings), ModelRegistry(registry_settings)
    first, second = (registry.register(tracked_run(tracker, tmp_path, f"m{i}", 0.4)) for i in range(2))
    registry.move(first.version, "production", reason="first")
    manifest = registry.model_dir(first.version) / "manifest.json"
    settings = settings.model_copy(update={"registry": registry_settings})

    manifest.write_text(json.dumps({"model_version": "m0", "schema_version": SCHEMA_VERSION}))
    gated = promote(settings, registry, second.version)  # its snapshot is gone: the gate cannot measure it
    assert not gated.promoted and "snapshot" in gated.regressions[0]

    manifest.write_text(json.dumps({"model_version": "m0", "schema_version": SCHEMA_VERSION - 1}))
    replaced = promote(settings, registry, second.version)
    assert replaced.promoted and not replaced.forced and replaced.figures is None
    assert replaced.reason == (
        f"production version 1 cannot serve this fraudgraph: schema version {SCHEMA_VERSION - 1} "
        f"does not match this fraudgraph ({SCHEMA_VERSION})"
    )
    assert registry.in_stage("production").version == second.version
    assert registry.get(second.version).history[-1]["reason"] == replaced.reason
