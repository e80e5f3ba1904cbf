"""Following the registry's ``production`` (or ``shadow``) version without a restart (hot reload).

A :class:`StageFollower` polls the registry every ``poll_s`` seconds on a thread of its own. When the
stage's alias moves (a promotion or a rollback), it loads the new version there, whole, with the loader
it was given, and keeps it aside; the consumer (between micro-batches) or the API (between requests)
takes it with :meth:`StageFollower.take`. Work already started keeps the model it started with, and
nothing is ever scored by a model still being loaded.
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


class StageFollower(Generic[M]):
    """The model in ``stage`` (``production`` or ``shadow``), loaded with ``load(model_dir)``; the first one
    at construction. ``required``: refuse (:class:`RegistryError`) when no version is in the stage; else
    the model is None until one is."""

    def __init__(
        self,
        settings: RegistrySettings,
        load: Callable[[Path], M],
        poll_s: float,
        *,
        stage: str = "production",
        required: bool = True,
    ):
        self.registry = ModelRegistry(settings)
        self.load, self.poll_s, self.stage, self.required = load, poll_s, stage, required
        first = self.registry.in_stage(stage)
        if first is None and required:
            raise RegistryError(f"no version of {self.registry.name!r} is in {stage}: promote one first")
        self.version: int | None = None if first is None else first.version  # the version taken last
        self.model: M | None = None if first is None else load(self.registry.model_dir(first.version))
        self.reloads = 0
        self._pending: tuple[int | None, M | None] | None = None
        self._seen = self.version  # the version loaded last (taken or pending)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StageFollower[M]:
        """Poll on a daemon thread from now on."""
        self._thread = threading.Thread(target=self._run, name="registry-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 30)

    def take(self) -> tuple[int | None, M | None, bool]:
        """``(version, model, changed)``: the newest model of the stage loaded (None: no version is in the
        stage now), and whether it replaced the one taken before (the caller switches to it now, between
        two pieces of work)."""
        with self._lock:
            pending, self._pending = self._pending, None
            if pending is not None:
                self.version, self.model = pending
                self.reloads += 1
        if pending is not None:
            log.info("%s model: version %s from now on", self.stage, self.version)
        return self.version, self.model, pending is not None

    def check(self) -> None:
        """Ask the registry once; load the stage's version if it moved (what the thread does). A required
        stage left empty keeps its model; an optional one hands over None."""
        current = self.registry.in_stage(self.stage)
        version = None if current is None else current.version
        if version == self._seen or (version is None and self.required):
            return
        model = None if version is None else self.load(self.registry.model_dir(version))  # whole, first
        with self._lock:
            self._pending, self._seen = (version, model), version

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - the registry may be briefly away: keep the model, retry
                log.warning("registry poll failed (%s: %s); keeping version %s", type(exc).__name__, exc, self.version)
