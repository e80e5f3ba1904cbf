"""Ranking metrics for imbalanced fraud detection, and the decision threshold."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


def ranking_metrics(y_true, scores, *, precision_target: float = 0.85, recall_target: float = 0.5) -> dict:
    """PR-AUC, ROC-AUC, recall at 85 % precision and precision at 50 % recall (None when undefined)."""
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    out = {"n": int(len(y)), "positives": int(y.sum()), "pr_auc": None, "roc_auc": None,
           "recall_at_precision_85": None, "precision_at_recall_50": None}
    if len(y) == 0 or y.min() == y.max():
        return out
    p, r, _ = precision_recall_curve(y, s)
    out["pr_auc"] = round(float(average_precision_score(y, s)), 4)
    out["roc_auc"] = round(float(roc_auc_score(y, s)), 4)
    out["recall_at_precision_85"] = round(float(r[p >= precision_target].max()), 4) if (p >= precision_target).any() else 0.0
    out["precision_at_recall_50"] = round(float(p[r >= recall_target].max()), 4)
    return out


def threshold_for_precision(y_true, scores, target: float) -> float:
    """The lowest score threshold whose precision on (y_true, scores) reaches ``target``.

    Falls back to the threshold of best F1 when no threshold reaches it.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    if len(y) == 0 or y.min() == y.max():
        return 0.5
    p, r, t = precision_recall_curve(y, s)
    p, r = p[:-1], r[:-1]
    ok = np.where(p >= target)[0]
    if len(ok):
        return float(t[ok[0]])
    f1 = 2 * p * r / np.maximum(p + r, 1e-12)
    return float(t[int(np.argmax(f1))])
