"""The promotion gate's rule: a candidate may not fall below the production model, beyond the tolerance,
on any gate figure measured on the same decision-time test split."""

from __future__ import annotations

from collections.abc import Mapping

from fraudgraph.config import GateTolerance

# PR-AUC of the customers' highest scores, and precision and recall at the model's own operating point
GATE_FIGURES = ("pr_auc", "precision", "recall")


def regressions(
    candidate: Mapping[str, float | None], production: Mapping[str, float | None] | None, tolerance: GateTolerance
) -> list[str]:
    """One line per gate figure on which ``candidate`` falls below ``production`` by more than its
    tolerance (empty: the gate passes). No production model: nothing to fall below. A figure the
    candidate cannot give (no customer flagged: no precision) where production gives one is a regression."""
    if production is None:
        return []
    out = []
    for name in GATE_FIGURES:
        mine, theirs, allowed = candidate.get(name), production.get(name), getattr(tolerance, name)
        if theirs is None:
            continue
        if mine is None:
            out.append(f"{name}: none (production {theirs:.4f})")
        elif mine < theirs - allowed:
            out.append(
                f"{name}: {mine:.4f} below production {theirs:.4f} by more than registry.tolerance.{name}={allowed:g}"
            )
    return out
