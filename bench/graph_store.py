"""Graph store benchmark: bulk load, then 2-hop neighbourhood reads.

    python bench/graph_store.py --backend sqlite|gremlin|janusgraph --customers N --json FILE [--unbatched]

Loads N customers with about three identifiers each (households share devices,
carrier IPs are shared by many, a few public-Wi-Fi hubs link thousands), then
reads the 2-hop neighbourhood of 1,000 random customers with the configured
fan-out cap. ``--unbatched`` writes one element per request (gremlin only) to
show what batching buys. Writes JSON with write_elements_per_s,
neighbourhood_p50_ms, neighbourhood_p99_ms and, on Gremlin stores, the load's requests and
seconds per request name (store_requests).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from _common import peak_rss_mb, percentile_ms, request_stats, table, temporary_graph_server, write_result

from fraudgraph.config import load_settings
from fraudgraph.graph import CustomerUpsert, IdentityLink, open_graph
from fraudgraph.identity import IdentifierHasher


def synthetic_identity_data(n: int, seed: int = 1):
    rng = random.Random(seed)
    hasher = IdentifierHasher(b"bench-key")
    t0 = 1_700_000_000_000
    customers, links = [], []
    for i in range(n):
        cid = f"c{i:08d}"
        signup = t0 + rng.randrange(400 * 86_400_000)
        customers.append(CustomerUpsert(cid, {"signup_ts": signup, "lifetime_value": round(rng.expovariate(1 / 80), 2),
                                              "country": rng.choice(["AE", "SA", "PK", "EG", "JO"])}))
        idents = [("device", f"dev-{rng.randrange(int(n * 0.8))}"),
                  ("email", f"user{i}@example.com")]
        ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}" if rng.random() < 0.97 \
            else f"198.51.100.{rng.randrange(5)}"  # five public hubs
        idents.append(("ip", ip))
        if rng.random() < 0.5:
            idents.append(("card", f"fp-{rng.randrange(int(n * 0.9))}"))
        for kind, raw in idents:
            fs = signup + rng.randrange(86_400_000)
            cnt = rng.randrange(1, 20)
            links.append(IdentityLink(cid, kind, hasher.hash(kind, raw), fs, fs + rng.randrange(30 * 86_400_000),
                                      cnt, {"login": cnt - 1, "signup": 1}))
    return customers, links


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "gremlin", "janusgraph"], default="sqlite")
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--reads", type=int, default=1000)
    ap.add_argument("--unbatched", action="store_true", help="one element per write request (gremlin, janusgraph)")
    ap.add_argument("--gremlin-url", default=None, help="use a running server instead of starting one")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()

    settings = load_settings()
    customers, links = synthetic_identity_data(args.customers)
    server = None
    tmp = tempfile.TemporaryDirectory()
    if args.backend == "sqlite":
        uri = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    elif args.gremlin_url:
        uri = args.gremlin_url
    else:
        server, settings = temporary_graph_server(settings, Path(tmp.name) / args.backend, args.backend)
        uri = server.url
    if args.unbatched:
        settings.graph.gremlin.batch_size = 1
        settings.graph.batch_size = 1
    try:
        store = open_graph(uri, settings)
        if hasattr(store, "clear"):
            store.clear()
        t = time.perf_counter()
        store.upsert_customers(customers)
        store.upsert_links(links)
        write_s = time.perf_counter() - t
        # per request name: requests and seconds of the load (Gremlin stores; where its time went)
        requests = {k: {"requests": int(n), "seconds": round(sec, 2)}
                    for k, (n, sec) in sorted(request_stats(store).items())}
        stats = store.stats()
        elements = sum(stats["vertices"].values()) + sum(stats["edges"].values())

        rng = random.Random(2)
        sample = [customers[rng.randrange(len(customers))].customer_id for _ in range(args.reads)]
        for cid in sample[:50]:  # warm-up
            store.neighbourhoods([cid])[cid]
        lat = []
        sizes = []
        for cid in sample:
            t = time.perf_counter()
            nb = store.neighbourhoods([cid])[cid]
            lat.append(time.perf_counter() - t)
            sizes.append(len(nb.customers))
        store.close()
    finally:
        if server is not None:
            server.stop()
        tmp.cleanup()

    result = {
        "benchmark": "graph_store",
        "backend": args.backend,
        "batched": not args.unbatched,
        "customers": args.customers,
        "links": len(links),
        "write_elements": elements,
        "write_s": round(write_s, 3),
        "write_elements_per_s": round(elements / write_s, 1),
        "neighbourhood_reads": len(lat),
        "neighbourhood_fanout_cap": settings.graph.neighbourhood_fanout_cap,
        "neighbourhood_mean_customers": round(sum(sizes) / len(sizes), 2),
        "neighbourhood_p50_ms": round(percentile_ms(lat, 50), 3),
        "neighbourhood_p99_ms": round(percentile_ms(lat, 99), 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(table([(k, v) for k, v in result.items()]))
    result["store_requests"] = requests
    write_result(args.json_path, result)


if __name__ == "__main__":
    main()
