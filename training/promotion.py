"""Promotion through the gate: a candidate replaces the production model only if it does not fall below
it, beyond ``registry.tolerance``, on the gate figures (:func:`training.gate.gate_figures`), unless forced
with a reason. Every decision, refusals included, is recorded on the candidate's version."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fraudgraph.config import Settings
from fraudgraph.lifecycle import ModelRegistry, ProductionMoved, RegistryError, regressions
from training.decision_graph import DecisionTimeGraphs
from training.gate import gate_figures

log = logging.getLogger("fraudgraph.training")


@dataclass
class PromotionResult:
    """What promote decided for ``version``: ``promoted`` or refused (``regressions`` say why), whether
    it was ``forced``, the gate's ``figures`` (candidate and production; None without a production model)
    and the version that was in production before."""

    version: int
    promoted: bool
    forced: bool = False
    regressions: list[str] = field(default_factory=list)
    figures: dict[str, Any] | None = None
    production_before: int | None = None
    reason: str = ""

    def record(self) -> dict[str, Any]:
        return asdict(self)


def promote(
    settings: Settings,
    registry: ModelRegistry,
    version: int,
    *,
    force: bool = False,
    reason: str | None = None,
    graphs: DecisionTimeGraphs | None = None,
) -> PromotionResult:
    """Evaluate candidate ``version`` and the production model on the candidate's decision-time test split
    and promote it when the gate passes (or ``force`` with a ``reason``). A refusal leaves both stages as
    they were and is recorded on the candidate. ``graphs``: the job's decision-time graphs (the retraining
    job's training built the candidate's)."""
    if force and not (reason or "").strip():
        raise RegistryError("promote --force: give --reason, it is recorded with the promotion")
    candidate = registry.get(version)
    production = registry.in_stage("production")
    if production is not None and production.version == version:
        return PromotionResult(version, promoted=False, reason="already in production", production_before=version)
    before = production.version if production is not None else None
    figures: dict[str, Any] | None = None
    problems: list[str] = []
    unusable = _cannot_serve(registry, production.version) if production is not None else None
    if unusable is not None:  # nothing to measure against: the production model cannot score any more
        log.warning("gate: production version %d cannot serve this fraudgraph (%s)", before, unusable)
    elif production is not None:
        figures, problems = _measured(settings, registry, version, production.version, graphs)
    evaluation = {"against_version": before, "figures": figures, "regressions": problems}
    if problems and not force:
        registry.move(
            version,
            candidate.stage,
            reason="promotion refused by the gate: " + "; ".join(problems),
            evaluation=evaluation,
        )
        log.warning("gate: version %d refused: %s", version, "; ".join(problems))
        return PromotionResult(version, False, False, problems, figures, before, "refused by the gate")
    if reason:
        why = reason.strip()
    elif unusable is not None:
        why = f"production version {before} cannot serve this fraudgraph: {unusable}"
    else:
        why = "gate passed" if production is not None else "first model in production"
    try:  # only if production is still the version the gate measured against (a promotion at once)
        registry.move(
            version,
            "production",
            reason=why,
            forced=bool(force and problems),
            evaluation=evaluation,
            expect_production=before,
        )
    except ProductionMoved as moved:
        registry.move(version, candidate.stage, reason=f"promotion refused: {moved}", evaluation=evaluation)
        log.warning("gate: version %d not promoted: %s", version, moved)
        return PromotionResult(version, False, False, [str(moved)], figures, before, "production moved meanwhile")
    return PromotionResult(version, True, bool(force and problems), problems, figures, before, why)


def _measured(
    settings: Settings, registry: ModelRegistry, version: int, production: int, graphs: DecisionTimeGraphs | None
) -> tuple[dict[str, Any] | None, list[str]]:
    """``(gate figures, regressions)`` of candidate ``version`` against ``production`` on the candidate's
    test split; no figures and one problem when its snapshot or labels are gone."""
    lineage = registry.lineage(version)
    snapshot = Path(lineage.get("fraudgraph.snapshot_dir", ""))
    labels = Path(lineage.get("fraudgraph.labels_dir", ""))
    if not snapshot.is_dir() or not labels.is_dir():
        return None, [f"the candidate's snapshot {snapshot} or labels {labels} are gone: the gate cannot measure it"]
    log.info("gate: version %d against production version %d on the candidate's test split", version, production)
    dirs = {"candidate": registry.model_dir(version), "production": registry.model_dir(production)}
    figures = gate_figures(settings, dirs, snapshot, labels, graphs)
    return figures, regressions(figures["candidate"], figures["production"], settings.registry.tolerance)


def _cannot_serve(registry: ModelRegistry, version: int) -> str | None:
    """Why registered ``version`` cannot run on this fraudgraph (a model of an older schema or other
    features, which the consumer and the API refuse too), or None. The gate has nothing to measure
    against then, and the candidate replaces it: leaving it would leave production with no model."""
    from fraudgraph.ml.artifact import ModelArtifact

    manifest = registry.model_dir(version) / "manifest.json"
    if not manifest.exists():
        return f"its model folder has no {manifest.name}"
    return ModelArtifact.incompatibility(json.loads(manifest.read_text()))
