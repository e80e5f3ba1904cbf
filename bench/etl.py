"""Spark ETL vs the pandas reference on the same world.

    python bench/etl.py --customers N --json FILE [--with-graph]

Generates a world of N customers (not timed), starts a local Spark session
(timed separately), then times the Spark job and the single-process pandas
reference computing the same aggregates and writing the same Parquet snapshot.
``--with-graph`` also times the Spark job's write into an embedded SQLite graph.
Reports both wall times, their ratio (start-up excluded), and peak memory of
the driver/pandas process and of the Spark JVM.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import peak_rss_mb, table, write_result

from etl.load_identity_graph import run_etl
from etl.reference import reference_etl
from etl.spark_session import build_spark_session
from fraudgraph.config import load_settings
from fraudgraph.event_tags import EventTagger
from fraudgraph.graph.snapshot import write_snapshot
from fraudgraph.identity import IdentifierHasher
from fraudgraph.synthetic.world import WorldGenerator


def jvm_peak_rss_mb() -> float:
    """Peak RSS (VmHWM) of the Java child processes of this process, MiB."""
    total = 0.0
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if ppid == me and b"java" in cmd:
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--with-graph", action="store_true")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()
    settings = load_settings()
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        summary = WorldGenerator(settings.world.model_copy(update={"customers": args.customers})).generate(
            world, progress=False)
        events = summary["historical_events"]

        t = time.perf_counter()
        spark = build_spark_session(settings.spark)
        spark.range(1).count()
        startup = time.perf_counter() - t

        t = time.perf_counter()
        s = run_etl(spark, settings, str(world), None, snapshot=str(Path(tmp) / "spark-snap"))
        spark_s = time.perf_counter() - t
        graph_s = None
        if args.with_graph:
            t = time.perf_counter()
            run_etl(spark, settings, str(world), f"sqlite:///{Path(tmp) / 'graph.db'}")
            graph_s = time.perf_counter() - t
        jvm_mb = jvm_peak_rss_mb()
        spark.stop()

        t = time.perf_counter()
        ref = reference_etl(world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
        write_snapshot(ref["customers"], ref["links"], Path(tmp) / "pandas-snap")
        pandas_s = time.perf_counter() - t

    result = {
        "benchmark": "etl",
        "customers": args.customers,
        "events": events,
        "links": sum(s["written"]["edges"].values()),
        "spark_master": settings.spark.master,
        "spark_startup_s": round(startup, 2),
        "spark_job_s": round(spark_s, 2),
        "pandas_reference_s": round(pandas_s, 2),
        "spark_over_pandas": round(spark_s / pandas_s, 2),
        "spark_job_with_sqlite_write_s": round(graph_s, 2) if graph_s is not None else None,
        "driver_and_pandas_peak_rss_mb": round(peak_rss_mb(), 1),
        "spark_jvm_peak_rss_mb": round(jvm_mb, 1),
    }
    print(table(list(result.items())))
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
