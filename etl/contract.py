"""The ETL's input contract: which columns each historical table needs, checked before any Spark work.

A fraud team's export rarely uses our names. ``etl.columns`` maps, per table, a contract column to
the team's own column (``{events: {ts: event_time, customer_id: user_id}}``); the check and the job
read the team's names through it. docs/input-contract.md is the human version of ``CONTRACT``.

:func:`check_input` reads only file footers (Parquet) or header lines (CSV), so a wrong table fails in
a second with one line per problem (table, column, expectation), not minutes into a Spark job with a
stack trace. ``hive:`` sources are checked the same way on the metastore's schema
(:func:`check_columns`), still before any data is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TABLES = ("events", "customers", "blocks", "appeals")
# etl.columns: per table, contract column -> the team's column
ColumnMap = Mapping[str, Mapping[str, str]]

# kind of value -> Parquet/Arrow type families accepted for it (CSV columns are text: any kind parses)
ACCEPTED = {
    "id": ("string", "large_string", "int", "uint"),
    "text": ("string", "large_string", "dictionary"),
    "timestamp": ("timestamp", "date", "int", "uint", "string", "large_string"),
    "number": ("int", "uint", "float", "double", "decimal", "string", "large_string"),
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # a key of ACCEPTED
    required: bool
    absent: str = ""  # what an absent optional column means

    @property
    def expectation(self) -> str:
        what = {
            "id": "an identifier (string or integer)",
            "text": "text",
            "timestamp": "a timestamp (ISO-8601 string, epoch seconds or epoch ms)",
            "number": "a number",
        }[self.kind]
        return ("required" if self.required else "optional") + f", {what}"


CONTRACT: dict[str, tuple[Column, ...]] = {
    "events": (
        Column("event_id", "id", True),
        Column("event_type", "text", True),
        Column("ts", "timestamp", True),
        Column("customer_id", "id", True),
        Column("device_id", "text", False, "the event carried no device"),
        Column("ip", "text", False, "no IP"),
        Column("email", "text", False, "no email"),
        Column("card_fingerprint", "text", False, "no card"),
        Column("amount", "number", False, "no amount (payments without one are still identity events)"),
        Column("channel", "text", False, "no channel (web, app_ios, app_android are tagged)"),
    ),
    "customers": (
        Column("customer_id", "id", True),
        Column("signup_ts", "timestamp", True),
        Column("country", "text", False, "unknown country"),
        Column(
            "lifetime_value", "number", False, "unknown value: the decision rules treat it as 0 (block, not review)"
        ),
    ),
    "blocks": (
        Column("customer_id", "id", True),
        Column("blocked_at", "timestamp", True),
        Column("source", "text", False, "unknown source"),
        Column("reason", "text", False, "no reason"),
    ),
    "appeals": (
        Column("customer_id", "id", True),
        Column("contacted_at", "timestamp", True),
        Column("outcome", "text", False, "every appeal is pending (unresolved)"),
        Column(
            "resolved_at",
            "timestamp",
            False,
            "resolution times unknown: an unblock or upheld outcome counts from the contact time",
        ),
    ),
}


class InputContractError(ValueError):
    """The input does not meet the contract; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def renames(columns: ColumnMap | None, table: str) -> dict[str, str]:
    """``{team column: contract column}`` for ``table`` from ``etl.columns`` (contract -> team)."""
    return {theirs: ours for ours, theirs in ((columns or {}).get(table) or {}).items()}


def check_columns(table: str, schema: dict[str, str], columns: ColumnMap | None = None) -> list[str]:
    """Problems of one table: ``schema`` is ``{team column: type family}`` (``"string"`` for CSV)."""
    problems = []
    mapping = (columns or {}).get(table) or {}
    for ours in mapping:
        if ours not in {c.name for c in CONTRACT[table]}:
            problems.append(
                f"etl.columns.{table}.{ours}: not a column of the {table} contract "
                f"(columns: {', '.join(c.name for c in CONTRACT[table])})"
            )
    for col in CONTRACT[table]:
        name = mapping.get(col.name, col.name)
        shown = col.name if name == col.name else f"{col.name} (your column {name})"
        if name not in schema:
            if col.required:
                hint = "" if col.name in mapping else f"; map your own name with etl.columns.{table}.{col.name}"
                problems.append(f"{table}.{shown}: missing ({col.expectation}){hint}")
            continue
        family = schema[name]
        if not family.startswith(ACCEPTED[col.kind]):
            problems.append(f"{table}.{shown}: type {family}, expected {col.expectation}")
    return problems


def table_file(source: str, table: str) -> Path | None:
    """The Parquet or CSV file (or Spark output folder) of ``table`` under ``source``, as the job reads it."""
    base = Path(source)
    for folder in (base / "historical", base):
        for ext in ("parquet", "csv"):
            path = folder / f"{table}.{ext}"
            if path.exists():
                return path
    return None


def file_schema(path: Path) -> dict[str, str]:
    """``{column: type family}`` from a Parquet footer or a CSV header line; reads no rows."""
    if path.suffix == ".parquet":
        import pyarrow.dataset as ds

        return {f.name: _family(f.type) for f in ds.dataset(str(path), format="parquet").schema}
    first = path if path.is_file() else next(iter(sorted(path.glob("*.csv")) + sorted(path.glob("part-*"))), None)
    if first is None:
        return {}
    import csv

    with open(first, newline="", encoding="utf-8", errors="replace") as fh:
        header = next(csv.reader(fh), [])
    return {name.strip(): "string" for name in header}


def _family(arrow_type) -> str:
    text = str(arrow_type)
    for prefix in (
        "large_string",
        "string",
        "timestamp",
        "date",
        "uint",
        "int",
        "float",
        "double",
        "decimal",
        "dictionary",
        "bool",
    ):
        if text.startswith(prefix):
            return prefix
    return text


def check_input(source: str, columns: ColumnMap | None = None) -> None:
    """Raise :class:`InputContractError` (every problem, one line each) when a table under ``source`` is
    missing or breaks the contract. ``hive:`` sources are checked later, on the metastore schema."""
    if source.startswith("hive:"):
        return
    if not Path(source).exists():
        raise InputContractError([f"input {source}: no such folder"])
    problems = []
    for table in TABLES:
        path = table_file(source, table)
        if path is None:
            problems.append(f"{table}: no {table}.parquet or {table}.csv under {source} (or its historical/)")
            continue
        try:
            schema = file_schema(path)
        except Exception as exc:  # a corrupt footer names the file, not a pyarrow traceback
            problems.append(f"{table}: {path} cannot be read as {path.suffix[1:]} ({type(exc).__name__}: {exc})")
            continue
        problems += check_columns(table, schema, columns)
    if problems:
        raise InputContractError(problems)
