"""The synthetic world's knobs (``world`` in ``conf/default.yaml``; docs/synthetic-world.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fraudgraph.config.base import Section


class LegitWorldSettings(Section):
    household_share: float = Field(ge=0, le=1)
    extra_device_rate: float = Field(ge=0, le=1)
    carrier_ip_share: float = Field(ge=0, le=1)
    carrier_ips: int = Field(ge=1)
    public_wifi_ips: int = Field(ge=1)
    public_wifi_share: float = Field(ge=0, le=1)
    traveller_share: float = Field(ge=0, le=1)
    card_rate: float = Field(ge=0, le=1)
    shared_card_in_household: float = Field(ge=0, le=1)
    email_change_rate: float = Field(ge=0, le=1)
    logins_per_month: float = Field(ge=0)
    payments_per_month: float = Field(ge=0)
    lifetime_value_median: float = Field(gt=0)
    card_at_signup_share: float = Field(ge=0, le=1)
    first_payment_soon_share: float = Field(ge=0, le=1)
    joint_signup_share: float = Field(ge=0, le=1)
    churn_rate: float = Field(ge=0, le=1)
    office_ips: int = Field(ge=1)
    office_share: float = Field(ge=0, le=1)
    vpn_share: float = Field(ge=0, le=1)
    new_phone_share: float = Field(ge=0, le=1)
    dynamic_ip_share: float = Field(ge=0, le=1)
    channel_switch_share: float = Field(ge=0, le=1)
    disposable_email_share: float = Field(ge=0, le=1)
    spend_log_mean: float
    spend_log_sd: float = Field(ge=0)


class FraudWorldSettings(Section):
    prevalence: float = Field(ge=0, le=0.5)
    ring_share: float = Field(ge=0, le=1)
    takeover_share: float = Field(ge=0, le=1)
    ring_size_mean: int = Field(ge=2)
    ring_generations: int = Field(ge=1)
    ring_identifier_reuse: float = Field(ge=0, le=1)
    ring_devices: int = Field(ge=1)
    ring_cards: int = Field(ge=1)
    takeover_min_account_age_days: float = Field(ge=0)
    card_at_signup_share: float = Field(ge=0, le=1)
    carrier_ip_share: float = Field(ge=0, le=1)
    public_wifi_share: float = Field(ge=0, le=1)
    office_ip_share: float = Field(ge=0, le=1)
    sleeper_share: float = Field(ge=0, le=1)
    sleeper_days: list[float]
    ring_signup_spread_days: float = Field(gt=0)
    stolen_card_share: float = Field(ge=0, le=1)
    resold_device_share: float = Field(ge=0, le=1)
    dynamic_ip_share: float = Field(ge=0, le=1)
    channel_switch_share: float = Field(ge=0, le=1)
    disposable_email_share: float = Field(ge=0, le=1)
    spend_log_mean: float
    lifetime_value_median: float = Field(gt=0)
    phished_takeover_share: float = Field(ge=0, le=1)
    synthetic_factory_size: list[int]
    synthetic_build_days: list[float]


class BlockingSettings(Section):
    detect_rate: dict[Literal["ring", "account_takeover", "synthetic_identity"], float]
    block_delay_median_days: float = Field(gt=0)
    block_delay_sigma: float = Field(ge=0)
    manual_block_share: float = Field(ge=0, le=1)
    fraud_appeal_rate: float = Field(ge=0, le=1)
    false_block_rate: float = Field(ge=0, le=1)
    false_block_appeal_rate: float = Field(ge=0, le=1)
    wrong_outcome_rate: float = Field(ge=0, le=1)
    block_reasons: dict[str, float]
    appeal_delay_median_days: float = Field(gt=0)
    unblock_delay_days: float = Field(ge=0)


class WorldSettings(Section):
    customers: int = Field(ge=10)
    seed: int
    start: str
    history_days: float = Field(gt=0)
    live_days: float = Field(ge=0)
    chunk_customers: int = Field(ge=100)
    workers: int = Field(ge=1)
    legit: LegitWorldSettings
    fraud: FraudWorldSettings
    blocking: BlockingSettings
