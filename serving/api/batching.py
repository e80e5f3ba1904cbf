"""``POST /v1/score`` on the consumer's fast path: the requests that arrive while a batch is being scored
are scored together as the next one, by one warm scorer, with one subgraph read, one forward pass and one
write of the scores.

Nothing waits for a batch to fill: a request that finds no batch in flight is scored at once, alone.
Under load, the requests queued behind a batch form the next (up to ``api.max_score_ids`` customers each,
a request never split), so the graph read and the model's forward pass, which cost little more for ten
customers than for one, are paid once per batch instead of once per request. With several workers, one
starts a batch beside another only once ``api.min_batch_while_busy`` requests wait; a lone request is
taken by whichever comes first, a partner or the end of the batch in flight. A customer's score does not
depend on who else is in its batch: each is scored on its own neighbourhood as of the batch's moment
(``tests/integration/test_api.py`` compares batched and single requests).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter

from fraudgraph.scoring.online import OnlineResult
from fraudgraph.timeutil import now_ms

log = logging.getLogger("fraudgraph.api")

# scores customer ids as of a moment (epoch ms): the current model's OnlineScorer.score_many
ScoreFunction = Callable[[list[str], int], dict[str, OnlineResult]]
# writes a batch's results (the API's write-back of scores), or None
WriteFunction = Callable[[list[OnlineResult]], None]


@dataclass
class _Request:
    ids: list[str]
    done: Future[dict[str, OnlineResult]] = field(default_factory=Future)


class ScoreBatcher:
    """Scores the customer ids of concurrent requests in batches, on ``workers`` threads.

    Args:
        score: called once per batch with the batch's ids (each once) and its moment; looked up at each
            batch (``scorer()`` returns the current scorer's ``score_many``), so a model switched by the
            registry follower applies from the next batch and never part-way through one.
        write: called once per batch with its results (or None: nothing written).
        max_ids: customers per batch at most (a single request over it is scored alone).
        workers: batches scored at once (CPU-bound: more than the cores only thrash).
        min_batch_while_busy: requests that must be waiting before a worker starts a batch while another
            batch is being scored (1: at once). A request that finds no batch in flight is scored at
            once; under load, waiting for a second request scores two for little more than the cost of
            one, where starting alone would spend a core on one.
        registry: where ``fraudgraph_api_score_batches_total`` and
            ``fraudgraph_api_score_batched_requests_total`` count (their ratio: requests per batch).
    """

    def __init__(
        self,
        score: Callable[[], ScoreFunction],
        write: WriteFunction | None,
        max_ids: int,
        workers: int,
        min_batch_while_busy: int = 1,
        registry: CollectorRegistry | None = None,
    ):
        self._score, self._write, self.max_ids = score, write, max_ids
        self.min_batch_while_busy = min_batch_while_busy
        self.batches = Counter("fraudgraph_api_score_batches", "Scoring batches", registry=registry)
        self.requests = Counter(
            "fraudgraph_api_score_batched_requests", "Scoring requests answered by those batches", registry=registry
        )
        self._waiting: deque[_Request] = deque()
        self._in_flight = 0  # batches being scored
        self._stopping = False
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._run, name=f"score-batcher-{i}", daemon=True)
                         for i in range(workers)]  # fmt: skip
        for t in self._threads:
            t.start()

    def submit(self, ids: list[str]) -> Future[dict[str, OnlineResult]]:
        """The future results of ``ids`` (each scored once, as of its batch's moment), or what scoring
        raised. Cancelling it (its coroutine cancelled) drops the request while it waits; once its batch has
        started it can no longer be cancelled, and its results go unread."""
        request = _Request(list(ids))
        with self._changed:
            self._waiting.append(request)
            self._changed.notify()
        return request.done

    def score(self, ids: list[str]) -> dict[str, OnlineResult]:
        """:meth:`submit`, waiting for the results."""
        return self.submit(ids).result()

    def close(self) -> None:
        """Stop the workers after the requests already waiting."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        for t in self._threads:
            t.join(timeout=30)

    def _next_batch(self) -> list[_Request] | None:
        """The requests waiting, oldest first, as many as fit; None once stopping with none waiting.
        Waits for one, or for ``min_batch_while_busy`` while another batch is being scored."""
        with self._changed:
            while True:
                waiting = len(self._waiting)
                if waiting and (self._in_flight == 0 or waiting >= self.min_batch_while_busy or self._stopping):
                    batch = self._take_waiting()
                    if batch:
                        self._in_flight += 1
                        return batch
                    continue  # every one of them had been given up
                if self._stopping and not waiting:
                    return None
                self._changed.wait()

    def _take_waiting(self) -> list[_Request]:
        """The requests waiting, oldest first, as many as fit in ``max_ids`` (the first always), each marked
        running, so that its client can no longer cancel it; a request its client gave up while it waited
        (its future cancelled) is dropped unscored. Holds ``_changed``."""
        batch: list[_Request] = []
        size = 0
        while self._waiting and (not batch or size + len(self._waiting[0].ids) <= self.max_ids):
            request = self._waiting.popleft()
            if request.done.set_running_or_notify_cancel():
                size += len(request.ids) if batch else len(set(request.ids))
                batch.append(request)
        return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                ids = list(dict.fromkeys(c for r in batch for c in r.ids))
                results = self._score()(ids, now_ms())
                if self._write is not None and results:
                    self._write(list(results.values()))
            except BaseException as exc:  # noqa: BLE001 - handed to every request of the batch
                self._finished()
                for r in batch:
                    r.done.set_exception(exc)
                continue
            self._finished()
            self.batches.inc()
            self.requests.inc(len(batch))
            for r in batch:
                r.done.set_result({c: results[c] for c in r.ids if c in results})

    def _finished(self) -> None:
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()
