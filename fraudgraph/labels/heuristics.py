"""Heuristic correction of missed fraud (step 3 of :mod:`fraudgraph.labels.cleaning`): named,
switchable rules that relabel a legitimate or unknown customer as fraud when identity structure
says so with high confidence, each recording its evidence."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx
import pandas as pd

from fraudgraph.config import LabelSettings
from fraudgraph.labels.maturity import FRAUD, LEGIT
from fraudgraph.timeutil import DAY_MS, HOUR_MS

log = logging.getLogger(__name__)

# Sources a heuristic may overrule: never an analyst, an appeal or a lifted block.
CORRECTABLE_SOURCES = ("matured_no_block", "account_immature", "block_immature")


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

    def shared_card_with_fraudsters(
        self, links: pd.DataFrame, labels: pd.DataFrame, customers: pd.DataFrame
    ) -> list[Correction]:
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

    def fraud_dominated_component(
        self, links: pd.DataFrame, labels: pd.DataFrame, customers: pd.DataFrame
    ) -> list[Correction]:
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

    def device_signup_burst(
        self, links: pd.DataFrame, labels: pd.DataFrame, customers: pd.DataFrame
    ) -> list[Correction]:
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
