"""The retraining job: labels -> snapshot -> train -> evaluate -> register, and promote through the gate
when asked. One command for cron or an orchestrator (``fraudgraph retrain``); idempotent.

The snapshot is the graph's customers and links as they stand, with the link events decision-time
training rebuilds the past from: the ETL snapshot's and those the consumer logged since
(``consumer.link_event_log``), up to the as-of, one row per event and identifier. A run whose data,
labels and settings match a registered version's returns that version and trains nothing: the key is
the SHA-256 of the link events and the labels, with the as-of and the tracked settings' hash.
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
    key = _retrain_key(settings, out, as_of_ms)
    registry = ModelRegistry(settings.registry)
    found = next((v for v in registry.versions() if registry.lineage(v.version).get(RETRAIN_KEY) == key), None)
    graphs = DecisionTimeGraphs()  # the training builds the graph, the gate reads it again
    if found is not None:
        log.info("retrain: version %d was trained on these data, labels and settings; nothing to train", found.version)
        version, trained = found.version, False
    else:
        metrics = run_training(settings, out / "snapshot", out / "labels", out / "model", graphs=graphs)
        run_id = metrics["tracking"]["run_id"]
        RunTracker(settings.registry).client.set_tag(run_id, RETRAIN_KEY, key)
        version, trained = registry.register(run_id).version, True
    promotion = promote(settings, registry, version, graphs=graphs).record() if promote_if_passed else None
    return {"version": version, "trained": trained, "retrain_key": key, "model_dir": str(out / "model"),
            "promotion": promotion}  # fmt: skip


def retrain_settings(settings: Settings) -> Settings:
    """``settings`` as a retrain trains with them: the baselines fitted only with ``retrain.baselines``."""
    training = settings.training.model_copy(update={"baselines": settings.retrain.baselines})
    return settings.model_copy(update={"training": training})


def _retrain_key(settings: Settings, out: Path, as_of_ms: int) -> str:
    digest = hashlib.sha256()
    for path in (out / "snapshot" / "link_events.parquet", out / "labels" / "labels.parquet"):
        digest.update(pd.read_parquet(path).to_csv(index=False).encode())  # the data, not the file's bytes
    digest.update(repr(sorted(training_params(settings).items())).encode())
    digest.update(str(as_of_ms).encode())
    return digest.hexdigest()[:24]
