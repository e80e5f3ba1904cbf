"""Query API benchmark: requests/s and latency of GET customer and POST score (1 and 100 ids).

    python bench/api.py --backend sqlite|gremlin --customers N --json FILE [--requests M] [--clients 1,4,16]
        [--score-processes P]

Generates a world of N customers, loads its history into the chosen graph
(pandas reference aggregates; not timed), builds a seeded model artifact
(latency does not depend on the weights), starts the API on uvicorn on a
loopback port (`fraudgraph api`, its own process), and drives it with each number of concurrent httpx
clients over keep-alive connections; ``--score-processes`` sets ``api.score_processes`` (0: scoring in
the API process). Reports requests/s, p50 and p99 per operation and number of
clients, how many requests the score batches held (``serving.api.batching``), and the CPU a request cost
the API process, its scoring processes and the clients (this process), with the share of the machine's
cores that was busy (Linux ``/proc``; the clients share the machine's cores with the API). Target (issue:
serving past one machine): ``POST /v1/score`` with one id at 4 clients p99 at most 50 ms and at least
200 requests/s on SQLite, 20,000 customers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import loaded_world, peak_rss_mb, percentile_ms, table, write_result

from fraudgraph.config import load_settings
from localservers import free_port

TOKEN = "bench-token"


def drive(base: str, make_request, n: int, clients: int) -> tuple[float, list[float]]:
    """Send ``n`` requests from ``clients`` threads; returns (wall seconds, per-request seconds)."""
    import httpx

    per_client = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]

    def client(count: int, seed: int) -> list[float]:
        rng = random.Random(seed)
        out = []
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
            for _ in range(count):
                method, path, body = make_request(rng)
                t = time.perf_counter()
                r = http.request(method, path, json=body)
                out.append(time.perf_counter() - t)
                if r.status_code != 200:
                    raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:200]}")
        return out

    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        samples = [x for part in pool.map(client, per_client, range(clients)) for x in part]
    return time.perf_counter() - t, samples


def batch_counts(base: str) -> tuple[float, float]:
    """(score batches, requests they answered) so far, from the API's /metrics."""
    import httpx

    text = httpx.get(f"{base}/metrics").text
    found = {}
    for line in text.splitlines():
        for name in ("fraudgraph_api_score_batches_total", "fraudgraph_api_score_batched_requests_total"):
            if line.startswith(name + " "):
                found[name] = float(line.split()[-1])
    return found.get("fraudgraph_api_score_batches_total", 0.0), found.get(
        "fraudgraph_api_score_batched_requests_total", 0.0)


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``); 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the API's scoring processes)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def cpu_now(api_pid: int) -> dict[str, float] | None:
    """CPU seconds so far of the API process, its scoring processes and this process (the clients), and
    the machine's busy and total CPU seconds; None where ``/proc`` is not there (not Linux)."""
    if not Path("/proc/stat").is_file():
        return None
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"api": _process_cpu_s(api_pid), "scoring_processes": sum(_process_cpu_s(c) for c in _children(api_pid)),
            "clients": own.ru_utime + own.ru_stime, "machine_busy": (sum(ticks) - ticks[3] - ticks[4]) / hz,
            "machine_total": sum(ticks) / hz}  # fmt: skip


def cpu_per_request(before: dict[str, float] | None, after: dict[str, float] | None, n: int) -> dict | None:
    """Between two :func:`cpu_now` readings over ``n`` requests: CPU ms a request in each process, and the
    share of the machine's cores that was busy."""
    if before is None or after is None:
        return None
    spent = {k: after[k] - before[k] for k in before}
    per = {k: round(1000 * spent[k] / n, 2) for k in ("api", "scoring_processes", "clients")}
    return {**per, "cores_busy_share": round(spent["machine_busy"] / max(spent["machine_total"], 1e-9), 3)}


def wait_ready(base: str, process, timeout_s: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fraudgraph api exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("fraudgraph api did not become ready")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "gremlin", "janusgraph"], default="sqlite")
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=400, help="requests per operation")
    ap.add_argument("--clients", default="1,4,16", help="concurrent HTTP clients, comma-separated")
    ap.add_argument("--score-processes", type=int, default=0, help="api.score_processes (0: in the API process)")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()
    settings = load_settings()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with loaded_world(settings, args.customers, args.backend, tmp) as (uri, as_of, ref, store_settings):
            ids = sorted(ref["customers"]["customer_id"])
            env = {**os.environ, "FRAUDGRAPH_API__TOKENS": json.dumps({TOKEN: ["read", "score", "review"]}),
                   "FRAUDGRAPH_API__WRITE_SCORES": "false", "FRAUDGRAPH_LOGGING__LEVEL": "WARNING",
                   "FRAUDGRAPH_GRAPH__GREMLIN__EDGE_IDS": store_settings.graph.gremlin.edge_ids,
                   "FRAUDGRAPH_API__SCORE_PROCESSES": str(args.score_processes)}
            port = free_port()
            # the API in its own process, as deployed: the clients here must not share its interpreter
            api = subprocess.Popen([sys.executable, "-m", "fraudgraph.cli.main", "api", "--graph", uri, "--model",
                                    str(tmp / "model"), "--port", str(port)], env=env)
            base = f"http://127.0.0.1:{port}"
            try:
                wait_ready(base, api)
                operations = {
                    "get_customer": (args.requests, lambda rng: ("GET", f"/v1/customers/{rng.choice(ids)}", None)),
                    "score_1": (args.requests, lambda rng: ("POST", "/v1/score",
                                                            {"customer_ids": [rng.choice(ids)]})),
                    "score_100": (max(20, args.requests // 10), lambda rng: ("POST", "/v1/score",
                                                                             {"customer_ids": rng.sample(ids, 100)})),
                }
                for clients in [int(c) for c in args.clients.split(",")]:
                    for name, (n, make) in operations.items():
                        drive(base, make, min(20, n), clients)  # warm-up
                        before, cpu_before = batch_counts(base), cpu_now(api.pid)
                        wall, samples = drive(base, make, n, clients)
                        cpu_after, after = cpu_now(api.pid), batch_counts(base)
                        figures = {"requests": n, "requests_per_s": round(n / wall, 1),
                                   "p50_ms": round(percentile_ms(samples, 50), 1),
                                   "p99_ms": round(percentile_ms(samples, 99), 1),
                                   "cpu_ms_per_request": cpu_per_request(cpu_before, cpu_after, n)}
                        if name.startswith("score"):
                            figures["requests_per_batch"] = round(
                                (after[1] - before[1]) / max(1.0, after[0] - before[0]), 2)
                        results[f"{name}_{clients}_clients"] = figures
            finally:
                api.terminate()
                api.wait(30)
    result = {"benchmark": "api", "backend": args.backend, "customers": args.customers, "clients": args.clients,
              "score_processes": args.score_processes,
              "target": {"score_1_4_clients": {"p99_ms_at_most": 50, "requests_per_s_at_least": 200}},
              **results, "peak_rss_mb": round(peak_rss_mb(), 1)}
    print(table([(k, v) for k, v in result.items()]))
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
