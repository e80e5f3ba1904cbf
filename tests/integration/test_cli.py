import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from fraudgraph.cli.main import cli
from fraudgraph.graph import IdentityLink, open_graph


def test_graph_stats_json_lists_every_label(tmp_path, settings):
    uri = f"sqlite:///{tmp_path / 'g.db'}"
    with open_graph(uri, settings) as g:
        g.upsert_links([IdentityLink("c1", "email", "h", 1, 1, 1)])
    result = CliRunner().invoke(cli, ["graph", "stats", "--graph", uri, "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats == {"vertices": {"customer": 1, "device": 0, "ip": 0, "email": 1, "card": 0, "subnet": 0},
                     "edges": {"has_device": 0, "has_ip": 0, "has_email": 1, "has_card": 0, "has_subnet": 0}}


def test_refresh_summaries_rebuilds_what_identifier_stats_read(tmp_path, settings):
    import sqlite3

    uri = f"sqlite:///{tmp_path / 'g.db'}"
    with open_graph(uri, settings) as g:
        g.upsert_links([IdentityLink(c, "ip", "hub", 10 + i, 20, 2) for i, c in enumerate(["a", "b", "c"])])
    db = sqlite3.connect(tmp_path / "g.db")  # a load that bypassed the store left the summaries wrong
    db.execute("UPDATE identifier_link_summary SET degree = 99, events = 0")
    db.commit()
    db.close()
    result = CliRunner().invoke(cli, ["graph", "refresh-summaries", "--graph", uri, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"customers": 3, "identifiers": 1}
    with open_graph(uri, settings) as g:
        assert g._identifier_stats([("ip", "hub")]).values.tolist() == [["ip", "hub", 3, 10, 12, 6]]
        assert g.neighbourhoods(["a"])["a"].identifiers[0].degree == 3


def test_bad_config_fails_at_start_naming_the_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("graph:\n  fanout: 3\n")
    result = CliRunner().invoke(cli, ["graph", "stats", "--config", str(cfg)])
    assert result.exit_code != 0
    assert "graph.fanout: unknown key" in result.output


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    # a pipeline check, not a quality one: a small model trained a few epochs (training was 3 of the 4 minutes)
    env = {**os.environ, "FRAUDGRAPH_WORLD__CUSTOMERS": "2000", "FRAUDGRAPH_TRAINING__MAX_EPOCHS": "3",
           "FRAUDGRAPH_TRAINING__HIDDEN_DIM": "16", "FRAUDGRAPH_TRAINING__DEPLOYED_REFITS": "2",  # still averaged
           "FRAUDGRAPH_TRAINING__MIN_POSITIVES": "1", "FRAUDGRAPH_TRAINING__BOOTSTRAP_ROUNDS": "20",
           "FRAUDGRAPH_WORLD__FRAUD__PREVALENCE": "0.08",  # a small world with enough fraud to learn from
           "FRAUDGRAPH_WORLD__LIVE_DAYS": "10",  # the consumer's part decides at every event: keep it short
           "FRAUDGRAPH_REPLAY__CONSUMER_EVENTS": "200", "FRAUDGRAPH_CONSUMER__MAX_BATCH": "200",
           "FRAUDGRAPH_REGISTRY__DIR": str(tmp_path / "registry")}
    proc = subprocess.run([sys.executable, "-m", "fraudgraph.cli.main", "demo", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=1100, env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (out / "report.md").exists()
    assert report["stages"]["etl"]["graph_stats"]["vertices"]["customer"] > 0
    live = report["stages"]["live"]
    assert live["active_fraudsters"] > 0 and live["events"] > 0
    assert "live" not in json.loads((out / "model" / "metrics.json").read_text())  # the replay only reads the model
    text = (out / "report.md").read_text()
    assert "## Headline: the live stream, decided as the real-time consumer decides it" in text
    # the first poll went through the real consumer, the rest was decided in bulk, and they agreed there
    parts = live["parts"]
    assert parts["consumer"]["last_line"] == 200 and parts["bulk"]["first_line"] == 201
    assert live["parity"]["equal"] and live["parity"]["matched"] == parts["consumer"]["decisions"] > 0
    assert "the rest in bulk from the point-in-time history, equal to the consumer's on its part" in text
    for name in ("live_pr", "offline_pr", "per_day", "scores", "neighbourhoods"):
        png = out / report["figures"][name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png.name})" in text
    # the model is tracked, registered and, the registry's first, promoted without a comparison
    registry = report["stages"]["registry"]
    assert registry["promoted"] and registry["stage"] == "production" and registry["version"] == 1
    assert registry["run_id"] == json.loads((out / "model" / "run.json").read_text())["run_id"]
    assert "## Model registry" in text and "first model in production" in text
    # not a terminal: progress comes as log lines (each model's epochs with the validation figure)
    assert "training rgcn_edge: " in proc.stderr and "val_pr_auc" in proc.stderr
    assert "replay: the consumer's part, step by step: " in proc.stderr


@pytest.mark.slow
@pytest.mark.gremlin
def test_gremlin_server_status_command(gremlin_server):
    args = ["gremlin-server", "status", "--json", "--port", str(gremlin_server.port),
            "--state-dir", str(gremlin_server.state_dir)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["running"] and status["answering"] and status["url"] == gremlin_server.url
