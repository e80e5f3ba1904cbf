"""The deployed model's refit: labels known at as-of, held-out legitimate customers, threshold transfer."""

import numpy as np
import pandas as pd

from fraudgraph.labels.cleaning import FRAUD, LEGIT
from fraudgraph.timeutil import DAY_MS
from training.examples import deployment_labels
from training.train import threshold_for_flagged_weight


def test_threshold_flags_at_most_the_allowed_weight():
    scores = np.array([0.9, 0.8, 0.8, 0.1])
    weight = np.ones(4)
    assert threshold_for_flagged_weight(scores, weight, 1.0) == 0.9
    assert threshold_for_flagged_weight(scores, weight, 2.0) == 0.9   # the tie at 0.8 would flag three
    assert threshold_for_flagged_weight(scores, weight, 3.0) == 0.8
    above = threshold_for_flagged_weight(scores, weight, 0.0)
    assert above > 0.9 and not (scores >= above).any()
    # population weights count: one sampled customer standing for three fills the allowance alone
    assert threshold_for_flagged_weight(scores, np.array([3.0, 1, 1, 1]), 2.0) > 0.9


def test_deployment_labels_use_what_is_known_at_as_of():
    as_of = 400 * DAY_MS
    frame = pd.DataFrame({
        "customer_id": ["fraud", "fraud", "held", "held", "legit", "unknown"],
        "ts": [10 * DAY_MS, 300 * DAY_MS, 50 * DAY_MS, 250 * DAY_MS, 20 * DAY_MS, 30 * DAY_MS],
        "split": ["train", "val", "train", "val", "train", "train"],
        # labels at each split's end: the fraudster still looked legitimate in training
        "y": [0, 0, 0, 0, 0, -1],
    })
    labels_now = pd.DataFrame({"customer_id": ["fraud", "held", "legit", "unknown"],
                               "label": [FRAUD, LEGIT, LEGIT, "unknown"]})
    blocked = pd.Series({"fraud": 320 * DAY_MS})
    last_point = frame.groupby("customer_id")["ts"].max()
    out = deployment_labels(frame, labels_now, blocked, last_point, as_of, 45 * DAY_MS)
    y = dict(zip(zip(out["customer_id"], out["ts"] // DAY_MS), out["y_deploy"]))
    assert y[("fraud", 300)] == 1          # within 45 days before its block
    assert y[("fraud", 10)] == -1          # long before: left out, not called legitimate
    assert y[("held", 50)] == -1 and y[("held", 250)] == -1   # validation's legitimate customer is held out
    assert out.loc[out["customer_id"] == "held", "deploy_holdout"].tolist() == [False, True]
    assert y[("legit", 20)] == 0 and y[("unknown", 30)] == -1
    weights = out.groupby("customer_id")["deploy_weight"].sum()
    assert weights["fraud"] == 1.0 and weights["legit"] == 1.0 and weights["held"] == 0.0
