"""How legitimate customers live: who they are, households and their shared identifiers, and
their events (device churn, travel, new phones, churn)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from fraudgraph.synthetic.identities import (
    COUNTRIES,
    COUNTRY_WEIGHTS,
    Customer,
    WorldState,
    channel_now,
    channels_for,
    fresh_card,
    fresh_device,
    fresh_email,
    home_ip_now,
    hosting_ip,
    payment_amount,
    random_ip,
)
from fraudgraph.timeutil import DAY_MS, HOUR_MS, MINUTE_MS

DAY, HOUR, MINUTE = DAY_MS, HOUR_MS, MINUTE_MS


class LegitBehaviour(WorldState):
    """The legitimate half of :class:`~fraudgraph.synthetic.world.WorldGenerator` (a mixin over
    :class:`~fraudgraph.synthetic.identities.WorldState`)."""

    def _legit_customer(self, customer_id: str, rng: random.Random) -> Customer:
        ls = self.s.legit
        c = Customer(
            customer_id,
            self.start + rng.randrange(self.end - self.start - DAY),
            rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0],
            round(ls.lifetime_value_median * math.exp(rng.gauss(0, 1.1)), 2),
        )
        c.traveller = rng.random() < ls.traveller_share
        if rng.random() < ls.churn_rate:
            c.active_until = c.signup_ts + DAY + rng.randrange(max(1, self.end - c.signup_ts - DAY))
        c.vpn = rng.random() < ls.vpn_share
        if rng.random() < ls.office_share:
            c.office_ip = rng.choice(self.office_ips)
        if rng.random() < ls.new_phone_share:
            c.new_phone_at = c.signup_ts + 7 * DAY + rng.randrange(max(1, self.end - c.signup_ts))
        c.dynamic_ip = rng.random() < ls.dynamic_ip_share
        c.channels = channels_for(rng, ls.channel_switch_share)
        c.spend_level = rng.gauss(ls.spend_log_mean, ls.spend_log_sd)
        return c

    def _households_and_identifiers(self, legit: list[Customer], rng: random.Random) -> None:
        ls = self.s.legit
        i = 0
        order = list(range(len(legit)))
        rng.shuffle(order)
        while i < len(order):
            if rng.random() < ls.household_share / 2.5:  # households of 2-4 (mean ~3) hold household_share
                size = rng.randint(2, 4)
                members = [legit[j] for j in order[i : i + size]]
                i += size
                shared_device, home_ip = fresh_device(rng), random_ip(rng)
                shared_card = fresh_card(rng) if rng.random() < ls.shared_card_in_household else None
                if members and rng.random() < ls.joint_signup_share:  # a family signing up together
                    first = min(m.signup_ts for m in members)
                    for m in members:
                        m.signup_ts = min(first + rng.randrange(2 * DAY), self.end - 2 * DAY)
                for m in members:
                    m.devices = [shared_device] if rng.random() < 0.5 else [fresh_device(rng), shared_device]
                    m.home_ip = home_ip
                    if shared_card:
                        m.cards.append(shared_card)
            else:
                m = legit[order[i]]
                i += 1
                m.devices = [fresh_device(rng)]
                m.home_ip = random_ip(rng)
        for m in legit:
            if rng.random() < ls.extra_device_rate:
                m.devices.append(fresh_device(rng))
            m.email = fresh_email(rng, disposable=rng.random() < ls.disposable_email_share)
            if rng.random() < ls.card_rate and not m.cards:
                m.cards.append(fresh_card(rng))
            if m.cards and rng.random() < 0.2:
                m.cards.append(fresh_card(rng))

    # Over 60 lines for a reason: every draw comes from the chunk's one generator in a fixed order, and the
    # world is kept byte-identical (tests/unit/synthetic/test_world.py); one behaviour after another, in the
    # order drawn.
    def _legit_events(self, c: Customer, n_logins: int, n_payments: int, rng: random.Random, emit) -> None:
        ls = self.s.legit
        channel = lambda: channel_now(c, rng)  # noqa: E731
        end = min(c.fraud_start_ts or self.end, c.active_until or self.end)  # takeover or churn ends the owner's use
        emit(
            c,
            "signup",
            c.signup_ts,
            device_id=c.devices[0],
            ip=self._legit_ip(c, rng),
            email=c.email,
            channel=channel(),
        )
        # device churn: later devices appear part-way through the life of the account (second-hand ones when bought)
        device_from = [c.signup_ts] + [
            c.device_times.get(d, c.signup_ts + rng.randrange(max(1, end - c.signup_ts))) for d in c.devices[1:]
        ]
        email = c.email
        if rng.random() < ls.email_change_rate:
            ts = c.signup_ts + rng.randrange(max(1, end - c.signup_ts))
            email = fresh_email(rng, disposable=rng.random() < ls.disposable_email_share)
            emit(
                c, "change_email", ts, device_id=c.devices[0], ip=self._legit_ip(c, rng), email=email, channel=channel()
            )
        for k, card in enumerate(c.cards):
            if k == 0 and rng.random() < ls.card_at_signup_share:  # a card right away, to book the first ride
                ts = c.signup_ts + rng.randrange(10 * MINUTE, 6 * HOUR)
            elif k == 0:
                ts = c.signup_ts + int(DAY * min(90.0, 5 * math.exp(rng.gauss(0, 1.2))))
            else:
                ts = c.signup_ts + rng.randrange(max(1, end - c.signup_ts))
            emit(
                c,
                "add_card",
                ts,
                device_id=c.devices[0],
                ip=self._legit_ip(c, rng),
                card_fingerprint=card,
                channel=channel(),
            )
            if k == 0 and rng.random() < ls.first_payment_soon_share:
                emit(
                    c,
                    "payment",
                    ts + rng.randrange(5 * MINUTE, 6 * HOUR),
                    device_id=c.devices[0],
                    ip=self._legit_ip(c, rng),
                    card_fingerprint=card,
                    amount=payment_amount(c, rng),
                    currency="USD",
                    channel=channel(),
                )
        if c.new_phone_at is not None and c.new_phone_at < end:  # looks like a takeover, is not one
            self._new_phone(c, c.new_phone_at, device_from, rng, emit, channel)
        span = max(1, end - c.signup_ts)
        for _ in range(n_logins):
            ts = c.signup_ts + rng.randrange(span)
            emit(
                c,
                "login",
                ts,
                device_id=self._device_at(c, device_from, ts, rng),
                ip=self._legit_ip(c, rng),
                channel=channel(),
            )
        for _ in range(n_payments if c.cards else 0):
            ts = c.signup_ts + rng.randrange(span)
            emit(
                c,
                "payment",
                ts,
                device_id=self._device_at(c, device_from, ts, rng),
                ip=self._legit_ip(c, rng),
                card_fingerprint=rng.choice(c.cards),
                amount=payment_amount(c, rng),
                currency="USD",
                channel=channel(),
            )

    def _new_phone(
        self,
        c: Customer,
        t: int,
        device_from: list[int],
        rng: random.Random,
        emit: Callable[..., None],
        channel: Callable[[], str],
    ) -> None:
        """The owner moves to a new phone at ``t``: a login from it, sometimes a new email, then a new card
        (a legitimate customer that looks like a takeover)."""
        ls = self.s.legit
        phone = fresh_device(rng)
        c.devices.append(phone)
        device_from.append(t)
        emit(c, "login", t, device_id=phone, ip=self._legit_ip(c, rng), channel=channel())
        if rng.random() < 0.5:
            t += rng.randrange(5 * MINUTE, 3 * HOUR)
            emit(
                c,
                "change_email",
                t,
                device_id=phone,
                ip=self._legit_ip(c, rng),
                email=fresh_email(rng, disposable=rng.random() < ls.disposable_email_share),
                channel=channel(),
            )
        t += rng.randrange(5 * MINUTE, 3 * HOUR)
        new_card = fresh_card(rng)
        c.cards.append(new_card)
        emit(
            c,
            "add_card",
            t,
            device_id=phone,
            ip=self._legit_ip(c, rng),
            card_fingerprint=new_card,
            channel=channel(),
        )

    @staticmethod
    def _device_at(c: Customer, device_from: list[int], ts: int, rng: random.Random) -> str:
        usable = [d for d, t in zip(c.devices, device_from) if t <= ts] or c.devices[:1]
        return rng.choice(usable)

    def _legit_ip(self, c: Customer, rng: random.Random) -> str:
        ls = self.s.legit
        if c.traveller and rng.random() < 0.4:
            return random_ip(rng)
        if c.vpn and rng.random() < 0.5:
            return hosting_ip(rng)
        if c.office_ip and rng.random() < 0.4:
            return c.office_ip
        r = rng.random()
        if r < ls.public_wifi_share:
            return rng.choice(self.wifi_ips)
        if r < ls.public_wifi_share + ls.carrier_ip_share:
            return rng.choice(self.carrier_ips)
        return home_ip_now(c, rng)
