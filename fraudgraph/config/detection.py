"""Labels, training and the decision rules."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fraudgraph.config.base import Section


class EventTagSettings(Section):
    """What :mod:`fraudgraph.event_tags` reads off an event's raw fields before hashing: the hosting / VPN
    and carrier NAT IP ranges (CIDR), the disposable and free e-mail provider domains, and how many digits
    make an e-mail local part look generated."""

    hosting_ip_ranges: list[str]
    carrier_nat_ranges: list[str]
    disposable_email_domains: list[str]
    free_email_domains: list[str]
    many_digits: int = Field(ge=1)


class HeuristicRule(Section):
    """A label heuristic: switchable, and the confidence of the fraud labels it sets."""

    enabled: bool
    confidence: float = Field(ge=0, le=1)


class SharedUseRule(HeuristicRule):
    """A heuristic on identifiers shared with fraudsters, used at the same time as them: first use
    within ``max_first_use_gap_days`` of a fraudster's, and no use past ``max_use_after_fraudsters_days``
    after the fraudster's last (a stolen card's owner goes on using it)."""

    min_fraudsters: int = Field(ge=1)
    max_first_use_gap_days: float = Field(gt=0)
    max_use_after_fraudsters_days: float = Field(gt=0)


class SharedCardRule(SharedUseRule):
    max_card_degree: int = Field(ge=2)


class ComponentRule(SharedUseRule):
    kinds: list[Literal["device", "ip", "email", "card"]]
    max_identifier_degree: int = Field(ge=2)
    min_size: int = Field(ge=2)
    min_fraud_share: float = Field(ge=0, le=1)
    min_direct_fraudsters: int = Field(ge=0)


class BurstRule(HeuristicRule):
    min_accounts: int = Field(ge=2)
    window_hours: float = Field(gt=0)
    min_fraudsters: int = Field(ge=0)
    max_block_after_signup_days: float = Field(gt=0)


class HeuristicSettings(Section):
    shared_card_with_fraudsters: SharedCardRule
    fraud_dominated_component: ComponentRule
    device_signup_burst: BurstRule


class LabelConfidence(Section):
    analyst: float = Field(ge=0, le=1)
    block_matured: float = Field(ge=0, le=1)
    unblocked_after_appeal: float = Field(ge=0, le=1)
    appeal_upheld: float = Field(ge=0, le=1)
    matured_no_block: float = Field(ge=0, le=1)


class LabelSettings(Section):
    maturity_days: float = Field(ge=0)
    appeal_window_days: float = Field(ge=0)
    confidence: LabelConfidence
    heuristics: HeuristicSettings


class SplitSettings(Section):
    val_days: float = Field(gt=0)
    test_days: float = Field(gt=0)


class GbdtSettings(Section):
    max_iter: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    max_leaf_nodes: int = Field(ge=2)


class ExampleSettings(Section):
    max_per_customer: int = Field(ge=1)
    legit_customers_per_split: int = Field(ge=1)
    fraud_window_days: float = Field(gt=0)


class TrainingSettings(Section):
    seed: int
    hidden_dim: int = Field(ge=4)
    edge_hidden_dim: int = Field(ge=1)
    edge_pooling: Literal["mean", "mean_max"]
    layers: int = Field(ge=1, le=4)
    dropout: float = Field(ge=0, lt=1)
    learning_rate: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    max_epochs: int = Field(ge=1)
    patience: int = Field(ge=1)
    min_epochs: int = Field(ge=1)
    mode: Literal["auto", "full", "minibatch"]
    full_graph_max_edges: int = Field(ge=0)
    batch_size: int = Field(ge=1)
    fanouts: list[int]
    split: SplitSettings
    examples: ExampleSettings
    min_positives: int = Field(ge=1)
    bootstrap_rounds: int = Field(ge=0)
    pos_weight_max: float = Field(ge=1)
    threshold_policy: Literal["labelled_fraud_rate", "false_flag_budget", "target_precision"]
    false_flags_per_10k: float = Field(ge=0, le=10_000)
    target_precision: float = Field(gt=0, lt=1)
    gbdt: GbdtSettings
    threads: int = Field(ge=1)
    refit_on_all_labels: bool
    deployed_refits: int = Field(ge=1)
    deployed_refit_budget: int = Field(ge=1)
    baselines: bool


class DayOneRuleSettings(Section):
    max_shared_degree: int = Field(ge=2)
    burst_accounts: int = Field(ge=2)
    burst_window_days: float = Field(gt=0)
    card_after_signup_hours: float = Field(gt=0)


class RuleSettings(Section):
    threshold: float | None = Field(ge=0, le=1)
    value_cut: float = Field(ge=0)
    young_account_days: float = Field(ge=0)
    hub_degree: int = Field(ge=2)
    day_one: DayOneRuleSettings
