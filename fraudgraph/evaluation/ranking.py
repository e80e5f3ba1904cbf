"""Ranking metrics for imbalanced fraud detection, and the decision threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from fraudgraph.arrays import ranges


def ranking_metrics(
    y_true: ArrayLike,
    scores: ArrayLike,
    *,
    precision_target: float = 0.85,
    recall_target: float = 0.5,
    sample_weight: ArrayLike | None = None,
) -> dict[str, Any]:
    """PR-AUC, ROC-AUC, recall at 85 % precision and precision at 50 % recall (None when undefined).

    ``sample_weight``: how many customers each row stands for (a sampled legitimate customer stands
    for several), so precision is that of the whole population.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    w = sample_weight
    out: dict[str, Any] = {
        "n": int(len(y)),
        "positives": int(y.sum()),
        "pr_auc": None,
        "roc_auc": None,
        "recall_at_precision_85": None,
        "precision_at_recall_50": None,
    }
    if len(y) == 0 or y.min() == y.max():
        return out
    p, r, _ = precision_recall_curve(y, s, sample_weight=w)
    out["pr_auc"] = round(float(average_precision_score(y, s, sample_weight=w)), 4)
    out["roc_auc"] = round(float(roc_auc_score(y, s, sample_weight=w)), 4)
    out["recall_at_precision_85"] = (
        round(float(r[p >= precision_target].max()), 4) if (p >= precision_target).any() else 0.0
    )
    out["precision_at_recall_50"] = round(float(p[r >= recall_target].max()), 4)
    return out


def threshold_for_precision(
    y_true: ArrayLike, scores: ArrayLike, target: float, sample_weight: ArrayLike | None = None
) -> float:
    """The lowest score threshold whose precision on (y_true, scores) reaches ``target``.

    Falls back to the threshold of best F1 when no threshold reaches it.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    if len(y) == 0 or y.min() == y.max():
        return 0.5
    p, r, t = precision_recall_curve(y, s, sample_weight=sample_weight)
    p, r = p[:-1], r[:-1]
    ok = np.where(p >= target)[0]
    if len(ok):
        return float(t[ok[0]])
    f1 = 2 * p * r / np.maximum(p + r, 1e-12)
    return float(t[int(np.argmax(f1))])


def threshold_for_false_flag_budget(
    y_true: ArrayLike, scores: ArrayLike, per_10k: float, sample_weight: ArrayLike | None = None
) -> float:
    """The lowest score threshold that flags at most ``per_10k`` of every 10,000 customers labelled
    legitimate (``y_true == 0``, each standing for its ``sample_weight``), flagged meaning
    ``score >= threshold``.

    Labelled legitimate includes fraud nobody blocked, so the budget is conservative: a flag of such
    a customer counts against it. When even the highest score over-spends the budget, the threshold
    is just above it (nothing is flagged).
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    legit = y == 0
    if not legit.any():
        return float(s.min()) if len(s) else 0.5
    # false flags per 10k at each row, ties split
    return _lowest_threshold_within(s, np.where(legit, w, 0.0), w[legit].sum(), per_10k, scale=1e4)


def _lowest_threshold_within(
    s: np.ndarray, counted: np.ndarray, total: float, limit: float, *, scale: float = 1.0
) -> float:
    """The lowest threshold at which ``scale`` x the ``counted`` weight of the flagged rows (``score >=
    threshold``; a threshold flags every tie at once) over ``total`` stays within ``limit``; just above the
    highest score when even that exceeds it."""
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    spent = np.cumsum(counted[order]) * scale / total
    last_of_value = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    ok = np.flatnonzero(last_of_value & (spent <= limit))
    # spent grows as the threshold falls: the last admissible distinct score is the lowest threshold
    if not len(ok):
        return float(np.nextafter(s_sorted[0], np.inf))
    return float(s_sorted[ok[-1]])


def threshold_for_flag_rate(scores: ArrayLike, rate: float, sample_weight: ArrayLike | None = None) -> float:
    """The lowest score threshold that flags at most ``rate`` of the customers (each standing for its
    ``sample_weight``), flagged meaning ``score >= threshold``; ties are flagged together, so a tie
    that would overshoot the rate is left out. Above the highest score when even that overshoots."""
    s = np.asarray(scores, dtype=float)
    w = np.ones(len(s)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    if not len(s):
        return 0.5
    return _lowest_threshold_within(s, w, w.sum(), rate + 1e-12)


def bootstrap_interval(
    y_true: ArrayLike,
    scores: ArrayLike,
    clusters: ArrayLike,
    *,
    rounds: int = 200,
    seed: int = 0,
    sample_weight: ArrayLike | None = None,
    metric: str = "pr_auc",
    level: float = 0.9,
) -> list[float] | None:
    """``level`` interval of a ranking metric over bootstrap resamples of whole clusters.

    ``clusters`` groups rows that are not independent (every member of one fraud ring): a resample
    draws clusters with replacement and keeps all their rows. None when undefined.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    codes = np.unique(np.asarray(clusters).astype(str), return_inverse=True)[1].reshape(-1)
    n_clusters = int(codes.max()) + 1 if len(codes) else 0
    if rounds <= 0 or n_clusters < 2 or y.min() == y.max():
        return None
    rng = np.random.default_rng(seed)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n_clusters), "left")
    ends = np.searchsorted(codes[order], np.arange(n_clusters), "right")
    values = []
    for _ in range(rounds):
        pick = rng.integers(0, n_clusters, n_clusters)
        rows = order[ranges(starts[pick], ends[pick] - starts[pick])]
        m = ranking_metrics(y[rows], s[rows], sample_weight=w[rows])[metric]
        if m is not None:
            values.append(m)
    if not values:
        return None
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [round(float(lo), 4), round(float(hi), 4)]
