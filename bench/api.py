"""Query API benchmark: requests/s and latency of GET customer and POST score (1 and 100 ids).

    python bench/api.py --backend sqlite|gremlin --customers N --json FILE [--requests M] [--clients C]

Generates a world of N customers, loads its history into the chosen graph
(pandas reference aggregates; not timed), builds a seeded model artifact
(latency does not depend on the weights), starts the API on uvicorn on a
loopback port in this process, and drives it with ``C`` concurrent httpx
clients over keep-alive connections. Reports requests/s, p50 and p99 per
operation.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import loaded_world, peak_rss_mb, percentile_ms, table, write_result

from fraudgraph.config import load_settings
from fraudgraph.graph import open_graph
from fraudgraph.online import OnlineScorer
from fraudgraph.scoring import ModelArtifact
from fraudgraph.servers import free_port
from serving.api import create_app

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


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "gremlin"], default="sqlite")
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=400, help="requests per operation")
    ap.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()
    settings = load_settings()
    settings = settings.model_copy(update={"api": settings.api.model_copy(
        update={"tokens": {TOKEN: ["read", "score", "review"]}, "write_scores": False})})
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with loaded_world(settings, args.customers, args.backend, tmp) as (uri, as_of, ref):
            ids = sorted(ref["customers"]["customer_id"])
            with open_graph(uri, settings) as store:
                app = create_app(store, OnlineScorer(store, ModelArtifact.load(tmp / "model"), settings), settings)
                port = free_port()
                web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False,
                                                    log_level="warning"))
                thread = threading.Thread(target=web.run, daemon=True)
                thread.start()
                while not web.started:
                    time.sleep(0.05)
                base = f"http://127.0.0.1:{port}"
                operations = {
                    "get_customer": (args.requests, lambda rng: ("GET", f"/v1/customers/{rng.choice(ids)}", None)),
                    "score_1": (args.requests, lambda rng: ("POST", "/v1/score",
                                                            {"customer_ids": [rng.choice(ids)]})),
                    "score_100": (max(20, args.requests // 10), lambda rng: ("POST", "/v1/score",
                                                                             {"customer_ids": rng.sample(ids, 100)})),
                }
                for name, (n, make) in operations.items():
                    drive(base, make, min(20, n), args.clients)  # warm-up
                    wall, samples = drive(base, make, n, args.clients)
                    results[name] = {"requests": n, "requests_per_s": round(n / wall, 1),
                                     "p50_ms": round(percentile_ms(samples, 50), 1),
                                     "p99_ms": round(percentile_ms(samples, 99), 1)}
                web.should_exit = True
                thread.join(10)
    result = {"benchmark": "api", "backend": args.backend, "customers": args.customers, "clients": args.clients,
              **results, "peak_rss_mb": round(peak_rss_mb(), 1)}
    print(table([(k, v) for k, v in result.items()]))
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
