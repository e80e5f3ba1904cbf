"""The ETL's input contract, checked from file footers and headers before any Spark work."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl.contract import InputContractError, check_input
from fraudgraph.timeutil import to_epoch_ms


def write_tables(folder, *, events=None, customers=None, blocks=None, appeals=None):
    tables = {
        "events": events or {"event_id": ["e1"], "event_type": ["signup"], "ts": ["2025-01-01T00:00:00Z"],
                             "customer_id": ["c1"], "device_id": ["d1"]},
        "customers": customers or {"customer_id": ["c1"], "signup_ts": ["2025-01-01T00:00:00Z"]},
        "blocks": blocks or {"customer_id": ["c1"], "blocked_at": ["2025-02-01T00:00:00Z"]},
        "appeals": appeals or {"customer_id": ["c1"], "contacted_at": ["2025-02-02T00:00:00Z"],
                               "outcome": ["upheld"]},
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, cols in tables.items():
        pq.write_table(pa.table(cols), folder / f"{name}.parquet")
    return folder


def problems(folder, columns=None) -> list[str]:
    with pytest.raises(InputContractError) as err:
        check_input(str(folder), columns)
    return err.value.problems


def test_optional_columns_may_be_absent(tmp_path):
    check_input(str(write_tables(tmp_path)))  # appeals without resolved_at, customers without value


def test_every_problem_is_one_line_naming_table_column_and_expectation(tmp_path):
    folder = write_tables(tmp_path, events={"event_id": ["e1"], "event_type": ["signup"], "ts": [True],
                                            "user": ["c1"]},
                          blocks={"customer_id": ["c1"]})
    found = problems(folder)
    assert found == [
        "events.ts: type bool, expected required, a timestamp (ISO-8601 string, epoch seconds or epoch ms)",
        "events.customer_id: missing (required, an identifier (string or integer)); map your own name with "
        "etl.columns.events.customer_id",
        "blocks.blocked_at: missing (required, a timestamp (ISO-8601 string, epoch seconds or epoch ms)); map your "
        "own name with etl.columns.blocks.blocked_at",
    ]


def test_team_column_names_through_etl_columns(tmp_path):
    folder = write_tables(tmp_path, events={"id": ["e1"], "type": ["signup"], "event_time": [1_735_689_600],
                                            "user_id": ["c1"]})
    mapping = {"events": {"event_id": "id", "event_type": "type", "ts": "event_time", "customer_id": "user_id"}}
    check_input(str(folder), mapping)
    assert problems(folder, {"events": {**mapping["events"], "tss": "x"}})[0].startswith(
        "etl.columns.events.tss: not a column of the events contract")
    assert problems(folder, {"events": {**mapping["events"], "ts": "when"}}) == [
        "events.ts (your column when): missing (required, a timestamp (ISO-8601 string, epoch seconds or epoch ms))"]


def test_csv_headers_and_missing_tables(tmp_path):
    (tmp_path / "events.csv").write_text("event_id,event_type,ts\n")
    found = problems(tmp_path)
    assert found[0].startswith("events.customer_id: missing")
    assert "customers: no customers.parquet or customers.csv" in found[1]
    assert len(found) == 4


def test_epoch_seconds_and_milliseconds_both_read():
    assert to_epoch_ms(1_735_689_600) == to_epoch_ms("1735689600") == to_epoch_ms(1_735_689_600_000) \
        == to_epoch_ms("2025-01-01T00:00:00Z")
    with pytest.raises(ValueError):
        to_epoch_ms(float("inf"))


def test_the_etl_command_refuses_a_bad_input_in_seconds_with_exit_2(tmp_path):
    from click.testing import CliRunner

    from fraudgraph.cli.main import cli

    folder = write_tables(tmp_path / "in", appeals={"customer_id": ["c1"]})
    result = CliRunner().invoke(cli, ["etl", "--input", str(folder), "--graph", f"sqlite:///{tmp_path}/g.db"])
    assert result.exit_code == 2
    assert "appeals.contacted_at: missing" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "g.db").exists()
