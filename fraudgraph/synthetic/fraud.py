"""How fraudsters act: rings and their generations, lone synthetic identities and account
takeovers, and their events."""

from __future__ import annotations

import math
import random
from typing import Any

from fraudgraph.synthetic.identities import (
    COUNTRIES,
    COUNTRY_WEIGHTS,
    EMAIL_PROVIDERS,
    FIRST,
    HOSTING_PREFIXES,
    LAST,
    PROVIDER_WEIGHTS,
    Customer,
    WorldState,
    channel_now,
    channels_for,
    fresh_card,
    fresh_device,
    fresh_email,
    home_ip_now,
    payment_amount,
    random_ip,
)
from fraudgraph.timeutil import DAY_MS, HOUR_MS, MINUTE_MS

DAY, HOUR, MINUTE = DAY_MS, HOUR_MS, MINUTE_MS


class FraudBehaviour(WorldState):
    """The fraud half of :class:`~fraudgraph.synthetic.world.WorldGenerator` (a mixin over
    :class:`~fraudgraph.synthetic.identities.WorldState`)."""

    def _fraud_profile(self, c: Customer, rng: random.Random) -> Customer:
        """What a fraudster shares with everyone: an IP that may move, one or two channels, a spend level and
        a lifetime value from the same families of distributions as legitimate customers'."""
        fs = self.s.fraud
        c.dynamic_ip = rng.random() < fs.dynamic_ip_share
        c.channels = channels_for(rng, fs.channel_switch_share)
        c.spend_level = rng.gauss(fs.spend_log_mean, self.s.legit.spend_log_sd)
        c.lifetime_value = round(fs.lifetime_value_median * math.exp(rng.gauss(0, 1.0)), 2)
        return c

    def _synthetic_factories(self, ids: list[str], rng: random.Random, legit: list[Customer]) -> list[Customer]:
        """Synthetic identities, made a few at a time by one fabricator: each factory's identities share one
        or two devices and a home /24 (and a few of them one card), sign up over ``synthetic_build_days``,
        act thinly while they build a history on cards opened in their names, then bust out together."""
        fs = self.s.fraud
        lo, hi = fs.synthetic_factory_size
        out: list[Customer] = []
        i = 0
        while i < len(ids):
            size = min(len(ids) - i, rng.randint(lo, hi))
            members, i = ids[i : i + size], i + size
            build = int(rng.uniform(*fs.synthetic_build_days) * DAY)
            first = self.start + rng.randrange(max(1, self.end - self.start - build - 2 * DAY))
            bust = first + build
            devices = [fresh_device(rng) for _ in range(rng.randint(1, 2))]
            home = random_ip(rng)
            # credit built in the synthetic names: each identity its own new card, a few sharing the factory's
            shared_card = fresh_card(rng)
            for cid in members:
                c = Customer(
                    cid,
                    first + rng.randrange(max(1, build // 2)),
                    rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0],
                    0.0,
                    kind="synthetic_identity",
                    fraud_type="synthetic_identity",
                )
                self._fraud_profile(c, rng)
                c.fraud_start_ts = c.signup_ts
                c.devices = [rng.choice(devices)]
                c.email = fresh_email(rng, disposable=rng.random() < fs.disposable_email_share)
                c.cards = [shared_card if rng.random() < 0.3 else fresh_card(rng)]
                c.home_ip = f"{home.rsplit('.', 1)[0]}.{rng.randrange(1, 255)}"
                c.sleeper_until = bust + rng.randrange(2 * DAY)  # the bust-out
                out.append(c)
        return out

    def _take_over(self, legit: list[Customer], ring_pool: list[dict], n_ato: int, rng: random.Random) -> None:
        """Account takeovers: ``n_ato`` legitimate accounts old enough get a fraud start and a ring."""
        min_age = int(self.s.fraud.takeover_min_account_age_days * DAY)
        eligible = [c for c in legit if c.signup_ts + min_age < self.end - DAY]
        for victim in rng.sample(eligible, min(n_ato, len(eligible))):
            victim.fraud_type = "account_takeover"
            victim.fraud_start_ts = victim.signup_ts + min_age + rng.randrange(self.end - victim.signup_ts - min_age)
            ring = rng.choice(ring_pool) if ring_pool else None
            victim.ring_id = ring["ring_id"] if ring else None

    # Over 60 lines for a reason: every draw comes from the chunk's one generator in a fixed order, and the
    # world is kept byte-identical (tests/unit/synthetic/test_world.py); one ring generation after another, in
    # the order drawn.
    def _rings(
        self, member_ids: list[str], chunk: int, rng: random.Random, legit: list[Customer]
    ) -> list[dict[str, Any]]:
        fs = self.s.fraud
        card_owners = [c for c in legit if c.cards]
        rings, i, r = [], 0, 0
        while i < len(member_ids):
            size = max(3, min(len(member_ids) - i, int(rng.gauss(fs.ring_size_mean, fs.ring_size_mean / 3))))
            if len(member_ids) - i - size < 3:
                size = len(member_ids) - i
            members_ids = member_ids[i : i + size]
            i += size
            ring_id = f"R{chunk:03d}-{r:03d}"
            r += 1
            subnet = f"{rng.choice(HOSTING_PREFIXES)}.{rng.randrange(256)}.{rng.randrange(256)}"
            # a ring's made-up addresses follow one name with numbers, at an ordinary provider
            domain = rng.choices(EMAIL_PROVIDERS, PROVIDER_WEIGHTS)[0]
            prefix = f"{rng.choice(FIRST)}{rng.choice(LAST)}"
            start = self.start + rng.randrange(self.end - self.start - 5 * DAY)
            gens = max(1, min(fs.ring_generations, size // 2))
            devices = [fresh_device(rng) for _ in range(fs.ring_devices)]
            cards = [self._ring_card(rng, card_owners) for _ in range(fs.ring_cards)]
            members, per_gen = [], math.ceil(size / gens)
            generations = []
            for g in range(gens):
                if g > 0:  # reuse part of the identifiers, bring new ones
                    keep = max(1, round(len(devices) * fs.ring_identifier_reuse))
                    devices = rng.sample(devices, keep) + [fresh_device(rng) for _ in range(fs.ring_devices - keep)]
                    keep = max(1, round(len(cards) * fs.ring_identifier_reuse))
                    cards = rng.sample(cards, keep) + [
                        self._ring_card(rng, card_owners) for _ in range(fs.ring_cards - keep)
                    ]
                generations.append((list(devices), list(cards)))
                burst_start = min(start + g * rng.randrange(15 * DAY, 60 * DAY), self.end - 3 * DAY)
                spread = int(fs.ring_signup_spread_days * DAY)
                for cid in members_ids[g * per_gen : (g + 1) * per_gen]:
                    signup = min(burst_start + rng.randrange(spread), self.end - 2 * DAY)
                    c = Customer(
                        cid,
                        signup,
                        rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0],
                        0.0,
                        kind="ring",
                        fraud_type="ring",
                        ring_id=ring_id,
                    )
                    self._fraud_profile(c, rng)
                    c.fraud_start_ts = c.signup_ts
                    if rng.random() < fs.sleeper_share:
                        lo, hi = fs.sleeper_days
                        c.sleeper_until = c.signup_ts + int(rng.uniform(lo, hi) * DAY)
                    c.devices = [rng.choice(devices)]
                    c.cards = rng.sample(cards, rng.randint(1, 2))
                    c.email = (
                        f"{prefix}{rng.randrange(1, 1_000_000)}@{domain}"
                        if rng.random() < 0.4
                        else fresh_email(rng, disposable=rng.random() < fs.disposable_email_share)
                    )
                    c.home_ip = f"{subnet}.{rng.randrange(1, 255)}"
                    members.append(c)
            office = rng.choice(self.office_ips)
            rings.append(
                {
                    "ring_id": ring_id,
                    "members": members,
                    "subnet": subnet,
                    "domain": domain,
                    "prefix": prefix,
                    "generations": generations,
                    "office_ip": office,
                }
            )
        return rings

    def _fraud_ip(self, ring: dict | None, c: Customer, rng: random.Random) -> str:
        """A ring's own hosting subnet most of the time, else the carrier NAT, public Wi-Fi or an office IP
        legitimate customers share; a lone fraudster's own IP or a carrier's."""
        fs = self.s.fraud
        r = rng.random()
        if r < fs.carrier_ip_share:
            return rng.choice(self.carrier_ips)
        if r < fs.carrier_ip_share + fs.public_wifi_share:
            return rng.choice(self.wifi_ips)
        if ring is not None and r < fs.carrier_ip_share + fs.public_wifi_share + fs.office_ip_share:
            return ring["office_ip"]
        return home_ip_now(c, rng)

    def _fraud_events(self, c: Customer, ring: dict | None, rng: random.Random, emit) -> None:
        if c.kind == "synthetic_identity":
            self._synthetic_events(c, rng, emit)
            return
        fs = self.s.fraud
        channel = lambda: channel_now(c, rng)  # noqa: E731
        ip = lambda: self._fraud_ip(ring, c, rng)  # noqa: E731
        t = c.signup_ts
        emit(c, "signup", t, device_id=c.devices[0], ip=ip(), email=c.email, channel=channel())
        if c.sleeper_until is not None:  # ages quietly: a login now and then, then acts
            for _ in range(rng.randint(0, 3)):
                emit(
                    c,
                    "login",
                    t + rng.randrange(max(1, c.sleeper_until - t)),
                    device_id=c.devices[0],
                    ip=ip(),
                    channel=channel(),
                )
            t = c.sleeper_until
        for k, card in enumerate(c.cards):
            if k == 0 and rng.random() >= fs.card_at_signup_share:
                t += rng.randrange(DAY, 20 * DAY)
            else:
                t += rng.randrange(10 * MINUTE, 6 * HOUR)
            emit(c, "add_card", t, device_id=c.devices[0], ip=ip(), card_fingerprint=card, channel=channel())
        for _ in range(rng.randint(1, 6)):
            t += rng.randrange(HOUR, 3 * DAY)
            emit(
                c,
                "payment",
                t,
                device_id=c.devices[0],
                ip=ip(),
                card_fingerprint=rng.choice(c.cards),
                amount=payment_amount(c, rng),
                currency="USD",
                channel=channel(),
            )
            if rng.random() < 0.5:
                emit(c, "login", t - rng.randrange(MINUTE, HOUR), device_id=c.devices[0], ip=ip(), channel=channel())

    def _synthetic_events(self, c: Customer, rng: random.Random, emit) -> None:
        """A thin, slow build (a few logins, a card, a small payment or two), then the bust-out: several
        payments within a day, at about the time its factory's other identities bust out."""
        channel = lambda: channel_now(c, rng)  # noqa: E731
        ip = lambda: home_ip_now(c, rng)  # noqa: E731
        bust = c.sleeper_until or c.signup_ts
        emit(c, "signup", c.signup_ts, device_id=c.devices[0], ip=ip(), email=c.email, channel=channel())
        span = max(1, bust - c.signup_ts)
        emit(c, "add_card", c.signup_ts + rng.randrange(span), device_id=c.devices[0], ip=ip(),
             card_fingerprint=c.cards[0], channel=channel())  # fmt: skip
        for _ in range(rng.randint(1, 4)):
            emit(c, "login", c.signup_ts + rng.randrange(span), device_id=c.devices[0], ip=ip(), channel=channel())
        for _ in range(rng.randint(0, 2)):
            small = payment_amount(c, rng, -0.5)
            emit(c, "payment", c.signup_ts + rng.randrange(span), device_id=c.devices[0], ip=ip(),
                 card_fingerprint=c.cards[0], amount=small, currency="USD", channel=channel())  # fmt: skip
        t = bust
        for _ in range(rng.randint(2, 6)):
            t += rng.randrange(10 * MINUTE, 4 * HOUR)
            emit(c, "payment", t, device_id=c.devices[0], ip=ip(), card_fingerprint=c.cards[0],
                 amount=payment_amount(c, rng, 0.3), currency="USD", channel=channel())  # fmt: skip

    def _tries_after_block(self, c: Customer, ring: dict | None, rng: random.Random, emit) -> None:
        """A blocked fraudster keeps trying: login attempts on its device over the following days (the block
        is not the end of a fraudster's interest in an account)."""
        if c.blocked_at is None:
            return
        t = c.blocked_at
        for _ in range(rng.randint(1, 5)):
            t += rng.randrange(HOUR, 5 * DAY)
            ip = self._fraud_ip(ring, c, rng) if ring is not None else home_ip_now(c, rng)
            emit(c, "login", t, device_id=rng.choice(c.devices), ip=ip, channel=channel_now(c, rng))

    def _ring_card(self, rng: random.Random, card_owners: list[Customer]) -> str:
        """A new card, or one stolen from a legitimate customer who keeps using it (a legitimate collision)."""
        if card_owners and rng.random() < self.s.fraud.stolen_card_share:
            return rng.choice(rng.choice(card_owners).cards)
        return fresh_card(rng)

    def _resell_ring_devices(self, rings: list[dict[str, Any]], legit: list[Customer], rng: random.Random) -> None:
        """Some ring devices are sold on: a legitimate customer starts using one 1-4 months after the ring."""
        if not legit:
            return
        for ring in rings:
            last = max(m.signup_ts for m in ring["members"])
            for devices, _ in ring["generations"]:
                for device in devices:
                    if rng.random() < self.s.fraud.resold_device_share:
                        buyer = rng.choice(legit)
                        if device not in buyer.devices:
                            buyer.devices.append(device)
                            buyer.device_times[device] = last + rng.randrange(30 * DAY, 120 * DAY)

    def _takeover_events(self, c: Customer, ring: dict | None, rng: random.Random, emit) -> None:
        """A hijacked account: through a ring (its device, IPs and cards), or by phishing or credential
        stuffing (the attacker's own device and a residential IP, paying with the victim's own card)."""
        fs = self.s.fraud
        channel = rng.choice(channels_for(rng, 0.0) + c.channels)
        if ring is not None and rng.random() >= fs.phished_takeover_share:
            devices, cards = rng.choice(ring["generations"])
            device, card = rng.choice(devices), rng.choice(cards)
            ip = lambda: self._fraud_ip(ring, c, rng)  # noqa: E731
            email = (
                f"{ring['prefix']}{rng.randrange(1, 1_000_000)}@{ring['domain']}"
                if rng.random() < 0.4
                else fresh_email(rng, disposable=rng.random() < fs.disposable_email_share)
            )
        else:
            device, email = fresh_device(rng), fresh_email(rng, disposable=rng.random() < fs.disposable_email_share)
            card = rng.choice(c.cards) if c.cards and rng.random() < 0.7 else fresh_card(rng)
            attacker_ip = random_ip(rng)
            ip = lambda: attacker_ip if rng.random() < 0.6 else random_ip(rng)  # noqa: E731
        t = c.fraud_start_ts
        assert t is not None  # a takeover has its start
        emit(c, "login", t, device_id=device, ip=ip(), channel=channel)
        if rng.random() < 0.7:
            t += rng.randrange(5 * MINUTE, 2 * HOUR)
            emit(c, "change_email", t, device_id=device, ip=ip(), email=email, channel=channel)
        if card not in c.cards:
            t += rng.randrange(5 * MINUTE, 2 * HOUR)
            emit(c, "add_card", t, device_id=device, ip=ip(), card_fingerprint=card, channel=channel)
        for _ in range(rng.randint(1, 4)):
            t += rng.randrange(30 * MINUTE, DAY)
            emit(
                c,
                "payment",
                t,
                device_id=device,
                ip=ip(),
                card_fingerprint=card,
                amount=payment_amount(c, rng, 0.4),
                currency="USD",
                channel=channel,
            )
