"""The world's output tables: their Arrow schemas, a chunk's tables, the writer that appends chunks to
the Parquet files, a chunk's event log, and the merge of the chunks' live runs into one time-ordered
JSONL stream (the contract is in ``docs/synthetic-world.md``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fraudgraph.synthetic.identities import Customer

TS = pa.timestamp("ms", tz="UTC")
CUSTOMERS_SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("signup_ts", TS), ("country", pa.string()), ("lifetime_value", pa.float64())]
)
EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("ts", TS),
        ("customer_id", pa.string()),
        ("device_id", pa.string()),
        ("ip", pa.string()),
        ("email", pa.string()),
        ("card_fingerprint", pa.string()),
        ("amount", pa.float64()),
        ("currency", pa.string()),
        ("channel", pa.string()),
        ("country", pa.string()),
    ]
)
LIVE_SCHEMA = pa.schema(
    [
        *EVENTS_SCHEMA,
        ("block_source", pa.string()),
        ("reason", pa.string()),
        ("outcome", pa.string()),
        ("lifetime_value", pa.float64()),
    ]
)
BLOCKS_SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("blocked_at", TS), ("source", pa.string()), ("reason", pa.string())]
)
APPEALS_SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("contacted_at", TS), ("outcome", pa.string()), ("resolved_at", TS)]
)
TRUTH_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("is_fraud_true", pa.bool_()),
        ("fraud_type", pa.string()),
        ("ring_id", pa.string()),
        ("fraud_start_ts", TS),
    ]
)


TABLE_PATHS = {
    "customers": "historical/customers.parquet",
    "events": "historical/events.parquet",
    "blocks": "historical/blocks.parquet",
    "appeals": "historical/appeals.parquet",
    "truth": "truth/ground_truth.parquet",
}


LIVE_BATCH_ROWS = 2_048  # rows per record batch of a live run (the merge holds one batch of each run)


def new_counts() -> dict[str, int]:
    return {"customers": 0, "historical_events": 0, "live_events": 0, "blocks": 0, "appeals": 0}


class ChunkTables:
    """One chunk's tables, built in whichever process generated the chunk."""

    def __init__(self) -> None:
        self.tables: dict[str, pa.Table] = {}
        self.live_tables: list[pa.Table] = []
        self.counts = new_counts()

    def write(self, name: str, schema: pa.Schema, rows: list[dict[str, Any]]) -> None:
        self.tables[name] = to_table(rows, schema)


class ChunkWriter:
    """Appends chunks' tables to the Parquet files, in chunk order. Each chunk's live events (sorted) go to
    a run file under ``live/.runs`` until the stream is merged, so the writer never holds them."""

    def __init__(self, out: Path):
        self.out = out
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.live_runs: list[Path] = []
        self.counts = new_counts()

    def append(self, part: ChunkTables) -> None:
        for name, table in part.tables.items():
            if name not in self.writers:
                self.writers[name] = pq.ParquetWriter(self.out / TABLE_PATHS[name], table.schema)
            self.writers[name].write_table(table)
        for table in part.live_tables:
            run = self.out / "live" / ".runs" / f"run-{len(self.live_runs):05d}.arrow"
            run.parent.mkdir(exist_ok=True)
            with pa.OSFile(str(run), "wb") as sink, pa.ipc.new_file(sink, table.schema) as ipc:
                ipc.write_table(table, max_chunksize=LIVE_BATCH_ROWS)
            self.live_runs.append(run)
        for key, n in part.counts.items():
            self.counts[key] += n

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    cols = {}
    for f in schema:
        vals = [r.get(f.name) for r in rows]
        if pa.types.is_timestamp(f.type):
            cols[f.name] = pa.array(vals, type=pa.int64()).cast(f.type)
        else:
            cols[f.name] = pa.array(vals, type=f.type)
    return pa.table(cols, schema=schema)


class EventLog:
    """A chunk's events in the order they are made, with ids ``E<16 hex>`` keyed on the world's seed, the chunk
    and the order they are made in (random-looking: an id's order says nothing of its customer); events at or
    after the
    world's end are not kept, nor (while ``keep`` is set) those ``keep(customer, ts, event_type)`` refuses. Rows are
    turned into Arrow batches (``LIVE_SCHEMA``, every event field) every ``batch_rows`` events, which keeps
    a chunk's memory a fraction of what its Python dicts would take."""

    def __init__(self, chunk: int, end: int, batch_rows: int = 16_384, salt: str = "") -> None:
        self.chunk, self.end, self.seq, self.batch_rows = chunk, end, 0, batch_rows
        self.salt = salt.encode()
        self.keep: Callable[[Customer, int, str], bool] | None = None
        self.rows: list[dict[str, Any]] = []
        self.batches: list[pa.Table] = []

    def emit(self, c: Customer, etype: str, ts: int, **fields: Any) -> None:
        if ts >= self.end:
            return
        self.seq += 1  # numbered even when refused below: ids do not depend on the filter
        if self.keep is not None and not self.keep(c, ts, etype):
            return
        self.rows.append(
            {
                "event_id": "E"
                + hashlib.blake2b(f"{self.chunk}:{self.seq}".encode(), key=self.salt[:64], digest_size=8).hexdigest(),
                "event_type": etype,
                "ts": ts,
                "customer_id": c.customer_id,
                "country": c.country,
                **fields,
            }
        )
        if len(self.rows) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.batches.append(to_table(self.rows, LIVE_SCHEMA))
            self.rows = []

    def table(self) -> pa.Table:
        """Every kept event, sorted by (ts, event_id)."""
        self._flush()
        table = pa.concat_tables(self.batches) if self.batches else LIVE_SCHEMA.empty_table()
        self.batches = []
        return table.sort_by([("ts", "ascending"), ("event_id", "ascending")])


def write_live(runs: list[Path], path: Path) -> None:
    """One time-ordered JSONL stream (ISO-8601 UTC timestamps, absent fields omitted), merged from the
    chunks' sorted runs a batch at a time (memory: one batch per run), then the runs are removed."""
    import heapq
    import shutil

    def lines(run: Path) -> Iterator[tuple[int, str, str]]:
        with pa.OSFile(str(run)) as source:  # not mapped: read one batch at a time
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                frame = reader.get_batch(i).to_pandas()
                keys = frame["ts"].astype("int64").tolist()
                frame["ts"] = frame["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
                for key, rec in zip(keys, frame.to_dict("records")):
                    text = json.dumps({k: v for k, v in rec.items() if v is not None and v == v}, separators=(",", ":"))
                    yield key, rec["event_id"], text

    with open(path, "w") as fh:
        for _, _, text in heapq.merge(*(lines(run) for run in runs)):
            fh.write(text)
            fh.write("\n")
    if runs:
        shutil.rmtree(runs[0].parent)
