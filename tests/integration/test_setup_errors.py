"""Wrong set-ups fail loudly: one line naming the problem, exit 2, no traceback."""

from __future__ import annotations

import os

from click.testing import CliRunner

from fraudgraph.cli.main import cli
from fraudgraph.graph import CustomerUpsert, GraphSetupError, open_graph


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


def test_reading_commands_refuse_a_missing_sqlite_file(tmp_path):
    for args in (["graph", "stats"], ["labels", "--as-of", "2026-01-01", "--out", str(tmp_path / "l")]):
        result = run(*args, "--graph", f"sqlite:///{tmp_path / 'typo.db'}")
        assert result.exit_code == 2, result.output
        assert "no such file" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "typo.db").exists()


def test_a_corrupt_graph_file_is_one_line(tmp_path):
    (tmp_path / "g.db").write_bytes(b"this is not a database, just bytes" * 100)
    result = run("graph", "stats", "--graph", f"sqlite:///{tmp_path / 'g.db'}")
    assert result.exit_code == 2 and "not a usable SQLite database" in result.output
    assert "Traceback" not in result.output


def test_bad_graph_uri_is_one_line(tmp_path):
    result = run("graph", "stats", "--graph", "postgres://nowhere/db")
    assert result.exit_code == 2 and "expected sqlite:///PATH" in result.output


def test_a_graph_refuses_a_process_with_another_pii_key(tmp_path, settings):
    uri = f"sqlite:///{tmp_path / 'g.db'}"
    with open_graph(uri, settings) as store:
        store.upsert_customers([CustomerUpsert("C1", {"signup_ts": 1})])
    other = settings.model_copy(update={"privacy": settings.privacy.model_copy(update={"pii_key": "another-key"})})
    try:
        open_graph(uri, other)
        raise AssertionError("opened with another key")
    except GraphSetupError as exc:
        assert "another PII key" in str(exc)
    result = run("graph", "stats", "--graph", uri, env={"FRAUDGRAPH_PII_KEY": "another-key"})
    assert result.exit_code == 2 and "another PII key" in result.output


def test_no_key_needs_the_demo_key_allowed(tmp_path, settings):
    env = {"FRAUDGRAPH_PII_KEY": ""}
    uri = f"sqlite:///{tmp_path / 'g.db'}"
    # the key is checked first: before the missing graph file, before the broken model artifact
    result = run("labels", "--graph", uri, "--as-of", "2026-01-01", "--out", str(tmp_path / "l"), env=env)
    assert result.exit_code == 2 and "no PII key" in result.output
    (tmp_path / "events.jsonl").write_text("")
    args = ["consume", "--source", f"file://{tmp_path / 'events.jsonl'}", "--graph", uri, "--model", str(tmp_path)]
    result = run(*args, env=env)
    assert result.exit_code == 2 and "no PII key" in result.output
    result = run(*args, env={"FRAUDGRAPH_PII_KEY": "a-key"})
    assert result.exit_code == 2 and "missing model.pt" in result.output  # a broken artifact: one line
    with open_graph(uri, settings) as store:
        store.upsert_customers([CustomerUpsert("C1", {"signup_ts": 1})])
    result = run("graph", "stats", "--graph", uri, env=env)
    assert result.exit_code == 2 and "no PII key" in result.output and "allow_demo_key" in result.output
    assert os.environ.get("FRAUDGRAPH_PII_KEY")  # the runner's env did not leak


def test_commands_without_a_pii_key_stop_first_in_one_line(tmp_path):
    """etl, labels, train, score, consume, api and evaluate check the key before Spark, a server or a long
    step starts: one line on stderr naming the setting, exit 2, no traceback, nothing written."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "FRAUDGRAPH_PII_KEY"}
    env["FRAUDGRAPH_PRIVACY__ALLOW_DEMO_KEY"] = "false"
    graph = f"sqlite:///{tmp_path / 'g.db'}"
    (tmp_path / "events.jsonl").write_text("")
    commands = {
        "etl": ["etl", "--input", str(tmp_path), "--graph", graph],
        "labels": ["labels", "--graph", graph, "--as-of", "2026-01-01", "--out", str(tmp_path / "l")],
        "train": ["train", "--snapshot", str(tmp_path), "--labels", str(tmp_path), "--out", str(tmp_path / "m")],
        "score": ["score", "--graph", graph, "--model", str(tmp_path), "--out", str(tmp_path / "s")],
        "consume": ["consume", "--source", str(tmp_path / "events.jsonl"), "--graph", graph, "--model", str(tmp_path)],
        "api": ["api", "--graph", graph, "--model", str(tmp_path), "--port", "0"],
        "evaluate": ["evaluate", "--events", str(tmp_path / "events.jsonl"), "--truth", str(tmp_path / "events.jsonl"),
                     "--graph", graph, "--model", str(tmp_path), "--out", str(tmp_path / "e")],
    }
    for name, args in commands.items():
        proc = subprocess.run([sys.executable, "-m", "fraudgraph.cli.main", *args], env=env, capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2, (name, proc.stderr)
        assert len(lines) == 1 and "no PII key" in lines[0] and "FRAUDGRAPH_PII_KEY" in lines[0], (name, lines)
        assert "Traceback" not in proc.stderr and "spark" not in proc.stderr.lower(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]  # nothing written, no graph made


def test_an_empty_or_foreign_sqlite_file_is_not_a_graph(tmp_path, settings):
    import sqlite3

    (tmp_path / "empty.db").write_bytes(b"")
    with sqlite3.connect(tmp_path / "foreign.db") as db:
        db.execute("CREATE TABLE something (x)")
    for name in ("empty.db", "foreign.db"):
        before = (tmp_path / name).read_bytes()
        result = run("graph", "stats", "--graph", f"sqlite:///{tmp_path / name}")
        assert result.exit_code == 2 and "holds no identity graph" in result.output, result.output
        assert (tmp_path / name).read_bytes() == before  # the check wrote nothing
