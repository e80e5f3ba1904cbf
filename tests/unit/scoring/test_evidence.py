"""Decision evidence is made from the same scoring inputs as the score, in batch and online alike."""

from __future__ import annotations

import pandas as pd

from fraudgraph.graph.elements import IDENTIFIER_STATS_COLUMNS, LINK_FRAME_COLUMNS
from fraudgraph.graph.scoring_inputs import ScoringInputs
from fraudgraph.scoring.evidence import decision_evidence
from fraudgraph.timeutil import DAY_MS

AS_OF = 1_760_000_000_000


def _links(rows):
    return pd.DataFrame([(c, k, h, fs, fs, 1) + (0,) * (len(LINK_FRAME_COLUMNS) - 6) for c, k, h, fs in rows],
                        columns=LINK_FRAME_COLUMNS)


def test_degrees_fraud_neighbours_and_age_as_of_the_inputs():
    customers = pd.DataFrame({"customer_id": ["new", "ring1", "ring2", "legit", "later"],
                              "signup_ts": [AS_OF - 2 * DAY_MS, AS_OF - 90 * DAY_MS, AS_OF - 80 * DAY_MS,
                                            AS_OF - 400 * DAY_MS, AS_OF - DAY_MS],
                              "clean_label": ["unknown", "fraud", "fraud", "legit", "fraud"]})
    links = _links([("new", "device", "d1", AS_OF - DAY_MS), ("ring1", "device", "d1", AS_OF - 90 * DAY_MS),
                    ("ring2", "device", "d1", AS_OF - 80 * DAY_MS), ("legit", "ip", "i1", AS_OF - 400 * DAY_MS),
                    ("new", "ip", "i1", AS_OF - DAY_MS),
                    ("later", "ip", "i1", AS_OF + DAY_MS)])  # after as-of: not seen
    ev = decision_evidence(ScoringInputs(customers, links, AS_OF), ["new", "legit", "nobody"])
    assert set(ev) == {"new", "legit"}
    assert ev["new"].account_age_days == 2.0
    shared = {(i.kind, i.degree, i.fraud_customers) for i in ev["new"].identifiers}
    assert shared == {("device", 3, 2), ("ip", 2, 0)}
    assert {(i.kind, i.fraud_customers) for i in ev["legit"].identifiers} == {("ip", 0)}


def test_a_subgraph_takes_true_degrees_from_its_identifier_statistics():
    """Online scoring reads only the capped customers of a hub: the degree is still the hub's."""
    customers = pd.DataFrame({"customer_id": ["c", "f"], "signup_ts": [AS_OF - DAY_MS, AS_OF - 50 * DAY_MS],
                              "clean_label": ["unknown", "fraud"]})
    links = _links([("c", "ip", "hub", AS_OF - DAY_MS), ("f", "ip", "hub", AS_OF - 50 * DAY_MS)])
    stats = pd.DataFrame([("ip", "hub", 300, AS_OF - 900 * DAY_MS, AS_OF - DAY_MS, 5000)],
                         columns=IDENTIFIER_STATS_COLUMNS)
    ev = decision_evidence(ScoringInputs(customers, links, AS_OF, identifier_stats=stats), ["c"])
    (ip,) = ev["c"].identifiers
    assert (ip.degree, ip.fraud_customers) == (300, 1)


def test_a_customer_without_a_visible_link_still_has_its_age():
    customers = pd.DataFrame({"customer_id": ["solo"], "signup_ts": [AS_OF - 3 * DAY_MS]})
    ev = decision_evidence(ScoringInputs(customers, _links([]), AS_OF), ["solo"])
    assert ev["solo"].account_age_days == 3.0 and ev["solo"].identifiers == ()
