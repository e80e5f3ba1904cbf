"""The evidence a decision's reasons are written from, made from the same scoring inputs as the score.

For each scored customer: its account age at as-of and, per identifier it links to, the identifier's
degree and how many other customers on it are labelled fraud. Batch scoring passes the whole graph
(true degrees, every fraud neighbour); online scoring passes the subgraph it scored from, where the
degree comes from the identifier statistics (true degrees) and the fraud neighbours are those the
subgraph holds: the ``fanout_cap`` lowest-id customers of each identifier, as the model sees them.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from fraudgraph.graph.scoring_inputs import ScoringInputs
from fraudgraph.scoring.rules import CustomerEvidence, SharedIdentifierEvidence
from fraudgraph.timeutil import DAY_MS


def decision_evidence(inputs: ScoringInputs, customer_ids: Iterable[str]) -> dict[str, CustomerEvidence]:
    """Evidence for ``customer_ids`` from ``inputs`` (links first seen after its as-of are not seen);
    a customer known to neither its customers nor its links gets none."""
    ids = set(customer_ids)
    if not ids:
        return {}
    as_of_ms = inputs.as_of_ms
    links = inputs.links
    links = links.loc[pd.to_numeric(links["first_seen"]) <= as_of_ms, ["customer_id", "kind", "value_hash"]]
    degree = links.groupby(["kind", "value_hash"]).size().rename("degree")
    if inputs.identifier_stats is not None and len(inputs.identifier_stats):
        true_degree = inputs.identifier_stats.set_index(["kind", "value_hash"])["degree"]
        degree = true_degree.combine_first(degree).rename("degree")
    customers = inputs.customers
    fraud_ids = (
        set(customers.loc[customers["clean_label"] == "fraud", "customer_id"]) if "clean_label" in customers else set()
    )
    mine = links.loc[links["customer_id"].isin(ids)].join(degree, on=["kind", "value_hash"])
    on_same = links.loc[links["customer_id"].isin(fraud_ids)].merge(
        mine[["customer_id", "kind", "value_hash"]], on=["kind", "value_hash"], suffixes=("_fraud", "")
    )
    on_same = on_same.loc[on_same["customer_id_fraud"] != on_same["customer_id"]]
    fraud_count = on_same.groupby(["customer_id", "kind", "value_hash"]).size().rename("fraud")
    mine = mine.join(fraud_count, on=["customer_id", "kind", "value_hash"]).fillna({"fraud": 0})
    signup = (
        pd.to_numeric(customers.set_index("customer_id")["signup_ts"], errors="coerce")
        if "signup_ts" in customers
        else pd.Series(dtype=float)
    )
    groups = dict(tuple(mine.groupby("customer_id")))
    out = {}
    for cid in sorted(ids & (set(groups) | set(signup.index))):
        known = signup.get(cid)
        age = (as_of_ms - known) / DAY_MS if known is not None and pd.notna(known) else None
        grp = groups.get(cid)
        shared = (
            ()
            if grp is None
            else tuple(
                SharedIdentifierEvidence(k, int(d), int(f)) for k, d, f in zip(grp["kind"], grp["degree"], grp["fraud"])
            )
        )
        out[cid] = CustomerEvidence(age, shared)
    return out
