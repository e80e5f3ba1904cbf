"""The model registry: versions of the deployed model, each a tracked training run's model folder, in
one of four stages. MLflow's model registry holds them (``registry.model_name``): the stage is a version
tag, ``production`` and ``shadow`` are also aliases (what a consumer or the API follows), and every stage
change is kept on the version with its reason, whether it was forced, and the gate's figures.

Stages: ``candidate`` (registered, not acted on), ``shadow`` (scores beside production, never acted on),
``production`` (the one model the consumer and the API decide with) and ``archived``. At most one version
is in ``production`` and one in ``shadow``: moving another there archives the one before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudgraph.config import RegistrySettings

from .tracking import MODEL_ARTIFACT_PATH, mlflow_client

log = logging.getLogger(__name__)

STAGES = ("candidate", "shadow", "production", "archived")
_ALIASED = ("production", "shadow")  # one version at most, followed by name
_STAGE_TAG, _HISTORY_TAG, _MODEL_ID_TAG = "fraudgraph.stage", "fraudgraph.stage_history", "fraudgraph.model_id"


class RegistryError(ValueError):
    """A registry request that cannot be carried out (unknown version or stage, nothing to roll back to)."""


class ProductionMoved(RegistryError):
    """Another promotion or rollback changed the production version since the caller read it."""


_ANY = object()  # move(): no expectation about the production version


@dataclass(frozen=True)
class ModelVersion:
    """One registered model: ``version`` (1, 2, ...), the artifact's ``model_id`` (``rgcn_edge-<digest>``),
    its ``stage``, the training ``run_id``, when it was registered and its stage changes, oldest first
    (``{at, from, to, reason, forced, evaluation}``)."""

    version: int
    model_id: str
    stage: str
    run_id: str
    registered_at: str
    history: tuple[dict[str, Any], ...]

    def record(self) -> dict[str, Any]:
        """The version as plain values (the CLI's JSON)."""
        return {
            "version": self.version,
            "model_id": self.model_id,
            "stage": self.stage,
            "run_id": self.run_id,
            "registered_at": self.registered_at,
            "history": list(self.history),
        }


class ModelRegistry:
    """Register, list, move between stages and roll back the versions of ``registry.model_name``."""

    def __init__(self, settings: RegistrySettings):
        self.settings = settings
        self.name = settings.model_name
        self.client = mlflow_client(settings)

    # ------------------------------------------------------------ versions
    def register(self, run_id: str) -> ModelVersion:
        """The model folder of training run ``run_id`` as a new ``candidate`` version; a run registered
        before gives its version back (registering is idempotent)."""
        for known in self.versions():
            if known.run_id == run_id:
                return known
        self._ensure_model()
        run = self.client.get_run(run_id)
        model_id = run.data.tags.get("model_id", "")
        created = self.client.create_model_version(
            self.name,
            source=f"{run.info.artifact_uri}/{MODEL_ARTIFACT_PATH}",
            run_id=run_id,
            tags={_STAGE_TAG: "candidate", _HISTORY_TAG: "[]", _MODEL_ID_TAG: model_id},
        )
        log.info("registered %s (run %s) as version %s, candidate", model_id, run_id, created.version)
        return self.get(int(created.version))

    def versions(self) -> list[ModelVersion]:
        """Every version, oldest first."""
        if not self._exists():
            return []
        found = self.client.search_model_versions(f"name = '{self.name}'")
        return sorted((self._version(v) for v in found), key=lambda v: v.version)

    def get(self, version: int) -> ModelVersion:
        """One version (:class:`RegistryError` when there is none such)."""
        from mlflow.exceptions import MlflowException

        try:
            return self._version(self.client.get_model_version(self.name, str(version)))
        except MlflowException as exc:
            raise RegistryError(f"version {version}: not in the registry {self.name!r}") from exc

    def in_stage(self, stage: str) -> ModelVersion | None:
        """The version in ``production`` or ``shadow`` (None when there is none)."""
        if stage not in _ALIASED:
            raise RegistryError(f"stage {stage!r}: only {' and '.join(_ALIASED)} hold one version")
        if not self._exists():
            return None
        aliases = self.client.get_registered_model(self.name).aliases
        return self.get(int(aliases[stage])) if stage in aliases else None

    def model_dir(self, version: int) -> Path:
        """A local folder holding the version's model artifact (downloaded once from a remote store)."""
        import mlflow.artifacts

        uri = self.client.get_model_version_download_uri(self.name, str(version))
        if uri.startswith("file://"):
            return Path(uri[len("file://") :])
        if "://" not in uri:
            return Path(uri)
        cache = Path(self.settings.dir).resolve() / "cache" / f"v{version}"
        if not cache.exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(cache))
        return cache

    def lineage(self, version: int) -> dict[str, str]:
        """The lineage of the training run behind a version: its run tags (``model_id``, ``fraudgraph.*``)."""
        tags = self.client.get_run(self.get(version).run_id).data.tags
        return {k: v for k, v in tags.items() if k == "model_id" or k.startswith("fraudgraph.")}

    def run_metrics(self, version: int) -> dict[str, float]:
        """The metrics of the training run behind a version."""
        return dict(self.client.get_run(self.get(version).run_id).data.metrics)

    # -------------------------------------------------------------- stages
    def move(
        self,
        version: int,
        stage: str,
        *,
        reason: str,
        forced: bool = False,
        evaluation: Mapping[str, Any] | None = None,
        expect_production: Any = _ANY,
    ) -> ModelVersion:
        """Put ``version`` in ``stage``, recording why; the version that held ``production`` or ``shadow``
        before is archived (recorded too). ``expect_production``: the production version (or None) the
        caller decided against (a gate); when another move changed it meanwhile, nothing moves and
        :class:`ProductionMoved` is raised. Stage changes are serialised (:meth:`stage_lock`)."""
        if stage not in STAGES:
            raise RegistryError(f"stage {stage!r}: expected one of {', '.join(STAGES)}")
        with self.stage_lock():
            if expect_production is not _ANY:
                now = self.in_stage("production")
                if (now.version if now is not None else None) != expect_production:
                    raise ProductionMoved(
                        f"production is version {now.version if now else None}, not {expect_production} "
                        f"as when version {version} was judged: judge it again"
                    )
            return self._move(version, stage, reason, forced, evaluation)

    @contextlib.contextmanager
    def stage_lock(self) -> Iterator[None]:
        """Serialise stage changes between processes: a lock file in ``registry.dir`` for the local store
        (on a tracking server, only ``expect_production``'s check guards, up to the request's own time)."""
        if self.settings.tracking_uri:
            yield
            return
        path = Path(self.settings.dir).resolve() / "stages.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _move(
        self, version: int, stage: str, reason: str, forced: bool, evaluation: Mapping[str, Any] | None
    ) -> ModelVersion:
        target = self.get(version)
        if stage in _ALIASED:
            before = self.in_stage(stage)
            if before is not None and before.version != version:
                self._set_stage(before, "archived", f"replaced in {stage} by version {version}", False, None)
            self.client.set_registered_model_alias(self.name, stage, str(version))
        for alias in _ALIASED:  # leaving production or shadow: no longer followed
            if alias != stage and target.stage == alias:
                self.client.delete_registered_model_alias(self.name, alias)
        self._set_stage(target, stage, reason, forced, evaluation)
        log.info("version %d: %s -> %s (%s)", version, target.stage, stage, reason)
        return self.get(version)

    def rollback(self, *, reason: str) -> ModelVersion:
        """Archive the production version and put back the one that was in production before it."""
        current = self.in_stage("production")
        if current is None:
            raise RegistryError("rollback: no version is in production")
        earlier = [
            (change["at"], v)
            for v in self.versions()
            if v.version != current.version
            for change in v.history
            if change["from"] == "production"
        ]
        if not earlier:
            raise RegistryError(
                f"rollback: version {current.version} is the first in production; nothing to go back to"
            )
        _, previous = max(earlier, key=lambda pair: pair[0])
        return self.move(previous.version, "production", reason=f"rollback: {reason}", forced=True)

    # ------------------------------------------------------------- helpers
    def _exists(self) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            return False
        return True

    def _ensure_model(self) -> None:
        if not self._exists():
            self.client.create_registered_model(self.name, description="fraudgraph's deployed rgcn_edge model")

    def _set_stage(
        self, version: ModelVersion, stage: str, reason: str, forced: bool, evaluation: Mapping[str, Any] | None
    ) -> None:
        change = {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "from": version.stage,
            "to": stage,
            "reason": reason,
            "forced": forced,
            "evaluation": dict(evaluation) if evaluation else None,
        }
        history = [*version.history, change]
        self.client.set_model_version_tag(self.name, str(version.version), _HISTORY_TAG, json.dumps(history))
        self.client.set_model_version_tag(self.name, str(version.version), _STAGE_TAG, stage)

    @staticmethod
    def _version(v: Any) -> ModelVersion:
        registered = dt.datetime.fromtimestamp(v.creation_timestamp / 1000, dt.UTC).isoformat(timespec="seconds")
        return ModelVersion(
            version=int(v.version),
            model_id=v.tags.get(_MODEL_ID_TAG, ""),
            stage=v.tags.get(_STAGE_TAG, "candidate"),
            run_id=v.run_id or "",
            registered_at=registered,
            history=tuple(json.loads(v.tags.get(_HISTORY_TAG, "[]"))),
        )
