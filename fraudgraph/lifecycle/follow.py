"""Following the registry's production version without a restart (hot reload).

A :class:`ProductionFollower` polls the registry every ``poll_s`` seconds on a thread of its own. When
the ``production`` alias moves (a promotion or a rollback), it loads the new version there, whole, with
the loader it was given, and keeps it aside; the consumer (between micro-batches) or the API (between
requests) takes it with :meth:`ProductionFollower.take`. Work already started keeps the model it started
with, and nothing is ever scored by a model still being loaded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from fraudgraph.config import RegistrySettings

from .registry import ModelRegistry, RegistryError

log = logging.getLogger(__name__)
M = TypeVar("M")


class ProductionFollower(Generic[M]):
    """The model in ``production``, loaded with ``load(model_dir)``; the first one at construction
    (:class:`RegistryError` when no version is in production)."""

    def __init__(self, settings: RegistrySettings, load: Callable[[Path], M], poll_s: float):
        self.registry = ModelRegistry(settings)
        self.load, self.poll_s = load, poll_s
        first = self.registry.in_stage("production")
        if first is None:
            raise RegistryError(f"no version of {self.registry.name!r} is in production: promote one first")
        self.version = first.version  # the version taken last
        self.model = load(self.registry.model_dir(first.version))
        self.reloads = 0
        self._pending: tuple[int, M] | None = None
        self._seen = first.version  # the version loaded last (taken or pending)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ProductionFollower[M]:
        """Poll on a daemon thread from now on."""
        self._thread = threading.Thread(target=self._run, name="registry-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 30)

    def take(self) -> tuple[int, M, bool]:
        """``(version, model, changed)``: the newest production model loaded, and whether it replaced the
        one taken before (the caller switches to it now, between two pieces of work)."""
        with self._lock:
            pending, self._pending = self._pending, None
            if pending is not None:
                self.version, self.model = pending
                self.reloads += 1
        if pending is not None:
            log.info("production model: version %d from now on", self.version)
        return self.version, self.model, pending is not None

    def check(self) -> None:
        """Ask the registry once; load the production version if it moved (what the thread does)."""
        current = self.registry.in_stage("production")
        if current is None or current.version == self._seen:
            return
        model = self.load(self.registry.model_dir(current.version))  # whole, before anyone can take it
        with self._lock:
            self._pending, self._seen = (current.version, model), current.version

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - the registry may be briefly away: keep the model, retry
                log.warning("registry poll failed (%s: %s); keeping version %d", type(exc).__name__, exc, self.version)
