"""Shadow scoring: the model in the registry's ``shadow`` stage scores the same micro-batches as the
production model, as of the same moment, and its decisions go to a sink of their own. They are never
written to the graph, never emitted as decisions and never acted on; ``fraudgraph models compare`` reads
them beside production's."""

from __future__ import annotations

import logging

from fraudgraph.config import Settings
from fraudgraph.graph import IdentityGraph
from fraudgraph.lifecycle.follow import StageFollower
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.scoring.online import OnlineScorer

from .decisions import decision_records
from .sources import Sink

log = logging.getLogger("fraudgraph.consumer")


class ShadowScoring:
    """The shadow model (followed in the registry: none while no version is in ``shadow``) and its sink."""

    def __init__(self, store: IdentityGraph, settings: Settings, follower: StageFollower[ModelArtifact], sink: Sink):
        self.store, self.settings, self.follower, self.sink = store, settings, follower, sink
        self.scorer = None if follower.model is None else OnlineScorer(store, follower.model, settings)
        self.decided = 0
        self.failures = 0

    def follow(self) -> None:
        """Between micro-batches: switch to the version now in ``shadow`` (or to none)."""
        _, artifact, changed = self.follower.take()
        if changed:
            self.scorer = None if artifact is None else OnlineScorer(self.store, artifact, self.settings)

    def score(self, scores: list[tuple[str, str, str, int]], as_of_ms: int) -> None:
        """Decide the customers production just decided (``(customer_id, event_id, event_type, ts)``) with
        the shadow model. A failure is logged and counted, never raised: production goes on."""
        if self.scorer is None or not scores:
            return
        try:
            _, emitted = decision_records(scores, self.scorer.score_many([s[0] for s in scores], as_of_ms))
            for record in emitted:
                self.sink.write({**record, "shadow": True})
            self.sink.flush()
            self.decided += len(emitted)
        except Exception as exc:  # noqa: BLE001 - a shadow never stops the consumer
            self.failures += 1
            log.warning("shadow scoring failed (%s: %s); production decisions are unaffected", type(exc).__name__, exc)
