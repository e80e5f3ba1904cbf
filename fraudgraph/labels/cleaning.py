"""Label maturity and heuristic correction of missed fraud, audited.

Raw label: a customer blocked for fraud (manually or by a rule) has
``is_fraud = 1``. Those labels are noisy: blocks arrive late, some are
mistakes that customers appeal, and many fraudsters are never blocked.
:func:`clean_labels` turns the raw history into training labels, as of a
given time (nothing after it is visible):

1. **Analyst outcomes** (``review_outcome`` = fraud | legit recorded by the
   review console) come first and are final.
2. **Maturity** (:func:`fraudgraph.labels.maturity.mature_labels`): a fraud label counts once the block is
   older than ``maturity_days`` and the customer did not appeal within
   ``appeal_window_days`` of it; a block lifted after an appeal makes the
   customer legitimate; a block upheld on appeal (decided before as-of)
   confirms fraud at once; a legitimate label needs an account older than
   ``maturity_days`` with no block. Everything else is ``unknown`` and stays
   out of training.
3. **Heuristics** (:class:`fraudgraph.labels.heuristics.MissedFraudRules`) relabel legitimate or unknown
   customers as fraud when identity structure says so with high confidence.
   Each is named, switchable and parameterised in ``conf/`` and records its
   evidence (which identifiers, which fraudsters).

Every label that differs from the raw one is written to the audit table with
the rule that set it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pandas as pd

from fraudgraph.config import LabelSettings
from fraudgraph.labels.heuristics import Correction, MissedFraudRules
from fraudgraph.labels.maturity import (
    FRAUD,
    LEGIT,
    mature_labels,
    visible_customers,
    visible_links,
)

log = logging.getLogger(__name__)


AUDIT_COLUMNS = ["customer_id", "raw_label", "label", "rule", "evidence", "as_of"]


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
