"""The consumer decides at the moment of each event: a poll's events are cut into steps of bounded event time."""

from __future__ import annotations

from fraudgraph.schema import validate_event
from serving.consumer.steps import event_time_steps


def _ev(i: int, seconds: float):
    return validate_event({"event_id": f"e{i}", "event_type": "login", "customer_id": "c1",
                           "ts": 1_767_225_600_000 + int(seconds * 1000)})


def test_steps_span_at_most_the_bound_and_keep_time_order():
    events = [_ev(i, s) for i, s in enumerate([0, 1, 4.9, 5.1, 60, 60, 3600])]
    steps = event_time_steps(events, 5_000)
    assert [[e.event_id for e in step] for step in steps] == [["e0", "e1", "e2"], ["e3"], ["e4", "e5"], ["e6"]]
    assert all(step[-1].ts_ms - step[0].ts_ms <= 5_000 for step in steps)
    assert [e for step in steps for e in step] == events


def test_a_burst_inside_the_bound_is_one_step():
    events = [_ev(i, i * 0.004) for i in range(1000)]  # 4 s of stream
    assert len(event_time_steps(events, 5_000)) == 1
    assert event_time_steps([], 5_000) == []
