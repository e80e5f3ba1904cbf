"""Bring your own data: a team's export that is not shaped like the default world goes through
profile -> ETL -> labels -> train with only the settings the profile suggests plus a column mapping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

# The team's own column names: contract column -> theirs, per table
TEAM_COLUMNS = {
    "events": {"event_id": "id", "customer_id": "user_id", "ts": "event_time", "device_id": "device"},
    "customers": {"customer_id": "user_id", "signup_ts": "created"},
    "blocks": {"customer_id": "user_id", "blocked_at": "blocked"},
    "appeals": {"customer_id": "user_id", "contacted_at": "opened"},
}
HISTORY_DAYS = 30


def epoch_seconds(values: pd.Series) -> pd.Series:
    ts = pd.to_datetime(values, utc=True)
    return (ts.dt.as_unit("ms").astype("int64") // 1000).where(ts.notna()).astype("Int64")


def team_export(world: Path, out: Path) -> tuple[Path, pd.Timestamp]:
    """The last HISTORY_DAYS of the world's events, every block and appeal, renamed, epoch seconds, and
    appeals without resolution times."""
    hist = world / "historical"
    cutoff = pd.Timestamp(json.loads((world / "manifest.json").read_text())["cutoff"])
    events = pd.read_parquet(hist / "events.parquet")
    events = events.loc[pd.to_datetime(events["ts"], utc=True) >= cutoff - pd.Timedelta(days=HISTORY_DAYS)]
    tables = {
        "events": events.assign(ts=epoch_seconds(events["ts"])),
        "customers": pd.read_parquet(hist / "customers.parquet"),
        "blocks": pd.read_parquet(hist / "blocks.parquet"),
        "appeals": pd.read_parquet(hist / "appeals.parquet").drop(columns=["resolved_at"]),
    }
    tables["customers"]["signup_ts"] = epoch_seconds(tables["customers"]["signup_ts"])
    tables["blocks"]["blocked_at"] = epoch_seconds(tables["blocks"]["blocked_at"])
    tables["appeals"]["contacted_at"] = epoch_seconds(tables["appeals"]["contacted_at"])
    out.mkdir(parents=True)
    for name, frame in tables.items():
        frame.rename(columns={ours: theirs for ours, theirs in TEAM_COLUMNS[name].items()}) \
            .to_parquet(out / f"{name}.parquet", index=False)
    return out, cutoff


def fraudgraph(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fraudgraph.cli.main", *args], capture_output=True, text=True,
                          timeout=900, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def trained_export(tmp_path_factory, settings):
    """A short-history export with the team's own column names taken through profile -> ETL -> labels ->
    train (each step checked on the way): its folder, the suggested config and the ground truth."""
    from fraudgraph.synthetic.world import WorldGenerator

    tmp_path = tmp_path_factory.mktemp("bring-your-own-data")

    # fraud mostly by long-standing accounts (hijacked), in a world whose export holds 30 days of events
    world_settings = settings.world.model_copy(update={
        "customers": 7000, "chunk_customers": 7000, "history_days": 150, "live_days": 5,
        "fraud": settings.world.fraud.model_copy(update={"prevalence": 0.15, "takeover_share": 0.6,
                                                         "ring_share": 0.3}),
        # blocks within days of the fraud, as a team that blocks fast sees it, and fraudsters who rarely
        # contest them (an appeal keeps a block out of the fraud labels: this short export needs them)
        "blocking": settings.world.blocking.model_copy(update={"block_delay_median_days": 3,
                                                               "fraud_appeal_rate": 0.05})})
    WorldGenerator(world_settings).generate(tmp_path / "world", progress=False)
    team, cutoff = team_export(tmp_path / "world", tmp_path / "team")
    truth = tmp_path / "world" / "truth" / "ground_truth.parquet"

    # without the mapping, the ETL refuses in one line per column, before Spark starts
    result = fraudgraph("etl", "--input", str(team), "--graph", f"sqlite:///{tmp_path / 'refused.db'}")
    assert result.returncode == 2 and "events.customer_id: missing" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "refused.db").exists()

    mapping = tmp_path / "columns.yaml"
    mapping.write_text(yaml.safe_dump({"etl": {"columns": TEAM_COLUMNS}}))
    result = fraudgraph("profile", "--input", str(team), "--out", str(tmp_path / "profile"), "--config", str(mapping),
                        "--json")
    assert result.returncode == 0, result.stderr
    profile = json.loads(result.stdout)
    assert profile["span"]["events"]["days"] <= HISTORY_DAYS
    assert not profile["appeals"]["resolution_times"]
    suggested = yaml.safe_load((tmp_path / "profile" / "suggested-config.yaml").read_text())
    assert suggested["etl"]["columns"] == TEAM_COLUMNS
    assert suggested["training"]["split"]["test_days"] + suggested["training"]["split"]["val_days"] < HISTORY_DAYS
    config = str(tmp_path / "profile" / "suggested-config.yaml")

    uri = f"sqlite:///{tmp_path / 'graph.db'}"
    env = {"FRAUDGRAPH_SPARK__MASTER": "local[2]", "FRAUDGRAPH_SPARK__SHUFFLE_PARTITIONS": "2"}
    result = fraudgraph("etl", "--input", str(team), "--graph", uri, "--snapshot", str(tmp_path / "snap"),
                        "--config", config, "--json", env=env)
    assert result.returncode == 0, result.stderr
    etl = json.loads(result.stdout)
    assert etl["rejected"]["total"] == 0 and etl["rows_read"]["events"] > 0
    history = pd.read_parquet(tmp_path / "snap" / "label_history.parquet")
    assert set(history["kind"]) == {"block", "appeal"} and history["resolved_at"].isna().all()

    result = fraudgraph("labels", "--graph", uri, "--as-of", cutoff.isoformat(), "--out", str(tmp_path / "labels"),
                        "--truth", str(truth), "--config", config, "--json")
    assert result.returncode == 0, result.stderr
    labels = json.loads(result.stdout)
    assert labels["labels"].get("fraud", 0) > 0 and "no_fraud_label" not in labels

    # one deployed refit: the figures below are the validated models' (the averaged refit has its own tests)
    result = fraudgraph("train", "--snapshot", str(tmp_path / "snap"), "--labels", str(tmp_path / "labels"),
                        "--out", str(tmp_path / "model"), "--truth", str(truth), "--config", config, "--json",
                        env={"FRAUDGRAPH_TRAINING__DEPLOYED_REFITS": "1",
                             "FRAUDGRAPH_REGISTRY__DIR": str(tmp_path / "registry")})
    assert result.returncode == 0, result.stderr
    return tmp_path, config, truth


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_short_history_export_with_own_column_names_trains_a_model(trained_export):
    tmp_path, _, _ = trained_export
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    main = metrics["models"]["rgcn_edge"]["truth"]
    for name, m in metrics["models"].items():
        assert m["truth"]["pr_auc"] is not None and m["labels"]["pr_auc"] is not None, name
    # better than chance by a wide margin: the share of fraud among the test customers
    units = main["customers"]
    prevalence = sum(t["fraudsters"] for t in main["by_fraud_type"].values()) / units
    print(f"short-history export: rgcn_edge PR-AUC vs truth {main['pr_auc']:.3f}, prevalence {prevalence:.4f}, "
          f"ratio {main['pr_auc'] / prevalence:.1f}; splits {metrics['split']['labels']}")
    assert main["pr_auc"] > 2 * prevalence


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_registry_promotes_the_trained_model_and_its_gate_refuses_a_deliberately_worse_one(trained_export):
    """Tracked runs, the registry and the promotion gate through the CLI: the first model goes to
    production; a retrain with a crippled configuration (a learning rate that leaves it untrained) is
    refused on the candidate's test split, promoted only when forced with a reason, and rolled back."""
    tmp_path, config, _ = trained_export
    registry = {"FRAUDGRAPH_REGISTRY__DIR": str(tmp_path / "registry")}

    def models(*args: str) -> subprocess.CompletedProcess:
        return fraudgraph("models", *args, "--config", config, "--json", env=registry)

    run = json.loads((tmp_path / "model" / "run.json").read_text())  # every training run is tracked
    first = models("register", "--model", str(tmp_path / "model"))
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["run_id"] == run["run_id"] and json.loads(first.stdout)["version"] == 1
    promoted = models("promote", "1")
    assert promoted.returncode == 0, promoted.stderr
    assert json.loads(promoted.stdout)["promoted"] and json.loads(promoted.stdout)["reason"] == "first model in production"

    # the same export retrained with a configuration that cannot learn
    crippled = {**registry, "FRAUDGRAPH_TRAINING__DEPLOYED_REFITS": "1", "FRAUDGRAPH_TRAINING__LEARNING_RATE": "1e-7",
                "FRAUDGRAPH_TRAINING__MIN_EPOCHS": "1", "FRAUDGRAPH_TRAINING__MAX_EPOCHS": "1",
                "FRAUDGRAPH_TRAINING__GBDT__MAX_ITER": "5", "FRAUDGRAPH_TRAINING__BOOTSTRAP_ROUNDS": "0"}
    result = fraudgraph("train", "--snapshot", str(tmp_path / "snap"), "--labels", str(tmp_path / "labels"),
                        "--out", str(tmp_path / "worse"), "--config", config, "--json", env=crippled)
    assert result.returncode == 0, result.stderr
    assert models("register", "--model", str(tmp_path / "worse")).returncode == 0
    refused = models("promote", "2")
    assert refused.returncode == 1, refused.stderr
    verdict = json.loads(refused.stdout)
    assert not verdict["promoted"] and verdict["production_before"] == 1
    assert any(r.startswith("pr_auc:") for r in verdict["regressions"]), verdict
    figures = verdict["figures"]  # both on the candidate's test split, each as validated
    assert figures["candidate"]["customers"] == figures["production"]["customers"] > 0
    assert figures["candidate"]["judged"] == figures["production"]["judged"] == "validated"
    assert figures["production"]["pr_auc"] > figures["candidate"]["pr_auc"] + 0.02
    listed = {v["version"]: v["stage"] for v in json.loads(models("list").stdout)["versions"]}
    assert listed == {1: "production", 2: "candidate"}
    shown = json.loads(models("show", "2").stdout)
    assert "refused by the gate" in shown["history"][-1]["reason"]
    assert shown["lineage"]["fraudgraph.snapshot_fingerprint"] and shown["lineage"]["fraudgraph.code_version"]

    # forced: only with a reason, which is recorded; then rolled back
    no_reason = models("promote", "2", "--force")
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    forced = models("promote", "2", "--force", "--reason", "test: the gate's refusal overridden")
    assert forced.returncode == 0 and json.loads(forced.stdout)["forced"]
    change = json.loads(models("show", "2").stdout)["history"][-1]
    assert change["to"] == "production" and change["forced"] and change["reason"].startswith("test:")
    back = models("rollback", "--reason", "test: back to the validated model")
    assert back.returncode == 0 and json.loads(back.stdout)["version"] == 1
    listed = {v["version"]: v["stage"] for v in json.loads(models("list").stdout)["versions"]}
    assert listed == {1: "production", 2: "archived"}


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_retrain_registers_once_for_the_same_data_and_promotes_through_the_gate(trained_export):
    """The retraining job from the graph and the ETL snapshot, run twice as cron would: the second run
    finds the version trained on the same data, labels and settings and trains nothing; other settings
    register a candidate for the gate; a warm start begins from production's validated fit."""
    tmp_path, config, _ = trained_export
    cutoff = json.loads((tmp_path / "world" / "manifest.json").read_text())["cutoff"]
    # the job's mechanics, not the model's quality: a short training
    env = {"FRAUDGRAPH_REGISTRY__DIR": str(tmp_path / "registry-retrain"), "FRAUDGRAPH_TRAINING__DEPLOYED_REFITS": "1",
           "FRAUDGRAPH_TRAINING__MIN_EPOCHS": "2", "FRAUDGRAPH_TRAINING__MAX_EPOCHS": "2",
           "FRAUDGRAPH_TRAINING__BOOTSTRAP_ROUNDS": "0", "FRAUDGRAPH_TRAINING__GBDT__MAX_ITER": "20"}
    args = ["retrain", "--graph", f"sqlite:///{tmp_path / 'graph.db'}", "--snapshot", str(tmp_path / "snap"),
            "--as-of", cutoff, "--out", str(tmp_path / "retrain"), "--promote", "--config", config, "--json"]
    first = fraudgraph(*args, env=env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["trained"] and summary["version"] == 1
    assert summary["promotion"]["promoted"] and summary["promotion"]["reason"] == "first model in production"
    assert (Path(summary["model_dir"]) / "run.json").exists()
    again = fraudgraph(*args, env=env)
    assert again.returncode == 0, again.stderr
    repeat = json.loads(again.stdout)
    assert not repeat["trained"] and repeat["version"] == 1 and repeat["retrain_key"] == summary["retrain_key"]
    assert repeat["promotion"]["reason"] == "already in production"
    listed = fraudgraph("models", "list", "--config", config, "--json", env=env)
    assert [v["stage"] for v in json.loads(listed.stdout)["versions"]] == ["production"]

    # other settings (a model that cannot learn): a new candidate, judged by the gate on the graph the
    # training built (read once in the job), with the figures a promotion on its own measures
    worse = {**env, "FRAUDGRAPH_TRAINING__LEARNING_RATE": "1e-7", "FRAUDGRAPH_TRAINING__MAX_EPOCHS": "1",
             "FRAUDGRAPH_TRAINING__MIN_EPOCHS": "1", "FRAUDGRAPH_LOGGING__LEVEL": "INFO"}
    third = fraudgraph(*args, env=worse)
    assert third.returncode == 0, third.stderr
    refused = json.loads(third.stdout)
    assert refused["trained"] and refused["version"] == 2 and not refused["promotion"]["promoted"]
    assert third.stderr.count("decision-time examples: reading the graph as of each of") == 1, third.stderr
    assert "is read again" in third.stderr
    alone = fraudgraph("models", "promote", "2", "--config", config, "--json", env=env)
    assert alone.returncode == 1, alone.stderr
    assert json.loads(alone.stdout)["figures"] == refused["promotion"]["figures"]

    # a warm start (retrain.warm_start): the candidate's rgcn_edge starts from production's validated fit; at a
    # learning rate that barely moves the weights, the candidate's validated fit is production's
    warm = {**env, "FRAUDGRAPH_RETRAIN__WARM_START__ENABLED": "true", "FRAUDGRAPH_RETRAIN__WARM_START__MIN_EPOCHS": "1",
            "FRAUDGRAPH_RETRAIN__WARM_START__MAX_EPOCHS": "1", "FRAUDGRAPH_TRAINING__LEARNING_RATE": "1e-9"}
    fourth = fraudgraph(*args, env=warm)
    assert fourth.returncode == 0, fourth.stderr
    started = json.loads(fourth.stdout)
    assert started["trained"] and started["version"] == 3 and started["warm_start_from"] == 1
    shown = json.loads(fraudgraph("models", "show", "3", "--config", config, "--json", env=env).stdout)
    assert shown["lineage"]["fraudgraph.warm_start_from"] == "1"
    metrics = json.loads((Path(started["model_dir"]) / "metrics.json").read_text())
    assert metrics["training"]["rgcn_edge"]["warm_started"] and metrics["deployed"]["warm_started"]
    weights = [torch.load(Path(d) / "baselines" / "rgcn_edge_validated.pt", weights_only=True)
               for d in (summary["model_dir"], started["model_dir"])]  # fmt: skip
    assert all(torch.allclose(weights[0][k], w, atol=1e-6) for k, w in weights[1].items())
