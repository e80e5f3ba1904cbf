"""Live drift on the consumer: each scoring step's decisions binned per day against the deployed model's
drift reference (:mod:`fraudgraph.lifecycle.drift`), the current day's PSIs as Prometheus gauges, and
each day's counts in a drift log (JSONL, one line per day and model, written when the day's decisions
end and at stop) that ``fraudgraph drift`` reports from."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Gauge

from fraudgraph.lifecycle.drift import REFERENCE_FILE, DailyDrift, DriftReference
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.ml.features import CUSTOMER_FEATURES
from fraudgraph.scoring.online import OnlineResult

log = logging.getLogger("fraudgraph.consumer")


class DriftMonitor:
    """Per day and model: bin counts of the scored customers' features and scores, and the decision mix.
    ``log_path``: the drift log (None: gauges only). ``alert_psi``: a feature at or above it counts in
    ``fraudgraph_drift_alerts``."""

    def __init__(self, registry: CollectorRegistry, log_path: str | Path | None, alert_psi: float):
        self.log_path = Path(log_path) if log_path else None
        self.alert_psi = alert_psi
        self.daily = DailyDrift()
        self._open: tuple[str, str] | None = None  # (day, model version) being counted
        self._references: dict[str, DriftReference | None] = {}
        self.psi = Gauge(
            "fraudgraph_drift_psi",
            "Population stability index of today's decisions against the model's training reference",
            ["name"],
            registry=registry,
        )
        self.alerts = Gauge(
            "fraudgraph_drift_alerts", "Features (and the score) at or above registry.drift_alert_psi today",
            registry=registry,
        )  # fmt: skip

    def observe(self, artifact: ModelArtifact, results: dict[str, OnlineResult]) -> None:
        """One scoring step's results (all of one as-of) by ``artifact``."""
        if not results:
            return
        first = next(iter(results.values()))
        scored = [r for r in results.values() if r.features is not None and r.score is not None]
        features = np.asarray([r.features for r in scored], dtype=float).reshape(-1, len(CUSTOMER_FEATURES))
        scores = [float(r.score) for r in scored if r.score is not None]
        decisions = [r.decision.decision for r in results.values()]
        self.add(artifact, first.as_of_ms, features, scores, decisions)

    def add(
        self, artifact: ModelArtifact, as_of_ms: int, features: np.ndarray, scores: list[float], decisions: list[str]
    ) -> None:
        """Decisions made by ``artifact`` as of ``as_of_ms`` (epoch ms): the scored customers' raw
        ``features`` (rows, ``CUSTOMER_FEATURES`` columns) and scores, and every decision (blocked ones
        included). Decisions of a later day or another model close the day being counted."""
        reference = self._reference(artifact)
        if reference is None:
            return
        day = dt.datetime.fromtimestamp(as_of_ms / 1000, dt.UTC).date().isoformat()
        key = (day, artifact.version)
        if self._open is not None and self._open != key:
            self._write(*self._open)
        self._open = key
        self.daily.add(f"{day}|{artifact.version}", reference, CUSTOMER_FEATURES, features, scores, decisions)
        summary = self.daily.summary(f"{day}|{artifact.version}", reference)
        values = {"score": summary["score_psi"], **summary["feature_psi"]}
        for name, value in values.items():
            if value is not None:
                self.psi.labels(name=name).set(value)
        self.alerts.set(sum(1 for v in values.values() if v is not None and v >= self.alert_psi))

    def close(self) -> None:
        """Write the day being counted (at stop)."""
        if self._open is not None:
            self._write(*self._open)
            self._open = None

    def _reference(self, artifact: ModelArtifact) -> DriftReference | None:
        if artifact.version not in self._references:
            path = artifact.folder / REFERENCE_FILE if artifact.folder is not None else None
            found = path is not None and path.exists()
            if not found:
                log.warning("model %s has no %s: no drift measured for it", artifact.version, REFERENCE_FILE)
            self._references[artifact.version] = DriftReference.load(path) if found and path else None
        return self._references[artifact.version]

    def _write(self, day: str, model_version: str) -> None:
        if self.log_path is None:
            return
        record = self.daily.record(f"{day}|{model_version}")
        record.update(day=day, model_version=model_version)
        with self.log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        del self.daily.counts[f"{day}|{model_version}"], self.daily.decisions[f"{day}|{model_version}"]
