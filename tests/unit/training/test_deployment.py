"""The deployed model's refit: labels known at as-of, validation customers held out for its threshold."""

import pandas as pd

from fraudgraph.labels.maturity import FRAUD, LEGIT
from fraudgraph.timeutil import DAY_MS
from training.examples import deployment_labels


def test_deployment_labels_use_what_is_known_at_as_of_and_hold_out_validation():
    as_of = 400 * DAY_MS
    frame = pd.DataFrame({
        "customer_id": ["fraud", "fraud", "held", "held", "legit", "unknown", "late"],
        "ts": [10 * DAY_MS, 380 * DAY_MS, 50 * DAY_MS, 250 * DAY_MS, 20 * DAY_MS, 30 * DAY_MS, 390 * DAY_MS],
        "split": ["train", "test", "train", "val", "train", "train", "test"],
        # labels at each split's end: the fraudster still looked legitimate in training
        "y": [0, 1, 0, 0, 0, -1, -1],
    })
    labels_now = pd.DataFrame({"customer_id": ["fraud", "held", "legit", "unknown", "late"],
                               "label": [FRAUD, LEGIT, LEGIT, "unknown", FRAUD]})
    blocked = pd.Series({"fraud": 385 * DAY_MS, "late": 395 * DAY_MS})
    last_point = frame.groupby("customer_id")["ts"].max()
    out = deployment_labels(frame, labels_now, blocked, last_point, as_of, 45 * DAY_MS)
    y = dict(zip(zip(out["customer_id"], out["ts"] // DAY_MS), out["y_deploy"]))
    assert y[("fraud", 380)] == 1          # within 45 days before its block
    assert y[("fraud", 10)] == -1          # long before: left out, not called legitimate
    assert y[("late", 390)] == 1           # a label the training split could not know yet
    assert y[("held", 50)] == -1 and y[("held", 250)] == -1   # a validation customer is held out everywhere
    assert out.loc[out["customer_id"] == "held", "deploy_holdout"].tolist() == [False, True]
    assert y[("legit", 20)] == 0 and y[("unknown", 30)] == -1
    weights = out.groupby("customer_id")["deploy_weight"].sum()
    assert weights["fraud"] == 1.0 and weights["legit"] == 1.0 and weights["held"] == 0.0
