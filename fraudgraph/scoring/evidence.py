"""The evidence a decision's reasons are written from, made from the same scoring inputs as the score.

For each scored customer: its account age at as-of and, per identifier it links to, the identifier's
degree and how many other customers on it are labelled fraud. Batch scoring passes the whole graph
(true degrees, every fraud neighbour); online scoring passes the subgraph it scored from, where the
degree comes from the identifier statistics (true degrees) and the fraud neighbours are those the
subgraph holds: the ``fanout_cap`` lowest-id customers of each identifier, as the model sees them.

Plain Python over the inputs' columns: the consumer calls it once per scoring step with a few
hundred links, where pandas joins would cost more than the scoring's own reads.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
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
    own, members, degree = _identifier_members(inputs, ids)

    customers = inputs.customers
    fraud: set[str] = set()
    if "clean_label" in customers:
        fraud = set(customers["customer_id"].to_numpy()[(customers["clean_label"] == "fraud").to_numpy()].tolist())
    signup: dict[str, float] = {}
    if "signup_ts" in customers:
        mine = customers["customer_id"].isin(ids).to_numpy()
        signup = dict(
            zip(
                customers["customer_id"].to_numpy()[mine].tolist(),
                pd.to_numeric(customers["signup_ts"], errors="coerce").to_numpy(float)[mine].tolist(),
            )
        )
    fraud_members = {key: sum(m in fraud for m in on_it) for key, on_it in members.items()}
    out = {}
    for cid in sorted(ids & (set(own) | set(signup))):
        known = signup.get(cid)
        age = (as_of_ms - known) / DAY_MS if known is not None and not np.isnan(known) else None
        is_fraud = cid in fraud  # the customer itself is not its own fraud neighbour
        shared = tuple(
            SharedIdentifierEvidence(
                kind, degree[(kind, h)], fraud_members[(kind, h)] - (members[(kind, h)].count(cid) if is_fraud else 0)
            )
            for kind, h in own.get(cid, [])
        )
        out[cid] = CustomerEvidence(age, shared)
    return out


def _identifier_members(
    inputs: ScoringInputs, ids: set[str]
) -> tuple[dict[str, list[tuple[str, str]]], dict[tuple[str, str], list[str]], dict[tuple[str, str], int]]:
    """``(own, members, degree)``: each wanted customer's ``(kind, value_hash)`` identifiers, the customers
    on each of those identifiers among the links first seen by as-of, and each identifier's degree (its
    true one where ``inputs`` hold only part of its links)."""
    links = inputs.links
    visible = pd.to_numeric(links["first_seen"]).to_numpy() <= inputs.as_of_ms
    # Only the links of an identifier the wanted customers use matter: select them in one vectorised
    # pass (by value hash, a superset of the (kind, value hash) keys) so batch scoring, which passes
    # the whole graph, loops over the flagged customers' neighbourhoods and not over every link.
    value_hashes = links["value_hash"]
    theirs = visible & links["customer_id"].isin(ids).to_numpy()
    keep = visible & value_hashes.isin(value_hashes[theirs].unique()).to_numpy()
    rows = list(
        zip(
            links["customer_id"].to_numpy()[keep].tolist(),
            links["kind"].to_numpy()[keep].tolist(),
            value_hashes.to_numpy()[keep].tolist(),
        )
    )
    own: dict[str, list[tuple[str, str]]] = {}
    for cid, kind, value_hash in rows:
        if cid in ids:
            own.setdefault(cid, []).append((kind, value_hash))
    wanted = {key for keys in own.values() for key in keys}
    members: dict[tuple[str, str], list[str]] = {key: [] for key in wanted}
    for cid, kind, value_hash in rows:
        if (kind, value_hash) in members:
            members[(kind, value_hash)].append(cid)
    degree = {key: len(on_it) for key, on_it in members.items()}
    stats = inputs.identifier_stats
    if stats is not None and len(stats):  # a subgraph holds part of an identifier's links: its true degree
        for kind, value_hash, n in zip(stats["kind"].tolist(), stats["value_hash"].tolist(), stats["degree"].tolist()):
            if (kind, value_hash) in degree:
                degree[(kind, value_hash)] = int(n)

    return own, members, degree
