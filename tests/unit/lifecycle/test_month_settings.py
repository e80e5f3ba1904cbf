"""The simulated month's settings: its own registry and logs under its folder, and a first model trained as
the retrains are."""

from __future__ import annotations

import pytest

from fraudgraph.cli.month import month_settings


@pytest.mark.parametrize("baselines", [False, True])
def test_the_months_first_model_is_trained_as_its_retrains_and_its_state_stays_in_its_folder(
    settings, tmp_path, baselines
):
    given = settings.model_copy(
        update={
            "training": settings.training.model_copy(update={"baselines": not baselines}),
            "retrain": settings.retrain.model_copy(update={"baselines": baselines}),
        }
    )
    month = month_settings(given, tmp_path)
    assert month.training.baselines is baselines
    assert month.training.model_copy(update={"baselines": not baselines}) == given.training  # nothing else moves
    assert month.registry.dir == str(tmp_path / "models") and month.registry.tracking_uri is None
    assert month.consumer.link_event_log == str(tmp_path / "link-events")
    assert month.consumer.drift_log == str(tmp_path / "drift.jsonl")
