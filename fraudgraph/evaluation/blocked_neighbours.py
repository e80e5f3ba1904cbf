"""What the fraud team already knew: catches with and without a standing-blocked neighbour, and the plain
blocked-neighbour rule judged on the same live stream.

A customer has a *standing-blocked neighbour* at time ``t`` when it shares a device or a card (one of at most
``rules.day_one.max_shared_degree`` customers, as the day-one rule counts) with another customer whose block
stands at ``t`` (:func:`fraudgraph.schema.block_stands`), both having used it by ``t``. Blocks and unblocks are
those the team had recorded by then: the historical tables' and the stream's own block and unblock events.

:func:`blocked_neighbour_outcomes` splits the stream's active fraudsters by whether they had such a neighbour
when first flaggable (their first identity event in their fraud) and reports the model's recall in each
group; and it judges the plain rule "flag a customer decided while it has a standing-blocked neighbour" on
the stream's decision events with the model's own definitions (precision of flagged customers, recall of
active fraudsters, false flags per 10,000 legitimate active customers). Ground truth is read for reporting
only.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from fraudgraph.schema import LABEL_EVENT_TYPES
from fraudgraph.timeutil import series_epoch_ms


class BlockedNeighbours:
    """Answers "did customer ``c`` have a standing-blocked neighbour at ``t``?" from a world's raw tables."""

    def __init__(self, events: pd.DataFrame, blocks: list[tuple[str, int]], unblocks: list[tuple[str, int]],
                 max_degree: int):  # fmt: skip
        ident = []
        for col, kind in (("device_id", "device"), ("card_fingerprint", "card")):
            part = events.loc[events[col].notna(), ["customer_id", col, "ms"]]
            part = part.groupby(["customer_id", col], as_index=False)["ms"].min()
            ident.append(pd.DataFrame({"customer_id": part["customer_id"], "key": kind + ":" + part[col].astype(str),
                                       "ms": part["ms"]}))  # fmt: skip
        links = pd.concat(ident, ignore_index=True)
        self.members: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self.own: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for cid, key, ms in links.itertuples(index=False):
            self.members[key].append((int(ms), cid))
            self.own[cid].append((int(ms), key))
        for v in self.members.values():
            v.sort()
        self.blocks: dict[str, list[int]] = defaultdict(list)
        self.unblocks: dict[str, list[int]] = defaultdict(list)
        for cid, ms in blocks:
            self.blocks[cid].append(int(ms))
        for cid, ms in unblocks:
            self.unblocks[cid].append(int(ms))
        for times in (*self.blocks.values(), *self.unblocks.values()):
            times.sort()
        self.max_degree = max_degree

    def block_stands(self, cid: str, t: int) -> bool:
        b = self.blocks.get(cid)
        if not b:
            return False
        i = bisect.bisect_right(b, t) - 1
        if i < 0:
            return False
        u = self.unblocks.get(cid, [])
        j = bisect.bisect_right(u, t) - 1
        return not (j >= 0 and u[j] >= b[i])

    def at(self, cid: str, t: int) -> bool:
        for first, key in self.own.get(cid, ()):
            if first > t:
                continue
            on = self.members[key]
            users = [c for ms, c in on[: bisect.bisect_right(on, (t, "\uffff"))]]
            if len(users) > self.max_degree:
                continue
            if any(other != cid and self.block_stands(other, t) for other in users):
                return True
        return False


