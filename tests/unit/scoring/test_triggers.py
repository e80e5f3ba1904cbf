import pandas as pd

from fraudgraph.scoring.triggers import decision_points, triggers_score

SCORE_ON = ["signup", "login_new_identifier", "add_card", "change_email", "payment"]


def test_the_table_rule_is_the_event_rule():
    """Training's decision points are exactly the events the consumer's per-event rule scores."""
    rows = [  # event_id, customer, kind, value, ts, type
        ("e1", "c1", "device", "d1", 1, "signup"), ("e1", "c1", "ip", "i1", 1, "signup"),
        ("e2", "c1", "device", "d1", 2, "login"), ("e2", "c1", "ip", "i1", 2, "login"),  # nothing new
        ("e3", "c1", "device", "d2", 3, "login"), ("e3", "c1", "ip", "i1", 3, "login"),  # a new device
        ("e4", "c1", "email", "m2", 4, "login"),  # a new email: not a device or IP
        ("e5", "c2", "ip", "i1", 5, "login"),  # an IP new to c2 (c1's before)
        ("e6", "c2", "card", "k1", 6, "payment"),
    ]
    events = pd.DataFrame(rows, columns=["event_id", "customer_id", "kind", "value_hash", "ts", "event_type"])
    points = decision_points(events, SCORE_ON)
    assert points["event_id"].tolist() == ["e1", "e3", "e5", "e6"]
    new = {"e1": True, "e2": False, "e3": True, "e4": False, "e5": True, "e6": False}
    by_rule = [e for e, t in events.drop_duplicates("event_id")[["event_id", "event_type"]].itertuples(index=False)
               if triggers_score(t, new[e], SCORE_ON)]
    assert by_rule == points["event_id"].tolist()
    assert decision_points(events, ["payment"])["event_id"].tolist() == ["e6"]  # no login_new_identifier
