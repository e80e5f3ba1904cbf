"""Hot reload: the follower takes the registry's production version only once it is loaded whole."""

from __future__ import annotations

import json
import threading
import time

import pytest

from fraudgraph.lifecycle import ModelRegistry, RegistryError, RunTracker
from fraudgraph.lifecycle.follow import StageFollower


@pytest.fixture
def registry_settings(settings, tmp_path):
    return settings.registry.model_copy(update={"dir": str(tmp_path / "models"), "poll_s": 0.05})


def register(registry_settings, tmp_path, name):
    model = tmp_path / name
    model.mkdir()
    (model / "manifest.json").write_text(json.dumps({"model_version": name}))
    run_id = RunTracker(registry_settings).log_training(model, params={}, metrics={}, lineage={"model_id": name})
    return ModelRegistry(registry_settings).register(run_id)


def read_name(model_dir):
    return json.loads((model_dir / "manifest.json").read_text())["model_version"]


def test_the_production_version_is_taken_only_once_loaded_and_between_pieces_of_work(registry_settings, tmp_path):
    registry = ModelRegistry(registry_settings)
    register(registry_settings, tmp_path, "m1")
    register(registry_settings, tmp_path, "m2")
    with pytest.raises(RegistryError, match="promote one first"):
        StageFollower(registry_settings, read_name, poll_s=0.05)
    registry.move(1, "production", reason="test: first")
    loading, release = threading.Event(), threading.Event()

    def slow_load(model_dir):
        name = read_name(model_dir)
        if name == "m2":
            loading.set()
            assert release.wait(10)
        return name

    follower = StageFollower(registry_settings, slow_load, poll_s=0.05)
    assert follower.take() == (1, "m1", False)
    registry.move(2, "production", reason="test: promoted")
    checking = threading.Thread(target=follower.check)
    checking.start()
    assert loading.wait(10)
    assert follower.take() == (1, "m1", False)  # still loading: the work goes on with the model it has
    release.set()
    checking.join(10)
    assert follower.take() == (2, "m2", True)  # once, between two pieces of work
    assert follower.take() == (2, "m2", False)


def test_the_follower_thread_picks_up_a_rollback_within_its_poll(registry_settings, tmp_path):
    registry = ModelRegistry(registry_settings)
    for name in ("m1", "m2"):
        register(registry_settings, tmp_path, name)
    registry.move(1, "production", reason="test: first")
    registry.move(2, "production", reason="test: second")
    follower = StageFollower(registry_settings, read_name, poll_s=0.05).start()
    try:
        assert follower.take()[:2] == (2, "m2")
        registry.rollback(reason="test: back")
        deadline = time.monotonic() + 10
        while follower.take()[0] != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert follower.version == 1 and follower.model == "m1" and follower.reloads == 1
    finally:
        follower.stop()
