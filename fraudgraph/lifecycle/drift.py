"""Drift: how far a day of live scoring has moved from what the model was trained on.

Per day: the score distribution, the decision mix, and each customer feature's population stability
index (PSI) against the training snapshot. The reference (:class:`DriftReference`) is fitted at training
time and kept in the model folder (``drift_reference.json``): the deciles of every customer feature over
the training split's decision points, and of the deployed model's scores over the validation customers.
A live day is binned on the same edges (:class:`DailyDrift`), and

    PSI = sum over bins (actual share - expected share) * ln(actual share / expected share)

with each share floored at ``1e-4``. Conventionally below 0.1 is stable, 0.1 to 0.25 a moderate shift
and above 0.25 a major one; ``registry.drift_alert_psi`` (0.25) is the alert threshold.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_FILE = "drift_reference.json"
SCORE = "score"  # the score's entry beside the features
_FLOOR = 1e-4


def _edges(values: np.ndarray, bins: int) -> list[float]:
    """Inner quantile edges (at most ``bins - 1``, distinct): a value goes to the bin of the first edge
    above it."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return []
    return sorted({float(x) for x in np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])})


def _counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    return np.bincount(np.searchsorted(np.asarray(edges), values, side="right"), minlength=len(edges) + 1)


def population_stability(expected: Sequence[float], actual_counts: Sequence[float] | np.ndarray) -> float | None:
    """PSI of observed bin counts against the expected bin shares (None without observations)."""
    actual = np.asarray(actual_counts, dtype=float)
    if actual.sum() <= 0:
        return None
    a = np.maximum(actual / actual.sum(), _FLOOR)
    e = np.maximum(np.asarray(expected, dtype=float), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass
class DriftReference:
    """Per name (each customer feature, and ``score``): the bin edges and the training shares."""

    edges: dict[str, list[float]]
    shares: dict[str, list[float]]

    @classmethod
    def fit(cls, names: Sequence[str], features: np.ndarray, scores: np.ndarray, bins: int = 10) -> DriftReference:
        """``features``: (examples, len(names)) raw customer features at the training decision points;
        ``scores``: the deployed model's scores of the validation customers."""
        edges, shares = {}, {}
        for name, column in [*zip(names, np.asarray(features, dtype=float).T), (SCORE, np.asarray(scores, float))]:
            edges[name] = _edges(column, bins)
            counts = _counts(column[np.isfinite(column)], edges[name])
            shares[name] = [round(float(c), 6) for c in counts / max(1, counts.sum())]
        return cls(edges, shares)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"edges": self.edges, "shares": self.shares}))

    @classmethod
    def load(cls, path: str | Path) -> DriftReference:
        data = json.loads(Path(path).read_text())
        return cls(data["edges"], data["shares"])

    def counts(self, name: str, values: np.ndarray) -> np.ndarray:
        """Bin counts of ``values`` on the reference's edges for ``name``."""
        values = np.asarray(values, dtype=float)
        return _counts(values[np.isfinite(values)], self.edges[name])


@dataclass
class DailyDrift:
    """Bin counts and decisions per day (``YYYY-MM-DD`` of the decisions' as-of, UTC)."""

    counts: dict[str, dict[str, np.ndarray]] = field(default_factory=lambda: defaultdict(dict))
    decisions: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))

    def add(
        self,
        day: str,
        reference: DriftReference,
        names: Sequence[str],
        features: np.ndarray,
        scores: Iterable[float],
        decisions: Iterable[str],
    ) -> None:
        """One batch of decisions of ``day``: the scored customers' raw ``features`` (rows, ``names``
        columns), their scores and every decision (blocked ones included)."""
        columns = dict(zip(names, np.asarray(features, dtype=float).reshape(-1, len(names)).T))
        columns[SCORE] = np.asarray(list(scores), dtype=float)
        for name, values in columns.items():
            if name in reference.edges:
                now = reference.counts(name, values)
                before = self.counts[day].get(name)
                self.counts[day][name] = now if before is None else before + now
        self.decisions[day].update(decisions)

    def merge(self, record: Mapping[str, Any]) -> None:
        """Add a day record written by :meth:`record` (a drift log line)."""
        day = record["day"]
        for name, counts in record["counts"].items():
            before = self.counts[day].get(name)
            self.counts[day][name] = np.asarray(counts) if before is None else before + np.asarray(counts)
        self.decisions[day].update(record["decisions"])

    def record(self, day: str) -> dict[str, Any]:
        """The day's counts as plain values (one drift log line)."""
        return {
            "day": day,
            "counts": {name: [int(c) for c in counts] for name, counts in self.counts[day].items()},
            "decisions": dict(self.decisions[day]),
        }

    def summary(self, day: str, reference: DriftReference) -> dict[str, Any]:
        """``{day, decisions, decision_mix, score_psi, feature_psi: {name: psi}}`` of one day."""
        decided = sum(self.decisions[day].values())
        psi = {
            name: population_stability(reference.shares[name], counts)
            for name, counts in self.counts[day].items()
            if name in reference.shares
        }
        return {
            "day": day,
            "decisions": decided,
            "decision_mix": {d: round(n / decided, 4) for d, n in sorted(self.decisions[day].items())}
            if decided
            else {},
            "score_psi": _rounded(psi.pop(SCORE, None)),
            "feature_psi": {name: _rounded(value) for name, value in sorted(psi.items())},
        }

    def days(self) -> list[str]:
        return sorted(set(self.counts) | set(self.decisions))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
