"""Label maturity and heuristic correction of missed fraud, audited.

Raw label: a customer blocked for fraud (manually or by a rule) has
``is_fraud = 1``. Those labels are noisy: blocks arrive late, some are
mistakes that customers appeal, and many fraudsters are never blocked.
:func:`clean_labels` turns the raw history into training labels, as of a
given time (nothing after it is visible):

1. **Analyst outcomes** (``review_outcome`` = fraud | legit recorded by the
   review console) come first and are final.
2. **Maturity** (:func:`mature_labels`): a fraud label counts once the block is
   older than ``maturity_days`` and the customer did not appeal within
   ``appeal_window_days`` of it; a block lifted after an appeal makes the
   customer legitimate; a block upheld on appeal (decided before as-of)
   confirms fraud at once; a legitimate label needs an account older than
   ``maturity_days`` with no block. Everything else is ``unknown`` and stays
   out of training.
3. **Heuristics** (:class:`MissedFraudRules`) relabel legitimate or unknown
   customers as fraud when identity structure says so with high confidence.
   Each is named, switchable and parameterised in ``conf/`` and records its
   evidence (which identifiers, which fraudsters).

Every label that differs from the raw one is written to the audit table with
the rule that set it.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from fraudgraph.config import LabelSettings
from fraudgraph.timeutil import DAY_MS, HOUR_MS

log = logging.getLogger(__name__)

FRAUD, LEGIT, UNKNOWN = "fraud", "legit", "unknown"
LABEL_COLUMNS = ["customer_id", "label", "source", "confidence", "raw_is_fraud", "as_of"]
AUDIT_COLUMNS = ["customer_id", "raw_label", "label", "rule", "evidence", "as_of"]
# Sources a heuristic may overrule: never an analyst, an appeal or a lifted block.
CORRECTABLE_SOURCES = ("matured_no_block", "account_immature", "block_immature")


def _visible_ms(frame: pd.DataFrame, column: str, as_of_ms: int) -> pd.Series:
    """The column (epoch ms) where it is at or before as-of, else NaN (not yet happened)."""
    if column not in frame:
        return pd.Series(np.nan, index=frame.index)
    values = pd.to_numeric(frame[column], errors="coerce")
    return values.where(values <= as_of_ms)


def visible_customers(customers: pd.DataFrame, as_of_ms: int) -> pd.DataFrame:
    """Customers who had signed up by as-of (those without a signup time are kept)."""
    signup = pd.to_numeric(customers.get("signup_ts"), errors="coerce") if "signup_ts" in customers else None
    if signup is None:
        return customers.copy()
    return customers.loc[signup.isna() | (signup <= as_of_ms)].copy()


def visible_links(links: pd.DataFrame, as_of_ms: int) -> pd.DataFrame:
    """Links first seen by as-of, their last use capped at as-of. Training reads point-in-time links
    (exact at as-of); a store newer than as-of still shows that a link was used after as-of."""
    out = links.loc[pd.to_numeric(links["first_seen"]) <= as_of_ms].copy()
    if "last_seen" in out:
        out["last_seen"] = np.minimum(pd.to_numeric(out["last_seen"]), as_of_ms)
    return out


def mature_labels(customers: pd.DataFrame, as_of_ms: int, settings: LabelSettings) -> pd.DataFrame:
    """Analyst outcomes and maturity rules, as of ``as_of_ms``; no heuristics.

    Input: a customer frame with ``customer_id``, ``signup_ts``, ``blocked_at``,
    ``appealed_at``, ``unblocked_at`` (epoch ms) and optionally
    ``review_outcome``/``review_outcome_at``. Output: LABEL_COLUMNS.
    """
    c = visible_customers(customers, as_of_ms).reset_index(drop=True)
    maturity = settings.maturity_days * DAY_MS
    window = settings.appeal_window_days * DAY_MS
    conf = settings.confidence
    signup = pd.to_numeric(c.get("signup_ts", pd.Series(np.nan, index=c.index)), errors="coerce")
    blocked = _visible_ms(c, "blocked_at", as_of_ms)
    appealed = _visible_ms(c, "appealed_at", as_of_ms)
    unblocked = _visible_ms(c, "unblocked_at", as_of_ms)
    decided = _visible_ms(c, "appeal_resolved_at", as_of_ms)
    outcome = c["appeal_outcome"] if "appeal_outcome" in c else pd.Series(None, index=c.index)
    review_at = _visible_ms(c, "review_outcome_at", as_of_ms)
    review = c["review_outcome"].where(review_at.notna()) if "review_outcome" in c else pd.Series(None, index=c.index)

    is_blocked = blocked.notna()
    lifted = is_blocked & unblocked.notna() & (unblocked >= blocked)
    upheld = is_blocked & appealed.notna() & (appealed >= blocked) & (outcome == "upheld") & decided.notna()
    appealed_in_window = is_blocked & appealed.notna() & (appealed >= blocked) & (appealed <= blocked + window)
    block_mature = is_blocked & (as_of_ms - blocked >= maturity)
    account_mature = signup.notna() & (as_of_ms - signup >= maturity)

    conditions = [
        review == FRAUD,
        review == LEGIT,
        lifted,
        upheld,
        appealed_in_window,
        block_mature,
        is_blocked,
        account_mature,
    ]
    labels = [FRAUD, LEGIT, LEGIT, FRAUD, UNKNOWN, FRAUD, UNKNOWN, LEGIT]
    sources = [
        "analyst",
        "analyst",
        "unblocked_after_appeal",
        "appeal_upheld",
        "appealed",
        "block_matured",
        "block_immature",
        "matured_no_block",
    ]
    confidences = [
        conf.analyst,
        conf.analyst,
        conf.unblocked_after_appeal,
        conf.appeal_upheld,
        0.0,
        conf.block_matured,
        0.0,
        conf.matured_no_block,
    ]
    out = pd.DataFrame({"customer_id": c["customer_id"].astype(str)})
    out["label"] = np.select(conditions, labels, default=UNKNOWN)
    out["source"] = np.select(conditions, sources, default="account_immature")
    out["confidence"] = np.select(conditions, confidences, default=0.0).astype("float64")
    out["raw_is_fraud"] = is_blocked.astype("int64")
    out["as_of"] = as_of_ms
    return out[LABEL_COLUMNS]


@dataclass
class Correction:
    customer_id: str
    rule: str
    confidence: float
    evidence: dict[str, Any]


class MissedFraudRules:
    """Strict identity-structure rules that find fraud the blocks missed.

    Each rule takes the visible links and the maturity labels and returns
    :class:`Correction` objects for customers whose label a heuristic may
    overrule (``CORRECTABLE_SOURCES``).
    """

    def __init__(self, settings: LabelSettings):
        self.settings = settings.heuristics

    def rules(self) -> list[tuple[str, Callable[..., list[Correction]]]]:
        h = self.settings
        out = []
        if h.shared_card_with_fraudsters.enabled:
            out.append(("shared_card_with_fraudsters", self.shared_card_with_fraudsters))
        if h.fraud_dominated_component.enabled:
            out.append(("fraud_dominated_component", self.fraud_dominated_component))
        if h.device_signup_burst.enabled:
            out.append(("device_signup_burst", self.device_signup_burst))
        return out

    def apply(self, links: pd.DataFrame, labels: pd.DataFrame, customers: pd.DataFrame) -> list[Correction]:
        found: list[Correction] = []
        for name, rule in self.rules():
            hits = rule(links, labels, customers)
            log.info("heuristic %s: %d corrections", name, len(hits))
            found += hits
        return found

    @staticmethod
    def _sets(labels: pd.DataFrame) -> tuple[set[str], set[str]]:
        fraud = set(labels.loc[labels["label"] == FRAUD, "customer_id"])
        correctable = set(labels.loc[labels["source"].isin(CORRECTABLE_SOURCES), "customer_id"])
        return fraud, correctable

    @staticmethod
    def _used_with(use: dict, cid: str, fraudster: str, first_gap_ms: float, after_ms: float) -> bool:
        """Whether ``cid`` used an identifier together with ``fraudster``: ``use`` maps a customer to its
        (first, last) use of it; the first uses are within ``first_gap_ms`` of each other (not the owner of
        a card stolen long after, not a phone bought second-hand months later), and ``cid`` stopped within
        ``after_ms`` of the fraudster's last use (not a card's owner who goes on using it after the ring
        has stopped)."""
        (first, last), (f_first, f_last) = use[cid], use[fraudster]
        return abs(f_first - first) <= first_gap_ms and last - f_last <= after_ms

    def shared_card_with_fraudsters(self, links, labels, customers) -> list[Correction]:
        cfg = self.settings.shared_card_with_fraudsters
        fraud, correctable = self._sets(labels)
        cards = links.loc[
            links["kind"] == "card", ["customer_id", "value_hash", "first_seen", "last_seen"]
        ].drop_duplicates(["customer_id", "value_hash"])
        gap, after = cfg.max_first_use_gap_days * DAY_MS, cfg.max_use_after_fraudsters_days * DAY_MS
        out = []
        for card, grp in cards.groupby("value_hash"):
            members = set(grp["customer_id"])
            if len(members) > cfg.max_card_degree:
                continue
            fraudsters = sorted(members & fraud)
            if len(fraudsters) < cfg.min_fraudsters:
                continue
            use = dict(
                zip(
                    grp["customer_id"],
                    zip(pd.to_numeric(grp["first_seen"]).astype(float), pd.to_numeric(grp["last_seen"]).astype(float)),
                )
            )
            for cid in sorted(members & correctable):
                near = [f for f in fraudsters if self._used_with(use, cid, f, gap, after)]
                if len(near) < cfg.min_fraudsters:
                    continue  # e.g. the card's real owner, who used it before and after the ring did
                out.append(
                    Correction(
                        cid, "shared_card_with_fraudsters", cfg.confidence, {"card": card, "fraudsters": near[:20]}
                    )
                )
        return out

    def fraud_dominated_component(self, links, labels, customers) -> list[Correction]:
        cfg = self.settings.fraud_dominated_component
        fraud, correctable = self._sets(labels)
        labelled = set(labels.loc[labels["label"].isin([FRAUD, LEGIT]), "customer_id"])
        lk = links.loc[
            links["kind"].isin(cfg.kinds), ["customer_id", "kind", "value_hash", "first_seen", "last_seen"]
        ].drop_duplicates(["customer_id", "kind", "value_hash"])
        use: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)  # identifier -> customer -> use
        for c, k, v, first, last in zip(
            lk["customer_id"],
            lk["kind"],
            lk["value_hash"],
            pd.to_numeric(lk["first_seen"]),
            pd.to_numeric(lk["last_seen"]),
        ):
            use[f"{k}:{v}"][c] = (float(first), float(last))
        gap, after = cfg.max_first_use_gap_days * DAY_MS, cfg.max_use_after_fraudsters_days * DAY_MS
        degree = lk.groupby(["kind", "value_hash"])["customer_id"].transform("size")
        lk = lk.loc[(degree >= 2) & (degree <= cfg.max_identifier_degree)]
        g = nx.Graph()
        g.add_edges_from(zip(("c:" + lk["customer_id"]).tolist(), (lk["kind"] + ":" + lk["value_hash"]).tolist()))
        out = []
        for comp in nx.connected_components(g):
            members = {n[2:] for n in comp if n.startswith("c:")}
            if len(members) < cfg.min_size:
                continue
            fraudsters = sorted(members & fraud)
            known = members & labelled
            if len(fraudsters) < cfg.min_fraudsters or len(fraudsters) < cfg.min_fraud_share * len(known):
                continue
            fraud_nodes = {f"c:{f}" for f in fraudsters}
            for cid in sorted(members & correctable):
                # identifiers this customer shares directly with a mature fraudster of the component and
                # used together with it (see _used_with)
                pairs = [
                    (i, f)
                    for i in g.neighbors(f"c:{cid}")
                    for f in set(g.neighbors(i)) & fraud_nodes
                    if self._used_with(use[i], cid, f[2:], gap, after)
                ]
                direct = sorted({i for i, _ in pairs})
                direct_fraudsters = {f for _, f in pairs}
                if len(direct_fraudsters) < cfg.min_direct_fraudsters:
                    continue  # e.g. the family of a hijacked account: linked, but only through the victim
                out.append(
                    Correction(
                        cid,
                        "fraud_dominated_component",
                        cfg.confidence,
                        {
                            "component_size": len(members),
                            "labelled": len(known),
                            "fraudsters": fraudsters[:20],
                            "shared_with_fraudsters": direct[:20],
                        },
                    )
                )
        return out

    def device_signup_burst(self, links, labels, customers) -> list[Correction]:
        cfg = self.settings.device_signup_burst
        fraud, correctable = self._sets(labels)
        if "signup_ts" not in customers:
            return []
        signup = customers.set_index("customer_id")["signup_ts"]
        # fraudsters whose fraud started at signup: blocked soon after it (a hijacked account is blocked
        # long after its owner signed up, maybe together with the family on one device)
        if "blocked_at" in customers:
            block_age = pd.to_numeric(
                customers.set_index("customer_id")["blocked_at"], errors="coerce"
            ) - pd.to_numeric(signup, errors="coerce")
            fraud = fraud & set(block_age.index[block_age <= cfg.max_block_after_signup_days * DAY_MS])
        dev = links.loc[links["kind"] == "device", ["customer_id", "value_hash"]].drop_duplicates()
        dev = dev.assign(signup_ts=pd.to_numeric(dev["customer_id"].map(signup), errors="coerce")).dropna()
        window = cfg.window_hours * HOUR_MS
        out: dict[str, Correction] = {}
        for device, grp in dev.groupby("value_hash"):
            if len(grp) < cfg.min_accounts:
                continue
            grp = grp.sort_values("signup_ts")
            ts, ids = grp["signup_ts"].to_numpy(), grp["customer_id"].to_numpy()
            start = 0
            for end in range(len(ts)):
                while ts[end] - ts[start] > window:
                    start += 1
                if end - start + 1 < cfg.min_accounts:
                    continue
                burst = set(ids[start : end + 1])
                fraudsters = sorted(burst & fraud)
                if len(fraudsters) < cfg.min_fraudsters:
                    continue
                for cid in sorted(burst & correctable):
                    out.setdefault(
                        cid,
                        Correction(
                            cid,
                            "device_signup_burst",
                            cfg.confidence,
                            {
                                "device": device,
                                "burst_accounts": sorted(burst)[:20],
                                "fraudsters": fraudsters[:20],
                                "window_hours": cfg.window_hours,
                            },
                        ),
                    )
        return list(out.values())


@dataclass
class LabelResult:
    labels: pd.DataFrame  # LABEL_COLUMNS
    audit: pd.DataFrame  # AUDIT_COLUMNS
    corrections: list[Correction]
    as_of_ms: int


def clean_labels(customers: pd.DataFrame, links: pd.DataFrame, as_of_ms: int, settings: LabelSettings) -> LabelResult:
    """Cleaned labels as of ``as_of_ms``: analyst outcomes, maturity, then heuristics."""
    labels = mature_labels(customers, as_of_ms, settings)
    vis_links = visible_links(links, as_of_ms)
    vis_links = vis_links.loc[vis_links["customer_id"].isin(labels["customer_id"])]
    vis_customers = visible_customers(customers, as_of_ms)
    corrections = MissedFraudRules(settings).apply(vis_links, labels, vis_customers)
    first: dict[str, Correction] = {}
    for c in corrections:
        first.setdefault(c.customer_id, c)
    if first:
        idx = labels["customer_id"].isin(first)
        labels.loc[idx, "label"] = FRAUD
        labels.loc[idx, "source"] = labels.loc[idx, "customer_id"].map(lambda cid: first[cid].rule)
        labels.loc[idx, "confidence"] = labels.loc[idx, "customer_id"].map(lambda cid: first[cid].confidence)
    raw = labels.set_index("customer_id")["raw_is_fraud"].map({1: FRAUD, 0: LEGIT})
    audit_rows = []
    changed = labels.loc[labels["label"] != labels["customer_id"].map(raw)]
    by_customer: dict[str, list[Correction]] = {}
    for c in corrections:
        by_customer.setdefault(c.customer_id, []).append(c)
    for row in changed.itertuples(index=False):
        rules = by_customer.get(row.customer_id)
        if rules:
            for c in rules:
                audit_rows.append(
                    (
                        row.customer_id,
                        raw[row.customer_id],
                        row.label,
                        c.rule,
                        json.dumps(c.evidence, sort_keys=True),
                        as_of_ms,
                    )
                )
        else:
            audit_rows.append((row.customer_id, raw[row.customer_id], row.label, row.source, "{}", as_of_ms))
    audit = pd.DataFrame(audit_rows, columns=AUDIT_COLUMNS)
    return LabelResult(labels.reset_index(drop=True), audit, corrections, as_of_ms)
