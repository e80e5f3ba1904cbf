"""Label noise: who gets blocked and when (fraud caught late or never, legitimate customers blocked
by mistake), and appeals with their outcomes."""

from __future__ import annotations

import math
import random

from fraudgraph.synthetic.identities import Customer, WorldState
from fraudgraph.timeutil import DAY_MS

DAY = DAY_MS


class BlockingBehaviour(WorldState):
    """The label history of :class:`~fraudgraph.synthetic.world.WorldGenerator` (a mixin over
    :class:`~fraudgraph.synthetic.identities.WorldState`): drawn before behaviour, since blocked
    accounts do nothing."""

    def _label_history(self, c: Customer, rng: random.Random, blocks: list, appeals: list) -> None:
        lb = self.s.blocking
        if c.fraud_type != "none":
            if rng.random() >= lb.detect_rate[c.fraud_type]:  # type: ignore[index]  # a fraudster's type is one of the three
                return  # never caught
            delay = lb.block_delay_median_days * math.exp(rng.gauss(0, lb.block_delay_sigma))
            assert c.fraud_start_ts is not None  # every fraudster has its start
            blocked_at = c.fraud_start_ts + int(delay * DAY)
            if blocked_at >= self.end:
                return  # caught only after the world ends: recent fraud not yet blocked
            reason = self._block_reason(rng)
            c.blocked_at = blocked_at
            blocks.append(
                {
                    "customer_id": c.customer_id,
                    "blocked_at": blocked_at,
                    "source": "manual" if rng.random() < lb.manual_block_share else "rule",
                    "reason": reason,
                }
            )
            if rng.random() < lb.fraud_appeal_rate:
                self._appeal(
                    c, blocked_at, "unblocked" if rng.random() < lb.wrong_outcome_rate else "upheld", rng, appeals
                )
            return
        if rng.random() >= lb.false_block_rate:
            return
        blocked_at = c.signup_ts + DAY + rng.randrange(max(1, self.end - c.signup_ts - DAY))
        if blocked_at >= self.end:
            return
        c.blocked_at = blocked_at
        blocks.append(
            {
                "customer_id": c.customer_id,
                "blocked_at": blocked_at,
                "source": "manual" if rng.random() < lb.manual_block_share else "rule",
                "reason": self._block_reason(rng),
            }
        )
        if rng.random() < lb.false_block_appeal_rate:
            self._appeal(c, blocked_at, "upheld" if rng.random() < lb.wrong_outcome_rate else "unblocked", rng, appeals)

    def _block_reason(self, rng: random.Random) -> str:
        """One vocabulary for every block, true or false, drawn with the same weights."""
        reasons = self.s.blocking.block_reasons
        return rng.choices(list(reasons), list(reasons.values()))[0]

    def _appeal(self, c: Customer, blocked_at: int, outcome: str, rng: random.Random, appeals: list) -> None:
        """The customer contacts care; an ``unblocked`` outcome lifts the block when it is decided."""
        lb = self.s.blocking
        contacted = blocked_at + int(lb.appeal_delay_median_days * math.exp(rng.gauss(0, 0.7)) * DAY)
        resolved = contacted + int(lb.unblock_delay_days * DAY)
        if outcome == "unblocked":
            c.unblocked_at = resolved
        appeals.append(
            {"customer_id": c.customer_id, "contacted_at": contacted, "outcome": outcome, "resolved_at": resolved}
        )
