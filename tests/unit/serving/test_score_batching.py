"""The API's score batcher: who waits for whom when several workers score batches."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from serving.api.batching import ScoreBatcher


class _GatedScorer:
    """Records each batch's ids; the first batch blocks until released."""

    def __init__(self):
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.started = threading.Condition()

    def __call__(self, ids, as_of_ms):
        with self.started:
            self.batches.append(list(ids))
            first = len(self.batches) == 1
            self.started.notify_all()
        if first:
            assert self.release.wait(10)
        return {c: f"result {c}" for c in ids}

    def wait_for(self, n: int, timeout: float = 5.0) -> bool:
        with self.started:
            return self.started.wait_for(lambda: len(self.batches) >= n, timeout)


@pytest.mark.parametrize("min_batch", [1, 2])
def test_while_a_batch_runs_a_lone_request_waits_for_a_partner_or_the_free_scorer(min_batch):
    scorer = _GatedScorer()
    batcher = ScoreBatcher(lambda: scorer, None, max_ids=10, workers=2, min_batch_while_busy=min_batch)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.score, ["a"])
        assert scorer.wait_for(1)  # an idle batcher scores at once, alone
        lone = pool.submit(batcher.score, ["b"])
        started = scorer.wait_for(2, timeout=0.5)
        if min_batch == 1:
            assert started and scorer.batches[1] == ["b"]  # the second worker takes it alone
        else:
            assert not started  # one request waits while a batch is in flight
            partner = pool.submit(batcher.score, ["c"])
            assert scorer.wait_for(2)
            assert scorer.batches[1] == ["b", "c"]  # the second worker scores the two together
            assert partner.result(5) == {"c": "result c"}
        assert not first.done()
        scorer.release.set()
        assert first.result(5) == {"a": "result a"} and lone.result(5) == {"b": "result b"}
    batcher.close()


def test_a_lone_request_is_scored_once_the_batch_in_flight_ends():
    scorer = _GatedScorer()
    batcher = ScoreBatcher(lambda: scorer, None, max_ids=10, workers=2, min_batch_while_busy=2)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(batcher.score, ["a"])
        assert scorer.wait_for(1)
        lone = pool.submit(batcher.score, ["b"])
        assert not scorer.wait_for(2, timeout=0.3)
        scorer.release.set()
        assert lone.result(5) == {"b": "result b"} and first.result(5) == {"a": "result a"}
        assert scorer.batches == [["a"], ["b"]]
    batcher.close()


def test_a_batch_holds_at_most_max_ids_and_close_answers_what_waits():
    scorer = _GatedScorer()
    batcher = ScoreBatcher(lambda: scorer, None, max_ids=3, workers=1)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.score, ["a"])
        assert scorer.wait_for(1)
        rest = []
        for ids in (["b", "c"], ["d"], ["e", "f"]):  # all three wait behind the first batch, in this order
            rest.append(pool.submit(batcher.score, ids))
            time.sleep(0.1)
        scorer.release.set()
        batcher.close()
        assert [f.result(5) for f in [first, *rest]] == [
            {"a": "result a"},
            {"b": "result b", "c": "result c"},
            {"d": "result d"},
            {"e": "result e", "f": "result f"},
        ]
    assert scorer.batches == [["a"], ["b", "c", "d"], ["e", "f"]]


def test_a_request_given_up_by_its_client_never_stops_the_batcher():
    """A request cancelled while it waits (a client that disconnects, a proxy's timeout) is left out of
    the next batch; one cancelled while its batch runs gets no answer. Either way every worker goes on
    scoring the requests that follow."""
    scorer = _GatedScorer()
    batcher = ScoreBatcher(lambda: scorer, None, max_ids=10, workers=1)
    running = batcher.submit(["a"])
    assert scorer.wait_for(1)  # "a" is being scored
    waiting = batcher.submit(["b"])
    assert running.cancel() is False  # a batch that runs is not taken back: its answer is dropped
    assert waiting.cancel() is True  # a request still waiting is
    kept = batcher.submit(["c"])
    scorer.release.set()
    assert running.result(5) == {"a": "result a"}
    assert kept.result(5) == {"c": "result c"}
    assert scorer.batches == [["a"], ["c"]]  # "b" was never scored
    for i in range(3):  # the worker is still there
        assert batcher.score([f"d{i}"]) == {f"d{i}": f"result d{i}"}
    batcher.close()
