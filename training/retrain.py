"""The retraining job: labels -> snapshot -> train -> evaluate -> register, and promote through the gate
when asked. One command for cron or an orchestrator (``fraudgraph retrain``); idempotent.

The snapshot is the graph's customers and links as they stand, with the link events decision-time
training rebuilds the past from: the ETL snapshot's and those the consumer logged since
(``consumer.link_event_log``), up to the as-of, one row per event and identifier. A run whose data,
labels and settings match a registered version's returns that version and trains nothing: the key is
the SHA-256 of the link events and the labels, with the as-of, the tracked settings' hash and the version
a warm start starts from.

With ``retrain.warm_start.enabled``, ``rgcn_edge`` starts from the production version's validated fit
(``baselines/rgcn_edge_validated``: trained on its own training split, which ends a retrain period before
this one's, so it never saw this retrain's validation or test decision points) and stops early under
``retrain.warm_start``'s epochs and learning rate; the deployment refits start from the same weights.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from fraudgraph.config import Settings
from fraudgraph.graph import open_graph
from fraudgraph.graph.event_log import link_events_until
from fraudgraph.graph.snapshot import write_snapshot
from fraudgraph.labels.stage import run_labels
from fraudgraph.lifecycle import ModelRegistry, RunTracker
from training.decision_graph import DecisionTimeGraphs
from training.lineage import training_params
from training.promotion import promote
from training.train import run_training

log = logging.getLogger("fraudgraph.training")

RETRAIN_KEY = "fraudgraph.retrain_key"  # the run tag a retrain is found again by
WARM_START_FROM = "fraudgraph.warm_start_from"  # the run tag naming the version a warm start started from


def retrain(
    settings: Settings,
    graph_uri: str | None,
    as_of_ms: int,
    out_dir: str | Path,
    *,
    etl_snapshot: str | Path,
    event_log: str | Path | None = None,
    promote_if_passed: bool = False,
) -> dict[str, Any]:
    """Retrain on the graph as of ``as_of_ms`` into ``out_dir/as-of-<ms>/`` (labels, snapshot, model),
        register the model as a candidate and, with ``promote_if_passed``, promote it through the gate. The
    baselines are fitted only with ``retrain.baselines``. Returns
        ``{version, trained, retrain_key, promotion}``."""
    out = Path(out_dir) / f"as-of-{as_of_ms}"
    settings = retrain_settings(settings)
    with open_graph(graph_uri, settings, create=False) as store:
        log.info("retrain: labels as of %s", pd.Timestamp(as_of_ms, unit="ms", tz="UTC").isoformat())
        run_labels(store, as_of_ms, out / "labels", settings)
        customers, links = store.customers_frame(), store.links_frame()
    events = link_events_until(etl_snapshot, event_log, as_of_ms)
    write_snapshot(customers, links, out / "snapshot", link_events=events)
    registry = ModelRegistry(settings.registry)
    warm_from, init_state = warm_start_source(settings, registry)
    if warm_from is not None:
        settings = warm_start_settings(settings)
    key = _retrain_key(settings, out, as_of_ms, warm_from)
    found = next((v for v in registry.versions() if registry.lineage(v.version).get(RETRAIN_KEY) == key), None)
    graphs = DecisionTimeGraphs()  # the training builds the graph, the gate reads it again
    if found is not None:
        log.info("retrain: version %d was trained on these data, labels and settings; nothing to train", found.version)
        version, trained = found.version, False
    else:
        metrics = run_training(
            settings, out / "snapshot", out / "labels", out / "model", graphs=graphs, init_state=init_state
        )
        run_id = metrics["tracking"]["run_id"]
        tracker = RunTracker(settings.registry).client
        tracker.set_tag(run_id, RETRAIN_KEY, key)
        if warm_from is not None:
            tracker.set_tag(run_id, WARM_START_FROM, str(warm_from))
        version, trained = registry.register(run_id).version, True
    promotion = promote(settings, registry, version, graphs=graphs).record() if promote_if_passed else None
    return {"version": version, "trained": trained, "retrain_key": key, "model_dir": str(out / "model"),
            "warm_start_from": warm_from, "promotion": promotion}  # fmt: skip


def retrain_settings(settings: Settings) -> Settings:
    """``settings`` as a retrain trains with them: the baselines fitted only with ``retrain.baselines``."""
    training = settings.training.model_copy(update={"baselines": settings.retrain.baselines})
    return settings.model_copy(update={"training": training})


def warm_start_source(settings: Settings, registry: ModelRegistry) -> tuple[int | None, dict[str, Any] | None]:
    """``(version, weights)`` a retrain's ``rgcn_edge`` starts from: the production version's validated fit,
    with ``retrain.warm_start.enabled``; ``(None, None)`` without it, without a production model, or when that
    model kept no validated fit."""
    import torch

    production = registry.in_stage("production") if settings.retrain.warm_start.enabled else None
    if production is None:
        return None, None
    path = registry.model_dir(production.version) / "baselines" / "rgcn_edge_validated.pt"
    if not path.exists():
        log.warning("retrain: production version %d kept no validated fit; starting from scratch", production.version)
        return None, None
    log.info("retrain: starting from production version %d's validated rgcn_edge (warm start)", production.version)
    return production.version, torch.load(path, weights_only=True)


def warm_start_settings(settings: Settings) -> Settings:
    """``settings`` with ``retrain.warm_start``'s epochs and learning rate in place of ``training``'s (a
    warm-started fit)."""
    warm = settings.retrain.warm_start
    training = settings.training.model_copy(
        update={"min_epochs": warm.min_epochs, "patience": warm.patience, "max_epochs": warm.max_epochs,
                "learning_rate": warm.learning_rate}
    )  # fmt: skip
    return settings.model_copy(update={"training": training})


def _retrain_key(settings: Settings, out: Path, as_of_ms: int, warm_from: int | None) -> str:
    digest = hashlib.sha256()
    for path in (out / "snapshot" / "link_events.parquet", out / "labels" / "labels.parquet"):
        digest.update(pd.read_parquet(path).to_csv(index=False).encode())  # the data, not the file's bytes
    digest.update(repr(sorted(training_params(settings).items())).encode())
    digest.update(str(as_of_ms).encode())
    if warm_from is not None:
        digest.update(f"warm start from version {warm_from}".encode())
    return digest.hexdigest()[:24]
