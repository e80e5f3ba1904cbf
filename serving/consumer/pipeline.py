"""The live consumer: validate -> de-duplicate -> upsert -> score -> decide, per micro-batch.

``fraudgraph consume --source URI --graph URI --model MODEL_DIR [--decisions URI]``

Delivery is at-least-once from the source, effects exactly once:

1. parse and validate; a bad event (or one stamped too long before the newest event or its customer's
   signup) goes to the dead letter with its reason and the stream goes on;
2. drop events already in the ledger (redeliveries) or repeated in the batch, and cut the rest
   into steps of at most ``consumer.max_batch_span_s`` of event time (:func:`serving.consumer.steps.event_time_steps`);
   steps 3-5 run once per step, in time order;
3. record, in one ledger transaction, the events as seen, the live link
   aggregates (with the graph's value before the first live event as base),
   the customer property updates and the customers to score;
4. write the absolute link values and customer properties to the graph;
5. score the customers whose risk may have changed (online, same code as batch
   scoring), write score and decision to the vertex, emit the decision;
6. commit the source position.

A consumer killed between any two steps finishes the recorded work on restart
(:meth:`LiveConsumer.recover`) and resumes after the last committed position.
SIGTERM or SIGINT stops polling, finishes the batch in flight, commits and exits.

Consumers of one Kafka group share one ledger: a consumer assigned partitions claims them and finishes
the work their previous owner journaled (:meth:`LiveConsumer.take_over`); a batch with work of a
partition another consumer claimed meanwhile is left to that consumer (:class:`PartitionRevoked`).
Consumers competing for one SQS queue journal under a lease each, renewed between batches; one whose
lease expired (a crash, a stall) has its lease claimed and its journaled work finished by another
(:meth:`LiveConsumer.keep_lease`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from typing import Any

from fraudgraph.config import Settings
from fraudgraph.event_tags import EventTagger
from fraudgraph.graph import CustomerUpsert, IdentityGraph
from fraudgraph.graph.event_log import LinkEventLog
from fraudgraph.identity import IdentifierHasher
from fraudgraph.lifecycle.follow import StageFollower
from fraudgraph.logs import Progress
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.redaction import mask_free_text, redact_payload
from fraudgraph.schema import Event
from fraudgraph.scoring.online import OnlineScorer
from fraudgraph.scoring.triggers import NEW_IDENTIFIER_KINDS, triggers_score

from .admission import admit
from .decisions import decision_records
from .drift import DriftMonitor
from .ledger import UNPARTITIONED, JournalEntry, Ledger, PartitionRevoked
from .metrics import ConsumerMetrics
from .ownership import WorkOwnership
from .shadow import ShadowScoring
from .sources import Message, Sink, Source
from .steps import (
    ConsumerStats,
    event_json,
    event_time_steps,
    is_transient,
    link_from_state,
    step_increments,
)

log = logging.getLogger("fraudgraph.consumer")


class LiveConsumer(WorkOwnership):
    def __init__(
        self,
        store: IdentityGraph,
        scorer: OnlineScorer | None,
        settings: Settings,
        ledger: Ledger,
        decisions: Sink,
        dead_letter: Sink,
        follower: StageFollower[ModelArtifact] | None = None,
        shadow: ShadowScoring | None = None,
    ):
        """``follower``: the registry's production model, switched to between micro-batches (hot reload);
        ``shadow``: the model in ``shadow``, scoring the same steps into its own sink."""
        self.store = store
        self.scorer = scorer
        self.settings = settings
        self.ledger = ledger
        self.decisions = decisions
        self.dead_letter = dead_letter
        self.hasher = IdentifierHasher.from_settings(settings.privacy)
        self.tagger = EventTagger(settings.event_tags)
        self.score_on = set(settings.consumer.score_on)
        self.stats = ConsumerStats()
        self.metrics = ConsumerMetrics()
        self._stop = False
        self._digests: dict[str, str] = {}  # the batch in flight's new events: id -> content digest
        self._owners: dict[str, str] = {}  # the batch in flight's new events: id -> source partition
        self.consumer_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease: str | None = None  # competing consumers: the owner of this one's journaled work
        self._leases_taken = 0
        self.follower, self.shadow = follower, shadow
        self.drift = DriftMonitor(self.metrics.registry, settings.consumer.drift_log, settings.registry.drift_alert_psi)
        self.event_log = LinkEventLog(settings.consumer.link_event_log) if settings.consumer.link_event_log else None
        if scorer is not None:  # a fresh ledger's watermark: the model's data, all in the graph, ran up to it
            ledger.raise_watermark(scorer.artifact.trained_as_of_ms)

    # ------------------------------------------------------------- lifecycle
    def request_stop(self, *_: Any) -> None:
        log.info("stop requested: finishing the batch in flight")
        self._stop = True

    def run(self, source: Source, *, install_signals: bool = True, progress: Progress | None = None) -> dict[str, Any]:
        """Poll, process and commit until the source is exhausted or a stop is requested. ``progress``:
        advanced by each batch's events, with the decisions so far and events/s (a replay's)."""
        if install_signals:
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        self.ledger.bind(self.store.graph_id, self.store.uri)  # a ledger belongs to one graph
        self.recover()
        listen = getattr(source, "listen_rebalance", None)
        if listen is not None:  # a consumer group: partitions come and go
            listen(self.take_over, self.hand_over)
        competing = getattr(source, "competing", False)
        cfg = self.settings.consumer
        while not self._stop:
            if competing:
                self.keep_lease()
            batch = source.poll(cfg.max_batch, cfg.poll_timeout_s)
            if batch:
                try:
                    self.process(batch)
                except PartitionRevoked as exc:  # fenced off: the new owner applies what is journaled
                    log.warning("%s; leaving the batch uncommitted", exc)
                    self.stats.fenced += 1
                    continue
                source.commit(batch, self.ledger)
                if progress is not None:
                    progress.update(len(batch), **{d: n for d, n in self.stats.decisions.items()})
            elif source.exhausted:
                break
        if progress is not None:
            progress.close()
        self.drift.close()
        return self.stats.as_dict()

    def recover(self, owners: list[str] | None = None) -> None:
        """Apply work a previous run recorded but did not finish (after a crash) of ``owners``' partitions
        (None: work without partitions): the one place the journal is read back. Work that fails again
        for a reason that is not transient is quarantined instead of stopping the consumer for good."""
        entry = self.ledger.pending([UNPARTITIONED] if owners is None else owners)
        if entry:
            pending = len(entry.links) + len(entry.customers) + len(entry.scores)
            log.warning("recovering %d unfinished writes and decisions from the ledger", pending)
            self._apply_and_score(entry, " on recovery", [])

    # ------------------------------------------------------------- one batch
    def process(self, batch: list[Message]) -> None:
        received = time.perf_counter()
        self._follow_production()  # between micro-batches: the batch is decided by one model, loaded whole
        self.stats.events_in += len(batch)
        self.metrics.events_in.inc(len(batch))
        admitted = admit(batch, self.ledger, self.store, self.settings, self.hasher)
        for msg, rejection in admitted.refused:
            self._reject(msg, rejection.code, rejection.reason, event_id=rejection.event_id)
        self.stats.duplicates += admitted.duplicates
        self.metrics.duplicates.inc(admitted.duplicates)
        self._digests = admitted.digests
        unowned = self.lease or UNPARTITIONED  # a message without a partition: this consumer's lease, if any
        self._owners = {ev.event_id: admitted.owners.get(ev.event_id) or unowned for ev in admitted.events}
        for step in event_time_steps(admitted.events, int(self.settings.consumer.max_batch_span_s * 1000)):
            # a step's reads of its customers' links and summaries, its writes and its scoring read what the
            # step already read or wrote once (this consumer is their customers' only writer)
            with self.store.sole_writer():
                self._process_step(step)
        self._digests, self._owners = {}, {}
        self.decisions.flush()
        self.dead_letter.flush()
        per_event = (time.perf_counter() - received) * 1000
        self.stats.latencies_ms.extend([per_event] * len(batch))
        for _ in batch:
            self.metrics.latency.observe(per_event / 1000)

    def _follow_production(self) -> None:
        """Switch to the registry's production (and shadow) model if it moved since the last batch."""
        if self.shadow is not None:
            self.shadow.follow()
        if self.follower is None:
            return
        _, artifact, changed = self.follower.take()
        if changed and artifact is not None:  # production is never left empty
            self.scorer = OnlineScorer(self.store, artifact, self.settings)
            self.ledger.raise_watermark(artifact.trained_as_of_ms)

    def _reject(self, msg: Message, code: str, reason: str, *, event_id: str | None = None) -> None:
        """Dead-letter one input: reason, position, event id and a redacted payload (identifiers as keyed
        hashes, card numbers and emails masked, size capped; :mod:`fraudgraph.redaction`)."""
        self.stats.rejected += 1
        self.metrics.rejected.labels(reason=code).inc()
        log.info("rejected event at position %s: %s", msg.position, code)
        self.dead_letter.write(
            {
                "reason_code": code,
                "reason": reason,
                "position": msg.position,
                "event_id": mask_free_text(event_id)[:200] if event_id else None,
                **redact_payload(msg.payload, self.hasher),
            }
        )

    def _process_step(self, step: list[Event]) -> None:
        """Record, apply and score one step. A failure that is not transient (the store refused a value,
        a scoring error) never stops the consumer: a step that failed before its journal was written is
        split until the failing event is alone and dead-lettered; work already journaled is quarantined
        (:meth:`_quarantine`). Transient failures (store unreachable, timeouts) propagate: the consumer
        exits, and a restart resumes from the ledger without losing or repeating anything."""
        try:
            entry = self._record(step)
        except Exception as exc:  # noqa: BLE001 - any input-caused failure must not wedge the consumer
            if is_transient(exc) or isinstance(exc, PartitionRevoked):
                raise
            if len(step) > 1:
                half = len(step) // 2
                self._process_step(step[:half])
                self._process_step(step[half:])
                return
            ev = step[0]
            self._reject(
                Message(event_json(ev), -1), "graph:refused", f"graph: {type(exc).__name__}", event_id=ev.event_id
            )
            return
        self._apply_and_score(entry, "", [e.event_id for e in step])
        self.stats.applied += len(step)

    def _apply_and_score(self, entry: JournalEntry, when: str, event_ids: list[str]) -> None:
        """Apply the journaled writes, then score and decide; a failure that is not transient quarantines
        the work (named ``<error type><when>``) instead of stopping the consumer for good."""
        try:
            self._apply(entry)
            self._score(entry)
        except Exception as exc:  # noqa: BLE001 - classified below
            if is_transient(exc) or isinstance(exc, PartitionRevoked):
                raise
            self._quarantine(f"{type(exc).__name__}{when}", event_ids, entry.owners)

    def _quarantine(self, error: str, event_ids: list[str], owners: frozenset[str]) -> None:
        """Journaled writes or scores (of ``owners``' partitions) that fail again for a reason that is not
        transient: drop them from the ledger's pending work and dead-letter a record naming the events (no
        payload: they were valid, and their identifiers are only kept hashed), so the stream goes on."""
        dirty, pending = self.ledger.dirty_links(owners), self.ledger.pending_customers(owners)
        scores = self.ledger.pending_scores(owners)
        self.ledger.applied([tuple(r[:3]) for r in dirty], list(pending))
        self.ledger.scored([p[0] for p in scores])
        self.stats.rejected += len(event_ids) or 1
        self.metrics.rejected.labels(reason="quarantined").inc()
        counts = (len(dirty), len(pending), len(scores))
        log.error("quarantined %d journaled link writes, %d customer updates and %d scores after %s", *counts, error)
        self.dead_letter.write(
            {
                "reason_code": "journal:quarantined",
                "reason": f"graph or scoring: {error}",
                "event_ids": event_ids[:1000],
                "links": len(dirty),
                "customers": len(pending),
                "scores": len(scores),
            }
        )

    def _record(self, events: list[Event]) -> JournalEntry:
        """Journal one step (events seen, live link aggregates, customer updates, customers to score) in one
        ledger transaction; returns the entry for :meth:`_apply` and :meth:`_score`."""
        increments, customers, keys_by_event, logged = step_increments(events, self.hasher, self.tagger)
        scores: dict[str, tuple[str, str, int]] = {}
        # the graph's value of each link before its first live event
        states = self.ledger.link_states(increments)
        new_keys = set(increments) - set(states)
        bases: dict[tuple[str, str, str], dict | None] = {}
        if new_keys:
            existing = self.store.links_of(keys=sorted(new_keys))
            for rec in existing.to_dict("records"):
                key = (rec["customer_id"], rec["kind"], rec["value_hash"])
                if key in new_keys:
                    bases[key] = {k: int(v) for k, v in rec.items() if k not in ("customer_id", "kind", "value_hash")}
        for ev, keys in zip(events, keys_by_event):
            new_ident = any(k in new_keys and bases.get(k) is None and k[1] in NEW_IDENTIFIER_KINDS for k in keys)
            if triggers_score(ev.event_type, new_ident, self.score_on):
                scores[ev.customer_id] = (ev.event_id, ev.event_type, ev.ts_ms)
        updates = {k: (v[0], v[1], v[2], dict(v[3])) for k, v in increments.items()}
        # the step is scored as of its latest event: the graph then holds every event up to that moment
        as_of = max(ev.ts_ms for ev in events)
        digests = {e.event_id: self._digests[e.event_id] for e in events}
        owner_of = {e.customer_id: self._owners.get(e.event_id, UNPARTITIONED) for e in events}
        if self.event_log is not None:  # before the journal commits: a crash in between logs them again
            self.event_log.append(logged)
        return self.ledger.record(digests, updates, bases, dict(customers), scores, states, as_of, owner_of)

    def _apply(self, entry: JournalEntry) -> None:
        """Write the entry's absolute link values and customer properties to the graph, then mark them
        applied in the ledger."""
        self.ledger.check_fence(entry.owners)  # a consumer fenced off since it journaled writes nothing
        links = [link_from_state(tuple(row[:3]), *row[3:]) for row in entry.links]
        linked = {link.customer_id for link in links}
        # the properties of customers with links go with the link write (one round of requests); the
        # others' are merged on their own
        unlinked = sorted(set(entry.customers) - linked)
        if unlinked:
            self.store.upsert_customers([CustomerUpsert(c, entry.customers[c]) for c in unlinked])
        if links:
            with_links = [CustomerUpsert(c, p) for c, p in sorted(entry.customers.items()) if c in linked and p]
            self.store.upsert_links(links, customers=with_links)
        if entry.links or entry.customers:
            self.ledger.applied([tuple(r[:3]) for r in entry.links], list(entry.customers))

    def _score(self, entry: JournalEntry) -> None:
        """Score the entry's customers with one subgraph and one forward pass, as of its latest event (the
        graph as it stands), write each score and decision to the customer's vertex, emit the decisions,
        then mark them scored in the ledger."""
        if not entry.scores:
            return
        if self.scorer is None:  # a writer without a model (the replay's bulk part): nothing to decide
            self.ledger.scored([p[0] for p in entry.scores])
            return
        as_of = max([p[3] for p in entry.scores] + [entry.as_of_ms or 0])
        results = self.scorer.score_many([p[0] for p in entry.scores], as_of)
        self.drift.observe(self.scorer.artifact, results)
        vertex_updates, emitted = decision_records(entry.scores, results)
        # the vertex first, then the decision: a crash in between re-scores and re-emits the same decision_id
        if vertex_updates:
            self.store.upsert_customers([CustomerUpsert(c, p) for c, p in vertex_updates.items()])
        for record in emitted:
            self.decisions.write(record)
            self.stats.decisions[record["decision"]] += 1
            self.metrics.decisions.labels(decision=record["decision"]).inc()
        self.decisions.flush()
        if self.shadow is not None:  # the same customers as of the same moment, never acted on
            self.shadow.score(entry.scores, as_of)
        self.ledger.scored([p[0] for p in entry.scores])
