import pytest

from fraudgraph.config import RuleSettings, load_settings
from fraudgraph.scoring.rules import CustomerEvidence, DecisionRules, SharedIdentifierEvidence

DEFAULTS = load_settings(environ={}).rules


def rule_settings(**overrides) -> RuleSettings:
    """conf/default.yaml's rules with ``overrides``, validated."""
    return RuleSettings.model_validate({**DEFAULTS.model_dump(), **overrides})


RULES = DecisionRules(rule_settings(value_cut=100.0, young_account_days=7, hub_degree=100), model_threshold=0.8)


@pytest.mark.parametrize("score,value,decision,codes", [
    (0.95, 20.0, "block", {"HIGH_SCORE", "LOW_VALUE_CUSTOMER"}),
    (0.95, 100.0, "review", {"HIGH_SCORE", "HIGH_VALUE_CUSTOMER"}),  # at the cut: a person decides
    (0.95, 5000.0, "review", {"HIGH_SCORE", "HIGH_VALUE_CUSTOMER"}),
    (0.80, 0.0, "block", {"HIGH_SCORE", "LOW_VALUE_CUSTOMER"}),  # at the threshold
    (0.79, 0.0, "allow", {"SCORE_BELOW_THRESHOLD"}),
    (0.10, 5000.0, "allow", {"SCORE_BELOW_THRESHOLD"}),
    (0.95, None, "block", {"HIGH_SCORE", "LOW_VALUE_CUSTOMER"}),  # a new account has no value yet
])
def test_decision_table(score, value, decision, codes):
    d = RULES.decide(score, value)
    assert d.decision == decision
    assert set(d.reason_codes) == codes
    assert len(d.reasons) == len(d.reason_codes)


def test_reasons_from_evidence_are_readable():
    ev = CustomerEvidence(account_age_days=2.0, identifiers=(
        SharedIdentifierEvidence("device", 4, 3), SharedIdentifierEvidence("card", 2, 1),
        SharedIdentifierEvidence("ip", 300, 12)))
    d = RULES.decide(0.99, 10.0, ev)
    assert "shares device with 3 confirmed fraudsters" in d.reasons
    assert "shares card with 1 confirmed fraudster" in d.reasons
    assert not any("shares ip" in r for r in d.reasons)  # fraudsters on a hub prove nothing
    assert "SHARED_IP_HUB" in d.reason_codes and "NEW_ACCOUNT" in d.reason_codes
    assert "account is 2.0 days old" in d.reasons


def test_configured_threshold_overrides_the_model():
    rules = DecisionRules(rule_settings(threshold=0.5), model_threshold=0.9)
    assert rules.decide(0.6, 0.0).decision == "block"
