"""The labelled decision points of a snapshot and the graph as of each of them, side by side: what
training fits and judges on, and what the promotion gate judges a candidate and production on.

:class:`DecisionTimeGraphs` keeps the graph a job built, so one job reads it once: the retraining job's
training and its gate read the same snapshot and labels with the same settings, and building the graph
as of every decision point was most of the gate's time (about 30 of 35 s a week on the default world).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraudgraph.config import Settings, TrainingSettings
from fraudgraph.graph.history import LinkHistory
from fraudgraph.graph.scoring_inputs import ScoringInputs
from fraudgraph.ml.features import IdentityGraphTensors, build_graph_tensors
from fraudgraph.scoring.triggers import decision_points
from training.examples import DecisionExamples, build_examples

log = logging.getLogger("fraudgraph.training")


class TrainingRefused(ValueError):
    """Too few positive labels to learn from; the message names the counts and the settings."""


def read_labels(labels_dir: str | Path) -> tuple[pd.DataFrame, int]:
    labels = pd.read_parquet(Path(labels_dir) / "labels.parquet")
    as_of = labels["as_of"].iloc[0]
    as_of_ms = int(pd.Timestamp(as_of).value // 10**6) if not isinstance(as_of, (int, np.integer)) else int(as_of)
    return labels, as_of_ms


def labelled_examples(
    settings: Settings, snapshot_dir: str | Path, labels_dir: str | Path
) -> tuple[LinkHistory, DecisionExamples, int]:
    """The snapshot's link history, its decision points labelled and sampled (refused when too few), and
    the labels' as-of."""
    labels, as_of_ms = read_labels(labels_dir)
    history = LinkHistory.read(snapshot_dir)
    customers = pd.read_parquet(Path(snapshot_dir) / "customers.parquet")
    link_events = pd.read_parquet(Path(snapshot_dir) / "link_events.parquet")
    points = decision_points(link_events, settings.consumer.score_on)
    cfg = settings.training
    examples = build_examples(points, customers, history.links_as_of, labels, as_of_ms, cfg, settings.labels)
    refuse_when_too_few(examples, cfg)
    return history, examples, as_of_ms


def refuse_when_too_few(examples: DecisionExamples, cfg: TrainingSettings) -> None:
    """Raise :class:`TrainingRefused` when training or validation has fewer than ``min_positives`` fraudsters."""
    counts = examples.label_counts
    short = [s for s in ("train", "val") if counts[s]["fraud_customers"] < cfg.min_positives]
    if short:
        per_split = "; ".join(
            f"{s}: {c['fraud_customers']} fraud / {c['legit_customers']} legitimate customers"
            for s, c in counts.items()
        )
        raise TrainingRefused(
            f"too few fraud labels to train ({', '.join(short)} below training.min_positives="
            f"{cfg.min_positives}): {per_split}. Longer block history, a shorter labels.maturity_days, or "
            f"other training.split.val_days / test_days (now {cfg.split.val_days} / {cfg.split.test_days}) "
            "would change them"
        )


def decision_time_graph(
    history: LinkHistory, frame: pd.DataFrame, cap: int
) -> tuple[pd.DataFrame, ScoringInputs, np.ndarray, IdentityGraphTensors, np.ndarray, float]:
    """The graph as of every decision point of ``frame``, side by side: ``(frame, inputs, has, tensors,
    target, build_s)``, ``frame`` keeping the points whose customer had a link by then (``has``, over the
    points given), ``target`` their customer nodes, ``build_s`` the seconds it took."""
    t = time.perf_counter()
    log.info("decision-time examples: reading the graph as of each of %d decision points", len(frame))
    inputs = history.scoring_inputs(frame["customer_id"], frame["ts"], cap)
    assert inputs.target_ids is not None  # decision points side by side always carry them
    has = inputs.target_ids >= 0
    frame, target_ids = frame.loc[has].reset_index(drop=True), inputs.target_ids[has]
    read_s = time.perf_counter() - t
    log.info("decision-time examples: %d subgraph links read in %.1f s; building features", len(inputs.links), read_s)
    tensors = build_graph_tensors(inputs, fanout_cap=cap)
    target = tensors.index_of(target_ids)
    build_s = time.perf_counter() - t
    log.info("decision-time examples: %d (%d subgraph links) built in %.1f s", len(frame), len(inputs.links), build_s)
    return frame, inputs, has, tensors, target, build_s


@dataclass
class DecisionTimeGraph:
    """A snapshot's labelled decision points and the graph as of each (:func:`decision_time_graph`):
    ``frame`` the points kept (their customer had a link by then), ``has`` which of ``examples.frame``
    they are, ``target`` their customer nodes in ``tensors``."""

    examples: DecisionExamples
    as_of_ms: int
    frame: pd.DataFrame
    inputs: ScoringInputs
    has: np.ndarray
    tensors: IdentityGraphTensors
    target: np.ndarray
    build_s: float

    @classmethod
    def build(cls, settings: Settings, snapshot_dir: str | Path, labels_dir: str | Path, cap: int) -> DecisionTimeGraph:
        history, examples, as_of_ms = labelled_examples(settings, snapshot_dir, labels_dir)
        return cls(examples, as_of_ms, *decision_time_graph(history, examples.frame, cap))


class DecisionTimeGraphs:
    """The decision-time graphs one job built, by snapshot, labels, the settings that define the examples
    (``training``, ``labels``, the consumer's scoring triggers) and the fan-out cap. Held by the job (the
    retraining job passes one to its training and its gate) and freed with it; nothing is kept across jobs."""

    def __init__(self) -> None:
        self._built: dict[tuple[str, ...], DecisionTimeGraph] = {}

    def get(self, settings: Settings, snapshot_dir: str | Path, labels_dir: str | Path, cap: int) -> DecisionTimeGraph:
        key = (
            str(Path(snapshot_dir).resolve()),
            str(Path(labels_dir).resolve()),
            settings.training.model_dump_json(),
            settings.labels.model_dump_json(),
            repr(settings.consumer.score_on),
            str(cap),
        )
        if key not in self._built:
            self._built[key] = DecisionTimeGraph.build(settings, snapshot_dir, labels_dir, cap)
        else:
            log.info("decision-time examples: the graph this job built from %s is read again", snapshot_dir)
        return self._built[key]
