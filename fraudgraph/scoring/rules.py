"""The decision rule layer: fraud score + customer value -> block | review | allow, with reasons.

- score >= threshold and lifetime value below ``rules.value_cut`` -> ``block``
  (a low-value account is stopped automatically);
- score >= threshold and value at or above the cut -> ``review`` (a person decides);
- otherwise ``allow``.

Every decision carries reason codes and sentences a reviewer can read, built
from :class:`CustomerEvidence` (what the customer's identity neighbourhood
shows), the same for batch scoring, the live consumer and the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fraudgraph.config import RuleSettings

BLOCK, REVIEW, ALLOW = "block", "review", "allow"
# a customer whose block stands is not scored: its events are recorded and decided so (never a catch)
BLOCKED = "blocked"
DECISIONS = (BLOCK, REVIEW, ALLOW, BLOCKED)
KIND_NAMES = {"ip": "IP address", "device": "device", "email": "email address", "card": "card"}


@dataclass(frozen=True)
class SharedIdentifierEvidence:
    kind: str
    degree: int  # customers on the identifier (true degree)
    fraud_customers: int  # other customers on it whose cleaned label is fraud


@dataclass(frozen=True)
class CustomerEvidence:
    """What a reviewer needs to read a decision; built from the identity neighbourhood."""

    account_age_days: float | None = None
    identifiers: tuple[SharedIdentifierEvidence, ...] = field(default_factory=tuple)

    def fraud_by_kind(self, below_degree: int | None = None) -> dict[str, int]:
        """Confirmed fraudsters sharing each kind of identifier (hubs of ``below_degree`` or more ignored)."""
        out: dict[str, int] = {}
        for ident in self.identifiers:
            if below_degree is None or ident.degree < below_degree:
                out[ident.kind] = out.get(ident.kind, 0) + ident.fraud_customers
        return out


@dataclass(frozen=True)
class Decision:
    decision: str
    score: float
    threshold: float
    reason_codes: tuple[str, ...]
    reasons: tuple[str, ...]


class DecisionRules:
    """Apply the configured thresholds to a score; explain the outcome."""

    def __init__(self, settings: RuleSettings, model_threshold: float):
        self.settings = settings
        self.threshold = settings.threshold if settings.threshold is not None else model_threshold

    def blocked(self) -> Decision:
        """The decision for a customer whose block stands (:func:`fraudgraph.schema.block_stands`): not
        scored, so no score (NaN) and one reason."""
        return Decision(
            BLOCKED,
            float("nan"),
            float(self.threshold),
            ("BLOCK_STANDS",),
            ("the customer's block stands: its events are recorded, not scored as new evidence",),
        )

    def decide(self, score: float, lifetime_value: float | None, evidence: CustomerEvidence | None = None) -> Decision:
        s = self.settings
        value = float(lifetime_value) if lifetime_value is not None else 0.0
        codes: list[str] = []
        reasons: list[str] = []
        flagged = score >= self.threshold
        if flagged:
            codes.append("HIGH_SCORE")
            reasons.append(f"fraud score {score:.3f} is at or above the threshold {self.threshold:.3f}")
            if value >= s.value_cut:
                decision = REVIEW
                codes.append("HIGH_VALUE_CUSTOMER")
                reasons.append(f"lifetime value {value:.2f} is at or above {s.value_cut:.2f}: a person decides")
            else:
                decision = BLOCK
                codes.append("LOW_VALUE_CUSTOMER")
                reasons.append(f"lifetime value {value:.2f} is below {s.value_cut:.2f}: blocked automatically")
        else:
            decision = ALLOW
            codes.append("SCORE_BELOW_THRESHOLD")
            reasons.append(f"fraud score {score:.3f} is below the threshold {self.threshold:.3f}")
        if evidence is not None:
            for kind, n in sorted(evidence.fraud_by_kind(below_degree=s.hub_degree).items()):
                if n > 0:
                    codes.append(f"SHARES_{kind.upper()}_WITH_FRAUD")
                    reasons.append(f"shares {kind} with {n} confirmed fraudster{'s' if n != 1 else ''}")
            if evidence.account_age_days is not None and evidence.account_age_days < s.young_account_days:
                codes.append("NEW_ACCOUNT")
                reasons.append(f"account is {evidence.account_age_days:.1f} days old")
            hubs = sorted({i.kind for i in evidence.identifiers if i.degree >= s.hub_degree})
            for kind in hubs:
                codes.append(f"SHARED_{kind.upper()}_HUB")
                top = max(i.degree for i in evidence.identifiers if i.kind == kind)
                reasons.append(
                    f"uses a {KIND_NAMES.get(kind, kind)} shared by {top} customers (carrier or public network)"
                )
        return Decision(decision, float(score), float(self.threshold), tuple(codes), tuple(reasons))


def decision_properties(
    score: float | None, decision: str, reason_codes: Iterable[str], model_version: str, scored_as_of_ms: int
) -> dict[str, Any]:
    """The customer-vertex properties every decision writes back (batch scoring, the consumer, the API):
    ``score`` (6 decimals; removed for a customer whose block stands, which is not scored), ``decision``,
    ``decision_reasons`` (JSON list of codes), ``model_version`` and ``scored_as_of`` (epoch ms)."""
    scored = score is not None and score == score  # not None, not NaN
    return {
        "score": round(float(score), 6) if score is not None and scored else None,
        "decision": decision,
        "decision_reasons": json.dumps(list(reason_codes)),
        "model_version": model_version,
        "scored_as_of": int(scored_as_of_ms),
    }
