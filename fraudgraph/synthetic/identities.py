"""Who the synthetic world's people are, and the identifiers they are given.

The customer record every part of :class:`fraudgraph.synthetic.world.WorldGenerator` fills in, what the
generator's parts share (:class:`WorldState`), and the generators of raw identifiers (devices, cards,
IPs, emails: deliberately untidy, as real raw data is).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from fraudgraph.config import WorldSettings

COUNTRIES = ["AE", "SA", "PK", "EG", "JO", "MA", "QA", "KW"]
COUNTRY_WEIGHTS = [0.3, 0.25, 0.15, 0.1, 0.06, 0.06, 0.04, 0.04]
EMAIL_PROVIDERS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "live.com"]
PROVIDER_WEIGHTS = [0.55, 0.12, 0.12, 0.1, 0.08, 0.03]
DISPOSABLE_DOMAINS = ["mailinator.com", "tempmail.dev", "guerrillamail.net", "yopmail.com", "10minutemail.org"]
FIRST = [
    "ahmed",
    "sara",
    "omar",
    "fatima",
    "ali",
    "layla",
    "yusuf",
    "noor",
    "hassan",
    "mariam",
    "khalid",
    "aisha",
    "tariq",
    "huda",
    "samir",
    "rania",
    "bilal",
    "dina",
    "faisal",
    "zainab",
]
LAST = [
    "khan",
    "hassan",
    "saleh",
    "haddad",
    "nasser",
    "farouk",
    "aziz",
    "rahman",
    "mansour",
    "qureshi",
    "youssef",
    "habib",
    "karim",
    "salem",
    "jaber",
]
CHANNELS = ["app_android", "app_ios", "web"]


# First octets of the hosting / VPN ranges rings rent their IPs from; some legitimate customers use them too.
HOSTING_PREFIXES = [45, 91, 103, 185, 193]


@dataclass
class Customer:
    customer_id: str
    signup_ts: int
    country: str
    lifetime_value: float
    kind: str = "legit"  # legit | ring | synthetic_identity
    fraud_type: str = "none"  # adds account_takeover for victims
    ring_id: str | None = None
    fraud_start_ts: int | None = None
    devices: list[str] = field(default_factory=list)
    home_ip: str | None = None
    email: str | None = None
    cards: list[str] = field(default_factory=list)
    blocked_at: int | None = None
    unblocked_at: int | None = None
    traveller: bool = False
    active_until: int | None = None  # a churned customer goes quiet for good here
    vpn: bool = False  # logs in from hosting / VPN ranges part of the time
    office_ip: str | None = None  # office or campus NAT IP shared with many others
    device_times: dict[str, int] = field(default_factory=dict)  # devices that appear at a known time
    new_phone_at: int | None = None  # a new phone, then email change and card on it
    sleeper_until: int | None = None  # a fraud account that ages quietly before it acts
    dynamic_ip: bool = False  # the home IP is re-assigned within its /24 from time to time
    channels: tuple[str, ...] = ("app_android",)  # the first is the usual one
    spend_level: float = 3.0  # log of the customer's typical payment amount


class WorldState:
    """What every part of the generator reads: its settings, the world's clock (epoch ms: start, the
    cut-off between history and live stream, end) and the IP pools all chunks share."""

    s: WorldSettings
    start: int
    cutoff: int
    end: int
    carrier_ips: list[str]
    wifi_ips: list[str]
    office_ips: list[str]


def is_active(c: Customer, ts: int, event_type: str = "login") -> bool:
    """Is an identity event kept? Not while the account is blocked, except a fraudster's logins: blocked
    fraudsters keep trying (the platform refuses everything else they attempt)."""
    if c.blocked_at is None or ts < c.blocked_at:
        return True
    if c.unblocked_at is not None and ts >= c.unblocked_at:
        return True
    return c.kind != "legit" and event_type == "login"


def fresh_device(rng: random.Random) -> str:
    return f"dev-{rng.getrandbits(48):012x}"


def fresh_card(rng: random.Random) -> str:
    return f"fp_{rng.getrandbits(64):016x}"


def hosting_ip(rng: random.Random) -> str:
    return f"{rng.choice(HOSTING_PREFIXES)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def random_ip(rng: random.Random) -> str:
    return f"{rng.randrange(11, 220)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def home_ip_now(c: Customer, rng: random.Random) -> str:
    """The customer's home IP at one event: a dynamic one moves within its /24 half of the time."""
    if c.home_ip is None:
        return random_ip(rng)
    if c.dynamic_ip and rng.random() < 0.5:
        return f"{c.home_ip.rsplit('.', 1)[0]}.{rng.randrange(1, 255)}"
    return c.home_ip


def channels_for(rng: random.Random, switch_share: float) -> tuple[str, ...]:
    """A customer's channels: one for life, or a usual one and a second used part of the time."""
    first = rng.choice(CHANNELS)
    if rng.random() < switch_share:
        return (first, rng.choice([ch for ch in CHANNELS if ch != first]))
    return (first,)


def channel_now(c: Customer, rng: random.Random) -> str:
    return c.channels[1] if len(c.channels) > 1 and rng.random() < 0.3 else c.channels[0]


def payment_amount(c: Customer, rng: random.Random, shift: float = 0.0) -> float:
    """A payment around the customer's own level (log-normal, spread 0.6)."""
    return round(math.exp(rng.gauss(c.spend_level + shift, 0.6)), 2)


def fresh_email(rng: random.Random, disposable: bool = False) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    style = rng.random()
    local = (
        f"{first}.{last}{rng.randrange(1, 100_000)}"
        if style < 0.4
        else f"{first}{last}{rng.randrange(1, 1_000_000)}"
        if style < 0.8
        else f"{first[0]}{last}{rng.randrange(1970, 2008)}_{rng.randrange(1, 100_000)}"
    )
    domain = rng.choice(DISPOSABLE_DOMAINS) if disposable else rng.choices(EMAIL_PROVIDERS, PROVIDER_WEIGHTS)[0]
    if rng.random() < 0.3:
        local = local.capitalize()  # raw data is not normalised
    return f"{local}@{domain}"
