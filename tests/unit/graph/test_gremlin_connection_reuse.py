"""A broken Gremlin connection is closed only after the last request still using it is done.

gremlinpython's client close shuts down the executor that completes in-flight requests: closing it
under another thread's request left that request waiting forever (a consumer and the CI run hung when
a server restarted during concurrent write phases). The driver's remote is replaced here by one that
records when it is closed, so the order is checked exactly; the restart itself is exercised against a
real server in ``tests/integration/test_graph_faults.py``.
"""

from __future__ import annotations

import threading

from fraudgraph.config import load_settings
from fraudgraph.graph.gremlin.session import GremlinClient


class _Remote:
    def __init__(self, name: str, events: list[str]):
        self.name, self.events = name, events

    def close(self) -> None:
        self.events.append(f"close {self.name}")


class _RecordingClient(GremlinClient):
    def __init__(self, events: list[str]):
        settings = load_settings(environ={}).graph
        super().__init__("ws://127.0.0.1:1/gremlin", settings)
        self.backoff_initial_s = self.backoff_max_s = 0.001
        self.events = events
        self.opened = 0

    def _connect(self):
        self.opened += 1
        name = f"connection-{self.opened}"
        self.events.append(f"open {name}")
        return _Remote(name, self.events), name


def test_a_failed_request_does_not_close_the_connection_under_a_concurrent_one():
    events: list[str] = []
    session = _RecordingClient(events)
    slow_started, retried = threading.Event(), threading.Event()

    def slow(g):
        slow_started.set()
        assert retried.wait(5)  # still in flight while the other request fails and retries
        events.append(f"slow done on {g}")
        return g

    attempts = []

    def failing_once(g):
        attempts.append(g)
        if len(attempts) == 1:
            assert slow_started.wait(5)
            raise ConnectionError("Connection was closed by server")
        retried.set()
        return g

    results = {}
    worker = threading.Thread(target=lambda: results.setdefault("slow", session.run("slow", slow)))
    worker.start()
    results["failing"] = session.run("failing", failing_once)
    worker.join(5)

    assert not worker.is_alive()
    assert results == {"slow": "connection-1", "failing": "connection-2"}
    assert session.retries == 1
    # the retry opened a new connection at once; the broken one closed only when the slow request was done
    assert events.index("open connection-2") < events.index("slow done on connection-1")
    assert events.index("slow done on connection-1") < events.index("close connection-1")
    assert "close connection-2" not in events
    session.close()
    assert events[-1] == "close connection-2"
    session.close()  # closing twice closes nothing more
    assert events.count("close connection-2") == 1


def test_close_waits_for_the_requests_in_flight():
    events: list[str] = []
    session = _RecordingClient(events)
    inside, leave = threading.Event(), threading.Event()

    def request(g):
        inside.set()
        assert leave.wait(5)
        return g

    worker = threading.Thread(target=lambda: session.run("read", request))
    worker.start()
    assert inside.wait(5)
    session.close()
    assert events == ["open connection-1"]  # still in use: not closed under the request
    leave.set()
    worker.join(5)
    assert events == ["open connection-1", "close connection-1"]
