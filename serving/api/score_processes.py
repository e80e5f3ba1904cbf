"""Scoring batches in worker processes (``api.score_processes``), so batches run on several cores at once.

One Python process scores one batch at a time: the feature code and the tensor set-up hold the
interpreter's lock, so two scoring threads in one process were slower than one (docs/decisions.md). With
``api.score_processes: N`` the API process keeps HTTP, auth, batching and the write-back of scores, and
each batch goes to one of N worker processes (started with ``spawn``, not forked from a process with
threads), each with its own connection to the graph and the model loaded once. A batch names the folder
of the model that is to score it (the registry's production model when the batch starts), so a
promotion applies from the next batch as in one process; a worker loads a new folder once and keeps the
last two.

The worker runs :meth:`fraudgraph.scoring.online.OnlineScorer.score_many`, the same code as the consumer
and the in-process API, and answers with its :class:`~fraudgraph.scoring.online.OnlineResult` per
customer (``tests/integration/test_api.py`` compares the two). A worker that dies (killed, out of
memory) fails its batch's requests with a 500 and is replaced by a new one: no single request can stop
the API.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import signal
import threading
from multiprocessing.connection import Connection
from pathlib import Path

from fraudgraph.config import Settings
from fraudgraph.scoring.online import OnlineResult

from .batching import ScoreFunction

log = logging.getLogger("fraudgraph.api")

MODELS_KEPT = 2  # the production model and the one before it (a batch in flight across a promotion)
NO_FOLDER = "api.score_processes needs a model loaded from its folder (fraudgraph api --model)"
START_TIMEOUT_S = 300.0  # a worker's start: imports, its graph connection, the model


def _serve(conn: Connection, graph_uri: str, settings: Settings, model_folder: str) -> None:
    """A worker process: set up, say ready, then score each ``(model folder, ids, as-of)`` it is sent
    and send back ``("ok", results)`` or ``("error", exception)``, until it is sent None."""
    from fraudgraph.graph import open_graph
    from fraudgraph.logs import configure_logging
    from fraudgraph.ml.artifact import ModelArtifact
    from fraudgraph.scoring.online import OnlineScorer, settle_for_serving

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the API stops its workers
    configure_logging(settings.logging.level)
    scorers: dict[str, OnlineScorer] = {}

    def scorer(folder: str) -> OnlineScorer:
        if folder not in scorers:
            while len(scorers) >= MODELS_KEPT:
                scorers.pop(next(iter(scorers)))  # the oldest loaded
            scorers[folder] = OnlineScorer(store, ModelArtifact.load(folder), settings)
            settle_for_serving()
        return scorers[folder]

    with open_graph(graph_uri, settings, create=False) as store:
        scorer(model_folder)
        conn.send(("ready", None))
        while (task := conn.recv()) is not None:
            folder, customer_ids, as_of_ms = task
            try:
                conn.send(("ok", scorer(folder).score_many(customer_ids, as_of_ms)))
            except Exception as exc:  # noqa: BLE001 - handed back to the batch's requests
                try:
                    conn.send(("error", exc))
                except Exception:  # noqa: BLE001 - an exception that does not pickle
                    conn.send(("error", RuntimeError(f"{type(exc).__name__} in a scoring process")))


class _Worker:
    """One scoring process and the API's end of its pipe."""

    def __init__(self, graph_uri: str, settings: Settings, model_folder: str):
        context = multiprocessing.get_context("spawn")  # not forked from a process with threads
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, graph_uri, settings, model_folder), name="fraudgraph-scorer", daemon=True
        )
        self.process.start()
        child.close()

    def wait_ready(self) -> None:
        if not self.conn.poll(START_TIMEOUT_S):
            raise RuntimeError(f"a scoring process did not start within {START_TIMEOUT_S:g} s")
        self.conn.recv()

    def score(self, model_folder: str, customer_ids: list[str], as_of_ms: int) -> dict[str, OnlineResult]:
        self.conn.send((model_folder, customer_ids, as_of_ms))
        status, value = self.conn.recv()
        if status == "error":
            raise value
        return value

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            self.conn.send(None)
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()
        self.conn.close()


class ScoringProcesses:
    """``processes`` worker processes that score batches of customer ids against ``graph_uri``; each
    batch takes a free worker (one batch per worker at a time) and talks to it over its own pipe.

    Args:
        graph_uri: the graph the API serves (each worker opens its own connection; it only reads).
        settings: the API's settings (rules, online scoring, the graph's connection settings).
        processes: how many workers (at most the cores: each scores on one).
        model_folder: the model every worker loads at start (the API's current model).
    """

    def __init__(self, graph_uri: str, settings: Settings, processes: int, model_folder: str | Path | None):
        if model_folder is None:
            raise ValueError(NO_FOLDER)
        self._args = (graph_uri, settings)
        # last in, first out: under light load one worker takes every batch, with its caches warm
        self._free: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._workers = [_Worker(graph_uri, settings, str(model_folder)) for _ in range(processes)]
        for worker in self._workers:  # started side by side, then waited for
            worker.wait_ready()
            self._free.put(worker)
        self._lock = threading.Lock()
        log.info("%d scoring processes ready", processes)

    def scorer(self, model_folder: str | Path | None) -> ScoreFunction:
        """The batch score function of the model in ``model_folder`` (``ScoreBatcher``'s ``score``)."""
        if model_folder is None:
            raise ValueError(NO_FOLDER)
        folder = str(model_folder)

        def score(customer_ids: list[str], as_of_ms: int) -> dict[str, OnlineResult]:
            worker = self._free.get()
            try:
                return worker.score(folder, customer_ids, as_of_ms)
            except (EOFError, OSError):  # the worker died (killed, out of memory): this batch fails
                log.error("a scoring process died (exit code %s): its batch fails, a new one starts",
                          worker.process.exitcode)  # fmt: skip
                worker.stop()
                worker = self._replacement(worker, folder)
                raise RuntimeError("the scoring process of this batch died") from None
            finally:
                self._free.put(worker)

        return score

    def _replacement(self, dead: _Worker, model_folder: str) -> _Worker:
        worker = _Worker(*self._args, model_folder)
        worker.wait_ready()
        with self._lock:
            self._workers[self._workers.index(dead)] = worker
        return worker

    def close(self) -> None:
        """Stop the workers (after the batches they are scoring)."""
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.stop()


__all__ = ["ScoringProcesses"]
