"""Decision-time examples: (customer, decision time) pairs at the moments the live consumer decides.

The consumer scores a customer at signup and at each risk event (``consumer.score_on``), with the
identity graph as it is at that moment. Training, validation and testing use the same moments:

1. **Decision points** come from the snapshot's link events
   (:func:`fraudgraph.scoring.triggers.decision_points`: the consumer's trigger rule), up to the labels' as-of.
2. **Split by decision time**: test = the last ``training.split.test_days`` before as-of,
   validation the ``val_days`` before that, training everything earlier.
3. **Labels known at the end of each split**: the labels of a split are cleaned as of its end
   (:func:`fraudgraph.labels.cleaning.clean_labels`), so no block from the test period labels a
   training example. A customer cleaned as fraud counts as fraud only at decision points within
   ``training.examples.fraud_window_days`` before its block (before its last decision point in the
   split when a heuristic, not a block, made it fraud); its earlier points are left out (label
   -1), since a hijacked account was legitimate before the takeover. Legitimate customers count at
   every decision point; unknown ones at none.
4. **A seeded sample**: at most ``legit_customers_per_split`` legitimate customers per split (every
   fraudster is kept; in the figures a sampled legitimate customer stands for ``legitimate /
   sampled``), at most ``max_per_customer`` points per customer and split, usable labelled points
   first; each customer weighs the same in the loss (weights ``1 / points``).
5. **Deployment labels**: the same points labelled with what is known at as-of, for the model the
   consumer deploys and for the validation customers its threshold is chosen on
   (:func:`deployment_labels`; ``training.refit_on_all_labels``); on large worlds a sample of them
   that fits ``training.deployed_refit_budget`` (:func:`refit_points`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudgraph.config import LabelSettings, TrainingSettings
from fraudgraph.labels.cleaning import clean_labels
from fraudgraph.labels.maturity import FRAUD, LEGIT
from fraudgraph.schema import block_stands
from fraudgraph.timeutil import DAY_MS

SPLITS = ("train", "val", "test")


@dataclass
class DecisionExamples:
    """``frame``: one row per kept decision point with ``customer_id``, ``ts`` (epoch ms), ``event_id``,
    ``event_type``, ``split``, ``y`` (1 fraud, 0 legitimate, -1 not labelled at this point),
    ``weight`` (``1 / labelled points`` of the customer in the split, 0 where ``y`` is -1) and
    ``population_weight`` (customers the row's customer stands for: ``legitimate / sampled`` for a
    sampled legitimate customer, else 1)."""

    frame: pd.DataFrame
    t1_ms: int
    t2_ms: int
    as_of_ms: int
    label_counts: dict[str, dict[str, int]]


def split_bounds(as_of_ms: int, cfg: TrainingSettings) -> tuple[int, int]:
    """(t1, t2): training before t1, validation t1..t2, test t2..as-of (decision time)."""
    t2 = as_of_ms - int(cfg.split.test_days * DAY_MS)
    return t2 - int(cfg.split.val_days * DAY_MS), t2


def build_examples(
    points: pd.DataFrame,
    customers: pd.DataFrame,
    links_at: Callable[[int], pd.DataFrame],
    test_labels: pd.DataFrame,
    as_of_ms: int,
    cfg: TrainingSettings,
    label_settings: LabelSettings,
) -> DecisionExamples:
    """Label and sample decision points (see the module docstring).

    Args:
        points: ``decision_points`` of the snapshot (event_id, customer_id, ts, event_type).
        customers: snapshot customers (block and appeal history columns).
        links_at: ``as_of_ms -> links frame`` of the graph at that time (for the label heuristics).
        test_labels: the labels stage's output at ``as_of_ms`` (the test split's labels).
    """
    t1, t2 = split_bounds(as_of_ms, cfg)
    pts = points.loc[points["ts"] <= as_of_ms].copy()
    # a moment at which the customer's block stands is never scored (the consumer decides it blocked)
    by_id = customers.set_index(customers["customer_id"].astype(str))
    cid = pts["customer_id"].astype(str)
    blocked_at = cid.map(pd.to_numeric(by_id["blocked_at"], errors="coerce")) if "blocked_at" in by_id else np.nan
    unblocked_at = cid.map(pd.to_numeric(by_id["unblocked_at"], errors="coerce")) if "unblocked_at" in by_id else np.nan
    pts = pts.loc[~block_stands(blocked_at, unblocked_at, pts["ts"].to_numpy(np.float64))]
    pts["split"] = np.select([pts["ts"] < t1, pts["ts"] < t2], ["train", "val"], "test")
    ends = {"train": t1, "val": t2}
    labels = {s: clean_labels(customers, links_at(end), end, label_settings).labels for s, end in ends.items()}
    labels["test"] = test_labels
    blocked = (
        pd.to_numeric(customers.set_index(customers["customer_id"].astype(str)).get("blocked_at"), errors="coerce")
        if "blocked_at" in customers
        else pd.Series(dtype=float)
    )
    window = cfg.examples.fraud_window_days * DAY_MS
    parts, counts = [], {}
    for split in SPLITS:
        end = {"train": t1, "val": t2, "test": as_of_ms}[split]
        part, counts[split] = _split_examples(
            pts.loc[pts["split"] == split].copy(), split, end, labels[split], blocked, window, cfg
        )
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame = sample_points(frame, cfg.examples.max_per_customer, cfg.seed)
    labelled = frame["y"] >= 0
    n = frame.loc[labelled].groupby(["customer_id", "split"])["ts"].transform("size")
    frame["weight"] = 0.0
    frame.loc[labelled, "weight"] = 1.0 / n
    frame = deployment_labels(frame, test_labels, blocked, pts.groupby("customer_id")["ts"].max(), as_of_ms, window)
    counts["deploy"] = {
        "fraud_customers": int(frame.loc[frame["y_deploy"] == 1, "customer_id"].nunique()),
        "legit_customers": int(frame.loc[frame["y_deploy"] == 0, "customer_id"].nunique()),
        "validation_customers_held_out": int(frame.loc[frame["deploy_holdout"], "customer_id"].nunique()),
        "decision_points": int((frame["y_deploy"] >= 0).sum()),
    }
    return DecisionExamples(frame.reset_index(drop=True), t1, t2, as_of_ms, counts)


def _split_examples(
    part: pd.DataFrame,
    split: str,
    end: int,
    split_labels: pd.DataFrame,
    blocked: pd.Series,
    window: float,
    cfg: TrainingSettings,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """One split's decision points labelled with what was known at its ``end`` (a fraudster's points only
    within ``window`` before its block, or its last point), legitimate customers sampled down to
    ``training.examples.legit_customers_per_split`` (each kept one standing for several), and its counts."""
    lab = split_labels.set_index(split_labels["customer_id"].astype(str))["label"]
    label = part["customer_id"].astype(str).map(lab)
    y = np.where(label == LEGIT, 0, np.where(label == FRAUD, 1, -1))
    block = part["customer_id"].astype(str).map(blocked)
    block = block.where(block <= end)
    last_point = part.groupby("customer_id")["ts"].transform("max")
    anchor = block.fillna(last_point)
    in_window = part["ts"].to_numpy() >= (anchor.to_numpy() - window)
    part["y"] = np.where((y == 1) & ~in_window, -1, y)
    legit = np.sort(part.loc[label.to_numpy() == LEGIT, "customer_id"].astype(str).unique())
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split)])
    kept = (
        rng.choice(legit, min(len(legit), cfg.examples.legit_customers_per_split), replace=False)
        if len(legit)
        else legit
    )
    is_legit = part["customer_id"].astype(str).isin(set(legit)).to_numpy()
    part = part.loc[~is_legit | part["customer_id"].astype(str).isin(set(kept)).to_numpy()].copy()
    # how many customers each kept row's customer stands for (sampled legitimate customers: several)
    part["population_weight"] = np.where(
        part["customer_id"].astype(str).isin(set(legit)).to_numpy(), len(legit) / max(len(kept), 1), 1.0
    )
    counts = {
        "fraud_customers": int(part.loc[part["y"] == 1, "customer_id"].nunique()),
        "legit_customers": int(len(legit)),
        "legit_customers_sampled": int(len(kept)),
        "decision_points": int(len(part)),
    }
    return part, counts


def deployment_labels(
    frame: pd.DataFrame,
    labels_now: pd.DataFrame,
    blocked: pd.Series,
    last_point: pd.Series,
    as_of_ms: int,
    window_ms: float,
) -> pd.DataFrame:
    """Labels for the deployed model's refit: every kept decision point, labelled with what is known at
    as-of (``labels_now``), fraud only within ``window_ms`` before the block (or before the customer's last
    decision point when a heuristic made it fraud).

    Adds ``y_deploy`` (1 / 0 / -1), ``y_now`` (the same label at every point, the held-out ones too: what
    the refit's threshold is chosen on), ``deploy_weight`` (``1 / labelled points`` of the customer, every
    customer weighs the same) and ``deploy_holdout``: the validation split's labelled points. Every
    customer with a validation point is left out of the refit (``y_deploy`` -1 at all its points), so the
    refit's threshold is chosen on validation customers it never trained on, exactly as the validated
    model's is.
    """
    cid = frame["customer_id"].astype(str)
    label = cid.map(labels_now.set_index(labels_now["customer_id"].astype(str))["label"])
    block = cid.map(blocked)
    anchor = block.where(block <= as_of_ms).fillna(cid.map(last_point.set_axis(last_point.index.astype(str))))
    in_window = frame["ts"].to_numpy() >= (anchor.to_numpy() - window_ms)
    y = np.where(label == LEGIT, 0, np.where((label == FRAUD) & in_window, 1, -1))
    in_val = (frame["split"] == "val").to_numpy()
    held_out = cid.isin(set(cid[in_val])).to_numpy()
    frame = frame.assign(
        y_deploy=np.where(held_out, -1, y), y_now=y, deploy_holdout=in_val & (frame["y"] >= 0).to_numpy()
    )
    n = frame.loc[frame["y_deploy"] >= 0].groupby("customer_id")["ts"].transform("size")
    frame["deploy_weight"] = 0.0
    frame.loc[frame["y_deploy"] >= 0, "deploy_weight"] = 1.0 / n
    return frame


def refit_plan(refits: int, epochs: int, points: int, budget: int) -> tuple[int, int]:
    """How the deployed refit stays within ``budget`` decision-point epochs (``training.deployed_refit_budget``:
    refits x epochs x decision points, all refits together; a training epoch's cost grows with its points).

    Averaging refits steadies one fit's top scores where fraud customers are few (small worlds); the
    budget binds on large ones. There the refits drop first, down to one, then the one refit trains on a
    sample of at most ``max_points`` points (:func:`refit_points`). Returns ``(refits, max_points)``.
    """
    epochs, points = max(epochs, 1), max(points, 1)
    members = max(1, min(refits, budget // (epochs * points)))
    return members, max(1, budget // (members * epochs))


def refit_points(frame: pd.DataFrame, max_points: int, seed: int) -> np.ndarray:
    """The deployed refit's training points, at most ``max_points`` of them: every labelled point
    (``y_deploy`` >= 0) when they fit; otherwise every point of the fraud customers and a seeded sample of
    legitimate customers, each with all of its points, filling the rest. Returns a mask over ``frame``.
    """
    labelled = frame["y_deploy"].to_numpy() >= 0
    if labelled.sum() <= max_points:
        return labelled
    fraud = frame["y_deploy"].to_numpy() == 1
    cid = frame["customer_id"].astype(str).to_numpy()
    per_customer = pd.Series(cid[labelled & ~fraud]).value_counts().sort_index()  # legitimate: points each
    order = np.random.default_rng([seed, len(SPLITS)]).permutation(len(per_customer))
    fits = per_customer.iloc[order].cumsum().to_numpy() <= max(max_points - int(fraud.sum()), 0)
    kept = set(per_customer.index[order][fits])
    return fraud | (labelled & ~fraud & pd.Series(cid).isin(kept).to_numpy())


def sample_points(frame: pd.DataFrame, per_customer: int, seed: int) -> pd.DataFrame:
    """At most ``per_customer`` points per (customer, split), labelled points (``y`` >= 0) first, seeded;
    time-ordered. ``split`` and ``y`` default to one split and every point labelled."""
    frame = frame.assign(**{c: v for c, v in (("split", "all"), ("y", 0)) if c not in frame})
    rng = np.random.default_rng(seed)
    shuffled = frame.assign(_r=rng.random(len(frame)), _unlabelled=(frame["y"] < 0).astype(int))
    shuffled = shuffled.sort_values(["customer_id", "split", "_unlabelled", "_r"], kind="stable")
    kept = shuffled.loc[shuffled.groupby(["customer_id", "split"]).cumcount() < per_customer]
    return kept.drop(columns=["_r", "_unlabelled"]).sort_values(["ts", "event_id"], kind="stable")


def truth_at_points(frame: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Ground truth at each decision point: fraud once the customer's fraud had started.

    Returns ``(is_fraud (0/1), fraud_type, cluster)`` aligned with ``frame``; ``cluster`` is the ring
    for ring members (bootstrap resamples rings whole) and the customer otherwise.
    """
    t = truth.set_index(truth["customer_id"].astype(str))
    start = pd.to_datetime(t["fraud_start_ts"], utc=True)
    start_ms = start.dt.as_unit("ms").astype("int64").where(start.notna())
    cid = frame["customer_id"].astype(str)
    started = cid.map(start_ms)
    is_fraud = (
        cid.map(t["is_fraud_true"]).fillna(False).astype(bool)
        & started.notna()
        & (frame["ts"].to_numpy() >= started.fillna(np.inf).to_numpy())
    )
    ftype = np.where(is_fraud, cid.map(t["fraud_type"]).fillna("none"), "none")
    ring = cid.map(t["ring_id"]) if "ring_id" in t else pd.Series(None, index=frame.index)
    cluster = np.where(pd.notna(ring) & (ftype == "ring"), "ring:" + ring.astype(str), "customer:" + cid)
    return pd.DataFrame(
        {"is_fraud": is_fraud.astype(int).to_numpy(), "fraud_type": ftype, "cluster": cluster}, index=frame.index
    )
