"""Concurrency and failure behaviour of the graph stores."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time

import pytest

from fraudgraph.graph import CustomerUpsert, IdentityLink, open_graph


def _writer(uri: str, worker: int, n: int) -> None:
    from fraudgraph.config import load_settings

    settings = load_settings(environ={})
    with open_graph(uri, settings) as store:
        for start in range(0, n, 50):
            ids = range(start, min(start + 50, n))
            store.upsert_customers([CustomerUpsert(f"w{worker}-{i}", {"worker": worker}) for i in ids])
            store.upsert_links([IdentityLink(f"w{worker}-{i}", "ip", "shared-ip", i, i + 1, 1, {"login": 1})
                                for i in ids])


def test_two_processes_write_embedded_store_at_once(tmp_path, settings):
    uri = f"sqlite:///{tmp_path / 'g.db'}"
    open_graph(uri, settings).close()  # create the schema
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(uri, w, 1000)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with open_graph(uri, settings) as store:
        stats = store.stats()
        assert stats["vertices"]["customer"] == 2000
        assert stats["edges"]["has_ip"] == 2000
        assert store.neighbourhoods(["w1-5"], fanout_cap=5)["w1-5"].identifiers[0].degree == 2000


def test_reader_sees_consistent_batches_while_writer_runs(tmp_path, settings):
    """A reader process never sees half a batch (one transaction per batch)."""
    uri = f"sqlite:///{tmp_path / 'g.db'}"
    writer = open_graph(uri, settings)
    reader = open_graph(uri, settings)
    done = threading.Event()
    seen = []

    def read():
        while not done.is_set():
            seen.append(reader.stats()["edges"]["has_device"])

    t = threading.Thread(target=read)
    t.start()
    for b in range(20):
        writer.upsert_links([IdentityLink(f"c{b}-{i}", "device", f"d{b}", 1, 2, 1) for i in range(100)])
    done.set()
    t.join()
    assert all(n % 100 == 0 for n in seen)
    writer.close()
    reader.close()


@pytest.mark.slow
@pytest.mark.gremlin
def test_gremlin_server_restart_mid_run(gremlin_server, settings):
    """The store reconnects by itself and the retried batch takes effect exactly once."""
    store = open_graph(gremlin_server.url, settings)
    store.clear()
    store.upsert_links([IdentityLink(f"a{i}", "device", "d-a", 1, 2, 1, {"signup": 1}) for i in range(100)])

    gremlin_server.stop()  # clean stop: TinkerGraph is persisted and reloaded on start
    restarter = threading.Thread(target=lambda: (time.sleep(2.0), gremlin_server.start()))
    restarter.start()
    batch = [IdentityLink(f"b{i}", "card", "k-b", 5, 9, 2, {"add_card": 1, "payment": 1}) for i in range(100)]
    store.upsert_links(batch)  # blocks in retry/backoff until the server is back
    restarter.join()
    assert store.client.retries > 0
    stats = store.stats()
    assert stats["edges"]["has_device"] == 100  # survived the restart
    assert stats["edges"]["has_card"] == 100  # the retried batch, once
    assert stats["vertices"]["customer"] == 200
    (link,) = store.identity("b7")
    assert link.properties["event_count"] == 2 and link.properties["count_payment"] == 1
    store.upsert_links(batch)  # a replay changes nothing
    assert store.stats() == stats
    store.close()


def _open_and_write(uri: str, worker: int) -> None:
    from fraudgraph.config import load_settings

    with open_graph(uri, load_settings(environ={})) as store:
        store.upsert_customers([CustomerUpsert(f"p{worker}", {"w": worker})])


def test_processes_creating_the_same_new_store_at_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_open_and_write, args=(uri, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with open_graph(uri) as store:
        assert store.stats()["vertices"]["customer"] == 4