# Over 60 lines for a reason: one pass of reading (history, stream, truth), then the two reports side by side,
# each a few lines over the same per-customer frames.
def blocked_neighbour_outcomes(
    world_dir: Path, events_path: Path, decisions_path: Path, truth_path: Path, max_degree: int
) -> dict[str, Any]:
    """The split and the rule beside the model (see the module docstring)."""
    world = Path(world_dir)
    hist = pd.read_parquet(world / "historical" / "events.parquet", columns=["customer_id", "ts", "device_id",
                                                                            "card_fingerprint"])  # fmt: skip
    live = pd.read_json(events_path, lines=True, dtype={"customer_id": str, "event_id": str})
    for frame in (hist, live):
        frame["customer_id"] = frame["customer_id"].astype(str)
        frame["ms"] = series_epoch_ms(frame["ts"])
    for col in ("device_id", "card_fingerprint"):
        if col not in live:
            live[col] = None
    blocks, unblocks = _team_blocks(world, live)
    identity = live.loc[~live["event_type"].isin(LABEL_EVENT_TYPES)]
    oracle = BlockedNeighbours(pd.concat([hist, identity[hist.columns]], ignore_index=True), blocks, unblocks,
                               max_degree)  # fmt: skip

    truth = pd.read_parquet(truth_path)
    truth["customer_id"] = truth["customer_id"].astype(str)
    t = truth.set_index("customer_id")
    start = series_epoch_ms(t["fraud_start_ts"].where(t["is_fraud_true"]).dropna()).reindex(t.index)
    ev = identity.assign(start=identity["customer_id"].map(start))
    ev["fraud_phase"] = ev["start"].notna() & (ev["ms"] >= ev["start"])
    first_fraud = ev.loc[ev["fraud_phase"]].groupby("customer_id")["ms"].min()

    decisions = pd.read_json(decisions_path, lines=True, dtype={"customer_id": str, "event_id": str})
    decisions = decisions.loc[decisions["decision"] != "blocked"].merge(
        ev[["event_id", "ms", "fraud_phase"]], on="event_id", how="inner"
    )
    decisions["flag"] = decisions["decision"].isin(["block", "review"])
    decisions["rule"] = [oracle.at(c, int(ms)) for c, ms in zip(decisions["customer_id"], decisions["ms"])]

    active = pd.DataFrame({"first_ms": first_fraud})
    active["neighbour_when_flaggable"] = [oracle.at(c, int(ms)) for c, ms in zip(active.index, active["first_ms"])]
    fraud_dec = decisions.loc[decisions["fraud_phase"]]
    active["caught"] = active.index.isin(fraud_dec.loc[fraud_dec["flag"], "customer_id"])
    active["rule_caught"] = active.index.isin(fraud_dec.loc[fraud_dec["rule"], "customer_id"])
    legit_ids = set(ev.loc[ev["start"].isna(), "customer_id"])
    other = decisions.loc[~decisions["fraud_phase"]]
    legit_active = max(len(legit_ids), 1)

    def judged(flag_col: str, caught_col: str) -> dict[str, Any]:
        flagged = set(decisions.loc[decisions[flag_col], "customer_id"])
        false = set(other.loc[other[flag_col], "customer_id"]) - set(active.index[active[caught_col]])
        caught = int(active[caught_col].sum())
        return {
            "flagged_customers": len(flagged),
            "caught": caught,
            "precision": round(caught / len(flagged), 4) if flagged else None,
            "recall": round(caught / len(active), 4) if len(active) else None,
            "false_flags": len(false & legit_ids),
            "false_flags_per_10k_legit": round(1e4 * len(false & legit_ids) / legit_active, 2),
        }

    groups = {}
    for name, mask in (("with_blocked_neighbour", active["neighbour_when_flaggable"]),
                       ("without_blocked_neighbour", ~active["neighbour_when_flaggable"])):  # fmt: skip
        g = active.loc[mask]
        groups[name] = {
            "active": int(len(g)),
            "caught": int(g["caught"].sum()),
            "recall": round(float(g["caught"].mean()), 4) if len(g) else None,
            "rule_caught": int(g["rule_caught"].sum()),
        }
    return {
        "max_shared_degree": max_degree,
        "active_fraudsters": int(len(active)),
        "by_blocked_neighbour": groups,
        "model": judged("flag", "caught"),
        "blocked_neighbour_rule": judged("rule", "rule_caught"),
    }


def _team_blocks(world: Path, live: pd.DataFrame) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """``(blocks, unblocks)``: ``(customer_id, epoch ms)`` of every block and unblock the team recorded,
    in the historical tables (an appeal decided ``unblocked``) and in the stream."""
    hist = pd.read_parquet(world / "historical" / "blocks.parquet")
    appeals = pd.read_parquet(world / "historical" / "appeals.parquet")
    done = appeals.loc[(appeals["outcome"] == "unblocked") & appeals["resolved_at"].notna()]
    out = []
    for frame, col, kind in ((hist, "blocked_at", "block"), (done, "resolved_at", "unblock")):
        mine = live.loc[live["event_type"] == kind]
        out.append(
            list(zip(frame["customer_id"].astype(str), series_epoch_ms(frame[col]).tolist()))
            + list(zip(mine["customer_id"], mine["ms"].tolist()))
        )
    return out[0], out[1]


def render_blocked_neighbour_lines(r: dict[str, Any] | None) -> list[str]:
    if not r:
        return []
    g = r["by_blocked_neighbour"]

    def pct(v):
        return "-" if v is None else f"{v:.1%}"

    m, rule = r["model"], r["blocked_neighbour_rule"]
    return [
        "",
        "## What the team already knew: blocked neighbours",
        "",
        "Active fraudsters split by whether, when first flaggable, they shared a device or card (of at most "
        f'{r["max_shared_degree"]} customers) with a customer whose block stood; and the plain rule "flag a '
        'customer decided while it has such a neighbour" judged on the same decision events.',
        "",
        "| active fraudsters | active | caught by the model | recall | caught by the rule |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[
            f"| {name.replace('_', ' ')} | {x['active']:,} | {x['caught']:,} | {pct(x['recall'])} | "
            f"{x['rule_caught']:,} |"
            for name, x in g.items()
        ],
        "",
        "| | flagged customers | precision | recall | false flags / 10k legitimate |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| deployed model | {m['flagged_customers']:,} | {pct(m['precision'])} | {pct(m['recall'])} | "
        f"{m['false_flags_per_10k_legit']} |",
        f"| blocked-neighbour rule | {rule['flagged_customers']:,} | {pct(rule['precision'])} | "
        f"{pct(rule['recall'])} | {rule['false_flags_per_10k_legit']} |",
    ]


__all__ = ["BlockedNeighbours", "blocked_neighbour_outcomes", "render_blocked_neighbour_lines"]
