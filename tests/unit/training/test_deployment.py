"""The deployed model's refit: labels known at as-of, validation customers held out for its threshold."""

import numpy as np
import pandas as pd

from fraudgraph.labels.maturity import FRAUD, LEGIT
from fraudgraph.timeutil import DAY_MS
from training.examples import deployment_labels, refit_plan, refit_points


def test_deployment_labels_use_what_is_known_at_as_of_and_hold_out_validation():
    as_of = 400 * DAY_MS
    frame = pd.DataFrame({
        "customer_id": ["fraud", "fraud", "held", "held", "legit", "unknown", "late", "held_late"],
        "ts": [10 * DAY_MS, 380 * DAY_MS, 50 * DAY_MS, 250 * DAY_MS, 20 * DAY_MS, 30 * DAY_MS, 390 * DAY_MS,
               360 * DAY_MS],
        "split": ["train", "test", "train", "val", "train", "train", "test", "val"],
        # labels at each split's end: the fraudster still looked legitimate in training
        "y": [0, 1, 0, 0, 0, -1, -1, 0],
    })
    labels_now = pd.DataFrame({"customer_id": ["fraud", "held", "legit", "unknown", "late", "held_late"],
                               "label": [FRAUD, LEGIT, LEGIT, "unknown", FRAUD, FRAUD]})
    blocked = pd.Series({"fraud": 385 * DAY_MS, "late": 395 * DAY_MS, "held_late": 392 * DAY_MS})
    last_point = frame.groupby("customer_id")["ts"].max()
    out = deployment_labels(frame, labels_now, blocked, last_point, as_of, 45 * DAY_MS)
    y = dict(zip(zip(out["customer_id"], out["ts"] // DAY_MS), out["y_deploy"]))
    assert y[("fraud", 380)] == 1          # within 45 days before its block
    assert y[("fraud", 10)] == -1          # long before: left out, not called legitimate
    assert y[("late", 390)] == 1           # a label the training split could not know yet
    assert y[("held", 50)] == -1 and y[("held", 250)] == -1   # a validation customer is held out everywhere
    assert out.loc[out["customer_id"] == "held", "deploy_holdout"].tolist() == [False, True]
    assert y[("legit", 20)] == 0 and y[("unknown", 30)] == -1
    # the threshold's validation customers: held out of the refit, labelled with what is known at as-of
    held = out.loc[out["deploy_holdout"]].set_index("customer_id")
    assert held["y_deploy"].tolist() == [-1, -1]
    assert held.loc["held", "y_now"] == 0 and held.loc["held_late", "y_now"] == 1  # blocked after the split
    weights = out.groupby("customer_id")["deploy_weight"].sum()
    assert weights["fraud"] == 1.0 and weights["legit"] == 1.0 and weights["held"] == 0.0


def test_refit_plan_keeps_every_refit_within_the_budget_then_drops_refits_then_samples():
    # the default world's refits (seed 42: 16 epochs, 14,602 points, 3 refits = 0.70 million) fit whole
    assert refit_plan(3, 16, 14_602, 1_200_000) == (3, 25_000)
    assert refit_plan(3, 16, 14_602, 700_896) == (3, 14_602)
    # a bigger world: fewer refits first, every point kept
    assert refit_plan(3, 20, 25_000, 1_200_000) == (2, 30_000)
    # then one refit on a sample (a 100,000-customer world: 48 epochs, 32,158 points)
    assert refit_plan(3, 48, 32_158, 1_200_000) == (1, 25_000)
    for refits, epochs, points, budget in [(3, 48, 32_158, 1_200_000), (2, 7, 999, 5_000), (1, 1, 10, 3)]:
        members, max_points = refit_plan(refits, epochs, points, budget)
        assert 1 <= members <= refits and members * epochs * min(points, max_points) <= budget


def test_refit_points_keep_every_fraud_customer_and_whole_legitimate_customers():
    rng = np.random.default_rng(0)
    customers = [f"c{i:03d}" for i in range(200)]
    frame = pd.DataFrame({"customer_id": np.repeat(customers, 2), "ts": np.arange(400)})
    frame["y_deploy"] = 0
    frame.loc[frame["customer_id"].isin(customers[:10]), "y_deploy"] = 1       # ten fraud customers
    frame.loc[rng.choice(400, 30, replace=False), "y_deploy"] = -1             # points nobody may train on
    labelled = (frame["y_deploy"] >= 0).to_numpy()

    assert (refit_points(frame, 10_000, seed=7) == labelled).all()             # everything fits: all of it
    kept = refit_points(frame, 120, seed=7)
    assert kept.sum() <= 120 and not (kept & ~labelled).any()
    assert kept[(frame["y_deploy"] == 1).to_numpy()].all()                    # every fraud point stays
    legit = frame.loc[kept & (frame["y_deploy"] == 0).to_numpy(), "customer_id"]
    whole = frame.loc[labelled & frame["customer_id"].isin(set(legit)).to_numpy()]
    assert len(whole) == len(legit)                                            # a sampled customer: all its points
    assert legit.nunique() > 40                                                # the room is filled
    assert (refit_points(frame, 120, seed=7) == kept).all()                    # seeded
    assert not (refit_points(frame, 120, seed=8) == kept).all()
