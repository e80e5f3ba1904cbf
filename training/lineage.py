"""What a training run is tracked with: its parameters and its lineage (the data, labels, settings and code
it came from), and the call that records a finished run (:class:`fraudgraph.lifecycle.RunTracker`)."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from fraudgraph.config import PROJECT_ROOT, Settings
from fraudgraph.lifecycle import RunTracker, snapshot_fingerprint
from fraudgraph.lifecycle.tracking import tracking_uri

log = logging.getLogger("fraudgraph.training")

# the settings a model depends on (api and privacy hold secrets and never leave the process)
TRACKED_SECTIONS = ("training", "labels", "rules", "consumer", "graph")
RUN_FILE = "run.json"  # in the model folder: the tracked run it was logged as


def code_version() -> str:
    """The package version, and the checkout's commit (``+dirty`` with local changes) where there is one."""
    version = metadata.version("identity-fraudgraph")
    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty=+dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version} ({commit})" if commit else version


def training_params(settings: Settings) -> dict[str, Any]:
    """The tracked sections of the settings, flattened to ``section.key.subkey``."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        else:
            out[prefix] = json.dumps(value) if isinstance(value, list | type(None)) else value

    dumped = json.loads(settings.model_dump_json())
    for section in TRACKED_SECTIONS:
        walk(section, dumped[section])
    return out


def training_lineage(
    settings: Settings, snapshot_dir: str | Path, labels_dir: str | Path, as_of_ms: int, model_id: str
) -> dict[str, str]:
    """Where a model came from: the snapshot (folder and fingerprint), the labels (folder and as-of), a hash
    of the tracked settings and the code version."""
    tracked = json.dumps({k: v for k, v in training_params(settings).items()}, sort_keys=True, default=str)
    return {
        "model_id": model_id,
        "fraudgraph.snapshot_dir": str(Path(snapshot_dir).resolve()),
        "fraudgraph.snapshot_fingerprint": snapshot_fingerprint(snapshot_dir),
        "fraudgraph.labels_dir": str(Path(labels_dir).resolve()),
        "fraudgraph.labels_as_of": pd.Timestamp(as_of_ms, unit="ms", tz="UTC").isoformat(),
        "fraudgraph.config_hash": hashlib.sha256(tracked.encode()).hexdigest()[:16],
        "fraudgraph.code_version": code_version(),
    }


def track_training(
    settings: Settings,
    model_dir: str | Path,
    metrics: dict[str, Any],
    snapshot_dir: str | Path,
    labels_dir: str | Path,
    as_of_ms: int,
    model_id: str,
) -> str:
    """Log a finished training run (its model folder included) and note its id in ``model_dir/run.json``.
    Returns the run id."""
    tracker = RunTracker(settings.registry)
    run_id = tracker.log_training(
        model_dir,
        params=training_params(settings),
        metrics=metrics,
        lineage=training_lineage(settings, snapshot_dir, labels_dir, as_of_ms, model_id),
    )
    record = {"run_id": run_id, "tracking_uri": tracking_uri(settings.registry)}
    (Path(model_dir) / RUN_FILE).write_text(json.dumps(record, indent=2))
    return run_id
