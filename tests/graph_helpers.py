"""Shared by the graph contract tests and the Gremlin summary tests: a tiny world of links and
the identifier statistics pandas computes from a links frame."""

from __future__ import annotations

import random

import pandas as pd

from fraudgraph.graph import CustomerUpsert, IdentityLink


def small_world(seed: int = 7, customers: int = 60):
    """Customers with ~3 identifiers each, some shared, one hub IP on a third of them."""
    rng = random.Random(seed)
    cust = [CustomerUpsert(f"c{i:03d}", {"signup_ts": 1_700_000_000_000 + i * 1000,
                                         "lifetime_value": round(rng.uniform(0, 500), 2),
                                         "country": rng.choice(["AE", "SA", "PK"]),
                                         "vip": i % 7 == 0})
            for i in range(customers)]
    links = []
    for i in range(customers):
        cid = f"c{i:03d}"
        kinds = [("device", f"d{rng.randrange(customers // 2)}"), ("email", f"e{i}"),
                 ("card", f"k{rng.randrange(customers)}")]
        if i % 3 == 0:
            kinds.append(("ip", "hub"))
        for kind, value in kinds:
            fs = 1_700_000_000_000 + rng.randrange(10**6)
            n = rng.randrange(1, 9)
            links.append(IdentityLink(cid, kind, value, fs, fs + rng.randrange(10**6), n,
                                      {"login": n - 1, "signup": 1} if n > 1 else {"signup": 1}))
    # de-duplicate (customer, kind, value): the world may draw the same card twice
    uniq = {(l.customer_id, l.kind, l.value_hash): l for l in links}
    return cust, list(uniq.values())


def expected_identifier_stats(frame: pd.DataFrame, as_of: int | None) -> pd.DataFrame:
    visible = frame.loc[pd.to_numeric(frame["first_seen"]) <= (as_of or 2**62)]
    g = visible.groupby(["kind", "value_hash"], sort=True)
    out = pd.DataFrame({"degree": g.size(), "first_seen_min": g["first_seen"].min(),
                        "first_seen_max": g["first_seen"].max(), "events": g["event_count"].sum()})
    return out.reset_index().astype({c: "int64" for c in ("degree", "first_seen_min", "first_seen_max", "events")})
