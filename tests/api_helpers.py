"""Test helpers for the query API: a real uvicorn server on loopback in a thread."""

from __future__ import annotations

import threading
import time


def start_uvicorn(app, port):
    """Serve ``app`` on 127.0.0.1:``port`` in a daemon thread; returns ``(server, thread)`` once it listens."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return server, thread
