"""The live stream decided in bulk, exactly as the consumer decides it.

The consumer (:class:`serving.consumer.LiveConsumer`) writes, reads and scores once per step of at most
``consumer.max_batch_span_s`` of event time: in a sparse stream, once per event. This module makes the
same decisions without a graph round trip per step:

1. :func:`plan_stream` reads the stream as the consumer polls it (``consumer.max_batch`` messages at
   a time), parses each message with the consumer's parse, drops duplicates, cuts each poll into the
   consumer's steps and lists, per step, its link events (keyed hashes only), the customer properties
   it sets and the customers it scores (the trigger rule, :func:`fraudgraph.scoring.triggers.triggers_score`).
2. :class:`BulkDecider` builds one :class:`~fraudgraph.graph.history.LinkHistory` over the snapshot's
   link events and the stream's. For every scored ``(customer, step)`` it builds what the consumer's
   scoring read returns after that step (the graph as of the step's latest event; customer properties
   as the step left them), then scores and decides thousands of them at once with the consumer's
   feature code, model and rules.

The premise: the graph after step ``k`` holds exactly the events up to the step's latest event. It
holds for a stream in time order (the consumer cuts each poll in time order; a stream whose polls
overlap in time breaks it). :func:`plan_stream` counts the scoring steps where it fails
(``StreamPlan.unordered_steps``); such a stream is replayed through the consumer instead.
``tests/integration/test_bulk_replay.py`` replays one stream both ways and compares every decision."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from fraudgraph.config import Settings
from fraudgraph.event_tags import EventTagger
from fraudgraph.graph.history import LINK_EVENT_COLUMNS, LinkHistory
from fraudgraph.identity import IdentifierHasher
from fraudgraph.logs import progress
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.ml.baselines import BaselineModels
from fraudgraph.ml.features import build_graph_tensors
from fraudgraph.schema import CUSTOMER, EVENT_TAGS, block_stands, numeric_property
from fraudgraph.scoring.day_one import DayOneRules
from fraudgraph.scoring.evidence import decision_evidence
from fraudgraph.scoring.rules import CustomerEvidence, DecisionRules
from fraudgraph.scoring.triggers import NEW_IDENTIFIER_KINDS, triggers_score
from serving.property_timeline import _PropertyTimeline

from .consumer.decisions import decision_record
from .consumer.ledger import merge_customer_props
from .consumer.sources import Message
from .consumer.steps import (
    Rejection,
    before_signup,
    conflict_rejection,
    customer_updates,
    event_digest,
    event_time_steps,
    link_counts,
    link_keys,
    parse_message,
    too_old,
    watermark,
)

log = logging.getLogger("fraudgraph.replay")

SCORE_COLUMNS = ["step", "customer_id", "event_id", "event_type", "ts", "as_of", "position"]
# customer properties kept as times (shifted with each decision point's clock, like every other time)
_TIME_PROPERTIES = ("signup_ts", "blocked_at", "unblocked_at")


@dataclass
class StreamPlan:
    """What the consumer does with a stream, before any graph is read.

    - ``link_events``: ``LINK_EVENT_COLUMNS`` of every applied identity event (hashed identifiers);
    - ``scores``: ``SCORE_COLUMNS``: one row per customer a step scores, with the step's last
      triggering event of that customer (its decision's id), the step's latest event time (``as_of``)
      and the message position of that event;
    - ``property_updates``: ``step, customer_id, name, value``: the customer properties each step sets;
    - ``batch_ends``: the position of the last message of each poll, ``batch_steps`` its steps.
    """

    link_events: pd.DataFrame
    scores: pd.DataFrame
    property_updates: pd.DataFrame
    steps: int
    batch_ends: list[int]
    batch_steps: list[int] = field(default_factory=list)
    events_in: int = 0
    applied: int = 0
    duplicates: int = 0
    rejections: Counter = field(default_factory=Counter)
    unordered_steps: int = 0
    newest_applied: int | None = None  # the ledger's watermark (consumer.max_event_age_s counts back from it)

    @property
    def rejected(self) -> int:
        return sum(self.rejections.values())


def plan_stream(
    messages: Iterable[Message],
    settings: Settings,
    hasher: IdentifierHasher,
    history_keys: set[tuple[str, str, str]],
    history_signups: Mapping[str, int],
    trained_as_of_ms: int,
) -> StreamPlan:
    """Plan a stream as the consumer processes it. ``history_keys``: ``(customer_id, kind, value_hash)``
    of every link the graph holds before the stream (a login that brings none of its device or IP links
    new is not scored); ``history_signups``: ``{customer id: signup_ts}`` it holds (an event too long
    before its customer's signup is refused); ``trained_as_of_ms``: the deployed model's, where the
    consumer's watermark starts."""
    planner = _StreamPlanner(settings, hasher, history_keys, history_signups)
    planner.plan.newest_applied = trained_as_of_ms
    batch: list[Message] = []
    for msg in messages:
        batch.append(msg)
        if len(batch) == settings.consumer.max_batch:
            planner.add_batch(batch)
            batch = []
    if batch:
        planner.add_batch(batch)
    return planner.finish()


class _StreamPlanner:
    """The consumer's polls, de-duplication and steps replayed without a graph: what each step journals
    (link events, customer properties) and whom it scores, as of when."""

    def __init__(
        self,
        settings: Settings,
        hasher: IdentifierHasher,
        history_keys: set[tuple[str, str, str]],
        history_signups: Mapping[str, int],
    ):
        self.cfg, self.id_pattern, self.hasher = settings.consumer, settings.privacy.id_pattern, hasher
        self.tagger = EventTagger(settings.event_tags)
        self.history_keys = history_keys
        self.signups = dict(history_signups)  # customer id -> the signup_ts the graph holds by now
        self.seen: dict[str, str] = {}  # applied event id -> content digest
        self.touched: set[tuple[str, str, str]] = set()
        self.link_rows: list[tuple] = []
        self.score_rows: list[tuple] = []
        self.prop_rows: list[tuple] = []
        self.step_bounds: list[tuple[int, int, bool]] = []  # (first ts, last ts, scores anyone) per step
        self.plan = StreamPlan(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), 0, [])

    def add_batch(self, batch: list[Message]) -> None:
        """One poll: parse, refuse what the consumer refuses, drop redeliveries, then its steps in time order."""
        plan = self.plan
        plan.events_in += len(batch)
        plan.batch_ends.append(batch[-1].position)
        unique: dict[str, tuple[Any, int]] = {}
        digests: dict[str, str] = {}
        parsed_batch = [(msg, parse_message(msg.payload, self.cfg, self.id_pattern)) for msg in batch]
        newest = watermark(plan.newest_applied, [p.ts_ms for _, p in parsed_batch if not isinstance(p, Rejection)])
        for msg, parsed in parsed_batch:
            if not isinstance(parsed, Rejection) and parsed.event_id not in self.seen:
                parsed = too_old(parsed, newest, self.cfg) or parsed
            if isinstance(parsed, Rejection):
                plan.rejections[parsed.code] += 1
                continue
            digest = event_digest(parsed, self.hasher)
            first = digests.get(parsed.event_id, self.seen.get(parsed.event_id))
            if first is None:
                unique[parsed.event_id], digests[parsed.event_id] = (parsed, msg.position), digest
            elif first != digest:  # as the consumer: same id, other content is a dead letter
                plan.rejections[conflict_rejection(parsed, first, digest).code] += 1
            else:
                plan.duplicates += 1
        for event_id, early in before_signup([ev for ev, _ in unique.values()], self.signups, self.cfg).items():
            plan.rejections[early.code] += 1
            del unique[event_id], digests[event_id]
        ordered = sorted((ev for ev, _ in unique.values()), key=lambda e: (e.ts_ms, e.event_id))
        steps = event_time_steps(ordered, int(self.cfg.max_batch_span_s * 1000))
        plan.batch_steps.append(len(steps))
        for step in steps:
            self._add_step(step, unique, digests)

    def _add_step(self, step: list[Any], unique: dict[str, tuple[Any, int]], digests: dict[str, str]) -> None:
        """One step: its link events, the customers it scores (the one trigger rule) and the properties it
        sets, as of its latest event."""
        k = len(self.step_bounds)
        scores: dict[str, tuple] = {}
        props: dict[str, dict] = defaultdict(dict)
        new_keys: set[tuple[str, str, str]] = set()
        for ev in step:
            keys = link_keys(ev, self.hasher, self.tagger)
            tags = link_counts(ev, self.tagger) if keys else {}
            self.link_rows.extend(
                (ev.event_id, *key, ev.ts_ms, ev.event_type, *(tags.get(t, 0) for t in EVENT_TAGS)) for key in keys
            )
            new_ident = any(
                key[1] in NEW_IDENTIFIER_KINDS and key not in self.touched and key not in self.history_keys
                for key in keys
            )
            if triggers_score(ev.event_type, new_ident, self.cfg.score_on):
                scores[ev.customer_id] = (ev.event_id, ev.event_type, ev.ts_ms, unique[ev.event_id][1])
            props[ev.customer_id] = merge_customer_props(props[ev.customer_id], customer_updates(ev))
            new_keys.update(keys)
            self.seen[ev.event_id] = digests[ev.event_id]
        self.touched.update(new_keys)
        # the graph keeps the step's signup_ts as written (the earliest of the step)
        self.signups.update({cid: int(p["signup_ts"]) for cid, p in props.items() if "signup_ts" in p})
        as_of = max(ev.ts_ms for ev in step)
        plan = self.plan
        plan.newest_applied = as_of if plan.newest_applied is None else max(plan.newest_applied, as_of)
        self.score_rows.extend((k, cid, *v[:3], as_of, v[3]) for cid, v in scores.items())
        self.prop_rows.extend((k, cid, name, value) for cid, p in props.items() for name, value in p.items())
        self.step_bounds.append((min(ev.ts_ms for ev in step), as_of, bool(scores)))
        plan.applied += len(step)

    def finish(self) -> StreamPlan:
        """The plan, its rows as frames."""
        plan = self.plan
        plan.steps = len(self.step_bounds)
        plan.link_events = pd.DataFrame(self.link_rows, columns=LINK_EVENT_COLUMNS)
        plan.scores = pd.DataFrame(self.score_rows, columns=SCORE_COLUMNS)
        plan.property_updates = pd.DataFrame(self.prop_rows, columns=["step", "customer_id", "name", "value"])
        plan.unordered_steps = _unordered_scoring_steps(self.step_bounds)
        return plan


def _unordered_scoring_steps(bounds: list[tuple[int, int, bool]]) -> int:
    """Scoring steps whose latest event is not after every earlier step's events and before every later
    step's (where the graph after the step is not "every event up to its latest")."""
    if not bounds:
        return 0
    first = np.array([b[0] for b in bounds], dtype=np.int64)
    last = np.array([b[1] for b in bounds], dtype=np.int64)
    scoring = np.array([b[2] for b in bounds])
    earlier_max = np.maximum.accumulate(np.r_[np.iinfo(np.int64).min, last[:-1]])
    later_min = np.minimum.accumulate(np.r_[first[1:], np.iinfo(np.int64).max][::-1])[::-1]
    bad = (earlier_max > last) | (later_min <= last)
    return int((bad & scoring).sum())


class BulkDecider:
    """Scores and decides a :class:`StreamPlan`'s scoring moments as the consumer would, in chunks.

    Args:
        artifact: the deployed model (its threshold and fan-out cap, as the consumer's scorer).
        settings: ``rules`` and ``graph.neighbourhood_fanout_cap`` as the consumer's.
        chunk_points: decision points scored together (memory: about 100 subgraph links each).
        baselines: other models to score every decision with, on the same tensors
            (:class:`fraudgraph.ml.baselines.BaselineModels`; the day-one rules are added): their
            scores collect in :attr:`model_scores`, never in a decision.
        keep_features: keep each scored decision's raw customer features in :attr:`features`.
    """

    def __init__(
        self,
        artifact: ModelArtifact,
        settings: Settings,
        *,
        chunk_points: int = 2000,
        baselines: BaselineModels | None = None,
        keep_features: bool = False,
    ):
        self.artifact = artifact
        self.cap = artifact.fanout_cap or settings.graph.neighbourhood_fanout_cap
        self.rules = DecisionRules(settings.rules, artifact.threshold)
        self.chunk_points = chunk_points
        self.baselines = baselines
        self.day_one = DayOneRules(settings.rules.day_one)
        self.model_scores: list[pd.DataFrame] = []  # per chunk: event_id, customer_id, one column per model
        self.features: dict[str, np.ndarray] | None = {} if keep_features else None

    def decide(
        self, plan: StreamPlan, history_link_events: pd.DataFrame, customers: pd.DataFrame, *, progress_bar: bool = True
    ) -> list[dict[str, Any]]:
        """The consumer's decision records for ``plan``, in step order.

        Args:
            history_link_events: ``LINK_EVENT_COLUMNS`` of the graph before the stream (the snapshot's).
            customers: the graph's customers before the stream: ``customer_id`` and the properties
                scoring reads (``CUSTOMER_PROPERTIES``; missing ones are unknown).
        """
        if not len(plan.scores):
            return []
        events = pd.concat([history_link_events[LINK_EVENT_COLUMNS], plan.link_events], ignore_index=True)
        ids = pd.Index(
            np.union1d(
                customers["customer_id"].astype(str).to_numpy(),
                np.union1d(plan.scores["customer_id"].astype(str), plan.property_updates["customer_id"].astype(str)),
            )
        )
        history = LinkHistory(events, pd.DataFrame({"customer_id": ids}))
        timeline = _PropertyTimeline(history.customer_code, customers, plan)
        scores = plan.scores.sort_values(["step", "customer_id"], kind="stable").reset_index(drop=True)
        out: list[dict[str, Any]] = []
        chunks = range(0, len(scores), self.chunk_points)
        for start in progress(chunks, desc="bulk replay: scoring", unit="chunk", enabled=progress_bar):
            out += self._decide_chunk(history, timeline, scores.iloc[start : start + self.chunk_points])
        return out

    def _decide_chunk(self, history: LinkHistory, timeline: _PropertyTimeline, chunk: pd.DataFrame) -> list[dict]:
        times = chunk["as_of"].to_numpy(np.int64)
        steps = chunk["step"].to_numpy(np.int64)
        inputs = history.scoring_inputs(chunk["customer_id"].to_numpy(), times, self.cap)
        n_c = history.n_customers
        nodes = inputs.customers["customer_id"].to_numpy(np.int64)
        ex, code = nodes // n_c, nodes % n_c
        shift = inputs.as_of_ms - times[ex]
        props = timeline.values(code, steps[ex])
        for name in _TIME_PROPERTIES:
            props[name] = props[name] + shift
        inputs = replace(inputs, customers=pd.DataFrame({"customer_id": nodes, **props}))
        tensors = build_graph_tensors(inputs, fanout_cap=self.cap)
        codes = history.customer_code.get_indexer(chunk["customer_id"].astype(str))
        targets = np.arange(len(chunk), dtype=np.int64) * n_c + codes
        present = np.isin(targets, tensors.customer_ids)
        found = targets[present]
        scores = self.artifact.score_tensors(tensors, tensors.index_of(found)) if len(found) else np.zeros(0)
        # node ids stand for customer ids here (integers: the point-in-time frames' ids)
        evidence: dict[Any, CustomerEvidence] = dict(decision_evidence(inputs, found.tolist()))
        mine = timeline.values(codes[present], steps[present], ("lifetime_value", "blocked_at", "unblocked_at"))
        standing = block_stands(mine["blocked_at"], mine["unblocked_at"], chunk["as_of"].to_numpy(np.int64)[present])
        out = []
        rows = chunk.loc[present]
        own = tensors.node_features[CUSTOMER][tensors.index_of(found)] if len(found) else None
        if self.baselines is not None and len(found):
            others = self.baselines.score(tensors, self.artifact.scaler, tensors.index_of(found))
            others["rules"] = self.day_one.score(inputs)[present]
            ids = {"event_id": rows["event_id"].to_numpy(), "customer_id": rows["customer_id"].to_numpy()}
            frame = pd.DataFrame({**ids, "deployed": scores, **others})
            self.model_scores.append(frame.loc[~standing])  # a standing block is not scored by any model
        for i, ((_, row), node, score, value, stands) in enumerate(
            zip(rows.iterrows(), found, scores, mine["lifetime_value"], standing)
        ):
            if stands:  # as the consumer's scorer: a standing block is not scored
                d = self.rules.blocked()
            else:
                d = self.rules.decide(float(score), numeric_property(value), evidence.get(int(node)))
            moment = (row["event_id"], row["customer_id"], row["event_type"], row["ts"], row["as_of"])
            record = decision_record(*moment, None if stands else float(score), d, self.artifact.version)
            if self.features is not None and own is not None and not stands:  # by decision id: drift's input
                self.features[record["decision_id"]] = own[i]
            out.append({**record, "position": int(row["position"])})
        return out


__all__ = ["BulkDecider", "StreamPlan", "plan_stream"]
