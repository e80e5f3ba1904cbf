"""The one place a live consumer is put together: ``fraudgraph consume``, the main job's replay, the
benchmarks and the tests all build it here, from a graph, settings, a model and where its events come
from and its decisions go."""

from __future__ import annotations

from pathlib import Path

from fraudgraph.config import Settings
from fraudgraph.graph import IdentityGraph
from fraudgraph.lifecycle.follow import StageFollower
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.scoring.online import OnlineScorer

from .ledger import Ledger, ledger_path_for
from .pipeline import LiveConsumer
from .shadow import ShadowScoring
from .sources import Sink, Source, dead_letter_for, open_sink, open_source, source_name

BROKER_SCHEMES = ("kafka://", "http://", "https://")  # sources whose position the broker keeps, not the ledger


def open_ledger(store: IdentityGraph, path: str | Path | None = None) -> Ledger:
    """The consumer's ledger for ``store`` (``path``, else beside a SQLite graph's file), bound to it: one
    that journals another graph is refused (:class:`serving.consumer.ledger.LedgerMismatch`)."""
    ledger = Ledger(ledger_path_for(store, str(path) if path else None))
    try:
        ledger.bind(store.graph_id, store.uri)
    except Exception:
        ledger.close()
        raise
    return ledger


def open_consumer_source(
    uri: str, ledger: Ledger, settings: Settings, *, follow: bool = False, idle_stop_s: float | None = None
) -> Source:
    """The source at ``uri``, resumed where this ledger last committed it (a file's line); a broker keeps
    its own position (consumer group offsets, undeleted messages)."""
    start = 0 if uri.startswith(BROKER_SCHEMES) else ledger.offset(source_name(uri))
    cfg = settings.consumer
    return open_source(
        uri,
        start=start,
        follow=follow,
        idle_stop_s=idle_stop_s,
        retry_s=cfg.broker_retry_s,
        visibility_timeout_s=cfg.sqs_visibility_timeout_s,
    )


def build_consumer(
    store: IdentityGraph,
    settings: Settings,
    ledger: Ledger,
    *,
    model: ModelArtifact | None,
    decisions: str | Sink,
    dead_letter: str | Sink | None = None,
    source_uri: str | None = None,
    follower: StageFollower[ModelArtifact] | None = None,
    shadow_decisions: str | Sink | None = None,
) -> LiveConsumer:
    """A consumer over ``store`` journaling in ``ledger``: scoring with ``model`` (None: a writer that
    applies events and decides nothing; with a ``follower``, the registry's production model, switched
    between micro-batches when it moves), emitting to ``decisions`` and dead-lettering to ``dead_letter``
    (a sink, or a URI for :func:`open_sink`; None: the source's own dead-letter queue, else
    ``consumer.dead_letter``). ``shadow_decisions`` (with a ``follower``): the model in the registry's
    ``shadow`` stage, followed too, scores the same steps into this sink (:mod:`serving.consumer.shadow`)."""
    retry_s = settings.consumer.broker_retry_s
    shadow = None
    if follower is not None:
        model = follower.model
        if shadow_decisions is not None:
            shadow_follower = StageFollower(
                follower.registry.settings, ModelArtifact.load, follower.poll_s, stage="shadow", required=False
            ).start()
            sink = shadow_decisions
            if isinstance(sink, str):
                sink = open_sink(sink, retry_s=retry_s)
            shadow = ShadowScoring(store, settings, shadow_follower, sink)
    if dead_letter is None:
        dead_letter = dead_letter_for(source_uri or "", settings.consumer.dead_letter)
    return LiveConsumer(
        store,
        OnlineScorer(store, model, settings) if model is not None else None,
        settings,
        ledger,
        open_sink(decisions, retry_s=retry_s) if isinstance(decisions, str) else decisions,
        open_sink(dead_letter, retry_s=retry_s) if isinstance(dead_letter, str) else dead_letter,
        follower,
        shadow,
    )


__all__ = ["build_consumer", "open_consumer_source", "open_ledger"]
