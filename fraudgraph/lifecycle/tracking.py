"""Tracked training runs: each run's parameters, metrics, model folder and lineage recorded in MLflow
(``registry.tracking_uri``; by default a SQLite store in ``registry.dir``), where a data scientist
looks for them (``mlflow ui --backend-store-uri sqlite:///models/registry.db``)."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraudgraph.config import RegistrySettings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

MODEL_ARTIFACT_PATH = "model"  # where a run keeps its model folder among its artifacts
_BATCH = 100  # MLflow's limit of parameters (and tags) in one log_batch call


def tracking_uri(settings: RegistrySettings) -> str:
    """``registry.tracking_uri``, or the SQLite store ``registry.dir/registry.db`` (made on first use)."""
    if settings.tracking_uri:
        return settings.tracking_uri
    root = Path(settings.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'registry.db'}"


def mlflow_client(settings: RegistrySettings) -> MlflowClient:
    """An MLflow client of the tracking store and model registry (one URI for both)."""
    from mlflow.tracking import MlflowClient

    # after the import (MLflow sets its own logger up then): the store's schema set-up chatter is INFO
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)

    uri = tracking_uri(settings)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def snapshot_fingerprint(snapshot_dir: str | Path) -> str:
    """SHA-256 of a snapshot's files (names and bytes, in name order): the data a model was trained on."""
    digest = hashlib.sha256()
    for path in sorted(Path(snapshot_dir).iterdir()):
        if not path.is_file():
            continue
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def flat_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numeric leaves of nested metrics as ``{dotted.key: value}`` (lists and text left out)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_metrics(value, f"{name}."))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float) and math.isfinite(value):
            out[name] = float(value)
    return out


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RunTracker:
    """Records training runs in the MLflow experiment ``registry.experiment`` (made on first use, its
    artifacts in ``registry.dir/artifacts`` for the default local store)."""

    def __init__(self, settings: RegistrySettings):
        self.settings = settings
        self.client = mlflow_client(settings)

    def experiment_id(self) -> str:
        """The experiment's id, made on first use."""
        found = self.client.get_experiment_by_name(self.settings.experiment)
        if found is not None:
            return str(found.experiment_id)
        location = None
        if not self.settings.tracking_uri:  # beside the local store, not in the working directory's mlruns/
            location = (Path(self.settings.dir).resolve() / "artifacts").as_uri()
        return str(self.client.create_experiment(self.settings.experiment, artifact_location=location))

    def log_training(
        self,
        model_dir: str | Path,
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, Any],
        lineage: Mapping[str, str],
    ) -> str:
        """One finished training run: ``params`` (flat), ``metrics`` (nested, numeric leaves logged),
        ``lineage`` as tags, and ``model_dir`` as the run's ``model`` artifacts. Returns the run id."""
        from mlflow.entities import Metric, Param

        run = self.client.create_run(
            self.experiment_id(), run_name=f"train {lineage.get('model_id', '')}".strip(), tags=dict(lineage)
        )
        run_id = run.info.run_id
        try:
            now = int(time.time() * 1000)
            for part in _chunks([Param(k, str(v)[:6000]) for k, v in sorted(params.items())], _BATCH):
                self.client.log_batch(run_id, params=part)
            values = [Metric(k, v, now, 0) for k, v in sorted(flat_metrics(metrics).items())]
            for part in _chunks(values, 1000):
                self.client.log_batch(run_id, metrics=part)
            self.client.log_artifacts(run_id, str(model_dir), artifact_path=MODEL_ARTIFACT_PATH)
        except Exception:
            self.client.set_terminated(run_id, status="FAILED")
            raise
        self.client.set_terminated(run_id)
        log.info("training run %s tracked at %s", run_id, tracking_uri(self.settings))
        return run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], prefix: str = "") -> None:
        """More figures of a run already logged (the main job's live-stream figures)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = [Metric(k, v, now, 0) for k, v in sorted(flat_metrics(metrics, prefix).items())]
        for part in _chunks(values, 1000):
            self.client.log_batch(run_id, metrics=part)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """Every metric of a run, latest values."""
        return dict(self.client.get_run(run_id).data.metrics)
