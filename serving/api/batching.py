"""``POST /v1/score`` on the consumer's fast path: the requests that arrive while a batch is being scored
are scored together as the next one, by one warm scorer, with one subgraph read, one forward pass and one
write of the scores.

Nothing waits for a batch to fill: a request that finds the scorer idle is scored at once, alone. Under
load, the requests queued behind a batch form the next (up to ``api.max_score_ids`` customers each, a
request never split), so the graph read and the model's forward pass, which cost little more for ten
customers than for one, are paid once per batch instead of once per request. A customer's score does not
depend on who else is in its batch: each is scored on its own neighbourhood as of the batch's moment
(``tests/integration/test_api.py`` compares batched and single requests).
"""

from __future__ import annotations

import logging
import queue
import threading
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
        registry: where ``fraudgraph_api_score_batches_total`` and
            ``fraudgraph_api_score_batched_requests_total`` count (their ratio: requests per batch).
    """

    def __init__(
        self,
        score: Callable[[], ScoreFunction],
        write: WriteFunction | None,
        max_ids: int,
        workers: int,
        registry: CollectorRegistry | None = None,
    ):
        self._score, self._write, self.max_ids = score, write, max_ids
        self.batches = Counter("fraudgraph_api_score_batches", "Scoring batches", registry=registry)
        self.requests = Counter(
            "fraudgraph_api_score_batched_requests", "Scoring requests answered by those batches", registry=registry
        )
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._held: _Request | None = None  # taken from the queue but over the last batch's limit
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, name=f"score-batcher-{i}", daemon=True)
                         for i in range(workers)]  # fmt: skip
        for t in self._threads:
            t.start()

    def score(self, ids: list[str]) -> dict[str, OnlineResult]:
        """The results of ``ids`` (each scored once, as of its batch's moment); blocks until its batch is
        scored, and raises what scoring raised."""
        request = _Request(list(ids))
        self._queue.put(request)
        return request.done.result()

    def close(self) -> None:
        """Stop the workers after the requests already queued."""
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=30)

    def _next_batch(self) -> list[_Request] | None:
        """The first queued request (waiting for one) and every one queued behind it that fits."""
        with self._lock:
            first, self._held = self._held, None
            if first is None:
                first = self._queue.get()
            if first is None:
                return None
            batch, size = [first], len(set(first.ids))
            while True:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    return batch
                if nxt is None:
                    self._queue.put(None)  # another worker's stop: leave it
                    return batch
                if size + len(nxt.ids) > self.max_ids:
                    self._held = nxt
                    return batch
                batch.append(nxt)
                size += len(nxt.ids)

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
                for r in batch:
                    r.done.set_exception(exc)
                continue
            self.batches.inc()
            self.requests.inc(len(batch))
            for r in batch:
                r.done.set_result({c: results[c] for c in r.ids if c in results})
